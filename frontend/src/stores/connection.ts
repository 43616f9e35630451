import { useSyncExternalStore } from 'react';
import { api, ApiError, Events, type ConnectionInfo, type ConnectionState } from '../api';
import { desktop, hasWails } from '../api/wails';
import { session } from './session';

interface State {
  /** null until the desktop answered (always null in a browser). */
  info: ConnectionInfo | null;
  error: ApiError | null;
  /** restored is true for a while after a lost connection came back. */
  restored: boolean;
}

/** How long "connected again" stays on screen. */
const restoredFor = 6_000;

/**
 * ConnectionStore mirrors which console the desktop window talks to and,
 * for a shared console, whether it can be reached (connection:changed
 * events from the Go side, which reconnects by itself).
 */
class ConnectionStore {
  private state: State = { info: null, error: null, restored: false };
  private listeners = new Set<() => void>();
  private started = false;
  private restoredTimer: ReturnType<typeof setTimeout> | undefined;

  getState = () => this.state;
  subscribe = (fn: () => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  private set(patch: Partial<State>) {
    this.state = { ...this.state, ...patch };
    this.listeners.forEach((l) => l());
  }

  start() {
    if (this.started || !hasWails()) return;
    this.started = true;
    api().on(Events.connectionChanged, (data) => this.changed(data as ConnectionState));
    void this.refresh();
  }

  refresh = async () => {
    try {
      this.set({ info: await desktop.connection(), error: null });
    } catch (e) {
      this.set({ error: e instanceof ApiError ? e : new ApiError('internal', String(e)) });
    }
  };

  /** apply sets what the desktop answered to a choice. */
  apply(info: ConnectionInfo) {
    this.set({ info, error: null });
  }

  private changed(s: ConnectionState) {
    const info = this.state.info;
    if (!info || info.mode !== 'remote') return;
    const wasDown = info.state ? !info.state.connected : false;
    const restored = wasDown && s.connected;
    clearTimeout(this.restoredTimer);
    if (restored) this.restoredTimer = setTimeout(() => this.set({ restored: false }), restoredFor);
    this.set({ info: { ...info, state: s }, restored: restored || (this.state.restored && s.connected) });
    // The console may have restarted meanwhile (its sessions live in its
    // memory): ask again whether this window's session is still open.
    if (restored) void session.refresh();
  }
}

export const connection = new ConnectionStore();

export function useConnection(): State {
  const s = useSyncExternalStore(connection.subscribe, connection.getState);
  connection.start();
  return s;
}
