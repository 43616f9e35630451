// Stacked dialogs and messages for people (issue 15, items 6 and 10) on a
// real `keyholder serve` whose logins count as recent for 2 s only, so that
// adding an officer asks for the passphrase again from inside its dialog.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, test } from 'node:test';
import { launchBrowser, PASS, screenshot, setupOfficer, startConsole } from './harness.mjs';

const require = createRequire(import.meta.url);
// Evaluated through the browser's debugging protocol: the console's CSP forbids inline scripts, as it should.
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

let ks, browser, page;

before(async () => {
  ks = await startConsole(['serve', '--fresh-auth', '2s']);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(120_000);
  await setupOfficer(page, ks.url);
});

after(async () => {
  await browser?.close();
  await ks?.stop();
});

async function axe() {
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(AXE);
  const res = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  return res.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => `${n.target.join(' ')} [${n.any?.[0]?.message ?? n.failureSummary}]`).join(' | ')}`);
}

test('Add officer shows the passphrase rule before submitting; the disabled button says why', async () => {
  await page.getByTestId('nav-settings').click();
  await page.getByTestId('add-officer').click();
  await page.getByTestId('add-officer-name').waitFor();
  assert.match(await page.getByRole('dialog').innerText(), /At least 10 characters/);
  await page.getByTestId('add-officer-name').fill('bob');
  await page.getByTestId('add-officer-pass').fill('short');
  const submit = page.getByTestId('add-officer-submit');
  assert.ok(await submit.isDisabled());
  assert.match((await submit.getAttribute('title')) ?? '', /at least 10 characters/);
  const why = await submit.getAttribute('aria-describedby');
  assert.ok(why, 'the disabled button points at its reason');
  assert.match(await page.locator(`#${why}`).innerText(), /at least 10 characters/);
});

test('the passphrase re-check opens on top of Add officer, focused; Escape closes only it and keeps the form', async () => {
  await page.getByTestId('add-officer-pass').fill('bobs initial passphrase');
  // Logins count as recent for 2 s in this console: let that pass, so the add asks again.
  await page.waitForTimeout(2500);
  await page.getByTestId('add-officer-submit').click();
  const pass = page.getByTestId('reauth-pass');
  await pass.waitFor();
  await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'reauth-pass', null, { timeout: 5000 });
  // On top: the point at the centre of its input belongs to the re-check dialog, not to the one below.
  const onTop = await pass.evaluate((el) => {
    const r = el.getBoundingClientRect();
    const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    return hit === el || el.contains(hit) || !!hit?.closest('[data-testid="reauth-dialog"], .mantine-Modal-root')?.contains(el);
  });
  assert.ok(onTop, 'the re-check dialog is under the one that asked for it');
  await screenshot(page, 'reauth-stacked');
  await page.keyboard.press('Escape');
  await pass.waitFor({ state: 'detached' });
  assert.equal(await page.getByTestId('add-officer-name').inputValue(), 'bob', 'Escape kept Add officer open and its input');
  assert.equal(await page.getByTestId('add-officer-pass').inputValue(), 'bobs initial passphrase');
  // A second Escape, with no re-check open, closes Add officer itself.
  await page.keyboard.press('Escape');
  await page.getByTestId('add-officer-name').waitFor({ state: 'detached' });
});

test('a bad duration in the policy is a message on the field, not a server error', async () => {
  const ttl = page.getByTestId('policy-ttl');
  await ttl.fill('fifteen minutes');
  const field = page.locator('.mantine-TextInput-root', { has: ttl });
  assert.match(await field.innerText(), /is not a duration/);
  assert.equal(await ttl.getAttribute('aria-invalid'), 'true');
  const save = page.getByTestId('policy-save');
  assert.ok(await save.isDisabled(), 'save waits for a valid duration');
  assert.match((await save.getAttribute('title')) ?? '', /Fix the marked fields/);
  assert.equal(await page.locator('text=argument 2 of').count(), 0);
  await ttl.fill('20m');
  assert.doesNotMatch(await field.innerText(), /is not a duration/);
  assert.ok(await save.isEnabled());
});

test('axe-core: no serious or critical violation on the screens of a fresh console and in its dialogs', async () => {
  const found = {};
  for (const n of ['fleet', 'approvals', 'images', 'keys', 'audit', 'settings']) {
    await page.getByTestId(`nav-${n}`).click();
    await page.waitForURL(new RegExp(`/${n}$`));
    await page.getByRole('heading', { level: 2 }).first().waitFor();
    const v = await axe();
    if (v.length) found[n] = v;
  }
  await page.getByTestId('add-officer').click();
  await page.getByTestId('add-officer-name').waitFor();
  const d = await axe();
  if (d.length) found['add officer'] = d;
  await page.keyboard.press('Escape');
  assert.deepEqual(found, {});
});
