#!/usr/bin/env python3
"""
A snapshot in the trash restored onto the live database (fs/DESIGN.md §4,
§5): a desktop user who trashed a snapshot and then finds it was the good
one drags it from the trash into restore/ (or onto current.db).  As a move
from snapshots/ does, the rename restores that snapshot, verified and after
a pre-restore safety snapshot, and the snapshot stays where it was: in the
trash, with its info file, until it is put back or the trash is emptied.
(The rename was EPERM, and nothing but a copy out of the trash could
restore it.)

  * `mv .Trash-0/files/X restore/` and `gio move .Trash-0/files/X
    restore/`: the live database equals X, one pre-restore snapshot, X
    still in the trash, restore/ empty, the restore logged with X's name;
  * `mv .Trash-0/files/X current.db`: the same;
  * a name in files/ that holds no snapshot fails, an info file moved
    into restore/ is EPERM, and the rename back
    into snapshots/ is still the trash's Restore (X back unchanged).
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def body(ctx):
    if shutil.which("gio") is None:
        mt.skip("gio is not installed")
    live = ctx.path("app.db")
    mt.make_db(live, "good", rows=40)
    m = ctx.mount(live)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")
    rd = os.path.join(mnt, "restore")
    files = os.path.join(mnt, ".Trash-0", "files")

    subprocess.run(["touch", os.path.join(sd, "good")], check=True)
    good = [n for n in os.listdir(sd) if n.endswith("_good.db")]
    ctx.require("touch snapshots/good takes a snapshot", len(good) == 1,
                os.listdir(sd))
    good = good[0]
    expect = mt.dump(os.path.join(sd, good))
    sha = mt.sha256(os.path.join(sd, good))
    r = ctx.run(["gio", "trash", os.path.join(sd, good)])
    ctx.require("gio trash snapshots/X succeeds", r.returncode == 0,
                mt.describe(r))
    ctx.require("X waits in .Trash-0/files/", os.listdir(files) == [good],
                os.listdir(files))

    def pre_restores():
        return sum(1 for k in mt.kinds(mnt).values() if k == "pre-restore")

    def spoil(tag):
        con = mt.connect(live)
        con.execute("DELETE FROM items")
        con.execute("INSERT INTO items(tag, body) VALUES(?, 'bad')", (tag,))
        con.close()

    gestures = [
        ("mv .Trash-0/files/X restore/", ["mv", os.path.join(files, good),
                                          rd + "/"]),
        ("gio move .Trash-0/files/X restore/",
         ["gio", "move", os.path.join(files, good), rd + "/"]),
        ("mv .Trash-0/files/X current.db",
         ["mv", "-f", os.path.join(files, good),
          os.path.join(mnt, "current.db")]),
    ]
    for what, argv in gestures:
        spoil(what)
        before = pre_restores()
        r = ctx.run(argv)
        ctx.check("%s exits 0" % what, r.returncode == 0, mt.describe(r))
        ctx.check("%s: the live database equals the trashed snapshot" % what,
                  mt.dump(live) == expect)
        ctx.check("%s: the live database passes integrity_check" % what,
                  mt.integrity(live) == "ok")
        ctx.check("%s: one pre-restore snapshot" % what,
                  pre_restores() == before + 1, mt.kinds(mnt))
        ctx.check("%s: the snapshot stays in the trash" % what,
                  os.listdir(files) == [good] and
                  mt.sha256(os.path.join(files, good)) == sha,
                  os.listdir(files))
        ctx.check("%s: its info file stays" % what,
                  os.listdir(os.path.join(mnt, ".Trash-0", "info")) ==
                  [good + ".trashinfo"])
        ctx.check("%s: not back in snapshots/" % what,
                  good not in os.listdir(sd), os.listdir(sd))
        ctx.check("%s: restore/ is empty" % what, os.listdir(rd) == [],
                  os.listdir(rd))
    ctx.check("the restore names the trashed snapshot in the daemon's log",
              m.has_log("snapshot %s (in the trash)" % good))

    r = ctx.run(["mv", os.path.join(files, "nothing.db"), rd + "/"])
    ctx.check("a name the trash does not hold fails", r.returncode != 0,
              mt.describe(r))
    info = os.path.join(mnt, ".Trash-0", "info", good + ".trashinfo")
    r = ctx.run(["mv", info, rd + "/"])
    ctx.check("an info file moved into restore/ is EPERM (it stays)",
              r.returncode != 0 and "not permitted" in r.stderr and
              os.path.exists(info), mt.describe(r))

    # Put back as the trash's Restore does: unchanged.
    r = ctx.run(["mv", os.path.join(files, good), sd + "/"])
    ctx.check("mv .Trash-0/files/X snapshots/ still puts it back",
              r.returncode == 0 and good in os.listdir(sd) and
              mt.sha256(os.path.join(sd, good)) == sha, mt.describe(r))
    ctx.check("the trash is empty again", os.listdir(files) == [],
              os.listdir(files))
    m.stop()


if __name__ == "__main__":
    mt.main("trash_restore", body, mount=True)
