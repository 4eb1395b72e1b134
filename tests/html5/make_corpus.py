#!/usr/bin/env python3
"""Writes tests/html5/corpus/*.html: small tokenizer edge cases for check.py.

Run: python3 tests/html5/make_corpus.py   (rewrites the corpus directory)
Each case is a few lines of HTML; the file name says what it tests. URLs are
https://ex.test/...; "no" in a URL marks a link that must NOT be reported,
"yes" one that must (as a reading aid only: check.py compares with html5lib).
Also extracts the HTML bodies of the 7bit/8bit UTF-8/ASCII messages in
tests/data (except 29, which carries opt-out attributes).
"""
import email
import email.policy
import glob
import os
import sys

try:
    import html5lib  # noqa: F401  (entity table)
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")
DATA = os.path.join(HERE, "..", "data")

U = "https://ex.test/"
C = {}


def case(name, body):
    assert name not in C, name
    C[name] = body.encode("utf-8") if isinstance(body, str) else body


def doc(body):
    return "<!DOCTYPE html>\n<html><head><title>t</title></head><body>\n" + body + "\n</body></html>\n"


# ---- attributes and quoting ----
case("attr-double-quoted", doc('<a href="%sdq?a=1\'b">x</a>' % U))
case("attr-single-quoted", doc("<a href='%ssq?a=\"b\"'>x</a>" % U))
case("attr-unquoted-ends-at-gt", doc("<a href=%suq>x</a>" % U))
case("attr-unquoted-ends-at-whitespace", doc(
    "<a href=%sws1 title=t>a</a><a href=%sws2\ttitle=t>b</a>"
    "<a href=%sws3\ntitle=t>c</a><a href=%sws4\x0ctitle=t>d</a>" % (U, U, U, U)))
case("attr-unquoted-odd-chars", doc("<a href=%sa\"b'c<d=e`f>x</a>" % U))
case("attr-unquoted-slash-end", doc("<a href=%sslash/>x</a><a href=%sslash2 />y</a>" % (U, U)))
case("attr-without-value", doc("<a href>a</a><a href title=t>b</a><a title href>c</a>"))
case("attr-empty-quoted", doc("<a href=\"\">a</a><a href=''>b</a>"))
case("attr-spaces-around-equals", doc(
    '<a href = "%ssp1" >a</a><a href\n=\n\'%ssp2\'>b</a><a href\t=\t%ssp3>c</a>' % (U, U, U)))
case("attr-equals-before-name", doc("<a =x href=%seq>a</a><a = href=%seq2>b</a>" % (U, U)))
case("attr-double-equals", doc("<a href==%seqeq>a</a>" % U))
case("attr-slash-before-name", doc("<a/href=%sslash>a</a><a/ /href='%sslash2'>b</a>" % (U, U)))
case("attr-slash-inside-unquoted", doc("<a title=x/href=%sno>a</a>" % U))
case("attr-quoted-then-slash", doc('<a href="%sq1"/title="t">a</a><a title="t"/href="%sq2">b</a>' % (U, U)))
case("attr-no-space-after-quote", doc('<a title="t"href="%snsp">a</a>' % U))
case("attr-duplicate-href", doc(
    "<a href=%sfirst href=%sno>a</a><a href href=%sno2>b</a><a HREF='%sfirst3' href='%sno3'>c</a>" % (U, U, U, U, U)))
