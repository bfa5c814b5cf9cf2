#!/usr/bin/env python3
"""
tests/integration/engine/snapctl_status_check.py — `snapctl status` for
people and monitors, and `snapctl check` on a healthy and on a corrupted
live database.

status:
  * --json parses (Python's json) and has the engine's fields;
    --prometheus has the snapfs_* gauges; the text names the newest;
  * the freshness check's exit codes, made deterministic without sleeping
    or backdating: a snapshot just taken is less than an hour old, and a
    threshold of 0s is always reached (ages are compared with >=), so
      --warn-age 1h              -> 0 OK
      --warn-age 0s              -> 1 WARNING
      --crit-age 0s              -> 2 CRITICAL
      --warn-age 0s --crit-age 1h -> 1;  --warn-age 1h --crit-age 2h -> 0
      no store / an empty store  -> 2 CRITICAL ("no snapshot")
    with the first line "OK|WARNING|CRITICAL - newest snapshot NAME is AGE
    old"; --warn-age longer than --crit-age is a usage error (stdout
    empty, so a monitor can tell it from CRITICAL).
check:
  * healthy: exit 0;
  * after page 2 (the root of a table) is overwritten: exit 1, "corrupt",
    a snapshot of kind recovery kept, the live file untouched by check;
  * --recover: exit 0, the manual snapshot restored (its content back),
    and then a plain check is healthy again; status shows the check and
    the restore.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snaptest  # noqa: E402
from snaptest import describe  # noqa: E402

STATUS_FIELDS = {"database", "store", "snapshots", "by_kind", "newest",
                 "store_bytes", "logical_bytes", "file_bytes", "dedup_ratio",
                 "last_restore", "last_check", "last_verify",
                 "last_full_scrub", "next_snapshot", "interval_seconds",
                 "last_full_scrub_ns", "next_snapshot_ns"}
KINDS = {"manual", "auto", "pre-restore", "import", "conflict", "recovery"}


def make_db(path):
    con = snaptest.connect(path)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("CREATE INDEX t_v ON t(v)")
    con.execute("BEGIN")
    for i in range(3000):
        con.execute("INSERT INTO t(v) VALUES(?)", (f"row {i} " + "x" * 60,))
    con.execute("COMMIT")
    con.close()


def corrupt_table_root(path):
    """Overwrite the b-tree page header of table t's root page."""
    con = snaptest.connect(path)
    (root,) = con.execute("SELECT rootpage FROM sqlite_master WHERE "
                          "name = 't'").fetchone()
    (psize,) = con.execute("PRAGMA page_size").fetchone()
    con.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * psize)
        f.write(b"\xee" * 64)
    return root


def freshness(ctx, db, args, want_rc, want_state, newest=None):
    r = ctx.run("status", *args, db=db)
    first = r.stdout.splitlines()[0] if r.stdout else ""
    if newest:
        pat = rf"^{want_state} - newest snapshot {re.escape(newest)} is " \
              r"\S+ old( \|.*)?$"
    else:
        pat = rf"^{want_state} - no snapshot"
    ctx.check(r.returncode == want_rc and re.match(pat, first),
              f"status {' '.join(args)}: exit {want_rc}, first line "
              f"\"{want_state} - ...\"", describe(r))


