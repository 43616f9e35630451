import { chromium } from 'playwright-core';
const [url, officer, pass] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu'] });
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
page.setDefaultTimeout(120_000);
await page.goto(url + '/');
await page.getByTestId('login-name').fill(officer);
await page.getByTestId('login-pass').fill(pass);
await page.getByTestId('login-submit').click();
await page.getByTestId('officer-menu').waitFor();
for (let i = 0; i < 3; i++) {
  await page.goto(url + '/settings');
  await page.getByTestId('console-info').waitFor();
  await page.goto(url + '/fleet');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid="fleet-row"]').length > 0, null, { polling: 'raf' });
  const r = await page.evaluate(() => ({ now: Math.round(performance.now()), res: performance.getEntriesByType('resource').map((e) => `${e.name.replace(location.origin, '')} ${Math.round(e.startTime)}+${Math.round(e.duration)} (ttfb ${Math.round(e.responseStart - e.startTime)})`), nav: performance.getEntriesByType('navigation').map((e) => `dcl ${Math.round(e.domContentLoadedEventEnd)} resp ${Math.round(e.responseEnd)}`) }));
  console.log(JSON.stringify(r, null, 1));
}
await browser.close();
