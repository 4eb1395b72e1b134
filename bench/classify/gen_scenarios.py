#!/usr/bin/env python3
"""Generate the labeled scenario set of the classifier benchmark (issue 12).

usage: gen_scenarios.py --out DIR [--seed N] [--messages N] [--now US]
                        [--rules FILE] [--stream NAME]

Writes, in DIR:
  entries.jsonl   the stream entries to XADD, one JSON object per entry with
                  its fields in order: every type=sent record (v 1, with
                  client_ip) first, then type=hits entries (v 2, 12 fields a
                  line, docs/events.md) in time order
  entries.resp    the same as XADD commands in Redis's protocol, for
                  `redis-cli --pipe` (tabs and newlines pass untouched)
  labels.tsv      event_id, true class, behaviour, kind, actor: the ground
                  truth of every event, by what produced it (not by what the
                  rules would say)
  mix.md          the mix: events per behaviour and class, shares of opens
                  and clicks
  rules/mailbeacon.rules  the repository's rules (--rules) with every `list`
                  line pointed at a file in rules/lists/ (the other lines as
                  they are, so the bench tracks the shipped rules)
  rules/lists/    small IP lists in their publishers' formats (iplists.h),
                  made of documentation ranges (RFC 5737, RFC 3849): Apple's
                  egress CSV, Google's goog.json, Microsoft 365's endpoints
                  JSON, plain CIDR office networks; a list the rules name that
                  this script does not know gets the ranges its name suggests
                  (barracuda, proofpoint, mimecast, ...) or an empty file

Deterministic: the same --seed and --now give byte-identical files. Times
are relative to --now (µs since the epoch, default: the clock), all in the
past (sent 1 to 11 days before now, nothing after now - 2 min), so nothing
depends on the day of the month. Thresholds are read from the rules' `set`
lines so the near-miss cases sit just outside (and inside) the thresholds
actually shipped.

Every behaviour generator below cites its source; where a behaviour is our
construction (no public description), the comment says so. The mix is in
bench/classify/README.md. Only the Python standard library is used.
"""
import argparse
import ipaddress
import json
import math
import os
import random
import re
import sys
import time
import uuid
from collections import Counter, defaultdict

# ---------------------------------------------------------------------------
# Networks: documentation ranges only (192.0.2.0/24, 198.51.100.0/24,
# 203.0.113.0/24, 2001:db8::/32), split into disjoint sub-ranges. "listed"
# ones go into the list files; the others stand for address space no public
# list names.
NETWORKS = {
    "office": ["192.0.2.0/27", "2001:db8:0:100::/56"],  # the rep's company (plain CIDR list)
    "barracuda": ["192.0.2.32/27"],
    "proofpoint": ["192.0.2.64/27"],
    "mimecast": ["192.0.2.96/27"],
    "people4a": ["192.0.2.128/25"],  # homes, companies' NAT, mobile carriers (v4)
    "google": ["198.51.100.0/26", "2001:db8:4860::/48"],  # goog.json
    "m365_exchange": ["198.51.100.64/26", "2001:db8:3650::/48"],  # endpoints JSON, serviceArea Exchange
    "m365_other": ["198.51.100.128/27", "2001:db8:3651::/48"],  # endpoints JSON, other service areas
    "azure": ["198.51.100.160/27"],  # Microsoft cloud space outside the Exchange list
    "yahoo": ["198.51.100.192/26"],  # Yahoo's proxies: no published list
    "apple_egress": ["203.0.113.0/25", "2001:db8:a000::/36"],  # egress-ip-ranges.csv
    "cloud": ["203.0.113.128/26", "2001:db8:c000::/36"],  # hosting/cloud no list names
    "people4b": ["203.0.113.192/26"],
    "people6_home": ["2001:db8:1000::/36"],  # one /64 per person
    "people6_corp": ["2001:db8:2000::/36"],  # one /48 per company
}


def check_networks():
    nets = [(k, ipaddress.ip_network(c)) for k, v in NETWORKS.items() for c in v]
    for i, (a, na) in enumerate(nets):
        for b, nb in nets[i + 1:]:
            if na.version == nb.version and na.overlaps(nb):
                raise SystemExit(f"networks {a} {na} and {b} {nb} overlap")


# ---------------------------------------------------------------------------
# User agents (as the clients send them; the exact ones the rules name are
# from the rules' sources).
UA_MPP = "Mozilla/5.0"  # Apple MPP: https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/open-click-bot-detect
UA_GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
UA_GMAIL_PREFETCH = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/42.0.2311.135 Safari/537.36 Edge/12.246 Mozilla/5.0")  # sparkpost/bird, below
UA_YAHOO = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
UA_OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"
UA_THUNDERBIRD = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.16.0"
UA_APPLE_MAIL_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
UA_IOS_MAIL = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
UA_SAMSUNG_MAIL = ("Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Version/4.0 Chrome/126.0.6478.122 Mobile Safari/537.36")
BROWSERS_DESKTOP = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
]
BROWSER_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                  "Version/17.6 Mobile/15E148 Safari/604.1")
BROWSER_ANDROID = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 "
                   "Mobile Safari/537.36")
# Scanners that pretend to be a browser (field reports: Safe Links, sandboxes).
SCANNER_BROWSER_UAS = BROWSERS_DESKTOP[:2] + [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
]
UA_BARRACUDA = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
LINK_CHECKER_UAS = [
    "python-requests/2.31.0",
    "Mozilla/5.0 (compatible; LinkChecker/10.2; +https://linkchecker.github.io/linkchecker/)",
    "Go-http-client/1.1",
    BROWSERS_DESKTOP[0],
]
UA_SLACK = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
UNKNOWN_PROXY_UAS = ["Mozilla/5.0 (compatible; MailImageProxy/2.3)", BROWSERS_DESKTOP[0], BROWSERS_DESKTOP[3]]

SEC = 1_000_000  # µs
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR

CLASSES = ("human", "proxy", "prefetch", "scanner", "sender")


