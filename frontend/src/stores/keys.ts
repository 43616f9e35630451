import { api, Events } from '../api';
import { Resource } from './resource';

export const volumeList = new Resource(() => api().keys.volumes(), [Events.keysChanged, Events.auditAppended]);
