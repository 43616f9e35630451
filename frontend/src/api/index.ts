import { makeClient, type Client } from './client';
import { HttpTransport } from './http';
import { hasWails, WailsTransport } from './wails';

export * from './client';
export * from './types';
export { ApiError } from './transport';

let client: Client | null = null;

/** api returns the client, choosing the transport once at start-up. */
export function api(): Client {
  if (!client) client = makeClient(hasWails() ? new WailsTransport() : new HttpTransport());
  return client;
}

/** setClient replaces the client (component tests use a fake transport). */
export function setClient(c: Client) {
  client = c;
}