class Sim:
    """All state of one generation: the random source, the networks' address
    pickers, the messages, hits and labels."""

    def __init__(self, seed, now_us, thresholds):
        self.r = random.Random(seed)
        self.now = now_us
        self.horizon = now_us - 2 * MIN  # nothing happens later than this
        self.t = thresholds
        self.sent = []  # sent records (dicts of fields, in order)
        self.hits = []  # dicts: t, kind, msg, rcpt, link, ip, method, ua, url, purpose, cls, beh, actor
        self.dropped = 0  # hits that would fall after the horizon (not happened yet)
        self.edges = [(f"edge-{i}", "%08x" % self.r.getrandbits(32)) for i in range(1, 4)]
        self.companies = {}
        self.nets = {k: [ipaddress.ip_network(c) for c in v] for k, v in NETWORKS.items()}

    # --- addresses
    def addr(self, net, v6=None):
        nets = self.nets[net]
        if v6 is not None:
            nets = [n for n in nets if (n.version == 6) == v6] or nets
        n = self.r.choice(nets)
        if n.version == 4:
            return str(n[self.r.randrange(1, n.num_addresses - 1)])
        return str(n[self.r.randrange(1, n.num_addresses)])

    def person_ip(self):
        """A person's own device on a home or mobile network."""
        if self.r.random() < 0.55:
            return self.addr(self.r.choice(["people4a", "people4b"]))
        n = self.nets["people6_home"][0]
        return str(n[(self.r.randrange(1, 1 << 28) << 64) | self.r.getrandbits(64)])

    def company_ip(self, company):
        """The NAT address a company's desktops share."""
        if company not in self.companies:
            if self.r.random() < 0.5:
                ip = self.addr("people4a")
            else:
                n = self.nets["people6_corp"][0]
                ip = str(n[(self.r.randrange(1, 1 << 12) << 80) | 1])
            self.companies[company] = ip
        return self.companies[company]

    def uuid(self):
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    # --- hits
    def hit(self, t, kind, m, rc, link, ip, ua, cls, beh, actor, method="GET", purpose=""):
        t = int(t)
        if t > self.horizon:
            self.dropped += 1
            return
        url = m["links"][link - 1] if kind == "c" else ""
        self.hits.append(dict(t=t, kind=kind, msg=m["id"], rcpt=rc["token"], link=link if kind == "c" else 0,
                              ip=ip, method=method, ua=ua, url=url, purpose=purpose, cls=cls, beh=beh,
                              actor=actor))

    def open(self, t, m, rc, ip, ua, cls, beh, actor, method="GET"):
        if m["html"]:  # a plain-text message has no pixel
            self.hit(t, "o", m, rc, 0, ip, ua, cls, beh, actor, method)

    def honeypot(self, t, m, rc, ip, ua, actor):
        if m["honeypot"]:
            self.hit(t, "h", m, rc, 0, ip, ua, "scanner", "honeypot_scanner", actor)

    # --- time helpers
    def human_delay(self):
        """Delivery to a person's first look: minutes, hours, days."""
        x = self.r.random()
        if x < 0.25:
            return self.r.expovariate(1 / (3 * MIN)) + 5 * SEC
        if x < 0.70:
            return self.r.lognormvariate(math.log(2 * HOUR), 0.9)
        if x < 0.90:
            return self.r.uniform(12 * HOUR, 72 * HOUR)
        return self.r.uniform(3 * DAY, 8 * DAY)

    def gap(self, lo_s, hi_s):
        return self.r.uniform(lo_s * SEC, hi_s * SEC)


# ===========================================================================
# Behaviour generators. Each takes the simulation, the message, the recipient
# and the time things start from, and adds hits with their true class.


def apple_mpp(s, m, rc, reads, read_at):
    """Apple Mail Privacy Protection fetches every remote image through Apple's
    relays with the bare user agent "Mozilla/5.0", whether or not the mail is
    read: https://www.apple.com/legal/privacy/data/en/mail-privacy-protection/ ,
    https://docs.sendgrid.com/for-developers/tracking-events/understanding-apple-mail-privacy-protection-and-open-events ,
    https://documentation.mailgun.com/docs/mailgun/user-manual/tracking-messages/open-click-bot-detect ;
    from the egress ranges of https://mask-api.icloud.com/egress-ip-ranges.csv
    (https://wordtothewise.com/2021/09/apple-mpp-reporting-and-geolocation/).
    The fetch is mostly at delivery, later when the device was asleep or
    offline ("MPP opens long after delivery"), sometimes again (cache
    refresh). When the person reads after the cache expired, the fetch
    still comes through the proxy with the same facts: a person's open,
    i.e. class proxy (https://help.listrak.com/en/articles/13862697-reporting-of-apple-mpp-activity);
    indistinguishable from a late prefetch."""
    v6 = s.r.random() < 0.4
    d = rc["delivered"]
    if s.r.random() < 0.72:
        t = d + s.gap(1, 180)
        s.open(t, m, rc, s.addr("apple_egress", v6), UA_MPP, "prefetch", "apple_mpp_prefetch", "apple")
    else:  # the device fetched mail later (asleep, offline, Low Power Mode)
        t = d + s.r.uniform(10 * MIN, 16 * HOUR)
        s.open(t, m, rc, s.addr("apple_egress", v6), UA_MPP, "prefetch", "apple_mpp_prefetch_late", "apple")
    if s.r.random() < 0.25:  # fetched again by the relay, nobody reading
        s.open(t + s.r.uniform(2 * HOUR, 3 * DAY), m, rc, s.addr("apple_egress", v6), UA_MPP, "prefetch",
               "apple_mpp_refetch", "apple")
    if reads and s.r.random() < 0.12:
        s.open(read_at, m, rc, s.addr("apple_egress", v6), UA_MPP, "proxy", "apple_mpp_reader_refetch", "apple")


def gmail(s, m, rc, reads, read_at):
    """Gmail. Its image proxy fetches when a person opens (user agent
    "...GoogleImageProxy", Google's addresses) and caches, hiding most
    re-opens: https://support.google.com/a/answer/3299041 . When the person
    has a Gmail session open at delivery, Gmail prefetches the images first,
    from Google's ranges with a fixed old Chrome/Edge user agent:
    https://www.sparkpost.com/blog/gmail-prefetching-images/ (= bird.com),
    https://www.gmass.co/blog/false-opens-in-gmail/ (1-6 % of Gmail opens).
    A greylisted delivery (https://www.rfc-editor.org/rfc/rfc6647) moves the
    prefetch minutes after sending. Proxy opens happen whenever the person
    reads: at 3 a.m., or days later."""
    if s.r.random() < 0.04:  # an active session when the mail lands (1-6 % of Gmail opens)
        s.open(rc["delivered"] + s.gap(0.5, 15), m, rc, s.addr("google"), UA_GMAIL_PREFETCH, "prefetch",
               "gmail_prefetch", "google")
    if not reads:
        return
    x = s.r.random()
    beh = "gmail_proxy_open"
    if x < 0.10:  # at night in the reader's time zone
        day0 = (read_at + rc["tz"] * HOUR) // DAY * DAY
        t = day0 + DAY + s.r.uniform(2 * HOUR, 4 * HOUR) - rc["tz"] * HOUR
        read_at, beh = max(t, rc["delivered"] + HOUR), "gmail_proxy_open_night"
    elif x < 0.22:
        read_at, beh = rc["delivered"] + s.r.uniform(2 * DAY, 7 * DAY), "gmail_proxy_open_days_later"
    s.open(read_at, m, rc, s.addr("google"), UA_GMAIL_PROXY, "proxy", beh, "google")
    if s.r.random() < 0.2:  # the cache missed on a re-open
        s.open(read_at + s.r.uniform(1 * HOUR, 2 * DAY), m, rc, s.addr("google"), UA_GMAIL_PROXY, "proxy",
               "gmail_proxy_reopen", "google")
    rc["read_at"] = read_at


