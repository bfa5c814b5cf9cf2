#!/usr/bin/env python3
"""
Schedules, health checks and the failure hook on a real mount (issue 4,
items 1, 4, 5 and 7, the daemon side):

  * -o every=1s: a change made with sqlite3 on the real path becomes an
    automatic snapshot (kind auto) that snapshots/ lists; status.json shows
    next_snapshot and interval_seconds;
  * no change across several intervals (next_snapshot seen advancing past
    two more intervals): no new automatic snapshot;
  * -o check=1s,auto_recover with the live database corrupted on purpose:
    a recovery snapshot appears and the live database passes
    integrity_check again, with the last good snapshot's content;
  * -o on_failure=CMD runs CMD, with the event in its environment, when a
    check fails;
  * -o keep=last:2,daily:3 (commas inside -o) and keep=last:2+daily:3 are
    accepted; bad values of every option are refused before mounting.

Waits are bounded polls (no fixed sleeps).
"""

import json
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

POLL = 20   # seconds a bounded poll may take


def poll(fn, timeout=POLL):
    """fn() until truthy or timeout; returns its last value."""
    return mt.poll(fn, timeout)


def status(mnt):
    with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
        return json.load(f)


def listing(ctx, db):
    r = ctx.run([ctx.snapctl, "--db", db, "list", "--json"], timeout=60)
    if r.returncode != 0:
        raise mt.TestFailed("snapctl list: " + r.stderr)
    return json.loads(r.stdout)


def by_kind(ctx, db, kind):
    return [s for s in listing(ctx, db) if s["kind"] == kind]


