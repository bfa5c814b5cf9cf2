#!/usr/bin/env python3
"""
crash_during_restore.py MODE — `snapctl restore NAME` killed with SIGKILL at
random points leaves the live database exactly as it was or exactly as
restored, never torn, and in its journal mode (MODE: delete = rollback
journal, wal, wal-pagesize).

Two snapshots, A and B, of a ~DB_MB MB database that differ in half their
rows.  In wal-pagesize, the live database is WAL with 8 KiB pages (A) and B
is an imported file with 4 KiB pages, so every restore takes the engine's
path for a WAL database whose page size differs from the image's (leave
WAL, copy, return to WAL: engine/PITFALLS.md 10).  Each attempt restores the
state the live database is not in, and is killed at a random point drawn
uniformly from [0, 1.2 D], D being the duration of the last restore that ran to
the end (the random delays choose kill points; they do not wait for anything);
attempts go on until KILLS restores were killed.

After every attempt, opening the live database as an application would
(which rolls back a hot journal):
  * its content (schema and every row) equals the state before the attempt
    or the restored state; equal to the restored one when restore exited 0;
  * integrity_check is ok, the journal mode is still the live database's
    and the page size is the state's;
  * at most one snapshot was added, a pre-restore one, and it verifies
    clean; one was added whenever the live database changed; every fifth
    attempt the whole store verifies clean (--full at the end).
Then one more restore runs to the end, proving nothing was left locked.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as st  # noqa: E402

DB_MB = int(os.environ.get("SNAPFS_CRASH_DB_MB", "12"))
KILLS = int(os.environ.get("SNAPFS_CRASH_KILLS", "20"))
BLOB = 1000
ROWS = DB_MB * 1000


def body(ctx, mode):
    db = ctx.path("live.db")
    live_mode = "wal" if mode == "wal-pagesize" else mode
    if mode == "wal-pagesize":
        # A: the live database, WAL, 8 KiB pages; B: another file with
        # 4 KiB pages, imported.  Every restore changes the page size.
        st.make_blob_db(db, "wal", ROWS, BLOB, ctx.rng, page_size=8192)
        hash_a = st.content_hash(db)
        snap_a = ctx.create(db=db, label="state-a")
        other = ctx.path("b.db")
        st.make_blob_db(other, "delete", ROWS, BLOB, ctx.rng, page_size=4096)
        hash_b = st.content_hash(other)
        r = ctx.sc_ok("import", other, "--label", "state-b", db=db,
                       what="import of the 4 KiB-page state B exits 0")
        snap_b = r.stdout.strip().splitlines()[-1]
        sizes = {hash_a: 8192, hash_b: 4096}
        first = snap_b
    else:
        st.make_blob_db(db, mode, ROWS, BLOB, ctx.rng)
        hash_a = st.content_hash(db)
        snap_a = ctx.create(db=db, label="state-a")
        st.mutate_blob_db(db, 0.5, 1, ctx.rng)
        hash_b = st.content_hash(db)
        snap_b = ctx.create(db=db, label="state-b")
        sizes = {hash_a: 4096, hash_b: 4096}
        first = snap_a
    ctx.require(f"live database is in {live_mode} mode",
                st.journal_mode(db) == live_mode)
    ctx.require("states A and B differ", hash_a != hash_b)
    states = {hash_a: ("A", snap_a), hash_b: ("B", snap_b)}
    print(f"# live database: {os.path.getsize(db)} bytes; A = {snap_a}, "
          f"B = {snap_b}")

    # An uninterrupted restore measures the duration.
    t0 = st.time.monotonic()
    ctx.sc_ok("restore", first, db=db, timeout=300,
               what=f"uninterrupted restore of {first} exits 0")
    duration = st.time.monotonic() - t0
    current = hash_a if first == snap_a else hash_b
    ctx.require("after an uninterrupted restore the live database is "
                f"{states[current][0]}",
                st.content_hash(db) == current)
    ctx.require(f"after an uninterrupted restore it is still in {live_mode} "
                "mode",
                st.journal_mode(db) == live_mode)
    print(f"# an uninterrupted restore took {duration:.3f}s; kill points "
          f"are drawn from [0, {1.2 * duration:.3f}s]")

    # Attempts go on until KILLS restores were killed (at most 3 * KILLS
    # attempts); the kill window follows the last uninterrupted restore.
    killed = completed = attempts = left_out_of_mode = 0
    phases = {}
    while killed < KILLS and attempts < 3 * KILLS:
        i = attempts
        attempts += 1
        target = hash_b if current == hash_a else hash_a
        tname, tsnap = states[target]
        cname = states[current][0]
        delay = ctx.rng.uniform(0, 1.2 * duration)
        before = [x["name"] for x in ctx.list(db=db)]
        p, out, err, was_killed, took = ctx.sc_kill_after(
            ["restore", tsnap], db, delay)
        if was_killed:
            killed += 1
        else:
            completed += 1
            duration = took
        what = (f"attempt {i} ({cname} -> {tname}, "
                + (f"killed after {delay:.3f}s)" if was_killed else
                   f"finished, rc {p.returncode})"))
        if not was_killed:
            ctx.check(f"{what}: exit 0", p.returncode == 0,
                      f"stdout {out!r}\nstderr {err!r}")
        # A hot journal left by a kill in the middle of the copy (rollback
        # mode); opening the database below rolls it back.
        hot = (os.path.exists(db + "-journal") and
               os.path.getsize(db + "-journal") > 0)
        try:
            now = st.content_hash(db)
        except st.sqlite3.DatabaseError as e:
            now = f"unreadable: {e}"
        if was_killed or p.returncode != 0:
            ok = ctx.check(f"{what}: live content is the old or the "
                           "restored state",
                           now in (current, target), f"content hash {now}")
        else:
            ok = ctx.check(f"{what}: live content is the "
                           "restored state", now == target)
        ic = st.integrity(db, writable=True)
        ctx.check(f"{what}: live integrity_check ok", ic == "ok", ic)
        # A restore across page sizes takes a WAL database out of WAL
        # mode for the copy (engine/PITFALLS.md 10); killed before it switched
        # back, the database is intact in rollback mode and the next snapfs
        # command that opens the store for writing (here: verify; the
        # commands that only read never touch the live database) switches
        # it back.
        interim = st.journal_mode(db)
        if interim != live_mode:
            left_out_of_mode += 1
        ctx.sc("verify", "latest", db=db, timeout=300)
        after = ctx.list(db=db)
        jm = st.journal_mode(db)
        ctx.require(f"{what}: live journal mode still "
                    f"{live_mode} after the next snapctl command", jm == live_mode,
                    f"now {jm}")
        if now in sizes:
            ps = st.page_size(db)
            ctx.check(f"{what}: page size {ps} is the "
                      f"state's ({sizes[now]})", ps == sizes[now])
        new = [x for x in after if x["name"] not in before]
        ctx.check(f"{what}: at most one new snapshot, a pre-restore one",
                  len(new) <= 1 and all(x["kind"] == "pre-restore"
                                        for x in new),
                  str(new))
        if ok and now == target:
            ctx.check(f"{what}: the live database changed, "
                      "so a safety snapshot was taken first", len(new) == 1, str(new))
        if ok:
            phase = ("restored" if now == target and now != current else
                     "mid-copy, hot journal rolled back" if hot else
                     "after safety snapshot, old state" if new else
                     "before safety snapshot")
            phases[phase] = phases.get(phase, 0) + 1
            print(f"#   live database is now {states[now][0]} ({phase})")
            current = now
        else:
            raise st.TestFailed("the live database is torn")
        for x in new:
            r = ctx.sc("verify", x["name"], db=db, timeout=300)
            ctx.check(f"{what}: the safety snapshot "
                      f"{x['name']} verifies clean", r.returncode == 0, st.describe(r))
        if i % 5 == 4:
            r = ctx.sc("verify", db=db, timeout=300)
            ctx.check(f"{what}: the whole store "
                      "verifies clean", r.returncode == 0, st.describe(r))
    print(f"# {attempts} attempts: {killed} restores killed, {completed} "
          "finished first; "
          f"outcomes: {phases}")
    if left_out_of_mode:
        print(f"# {left_out_of_mode} kills left the live database out of "
              f"{live_mode} mode until the next snapctl command")
        r = ctx.sc("log", "--json", db=db)
        recovered = (r.returncode == 0 and
                     sum(1 for e in st.json.loads(r.stdout)
                         if e.get("kind") == "recover" and e.get("ok")))
        ctx.check("each switch back is recorded as a 'recover' event",
                  recovered >= left_out_of_mode,
                  f"{recovered} recover events, {left_out_of_mode} needed")
    ctx.check(f"{KILLS} restores were killed (the test "
              "means something)", killed >= KILLS, f"killed {killed} in {attempts} attempts")

    names = [s["name"] for s in ctx.list(db=db)]
    ctx.check("A and B are still listed", snap_a in names and snap_b in names,
              str(names))
    target = hash_b if current == hash_a else hash_a
    ctx.sc_ok("restore", states[target][1], db=db, timeout=300,
               what="a final uninterrupted restore exits 0")
    ctx.check("after the final restore the live database is the target",
              st.content_hash(db) == target)
    ctx.check(f"journal mode still {live_mode}",
              st.journal_mode(db) == live_mode)
    r = ctx.sc("verify", "--full", db=db, timeout=600)
    ctx.check("snapctl verify --full: the store is clean", r.returncode == 0,
              st.describe(r))


if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in ("delete", "wal",
                                                  "wal-pagesize"):
        print("usage: crash_during_restore.py delete|wal|wal-pagesize",
              file=sys.stderr)
        sys.exit(2)
    mode = sys.argv[1]
    st.main(f"crash-during-restore-{mode}", lambda ctx: body(ctx, mode))
