import { notifications } from '@mantine/notifications';
import { api, Events, type ReleaseRequest } from '../api';

const WAITING = 'approvals-waiting';
let shownCount = 0;
let dismissed = new Set<string>(); // ids the officer saw when closing the notice

/** waitingMessage is the grouped notice's text for the requests that wait. */
export function waitingMessage(list: Pick<ReleaseRequest, 'vm_id' | 'class'>[]): string {
  if (list.length === 1) return `${list[0].vm_id} asks for its disk key (${list[0].class.replace(/_/g, ' ')}).`;
  return `${list.length} requests wait for a decision.`;
}

/**
 * showWaiting keeps one in-app notice for all waiting requests ("3 requests
 * wait"): it follows the pending list, so a decided request leaves it and the
 * notice goes once nothing waits. An empty list hides it.
 */
export function showWaiting(list: ReleaseRequest[], open: () => void): void {
  if (list.length === 0 || list.every((r) => dismissed.has(r.id))) {
    const was = shownCount;
    shownCount = 0;
    if (was > 0) notifications.hide(WAITING);
    return;
  }
  dismissed = new Set();
  const n = {
    id: WAITING,
    color: 'yellow',
    title: list.length === 1 ? 'A request waits' : `${list.length} requests wait`,
    message: waitingMessage(list),
    autoClose: false as const,
    onClick: open,
    onClose: () => {
      if (shownCount > 0) dismissed = new Set(list.map((r) => r.id));
      shownCount = 0;
    },
    style: { cursor: 'pointer' },
    'data-testid': 'waiting-toast',
    'data-count': list.length,
  };
  if (shownCount > 0) notifications.update(n);
  else notifications.show(n);
  shownCount = list.length;
}

/**
 * watchApprovals raises a system notification in the browser for each new
 * approval request when the officer allowed them (the desktop app raises its
 * native one from Go); the in-app notice is showWaiting's.
 */
export function watchApprovals(open: (id: string) => void): () => void {
  const seen = new Set<string>();
  return api().on(Events.approvalsChanged, (d) => {
    const r = d as ReleaseRequest | null;
    if (!r || r.status !== 'pending' || seen.has(r.id)) return;
    seen.add(r.id);
    const title = 'Approval needed';
    const body = `${r.vm_id} asks for its disk key (${r.class.replace(/_/g, ' ')})${r.simulated ? ' — SIMULATED' : ''}.`;
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
