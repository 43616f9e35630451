import type { ApiErrorBody } from './types';

/** ApiError is every failed call: a stable code and a message safe to show. */
export class ApiError extends Error {
  constructor(
    public readonly code: string,
    message: string,
    /** field names the argument the message is about ("reason"), when the console said so. */
    public readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
  static from(body: ApiErrorBody): ApiError {
    return new ApiError(body.code, body.message, body.field);
  }
}

export type EventHandler = (data: unknown) => void;

/**
 * Transport carries calls to the Go services and events back. The desktop
 * uses Wails' bindings and runtime events; the browser uses HTTP + SSE.
 * Screens never see a transport: they use the typed client in client.ts.
 */
export interface Transport {
  readonly kind: 'wails' | 'http';
  call<T>(service: string, method: string, args: unknown[]): Promise<T>;
  /** on subscribes to a named event and returns the unsubscribe function. */
  on(event: string, handler: EventHandler): () => void;
  /** reconnect re-establishes the event stream after the session changed. */
  reconnect?(): void;
}

/** parseWailsError turns Wails' "code: message" rejection back into an ApiError. */
export function parseWailsError(err: unknown): ApiError {
  const text = typeof err === 'string' ? err : err instanceof Error ? err.message : String(err);
  const m = /^([a-z_]+): ([\s\S]*)$/.exec(text);
  if (m) return new ApiError(m[1], m[2]);
  return new ApiError('internal', text);
}
