#!/usr/bin/env python3
"""
Edit sessions: SQLite clients writing to current.db through the mount
(DESIGN.md §1, "open read-write without truncation").

  * `sqlite3 MNT/current.db "insert ..."` reaches the live database, as a
    verified restore, leaving no -journal/-wal/-shm behind; a read-only
    query through a read-write open changes nothing;
  * a client that switches the session to WAL mode works (its -shm is a
    staging file it can mmap) and its edit reaches the live database;
  * two connections through the mount share one session and both edits
    arrive;
  * when the live database changed since the session began, the edit is not
    applied: close() fails (EIO), the edited copy is kept as a snapshot of
    kind conflict, and the application's commit stays in the live database;
  * with an application writing on the real path all the time, repeated
    `sqlite3 MNT/current.db "insert ..."` lose nothing: every application
    row is in the live database, every mount edit is in the live database
    or in a conflict snapshot.
"""

import errno
import os
import sqlite3
import subprocess
import sys

import mounttest as mt

APP = r"""
import os, sqlite3, sys
path, stop = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path, timeout=60, isolation_level=None)
n = 0
while not os.path.exists(stop):
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO items(tag, body) VALUES('app', ?)", ("app-%d" % n,))
    db.execute("COMMIT")
    if n == 1:
        print("ready", flush=True)
print(n, flush=True)
"""


