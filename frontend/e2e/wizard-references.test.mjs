// Where the wizard says the image's reference values can be edited, they
// can: on its last step an admin saves a new version, which the Images
// screen and the audit log then show.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { allowImageFolder, launchBrowser, screenshot, setupOfficer, startConsole } from './harness.mjs';

let ks, browser, page, dir;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'keyholder-wizard-refs-'));
  ks = await startConsole(['serve']);
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.setDefaultTimeout(120_000);
  await setupOfficer(page, ks.url);
  await allowImageFolder(page, dir);
});

after(async () => {
  await browser?.close();
  await ks?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('an image prepared for a first-boot capture gets its reference values edited on the wizard\'s last step', async () => {
  const src = path.join(dir, 'app-01.raw');
  writeFileSync(src, randomBytes(1 << 20));
  await page.getByTestId('nav-images').click();
  await page.getByTestId('prepare-image').click();
  await page.getByTestId('wizard-source').fill(src);
  await page.getByTestId('wizard-inspect').click();
  await page.getByTestId('disk-summary').waitFor();
  await page.getByText('I know this file is a raw disk').click();
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('mode-data').click();
  await page.getByTestId('wizard-next').click();
  await page.getByText('I have stored the recovery passphrase safely').click();
  await page.getByTestId('wizard-next').click();
  await page.getByText('Capture on first boot').click();
  // The step says where the values can be edited later.
  assert.match(await page.getByTestId('prepare-wizard').innerText(), /on the wizard's last step or on the Images screen/);
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('wizard-name').fill('app-01');
  await page.getByTestId('wizard-dest').fill(path.join(dir, 'app-01-encrypted.raw'));
  await page.getByTestId('wizard-start').click();
  await page.getByTestId('wizard-summary').waitFor();

  const current = page.getByTestId('wizard-reference-current');
  await current.waitFor();
  assert.match(await current.innerText(), /None yet/);

  // A bad entry is refused on its field and nothing is saved.
  const refs = page.getByTestId('wizard-references');
  await refs.getByTestId('reference-input').fill('not-a-measurement');
  await refs.getByTestId('reference-save').click();
  await refs.getByText(/is not a measurement/).waitFor();
  assert.match(await current.innerText(), /None yet/);

  const m = 'ef'.repeat(48);
  await refs.getByTestId('reference-input').fill(m);
  await refs.getByLabel('Comment').fill('measured with sev-snp-measure');
  await refs.getByTestId('reference-save').click();
  await page.waitForFunction(() => /^Version 1: efefef/.test(document.querySelector('[data-testid="wizard-reference-current"]')?.textContent ?? ''));
  assert.match(await current.innerText(), /SMT not allowed; migration agent not allowed/);
  await screenshot(page, 'wizard-references-edited');

  // A second version keeps the policy and replaces the measurements.
  const m2 = '12'.repeat(48);
  await refs.getByTestId('reference-input').fill(`${m}\n${m2}`);
  await refs.getByTestId('reference-save').click();
  await page
    .waitForFunction(() => /^Version 2: 121212.*, efefef/.test(document.querySelector('[data-testid="wizard-reference-current"]')?.textContent ?? ''), null, { timeout: 20_000 })
    .catch(async (e) => {
      await screenshot(page, 'wizard-references-second-version');
      throw e;
    });

  // The Images screen shows the same versions; the audit log has both changes.
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByTestId('image-row').filter({ hasText: 'app-01' }).click();
  const versions = page.getByTestId('reference-versions');
  await versions.waitFor();
  const text = await versions.innerText();
  assert.match(text, /efefefefefefefef/);
  assert.match(text, /1212121212121212/);
  assert.equal(await versions.locator('tbody tr').count(), 2);
  await page.getByTestId('nav-audit').click();
  await page.getByTestId('audit-table').waitFor();
  const audit = await page.getByTestId('audit-table').innerText();
  assert.equal((audit.match(/\treference\.set\t/g) ?? []).length, 2, audit);
});
