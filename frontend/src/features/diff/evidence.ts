import type { TCB } from '../../api';
import type { Snapshot } from './diff';

/** SNPClaims is attest.Claims as JSON (hex in lower case). */
export interface SNPClaims {
  version: number;
  product: string;
  signer: string;
  chip_id: string;
  chip_id_masked: boolean;
  measurement: string;
  host_data: string;
  report_data: string;
  id_key_digest: string;
  author_key_digest: string;
  author_key_en: boolean;
  family_id: string;
  image_id: string;
  report_id: string;
  report_id_ma: string;
  guest_svn: number;
  vmpl: number;
  policy: { debug: boolean; migration_agent: boolean; smt: boolean; single_socket: boolean; abi_major: number; abi_minor: number; raw: number };
  platform_info: { smt_enabled: boolean; tsme_enabled: boolean; ecc_enabled: boolean; raw: number };
  current_tcb: TCB;
  reported_tcb: TCB;
  committed_tcb: TCB;
  launch_tcb: TCB;
  firmware_version: string;
}

/** TPMState is attest.TPMState as JSON. */
export interface TPMState {
  verified: boolean;
  secure_boot: boolean;
  hash: string;
  pcrs: Record<string, string>;
  kernel_cmdline?: string;
  pk_digest?: string;
  kek_digest?: string;
  db_digest?: string;
  dbx_digest?: string;
  ak_digest: string;
}

export interface DecodedEvidence {
  snp: SNPClaims | null;
  tpm: TPMState | null;
  /** The chip as the console keys it: the VCEK's hardware ID, or 'none (VLEK)'. */
  chip_identity?: string;
}

export function asEvidence(v: unknown): DecodedEvidence | null {
  if (!v || typeof v !== 'object') return null;
  const e = v as Partial<DecodedEvidence>;
  if (!e.snp) return null;
  return { snp: e.snp ?? null, tpm: e.tpm ?? null, chip_identity: e.chip_identity };
}

/** snapshotOf turns decoded evidence into one side of the diff. */
export function snapshotOf(e: DecodedEvidence | null, generation?: number): Snapshot | null {
  if (!e?.snp) return null;
  const p = e.snp.policy;
  return {
    product: e.snp.product,
    chip_id: e.chip_identity || e.snp.chip_id,
    measurement: e.snp.measurement,
    tcb: e.snp.reported_tcb,
    policy: { debug: p.debug, migrate_ma: p.migration_agent, smt: p.smt, single_socket: p.single_socket },
    secure_boot: e.tpm ? e.tpm.secure_boot : undefined,
    pcrs: e.tpm?.pcrs ?? undefined,
    generation,
  };
}

const yes = (b: boolean) => (b ? 'yes' : 'no');
export const tcbText = (t: TCB) => `${t.fmc ? `FMC ${t.fmc} · ` : ''}bootloader ${t.bootloader} · TEE ${t.tee} · SNP ${t.snp} · microcode ${t.microcode}`;

export interface ExplainedField {
  group: string;
  label: string;
  value: string;
  help: string;
  warn?: boolean;
}

