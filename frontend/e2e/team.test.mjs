// Several officers work with one web console at once (issue 12): an admin,
// two approvers and a viewer, each in their own browser context. Each sees
// their own name; the viewer cannot approve; two approvers complete a
// request that needs 2 approvals; an admin ends a session from Settings.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, screenshot, startConsole } from './harness.mjs';

let ks, browser;
const pages = {};
const team = [
  { name: 'bob', role: 'approver', pass: 'bob passphrase for the team test' },
  { name: 'carol', role: 'approver', pass: 'carol passphrase for the team test' },
  { name: 'vic', role: 'viewer', pass: 'vic passphrase for the team test' },
];

/** call makes an API call from a page, with that page's own session cookie. */
function call(page, method, args) {
  return page.evaluate(
    async ([m, a]) => {
      const r = await fetch('/api/call/' + m, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Keyholder-Client': '1' },
        body: JSON.stringify(a),
      });
      return { status: r.status, body: await r.json() };
    },
    [method, args],
  );
}

async function login(name, pass) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  page.setDefaultTimeout(120_000);
  await page.goto(ks.url + '/');
  await page.getByTestId('login-name').fill(name);
  await page.getByTestId('login-pass').fill(pass);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('officer-menu').waitFor();
  return page;
}

/** nodeCall makes an API call from the test itself with a session cookie. */
async function nodeCall(cookie, method, args) {
  const r = await fetch(`${ks.url}/api/call/${method}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Keyholder-Client': '1', ...(cookie ? { Cookie: cookie } : {}) },
    body: JSON.stringify(args),
  });
  return { status: r.status, body: await r.json(), cookie: (r.headers.get('set-cookie') ?? '').split(';')[0] };
}

before(async () => {
  ks = await startConsole(['demo', '--web', '--guests', '25']);
  const m = /officer "([^"]+)" with passphrase "([^"]+)"/.exec(ks.output());
  assert.ok(m, `demo did not print its officer:\n${ks.output()}`);
  // At once, before the guests that wait for an officer boot (the demo
  // keeps making requests for a couple of minutes): requests need two
  // approvals from now on, and a team. This is a session of its own.
  const li = await nodeCall('', 'Session/Login', [m[1], m[2]]);
  assert.equal(li.status, 200, JSON.stringify(li.body));
  const pol = await nodeCall(li.cookie, 'Approvals/Policy', ['']);
  assert.equal(pol.status, 200, JSON.stringify(pol.body));
  const p = pol.body.result;
  p.approvers = { ...(p.approvers ?? {}), first_boot: 2, migration: 2, restore: 2, platform_change: 2, rotation: 2 };
  const set = await nodeCall(li.cookie, 'Approvals/SetPolicy', ['', p]);
  assert.equal(set.status, 200, JSON.stringify(set.body));
  for (const o of team) {
    const r = await nodeCall(li.cookie, 'Keys/AddOfficer', [o.name, o.role, o.pass]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  assert.equal((await nodeCall(li.cookie, 'Session/Logout', [])).status, 200);
  browser = await launchBrowser();
  pages.admin = await login(m[1], m[2]);
  pages.adminName = m[1];
  for (const o of team) pages[o.name] = await login(o.name, o.pass);
});

after(async () => {
  await browser?.close();
  await ks?.stop();
});

test('four officers logged in at once each see their own name', async () => {
  for (const [name, role] of [[pages.adminName, 'admin'], ...team.map((o) => [o.name, o.role])]) {
    const page = pages[name === pages.adminName ? 'admin' : name];
    await page.getByTestId('officer-name').waitFor();
    assert.equal(await page.getByTestId('officer-name').innerText(), name);
    assert.equal((await page.getByTestId('officer-role').innerText()).toLowerCase(), role);
    const st = await call(page, 'Session/State', []);
    assert.equal(st.body.result.officer, name);
  }
});

test('the viewer cannot approve', async () => {
  const page = pages.vic;
  await page.getByTestId('nav-approvals').click();
  const card = page.getByTestId('approval-card').first();
  await card.waitFor();
  assert.ok(await card.getByTestId('approve').isDisabled(), 'the approve button is enabled for a viewer');
  const id = await card.getAttribute('data-request');
  const r = await call(page, 'Approvals/Approve', [id, 'a viewer tries']);
  assert.equal(r.status, 403, JSON.stringify(r.body));
  await screenshot(page, 'team-viewer-approvals');
});

test('two approvers complete a request that needs two approvals', async () => {
  const bob = pages.bob;
  await bob.getByTestId('nav-approvals').click();
  // A first boot the demo script leaves to the officers (the last three of
  // its 25 guests): the script approves the others itself, at a moment this
  // test does not know, and its approval with bob's would complete one
  // before carol's turn.
  const waiting = ['vm-demo-23', 'vm-demo-24', 'vm-demo-25'].map((vm) => `[data-vm="${vm}"]`).join(', ');
  const sel = '[data-testid="approval-card"][data-class="first_boot"][data-needed="2"][data-approvals="0"]';
  const card = bob.locator(sel).and(bob.locator(waiting)).first();
  await card.waitFor();
  const id = await card.getAttribute('data-request');
  const mine = bob.locator(`[data-testid="approval-card"][data-request="${id}"]`);
  await mine.getByTestId('approve').click();
  await bob.locator(`[data-testid="approval-card"][data-request="${id}"][data-approvals="1"]`).waitFor();
  assert.match(await mine.getByTestId('quorum-officers').innerText(), /bob/);
  assert.match(await mine.getByTestId('quorum-count').innerText(), /1 of 2 .*1 more needed/);
  assert.ok(await mine.getByTestId('approve').isDisabled(), 'bob may approve again');
  const again = await call(bob, 'Approvals/Approve', [id, 'bob again']);
  assert.equal(again.status, 409, JSON.stringify(again.body));
  await screenshot(bob, 'team-one-of-two');

  const carol = pages.carol;
  await carol.getByTestId('nav-approvals').click();
  const hers = carol.locator(`[data-testid="approval-card"][data-request="${id}"]`);
  await hers.waitFor();
  assert.match(await hers.getByTestId('quorum-officers').innerText(), /bob/);
  await hers.getByTestId('approve').click();
  await hers.waitFor({ state: 'detached' });
  const got = await call(pages.admin, 'Approvals/Get', [id]);
  assert.equal(got.status, 200);
  assert.ok(['approved', 'completed'].includes(got.body.result.status), got.body.result.status);
  assert.deepEqual(got.body.result.approvals.map((a) => a.officer).sort(), ['bob', 'carol']);
});

test('an admin sees every session in Settings and ends one', async () => {
  const admin = pages.admin;
  await admin.getByTestId('nav-settings').click();
  await admin.getByTestId('sessions-table').waitFor();
  await admin.locator('[data-testid="session-row"][data-officer="vic"]').waitFor();
  const officers = await admin.$$eval('[data-testid="session-row"]', (rows) => rows.map((r) => r.getAttribute('data-officer')).sort());
  assert.deepEqual(officers, [pages.adminName, 'bob', 'carol', 'vic'].sort());
  await screenshot(admin, 'team-sessions');
  await admin.locator('[data-testid="session-row"][data-officer="vic"]').getByTestId('end-session').click();
  await admin.locator('[data-testid="session-row"][data-officer="vic"]').waitFor({ state: 'detached' });
  const r = await call(pages.vic, 'Keys/Volumes', []);
  assert.equal(r.status, 401);
  await pages.vic.reload();
  await pages.vic.getByTestId('login-name').waitFor();
  // The others are still logged in.
  for (const name of ['bob', 'carol']) assert.equal((await call(pages[name], 'Session/State', [])).body.result.officer, name);
});
