#!/usr/bin/env bash
# The honeypot link cannot be seen, and the rest of the rewrite neither: each
# mail in tests/browser/mails/ is rewritten by mailbeacon-rewrite (pipe mode,
# as the MTA runs it) with honeypot yes and no, and honeypot_render.mjs
# renders the HTML before and after in Debian's Chromium (headless, through
# playwright-core) and compares the screenshots pixel for pixel.
# Needs /usr/bin/chromium and tests/browser/node_modules (scripts/install-deps.sh);
# works offline: no request leaves the browser.
# usage: honeypot_render.sh MAILBEACON_REWRITE
set -euo pipefail
rewrite=$1
here=$(cd "$(dirname "$0")" && pwd)
[ -x /usr/bin/chromium ] || { echo "no /usr/bin/chromium: run scripts/install-deps.sh" >&2; exit 1; }
[ -f "$here/node_modules/playwright-core/package.json" ] ||
  { echo "no playwright-core in $here/node_modules: run scripts/install-deps.sh" >&2; exit 1; }
tmp=$(mktemp -d /tmp/mb-browser.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$rewrite" --keygen "$tmp/keys" > /dev/null
export MAILBEACON_BASE_URL=https://t.mailbeacon.test MAILBEACON_KEY_FILE=$tmp/keys MAILBEACON_REDIS= \
  MAILBEACON_LOG_FILE=stderr MAILBEACON_NEVER_TRACK=
for f in "$here"/mails/*.html; do
  n=$(basename "$f" .html)
  {
    printf 'From: Sam Ortega <sam@ourco.example>\r\nTo: Dana Lee <dana@acme.example>\r\nSubject: %s\r\n' "$n"
    printf 'Message-ID: <%s@ourco.example>\r\nMIME-Version: 1.0\r\n' "$n"
    printf 'Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
    sed 's/$/\r/' "$f"
  } > "$tmp/$n.eml"
  "$rewrite" < "$tmp/$n.eml" > "$tmp/$n.on.eml"
  MAILBEACON_HONEYPOT=no "$rewrite" < "$tmp/$n.eml" > "$tmp/$n.off.eml"
  # the decoded HTML part of each (the rewriter may re-encode it as quoted-printable)
  python3 - "$tmp/$n" <<'PY'
import email, sys
from email import policy
for k, suffix in (("before", ""), ("after", ".on"), ("off", ".off")):
    m = email.message_from_binary_file(open(sys.argv[1] + suffix + ".eml", "rb"), policy=policy.default)
    open("%s.%s.html" % (sys.argv[1], k), "w", encoding="utf-8").write(m.get_body(("html",)).get_content())
PY
done
node "$here/honeypot_render.mjs" "$tmp" "${MB_BROWSER_ARTIFACTS:-}"
