import type { ReleaseClass } from '../../api';

/** classLabels names each request class and says in a phrase what puts a request in it. */
export const classLabels: Record<ReleaseClass, { label: string; what: string }> = {
  routine_boot: { label: 'Routine boot', what: 'known VM, approved chip and measurement, TCB at or above the minimum' },
  first_boot: { label: 'First boot', what: 'a VM never released before, or an approved measurement never seen' },
  migration: { label: 'Migration', what: 'a chip (or VLEK) this VM has not used before' },
  restore: { label: 'Restore', what: 'an older disk generation, or a report older than the last launch' },
  platform_change: { label: 'Platform change', what: 'TCB or firmware changed since the last approved boot (still at or above the minimum)' },
  rotation: { label: 'Rotation', what: 'the guest moves to a new generation of its release secret' },
  refused: { label: 'Refused', what: 'bad evidence, revoked VM or volume, forbidden policy bits, a replayed nonce' },
};
