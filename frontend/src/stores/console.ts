import { api } from '../api';
import { Resource } from './resource';

export const consoleInfo = new Resource(() => api().console.info());

/** releaseAPI is where guests reach the console and the pin they check it by. */
export const releaseAPI = new Resource(() => api().fleet.releaseAPI());