def gmail_link_check(s, m, rc):
    """Gmail fetching some links at delivery (safe browsing, previews): a
    third party's report only, https://check.live-direct-marketing.online/blog/gmail-image-proxy-link-tracking
    (the shipped rules assume it: fast_click_from_google). Weakly sourced:
    kept rare."""
    link = 1 + s.r.randrange(len(m["links"]))
    if m["links"]:
        s.hit(rc["delivered"] + s.gap(0.5, 8), "c", m, rc, link, s.addr("google"), s.r.choice(SCANNER_BROWSER_UAS),
              "scanner", "gmail_link_check", "google")


def direct_client(s, m, rc, reads, read_at, ua, beh):
    """A mail client that fetches images itself from the reader's address
    (Outlook desktop, Thunderbird, Apple Mail without MPP, Android clients):
    the class human, and re-opens each time. Outlook desktop blocks external
    images until the reader allows them
    (https://support.microsoft.com/en-us/office/block-or-unblock-automatic-picture-downloads-in-email-messages-15e08854-6808-49b1-9a0a-50b81f2d617a):
    those readers make no open at all (profile images_blocked)."""
    if not reads:
        return
    s.open(read_at, m, rc, rc["ip"], ua, "human", beh, "person")
    t = read_at
    for _ in range(s.r.choice([0, 0, 0, 1, 1, 2])):
        t += s.r.uniform(10 * MIN, 2 * DAY)
        s.open(t, m, rc, rc["ip"], ua, "human", "human_reopen", "person")


def yahoo(s, m, rc, reads, read_at):
    """Yahoo Mail's image proxy fetches when a person opens:
    https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html ; its addresses
    are in no list here."""
    if reads:
        s.open(read_at, m, rc, s.addr("yahoo"), UA_YAHOO, "proxy", "yahoo_proxy_open", "yahoo")


def unknown_webmail_proxy(s, m, rc, reads, read_at):
    """A webmail behind an image proxy no rule names (regional providers,
    corporate webmail): fetches when the person opens, from hosting
    addresses, with its own or a browser's user agent. Our construction of
    the pattern Gmail and Yahoo document (above); class proxy."""
    if reads:
        ua = rc.setdefault("proxy_ua", s.r.choice(UNKNOWN_PROXY_UAS))
        s.open(read_at, m, rc, s.addr("cloud"), ua, "proxy", "webmail_unknown_proxy_open", "webmail")


def person_clicks(s, m, rc, start):
    """A person clicks after reading: usually one link, sometimes two a few
    seconds apart (the near miss of the burst window), sometimes several
    opened in tabs at once (inside the window: a person the burst rule
    misjudges). Browser by device; iPhone users with iCloud Private Relay
    click from Apple's egress ranges with Safari
    (https://developer.apple.com/support/prepare-your-network-for-icloud-private-relay/):
    a person, though the address is in the MPP list. Returns the clicks made
    as (time, link)."""
    links = m["links"]
    if not links:
        return []
    win = s.t["burst_window_ms"] * 1000
    x = s.r.random()
    if x < 0.68 or len(links) == 1:
        plan = [(0, "human_click")]
    elif x < 0.80:
        plan = [(0, "human_click"), (s.r.uniform(20 * SEC, 10 * MIN), "human_click")]
    elif x < 0.92:  # two links a few seconds apart (6-9 s), or just past the burst window (x1.1-1.6)
        dt = s.gap(6, 9) if s.r.random() < 0.5 else s.r.uniform(1.1 * win, 1.6 * win)
        plan = [(0, "human_click"), (dt, "human_two_links_seconds_apart")]
    else:  # ctrl-click into tabs: burst_links links (or every link, when fewer) within a fraction of the window
        k = min(len(links), s.t["burst_links"] + s.r.choice([0, 0, 1]))
        plan, t = [], 0
        for _ in range(k):
            plan.append((t, "human_tabs_burst"))
            t += s.r.uniform(0.15 * win / k, 0.7 * win / k)
    order = s.r.sample(range(1, len(links) + 1), len(links))
    out = []
    for i, (dt, beh) in enumerate(plan):
        if i >= len(order):
            break
        t = start + dt
        ip, ua = rc["click_ip"], rc["browser"]
        if rc.get("private_relay"):
            ip, beh = s.addr("apple_egress", s.r.random() < 0.4), "private_relay_click"
        if rc.get("ua_stripped"):
            ua, beh = "", "human_click_ua_stripped"
        if rc.get("cloud_proxy"):
            beh = "human_click_via_cloud_proxy"
        out.append((t, order[i], ip, ua, beh))
    for t, link, ip, ua, beh in out:
        click_time_checks(s, m, rc, t, link, ip)
        s.hit(t, "c", m, rc, link, ip, ua, "human", beh, "person")
    return [(t, link) for t, link, *_ in out]


def click_time_checks(s, m, rc, t, link, ip):
    """What the recipient's gateway does when the person clicks a wrapped
    link: Microsoft Defender Safe Links checks the URL at the time of click,
    https://learn.microsoft.com/en-us/defender-office-365/safe-links-about ;
    Mimecast URL Protect scans the destination before sending the browser on,
    https://community.mimecast.com/docs/DOC-1027 (a lag of "around 5
    seconds": https://support.emerson.edu/hc/en-us/articles/360024413032-Mimecast-URL-Protect-and-DLP).
    The check's fetch of the tracking URL from the vendor's address comes a
    moment before the browser's (the issue's "a scanner IP and a browser a
    second apart"); some are slower than the pair window."""
    gw, pw = rc["gateway"], s.t["pair_window_ms"] * 1000
    if gw == "safelinks" and s.r.random() < 0.7:
        if s.r.random() < 0.85:
            dt, beh = s.r.uniform(0.15 * pw, 0.9 * pw), "safelinks_click_time_pair"
        else:
            dt, beh = s.r.uniform(1.1 * pw, 2.0 * pw), "safelinks_click_time_pair_slow"
        s.hit(t - dt, "c", m, rc, link, rc["sl_ip"], rc["sl_ua"], "scanner", beh, "safelinks")
    elif gw == "mimecast" and s.r.random() < 0.8:
        if s.r.random() < 0.6:
            dt, beh = s.r.uniform(0.2 * pw, 0.9 * pw), "mimecast_click_time_scan"
        else:
            dt, beh = s.r.uniform(1.2 * pw, 5 * SEC + pw), "mimecast_click_time_scan_slow"
        s.hit(t - dt, "c", m, rc, link, s.addr("mimecast"), s.r.choice(SCANNER_BROWSER_UAS), "scanner", beh,
              "mimecast")


def scan_all_links(s, m, rc, t, ip, ua, beh, actor, spacing, honeypot_p, render_p=0.0, method="GET"):
    """A scanner following every link of the message (and the invisible
    honeypot link, which only a program finds) from one address."""
    links = list(range(1, len(m["links"]) + 1))
    if s.r.random() < 0.3:  # not always in document order
        s.r.shuffle(links)
    if render_p and s.r.random() < render_p:  # renders the HTML: fetches the pixel too
        s.open(t - s.gap(0.1, 1.0), m, rc, ip, ua, "scanner", beh + "_render_open", actor, method)
    hp_at = s.r.randrange(len(links) + 1) if s.r.random() < honeypot_p else None
    for i, link in enumerate(links + [None]):
        if hp_at == i:
            s.honeypot(t, m, rc, ip, ua, actor)
            t += spacing()
        if link is None:
            break
        s.hit(t, "c", m, rc, link, ip, ua, "scanner", beh, actor, method)
        t += spacing()


