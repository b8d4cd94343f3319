#!/usr/bin/env python3
"""Turn a man page written in the small Markdown subset of docs/*.md man
sources into roff (man(7)): "# name(N)" title, "## SECTION" and "### Subsection" headings,
paragraphs, 4-space indented or ``` fenced example lines, "- " bullet
items, tables (each row a tagged paragraph: the first cell the tag, the
other cells its text; the header row is left out, so the text before a
table says what its columns are), **bold**, `code` and [text](link) (the
text only).

usage: md2man.py IN.md OUT.N
"""
import re
import sys

src, dst = sys.argv[1], sys.argv[2]
lines = open(src).read().split("\n")


def esc(t):
    """Text as roff reads it literally: ASCII, a backslash escaped."""
    t = t.replace("\\", "\\e")
    # roff is ASCII: anything else as a Unicode escape
    return "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in t)


def line_start(t):
    """A text line that roff must not take for a request."""
    return "\\&" + t if t.startswith((".", "'")) else t


def inline(t):
    t = esc(re.sub(r"\[([^\]]+)\]\([^)\s]+\)", r"\1", t))
    t = re.sub(r"\*\*(.+?)\*\*", r"\\fB\1\\fR", t)
    t = re.sub(r"`(.+?)`", r"\\fB\1\\fR", t)
    t = t.replace("`", "")  # code that runs over a line break: plain
    return line_start(t)


def cells(row):
    """The cells of "| a | b |"; a | inside `code` separates nothing."""
    parts, cur, code = [], "", False
    for c in row.strip().strip("|"):
        if c == "`":
            code = not code
        if c == "|" and not code:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
    return parts + [cur.strip()]


SEP = re.compile(r"^\|[\s:|-]+\|\s*$")

out = []
m = re.match(r"# (\S+)\((\d)\)", lines[0])
if not m:
    sys.exit("%s: the first line must be '# name(N)'" % src)
out.append('.TH %s %s "" "mailmesh" "mailmesh manual"' % (m.group(1).upper(), m.group(2)))
out.append(".nh")  # no hyphenation: names and options stay whole
code = False  # in 4-space indented lines
fence = False  # in a ``` block
rest = lines[1:]
for i, line in enumerate(rest):
    if fence:
        if line.startswith("```"):
            out += [".RE", ".fi"]
            fence = False
        else:
            out.append(line_start(esc(line)))
        continue
    if line.startswith("    "):
        if not code:
            out.append(".nf")
            out.append(".RS 4")
            code = True
        out.append(inline(line[4:]))
        continue
    if code:
        out.append(".RE")
        out.append(".fi")
        code = False
    if line.startswith("```"):
        out += [".nf", ".RS 4"]
        fence = True
    elif line.startswith("## "):
        out.append(".SH " + inline(line[3:].upper()))
    elif line.startswith("### "):
        out.append(".SS " + inline(line[4:]))
    elif line.startswith("|"):
        nxt = rest[i + 1] if i + 1 < len(rest) else ""
        if SEP.match(line) or SEP.match(nxt):
            continue  # the separator, and the header row above it
        c = cells(line)
        out += [".TP", inline(c[0]), inline("; ".join(x for x in c[1:] if x))]
    elif line.startswith("- "):
        out += [".IP \\(bu 2", inline(line[2:])]
    elif line.strip() == "":
        out.append(".PP")
    else:
        out.append(inline(line.lstrip()))
if code or fence:
    out += [".RE", ".fi"]
text = "\n".join(out) + "\n"
text = re.sub(r"(\.PP\n)+", ".PP\n", text)
text = re.sub(r"\.SH ([^\n]*)\n\.PP\n", r".SH \1\n", text)
open(dst, "w").write(text)