case("attr-uppercase", doc('<A HREF="%sUP">a</A><a HrEf=%smixed>b</a>' % (U, U)))
case("attr-quote-in-name", doc('<a "href"=%sno href=%syes>a</a><a \'x=1 href=%syes2>b</a>' % (U, U, U)))
case("attr-lt-in-name", doc("<a <href=%sno href=%syes>a</a>" % (U, U)))
case("attr-newline-tab-in-value", doc('<a href="%snl\nline\ttab ">a</a><a href=\'\n%slead\'>b</a>' % (U, U)))
case("attr-crlf-in-value", doc('<a href="%scr\r\nlf">a</a><a href="%slone\rcr">b</a>' % (U, U)))
case("attr-nul-in-value", doc('<a href="%snul\x00dq">a</a><a href=%snul\x00uq>b</a>' % (U, U)))
case("attr-nul-in-names", doc("<a\x00 href=%sno1>a</a><a h\x00ref=%sno2>b</a><a href=%syes>c</a>" % (U, U, U)))
case("attr-lt-gt-in-value", doc('<a href="%s<b>">a</a><a href=">">b</a><a href=\'>\'>c</a>' % U))
case("attr-gt-ends-unquoted", doc("<a href=%sa>b>x</a>" % U))
case("attr-vertical-tab-not-space", doc("<a\x0bhref=%sno>a</a><a\x0chref=%sff>b</a>" % (U, U)))
case("attr-cr-as-space", doc("<a\rhref=%scr>a</a><a\r\nhref=%scrlf>b</a>" % (U, U)))
case("attr-self-closing", doc("<a href=\"%ssc\" />a<map name=m><area href='%sarea'/></map>" % (U, U)))
case("attr-lt-starts-next-attr", doc("<a href=\"%sq\"<a href=\"%sno\">x</a><a href=%su<a href=%sno2>y</a>" % (U, U, U, U)))
case("attr-long-title-20k", doc('<a title="%s" href="%slongtitle">x</a>' % ("t" * 20480, U)))
# hrefs over 16 KB are not examined (URLs over 8 KB are never tracked), but
# the tokenizer must still find where they end: the next link counts.
case("attr-long-href-20k", doc('<a href="%s%s">x</a><a href="%safter">y</a>' % (U, "p" * 20480, U)))
case("attr-long-href-16k", doc('<a href="%s%s">x</a>' % (U, "p" * (16384 - len(U)))))
case("attr-long-unquoted-href-20k", doc("<a href=%s%s>x</a><a href=%safter>y</a>" % (U, "q" * 20480, U)))
case("attr-many-attributes", doc("<a %s href=%smany>x</a>" % (" ".join("d%d=v%d" % (i, i) for i in range(300)), U)))
case("attr-long-name-before-href", doc("<a %s=1 href=%slongname>x</a>" % ("n" * 100, U)))
case("attr-href-prefixed-names", doc(
    "<a xhref=%sno1 hrefx=%sno2 data-href=%sno3>a</a><a xlink:href=%sno4>b</a>" % (U, U, U, U)))

# ---- character references in href ----
case("charref-named-semicolon", doc(
    '<a href="%s?a=1&amp;b=2&lt;&gt;&quot;&copy;&AMP;&nbsp;&LT;">x</a>' % U))
case("charref-named-no-semicolon", doc(
    '<a href="%s?a&copy">a</a><a href="%s?b&amp">b</a><a href="%s?c&copy-2">c</a>'
    '<a href="%s?d&lt">d</a><a href="%s?e&amp;f&amp g">e</a>' % (U, U, U, U, U)))
case("charref-historical-equals", doc('<a href="%s?x=1&copy=2&amp=3">x</a>' % U))
case("charref-historical-alnum", doc('<a href="%s?x=1&ampx=2&copyright&not1">x</a>' % U))
case("charref-longest-prefix", doc(
    '<a href="%s?&notin;&notit;&noti;&not;">a</a><a href="%s?&notin">b</a>' % (U, U)))
case("charref-numeric-decimal", doc('<a href="&#104;ttps://ex.test/&#100;ec&#0065">x</a>'))
case("charref-numeric-hex", doc('<a href="%s?a=1&#x26;b=2&#X41;&#x3d&#x0000041;">x</a>' % U))
case("charref-numeric-invalid", doc(
    '<a href="%s?z=&#0;&#x0;|&#x110000;|&#xD800;|&#xDFFF;|&#99999999999999;|&#x10FFFF;">x</a>' % U))
