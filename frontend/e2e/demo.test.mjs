// Drives the web console of `keyholder demo` (a SIMULATED fleet) in Chromium:
// the live fleet, a guest and its diff, approving a migration, denying a
// request, and the audit chain.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, loginDemo, screenshot, startConsole } from './harness.mjs';

let ks, browser, page;

before(async () => {
  ks = await startConsole(['demo', '--web', '--guests', '25']);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(150_000);
  await loginDemo(page, ks);
});

after(async () => {
  await browser?.close();
  await ks?.stop();
});

const rowStates = () =>
  page.$$eval('[data-testid="fleet-row"]', (rows) => rows.map((r) => `${r.getAttribute('data-guest')}=${r.getAttribute('data-status')}`).sort().join(','));

test('the fleet fills and changes live, every guest marked SIMULATED', async () => {
  await page.getByTestId('fleet-row').first().waitFor();
  const first = await rowStates();
  // Pushed events change the table while the page stays put: no navigation, no reload.
  await page.waitForFunction(
    (prev) =>
      [...document.querySelectorAll('[data-testid="fleet-row"]')]
        .map((r) => `${r.getAttribute('data-guest')}=${r.getAttribute('data-status')}`)
        .sort()
        .join(',') !== prev,
    first,
    { polling: 250 },
  );
  const rows = await page.getByTestId('fleet-row').count();
  const sims = await page.locator('[data-testid="fleet-row"] [data-testid="simulated-badge"]').count();
  assert.ok(rows > 0 && sims === rows, `${sims} of ${rows} rows marked SIMULATED`);
  assert.ok(Number(await page.getByTestId('counter-total').innerText().then((t) => t.replace(/\D/g, ''))) > 0);
  await screenshot(page, 'demo-fleet');
});

test('a guest page shows its history, charts, decoded evidence and the diff', async () => {
  const row = page.locator('[data-testid="fleet-row"][data-status="verified"]').first();
  await row.waitFor();
  const id = await row.getAttribute('data-guest');
  await row.click();
  await page.getByTestId('guest-title').waitFor();
  assert.equal(await page.getByTestId('guest-title').innerText(), id);
  await page.locator('[data-testid="guest-history"] tbody tr').first().waitFor();
  await page.getByTestId('evidence-diff').waitFor();
  assert.match(await page.getByTestId('guest-evidence').innerText(), /Launch measurement[\s\S]*[0-9a-f]{96}/);
  await screenshot(page, 'demo-guest');
});

test('a migration waits for approval; approving it turns the guest verified', async () => {
  await page.getByTestId('nav-approvals').click();
  // A migration between two known chips (not the VLEK guest, whose chip is unknown).
  const card = page.locator('[data-testid="approval-card"][data-class="migration"]', { hasNot: page.getByTestId('chip-identity-vlek') }).first();
  await card.waitFor();
  const vm = (await card.getByTestId('request-vm').innerText()).trim();
  // The full evidence is behind "Details"; the card says what approving means.
  await card.getByTestId('details-toggle').click();
  assert.match(await card.innerText(), /new chip/i);
  assert.ok(Number(await card.getByTestId('evidence-diff').getAttribute('data-changes')) >= 1, 'the diff names the new chip');
  await screenshot(page, 'demo-approvals');
  const id = await card.getAttribute('data-request');
  await page.locator(`[data-testid="approval-card"][data-request="${id}"]`).getByTestId('approve').click();
  await page.locator(`[data-request="${id}"]`).waitFor({ state: 'detached' });
  await page.goto(`${ks.url}/fleet/${encodeURIComponent(vm)}`);
  await page.getByTestId('guest-title').waitFor();
  // The agent collects its key on its next poll and heartbeats: the page follows live.
  await page.locator('[data-testid="guest-status"][data-status="verified"]').waitFor();
  await screenshot(page, 'demo-migrated-guest');
});