def safelinks_delivery(s, m, rc):
    """Safe Links "URL scanning and rewriting of inbound email messages during
    mail flow" (https://learn.microsoft.com/en-us/defender-office-365/safe-links-about):
    detonation of every link seconds after delivery, with a browser's user
    agent. From Microsoft's Exchange Online ranges
    (https://learn.microsoft.com/en-us/microsoft-365/enterprise/urls-and-ip-address-ranges)
    or, in field reports, from Azure space outside them (assumed 35 %)."""
    t = rc["delivered"] + s.gap(1, 45)
    scan_all_links(s, m, rc, t, rc["sl_ip"], rc["sl_ua"], "safelinks_delivery_scan", "safelinks",
                   lambda: s.gap(0.05, 0.8), honeypot_p=0.85)


def barracuda(s, m, rc):
    """Barracuda clicks every link to verify it, from many addresses ("exempting
    a few IP addresses ... is no longer the case"):
    https://campus.barracuda.com/product/sentinel/doc/498468311/unwanted-link-clicks ,
    https://wordtothewise.com/2013/07/barracuda-filters-clicking-all-links/ .
    Impersonation Protection says "Barracuda Sentinel" in its user agent
    (the shipped rule scanner_ua); the gateway's intent analysis we model
    with a browser's user agent, from addresses of its own range or of
    hosting space."""
    if s.r.random() < 0.5:
        ua, ip, beh = UA_BARRACUDA, s.addr("barracuda"), "barracuda_sentinel_scan"
    else:
        ua, ip, beh = s.r.choice(SCANNER_BROWSER_UAS), s.addr(s.r.choice(["barracuda", "cloud"])), "barracuda_intent_scan"
    t = rc["delivered"] + s.gap(2, 120)
    scan_all_links(s, m, rc, t, ip, ua, beh, "barracuda", lambda: s.gap(0.1, 2.0), honeypot_p=0.8, render_p=0.2)


def proofpoint(s, m, rc):
    """Proofpoint URL Defense rewrites links and checks them at each click
    (https://support.vircom.com/support/solutions/articles/48000961469-things-to-know-about-proofpoint-url-defense),
    and its sandbox follows links of delivered mail ("Proofpoint click
    events": https://www.suped.com/learn/email-deliverability/understanding-and-reducing-high-proofpoint-click-events-for-email-marketers).
    Modelled: a sandbox visit of some or all links within minutes of
    delivery, unhurried (links seconds to a minute apart: the slow scanner
    past the burst window), from Proofpoint's range; the click-time check
    goes through the person's own browser (redirect), so adds no hit."""
    links = list(range(1, len(m["links"]) + 1))
    if not links:
        return
    k = len(links) if s.r.random() < 0.6 else s.r.randint(1, len(links))
    win = s.t["burst_window_ms"] * 1000
    t = rc["delivered"] + s.gap(5, 300)
    ip, ua = s.addr("proofpoint"), s.r.choice(SCANNER_BROWSER_UAS)
    slow = s.r.random() < 0.5
    beh = "proofpoint_sandbox_scan_slow" if slow else "proofpoint_sandbox_scan"
    if s.r.random() < 0.3:
        s.open(t - s.gap(0.2, 2), m, rc, ip, ua, "scanner", "proofpoint_sandbox_render_open", "proofpoint")
    for link in s.r.sample(links, k):
        s.hit(t, "c", m, rc, link, ip, ua, "scanner", beh, "proofpoint")
        t += s.r.uniform(1.05 * win, 2.5 * win) if slow else s.gap(0.3, 3)
    if k == len(links) and s.r.random() < 0.6:
        s.honeypot(t, m, rc, ip, ua, "proofpoint")


def mimecast_delivery(s, m, rc):
    """Mimecast URL Protect can scan links on entry to the gateway as well as
    on click: https://mimecastsupport.zendesk.com/hc/en-us/articles/34000589915155-Targeted-Threat-Protection-URL-Protect-Configuring-URL-Protect-Definitions ,
    https://community.mimecast.com/docs/DOC-1027 ."""
    t = rc["delivered"] - s.gap(0.5, 5) + s.gap(0, 3)  # before or as the mail lands
    scan_all_links(s, m, rc, max(t, m["sent_at"] + SEC), s.addr("mimecast"), s.r.choice(SCANNER_BROWSER_UAS),
                   "mimecast_delivery_scan", "mimecast", lambda: s.gap(0.05, 1.0), honeypot_p=0.75, render_p=0.3)


def unknown_scanner(s, m, rc):
    """A scanner no rule or list names: hosting addresses, a browser's user
    agent, every link within about a second (the behaviour the issue
    describes for security scanners; Mautic's report:
    https://github.com/mautic/mautic/issues/16263). Some also render the
    pixel. Variants: slow (links 40 s apart, or past the shipped burst window
    if longer), and one that follows only the first link."""
    ip, ua = s.addr("cloud"), s.r.choice(SCANNER_BROWSER_UAS)
    t = rc["delivered"] + s.gap(1, 90)
    x = s.r.random()
    if x < 0.6:
        scan_all_links(s, m, rc, t, ip, ua, "unknown_scanner_burst", "unknown", lambda: s.gap(0.02, 0.3),
                       honeypot_p=0.7, render_p=0.4)
    elif x < 0.85:
        win = s.t["burst_window_ms"] * 1000
        sp = max(40 * SEC, 1.2 * win)
        scan_all_links(s, m, rc, t, ip, ua, "slow_scanner", "unknown", lambda: s.r.uniform(sp, 1.5 * sp),
                       honeypot_p=0.6)
    elif m["links"]:
        s.hit(t, "c", m, rc, 1, ip, ua, "scanner", "first_link_scanner", "unknown")


def head_probe(s, m, rc):
    """Link checkers probe with HEAD (RFC 9110 9.3.2: "identical to GET except
    that the server MUST NOT send content",
    https://www.rfc-editor.org/rfc/rfc9110#section-9.3.2); some follow with
    a GET of the same link from the same address."""
    ip, ua = s.addr("cloud"), s.r.choice(LINK_CHECKER_UAS)
    t = rc["delivered"] + s.gap(1, 600)
    for link in range(1, len(m["links"]) + 1):
        s.hit(t, "c", m, rc, link, ip, ua, "scanner", "head_probe", "checker", method="HEAD")
        if s.r.random() < 0.3:
            s.hit(t + s.gap(0.05, 0.6), "c", m, rc, link, ip, ua, "scanner", "head_then_get", "checker")
        t += s.gap(0.05, 1.5)
    if s.r.random() < 0.2:
        s.open(t, m, rc, ip, ua, "scanner", "head_probe_pixel", "checker", method="HEAD")


