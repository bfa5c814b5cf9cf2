#!/usr/bin/env python3
"""
A WAL database dropped into restore/ with its -wal restores its committed
state (fs/DESIGN.md §4, "restore/"; issue 7 item 6: "A staged file with a
staged -wal beside it restores its committed state, the same as
snapctl"), whatever the order the two files come in, while an application
keeps committing to the live database.

The source holds 300 rows checkpointed into its main file (tag 'main')
and 400 more only in its WAL (tag 'wal'; wal_autocheckpoint=0, its
connection still open so the WAL stays), so the main file alone is 300
rows and the committed state 700.  A writer process commits rows tagged
'writer' to the live database all along (the restored source has the same
table, so it goes on committing after each restore).

  cp src.db src.db-wal restore/   the main file is restored at its close,
                                  the -wal then restores it again with
                                  its WAL: 700 rows, cp exits 0, two
                                  pre-restore snapshots, the log says so;
  gio copy src.db src.db-wal restore/, rsync (dot-named files renamed
                                  onto their names)   the same;
  cp src.db-wal src.db restore/   the -wal waits (privately) and the main
                                  file is restored with it: 700 rows, one
                                  pre-restore snapshot;
  both written side by side, the -wal closed while the main file's
  restore runs                    the two still meet: 700 rows, two
                                  pre-restore snapshots;
  a WAL database closed cleanly (no -wal)   restored at its close as any
                                  file;
  cp x-shm x-journal restore/     ignored: exit 0, nothing restored;
  a -wal alone, then another file the -wal is never restored, the other
                                  file is restored alone, the log says the
                                  -wal was discarded.
restore/ is empty after each, and its files are never wider than the
database (0600 here).
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)
from wal_source import make_wal_source  # noqa: E402

# Commits to the live database until the stop file exists; a commit that
# fails (a restore holds the database) is counted and tried again.  The
# pause is pacing, not a wait for anything.
WRITER = r"""
import os, sqlite3, sys, time
path, stop = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path, timeout=60, isolation_level=None)
done = failed = 0
while not os.path.exists(stop):
    try:
        db.execute("INSERT INTO items(tag, body) VALUES('writer', ?)",
                   ("commit %d" % done,))
        done += 1
    except sqlite3.Error as e:
        failed += 1
    if done == 1 and failed == 0:
        print("ready", flush=True)
    time.sleep(0.002)
