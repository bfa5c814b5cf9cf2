#!/usr/bin/env python3
"""
tests/integration/engine/snapctl_mount_C.py — `snapctl -C MOUNTPOINT` finds
the database and the store of a real snapfs mount.

snapfs is mounted on a private directory with tests/integration/snaptest.py
(readiness from the daemon's "serving" line, never a sleep; unmounted with
fusermount3 -u then -uz whatever happens; the daemon's stderr scanned for
sanitizer reports).  Skips (77) without root, /dev/fuse, fusermount3 or a
built snapfs (a -Dfuse=disabled build): snapfs is $SNAPFS, else the one
beside $SNAPCTL in the build tree.

Checks: -C gives the same list and status as --db; a snapshot taken with -C
shows in the mount's snapshots/ directory; a directory that is not a snapfs
mount is refused with exit 1 and says so; -C with --db is a usage error;
after the unmount, -C on the same directory is refused again.  With the
store elsewhere (-o store=DIR), `snapctl --db DB create` is refused (it
would start a second store the mount never shows) and names -C MNT.
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.environ.get("SNAPFS") and os.environ.get("SNAPCTL"):
    guess = os.path.join(os.path.dirname(os.environ["SNAPCTL"]), "..", "fs",
                         "snapfs")
    os.environ["SNAPFS"] = os.path.normpath(guess)
sys.path.insert(0, os.path.join(HERE, ".."))
import snaptest  # noqa: E402
from snaptest import describe  # noqa: E402


def body(ctx):
    if not ctx.snapctl or not os.access(ctx.snapctl, os.X_OK):
        print("SKIP: $SNAPCTL is not set to an executable snapctl")
        sys.exit(snaptest.SKIP)
    db = ctx.path("app.db")
    snaptest.make_db(db, "mounted")
    mnt = ctx.path("mnt")
    r = ctx.sc("--db", db, "create", "--label", "before-mount")
    ctx.require("first snapshot with --db", r.returncode == 0, describe(r))
    m = ctx.mount(db, mnt)

    r1 = ctx.sc("-C", mnt, "list", "--json")
    r2 = ctx.sc("--db", db, "list", "--json")
    ctx.check("-C MOUNTPOINT list --json exits 0 and equals --db's",
              r1.returncode == 0 and r2.returncode == 0 and
              json.loads(r1.stdout) == json.loads(r2.stdout),
              describe(r1) + "\n" + describe(r2))
    r = ctx.sc("-C", mnt, "status", "--json")
    doc = json.loads(r.stdout) if r.returncode == 0 else {}
    ctx.check("-C MOUNTPOINT status names the mounted database and store",
              doc.get("database") == os.path.realpath(db) and
              doc.get("store") == os.path.realpath(db) + ".snapfs",
              describe(r))
    r = ctx.sc("-C", mnt, "status", "--warn-age", "1h")
    ctx.check("-C MOUNTPOINT status --warn-age 1h: OK, exit 0",
              r.returncode == 0 and r.stdout.startswith("OK - "),
              describe(r))

    r = ctx.sc("-C", mnt, "create", "--label", "via-mount")
    name = r.stdout.strip()
    ctx.check("-C MOUNTPOINT create exits 0", r.returncode == 0 and name,
              describe(r))
    ctx.check("the snapshot shows in MOUNTPOINT/snapshots/",
              name in os.listdir(os.path.join(mnt, "snapshots")),
              str(os.listdir(os.path.join(mnt, "snapshots"))))

    # current.db is the live database read through the mount: restoring
    # it onto the live database only undoes what was committed since it
    # was read (it restored, exit 0, and imported it as a snapshot).
    before = ctx.sc("--db", db, "list", "--json").stdout
    r = ctx.sc("--db", db, "restore", os.path.join(mnt, "current.db"))
    ctx.check("restore MOUNTPOINT/current.db: refused, exit 1, says it is "
              "the live database", r.returncode == 1 and
              "live database itself" in r.stderr, describe(r))
    ctx.check("... and imports or restores nothing",
              ctx.sc("--db", db, "list", "--json").stdout == before)

    plain = ctx.path("plain")
    os.makedirs(plain)
    r = ctx.sc("-C", plain, "list")
    ctx.check("-C on a directory that is not a mount: exit 1, says so",
              r.returncode == 1 and "not a snapfs mount" in r.stderr and
              r.stderr.startswith("snapctl: "), describe(r))
    r = ctx.sc("-C", ctx.path("missing"), "list")
    ctx.check("-C on a missing directory: exit 1", r.returncode == 1,
              describe(r))
    r = ctx.sc("-C", mnt, "--db", db, "list")
    ctx.check("-C with --db: usage error, exit 2", r.returncode == 2,
              describe(r))

    m.stop()
    r = ctx.sc("-C", mnt, "list")
    ctx.check("-C after the unmount: exit 1, not a snapfs mount",
              r.returncode == 1 and "not a snapfs mount" in r.stderr,
              describe(r))
    elsewhere(ctx)


def elsewhere(ctx):
    """A mount with -o store=DIR away from the database: `snapctl --db DB
    create` must not start a second store beside DB that the mount never
    shows; it is refused, naming the mount and -C."""
    db = ctx.path("away.db")
    snaptest.make_db(db, "away")
    store = ctx.path("stores/away")
    os.makedirs(os.path.dirname(store))
    mnt = ctx.path("mnt-away")
    m = ctx.mount(db, mnt, store=store)
    r = ctx.sc("--db", db, "create")
    ctx.check("--db DB create while DB is mounted with its store elsewhere: "
              "exit 1, names the mount and -C", r.returncode == 1 and
              ("served by the snapfs mount at %s" % mnt) in r.stderr and
              ("snapctl -C %s create" % mnt) in r.stderr, describe(r))
    ctx.check("and no second store was made beside it",
              not os.path.exists(db + ".snapfs"))
    r = ctx.sc("-C", mnt, "create")
    r2 = ctx.sc("--store", store, "list", "--json")
    ctx.check("-C MNT create takes it into the mount's store",
              r.returncode == 0 and r2.returncode == 0 and
              len(json.loads(r2.stdout)) == 1, describe(r) + describe(r2))
    m.stop()


if __name__ == "__main__":
    snaptest.main("snapctl_mount_C", body, mount=True)
