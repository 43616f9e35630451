import { describe, expect, it } from 'vitest';
import { parseReferenceInput } from './ReferenceEditor';

const m1 = 'ab'.repeat(48);
const m2 = 'CD'.repeat(48);

describe('parseReferenceInput', () => {
  it('takes measurements one per line or comma-separated, keeping the other fields of the newest version', () => {
    const latest = { measurements: ['00'.repeat(48)], minimum_tcb: { bootloader: 3, tee: 0, snp: 8, microcode: 115 }, allow_migration_agent: false, allow_smt: true, require_single_socket: false };
    const v = parseReferenceInput(`${m1}\n ${m2},`, latest);
    expect(v.measurements).toEqual([m1, m2.toLowerCase()]);
    expect(v.minimum_tcb.snp).toBe(8);
    expect(v.allow_smt).toBe(true);
    expect(latest.measurements).toHaveLength(1);
    expect(parseReferenceInput(m1).minimum_tcb).toEqual({ bootloader: 0, tee: 0, snp: 0, microcode: 0 });
  });
  it('takes a reference values file', () => {
    const v = parseReferenceInput(JSON.stringify({ measurements: [m1], minimum_tcb: { bootloader: 1, tee: 0, snp: 2, microcode: 3 }, product: 'Genoa' }));
    expect(v.product).toBe('Genoa');
  });
  it('refuses what is not a measurement, with a message', () => {
    expect(() => parseReferenceInput('')).toThrow(/at least one measurement/);
    expect(() => parseReferenceInput('abcd')).toThrow(/96 hex digits/);
    expect(() => parseReferenceInput('{"measurements": [')).toThrow(/not JSON/);
    expect(() => parseReferenceInput('{"measurements": []}')).toThrow(/no measurements/);
  });
});
