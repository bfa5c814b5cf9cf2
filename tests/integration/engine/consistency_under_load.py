#!/usr/bin/env python3
"""
consistency_under_load.py MODE — snapshots taken while other processes write
are consistent (MODE: delete = rollback journal, wal).

Three writer processes move money between the rows of
accounts(id INTEGER PRIMARY KEY, balance INTEGER) on the live database (busy
timeouts, BEGIN IMMEDIATE), keep a commit counter in progress(n) in the same
transaction, and rewrite a row of a filler table each time so pages churn.
Meanwhile `snapctl create` runs CREATES times.  Before each create the test
waits (through a pipe each writer writes its number into after each commit)
until one writer has reported two commits since the previous create ended:
the second of them began after the create, so every snapshot must hold more
commits than the one before, and the writers demonstrably run throughout.

Then every snapshot is exported and checked on its own: rollback-mode header
(bytes 18-19 = 1), no -wal beside it, size and sha256 as listed,
`sqlite3` integrity_check ok, journal_mode delete, the constant total, and
the commit counter strictly increasing from one snapshot to the next.
"""

import os
import select
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as st  # noqa: E402

ACCOUNTS = 500
START_BALANCE = 1000
TOTAL = ACCOUNTS * START_BALANCE
FILLER_ROWS = 4000
FILLER_SIZE = 1500
WRITERS = 3
CREATES = int(os.environ.get("SNAPFS_LOAD_CREATES", "15"))


def writer(db, stopfile, notify_fd, index, seed):
    """Transfer money until stopfile exists; print the commit count."""
    import random
    rng = random.Random(seed)
    os.set_blocking(notify_fd, False)
    con = st.connect(db, timeout=60)
    commits = 0
    while not os.path.exists(stopfile):
        a, b = rng.sample(range(1, ACCOUNTS + 1), 2)
        amount = rng.randrange(1, 100)
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE accounts SET balance = balance - ? WHERE id = ?",
                    (amount, a))
        con.execute("UPDATE accounts SET balance = balance + ? WHERE id = ?",
                    (amount, b))
        con.execute("UPDATE progress SET n = n + 1")
        con.execute("UPDATE filler SET data = randomblob(?) WHERE id = ?",
                    (FILLER_SIZE, rng.randrange(1, FILLER_ROWS + 1)))
        con.execute("COMMIT")
        commits += 1
        try:
            os.write(notify_fd, bytes([index]))
        except BlockingIOError:
            pass   # the pipe is full: the test is not waiting right now
    con.close()
    print(commits)


def make_db(db, mode):
    con = st.connect(db)
    con.execute(f"PRAGMA journal_mode={mode}")
    con.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, "
                "balance INTEGER NOT NULL)")
    con.execute("CREATE TABLE progress(n INTEGER NOT NULL)")
    con.execute("CREATE TABLE filler(id INTEGER PRIMARY KEY, data BLOB)")
    con.execute("BEGIN")
    con.executemany("INSERT INTO accounts VALUES(?, ?)",
                    [(i, START_BALANCE) for i in range(1, ACCOUNTS + 1)])
    con.execute("INSERT INTO progress VALUES(0)")
    con.executemany("INSERT INTO filler VALUES(?, randomblob(?))",
                    [(i, FILLER_SIZE) for i in range(1, FILLER_ROWS + 1)])
    con.execute("COMMIT")
    con.close()


def wait_for_commit(ctx, rfd, writers):
    """Drain the notify pipe, then block until one writer has reported two
    more commits: the second began after this call did.  Fails if every
    writer has died."""
    try:
        while os.read(rfd, 65536):
            pass
    except BlockingIOError:
        pass
    seen = [0] * len(writers)
    while True:
        ready, _, _ = select.select([rfd], [], [], 5.0)
        if ready:
            try:
                data = os.read(rfd, 65536)
            except BlockingIOError:
                continue
            for idx in data:
                seen[idx] += 1
                if seen[idx] >= 2:
                    return
        dead = [w for w in writers if w.poll() is not None]
        if len(dead) == len(writers):
            raise st.TestFailed("every writer exited: " + "; ".join(
                f"pid {w.pid} rc {w.returncode}" for w in dead))


