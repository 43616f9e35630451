import { describe, expect, it } from 'vitest';
import { asEvidence, explain, snapshotOf } from './evidence';

const tcb = { bootloader: 9, tee: 0, snp: 23, microcode: 84 };
const snp = {
  version: 3, product: 'Genoa', signer: 'VCEK', chip_id: 'aa', chip_id_masked: false, measurement: 'mm', host_data: '', report_data: 'rd',
  id_key_digest: '', author_key_digest: '', author_key_en: false, family_id: '00', image_id: '00', report_id: 'r1', report_id_ma: '', guest_svn: 0,
  vmpl: 0, policy: { debug: true, migration_agent: false, smt: true, single_socket: false, abi_major: 0, abi_minor: 0, raw: 0 },
  platform_info: { smt_enabled: true, tsme_enabled: false, ecc_enabled: true, raw: 0 },
  current_tcb: tcb, reported_tcb: tcb, committed_tcb: tcb, launch_tcb: tcb, firmware_version: '1.55',
};

describe('decoded evidence', () => {
  it('explains every field and flags debug and Secure Boot off', () => {
    const e = asEvidence({ snp, tpm: { verified: true, secure_boot: false, hash: 'SHA256', pcrs: { '7': 'ab'.repeat(32), '0': 'cd'.repeat(32) }, ak_digest: 'ak' } })!;
    const f = explain(e);
    expect(f.every((x) => x.help.length > 20)).toBe(true);
    expect(f.filter((x) => x.warn).map((x) => x.label)).toEqual(['Debug', 'Secure Boot']);
    expect(f.find((x) => x.label === 'PCRs (SHA256)')!.value.startsWith('0: cdcd')).toBe(true);
  });
  it('turns into a diff snapshot with policy, PCRs and Secure Boot', () => {
    const s = snapshotOf(asEvidence({ snp, tpm: { verified: true, secure_boot: true, hash: 'SHA256', pcrs: { '7': 'x' }, ak_digest: '' } }), 2)!;
    expect(s).toMatchObject({ chip_id: 'aa', tcb, policy: { debug: true, smt: true }, secure_boot: true, pcrs: { '7': 'x' }, generation: 2 });
    expect(snapshotOf(asEvidence({ snp, tpm: null }))!.secure_boot).toBeUndefined();
    expect(asEvidence(null)).toBeNull();
    expect(asEvidence({ tpm: null })).toBeNull();
  });
  it('keys the chip on the VCEK hardware ID and says when a VLEK names none', () => {
    const masked = asEvidence({ snp: { ...snp, chip_id: '00'.repeat(64), chip_id_masked: true }, tpm: null, chip_identity: 'bb' })!;
    expect(snapshotOf(masked)!.chip_id).toBe('bb');
    expect(explain(masked).find((x) => x.label === 'Chip identity')!.value).toBe('bb');
    expect(explain(masked).find((x) => x.label === 'CHIP_ID (report)')!.value).toBe('(masked by the host)');
    const vlek = asEvidence({ snp: { ...snp, signer: 'VLEK' }, tpm: null, chip_identity: 'none (VLEK)' })!;
    expect(explain(vlek).find((x) => x.label === 'Chip identity')).toMatchObject({ value: 'none (VLEK)' });
    expect(snapshotOf(vlek)!.chip_id).toBe('none (VLEK)');
  });
});
