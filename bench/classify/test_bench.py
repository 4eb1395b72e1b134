#!/usr/bin/env python3
"""Tests of the classifier benchmark's own tools, without the classifier:
gen_scenarios.py (deterministic, every entry well-formed as docs/events.md
says, labels for every event, the lists in their formats, the rules file
rewritten only in its list lines) and score.py (against a fake table made
from the labels, with known mistakes).

usage: python3 bench/classify/test_bench.py [-v]
"""
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "gen_scenarios.py")
SCORE = os.path.join(HERE, "score.py")
RULES = os.path.join(HERE, "..", "..", "rules", "mailbeacon.rules")
NOW = 1_764_633_600_000_000  # fixed: 2025-12-02 00:00 UTC
DOC_NETS = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")]


def gen(out, seed=7, messages=400, rules=RULES):
    subprocess.run([sys.executable, GEN, "--out", out, "--seed", str(seed), "--messages", str(messages),
                    "--now", str(NOW), "--rules", rules], check=True, capture_output=True)


def read(path):
    with open(path) as f:
        return f.read()


def score(labels, events):
    return subprocess.run([sys.executable, SCORE, "--labels", labels, "--events", events], check=True,
                          capture_output=True, text=True).stdout


class Generated(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = os.path.join(cls.tmp.name, "a")
        gen(cls.d)
        with open(os.path.join(cls.d, "entries.jsonl")) as f:
            cls.entries = [json.loads(l) for l in f]
        with open(os.path.join(cls.d, "labels.tsv")) as f:
            f.readline()
            cls.labels = [l.rstrip("\n").split("\t") for l in f]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_deterministic(self):
        d2 = os.path.join(self.tmp.name, "b")
        gen(d2)
        for name in ("entries.jsonl", "entries.resp", "labels.tsv", "mix.md", "rules/mailbeacon.rules"):
            with open(os.path.join(self.d, name), "rb") as a, open(os.path.join(d2, name), "rb") as b:
                self.assertEqual(a.read(), b.read(), name)
        d3 = os.path.join(self.tmp.name, "c")
        gen(d3, seed=8)
        with open(os.path.join(self.d, "labels.tsv")) as a, open(os.path.join(d3, "labels.tsv")) as b:
            self.assertNotEqual(a.read(), b.read())

    def test_entries_in_time_order_with_their_ids(self):
        def us(e):
            if e["type"] == "sent":
                return int(e["sent_at"])
            return max(int(l.split("\t")[5]) for l in e["d"].splitlines())
        times = [us(e) for e in self.entries]
        self.assertEqual(times, sorted(times))
        # each message's sent record comes before its hits
        first = {}
        for i, e in enumerate(self.entries):
            if e["type"] == "sent":
                first.setdefault(e["message"], i)
        for i, e in enumerate(self.entries):
            if e["type"] == "hits":
                for l in e["d"].splitlines():
                    m = l.split("\t")[2]
                    self.assertLess(first.get(m, -1), i)
        # stream ids from the times, strictly increasing
        with open(os.path.join(self.d, "entries.resp"), "rb") as f:
            ids = re.findall(rb"\r\nXADD\r\n\$\d+\r\n[^\r]+\r\n\$\d+\r\n(\d+)-(\d+)\r\n", f.read())
        self.assertEqual(len(ids), len(self.entries))
        pairs = [(int(a), int(b)) for a, b in ids]
        self.assertEqual(pairs, sorted(set(pairs)))
        self.assertEqual([p[0] for p in pairs], [max(t // 1000, p[0]) for t, p in zip(times, pairs)])

    def test_sent_records(self):
        for e in (e for e in self.entries if e["type"] == "sent"):
            self.assertEqual(list(e), ["type", "v", "message", "message_id", "rep", "recipients", "token_recipient",
                                       "subject", "sent_at", "links", "client_ip"])
            self.assertEqual(e["v"], "1")
            self.assertRegex(e["message"], r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            rc = json.loads(e["recipients"])
            self.assertTrue(all(set(r) == {"i", "addr"} for r in rc))
            self.assertIn(int(e["token_recipient"]), [0] + [r["i"] for r in rc])
            links = json.loads(e["links"])
            self.assertEqual([l["i"] for l in links], list(range(1, len(links) + 1)))
            t = int(e["sent_at"])
            self.assertTrue(NOW - 12 * 86400e6 <= t <= NOW - 86400e6)
            if e["client_ip"]:
                self.assertTrue(any(ipaddress.ip_address(e["client_ip"]) in n for n in DOC_NETS))

    def test_hit_lines(self):
        sent = {}
        for e in (e for e in self.entries if e["type"] == "sent"):
            sent.setdefault(e["message"], dict(links=json.loads(e["links"]), tokens=set(), at=int(e["sent_at"])))
            sent[e["message"]]["tokens"].add(int(e["token_recipient"]))
        ids = []
        for e in (e for e in self.entries if e["type"] == "hits"):
            self.assertEqual(list(e), ["type", "v", "n", "d"])
            self.assertEqual(e["v"], "2")
            lines = e["d"].split("\n")
            self.assertEqual(lines[-1], "")  # every line ends in \n
            lines = lines[:-1]
            self.assertEqual(int(e["n"]), len(lines))
            self.assertTrue(1 <= len(lines) <= 256)
            edges = set()
            for l in lines:
                f = l.split("\t")
                self.assertEqual(len(f), 12, l)
                eid, kind, msg, rcpt, link, t, ip, method, edge, ua, url, purpose = f
                self.assertRegex(eid, r"^[0-9a-f]{32}$")
                self.assertEqual(int(eid[:16], 16), int(t))  # time µs, edge random, counter
                ids.append(eid)
                edges.add(edge)
                self.assertIn(kind, "och")
                s = sent[msg]
                self.assertIn(int(rcpt), s["tokens"])
                self.assertTrue(s["at"] < int(t) <= NOW - 120e6)
                if kind == "c":
                    self.assertEqual(url, s["links"][int(link) - 1]["url"])
                else:
                    self.assertEqual((link, url), ("0", ""))
                self.assertTrue(any(ipaddress.ip_address(ip) in n for n in DOC_NETS), ip)
                self.assertIn(method, ("GET", "HEAD"))
                self.assertNotRegex(ua + url + purpose, r"[\t\n\r]")
                self.assertIn(purpose, ("", "prefetch", "prefetch;prerender"))
            self.assertEqual(len(edges), 1)  # one edge's writer made the entry
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual(sorted(ids), sorted(l[0] for l in self.labels))

    def test_labels(self):
        classes = Counter(l[1] for l in self.labels)
        self.assertEqual(set(classes), {"human", "proxy", "prefetch", "scanner", "sender"})
        behs = {l[2] for l in self.labels}
        for b in ("apple_mpp_prefetch", "gmail_proxy_open", "human_desktop_open", "human_click",
                  "safelinks_delivery_scan", "head_probe", "rep_self_open", "honeypot_scanner"):
            self.assertIn(b, behs)
        kinds = Counter(l[3] for l in self.labels)
        mpp = sum(1 for l in self.labels if l[2].startswith("apple_mpp") and l[1] == "prefetch")
        self.assertTrue(0.35 < mpp / kinds["open"] < 0.65, mpp / kinds["open"])  # "about half of opens"
        for l in self.labels:
            if l[3] == "honeypot":
                self.assertEqual((l[1], l[2]), ("scanner", "honeypot_scanner"))

    def test_lists(self):
        ld = os.path.join(self.d, "rules", "lists")
        nets = []
        for line in read(os.path.join(ld, "apple_egress.csv")).splitlines(True):
            p = line.rstrip("\n").split(",")
            self.assertEqual(len(p), 5)  # prefix,country,region,city,
            self.assertEqual(p[4], "")
            nets.append(("apple", ipaddress.ip_network(p[0])))
        g = json.loads(read(os.path.join(ld, "google.json")))
        for p in g["prefixes"]:
            (k, v), = p.items()
            self.assertIn(k, ("ipv4Prefix", "ipv6Prefix"))
            nets.append(("google", ipaddress.ip_network(v)))
        ms = json.loads(read(os.path.join(ld, "m365_exchange.json")))
        self.assertIsInstance(ms, list)
        for s in ms:
            for c in s.get("ips", []):
                nets.append(("m365" if s["serviceArea"] == "Exchange" else "m365-other", ipaddress.ip_network(c)))
        for line in read(os.path.join(ld, "office.txt")).splitlines():
            line = line.split("#")[0].strip()
            if line:
                nets.append(("office", ipaddress.ip_network(line)))
        for _, n in nets:
            self.assertTrue(any(n.subnet_of(d) for d in DOC_NETS if d.version == n.version), n)
        for i, (a, na) in enumerate(nets):
            for b, nb in nets[i + 1:]:
                if a != b and na.version == nb.version:
                    self.assertFalse(na.overlaps(nb), (na, nb))

    def test_rules_rewritten_only_in_list_lines(self):
        orig = read(RULES).splitlines()
        new = read(os.path.join(self.d, "rules", "mailbeacon.rules")).splitlines()[1:]
        self.assertEqual(len(orig), len(new))
        for a, b in zip(orig, new):
            if re.match(r"\s*list\s", a):
                name, fmt = a.split()[1:3]
                self.assertEqual(b.split()[:3], ["list", name, fmt])
                self.assertTrue(os.path.exists(os.path.join(self.d, "rules", b.split()[3])))
            else:
                self.assertEqual(a, b)

    def test_unknown_list_and_thresholds(self):
        rules = os.path.join(self.tmp.name, "x.rules")
        with open(rules, "w") as f:
            f.write("version t\nlist proofpoint_ranges cidr /x\nlist mystery cidr /y\n"
                    "set burst_window_ms 5000\nset pair_window_ms 1000\n")
        d = os.path.join(self.tmp.name, "x")
        gen(d, rules=rules)
        self.assertIn("192.0.2.64/27", read(os.path.join(d, "rules", "lists", "proofpoint_ranges.txt")))
        self.assertNotRegex(read(os.path.join(d, "rules", "lists", "mystery.txt")), r"(?m)^[0-9]")
        mix = read(os.path.join(d, "mix.md"))
        self.assertIn('"burst_window_ms": 5000', mix)
        self.assertIn('"pair_window_ms": 1000', mix)


class Score(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.labels = os.path.join(self.tmp.name, "labels.tsv")
        rows = [("human", "human_click", "click")] * 10 + [("proxy", "gmail_proxy_open", "open")] * 5 + \
               [("prefetch", "apple_mpp_prefetch", "open")] * 20 + [("scanner", "safelinks_delivery_scan", "click")] * 8 + \
               [("sender", "rep_self_open", "open")] * 3
        with open(self.labels, "w") as f:
            f.write("event_id\tclass\tbehaviour\tkind\tactor\n")
            for i, (c, b, k) in enumerate(rows):
                f.write(f"{i:032x}\t{c}\t{b}\t{k}\tx\n")
        self.rows = rows

    def tearDown(self):
        self.tmp.cleanup()

    def events(self, change):
        """The labels as a table (uuid text, like psql prints), with change(i, cls) -> (cls, reason)."""
        p = os.path.join(self.tmp.name, "events.tsv")
        with open(p, "w") as f:
            for i, (c, b, k) in enumerate(self.rows):
                r = change(i, c)
                if r is None:
                    continue
                h = f"{i:032x}"
                uid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
                f.write(f"{uid}\t{r[0] if r[0] else ''}\t{r[1]}\tt\n")
        return p

    def test_perfect(self):
        out = score(self.labels, self.events(lambda i, c: (c, "rule_" + c)))
        self.assertRegex(out, r"a person \(human or proxy\) +precision 100.00 % \(15/15\) +recall 100.00 % \(15/15\)")
        self.assertRegex(out, r"human +precision 100.00 % \(10/10\) +recall 100.00 % \(10/10\) .*: met")
        self.assertIn("misjudged behaviours: true -> judged, count, the classifier's reasons\n  (none)", out)

    def test_known_mistakes(self):
        def change(i, c):
            if i in (0, 1):  # two people judged scanners (a burst)
                return ("scanner", "burst")
            if i == 2:  # one person not loaded
                return None
            if i == 10:  # a proxy open judged human: still a person
                return ("human", "")
            if i in (15, 16, 17):  # three MPP prefetches judged human
                return ("human", "")
            if i == 35:  # a scanner judged human
                return ("human", "")
            if i == 43:  # a sender loaded without a class
                return ("", "")
            return (c, "rule_" + c)
        out = score(self.labels, self.events(change))
        # person: true 15; predicted person: 7 human + 1 proxy-as-human + 4 proxy + 3 MPP + 1 scanner = 16
        self.assertRegex(out, r"a person \(human or proxy\) +precision  75.00 % \(12/16\) +recall  80.00 % \(12/15\)")
        # human: true 10, of which 7 judged human; judged human: 7 + 1 + 3 + 1 = 12
        self.assertRegex(out, r"human +precision  58.33 % \(7/12\) +recall  70.00 % \(7/10\) .*NOT met")
        self.assertIn("missing 1", out)
        self.assertRegex(out, r"(?m)^human +7 +0 +0 +2 +0 +0 +1 +10 +70.00 %")
        self.assertRegex(out, r"(?m)^sender +0 +0 +0 +0 +2 +1 +0 +3 ")
        self.assertRegex(out, r"(?m)^ +2 +human_click +human -> scanner +burst 2$")
        self.assertRegex(out, r"(?m)^ +3 +apple_mpp_prefetch +prefetch -> human +- 3$")
        self.assertRegex(out, r"(?m)^ +1 +human_click +human -> \(missing\) +- 1$")


if __name__ == "__main__":
    unittest.main()
