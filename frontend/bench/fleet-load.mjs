// UI load benchmark (run by bench/ui.sh): a console with a large SIMULATED
// fleet, measured in Debian's Chromium through playwright-core:
//  - time from navigation to the fleet table's first rows,
//  - how long after the console received a heartbeat its row changes in the
//    table (the row's data-evidence-at is the console's receive time),
//  - the page's JS heap after a GC.
// Prints one JSON object. Usage: node bench/fleet-load.mjs URL OFFICER PASSPHRASE [SECONDS]
import { chromium } from 'playwright-core';

const [url, officer, pass, secs = '45'] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.setDefaultTimeout(120_000);
await page.goto(url + '/');
await page.getByTestId('login-name').fill(officer);
await page.getByTestId('login-pass').fill(pass);
await page.getByTestId('login-submit').click();
await page.getByTestId('officer-menu').waitFor();

// Navigation to first rows, three times (a fresh document each time).
const firstRows = [];
for (let i = 0; i < 3; i++) {
  await page.goto(url + '/settings');
  await page.getByTestId('console-info').waitFor();
  await page.goto(url + '/fleet');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="fleet-row"]').length > 0, null, { polling: 'raf' });
  firstRows.push(await page.evaluate(() => performance.now()));
}
const rows = Number(await page.getByTestId('fleet-table').getAttribute('data-rows'));

// Heartbeat to table: watch rows whose evidence time changes. The default
// order puts problems first (seeded guests that never heartbeat); newest
// evidence first brings the live guests into view. The pointer stays off
// the table, so rows are free to move.
await page.mouse.move(2, 2);
await page.getByTestId('sort-evidence').click();
await page.waitForFunction(() => document.querySelector('[data-testid="fleet-table"]')?.getAttribute('data-sort') === 'evidence:desc');
await page.evaluate(() => {
  const seen = new Map();
  for (const r of document.querySelectorAll('[data-testid="fleet-row"]')) seen.set(r.getAttribute('data-guest'), r.getAttribute('data-evidence-at'));
  window.__lat = [];
  const check = () => {
    for (const r of document.querySelectorAll('[data-testid="fleet-row"]')) {
      const id = r.getAttribute('data-guest');
      const at = r.getAttribute('data-evidence-at');
      if (at && seen.get(id) !== at) {
        seen.set(id, at);
        window.__lat.push({ id, status: r.getAttribute('data-status'), ms: Date.now() - Date.parse(at) });
      }
    }
  };
  new MutationObserver(check).observe(document.querySelector('[data-testid="fleet-table"]'), { subtree: true, childList: true, attributes: true });
});
await page.waitForTimeout(Number(secs) * 1000);
const lat = (await page.evaluate(() => window.__lat)).map((x) => x.ms).sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] : null);

const cdp = await page.context().newCDPSession(page);
await cdp.send('HeapProfiler.collectGarbage');
const heap = await cdp.send('Runtime.getHeapUsage');

console.log(
  JSON.stringify({
    rows,
    first_rows_ms: firstRows.map((x) => Math.round(x)),
    heartbeat_to_table_ms: { samples: lat.length, p50: q(0.5), p95: q(0.95), max: lat.length ? lat[lat.length - 1] : null },
    js_heap_mb: Math.round((heap.usedSize / 1048576) * 10) / 10,
  }),
);
await browser.close();
