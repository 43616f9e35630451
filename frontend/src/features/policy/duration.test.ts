import { describe, expect, it } from 'vitest';
import { durationError, parseDuration, plainError } from './duration';

describe('durationError', () => {
  it('accepts what Go accepts', () => {
    expect(parseDuration('15m0s')).toBe(900);
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('1.5s')).toBe(1.5);
    expect(durationError('15m')).toBeNull();
  });
  it('names the problem on the field', () => {
    expect(durationError('fifteen')).toMatch(/is not a duration/);
    expect(durationError('15')).toMatch(/is not a duration/);
    expect(durationError('15m x')).toMatch(/is not a duration/);
    expect(durationError('')).toMatch(/Enter a duration/);
    expect(durationError('10s', { min: 60 })).toBe('At least 1 min.');
  });
  it('strips the transport prefix from server messages', () => {
    expect(plainError('argument 2 of Approvals.SetPolicy: time: invalid duration "x"')).toBe('invalid duration "x"');
  });
});
