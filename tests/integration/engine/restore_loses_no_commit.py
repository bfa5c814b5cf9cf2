#!/usr/bin/env python3
"""restore_loses_no_commit.py MODE — a restore beside a writer loses no commit.

A writer process inserts rows app(id = 1, 2, 3, ...) in autocommit mode and
appends each id to a log file once its COMMIT returned.  While it writes,
`snapctl restore` puts back an older snapshot, ROUNDS times.  The restore
overwrites the writer's rows in the live database; they must then be in the
restore's pre-restore (safety) snapshot: every id the writer committed
before the restore finished is in the safety snapshot or, committed after,
in the live database.  MODE: delete (rollback journal) or wal.
"""
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as st  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "delete"
ROUNDS = int(os.environ.get("SNAPFS_ROUNDS", "4"))


WRITER = r"""
import sqlite3, sys
db, log = sys.argv[1], sys.argv[2]
c = sqlite3.connect(db, timeout=60, isolation_level=None)
out = open(log, "a", buffering=1)
# A writer killed between a COMMIT and its log line committed an id the
# log lacks: start past both.
i = max(int(sys.argv[3]),
        c.execute("SELECT coalesce(max(id), 0) FROM app").fetchone()[0])
print("ready", flush=True)
while True:
    i += 1
    c.execute("INSERT INTO app VALUES (?)", (i,))
    out.write(f"{i}\n")
"""


def ids(path, table="app"):
    # Read-write: a writer killed mid-transaction leaves a hot journal
    # that opening the database rolls back.
    c = sqlite3.connect(path, timeout=60)
    try:
        return {r[0] for r in c.execute(f"SELECT id FROM {table}")}
    finally:
        c.close()


def body(ctx):
    DB = ctx.path("live.db")

    def snapctl(*args):
        return ctx.sc(*args, db=DB, timeout=600)

    c = sqlite3.connect(DB)
    c.execute(f"PRAGMA journal_mode={MODE}")
    c.execute("CREATE TABLE app(id INTEGER PRIMARY KEY)")
    c.execute("CREATE TABLE filler(x)")
    c.executemany("INSERT INTO filler VALUES (randomblob(500))",
                  [()] * 4000)
    c.commit()
    c.close()
    r = snapctl("create", "--label", "base")
    if not ctx.check("snapctl create exits 0", r.returncode == 0, r.stderr):
        return
    base = r.stdout.strip()
    log = ctx.path("committed.log")
    start = 0
    for rnd in range(ROUNDS):
        w = ctx.spawn([sys.executable, "-c", WRITER, DB, log, str(start)],
                      stdout=st.subprocess.PIPE, text=True)
        ctx.check(f"round {rnd}: writer started", w.stdout.readline().strip()
                  == "ready")
        # Let it commit a few rows first (handshake on the log, no sleep;
        # bounded, and over if the writer died).
        deadline = time.monotonic() + 120
        got = 0
        while got < 20 and w.poll() is None and time.monotonic() < deadline:
            with open(log) as f:
                got = sum(1 for line in f if int(line) > start)
        if not ctx.check(f"round {rnd}: the writer committed", got >= 20,
                         f"{got} rows, writer exit {w.poll()}"):
            w.kill()
            w.wait()
            break
        r = snapctl("--json", "restore", base)
        done_log = open(log).read().split()
        w.kill()
        w.wait()
        ok = ctx.check(f"round {rnd}: restore beside the writer exits 0",
                       r.returncode == 0, r.stderr)
        # This round's ids: earlier rounds' are in earlier safety snapshots.
        committed = {int(x) for x in open(log).read().split()
                     if int(x) > start}
        before_end = {int(x) for x in done_log if int(x) > start}
        start = max(committed | {start})
        if not ok:
            continue
        safety = json.loads(r.stdout).get("safety")
        if not ctx.check(f"round {rnd}: a safety snapshot was taken",
                         bool(safety), r.stdout):
            continue
        exp = ctx.path(f"safety-{rnd}.db")
        e = snapctl("export", safety, exp)
        ctx.check(f"round {rnd}: the safety snapshot exports", e.returncode == 0,
                  e.stderr)
        kept = ids(exp) | ids(DB)
        lost = sorted(before_end - kept)
        ctx.check(f"round {rnd}: every id committed before the restore ended "
                  f"({len(before_end)}) is in the safety snapshot or live",
                  not lost, f"lost: {lost[:20]} ({len(lost)} in all)")
        later = sorted((committed - before_end) - ids(DB))
        ctx.check(f"round {rnd}: ids committed after it are in live", not later,
                  f"missing: {later[:20]}")


if __name__ == "__main__":
    st.main(f"restore_loses_no_commit_{MODE}", body)
