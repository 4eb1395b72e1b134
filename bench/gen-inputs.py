#!/usr/bin/env python3
"""Write deterministic benchmark inputs for the HTML rewriter comparison.

usage: gen-inputs.py DIR [--mem]

DIR/links800.html   ~100 KB of paragraphs, lists and tables with 800 rewritable links
DIR/newsletter.html ~30 KB newsletter (header, hero, article cards, buttons, footer), 40 links
DIR/*.eml           the same HTML wrapped in an RFC 5322 message: multipart/alternative,
                    text/plain + text/html (quoted-printable, UTF-8), CRLF line endings
DIR/manifest.json   per file: size in bytes and the number of links a rewriter must rewrite
--mem               also DIR/mem-{30k,100k,1m,4m,10m}.eml: messages of about that total size,
                    grown by repeating link paragraphs (for peak-memory measurements and the
                    whole-message comparison), and mem-{1m,4m}.html, their HTML documents

"Rewritable" = <a href> / <area href> whose value starts with http:// or https://, outside
comments and raw-text elements. Every file also holds a few links a rewriter must leave alone
(mailto:, #anchor, relative, and <a> inside <!--[if mso]> comments and <style>/<title>), which
the manifest does not count. Only the Python standard library is used; output is byte-identical
from run to run.
"""
import email.quoprimime
import json
import os
import random
import sys

WORDS = (
    "account activity agenda analysis annual approach audience benefit budget business campaign "
    "customer contract data deadline delivery design detail discount team engagement estimate "
    "feature feedback forecast growth guide insight integration invoice launch market meeting "
    "milestone network offer onboarding order partner performance plan platform pricing process "
    "product program project proposal quarter quote region release report request review revenue "
    "roadmap sales schedule service solution strategy subscription summary support survey "
    "timeline training trial update upgrade usage value vendor webinar workflow workshop"
).split()
GLUE = "the a our your this next new every with for from about into across before after".split()
ACCENTED = ["café", "naïve", "résumé", "Zürich", "São Paulo", "déjà vu", "€49", "—", "“quoted”"]
SECTIONS = ["products", "blog", "pricing", "docs", "events", "customers", "support", "news"]
FOOTER_NOTE = "You are receiving this because you asked us to keep in touch."


