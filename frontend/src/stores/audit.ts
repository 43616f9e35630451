import { api, Events, type AuditQuery } from '../api';
import { Resource } from './resource';

const cache = new Map<string, Resource<Awaited<ReturnType<ReturnType<typeof api>['audit']['list']>>>>();

export function auditList(q: AuditQuery) {
  const key = JSON.stringify(q);
  let r = cache.get(key);
  if (!r) {
    r = new Resource(() => api().audit.list(q), [Events.auditAppended]);
    cache.set(key, r);
  }
  return r;
}
