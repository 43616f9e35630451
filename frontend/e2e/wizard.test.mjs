// Walks the image preparation wizard in Chromium on a small image made here,
// then checks the output with the real cryptsetup.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, screenshot, startImageConsole } from './harness.mjs';

let page, dir, stop;

before(async () => {
  ({ page, dir, stop } = await startImageConsole('keyholder-wizard-'));
});

after(async () => {
  await stop?.();
});

test('a damaged disk image is refused with a clear message', async () => {
  // A qcow2 magic followed by garbage: the header lies about everything.
  const bad = path.join(dir, 'broken.qcow2');
  writeFileSync(bad, Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), randomBytes(4096)]));
  await page.getByTestId('nav-images').click();
  await page.getByTestId('prepare-image').click();
  await page.getByTestId('wizard-source').fill(bad);
  await page.getByTestId('wizard-inspect').click();
  const err = page.getByTestId('wizard-inspect-error');
  await err.waitFor();
  assert.match(await err.innerText(), /qcow2|corrupt|header|version|unsupported/i);
  await screenshot(page, 'wizard-bad-source');
});

test('a container Keyholder does not read is refused by name with the command that converts it', async () => {
  const qed = path.join(dir, 'legacy.qed');
  writeFileSync(qed, Buffer.concat([Buffer.from('QED\0', 'latin1'), randomBytes(1 << 20)]));
  await page.getByTestId('wizard-source').fill(qed);
  await page.getByTestId('wizard-inspect').click();
  const err = page.getByTestId('wizard-inspect-error');
  await err.waitFor();
  assert.match(await err.innerText(), /a QED image, which Keyholder does not read/);
  assert.equal(await page.getByTestId('wizard-convert-command').innerText(), `qemu-img convert -f qed -O raw ${qed} ${path.join(dir, 'legacy.raw')}`);
  assert.equal(await page.getByTestId('wizard-next').isDisabled(), true);
  await screenshot(page, 'wizard-unsupported-format');
});

test('the wizard encrypts a raw image that cryptsetup then opens with the recovery passphrase', async () => {
  const src = path.join(dir, 'web-01.raw');
  const plain = randomBytes(8 << 20);
  writeFileSync(src, plain);

  await page.getByTestId('wizard-source').fill(src);
  await page.getByTestId('wizard-inspect').click();
  const summary = page.getByTestId('disk-summary');
  await summary.waitFor();
  assert.match(await summary.innerText(), /raw/i);
  assert.match(await summary.innerText(), /8\.00 MiB/);
  // Random bytes: no partition table, no filesystem. The officer must say it is a raw disk.
  assert.match(await page.getByTestId('wizard-raw-warning').innerText(), /no partition table/);
  assert.equal(await page.getByTestId('wizard-next').isDisabled(), true);
  await screenshot(page, 'wizard-inspect');
  await page.getByText('I know this file is a raw disk').click();
  await page.getByTestId('wizard-next').click();

  await page.getByTestId('mode-data').click();
  await page.getByTestId('wizard-next').click();

  const recovery = (await page.getByTestId('recovery-passphrase').innerText()).trim();
  assert.match(recovery, /^([0-9A-Z]{5}-){5}[0-9A-Z]{5}$/);
  await screenshot(page, 'wizard-keys');
  await page.getByText('I have stored the recovery passphrase safely').click();
  await page.getByTestId('wizard-next').click();

  await page.getByTestId('wizard-measurements').fill('ab'.repeat(48));
  await page.getByTestId('wizard-next').click();

  await page.getByTestId('output-raw').click();
  await page.getByTestId('wizard-name').fill('web-01');
  const dest = path.join(dir, 'web-01-encrypted.raw');
  await page.getByTestId('wizard-dest').fill(dest);
  await screenshot(page, 'wizard-output');
  await page.getByTestId('wizard-start').click();

  const done = page.getByTestId('wizard-summary');
  await done.waitFor();
  await screenshot(page, 'wizard-summary');
  const manifest = JSON.parse(await page.getByTestId('manifest').innerText());
  assert.equal(manifest.image_name, 'web-01');
  assert.match(manifest.volume_id, /^vol_/);
  assert.match(await page.getByTestId('upload-command').innerText(), /web-01-encrypted\.raw/);
  assert.ok(existsSync(dest), 'the output file exists');

  // The real cryptsetup agrees: a LUKS2 volume that opens with the recovery passphrase.
  execFileSync('cryptsetup', ['isLuks', '--type', 'luks2', dest]);
  const open = spawnSync('cryptsetup', ['open', '--test-passphrase', '--key-file=-', dest], { input: recovery });
  assert.equal(open.status, 0, `cryptsetup open --test-passphrase: ${open.stderr}`);
  const wrong = spawnSync('cryptsetup', ['open', '--test-passphrase', '--key-file=-', dest], { input: 'WRONG-WRONG' });
  assert.notEqual(wrong.status, 0, 'a wrong passphrase must not open it');
  // And the plaintext is not in the output.
  const out = readFileSync(dest);
  assert.equal(out.indexOf(plain.subarray(1 << 20, (1 << 20) + 64)), -1, 'plaintext bytes found in the encrypted image');

  // The volume and the image are registered; the image has its reference values.
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByTestId('image-row').first().click();
  await page.getByTestId('reference-versions').waitFor();
  await page.getByTestId('nav-keys').click();
  await page.getByTestId('volume-row').first().waitFor();
  assert.match(await page.getByTestId('keys-table').innerText(), /web-01/);
  await page.getByTestId('nav-audit').click();
  const badge = page.getByTestId('chain-badge');
  await badge.waitFor();
  assert.equal(await badge.getAttribute('data-ok'), 'true');
  assert.match(await page.getByTestId('audit-table').innerText(), /reference\.set/);
  await screenshot(page, 'wizard-audit');
});

