// The withdrawal page in Debian's Chromium with JavaScript off
// (withdraw_page.sh starts the server and makes the tracked message):
//   1. the page at the disclosure line's link shows its heading and one
//      button, and sets no cookie;
//   2. the button (a form POST) leads to "Tracking stopped";
//   3. no request to another host, no console error.
// A screenshot of each page goes to ARTIFACTS/.
//
// usage: node withdraw_page.mjs URL ARTIFACTS
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [url, artifacts] = process.argv.slice(2);
let failed = 0;
function check(name, ok, detail) {
  if (ok) return;
  failed++;
  console.error(`FAIL: ${name}${detail === undefined ? '' : ': ' + detail}`);
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
const context = await browser.newContext({ javaScriptEnabled: false, viewport: { width: 800, height: 600 } });
const page = await context.newPage();
const origin = new URL(url).origin;
const elsewhere = [], errors = [], methods = [];
page.on('request', (r) => {
  if (!r.url().startsWith(origin)) elsewhere.push(r.url());
  if (r.url() === url) methods.push(r.method());
});
page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });

const first = await page.goto(url);
check('page: 200', first.status() === 200, first.status());
check('page: heading', (await page.locator('h1').innerText()) === 'Stop tracking my opens and clicks');
const buttons = page.locator('button');
check('page: one button', (await buttons.count()) === 1, await buttons.count());
mkdirSync(artifacts, { recursive: true });
await page.screenshot({ path: join(artifacts, 'withdraw_page.png') });

await Promise.all([page.waitForNavigation(), buttons.first().click()]);
check('confirmed: heading', (await page.locator('h1').innerText()) === 'Tracking stopped');
check('confirmed: the form POSTed to the same address', methods.join(',') === 'GET,POST', methods.join(','));
await page.screenshot({ path: join(artifacts, 'withdraw_done.png') });
check('no cookie', (await context.cookies()).length === 0, JSON.stringify(await context.cookies()));
check('no other host', elsewhere.length === 0, elsewhere.join(' '));
check('no console error', errors.length === 0, errors.join(' | '));
await browser.close();
if (failed) process.exit(1);
console.log('withdraw_page: all checks passed');
