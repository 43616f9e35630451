import { api, Events } from '../api';
import { Resource, resourceFamily } from './resource';

export const imageList = new Resource(() => api().images.list(), [Events.progress]);

/** referencesOf lists an image's reference values versions, newest first. */
export const referencesOf = resourceFamily((id: string) => api().images.references(id), [Events.auditAppended]);
