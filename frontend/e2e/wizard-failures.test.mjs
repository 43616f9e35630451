// The image wizard on an early failure (issue 15, item 2): paths are
// checked before anything starts, the problem shows at once, Cancel always
// works, and the failure is audited.
import assert from 'node:assert/strict';
import { linkSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { screenshot, startImageConsole } from './harness.mjs';

let page, dir, stop;

before(async () => {
  ({ page, dir, stop } = await startImageConsole('keyholder-wizard-fail-'));
});

after(async () => {
  await stop?.();
});

/** toOutput walks the wizard up to its output step for src. */
async function toOutput(src) {
  await page.getByTestId('nav-images').click();
  await page.getByTestId('prepare-image').click();
  await page.getByTestId('wizard-source').fill(src);
  await page.getByTestId('wizard-inspect').click();
  await page.getByTestId('disk-summary').waitFor();
  await page.getByText('I know this file is a raw disk').click();
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('mode-data').click();
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('recovery-choice').getByText('No recovery keyslot').click();
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('wizard-measurements').fill('ab'.repeat(48));
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('output-raw').click();
  await page.getByTestId('wizard-name').fill('early');
}

/** startFails starts with dest and returns the error the wizard shows; it must come at once, not after a hang. */
async function startFails(dest) {
  await page.getByTestId('wizard-dest').fill(dest);
  await page.getByTestId('wizard-start').click();
  const err = page.getByTestId('wizard-start-error').or(page.getByTestId('wizard-run-error'));
  await err.first().waitFor({ timeout: 15_000 });
  return err.first().innerText();
}

test('an output equal to the input, or a link to it, is refused before anything starts', async () => {
  const src = path.join(dir, 'same.raw');
  writeFileSync(src, randomBytes(1 << 20));
  const link = path.join(dir, 'same-link.raw');
  symlinkSync(src, link);
  const hard = path.join(dir, 'same-hard.raw');
  linkSync(src, hard);
  await toOutput(src);
  assert.match(await startFails(src), /same file as the input/);
  await screenshot(page, 'wizard-same-file');
  assert.match(await startFails(link), /same file as the input|symbolic link/);
  assert.match(await startFails(hard), /same file as the input/);
  assert.equal(await page.getByTestId('wizard-progress').isVisible(), false, 'no progress for an operation that never started');
});

test('an output in a missing folder, or over an existing file, is refused at once', async () => {
  assert.match(await startFails(path.join(dir, 'no-such-folder', 'out.raw')), /no such folder: .*no-such-folder|folder .*no-such-folder.* does not exist/);
  const existing = path.join(dir, 'existing.raw');
  writeFileSync(existing, 'keep me');
  assert.match(await startFails(existing), /exists already/);
  await page.keyboard.press('Escape');
});

test('every refused start is in the audit log with its reason', async () => {
  await page.getByTestId('nav-audit').click();
  await page.getByTestId('audit-table').waitFor();
  await page.waitForFunction(() => /image\.prepare[\s\S]*failed/.test(document.querySelector('[data-testid="audit-table"]')?.textContent ?? ''));
  assert.match(await page.getByTestId('audit-table').innerText(), /same file as the input/);
});

test('Cancel stops a running encryption', async () => {
  const big = path.join(dir, 'big.raw');
  writeFileSync(big, randomBytes(1 << 20));
  truncateSync(big, 512 << 20);
  await toOutput(big);
  await page.getByTestId('wizard-dest').fill(path.join(dir, 'big-encrypted.raw'));
  await page.getByTestId('wizard-start').click();
  await page.getByTestId('wizard-cancel').click();
  const err = page.getByTestId('wizard-run-error');
  await err.waitFor({ timeout: 30_000 });
  assert.match(await err.innerText(), /Cancelled|cancel/i);
  await screenshot(page, 'wizard-cancelled');
});