def onprem_gateway_shared_nat(s, m, rc):
    """An on-premises gateway that scans every link (honeypot included) from
    the same NAT address as the company's desktops, while the person, who
    saw the mail arrive, clicks a link within the burst window of the scan.
    Our construction (no public description): it tests how far the honeypot
    neighbour rule reaches. The person's click is human."""
    t = rc["delivered"] + s.gap(1, 5)
    scan_all_links(s, m, rc, t, rc["ip"], s.r.choice(SCANNER_BROWSER_UAS), "onprem_gateway_scan", "onprem",
                   lambda: s.gap(0.05, 0.5), honeypot_p=0.9)
    if m["links"]:
        win = s.t["burst_window_ms"] * 1000
        tc = t + s.r.uniform(0.3 * win, 0.95 * win)
        s.hit(tc, "c", m, rc, 1 + s.r.randrange(len(m["links"])), rc["ip"], rc["browser"], "human",
              "human_click_behind_scanning_nat", "person")


def purpose_prefetch(s, m, rc, at):
    """A browser prefetching a link it expects to be followed sends
    Sec-Purpose: prefetch (https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Sec-Purpose;
    Firefox's X-Moz: prefetch, https://developer.mozilla.org/en-US/docs/Web/HTTP/Link_prefetching_FAQ):
    nobody clicked yet. Sometimes the person does click afterwards."""
    if not m["links"]:
        return
    link = 1 + s.r.randrange(len(m["links"]))
    hdr = s.r.choice(["prefetch", "prefetch", "prefetch;prerender"])
    s.hit(at, "c", m, rc, link, rc["click_ip"], rc["browser"], "prefetch", "browser_link_prefetch", "browser",
          purpose=hdr)
    if s.r.random() < 0.4:
        s.hit(at + s.gap(2, 60), "c", m, rc, link, rc["click_ip"], rc["browser"], "human", "human_click", "person")


def chat_unfurl_and_shared_clicks(s, m, rc, at):
    """The reader pastes a link into a team chat: Slack's link expander fetches
    it (https://api.slack.com/robots: "Slackbot-LinkExpanding"), then
    colleagues click it from their own addresses. No rule names either; the
    expander is a machine (scanner), the colleagues are people."""
    if not m["links"]:
        return
    link = 1 + s.r.randrange(len(m["links"]))
    s.hit(at, "c", m, rc, link, s.addr("cloud"), UA_SLACK, "scanner", "chat_unfurl", "slack")
    for _ in range(s.r.randint(1, 3)):
        s.hit(at + s.r.uniform(30 * SEC, 3 * HOUR), "c", m, rc, link, s.person_ip(), s.r.choice(BROWSERS_DESKTOP),
              "human", "shared_link_click", "colleague")


def forwarded(s, m, rc, at):
    """The recipient forwards the mail; a colleague opens it in their own
    client (same tokens) and may click. People, whom no rule names."""
    ip = s.company_ip(rc["company"]) if s.r.random() < 0.5 else s.person_ip()
    t = at + s.r.uniform(10 * MIN, 2 * DAY)
    s.open(t, m, rc, ip, s.r.choice([UA_OUTLOOK, UA_THUNDERBIRD, UA_APPLE_MAIL_MAC]), "human", "forwarded_open",
           "colleague")
    if m["links"] and s.r.random() < 0.4:
        s.hit(t + s.gap(10, 300), "c", m, rc, 1 + s.r.randrange(len(m["links"])), ip, s.r.choice(BROWSERS_DESKTOP),
              "human", "forwarded_click", "colleague")


def fast_person(s, m, rc):
    """A recipient on the phone with the rep opens and clicks at once: the
    issue's "a recipient on the phone with the rep clicks at once". The click
    lands a few seconds after sending (4 s at a fast_click_ms of 10 s), from
    a browser. A person."""
    fc = s.t["fast_click_ms"] * 1000
    t_open = m["sent_at"] + s.r.uniform(2 * SEC, 0.35 * fc)
    s.open(t_open, m, rc, rc["ip"], rc["client_ua"] or UA_OUTLOOK, "human", "human_fast_open_on_call", "person")
    if m["links"]:
        t = max(t_open + SEC, m["sent_at"] + s.r.uniform(0.4 * fc, 0.9 * fc))
        link = 1 + s.r.randrange(len(m["links"]))
        click_time_checks(s, m, rc, t, link, rc["click_ip"])
        s.hit(t, "c", m, rc, link, rc["click_ip"], rc["browser"], "human", "human_fast_click_on_call", "person")


def simultaneous_shared_copy(s, m, rc, others):
    """Several recipients of one copy (recipient index 0) click the same link
    at the same moment, e.g. when the rep says "click the link" on a call:
    people, each from their own address, within the pair window of each
    other. Our construction; it tests the paired-scan rule."""
    if not m["links"]:
        return
    link = 1 + s.r.randrange(len(m["links"]))
    t = m["sent_at"] + s.r.uniform(2 * MIN, 2 * HOUR)
    pw = s.t["pair_window_ms"] * 1000
    for o in [rc] + others:
        s.hit(t, "c", m, o, link, o["click_ip"], o["browser"], "human", "simultaneous_clicks_shared_copy", "person")
        t += s.r.uniform(0.2 * pw, 0.9 * pw)


# --- the rep's own activity
def rep_activity(s, m):
    """The rep opens the mail again: a reply quoting it (the pixel rides in the
    quote), a copy to self; sometimes clicks their own link to check it. The
    submitting client's address is the milter's {client_addr}
    (http://www.postfix.org/MILTER_README.html#macros); the rep may be
    elsewhere by then (phone, home) or the sent record may carry no
    address (pipe mode without the option). Class sender in every case."""
    rep = m["rep"]
    rc = m["rcpts"][0]
    t = m["sent_at"] + s.r.uniform(5 * MIN, 3 * DAY)
    x = s.r.random()
    if x < 0.7 and rep["at"] != "none":
        ip, beh = rep["client_ip"], "rep_self_open"
    elif rep["at"] == "none":
        ip = rep["office_ip"] if s.r.random() < 0.5 else rep["home_ip"]
        beh = "rep_self_open_no_client_ip" if ip == rep["home_ip"] else "rep_self_open_office"
    else:
        ip = s.person_ip() if s.r.random() < 0.5 else (rep["home_ip"] if rep["at"] == "office" else rep["office_ip"])
        beh = "rep_self_open_office" if ip == rep["office_ip"] else "rep_self_open_other_network"
    s.open(t, m, rc, ip, UA_OUTLOOK, "sender", beh, "rep")
    if m["links"] and s.r.random() < 0.25:
        s.hit(t + s.gap(3, 120), "c", m, rc, 1, ip, BROWSERS_DESKTOP[1], "sender", beh.replace("open", "click"), "rep")