case("charref-numeric-c1-table", doc('<a href="%s?&#128;&#x80;&#x81;&#x8D;&#x9F;&#150;&#x9d;">x</a>' % U))
case("charref-numeric-controls", doc('<a href="%s?&#x1;&#x0D;&#13;&#x7F;&#xFFFE;&#xFDD0;&#x0B;">x</a>' % U))
case("charref-numeric-no-digits", doc('<a href="%s?&#;&#x;&#xg;&#a;&#">x</a>' % U))
case("charref-amp-not-double-decoded", doc('<a href="%s?&#x26;amp;&amp;lt;&&amp;">x</a>' % U))
case("charref-unknown-names", doc('<a href="%s?&foo;&unknownentity&Amp;&x">x</a>' % U))
case("charref-two-codepoints", doc('<a href="%s?&nGt;&NotEqualTilde;&acE;">x</a>' % U))
case("charref-longest-name", doc(
    '<a href="%s?&CounterClockwiseContourIntegral;&CounterClockwiseContourIntegralx">x</a>' % U))
case("charref-in-unquoted", doc("<a href=%s?a=1&amp;b=2&lt&copy=3>x</a>" % U))
case("charref-at-value-end", doc('<a href="%s&">a</a><a href="%s&#">b</a><a href=%s&>c</a><a href="%s&amp">d</a>' % (U, U, U, U)))
case("charref-javascript-colon", doc('<a href="javascript&colon;alert(1)">x</a><a href="java&Tab;script:x">y</a>'))
case("charref-single-quoted", doc("<a href='%s?a=&#39;&apos;&quot'>x</a>" % U))
case("charref-semicolonless-uppercase", doc('<a href="%s?&AMP&LT&GT&QUOT&COPY&REG">x</a>' % U))

# ---- comments ----
case("comment-basic", doc("<!-- <a href=%sno> --><a href=%syes>x</a>" % (U, U)))
case("comment-empty", doc("<!----><a href=%syes>x</a>" % U))
case("comment-abrupt-close", doc("<!--><a href=%syes1>x</a><!---><a href=%syes2>y</a>" % (U, U)))
case("comment-double-dash-inside", doc("<!-- -- <a href=%sno> -- --><a href=%syes>x</a>" % (U, U)))
case("comment-bang-close", doc("<!-- x --!><a href=%syes>x</a>" % U))
case("comment-bang-not-close", doc("<!-- x --!- <a href=%sno> -! <a href=%sno2> --><a href=%syes>x</a>" % (U, U, U)))
case("comment-dash-gt-not-close", doc("<!-- x -> <a href=%sno> - -> <a href=%sno2> --><a href=%syes>x</a>" % (U, U, U)))
case("comment-many-dashes-close", doc("<!-- x ---><a href=%syes1>a</a><!-- y ------><a href=%syes2>b</a>" % (U, U)))
case("comment-nested-open", doc("<!-- <!-- <a href=%sno> --><a href=%syes>x</a> -->" % (U, U)))
case("comment-unclosed-eof", doc("<a href=%syes>x</a><!-- <a href=%sno>" % (U, U)))
case("comment-unclosed-dash-eof", "<a href=%syes>x</a><!-- <a href=%sno> --" % (U, U))
case("comment-gt-inside", doc("<!-- > <a href=%sno> --> <a href=%syes>x</a>" % (U, U)))
case("comment-lt-bang-dash-inside", doc("<!--<!---><a href=%syes1>--><a href=%syes2>x</a>" % (U, U)))
case("bogus-comment-question", doc("<?xml version=\"1.0\"?><a href=%syes>a</a><? <a href=%sno> ?>" % (U, U)))
case("bogus-comment-end-tag-space", doc("</ x><a href=%syes>a</a></ <a href=%sno>" % (U, U)))
case("bogus-comment-end-tag-digit", doc("</3 <a href=%sno>x</a></><a href=%syes>y</a>" % (U, U)))
case("bogus-comment-bang", doc("<!x <a href=%sno>y<!><a href=%syes>z</a><!-x <a href=%sno2>" % (U, U, U)))
case("bogus-comment-partial-doctype", doc("<!DOCTYP <a href=%sno><!DOC><a href=%syes>" % (U, U)))
case("end-tag-with-attributes", doc("<a href=%syes>x</a href=%sno><p title=\">\"></p title=\"<a href=%sno2>\">" % (U, U, U)))
case("doctype-gt-in-quotes", "<!DOCTYPE html PUBLIC \"-//W3C//DTD >\" \"<a href=%syes1>\"><a href=%syes2>x</a>" % (U, U))
case("doctype-gt-in-single-quotes", "<!DOCTYPE html SYSTEM 'a>b'><a href=%syes>x</a>" % U)
case("doctype-odd", "<!doctype><!DOCTYPEhtml><!DoCtYpE html bogus <a href=%sno>><a href=%syes>x</a>" % (U, U))
case("doctype-in-body", doc("<!DOCTYPE x '<a href=%sno>'><a href=%syes>x</a>" % (U, U)))

