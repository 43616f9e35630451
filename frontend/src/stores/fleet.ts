import { useEffect, useSyncExternalStore } from 'react';
import { api, ApiError, Events, type Guest, type GuestStatus } from '../api';
import { Resource } from './resource';

export const fleetSummary = new Resource(() => api().fleet.summary(), [Events.fleetChanged], 1000);

export interface FleetState {
  /** guests by ID. Pushed changes update this Map in place; `version` says it changed. */
  guests: Map<string, Guest>;
  /** loaded: the first rows are in (the problems-first page at least). */
  loaded: boolean;
  /** complete: every guest is in (the rest loads in the background after the first page). */
  complete: boolean;
  loading: boolean;
  error: ApiError | null;
  /** version counts every change; loadVersion only those that replaced the whole list. */
  version: number;
  loadVersion: number;
}

/** FIRST_PAGE is how many problems-first guests the first request asks for, so first rows paint at once in a large fleet. */
export const FIRST_PAGE = 300;

/**
 * SLICE is how many guests each further request reads, in VM ID order after
 * the previous slice: the browser parses a few megabytes at a time between
 * heartbeats, never one list of the whole fleet, and the server reads each
 * slice from the primary key without sorting the fleet.
 */
export const SLICE = 5000;

/** How many recent batches of pushed changes the store remembers for changedSince. */
const LOG = 64;

/**
 * FleetStore keeps every guest in memory and applies pushed changes one by
 * one: a `fleet:changed` event carrying a guest (or an array of guests)
 * replaces those rows; one without data (or a resync) reloads the whole
 * list. The first load asks for the problems-first page (and the most
 * recently seen page beside it), then reads the
 * whole fleet in slices (SLICE, by VM ID) in the background and shows it
 * once complete, so the view sorts a large fleet once. Filtering and sorting run on the client; a view keeps
 * its order and moves only the changed rows (changedSince), so a heartbeat
 * in a 100,000-guest fleet costs a few rows, not a sort of the fleet.
 */
export class FleetStore {
  private state: FleetState = { guests: new Map(), loaded: false, complete: false, loading: false, error: null, version: 0, loadVersion: 0 };
  private listeners = new Set<() => void>();
  private unsubs: (() => void)[] = [];
  private pending = new Map<string, Guest>();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private reloadTimer: ReturnType<typeof setTimeout> | null = null;
  private log: { version: number; ids: string[] }[] = [];
  /** guests pushed while a full load runs; applied over its (possibly older) answer. */
  private duringLoad: Map<string, Guest> | null = null;

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

  private replace(list: Guest[], complete: boolean) {
    const m = new Map<string, Guest>();
    for (const g of list) m.set(g.id, g);
    if (this.duringLoad) for (const [id, g] of this.duringLoad) m.set(id, g);
    this.log = [];
    this.set({ guests: m, loaded: true, complete, error: null, version: this.state.version + 1, loadVersion: this.state.loadVersion + 1 });
  }

  load = async () => {
    if (this.state.loading) return;
    this.set({ loading: true });
    this.duringLoad = new Map();
    try {
      if (!this.state.loaded) {
        // The problems first, and beside them the most recently seen
        // guests, so a view sorted by evidence shows the live guests
        // before the whole fleet is in.
        const newestP = api().fleet.list({ limit: FIRST_PAGE });
        newestP.catch(() => {}); // awaited below unless the first page fails
        const first = await api().fleet.list({ order: 'attention', limit: FIRST_PAGE });
        if (first.length < FIRST_PAGE) {
          this.replace(first, true);
          return;
        }
        this.replace(first, false);
        const newest = await newestP;
        this.replace([...first, ...newest], false);
      }
      this.replace(await this.readSlices(), true);
    } catch (e) {
      this.set({ error: e instanceof ApiError ? e : new ApiError('internal', String(e)) });
    } finally {
      this.duringLoad = null;
      this.set({ loading: false });
    }
  };

  /**
   * readSlices reads every guest, SLICE at a time in VM ID order; each
   * slice starts after the last ID of the one before, so each guest that
   * exists throughout comes once (those changed meanwhile arrive pushed, in
   * duringLoad). Awaiting each slice lets heartbeats in between.
   */
  private async readSlices(): Promise<Guest[]> {
    const all: Guest[] = [];
    let after = '';
    for (;;) {
      const part = await api().fleet.list({ order: 'id', limit: SLICE, after });
      for (const g of part) all.push(g);
      if (part.length < SLICE) return all;
      after = part[part.length - 1].id;
    }
  }

