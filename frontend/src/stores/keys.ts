import { api, Events } from '../api';
import { Resource, resourceFamily } from './resource';

export const volumeList = new Resource(() => api().keys.volumes(), [Events.keysChanged, Events.auditAppended]);

/** generationsOf lists the release-secret generations of one volume. */
export const generationsOf = resourceFamily((id: string) => api().keys.generations(id), [Events.keysChanged]);

/** officers are the console's officers and their roles. */
export const officers = new Resource(() => api().keys.officers(), [Events.keysChanged]);