test('with Shamir shares, two of three shares rebuild the recovery passphrase that opens the volume', async () => {
  const src = path.join(dir, 'db-01.raw');
  writeFileSync(src, randomBytes(4 << 20));
  await page.getByTestId('nav-images').click();
  await page.getByTestId('prepare-image').click();
  await page.getByTestId('wizard-source').fill(src);
  await page.getByTestId('wizard-inspect').click();
  await page.getByTestId('disk-summary').waitFor();
  await page.getByText('I know this file is a raw disk').click();
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('mode-data').click();
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('recovery-choice').getByText('Shamir shares of it').click();
  // Strict by default, and "any 5 of 3" is refused with a message.
  await page.getByTestId('wizard-share-m').fill('5');
  await page.getByTestId('wizard-share-invalid').waitFor();
  assert.match(await page.getByTestId('wizard-share-invalid').innerText(), /threshold of 5 needs at least 5 shares/i);
  assert.equal(await page.getByTestId('wizard-make-shares').isDisabled(), true);
  await page.getByTestId('wizard-share-m').fill('2');
  await page.getByTestId('wizard-share-invalid').waitFor({ state: 'detached' });
  await page.getByTestId('wizard-make-shares').click();
  // One share at a time, per custodian.
  const share = page.getByTestId('wizard-share');
  await share.waitFor();
  const texts = [];
  for (let i = 0; i < 3; i++) {
    assert.equal(await share.count(), 1, 'one share on screen at a time');
    assert.equal(await page.getByTestId('wizard-custodian').innerText(), `Custodian ${i + 1} of 3`);
    texts.push((await share.innerText()).trim());
    if (i < 2) await page.getByTestId('wizard-share-next').click();
  }
  assert.equal(await page.getByTestId('wizard-share-next').isDisabled(), true);
  await page.getByTestId('wizard-share-prev').click();
  assert.equal((await share.innerText()).trim(), texts[1]);
  assert.equal(new Set(texts).size, 3);
  assert.equal(await page.getByTestId('recovery-passphrase').count(), 0, 'the passphrase itself is not shown');
  await screenshot(page, 'wizard-shares');
  await page.getByText('I have handed out the shares').click();
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('wizard-measurements').fill('cd'.repeat(48));
  await page.getByTestId('wizard-next').click();
  // AWS: a raw disk (EC2 import-snapshot's Format=RAW), named .raw by default.
  await page.getByTestId('output-aws').click();
  const dest = path.join(dir, 'db-01-encrypted.raw');
  assert.equal(await page.getByTestId('wizard-dest').inputValue(), dest);
  await page.getByTestId('wizard-name').fill('db-01');
  await page.getByTestId('wizard-start').click();
  await page.getByTestId('wizard-summary').waitFor();
  assert.equal(JSON.parse(await page.getByTestId('manifest').innerText()).output.format, 'aws');
  assert.match(await page.getByTestId('upload-command').innerText(), /import-snapshot[\s\S]*Format=RAW/);
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', dest], { encoding: 'utf8' }));
  assert.equal(info.format, 'raw');

  const combined = spawnSync(BIN, ['shares', 'combine'], { input: texts[0] + '\n' + texts[2] + '\n' });
  assert.equal(combined.status, 0, `shares combine: ${combined.stderr}`);
  const open = spawnSync('cryptsetup', ['open', '--test-passphrase', '--key-file=-', dest], { input: combined.stdout });
  assert.equal(open.status, 0, `cryptsetup open with the combined passphrase: ${open.stderr}`);
  const one = spawnSync(BIN, ['shares', 'combine'], { input: texts[1] + '\n' });
  assert.notEqual(one.status, 0, 'one share alone must not give the passphrase');
});

