// The fleet as an officer triages it (issue 15, item 3): problems first,
// count cards that filter, sortable columns, a reason for each failure, and
// rows that stay still under the pointer. Runs on `keyholder demo --web`.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, loginDemo, screenshot, startConsole } from './harness.mjs';

let ks, browser, page;
const rank = { failing: 0, pending: 1, stale: 2, revoked: 3, verified: 4 };

before(async () => {
  ks = await startConsole(['demo', '--web', '--guests', '40']);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(150_000);
  await loginDemo(page, ks);
});

after(async () => {
  await browser?.close();
  await ks?.stop();
});

/** rows returns the rendered rows in screen order. */
const rows = () =>
  page.$$eval('[data-testid="fleet-row"]', (els) =>
    els
      .map((r) => ({
        id: r.getAttribute('data-guest'),
        status: r.getAttribute('data-status'),
        y: r.getBoundingClientRect().top,
        name: r.querySelector('p')?.textContent ?? '',
        reason: r.querySelector('[data-testid="fleet-reason"]')?.textContent ?? '',
      }))
      .sort((a, b) => a.y - b.y),
  );

test('problems come first by default, failing guests say why', async () => {
  // Wait until the demo has guests that need attention and verified ones.
  await page.locator('[data-testid="fleet-row"][data-status="verified"]').first().waitFor();
  await page.locator('[data-testid="fleet-row"][data-status="failing"], [data-testid="fleet-row"][data-status="pending"]').first().waitFor();
  await page.mouse.move(5, 5); // not over the table: the order follows the data
  await page.waitForTimeout(500);
  const r = await rows();
  for (let i = 1; i < r.length; i++) {
    assert.ok(rank[r[i - 1].status] <= rank[r[i].status], `row ${i} (${r[i].status}) after ${r[i - 1].status}: ${r.map((x) => x.status)}`);
  }
  assert.ok(r[0].status === 'failing' || r[0].status === 'pending', `first row is ${r[0].status}`);
  await screenshot(page, 'fleet-problems-first');
});

test('a count card filters the table; a failing row names its reason', async () => {
  await page.locator('[data-testid="fleet-row"][data-status="failing"]').first().waitFor();
  await page.getByTestId('counter-failing').click();
  assert.equal(await page.getByTestId('counter-failing').getAttribute('aria-pressed'), 'true');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="fleet-row"]')].every((r) => r.getAttribute('data-status') === 'failing'));
  const r = await rows();
  assert.ok(r.length > 0);
  for (const x of r) assert.ok(x.reason.trim() !== '' && x.reason !== '—', `failing ${x.id} shows no reason`);
  await screenshot(page, 'fleet-failing-filter');
  await page.getByTestId('counter-total').click();
  await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="fleet-row"]')].some((r) => r.getAttribute('data-status') !== 'failing'));
});

test('columns sort on click, both ways', async () => {
  await page.getByTestId('sort-name').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="fleet-table"]')?.getAttribute('data-sort') === 'name');
  await page.mouse.move(5, 5);
  let r = await rows();
  const names = r.map((x) => x.name);
  assert.deepEqual(names, [...names].sort((a, b) => a.localeCompare(b)), 'sorted by name');
  await page.getByTestId('sort-name').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="fleet-table"]')?.getAttribute('data-sort') === 'name:desc');
  r = await rows();
  const desc = r.map((x) => x.name);
  assert.deepEqual(desc, [...desc].sort((a, b) => b.localeCompare(a)), 'sorted by name, descending');
});

test('rows stay still under the pointer while the fleet changes', async () => {
  await page.getByTestId('sort-evidence').click(); // newest evidence first: heartbeats reorder it all the time
  await page.waitForFunction(() => document.querySelector('[data-testid="fleet-table"]')?.getAttribute('data-sort') === 'evidence:desc');
  const box = await page.getByTestId('fleet-table').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + 200);
  const before = (await rows()).map((x) => x.id);
  // The demo's guests heartbeat every few seconds: without the pointer the
  // order changes (checked below), under it it must not.
  const deadline = Date.now() + 6000;
  while (Date.now() < deadline) {
    await page.mouse.move(box.x + box.width / 2, box.y + 200 + (Date.now() % 3));
    const now = (await rows()).map((x) => x.id);
    assert.deepEqual(now.slice(0, before.length), before.slice(0, now.length), 'rows moved under the pointer');
    await page.waitForTimeout(300);
  }
  // Pointer gone: the table takes the newest order again.
  await page.mouse.move(5, 5);
  await page.waitForFunction(
    (prev) => [...document.querySelectorAll('[data-testid="fleet-row"]')].sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top).map((r) => r.getAttribute('data-guest')).join() !== prev,
    before.join(),
    { polling: 250, timeout: 60_000 },
  );
});