# ---- Outlook conditional comments ----
case("outlook-if-mso", doc("<!--[if mso]><a href=\"%sno\">mso</a><![endif]--><a href=%syes>x</a>" % (U, U)))
case("outlook-if-not-mso-revealed", doc(
    "<!--[if !mso]><!--><a href=\"%syes\">non-mso</a><!--<![endif]-->" % U))
case("outlook-downlevel-revealed", doc("<![if !mso]><a href=\"%syes\">x</a><![endif]><![if mso]><a href=%syes2><![endif]>" % (U, U)))
case("outlook-vml-button", doc(
    "<!--[if mso]><v:roundrect xmlns:v=\"urn:schemas-microsoft-com:vml\" href=\"%sno\" style=\"height:40px\">"
    "<w:anchorlock/><center>Go</center></v:roundrect><![endif]--><!--[if !mso]><!-- --><a href=\"%syes\">Go</a><!--<![endif]-->"
    % (U, U)))
case("outlook-vml-outside-comment", doc("<v:roundrect href=\"%sno\"></v:roundrect><a:b href=%sno2></a:b>" % (U, U)))

# ---- raw text elements ----
case("script-basic", doc("<script><a href=%sno></script><a href=%syes>x</a>" % (U, U)))
case("script-endtag-in-string", doc("<script>var s=\"</script><a href=%syes>\";</script>" % U))
case("script-escaped-comment", doc("<script><!-- <a href=%sno> --></script><a href=%syes>x</a>" % (U, U)))
case("script-double-escaped", doc(
    "<script><!--<script>document.write('</script><a href=%sno>')--></script><a href=%syes>x</a>" % (U, U)))
case("script-double-escaped-ends-script", doc(
    "<script><!--<script></script><a href=%sno></script><a href=%syes>x</a>" % (U, U)))
case("script-double-escape-gt-exit", doc(
    "<script><!--<script><a href=%sno>--></script><a href=%syes>x</a>" % (U, U)))
case("script-not-double-escape", doc("<script><!--<scripty></script><a href=%syes>x</a>" % U))
case("script-double-escape-slash", doc(
    "<script><!--<script/></script><a href=%sno></script><a href=%syes>x</a>" % (U, U)))
case("script-end-variants", doc(
    "<script>1</SCRIPT><a href=%syes1>a</a><script>2</script ><a href=%syes2>b</a>"
    "<script>3</script/><a href=%syes3>c</a><script>4</script foo=\">\"><a href=%syes4>d</a>"
    "<script>5</scripts><a href=%sno></script>" % (U, U, U, U, U)))
