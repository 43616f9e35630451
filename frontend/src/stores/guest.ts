import { api, Events } from '../api';
import { resourceFamily } from './resource';

/** guestOf is one guest's detail (evidence, history, requests), reloaded when the fleet changes. */
export const guestOf = resourceFamily((id: string) => api().fleet.guest(id), [Events.fleetChanged], 500);
