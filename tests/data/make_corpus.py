#!/usr/bin/env python3
"""Regenerate the mailbeacon-rewrite input corpus (tests/data/NN-*.eml).

Deterministic: running it again rewrites every file byte-identically.
All files use CRLF line endings except 19-lf-only.eml and 39-qp-encoded-crlf-lf-only.eml (LF only).
Messages are composed here with LF and converted to CRLF at the very end.

Usage:  python3 tests/data/make_corpus.py [--check]
   --check  do not write; exit 1 if any file on disk differs from what
            this script would generate.
"""
import base64
import datetime
import hashlib
import quopri
import random
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRACK_BASE = "https://t.mailbeacon.test"

DEFAULT_FROM = "Sam Ortega <sam.ortega@ourco.example>"
DEFAULT_TO = "Dana Whitfield <dana@acme.example>"

FILES = {}  # name -> bytes
NOTES = {}  # name -> extra facts printed at the end


# ---------------------------------------------------------------- helpers

def crlf(s):
    assert "\r" not in s, "compose with LF only"
    return s.replace("\n", "\r\n")


def date_for(n):
    d = datetime.date(2024, 9, 2 + (n % 26))
    return "%s, %d Sep 2024 %02d:%02d:%02d +0200" % (
        d.strftime("%a"), d.day, 8 + n % 10, (n * 7) % 60, (n * 13) % 60)


def std_headers(n, subject, frm=DEFAULT_FROM, to=DEFAULT_TO, cc=None, extra_top=(), agent=True):
    """RFC 5322 header block lines (without Content-* lines)."""
    h = list(extra_top)
    h.append("From: " + frm)
    h.append("To: " + to)
    if cc:
        h.append("Cc: " + cc)
    h.append("Subject: " + subject)
    h.append("Date: " + date_for(n))
    h.append("Message-ID: <%s.%02d.%s@ourco.example>" % (
        hashlib.sha1(("mb-%d" % n).encode()).hexdigest()[:16], n, "mail"))
    if agent:
        h.append(["User-Agent: Mozilla Thunderbird",
                  "X-Mailer: Microsoft Outlook 16.0",
                  "X-Mailer: Apple Mail (2.3774.500.171.1.1)"][n % 3])
    h.append("MIME-Version: 1.0")
    return h


def message(headers, body):
    return "\n".join(headers) + "\n\n" + body


def html_doc(title, body, charset="utf-8"):
    return (
        "<!DOCTYPE html>\n"
        "<html>\n"
        "<head>\n"
        '<meta http-equiv="Content-Type" content="text/html; charset=%s">\n'
        "<title>%s</title>\n"
        "</head>\n"
        "<body>\n"
        "%s"
        "</body>\n"
        "</html>\n" % (charset, title, body)
    )


def qp(text, charset="utf-8"):
    """Quoted-printable encode text (LF line breaks; converted to CRLF later)."""
    assert text.endswith("\n")
    enc = quopri.encodestring(text.encode(charset)).decode("ascii")
    assert all(len(l) <= 76 for l in enc.split("\n")), "QP line too long"
    return enc


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.encodebytes(data).decode("ascii")  # 76-col lines, LF


def canon(text):
    """Text as it will be after LF->CRLF conversion (for content that is base64'd)."""
    return text.replace("\n", "\r\n")


