import { describe, expect, it } from 'vitest';
import { diffSnapshots } from './diff';

const tcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };

describe('diffSnapshots', () => {
  it('marks only what changed, and a lower TCB as weaker', () => {
    const rows = diffSnapshots(
      { product: 'Milan', chip_id: 'aa', measurement: 'm1', tcb, policy: { debug: false, smt: true } },
      { product: 'Milan', chip_id: 'bb', measurement: 'm1', tcb: { ...tcb, snp: 7, microcode: 120 }, policy: { debug: false, smt: true } },
    );
    const changed = rows.filter((r) => r.changed).map((r) => [r.key, r.before, r.after, r.worse]);
    expect(changed).toEqual([
      ['chip_id', 'aa', 'bb', false],
      ['tcb.snp', '8', '7', true],
      ['tcb.microcode', '115', '120', false],
    ]);
  });

  it('treats debug turning on as weaker and explains every field', () => {
    const rows = diffSnapshots({ policy: { debug: false } }, { policy: { debug: true } });
    const d = rows.find((r) => r.key === 'policy.debug')!;
    expect(d).toMatchObject({ before: 'off', after: 'on', changed: true, worse: true });
    expect(rows.every((r) => r.explain.length > 10)).toBe(true);
  });

  it('has nothing to compare on a first boot', () => {
    const rows = diffSnapshots(null, { chip_id: 'aa', measurement: 'm1', tcb });
    expect(rows.some((r) => r.changed)).toBe(false);
    expect(rows.find((r) => r.key === 'chip_id')).toMatchObject({ before: '—', after: 'aa' });
  });

  it('compares PCRs and Secure Boot when the vTPM reported them', () => {
    const rows = diffSnapshots({ secure_boot: true, pcrs: { '7': 'aa', '4': 'bb' } }, { secure_boot: false, pcrs: { '7': 'cc', '4': 'bb' } });
    expect(rows.filter((r) => r.changed).map((r) => r.key)).toEqual(['secure_boot', 'pcr.7']);
    expect(rows.find((r) => r.key === 'secure_boot')!.worse).toBe(true);
    expect(rows.filter((r) => r.key.startsWith('pcr.')).map((r) => r.key)).toEqual(['pcr.4', 'pcr.7']);
  });
});
