#!/usr/bin/env python3
"""
tools/check_citations.py — every citation of the design documents resolves.

The code and the tests cite the facts of engine/PITFALLS.md as
"engine/PITFALLS.md N" (or a range "N-M", a list "N, M") and the design
documents as "fs/DESIGN.md §N", "engine/DESIGN.md §N".  The documents
themselves cite facts as "PITFALLS N" for short.  This script finds every
such citation in the repository's tracked text files and fails (exit 1)
naming each one that has no section: a fact numbered N ("N. " at the start
of a line of engine/PITFALLS.md), a heading "## §N" in the DESIGN.md named.
It also fails on a bare "PITFALLS N" outside the documents (it must name
the file) and on any pointer to the old workspace copies ("shared/DESIGN",
"shared/PITFALLS").  With -v it lists every citation it resolved.

Usage: tools/check_citations.py [-v] [SOURCE_ROOT]
"""
import os
import re
import subprocess
import sys

DOCS = ("engine/PITFALLS.md", "engine/DESIGN.md", "fs/DESIGN.md")
# A number, a range, or a list of them, after a citation.
NUMS = (r"(\d+(?:\s*[-–]\s*\d+)?"
        r"(?:\s*(?:,|and)\s*§?\d+(?:\s*[-–]\s*\d+)?)*)")


def tracked_files(root):
    """The repository's text files, from git when it is a checkout."""
    try:
        out = subprocess.run(["git", "-C", root, "ls-files"], check=True,
                             capture_output=True, text=True).stdout
        names = out.split()
    except (OSError, subprocess.CalledProcessError):
        names = []
        for d, _, fs in os.walk(root):
            if "/." in d or "/build" in d:
                continue
            names += [os.path.relpath(os.path.join(d, f), root) for f in fs]
    for n in names:
        p = os.path.join(root, n)
        try:
            with open(p, encoding="utf-8") as fh:
                yield n, fh.read()
        except (UnicodeDecodeError, OSError):
            continue


def numbers(spec):
    """The numbers a citation names: '16-18' is 16, 17, 18."""
    out = []
    for part in re.split(r"\s*(?:,|and)\s*§?", spec):
        m = re.match(r"(\d+)\s*[-–]\s*(\d+)$", part)
        if m:
            out += range(int(m.group(1)), int(m.group(2)) + 1)
        elif part.isdigit():
            out.append(int(part))
    return out


def flatten(text):
    """Join comment continuation lines, so a citation broken over two
    lines of a C or Python comment reads as one."""
    return re.sub(r"\n[ \t]*(?:\*(?!/)|#|//)?[ \t]*", " ", text)


def main(argv):
    verbose = "-v" in argv
    args = [a for a in argv if a != "-v"]
    root = args[0] if args else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..")
    docs = {}
    for d in DOCS:
        with open(os.path.join(root, d), encoding="utf-8") as fh:
            docs[d] = fh.read()
    facts = {int(m.group(1)) for m in
             re.finditer(r"^(\d+)\. ", docs["engine/PITFALLS.md"], re.M)}
    sections = {d: {int(m.group(1)) for m in
                    re.finditer(r"^##+ §(\d+)\b", docs[d], re.M)}
                for d in DOCS}
    bad, seen = [], {}

    def cite(where, what, n, ok):
        seen.setdefault(what, set()).add(n)
        if verbose:
            print(f"{'ok ' if ok else 'BAD'} {where}: {what} {n}")
        if not ok:
            bad.append(f"{where}: {what} {n} has no section")

    for name, text in tracked_files(root):
        if name == "tools/check_citations.py":
            continue
        flat = flatten(text)
        is_doc = name in DOCS
        for m in re.finditer(r"(?<![\w/])(engine/)?PITFALLS(\.md)?"
                             r"(`?,?\s+)" + NUMS, flat):
            if not m.group(1) and not is_doc:
                bad.append(f"{name}: bare \"{m.group(0)}\": write "
                           "engine/PITFALLS.md")
                continue
            if m.group(1) is None and m.group(2):
                bad.append(f"{name}: \"{m.group(0)}\": write "
                           "engine/PITFALLS.md")
                continue
            for n in numbers(m.group(4)):
                cite(name, "engine/PITFALLS.md", n, n in facts)
        for m in re.finditer(r"(?<![\w/])((?:engine|fs)/)?DESIGN\.md`?\s+§"
                             + NUMS, flat):
            if not m.group(1):
                if is_doc:
                    continue
                bad.append(f"{name}: \"{m.group(0)}\": name the file "
                           "(fs/DESIGN.md or engine/DESIGN.md)")
                continue
            doc = m.group(1) + "DESIGN.md"
            for n in numbers(m.group(2)):
                cite(name, doc, n, n in sections[doc])
        for m in re.finditer(r"shared/(?:DESIGN|PITFALLS)", flat):
            bad.append(f"{name}: \"{m.group(0)}\" points outside the "
                       "repository")
    for what in sorted(seen):
        print(f"{what}: cited {', '.join(map(str, sorted(seen[what])))}")
    print(f"engine/PITFALLS.md has facts {min(facts)}-{max(facts)}")
    for b in bad:
        print("not ok:", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
