// Issue 15, item 10 on the SIMULATED demo fleet: a request that runs out of
// time stays in view as expired, its decision buttons disabled and saying
// why; a failing or stale guest says what to do next, in the fleet's reason
// column and on its page. The console's approval lifetime is shortened
// through the release policy (a stricter change, applied at once), so
// requests made after it expire within the test.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, loginDemo, screenshot, startConsole } from './harness.mjs';

const TTL_S = 40;
let ks, browser, page;

/** call runs one API call with the page's session and returns {result, error}. */
const call = (name, ...args) =>
  page.evaluate(
    async ([n, a]) => {
      const r = await fetch('/api/call/' + n, { method: 'POST', body: JSON.stringify(a), headers: { 'X-Keyholder-Client': '1', 'Content-Type': 'application/json' } });
      return r.json();
    },
    [name, args],
  );

before(async () => {
  ks = await startConsole(['demo', '--web', '--guests', '8']);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(150_000);
  await loginDemo(page, ks);
  const p = await call('Approvals/Policy', '');
  assert.ok(p.result, JSON.stringify(p.error));
  const set = await call('Approvals/SetPolicy', '', { ...p.result, approval_ttl: `${TTL_S}s` });
  assert.ok(!set.error, JSON.stringify(set.error));
});

after(async () => {
  await browser?.close();
  await ks?.stop();
});

const lifetime = (q) => (Date.parse(q.expires_at) - Date.parse(q.created_at)) / 1000;

/**
 * leftByDesign reports whether request id left the list for a reason other
 * than its deadline: its guest asked again (superseded), or the demo script
 * decided it (it approves some guests' requests itself).
 */
const leftByDesign = async (id) => {
  const q = (await call('Approvals/Get', id)).result;
  return (q?.status === 'expired' && /^superseded/.test(q.reason ?? '')) || ['approved', 'completed', 'denied'].includes(q?.status);
};

/** check asserts that card is in view as expired, its buttons disabled and saying why. */
const check = async (card, when) => {
  await card.waitFor({ timeout: 30_000 });
  assert.equal(await card.getAttribute('data-status'), 'expired', `${when}: the card says expired`);
  for (const b of ['approve', 'deny']) {
    const btn = card.getByTestId(b);
    assert.equal(await btn.count(), 1, `${when}: the ${b} button is still there`);
    assert.ok(await btn.isDisabled(), `${when}: ${b} is disabled`);
    assert.match((await btn.getAttribute('title')) ?? '', /expired .*nothing can be approved or denied/i, `${when}: ${b} says why it is disabled`);
  }
  assert.match(await card.getByTestId('expired-why').innerText(), /expired at .*nothing can be approved or denied/i);
};

/** expiresInView follows request req from open to expired by the console, its card in view throughout. */
const expiresInView = async (req) => {
  const card = page.locator(`[data-request="${req.id}"]`);
  await card.waitFor();
  assert.equal(await card.getAttribute('data-status'), 'pending');
  assert.equal(await card.getByTestId('approve').isDisabled(), false, 'an open request can be approved');

  // Its deadline passes while the officer looks at it.
  await page.waitForFunction((at) => Date.now() > Date.parse(at) + 1500, req.expires_at, { polling: 500, timeout: (TTL_S + 30) * 1000 });
  await check(card, 'at its deadline');
  await screenshot(page, 'approvals-expired-in-view');

  // The console expires it (every 30 s): the card stays, still disabled.
  for (let i = 0; i < 90; i++) {
    const { result } = await call('Approvals/Get', req.id);
    if (result?.status === 'expired') break;
    await page.waitForTimeout(1000);
  }
  assert.equal((await call('Approvals/Get', req.id)).result.status, 'expired', 'the console expired the request');
  await page.waitForTimeout(1500); // the list reloads on the change event; the card must survive it
  await check(card, 'after the console expired it');
  assert.equal(await card.getAttribute('data-testid'), 'expired-card', 'it is no longer one of the open requests');
};

test('a request that expires stays in view as expired, its buttons disabled and saying why', async () => {
  await page.getByTestId('nav-approvals').click();
  // A request made under the short lifetime (the demo keeps making them)
  // that runs out of time. A request its own guest replaces by asking again
  // (the demo's replayed guest does, at any moment around its deadline) is
  // superseded, not expired, and one the demo script approves itself (it
  // does for some guests, a few seconds after they ask) is decided: both
  // leave the list by design. The test takes requests a few seconds old,
  // which the script has passed over, and whenever one left the list by
  // design all the same, it takes another.
  const tried = new Set();
  for (let attempt = 0; ; attempt++) {
    assert.ok(attempt < 4, 'every request the test took was superseded or decided by the demo');
    let req;
    for (let i = 0; i < 240 && !req; i++) {
      const { result } = await call('Approvals/Pending');
      req = (result ?? []).find(
        (q) => !tried.has(q.id) && lifetime(q) <= TTL_S + 1 && Date.now() - Date.parse(q.created_at) > 6_000 && Date.parse(q.expires_at) - Date.now() > 10_000,
      );
      if (!req) await page.waitForTimeout(1000);
    }
    assert.ok(req, `no request with a ${TTL_S} s lifetime appeared`);
    tried.add(req.id);
    try {
      await expiresInView(req);
      return;
    } catch (err) {
      if (await leftByDesign(req.id)) continue;
      throw err;
    }
  }
});

test('a failing guest says what to do next, in the fleet and on its page', async () => {
  await page.getByTestId('nav-fleet').click();
  await page.getByTestId('fleet-table').waitFor();
  // Requests nobody decided within the short lifetime leave their guests
  // failing (the fleet hears no event for that: reload until it shows).
  const row = page.locator('[data-testid="fleet-row"][data-status="failing"]', { hasText: /request expired/ }).first();
  for (let i = 0; i < 24 && !(await row.count()); i++) {
    await page.waitForTimeout(5000);
    await page.reload();
    await page.getByTestId('fleet-table').waitFor();
  }
  const next = row.getByTestId('fleet-next-step');
  assert.equal(await next.getAttribute('data-kind'), 'expired');
  assert.match(await next.innerText(), /Reboot it to ask again, then decide on Approvals/);
  // Every failing row says what to do, not only why.
  for (const r of await page.locator('[data-testid="fleet-row"][data-status="failing"]').all()) {
    assert.equal(await r.getByTestId('fleet-next-step').count(), 1, await r.innerText());
  }
  const id = await row.getAttribute('data-guest');
  await row.click();
  await page.getByTestId('guest-title').waitFor();
  const step = page.getByTestId('guest-next-step');
  assert.equal(await step.getAttribute('data-kind'), 'expired');
  assert.match(await step.innerText(), /What to do: Nobody decided its request in time\. Reboot the guest so that it asks again/);
  await screenshot(page, `guest-next-step-${id}`);
});

test('a stale guest says to check the guest and its network', async () => {
  await page.getByTestId('nav-fleet').click();
  // One demo guest stops its heartbeats; after three intervals it is stale
  // (a guest turns stale without an event: reload until the list shows it).
  const row = page.locator('[data-testid="fleet-row"][data-status="stale"]').first();
  for (let i = 0; i < 24 && !(await row.count()); i++) {
    await page.waitForTimeout(10_000);
    await page.reload();
    await page.getByTestId('fleet-table').waitFor();
  }
  const next = row.getByTestId('fleet-next-step');
  assert.equal(await next.getAttribute('data-kind'), 'stale');
  assert.match(await next.innerText(), /Check the guest and its network/);
});
