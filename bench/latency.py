#!/usr/bin/env python3
"""Sends N messages one after another over one SMTP session and prints the
time each took (MAIL..DATA..250), as JSON: {"n":..,"p50_ms":..,"p99_ms":..}.
usage: latency.py PORT FILE N"""
import json
import smtplib
import sys
import time

port, path, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
msg = open(path, "rb").read().replace(b"\n", b"\r\n")
s = smtplib.SMTP("127.0.0.1", port)
s.ehlo("bench.test")
times = []
for i in range(n):
    t0 = time.perf_counter()
    s.sendmail("sam@ourco.example", ["dana@acme.example"], msg)
    times.append((time.perf_counter() - t0) * 1000)
s.quit()
times.sort()
print(json.dumps({"n": n, "p50_ms": times[n // 2], "p99_ms": times[min(n - 1, int(n * 0.99))]}))
