#!/usr/bin/env python3
"""Writes a ~50 KB sales e-mail (multipart/alternative, HTML quoted-printable,
120 links) to argv[1], LF line endings (smtp-source -F adds the CRs)."""
import quopri
import sys

paras = []
for i in range(120):
    paras.append('<p style="margin:0 0 12px 0;font-family:Arial,sans-serif;font-size:14px;line-height:20px">'
                 'Section %d of the proposal covers pricing tiers, onboarding and the service levels we discussed '
                 'on our call; the details are in <a href="https://example.com/proposal/q3/section-%d?utm_source=email'
                 '&amp;utm_campaign=q3-proposal&amp;rep=sam">the section %d notes</a> and the annex.</p>' % (i, i, i))
html = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>Proposal Q3</title></head><body>'
        '<table width="100%%"><tr><td>%s</td></tr></table><p>Best regards,<br>Sam</p></body></html>'
        % "\n".join(paras))
qp = quopri.encodestring(html.encode(), quotetabs=False).decode()
text = "Hi Dana,\n\nthe proposal for Q3 is attached in HTML form.\n\nBest regards,\nSam\n"
msg = """From: Sam Ortega <sam@ourco.example>
To: Dana Whitfield <dana@acme.example>
Subject: Proposal Q3
Date: Fri, 27 Nov 2026 10:00:00 +0000
Message-ID: <bench-50k@ourco.example>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

%s
--b1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

%s
--b1--
""" % (text, qp)
open(sys.argv[1], "w").write(msg)