test('without a recovery keyslot the wizard warns; reference values default to the strict ones', async () => {
  const src = path.join(dir, 'strict.raw');
  writeFileSync(src, randomBytes(1 << 20));
  const done = page.getByRole('button', { name: 'Done' });
  if (await done.isVisible()) await done.click(); // the previous test's summary
  await page.getByTestId('nav-images').click();
  await page.getByTestId('prepare-image').click();
  await page.getByTestId('wizard-source').fill(src);
  await page.getByTestId('wizard-inspect').click();
  await page.getByTestId('disk-summary').waitFor();
  await page.getByText('I know this file is a raw disk').click();
  await page.getByTestId('wizard-next').click();
  await page.getByTestId('mode-data').click();
  await page.getByTestId('wizard-next').click();
  assert.equal(await page.getByTestId('no-recovery-warning').count(), 0);
  await page.getByTestId('recovery-choice').getByText('No recovery keyslot').click();
  await page.getByTestId('no-recovery-warning').waitFor();
  assert.match(await page.getByTestId('no-recovery-warning').innerText(), /only this console can open the disk/);
  await page.getByTestId('wizard-next').click();
  // SMT is disallowed by default; no guest has reported a TCB on this console, and the step says so.
  assert.equal(await page.getByTestId('wizard-allow-smt').isChecked(), false);
  assert.match(await page.getByTestId('wizard-tcb-note').innerText(), /No guest has reported a TCB yet/);
  await screenshot(page, 'wizard-strict-defaults');
  await page.keyboard.press('Escape');
});

// Where the wizard says the image's reference values can be edited, they
// can: on its last step an admin saves a new version, which the Images
// screen and the audit log then show.
test('an image prepared for a first-boot capture gets its reference values edited on the wizard\'s last step', async () => {
  const src = path.join(dir, 'app-01.raw');
  writeFileSync(src, randomBytes(1 << 20));
  const close = page.getByTestId('prepare-wizard').getByRole('button', { name: 'Close' });
  if (await close.isVisible()) await close.click(); // the previous test's wizard
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
  // The console keeps measurements sorted.
  await page.waitForFunction(() => /^Version 2: 121212.*, efefef/.test(document.querySelector('[data-testid="wizard-reference-current"]')?.textContent ?? ''));

  // The Images screen shows the same versions (read afresh from the console).
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByTestId('image-row').filter({ hasText: 'app-01' }).click();
  const versions = page.getByTestId('reference-versions');
  await versions.waitFor();
  const text = await versions.innerText();
  assert.match(text, /efefefefefefefef/);
  assert.match(text, /1212121212121212/);
  assert.equal(await versions.locator('tbody tr').count(), 2);
});