def png(width, height, rgb):
    def chunk(tag, data):
        c = struct.pack(">I", len(data)) + tag + data
        return c + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    raw = b""
    for y in range(height):
        row = b"\x00"
        for x in range(width):
            if (x // 4 + y // 4) % 2:
                row += bytes(rgb)
            else:
                row += b"\xff\xff\xff"
        raw += row
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def fake_pdf(title):
    body = ("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
            "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
            "2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n"
            "3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            "/Resources << /Font << /F1 5 0 R >> >> >>\nendobj\n")
    stream = "BT /F1 24 Tf 72 700 Td (%s) Tj ET" % title
    body += "4 0 obj\n<< /Length %d >>\nstream\n%s\nendstream\nendobj\n" % (len(stream), stream)
    body += "5 0 obj\n<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\nendobj\n"
    body += "trailer\n<< /Root 1 0 R /Size 6 >>\n%%EOF\n"
    data = body.encode("latin-1")
    data += bytes(random.Random(title).getrandbits(8) for _ in range(600))  # "compressed" tail
    return data


def rnd_bytes(seed, n):
    r = random.Random(seed)
    return bytes(r.getrandbits(8) for _ in range(n))


def crc24(data):
    crc = 0xB704CE
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def plain_links():
    return ("Hi Dana,\n\n"
            "Following up on our call: the pricing overview is at\n"
            "https://example.com/pricing and the case study is at\n"
            "https://example.com/case-studies/acme-logistics\n\n"
            "Best,\nSam\n")


def std_html_body(tag="", extra=""):
    return (
        "<p>Hi Dana,</p>\n"
        "<p>Thanks for taking the time to talk today. As promised, here is our\n"
        '<a href="https://example.com/pricing%s">pricing overview</a> and the\n'
        '<a href="https://example.com/case-studies/acme-logistics">Acme Logistics case study</a>.</p>\n'
        "%s"
        '<p>If it helps, you can <a href="https://example.com/book?rep=sam&amp;src=email">book a follow-up slot</a>\n'
        "directly in my calendar.</p>\n"
        "<p>Best regards,<br>\nSam Ortega<br>\nAccount Executive, OurCo</p>\n" % (tag, extra)
    )


def add(name, text, lf_only=False, allow_8bit=False):
    if not allow_8bit:
        assert all(ord(c) < 128 for c in text), name + ": unexpected non-ASCII"
    data = (text if lf_only else crlf(text)).encode("utf-8")
    FILES[name] = data


# ---------------------------------------------------------------- cases

def c01():
    h = std_headers(1, "Proposal Q3") + [
        'Content-Type: text/html; charset="us-ascii"',
        "Content-Transfer-Encoding: 7bit"]
    add("01-single-html-7bit.eml", message(h, html_doc("Proposal Q3", std_html_body(), "us-ascii")))


def c02():
    h = std_headers(2, "Quick links") + [
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: 7bit"]
    body = ("<p>Hi Dana,</p>\n"
            '<p>Here is the <a href="https://example.com/demo">demo recording</a> and the\n'
            '<a href="https://example.com/docs/getting-started">getting started guide</a>.</p>\n'
            '<p>Slides: <a href="https://example.com/slides/q3.pdf">q3.pdf</a></p>\n'
            "<p>Sam</p>\n")
    add("02-html-fragment.eml", message(h, body))


def c03():
    b = "------------a4C1d8B2e0F7g3H6i9J5"
    h = std_headers(3, "Rencontre =?iso-8859-1?Q?=E0?= Lyon") + [
        'Content-Type: multipart/alternative; boundary="%s"' % b]
    plain = ("Bonjour Dana,\n\n"
             "Merci pour votre int\u00e9r\u00eat. Notre caf\u00e9 d\u00e9gustation a lieu \u00e0 Lyon,\n"
             "M\u00fcller & Fr\u00e8res nous rejoindront.\n\n"
             "Programme : https://example.com/programme\n"
             "Inscription : https://example.com/caf\u00e9/inscription\n\n"
             "Cordialement,\nSam\n")
    body_html = (
        "<p>Bonjour Dana,</p>\n"
        "<p>Merci pour votre int\u00e9r\u00eat. Notre <b>caf\u00e9 d\u00e9gustation</b> a lieu \u00e0 Lyon ;\n"
        "l'\u00e9quipe de M\u00fcller &amp; Fr\u00e8res nous rejoindra.</p>\n"
        '<p>Voir le <a href="https://example.com/programme?lang=fr&amp;ville=lyon">programme complet</a>\n'
        'et la <a href="https://example.com/caf\u00e9/inscription">page d\'inscription du caf\u00e9</a>.</p>\n'
        '<p>Plan d\'acc\u00e8s : <a href="https://example.com/acces">ici</a>. \u00c0 bient\u00f4t !</p>\n'
        "<p>Cordialement,<br>\nSam Ortega</p>\n")
    html = html_doc("Rencontre \u00e0 Lyon", body_html, "iso-8859-1")
    body = ("This is a multi-part message in MIME format.\n"
            "--%s\n"
            "Content-Type: text/plain; charset=iso-8859-1; format=flowed\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
            "%s\n"
            "--%s\n"
            "Content-Type: text/html; charset=iso-8859-1\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
            "%s\n"
            "--%s--\n") % (b, qp(plain, "iso-8859-1"), b, qp(html, "iso-8859-1"), b)
    add("03-alternative-qp-latin1.eml", message(h, body))


def c04():
    h = std_headers(4, "=?UTF-8?B?R3LDvMOfZSBhdXMgVG9reW8=?=") + [
        "Content-Type: text/html; charset=UTF-8",
        "Content-Transfer-Encoding: base64"]
    body_html = (
        "<p>Liebe Dana,</p>\n"
        "<p>viele Gr\u00fc\u00dfe aus Tokyo! Unsere Unterlagen gibt es jetzt auch auf\n"
        "\u65e5\u672c\u8a9e (Japanisch): "
        '<a href="https://example.com/ja/\u8cc7\u6599">\u8cc7\u6599\u3092\u898b\u308b</a>.</p>\n'
        '<p>Die deutsche Fassung: <a href="https://example.com/de/unterlagen">Unterlagen</a>,\n'
        'die Preise: <a href="https://example.com/de/preise?w\u00e4hrung=EUR">Preis\u00fcbersicht</a>.</p>\n'
        "<p>Herzliche Gr\u00fc\u00dfe \u2014 Sam \U0001F44B</p>\n")
    html = html_doc("Gr\u00fc\u00dfe \u2014 \u65e5\u672c\u8a9e", body_html, "utf-8")
    add("04-base64-utf8.eml", message(h, b64(canon(html))))


def c05():
    b = "_005_AM0PR07MB1234ABCD_"
    h = std_headers(5, "Weekly report attached") + [
        'Content-Type: multipart/mixed; boundary="%s"' % b]
    main = html_doc("Weekly report", std_html_body())
    report = html_doc("Report week 37", (
        "<h1>Pipeline report &mdash; week 37</h1>\n"
        "<table>\n"
        '<tr><td><a href="https://example.com/crm/deal/1001">Acme renewal</a></td><td>$48,000</td></tr>\n'
        '<tr><td><a href="https://example.com/crm/deal/1002">Globex pilot</a></td><td>$12,500</td></tr>\n'
        '<tr><td><a href="https://example.com/crm/deal/1003">Initech upsell</a></td><td>$7,200</td></tr>\n'
        "</table>\n"))
    body = ("--%s\n"
            'Content-Type: text/html; charset="us-ascii"\n'
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s\n"
            'Content-Type: text/html; charset="us-ascii"; name="report.html"\n'
            "Content-Description: report.html\n"
            'Content-Disposition: attachment; filename="report.html"; size=%d\n'
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s--\n") % (b, main, b, len(canon(report)), report, b)
    add("05-mixed-html-attachment.eml", message(h, body))


def smime_sig(seed):
    data = b"\x30\x82\x06\x7a\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x02\xa0" + rnd_bytes(seed, 1650)
    return b64(data)


def c06():
    bs = "------------ms060906030408020905070108"
    ba = "------------Zp3Qw9Lk2Xv8Rt4Ny6Mb1Hc0"
    h = std_headers(6, "Signed: contract draft") + [
        'Content-Type: multipart/signed; protocol="application/pkcs7-signature";',
        ' micalg=sha-256; boundary="%s"' % bs]
    alt = ("--%s\n"
           "Content-Type: text/plain; charset=UTF-8; format=flowed\n"
           "Content-Transfer-Encoding: 7bit\n\n"
           "%s\n"
           "--%s\n"
           "Content-Type: text/html; charset=UTF-8\n"
           "Content-Transfer-Encoding: 7bit\n\n"
           "%s\n"
           "--%s--\n") % (ba, plain_links(), ba, html_doc("Contract draft", std_html_body()), ba)
    body = ("This is a cryptographically signed message in MIME format.\n\n"
            "--%s\n"
            "Content-Type: multipart/alternative;\n"
            ' boundary="%s"\n\n'
            "%s\n"
            "--%s\n"
            'Content-Type: application/pkcs7-signature; name="smime.p7s"\n'
            "Content-Transfer-Encoding: base64\n"
            'Content-Disposition: attachment; filename="smime.p7s"\n'
            "Content-Description: S/MIME Cryptographic Signature\n\n"
            "%s\n"
            "--%s--\n\n") % (bs, ba, alt, bs, smime_sig(6), bs)
    add("06-multipart-signed.eml", message(h, body))


def c07():
    bm = "===============4872619305471628301=="
    bs = "------------ms070104050609080302010907"
    h = std_headers(7, "[sales-eu] Signed proposal", extra_top=(
        "List-Id: EU sales <sales-eu.lists.ourco.example>",)) + [
        'Content-Type: multipart/mixed; boundary="%s"' % bm]
    html = html_doc("Signed proposal", std_html_body())
    signed = ("This is a cryptographically signed message in MIME format.\n\n"
              "--%s\n"
              "Content-Type: text/html; charset=UTF-8\n"
              "Content-Transfer-Encoding: quoted-printable\n\n"
              "%s\n"
              "--%s\n"
              'Content-Type: application/pkcs7-signature; name="smime.p7s"\n'
              "Content-Transfer-Encoding: base64\n"
              'Content-Disposition: attachment; filename="smime.p7s"\n'
              "Content-Description: S/MIME Cryptographic Signature\n\n"
              "%s\n"
              "--%s--\n") % (bs, qp(html), bs, smime_sig(7), bs)
    footer = ("_______________________________________________\n"
              "sales-eu mailing list\n"
              "Unsubscribe: https://example.com/lists/sales-eu/unsubscribe\n")
    body = ("--%s\n"
            'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\n'
            ' micalg=sha-256; boundary="%s"\n\n'
            "%s\n"
            "--%s\n"
            'Content-Type: text/plain; charset="us-ascii"\n'
            "MIME-Version: 1.0\n"
            "Content-Transfer-Encoding: 7bit\n"
            "Content-Disposition: inline\n\n"
            "%s\n"
            "--%s--\n") % (bm, bs, signed, bm, footer, bm)
    add("07-mixed-nested-signed.eml", message(h, body))


def c08():
    b = "------------Bq7Yz2Cx5Vn8Mk1Lj4Hg0Fd3"
    h = std_headers(8, "...") + [
        'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";',
        ' boundary="%s"' % b]
    data = b"\x85\x02\x0c\x03" + rnd_bytes(8, 1200)
    armor = base64.b64encode(data).decode()
    lines = [armor[i:i + 64] for i in range(0, len(armor), 64)]
    crc = base64.b64encode(struct.pack(">I", crc24(data))[1:]).decode()
    pgp = ("-----BEGIN PGP MESSAGE-----\n\n" + "\n".join(lines) + "\n=" + crc +
           "\n-----END PGP MESSAGE-----\n")
    body = ("This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\n"
            "--%s\n"
            "Content-Type: application/pgp-encrypted\n"
            "Content-Description: PGP/MIME version identification\n\n"
            "Version: 1\n\n"
            "--%s\n"
            'Content-Type: application/octet-stream; name="encrypted.asc"\n'
            "Content-Description: OpenPGP encrypted message\n"
            'Content-Disposition: inline; filename="encrypted.asc"\n\n'
            "%s\n"
            "--%s--\n") % (b, b, pgp, b)
    add("08-pgp-encrypted.eml", message(h, body))


def c09():
    h = std_headers(9, "Confidential: pricing") + [
        'Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
        "Content-Transfer-Encoding: base64",
        'Content-Disposition: attachment; filename="smime.p7m"',
        "Content-Description: S/MIME Encrypted Message"]
    data = b"\x30\x80\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x03\xa0\x80" + rnd_bytes(9, 2300)
    add("09-pkcs7-mime-enveloped.eml", message(h, b64(data)))


def c10():
    b = "------------Fw9Rd2Gt6Yh1Uj5Ik8Ol3Pz0"
    h = std_headers(10, "Fwd: Partner webinar invitation") + [
        'Content-Type: multipart/mixed; boundary="%s"' % b]
    inner_h = [
        "From: Events Team <events@partner.example>",
        "To: Sam Ortega <sam.ortega@ourco.example>",
        "Subject: Partner webinar invitation",
        "Date: Tue, 3 Sep 2024 10:00:00 -0400",
        "Message-ID: <webinar-2024-09@partner.example>",
        "MIME-Version: 1.0",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: 7bit"]
    inner = message(inner_h, html_doc("Partner webinar", (
        "<p>Hello Sam,</p>\n"
        '<p>Join our <a href="https://example.com/webinars/partner-2024">partner webinar</a> on 12 September.</p>\n'
        '<p><a href="https://example.com/webinars/partner-2024/register?ref=invite">Register now</a> or\n'
        '<a href="https://example.com/webinars/partner-2024/agenda">see the agenda</a>.</p>\n')))
    outer_html = html_doc("Fwd: Partner webinar invitation", (
        "<p>Hi Dana,</p>\n"
        "<p>Forwarding the invitation below, thought it could interest your team.\n"
        'Our own notes are <a href="https://example.com/notes/webinar">here</a>, and the\n'
        '<a href="https://example.com/pricing">pricing page</a> if you need it.</p>\n'
        "<p>Sam</p>\n"))
    body = ("This is a multi-part message in MIME format.\n"
            "--%s\n"
            "Content-Type: text/html; charset=UTF-8\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s\n"
            'Content-Type: message/rfc822; name="Partner webinar invitation.eml"\n'
            "Content-Transfer-Encoding: 7bit\n"
            'Content-Disposition: attachment; filename="Partner webinar invitation.eml"\n\n'
            "%s\n"
            "--%s--\n") % (b, outer_html, b, inner, b)
    add("10-message-rfc822-attachment.eml", message(h, body))


def c11():
    b = "------------Rl4Tg7Yh0Uj3Ik6Ol9Pz2Xc5"
    h = std_headers(11, "Our new brand") + [
        'Content-Type: multipart/related; type="text/html"; boundary="%s"' % b]
    html = html_doc("Our new brand", (
        '<p><img src="cid:logo@ourco" alt="OurCo" width="16" height="16"></p>\n'
        + std_html_body()))
    body = ("--%s\n"
            "Content-Type: text/html; charset=UTF-8\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s\n"
            'Content-Type: image/png; name="logo.png"\n'
            "Content-Transfer-Encoding: base64\n"
            "Content-ID: <logo@ourco>\n"
            'Content-Disposition: inline; filename="logo.png"\n\n'
            "%s\n"
            "--%s--\n") % (b, html, b, b64(png(16, 16, (0x1a, 0x73, 0xe8))), b)
    add("11-related-cid-image.eml", message(h, body))


def c12():
    bm = "000000000000a1b2c30623a7f1e0"
    br = "000000000000a1b2c20623a7f1df"
    ba = "000000000000a1b2c10623a7f1de"
    h = std_headers(12, "Proposal Q3 (PDF attached)") + [
        'Content-Type: multipart/mixed; boundary="%s"' % bm]
    html = html_doc("Proposal Q3", (
        '<div><img src="cid:ii_lz1banner" alt="Q3" width="16" height="16"></div>\n' + std_html_body()))
    alt = ("--%s\n"
           'Content-Type: text/plain; charset="UTF-8"\n\n'
           "%s\n"
           "--%s\n"
           'Content-Type: text/html; charset="UTF-8"\n'
           "Content-Transfer-Encoding: quoted-printable\n\n"
           "%s\n"
           "--%s--\n") % (ba, plain_links(), ba, qp(html), ba)
    rel = ("--%s\n"
           'Content-Type: multipart/alternative; boundary="%s"\n\n'
           "%s\n"
           "--%s\n"
           'Content-Type: image/png; name="banner.png"\n'
           'Content-Disposition: inline; filename="banner.png"\n'
           "Content-Transfer-Encoding: base64\n"
           "Content-ID: <ii_lz1banner>\n"
           "X-Attachment-Id: ii_lz1banner\n\n"
           "%s\n"
           "--%s--\n") % (br, ba, alt, br, b64(png(16, 16, (0xe8, 0x5a, 0x1a))), br)
    body = ("--%s\n"
            'Content-Type: multipart/related; boundary="%s"\n\n'
            "%s\n"
            "--%s\n"
            'Content-Type: application/octet-stream; name="Proposal-Q3.pdf"\n'
            'Content-Disposition: attachment; filename="Proposal-Q3.pdf"\n'
            "Content-Transfer-Encoding: base64\n"
            "X-Attachment-Id: f_lz1bpdf0\n\n"
            "%s\n"
            "--%s--\n") % (bm, br, rel, bm, b64(fake_pdf("Proposal Q3")), bm)
    add("12-mixed-related-alternative-pdf.eml", message(h, body))


def c13():
    b = "=_Part 42?x'y"
    h = std_headers(13, "Odd boundary") + [
        'Content-Type: multipart/alternative; boundary="%s"' % b]
    body = ("This is a multi-part message in MIME format. If you can read this,\n"
            "your mail reader does not understand MIME. The preamble is not a part:\n"
            '<a href="https://example.com/preamble">preamble link</a> </body>\n'
            "--%s\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s\n"
            "Content-Type: text/html; charset=us-ascii\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s--\n"
            "This is the epilogue. It is ignored by MIME readers and must stay as is:\n"
            '<a href="https://example.com/epilogue">epilogue link</a> </body></html>\n'
            ) % (b, plain_links(), b, html_doc("Odd boundary", std_html_body()), b)
    add("13-odd-boundary-preamble-epilogue.eml", message(h, body))


def c14():
    h = std_headers(14, "Snippet for your site", agent=False)
    body = ("Hi Dana,\n\n"
            "Paste this snippet into your landing page where the button should go:\n\n"
            '    <a href="https://example.com/signup?partner=acme">Sign up</a>\n\n'
            "and close the page as usual with </body></html>. The docs are at\n"
            "https://example.com/docs/embed if you need them.\n\n"
            "Sam\n")
    add("14-no-content-type.eml", message(h, body))


def c15():
    b = "----=_Part_1524_901283712.1725612345678"
    h = std_headers(15, "Truncated message") + [
        'Content-Type: multipart/alternative; boundary="%s"' % b]
    more = ('<p>More details below: the <a href="https://example.com/roadmap">roadmap</a> and\n'
            'the <a href="https://example.com/security">security whitepaper</a> explain how we\n'
            "handle your data, where it is stored and who can access it.</p>\n")
    html = html_doc("Truncated", std_html_body() + more * 3)
    cut = html.index("whitepaper</a> explain") + 5  # message ends mid-word in the 1st "security whitepaper" link text
    body = ("--%s\n"
            "Content-Type: text/plain; charset=UTF-8\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s\n"
            "Content-Type: text/html; charset=UTF-8\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s") % (b, plain_links(), b, html[:cut])
    assert not body.endswith("\n")
    add("15-truncated-mime.eml", message(h, body))


def c16():
    h = std_headers(16, "Truncated base64") + [
        "Content-Type: text/html; charset=UTF-8",
        "Content-Transfer-Encoding: base64"]
    html = html_doc("Truncated base64", std_html_body() * 3)
    enc = b64(canon(html))
    lines = enc.split("\n")
    kept = lines[:12] + [lines[12][:37]]  # cut mid-line: 12*76 + 37 chars, not a multiple of 4
    body = "\n".join(kept)
    assert (12 * 76 + 37) % 4 == 1 and not body.endswith("\n")
    NOTES["16"] = "base64 chars kept: %d (mod 4 = %d), file ends mid-line without CRLF" % (
        12 * 76 + 37, (12 * 76 + 37) % 4)
    add("16-truncated-base64.eml", message(h, body))


def c17():
    h = std_headers(17, "=?UTF-8?Q?F=C3=BCr_Sie:_Angebot?=") + [
        "Content-Type: text/html; charset=UTF-8",
        "Content-Transfer-Encoding: 8bit"]
    head = ('<p>F\u00fcr Sie: unser Angebot mit allen Details \u2014 '
            '<a href="https://example.com/angebot/2024-09?kunde=acme&amp;quelle=mail">zum Angebot</a> \u2014 ')
    tail = "</p>"
    filler_src = ("Gr\u00fc\u00dfe aus M\u00fcnchen, wir freuen uns auf die Zusammenarbeit "
                  "und melden uns n\u00e4chste Woche. ")
    need = 990 - len((head + tail).encode("utf-8"))
    filler = ""
    i = 0
    while len(filler.encode("utf-8")) < need:
        filler += filler_src[i % len(filler_src)]
        i += 1
    while len(filler.encode("utf-8")) > need:   # can overshoot by a multi-byte char
        filler = filler[:-1]
    while len(filler.encode("utf-8")) < need:
        filler += "."
    line = head + filler + tail
    assert len(line.encode("utf-8")) == 990
    body_html = ("<p>Liebe Dana,</p>\n" + line + "\n"
                 '<p>Preise: <a href="https://example.com/preise">Preis\u00fcbersicht</a>,\n'
                 'Referenzen: <a href="https://example.com/referenzen">Kunden</a>.</p>\n'
                 "<p>Viele Gr\u00fc\u00dfe<br>\nSam</p>\n")
    add("17-8bit-990-octet-line.eml", message(h, html_doc("Angebot", body_html)), allow_8bit=True)
    NOTES["17"] = "long line is 990 octets (excluding CRLF), UTF-8, contains 1 link"


def c18():
    h = std_headers(18, "Unknown charset") + [
        'Content-Type: text/html; charset="x-unknown-charset-42"',
        "Content-Transfer-Encoding: 7bit"]
    add("18-unknown-charset.eml", message(h, html_doc("Unknown charset", std_html_body(),
                                                      "x-unknown-charset-42")))


def c19():
    b = "------------Lf0Only1Line2Endings3X"
    h = std_headers(19, "LF only") + [
        'Content-Type: multipart/alternative; boundary="%s"' % b]
    body = ("This is a multi-part message in MIME format.\n"
            "--%s\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s\n"
            "Content-Type: text/html; charset=us-ascii\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "%s\n"
            "--%s--\n") % (b, plain_links(), b, html_doc("LF only", std_html_body()), b)
    add("19-lf-only.eml", message(h, body), lf_only=True)


def ew_b(s):
    return "=?UTF-8?B?%s?=" % base64.b64encode(s.encode("utf-8")).decode()


def c20():
    s1 = ew_b("Angebot f\u00fcr ")
    s2 = ew_b("Acme \u2014 Gr\u00fc\u00dfe")
    s3 = "=?iso-8859-1?Q?_und_Caf=E9?="
    subject = "%s\n\t%s\n\t%s" % (s1, s2, s3)
    frm = "=?iso-8859-1?Q?Ren=E9_M=FCller?= <rene.mueller@ourco.example>"
    to = ("Dana Whitfield <dana@acme.example>,\n"
          "\t=?UTF-8?B?%s?= <joerg@globex.example>" % base64.b64encode(
              "J\u00f6rg Stra\u00dfer".encode()).decode())
    cc = "Pat Lee <pat.lee@initech.example>"
    h = std_headers(20, subject, frm=frm, to=to, cc=cc) + [
        "Content-Type: text/html;\n\tcharset=\"utf-8\"",
        "Content-Transfer-Encoding: 7bit"]
    add("20-folded-encoded-headers.eml", message(h, html_doc("Angebot", std_html_body())))


def c21():
    html = html_doc("Meeting notes", std_html_body())
    body = canon(html)
    # relaxed body canonicalisation: no trailing WSP in this body, ends with one CRLF
    bh = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
    sig = base64.b64encode(rnd_bytes(21, 256)).decode()
    sig_lines = [sig[:40]] + [sig[i:i + 72] for i in range(40, len(sig), 72)]
    dkim = ("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=ourco.example;\n"
            "\ts=mail2024; t=1725863700; x=1726468500;\n"
            "\th=from:to:subject:date:message-id:mime-version:content-type\n"
            "\t :content-transfer-encoding;\n"
            "\tbh=%s;\n"
            "\tb=%s") % (bh, "\n\t ".join(sig_lines))
    h = std_headers(21, "Meeting notes", extra_top=(dkim,)) + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    add("21-dkim-signed.eml", message(h, html))


# ---- case 22: > 64 KB QP body with a link spanning decoded and raw offset 65535

LOREM = ("Our platform connects every warehouse, carrier and customer in one view; "
         "teams in M\u00fcnchen, Lyon and S\u00e3o Paulo use it to cut late deliveries by "
         "a third. Reports refresh every five minutes, alerts reach the right person, and "
         "the whole history stays searchable for seven years. ")


def lorem(n, seed):
    """Exactly n characters (ASCII-counted as str chars) of filler text."""
    s = ""
    k = seed
    while len(s) < n:
        s += LOREM[k % 7:] + LOREM[:k % 7]
        k += 1
    s = s[:n]
    if s and s[-1] == " ":
        s = s[:-1] + "."
    return s


def qp_map(raw):
    """For each raw index, the decoded index it contributes to (soft breaks map to next)."""
    m = []
    d = 0
    i = 0
    n = len(raw)
    while i < n:
        if raw[i:i + 3] == b"=\r\n":
            m += [d, d, d]
            i += 3
        elif raw[i:i + 1] == b"=":
            m += [d, d, d]
            d += 1
            i += 3
        else:
            m.append(d)
            d += 1
            i += 1
    return m


def build22(p1):
    url_a = ("https://example.com/whitepapers/supply-chain-visibility-2024?utm_source=sales"
             "&utm_medium=email&utm_campaign=q3-outreach&section=benchmarks&lang=en&v=3")
    url_b = ("https://example.com/roi-calculator?" + "&".join(
        "f%02d=%s" % (i, ["warehouses", "carriers", "sku-count", "orders-per-day",
                          "late-rate", "region-eu", "currency-eur", "plan-pro"][i % 8])
        for i in range(34)))
    head = ("<!DOCTYPE html>\n<html>\n<head>\n"
            '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
            "<title>Supply chain visibility: the long version</title>\n</head>\n<body>\n"
            '<p>Hi Dana, here is the long write-up. Short version: <a href="https://example.com/summary">summary</a>.</p>\n')
    paras1 = "".join("<p>%s</p>\n" % lorem(520 + (i * 37) % 300, i) for i in range(88))
    pad1 = "<p>%s</p>\n" % lorem(1 + p1, 1000) if p1 >= 0 else ""
    para_b = ('<p>Try the <a href="%s">ROI calculator with your numbers pre-filled</a> before our call.</p>\n'
              % url_b.replace("&", "&amp;"))
    pre_a = '<p>Full details: <a href="'
    para_a = pre_a + url_a.replace("&", "&amp;") + '">the whitepaper</a>.</p>\n'
    paras2 = "".join("<p>%s</p>\n" % lorem(400 + (i * 53) % 200, 200 + i) for i in range(3))
    # decoded == CRLF form; position URL A so that decoded index 65535 is in its middle
    before = canon(head + paras1 + pad1 + para_b + paras2)
    a_href = url_a.replace("&", "&amp;")
    want_start = 65535 - len(a_href) // 2
    fill = want_start - len(pre_a) - len(before.encode("utf-8")) - len("<p></p>\r\n")
    if fill < 1:
        return None
    pad2 = "<p>%s</p>\n" % lorem(fill, 300).replace("\u00fc", "u").replace("\u00e3", "a")
    tail_paras = "".join("<p>%s</p>\n" % lorem(500 + (i * 29) % 250, 400 + i) for i in range(45))
    tail = ('<p>Questions? <a href="https://example.com/contact">Contact me</a> any time.</p>\n'
            "<p>Sam</p>\n</body>\n</html>\n")
    html = head + paras1 + pad1 + para_b + paras2 + pad2 + para_a + tail_paras + tail
    decoded = canon(html).encode("utf-8")
    a0 = decoded.find(a_href.encode())
    if a0 < 0:
        return None
    hdrs = std_headers(22, "Supply chain visibility: the long version") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable"]
    msg = crlf(message(hdrs, qp(html))).encode("ascii")
    hdr_len = msg.index(b"\r\n\r\n") + 4
    raw_body = msg[hdr_len:]
    return dict(html=html, decoded=decoded, a0=a0, a1=a0 + len(a_href), msg=msg,
                hdr_len=hdr_len, raw_body=raw_body, url_b=url_b.replace("&", "&amp;"))


def c22():
    # scan paddings; among placements that satisfy every constraint, keep the one whose
    # nearest offset is farthest from either end of URL B (stop once past the valid window)
    best = None
    for p1 in range(0, 6000):
        r = build22(p1)
        if r is None:
            continue
        if not (r["a0"] + 10 <= 65534 and 65536 + 10 <= r["a1"]):
            continue
        m = qp_map(r["raw_body"])
        dec = r["decoded"]
        b0 = dec.find(r["url_b"].encode())
        b1 = b0 + len(r["url_b"])
        # raw body offsets 65534/65535 (milter 65,535-octet chunk boundary) inside URL B,
        # and also raw file offsets 65534/65535 (whole message) inside URL B.
        offs = [65534, 65535, 65534 - r["hdr_len"], 65535 - r["hdr_len"]]
        margin = min(min(m[o] - b0, b1 - 1 - m[o]) for o in offs)
        if margin >= 20:
            if best is None or margin > best[0]:
                best = (margin, p1, r, m, b0, b1)
        elif best is not None:
            break
    if best is None:
        raise SystemExit("case 22: no placement found")
    margin, p1, r, m, b0, b1 = best
    # verify with an independent decoder
    assert quopri.decodestring(r["raw_body"]) == r["decoded"]
    assert len(r["decoded"]) > 64 * 1024 and len(r["raw_body"]) > 64 * 1024
    FILES["22-qp-64k-boundary-link.eml"] = r["msg"]
    dec = r["decoded"]
    NOTES["22"] = (
        "p1=%d; header block %d bytes; raw body %d bytes; decoded html %d bytes.\n"
        "   decoded: URL A (whitepaper href value) at [%d,%d), byte 65535 = %r (context %r)\n"
        "   raw: URL B (roi-calculator href value) decoded [%d,%d); raw body offset 65535 -> decoded %d,"
        " raw file offset 65535 (body offset %d) -> decoded %d; raw bytes around body 65535: %r"
        % (p1, r["hdr_len"], len(r["raw_body"]), len(dec), r["a0"], r["a1"], dec[65535:65536],
           dec[65525:65546], b0, b1, m[65535], 65535 - r["hdr_len"], m[65535 - r["hdr_len"]],
           r["raw_body"][65525:65546]))


def c23():
    h = std_headers(23, "Tricky hrefs") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    ps = [
        '<a href="https://example.com/a?x=1&amp;y=2">entity ampersand</a>',
        '<a HREF="https://example.com/upper">uppercase attribute name</a>',
        "<a href='https://example.com/single'>single quotes</a>",
        "<a href=https://example.com/unquoted>unquoted</a>",
        '<a href="  https://example.com/padded  ">padded with spaces</a>',
        '<a href="https://exa\nmple.com/newline">newline inside the value</a>',
        '<a href="&#104;ttps://example.com/numeric">numeric character reference</a>',
        '<a href="https://example.com/?a=1&copy=2">&amp;copy without semicolon</a>',
        '<a href="javascript&colon;alert(1)">javascript via &amp;colon;</a>',
        '<a href="https://example.com/first" href="https://example.com/second">duplicate href</a>',
        '<a href="mailto:sam.ortega@ourco.example?subject=Hello">mailto</a>',
        '<a href="tel:+15551234567">tel</a>',
        '<a href="sms:+15551234567">sms</a>',
        '<a href="#section-2">fragment</a>',
        '<a href="data:text/html;base64,PGI+aGk8L2I+">data URL</a>',
        '<a href="cid:doc@ourco">cid</a>',
        '<a href="/path/relative">relative path</a>',
        '<a href="">empty</a>',
        '<a href="{{url}}">handlebars placeholder</a>',
        '<a href="%%URL%%">percent placeholder</a>',
        '<a href="*|ARCHIVE|*">mailchimp merge tag</a>',
        '<a href="https://example.com/plain">plain control link</a>',
    ]
    body = "".join("<p>%d. %s</p>\n" % (i + 1, p) for i, p in enumerate(ps))
    add("23-tricky-hrefs.eml", message(h, html_doc("Tricky hrefs", '<h2 id="section-2">Links</h2>\n' + body)))


def c24():
    h = std_headers(24, "Links in non-element contexts") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    html = (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
        '<title>Read <a href="https://example.com/title">this</a></title>\n'
        "<style>/* <a href=\"https://example.com/st\"> */ p { margin: 0 0 1em; }</style>\n"
        "<script>var s='<a href=\"https://example.com/s\">';</script>\n"
        "</head>\n<body>\n"
        "<p>Hi Dana,</p>\n"
        '<!-- comment <a href="https://example.com/c">-->\n'
        '<!--[if mso]><a href="https://example.com/mso">x</a><![endif]-->\n'
        '<textarea><a href="https://example.com/t"></textarea>\n'
        '<p>The only real link: <a href="https://example.com/real">our offer</a>.</p>\n'
        "</body>\n</html>\n")
    add("24-links-in-raw-text.eml", message(h, html))


def c25():
    h = std_headers(25, "Uppercase tags") + [
        'Content-Type: text/html; charset="us-ascii"',
        "Content-Transfer-Encoding: 7bit"]
    html = ("<HTML>\n<HEAD>\n<TITLE>Uppercase tags</TITLE>\n</HEAD>\n<BODY BGCOLOR=\"#FFFFFF\">\n"
            "<P>Hi Dana,</P>\n"
            '<P>See the <A HREF="https://example.com/pricing">pricing</A> and the\n'
            '<A HREF="https://example.com/faq">FAQ</A>.</P>\n'
            '<P><a href="https://example.com/contact">Contact</a></P>\n'
            "</BODY>\n</HTML>\n")
    add("25-uppercase-body.eml", message(h, html))


def c26():
    h = std_headers(26, "Re: Proposal Q3") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    html = ("<html>\n<head>\n<title>Re: Proposal Q3</title>\n</head>\n<body>\n"
            '<p>Hi Dana, see the <a href="https://example.com/pricing">updated pricing</a>.</p>\n'
            "</body>\n"
            '<div class="quoted"><p>On Monday Dana wrote:</p>\n'
            '<blockquote><p>Can you send the <a href="https://example.com/case-studies">case studies</a>?</p></blockquote>\n'
            '<p>Sent from <a href="https://example.com/app">OurCo Mail</a></p></div>\n'
            "</body>\n</html>\n")
    add("26-two-body-close-tags.eml", message(h, html))


def c27():
    h = std_headers(27, "Comment before body end") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    html = ("<html>\n<head>\n<title>Comment before body end</title>\n</head>\n<body>\n"
            + std_html_body() +
            "<!-- </body> --></body></html>\n")
    add("27-body-close-in-comment.eml", message(h, html))


def c28():
    h = std_headers(28, "Image map and SVG links") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    body = ('<p><img src="https://example.com/img/plans.png" width="300" height="100" usemap="#plans" alt="Plans"></p>\n'
            '<map name="plans">\n'
            '<area shape="rect" coords="0,0,150,100" href="https://example.com/area" alt="Starter">\n'
            '<AREA SHAPE="rect" COORDS="150,0,300,100" HREF="https://example.com/area-pro" ALT="Pro">\n'
            "</map>\n"
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="200" height="40">\n'
            '<a href="https://example.com/svg"><text x="0" y="20">SVG link</text></a>\n'
            '<a xlink:href="https://example.com/svg-xlink"><text x="100" y="20">xlink</text></a>\n'
            "</svg>\n"
            '<p>And a normal <a href="https://example.com/normal">link</a>.</p>\n')
    add("28-area-and-svg.eml", message(h, html_doc("Image map and SVG links", body)))


def c29():
    h = std_headers(29, "Opt-out attributes") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    body = ('<p><a data-mailbeacon="off" href="https://example.com/optout/mailbeacon">data-mailbeacon off</a></p>\n'
            '<p><a data-pm-no-track href="https://example.com/optout/postmark">data-pm-no-track</a></p>\n'
            '<p><a clicktracking="off" href="https://example.com/optout/sendgrid">clicktracking off</a></p>\n'
            '<p><a ses:no-track href="https://example.com/optout/ses">ses:no-track</a></p>\n'
            '<p><a href="https://example.com/tracked">normal link</a></p>\n')
    add("29-opt-out-attributes.eml", message(h, html_doc("Opt-out attributes", body)))


def c30():
    h = std_headers(30, "Already tracked") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    tok1 = base64.urlsafe_b64encode(rnd_bytes(301, 45)).decode().rstrip("=")
    tok2 = base64.urlsafe_b64encode(rnd_bytes(302, 45)).decode().rstrip("=")
    tok3 = base64.urlsafe_b64encode(rnd_bytes(303, 33)).decode().rstrip("=")
    # A reply quoting an earlier tracked message: its links and its pixel sit
    # inside the quote, so the new text is still tracked (and nothing is
    # wrapped twice).
    body = ('<p>Here is the <a href="https://example.com/new-link">new, untracked link</a>.</p>\n'
            '<blockquote><p>Earlier message, with its tracked links:</p>\n'
            '<p><a href="%s/c/%s?u=https%%3A%%2F%%2Fexample.com%%2Fpricing">pricing (tracked)</a></p>\n'
            '<p><a href="%s/c/%s?u=https%%3A%%2F%%2Fexample.com%%2Fdemo">demo (tracked)</a></p>\n'
            '<img src="%s/o/%s.gif" width="1" height="1" alt="" style="display:block;border:0">\n'
            '</blockquote>\n'
            % (TRACK_BASE, tok1, TRACK_BASE, tok2, TRACK_BASE, tok3))
    add("30-already-tracked.eml", message(h, html_doc("Already tracked", body)))


def c31():
    h = std_headers(31, "Your configured quote") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable"]
    r = random.Random(31)
    parts = []
    i = 0
    url = "https://example.com/configurator/quote?"
    while len(url) < 4096 - 60:
        parts.append("opt%03d=%s" % (i, "".join(r.choice("abcdefghijklmnopqrstuvwxyz0123456789-") for _ in range(12))))
        url = "https://example.com/configurator/quote?" + "&".join(parts)
        i += 1
    url += "&sig=" + hashlib.sha256(url.encode()).hexdigest()[:40]
    body = ("<p>Hi Dana,</p>\n"
            '<p>Your configured quote: <a href="%s">open quote</a>.</p>\n'
            '<p>Or start again from <a href="https://example.com/configurator">the configurator</a>;\n'
            'terms are <a href="https://example.com/terms">here</a>.</p>\n' % url.replace("&", "&amp;"))
    NOTES["31"] = "long URL: %d chars (%d in the href as &amp;-escaped), QP encoded" % (
        len(url), len(url.replace("&", "&amp;")))
    add("31-long-url-4k.eml", message(h, qp(html_doc("Your configured quote", body))))


def c32():
    h = std_headers(32, "=?UTF-8?B?5L6L44GI44OG44K544OI?=") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 8bit"]
    body = ("<p>Dana \u3055\u3093\u3001\u3053\u3093\u306b\u3061\u306f\u3002</p>\n"
            '<p><a href="https://\u4f8b\u3048.\u30c6\u30b9\u30c8/\u30d1\u30b9?q=\u00fc">\u30ea\u30f3\u30af</a></p>\n'
            '<p><a href="https://example.com/ja/\u6599\u91d1">\u6599\u91d1</a> \u2014 '
            '<a href="https://example.com/ja/contact">\u304a\u554f\u3044\u5408\u308f\u305b</a></p>\n')
    add("32-idn-utf8-url.eml", message(h, html_doc("\u4f8b\u3048", body)), allow_8bit=True)


def c33():
    h = std_headers(33, "Plain text only") + [
        "Content-Type: text/plain; charset=us-ascii; format=flowed",
        "Content-Transfer-Encoding: 7bit"]
    add("33-plain-text-only.eml", message(h, plain_links()))


def c34():
    h = std_headers(34, "Do not track this one") + [
        "X-Mailbeacon: off",
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    add("34-x-mailbeacon-off.eml", message(h, html_doc("Do not track", std_html_body())))


def c35():
    b = "Apple-Mail=_3F2A9C1D-7E4B-4C8A-9D2F-1B6E5A4C3D2E"
    h = std_headers(35, "Inline HTML with filename") + [
        'Content-Type: multipart/alternative; boundary="%s"' % b]
    body = ("\n--%s\n"
            "Content-Transfer-Encoding: 7bit\n"
            "Content-Type: text/plain;\n\tcharset=us-ascii\n\n"
            "%s\n"
            "--%s\n"
            "Content-Transfer-Encoding: 7bit\n"
            'Content-Disposition: inline; filename="body.html"\n'
            "Content-Type: text/html;\n\tcharset=us-ascii\n\n"
            "%s\n"
            "--%s--\n") % (b, plain_links(), b, html_doc("Inline HTML", std_html_body()), b)
    add("35-inline-html-with-filename.eml", message(h, body))


def c36():
    h = std_headers(36, "Internal: deal review", to="Alex Kim <a@ourco.example>",
                    cc="Blake Ng <b@ourco.example>") + [
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: 7bit"]
    add("36-internal-recipients.eml", message(h, html_doc("Deal review", std_html_body())))


# Quoted-printable whose decoded bytes must come back exactly: line-ending
# bytes that were encoded (=0D, =0A) are text, not line breaks, and a soft
# break at the very end adds no line break. The QP is written out by hand.

def qp_html_headers(n, subject):
    return std_headers(n, subject) + [
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable"]


def c37():
    body = ('<html><body><a href=3D"https://example.com/">x</a>=0D\n'
            "</body></html>\n")
    add("37-qp-encoded-cr-before-break.eml", message(qp_html_headers(37, "Encoded CR"), body))


def c38():
    body = '<html><body>=0A<a href=3D"https://example.com/">x</a>=0A</body></html>\n'
    add("38-qp-encoded-line-feeds.eml", message(qp_html_headers(38, "Encoded LF"), body))


def c39():
    body = '<html><body>=0D=0A<a href=3D"https://example.com/">x</a>=0D=0A</body></html>\n'
    add("39-qp-encoded-crlf-lf-only.eml", message(qp_html_headers(39, "Encoded CRLF, LF only"), body),
        lf_only=True)


def c40():
    body = '<html><body><a href=3D"https://example.com/">x</a></body></html>=\n'
    add("40-qp-trailing-soft-break.eml", message(qp_html_headers(40, "Trailing soft break"), body))


def c41():
    b = "------------Qp5Soft6Break7End8"
    h = std_headers(41, "Trailing soft break before the boundary") + [
        'Content-Type: multipart/alternative; boundary="%s"' % b]
    html = '<html><body><a href=3D"https://example.com/">x</a></body></html>=\n'
    body = ("--%s\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 7bit\n\n"
            "x: https://example.com/\n\n"
            "--%s\n"
            "Content-Type: text/html; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
            "%s\n"
            "--%s--\n") % (b, b, html, b)
    add("41-qp-trailing-soft-break-multipart.eml", message(h, body))


CASES = [c01, c02, c03, c04, c05, c06, c07, c08, c09, c10, c11, c12, c13, c14, c15, c16, c17,
         c18, c19, c20, c21, c22, c23, c24, c25, c26, c27, c28, c29, c30, c31, c32, c33, c34,
         c35, c36, c37, c38, c39, c40, c41]


def main():
    check = "--check" in sys.argv[1:]
    for c in CASES:
        c()
    assert len(FILES) == 41
    bad = 0
    for name, data in sorted(FILES.items()):
        p = HERE / name
        if check:
            if not p.exists() or p.read_bytes() != data:
                print("DIFFERS:", name)
                bad += 1
        else:
            p.write_bytes(data)
    if not check:
        for k in sorted(NOTES):
            print("case %s: %s" % (k, NOTES[k]))
        print("wrote %d files to %s" % (len(FILES), HERE))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
