#!/usr/bin/env python3
"""Cross-checks the HTML rewriter's link scanner against html5lib.

For every *.html in --corpus, parses the file with html5lib (etree tree
builder, namespaceHTMLElements on, encoding forced to UTF-8) and collects the
href of every element whose local name is "a" (any namespace) and of every
HTML-namespace "area", minus those carrying an opt-out attribute. Compares
that list, sorted, with the sorted output of `--tool FILE` (one JSON string
per line). Prints one line per mismatching file and ends with
"N passed, M failed"; exits 1 if any file failed.

Elements html5lib creates by cloning (the adoption agency algorithm and
"reconstruct the active formatting elements") do not correspond to a start
tag in the source, so they are not counted: cloneNode is wrapped to mark
clones with a sentinel attribute.
"""
import argparse
import glob
import json
import os
import subprocess
import sys

try:
    import html5lib
except ImportError:  # python3 may be a non-system interpreter (pyenv)
    sys.path.append("/usr/lib/python3/dist-packages")
    import html5lib

from html5lib.constants import namespaces

HTML_NS = namespaces["html"]
CLONE = "\x01mailbeacon-clone"

_builder = html5lib.treebuilders.getTreeBuilder("etree")
_orig_clone = _builder.elementClass.cloneNode


def _marked_clone(self):
    el = _orig_clone(self)
    el._element.attrib[CLONE] = "1"
    return el


_builder.elementClass.cloneNode = _marked_clone


def split_tag(tag):
    if not isinstance(tag, str):  # comments, processing instructions
        return None, None
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


def is_off(value):
    return value is not None and value.strip(" \t\n\f\r").lower() == "off"


def opted_out(attrib):
    return (
        "data-pm-no-track" in attrib
        or "ses:no-track" in attrib
        or is_off(attrib.get("data-mailbeacon"))
        or is_off(attrib.get("clicktracking"))
    )


# Longest attribute value the rewriter examines (VALUE_MAX in rewriter/html.c);
# URLs longer than 8 KB are never tracked anyway.
VALUE_MAX = 16 * 1024


def expected_links(data):
    parser = html5lib.HTMLParser(tree=_builder, namespaceHTMLElements=True)
    doc = parser.parse(data, override_encoding="utf-8")
    out = []
    for el in doc.iter():
        ns, local = split_tag(el.tag)
        if local is None:
            continue
        if not (local == "a" or (local == "area" and ns == HTML_NS)):
            continue
        attrib = el.attrib
        if CLONE in attrib or "href" not in attrib or opted_out(attrib):
            continue
        if len(attrib["href"].encode("utf-8")) > VALUE_MAX:
            continue  # by design the rewriter does not look at such values
        out.append(attrib["href"])
    return out


def tool_links(tool, path, chunk=0):
    r = subprocess.run([tool, path, str(chunk)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError("%s exited %d: %s" % (tool, r.returncode, r.stderr.decode("utf-8", "replace").strip()))
    text = r.stdout.decode("utf-8", "surrogateescape")
    return [json.loads(line) for line in text.splitlines() if line]


def short(lst, limit=200):
    s = json.dumps(lst, ensure_ascii=True)
    return s if len(s) <= limit else s[:limit] + "...(%d chars)" % len(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tool", required=True, help="path to the html-links program")
    ap.add_argument("--corpus", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus"))
    ap.add_argument("--chunks", default="0,1,7,4096",
                    help="comma-separated chunk sizes to feed the tool with (0: whole file)")
    args = ap.parse_args()
    chunks = [int(c) for c in args.chunks.split(",")]

    files = sorted(glob.glob(os.path.join(args.corpus, "*.html")))
    if not files:
        print("no *.html files in %s" % args.corpus)
        print("0 passed, 0 failed")
        return 1
    passed = failed = 0
    for path in files:
        name = os.path.basename(path)
        with open(path, "rb") as f:
            data = f.read()
        try:
            want = sorted(expected_links(data))
            gots = [(c, sorted(tool_links(args.tool, path, c))) for c in chunks]
        except Exception as e:  # report and count as a failure
            print("%s: error: %s" % (name, e))
            failed += 1
            continue
        bad = [(c, got) for c, got in gots if got != want]
        if not bad:
            passed += 1
        else:
            failed += 1
            for c, got in bad:
                print("%s (chunks of %s): html5lib %s tool %s" % (name, c or "all", short(want), short(got)))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
