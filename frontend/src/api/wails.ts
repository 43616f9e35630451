import { parseWailsError, type EventHandler, type Transport } from './transport';
import type { ConnectionInfo } from './types';

type BridgeCall = (token: string, service: string, method: string, args: unknown[]) => Promise<unknown>;

/** DesktopBridge is app.Bridge as Wails binds it to the window. */
interface DesktopBridge {
  Call?: BridgeCall;
  Connection?: () => Promise<ConnectionInfo>;
  UseLocal?: () => Promise<ConnectionInfo>;
  Connect?: (url: string, pin: string, caFile: string) => Promise<ConnectionInfo>;
  Forget?: () => Promise<ConnectionInfo>;
  Watch?: (token: string) => Promise<void>;
  PickCAFile?: () => Promise<string>;
}

interface WailsWindow {
  go?: { app?: { Bridge?: DesktopBridge } };
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
        void bridge()?.Watch?.('');
      }
    }
    return result as T;
  }

  /** reconnect follows a shared console's events with this window's session (a no-op for a local console). */
  reconnect() {
    void bridge()?.Watch?.(this.token);
  }

  on(event: string, handler: EventHandler): () => void {
    const rt = (window as unknown as WailsWindow).runtime!;
    return rt.EventsOn(event, (data: unknown) => handler(data));
  }
}

function bridge(): DesktopBridge | undefined {
  return (window as unknown as WailsWindow).go?.app?.Bridge;
}

async function bridgeCall<T>(fn: ((...a: string[]) => Promise<T>) | undefined, ...args: string[]): Promise<T> {
  if (!fn) throw parseWailsError('not_found: the desktop bridge is not bound');
  try {
    return await fn(...args);
  } catch (err) {
    throw parseWailsError(err);
  }
}

/**
 * desktop chooses the desktop window's console: this computer's own, or a
 * shared one (keyholder serve) reached over TLS pinned on the Go side.
 */
export const desktop = {
  connection: () => bridgeCall<ConnectionInfo>(bridge()?.Connection),
  useLocal: () => bridgeCall<ConnectionInfo>(bridge()?.UseLocal),
  connect: (url: string, pin: string, caFile: string) => bridgeCall<ConnectionInfo>(bridge()?.Connect, url, pin, caFile),
  forget: () => bridgeCall<ConnectionInfo>(bridge()?.Forget),
  pickCAFile: () => bridgeCall<string>(bridge()?.PickCAFile),
};
