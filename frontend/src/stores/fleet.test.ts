import { describe, expect, it } from 'vitest';
import { makeClient, setClient, type Guest } from '../api';
import type { EventHandler, Transport } from '../api/transport';
import { comparator, filterGuests, FIRST_PAGE, FleetStore, patchOrder, SLICE } from './fleet';

function guest(id: string, patch: Partial<Guest> = {}): Guest {
  return {
    id,
    name: id,
    image_id: 'img_1',
    image_name: 'web-01',
    volume_id: 'vol_1',
    status: 'verified',
    product: 'Milan',
    chip_id: 'aa' + id,
    signer: 'VCEK',
    chip_identity: 'aa' + id,
    measurement: '00',
    tcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 },
    generation: 1,
    simulated: true,
    last_evidence_at: '2026-11-25T10:00:00Z',
    created_at: '2026-11-25T09:00:00Z',
    ...patch,
  };
}

class FakeTransport implements Transport {
  readonly kind = 'http' as const;
  handlers = new Map<string, Set<EventHandler>>();
  listCalls = 0;
  constructor(private list: Guest[]) {}
  asked: unknown[] = [];
  async call<T>(service: string, method: string, args: unknown[] = []): Promise<T> {
    if (service === 'Fleet' && method === 'List') {
      this.listCalls++;
      const f = (args[0] ?? {}) as { limit?: number; order?: string; after?: string };
      this.asked.push(f);
      if (f.order === 'id') {
        const byID = [...this.list].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).filter((g) => !f.after || g.id > f.after);
        return (f.limit ? byID.slice(0, f.limit) : byID) as T;
      }
      return (f.limit ? this.list.slice(0, f.limit) : this.list) as T;
    }
    throw new Error(`unexpected ${service}.${method}`);
  }
  on(event: string, h: EventHandler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(h);
    return () => this.handlers.get(event)!.delete(h);
  }
  emit(event: string, data: unknown) {
    this.handlers.get(event)?.forEach((h) => h(data));
  }
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('FleetStore', () => {
  it('applies a pushed guest without reloading the list', async () => {
    const t = new FakeTransport([guest('vm-1'), guest('vm-2')]);
    setClient(makeClient(t));
    const s = new FleetStore();
    const unsub = s.subscribe(() => {});
    await s.load();
    const calls = t.listCalls;
    expect(s.getState().guests.size).toBe(2);

    t.emit('fleet:changed', guest('vm-2', { status: 'failing' }));
    t.emit('fleet:changed', guest('vm-3', { status: 'pending' }));
    await tick(150);
    const g = s.getState().guests;
    expect(g.get('vm-2')?.status).toBe('failing');
    expect(g.get('vm-3')?.status).toBe('pending');
    expect(t.listCalls).toBe(calls);
    unsub();
  });

  it('loads the problems-first page, then the rest', async () => {
    const many = Array.from({ length: FIRST_PAGE + 5 }, (_, i) => guest(`vm-${i}`));
    const t = new FakeTransport(many);
    setClient(makeClient(t));
    const s = new FleetStore();
    const seen: { size: number; complete: boolean }[] = [];
    const unsub = s.subscribe(() => seen.push({ size: s.getState().guests.size, complete: s.getState().complete }));
    await s.load();
    expect(t.asked).toContainEqual({ order: 'attention', limit: FIRST_PAGE });
    expect(seen).toContainEqual({ size: FIRST_PAGE, complete: false });
    expect(s.getState()).toMatchObject({ loaded: true, complete: true });
    expect(s.getState().guests.size).toBe(FIRST_PAGE + 5);
    unsub();
  });

  it('reads a large fleet in slices by VM ID and shows it once whole', async () => {
    const n = 2 * SLICE + 7;
    const many = Array.from({ length: n }, (_, i) => guest(`vm-${String(i).padStart(6, '0')}`));
    const t = new FakeTransport(many);
    setClient(makeClient(t));
    const s = new FleetStore();
    const sizes: number[] = [];
    const unsub = s.subscribe(() => sizes.push(s.getState().guests.size));
    await s.load();
    expect(t.asked.slice(0, 2)).toEqual([{ limit: FIRST_PAGE }, { order: 'attention', limit: FIRST_PAGE }]);
    expect(t.asked.slice(2)).toEqual([
      { order: 'id', limit: SLICE, after: '' },
      { order: 'id', limit: SLICE, after: many[SLICE - 1].id },
      { order: 'id', limit: SLICE, after: many[2 * SLICE - 1].id },
    ]);
    // The first page, then the whole fleet: never a partial list.
    expect([...new Set(sizes)]).toEqual([0, FIRST_PAGE, n]);
    expect(s.getState()).toMatchObject({ loaded: true, complete: true });
    unsub();
  });

  it('tells a view which guests changed since it last looked', async () => {
    const t = new FakeTransport([guest('vm-1'), guest('vm-2'), guest('vm-3')]);
    setClient(makeClient(t));
    const s = new FleetStore();
    const unsub = s.subscribe(() => {});
    await s.load();
    const calls = t.listCalls;
    const v = s.getState().version;
    t.emit('fleet:changed', guest('vm-2', { status: 'failing' }));
    await tick(150);
    t.emit('fleet:changed', [guest('vm-3', { status: 'stale' }), guest('vm-4')]);
    await tick(150);
    expect(s.changedSince(v)?.sort()).toEqual(['vm-2', 'vm-3', 'vm-4']);
    expect(s.changedSince(s.getState().version)).toEqual([]);
    expect(s.getState().guests.get('vm-3')?.status).toBe('stale');
    expect(t.listCalls).toBe(calls);
    unsub();
  });

  it('reloads the list on an event without a guest', async () => {
    const t = new FakeTransport([guest('vm-1')]);
    setClient(makeClient(t));
    const s = new FleetStore();
    const unsub = s.subscribe(() => {});
    await s.load();
    const calls = t.listCalls;
    t.emit('fleet:changed', null);
    await tick(400);
    expect(t.listCalls).toBeGreaterThan(calls);
    unsub();
  });
});

