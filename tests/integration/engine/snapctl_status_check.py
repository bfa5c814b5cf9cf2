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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
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
    r = ctx.sc("status", *args, db=db)
    first = r.stdout.splitlines()[0] if r.stdout else ""
    if newest:
        pat = rf"^{want_state} - newest snapshot {re.escape(newest)} is " \
              r"\S+ old( \|.*)?$"
    else:
        pat = rf"^{want_state} - no snapshot"
    ctx.check(f"status {' '.join(args)}: exit {want_rc}, first line "
              f"\"{want_state} - ...\"",
              r.returncode == want_rc and re.match(pat, first), describe(r))


def body(ctx):
    db = ctx.path("app.db")
    make_db(db)

    # ---- no store yet ----
    freshness(ctx, db, ["--crit-age", "1h"], 2, "CRITICAL")
    r = ctx.sc("status", db=db)
    ctx.check("status without thresholds on a missing store: exit 1",
              r.returncode == 1 and r.stderr.startswith("snapctl: "),
              describe(r))

    # ---- a store without snapshots ----
    s0 = ctx.create(db=db, label="first")
    ctx.sc_ok("delete", s0, db=db, what="delete the only snapshot")
    freshness(ctx, db, ["--warn-age", "1h"], 2, "CRITICAL")
    r = ctx.sc("status", "--json", db=db)
    ok = r.returncode == 0
    doc = json.loads(r.stdout) if ok else {}
    ctx.check("status --json of an empty store: 0 snapshots, newest null",
              ok and doc.get("snapshots") == 0 and doc.get("newest") is None,
              describe(r))

    # ---- one fresh snapshot ----
    snap = ctx.create(db=db, label="fresh")
    r = ctx.sc("status", "--json", db=db)
    ctx.require("status --json exits 0", r.returncode == 0, describe(r))
    try:
        doc = json.loads(r.stdout)
    except ValueError as e:
        doc = {}
        ctx.check("status --json parses", False, f"{e}: {r.stdout[:500]}")
    ctx.check("status --json has every field", STATUS_FIELDS <= set(doc),
              f"missing {STATUS_FIELDS - set(doc)}")
    ctx.check("database and store are the absolute paths",
              doc.get("database") == os.path.realpath(db) and
              doc.get("store") == os.path.realpath(db) + ".snapfs", r.stdout[:300])
    status_database = doc.get("database")
    ctx.check("one snapshot, counted by kind (every kind present)",
              doc.get("snapshots") == 1 and
              set(doc.get("by_kind", {})) == KINDS and
              doc["by_kind"]["manual"] == 1,
              json.dumps(doc.get("by_kind")))
    newest = doc.get("newest") or {}
    ctx.check("newest names the snapshot, with its age",
              newest.get("name") == snap and newest.get("kind") == "manual"
              and isinstance(newest.get("age_seconds"), int) and
              newest["age_seconds"] >= 0, json.dumps(newest))
    ctx.check("sizes and the dedup ratio are numbers",
              isinstance(doc.get("dedup_ratio"), (int, float)) and
              doc.get("logical_bytes", 0) > 0 and
              doc.get("store_bytes", 0) > 0, r.stdout[:500])
    ctx.check("no schedule without a daemon",
              doc.get("next_snapshot") is None and
              doc.get("interval_seconds") is None)

    r = ctx.sc("status", "--prometheus", db=db)
    ctx.check("status --prometheus has the snapfs_* gauges",
              r.returncode == 0 and
              re.search(r'^snapfs_snapshots\{.*kind="manual".*\} 1$',
                        r.stdout, re.M) and
              "snapfs_newest_snapshot_age_seconds" in r.stdout, describe(r))
    r = ctx.sc("status", db=db)
    ctx.check("status (text) names the newest and counts by kind",
              r.returncode == 0 and snap in r.stdout and
              re.search(r"^snapshots:\s+1 \(manual 1\)$", r.stdout, re.M),
              describe(r))
    r = ctx.sc("status", "--json", "--prometheus", db=db)
    ctx.check("--json with --prometheus: usage error", r.returncode == 2,
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
    r = ctx.sc("status", "--json", "--crit-age", "0s", db=db)
    ok = r.returncode == 2
    doc = json.loads(r.stdout) if r.stdout else {}
    ctx.check("status --json --crit-age 0s: exit 2, freshness CRITICAL",
              ok and doc.get("freshness", {}).get("state") == "CRITICAL" and
              doc.get("snapshots") == 1,
              describe(r))
    r = ctx.sc("status", "--prometheus", "--warn-age", "0s", db=db)
    ctx.check("status --prometheus --warn-age 0s: exit 1, metrics intact",
              r.returncode == 1 and "snapfs_snapshots" in r.stdout,
              describe(r))
    r = ctx.sc("status", "--warn-age", "2h", "--crit-age", "1h", db=db)
    ctx.check("--warn-age longer than --crit-age: usage error, nothing on "
              "stdout",
              r.returncode == 2 and r.stdout == "" and
              "--warn-age" in r.stderr, describe(r))
    r = ctx.sc("status", "--warn-age", "soon", db=db)
    ctx.check("a bad duration: usage error", r.returncode == 2 and r.stdout == "" and
              "duration" in r.stderr,
              describe(r))

    # ---- check: healthy ----
    want = snaptest.content_hash(db)
    r = ctx.sc("check", db=db)
    ctx.check("check on a healthy database: exit 0, healthy",
              r.returncode == 0 and r.stdout.startswith("healthy"), describe(r))
    r = ctx.sc("check", "--json", db=db)
    ok = r.returncode == 0
    doc = json.loads(r.stdout) if ok else {}
    ctx.check("check --json: healthy",
              ok and doc.get("healthy") is True and
              doc.get("corrupt") is False, describe(r))
    # One name for one thing: the database is "database" in every output.
    ctx.check('check --json and status --json both name the database '
              '"database"',
              "db" not in doc and "db" not in json.loads(
                  ctx.sc("status", "--json", db=db).stdout) and
              doc.get("database") == status_database, r.stdout[:300])

    # ---- check: corrupt ----
    root = corrupt_table_root(db)
    print(f"# overwrote the header of page {root} (table t's root)")
    with open(db, "rb") as f:
        damaged = f.read()
    r = ctx.sc("check", db=db)
    ctx.check("check on a corrupt database: exit 1, corrupt, one error line",
              r.returncode == 1 and r.stdout.startswith("corrupt") and
              r.stderr.startswith("snapctl: ") and
              len(r.stderr.splitlines()) == 1,
              describe(r))
    rec = [s for s in ctx.list(db=db) if s["kind"] == "recovery"]
    ctx.check("the corrupt state is kept as a recovery snapshot, named",
              len(rec) == 1 and rec[0]["name"] in r.stdout,
              json.dumps(rec))
    with open(db, "rb") as f:
        ctx.check("check without --recover leaves the live file as it was",
                  f.read() == damaged)
    r = ctx.sc("check", "--json", db=db)
    doc = json.loads(r.stdout) if r.stdout else {}
    ctx.check("check --json: exit 1, corrupt, the problem and the recovery "
              "snapshot",
              r.returncode == 1 and doc.get("corrupt") is True and
              doc.get("recovery_snapshot") and doc.get("problem"), describe(r))

    # ---- check --recover ----
    r = ctx.sc("check", "--recover", "--json", db=db)
    doc = json.loads(r.stdout) if r.stdout else {}
    ctx.check("check --recover: exit 0, restored the manual snapshot",
              r.returncode == 0 and doc.get("recovered") is True and
              doc.get("restored_from") == snap,
              describe(r))
    ctx.check("the live database has the snapshot's content again",
              snaptest.content_hash(db) == want and
              snaptest.integrity(db, writable=True) == "ok")
    r = ctx.sc("check", db=db)
    ctx.check("a check after the recovery: healthy, exit 0",
              r.returncode == 0 and r.stdout.startswith("healthy"), describe(r))
    r = ctx.sc("status", "--json", db=db)
    doc = json.loads(r.stdout) if r.returncode == 0 else {}
    ctx.check("status shows the check, the restore and the recovery "
              "snapshots",
              (doc.get("last_check") or {}).get("ok") is True and
              (doc.get("last_restore") or {}).get("ok") is True and
              doc.get("by_kind", {}).get("recovery", 0) >= 1, describe(r))


if __name__ == "__main__":
    snaptest.main("snapctl_status_check", body)
