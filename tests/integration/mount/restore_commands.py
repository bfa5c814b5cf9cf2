#!/usr/bin/env python3
"""
Restores onto current.db with every command people use (fs/DESIGN.md §1,
"Mount root"; engine/PITFALLS.md, "What tools do"):

  mv of a snapshot, cp of a snapshot; cp, cp --remove-destination, cat >,
  rsync, rsync --inplace, gio copy of a database from outside; mv from
  another filesystem.

Each must leave the live database equal to the source and passing
integrity_check, add a pre-restore snapshot, keep the source snapshot
listed, leave no staging file behind, and make the kernel tell the truth at
once: current.db names the live inode again (engine/PITFALLS.md 16), its size
is the live size, and reading it gives the restored content.

Argument: the live database's journal mode (delete or wal).
"""

import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

MODE = sys.argv[1] if len(sys.argv) > 1 else "delete"


def set_mode(path, mode):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=%s" % mode)
    db.close()


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "original", rows=30)
    set_mode(live, MODE)
    m = ctx.mount(live)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")
    cur = os.path.join(mnt, "current.db")
    src_dir = ctx.path("outside")
    os.makedirs(src_dir)

    def source(tag, rows):
        p = os.path.join(src_dir, tag + ".db")
        mt.make_db(p, tag, rows=rows)
        return p

    def snapshot_of(tag, rows):
        """Put tag's content into the live db, snapshot it, return path."""
        return os.path.join(sd, mt.snapshot_of(
            ctx, mnt, source(tag, rows), tag,
            source(tag + "-after", rows + 3)))

    def verify(what, r, expect, src_snapshot=None):
        pre_before = verify.pre
        ok = ctx.check("%s exits 0" % what, r.returncode == 0,
                       r.stdout + r.stderr)
        ctx.check("%s: live database equals the source" % what,
                  mt.dump(live) == expect)
        ctx.check("%s: live passes integrity_check" % what,
                  mt.integrity(live) == "ok")
        ks = mt.kinds(mnt)
        pre = sum(1 for k in ks.values() if k == "pre-restore")
        ctx.check("%s: a pre-restore snapshot was taken" % what,
                  pre == pre_before + 1, "%d -> %d" % (pre_before, pre))
        verify.pre = pre
        if src_snapshot:
            ctx.check("%s: the source snapshot is still listed" % what,
                      os.path.basename(src_snapshot) in ks)
        # The daemon invalidates the kernel's entries on its notifier
        # thread after it replied to the rename (engine/PITFALLS.md 16,
        # 18): what stat sees may lag the reply by that thread's turn.
        def live_inode():
            st = os.stat(cur)
            return (st if st.st_ino == 2 and
                    st.st_size == os.stat(live).st_size else None)
        st = mt.poll(live_inode) or os.stat(cur)
        ctx.check("%s: current.db names the live inode again" % what,
                  st.st_ino == 2 and st.st_size == os.stat(live).st_size,
                  "ino %d size %d, live size %d"
                  % (st.st_ino, st.st_size, os.stat(live).st_size))
        out = ctx.path("readback.db")
        r2 = ctx.run(["cp", cur, out])
        ctx.check("%s: reading current.db gives the restored content"
                  % what, r2.returncode == 0 and mt.dump(out) == expect,
                  r2.stderr)
        os.unlink(out)
        root = mt.root_staging(mnt)
        ctx.check("%s: no staging file is left in the root" % what,
                  root == [], root)
        return ok

    verify.pre = 0

    # mv of a snapshot.
    snap = snapshot_of("snap-mv", 11)
    verify.pre = sum(1 for k in mt.kinds(mnt).values() if k == "pre-restore")
    expect = mt.dump(snap)
    r = ctx.run(["mv", snap, cur])
    verify("mv snapshots/X current.db", r, expect, snap)

    # cp of a snapshot.
    snap = snapshot_of("snap-cp", 12)
    verify.pre = sum(1 for k in mt.kinds(mnt).values() if k == "pre-restore")
    expect = mt.dump(snap)
    r = ctx.run(["cp", snap, cur])
    verify("cp snapshots/X current.db", r, expect, snap)

    # Databases from outside.
    cases = mt.copy_commands(cur)
    for i, (what, argv) in enumerate(cases):
        src = source("outside-%d" % i, 13 + i)
        expect = mt.dump(src)
        verify.pre = sum(1 for k in mt.kinds(mnt).values()
                         if k == "pre-restore")
        r = ctx.run(argv(src))
        verify(what, r, expect)
    ctx.check("mv removed its source", not os.path.exists(
        os.path.join(src_dir, "outside-%d.db" % (len(cases) - 1))))

    # A restore through the mount while an application holds the live
    # database open on the real path: it sees the new content.
    app = sqlite3.connect(live)
    app.execute("SELECT count(*) FROM items").fetchone()
    src = source("with-reader", 21)
    r = ctx.run(["cp", src, cur])
    ctx.check("cp onto current.db with an application connected",
              r.returncode == 0, r.stderr)
    n = app.execute("SELECT count(*) FROM items").fetchone()[0]
    ctx.check("the application's next read sees the restored content",
              n == 21, n)
    app.close()
    # A database with another page size (in WAL mode the engine must
    # switch the live database's mode, which needs every other connection
    # closed, the daemon's own included).
    src = os.path.join(src_dir, "pagesize.db")
    db = sqlite3.connect(src)
    db.execute("PRAGMA page_size=1024")
    db.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, tag TEXT, "
               "body TEXT)")
    db.executemany("INSERT INTO items(tag, body) VALUES('ps', ?)",
                   [("row %d" % i,) for i in range(50)])
    db.commit()
    db.close()
    expect = mt.dump(src)
    verify.pre = sum(1 for k in mt.kinds(mnt).values() if k == "pre-restore")
    r = ctx.run(["cp", src, cur])
    verify("cp of a database with 1024-byte pages", r, expect)
    db = sqlite3.connect(live)
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    ctx.check("the live database kept its journal mode (%s)" % mode,
              mode == MODE)

    m.stop()


if __name__ == "__main__":
    mt.main("restore_commands_" + MODE, body, mount=True)