case("script-lt-bang-no-escape", doc("<script><!- <a href=%sno></script><a href=%syes>x</a>" % (U, U)))
case("script-unclosed-eof", doc("<a href=%syes>x</a><script><a href=%sno>" % (U, U)))
case("style-basic", doc("<style>a{x:1}</style ><a href=%syes>a</a><style><a href=%sno></style>" % (U, U)))
case("style-comment-does-not-hide-end", doc("<style><!-- </style> --><a href=%syes>x</a>" % U))
case("textarea-rcdata", doc("<textarea><a href=%sno></textarea><a href=%syes>x</a>" % (U, U)))
case("textarea-wrong-end", doc("<textarea></textareax><a href=%sno></textarea><a href=%syes>x</a>" % (U, U)))
case("title-in-head-and-body", "<html><head><title><a href=%sno></title></head><body><title><a href=%sno2></title><a href=%syes>x</a>" % (U, U, U))
case("xmp-rawtext", doc("<xmp><a href=%sno></xmp><a href=%syes>x</a>" % (U, U)))
case("iframe-rawtext", doc("<iframe><a href=%sno></iframe><a href=%syes>x</a>" % (U, U)))
case("noembed-rawtext", doc("<noembed><a href=%sno></noembed><a href=%syes>x</a>" % (U, U)))
case("noframes-rawtext", doc("<noframes><a href=%sno></noframes><a href=%syes>x</a>" % (U, U)))
case("noscript-not-raw", doc("<noscript><a href=%syes>x</a></noscript>" % U))
case("plaintext", doc("<a href=%syes>x</a><plaintext><a href=%sno></plaintext><a href=%sno2>" % (U, U, U)))
case("raw-end-tag-with-attrs", doc("<title>x</title foo=\"<a href=%sno>\"><a href=%syes>x</a>" % (U, U)))
case("raw-self-closing-start", doc("<style/><a href=%sno></style><textarea/><a href=%sno2></textarea><a href=%syes>" % (U, U, U)))
case("raw-uppercase-end", doc("<STYLE><a href=%sno></StYlE><a href=%syes>x</a>" % (U, U)))
case("raw-in-table", doc("<table><style><a href=%sno></style><textarea><a href=%sno2></textarea><tr><td><a href=%syes>x</a></table>" % (U, U, U)))

# ---- foreign content ----
case("svg-a-href", doc("<svg><a href=\"%ssvg\"><text>x</text></a><a xlink:href=\"%sno\">y</a></svg>" % (U, U)))
case("svg-uppercase", doc("<SVG><A HREF=%sSVG>x</A></SVG>" % U))
case("math-a-href", doc("<math><a href=%smath>x</a></math>" % U))
case("svg-area-not-counted", doc("<svg><area href=%sno></area></svg><map><area href=%syes></map>" % (U, U)))
case("area-basic", doc("<map name=m><area href=%sa1><AREA HREF=%sa2 shape=rect><area alt=none></map>" % (U, U)))
case("svg-cdata", doc("<svg><![CDATA[ > <a href=%sno> ]]><a href=%syes>x</a></svg>" % (U, U)))
case("svg-cdata-brackets", doc("<svg><![CDATA[ ]] ]> ]]]><a href=%syes>x</a><![CDATA[ ]]]]> <a href=%syes2>" % (U, U)))
case("svg-cdata-lowercase-is-bogus", doc("<svg><![cdata[ > <a href=%syes>x</a> ]]></svg>" % U))
case("math-cdata", doc("<math><![CDATA[ > <a href=%sno> ]]><a href=%syes>x</a></math>" % (U, U)))
case("html-cdata-is-bogus", doc("<![CDATA[ <a href=%sno> ]]><![CDATA[ > <a href=%syes>x</a> ]]>" % (U, U)))
case("svg-cdata-in-foreignobject", doc("<svg><foreignObject><![CDATA[ > <a href=%sno> ]]></foreignObject></svg>" % U))
case("math-cdata-in-mi", doc("<math><mi><![CDATA[ > <a href=%sno> ]]></mi></math>" % U))
case("svg-foreignobject-html", doc(
    "<svg><foreignObject><p><a href=%syes>x</a></p><style><a href=%sno></style></foreignObject></svg>" % (U, U)))
case("svg-foreignobject-then-svg-style", doc(
    "<svg><foreignObject><style><a href=%sno></style></foreignObject><style><a href=%syes></style></svg>" % (U, U)))
