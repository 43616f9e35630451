// The two-person rule in the browser: two admins in two browser contexts.
// One admin alone is warned that they can do everything; once a second
// admin exists, the first one's request for recovery shares waits on the
// Approvals screen with its quorum progress, the second admin approves it
// there, and only the first receives the shares, once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, screenshot, setupOfficer, startConsole } from './harness.mjs';

let ks, browser, alice, bob;

/** call makes an API call from page's own origin with its session cookie. */
async function call(page, method, args) {
  return page.evaluate(
    async ([m, a]) => {
      const r = await fetch('/api/call/' + m, { method: 'POST', body: JSON.stringify(a), headers: { 'Content-Type': 'application/json', 'X-Keyholder-Client': '1' } });
      return { status: r.status, body: await r.json() };
    },
    [method, args],
  );
}

before(async () => {
  ks = await startConsole(['serve']);
  browser = await launchBrowser();
  alice = await (await browser.newContext({ viewport: { width: 1360, height: 900 } })).newPage();
  bob = await (await browser.newContext({ viewport: { width: 1360, height: 900 } })).newPage();
  for (const p of [alice, bob]) p.setDefaultTimeout(120_000);
});

after(async () => {
  await browser?.close();
  await ks?.stop();
});

test('a single admin is told that one person can do everything', async () => {
  await setupOfficer(alice, ks.url);
  await alice.getByTestId('one-admin-notice').waitFor();
  await screenshot(alice, 'quorum-one-admin');
  // Alone, alice adds bob as a second admin at once.
  const r = await call(alice, 'Keys/AddOfficer', ['bob', 'admin', "bob's long passphrase"]);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.result.done, true, JSON.stringify(r.body));
  await alice.reload();
  await alice.getByTestId('officer-menu').waitFor();
  await alice.getByTestId('counter-total').waitFor();
  assert.equal(await alice.getByTestId('one-admin-notice').count(), 0, 'the warning goes once there are two admins');
});

test('recovery shares need a second admin and go once to the admin who asked', async () => {
  await alice.getByTestId('nav-keys').click();
  await alice.getByTestId('split-key').click();
  await alice.getByText('Waiting for a second admin').waitFor();
  assert.equal(await alice.getByTestId('recovery-share').count(), 0, 'no shares for one admin');

  await bob.goto(ks.url + '/');
  await bob.getByTestId('login-name').fill('bob');
  await bob.getByTestId('login-pass').fill("bob's long passphrase");
  await bob.getByTestId('login-submit').click();
  await bob.getByTestId('officer-menu').waitFor();
  await bob.getByTestId('nav-approvals').click();
  const card = bob.getByTestId('admin-action-card');
  await card.waitFor();
  assert.equal(await card.getAttribute('data-kind'), 'recovery.shares');
  assert.match(await card.getByTestId('quorum-progress').innerText(), /1 of 2 admins/);
  await screenshot(bob, 'quorum-pending-action');
  await card.getByTestId('admin-approve').click();
  await bob.getByText('Approved', { exact: true }).waitFor();
  // Bob approved; the shares are alice's, not his.
  const got = await call(bob, 'Keys/CollectShares', [await card.getAttribute('data-action')]);
  assert.equal(got.status, 403, JSON.stringify(got.body));

  await alice.getByTestId('nav-approvals').click();
  const mine = alice.getByTestId('admin-action-card');
  await mine.getByTestId('admin-collect').waitFor();
  const id = await mine.getAttribute('data-action');
  await mine.getByTestId('admin-collect').click();
  const shares = alice.getByTestId('recovery-share');
  await shares.first().waitFor();
  assert.equal(await shares.count(), 3);
  for (const t of await shares.allInnerTexts()) assert.match(t.trim(), /^KHS1-/);
  await screenshot(alice, 'quorum-collected-shares');
  const again = await call(alice, 'Keys/CollectShares', [id]);
  assert.equal(again.status, 409, 'the shares are delivered once: ' + JSON.stringify(again.body));
});