def body(ctx):
    db = ctx.path("app.db")
    make_db(db)

    # ---- no store yet ----
    freshness(ctx, db, ["--crit-age", "1h"], 2, "CRITICAL")
    r = ctx.run("status", db=db)
    ctx.check(r.returncode == 1 and r.stderr.startswith("snapctl: "),
              "status without thresholds on a missing store: exit 1",
              describe(r))

    # ---- a store without snapshots ----
    s0 = ctx.create(db=db, label="first")
    ctx.ok_run("delete", s0, db=db, what="delete the only snapshot")
    freshness(ctx, db, ["--warn-age", "1h"], 2, "CRITICAL")
    r = ctx.run("status", "--json", db=db)
    ok = r.returncode == 0
    doc = json.loads(r.stdout) if ok else {}
    ctx.check(ok and doc.get("snapshots") == 0 and doc.get("newest") is None,
              "status --json of an empty store: 0 snapshots, newest null",
              describe(r))

    # ---- one fresh snapshot ----
    snap = ctx.create(db=db, label="fresh")
    r = ctx.run("status", "--json", db=db)
    ctx.require(r.returncode == 0, "status --json exits 0", describe(r))
    try:
        doc = json.loads(r.stdout)
    except ValueError as e:
        doc = {}
        ctx.check(False, "status --json parses", f"{e}: {r.stdout[:500]}")
    ctx.check(STATUS_FIELDS <= set(doc), "status --json has every field",
              f"missing {STATUS_FIELDS - set(doc)}")
    ctx.check(doc.get("database") == os.path.realpath(db) and
              doc.get("store") == os.path.realpath(db) + ".snapfs",
              "database and store are the absolute paths", r.stdout[:300])
    status_database = doc.get("database")
    ctx.check(doc.get("snapshots") == 1 and
              set(doc.get("by_kind", {})) == KINDS and
              doc["by_kind"]["manual"] == 1,
              "one snapshot, counted by kind (every kind present)",
              json.dumps(doc.get("by_kind")))
    newest = doc.get("newest") or {}
    ctx.check(newest.get("name") == snap and newest.get("kind") == "manual"
              and isinstance(newest.get("age_seconds"), int) and
              newest["age_seconds"] >= 0,
              "newest names the snapshot, with its age", json.dumps(newest))
    ctx.check(isinstance(doc.get("dedup_ratio"), (int, float)) and
              doc.get("logical_bytes", 0) > 0 and
              doc.get("store_bytes", 0) > 0,
              "sizes and the dedup ratio are numbers", r.stdout[:500])
    ctx.check(doc.get("next_snapshot") is None and
              doc.get("interval_seconds") is None,
              "no schedule without a daemon")

    r = ctx.run("status", "--prometheus", db=db)
    ctx.check(r.returncode == 0 and
              re.search(r'^snapfs_snapshots\{.*kind="manual".*\} 1$',
                        r.stdout, re.M) and
              "snapfs_newest_snapshot_age_seconds" in r.stdout,
              "status --prometheus has the snapfs_* gauges", describe(r))
    r = ctx.run("status", db=db)
    ctx.check(r.returncode == 0 and snap in r.stdout and
              re.search(r"^snapshots:\s+1 \(manual 1\)$", r.stdout, re.M),
              "status (text) names the newest and counts by kind",
              describe(r))
    r = ctx.run("status", "--json", "--prometheus", db=db)
    ctx.check(r.returncode == 2, "--json with --prometheus: usage error",
              describe(r))

    # ---- freshness ----
    freshness(ctx, db, ["--warn-age", "1h"], 0, "OK", snap)
    freshness(ctx, db, ["--warn-age", "0s"], 1, "WARNING", snap)
    freshness(ctx, db, ["--crit-age", "0s"], 2, "CRITICAL", snap)
    freshness(ctx, db, ["--warn-age", "0s", "--crit-age", "1h"], 1,
              "WARNING", snap)
    freshness(ctx, db, ["--warn-age", "1h", "--crit-age", "2h"], 0, "OK",
              snap)
    freshness(ctx, db, ["--warn-age", "0s", "--crit-age", "0s"], 2,
              "CRITICAL", snap)
    r = ctx.run("status", "--json", "--crit-age", "0s", db=db)
    ok = r.returncode == 2
    doc = json.loads(r.stdout) if r.stdout else {}
    ctx.check(ok and doc.get("freshness", {}).get("state") == "CRITICAL" and
              doc.get("snapshots") == 1,
              "status --json --crit-age 0s: exit 2, freshness CRITICAL",
              describe(r))
    r = ctx.run("status", "--prometheus", "--warn-age", "0s", db=db)
    ctx.check(r.returncode == 1 and "snapfs_snapshots" in r.stdout,
              "status --prometheus --warn-age 0s: exit 1, metrics intact",
              describe(r))
    r = ctx.run("status", "--warn-age", "2h", "--crit-age", "1h", db=db)
    ctx.check(r.returncode == 2 and r.stdout == "" and
              "--warn-age" in r.stderr,
              "--warn-age longer than --crit-age: usage error, nothing on "
              "stdout", describe(r))
    r = ctx.run("status", "--warn-age", "soon", db=db)
    ctx.check(r.returncode == 2 and r.stdout == "" and
              "duration" in r.stderr, "a bad duration: usage error",
              describe(r))

    # ---- check: healthy ----
    want = snaptest.content_hash(db)
    r = ctx.run("check", db=db)
    ctx.check(r.returncode == 0 and r.stdout.startswith("healthy"),
              "check on a healthy database: exit 0, healthy", describe(r))
    r = ctx.run("check", "--json", db=db)
    ok = r.returncode == 0
    doc = json.loads(r.stdout) if ok else {}
    ctx.check(ok and doc.get("healthy") is True and
              doc.get("corrupt") is False,
              "check --json: healthy", describe(r))
    # One name for one thing: the database is "database" in every output.
    ctx.check("db" not in doc and "db" not in json.loads(
                  ctx.run("status", "--json", db=db).stdout) and
              doc.get("database") == status_database,
              'check --json and status --json both name the database '
              '"database"', r.stdout[:300])

    # ---- check: corrupt ----
    root = corrupt_table_root(db)
    print(f"# overwrote the header of page {root} (table t's root)")
    with open(db, "rb") as f:
        damaged = f.read()
    r = ctx.run("check", db=db)
    ctx.check(r.returncode == 1 and r.stdout.startswith("corrupt") and
              r.stderr.startswith("snapctl: ") and
              len(r.stderr.splitlines()) == 1,
              "check on a corrupt database: exit 1, corrupt, one error line",
              describe(r))
    rec = [s for s in ctx.list(db=db) if s["kind"] == "recovery"]
    ctx.check(len(rec) == 1 and rec[0]["name"] in r.stdout,
              "the corrupt state is kept as a recovery snapshot, named",
              json.dumps(rec))
    with open(db, "rb") as f:
        ctx.check(f.read() == damaged,
                  "check without --recover leaves the live file as it was")
    r = ctx.run("check", "--json", db=db)
    doc = json.loads(r.stdout) if r.stdout else {}
    ctx.check(r.returncode == 1 and doc.get("corrupt") is True and
              doc.get("recovery_snapshot") and doc.get("problem"),
              "check --json: exit 1, corrupt, the problem and the recovery "
              "snapshot", describe(r))

    # ---- check --recover ----
    r = ctx.run("check", "--recover", "--json", db=db)
    doc = json.loads(r.stdout) if r.stdout else {}
    ctx.check(r.returncode == 0 and doc.get("recovered") is True and
              doc.get("restored_from") == snap,
              "check --recover: exit 0, restored the manual snapshot",
              describe(r))
    ctx.check(snaptest.content_hash(db) == want and
              snaptest.integrity(db) == "ok",
              "the live database has the snapshot's content again")
    r = ctx.run("check", db=db)
    ctx.check(r.returncode == 0 and r.stdout.startswith("healthy"),
              "a check after the recovery: healthy, exit 0", describe(r))
    r = ctx.run("status", "--json", db=db)
    doc = json.loads(r.stdout) if r.returncode == 0 else {}
    ctx.check((doc.get("last_check") or {}).get("ok") is True and
              (doc.get("last_restore") or {}).get("ok") is True and
              doc.get("by_kind", {}).get("recovery", 0) >= 1,
              "status shows the check, the restore and the recovery "
              "snapshots", describe(r))


if __name__ == "__main__":
    snaptest.main("snapctl_status_check", body)
