#!/usr/bin/env python3
"""
tests/integration/engine/snapctl_restore_outputs.py — what `snapctl
restore` prints, held to snapctl(1) ("restore: restored string (the
snapshot), database, safety, verified_pages"):

  * restore NAME --json: restored is the snapshot's name;
  * restore FILE --json, FILE a copy of a snapshot's image: restored is
    that snapshot (nothing is imported), file the path given;
  * restore FILE --json, FILE a new database: restored is the snapshot
    it was imported as (kind import), file the path given;
  * the text says the snapshot too: "restored FILE (snapshot NAME) into
    DB (safety snapshot: X)".
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest  # noqa: E402
from snaptest import connect, describe  # noqa: E402


def one_json(r):
    """The one JSON object on r's stdout, or {}."""
    try:
        v = json.loads(r.stdout)
        return v if isinstance(v, dict) and r.stdout.count("\n") == 1 else {}
    except ValueError:
        return {}


def body(ctx):
    db = ctx.path("app.db")
    con = connect(db)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t(v) VALUES (?)",
                    [("row %d" % i,) for i in range(200)])
    con.commit()
    con.close()
    name = ctx.create(db=db, label="one")
    # Changed since: the safety snapshots hold other bytes than "one".
    con = connect(db)
    con.execute("DELETE FROM t WHERE id < 50")
    con.commit()
    con.close()

    r = ctx.sc("restore", name, db=db, json_out=True)
    j = one_json(r)
    ctx.check("restore NAME --json: restored is the snapshot",
              r.returncode == 0 and j.get("restored") == name and
              j.get("database") == db and isinstance(j.get("safety"), str)
              and j.get("verified_pages") is True, describe(r))

    copy = ctx.path("copy.db")
    ctx.sc_ok("export", name, copy, db=db)
    before = len(ctx.list(db=db))
    r = ctx.sc("restore", copy, db=db, json_out=True)
    j = one_json(r)
    ctx.check("restore FILE --json of a snapshot's copy: restored is that "
              "snapshot, file the path", r.returncode == 0 and
              j.get("restored") == name and j.get("file") == copy,
              describe(r))
    kinds = [s["kind"] for s in ctx.list(db=db)]
    ctx.check("and only the safety snapshot was added",
              len(kinds) == before + 1 and kinds[-1] == "pre-restore", kinds)

    new = ctx.path("new.db")
    con = connect(new)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO t(v) VALUES ('new')")
    con.commit()
    con.close()
    r = ctx.sc("restore", new, db=db, json_out=True)
    j = one_json(r)
    imports = [s["name"] for s in ctx.list(db=db) if s["kind"] == "import"]
    ctx.check("restore FILE --json of a new database: restored is the "
              "snapshot it was imported as", r.returncode == 0 and
              len(imports) == 1 and j.get("restored") == imports[0] and
              j.get("file") == new, describe(r) + " imports: %r" % imports)

    r = ctx.sc("restore", copy, db=db)
    ctx.check("the text names the file and the snapshot",
              r.returncode == 0 and r.stdout.startswith(
                  "restored %s (snapshot %s) into %s (safety snapshot: "
                  % (copy, name, db)), describe(r))


if __name__ == "__main__":
    snaptest.main("snapctl_restore_outputs", body)
