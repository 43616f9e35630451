import { api, Events, type AuditQuery } from '../api';
import { resourceFamily } from './resource';

export const auditList = resourceFamily((q: AuditQuery) => api().audit.list(q), [Events.auditAppended]);
