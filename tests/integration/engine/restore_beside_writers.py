#!/usr/bin/env python3
"""
restore_beside_writers.py MODE — `snapctl restore` while other processes
keep writing to the live database (MODE: delete = rollback journal, wal).

The bank of consistency_under_load.py: three writers move money between
accounts (fixed total) and count their commits in progress(n), with busy
timeouts.  Snapshot S is taken first; the writers start; once one of them
has committed twice (pipe handshake) S is restored, 2 (rollback) or 8
(WAL) times, each time after new commits.  The restore must succeed beside the writers, and
the writers must go on without an error.  Afterwards:
  * integrity_check ok, the total unchanged, the journal mode kept;
  * the restores took effect: the commit counter is below S's counter plus
    every commit made (commits before each restore were undone);
  * every pre-restore safety snapshot, taken under load, exports as a
    standalone database with the right total.
(Restores in rollback mode under constant writes can take long: SQLite's
busy handler is not fair; the timeouts only bound a hang.)
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as st  # noqa: E402
import consistency_under_load as bank  # noqa: E402

# Rollback-mode restores wait long for the writers; WAL ones are quick.
RESTORES = {"delete": 2, "wal": 8}


def body(ctx, mode):
    restores = int(os.environ.get("SNAPFS_WRITERS_RESTORES",
                                  RESTORES[mode]))
    db = ctx.path("live.db")
    bank.make_db(db, mode)
    ctx.require(f"live database is in {mode} mode", st.journal_mode(db) == mode)
    snap = ctx.create(db=db, label="bank")
    con = st.connect(db)
    (n0,) = con.execute("SELECT n FROM progress").fetchone()
    con.close()

    stopfile = ctx.path("stop")
    writers, rfd = bank.start_writers(ctx, db, stopfile)

    for k in range(restores):
        bank.wait_for_commit(ctx, rfd, writers)
        r = ctx.sc("restore", snap, db=db, timeout=300)
        ctx.check(f"restore {k + 1} of {snap} beside "
                  "three writers exits 0", r.returncode == 0, st.describe(r))
    bank.wait_for_commit(ctx, rfd, writers)

    commits = bank.stop_writers(ctx, stopfile, writers, rfd,
                                "went on without an error")
    print(f"# writers committed {commits}; S's counter was {n0}")

    ctx.check("live integrity_check ok", st.integrity(db, writable=True) == "ok")
    ctx.check(f"live journal mode still {mode}", st.journal_mode(db) == mode)
    con = st.connect(db)
    (total,) = con.execute("SELECT sum(balance) FROM accounts").fetchone()
    (n,) = con.execute("SELECT n FROM progress").fetchone()
    con.close()
    ctx.check(f"the total is still {bank.TOTAL}", total == bank.TOTAL,
              str(total))
    ctx.check("the restores took effect (commits before them were undone)",
              n0 <= n <= n0 + sum(commits) - 2 * restores,
              f"counter {n}, S had {n0}, commits {sum(commits)}")

    safety = [s for s in ctx.list(db=db) if s["kind"] == "pre-restore"]
    ctx.check(f"{restores} safety snapshots listed", len(safety) == restores,
              str([s["name"] for s in safety]))
    exp = ctx.path("export.db")
    for s in safety:
        st.check_export(ctx, s, exp,
                        {"SELECT sum(balance) FROM accounts": bank.TOTAL},
                        db=db)
        if os.path.exists(exp):
            os.unlink(exp)
    r = ctx.sc("verify", db=db, timeout=300)
    ctx.check("the store verifies clean", r.returncode == 0, st.describe(r))


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("delete", "wal"):
        print("usage: restore_beside_writers.py delete|wal", file=sys.stderr)
        sys.exit(2)
    mode = sys.argv[1]
    st.main(f"restore-beside-writers-{mode}", lambda ctx: body(ctx, mode))
