import { api, Events } from '../api';
import { Resource } from './resource';

export const imageList = new Resource(() => api().images.list(), [Events.progress]);
