#!/usr/bin/env python3
"""Speaks the milter protocol (version 6) to a running mailbeacon-rewrite
--milter, as an MTA would, and checks what it asks the MTA to change.

usage: milter_protocol.py PORT|SOCKET_PATH KEYFILE REWRITE_BINARY DATA_DIR

Checks:
  - a body over 64 KB sent in 65,535-octet chunks comes back, through
    SMFIR_REPLBODY chunks of at most 65,535 octets, rewritten exactly as pipe
    mode rewrites it (tokens aside), every token verifying (HMAC recomputed
    here from the key file, independently of the C code);
  - an 8bit part that must become quoted-printable changes its
    Content-Transfer-Encoding header before the body;
  - "X-Mailbeacon: off" is deleted and the body left alone;
  - signed mail and mail to internal recipients are accepted unchanged;
  - several messages on one connection, and the rep taken from {auth_authen};
  - on a Unix socket the milter asks for no replies before end of message
    (connect, MAIL, RCPT, headers, end of headers, body), over TCP it does not.
Ends with "N passed, M failed".
"""
import base64
import hashlib
import hmac
import os
import re
import socket
import struct
import subprocess
import sys
import urllib.parse

WHERE, KEYFILE, REWRITE, DATA = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
LOCAL = "/" in WHERE  # a Unix socket's path, else a TCP port on 127.0.0.1
NR_ALL = 0x1000 | 0x4000 | 0x8000 | 0x80 | 0x40000 | 0x80000  # NR_CONN, MAIL, RCPT, HDR, EOH, BODY
BASE = "https://t.mailbeacon.test"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail))


def keys():
    out = {}
    for line in open(KEYFILE):
        f = line.split()
        if f and not f[0].startswith("#"):
            out[int(f[0])] = bytes.fromhex(f[1])
    return out


KEYS = keys()


def verify(token, url):
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    key = KEYS.get(raw[1])
    if key is None or len(raw) != 36:
        return None
    mac = hmac.new(key, b"mailbeacon" + raw[:22] + url, hashlib.sha256).digest()[:14]
    if not hmac.compare_digest(mac, raw[22:]):
        return None
    return {"kind": raw[0] & 15, "recipient": struct.unpack(">H", raw[18:20])[0],
            "link": struct.unpack(">H", raw[20:22])[0]}


class Milter:
    def __init__(self):
        if LOCAL:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(30)
            self.s.connect(WHERE)
        else:
            self.s = socket.create_connection(("127.0.0.1", int(WHERE)), timeout=30)
        self.buf = b""
        # offer every action and every protocol option; keep what the milter picks
        self.send(b"O", struct.pack(">III", 6, 0x1FF, 0x1FFFFF))
        cmd, data = self.recv()
        assert cmd == b"O", cmd
        _, self.actions, self.proto = struct.unpack(">III", data[:12])
        # the SMTP client's address (MB_MILTER_CLIENT, default 127.0.0.1): the sent record's client_ip
        client = os.environ.get("MB_MILTER_CLIENT", "127.0.0.1").encode()
        self.send(b"C", b"mta.test\x00" + b"4" + struct.pack(">H", 25) + client + b"\x00")
        self.maybe_reply(0x1000)  # SMFIP_NR_CONN

    def send(self, cmd, data=b""):
        self.s.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def recv(self):
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">I", self.buf[:4])[0]:
            chunk = self.s.recv(1 << 20)
            if not chunk:
                raise EOFError("milter closed the connection")
            self.buf += chunk
        n = struct.unpack(">I", self.buf[:4])[0]
        pkt, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return pkt[:1], pkt[1:]

    def maybe_reply(self, nr_flag):
        if not (self.proto & nr_flag):
            cmd, _ = self.recv()
            assert cmd in (b"c", b"a"), cmd

    def message(self, raw, sender, rcpts, auth=None, queue_id="TESTQ1"):
        """Sends one message; returns (final reply, header changes, new body or None, body chunk sizes)."""
        if auth:
            self.send(b"D", b"M" + b"{auth_authen}\x00" + auth.encode() + b"\x00")
        self.send(b"M", b"<" + sender.encode() + b">\x00")
        self.maybe_reply(0x4000)  # SMFIP_NR_MAIL
        for r in rcpts:
            self.send(b"R", b"<" + r.encode() + b">\x00")
            self.maybe_reply(0x8000)  # SMFIP_NR_RCPT
        sep = raw.index(b"\r\n\r\n")
        head, body = raw[:sep + 2], raw[sep + 4:]
        for m in re.finditer(rb"([^:\r\n]+):((?:[^\r\n]*\r\n)(?:[ \t][^\r\n]*\r\n)*)", head):
            name, value = m.group(1), m.group(2)[:-2]
            if not (self.proto & 0x100000):  # SMFIP_HDR_LEADSPC not in force
                value = value.lstrip(b" ")
            self.send(b"L", name + b"\x00" + value + b"\x00")
            self.maybe_reply(0x80)  # SMFIP_NR_HDR
        self.send(b"N")
        self.maybe_reply(0x40000)  # SMFIP_NR_EOH
        for i in range(0, len(body), 65535):
            self.send(b"B", body[i:i + 65535])
            self.maybe_reply(0x80000)  # SMFIP_NR_BODY
        self.send(b"D", b"E" + b"i\x00" + queue_id.encode() + b"\x00")
        self.send(b"E")
        changes, newbody, sizes = [], None, []
        while True:
            cmd, data = self.recv()
            if cmd == b"b":
                newbody = (newbody or b"") + data
                sizes.append(len(data))
            elif cmd == b"m":
                idx = struct.unpack(">I", data[:4])[0]
                name, value = data[4:].split(b"\x00")[:2]
                changes.append(("change", idx, name.decode(), value.decode()))
            elif cmd == b"h":
                name, value = data.split(b"\x00")[:2]
                changes.append(("add", 0, name.decode(), value.decode()))
            elif cmd in (b"c", b"a", b"t", b"r"):
                return cmd, changes, newbody, sizes, head, body
            else:
                raise AssertionError("unexpected reply %r" % cmd)

    def close(self):
        self.send(b"Q")
        self.s.close()


