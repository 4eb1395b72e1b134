// The rep page in Debian's Chromium (rep_page.sh starts the server and the
// data): signs in with the token, runs HIT (a hit recorded), and checks
//   1. the alert appears in the live list without a reload, with a desktop
//      notification (Notification API, permission granted here);
//   2. the subject and the recipient's name, HTML both, show as text: no
//      element made of them, no script run;
//   3. recent messages show the message opened; its timeline shows each
//      event's class and reason;
//   4. no Content-Security-Policy violation or other error (but the 401 of
//      the signed-out page's first call), no request to another host, one
//      navigation only.
// A screenshot goes to ARTIFACTS/rep_page.png.
//
// usage: node rep_page.mjs BASE TOKEN HIT SUBJECT ARTIFACTS
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, token, hit, subject, artifacts] = process.argv.slice(2);
let failed = 0;
function check(name, ok, detail) {
  if (ok) return;
  failed++;
  console.error(`FAIL: ${name}${detail === undefined ? '' : ': ' + detail}`);
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
const context = await browser.newContext({ deviceScaleFactor: 1, colorScheme: 'light', viewport: { width: 1100, height: 900 } });
await context.grantPermissions(['notifications'], { origin: base });
// Notifications shown, recorded (headless Chromium shows none on screen)
await context.addInitScript(() => {
  window.__notes = [];
  const N = window.Notification;
  window.Notification = class extends N {
    constructor(title, options) {
      super(title, options);
      window.__notes.push(options && options.body);
    }
  };
});
const foreign = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith(base + '/')) return route.continue();
  foreign.push(url);
  return route.abort();
});
const page = await context.newPage();
const problems = [];
page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
page.on('pageerror', (e) => problems.push(String(e)));
let navigations = 0;
page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });

await page.goto(base + '/');
await page.locator('#signin').waitFor({ state: 'visible' });
// signed out, the page's first question (/v1/me) is answered 401: Chromium logs that, and only that
const early = problems.splice(0).filter((p) => !p.includes('status of 401'));
check('nothing wrong before signing in', early.length === 0, early.join(' | '));
await page.fill('#token', token);
await page.click('#signin-form button[type=submit]');
await page.locator('#alerts-section').waitFor({ state: 'visible' });
await page.locator('#live.on').waitFor({ state: 'visible', timeout: 10000 });
check('no alert before the hit', (await page.locator('#alerts li').count()) === 0);

execFileSync('bash', [hit], { stdio: 'inherit' });
const item = page.locator('#alerts li').first();
await item.waitFor({ state: 'visible', timeout: 15000 });
const text = await item.locator('.alert-text').textContent();
check('the alert says who opened what, as text', text === `Dana <b>Whitfield</b> <dana@acme.example> opened "${subject}"`, text);
check('no element made of outsiders\' text', (await page.locator('#alerts img, #alerts b, #messages img, #messages b').count()) === 0);
check('no script of theirs ran', (await page.evaluate(() => window.__xss)) === undefined);
await page.waitForFunction(() => window.__notes.length > 0, null, { timeout: 5000 }).catch(() => {});
const notes = await page.evaluate(() => window.__notes);
check('a desktop notification', notes.length === 1 && notes[0] === text, JSON.stringify(notes));

// recent messages: refreshed by the alert
const row = page.locator('#messages tr.message').first();
await page.waitForFunction(() => document.querySelector('#messages tr.message td.yes') !== null, null, { timeout: 5000 }).catch(() => {});
const cells = await row.locator('td').allTextContents();
check('the message shows as opened', cells[1] === subject && cells[2] === 'Dana <b>Whitfield</b> <dana@acme.example>' &&
  cells[3] === 'yes' && cells[4] === 'no', JSON.stringify(cells));
await row.click();
await page.locator('#timeline-section').waitFor({ state: 'visible' });
const ev = await page.locator('#timeline tr').first().locator('td').allTextContents();
check('the timeline shows class and reason', ev[1] === 'open' && ev[3] === 'human' && ev[4] === 'no_machine_signal', JSON.stringify(ev));

check('one navigation, no reload', navigations === 1, navigations);
check('nothing from another host', foreign.length === 0, foreign.join(' '));
check('no error, no Content-Security-Policy violation', problems.length === 0, problems.join(' | '));

mkdirSync(artifacts, { recursive: true });
await page.screenshot({ path: join(artifacts, 'rep_page.png'), fullPage: true });
await browser.close();
if (failed) process.exit(1);
console.log(`ok the rep page: signed in, the alert live as text with a notification, messages and timeline; screenshot ${join(artifacts, 'rep_page.png')}`);
