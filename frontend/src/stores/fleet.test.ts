import { describe, expect, it } from 'vitest';
import { makeClient, setClient, type Guest } from '../api';
import type { EventHandler, Transport } from '../api/transport';
import { filterGuests, FleetStore } from './fleet';

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
  async call<T>(service: string, method: string): Promise<T> {
    if (service === 'Fleet' && method === 'List') {
      this.listCalls++;
      return this.list as T;
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
    expect(s.getState().guests.size).toBe(2);

    t.emit('fleet:changed', guest('vm-2', { status: 'failing' }));
    t.emit('fleet:changed', guest('vm-3', { status: 'pending' }));
    await tick(150);
    const g = s.getState().guests;
    expect(g.get('vm-2')?.status).toBe('failing');
    expect(g.get('vm-3')?.status).toBe('pending');
    expect(t.listCalls).toBe(1);
    unsub();
  });

  it('reloads the list on an event without a guest', async () => {
    const t = new FakeTransport([guest('vm-1')]);
    setClient(makeClient(t));
    const s = new FleetStore();
    const unsub = s.subscribe(() => {});
    await s.load();
    t.emit('fleet:changed', null);
    await tick(400);
    expect(t.listCalls).toBe(2);
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
  it('keeps the order the officer looks at and appends new rows', async () => {
    const { keepOrder } = await import('./fleet');
    const fresh = [guest('c'), guest('a', { status: 'failing' }), guest('d'), guest('b')];
    const out = keepOrder(['a', 'b', 'c', 'gone'], fresh);
    expect(out.map((g) => g.id)).toEqual(['a', 'b', 'c', 'd']);
    expect(out[0].status).toBe('failing');
  });
});