def load(name):
    return open("%s/%s" % (DATA, name), "rb").read()


def tokens(text):
    """(kind, token, url bytes) of every tracking URL in some HTML text."""
    out = []
    for m in re.finditer(r"%s/c/([A-Za-z0-9_-]{48})\?u=([^\"']+)" % re.escape(BASE), text):
        out.append(("c", m.group(1), urllib.parse.unquote_to_bytes(m.group(2).replace("&amp;", "&"))))
    for m in re.finditer(r"%s/o/([A-Za-z0-9_-]{48})\.gif" % re.escape(BASE), text):
        out.append(("o", m.group(1), b""))
    for m in re.finditer(r"%s/h/([A-Za-z0-9_-]{48})\"" % re.escape(BASE), text):
        out.append(("h", m.group(1), b""))
    return out


def normalise(msg):
    """Message bytes with the tokens (which hold a random UUID) blanked."""
    return re.sub(rb"/([och])/[A-Za-z0-9_-]{48}", rb"/\1/TOKEN", msg)


def pipe_mode(msg, sender, rcpts):
    args = [REWRITE, "--sender", sender] + sum((["--recipient", r] for r in rcpts), [])
    return subprocess.run(args, input=msg, stdout=subprocess.PIPE, check=True).stdout


def decoded_html(msg):
    import email
    from email import policy
    m = email.message_from_bytes(msg, policy=policy.default)
    for part in m.walk():
        if part.get_content_type() == "text/html" and not part.is_attachment():
            return part.get_content()
    return ""


m = Milter()
check("negotiated leading space", m.proto & 0x100000)
if LOCAL:
    check("Unix socket: no replies before end of message", m.proto & NR_ALL == NR_ALL, hex(m.proto))
else:
    check("TCP: a reply to every step", m.proto & NR_ALL == 0, hex(m.proto))

# 1. a body over 64 KB, several chunks each way
raw = load("22-qp-64k-boundary-link.eml")
reply, changes, newbody, sizes, head, body = m.message(raw, "sam@ourco.example", ["dana@acme.example"],
                                                       auth="sam.ortega@ourco.example")
check("64k: continue", reply == b"c", reply)
check("64k: body replaced", newbody is not None)
check("64k: several replbody chunks", len(sizes) >= 2 and max(sizes) <= 65535, sizes)
check("64k: no header change", changes == [], changes)
if newbody:
    out = head + b"\r\n" + newbody
    want = pipe_mode(raw, "sam.ortega@ourco.example", ["dana@acme.example"])
    # quoted-printable may break a line inside a token, so compare decoded HTML
    check("64k: same HTML as pipe mode (tokens aside)",
          normalise(decoded_html(out).encode()) == normalise(decoded_html(want).encode()))
    check("64k: same headers as pipe mode", out[:out.index(b"\r\n\r\n")] == want[:want.index(b"\r\n\r\n")])
    found = tokens(decoded_html(out))
    check("64k: links, pixel and honeypot present", len(found) == 6, len(found))
    check("64k: one honeypot, kind 3, link 0",
          [(k, (verify(t, u) or {}).get("kind"), (verify(t, u) or {}).get("link")) for k, t, u in found
           if k == "h"] == [("h", 3, 0)])
    for kind, tok, url in found:
        v = verify(tok, url)
        check("64k: token verifies", v is not None and v["recipient"] == 1, (kind, tok))