/** explain lists every decoded field with a sentence a person understands. */
export function explain(e: DecodedEvidence): ExplainedField[] {
  const s = e.snp!;
  const out: ExplainedField[] = [
    { group: 'Platform', label: 'Processor', value: s.product, help: 'The AMD EPYC generation whose secure processor signed this report.' },
    {
      group: 'Platform',
      label: 'Signing key',
      value: s.signer,
      help: s.signer === 'VLEK' ? 'A VLEK: a key AMD issued to the cloud provider for this platform, not tied to one chip.' : 'A VCEK: a key unique to this chip and its firmware versions, certified by AMD.',
    },
    {
      group: 'Platform',
      label: 'Chip identity',
      value: e.chip_identity || '—',
      help:
        s.signer === 'VLEK'
          ? 'None: a VLEK is the same on every chip of the cloud provider, so the console cannot tell chips apart. Unless the image policy allows it, every new launch needs an officer.'
          : "The hardware ID in the chip's VCEK certificate. A different chip for the same VM means a migration or a restore on another host.",
    },
    {
      group: 'Platform',
      label: 'CHIP_ID (report)',
      value: s.chip_id_masked ? '(masked by the host)' : s.chip_id,
      help: 'The chip ID field of the report. A host may zero it, so the console never keys chips on it.',
    },
    { group: 'Platform', label: 'Firmware', value: s.firmware_version || '—', help: 'The SEV-SNP firmware version the host runs.' },
    { group: 'Platform', label: 'Reported TCB', value: tcbText(s.reported_tcb), help: 'The patch levels the report vouches for (and its signing key was derived from); compared against the image\'s minimum.' },
    { group: 'Platform', label: 'Current TCB', value: tcbText(s.current_tcb), help: 'The patch levels the platform runs right now.' },
    { group: 'Platform', label: 'Committed TCB', value: tcbText(s.committed_tcb), help: 'The levels the platform committed to: it cannot roll back below them.' },
    { group: 'Platform', label: 'Launch TCB', value: tcbText(s.launch_tcb), help: 'The levels at the moment this guest was launched.' },
    {
      group: 'Platform',
      label: 'Host platform',
      value: `SMT ${s.platform_info.smt_enabled ? 'on' : 'off'} · TSME ${s.platform_info.tsme_enabled ? 'on' : 'off'} · ECC ${s.platform_info.ecc_enabled ? 'on' : 'off'}`,
      help: 'How the host is configured: simultaneous multithreading, transparent memory encryption for the host, error-correcting memory.',
    },
    { group: 'Guest', label: 'Launch measurement', value: s.measurement, help: "A SHA-384 hash of the guest's initial memory — firmware, and with measured direct boot the kernel, initrd and command line." },
    { group: 'Guest', label: 'Host data', value: s.host_data || '—', help: 'Data the launcher bound to the guest at launch (often a hash of its configuration).' },
    { group: 'Guest', label: 'VMPL', value: String(s.vmpl), help: 'The privilege level that asked for the report; 0 is the most privileged (the guest OS or its paravisor).', warn: s.vmpl !== 0 },
    { group: 'Guest', label: 'Report ID', value: s.report_id, help: 'Identifies this launch. A report ID seen before for this VM means an earlier launch is back (a restore).' },
    { group: 'Guest', label: 'Guest SVN', value: String(s.guest_svn), help: 'The security version the image author gave this guest.' },
    { group: 'Guest', label: 'ID key digest', value: s.id_key_digest || '—', help: 'Which ID key signed the launch parameters (ID block), when one was used.' },
    { group: 'Guest', label: 'Author key digest', value: s.author_key_en ? s.author_key_digest : '—', help: 'Which author key endorsed the ID key, when one was used.' },
    { group: 'Guest', label: 'Family / image ID', value: `${s.family_id} / ${s.image_id}`, help: 'Identifiers the image author put in the ID block.' },
    { group: 'Policy', label: 'Debug', value: yes(s.policy.debug), help: 'Debug lets the host read and change the guest\'s memory. Never acceptable for secrets: such guests are always refused.', warn: s.policy.debug },
    { group: 'Policy', label: 'Migration agent', value: yes(s.policy.migration_agent), help: 'A migration agent may move the guest, and its memory, to another host.', warn: s.policy.migration_agent },
    { group: 'Policy', label: 'SMT allowed', value: yes(s.policy.smt), help: 'Whether the guest may run on a host with simultaneous multithreading (sibling threads share a core).' },
    { group: 'Policy', label: 'Single socket', value: yes(s.policy.single_socket), help: 'Whether the guest must run on one socket only.' },
    { group: 'Policy', label: 'Minimum ABI', value: `${s.policy.abi_major}.${s.policy.abi_minor}`, help: 'The oldest SEV-SNP firmware interface the guest accepts.' },
    { group: 'Report', label: 'Report data', value: s.report_data, help: 'The 64 bytes the guest bound into the report: here the hash of the release request (nonce, its one-time public key, the volume).' },
  ];
  if (e.tpm) {
    const t = e.tpm;
    out.push(
      { group: 'vTPM', label: 'Secure Boot', value: t.secure_boot ? 'on' : 'off', help: 'UEFI Secure Boot state, read from the measured boot event log.', warn: !t.secure_boot },
      { group: 'vTPM', label: 'Kernel command line', value: t.kernel_cmdline || '—', help: 'The command line the boot loader measured.' },
      {
        group: 'vTPM',
        label: `PCRs (${t.hash})`,
        value: Object.entries(t.pcrs)
          .sort((a, b) => Number(a[0]) - Number(b[0]))
          .map(([k, v]) => `${k}: ${v.slice(0, 16)}…`)
          .join('  '),
        help: 'Platform configuration registers: hashes of everything measured during boot (firmware, boot loader, kernel, Secure Boot keys).',
      },
      { group: 'vTPM', label: 'Attestation key', value: t.ak_digest, help: 'The vTPM key that signed the quote; it is trusted because its hash is bound into the SEV-SNP report.' },
    );
  }
  return out;
}
