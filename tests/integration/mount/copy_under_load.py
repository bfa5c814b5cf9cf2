#!/usr/bin/env python3
"""
`cp current.db out.db` never yields a torn copy while applications write
(fs/DESIGN.md §1 "current.db open read-only"; engine/PITFALLS.md 1, 6):

Writer processes move money between accounts on the real path, each
transfer one transaction, so the total never changes in any committed
state.  Meanwhile the test copies current.db out of the mount again and
again, queries it in place with `sqlite3 -readonly`, and takes snapshots
with touch.  Every copy, query and snapshot must pass integrity_check and
show the constant total; the writers must have committed during the run
(so the copies were taken of a moving database).

Argument: journal mode of the live database (delete or wal).
"""

import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

MODE = sys.argv[1] if len(sys.argv) > 1 else "delete"
WRITERS = 3
COPIES = 25

# A writer process: each transaction moves money between two accounts
# (the total never changes) and counts itself in table counter, or with
# "grow" (copy_tools_wal.py) adds a row to notes instead, with
# wal_autocheckpoint=0, so a WAL database's image outgrows its main file;
# a growing writer then keeps its connection, and so its WAL, until its
# stdin closes.  It prints "ready" after its first commit and "stopped N"
# at the end.  Each writer pauses briefly after every commit: back-to-back
# BEGIN IMMEDIATE loops starve the other writers (and the daemon's
# readers) in rollback mode until a busy timeout ends them with "database
# is locked".  The pause is pacing, not a wait for anything.
WRITER = r"""
import os, random, sqlite3, sys, time
path, seed, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
grow = sys.argv[4:] == ["grow"]
rng = random.Random(seed)
db = sqlite3.connect(path, timeout=60, isolation_level=None)
if grow:
    db.execute("PRAGMA wal_autocheckpoint=0")
n = db.execute("SELECT count(*) FROM accounts").fetchone()[0]
done = 0
while True:
    a, b = rng.randrange(n), rng.randrange(n)
    amount = rng.randrange(1, 50)
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?",
               (amount, a))
    db.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
               (amount, b))
    if grow:
        db.execute("INSERT INTO notes(body) VALUES(?)", ("w" * 1500,))
    else:
        db.execute("UPDATE counter SET n = n + 1")
    db.execute("COMMIT")
    done += 1
    if done == 1:
        print("ready", flush=True)
    if os.path.exists(stop):
        break
    time.sleep(rng.uniform(0.001, 0.004))
print("stopped", done, flush=True)
if grow:
    sys.stdin.read()
    db.close()
"""


def transfers(path, immutable=False):
    uri = "file:%s?mode=ro%s" % (path, "&immutable=1" if immutable else "")
    db = sqlite3.connect(uri, uri=True, timeout=120)
    try:
        return db.execute("SELECT n FROM counter").fetchone()[0]
    finally:
        db.close()


def body(ctx):
    live = ctx.path("bank.db")
    want = mt.make_bank(live, accounts=3000, mode=MODE, filler=400)
    db = sqlite3.connect(live)
    db.execute("CREATE TABLE counter(n INTEGER)")
    db.execute("INSERT INTO counter VALUES(0)")
    db.commit()
    db.close()
    m = ctx.mount(live)
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")
    stop = ctx.path("stop")

    writers = []
    for i in range(WRITERS):
        p = ctx.spawn([sys.executable, "-c", WRITER, live,
                       str(ctx.seed + i), stop],
                      stdout=subprocess.PIPE, text=True)
        writers.append(p)
    for p in writers:
        ctx.require("writer started", p.stdout.readline().strip() == "ready")
    start = transfers(live)

    bad = []
    seen = set()
    for i in range(COPIES):
        out = ctx.path("out-%d.db" % i)
        r = ctx.run(["cp", cur, out])
        if r.returncode != 0:
            bad.append("cp %d: %s" % (i, r.stderr))
            continue
        ic = mt.integrity(out)
        tot = mt.total(out)
        if ic != "ok" or tot != want:
            bad.append("copy %d: integrity %s, total %s" % (i, ic, tot))
        seen.add(transfers(out))
        os.unlink(out)
        if i % 5 == 0:
            r = ctx.run(["sqlite3", "-readonly", cur,
                         "PRAGMA integrity_check; "
                         "SELECT sum(balance) FROM accounts;"])
            if r.returncode != 0 or r.stdout.split() != ["ok", str(want)]:
                bad.append("sqlite3 -readonly current.db: %r %r"
                           % (r.stdout, r.stderr))
        if i % 8 == 0:
            r = ctx.run(["touch", os.path.join(mnt, "snapshots",
                                               "load-%d" % i)])
            if r.returncode != 0:
                bad.append("touch load-%d: %s" % (i, r.stderr))
    ctx.check("%d copies of current.db under load pass integrity_check "
              "with the constant total" % COPIES, not bad, "\n".join(bad))

    open(stop, "w").close()
    done = 0
    for p in writers:
        out, _ = p.communicate(timeout=120)
        ctx.check("writer exited cleanly", p.returncode == 0, out)
        done += int(out.split()[-1]) if out.split() else 0
    end = transfers(live)
    ctx.check("the writers committed while the copies were made "
              "(%d transfers, %d distinct states copied)"
              % (end - start, len(seen)), end > start and len(seen) > 1)

    snaps = [n for n in mt.snapshots(mnt) if "_load-" in n]
    ctx.check("the snapshots taken under load are listed",
              len(snaps) == len(range(0, COPIES, 8)), snaps)
    for n in snaps:
        p = os.path.join(mnt, "snapshots", n)
        ctx.check("snapshot %s passes integrity_check with the constant "
                  "total" % n, mt.integrity(p) == "ok" and
                  mt.total(p) == want)
    ctx.check("the live database is intact with the constant total",
              mt.integrity(live) == "ok" and mt.total(live) == want)
    m.stop()


if __name__ == "__main__":
    mt.main("copy_under_load_" + MODE, body, mount=True)
