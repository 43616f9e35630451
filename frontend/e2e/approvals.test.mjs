// The Approvals screen as a careful officer uses it, on the SIMULATED demo
// fleet (issue 15): keyboard shortcuts never decide a request that is not
// fully on screen, each request says in plain words what approving means,
// waiting requests fit on one screen, notices are grouped and stay off the
// controls, everything is reachable and named, and axe-core finds no serious
// accessibility violation on any screen.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { launchBrowser, loginDemo, screenshot, startConsole } from './harness.mjs';

const require = createRequire(import.meta.url);
// Evaluated through the browser's debugging protocol: the console's CSP forbids inline scripts, as it should.
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

let ks, browser, page;

before(async () => {
  ks = await startConsole(['demo', '--web', '--guests', '25']);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(150_000);
  await loginDemo(page, ks);
  // The demo's scenario: first boots, a migration, then a restore from an old generation.
  await page.goto(ks.url + '/approvals');
  await page.locator('[data-testid="approval-card"][data-class="restore"]').waitFor({ timeout: 240_000 });
  await page.locator('[data-testid="approval-card"][data-class="migration"]').first().waitFor();
});

after(async () => {
  await browser?.close();
  await ks?.stop();
});

/** call runs one API call with the page's session, as the console does. */
const call = (name, ...args) =>
  page.evaluate(
    async ([n, a]) => {
      const r = await fetch('/api/call/' + n, { method: 'POST', body: JSON.stringify(a), headers: { 'X-Keyholder-Client': '1', 'Content-Type': 'application/json' } });
      return (await r.json()).result;
    },
    [name, args],
  );

/** visible is true when the element is entirely inside the viewport, below the fixed header. */
const visible = (loc) =>
  loc.evaluate((el) => {
    const r = el.getBoundingClientRect();
    const header = document.querySelector('header')?.getBoundingClientRect().bottom ?? 0;
    return r.height > 0 && r.top >= header && r.bottom <= window.innerHeight;
  });

const selectedCard = () => page.locator('[data-testid="approval-card"][aria-current="true"]');

test('Approvals opens at its top, also when coming from a scrolled guest page', async () => {
  const id = await page.getByTestId('approval-card').first().locator('h4').first().innerText();
  await page.goto(`${ks.url}/fleet/${encodeURIComponent(id.trim())}`);
  await page.getByTestId('guest-history').waitFor();
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  assert.ok((await page.evaluate(() => window.scrollY)) > 0, 'the guest page scrolls');
  // A short viewport so that the list is taller than the screen.
  await page.setViewportSize({ width: 1400, height: 500 });
  await page.getByTestId('nav-approvals').click();
  await page.getByTestId('approval-card').first().waitFor();
  assert.equal(await page.evaluate(() => window.scrollY), 0, 'Approvals must open at the top');
});

