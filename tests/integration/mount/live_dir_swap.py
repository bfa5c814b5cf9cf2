#!/usr/bin/env python3
"""
The live database's directory swapped under a running daemon
(engine/DESIGN.md §2, fs/DESIGN.md "Nothing is created wider"):
whoever may write its parent renames the directory away and puts their
own at its name, holding a file that is not a database at the live name.

  * a restore through the mount (cp of a snapshot onto current.db) fails,
    writes nothing into their directory (by name, the daemon made a new
    live file there, with the snapshot in it) and leaves their file as it
    was; the daemon says the directory was renamed or replaced;
  * the real database, moved with its directory, is unchanged;
  * once the real directory is back at its name, the same restore works.
"""

import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def body(ctx):
    d = ctx.path("app")
    os.makedirs(d)
    live = os.path.join(d, "app.db")
    mt.make_db(live, "original", rows=200)
    m = ctx.mount(live, store=ctx.path("store"))
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")
    snap = ctx.create(db=live, store=ctx.path("store"), label="a")
    src = os.path.join(mnt, "snapshots", snap)
    ctx.check("the snapshot shows in the mount", mt.poll(
        lambda: os.path.exists(src)), os.listdir(os.path.join(mnt,
                                                               "snapshots")))
    mt.sqlite3_cli(live, "DELETE FROM items WHERE id > 100")
    real_sha = mt.sha256(live)

    moved = ctx.path("app.moved")
    os.rename(d, moved)
    os.makedirs(d)
    with open(live, "wb") as f:
        f.write(b"their file, not a database\n")
    n_log = len(m.log)
    r = ctx.run(["cp", src, cur])
    ctx.check("cp of a snapshot onto current.db fails", r.returncode != 0,
              mt.describe(r))
    ctx.check("nothing was made in their directory",
              sorted(os.listdir(d)) == ["app.db"], os.listdir(d))
    with open(live, "rb") as f:
        ctx.check("their file is as it was",
                  f.read() == b"their file, not a database\n")
    ctx.check("the daemon says the directory was renamed or replaced",
              mt.poll(lambda: any("renamed or replaced" in line
                                  for line in m.log[n_log:])),
              "\n".join(m.log[n_log:]))
    ctx.check("the real database is unchanged",
              mt.sha256(os.path.join(moved, "app.db")) == real_sha)

    shutil.rmtree(d)
    os.rename(moved, d)
    r = ctx.run(["cp", src, cur])
    ctx.check("with the real directory back, the restore works",
              r.returncode == 0 and mt.count_rows(live) == 200,
              mt.describe(r))
    m.stop()


if __name__ == "__main__":
    mt.main("live_dir_swap", body, mount=True)
