#!/usr/bin/env python3
"""
tests/integration/engine/snapctl_prune.py — `snapctl prune`: the dry run
says what would go and why and deletes nothing; the real run deletes
exactly that; manual and pinned snapshots are kept.

Snapshots that retention may prune are of kind auto or pre-restore; with
no daemon here, restores make the pre-restore ones.  The store holds, oldest
first: M (manual), then P1..P4 (pre-restore), P2 pinned.  With --keep last:2
the candidates are P1, P3, P4 (pinned ones are not candidates), so:
  P4 keep "last 1/2", P3 keep "last 2/2", P2 keep "pinned",
  P1 prune "no rule keeps it", M keep "manual: never pruned automatically",
one line each, newest first.  --max-size (dry run) gives "over max_size".
Usage errors (exit 2): no policy, a bad rule, a bad size, an option of
another command.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest  # noqa: E402
from snaptest import describe  # noqa: E402


def names(ctx, db):
    return [s["name"] for s in ctx.list(db=db)]


def body(ctx):
    db = ctx.path("app.db")
    con = snaptest.connect(db)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO t(v) VALUES('one'), ('two')")
    con.close()
    m = ctx.create(db=db, label="keepme")
    pre = []
    for i in range(4):
        con = snaptest.connect(db)
        con.execute("INSERT INTO t(v) VALUES(?)", (f"change {i}",))
        con.close()
        r = ctx.sc_ok("restore", m, "--json", db=db,
                       what=f"restore {i + 1} exits 0")
        pre.append(json.loads(r.stdout)["safety"])
    p1, p2, p3, p4 = pre
    ctx.sc_ok("pin", p2, db=db, what="pin P2")
    snaps = {s["name"]: s for s in ctx.list(db=db)}
    ctx.require("the store holds one manual and four pre-restore snapshots",
                all(snaps[p]["kind"] == "pre-restore" for p in pre) and
                snaps[m]["kind"] == "manual",
                json.dumps(snaps, indent=1))
    all_before = names(ctx, db)

    # ---- usage errors ----
    for args, what in ((["prune"], "no policy"),
                       (["prune", "--dry-run"], "--dry-run, no policy"),
                       (["prune", "--keep", "last:0"], "a policy that "
                        "keeps everything"),
                       (["prune", "--keep", "sometimes:3"], "an unknown rule"),
                       (["prune", "--keep", "last:x"], "a bad count"),
                       (["prune", "--max-size", "lots"], "a bad size"),
                       (["prune", "--keep", "last:1", "--full"],
                        "an option of verify")):
        r = ctx.sc(*args, db=db)
        ctx.check(f"prune with {what}: usage error, exit 2", r.returncode == 2 and r.stderr.startswith("snapctl: ") and
                  r.stdout == "",
                  describe(r))
    r = ctx.sc("prune", "--keep", "last:0,daily:0", db=db)
    ctx.check("prune --keep with every rule 0: the message says so (not "
              "that no policy was given)", r.returncode == 2 and
              "prune --keep last:0,daily:0: every rule is 0 (off)" in
              r.stderr and "needs a retention policy" not in r.stderr,
              describe(r))
    r = ctx.sc("prune", db=db)
    ctx.check("the usage error explains that a policy is needed",
              "policy" in r.stderr and "--keep" in r.stderr, r.stderr)
    ctx.check("usage errors deleted nothing", names(ctx, db) == all_before)

    # ---- dry run, text ----
    expect = [("keep", p4, "last 1/2"), ("keep", p3, "last 2/2"),
              ("keep", p2, "pinned"), ("would prune", p1, "no rule keeps it"),
              ("keep", m, "manual: never pruned automatically")]
    r = ctx.sc("prune", "--keep", "last:2", "--dry-run", db=db)
    ctx.check("prune --keep last:2 --dry-run exits 0", r.returncode == 0,
              describe(r))
    lines = r.stdout.splitlines()
    got = []
    for line in lines[:-1]:
        mo = re.match(r"^(keep|would prune)\s+(\S+)\s+(.*)$", line)
        got.append(mo.groups() if mo else (line,))
    ctx.check("one line per snapshot, newest first, with "
              "the rule that keeps it or why it goes", got == expect,
              f"got {got}\nwant {expect}")
    ctx.check("then a summary line",
              len(lines) == 6 and "would prune 1 of 5" in lines[-1] and
              "nothing was deleted" in lines[-1], r.stdout)
    ctx.check("the dry run deleted nothing", names(ctx, db) == all_before)

    # ---- dry run, JSON ----
    r = ctx.sc("prune", "--keep", "last:2", "--dry-run", "--json", db=db)
    ok = r.returncode == 0
    doc = json.loads(r.stdout) if ok else []
    ctx.check("--json: an array of {name, kind, created, keep, reason}, "
              "newest first",
              ok and [(d["name"], d["keep"], d["reason"]) for d in doc] ==
              [(n, a == "keep", why) for a, n, why in expect] and
              all(set(d) >= {"name", "kind", "created", "keep", "reason"}
                  for d in doc), describe(r))
    ctx.check("the JSON dry run deleted nothing",
              names(ctx, db) == all_before)

    # ---- max-size, dry run ----
    r = ctx.sc("prune", "--max-size", "1", "--dry-run", "--json", db=db)
    ok = r.returncode == 0
    doc = {d["name"]: d for d in json.loads(r.stdout)} if ok else {}
    ctx.check("prune --max-size 1 --dry-run: some go \"over max_size\", "
              "manual and pinned stay",
              ok and any(not d["keep"] and "max_size" in d["reason"]
                         for d in doc.values()) and
              doc[m]["keep"] and doc[p2]["keep"], describe(r))
    ctx.check("the max-size dry run deleted nothing",
              names(ctx, db) == all_before)

    # ---- the real run deletes exactly what the dry run said ----
    r = ctx.sc("prune", "--keep", "last:2", db=db)
    ctx.check("prune --keep last:2 exits 0 and says it pruned P1",
              r.returncode == 0 and
              re.search(rf"^prune\s+{re.escape(p1)}\s+no rule keeps it$",
                        r.stdout, re.M) and
              "pruned 1 of 5" in r.stdout,
              describe(r))
    after = names(ctx, db)
    ctx.check("exactly P1 was deleted; manual, pinned and the two newest "
              "remain",
              after == [n for n in all_before if n != p1], f"before {all_before}\nafter {after}")
    ev = json.loads(ctx.sc_ok("log", "--json", db=db).stdout)
    ctx.check("the deletion is in the event history", any(e["kind"] == "delete" and e["snapshot"] == p1
                  for e in ev))
    r = ctx.sc("prune", "--keep", "last:2", db=db)
    ctx.check("a second run prunes nothing",
              r.returncode == 0 and "pruned 0 of 4" in r.stdout and
              names(ctx, db) == after, describe(r))
    ctx.check("the live database is intact",
              snaptest.integrity(db, writable=True) == "ok")


if __name__ == "__main__":
    snaptest.main("snapctl_prune", body)