class Gen:
    """Deterministic text and URL source; every file gets its own seed."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.link_no = 0

    def words(self, n):
        out = []
        for i in range(n):
            pool = GLUE if i % 3 == 1 else WORDS
            out.append(self.r.choice(pool))
        if self.r.random() < 0.15:  # a little UTF-8 now and then
            out.insert(self.r.randrange(len(out) + 1), self.r.choice(ACCENTED))
        return " ".join(out)

    def sentence(self, n):
        s = self.words(n)
        return s[0].upper() + s[1:] + "."

    def url(self):
        """Next link target, as it would appear raw in an attribute (& written as &amp;)."""
        self.link_no += 1
        n, r = self.link_no, self.r
        path = f"https://example.com/{r.choice(SECTIONS)}/{r.choice(WORDS)}-{n}"
        kind = r.random()
        if kind < 0.2:
            path += f"?ref=nl&amp;id={n}"
        elif kind < 0.3:
            path += f"?utm_campaign=q{n % 4 + 1}"
        elif kind < 0.35:
            path += f"#s{n % 9}"
        return path

    def plain_url(self, raw):
        return raw.replace("&amp;", "&")


def esc_text(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---------------------------------------------------------------------------------------------
# links800.html: article-like body; blocks are produced by a generator so the same code also
# grows the large memory-test messages.

def link_blocks(g, k):
    """Yield (html, text, links) blocks forever; k = words of prose between links."""
    b = 0
    while True:
        b += 1
        kind = b % 5
        if kind in (1, 2, 4):  # paragraph with 3 links
            html, text = ["<p>"], []
            for _ in range(3):
                u = g.url()
                w = g.words(k)
                anchor = g.words(g.r.randint(1, 3))
                html.append(f'{esc_text(w)} <a href="{u}">{esc_text(anchor)}</a> ')
                text.append(f"{w} {anchor} [{g.plain_url(u)}]")
            tail = g.sentence(k // 2 + 1)
            html.append(f"{esc_text(tail)}</p>\n")
            text.append(tail)
            yield "".join(html), " ".join(text) + "\n\n", 3
        elif kind == 3:  # a small table, one link per row
            rows, text = [], []
            for _ in range(4):
                u = g.url()
                name = g.words(2)
                rows.append(
                    f'<tr><td style="padding:4px 8px">'
                    f'<a href="{u}">{esc_text(name)}</a></td>'
                    f'<td style="padding:4px 8px">{esc_text(g.words(k // 2 + 1))}</td>'
                    f'<td align="right">{g.r.randrange(10, 999)}.00</td></tr>\n')
                text.append(f"- {name} [{g.plain_url(u)}]")
            html = ('<table width="100%" cellpadding="0" cellspacing="0" border="0" '
                    'style="border-collapse:collapse;margin:12px 0">\n' + "".join(rows) +
                    "</table>\n")
            yield html, "\n".join(text) + "\n\n", 4
        else:  # a list, one link per item
            items, text = [], []
            for _ in range(3):
                u = g.url()
                a = g.words(2)
                items.append(f'<li>{esc_text(g.words(k // 2 + 1))} '
                             f'<a href="{u}" target="_blank">{esc_text(a)}</a></li>\n')
                text.append(f"* {a} [{g.plain_url(u)}]")
            yield "<ul>\n" + "".join(items) + "</ul>\n", "\n".join(text) + "\n\n", 3


def links_head(title):
    return ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<title>{title} <a href="https://example.com/not-a-link-in-title">x</a></title>\n'
            '<style>a { color:#0645ad } /* <a href="https://example.com/not-in-style"> */</style>\n'
            '</head>\n<body style="font-family:Arial,sans-serif;font-size:14px;color:#222">\n'
            f'<h1>{title}</h1>\n'
            '<!--[if mso]><a href="https://example.com/not-in-mso-comment">mso</a><![endif]-->\n')


def links_foot():
    # Links that must be left alone; an image map whose <area> links are rewritable.
    return ('<p>Questions? <a href="mailto:sales@example.com">sales@example.com</a> · '
            '<a href="#top">back to top</a> · <a href="/relative/path">relative</a></p>\n'
            f'<p style="color:#888;font-size:11px">{FOOTER_NOTE}</p>\n'
            '</body>\n</html>\n')


def image_map(g):
    u1, u2 = g.url(), g.url()
    return ('<img src="https://img.example.com/map.png" usemap="#m" width="600" height="100" alt="">\n'
            f'<map name="m"><area shape="rect" coords="0,0,300,100" href="{u1}" alt="left">'
            f'<area shape="rect" coords="300,0,600,100" href="{u2}" alt="right"></map>\n',
            f"[{g.plain_url(u1)}] [{g.plain_url(u2)}]\n\n", 2)


def make_links_doc(seed, k, n_links=None, target_bytes=None):
    """Article-like document with exactly n_links links, or grown to about target_bytes."""
    g = Gen(seed)
    head, foot = links_head("Quarterly product update"), links_foot()
    html, text, count, size = [head], ["Quarterly product update\n\n"], 0, len(head) + len(foot)
    m = image_map(g)
    html.append(m[0]); text.append(m[1]); count += m[2]; size += len(m[0].encode())
    for bh, bt, bn in link_blocks(g, k):
        if n_links is not None and count + bn > n_links:
            break
        if target_bytes is not None and size >= target_bytes:
            break
        html.append(bh); text.append(bt); count += bn; size += len(bh.encode())
    if n_links is not None:  # top up with one-link paragraphs to hit the exact count
        while count < n_links:
            u = g.url()
            w = g.words(k)
            html.append(f'<p>{esc_text(w)} <a href="{u}">{esc_text(g.words(2))}</a>.</p>\n')
            text.append(f"{w} [{g.plain_url(u)}]\n\n")
            count += 1
    html.append(foot)
    return "".join(html), "".join(text), count


def fit_links800():
    """Pick the prose density so 800 links take about 100 KB (first k at or above it)."""
    for k in range(0, 60):
        html, text, n = make_links_doc(800, k, n_links=800)
        if len(html.encode()) >= 100 * 1024:
            return html, text, n
    raise SystemExit("could not fit links800")


# ---------------------------------------------------------------------------------------------
# newsletter.html: table layout, inline styles, images, header and footer, 40 links.

def make_newsletter(k):
    g = Gen(4040)
    n = 0
    font = "font-family:Helvetica,Arial,sans-serif"
    out = [
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
        '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
        '<html xmlns="http://www.w3.org/1999/xhtml">\n<head>\n'
        '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1.0">\n'
        '<title>Acme Monthly — June</title>\n'
        '<style type="text/css">\n'
        '  body { margin:0; padding:0; } table { border-collapse:collapse; }\n'
        '  @media only screen and (max-width:600px) { .col { display:block !important; '
        'width:100% !important; } }\n</style>\n'
        '<!--[if mso]><style>td { font-family: Arial, sans-serif; }</style><![endif]-->\n'
        '</head>\n'
        f'<body style="margin:0;padding:0;background-color:#f2f4f6;{font}">\n'
        '<span style="display:none;max-height:0;overflow:hidden">This month: new features, '
        'customer stories and the June webinar.</span>\n'
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" '
        'bgcolor="#f2f4f6">\n<tr><td align="center" style="padding:24px 12px">\n'
        '<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" '
        'style="width:600px;max-width:600px;background:#ffffff;border-radius:6px">\n']
    text = ["Acme Monthly - June\n\n"]

    def link(inner, style="color:#1a73e8;text-decoration:underline"):
        nonlocal n
        n += 1
        u = g.url()
        text.append(f"[{g.plain_url(u)}]\n")
        st = f' style="{style}"' if style else ""
        return f'<a href="{u}" target="_blank"{st}>{inner}</a>'

    # header: logo + nav (4 links)
    logo = ('<img src="https://img.example.com/logo@2x.png" width="140" height="36" alt="Acme" '
            'style="display:block;border:0;outline:none;text-decoration:none">')
    nav = " &nbsp;|&nbsp; ".join(
        link(w, "color:#555555;text-decoration:none;font-size:13px") for w in
        ("Products", "Pricing", "Blog"))
    out.append(f'<tr><td style="padding:20px 24px;border-bottom:1px solid #e5e7eb">'
               f'<table role="presentation" width="100%"><tr><td>{link(logo, "")}</td>'
               f'<td align="right" style="{font}">{nav}</td></tr></table></td></tr>\n')
    # hero image + headline + button (2 links)
    hero = ('<img src="https://img.example.com/hero-june.jpg" width="600" height="240" '
            'alt="June release" style="display:block;width:100%;height:auto;border:0">')
    out.append(f'<tr><td>{link(hero, "")}</td></tr>\n')
    button = ("background-color:#1a73e8;border-radius:4px;color:#ffffff;display:inline-block;"
              "font-size:16px;font-weight:bold;line-height:44px;text-align:center;"
              "text-decoration:none;width:220px;-webkit-text-size-adjust:none")
    out.append(f'<tr><td style="padding:28px 24px 8px 24px;{font}">'
               f'<h1 style="margin:0 0 12px 0;font-size:26px;line-height:32px;color:#111827">'
               f'{esc_text(g.sentence(6))}</h1>'
               f'<p style="margin:0 0 20px 0;font-size:15px;line-height:24px;color:#374151">'
               f'{esc_text(g.sentence(k * 2))}</p>\n'
               '<!--[if mso]><v:roundrect xmlns:v="urn:schemas-microsoft-com:vml" '
               'href="https://example.com/not-in-vml" style="height:44px;width:220px" '
               'arcsize="10%" fillcolor="#1a73e8"><center>See what is new</center>'
               '</v:roundrect><![endif]-->\n'
               f'<!--[if !mso]><!-- -->{link("See what is new", button)}<!--<![endif]-->'
               '</td></tr>\n')
    # article cards, two per row: image, title, text with an inline link, "read more" (3 each)
    cards = 0
    while n + 3 * 2 <= 40 - 7:  # keep 7 links for the footer
        row = []
        for _ in range(2):
            cards += 1
            img = (f'<img src="https://img.example.com/card-{cards}.jpg" width="264" height="150" '
                   f'alt="" style="display:block;width:100%;height:auto;border:0;border-radius:4px">')
            title = esc_text(g.sentence(5))
            body = (f'{esc_text(g.sentence(k))} {link(esc_text(g.words(3)))} '
                    f'{esc_text(g.sentence(k))}')
            more = link("Read more &rarr;", "color:#1a73e8;font-weight:bold;text-decoration:none")
            row.append(
                f'<td class="col" width="50%" valign="top" style="padding:12px;{font}">'
                f'{link(img, "")}'
                f'<h2 style="margin:12px 0 6px 0;font-size:18px;line-height:24px;color:#111827">'
                f'{title}</h2>'
                f'<p style="margin:0 0 10px 0;font-size:14px;line-height:22px;color:#4b5563">'
                f'{body}</p>{more}</td>')
            text.append(f"{title}\n\n")
        out.append('<tr><td style="padding:8px 12px"><table role="presentation" width="100%" '
                   'cellpadding="0" cellspacing="0" border="0"><tr>\n'
                   + "\n".join(row) + '\n</tr></table></td></tr>\n')
    # upcoming events: a list, one link per item, filling up to the 7 footer links
    items = []
    while n < 40 - 7:
        items.append(f'<li style="margin:0 0 6px 0">{esc_text(g.words(k // 2 + 2))} — '
                     f'{link("Register")}</li>')
    out.append(f'<tr><td style="padding:8px 24px 20px 24px;{font};font-size:14px;'
               f'line-height:22px;color:#374151"><h2 style="font-size:18px;margin:0 0 8px 0">'
               f'Upcoming events</h2><ul style="margin:0;padding:0 0 0 18px">'
               + "".join(items) + '</ul></td></tr>\n')
    # footer: social icons, preferences, unsubscribe, plus links that must be left alone
    socials = "".join(
        link(f'<img src="https://img.example.com/icon-{s}.png" width="24" height="24" alt="{s}" '
             f'style="border:0">', "display:inline-block;margin:0 6px") for s in
        ("twitter", "linkedin", "youtube"))
    extra = " · ".join(link(w, "color:#6b7280") for w in
                       ("Manage preferences", "Unsubscribe", "View in browser", "Privacy"))
    out.append(f'<tr><td align="center" style="padding:24px;background:#f9fafb;{font};'
               f'font-size:12px;line-height:18px;color:#6b7280">'
               f'<p style="margin:0 0 12px 0">{socials}</p>'
               f'<p style="margin:0 0 8px 0">{extra}</p>'
               '<p style="margin:0">Acme Inc. · 1 Market Street · San Francisco, CA · '
               '<a href="mailto:hello@example.com" style="color:#6b7280">hello@example.com</a> · '
               '<a href="#top" style="color:#6b7280">Top</a></p>'
               f'<p style="margin:8px 0 0 0">{FOOTER_NOTE}</p></td></tr>\n'
               '</table>\n</td></tr>\n</table>\n</body>\n</html>\n')
    return "".join(out), "".join(text), n


def fit_newsletter():
    for k in range(4, 200):
        html, text, n = make_newsletter(k)
        if len(html.encode()) >= 30 * 1024:
            assert n == 40, n
            return html, text, n
    raise SystemExit("could not fit newsletter")


# ---------------------------------------------------------------------------------------------
# RFC 5322 wrapping

BOUNDARY = "=_mailbeacon_bench_b1"


def qp(s):
    """Quoted-printable (UTF-8) with CRLF; encodes line by line, so it can run per block."""
    return email.quoprimime.body_encode(s.encode("utf-8").decode("latin-1"), eol="\r\n")


def eml_head(subject, n):
    return "\r\n".join([
        "Return-Path: <rep@sender.example>",
        "Received: from client.sender.example (client.sender.example [192.0.2.10])",
        "\tby mx.sender.example (Postfix) with ESMTPSA id 4Q1bench%04d" % n,
        "\tfor <dana@acme.example>; Mon, 3 Jun 2024 09:15:00 +0000 (UTC)",
        "From: Robin Rep <rep@sender.example>",
        "To: Dana Buyer <dana@acme.example>",
        f"Subject: {subject}",
        "Date: Mon, 3 Jun 2024 09:15:00 +0000",
        f"Message-ID: <bench-{n}@sender.example>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{BOUNDARY}"',
        "",
        "This is a multi-part message in MIME format.",
        "",
        f"--{BOUNDARY}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "", ""])


def eml_mid():
    return "\r\n".join([
        "", f"--{BOUNDARY}",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "", ""])


def eml_tail():
    return f"\r\n--{BOUNDARY}--\r\n"


def make_eml(subject, n, html, text):
    return (eml_head(subject, n) + qp(text) + eml_mid() + qp(html) + eml_tail()).encode("ascii")


def make_mem_eml(target, seed):
    """A message of about `target` bytes: a links800-style document grown block by block.
    The text part is kept short (a summary) so that most of the size is HTML. Returns the
    message, its link count and its HTML document (what lol-html is given)."""
    g = Gen(seed)
    k = 9
    head, foot = links_head("Big message"), links_foot()
    text = qp("Big message\n\n" + g.words(60) + "\n")
    fixed = len(eml_head("Big", seed)) + len(text) + len(eml_mid()) + len(eml_tail()) \
        + len(qp(head)) + len(qp(foot))
    parts, size, count, html = [qp(head)], fixed, 0, [head]
    for bh, _bt, bn in link_blocks(g, k):
        e = qp(bh)
        if size + len(e) > target:
            break
        parts.append(e); size += len(e); count += bn; html.append(bh)
    html = ("".join(html) + foot).encode("utf-8")
    parts.append(qp(foot))
    body = eml_head(f"Big message {target}", seed) + text + eml_mid() + "".join(parts) + eml_tail()
    return body.encode("ascii"), count, html


def main():
    args = [a for a in sys.argv[1:] if a != "--mem"]
    if len(args) != 1 or args[0].startswith("-"):
        sys.exit("usage: gen-inputs.py DIR [--mem]")
    out = args[0]
    os.makedirs(out, exist_ok=True)
    manifest = {}

    def write(name, data, links):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        manifest[name] = {"bytes": len(data), "links": links}

    html, text, n = fit_links800()
    write("links800.html", html.encode(), n)
    write("links800.eml", make_eml("Quarterly product update", 1, html, text), n)
    html, text, n = fit_newsletter()
    write("newsletter.html", html.encode(), n)
    write("newsletter.eml", make_eml("Acme Monthly - June", 2, html, text), n)
    if "--mem" in sys.argv[1:]:
        for name, target in (("mem-30k", 30 * 1024), ("mem-100k", 100 * 1024), ("mem-1m", 1024 * 1024),
                             ("mem-4m", 4 * 1024 * 1024), ("mem-10m", 10 * 1024 * 1024)):
            data, n, html = make_mem_eml(target, 7000 + target % 9973)
            write(name + ".eml", data, n)
            if name in ("mem-1m", "mem-4m"):
                write(name + ".html", html, n)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    for name in sorted(manifest):
        print(f"{name:16} {manifest[name]['bytes']:>10} bytes {manifest[name]['links']:>6} links")


if __name__ == "__main__":
    main()
