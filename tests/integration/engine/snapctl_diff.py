#!/usr/bin/env python3
"""
tests/integration/engine/snapctl_diff.py — `snapctl diff`, `restore
--dry-run` and `restore --table` on a database with tables that have a
primary key (rowid and WITHOUT ROWID) and a table that has none.

A known history is made with exact counts per table, then:
  * diff A B (snapshot to live, snapshot to snapshot, live to snapshot,
    a state to itself) gives exactly those counts, by key where there is
    a key and "by whole-row comparison" (multisets: a duplicate row deleted
    and inserted again is no change) where there is not, created and
    dropped tables, and the schema change; exit 0 either way;
  * restore --dry-run prints the same as diff live NAME and changes
    nothing (content, snapshot count);
  * restore --table T restores exactly T (the other tables keep the live
    content), takes a pre-restore safety snapshot, reports the row counts,
    warns about new foreign-key violations, and refuses (exit 1, nothing
    changed, no safety snapshot) a table missing from the snapshot;
  * --dry-run and --table refuse a file (usage, exit 2).
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest  # noqa: E402
from snaptest import connect, describe  # noqa: E402


def make_history(path):
    """The first state (snapshot "before") and the changes after it; returns
    the expected diff from "before" to the changed state, by table."""
    con = connect(path)
    con.executescript("""
        CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT,
                              balance INTEGER);
        CREATE TABLE tags(k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
        CREATE TABLE log(msg TEXT, n INTEGER);
        CREATE TABLE gone(x);
        CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE child(id INTEGER PRIMARY KEY,
                           pid INTEGER REFERENCES parent(id));
        CREATE TABLE untouched(a, b);
    """)
    con.execute("BEGIN")
    for i in range(1, 101):
        con.execute("INSERT INTO accounts VALUES(?, ?, ?)",
                    (i, f"owner {i}", 1000 + i))
    for i in range(20):
        con.execute("INSERT INTO tags VALUES(?, ?)", (f"k{i:02d}", f"v{i}"))
    for i in range(30):
        con.execute("INSERT INTO log VALUES(?, ?)", (f"m{i}", i))
    con.execute("INSERT INTO log VALUES('dup', 7)")
    con.execute("INSERT INTO log VALUES('dup', 7)")
    for i in range(3):
        con.execute("INSERT INTO gone VALUES(?)", (i,))
    for i in range(1, 4):
        con.execute("INSERT INTO parent VALUES(?, ?)", (i, f"p{i}"))
        con.execute("INSERT INTO child VALUES(?, ?)", (i, i))
    for i in range(5):
        con.execute("INSERT INTO untouched VALUES(?, ?)", (i, "same"))
    con.execute("COMMIT")
    con.close()


def change(path):
    con = connect(path)
    con.execute("BEGIN")
    # accounts: 5 changed, 3 removed, 4 added.
    con.execute("UPDATE accounts SET balance = balance + 1 WHERE id <= 5")
    con.execute("DELETE FROM accounts WHERE id IN (10, 11, 12)")
    for i in range(4):
        con.execute("INSERT INTO accounts(owner, balance) VALUES(?, 0)",
                    (f"new {i}",))
    # tags (WITHOUT ROWID): 2 changed, 1 removed, 2 added.
    con.execute("UPDATE tags SET v = 'changed' WHERE k IN ('k00', 'k01')")
    con.execute("DELETE FROM tags WHERE k = 'k05'")
    con.execute("INSERT INTO tags VALUES('new-a', 'a'), ('new-b', 'b')")
    # log (no key): one copy of a duplicate removed and inserted again (no
    # change as a multiset), m3 removed, m5 changed (one removed, one
    # added), two new rows: 3 added, 2 removed.
    con.execute("DELETE FROM log WHERE rowid = (SELECT max(rowid) FROM log "
                "WHERE msg = 'dup')")
    con.execute("DELETE FROM log WHERE msg = 'm3'")
    con.execute("UPDATE log SET n = 55 WHERE msg = 'm5'")
    con.execute("INSERT INTO log VALUES('new1', 1), ('new2', 2), "
                "('dup', 7)")
    # A table dropped, one created.
    con.execute("DROP TABLE gone")
    con.execute("CREATE TABLE newtab(a)")
    con.execute("INSERT INTO newtab VALUES(1), (2)")
    # parent and child: one new row each, the child pointing at it.
    con.execute("INSERT INTO parent VALUES(4, 'p4')")
    con.execute("INSERT INTO child VALUES(4, 4)")
    con.execute("COMMIT")
    con.close()


# Expected diff from "before" to the changed state:
# table: (added, removed, changed, by_key, created, dropped)
EXPECT = {
    "accounts": (4, 3, 5, True, False, False),
    "tags": (2, 1, 2, True, False, False),
    "log": (3, 2, 0, False, False, False),
    "gone": (0, 3, 0, None, False, True),
    "newtab": (2, 0, 0, None, True, False),
    "parent": (1, 0, 0, True, False, False),
    "child": (1, 0, 0, True, False, False),
}


def reverse(expect):
    """The expected diff the other way round."""
    out = {}
    for t, (a, r, c, k, cr, dr) in expect.items():
        out[t] = (r, a, c, k, dr, cr)
    return out


def table_map(doc):
    return {t["table"]: t for t in doc["tables"]}


def check_diff_json(ctx, doc, expect, what):
    got = table_map(doc)
    ctx.check(f"{what}: exactly the tables that differ are listed",
              sorted(got) == sorted(expect),
              f"got {sorted(got)}, want {sorted(expect)}")
    for t, (a, r, c, k, cr, dr) in expect.items():
        g = got.get(t)
        if g is None:
            continue
        ok = (g["added"], g["removed"], g["changed"], g["created"],
              g["dropped"]) == (a, r, c, cr, dr)
        if k is not None:
            ok = ok and g["by_key"] == k
        ctx.check(f"{what}: {t}: {a} added, {r} removed, {c} changed"
                  f"{'' if k is None else ', by key' if k else ', by row'}"
                  f"{', created' if cr else ''}{', dropped' if dr else ''}", ok,
                  json.dumps(g))
    ctx.check(f"{what}: schema_changed", doc["schema_changed"] is True)


def rows(path, table):
    """A table's rows as a sorted list (a multiset; rowids not included)."""
    con = connect(path)
    try:
        return sorted(con.execute(f'SELECT * FROM "{table}"').fetchall(),
                      key=repr)
    finally:
        con.close()


def content(path):
    """Schema and every table's rows (as multisets), for "nothing changed"
    (snaptest.content_hash orders by rowid, which WITHOUT ROWID lacks)."""
    con = connect(path)
    try:
        schema = sorted(con.execute("SELECT type, name, tbl_name, sql FROM "
                                    "sqlite_master").fetchall(), key=repr)
        names = [n for (n,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY "
            "name").fetchall()]
    finally:
        con.close()
    return schema, {n: rows(path, n) for n in names}


def body(ctx):
    db = ctx.path("app.db")
    make_history(db)
    before = ctx.create(db=db, label="before")
    before_log = rows(db, "log")
    before_accounts = rows(db, "accounts")
    before_parent = rows(db, "parent")
    change(db)
    after = ctx.create(db=db, label="after")

    # ---- diff, JSON, every direction ----
    r = ctx.sc("diff", before, "live", "--json", db=db)
    ctx.require("diff BEFORE live --json exits 0", r.returncode == 0,
                describe(r))
    doc = json.loads(r.stdout)
    ctx.check("diff JSON names from and to",
              doc["from"] == before and doc["to"] == "live", r.stdout[:300])
    check_diff_json(ctx, doc, EXPECT, "diff before live")

    r = ctx.sc("diff", before, after, "--json", db=db)
    ctx.check("diff BEFORE AFTER exits 0", r.returncode == 0, describe(r))
    check_diff_json(ctx, json.loads(r.stdout), EXPECT, "diff before after")

    r = ctx.sc("diff", "current", before, "--json", db=db)
    ctx.check("diff current BEFORE exits 0", r.returncode == 0, describe(r))
    check_diff_json(ctx, json.loads(r.stdout), reverse(EXPECT),
                    "diff current before")

    for a, b in ((before, before), ("live", "current"), (after, "live")):
        r = ctx.sc("diff", a, b, "--json", db=db)
        ok = r.returncode == 0
        if ok:
            d = json.loads(r.stdout)
            ok = d["tables"] == [] and d["schema_changed"] is False
        ctx.check(f"diff {a} {b}: no differences, exit 0", ok, describe(r))
    r = ctx.sc("diff", after, "live", db=db)
    ctx.check("diff without differences says so (text), exit 0",
              r.returncode == 0 and "no differences" in r.stdout,
              describe(r))

    # ---- diff, text ----
    r = ctx.sc("diff", before, "live", db=db)
    ctx.check("diff (text) exits 0 with differences", r.returncode == 0,
              describe(r))
    out = r.stdout
    for pat in (r"^\s*accounts\s+4 added, 3 removed, 5 changed$",
                r"^\s*tags\s+2 added, 1 removed, 2 changed$",
                r"^\s*log\s+3 added, 2 removed \(by whole-row comparison\)$",
                r"^\s*newtab\s+created: 2 rows added$",
                r"^\s*gone\s+dropped: 3 rows removed$",
                r"^schema changed"):
        ctx.check(f"diff text has a line /{pat}/",
                  re.search(pat, out, re.M) is not None, out)
    ctx.check("an unchanged table is not listed", "untouched" not in out,
              out)

    r = ctx.sc("diff", before, "no-such-snapshot", db=db)
    ctx.check("diff with an unknown snapshot: exit 1, names it",
              r.returncode == 1 and r.stderr.startswith("snapctl: ") and
              "no-such-snapshot" in r.stderr, describe(r))
    r = ctx.sc("diff", before, db=db)
    ctx.check("diff with one argument: usage, exit 2", r.returncode == 2,
              describe(r))

    # ---- restore --dry-run ----
    n_before = len(ctx.list(db=db))
    h_before = content(db)
    r = ctx.sc("restore", before, "--dry-run", "--json", db=db)
    ctx.check("restore --dry-run --json exits 0", r.returncode == 0,
              describe(r))
    d = json.loads(r.stdout)
    ctx.check("dry-run JSON names the snapshot", d["dry_run"] is True and d["snapshot"] == before and
              d["refused"] is None,
              r.stdout[:300])
    check_diff_json(ctx, d, reverse(EXPECT), "restore --dry-run")
    r = ctx.sc("restore", before, "--dry-run", db=db)
    ctx.check("restore --dry-run (text) says what would change",
              r.returncode == 0 and "would change" in r.stdout and
              re.search(r"^\s*log\s+2 added, 3 removed \(by whole-row "
                        r"comparison\)$", r.stdout, re.M) and
              "nothing was changed" in r.stdout, describe(r))
    r = ctx.sc("restore", before, "--dry-run", "--table", "log", "--json",
                db=db)
    ok = r.returncode == 0
    if ok:
        d = json.loads(r.stdout)
        ok = [t["table"] for t in d["tables"]] == ["log"] and \
            (d["tables"][0]["added"], d["tables"][0]["removed"]) == (2, 3)
    ctx.check("restore --dry-run --table log: only log, 2 added, "
              "3 removed", ok, describe(r))
    r = ctx.sc("restore", before, "--dry-run", "--table", "newtab", db=db)
    ctx.check("restore --dry-run --table of a table not in the snapshot "
              "says it would be refused",
              r.returncode == 0 and "would be refused" in r.stdout, describe(r))
    ctx.check("the dry runs changed nothing in the live database",
              content(db) == h_before)
    ctx.check("the dry runs took no snapshot",
              len(ctx.list(db=db)) == n_before)

    # ---- restore --table on the table without a key ----
    live_tags = rows(db, "tags")
    live_accounts = rows(db, "accounts")
    live_newtab = rows(db, "newtab")
    r = ctx.sc("restore", before, "--table", "log", "--json", db=db)
    ctx.require("restore --table log exits 0", r.returncode == 0,
                describe(r))
    d = json.loads(r.stdout)
    ctx.check("restore --table log: 33 rows before, 32 after, no FK "
              "violations",
              d["table"] == "log" and d["rows_before"] == 33 and
              d["rows_after"] == 32 and d["fk_violations"] == 0, r.stdout)
    snaps = {s["name"]: s for s in ctx.list(db=db)}
    ctx.check("the safety snapshot exists, of kind pre-restore",
              d["safety"] in snaps and
              snaps[d["safety"]]["kind"] == "pre-restore",
              json.dumps(d))
    ctx.check("log holds exactly the snapshot's rows again",
              rows(db, "log") == before_log)
    ctx.check("the other tables keep their live content",
              rows(db, "tags") == live_tags and
              rows(db, "accounts") == live_accounts and
              rows(db, "newtab") == live_newtab)
    r = ctx.sc("diff", before, "live", "--json", db=db)
    exp = dict(EXPECT)
    del exp["log"]
    if ctx.check("diff after the table restore exits 0", r.returncode == 0,
                 describe(r)):
        check_diff_json(ctx, json.loads(r.stdout), exp,
                        "diff after restore --table log")
    r = ctx.sc("diff", d["safety"], "live", "--json", db=db)
    ok = r.returncode == 0 and \
        [t["table"] for t in json.loads(r.stdout)["tables"]] == ["log"]
    ctx.check("the safety snapshot differs from live in log only", ok,
              describe(r))

    # ---- restore --table on a rowid table (text output) ----
    r = ctx.sc("restore", before, "--table", "accounts", db=db)
    ctx.check("restore --table accounts prints the rows and the safety "
              "snapshot",
              r.returncode == 0 and
              re.search(r"restored table accounts .*: 100 rows \(101 "
                        r"before\)", r.stdout) and
              re.search(r"^safety snapshot: \S+_before-table-accounts\.db$",
                        r.stdout, re.M), describe(r))
    ctx.check("accounts holds the snapshot's rows again",
              rows(db, "accounts") == before_accounts)

    # ---- a new foreign-key violation is warned about ----
    r = ctx.sc("restore", before, "--table", "parent", db=db)
    ctx.check("restoring parent away from a child's row warns about the "
              "foreign-key violation",
              r.returncode == 0 and "warning" in r.stderr and
              "foreign-key" in r.stderr, describe(r))
    ctx.check("parent restored, child untouched (no cascade)",
              rows(db, "parent") == before_parent and
              len(rows(db, "child")) == 4)

    # ---- refusals ----
    n = len(ctx.list(db=db))
    h = content(db)
    r = ctx.sc("restore", before, "--table", "newtab", db=db)
    ctx.check("restore --table of a table not in the snapshot: exit 1, "
              "the engine's reason",
              r.returncode == 1 and r.stderr.startswith("snapctl: ") and
              "newtab" in r.stderr, describe(r))
    ctx.check("the refused table restore changed nothing and took no "
              "snapshot",
              content(db) == h and len(ctx.list(db=db)) == n)
    other = ctx.path("other.db")
    make_history(other)
    for opt in (["--dry-run"], ["--table", "log"]):
        r = ctx.sc("restore", other, *opt, db=db)
        ctx.check(f"restore FILE {' '.join(opt)}: usage error, exit 2",
                  r.returncode == 2 and "import" in r.stderr,
                  describe(r))
    ctx.check("the refused requests changed nothing",
              content(db) == h)


if __name__ == "__main__":
    snaptest.main("snapctl_diff", body)