def start_writers(ctx, db, stopfile):
    """WRITERS writer processes on db until stopfile exists; returns
    (writers, rfd), rfd the read end of the pipe they report commits on."""
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    writers = []
    for i in range(WRITERS):
        w = ctx.spawn([sys.executable, os.path.abspath(__file__), "--writer",
                       db, stopfile, str(wfd), str(i), str(ctx.seed + i)],
                      pass_fds=[wfd], stdout=st.subprocess.PIPE,
                      stderr=st.subprocess.PIPE, text=True)
        writers.append(w)
    os.close(wfd)
    return writers, rfd


def stop_writers(ctx, stopfile, writers, rfd, what):
    """Create stopfile and reap every writer: check that each one `what`
    (exited 0); closes rfd; the writers' commit counts."""
    with open(stopfile, "w"):
        pass
    commits = []
    for w in writers:
        try:
            out, err = w.communicate(timeout=120)
        except st.subprocess.TimeoutExpired:
            raise st.TestFailed(f"writer {w.pid} did not stop")
        ctx.check(f"writer {w.pid} {what}", w.returncode == 0,
                  f"rc {w.returncode}\n{err[-2000:]}")
        commits.append(int(out.strip() or 0) if w.returncode == 0 else 0)
    os.close(rfd)
    return commits


def body(ctx, mode):
    db = ctx.path("live.db")
    make_db(db, mode)
    ctx.require(f"live database is in {mode} mode", st.journal_mode(db) == mode)

    stopfile = ctx.path("stop")
    writers, rfd = start_writers(ctx, db, stopfile)

    names = []
    for i in range(CREATES):
        wait_for_commit(ctx, rfd, writers)
        names.append(ctx.create(db=db, label=f"load-{i}"))
    # One more commit after the last snapshot, so the writers were still
    # running when it was taken.
    wait_for_commit(ctx, rfd, writers)

    commits = stop_writers(ctx, stopfile, writers, rfd,
                           "exits 0 (no busy error beside snapctl)")
    print(f"# writers committed {commits} transactions during "
          f"{len(names)} snapshots")
    # (SQLite's busy handler is not fair: in rollback mode one writer may be
    # starved; what matters is that commits happened between snapshots,
    # which the commit counter in each snapshot proves below.)
    ctx.check("the writers made progress", sum(commits) >= 2 * len(names),
              str(commits))
    ctx.check("snapshot names are unique", len(set(names)) == len(names),
              str(names))

    con = st.connect(db)
    (total,) = con.execute("SELECT sum(balance) FROM accounts").fetchone()
    (final_n,) = con.execute("SELECT n FROM progress").fetchone()
    con.close()
    ctx.check(f"live total is still {TOTAL}", total == TOTAL, str(total))
    ctx.check("live commit counter == commits the writers reported",
              final_n == sum(commits),
              f"{final_n} vs {sum(commits)}")

    listed = {s["name"]: s for s in ctx.list(db=db)}
    last_n = -1
    exp = ctx.path("export.db")
    for i, name in enumerate(names):
        snap = listed.get(name)
        if not ctx.check(f"{name} is listed", snap is not None):
            continue
        ctx.check(f"{name}: kind manual, label load-{i}",
                  snap.get("kind") == "manual" and
                  snap.get("label") == f"load-{i}", str(snap))
        if st.check_export(ctx, snap, exp,
                           {"SELECT sum(balance) FROM accounts": TOTAL,
                            "SELECT count(*) FROM accounts": ACCOUNTS},
                           db=db):
            r = st.sqlite3_cli(exp, "SELECT n FROM progress")
            n = int(r.stdout.strip())
            ctx.check(f"{name}: commit counter {n} is after the previous "
                      f"snapshot's ({last_n}) and not after the end",
                      last_n < n <= final_n,
                      f"final {final_n}")
            last_n = n
        for f in (exp, exp + "-journal"):
            if os.path.exists(f):
                os.unlink(f)

    r = ctx.sc("verify", db=db, timeout=300)
    ctx.check("snapctl verify: the store is clean", r.returncode == 0,
              st.describe(r))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
               int(sys.argv[6]))
        sys.exit(0)
    if len(sys.argv) != 2 or sys.argv[1] not in ("delete", "wal"):
        print("usage: consistency_under_load.py delete|wal", file=sys.stderr)
        sys.exit(2)
    mode = sys.argv[1]
    st.main(f"consistency-under-load-{mode}", lambda ctx: body(ctx, mode))