describe('filterGuests', () => {
  const m = new Map(
    [
      guest('vm-a', { status: 'verified', last_evidence_at: '2026-11-25T10:00:00Z' }),
      guest('vm-b', { status: 'failing', image_name: 'db-02', last_evidence_at: '2026-11-25T11:00:00Z' }),
      guest('vm-c', { status: 'verified', chip_id: 'beef', last_evidence_at: null }),
    ].map((g) => [g.id, g]),
  );
  it.each([
    [{ status: '', search: '' }, ['vm-b', 'vm-a', 'vm-c']],
    [{ status: 'verified', search: '' }, ['vm-a', 'vm-c']],
    [{ status: '', search: 'DB-0' }, ['vm-b']],
    [{ status: '', search: 'beef' }, ['vm-c']],
    [{ status: 'failing', search: 'beef' }, []],
  ] as const)('%j', (q, want) => {
    expect(filterGuests(m, q).map((g) => g.id)).toEqual(want);
  });
});

describe('fleet order', () => {
  it('puts problems first: failing, pending, stale, then verified', async () => {
    const { sortGuests } = await import('./fleet');
    const rows = [
      guest('v1', { status: 'verified', last_evidence_at: '2026-11-25T12:00:00Z' }),
      guest('s1', { status: 'stale' }),
      guest('p1', { status: 'pending' }),
      guest('f1', { status: 'failing', last_evidence_at: '2026-11-25T08:00:00Z' }),
    ];
    expect(sortGuests(rows, { key: 'attention', desc: false }).map((g) => g.id)).toEqual(['f1', 'p1', 's1', 'v1']);
    expect(sortGuests(rows, { key: 'name', desc: true }).map((g) => g.id)).toEqual(['v1', 's1', 'p1', 'f1']);
  });
  it('moves only the changed rows of a view into place', () => {
    const gs = new Map(
      [
        guest('a', { last_evidence_at: '2026-11-25T10:00:04Z' }),
        guest('b', { last_evidence_at: '2026-11-25T10:00:03Z' }),
        guest('c', { last_evidence_at: '2026-11-25T10:00:02Z' }),
        guest('d', { last_evidence_at: '2026-11-25T10:00:01Z' }),
      ].map((g) => [g.id, g]),
    );
    const newest = comparator({ key: 'evidence', desc: true });
    const q = { status: '' as const, search: '' };
    // c heartbeats: it moves to the top; the others keep their order.
    gs.set('c', guest('c', { last_evidence_at: '2026-11-25T10:00:09Z' }));
    expect(patchOrder(['a', 'b', 'c', 'd'], ['c'], gs, q, newest, false)).toEqual(['c', 'a', 'b', 'd']);
    // While the officer looks, it stays where it is; a new guest is appended.
    gs.set('e', guest('e', { last_evidence_at: '2026-11-25T10:00:10Z' }));
    expect(patchOrder(['a', 'b', 'c', 'd'], ['c', 'e'], gs, q, newest, true)).toEqual(['a', 'b', 'c', 'd', 'e']);
    // A guest that no longer matches the filter leaves the view.
    gs.set('b', guest('b', { status: 'failing' }));
    expect(patchOrder(['a', 'b', 'd'], ['b'], gs, { status: 'verified', search: '' }, newest, false)).toEqual(['a', 'd']);
  });

  it('keeps the order the officer looks at and appends new rows', async () => {
    const { keepOrder } = await import('./fleet');
    const fresh = [guest('c'), guest('a', { status: 'failing' }), guest('d'), guest('b')];
    const out = keepOrder(['a', 'b', 'c', 'gone'], fresh);
    expect(out.map((g) => g.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(out[0].status).toBe('failing');
  });
});
