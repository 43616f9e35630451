import { useEffect, useSyncExternalStore } from 'react';
import { api, ApiError } from '../api';

export interface ResourceState<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
}

/**
 * Resource holds one piece of server state: it loads on first use, reloads
 * when one of its events arrives (coalesced, at most every `minInterval` ms)
 * and keeps the last good data while a reload runs. Events are only heard
 * while someone subscribes, so a screen the officer comes back to shows
 * its last data at once and reloads it (it may have missed events).
 */
export class Resource<T> {
  private state: ResourceState<T> = { data: undefined, error: null, loading: false };
  private listeners = new Set<() => void>();
  private unsubs: (() => void)[] = [];
  private inflight: Promise<void> | null = null;
  private again = false;
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly events: string[] = [],
    private readonly minInterval = 250,
  ) {}

  getState = () => this.state;

  subscribe = (fn: () => void) => {
    this.listeners.add(fn);
    if (this.listeners.size === 1) {
      this.unsubs = [...this.events, 'resync'].map((e) => api().on(e, () => this.schedule()));
      if (this.state.data !== undefined || this.state.error) this.schedule();
    }
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) {
        this.unsubs.forEach((u) => u());
        this.unsubs = [];
      }
    };
  };

  private set(patch: Partial<ResourceState<T>>) {
    this.state = { ...this.state, ...patch };
    this.listeners.forEach((l) => l());
  }

  private schedule() {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.reload();
    }, this.minInterval);
  }

  /** reload fetches now; overlapping calls collapse into one follow-up fetch. */
  reload = async (): Promise<void> => {
    if (this.inflight) {
      this.again = true;
      return this.inflight;
    }
    this.set({ loading: true });
    this.inflight = (async () => {
      try {
        const data = await this.load();
        this.set({ data, error: null, loading: false });
      } catch (e) {
        const err = e instanceof ApiError ? e : new ApiError('internal', String(e));
        this.set({ error: err, loading: false });
      } finally {
        this.inflight = null;
        if (this.again) {
          this.again = false;
          void this.reload();
        }
      }
    })();
    return this.inflight;
  };
}

/** useResource subscribes a component to r and loads it on first use. */
export function useResource<T>(r: Resource<T>): ResourceState<T> & { reload: () => Promise<void> } {
  const state = useSyncExternalStore(r.subscribe, r.getState);
  useEffect(() => {
    if (state.data === undefined && !state.loading && !state.error) void r.reload();
  }, [r, state.data, state.loading, state.error]);
  return { ...state, reload: r.reload };
}

/** resourceFamily makes one Resource per key (a volume's generations, a guest), created on first use. */
export function resourceFamily<K, T>(load: (key: K) => Promise<T>, events: string[] = [], minInterval?: number): (key: K) => Resource<T> {
  const cache = new Map<string, Resource<T>>();
  return (key: K) => {
    const k = JSON.stringify(key);
    let r = cache.get(k);
    if (!r) {
      r = new Resource(() => load(key), events, minInterval);
      cache.set(k, r);
    }
    return r;
  };
}
