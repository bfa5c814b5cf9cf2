#!/usr/bin/env python3
"""
Refused restores reach the user and change nothing (fs/DESIGN.md §1; issue 3
"Errors reach the user"):

  cp, cp --remove-destination, cat >, rsync, rsync --inplace, gio copy and
  mv from another filesystem, each with a non-database, an empty file, a
  truncated database and a text file: the command exits non-zero (the
  error comes from FLUSH or RENAME, not RELEASE), the live database is
  byte-for-byte unchanged, no snapshot is added, no staging file is left,
  and the daemon logs why.

Argument: the live database's journal mode (delete or wal).
"""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

MODE = sys.argv[1] if len(sys.argv) > 1 else "delete"


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "original", rows=200)
    db = sqlite3.connect(live)
    db.execute("PRAGMA journal_mode=%s" % MODE)
    if MODE == "wal":
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    m = ctx.mount(live)
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")
    bad = ctx.path("bad")
    os.makedirs(bad)

    def make_bad(kind, i):
        p = os.path.join(bad, "%s-%d.db" % (kind, i))
        if kind == "garbage":
            with open(p, "wb") as f:
                f.write(bytes(ctx.rng.randrange(256) for _ in range(8192)))
        elif kind == "empty":
            open(p, "wb").close()
        elif kind == "truncated":
            full = ctx.path("full.db")
            mt.make_db(full, "full", rows=400)
            data = mt.read_bytes(full)
            os.unlink(full)
            with open(p, "wb") as f:
                f.write(data[:len(data) // 2 + 100])
        elif kind == "text":
            with open(p, "w") as f:
                f.write("SQLite format 3? no, just text\n" * 300)
        return p

    commands = mt.copy_commands(cur)
    live_sha = mt.sha256(live)
    snaps = mt.snapshots(mnt)
    i = 0
    for kind in ("garbage", "empty", "truncated", "text"):
        for what, argv in commands:
            i += 1
            src = make_bad(kind, i)
            r = ctx.run(argv(src))
            ctx.check("%s of a %s file fails" % (what, kind),
                      r.returncode != 0, r.stdout + r.stderr)
            ctx.check("%s of a %s file: live database byte-for-byte "
                      "unchanged" % (what, kind),
                      mt.sha256(live) == live_sha)
            ctx.check("%s of a %s file: no snapshot added" % (what, kind),
                      mt.snapshots(mnt) == snaps,
                      set(mt.snapshots(mnt)) - set(snaps))
            root = mt.root_staging(mnt)
            ctx.check("%s of a %s file: no staging file left" % (what, kind),
                      root == [], root)
            if what.startswith("mv"):
                ctx.check("mv of a %s file keeps its source" % kind,
                          os.path.exists(src))
    ctx.check("live database still passes integrity_check",
              mt.integrity(live) == "ok")
    ctx.check("current.db still reads as the original",
              mt.dump(cur) == mt.dump(live))
    ctx.check("the daemon logged why it refused",
              m.has_log("refused"), m.text())
    m.stop()


if __name__ == "__main__":
    mt.main("restore_refused_" + MODE, body, mount=True)
