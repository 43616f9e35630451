import { api } from '../api';
import { Resource } from './resource';

export const consoleInfo = new Resource(() => api().console.info());
