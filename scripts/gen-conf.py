#!/usr/bin/env python3
"""Writes etc/mailbeacon.conf, the configuration the project ships (the
Debian package's /etc/mailbeacon/mailbeacon.conf): every key of
`mailbeacon-rewrite --print-config`, commented out with its default and its
meaning from docs/config.md, except the settings the project turns on by
default for a new installation (SHIPPED below). Run it after adding a key:
tests/integration/cli.sh checks that the file names every key and parses.

usage: scripts/gen-conf.py BUILD/mailbeacon-rewrite > etc/mailbeacon.conf"""
import re
import subprocess
import sys
import textwrap

# Set, not commented, in what the project ships (docs/privacy.md, "Minimise by default").
SHIPPED = {
    "ip_truncate": ("yes", "client addresses stored truncated (IPv4 /24, IPv6 /48), after classification"),
}

root = __file__.rsplit("/scripts/", 1)[0]
printed = subprocess.run([sys.argv[1], "--print-config"], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}).stdout
keys = [(k.strip(), v.strip()) for k, v in (l.split("=", 1) for l in printed.splitlines() if "=" in l)]
meaning = {}
for line in open(root + "/docs/config.md", encoding="utf-8"):
    m = re.match(r"\| (`[a-z_0-9]+`(?:, `[a-z_0-9]+`)*) \| (.*?) \| (.*) \|$", line.rstrip("\n"))
    if m:
        text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", m.group(3)).replace("`", "").replace("**", "")
        for k in re.findall(r"`([a-z_0-9]+)`", m.group(1)):
            meaning[k] = text

out = ["# mailbeacon: one file for mailbeacon-rewrite and mailbeacon-server (docs/config.md).",
       "# Every key is here with its default, commented out; a key set here wins over the default,",
       "# and the environment (MAILBEACON_<KEY>) wins over this file.",
       "# Written by scripts/gen-conf.py from docs/config.md.", ""]
for k, v in keys:
    doc = meaning.get(k)
    if doc is None:
        sys.exit("gen-conf.py: %s is not in docs/config.md" % k)
    for l in textwrap.wrap(doc, 96):
        out.append("# " + l)
    if k in SHIPPED:
        out.append("# shipped: " + SHIPPED[k][1])
        out.append("%s = %s" % (k, SHIPPED[k][0]))
    else:
        out.append(("#%s = %s" % (k, ('"%s"' % v) if (" " in v or "," in v) else v)).rstrip())
    out.append("")
sys.stdout.write("\n".join(out))