def recipient_in_office(s, m, rc):
    """The recipient, not the rep, reads and clicks from the rep's office
    network (an on-site meeting on the guest Wi-Fi behind the office's
    address). A person; the office rule says sender."""
    ip = s.addr("office")
    t = m["sent_at"] + s.r.uniform(1 * MIN, 2 * HOUR)
    s.open(t, m, rc, ip, rc["client_ua"] or UA_IOS_MAIL, "human", "recipient_in_office", "person")
    if m["links"] and s.r.random() < 0.6:
        t, link = t + s.gap(5, 200), 1 + s.r.randrange(len(m["links"]))
        click_time_checks(s, m, rc, t, link, ip)  # the mail still went through the recipient's gateway
        s.hit(t, "c", m, rc, link, ip, BROWSER_IPHONE, "human", "recipient_in_office_click", "person")


# ===========================================================================
# The field mix (README.md: "The mix").

CLIENTS = [  # (client, share of recipients)
    ("apple_mpp", 0.45),  # Apple Mail with MPP (on by default since iOS 15)
    ("gmail", 0.22),
    ("outlook_desktop", 0.10),
    ("images_blocked", 0.04),  # Outlook with external pictures blocked: no opens
    ("apple_mail_no_mpp", 0.04),
    ("thunderbird", 0.02),
    ("android_client", 0.05),
    ("yahoo", 0.04),
    ("webmail_unknown_proxy", 0.04),
]
GATEWAYS = [  # (gateway, share among recipients at companies)
    ("none", 0.50),
    ("safelinks", 0.22),
    ("proofpoint", 0.08),
    ("mimecast", 0.07),
    ("barracuda", 0.05),
    ("unknown_scanner", 0.05),
    ("head_checker", 0.02),
    ("onprem_shared_nat", 0.01),
]


def pick(r, table):
    x, acc = r.random(), 0.0
    for k, p in table:
        acc += p
        if x < acc:
            return k
    return table[-1][0]


def make_message(s, reps, i):
    r = s.r
    sent_at = s.now - int(r.uniform(1 * DAY, 11 * DAY))
    nl = r.choice([1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6, 8])
    n_r = r.choices([1, 2, 3], [0.75, 0.15, 0.10])[0]
    shared = n_r > 1 and r.random() < 0.4  # one copy to several: recipient index 0
    html = r.random() < 0.92
    rep = dict(r.choice(reps))
    x = r.random()
    rep["at"] = "office" if x < 0.68 else ("home" if x < 0.92 else "none")
    rep["client_ip"] = {"office": rep["office_ip"], "home": rep["home_ip"], "none": ""}[rep["at"]]
    company = f"c{r.randrange(600):03d}"
    m = dict(id=s.uuid(), sent_at=sent_at, html=html, honeypot=html and r.random() < 0.9, rep=rep,
             links=[f"https://{r.choice(['example.com', 'example.org', 'example.net'])}/{r.choice(['pricing', 'case-studies', 'demo', 'docs', 'blog', 'calendar', 'proposal'])}/{i}-{k}"
                    for k in range(1, nl + 1)])
    rcpts = []
    for k in range(1, n_r + 1):
        comp = company if r.random() < 0.8 else f"c{r.randrange(600):03d}"
        rcpts.append(dict(i=k, addr=f"person{i}-{k}@{comp}.example", company=comp, token=0 if shared else (k if n_r > 1 else 1)))
    m["rcpts"] = rcpts
    # sent records: one per copy
    base = dict(type="sent", v="1", message=m["id"], message_id=f"{m['id'][:8]}.{i}@ourco.example", rep=rep["addr"],
                recipients=json.dumps([{"i": c["i"], "addr": c["addr"]} for c in rcpts], separators=(",", ":")),
                subject=f"Proposal {i}", links=json.dumps([{"i": k, "url": u} for k, u in enumerate(m["links"], 1)],
                                                          separators=(",", ":")))
    copies = [0] if shared else ([1] if n_r == 1 else [c["i"] for c in rcpts])
    for j, tr in enumerate(copies):
        rec = dict(base)
        rec["token_recipient"] = str(tr)
        rec["sent_at"] = str(sent_at + j * 1500)
        rec["client_ip"] = rep["client_ip"]
        order = ["type", "v", "message", "message_id", "rep", "recipients", "token_recipient", "subject", "sent_at",
                 "links", "client_ip"]
        s.sent.append({k: rec[k] for k in order})
    return m


def recipient_profile(s, m, rc):
    r = s.r
    rc["client"] = pick(r, CLIENTS)
    gw_table = GATEWAYS
    if rc["client"] in ("outlook_desktop", "images_blocked"):  # Microsoft shops: more Safe Links
        gw_table = [("safelinks", 0.45)] + [(k, p * 0.55 / 0.78) for k, p in GATEWAYS if k != "safelinks"]
    rc["gateway"] = pick(r, gw_table)
    rc["tz"] = r.choice([-8, -5, -5, 0, 1, 1, 2, 5.5, 8])
    desk = rc["client"] in ("outlook_desktop", "images_blocked", "thunderbird", "apple_mail_no_mpp")
    rc["ip"] = s.company_ip(rc["company"]) if desk or rc["gateway"] == "onprem_shared_nat" else s.person_ip()
    rc["click_ip"] = rc["ip"]
    rc["browser"] = r.choice(BROWSERS_DESKTOP) if desk else (
        BROWSER_IPHONE if rc["client"] == "apple_mpp" else r.choice(BROWSERS_DESKTOP + [BROWSER_ANDROID]))
    rc["client_ua"] = {"outlook_desktop": UA_OUTLOOK, "thunderbird": UA_THUNDERBIRD,
                       "apple_mail_no_mpp": UA_APPLE_MAIL_MAC, "android_client": UA_SAMSUNG_MAIL}.get(rc["client"])
    if rc["client"] == "apple_mpp" and r.random() < 0.4:
        rc["private_relay"] = True
    if r.random() < 0.02:
        rc["cloud_proxy"] = True  # browsing through a cloud web gateway (Zscaler-like)
        rc["click_ip"] = s.addr("cloud")
    if r.random() < 0.01:
        rc["ua_stripped"] = True  # a corporate proxy that strips User-Agent
    if rc["gateway"] == "safelinks":
        listed = r.random() < 0.65
        rc["sl_ip"] = s.addr("m365_exchange" if listed else "azure")
        rc["sl_ua"] = r.choice(SCANNER_BROWSER_UAS)
    rc["delivered"] = m["sent_at"] + (s.gap(1, 20) if r.random() < 0.95 else s.r.uniform(5 * MIN, 30 * MIN))


