// Visits every screen of `keyholder serve` in Chromium and checks that what
// it shows came from the backend.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, screenshot, startConsole } from './harness.mjs';

let ks, browser, page;
const calls = [];
const results = new Map(); // "Service/Method" -> last JSON body

/** resultOf waits until the page has called `call` and returns its JSON body. */
async function resultOf(call) {
  for (let i = 0; i < 1200 && !results.has(call); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(results.has(call), `the page never called ${call}; calls: ${calls}`);
  return results.get(call);
}

before(async () => {
  ks = await startConsole(['serve']);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1360, height: 860 } });
  // A cold Chromium (first start on a fresh machine) can take a while; no assertion here is about speed.
  page.setDefaultTimeout(120_000);
  page.on('request', (r) => {
    if (r.url().includes('/api/call/')) calls.push(new URL(r.url()).pathname.replace('/api/call/', ''));
  });
  page.on('response', async (r) => {
    if (!r.url().includes('/api/call/')) return;
    const name = new URL(r.url()).pathname.replace('/api/call/', '');
    try {
      results.set(name, { status: r.status(), body: await r.json() });
    } catch {
      results.set(name, { status: r.status(), body: null });
    }
  });
});

after(async () => {
  await browser?.close();
  await ks?.stop();
});

const OFFICER = 'alice';
const PASS = 'correct horse battery staple';

test('a fresh console asks for the first officer, and an unauthenticated call is refused afterwards', async () => {
  await page.goto(ks.url + '/');
  await page.getByTestId('setup-name').fill(OFFICER);
  await page.getByTestId('setup-pass').fill(PASS);
  await page.getByTestId('setup-pass2').fill(PASS);
  await screenshot(page, 'setup');
  await page.getByTestId('setup-submit').click();
  await page.getByTestId('officer-menu').waitFor();
  // The console is initialised now: a call without the session cookie is refused.
  const r = await fetch(ks.url + '/api/call/Fleet/Summary', { method: 'POST', body: '[]', headers: { 'X-Keyholder-Client': '1' } });
  assert.equal(r.status, 401);
  assert.equal((await r.json()).error.code, 'unauthorized');
});

test('fleet is the home screen and shows counts from the store', async () => {
  await page.goto(ks.url + '/');
  await page.waitForURL(/\/fleet$/);
  await page.getByRole('heading', { name: 'Fleet' }).waitFor();
  await page.getByTestId('fleet-empty').waitFor();
  assert.equal((await page.getByTestId('counter-total').innerText()).replace(/\s+/g, ' ').trim(), 'GUESTS 0');
  assert.ok(calls.includes('Fleet/Summary') && calls.includes('Fleet/List'), `calls: ${calls}`);
  await screenshot(page, 'fleet');
});

for (const [nav, heading, marker, call] of [
  ['approvals', 'Approvals', 'approvals-empty', 'Approvals/Pending'],
  ['images', 'Images', 'images-empty', 'Images/List'],
  ['keys', 'Keys', 'keys-empty', 'Keys/Volumes'],
  ['audit', 'Audit', null, 'Audit/List'],
]) {
  test(`${heading} screen loads its data from ${call}`, async () => {
    await page.getByTestId(`nav-${nav}`).click();
    await page.getByRole('heading', { name: heading, exact: true }).waitFor();
    const { status, body } = await resultOf(call);
    assert.equal(status, 200);
    assert.ok(Array.isArray(body.result), `${call} returned ${JSON.stringify(body)}`);
    if (marker && body.result.length === 0) await page.getByTestId(marker).waitFor();
    if (!marker) {
      // Setting up the console was audited: the log has entries and its chain verifies.
      assert.ok(body.result.some((e) => /init|officer/i.test(e.action)), `audit entries: ${JSON.stringify(body.result)}`);
      await page.getByTestId('audit-table').waitFor();
      const badge = page.getByTestId('chain-badge');
      await badge.waitFor();
      assert.equal(await badge.getAttribute('data-ok'), 'true', await badge.innerText());
    }
    await screenshot(page, nav);
  });
}