def rows(path, tag, immutable=False):
    uri = "file:%s?mode=ro%s" % (path, "&immutable=1" if immutable else "")
    db = sqlite3.connect(uri, uri=True, timeout=120)
    try:
        return set(r[0] for r in db.execute(
            "SELECT body FROM items WHERE tag = ?", (tag,)))
    finally:
        db.close()


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "base", rows=50)
    m = ctx.mount(live)
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")
    sd = os.path.join(mnt, "snapshots")

    def root_clean(what):
        root = sorted(os.listdir(mnt))
        ctx.check("%s: nothing left beside current.db" % what,
                  root == [".snapfs", "current.db", "snapshots"], root)

    # A plain insert through the mount.
    r = ctx.run(["sqlite3", cur,
                 "INSERT INTO items(tag, body) VALUES('mount', 'one')"])
    ctx.check("sqlite3 current.db \"insert ...\" exits 0", r.returncode == 0,
              r.stderr)
    ctx.check("the insert reached the live database",
              rows(live, "mount") == {"one"})
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")
    ks = mt.kinds(mnt)
    ctx.check("it went through a verified restore (a pre-restore "
              "snapshot exists)", "pre-restore" in ks.values(), ks)
    root_clean("insert")

    # A transaction of several statements.
    r = ctx.run(["sqlite3", cur,
                 "BEGIN; INSERT INTO items(tag, body) VALUES('mount','two');"
                 "INSERT INTO items(tag, body) VALUES('mount','three');"
                 "DELETE FROM items WHERE body = 'base row 0 ';"
                 "COMMIT;"])
    ctx.check("a multi-statement transaction through the mount",
              r.returncode == 0 and
              rows(live, "mount") == {"one", "two", "three"}, r.stderr)

    # Reading through a read-write open changes nothing.
    n_snaps = len(mt.snapshots(mnt))
    sha = mt.sha256(live)
    r = ctx.run(["sqlite3", cur, "SELECT count(*) FROM items"])
    ctx.check("a query through a read-write open answers",
              r.returncode == 0 and r.stdout.strip() == "52", r.stdout)
    ctx.check("and changes nothing", mt.sha256(live) == sha and
              len(mt.snapshots(mnt)) == n_snaps)
    root_clean("query")

    # A client that switches its session to WAL mode.
    r = ctx.run(["sqlite3", cur, "PRAGMA journal_mode=WAL;"
                 "INSERT INTO items(tag, body) VALUES('mount', 'wal');"])
    ctx.check("a WAL-mode client through the mount", r.returncode == 0,
              r.stdout + r.stderr)
    ctx.check("its edit reached the live database",
              "wal" in rows(live, "mount") and mt.integrity(live) == "ok")
    root_clean("WAL client")

    # Two connections share one session.
    c1 = sqlite3.connect(cur, timeout=30)
    c2 = sqlite3.connect(cur, timeout=30)
    c1.execute("INSERT INTO items(tag, body) VALUES('mount', 'c1')")
    c1.commit()
    seen = c2.execute("SELECT count(*) FROM items WHERE body = 'c1'"
                      ).fetchone()[0]
    c2.execute("INSERT INTO items(tag, body) VALUES('mount', 'c2')")
    c2.commit()
    c1.close()
    c2.close()
    ctx.check("a second connection sees the first one's commit", seen == 1)
    ctx.check("both edits reached the live database",
              {"c1", "c2"} <= rows(live, "mount"))

    # Conflict: the live database moves while a session is open.
    fd = os.open(cur, os.O_RDWR)
    page = os.pread(fd, 4096, 0)
    app = sqlite3.connect(live)
    app.execute("INSERT INTO items(tag, body) VALUES('app', 'during')")
    app.commit()
    app.close()
    os.pwrite(fd, page, 0)
    err = None
    try:
        os.close(fd)
    except OSError as e:
        err = e.errno
    ctx.check("close() of a stale edit fails with EIO", err == errno.EIO,
              err)
    ctx.check("the application's commit is still in the live database",
              "during" in rows(live, "app"))
    conflicts = [n for n, k in mt.kinds(mnt).items() if k == "conflict"]
    ctx.check("the edit is kept as a conflict snapshot",
              len(conflicts) == 1, mt.kinds(mnt))
    if conflicts:
        cp = os.path.join(sd, conflicts[0])
        ctx.check("the conflict snapshot holds the session's copy",
                  "during" not in rows(cp, "app") and
                  "c2" in rows(cp, "mount"))
    ctx.check("the daemon said why", m.has_log("changed since"), m.text())

    # Conflict through a real SQLite client.
    c = sqlite3.connect(cur, timeout=30)
    c.execute("INSERT INTO items(tag, body) VALUES('mount', 'stale')")
    c.commit()
    app = sqlite3.connect(live)
    app.execute("INSERT INTO items(tag, body) VALUES('app', 'meanwhile')")
    app.commit()
    app.close()
    c.close()
    ctx.check("a stale SQLite client's edit is not applied",
              "stale" not in rows(live, "mount") and
              "meanwhile" in rows(live, "app"))
    found = [n for n, k in mt.kinds(mnt).items() if k == "conflict" and
             "stale" in rows(os.path.join(sd, n), "mount")]
    ctx.check("it is kept as a conflict snapshot", len(found) == 1)
    root_clean("conflicts")

    # An application writing all the time, and edits through the mount.
    stop = ctx.path("stop")
    w = ctx.spawn([sys.executable, "-c", APP, live, stop],
                  stdout=subprocess.PIPE, text=True)
    ctx.require("application writer started",
                w.stdout.readline().strip() == "ready")
    results = []
    for i in range(10):
        r = ctx.run(["sqlite3", "-cmd", ".timeout 30000", cur,
                     "INSERT INTO items(tag, body) VALUES('edit', 'e-%d')"
                     % i])
        results.append(r.returncode)
    open(stop, "w").close()
    out, _ = w.communicate(timeout=120)
    napp = int(out.split()[-1])
    ctx.check("the sqlite3 clients ran", all(rc == 0 for rc in results),
              results)
    got = rows(live, "app")
    missing = {"app-%d" % i for i in range(1, napp + 1)} - got
    ctx.check("every one of the application's %d commits is in the live "
              "database" % napp, not missing, sorted(missing)[:20])
    kept = set()
    for n, k in mt.kinds(mnt).items():
        if k == "conflict":
            kept |= rows(os.path.join(sd, n), "edit")
    edits = rows(live, "edit")
    lost = {"e-%d" % i for i in range(10)} - edits - kept
    ctx.check("every edit through the mount is in the live database (%d) "
              "or a conflict snapshot (%d)" % (len(edits), len(kept - edits)),
              not lost, sorted(lost))
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")
    root_clean("concurrent edits")
    m.stop()


if __name__ == "__main__":
    mt.main("edit_session", body)