test('j/k move an unmistakable selection that scrolls into view', async () => {
  await page.setViewportSize({ width: 1400, height: 500 });
  const n = await page.getByTestId('approval-card').count();
  assert.ok(n >= 4, `${n} cards`);
  await page.locator('body').click({ position: { x: 5, y: 5 } });
  for (let i = 0; i < n; i++) await page.keyboard.press('j');
  const last = page.getByTestId('approval-card').nth(n - 1);
  assert.equal(await last.getAttribute('aria-current'), 'true', 'the last card is selected after n × j');
  assert.ok(await visible(last), 'the selected card scrolled into view');
  const outline = await last.evaluate((el) => {
    const cs = getComputedStyle(el);
    return { style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
  });
  assert.ok(outline.style !== 'none' && outline.width >= 2, `selection outline ${JSON.stringify(outline)}`);
  for (let i = 0; i < n; i++) await page.keyboard.press('k');
  const first = page.getByTestId('approval-card').first();
  assert.equal(await first.getAttribute('aria-current'), 'true');
  assert.ok(await visible(first), 'k scrolls the first card back into view');
  assert.equal(await selectedCard().count(), 1, 'exactly one card is selected');
});

test('a shortcut never decides a card that is not fully on screen', async () => {
  await page.setViewportSize({ width: 1400, height: 300 });
  const card = selectedCard();
  const id = await card.getAttribute('data-request');
  await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  assert.equal(await visible(card), false, 'precondition: the selected card is off screen');
  await page.keyboard.press('d');
  await page.getByTestId('shortcut-refused').waitFor({ timeout: 10_000 });
  const r = await call('Approvals/Get', id);
  assert.equal(r.status, 'pending', `the off-screen request was decided: ${r.status}`);
  assert.ok(await visible(card), 'the refused shortcut brings the card into view for a second look');
  await screenshot(page, 'approvals-shortcut-refused');
});

test('each request says what approving means; a rollback is not green; chips have short names', async () => {
  await page.setViewportSize({ width: 1400, height: 900 });
  const restore = page.locator('[data-testid="approval-card"][data-class="restore"]').first();
  assert.match(await restore.getByTestId('risk-sentence').innerText(), /rolls the disk back to generation 1 of 2: data written since is gone/);
  assert.equal(await restore.getAttribute('data-risk'), 'high');
  const bg = await restore.getByTestId('approve').evaluate((b) => getComputedStyle(b).backgroundColor);
  const [r, g] = bg.match(/\d+/g).map(Number);
  assert.ok(r > g, `the rollback's approve button is ${bg}, not a warning colour`);
  // A migration between two known chips (not the VLEK guest, whose chip is unknown).
  const migration = page.locator('[data-testid="approval-card"][data-class="migration"]', { hasNot: page.getByTestId('chip-identity-vlek') }).first();
  assert.match(await migration.getByTestId('risk-sentence').innerText(), /moves this VM to a chip it has never run on/);
  const firstBoot = page.locator('[data-testid="approval-card"][data-class="first_boot"]').first();
  assert.match(await firstBoot.getByTestId('risk-sentence').innerText(), /pins measurement [0-9a-f]{12}… as the (image's )?reference values/);
  // No 64-digit hex wall anywhere on the cards; the full chip ID is on hover.
  for (const text of await page.getByTestId('approval-card').allInnerTexts()) assert.doesNotMatch(text, /[0-9a-f]{64}/);
  const chip = migration.locator('[data-testid="change-summary"] [title]').first();
  assert.match(await chip.getAttribute('title'), /^[0-9a-f]{128}$/);
  await screenshot(page, 'approvals-risk');
});

test('a restore shows its disk generation on the guest page, not "Nothing changed"', async () => {
  const restore = page.locator('[data-testid="approval-card"][data-class="restore"]').first();
  const vm = (await restore.locator('h4').first().innerText()).trim();
  await page.goto(`${ks.url}/fleet/${encodeURIComponent(vm)}`);
  const diff = page.getByTestId('evidence-diff');
  await diff.waitFor();
  await page.waitForFunction(() => /Disk generation/.test(document.querySelector('[data-testid="evidence-diff"]')?.textContent ?? ''));
  const text = await diff.innerText();
  assert.doesNotMatch(text, /Nothing changed/);
  assert.match(text, /Disk generation\s+2\s+1/);
  await page.getByTestId('nav-approvals').click();
  await page.getByTestId('approval-card').first().waitFor();
});

test('ten waiting first boots fit on a 1400×900 screen', async () => {
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.evaluate(() => window.scrollTo(0, 0));
  const cards = page.getByTestId('approval-card');
  // Cards without a warning (competing claims, a VLEK chip) are two lines each: ten first boots fit below the page header.
  const plain = page.locator('[data-testid="approval-card"][data-class="first_boot"]', { hasNot: page.locator('.mantine-Alert-root') });
  assert.ok((await plain.count()) >= 1, 'a first boot with nothing to compare waits');
  const room = await page.evaluate(() => window.innerHeight - document.querySelector('[data-testid="approval-list"]').getBoundingClientRect().top);
  const [a, b] = [await cards.nth(0).boundingBox(), await cards.nth(1).boundingBox()];
  const gap = b.y - (a.y + a.height);
  const firstBoot = await plain.first().boundingBox();
  const need = 10 * firstBoot.height + 9 * gap;
  assert.ok(need <= room, `a first-boot card is ${firstBoot.height}px; ten need ${need}px of ${room}px`);
  await screenshot(page, 'approvals-ten');
});

test('notices are grouped, drop decided requests and stay off the controls', async () => {
  await page.setViewportSize({ width: 1400, height: 900 });
  await page.getByTestId('nav-fleet').click();
  const pending = await call('Approvals/Pending');
  const toasts = page.locator('.mantine-Notification-root');
  await page.locator('[data-testid="waiting-toast"]').waitFor({ timeout: 10_000 });
  const waiting = page.getByTestId('waiting-toast');
  assert.equal(await waiting.count(), 1, 'one notice for all waiting requests');
  assert.match(await waiting.innerText(), new RegExp(`${pending.length} requests wait`));
  assert.equal(await page.locator('.mantine-Notification-root', { hasText: 'Approval needed' }).count(), 0, 'no toast per request');
  // Off the officer menu and the theme toggle.
  const boxes = await toasts.evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON()));
  const overlaps = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
  for (const sel of ['[data-testid="officer-menu"]', 'button[aria-label="Toggle theme"]', 'nav a']) {
    for (const c of await page.locator(sel).evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON())))
      for (const t of boxes) assert.ok(!overlaps(t, c), `a notice covers ${sel}`);
  }
  // On Approvals too, notices never cover a countdown or a decision button.
  await page.getByTestId('nav-approvals').click();
  await page.getByTestId('approval-card').first().waitFor();
  const card = page.getByTestId('approval-card').first();
  const id = await card.getAttribute('data-request');
  await card.getByTestId('deny').click();
  await page.getByTestId('deny-reason').fill('not a planned change');
  await page.getByTestId('deny-confirm').click();
  await page.locator(`[data-request="${id}"]`).waitFor({ state: 'detached' });
  const tb = await toasts.evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON()));
  assert.ok(tb.length >= 1, 'the decision is confirmed');
  for (const sel of ['[data-testid="expires"]', '[data-testid="approve"]', '[data-testid="deny"]', '[data-testid="officer-menu"]']) {
    for (const c of await page.locator(sel).evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON())))
      for (const t of tb) assert.ok(!overlaps(t, c), `a notice covers ${sel}`);
  }
  // Back on another screen, the grouped notice counts one request fewer.
  await page.getByTestId('nav-fleet').click();
  const left = (await call('Approvals/Pending')).length;
  await page.waitForFunction((n) => document.querySelector('[data-testid="waiting-toast"]')?.getAttribute('data-count') === String(n), left);
  await screenshot(page, 'notices-grouped');
});