test('an admin makes recovery shares (shown once) and downloads an encrypted backup', async () => {
  await page.getByTestId('nav-keys').click();
  await page.getByTestId('split-key').click();
  const shares = page.getByTestId('recovery-share');
  await shares.first().waitFor();
  assert.equal(await shares.count(), 3);
  for (const t of await shares.allInnerTexts()) assert.match(t.trim(), /^KHS1-/);
  await screenshot(page, 'keys-shares');
  await page.getByRole('button', { name: 'I have handed them out' }).click();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('backup').click()]);
  assert.match(download.suggestedFilename(), /\.khbackup$/);
  const file = await download.path();
  const { statSync, readFileSync } = await import('node:fs');
  assert.ok(statSync(file).size > 1024, 'the backup has content');
  assert.equal(readFileSync(file).indexOf(Buffer.from('SQLite format 3')), -1, 'the backup is not a plain database');
});

test('settings shows this console: its temporary data directory and schema version', async () => {
  await page.getByTestId('nav-settings').click();
  const info = page.getByTestId('console-info');
  await info.waitFor();
  const text = await info.innerText();
  assert.ok(text.includes(ks.dataDir), `settings should name ${ks.dataDir}:\n${text}`);
  assert.match(text, /Schema version\s+\d+/);
  assert.match(text, /Web console/);
  await screenshot(page, 'settings');
});

test('the stale-CRL policy is shown in Settings and saved to the console', async () => {
  await page.getByTestId('nav-settings').click();
  const sel = page.getByTestId('policy-stale-crl');
  await sel.waitFor();
  assert.equal(await sel.inputValue(), 'Warn (release, show a warning)');
  assert.equal((await resultOf('Approvals/Policy')).body.result.stale_crl, 'warn');
  await sel.click();
  await page.getByRole('option', { name: 'Refuse the evidence' }).click();
  results.delete('Approvals/Policy');
  await page.getByTestId('policy-save').click();
  // The screen reloads the policy from the console after saving.
  const { body } = await resultOf('Approvals/Policy');
  assert.equal(body.result.stale_crl, 'refuse', JSON.stringify(body));
  assert.equal(await page.getByTestId('policy-stale-crl').inputValue(), 'Refuse the evidence');
  await screenshot(page, 'settings-stale-crl');
});

test('deep links load the app shell', async () => {
  await page.goto(ks.url + '/keys');
  await page.getByRole('heading', { name: 'Keys', exact: true }).waitFor();
});

test('a cross-site call is refused even with the session cookie', async () => {
  // From another origin the browser sends no SameSite=Strict cookie and cannot add
  // the client header without a preflight; here we send the page's own cookie to
  // show the header and Origin checks hold on their own.
  const cookies = await page.context().cookies();
  const cookie = cookies.map((c) => `${c.name}=${c.value}`).join('; ');
  assert.ok(cookies.some((c) => c.httpOnly && c.sameSite === 'Strict'), `session cookie flags: ${JSON.stringify(cookies)}`);
  let r = await fetch(ks.url + '/api/call/Fleet/Summary', { method: 'POST', body: '[]', headers: { 'Content-Type': 'text/plain', Cookie: cookie } });
  assert.equal(r.status, 403);
  r = await fetch(ks.url + '/api/call/Fleet/Summary', {
    method: 'POST',
    body: '[]',
    headers: { 'X-Keyholder-Client': '1', Origin: 'https://evil.example', Cookie: cookie },
  });
  assert.equal(r.status, 403);
  r = await fetch(ks.url + '/api/call/Fleet/Summary', { method: 'POST', body: '[]', headers: { 'X-Keyholder-Client': '1', Cookie: cookie } });
  assert.equal(r.status, 200, 'the same call with the cookie and header from the same origin works');
});

test('after logout the old session cookie no longer works, and login opens the console again', async () => {
  const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  await page.getByTestId('officer-menu').click();
  await page.getByTestId('logout').click();
  await page.getByTestId('login-name').waitFor();
  const r = await fetch(ks.url + '/api/call/Fleet/Summary', { method: 'POST', body: '[]', headers: { 'X-Keyholder-Client': '1', Cookie: cookie } });
  assert.equal(r.status, 401);
  await page.getByTestId('login-name').fill(OFFICER);
  await page.getByTestId('login-pass').fill('wrong passphrase, surely');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-error').waitFor();
  await page.getByTestId('login-pass').fill(PASS);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('officer-menu').waitFor();
  await screenshot(page, 'after-login');
});
