import { notifications } from '@mantine/notifications';
import type { AdminOutcome, BackupFile } from '../../api';
import { openAdminActions } from '../../stores/approvals';

/**
 * notifyOutcome tells the admin what became of a call under the two-person
 * rule: done (title/message given), or waiting for other admins on the
 * Approvals screen. It returns whether the change took effect.
 */
export function notifyOutcome(out: AdminOutcome, title: string, message: string): boolean {
  void openAdminActions.reload();
  if (out.done) {
    notifications.show({ color: 'teal', title, message });
    return true;
  }
  const a = out.action;
  const got = (a.votes ?? []).length;
  notifications.show({
    color: 'blue',
    title: 'Waiting for a second admin',
    message:
      a.status === 'approved'
        ? `${a.summary}: approved; collect it on the Approvals screen.`
        : `${a.summary}: ${got} of ${a.approvals_needed} approvals. Another admin approves it on the Approvals screen (two-person rule).`,
  });
  return false;
}

/** downloadBackup hands an encrypted backup to the browser. */
export function downloadBackup(f: BackupFile) {
  const bytes = Uint8Array.from(atob(f.data), (ch) => ch.charCodeAt(0));
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = f.name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
