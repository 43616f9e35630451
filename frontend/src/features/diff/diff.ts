import type { TCB } from '../../api';

/** Snapshot is what a guest proved at one boot, as far as the console knows it. */
export interface Snapshot {
  product?: string;
  chip_id?: string;
  measurement?: string;
  tcb?: TCB | null;
  policy?: Record<string, boolean> | null;
  secure_boot?: boolean | null;
  pcrs?: Record<string, string> | null;
  generation?: number;
}

export interface DiffRow {
  key: string;
  label: string;
  explain: string;
  before: string;
  after: string;
  changed: boolean;
  /** worse is true when the change lowers security (a TCB going down, debug turning on). */
  worse: boolean;
}

const tcbParts: { k: keyof TCB; label: string; explain: string }[] = [
  { k: 'bootloader', label: 'TCB: bootloader', explain: 'security patch level of the AMD Secure Processor boot loader' },
  { k: 'tee', label: 'TCB: TEE', explain: 'security patch level of the Secure Processor OS (the trusted execution environment)' },
  { k: 'snp', label: 'TCB: SNP firmware', explain: 'security patch level of the SEV-SNP firmware that isolates guests' },
  { k: 'microcode', label: 'TCB: microcode', explain: 'security patch level of the CPU microcode' },
  { k: 'fmc', label: 'TCB: FMC', explain: 'security patch level of the Turin FMC firmware (Turin only)' },
];

const policyExplain: Record<string, string> = {
  debug: 'debug lets the host read and change guest memory; never acceptable for secrets',
  migrate_ma: 'a migration agent may move the guest (and its memory keys) to another host',
  smt: 'simultaneous multithreading: guest and host threads may share a core',
  single_socket: 'the guest may run on one socket only',
};

const show = (v: unknown): string => (v === undefined || v === null || v === '' ? '—' : String(v));

/** diffSnapshots lists every field of after with its value before; before may be null (first boot). */
export function diffSnapshots(before: Snapshot | null, after: Snapshot): DiffRow[] {
  const rows: DiffRow[] = [];
  const add = (key: string, label: string, explain: string, b: unknown, a: unknown, worse = false) => {
    const bs = before ? show(b) : '—';
    const as = show(a);
    rows.push({ key, label, explain, before: bs, after: as, changed: !!before && bs !== as, worse: !!before && bs !== as && worse });
  };
  add('product', 'Processor', 'the AMD EPYC generation that signed the report', before?.product, after.product);
  add('chip_id', 'Chip', "the physical processor's unique ID; a new chip means the VM moved to another host", before?.chip_id, after.chip_id);
  add('measurement', 'Launch measurement', "hash of the guest's initial memory: firmware, kernel and command line it booted", before?.measurement, after.measurement);
  for (const p of tcbParts) {
    const b = before?.tcb?.[p.k];
    const a = after.tcb?.[p.k];
    if (p.k === 'fmc' && !b && !a) continue; // not a Turin
    add(`tcb.${p.k}`, p.label, p.explain, b, a, typeof b === 'number' && typeof a === 'number' && a < b);
  }
  const keys = new Set([...Object.keys(before?.policy ?? {}), ...Object.keys(after.policy ?? {})]);
  for (const k of [...keys].sort()) {
    const b = before?.policy?.[k];
    const a = after.policy?.[k];
    add(`policy.${k}`, `Policy: ${k.replace(/_/g, ' ')}`, policyExplain[k] ?? 'a guest policy bit set at launch', b === undefined ? undefined : b ? 'on' : 'off', a === undefined ? undefined : a ? 'on' : 'off', (k === 'debug' || k === 'migrate_ma') && !!a && !b);
  }
  if (before?.secure_boot !== undefined || after.secure_boot !== undefined) {
    const f = (v: boolean | null | undefined) => (v === undefined || v === null ? undefined : v ? 'on' : 'off');
    add('secure_boot', 'Secure Boot', 'UEFI Secure Boot state from the vTPM event log', f(before?.secure_boot), f(after.secure_boot), before?.secure_boot === true && after.secure_boot === false);
  }
  const pcrs = new Set([...Object.keys(before?.pcrs ?? {}), ...Object.keys(after.pcrs ?? {})]);
  for (const k of [...pcrs].sort((x, y) => Number(x) - Number(y))) {
    add(`pcr.${k}`, `PCR ${k}`, 'a vTPM measurement register', before?.pcrs?.[k], after.pcrs?.[k]);
  }
  if (after.generation !== undefined) add('generation', 'Disk generation', 'which generation of the release secret the guest asked for', before?.generation, after.generation);
  return rows;
}
