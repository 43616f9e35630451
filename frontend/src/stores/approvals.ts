import { api, Events } from '../api';
import { Resource } from './resource';

export const pendingRequests = new Resource(() => api().approvals.pending(), [Events.approvalsChanged]);
