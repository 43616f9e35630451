import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// The frontend's layout rules, checked on the source: screens compose
// features and stores but never import each other, and server state lives
// in stores/, not inside a screen or a feature component.
const root = join(__dirname);

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return files(p);
    return /\.tsx?$/.test(f) && !/\.test\.tsx?$/.test(f) ? [p] : [];
  });
}

describe('frontend layout', () => {
  it('screens do not import each other', () => {
    const bad = files(join(root, 'screens')).filter((f) => /from '\.\/|from '\.\.\/screens\//.test(readFileSync(f, 'utf8')));
    expect(bad).toEqual([]);
  });
  it('nothing outside screens imports a screen except the app shell', () => {
    const bad = files(root).filter((f) => !f.includes('/screens/') && !f.endsWith('App.tsx') && /from '[./]*\/screens\//.test(readFileSync(f, 'utf8')));
    expect(bad).toEqual([]);
  });
  it('server state is made in stores/ only', () => {
    const bad = [...files(join(root, 'screens')), ...files(join(root, 'features')), ...files(join(root, 'components'))].filter((f) =>
      /new Resource\(|resourceFamily\(/.test(readFileSync(f, 'utf8')),
    );
    expect(bad).toEqual([]);
  });
});