case("svg-style-not-raw", doc("<svg><style><a href=%syes>x</a></style></svg>" % U))
case("svg-script-not-raw", doc("<svg><script><a href=%syes>x</a></script></svg>" % U))
case("svg-textarea-not-raw", doc("<svg><textarea><a href=%syes>x</a></textarea></svg>" % U))
case("svg-title-integration", doc("<svg><title><style><a href=%sno></style></title><style><a href=%syes></style></svg>" % (U, U)))
case("svg-desc-integration", doc("<svg><desc><style><a href=%sno></style></desc></svg>" % U))
case("math-mi-integration", doc("<math><mi><style><a href=%sno></style></mi><style><a href=%syes></style></math>" % (U, U)))
case("math-mtext-title", doc("<math><mtext><title><a href=%sno></title></mtext></math>" % U))
case("math-mglyph-stays-foreign", doc("<math><mi><mglyph><style><a href=%syes></style></mglyph></mi></math>" % U))
case("math-annotation-xml-html", doc(
    "<math><annotation-xml encoding=\"text/html\"><style><a href=%sno></style></annotation-xml></math>" % U))
case("math-annotation-xml-xhtml-upper", doc(
    "<math><annotation-xml encoding=\"Application/XHTML+XML\"><textarea><a href=%sno></textarea></annotation-xml></math>" % U))
case("math-annotation-xml-plain", doc(
    "<math><annotation-xml><style><a href=%syes></style></annotation-xml></math>" % U))
case("math-annotation-xml-svg", doc(
    "<math><annotation-xml><svg><foreignObject><style><a href=%sno></style></foreignObject></svg></annotation-xml></math>" % U))
case("svg-breakout-p", doc("<svg><g><p><a href=%syes>x</a><style><a href=%sno></style></svg>" % (U, U)))
case("svg-breakout-b-textarea", doc("<svg><b><textarea><a href=%sno></textarea><a href=%syes>x</a>" % (U, U)))
case("svg-font-breakout", doc(
    "<svg><font color=red><style><a href=%sno></style></svg><svg><font><style><a href=%syes></style></font></svg>" % (U, U)))
case("svg-breakout-inside-integration", doc(
    "<svg><foreignObject><math><p></p></foreignObject><style><a href=%syes></style></svg>" % U))
case("svg-title-end-tag-in-html", doc(
    "<svg><title><title>t</title><style><a href=%sno></style></title></svg>" % U))
case("svg-a-end-tag-in-desc", doc(
    "<svg><a href=%s1><desc><a href=%s2>x</a><style><a href=%sno></style></desc></a></svg>" % (U, U, U)))
case("svg-end-tag-ignored-in-html", doc(
    "<svg><foreignObject><span></svg></span></foreignObject><style><a href=%syes></style></svg>" % U))
case("svg-self-closing", doc("<svg/><style><a href=%sno></style><svg><g/><style><a href=%syes></style></svg>" % (U, U)))
case("svg-math-child-is-svg", doc("<svg><math><mi><style><a href=%syes></style></mi></math></svg>" % U))
case("math-svg-child-is-math", doc(
    "<math><svg><foreignObject><style><a href=%syes></style></foreignObject></svg></math>" % U))
case("math-deep-nesting", doc(
    "<math>" + "<mrow>" * 70 + "<mi><style><a href=%sno></style></mi>" % U + "</mrow>" * 70 + "</math>"))
case("svg-deep-nesting", doc(
    "<svg>" + "<g>" * 70 + "<foreignObject><style><a href=%sno></style></foreignObject>" % U + "</g>" * 70 + "</svg>"))
case("svg-in-table", doc("<table><svg><a href=%syes>x</a></svg><tr><td>c</td></tr></table>" % U))

