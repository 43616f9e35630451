import { describe, expect, it } from 'vitest';
import { riskColor, riskOf, shortChip } from './risk';

describe('riskOf', () => {
  it('calls a restore to an older generation a rollback, high risk, not green', () => {
    const r = riskOf({ class: 'restore', vm_id: 'vm-1', generation: 1, current_generation: 2 });
    expect(r.sentence).toContain('rolls the disk back to generation 1 of 2: data written since is gone');
    expect(r.level).toBe('high');
    expect(riskColor[r.level]).not.toBe('teal');
    expect(r.verb).toBe('Approve rollback');
  });
  it('says a migration moves the VM to a chip it never ran on, by short name', () => {
    const id = 'ab'.repeat(32);
    const r = riskOf({ class: 'migration', vm_id: 'vm-1', generation: 1, chip_id: id, new_chip: true });
    expect(r.sentence).toContain('moves this VM to a chip it has never run on (ababab…abab)');
    expect(r.sentence).not.toContain(id);
  });
  it('says a first boot pins the measurement as reference values', () => {
    const r = riskOf({ class: 'first_boot', vm_id: 'vm-1', generation: 1, measurement: 'c0ffee'.repeat(16) });
    expect(r.sentence).toContain("pins measurement c0ffeec0ffee… as the image's reference values");
  });
  it("uses the console's pins sentence, measurement shortened", () => {
    const m = 'ab'.repeat(48);
    const r = riskOf({ class: 'first_boot', vm_id: 'v', generation: 1, pins: `Approving this first boot pins measurement ${m} as the reference values of image web: from then on only…` });
    expect(r.sentence).toBe('Approving this first boot pins measurement abababababab… as the reference values of image web.');
  });
  it('raises an unapproved measurement to high risk', () => {
    expect(riskOf({ class: 'first_boot', vm_id: 'v', generation: 1, measurement_unapproved: true }).level).toBe('high');
  });
});

describe('shortChip', () => {
  it('prefers an officer-given name, else first and last digits', () => {
    expect(shortChip('0123456789abcdef'.repeat(8), 'rack-3 genoa')).toBe('rack-3 genoa');
    expect(shortChip('0123456789abcdef'.repeat(8))).toBe('012345…cdef');
    expect(shortChip('(another chip)')).toBe('(another chip)');
    expect(shortChip('')).toBe('—');
  });
});
