import { describe, expect, it } from 'vitest';
import { nextStep } from './nextStep';

describe('nextStep', () => {
  it('says what to do for each kind of failure', () => {
    const cases: [Parameters<typeof nextStep>[0], string, RegExp][] = [
      [{ status: 'failing', reason_code: 'evidence_invalid', reason: 'measurement 3f2a… is not in the approved set (2 approved)' }, 'measurement', /Images › reference values.*approved image/],
      [{ status: 'failing', reason_code: 'evidence_invalid', reason: 'SNP security patch level 22 is below the minimum 23' }, 'tcb', /host firmware.*lower the minimum/],
      [{ status: 'failing', reason_code: 'evidence_invalid', reason: 'the VCEK does not chain to a trusted AMD root' }, 'untrusted', /Do not release/],
      [{ status: 'failing', reason_code: 'policy_debug', reason: 'the guest policy allows debugging' }, 'debug', /without the debug/],
      [{ status: 'failing', reason_code: 'denied_by_officer', reason: 'denied by alice: unknown host' }, 'denied', /Reboot/],
      [{ status: 'failing', reason_code: 'unexpected_event', reason: 'the evidence shows migration' }, 'unexpected', /asks again/],
      [{ status: 'failing', reason: '', status_reason: 'request expired' }, 'expired', /Reboot/],
      [{ status: 'stale' }, 'stale', /guest.*network/],
      [{ status: 'pending' }, 'pending', /Approvals/],
      [{ status: 'failing', reason_code: 'something_new', reason: 'a new failure' }, 'other', /history/],
    ];
    for (const [g, kind, short] of cases) {
      const s = nextStep(g);
      expect(s?.kind, JSON.stringify(g)).toBe(kind);
      expect(s!.short + ' ' + s!.long).toMatch(short);
    }
  });
  it('has nothing to say about a verified guest', () => {
    expect(nextStep({ status: 'verified' })).toBeNull();
  });
});