print("stopped", done, failed, flush=True)
db.close()
"""


def tags(path):
    """{tag: rows} of the live database, writer rows left out."""
    return mt.tag_counts(path, skip="writer")


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "base", rows=20)
    mt.set_journal_mode(live, "wal")
    os.chmod(live, 0o600)
    out = ctx.path("src")
    os.makedirs(out)
    m = ctx.mount(live)
    mnt = m.mnt
    rd = os.path.join(mnt, "restore")

    stop = ctx.path("stop")
    w = ctx.spawn([sys.executable, "-c", WRITER, live, stop],
                  stdout=subprocess.PIPE, text=True)
    ctx.require("the live database's writer started",
                w.stdout.readline().strip() == "ready")

    def pre_restores():
        return sum(1 for k in mt.kinds(mnt).values() if k == "pre-restore")

    def source(name, pad=0):
        """A WAL source in its own directory: (path, open connection)."""
        d = os.path.join(out, name)
        os.makedirs(d)
        p = os.path.join(d, "src.db")
        con = make_wal_source(p, pad)
        ctx.require("%s: 300 rows in the main file, 700 with its WAL"
                    % name, mt.count_rows(p, immutable=True) == 300 and
                    mt.count_rows(p) == 700)
        return p, con

    def verify(what, r, want, restores, before):
        ctx.check("%s exits 0" % what, r.returncode == 0,
                  r.stdout + r.stderr)
        ctx.check("%s: the live database has the source's committed "
                  "state %r" % (what, want), tags(live) == want,
                  tags(live))
        ctx.check("%s: the live database passes integrity_check" % what,
                  mt.integrity(live) == "ok")
        ctx.check("%s: %d pre-restore snapshot(s)" % (what, restores),
                  pre_restores() == before + restores,
                  "%d -> %d" % (before, pre_restores()))
        ctx.check("%s: restore/ is empty again" % what,
                  os.listdir(rd) == [], os.listdir(rd))

    committed = {"main": 300, "wal": 400}

    # The main file first, then its -wal: cp in argument order, gio copy.
    for what, argv in (
            ("cp src.db src.db-wal restore/",
             lambda p: ["cp", p, p + "-wal", rd + "/"]),
            ("gio copy src.db src.db-wal restore/",
             lambda p: ["gio", "copy", p, p + "-wal", rd + "/"]),
            # Dot-named temporary files, each renamed onto its name.
            ("rsync src.db src.db-wal restore/",
             lambda p: ["rsync", p, p + "-wal", rd + "/"])):
        src, con = source(what.split()[0] + "-main-first")
        before = pre_restores()
        r = ctx.run(argv(src))
        con.close()
        verify(what, r, committed, 2, before)
        ctx.check("%s: the log says the -wal restored src.db again" % what,
                  m.has_log("restore/src.db-wal came after restore/src.db"
                            ", restored alone at its close") and
                  m.has_log("restored current.db from the file written to "
                            "restore/src.db with its WAL"), m.text())
        # Something else in between, so the next case starts elsewhere.
        mt.make_db(ctx.path("between.db"), "between", rows=7)
        r = ctx.run(["cp", ctx.path("between.db"), rd + "/"])
        ctx.require("a plain file in between restores",
                    r.returncode == 0 and tags(live) == {"between": 7},
                    r.stderr)

    # The -wal first (a file manager may copy in any order).
    src, con = source("wal-first")
    before = pre_restores()
    r = ctx.run(["cp", src + "-wal", src, rd + "/"])
    con.close()
    verify("cp src.db-wal src.db restore/", r, committed, 1, before)
    ctx.check("the -wal waited for src.db (logged)",
              m.has_log("restore/src.db-wal: the write-ahead log of src.db"),
              m.text())

    # Both files written side by side (a file manager copying in
    # parallel), the -wal closed while the main file's restore runs: the
    # main file, restored alone, takes the -wal kept meanwhile and is
    # restored again with it.  The main file is padded (8 MB) so that its
    # restore lasts long enough to be seen running (its pre-restore
    # snapshot listed) while the -wal closes.
    src, con = source("side-by-side", pad=28000)
    before = pre_restores()
    fx = open(os.path.join(rd, "src.db"), "wb")
    fw = open(os.path.join(rd, "src.db-wal"), "wb")
    with open(src, "rb") as f:
        fx.write(f.read())
    with open(src + "-wal", "rb") as f:
        fw.write(f.read())
    fx.flush()
    fw.flush()
    con.close()
    errors = []

    def close_main():
        try:
            fx.close()
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=close_main)
    t.start()
    while pre_restores() == before and t.is_alive():
        time.sleep(0.001)        # polls the restore's progress
    crossed = t.is_alive()
    fw.close()
    t.join()
    ctx.require("the -wal closed while src.db was being restored",
                crossed)
    r = subprocess.CompletedProcess([], 0 if not errors else 1, "",
                                    " ".join(map(str, errors)))
    verify("src.db and src.db-wal closed side by side", r, committed, 2,
           before)

    # A WAL database closed cleanly has no -wal: restored at its close.
    closed = os.path.join(out, "closed.db")
    con = sqlite3.connect(closed, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, tag TEXT, "
                "body TEXT)")
    con.executemany("INSERT INTO items(tag, body) VALUES('closed', ?)",
                    [("row %d" % i,) for i in range(50)])
    con.close()
    ctx.require("the closed WAL database has no -wal",
                not os.path.exists(closed + "-wal"))
    before = pre_restores()
    r = ctx.run(["cp", closed, rd + "/"])
    verify("cp closed.db restore/ (WAL mode, no -wal)", r, {"closed": 50},
           1, before)

    # An empty -wal (after a TRUNCATE checkpoint) beside its database: the
    # database alone is the committed state; cp exits 0; and the pair
    # that comes next (WAL first) is not joined with the older file.
    emp = os.path.join(out, "emptywal")
    os.makedirs(emp)
    shutil.copyfile(closed, os.path.join(emp, "src.db"))
    open(os.path.join(emp, "src.db-wal"), "wb").close()
    before = pre_restores()
    r = ctx.run(["cp", os.path.join(emp, "src.db"),
                 os.path.join(emp, "src.db-wal"), rd + "/"])
    verify("cp src.db src.db-wal restore/ with an empty -wal", r,
           {"closed": 50}, 1, before)
    src, con = source("after-empty-wal")
    before = pre_restores()
    r = ctx.run(["cp", src + "-wal", src, rd + "/"])
    con.close()
    verify("cp src.db-wal src.db restore/ after an empty -wal", r,
           committed, 1, before)

    # -shm and -journal are ignored.
    before = pre_restores()
    for side in ("-shm", "-journal"):
        with open(closed + side, "wb") as f:
            f.write(b"\0" * 32768)
    state = tags(live)
    r = ctx.run(["cp", closed + "-shm", closed + "-journal", rd + "/"])
    verify("cp closed.db-shm closed.db-journal restore/ (ignored)", r,
           state, 0, before)

    # A -wal alone is never restored: the next file is restored alone.
    src, con = source("orphan")
    shutil.copyfile(src + "-wal", ctx.path("orphan.db-wal"))
    con.close()
    mt.make_db(ctx.path("next.db"), "next", rows=9)
    before = pre_restores()
    r = ctx.run(["cp", ctx.path("orphan.db-wal"), rd + "/"])
    r2 = ctx.run(["cp", ctx.path("next.db"), rd + "/"])
    ctx.check("cp orphan.db-wal restore/ exits 0", r.returncode == 0,
              r.stderr)
    staging = ctx.path("app.db.snapfs", "staging")
    kept = {f: os.lstat(os.path.join(staging, f)).st_mode
            for f in os.listdir(staging)}
    ctx.check("the waiting -wal is kept privately in the staging directory "
              "(regular files, 0600)", kept and all(
                  (st & 0o7777) == 0o600 and (st & 0o170000) == 0o100000
                  for st in kept.values()),
              {f: oct(st) for f, st in kept.items()})
    verify("cp next.db restore/ after a lone -wal", r2, {"next": 9}, 1,
           before)
    ctx.check("the lone -wal was discarded unused (logged)",
              m.has_log("restore/orphan.db-wal discarded unused"), m.text())

    open(stop, "w").close()
    line = w.stdout.readline().split()
    w.wait(timeout=60)
    ctx.check("the writer committed throughout and exited cleanly",
              w.returncode == 0 and len(line) == 3 and
              line[0] == "stopped" and int(line[1]) > 0, line)
    ctx.check("no staging file is left in the root",
              mt.root_staging(mnt) == [], os.listdir(mnt))
    m.stop()
    ctx.check("nothing kept outlives the unmount",
              not os.path.exists(staging) or os.listdir(staging) == [],
              os.path.exists(staging) and os.listdir(staging))


if __name__ == "__main__":
    mt.main("restore_dir_wal", body, mount=True)
