#!/usr/bin/env python3
"""Helpers for the server tests (tokens signed here from the key file, so the
server is checked against an independent implementation of docs/tokens.md).

  server_check.py token KEYFILE KIND MESSAGE_HEX RECIPIENT LINK [URL]
      prints a token (KIND o or c) signed with the file's signing key
  server_check.py events REDIS_SOCKET STREAM
      prints every hit event in the stream as JSON lines (entries unpacked);
      REDIS_SOCKET is the path of Redis's Unix socket
  server_check.py hits PORT URLFILE COUNT
      sends COUNT requests over one keep-alive connection, cycling through
      the URLs (path?query) in URLFILE; prints the status counts as JSON
"""
import base64
import hashlib
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
    head = bytes([0x10 | (1 if kind == "o" else 2), kid]) + bytes.fromhex(msg_hex) + \
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


cmd = sys.argv[1]
if cmd == "token":
    print(token(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6],
                sys.argv[7].encode() if len(sys.argv) > 7 else b""))
elif cmd == "events":
    events(sys.argv[2], sys.argv[3])
elif cmd == "hits":
    hits(sys.argv[2], sys.argv[3], sys.argv[4])