# ---- structure ----
case("table-foster-parenting", doc("<table><a href=%sfoster>x</a><tr><td><a href=%scell>y</a></td></tr></table>" % (U, U)))
case("after-body-and-html", "<html><body><a href=%s1>a</a></body><a href=%s2>b</a></html><a href=%s3>c</a>" % (U, U, U))
case("link-in-head", "<html><head><a href=%shead>x</a></head><body></body></html>" % U)
case("a-at-eof", doc("<a href=%syes>x</a>") % U + "<a href=%sno" % U)
case("a-at-eof-unclosed-quote", "<a href=%syes>x</a><a href=\"%sno>y</a>" % (U, U))
case("a-at-eof-after-space", "<a href=%syes>x</a><a href=%sno " % (U, U))
case("a-at-eof-slash", "<a href=%syes>x</a><a href=%sno /" % (U, U))
case("nested-a", doc("<a href=%s1>x<a href=%s2>y</a></a>" % (U, U)))
case("a-across-blocks", doc("<a href=%sx><div>t</div>u</a><p><a href=%sy>foo</p>bar<b><a href=%sz>q</b>r</a>" % (U, U, U)))
case("not-a-tags", doc(
    "<link href=%sno1><base href=%sno2><abbr href=%sno3><ab href=%sno4><aa href=%sno5><a0 href=%sno6><a href=%syes>" % (U, U, U, U, U, U, U)))
case("lt-in-text", doc("a < b <<a href=%s1>x</a><1 <a href=%s2>y</a> <= <a\n href=%s3>z</a>" % (U, U, U)))
case("nul-in-text", doc("x\x00<a href=%syes>\x00</a>" % U))
case("select-free-text", doc("<p>before <a href=%sp>p</a> after</p><ul><li><a href=%sli>li</a></ul>" % (U, U)))
case("utf8-href", doc("<a href=\"https://例え.テスト/パス?q=ü&eacute;\">x</a><a href=%s😀>y</a>" % U))
case("bom-at-start", b"\xef\xbb\xbf" + doc("<a href=%sbom>x</a>" % U).encode())
case("meta-charset-ignored", "<meta charset=\"windows-1252\">" + doc("<a href=\"%s\xe9\">x</a>" % U))

# ---- more ----
case("tag-name-with-lt", doc("<a<a href=%sno>x</a><a/><a/ href=%syes>y</a>" % (U, U)))
case("attr-after-self-closing-slash", doc("<a href=%syes /title=t>x</a><a href=%syes2 / >y</a>" % (U, U)))
case("charref-gt-before-tag-end", doc("<a href=%sa&gt>x</a><a href=%sb&amp>y</a>" % (U, U)))
case("svg-font-size-uppercase-breakout", doc("<svg><font SIZE=3><style><a href=%sno></style></svg>" % U))
case("svg-desc-html-area", doc("<svg><desc><map><area href=%sarea></map></desc></svg>" % U))
case("svg-iframe-not-raw", doc("<svg><iframe><a href=%syes>x</a></iframe><noembed><a href=%syes2></noembed></svg>" % (U, U)))
case("template-content", doc("<template><a href=%stpl>x</a></template>" % U))


def all_named(semicolon):
    from html5lib.constants import entities
    names = sorted(n for n in entities if n.endswith(";") == semicolon)
    return doc("\n".join('<a href="%s?%s&%s">%s</a>' % (U, n.strip(";"), n, n) for n in names))


case("charref-all-named-semicolon", all_named(True))
case("charref-all-named-legacy", all_named(False))


def eml_bodies():
    for path in sorted(glob.glob(os.path.join(DATA, "*.eml"))):
        base = os.path.basename(path)[:-4]
        if base.startswith("29-"):
            continue
        with open(path, "rb") as f:
            raw = f.read()
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        crlf = b"\r\n" in raw  # the parser drops CRs: put them back
        n = 0
        for part in msg.walk():
            if part.get_content_type() != "text/html":
                continue
            cte = (part.get("Content-Transfer-Encoding") or "7bit").strip().lower()
            cs = (part.get_content_charset() or "us-ascii").lower()
            if cte not in ("7bit", "8bit") or cs not in ("us-ascii", "utf-8"):
                continue
            if "attachment" in (part.get("Content-Disposition") or "").lower():
                continue
            body = part.get_payload(decode=True)
            if not body:
                continue
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if crlf:
                body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            n += 1
            case("eml-%s%s" % (base, "" if n == 1 else "-%d" % n), body)


def main():
    eml_bodies()
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "*.html")):
        os.remove(old)
    for name, data in C.items():
        with open(os.path.join(OUT, name + ".html"), "wb") as f:
            f.write(data)
    print("%d files in %s" % (len(C), OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
