import { parseWailsError, type EventHandler, type Transport } from './transport';

type BridgeCall = (token: string, service: string, method: string, args: unknown[]) => Promise<unknown>;

interface WailsWindow {
  go?: { app?: { Bridge?: { Call?: BridgeCall } } };
  runtime?: {
    EventsOn(name: string, cb: (...data: unknown[]) => void): () => void;
  };
}

/** hasWails is true inside the desktop app's window. */
export function hasWails(): boolean {
  const w = window as unknown as WailsWindow;
  return !!w.go?.app?.Bridge && !!w.runtime;
}

/**
 * WailsTransport sends every call through the desktop's one bound object,
 * app.Bridge, with this window's session token, and listens to runtime
 * events. The token lives only in this object's memory: Session.Login and
 * Session.Setup hand it over, Session.Logout forgets it. The Go side
 * resolves the calling officer from it; the window never names one.
 */
export class WailsTransport implements Transport {
  readonly kind = 'wails' as const;
  private token = '';

  async call<T>(service: string, method: string, args: unknown[]): Promise<T> {
    const fn = (window as unknown as WailsWindow).go?.app?.Bridge?.Call;
    if (!fn) throw parseWailsError(`not_found: the desktop bridge is not bound`);
    let result: unknown;
    try {
      result = await fn(this.token, service, method, args);
    } catch (err) {
      throw parseWailsError(err);
    }
    if (service === 'Session') {
      if (method === 'Login' || method === 'Setup') {
        const st = result as { token?: string } | null;
        if (st?.token) {
          this.token = st.token;
          delete st.token;
        }
      } else if (method === 'Logout') {
        this.token = '';
      }
    }
    return result as T;
  }

  on(event: string, handler: EventHandler): () => void {
    const rt = (window as unknown as WailsWindow).runtime!;
    return rt.EventsOn(event, (data: unknown) => handler(data));
  }
}
