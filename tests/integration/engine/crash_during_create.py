#!/usr/bin/env python3
"""
crash_during_create.py — `snapctl create` killed with SIGKILL at random
points never leaves a partial snapshot or a damaged store.

The live database holds ~DB_MB MB of random (incompressible) blobs, so a
snapshot takes long enough to be killed in the middle; before each attempt
a fifth of the rows is rewritten, so every attempt stores new pages.  Kill
points are drawn uniformly from [0, 1.2 D], D being the duration of the
last create that ran to the end (the random delays choose kill points, they
do not wait for anything); attempts go on until KILLS creates were killed
before publishing their snapshot.

After every attempt:
  * the snapshot count grew by one when create finished (exit 0 and its
    name listed), and by at most one when it was killed (a kill after the
    commit leaves a complete snapshot);
  * a new snapshot, if any, verifies clean (`snapctl verify NAME`);
  * the next attempt can take a snapshot again (no stale lock).
At the end: `snapctl verify` of the whole store is clean, every listed
snapshot exports and passes integrity_check with the row count it must
have, and deleting every snapshot reclaims every stored page (a killed
create leaked nothing).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as st  # noqa: E402

DB_MB = int(os.environ.get("SNAPFS_CRASH_DB_MB", "24"))
KILLS = int(os.environ.get("SNAPFS_CRASH_KILLS", "20"))
BLOB = 1000
ROWS = DB_MB * 1000


def body(ctx):
    db = ctx.path("live.db")
    st.make_blob_db(db, "delete", ROWS, BLOB, ctx.rng)
    print(f"# live database: {os.path.getsize(db)} bytes")

    t0 = st.time.monotonic()
    first = ctx.create(db=db, label="base")
    duration = st.time.monotonic() - t0
    print(f"# an uninterrupted create took {duration:.3f}s; kill points "
          f"are drawn from [0, {1.2 * duration:.3f}s]")

    listed = ctx.list(db=db)
    ctx.require("the store lists exactly the first snapshot",
                [s["name"] for s in listed] == [first],
                str([s["name"] for s in listed]))

    # Attempts go on until KILLS of them were killed before their snapshot
    # was published (at most 3 * KILLS attempts).  The kill window follows
    # the duration of the last create that ran to the end.
    killed = completed = late = attempts = 0
    while killed - late < KILLS and attempts < 3 * KILLS:
        i = attempts
        attempts += 1
        st.mutate_blob_db(db, 0.2, i + 1, ctx.rng)
        before = [s["name"] for s in ctx.list(db=db)]
        delay = ctx.rng.uniform(0, 1.2 * duration)
        p, out, err, was_killed, took = ctx.sc_kill_after(
            ["create", "--label", f"k{i}"], db, delay)
        if not was_killed:
            duration = took
        after = [s["name"] for s in ctx.list(db=db)]
        new = [n for n in after if n not in before]
        ctx.check(f"attempt {i}: every earlier snapshot is still listed",
                  all(n in after for n in before),
                  f"before {before}\nafter {after}")
        if was_killed:
            killed += 1
            late += len(new)
            ctx.check(f"attempt {i}: killed after {delay:.3f}s, "
                      f"{len(new)} new snapshot(s) (0 or 1)",
                      len(new) <= 1, str(new))
        else:
            completed += 1
            name = out.strip().splitlines()[-1].strip() if out.strip() else ""
            ctx.check(f"attempt {i}: finished before the kill point: exit 0 "
                      "and exactly its snapshot is new",
                      p.returncode == 0 and new == [name],
                      f"rc {p.returncode} stdout {out!r} stderr {err!r}\n"
                      f"new {new}")
        for n in new:
            r = ctx.sc("verify", n, db=db)
            ctx.check(f"attempt {i}: {n} verifies clean", r.returncode == 0,
                      st.describe(r))
        if i % 5 == 4:
            r = ctx.sc("verify", db=db, timeout=300)
            ctx.check(f"after attempt {i}: the whole store verifies clean",
                      r.returncode == 0,
                      st.describe(r))
    print(f"# {attempts} attempts: {killed} killed ({late} of them after "
          f"the snapshot was published), {completed} finished first")
    ctx.check(f"{KILLS} creates were killed before publishing (the test "
              "means something)",
              killed - late >= KILLS, f"killed {killed}, late {late}")

    # The next snapshot after all of that works.
    st.mutate_blob_db(db, 0.2, KILLS + 1, ctx.rng)
    ctx.create(db=db, label="after")

    r = ctx.sc("verify", "--full", db=db, timeout=600)
    ctx.check("snapctl verify --full: the store is clean", r.returncode == 0,
              st.describe(r))
    snaps = ctx.list(db=db)
    exp = ctx.path("export.db")
    for s in snaps:
        st.check_export(ctx, s, exp, {"SELECT count(*) FROM t": ROWS}, db=db)
        if os.path.exists(exp):
            os.unlink(exp)

    # Deleting every snapshot must reclaim every page: nothing a killed
    # create wrote survives unreferenced.
    for s in snaps:
        r = ctx.sc("delete", s["name"], db=db)
        ctx.check(f"delete {s['name']} exits 0", r.returncode == 0,
                  st.describe(r))
    ctx.check("no snapshot is left", ctx.list(db=db) == [])
    store_db = db + ".snapfs/store.db"
    con = st.connect(store_db)
    pages = con.execute("SELECT count(*) FROM pages").fetchone()[0]
    data = con.execute("SELECT count(*) FROM page_data").fetchone()[0]
    ok = con.execute("PRAGMA integrity_check").fetchone()[0]
    con.close()
    ctx.check("store.db passes integrity_check", ok == "ok", ok)
    ctx.check("with no snapshot left the store holds no pages (no leak "
              "from killed creates)",
              pages == 0 and data == 0, f"pages {pages}, page_data {data}")


if __name__ == "__main__":
    st.main("crash-during-create", body)
