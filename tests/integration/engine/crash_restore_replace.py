#!/usr/bin/env python3
"""
crash_restore_replace.py — restore where the live database is missing or is
not a database (the engine writes a new file beside it and renames it into
place), killed with SIGKILL at random points.

Before each attempt the live file is removed, or replaced by text (alternately).
`snapctl restore S` is killed at a random point drawn from [0, 1.2 D], D
being the duration of the last restore that ran to the end (random delays
choose kill points; they wait for nothing).  After every attempt:
  * the live path is what it was (missing / the same text) or the restored
    database (content equal to S, integrity_check ok), nothing in between;
  * text that was replaced is kept beside it byte for byte ("nothing is
    lost"): its sha256 is that of some file in the directory.
At the end an uninterrupted restore works, and no temporary file of the
killed attempts (<db>.snapfs-restore-*) is left beside the live database.
"""

import glob
import hashlib
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as st  # noqa: E402

KILLS = int(os.environ.get("SNAPFS_REPLACE_KILLS", "10"))
ROWS = 8000


def remove_live(db):
    for side in ("", "-journal", "-wal", "-shm"):
        if os.path.exists(db + side):
            os.unlink(db + side)


def body(ctx):
    db = ctx.path("live.db")
    st.make_blob_db(db, "delete", ROWS, 1000, ctx.rng)
    snap_hash = st.content_hash(db)
    snap = ctx.create(db=db, label="good")

    remove_live(db)
    t0 = st.time.monotonic()
    ctx.sc_ok("restore", snap, db=db, timeout=300,
               what="restore into a missing live database exits 0")
    duration = st.time.monotonic() - t0
    ctx.require("the restored database has the snapshot's content",
                st.content_hash(db) == snap_hash)

    killed = attempts = 0
    seen = {}
    while killed < KILLS and attempts < 3 * KILLS:
        i = attempts
        attempts += 1
        remove_live(db)
        text = None
        if i % 2:
            text = (f"not a database, attempt {i}\n" * 200).encode()
            with open(db, "wb") as f:
                f.write(text)
        was = "text" if text else "missing"
        delay = ctx.rng.uniform(0, 1.2 * duration)
        p, out, err, was_killed, took = ctx.sc_kill_after(
            ["restore", snap], db, delay)
        if was_killed:
            killed += 1
        else:
            duration = took
        what = (f"attempt {i} (live {was}, " +
                (f"killed after {delay:.3f}s)" if was_killed else
                 f"finished, rc {p.returncode})"))
        if not was_killed:
            ctx.check(f"{what}: exit 0", p.returncode == 0,
                      f"stdout {out!r}\nstderr {err!r}")
        if not os.path.exists(db):
            state = "missing"
        else:
            with open(db, "rb") as f:
                head = f.read(16)
            if text is not None and head == text[:16]:
                with open(db, "rb") as f:
                    state = "text" if f.read() == text else "torn text"
            elif head == st.SQLITE_MAGIC:
                try:
                    ok = (st.content_hash(db) == snap_hash and
                          st.integrity(db, writable=True) == "ok")
                except st.sqlite3.DatabaseError:
                    ok = False
                state = "restored" if ok else "damaged database"
            else:
                state = "something else"
        seen[f"{was} -> {state}"] = seen.get(f"{was} -> {state}", 0) + 1
        allowed = {was, "restored"} if was_killed else {"restored"}
        ctx.check(f"{what}: live path is {state}", state in allowed,
                  f"allowed: {sorted(allowed)}")
        if text is not None and state == "restored":
            want = hashlib.sha256(text).hexdigest()
            kept = [f for f in os.listdir(ctx.dir)
                    if os.path.isfile(ctx.path(f)) and
                    st.sha256(ctx.path(f)) == want]
            ctx.check(f"{what}: the replaced text is kept "
                      "beside the database", kept != [], str(os.listdir(ctx.dir)))
            for f in kept:
                os.unlink(ctx.path(f))
    print(f"# {attempts} attempts, {killed} killed; outcomes {seen}")
    ctx.check(f"{KILLS} restores were killed", killed >= KILLS,
              f"{killed} in {attempts} attempts")

    remove_live(db)
    ctx.sc_ok("restore", snap, db=db, timeout=300,
               what="a final uninterrupted restore exits 0")
    ctx.check("the live database is the snapshot, intact",
              st.content_hash(db) == snap_hash and st.integrity(db, writable=True) == "ok")
    left = sorted(os.path.basename(f)
                  for f in glob.glob(db + ".snapfs-restore-*"))
    ctx.check("no temporary file of a killed restore is left "
              "beside the live database", left == [], "\n".join(left))
    r = ctx.sc("verify", db=db)
    ctx.check("the store verifies clean", r.returncode == 0, st.describe(r))


if __name__ == "__main__":
    st.main("crash-restore-replace", body)