def corrupt(path):
    """Overwrite the b-tree header of the table's root and leaf pages."""
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(16)
        ps = int.from_bytes(f.read(2), "big")
        ps = 65536 if ps == 1 else ps
        for pg in range(2, size // ps + 1):
            f.seek((pg - 1) * ps)
            f.write(b"\xff" * 12)
        f.flush()
        os.fsync(f.fileno())


def schedule_part(ctx):
    live = ctx.path("sched.db")
    mt.make_db(live, "sched")
    mnt = ctx.path("mnt-sched")
    # The comma form of keep= inside one -o string.
    m = ctx.mount(live, mnt, options=["every=1s,keep=last:50,daily:3"])
    st = status(mnt)
    ctx.check("status.json shows next_snapshot and interval_seconds",
              st.get("interval_seconds") == 1 and
              isinstance(st.get("next_snapshot"), str), st)

    # The first due tick takes one (nothing watched before the mount);
    # wait for it so that what follows counts from a quiet state.
    poll(lambda: by_kind(ctx, live, "auto"))
    before = len(by_kind(ctx, live, "auto"))

    db = sqlite3.connect(live)
    db.execute("INSERT INTO items(tag, body) VALUES('sched', 'changed')")
    db.commit()
    db.close()
    want = mt.dump(live)

    seen = poll(lambda: len(by_kind(ctx, live, "auto")) > before)
    autos = by_kind(ctx, live, "auto")
    ctx.check("a change on the real path becomes an automatic snapshot",
              seen, autos)
    newest = autos[-1]["name"] if autos else None
    ctx.check("snapshots/ lists it",
              newest is not None and
              poll(lambda: newest in mt.snapshots(mnt)),
              mt.snapshots(mnt))
    ctx.check("it is of kind auto, label auto",
              bool(autos) and autos[-1]["kind"] == "auto" and
              autos[-1]["label"] == "auto", autos[-1:])
    if newest:
        ctx.check("it holds the change",
                  mt.dump(os.path.join(mnt, "snapshots", newest)) == want)

    # No change: several intervals pass (seen through next_snapshot) and
    # nothing new is kept.
    count = len(listing(ctx, live))
    n0 = status(mnt)["next_snapshot"]
    n1 = poll(lambda: status(mnt)["next_snapshot"] > n0 and
              status(mnt)["next_snapshot"])
    n2 = n1 and poll(lambda: status(mnt)["next_snapshot"] > n1 and
                     status(mnt)["next_snapshot"])
    n3 = n2 and poll(lambda: status(mnt)["next_snapshot"] > n2 and
                     status(mnt)["next_snapshot"])
    ctx.check("next_snapshot advances with the intervals",
              bool(n1 and n2 and n3), (n0, n1, n2, n3))
    ctx.check("no change across several intervals: no new snapshot",
              len(listing(ctx, live)) == count,
              [s["name"] for s in listing(ctx, live)])
    m.stop()


def check_part(ctx):
    live = ctx.path("health.db")
    mt.make_db(live, "health", rows=400)
    mnt = ctx.path("mnt-health")
    hook_out = ctx.path("hook.out")
    hook = ("echo \"$SNAPFS_EVENT|$SNAPFS_DB|$SNAPFS_STORE|$SNAPFS_TIME|"
            "$SNAPFS_DETAIL\" >> " + hook_out)
    m = ctx.mount(live, mnt, options=["check=1s", "auto_recover",
                                      "on_failure=" + hook.replace(
                                          ",", "\\,")])
    # The last good snapshot.
    good = os.path.join(mnt, "snapshots", "good")
    open(good, "w").close()
    good_rows = mt.dump(live)
    goods = [s for s in listing(ctx, live) if s["label"] == "good"]
    ctx.require("a manual snapshot taken through the mount", goods)

    corrupt(live)
    rec = poll(lambda: by_kind(ctx, live, "recovery"))
    ctx.check("the check keeps the corrupt state as a recovery snapshot",
              bool(rec), listing(ctx, live))

    def healed():
        try:
            return mt.integrity(live) == "ok"
        except sqlite3.DatabaseError:
            return False
    ctx.check("auto_recover: the live database passes integrity_check",
              poll(healed))
    ctx.check("it has the last good snapshot's content",
              healed() and mt.dump(live) == good_rows)
    ctx.check("status.json records the check",
              status(mnt).get("last_check") is not None, status(mnt))

    ctx.check("on_failure ran for the failed check",
              poll(lambda: os.path.exists(hook_out) and
                   "check|" in open(hook_out).read()),
              open(hook_out).read() if os.path.exists(hook_out) else
              "no output")
    if os.path.exists(hook_out):
        line = [l for l in open(hook_out).read().splitlines()
                if l.startswith("check|")][:1]
        parts = line[0].split("|") if line else []
        ctx.check("with SNAPFS_DB, SNAPFS_STORE, SNAPFS_TIME set",
                  len(parts) >= 5 and parts[1] == os.path.realpath(live)
                  and parts[2] and parts[3], line)
    m.stop()


def refused_part(ctx):
    live = ctx.path("opts.db")
    mt.make_db(live, "opts")
    mnt = ctx.path("mnt-opts")
    os.makedirs(mnt, exist_ok=True)
    bad = [("every=soon", "every=soon"), ("every=0s", "every=0s"),
           ("every=1m,keep=last:x", "keep="),
           ("every=1m,keep=fortnightly:2", "keep="),
           ("every=1m,max_size=lots", "max_size=lots"),
           ("check=-5s", "check="), ("verify=1y", "verify="),
           ("auto_recover", "auto_recover needs check"),
           ("keep=last:3", "need every"),
           ("on_failure=", "on_failure")]
    for opt, needle in bad:
        r = ctx.run([ctx.snapfs, "-f", "-o", opt, live, mnt], timeout=60)
        ctx.check("-o %s refused with a message" % opt,
                  r.returncode != 0 and needle in r.stderr and
                  not mt.is_mounted(mnt), r.stderr)
    m = ctx.mount(live, mnt, options=["every=1h", "keep=last:2+daily:3",
                                      "max_size=10M", "verify=1h",
                                      "check=1h"])
    ctx.check("keep= joined by '+' with max_size, verify, check: mounted",
              mt.is_mounted(mnt))
    m.stop()
    r = ctx.run([ctx.snapfs, "-h"])
    ctx.check("snapfs -h documents the options",
              all(w in r.stdout for w in ("every=", "keep=", "max_size=",
                                          "check=", "auto_recover",
                                          "verify=", "on_failure=")))


def retention_part(ctx):
    """every=1s,keep=last:2: after each automatic snapshot at most two stay;
    a manual snapshot (touch) is never pruned."""
    live = ctx.path("keep.db")
    mt.make_db(live, "keep")
    mnt = ctx.path("mnt-keep")
    m = ctx.mount(live, mnt, options=["every=1s,keep=last:2"])
    poll(lambda: by_kind(ctx, live, "auto"))
    open(os.path.join(mnt, "snapshots", "hand-made"), "w").close()
    seen = []
    for i in range(4):
        names = {s["name"] for s in by_kind(ctx, live, "auto")}
        db = sqlite3.connect(live)
        db.execute("INSERT INTO items(tag, body) VALUES('keep', ?)",
                   (f"change {i}",))
        db.commit()
        db.close()
        new = poll(lambda: [s["name"] for s in by_kind(ctx, live, "auto")
                            if s["name"] not in names])
        seen += new or []
    autos = [s["name"] for s in by_kind(ctx, live, "auto")]
    ctx.check("each change became an automatic snapshot", len(seen) >= 4,
              seen)
    ctx.check("keep=last:2 leaves the two newest automatic snapshots",
              len(autos) <= 2 and all(n in autos for n in seen[-2:]),
              (autos, seen))
    ctx.check("the older ones were pruned",
              not any(n in autos for n in seen[:-2]), (autos, seen))
    ctx.check("the manual snapshot is never pruned automatically",
              any(s["label"] == "hand-made" for s in listing(ctx, live)))
    m.stop()


def scrub_part(ctx):
    """verify=1s: stored snapshots are verified in the background; the last
    full pass shows in status.json."""
    live = ctx.path("scrub.db")
    mt.make_db(live, "scrub")
    for label in ("one", "two"):
        r = ctx.run([ctx.snapctl, "--db", live, "create", "--label", label])
        ctx.require(f"snapctl create {label}", r.returncode == 0, r.stderr)
    mnt = ctx.path("mnt-scrub")
    m = ctx.mount(live, mnt, options=["verify=1s"])
    st = poll(lambda: status(mnt).get("last_full_scrub") and status(mnt))
    ctx.check("a full scrub pass shows in status.json", bool(st),
              status(mnt))
    ctx.check("and the last verification passed",
              bool(st) and (st.get("last_verify") or {}).get("ok") is True,
              st)
    m.stop()


def body(ctx):
    if not ctx.snapctl:
        raise mt.TestFailed("$SNAPCTL is not set")
    refused_part(ctx)
    schedule_part(ctx)
    check_part(ctx)
    retention_part(ctx)
    scrub_part(ctx)


if __name__ == "__main__":
    mt.main("schedule", body, mount=True)
