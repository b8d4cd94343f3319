#!/usr/bin/env python3
"""Turn a man page written in the small Markdown subset of docs/meshctl.md
into roff (man(7)): "# name(N)" title, "## SECTION" headings, paragraphs,
4-space indented example lines, **bold** and `code`.

usage: md2man.py IN.md OUT.N
"""
import re
import sys

src, dst = sys.argv[1], sys.argv[2]
lines = open(src).read().split("\n")


def inline(t):
    t = t.replace("\\", "\\e")
    t = re.sub(r"\*\*(.+?)\*\*", r"\\fB\1\\fR", t)
    t = re.sub(r"`(.+?)`", r"\\fB\1\\fR", t)
    t = t.replace("`", "")  # code that runs over a line break: plain
    # roff is ASCII: anything else as a Unicode escape
    t = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in t)
    if t.startswith((".", "'")):
        t = "\\&" + t
    return t


out = []
m = re.match(r"# (\S+)\((\d)\)", lines[0])
if not m:
    sys.exit("%s: the first line must be '# name(N)'" % src)
out.append('.TH %s %s "" "mailmesh" "mailmesh manual"' % (m.group(1).upper(), m.group(2)))
code = False
for line in lines[1:]:
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
    if line.startswith("## "):
        out.append(".SH " + inline(line[3:].upper()))
    elif line.strip() == "":
        out.append(".PP")
    else:
        out.append(inline(line))
if code:
    out += [".RE", ".fi"]
text = "\n".join(out) + "\n"
text = re.sub(r"(\.PP\n)+", ".PP\n", text)
text = re.sub(r"\.SH ([^\n]*)\n\.PP\n", r".SH \1\n", text)
open(dst, "w").write(text)
