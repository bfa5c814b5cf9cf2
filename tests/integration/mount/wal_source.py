#!/usr/bin/env python3
"""
A WAL-mode database copied into the mount with its -wal, then renamed onto
current.db (fs/DESIGN.md §1, "rename of another file in the root"):

    cp src.db src.db-wal MNT/ && mv MNT/src.db MNT/current.db

restores the committed state of src.db — its main file and the
transactions still in its WAL — exactly as `snapctl restore src.db` does
with the original files.  The source holds 300 rows checkpointed into the
main file and 400 more only in its WAL (wal_autocheckpoint=0, the writer
still open), so restoring the main file alone would give 300 rows.
A staged file without a -wal beside it restores as before, and the
staged -wal is left where it was (as a rename leaves it on any
filesystem), and can be removed.
"""

import os
import shutil
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def make_wal_source(path, pad=0):
    """300 rows in the main file, 400 more in the WAL; returns the open
    connection (closing it would checkpoint the WAL away).  pad: bytes of
    each main-file row's body (a bigger file takes longer to restore)."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, tag TEXT, "
               "body TEXT)")
    db.execute("BEGIN")
    for i in range(300):
        db.execute("INSERT INTO items(tag, body) VALUES('main', ?)",
                   ("row %d" % i + "." * pad,))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(400):
        db.execute("INSERT INTO items(tag, body) VALUES('wal', ?)",
                   ("row %d" % i,))
    return db


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "base", rows=20)
    src_dir = ctx.path("src")
    os.makedirs(src_dir)
    src = os.path.join(src_dir, "src.db")
    writer = make_wal_source(src)
    ctx.require("the source's main file alone holds 300 rows",
                mt.count_rows(src, immutable=True) == 300)
    ctx.require("the source with its WAL holds 700 rows",
                mt.count_rows(src) == 700)
    ctx.require("the WAL is still beside it",
                os.path.getsize(src + "-wal") > 0)

    # What snapctl gives from the original files, on a copy of the live
    # database with a store of its own.
    other = ctx.path("other.db")
    shutil.copyfile(live, other)
    r = ctx.run([ctx.snapctl, "--db", other, "create"])
    ctx.check("snapctl create (the store of the copy)", r.returncode == 0,
              r.stderr)
    r = ctx.run([ctx.snapctl, "--db", other, "restore", src])
    ctx.check("snapctl restore src.db", r.returncode == 0, r.stderr)
    ctx.check("snapctl restores 700 rows", mt.count_rows(other) == 700,
              mt.count_rows(other))

    m = ctx.mount(live)
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")
    r = ctx.run(["cp", src, src + "-wal", mnt])
    ctx.check("cp src.db src.db-wal MNT/", r.returncode == 0, r.stderr)
    writer.close()
    r = ctx.run(["mv", os.path.join(mnt, "src.db"), cur])
    ctx.check("mv MNT/src.db MNT/current.db", r.returncode == 0, r.stderr)
    ctx.check("the live database holds the 700 committed rows",
              mt.count_rows(live) == 700, mt.count_rows(live))
    ctx.check("the same content as snapctl's restore",
              mt.dump(live) == mt.dump(other))
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")
    ctx.check("a read of current.db shows them too",
              mt.count_rows(cur, immutable=True) == 700)
    root = mt.root_staging(mnt)
    ctx.check("src.db is gone from the root, its -wal stays",
              root == ["src.db-wal"], root)
    os.unlink(os.path.join(mnt, "src.db-wal"))
    root = mt.root_staging(mnt)
    ctx.check("and can be removed", root == [], root)

    # Without a -wal: the main file as it is (the source's WAL now
    # checkpointed into it by the writer's close).
    mt.make_db(ctx.path("plain.db"), "plain", rows=30)
    r = ctx.run(["cp", ctx.path("plain.db"), mnt])
    r2 = ctx.run(["mv", os.path.join(mnt, "plain.db"), cur])
    ctx.check("a staged file without a -wal restores",
              r.returncode == 0 and r2.returncode == 0 and
              mt.dump(live) == mt.dump(ctx.path("plain.db")),
              r.stderr + r2.stderr)
    m.stop()


if __name__ == "__main__":
    mt.main("wal_source", body, mount=True)
