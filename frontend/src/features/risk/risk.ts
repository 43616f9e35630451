/** Risk of approving a release request, in plain words. */
export type RiskLevel = 'low' | 'medium' | 'high';

/** RiskInput is what the risk sentence needs from a request and its summary. */
export interface RiskInput {
  class: string;
  vm_id: string;
  generation: number;
  current_generation?: number;
  measurement?: string;
  chip_id?: string;
  chip_name?: string;
  new_chip?: boolean;
  measurement_unapproved?: boolean;
  /** the console's sentence of what approving a first boot pins, when it has one */
  pins?: string;
}

export interface Risk {
  level: RiskLevel;
  /** sentence says what approving does, in words an officer reads at a glance. */
  sentence: string;
  /** verb names the approve button ("Approve rollback"). */
  verb: string;
}

/** riskColor is the badge and button colour of a level: a risky approval is never green. */
export const riskColor: Record<RiskLevel, string> = { low: 'teal', medium: 'yellow', high: 'red' };

/**
 * shortChip names a chip by its first and last hex digits ("3f9a1c…7be2"), or
 * by the name an officer gave it; the full ID stays for hover and details.
 */
export function shortChip(id: string | undefined, name?: string): string {
  if (name) return name;
  if (!id) return '—';
  if (/^\(.*\)$/.test(id) || id.length <= 14) return id;
  return `${id.slice(0, 6)}…${id.slice(-4)}`;
}

/** shortMeasurement keeps the first 12 hex digits of a launch measurement. */
export function shortMeasurement(m: string | undefined): string {
  if (!m) return '—';
  return m.length > 12 ? `${m.slice(0, 12)}…` : m;
}

/** riskOf says what approving request r means, and how risky it is. */
export function riskOf(r: RiskInput): Risk {
  const unapproved = r.measurement_unapproved ? ' Its measurement is not on the approved list.' : '';
  switch (r.class) {
    case 'restore': {
      const cur = r.current_generation ?? 0;
      if (cur > 0 && r.generation < cur) {
        return {
          level: 'high',
          sentence: `Approving rolls the disk back to generation ${r.generation} of ${cur}: data written since is gone.${unapproved}`,
          verb: 'Approve rollback',
        };
      }
      return {
        level: 'high',
        sentence: `Approving releases the key of disk generation ${r.generation} to a launch older than the last one: a replayed or restored guest.${unapproved}`,
        verb: 'Approve restore',
      };
    }
    case 'migration':
      return {
        level: 'medium',
        sentence: `Approving moves this VM to a chip it has never run on (${shortChip(r.chip_id, r.chip_name)}) and releases its disk key there.${unapproved}`,
        verb: 'Approve migration',
      };
    case 'first_boot':
      if (r.pins) {
        // The console's own sentence, up to its first colon, with the measurement shortened (full value in the details).
        const head = r.pins.split(': ')[0].replace(/\b([0-9a-f]{12})[0-9a-f]{20,}\b/g, '$1…');
        return { level: r.measurement_unapproved ? 'high' : 'medium', sentence: `${head}.${unapproved}`, verb: 'Approve first boot' };
      }
      return {
        level: r.measurement_unapproved ? 'high' : 'medium',
        sentence: `Approving pins measurement ${shortMeasurement(r.measurement)} as the image's reference values and releases the disk key to ${r.vm_id}.${unapproved}`,
        verb: 'Approve first boot',
      };
    case 'platform_change':
      return {
        level: 'medium',
        sentence: `Approving accepts the host's changed firmware (TCB) for this VM from now on.${unapproved}`,
        verb: 'Approve platform change',
      };
    case 'rotation':
      return {
        level: 'low',
        sentence: `Approving moves this VM to generation ${r.generation} of its disk secret; the previous one stops working.${unapproved}`,
        verb: 'Approve rotation',
      };
    default:
      return { level: r.measurement_unapproved ? 'high' : 'medium', sentence: `Approving releases the disk key to ${r.vm_id}.${unapproved}`, verb: 'Approve' };
  }
}