def simulate(s, n_messages):
    r = s.r
    reps = []
    for k in range(12):
        reps.append(dict(addr=f"rep{k + 1}@ourco.example", office_ip=s.addr("office"), home_ip=s.person_ip()))
    for i in range(1, n_messages + 1):
        m = make_message(s, reps, i)
        for rc in m["rcpts"]:
            recipient_profile(s, m, rc)
        for rc in m["rcpts"]:
            # the gateway acts at delivery whether or not anyone reads
            gw = rc["gateway"]
            if gw == "safelinks" and r.random() < 0.4:
                safelinks_delivery(s, m, rc)
            elif gw == "barracuda":
                barracuda(s, m, rc)
            elif gw == "proofpoint" and r.random() < 0.6:
                proofpoint(s, m, rc)
            elif gw == "mimecast" and r.random() < 0.35:
                mimecast_delivery(s, m, rc)
            elif gw == "unknown_scanner":
                unknown_scanner(s, m, rc)
            elif gw == "head_checker":
                head_probe(s, m, rc)
            elif gw == "onprem_shared_nat":
                onprem_gateway_shared_nat(s, m, rc)
            if rc["client"] == "gmail" and r.random() < 0.03:
                gmail_link_check(s, m, rc)
            # the person
            if r.random() < 0.015:
                fast_person(s, m, rc)
                continue
            if r.random() < 0.012:
                recipient_in_office(s, m, rc)
                continue
            reads = r.random() < 0.6
            read_at = rc["delivered"] + s.human_delay()
            rc["read_at"] = read_at
            c = rc["client"]
            if c == "apple_mpp":
                apple_mpp(s, m, rc, reads, read_at)
            elif c == "gmail":
                gmail(s, m, rc, reads, read_at)
            elif c == "yahoo":
                yahoo(s, m, rc, reads, read_at)
            elif c == "webmail_unknown_proxy":
                unknown_webmail_proxy(s, m, rc, reads, read_at)
            elif c != "images_blocked":
                direct_client(s, m, rc, reads, read_at, rc["client_ua"],
                              "human_mobile_open" if c == "android_client" else "human_desktop_open")
            if not reads:
                continue
            read_at = rc["read_at"]
            if r.random() < 0.3:
                person_clicks(s, m, rc, read_at + s.r.uniform(5 * SEC, 8 * MIN))
            if r.random() < 0.012:
                purpose_prefetch(s, m, rc, read_at + s.gap(1, 30))
            if r.random() < 0.03:
                forwarded(s, m, rc, read_at)
            if r.random() < 0.012:
                chat_unfurl_and_shared_clicks(s, m, rc, read_at + s.r.uniform(1 * MIN, 1 * HOUR))
        if m["rcpts"][0]["token"] == 0 and r.random() < 0.08:
            simultaneous_shared_copy(s, m, m["rcpts"][0], m["rcpts"][1:])
        if r.random() < 0.12:
            rep_activity(s, m)


# ===========================================================================
# Output


def esc(t):
    return t.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def event_lines(s, version=2):
    """Orders the hits, gives each an event id (time µs, edge random, counter,
    as docs/events.md) and groups them into entries as an edge's writer
    would: consecutive hits of one edge within 200 ms, at most 256."""
    s.hits.sort(key=lambda h: (h["t"], h["msg"], h["link"]))
    counters = defaultdict(int)
    entries, labels = [], []
    cur, cur_edge, cur_t = [], None, None
    sticky = {}  # the load balancer sends a client address to one edge
    for h in s.hits:
        if h["ip"] not in sticky:
            sticky[h["ip"]] = s.r.choice(s.edges)
        edge, rnd = sticky[h["ip"]]
        counters[edge] += 1
        eid = "%016x%s%08x" % (h["t"], rnd, counters[edge])
        line = "\t".join([eid, h["kind"], h["msg"], str(h["rcpt"]), str(h["link"]), str(h["t"]), h["ip"] or "-",
                          h["method"], esc(edge), esc(h["ua"]), esc(h["url"])]
                         + ([esc(h["purpose"])] if version == 2 else [])) + "\n"
        labels.append((eid, h["cls"], h["beh"], {"o": "open", "c": "click", "h": "honeypot"}[h["kind"]], h["actor"]))
        if cur and (edge != cur_edge or h["t"] - cur_t > 200_000 or len(cur) == 256):
            entries.append(cur)
            cur = []
        if not cur:
            cur_edge, cur_t = edge, h["t"]
        cur.append(line)
    if cur:
        entries.append(cur)
    return [dict(type="hits", v=str(version), n=str(len(e)), d="".join(e)) for e in entries], labels


