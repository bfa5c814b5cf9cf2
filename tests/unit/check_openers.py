#!/usr/bin/env python3
"""
check_openers.py SOURCE_ROOT -- one place opens the live database.

engine/livedb.c is the only opener of the live database (its busy policy,
no symlinks, never creating: engine/livedb.h).  A file that opens a
connection with sqlite3_open / sqlite3_open_v2 (other than ":memory:") or
sets its own busy wait (sqlite3_busy_timeout / sqlite3_busy_handler) must
be listed below with what it opens and how many calls it makes; a new call
anywhere else, or one more in a listed file, fails with the file and line.
That is how a return to separate openers of the live database, each with
its own wait, would show.  Reads the .c files of engine/, fs/ and tools/.
Prints "ok" and exits 0 otherwise.  Usage in the build:
tests/unit/meson.build ('live openers', suite unit).
"""

import os
import re
import sys

# file: (calls of sqlite3_open*, what they open)
OPENS = {
    "engine/livedb.c": (2, "the live database: read-write, read-only"),
    "engine/storeopen.c": (5, "the store's catalog (store.db)"),
    "engine/image_vfs.c": (1, "a snapshot image through the store's VFS"),
    "engine/capture_vfs.c": (1, "a capture's destination (capture VFS)"),
    "engine/restore_newfile.c": (1, "the staging copy beside the live database"),
    "engine/replica_image.c": (1, "a replica image rebuilt in a file"),
    "fs/liveimage.c": (1, "an image file in the daemon's staging"),
    "fs/staging.c": (1, "a staged file whose hot journal is rolled back"),
}
# file: (calls of sqlite3_busy_timeout / _handler, on what)
WAITS = {
    "engine/livedb.c": (2, "the live database's one busy policy"),
    "engine/storeopen.c": (4, "the store's catalog"),
    "engine/retention.c": (1, "the store's catalog (a WAL checkpoint)"),
}

OPEN = re.compile(r"\bsqlite3_open(?:_v2)?\s*\(\s*([^,]*)")
WAIT = re.compile(r"\bsqlite3_busy_(?:timeout|handler)\s*\(")


def strip_comments(text):
    """The text with /* */ and // comments blanked (lines kept)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r"/\*.*?\*/|//[^\n]*", blank, text, flags=re.S)


def main(root):
    faults = []
    seen_open, seen_wait = {}, {}
    for top in ("engine", "fs", "tools"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if not name.endswith(".c"):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                with open(path, encoding="utf-8") as f:
                    text = strip_comments(f.read())
                for m in OPEN.finditer(text):
                    if m.group(1).strip() == '":memory:"':
                        continue
                    line = text.count("\n", 0, m.start()) + 1
                    seen_open.setdefault(rel, []).append(line)
                for m in WAIT.finditer(text):
                    line = text.count("\n", 0, m.start()) + 1
                    seen_wait.setdefault(rel, []).append(line)
    for seen, allowed, what in ((seen_open, OPENS, "opens a database"),
                                (seen_wait, WAITS, "sets a busy wait")):
        for rel, lines in sorted(seen.items()):
            n, _ = allowed.get(rel, (0, ""))
            if len(lines) > n:
                faults.append(
                    f"{rel}:{lines[n]}: {what} ({len(lines)} calls, {n} "
                    f"listed in check_openers.py): the live database is "
                    f"opened by snap_livedb_open (engine/livedb.h) only; "
                    f"list any other file with what it opens")
    for fault in faults:
        print(fault)
    if not faults:
        print("ok")
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
