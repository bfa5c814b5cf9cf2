#!/usr/bin/env python3
"""
A restore across page sizes into a WAL database takes the live database out
of WAL mode for the copy and leaves the marker live-was-wal in the store
until it switches back (engine/PITFALLS.md 10).  When such a restore is killed, the
next program that opens the store for work finishes it: snapctl (the engine
crash test 'crash during restore (wal, page size change)') and, here, the
daemon when it mounts.  The store itself does not (it sits below restore,
engine/snapfs.h), so this guards the daemon's own call.

The interrupted state is set up as the restore leaves it: the marker in the
store and the live database in rollback mode.  After the mount, before any
snapctl runs, the live database is back in WAL mode, the marker is gone and
the daemon recorded a successful "recover" event; the content is unchanged.
"""

import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def journal_mode(path):
    """The live database's journal mode, read without changing it."""
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        db.close()


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "base", rows=40)
    db = sqlite3.connect(live)
    db.execute("PRAGMA journal_mode=WAL")
    db.close()
    r = ctx.run([ctx.snapctl, "--db", live, "create"])
    ctx.require("snapctl create", r.returncode == 0, r.stderr)
    before = mt.dump(live)

    # What a restore killed between leaving WAL and returning to it leaves.
    marker = live + ".snapfs/live-was-wal"
    os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(live)
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    ctx.require("the live database is out of WAL mode",
                journal_mode(live) == "delete", journal_mode(live))

    m = ctx.mount(live)
    ctx.check("the daemon switched the live database back to WAL mode",
              journal_mode(live) == "wal", journal_mode(live))
    ctx.check("and removed the marker", not os.path.exists(marker))
    ctx.check("the content is unchanged", mt.dump(live) == before)
    m.stop()
    r = ctx.run([ctx.snapctl, "--db", live, "--json", "log"])
    ctx.require("snapctl log", r.returncode == 0, r.stderr)
    recovers = [e for e in json.loads(r.stdout) if e["kind"] == "recover"]
    ctx.check("the daemon recorded one successful recover event",
              len(recovers) == 1 and recovers[0]["ok"] is True, r.stdout)


if __name__ == "__main__":
    mt.main("recover_on_mount", body, mount=True)