test('sidebar, skip link and named actions work from the keyboard', async () => {
  await page.getByTestId('nav-approvals').click();
  await page.getByTestId('approval-card').first().waitFor();
  for (const n of ['fleet', 'approvals', 'images', 'keys', 'audit', 'settings']) {
    assert.equal(await page.getByTestId(`nav-${n}`).getAttribute('href'), `/${n}`, `nav-${n} is a link`);
  }
  // A fresh load: the first Tab lands on the skip link.
  await page.goto(ks.url + '/approvals');
  await page.getByTestId('approval-card').first().waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'skip-link');
  // Tab reaches the sidebar links.
  let reached = false;
  for (let i = 0; i < 15 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = (await page.evaluate(() => document.activeElement?.getAttribute('data-testid'))) === 'nav-audit';
  }
  assert.ok(reached, 'Tab reaches the Audit link');
  const ring = await page.evaluate(() => {
    const cs = getComputedStyle(document.activeElement);
    return { style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
  });
  assert.ok(ring.style !== 'none' && ring.width >= 2, `focus ring ${JSON.stringify(ring)}`);
  const fb = page.locator('[data-testid="approval-card"][data-class="first_boot"]').first();
  const vm = (await fb.locator('h4').first().innerText()).trim();
  assert.equal(await fb.getByTestId('approve').getAttribute('aria-label'), `Approve first boot of ${vm}`);
  assert.equal(await page.getByRole('button', { name: `Approve first boot of ${vm}` }).count(), 1);
});

test('VM names are not cut at 1000 px', async () => {
  await page.setViewportSize({ width: 1000, height: 900 });
  await page.getByTestId('nav-approvals').click();
  await page.getByTestId('approval-card').first().waitFor();
  const cut = await page.locator('[data-testid="approval-card"] h4').evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent));
  assert.deepEqual(cut, []);
  await page.getByTestId('nav-fleet').click();
  await page.getByTestId('fleet-row').first().waitFor();
  const rowsCut = await page.locator('[data-testid="fleet-row"] [data-testid="guest-name"]').evaluateAll((els) => els.filter((e) => e.scrollWidth > e.clientWidth + 1).map((e) => e.textContent));
  assert.deepEqual(rowsCut, []);
  await screenshot(page, 'narrow-1000');
  await page.setViewportSize({ width: 1400, height: 900 });
});

/** axe runs axe-core in the page and returns its serious and critical violations. */
async function axe() {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(AXE);
  const res = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  return res.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')} [${n.any?.[0]?.message ?? n.failureSummary}]`).join(' | ')}`);
}

test('axe-core finds no serious or critical violation on any screen', async () => {
  const found = {};
  for (const n of ['fleet', 'approvals', 'images', 'keys', 'audit', 'settings']) {
    await page.getByTestId(`nav-${n}`).click();
    await page.waitForURL(new RegExp(`/${n}$`));
    await page.getByRole('heading', { level: 2 }).first().waitFor();
    await page.waitForLoadState('networkidle').catch(() => {});
    const v = await axe();
    if (v.length) found[n] = v;
  }
  await page.getByTestId('nav-fleet').click();
  await page.getByTestId('fleet-row').first().click();
  await page.getByTestId('guest-title').waitFor();
  const g = await axe();
  if (g.length) found.guest = g;
  // The approval details and a dialog, opened.
  await page.getByTestId('nav-approvals').click();
  await page.getByTestId('details-toggle').first().click();
  const d = await axe();
  if (d.length) found['approval details'] = d;
  assert.deepEqual(found, {});
});
