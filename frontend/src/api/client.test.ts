import { describe, expect, it } from 'vitest';
import { makeClient } from './client';
import type { Transport } from './transport';
import served from './methods.json';

// methods.json is Handler.Methods() as the Go test TestMethodsMatchFrontendList
// writes and checks it: a method the console serves that the client cannot
// call, or a call to a method it does not serve, fails here.
describe('client method list', () => {
  it('calls exactly the methods the console serves', async () => {
    const called: string[] = [];
    const recorder: Transport = {
      kind: 'http',
      call: async <T,>(service: string, method: string) => {
        called.push(`${service}.${method}`);
        return undefined as T;
      },
      on: () => () => {},
    };
    const client = makeClient(recorder) as unknown as Record<string, unknown>;
    for (const [group, fns] of Object.entries(client)) {
      if (typeof fns !== 'object' || fns === null) continue;
      for (const [name, fn] of Object.entries(fns)) {
        expect(typeof fn, `${group}.${name}`).toBe('function');
        await (fn as (...a: unknown[]) => Promise<unknown>)();
      }
    }
    expect([...called].sort()).toEqual([...served].sort());
    expect(new Set(called).size).toBe(called.length);
  });
});