# 2. 8bit line that grows past 998: CTE changes to quoted-printable, body follows
raw = load("17-8bit-990-octet-line.eml")
reply, changes, newbody, sizes, head, body = m.message(raw, "sam@ourco.example", ["dana@acme.example"])
check("8bit: continue", reply == b"c", reply)
check("8bit: CTE changed", changes == [("change", 1, "Content-Transfer-Encoding", " quoted-printable")], changes)
check("8bit: lines <= 998", newbody is not None and max(len(l) for l in newbody.split(b"\r\n")) <= 998)

# 3. X-Mailbeacon: off: the header goes, the body stays
raw = load("34-x-mailbeacon-off.eml")
reply, changes, newbody, sizes, head, body = m.message(raw, "sam@ourco.example", ["dana@acme.example"])
check("opt-out: header deleted", changes == [("change", 1, "X-Mailbeacon", "")], changes)
check("opt-out: body untouched", newbody is None)

# 4. signed mail, internal recipients: accepted unchanged
for name, rcpt in (("06-multipart-signed.eml", "dana@acme.example"),
                   ("01-single-html-7bit.eml", "colleague@ourco.example")):
    reply, changes, newbody, sizes, head, body = m.message(load(name), "sam@ourco.example", [rcpt])
    check("%s: accepted unchanged" % name, reply == b"a" and not changes and newbody is None, (reply, changes))

# 5. several recipients: index 0 ("someone")
raw = load("01-single-html-7bit.eml")
reply, changes, newbody, sizes, head, body = m.message(raw, "sam@ourco.example",
                                                       ["dana@acme.example", "lee@acme.example"])
found = tokens(decoded_html(head + b"\r\n" + (newbody or b"")))
check("two recipients: rewritten", len(found) == 5, len(found))
check("two recipients: index 0", all(verify(t, u) and verify(t, u)["recipient"] == 0 for _, t, u in found))

# 5b. a bare SASL login as {auth_authen}: the rep is made an address from it
#     (rep_map, auth_domain) or is the envelope sender (milter.sh checks the records)
reply, changes, newbody, sizes, head, body = m.message(load("01-single-html-7bit.eml"), "shared@ourco.example",
                                                       ["dana@acme.example"], auth="jdoe")
check("bare login: rewritten", reply == b"c" and newbody is not None, reply)

# 5c. the tracking policy (consent.sh runs the milter with a consent copy in
#     which granted@kunde.de granted (EU), refused@client.com refused (US),
#     withdrawn@client.fr and later@client.com (US) withdrew, unknown-fr@client.com
#     is unknown in FR; track_default_eu = none, track_default_other = all):
#     consent granted, refused, withdrawn and unknown, in and outside the EU,
#     and one copy to several tracked only when every recipient allows it
if os.environ.get("MB_MILTER_CONSENT"):
    raw = load("01-single-html-7bit.eml")
    for rcpts, tracked in ((["granted@kunde.de"], True), (["granted@kunde.de", "refused@client.com"], False),
                           (["refused@client.com"], False), (["nobody@firma.de"], False),
                           (["withdrawn@client.fr"], False), (["later@client.com"], False),
                           (["unknown-fr@client.com"], False), (["cliente@loja.com.br"], True),
                           (["granted@kunde.de", "cliente@loja.com.br"], True),
                           (["cliente@loja.com.br", "withdrawn@client.fr"], False)):
        reply, changes, newbody, sizes, head, body = m.message(raw, "sam@ourco.example", rcpts)
        if tracked:
            check("policy %s: rewritten" % rcpts, reply == b"c" and newbody is not None, reply)
        else:
            check("policy %s: accepted unchanged" % rcpts, reply == b"a" and not changes and newbody is None,
                  (reply, changes))
m.close()

# 6. many connections at once (libmilter's thread pool): each gets its own
#    message rewritten, nothing mixed up between connections
import threading

results = []


def worker(k):
    c = Milter()
    for n in range(5):
        rcpt = "r%d.%d@acme.example" % (k, n)
        name = ("01-single-html-7bit.eml", "12-mixed-related-alternative-pdf.eml", "04-base64-utf8.eml")[n % 3]
        reply, changes, newbody, sizes, head, body = c.message(load(name), "sam@ourco.example", [rcpt])
        found = tokens(decoded_html(head + b"\r\n" + (newbody or b"")))
        results.append(reply == b"c" and len(found) >= 2 and all(verify(t, u) for _, t, u in found))
    c.close()


threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check("8 concurrent connections x 5 messages", len(results) == 40 and all(results), results.count(False))
print("milter_protocol: %d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
