import { api, Events, type FleetFilter } from '../api';
import { Resource } from './resource';

export const fleetSummary = new Resource(() => api().fleet.summary(), [Events.fleetChanged]);

const lists = new Map<string, Resource<Awaited<ReturnType<ReturnType<typeof api>['fleet']['list']>>>>();

/** fleetList returns the (cached) resource for one filter. */
export function fleetList(filter: FleetFilter) {
  const key = JSON.stringify(filter);
  let r = lists.get(key);
  if (!r) {
    r = new Resource(() => api().fleet.list(filter), [Events.fleetChanged]);
    lists.set(key, r);
  }
  return r;
}
