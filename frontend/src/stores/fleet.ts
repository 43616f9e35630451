import { useEffect, useSyncExternalStore } from 'react';
import { api, ApiError, Events, type Guest, type GuestStatus } from '../api';
import { Resource } from './resource';

export const fleetSummary = new Resource(() => api().fleet.summary(), [Events.fleetChanged], 1000);

export interface FleetState {
  /** guests by ID; replaced (not mutated) on every change so React sees it. */
  guests: Map<string, Guest>;
  loaded: boolean;
  loading: boolean;
  error: ApiError | null;
  /** receivedAt maps a guest ID to when its last pushed change arrived (ms). */
  version: number;
}

/**
 * FleetStore keeps every guest in memory and applies pushed changes one by
 * one: a `fleet:changed` event carrying a guest replaces that row; one
 * without data (or a resync) reloads the whole list. Filtering and search run
 * on the client, so a 10,000-guest fleet is loaded once, not per keystroke.
 */
export class FleetStore {
  private state: FleetState = { guests: new Map(), loaded: false, loading: false, error: null, version: 0 };
  private listeners = new Set<() => void>();
  private unsubs: (() => void)[] = [];
  private pending = new Map<string, Guest>();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private reloadTimer: ReturnType<typeof setTimeout> | null = null;

  getState = () => this.state;

  subscribe = (fn: () => void) => {
    this.listeners.add(fn);
    if (this.listeners.size === 1) {
      this.unsubs = [
        api().on(Events.fleetChanged, (d) => this.onChange(d)),
        api().on(Events.resync, () => this.scheduleReload()),
      ];
    }
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) {
        this.unsubs.forEach((u) => u());
        this.unsubs = [];
      }
    };
  };

  private set(patch: Partial<FleetState>) {
    this.state = { ...this.state, ...patch };
    this.listeners.forEach((l) => l());
  }

  load = async () => {
    if (this.state.loading) return;
    this.set({ loading: true });
    try {
      const list = await api().fleet.list({});
      const m = new Map<string, Guest>();
      for (const g of list) m.set(g.id, g);
      this.set({ guests: m, loaded: true, loading: false, error: null, version: this.state.version + 1 });
    } catch (e) {
      this.set({ loading: false, error: e instanceof ApiError ? e : new ApiError('internal', String(e)) });
    }
  };

  private scheduleReload() {
    if (this.reloadTimer) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      void this.load();
    }, 300);
  }

  /** onChange batches pushed guests and applies them at most every 100 ms. */
  onChange(data: unknown) {
    const g = data as Guest | null;
    if (!g || typeof g !== 'object' || typeof g.id !== 'string') {
      this.scheduleReload();
      return;
    }
    this.pending.set(g.id, g);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), 100);
    }
  }

  flush() {
    this.flushTimer = null;
    if (this.pending.size === 0) return;
    const m = new Map(this.state.guests);
    for (const [id, g] of this.pending) m.set(id, g);
    this.pending.clear();
    this.set({ guests: m, version: this.state.version + 1 });
  }
}

export const fleet = new FleetStore();

export function useFleet(): FleetState & { reload: () => Promise<void> } {
  const s = useSyncExternalStore(fleet.subscribe, fleet.getState);
  useEffect(() => {
    if (!s.loaded && !s.loading && !s.error) void fleet.load();
  }, [s.loaded, s.loading, s.error]);
  return { ...s, reload: fleet.load };
}

export interface FleetQuery {
  status: GuestStatus | '';
  search: string;
}

/** filterGuests returns the guests matching q, sorted by sort (default: most recently seen first). */
export function filterGuests(guests: Map<string, Guest>, q: FleetQuery, sort?: FleetSort): Guest[] {
  const s = q.search.trim().toLowerCase();
  const out: Guest[] = [];
  for (const g of guests.values()) {
    if (q.status && g.status !== q.status) continue;
    if (
      s &&
      !g.id.toLowerCase().includes(s) &&
      !g.name.toLowerCase().includes(s) &&
      !g.image_name.toLowerCase().includes(s) &&
      !g.chip_id.toLowerCase().includes(s)
    )
      continue;
    out.push(g);
  }
  if (sort) return sortGuests(out, sort);
  out.sort((a, b) => {
    const ta = a.last_evidence_at ?? '';
    const tb = b.last_evidence_at ?? '';
    if (ta !== tb) return ta < tb ? 1 : -1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  });
  return out;
}

/** The orders the fleet table offers; `attention` (problems first) is the default. */
export type SortKey = 'attention' | 'name' | 'status' | 'image' | 'generation' | 'evidence' | 'reason';
export interface FleetSort {
  key: SortKey;
  desc: boolean;
}

/** rank orders statuses by how much they need an officer: failing first, verified last. */
const rank: Record<string, number> = { failing: 0, pending: 1, stale: 2, revoked: 3, verified: 4 };

const byID = (a: Guest, b: Guest) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
const newest = (a: Guest, b: Guest) => {
  const ta = a.last_evidence_at ?? '';
  const tb = b.last_evidence_at ?? '';
  return ta === tb ? 0 : ta < tb ? 1 : -1;
};
const text = (f: (g: Guest) => string) => (a: Guest, b: Guest) => f(a).localeCompare(f(b));

/**
 * sortGuests sorts rows in place by s and returns them. `attention` puts
 * failing and pending guests first, then stale, then verified, newest
 * evidence first within each; ties fall back to the VM ID so the order is
 * total (the same input always gives the same order).
 */
export function sortGuests(rows: Guest[], s: FleetSort): Guest[] {
  let cmp: (a: Guest, b: Guest) => number;
  switch (s.key) {
    case 'name':
      cmp = text((g) => g.name || g.id);
      break;
    case 'status':
      cmp = (a, b) => (rank[a.status] ?? 9) - (rank[b.status] ?? 9);
      break;
    case 'image':
      cmp = text((g) => g.image_name);
      break;
    case 'generation':
      cmp = (a, b) => a.generation - b.generation;
      break;
    case 'evidence':
      cmp = (a, b) => -newest(a, b);
      break;
    case 'reason':
      cmp = text((g) => g.reason ?? '');
      break;
    default:
      cmp = (a, b) => (rank[a.status] ?? 9) - (rank[b.status] ?? 9) || newest(a, b);
  }
  const dir = s.desc ? -1 : 1;
  return rows.sort((a, b) => dir * cmp(a, b) || byID(a, b));
}

/**
 * keepOrder lays fresh (already filtered and sorted) rows out in the order
 * the officer is looking at (prev, a list of IDs): rows still there keep
 * their place, with their current data; new rows are appended. It is how
 * the table stays still under the pointer.
 */
export function keepOrder(prev: string[], fresh: Guest[]): Guest[] {
  const byId = new Map<string, Guest>();
  for (const g of fresh) byId.set(g.id, g);
  const out: Guest[] = [];
  for (const id of prev) {
    const g = byId.get(id);
    if (g) {
      out.push(g);
      byId.delete(id);
    }
  }
  for (const g of fresh) if (byId.has(g.id)) out.push(g);
  return out;
}
