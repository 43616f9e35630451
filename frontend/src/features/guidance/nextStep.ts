/**
 * What an officer should do about a guest that is not verified: for each
 * kind of failure, a plain next step. `short` fits the fleet table's reason
 * column; `long` is for the guest page.
 */
export interface NextStep {
  /** kind names the failure for tests and styling, e.g. "measurement". */
  kind: string;
  short: string;
  long: string;
}

/** GuestLike is what nextStep reads from a fleet.Guest. */
export interface GuestLike {
  status: string;
  reason?: string;
  reason_code?: string;
  status_reason?: string;
}

const step = (kind: string, short: string, long: string): NextStep => ({ kind, short, long });

/** nextStep returns what to do next about g, or null when nothing is to be done (verified). */
export function nextStep(g: GuestLike): NextStep | null {
  const code = g.reason_code ?? '';
  const msg = `${g.reason ?? ''} ${g.status_reason ?? ''}`;
  switch (g.status) {
    case 'verified':
      return null;
    case 'stale':
      return step(
        'stale',
        'Check the guest and its network',
        'No heartbeat for more than three intervals. Check that the guest is running and can reach the console (network, firewall, the release API address in its manifest).',
      );
    case 'pending':
      return step('pending', 'Decide its request on Approvals', 'It waits for an officer: decide its request on the Approvals screen.');
    case 'revoked':
      return step(
        'revoked',
        'Reinstate it if the revocation was a mistake',
        'An officer revoked it: it gets no key and no heartbeat is accepted. Reinstate it on this page if that was a mistake (the audit log says who and why).',
      );
  }
  // failing
  if (/measurement .*not in the approved set|measurement_not_approved/i.test(msg)) {
    return step(
      'measurement',
      'Add it in Images › reference values, or rebuild from an approved image',
      'The guest runs a launch measurement that is not in its image’s reference values. If this build is yours, add its measurement in Images › reference values; otherwise rebuild the guest from an approved image.',
    );
  }
  if (/security patch level .*below the minimum|tcb_below_minimum|TCB .*below/i.test(msg)) {
    return step(
      'tcb',
      'Update the host firmware, or lower the minimum (with approval)',
      'The host’s firmware (TCB) is below the image’s minimum. Ask the provider to update the host firmware, or lower the minimum TCB in the image’s reference values (an admin change that needs a second admin).',
    );
  }
  if (/no reference values/i.test(msg)) {
    return step('no-reference', 'Approve its first boot, or set reference values', 'Its image has no reference values yet: approve its first boot on Approvals, or set the reference values in Images.');
  }
  switch (code) {
    case 'evidence_invalid':
      if (/certificate|chain|signature|revoked|VCEK|VLEK|ARK|ASK/i.test(msg)) {
        return step(
          'untrusted',
          'Do not release: check the host with the provider',
          'The evidence is not signed by AMD hardware the console trusts. Do not release; ask the provider about the host. If AMD’s certificates changed, refresh them in Settings.',
        );
      }
      return step('evidence', 'Open the guest to see which check failed', 'The evidence did not verify. The history below names the failed check; fix that on the guest or its host, then reboot it.');
    case 'policy_debug':
      return step('debug', 'Relaunch it without the debug policy bit', 'Its guest policy allows debugging, so the host could read its memory. Relaunch it without the debug bit.');
    case 'policy_migration_agent':
      return step(
        'migration-agent',
        'Relaunch without a migration agent, or allow one in the policy',
        'Its guest policy allows a migration agent. Relaunch it without one, or allow migration agents in the release policy (an admin change that needs a second admin).',
      );
    case 'denied_by_policy':
      return step(
        'policy',
        'Change the release policy if this event was expected, then reboot',
        'The release policy denies this kind of event. If it was expected, change the policy in Settings (an admin change), then reboot the guest so that it asks again.',
      );
    case 'denied_by_officer':
      return step('denied', 'Reboot it to ask again if the denial was a mistake', 'An officer denied its request (the audit log says why). If that was a mistake, reboot the guest: it asks again and the request appears on Approvals.');
    case 'request_expired':
      return step('expired', 'Reboot it to ask again, then decide on Approvals', 'Nobody decided its request in time. Reboot the guest so that it asks again, and decide the new request on Approvals.');
    case 'unexpected_event':
      return step(
        'unexpected',
        'Reboot it so that it asks again; decide on Approvals',
        'Its heartbeat showed a change that needs a new release (a new launch, chip or firmware). Reboot the guest so that it asks again, and decide the request on Approvals.',
      );
    case 'evidence_replayed':
    case 'report_data_mismatch':
    case 'nonce_unknown':
      return step(
        'replay',
        'Do not release: check the path between guest and console',
        'Someone replayed or altered the guest’s evidence. Do not release; check the network path between the guest and the console.',
      );
    case 'vm_revoked':
    case 'volume_revoked':
      return step('revoked', 'Reinstate it if the revocation was a mistake', 'It or its volume is revoked. Reinstate it if that was a mistake.');
    case 'volume_not_for_vm':
    case 'report_other_vm':
    case 'volume_unknown':
    case 'generation_unknown':
      return step('wrong-disk', 'Check that it boots its own image and disk', 'It asked for a disk or generation that is not its own. Check that the guest boots the right image with the right disk.');
  }
  if (/request expired/i.test(msg)) {
    return step('expired', 'Reboot it to ask again, then decide on Approvals', 'Nobody decided its request in time. Reboot the guest so that it asks again, and decide the new request on Approvals.');
  }
  if (/denied by /i.test(msg)) {
    return step('denied', 'Reboot it to ask again if the denial was a mistake', 'An officer denied its request (the audit log says why). If that was a mistake, reboot the guest: it asks again and the request appears on Approvals.');
  }
  return step('other', 'Open the guest to see its history', 'Open the history below: the newest refused attempt says what failed. Fix it on the guest or its host, then reboot it.');
}
