#!/usr/bin/env python3
"""Helpers for the server tests (tokens signed here from the key file, so the
server is checked against an independent implementation of docs/tokens.md).

  server_check.py token KEYFILE KIND MESSAGE_HEX RECIPIENT LINK [URL]
      prints a token (KIND o, c or h) signed with the file's signing key
  server_check.py events REDIS_SOCKET STREAM
      prints every hit event in the stream as JSON lines (entries unpacked);
      REDIS_SOCKET is the path of Redis's Unix socket
  server_check.py hits PORT URLFILE COUNT
      sends COUNT requests over one keep-alive connection, cycling through
      the URLs (path?query) in URLFILE; prints the status counts as JSON
  server_check.py roundtrip REWRITE EDGE_PORT SEED COUNT
      COUNT random link targets (spaces, non-ASCII, every printable special)
      in one HTML message, rewritten by REWRITE (base_url, key_file from the
      environment); every link it tracked is clicked at the edge: it must
      answer 302 with the target as a browser would request it (the bytes
      outside printable ASCII percent-encoded, nothing else changed). Prints
      how many were tracked; exits 1 on the first difference.
"""
import base64
import hashlib
import html
import html.parser
import random
import re
import hmac
import http.client
import json
import socket
import subprocess
import sys


def signing_key(path):
    keys, sign = {}, None
    for line in open(path):
        f = line.split()
        if f and not f[0].startswith("#"):
            keys[int(f[0])] = bytes.fromhex(f[1])
            if len(f) > 2 and f[2] == "sign":
                sign = int(f[0])
    return sign, keys[sign]


def token(keyfile, kind, msg_hex, rcpt, link, url=b""):
    kid, key = signing_key(keyfile)
    head = bytes([0x10 | {"o": 1, "c": 2, "h": 3}[kind], kid]) + bytes.fromhex(msg_hex) + \
        int(rcpt).to_bytes(2, "big") + int(link).to_bytes(2, "big")
    mac = hmac.new(key, b"mailbeacon" + head + url, hashlib.sha256).digest()[:14]
    return base64.urlsafe_b64encode(head + mac).decode().rstrip("=")


def events(sock, stream):
    out = subprocess.run(["redis-cli", "-s", sock, "--raw", "XRANGE", stream, "-", "+"],
                         stdout=subprocess.PIPE, check=True).stdout.decode("utf-8", "replace")
    # entries: id, then field/value lines; hit entries carry n and d
    lines = out.split("\n")
    i, found = 0, []
    while i < len(lines):
        if not lines[i] or "-" not in lines[i] or not lines[i].split("-")[0].isdigit():
            i += 1
            continue
        i += 1
        fields = {}
        while i + 1 < len(lines) and lines[i] in ("type", "v", "n", "d", "message", "message_id", "rep", "recipients",
                                                     "token_recipient", "subject", "sent_at", "links"):
            name = lines[i]
            if name == "d":  # the packed lines; d is last
                n = int(fields["n"])
                fields["d"] = lines[i + 1:i + 1 + n]
                i += 1 + n
            else:
                fields[name] = lines[i + 1]
                i += 2
        if fields.get("type") == "hits":
            assert len(fields["d"]) == int(fields["n"]), fields
            for l in fields["d"]:
                c = l.split("\t")
                found.append({"id": c[0], "kind": c[1], "message": c[2], "recipient": int(c[3]), "link": int(c[4]),
                              "time_us": int(c[5]), "ip": c[6], "method": c[7], "edge": c[8], "ua": c[9],
                              "url": c[10]})
    for e in found:
        print(json.dumps(e))


def hits(port, urlfile, count):
    urls = [u.strip() for u in open(urlfile) if u.strip()]
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    status = {}
    for i in range(int(count)):
        conn.request("GET", urls[i % len(urls)], headers={"User-Agent": "mailbeacon-test/1.0"})
        r = conn.getresponse()
        r.read()
        status[r.status] = status.get(r.status, 0) + 1
    print(json.dumps(status, sort_keys=True))


class Hrefs(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs).get("href"))


def browser_form(target):
    """The target as a browser requests it after following the link: the
    bytes outside printable ASCII (the space among them) percent-encoded."""
    return "".join(chr(b) if 0x20 < b < 0x7f else "%%%02X" % b for b in target.encode())


def roundtrip(rewrite, port, seed, count):
    rnd = random.Random(int(seed))
    pieces = list("abcXYZ019-._~!$&'()*+,;=:@/?#[]^`{}|\\\"<>%") + [" ", "%20", "%2F", "\u00e9", "\u65e5\u672c",
                                                                       "a b", "q=1&r=2", "\U0001F600"]
    targets = []
    for i in range(int(count)):
        host = rnd.choice(["example.com", "EXAMPLE.com", "example.com:8443", "sub.example.org"])
        rest = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 24))).strip()
        targets.append(rnd.choice(["https", "http", "HTTPS"]) + "://" + host + "/" + rest)
    targets += ["https://example.com/my file.pdf", "https://example.com/a b?c d=e f#g h"]
    body = "<html><body>\n" + "\n".join('<p><a href="%s">link %d</a></p>' % (html.escape(t, quote=True), i)
                                        for i, t in enumerate(targets)) + "\n</body></html>\n"
    msg = ("From: rep@ourco.example\r\nTo: dana@acme.example\r\nSubject: links\r\nMessage-ID: <rt@ourco.example>\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + body.replace("\n", "\r\n"))
    out = subprocess.run([rewrite, "--recipient", "dana@acme.example"], input=msg.encode(), stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    p = Hrefs()
    p.feed(out[out.index("\r\n\r\n") + 4:])
    base = subprocess.run([rewrite, "--print-config"], stdout=subprocess.PIPE, check=True).stdout.decode()
    base = re.search(r"^base_url = (.*)$", base, re.M).group(1)
    p.hrefs = [h for h in p.hrefs if not h.startswith(base + "/h/")]  # the honeypot: no target of ours
    assert len(p.hrefs) == len(targets), (len(p.hrefs), len(targets))
    conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
    tracked = spaces = 0
    for t, h in zip(targets, p.hrefs):
        if h == t:
            continue  # left as it was (a placeholder, too long, ...)
        path = h[h.index("/c/"):]
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        want = browser_form(t)
        if r.status != 302 or r.getheader("Location") != want:
            print("target %r: tracked as %s, the edge answered %d %r, want 302 %r" %
                  (t, path, r.status, r.getheader("Location"), want))
            sys.exit(1)
        tracked += 1
        spaces += " " in t
    print(json.dumps({"targets": len(targets), "tracked": tracked, "with_spaces": spaces}))


cmd = sys.argv[1]
if cmd == "token":
    print(token(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6],
                sys.argv[7].encode() if len(sys.argv) > 7 else b""))
elif cmd == "events":
    events(sys.argv[2], sys.argv[3])
elif cmd == "hits":
    hits(sys.argv[2], sys.argv[3], sys.argv[4])
elif cmd == "roundtrip":
    roundtrip(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
