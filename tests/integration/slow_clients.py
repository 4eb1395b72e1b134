#!/usr/bin/env python3
"""Slow clients against mailbeacon-server's public port, and a normal client
beside them (tests/integration/server_slow.sh).

  slow_clients.py PORT ADMIN_PORT PIXEL_PATH SECONDS SOURCES PER_SOURCE [reconnect]

Opens SOURCES x PER_SOURCE connections from the loopback addresses
127.0.1.1, 127.0.1.2, ... (PER_SOURCE from each), each sending the start of
a request and then one header byte a second, never finishing it (a
"slowloris"); with "reconnect", a connection the server closes is opened
again at once, as an attacker would. Meanwhile, from 127.0.0.1, a new
connection every 0.1 s asks for PIXEL_PATH and every 0.5 s for the admin
/healthz. After SECONDS, prints one JSON object:
  opened, closed_by_server, refused_fast (closed within 0.5 s of opening:
  refused, not timed out), still_open, normal_ok, normal_failed,
  normal_worst_ms, health_ok, health_failed, and the first failure.
"""
import json
import os
import resource
import selectors
import socket
import sys
import threading
import time

port, aport, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
seconds, sources, per = float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
reconnect = len(sys.argv) > 7 and sys.argv[7] == "reconnect"
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

sel = selectors.DefaultSelector()
stats = {"opened": 0, "closed_by_server": 0, "refused_fast": 0}
HEAD = b"GET /o/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.gif HTTP/1.1\r\nHost: t\r\nX-Slow: "


def open_slow(src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    stats["opened"] += 1
    d = {"src": src, "t": time.monotonic(), "sent": False}
    try:
        s.send(HEAD)
        d["sent"] = True
    except OSError:
        pass  # not connected yet: at the next byte
    sel.register(s, selectors.EVENT_READ, d)


normal = {"ok": 0, "failed": 0, "worst_ms": 0.0, "first_failure": None}
health = {"ok": 0, "failed": 0}
stop = time.monotonic() + seconds


def get(to_port, target, timeout):
    """One GET on a new connection from 127.0.0.1; the whole answer."""
    c = socket.create_connection(("127.0.0.1", to_port), timeout=timeout, source_address=("127.0.0.1", 0))
    c.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        b = c.recv(4096)
        if not b:
            break
        data += b
    c.close()
    return data


def normal_client():
    while time.monotonic() < stop:
        t0 = time.monotonic()
        try:
            data = get(port, path, 15)
            if not data.startswith(b"HTTP/1.1 200") or b"image/gif" not in data:
                raise RuntimeError("answer: %r" % data[:80])
            normal["ok"] += 1
            normal["worst_ms"] = max(normal["worst_ms"], (time.monotonic() - t0) * 1000)
        except Exception as e:  # noqa: BLE001 - any failure is reported
            normal["failed"] += 1
            normal["first_failure"] = normal["first_failure"] or repr(e)
        time.sleep(0.1)


def health_client():
    while time.monotonic() < stop:
        try:
            health["ok" if get(aport, "/healthz", 5).startswith(b"HTTP/1.1 200") else "failed"] += 1
        except Exception:  # noqa: BLE001
            health["failed"] += 1
        time.sleep(0.5)


# the normal clients in a process of their own: not slowed by this one's loop
rfd, wfd = os.pipe()
child = os.fork()
if child == 0:
    os.close(rfd)
    threads = [threading.Thread(target=normal_client), threading.Thread(target=health_client)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    os.write(wfd, json.dumps({"normal": normal, "health": health}).encode())
    os._exit(0)
os.close(wfd)
# after the fork: the child holds none of these sockets
for i in range(sources):
    for _ in range(per):
        open_slow("127.0.1.%d" % (i + 1))
next_byte = time.monotonic() + 1
while time.monotonic() < stop:
    for key, _ in sel.select(timeout=0.2):
        s, d = key.fileobj, key.data
        try:
            got = s.recv(4096)
        except OSError:
            got = b""
        if got:
            continue  # an answer (none is expected before the request ends)
        sel.unregister(s)
        s.close()
        stats["closed_by_server"] += 1
        if time.monotonic() - d["t"] < 0.5:
            stats["refused_fast"] += 1
        if reconnect and time.monotonic() < stop:
            open_slow(d["src"])
    if time.monotonic() >= next_byte:
        next_byte += 1
        for key in list(sel.get_map().values()):
            s, d = key.fileobj, key.data
            try:
                s.send(b"x" if d["sent"] else HEAD)
                d["sent"] = True
            except (BlockingIOError, InterruptedError):
                pass  # not connected yet
            except OSError:
                pass  # closed: the read side reports it
got = b""
while True:
    b = os.read(rfd, 65536)
    if not b:
        break
    got += b
os.waitpid(child, 0)
res = json.loads(got)
normal, health = res["normal"], res["health"]
print(json.dumps({**stats, "still_open": len(sel.get_map()), "normal_ok": normal["ok"],
                  "normal_failed": normal["failed"], "normal_worst_ms": round(normal["worst_ms"]),
                  "health_ok": health["ok"], "health_failed": health["failed"],
                  "first_failure": normal["first_failure"]}))
