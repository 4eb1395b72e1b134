#!/usr/bin/env python3
"""Client side of bench/run-alerts.sh (asyncio, raw HTTP/1.1, no libraries).

latency API EDGE TOKEN PROBES UA SPACING_MS
    One alert stream (GET /v1/alerts/stream with the rep token); then, every
    SPACING_MS, one pixel hit through the edge for each line of PROBES (a
    message's open token) with user agent UA. For each alert the stream
    delivers: the time it was read minus the event's time at the edge
    (occurred_at in the alert). Prints JSON {"n", "p50_ms", "p99_ms", "max_ms"}.

streams API TOKEN N EDGE PROBE UA
    N idle streams of one rep at once, the server's memory before and after
    (VmRSS of the pid in $SERVER_PID); then one hit through the edge and the
    time each stream read its alert, from the hit's time at the edge. Prints
    JSON {"streams", "rss_before_kb", "rss_after_kb", "kb_per_stream",
    "got", "p50_ms", "p99_ms", "max_ms"}."""
import asyncio
import datetime
import json
import os
import sys
import time


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else None


async def open_stream(port, token):
    r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    w.write(f"GET /v1/alerts/stream HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    await w.drain()
    while (await r.readline()) not in (b"\r\n", b""):  # the headers
        pass
    return r, w


async def read_alerts(r, out):
    """SSE in chunked transfer encoding (an event may span chunks): each
    data line is an alert; out gets (read time, alert)."""
    buf = b""
    while True:
        size = await r.readline()
        if not size or int(size.split(b";")[0], 16) == 0:
            return
        buf += await r.readexactly(int(size.split(b";")[0], 16))
        await r.readexactly(2)  # the chunk's CRLF
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.startswith(b"data: "):
                out.append((time.time(), json.loads(line[6:])))


def edge_ms(a):
    return datetime.datetime.fromisoformat(a["occurred_at"]).timestamp()


async def hit(port, tok, ua):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET /o/{tok}.gif HTTP/1.1\r\nHost: b\r\nUser-Agent: {ua}\r\nConnection: close\r\n\r\n".encode())
    await w.drain()
    await r.read()
    w.close()


async def latency(api, edge, token, probes, ua, spacing_ms):
    toks = [l.strip() for l in open(probes) if l.strip()]
    r, w = await open_stream(api, token)
    got = []
    reader = asyncio.create_task(read_alerts(r, got))
    await asyncio.sleep(0.5)
    for t in toks:
        asyncio.create_task(hit(edge, t, ua))
        await asyncio.sleep(spacing_ms / 1000)
    deadline = time.time() + 30
    while len(got) < len(toks) and time.time() < deadline:
        await asyncio.sleep(0.1)
    reader.cancel()
    lat = [(t - edge_ms(a)) * 1000 for t, a in got]
    if os.environ.get("SHOW_IDS"):
        print("got ids:", " ".join(str(a["id"]) for t, a in got), file=sys.stderr)
    print(json.dumps({"n": len(lat), "sent": len(toks), "p50_ms": round(pct(lat, 0.5), 1),
                      "p99_ms": round(pct(lat, 0.99), 1), "max_ms": round(max(lat), 1)}))


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


async def streams(api, token, n, edge, probe, ua):
    pid = int(os.environ["SERVER_PID"])
    before = rss_kb(pid)
    conns, failed = [], 0
    for i in range(0, n, 500):  # in steps: the listen backlog
        for c in await asyncio.gather(*(asyncio.wait_for(open_stream(api, token), 30) for _ in range(min(500, n - i))),
                                      return_exceptions=True):
            if isinstance(c, BaseException):
                failed += 1
            else:
                conns.append(c)
    n = len(conns)
    await asyncio.sleep(2)
    after = rss_kb(pid)
    got = [[] for _ in conns]
    readers = [asyncio.create_task(read_alerts(r, g)) for (r, w), g in zip(conns, got)]
    await hit(edge, probe, ua)
    deadline = time.time() + 30
    while sum(1 for g in got if g) < n and time.time() < deadline:
        await asyncio.sleep(0.05)
    lat = [(g[0][0] - edge_ms(g[0][1])) * 1000 for g in got if g]
    for t in readers:
        t.cancel()
    print(json.dumps({"streams": n, "failed": failed, "rss_before_kb": before, "rss_after_kb": after,
                      "kb_per_stream": round((after - before) / n, 2), "got": len(lat),
                      "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1),
                      "max_ms": round(max(lat), 1)}))


if sys.argv[1] == "latency":
    asyncio.run(latency(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], float(sys.argv[7])))
else:
    asyncio.run(streams(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]))
