// Test harness for the browser tests: starts `keyholder` on a free loopback
// port with a temporary data directory, and Debian's Chromium through
// playwright-core (never a downloaded browser).
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const BIN = path.resolve(process.env.KEYHOLDER_BIN ?? '../bin/keyholder-web');
export const ARTIFACTS = path.resolve(process.env.ARTIFACTS ?? '../artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

/** startConsole runs `keyholder <args> --listen 127.0.0.1:0 --data TMP` and resolves with its URL. */
export async function startConsole(args = ['serve'], { urlPattern = /Keyholder console: (http\S+)/ } = {}) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'keyholder-e2e-'));
  const proc = spawn(BIN, [...args, '--listen', '127.0.0.1:0', '--data', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`keyholder did not print its URL in 60s:\n${out}\n${err}`)), 60_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = urlPattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`keyholder exited with ${code}:\n${out}\n${err}`));
    });
  });
  return {
    url: url.replace(/\/$/, ''),
    dataDir,
    output: () => out,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

export const OFFICER = 'alice';
export const PASS = 'correct horse battery staple';

/** setupOfficer initialises a fresh console through its setup screen. */
export async function setupOfficer(page, url) {
  await page.goto(url + '/');
  await page.getByTestId('setup-name').fill(OFFICER);
  await page.getByTestId('setup-pass').fill(PASS);
  await page.getByTestId('setup-pass2').fill(PASS);
  await page.getByTestId('setup-submit').click();
  await page.getByTestId('officer-menu').waitFor();
}

/** loginDemo logs in as the officer `keyholder demo` printed for console ks. */
export async function loginDemo(page, ks) {
  const m = /officer "([^"]+)" with passphrase "([^"]+)"/.exec(ks.output());
  if (!m) throw new Error(`demo did not print its officer:\n${ks.output()}`);
  await page.goto(ks.url + '/');
  await page.getByTestId('login-name').fill(m[1]);
  await page.getByTestId('login-pass').fill(m[2]);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('officer-menu').waitFor();
}

/** allowImageFolder lets the web console read and write images in dir (Settings). */
export async function allowImageFolder(page, dir) {
  await page.getByTestId('nav-settings').click();
  await page.getByTestId('image-folders-input').fill(dir);
  await page.getByTestId('image-folders-save').click();
  await page.getByText('Image folders saved').waitFor();
}

/**
 * startImageConsole is the image wizard's fixture: a fresh image folder
 * (prefix names it), `keyholder serve`, Chromium at 1360×900, the first
 * officer set up and the folder allowed. stop() undoes all of it.
 */
export async function startImageConsole(prefix) {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const ks = await startConsole(['serve']);
  const browser = await launchBrowser();
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.setDefaultTimeout(120_000);
  await setupOfficer(page, ks.url);
  // The web console touches only files inside folders an admin allowed.
  await allowImageFolder(page, dir);
  const stop = async () => {
    await browser.close();
    await ks.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, ks, browser, page, stop };
}
