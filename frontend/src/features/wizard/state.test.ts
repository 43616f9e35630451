import { describe, expect, it } from 'vitest';
import type { DiskInfo } from '../../api';
import { ApiError } from '../../api';
import { canNext, initialState, running, sharesInvalid, Steps, wizardReducer, type WizardAction, type WizardState } from './state';

const disk = (over: Partial<DiskInfo> = {}): DiskInfo =>
  ({ format: 'raw', virtual_size: 1 << 20, file_size: 1 << 20, partition_table: 'none', partitions: [], ...over }) as DiskInfo;

const apply = (s: WizardState, ...as: WizardAction[]) => as.reduce(wizardReducer, s);
const m = 'ab'.repeat(48);

describe('wizard state', () => {
  it('starts strict: a recovery passphrase, no SMT, the fleet TCB as the minimum', () => {
    const s = initialState('PASS', { bootloader: 3, tee: 0, snp: 8, microcode: 115 });
    expect(s.recovery).toBe('passphrase');
    expect(s.passphrase).toBe('PASS');
    expect(s.allowSMT).toBe(false);
    expect(s.minTCB).toEqual({ bootloader: 3, tee: 0, snp: 8, microcode: 115 });
    expect(initialState('PASS', null).minTCB).toEqual({ bootloader: 0, tee: 0, snp: 0, microcode: 0 });
  });

  it('needs a confirmed raw disk before the first step is complete', () => {
    let s = apply(initialState('P', null), { type: 'source', source: ' /img/web-01.raw ' }, { type: 'inspecting' });
    expect(canNext(s)).toBe(false);
    s = wizardReducer(s, { type: 'inspected', disk: disk({ raw_warning: 'no partition table' }), baseName: 'web-01' });
    expect(s.name).toBe('web-01');
    expect(s.dest).not.toBe('');
    expect(canNext(s)).toBe(false);
    s = wizardReducer(s, { type: 'edit', patch: { rawConfirmed: true } });
    expect(canNext(s)).toBe(true);
    // A new source forgets the inspection.
    expect(wizardReducer(s, { type: 'source', source: '/img/other.raw' }).disk).toBeNull();
  });

  it('picks the OS mode when the image has a root partition, and keeps a name the officer typed', () => {
    const s = apply(initialState('P', null), { type: 'edit', patch: { name: 'mine' } }, { type: 'source', source: '/a.raw' }, { type: 'inspected', disk: disk({ root_partition: 2 }), baseName: 'a' });
    expect(s.mode).toBe('os');
    expect(s.name).toBe('mine');
  });

  it('asks again whether the recovery material was stored when the choice changes', () => {
    let s = apply(initialState('P', null), { type: 'goto', step: Steps.keys }, { type: 'edit', patch: { savedIt: true } });
    expect(canNext(s)).toBe(true);
    s = wizardReducer(s, { type: 'recovery', recovery: 'shares', fresh: 'FRESH' });
    expect(s.savedIt).toBe(false);
    expect(s.passphrase).toBe('P');
    expect(canNext(s)).toBe(false);
    s = apply(s, { type: 'shares', shares: ['a', 'b', 'c'] }, { type: 'edit', patch: { savedIt: true } });
    expect(canNext(s)).toBe(true);
    // Changing the threshold drops shares made for the old one.
    expect(wizardReducer(s, { type: 'share-params', m: 3 }).shares).toBeNull();
    expect(wizardReducer(s, { type: 'recovery', recovery: 'none', fresh: 'X' }).recovery).toBe('none');
  });

  it('gives a recovery keyslot a passphrase after it was forgotten', () => {
    const s = apply(initialState('', null), { type: 'recovery', recovery: 'passphrase', fresh: 'FRESH' });
    expect(s.passphrase).toBe('FRESH');
  });

  it('counts custodians shown and refuses a threshold above the shares', () => {
    let s = apply(initialState('P', null), { type: 'shares', shares: ['a', 'b', 'c'] }, { type: 'custodian', index: 2 }, { type: 'custodian', index: 1 });
    expect(s.custodian).toBe(1);
    expect(s.seen).toBe(2);
    s = wizardReducer(s, { type: 'share-params', m: 5 });
    expect(sharesInvalid(s)).toMatch(/any 5 of 3 could never rebuild/);
  });

  it('needs valid measurements unless the first boot captures them', () => {
    let s = apply(initialState('P', null), { type: 'goto', step: Steps.references });
    expect(canNext(s)).toBe(false);
    s = wizardReducer(s, { type: 'edit', patch: { measurementText: 'nothex' } });
    expect(canNext(s)).toBe(false);
    s = wizardReducer(s, { type: 'edit', patch: { measurementText: m } });
    expect(canNext(s)).toBe(true);
    expect(canNext(apply(s, { type: 'edit', patch: { measurementText: '', refChoice: 'first-boot' } }))).toBe(true);
  });

  it('runs, fails, and goes back to the output step to try again', () => {
    let s = apply(initialState('P', null), { type: 'goto', step: Steps.output }, { type: 'run-starting' });
    expect(s.starting).toBe(true);
    s = apply(s, { type: 'run-named', opID: 'op1' }, { type: 'run-start-ended' });
    expect(s.step).toBe(Steps.encrypt);
    expect(running(s)).toBe(true);
    s = wizardReducer(s, { type: 'run-failed', err: new ApiError('invalid', 'the output is the input') });
    expect(running(s)).toBe(false);
    s = wizardReducer(s, { type: 'retry' });
    expect(s).toMatchObject({ step: Steps.output, opID: null, runErr: null, progress: null });
  });

  it('forgets the passphrase once the image is ready', () => {
    const s = apply(initialState('SECRET', null), { type: 'finished', result: { output: '/o', manifest_path: '/o.json', manifest: {} } as never });
    expect(s.passphrase).toBe('');
  });
});