def resp(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


# --- IP lists in their publishers' formats
def write_cidr(path, ranges, title):
    with open(path, "w") as f:
        f.write(f"# {title}: documentation ranges standing for the real ones (bench/classify)\n")
        for c in ranges:
            f.write(f"{c}\n")


def write_apple_csv(path, ranges):
    """egress-ip-ranges.csv: prefix,country,region,city, (split in pieces as
    Apple's file is)."""
    cities = [("US", "US-CA", "Los Angeles"), ("US", "US-NY", "New York"), ("GB", "GB-EN", "London"),
              ("DE", "DE-BE", "Berlin"), ("JP", "JP-13", "Tokyo"), ("FR", "FR-IDF", "Paris"),
              ("BR", "BR-SP", "Sao Paulo"), ("AU", "AU-NSW", "Sydney")]
    lines = []
    for c in ranges:
        n = ipaddress.ip_network(c)
        sub = n.subnets(new_prefix=n.prefixlen + 2) if n.version == 4 else n.subnets(new_prefix=n.prefixlen + 3)
        for j, p in enumerate(sub):
            cc, reg, city = cities[j % len(cities)]
            lines.append(f"{p},{cc},{reg},{city},\n")
    with open(path, "w") as f:
        f.writelines(lines)


def write_goog_json(path, ranges):
    pre = []
    for c in ranges:
        n = ipaddress.ip_network(c)
        key = "ipv4Prefix" if n.version == 4 else "ipv6Prefix"
        for p in (n.subnets(new_prefix=n.prefixlen + 1) if n.version == 4 else [n]):
            pre.append({key: str(p)})
    doc = {"syncToken": "1733011200000", "creationTime": "2024-12-01T00:00:00.000000", "prefixes": pre}
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def write_m365_json(path, exchange, other):
    """The endpoints web service's answer: endpoint sets; the Exchange ones
    hold our ranges, other service areas the decoy ranges (not to be read)."""
    sets = [
        {"id": 1, "serviceArea": "Exchange", "serviceAreaDisplayName": "Exchange Online",
         "urls": ["outlook.office.com", "outlook.office365.com"], "ips": exchange,
         "tcpPorts": "80,443", "expressRoute": True, "category": "Optimize", "required": True},
        {"id": 9, "serviceArea": "Exchange", "serviceAreaDisplayName": "Exchange Online",
         "urls": ["*.mail.protection.outlook.com"], "tcpPorts": "25", "expressRoute": False,
         "category": "Allow", "required": True},
        {"id": 31, "serviceArea": "SharePoint", "serviceAreaDisplayName": "SharePoint Online and OneDrive for Business",
         "urls": ["*.sharepoint.com"], "ips": other, "tcpPorts": "80,443", "expressRoute": True,
         "category": "Optimize", "required": True},
        {"id": 56, "serviceArea": "Common", "serviceAreaDisplayName": "Microsoft 365 Common and Office Online",
         "urls": ["*.auth.microsoft.com"], "tcpPorts": "443", "expressRoute": True, "category": "Allow",
         "required": True},
    ]
    with open(path, "w") as f:
        json.dump(sets, f, indent=1)
        f.write("\n")


LIST_GUESS = [  # a list name the rules use -> our network (by substring)
    ("office", "office"), ("apple", "apple_egress"), ("icloud", "apple_egress"), ("relay", "apple_egress"),
    ("goog", "google"), ("gmail", "google"), ("m365", "m365_exchange"), ("exchange", "m365_exchange"),
    ("microsoft", "m365_exchange"), ("eop", "m365_exchange"), ("barracuda", "barracuda"),
    ("proofpoint", "proofpoint"), ("mimecast", "mimecast"), ("yahoo", "yahoo"),
]
FILE_EXT = {"cidr": "txt", "apple-csv": "csv", "google-json": "json", "m365-json": "json"}


def write_rules(rules_in, out_dir):
    """The repository's rules with each `list NAME FORMAT PATH` pointed at a
    list of ours in that format. Returns the settings and the lists made."""
    os.makedirs(os.path.join(out_dir, "lists"), exist_ok=True)
    text = open(rules_in).read()
    made, out = [], []
    for line in text.splitlines(keepends=True):
        mt = re.match(r"^(\s*)list\s+(\S+)\s+(\S+)\s+(\S+)(.*?)(\r?\n?)$", line)
        if not mt:
            out.append(line)
            continue
        ind, name, fmt, _path, rest, nl = mt.groups()
        net = next((n for key, n in LIST_GUESS if key in name.lower()), None)
        ranges = NETWORKS[net] if net else []
        rel = f"lists/{name}.{FILE_EXT.get(fmt, 'txt')}"
        p = os.path.join(out_dir, rel)
        if fmt == "apple-csv":
            write_apple_csv(p, ranges)
        elif fmt == "google-json":
            write_goog_json(p, ranges)
        elif fmt == "m365-json":
            write_m365_json(p, ranges, NETWORKS["m365_other"] if net == "m365_exchange" else [])
        else:
            write_cidr(p, ranges, f"list {name}")
        if not net:
            print(f"gen_scenarios: the rules' list '{name}' matches no network here: written empty", file=sys.stderr)
        made.append((name, fmt, rel, net))
        out.append(f"{ind}list {name} {fmt} {rel}{rest}{nl}")
    with open(os.path.join(out_dir, "mailbeacon.rules"), "w") as f:
        f.write("# Generated by bench/classify/gen_scenarios.py from " + os.path.basename(rules_in) +
                ": the list paths point at the bench's lists.\n")
        f.writelines(out)
    sets = dict(re.findall(r"(?m)^\s*set\s+(\w+)\s+(\d+)", text))
    return {k: int(v) for k, v in sets.items()}, made


def mix_table(labels, dropped, n_msgs, n_sent):
    by_beh = Counter((l[2], l[1], l[3]) for l in labels)
    kinds = Counter(l[3] for l in labels)
    cls = Counter((l[3], l[1]) for l in labels)
    lines = [f"{len(labels)} events ({kinds['open']} opens, {kinds['click']} clicks, {kinds['honeypot']} honeypot hits) "
             f"on {n_msgs} messages ({n_sent} sent records); {dropped} hits fell after now - 2 min (not generated)\n",
             "", "| kind | " + " | ".join(CLASSES) + " |", "| --- |" + " --- |" * len(CLASSES)]
    for k in ("open", "click", "honeypot"):
        lines.append(f"| {k} | " + " | ".join(str(cls[(k, c)]) for c in CLASSES) + " |")
    lines += ["", "| behaviour | true class | kind | events | share of its kind |", "| --- | --- | --- | --- | --- |"]
    for (beh, c, k), n in sorted(by_beh.items(), key=lambda x: (x[0][2], -x[1], x[0][0])):
        lines.append(f"| {beh} | {c} | {k} | {n} | {100.0 * n / kinds[k]:.1f} % |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--now", type=int, default=None, help="µs since the epoch (default: the clock)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--rules", default=os.path.join(here, "..", "..", "rules", "mailbeacon.rules"))
    ap.add_argument("--stream", default="mailbeacon:events")
    ap.add_argument("--hits-version", type=int, choices=(1, 2), default=2,
                    help="1: the old 11-field lines, without honeypot hits (to try run.sh against a batcher "
                         "that has no classifier yet)")
    a = ap.parse_args()
    check_networks()
    now = a.now if a.now is not None else int(time.time() * SEC)
    os.makedirs(a.out, exist_ok=True)
    sets, made = write_rules(a.rules, os.path.join(a.out, "rules"))
    th = {"burst_links": 3, "burst_window_ms": 30000, "pair_window_ms": 2000, "fast_click_ms": 10000}
    th.update({k: v for k, v in sets.items() if k in th})
    s = Sim(a.seed, now, th)
    simulate(s, a.messages)
    if a.hits_version == 1:
        s.hits = [h for h in s.hits if h["kind"] != "h"]
    entries, labels = event_lines(s, a.hits_version)
    # Live arrival: every entry (sent records among the hits) in time order, its stream id made
    # from its time, as the rewriter and the edge would have added it then. The batcher judges an
    # event final lookahead_ms before the oldest entry still in the stream, so a replay of days
    # in seconds closes each look-ahead window where it would have closed live.
    def entry_us(e):
        if e.get("type") == "sent":
            return int(e["sent_at"])
        return max(int(line.split("\t")[5]) for line in e["d"].split("\n") if line)
    timed = sorted(((entry_us(e), i, e) for i, e in enumerate(s.sent + entries)), key=lambda x: (x[0], x[1]))
    last_ms, seq = -1, 0
    with open(os.path.join(a.out, "entries.jsonl"), "w") as f, open(os.path.join(a.out, "entries.resp"), "wb") as fr:
        for us, _, e in timed:
            ms = max(us // 1000, last_ms)
            seq = seq + 1 if ms == last_ms else 0
            last_ms = ms
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
            args = ["XADD", a.stream, f"{ms}-{seq}"]
            for k, v in e.items():
                args += [k, v]
            fr.write(resp(args))
    with open(os.path.join(a.out, "labels.tsv"), "w") as f:
        f.write("event_id\tclass\tbehaviour\tkind\tactor\n")
        for l in labels:
            f.write("\t".join(l) + "\n")
    mix = mix_table(labels, s.dropped, a.messages, len(s.sent))
    with open(os.path.join(a.out, "mix.md"), "w") as f:
        f.write(f"seed {a.seed}, thresholds {json.dumps(th, sort_keys=True)}\n\n" + mix)
    kinds = Counter(l[3] for l in labels)
    mpp = sum(1 for l in labels if l[2].startswith("apple_mpp") and l[1] == "prefetch")
    print(f"gen_scenarios: {len(labels)} events in {len(entries)} hits entries, {len(s.sent)} sent records; "
          f"MPP prefetch {100.0 * mpp / max(1, kinds['open']):.0f} % of opens; lists: "
          + ", ".join(f"{n} ({fmt})" for n, fmt, _, _ in made) + f"; thresholds {th}", file=sys.stderr)


if __name__ == "__main__":
    main()
