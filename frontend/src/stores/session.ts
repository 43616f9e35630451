import { useEffect, useSyncExternalStore } from 'react';
import { api, ApiError, Events, type SessionState } from '../api';

interface State {
  session: SessionState | null;
  error: ApiError | null;
}

/**
 * SessionStore mirrors the officer session. It refreshes on session:changed
 * events and whenever a call answers "unauthorized" (the session locked or
 * ended elsewhere), and reports activity so the session does not idle-lock
 * while someone works.
 */
class SessionStore {
  private state: State = { session: null, error: null };
  private listeners = new Set<() => void>();
  private started = false;
  private lastTouch = 0;

  getState = () => this.state;
  subscribe = (fn: () => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  set(session: SessionState | null, error: ApiError | null = null) {
    const was = this.state.session;
    const open = (x: SessionState | null) => !!x && x.logged_in && !x.locked;
    // The event stream is refused without a session; reopen it once there is one.
    if (session && open(session) && !open(was)) api().reconnect();
    this.state = { session, error };
    this.listeners.forEach((l) => l());
  }

  start() {
    if (this.started) return;
    this.started = true;
    api().on(Events.sessionChanged, () => void this.refresh());
    void this.refresh();
    const touch = () => {
      const s = this.state.session;
      if (!s?.logged_in || s.locked) return;
      const now = Date.now();
      if (now - this.lastTouch < 30_000) return;
      this.lastTouch = now;
      api()
        .session.touch()
        .then((st) => this.set(st))
        .catch(() => {});
    };
    for (const ev of ['pointerdown', 'keydown']) window.addEventListener(ev, touch, { passive: true });
    // Notice an idle lock without waiting for the next click.
    setInterval(() => {
      if (this.state.session?.logged_in && !this.state.session.locked) void this.refresh();
    }, 30_000);
  }

  refresh = async () => {
    try {
      this.set(await api().session.state());
    } catch (e) {
      this.set(this.state.session, e instanceof ApiError ? e : new ApiError('internal', String(e)));
    }
  };

  /** freshEnough says whether the last authentication still counts as recent. */
  freshEnough(): boolean {
    const s = this.state.session;
    return !!s && !!s.fresh_until && new Date(s.fresh_until).getTime() - Date.now() > 5_000;
  }
}

export const session = new SessionStore();

export function useSession(): State {
  const s = useSyncExternalStore(session.subscribe, session.getState);
  useEffect(() => session.start(), []);
  return s;
}