test('competing first boots are shown together, with what approving pins; approving one denies the other', async () => {
  await page.getByTestId('nav-approvals').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="first-boot-competition"]').length >= 2, null, { polling: 250 });
  const real = page.locator('[data-testid="approval-card"]', { hasText: 'vm-new-01' }).first();
  const intruder = page.locator('[data-testid="approval-card"]', { hasText: 'vm-intruder' }).first();
  const iid = await intruder.getAttribute('data-request');
  assert.match(await real.getByTestId('first-boot-competition').innerText(), new RegExp(`1 other launch claims the first boot of this volume \\(${iid}\\)`));
  // The card says it in short; its details carry the full measurement.
  assert.match(await real.getByTestId('risk-sentence').innerText(), /pins measurement [0-9a-f]{12}… as the reference values of image new-service/);
  await real.getByTestId('details-toggle').click();
  assert.match(await real.getByTestId('first-boot-pins').innerText(), /pins measurement [0-9a-f]{96} as the reference values of image new-service/);
  await screenshot(page, 'demo-first-boot-competition');
  const rid = await real.getAttribute('data-request');
  await page.locator(`[data-testid="approval-card"][data-request="${rid}"]`).getByTestId('approve').click();
  await page.locator(`[data-request="${rid}"]`).waitFor({ state: 'detached' });
  await page.locator(`[data-request="${iid}"]`).waitFor({ state: 'detached' });
});

test('a guest whose reports a VLEK signs has no chip identity, and says so', async () => {
  await page.getByTestId('nav-approvals').click();
  // Its first boot was approved; its next launch waits as a migration.
  const card = page.locator('[data-testid="approval-card"][data-class="migration"]', { hasText: 'vm-vlek-01' }).first();
  await card.waitFor();
  assert.match(await card.getByTestId('chip-identity-vlek').innerText(), /Chip identity: none \(VLEK\)/);
  await screenshot(page, 'demo-vlek-approval');
  await page.goto(`${ks.url}/fleet/vm-vlek-01`);
  await page.getByTestId('guest-title').waitFor();
  assert.match(await page.locator('body').innerText(), /Chip identity\s+none \(VLEK\)/);
  await page.getByTestId('nav-fleet').click();
  const row = page.locator('[data-testid="fleet-row"][data-guest="vm-vlek-01"]');
  await row.waitFor();
  assert.match(await row.innerText(), /none \(VLEK\)/);
});

test('denying a request is final and audited', async () => {
  await page.getByTestId('nav-approvals').click();
  const card = page.getByTestId('approval-card').first();
  await card.waitFor();
  const id = await card.getAttribute('data-request');
  // New requests arrive at the top while the demo runs: deny this one by its ID.
  await page.locator(`[data-testid="approval-card"][data-request="${id}"]`).getByTestId('deny').click();
  await page.getByTestId('deny-reason').fill('not a planned change');
  await page.getByTestId('deny-confirm').click();
  await page.locator(`[data-request="${id}"]`).waitFor({ state: 'detached' });
  await page.getByTestId('nav-audit').click();
  await page.getByTestId('audit-table').waitFor();
  await page.waitForFunction((rid) => document.querySelector('[data-testid="audit-table"]')?.textContent?.includes(rid), id, { polling: 500 });
  const badge = page.getByTestId('chain-badge');
  await badge.waitFor();
  assert.equal(await badge.getAttribute('data-ok'), 'true', await badge.innerText());
  await screenshot(page, 'demo-audit');
});

test('every other screen renders with demo data', async () => {
  for (const nav of ['images', 'keys', 'settings']) {
    await page.getByTestId(`nav-${nav}`).click();
    await page.waitForTimeout(500);
    await screenshot(page, `demo-${nav}`);
  }
  await page.getByTestId('keys-table').waitFor().catch(() => {});
  await page.getByTestId('nav-settings').click();
  await page.getByTestId('dev-flag').waitFor();
});