  private scheduleReload() {
    if (this.reloadTimer) return;
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      void this.load();
    }, 300);
  }

  /** onChange batches pushed guests (one, or an array) and applies them at most every 100 ms. */
  onChange(data: unknown) {
    const list = Array.isArray(data) ? (data as Guest[]) : [data as Guest | null];
    for (const g of list) {
      if (!g || typeof g !== 'object' || typeof g.id !== 'string') {
        this.scheduleReload();
        return;
      }
    }
    for (const g of list as Guest[]) {
      this.pending.set(g.id, g);
      this.duringLoad?.set(g.id, g);
    }
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), 100);
    }
  }

  flush() {
    this.flushTimer = null;
    if (this.pending.size === 0) return;
    const m = this.state.guests;
    for (const [id, g] of this.pending) m.set(id, g);
    const version = this.state.version + 1;
    this.log.push({ version, ids: [...this.pending.keys()] });
    if (this.log.length > LOG) this.log.shift();
    this.pending.clear();
    this.set({ version });
  }

  /**
   * changedSince returns the IDs of the guests changed by pushes after
   * version v, or null when the store cannot tell (the list was replaced,
   * or too many batches passed): then a view must be rebuilt.
   */
  changedSince(v: number): string[] | null {
    if (v === this.state.version) return [];
    const i = this.log.findIndex((e) => e.version === v + 1);
    if (i < 0) return null;
    const ids = new Set<string>();
    for (const e of this.log.slice(i)) for (const id of e.ids) ids.add(id);
    return [...ids];
  }
}

export const fleet = new FleetStore();

export function useFleet(): FleetState & { reload: () => Promise<void>; changedSince: (v: number) => string[] | null } {
  const s = useSyncExternalStore(fleet.subscribe, fleet.getState);
  useEffect(() => {
    if (!s.loaded && !s.loading && !s.error) void fleet.load();
  }, [s.loaded, s.loading, s.error]);
  return { ...s, reload: fleet.load, changedSince: fleet.changedSince.bind(fleet) };
}

export interface FleetQuery {
  status: GuestStatus | '';
  search: string;
}

/** matches is true when g passes q's status and search. */
export function matches(g: Guest, q: FleetQuery): boolean {
  if (q.status && g.status !== q.status) return false;
  const s = q.search.trim().toLowerCase();
  return (
    !s ||
    g.id.toLowerCase().includes(s) ||
    g.name.toLowerCase().includes(s) ||
    g.image_name.toLowerCase().includes(s) ||
    g.chip_id.toLowerCase().includes(s)
  );
}

/** filterGuests returns the guests matching q, sorted by sort (default: most recently seen first). */
export function filterGuests(guests: Map<string, Guest>, q: FleetQuery, sort?: FleetSort): Guest[] {
  const out: Guest[] = [];
  for (const g of guests.values()) if (matches(g, q)) out.push(g);
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
  return rows.sort(comparator(s));
}

/** comparator is the total order of s (ties fall back to the VM ID). */
export function comparator(s: FleetSort): (a: Guest, b: Guest) => number {
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
  return (a, b) => dir * cmp(a, b) || byID(a, b);
}

/**
 * patchOrder moves the changed guests of a view in place, without sorting
 * the rest: order holds the view's IDs in order; each changed guest is
 * taken out and, when it still matches q, put back where cmp places it (a
 * binary search). While the officer looks (frozen), rows keep their places
 * and only new matching guests are appended. It returns order, changed.
 */
export function patchOrder(
  order: string[],
  changed: string[],
  guests: Map<string, Guest>,
  q: FleetQuery,
  cmp: (a: Guest, b: Guest) => number,
  frozen: boolean,
): string[] {
  for (const id of changed) {
    const g = guests.get(id);
    const at = order.indexOf(id);
    if (frozen) {
      if (at < 0 && g && matches(g, q)) order.push(id);
      continue;
    }
    if (at >= 0) order.splice(at, 1);
    if (!g || !matches(g, q)) continue;
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const other = guests.get(order[mid]);
      if (other && cmp(other, g) <= 0) lo = mid + 1;
      else hi = mid;
    }
    order.splice(lo, 0, id);
  }
  return order;
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
