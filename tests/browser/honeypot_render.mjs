// Renders each mail's HTML before and after mailbeacon-rewrite in Debian's
// Chromium and compares what a person and assistive technology get
// (honeypot_render.sh prepares DIR: NAME.before.html, NAME.after.html,
// NAME.off.html, the last rewritten with honeypot = no).
//
// For each mail:
//   1. before and after, screenshots of a viewport taller than the page (so the
//      pixel's line at the end is in the picture): the same pixels;
//   2. after and off, full-page screenshots: the same pixels and the same size
//      (the honeypot adds nothing, not even a line);
//   3. the honeypot: one per part, no text, no box (getClientRects empty,
//      checkVisibility false), never focused by Tab, not in the accessibility
//      tree (the aria snapshots before and after differ only in link URLs);
//      rendering fetches the pixel once and never the honeypot;
//   4. a control: the same page with the honeypot given a word and its style
//      dropped must differ, or the comparison proves nothing.
// Offline: every request is answered here (the pixel: the edge's 43-byte GIF)
// or refused. Exits 1 on the first difference; with ARTIFACTS set, the
// screenshots of a failing mail are written there.
//
// usage: node honeypot_render.mjs DIR [ARTIFACTS]
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [dir, artifacts] = process.argv.slice(2);
const BASE = 'https://t.mailbeacon.test';
const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');
const WIDTH = 800;

let failed = 0;
function check(name, ok, detail) {
  if (ok) return;
  failed++;
  console.error(`FAIL: ${name}${detail === undefined ? '' : ': ' + detail}`);
}

const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
const context = await browser.newContext({ deviceScaleFactor: 1, colorScheme: 'light', reducedMotion: 'reduce' });
const requests = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  requests.push(url);
  if (url.startsWith(BASE + '/o/')) return route.fulfill({ status: 200, contentType: 'image/gif', body: GIF });
  return route.abort();
});
const page = await context.newPage();

async function render(html, height, fullPage) {
  await page.setViewportSize({ width: WIDTH, height });
  requests.length = 0;
  await page.setContent(html, { waitUntil: 'load' });
  return page.screenshot({ fullPage, animations: 'disabled', caret: 'hide' });
}

function save(name, shots) {
  if (!artifacts) return;
  mkdirSync(artifacts, { recursive: true });
  for (const [k, buf] of Object.entries(shots)) writeFileSync(join(artifacts, `${name}.${k}.png`), buf);
}

// The accessibility tree as Playwright's aria snapshot, link URLs left out
// (the rewrite changes them, and only them).
async function ariaTree() {
  return (await page.locator('body').ariaSnapshot())
    .split('\n')
    .filter((l) => !/^\s*- \/url: /.test(l))
    .join('\n');
}

const names = readdirSync(dir)
  .filter((f) => f.endsWith('.before.html'))
  .map((f) => f.slice(0, -'.before.html'.length))
  .sort();
check('mails to render', names.length >= 3, names.length);

for (const name of names) {
  const read = (k) => readFileSync(join(dir, `${name}.${k}.html`), 'utf8');
  const before = read('before'), after = read('after'), off = read('off');
  const hp = after.match(/<a href="https:\/\/t\.mailbeacon\.test\/h\/[A-Za-z0-9_-]{48}"[^>]*><\/a>/g) || [];
  check(`${name}: one honeypot in the rewritten part`, hp.length === 1, hp.length);
  check(`${name}: none with honeypot = no`, !off.includes(BASE + '/h/'));
  check(`${name}: the pixel in both`, after.includes(BASE + '/o/') && off.includes(BASE + '/o/'));

  // 1. before and after, in a viewport taller than either page
  await page.setViewportSize({ width: WIDTH, height: 400 });
  await page.setContent(before, { waitUntil: 'load' });
  const tall = (await page.evaluate(() => document.documentElement.scrollHeight)) + 40;
  const shotBefore = await render(before, tall, false);
  const shotAfter = await render(after, tall, false);
  const fetched = [...requests];
  const same = shotBefore.equals(shotAfter);
  check(`${name}: before and after rewriting, the same pixels (${WIDTH}x${tall})`, same);

  // 3. what the honeypot is to the browser
  const facts = await page.evaluate((base) => {
    const a = [...document.querySelectorAll('a')].filter((e) => e.href.startsWith(base + '/h/'));
    if (a.length !== 1) return { count: a.length };
    const e = a[0];
    return {
      count: 1,
      text: e.textContent,
      rects: e.getClientRects().length,
      visible: e.checkVisibility({ opacityProperty: true, visibilityProperty: true }),
      ariaHidden: e.getAttribute('aria-hidden'),
      tabIndex: e.tabIndex,
      links: document.querySelectorAll('a[href]').length,
    };
  }, BASE);
  check(`${name}: the honeypot in the DOM`, facts.count === 1, JSON.stringify(facts));
  check(`${name}: the honeypot has no text and no box`, facts.text === '' && facts.rects === 0 && !facts.visible,
        JSON.stringify(facts));
  check(`${name}: the honeypot is hidden from assistive technology and the tab order`,
        facts.ariaHidden === 'true' && facts.tabIndex === -1, JSON.stringify(facts));
  check(`${name}: rendering fetched the pixel once and never the honeypot`,
        fetched.filter((u) => u.startsWith(BASE + '/o/')).length === 1 && !fetched.some((u) => u.startsWith(BASE + '/h/')),
        fetched.join(' '));
  const focused = [];
  await page.locator('body').focus().catch(() => {});
  for (let i = 0; i < (facts.links || 0) + 2; i++) {
    await page.keyboard.press('Tab');
    focused.push(await page.evaluate(() => (document.activeElement && document.activeElement.href) || ''));
  }
  check(`${name}: Tab never reaches the honeypot`, !focused.some((h) => h.startsWith(BASE + '/h/')), focused.join(' '));
  const treeAfter = await ariaTree();
  await page.setContent(before, { waitUntil: 'load' });
  const treeBefore = await ariaTree();
  check(`${name}: the accessibility tree is the same (link URLs aside)`, treeAfter === treeBefore,
        `\n--- before\n${treeBefore}\n--- after\n${treeAfter}`);

  // 2. honeypot on and off, whole pages
  const fullOn = await render(after, 600, true);
  const fullOff = await render(off, 600, true);
  check(`${name}: with and without the honeypot, the same whole page`, fullOn.equals(fullOff));

  // 4. the control: a honeypot a person could see is caught
  const shown = after.replace(hp[0] || '<none>', (m) => m.replace(/ style="[^"]*"/, ' style="color:#c00"').replace('></a>', '>x</a>'));
  const shotShown = await render(shown, tall, false);
  check(`${name}: control: a visible honeypot changes the pixels`, hp.length === 1 && !shotShown.equals(shotBefore));

  if (failed) save(name, { before: shotBefore, after: shotAfter, 'full-on': fullOn, 'full-off': fullOff });
  console.log(`${name}: ${failed ? 'FAILED' : 'same pixels, honeypot unseen'} (${WIDTH}x${tall})`);
  if (failed) break;
}

await browser.close();
if (failed) process.exit(1);
console.log(`honeypot_render: ${names.length} mails, before and after identical`);
