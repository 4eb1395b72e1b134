#!/usr/bin/env python3
"""Checks a message captured by smtp-sink against the message that was sent.

  postfix_check.py rewritten CAPTURED ORIGINAL KEYFILE [RECIPIENT_INDEX]
      the HTML was rewritten, every token verifies (HMAC recomputed here from
      the key file) with the expected recipient index (default 1), and every
      part that is not HTML is byte-identical to the original
  postfix_check.py body-identical CAPTURED ORIGINAL
      the body is byte-identical to the original's
  postfix_check.py index CAPTURED KEYFILE
      prints the recipient index the tokens carry (one value, or fails)
"""
import base64
import email
import hashlib
import hmac
import re
import struct
import sys
import urllib.parse
from email import policy

BASE = "https://t.mailbeacon.test"


def captured_message(path):
    """smtp-sink's dump: X-* envelope lines, then the message as relayed."""
    data = open(path, "rb").read().replace(b"\r\n", b"\n")
    lines = data.split(b"\n")
    i = 0
    while i < len(lines) and re.match(rb"^X-(Client-Addr|Client-Proto|Helo-Args|Mail-Args|Rcpt-Args):", lines[i]):
        i += 1
    msg = b"\n".join(lines[i:])
    # the dump ends each message with two extra line feeds
    if not msg.endswith(b"\n\n"):
        sys.exit("%s: not an smtp-sink dump" % path)
    return msg[:-2]


def body(msg):
    msg = msg.replace(b"\r\n", b"\n")
    return msg[msg.index(b"\n\n") + 2:]


def keys(path):
    out = {}
    for line in open(path):
        f = line.split()
        if f and not f[0].startswith("#"):
            out[int(f[0])] = bytes.fromhex(f[1])
    return out


def tokens(msg, keyring):
    m = email.message_from_bytes(msg, policy=policy.default)
    found = []
    for part in m.walk():
        if part.get_content_type() != "text/html" or part.is_attachment():
            continue
        html = part.get_content()
        for kind, tok, u in re.findall(r"%s/(c|o)/([A-Za-z0-9_-]{48})(?:\?u=([^\"']+)|\.gif)" % re.escape(BASE), html):
            url = urllib.parse.unquote_to_bytes(u.replace("&amp;", "&")) if kind == "c" else b""
            raw = base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4))
            key = keyring.get(raw[1])
            ok = key is not None and hmac.compare_digest(
                hmac.new(key, b"mailbeacon" + raw[:22] + url, hashlib.sha256).digest()[:14], raw[22:])
            found.append((kind, ok, struct.unpack(">H", raw[18:20])[0], raw[2:18].hex()))
    return found


def leaves(msg):
    m = email.message_from_bytes(msg.replace(b"\r\n", b"\n"), policy=policy.compat32)
    out = []
    for part in m.walk():
        if part.is_multipart():
            continue
        out.append((part.get_content_type(), part.get("Content-Disposition", ""), part.get_payload(decode=False)))
    return out


def main():
    mode = sys.argv[1]
    if mode == "body-identical":
        got, want = captured_message(sys.argv[2]), open(sys.argv[3], "rb").read()
        if body(got) != body(want):
            sys.exit("%s: body differs from %s" % (sys.argv[2], sys.argv[3]))
        return
    if mode == "keyids":  # the ids of the keys that signed the message's tokens (all must verify)
        found = tokens(captured_message(sys.argv[2]), keys(sys.argv[3]))
        if not found or not all(f[1] for f in found):
            sys.exit("%s: tokens missing or invalid: %s" % (sys.argv[2], found))
        raw = re.findall(rb"/(?:c|o)/([A-Za-z0-9_-]{48})", captured_message(sys.argv[2]).replace(b"=\r\n", b""))
        print(" ".join(str(i) for i in sorted({base64.urlsafe_b64decode(t + b"=" * (-len(t) % 4))[1] for t in raw})))
        return
    if mode == "index":
        found = tokens(captured_message(sys.argv[2]), keys(sys.argv[3]))
        idx = {f[2] for f in found}
        if not found or not all(f[1] for f in found) or len(idx) != 1:
            sys.exit("%s: tokens missing, invalid or mixed: %s" % (sys.argv[2], found))
        print(idx.pop(), {f[3] for f in found}.pop())
        return
    got, want = captured_message(sys.argv[2]), open(sys.argv[3], "rb").read()
    keyring = keys(sys.argv[4])
    index = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    found = tokens(got, keyring)
    if not any(f[0] == "o" for f in found) or not any(f[0] == "c" for f in found):
        sys.exit("%s: no pixel or no tracked link" % sys.argv[2])
    bad = [f for f in found if not f[1] or f[2] != index]
    if bad:
        sys.exit("%s: tokens that do not verify or carry another index: %s" % (sys.argv[2], bad))
    g, w = leaves(got), leaves(want)
    if len(g) != len(w):
        sys.exit("%s: %d parts, sent %d" % (sys.argv[2], len(g), len(w)))
    for (gt, gd, gp), (wt, wd, wp) in zip(g, w):
        if gt != wt:
            sys.exit("%s: part type %s, sent %s" % (sys.argv[2], gt, wt))
        if gt != "text/html" and gp != wp:
            sys.exit("%s: %s part changed" % (sys.argv[2], gt))
    # every header that was sent is still there, unchanged
    head = lambda m: m.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
    gh = head(got)
    for line in re.split(rb"\n(?![ \t])", head(want)):
        if line.lower().startswith(b"content-transfer-encoding"):
            continue
        if line not in gh:
            sys.exit("%s: header changed or lost: %r" % (sys.argv[2], line[:80]))


main()
