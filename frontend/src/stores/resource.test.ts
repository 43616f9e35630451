import { describe, expect, it } from 'vitest';
import { ApiError, setClient, makeClient } from '../api';
import type { EventHandler, Transport } from '../api/transport';
import { parseWailsError } from '../api/transport';
import { Resource } from './resource';

class FakeTransport implements Transport {
  readonly kind = 'http' as const;
  handlers = new Map<string, Set<EventHandler>>();
  async call<T>(): Promise<T> {
    throw new Error('not used');
  }
  on(event: string, h: EventHandler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event)!.add(h);
    return () => this.handlers.get(event)!.delete(h);
  }
  emit(event: string) {
    this.handlers.get(event)?.forEach((h) => h(null));
  }
}

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe('Resource', () => {
  it('loads, keeps data on a failed reload, and reloads on its event', async () => {
    const t = new FakeTransport();
    setClient(makeClient(t));
    let n = 0;
    let fail = false;
    const r = new Resource(async () => {
      if (fail) throw new ApiError('unavailable', 'busy');
      return ++n;
    }, ['fleet:changed'], 10);
    const unsub = r.subscribe(() => {});
    await r.reload();
    expect(r.getState()).toMatchObject({ data: 1, error: null, loading: false });

    fail = true;
    await r.reload();
    expect(r.getState().data).toBe(1);
    expect(r.getState().error?.code).toBe('unavailable');

    fail = false;
    t.emit('fleet:changed');
    t.emit('fleet:changed'); // coalesced with the first
    await tick(40);
    expect(r.getState()).toMatchObject({ data: 2, error: null });

    unsub();
    t.emit('fleet:changed');
    await tick(40);
    expect(r.getState().data).toBe(2); // no listeners, no reload
  });

  it('reloads when a subscriber comes back after events it could not hear', async () => {
    const t = new FakeTransport();
    setClient(makeClient(t));
    let n = 0;
    const r = new Resource(async () => ++n, ['audit:appended'], 10);
    let unsub = r.subscribe(() => {});
    await r.reload();
    unsub();
    t.emit('audit:appended'); // nobody listens: missed
    await tick(40);
    expect(r.getState().data).toBe(1);
    unsub = r.subscribe(() => {});
    expect(r.getState().data).toBe(1); // the last data at once...
    await tick(40);
    expect(r.getState().data).toBe(2); // ...then current
    unsub();
  });

  it('collapses overlapping reloads into one follow-up', async () => {
    setClient(makeClient(new FakeTransport()));
    let calls = 0;
    const r = new Resource(async () => {
      calls++;
      await tick(5);
      return calls;
    });
    await Promise.all([r.reload(), r.reload(), r.reload()]);
    await tick(20);
    expect(calls).toBe(2);
    expect(r.getState().data).toBe(2);
  });
});

describe('parseWailsError', () => {
  it('recovers code and message from the Go error string', () => {
    const e = parseWailsError('not_found: volume vol_1 does not exist');
    expect(e.code).toBe('not_found');
    expect(e.message).toBe('volume vol_1 does not exist');
  });
  it('treats anything else as internal', () => {
    const e = parseWailsError(new Error('Something broke'));
    expect(e.code).toBe('internal');
    expect(e.message).toBe('Something broke');
  });
});
