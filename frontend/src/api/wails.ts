import { parseWailsError, type EventHandler, type Transport } from './transport';

type Bound = Record<string, Record<string, (...args: unknown[]) => Promise<unknown>>>;

interface WailsWindow {
  go?: { app?: Bound };
  runtime?: {
    EventsOn(name: string, cb: (...data: unknown[]) => void): () => void;
  };
}

/** hasWails is true inside the desktop app's window. */
export function hasWails(): boolean {
  const w = window as unknown as WailsWindow;
  return !!w.go?.app && !!w.runtime;
}

/** WailsTransport calls the bound Go services directly and listens to runtime events. */
export class WailsTransport implements Transport {
  readonly kind = 'wails' as const;

  async call<T>(service: string, method: string, args: unknown[]): Promise<T> {
    const fn = (window as unknown as WailsWindow).go?.app?.[service]?.[method];
    if (!fn) throw parseWailsError(`not_found: ${service}.${method} is not bound`);
    try {
      return (await fn(...args)) as T;
    } catch (err) {
      throw parseWailsError(err);
    }
  }

  on(event: string, handler: EventHandler): () => void {
    const rt = (window as unknown as WailsWindow).runtime!;
    return rt.EventsOn(event, (data: unknown) => handler(data));
  }
}
