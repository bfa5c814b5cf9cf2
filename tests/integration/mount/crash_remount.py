#!/usr/bin/env python3
"""
SIGKILL of the daemon in the middle of a snapshot and of a restore, lazy
unmount, remount (issue 3, "What must hold"):

After every kill and remount:
  * `snapctl verify --full` of the store is clean (run beside the new
    daemon);
  * the live database passes integrity_check and holds one of the two
    states it may hold (before or after the restore that was killed);
  * every listed snapshot opens through the mount and passes
    integrity_check; a killed snapshot is either complete or absent;
  * the staging directory holds nothing a killed daemon left.
At the end a clean unmount and remount shows the same snapshots, names and
contents.

The live database holds random (incompressible) blobs so that a snapshot
and a restore take long enough to be killed in the middle; kill points are
drawn from [0, 1.2 D], D being the duration of the same operation run to
the end (the random delays choose kill points, they wait for nothing).
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

DB_MB = int(os.environ.get("SNAPFS_CRASH_DB_MB", "16"))
KILLS = int(os.environ.get("SNAPFS_CRASH_KILLS", "4"))


def make_blobs(path, tag, rng, mb):
    if os.path.exists(path):
        os.unlink(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE blobs(id INTEGER PRIMARY KEY, tag TEXT, "
               "data BLOB)")
    for i in range(mb * 1000):
        db.execute("INSERT INTO blobs(tag, data) VALUES(?, ?)",
                   (tag, rng.randbytes(1000)))
    db.commit()
    db.close()


def tag_of(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=120)
    try:
        return db.execute("SELECT DISTINCT tag FROM blobs").fetchall()
    finally:
        db.close()


def body(ctx):
    live = ctx.path("app.db")
    make_blobs(live, "original", ctx.rng, DB_MB)
    other = ctx.path("other.db")
    make_blobs(other, "other", ctx.rng, DB_MB)
    staging = ctx.path("app.db.snapfs", "staging")
    m = ctx.mount(live)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")
    cur = os.path.join(mnt, "current.db")

    def after_crash(what, states):
        """Lazily unmount what the killed daemon left; remount; check."""
        ctx.check("%s: the dead mount is gone after fusermount3 -uz" % what,
                  not mt.is_mounted(mnt))
        nonlocal m
        m = ctx.mount(live)
        ctx.check("%s: the staging directory was emptied" % what,
                  os.listdir(staging) == [], os.listdir(staging))
        r = ctx.run([ctx.snapctl, "--db", live, "verify", "--full"])
        ctx.check("%s: snapctl verify --full is clean" % what,
                  r.returncode == 0, r.stdout + r.stderr)
        ctx.check("%s: the live database passes integrity_check" % what,
                  mt.integrity(live) == "ok")
        t = tag_of(live)
        ctx.check("%s: the live database holds one whole state (%s)"
                  % (what, t), t in states, t)
        bad = []
        for n in mt.snapshots(mnt):
            p = os.path.join(sd, n)
            try:
                if mt.integrity(p, immutable=True) != "ok":
                    bad.append(n)
            except sqlite3.Error as e:
                bad.append("%s: %s" % (n, e))
        ctx.check("%s: every listed snapshot opens and is intact" % what,
                  not bad, bad)

    # An uninterrupted snapshot, to size the kill window.
    t0 = time.monotonic()
    r = ctx.run(["touch", os.path.join(sd, "base")])
    d_snap = time.monotonic() - t0
    ctx.require("touch snapshots/base", r.returncode == 0, r.stderr)
    print("# a snapshot took %.3fs" % d_snap)

    # Kill during snapshots, until KILLS kills landed while one was taken.
    in_flight = attempts = 0
    while in_flight < KILLS and attempts < 3 * KILLS:
        i = attempts
        attempts += 1
        # Change a fifth of the rows, so each snapshot stores new pages.
        db = sqlite3.connect(live)
        db.execute("UPDATE blobs SET data = randomblob(1000) "
                   "WHERE id % 5 = ?", (i % 5,))
        db.commit()
        db.close()
        before = len(mt.snapshots(mnt))
        toucher = ctx.spawn(["touch", os.path.join(sd, "crash-%d" % i)],
                            stderr=subprocess.DEVNULL)
        time.sleep(ctx.rng.uniform(0, 1.2 * d_snap))   # a kill point
        m.kill()
        in_flight += toucher.wait(timeout=60) != 0
        after_crash("snapshot kill %d" % i, [[("original",)]])
        n = len(mt.snapshots(mnt))
        ctx.check("snapshot kill %d: the snapshot is whole or absent "
                  "(%d -> %d)" % (i, before, n), n in (before, before + 1))
    ctx.check("%d of %d kills landed while a snapshot was being taken"
              % (in_flight, attempts), in_flight > 0)

    # An uninterrupted restore, to size the kill window.
    t0 = time.monotonic()
    r = ctx.run(["cp", other, cur])
    d_rest = time.monotonic() - t0
    ctx.require("cp other.db current.db", r.returncode == 0, r.stderr)
    ctx.require("the restore worked", tag_of(live) == [("other",)])
    print("# a restore took %.3fs" % d_rest)
    base = [n for n in mt.snapshots(mnt) if n.endswith("_base.db")][0]

    # Kill during restores, each towards the other state, until KILLS
    # kills landed while a restore was running.
    in_flight = attempts = switched = 0
    while in_flight < KILLS and attempts < 3 * KILLS:
        i = attempts
        attempts += 1
        state = tag_of(live)
        if state == [("other",)]:
            argv = ["mv", os.path.join(sd, base), cur]
            target = [("original",)]
        else:
            argv = ["cp", other, cur]
            target = [("other",)]
        p = ctx.spawn(argv, stderr=subprocess.DEVNULL)
        time.sleep(ctx.rng.uniform(0, 1.2 * d_rest))   # a kill point
        m.kill()
        in_flight += p.wait(timeout=60) != 0
        after_crash("restore kill %d" % i, [state, target])
        switched += tag_of(live) == target
        ctx.check("restore kill %d: the source snapshot is still listed" % i,
                  base in mt.snapshots(mnt))
    print("# %d restores of %d ended in the new state" % (switched, attempts))
    ctx.check("%d of %d kills landed while a restore was running"
              % (in_flight, attempts), in_flight > 0)

    # A clean unmount and remount shows the same snapshots and contents.
    before = {n: mt.xattr(os.path.join(sd, n), "sha256")
              for n in mt.snapshots(mnt)}
    m.stop()
    m = ctx.mount(live)
    after = {n: mt.xattr(os.path.join(sd, n), "sha256")
             for n in mt.snapshots(mnt)}
    ctx.check("a remount shows the same snapshots, names and hashes",
              before == after)
    sample = sorted(after)[:3]
    ctx.check("and the same contents (sha256sum of %d snapshots)"
              % len(sample), all(mt.sha256(os.path.join(sd, n)) == after[n]
                                 for n in sample))
    m.stop()


if __name__ == "__main__":
    mt.main("crash_remount", body, mount=True)
