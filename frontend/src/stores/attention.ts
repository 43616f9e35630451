import { notifications } from '@mantine/notifications';
import { api, Events, type ReleaseRequest } from '../api';

/**
 * watchApprovals draws attention to new approval requests: an in-app
 * notification, and in the browser a system notification when the officer
 * allowed them (the desktop app raises its native one from Go).
 */
export function watchApprovals(open: (id: string) => void): () => void {
  const seen = new Set<string>();
  return api().on(Events.approvalsChanged, (d) => {
    const r = d as ReleaseRequest | null;
    if (!r || r.status !== 'pending' || seen.has(r.id)) return;
    seen.add(r.id);
    const title = 'Approval needed';
    const body = `${r.vm_id} asks for its disk key (${r.class.replace(/_/g, ' ')})${r.simulated ? ' — SIMULATED' : ''}.`;
    notifications.show({
      id: `req-${r.id}`,
      color: 'yellow',
      title,
      message: body,
      autoClose: 10_000,
      onClick: () => open(r.id),
      style: { cursor: 'pointer' },
    });
    if (api().transport === 'http' && typeof Notification !== 'undefined' && Notification.permission === 'granted') {
      const n = new Notification(`Keyholder: ${title}`, { body, tag: r.id });
      n.onclick = () => {
        window.focus();
        open(r.id);
      };
    }
  });
}

/** canAskForBrowserNotifications is true in the web console before the officer decided. */
export function canAskForBrowserNotifications(): boolean {
  return api().transport === 'http' && typeof Notification !== 'undefined' && Notification.permission === 'default';
}
