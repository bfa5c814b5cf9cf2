#!/usr/bin/env python3
"""
A torn copy of a rollback-journal database, brought with its hot journal,
restores its committed state (fs/DESIGN.md §1 and §4): the journal is
rolled back first, as SQLite would on opening the copy.  (It was ignored,
and the live database took the torn main file: half a transaction, which
passes integrity_check.)

The source is copied while a transaction is under way that has spilled
into its main file: every row of 'items' updated to 'torn', 3000 rows
inserted, nothing committed.  The main file alone reads 'torn' rows and
passes integrity_check; the committed state, after the journal's
rollback, is 'good' rows only.

  cp src.db src.db-journal restore/   the main file is restored at its
                                      close, the journal then restores it
                                      again, rolled back: the committed
                                      state, two pre-restore snapshots;
  cp src.db-journal src.db restore/   the journal waits (privately) and
                                      the main file is restored with it:
                                      the committed state, one;
  cp src.db src.db-journal MNT/; mv MNT/src.db MNT/current.db
                                      the journal beside the staged file
                                      is rolled back: the committed state;
  a journal that holds no transaction (zeroed) is ignored, as before.
The source files outside the mount are never changed.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

# Copies src and its hot journal to dst (+ "-journal") in the middle of a
# transaction whose pages spilled into the main file, then exits without
# committing or rolling back.
TORN = r"""
import os, shutil, sqlite3, sys
src, dst = sys.argv[1], sys.argv[2]
db = sqlite3.connect(src, isolation_level=None)
db.execute("PRAGMA cache_size=10")
db.execute("BEGIN")
db.execute("UPDATE items SET tag='torn'")
db.executemany("INSERT INTO items(tag, body) VALUES('torn', ?)",
               [("x" * 500,) for _ in range(3000)])
shutil.copyfile(src, dst)
shutil.copyfile(src + "-journal", dst + "-journal")
os._exit(0)
"""


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "live", rows=10)
    m = ctx.mount(live)
    mnt = m.mnt
    rd = os.path.join(mnt, "restore")
    out = ctx.path("outside")
    os.makedirs(out)

    orig = os.path.join(out, "orig.db")
    mt.make_db(orig, "good", rows=400)
    committed = mt.tag_counts(orig)
    src = os.path.join(out, "src.db")
    subprocess.run([sys.executable, "-c", TORN, orig, src], check=True)
    ctx.require("the copy has a hot journal beside it",
                os.path.getsize(src + "-journal") > 0)
    # Read a copy: SQLite would roll back src itself.
    alone = ctx.path("alone.db")
    with open(src, "rb") as f, open(alone, "wb") as g:
        g.write(f.read())
    ctx.require("the main file alone is torn (its rows read 'torn') and "
                "passes integrity_check", "torn" in mt.tag_counts(alone) and
                mt.integrity(alone) == "ok", mt.tag_counts(alone))
    sums = (mt.sha256(src), mt.sha256(src + "-journal"))

    def pre_restores():
        return sum(1 for k in mt.kinds(mnt).values() if k == "pre-restore")

    def verify(what, r, expect, restores, before):
        ctx.check("%s exits 0" % what, r.returncode == 0, mt.describe(r))
        ctx.check("%s: the live database holds the committed state" % what,
                  mt.tag_counts(live) == expect, mt.tag_counts(live))
        ctx.check("%s: integrity_check" % what, mt.integrity(live) == "ok")
        ctx.check("%s: %d pre-restore snapshot(s)" % (what, restores),
                  pre_restores() == before + restores, mt.kinds(mnt))
        ctx.check("%s: restore/ is empty" % what, os.listdir(rd) == [],
                  os.listdir(rd))
        ctx.check("%s: the source files are unchanged" % what,
                  (mt.sha256(src), mt.sha256(src + "-journal")) == sums)

    def spoil():
        mt.make_db(ctx.path("other.db"), "other", rows=5)
        r = ctx.run(["cp", ctx.path("other.db"), rd + "/"])
        ctx.require("a restore of another file", r.returncode == 0 and
                    mt.tag_counts(live) == {"other": 5}, mt.describe(r))

    spoil()
    before = pre_restores()
    r = ctx.run(["cp", src, src + "-journal", rd + "/"])
    verify("cp src.db src.db-journal restore/", r, committed, 2, before)
    ctx.check("the log says the journal restored it again",
              m.has_log("with this rollback journal"))

    spoil()
    before = pre_restores()
    r = ctx.run(["cp", src + "-journal", src, rd + "/"])
    verify("cp src.db-journal src.db restore/", r, committed, 1, before)

    spoil()
    before = pre_restores()
    r = ctx.run(["cp", src, src + "-journal", mnt + "/"])
    ctx.check("cp src.db src.db-journal MNT/ exits 0", r.returncode == 0,
              mt.describe(r))
    r = ctx.run(["mv", os.path.join(mnt, "src.db"),
                 os.path.join(mnt, "current.db")])
    ctx.check("mv MNT/src.db MNT/current.db exits 0", r.returncode == 0,
              mt.describe(r))
    ctx.check("mv onto current.db: the live database holds the committed "
              "state", mt.tag_counts(live) == committed, mt.tag_counts(live))
    ctx.check("mv onto current.db: one pre-restore snapshot",
              pre_restores() == before + 1, mt.kinds(mnt))
    os.unlink(os.path.join(mnt, "src.db-journal"))

    # A journal holding no transaction is ignored: the file alone.
    mt.make_db(ctx.path("plain.db"), "plain", rows=7)
    with open(ctx.path("plain.db-journal"), "wb") as f:
        f.write(b"\0" * 4096)
    before = pre_restores()
    r = ctx.run(["cp", ctx.path("plain.db"), ctx.path("plain.db-journal"),
                 rd + "/"])
    ctx.check("cp plain.db plain.db-journal (zeroed) restore/ exits 0",
              r.returncode == 0, mt.describe(r))
    ctx.check("a zeroed journal is ignored: the file alone, one restore",
              mt.tag_counts(live) == {"plain": 7} and pre_restores() == before + 1,
              (mt.tag_counts(live), mt.kinds(mnt)))
    m.stop()


if __name__ == "__main__":
    mt.main("restore_journal", body, mount=True)
