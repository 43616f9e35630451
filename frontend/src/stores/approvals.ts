import { api, Events } from '../api';
import { Resource } from './resource';

export const pendingRequests = new Resource(() => api().approvals.pending(), [Events.approvalsChanged]);

/**
 * openAdminActions are the custody actions under the two-person rule that
 * wait for admins (pending) or for their requester to collect a secret
 * result (approved), newest first.
 */
export const openAdminActions = new Resource(async () => {
  const [pending, approved] = await Promise.all([api().approvals.adminActions('pending'), api().approvals.adminActions('approved')]);
  return [...pending, ...approved].sort((a, b) => b.created_at.localeCompare(a.created_at));
}, [Events.adminActionsChanged, Events.keysChanged]);

/** quorumStatus says what each admin action needs now, and whether one person can do everything. */
export const quorumStatus = new Resource(() => api().approvals.quorumStatus(), [Events.adminActionsChanged, Events.keysChanged]);

/** expiredRequests are the requests nobody decided in time, newest first. */
export const expiredRequests = new Resource(() => api().approvals.list('expired'), [Events.approvalsChanged]);

/** defaultPolicy is the release policy for images without one of their own. */
export const defaultPolicy = new Resource(() => api().approvals.policy(''));
