import { api, Events, type AuditQuery } from '../api';
import { Resource, resourceFamily } from './resource';

export const auditList = resourceFamily((q: AuditQuery) => api().audit.list(q), [Events.auditAppended]);

/** auditChain is the verification of the whole hash chain and its signed checkpoints. */
export const auditChain = new Resource(() => api().audit.verify(), [Events.auditAppended], 2000);
