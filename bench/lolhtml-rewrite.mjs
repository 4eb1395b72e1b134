// Cloudflare lol-html (wasm build, npm html-rewriter-wasm 0.4.1) doing mailbeacon's HTML job,
// as the comparison point for build/bench/mb-bench-rewrite --mode html.
//
// usage: node lolhtml-rewrite.mjs FILE ITERATIONS
//
// Each iteration: a fresh HTMLRewriter (one can only end() once), the whole file written as one
// chunk, every output chunk kept, then freed. The job, per iteration:
//   - every a[href] / area[href] whose value (trimmed, case-insensitive) starts with http:// or
//     https:// becomes https://t.mailbeacon.test/c/<token>?u=<encodeURIComponent(url)>, where url
//     is the attribute value with character references decoded (lol-html hands us raw values);
//   - a 1x1 pixel <img> is appended inside <body> (i.e. just before </body>).
// The token has the size of mailbeacon's: 36 bytes -> 48 base64url chars. HMAC-SHA256 is only
// 32 bytes, so it is laid out as a 20-byte header (version, key id, 16-byte message id, link
// index) + HMAC-SHA256(key, header || url) truncated to 16 bytes. It is a stand-in of equal
// cost, not the real codec.
//
// Prints one JSON line:
//   {"impl":"lol-html","file":...,"bytes":...,"iterations":...,"seconds":...,"mb_per_s":...,"links":...}
// bytes = input size; mb_per_s = bytes * iterations / seconds / 1e6. The warm-up run is checked:
// rewritten-link count in the output must equal the handler's count (and manifest.json's count
// when that file sits beside FILE), and the pixel must appear once, before </body>.
// LOLHTML_DUMP=PATH writes that first output to PATH (to diff against mailbeacon's).
import { createHmac } from "node:crypto";
import { readFileSync, existsSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { HTMLRewriter } from "html-rewriter-wasm";

const [file, iterArg] = process.argv.slice(2);
const iterations = Number.parseInt(iterArg ?? "", 10);
if (!file || !(iterations > 0)) {
  console.error("usage: node lolhtml-rewrite.mjs FILE ITERATIONS");
  process.exit(2);
}
const input = new Uint8Array(readFileSync(file));
const WARMUP = 5;

const KEY = Buffer.alloc(32, 0x6b); // fixed benchmark key
const CLICK_PREFIX = "https://t.mailbeacon.test/c/";
const PIXEL_PREFIX = "https://t.mailbeacon.test/o/";
const HTTP_RE = /^https?:\/\//i;
const REF_RE = /&(?:#[xX]([0-9a-fA-F]+);?|#([0-9]+);?|(amp|quot|lt|gt|apos);)/g;
const NAMED = { amp: "&", quot: '"', lt: "<", gt: ">", apos: "'" };

// Small character-reference decoder (numeric + the five XML names): enough for these inputs and
// the same order of work as a real decoder on values that mostly have no '&' at all.
function decodeRefs(v) {
  if (!v.includes("&")) return v;
  return v.replace(REF_RE, (_, hex, dec, name) =>
    name ? NAMED[name] : String.fromCodePoint(Number.parseInt(hex ?? dec, hex ? 16 : 10)));
}

// 36-byte token: header(20) || HMAC-SHA256(header || data)[0..16), base64url -> 48 chars.
function token(msgId, linkIndex, data) {
  const t = Buffer.allocUnsafe(36);
  t[0] = 1; // version
  t[1] = 7; // key id
  msgId.copy(t, 2);
  t.writeUInt16BE(linkIndex & 0xffff, 18);
  const h = createHmac("sha256", KEY);
  h.update(t.subarray(0, 20));
  if (data) h.update(data);
  h.digest().copy(t, 20, 0, 16);
  return t.toString("base64url");
}

// One full rewrite of `input`; returns { out: Buffer, links: number }.
async function rewriteOnce(iter) {
  const msgId = Buffer.alloc(16);
  msgId.writeUInt32BE(iter >>> 0, 12); // a different "message" per iteration
  const chunks = [];
  let links = 0;
  const linkHandler = {
    element(el) {
      const raw = el.getAttribute("href");
      if (raw === null) return;
      const url = decodeRefs(raw).trim();
      if (!HTTP_RE.test(url)) return;
      links++;
      el.setAttribute("href",
        `${CLICK_PREFIX}${token(msgId, links, url)}?u=${encodeURIComponent(url)}`);
    },
  };
  const rw = new HTMLRewriter((chunk) => chunks.push(chunk));
  try {
    rw.on("a[href]", linkHandler);
    rw.on("area[href]", linkHandler);
    rw.on("body", {
      element(el) {
        el.append(`<img src="${PIXEL_PREFIX}${token(msgId, 0xffff, null)}.gif" width="1" ` +
          `height="1" alt="" style="display:block;border:0;width:1px;height:1px">`, { html: true });
      },
    });
    await rw.write(input);
    await rw.end();
  } finally {
    rw.free();
  }
  return { out: Buffer.concat(chunks), links };
}

function count(hay, needle) {
  let n = 0;
  for (let i = hay.indexOf(needle); i !== -1; i = hay.indexOf(needle, i + needle.length)) n++;
  return n;
}

// Check one run's output; returns the rewritten-link count or exits non-zero.
function verify(out, handlerLinks) {
  const s = out.toString("utf8");
  const links = count(s, `href="${CLICK_PREFIX}`);
  const problems = [];
  if (links !== handlerLinks) problems.push(`output has ${links} rewritten links, handler ${handlerLinks}`);
  const manifest = join(dirname(file), "manifest.json");
  if (existsSync(manifest)) {
    const want = JSON.parse(readFileSync(manifest, "utf8"))[basename(file)]?.links;
    if (want !== undefined && want !== links) problems.push(`expected ${want} links (manifest), got ${links}`);
  }
  const pixel = s.indexOf(`src="${PIXEL_PREFIX}`);
  if (count(s, `src="${PIXEL_PREFIX}`) !== 1) problems.push("pixel not inserted exactly once");
  else if (/<\/body>/i.test(s) && pixel > s.search(/<\/body>/i)) problems.push("pixel after </body>");
  if (problems.length) {
    console.error(`lolhtml-rewrite: ${file}: ${problems.join("; ")}`);
    process.exit(1);
  }
  return links;
}

let links = -1;
for (let i = 0; i < WARMUP; i++) {
  const r = await rewriteOnce(i);
  if (i === 0) {
    links = verify(r.out, r.links);
    if (process.env.LOLHTML_DUMP) writeFileSync(process.env.LOLHTML_DUMP, r.out);
  }
}
let outBytes = 0;
const t0 = process.hrtime.bigint();
for (let i = 0; i < iterations; i++) {
  const r = await rewriteOnce(WARMUP + i);
  outBytes += r.out.length; // touch the result so nothing is optimised away
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
if (outBytes === 0) process.exit(1);

console.log(JSON.stringify({
  impl: "lol-html",
  file: basename(file),
  bytes: input.length,
  iterations,
  seconds: Number(seconds.toFixed(6)),
  mb_per_s: Number((input.length * iterations / seconds / 1e6).toFixed(3)),
  links,
}));
