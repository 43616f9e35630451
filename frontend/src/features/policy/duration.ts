/**
 * durationError checks a duration the way Go's time.ParseDuration reads it
 * ("15m", "1h30m", "90s"; units ns, us, µs, ms, s, m, h) and returns a message
 * for the field, or null when it is valid. min and max bound it in seconds.
 */
export function durationError(v: string, { min, max }: { min?: number; max?: number } = {}): string | null {
  const s = v.trim();
  if (s === '') return 'Enter a duration, for example 15m or 1h30m.';
  const secs = parseDuration(s);
  if (secs === null) return `"${s}" is not a duration. Write a number with a unit: 90s, 15m, 1h30m.`;
  if (min !== undefined && secs < min) return `At least ${fmt(min)}.`;
  if (max !== undefined && secs > max) return `At most ${fmt(max)}.`;
  return null;
}

const units: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, μs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** parseDuration returns the seconds in a Go duration string, or null. */
export function parseDuration(s: string): number | null {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let total = 0;
  let n = 0;
  let m: RegExpExecArray | null;
  re.lastIndex = 0;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * units[m[2]];
    n++;
    if (re.lastIndex === s.length) return total;
  }
  return n > 0 && re.lastIndex === s.length ? total : null;
}

function fmt(secs: number): string {
  if (secs % 3600 === 0) return `${secs / 3600} h`;
  if (secs % 60 === 0) return `${secs / 60} min`;
  return `${secs} s`;
}

/** plainError drops the transport's "argument 2 of Service.Method: " prefix from a server message. */
export function plainError(msg: string): string {
  return msg.replace(/^argument \d+ of [\w.]+: /, '').replace(/^time: /, '');
}
