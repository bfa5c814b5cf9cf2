#!/usr/bin/env python3
"""
snapshots/ follows the catalog, whoever changes it (fs/DESIGN.md §1,
"snapshots/": "Every catalog change, by whatever process, updates the
directory's mtime and invalidates the kernel's entries"; issue 8 item 2):

  * `snapctl create` and `snapctl import` from another process: without a
    refresh, stat(snapshots/) shows a new mtime (the new snapshot's own
    creation time), ls and `gio list` list it, latest.db points at it;
  * `snapctl delete` from another process: the mtime moves again, the name
    is gone from the listing and from the kernel (an inotify watch on the
    deleted file hears IN_DELETE_SELF: the kernel was told, it did not
    wait for a timeout), latest.db points at the newest one left;
  * a relabel through the mount (mv within snapshots/) moves the mtime;
  * nothing moves it when nothing changed (a read of the store, a
    verification by snapctl);
  * a remount shows the same mtime (it is the store's record of the last
    change, not the mount's start);
  * the daemon's own schedule (-o every=1s): its automatic snapshot moves
    the mtime.

Every wait is a poll with a deadline, never a fixed sleep.
"""

import ctypes
import os
import select
import sqlite3
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

POLL = 20            # seconds a bounded poll may take
IN_DELETE_SELF = 0x400
IN_ATTRIB = 0x4


class InotifyWatch:
    """An inotify watch on one path (ctypes: the standard library has none)."""

    def __init__(self, path, mask):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(self.fd, os.fsencode(path), mask) < 0:
            e = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(e, "inotify_add_watch " + path)

    def wait(self, mask, timeout=POLL):
        """True once an event in mask arrived (bounded by timeout)."""
        left = timeout
        while left > 0:
            r, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            left -= 0.5
            if not r:
                continue
            buf = os.read(self.fd, 4096)
            i = 0
            while i + 16 <= len(buf):
                _, m, _, n = struct.unpack_from("iIII", buf, i)
                if m & mask:
                    return True
                i += 16 + n
        return False

    def close(self):
        os.close(self.fd)


def body(ctx):
    if not ctx.snapctl:
        print("SKIP: $SNAPCTL is not set")
        raise SystemExit(mt.SKIP)
    live = ctx.path("app.db")
    mt.make_db(live, "live", rows=10)
    store = ctx.path("store")
    m = ctx.mount(live, store=store)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")

    def snapctl(*args):
        r = ctx.run([ctx.snapctl, "--db", live, "--store", store] +
                    list(args))
        ctx.require("snapctl %s" % " ".join(args), r.returncode == 0,
                    r.stdout + r.stderr)
        return r

    def mtime():
        return os.stat(sd).st_mtime_ns

    def moved_from(before):
        """Poll until snapshots/' mtime is no longer before; the new one."""
        return mt.poll(lambda: mtime() if mtime() != before else None,
                       POLL)

    def named(suffix):
        return [n for n in mt.snapshots(mnt) if n.endswith(suffix)]

    def gio_list():
        r = ctx.run(["gio", "list", sd])
        return r.stdout.split() if r.returncode == 0 else []

    # A view as a file manager keeps it: listed, stat'ed, cached.
    os.listdir(sd)
    t0 = mtime()

    # Another process takes a snapshot.
    snapctl("create", "--label", "from-snapctl")
    t1 = moved_from(t0)
    ctx.check("snapctl create: snapshots/' mtime moved without a refresh",
              t1 is not None, "still %s" % t0)
    made = named("_from-snapctl.db")
    ctx.require("snapctl create: ls lists the new snapshot", len(made) == 1,
                mt.snapshots(mnt))
    ctx.check("snapctl create: the mtime is the snapshot's creation time",
              t1 == os.stat(os.path.join(sd, made[0])).st_mtime_ns,
              (t1, os.stat(os.path.join(sd, made[0])).st_mtime_ns))
    ctx.check("snapctl create: gio list lists it", made[0] in gio_list(),
              gio_list())
    ctx.check("snapctl create: latest.db points at it",
              os.readlink(os.path.join(sd, "latest.db")) == made[0])
    ctx.check("snapctl create: ctime moved with mtime",
              os.stat(sd).st_ctime_ns == t1)

    # Another process imports a database.
    other = ctx.path("other.db")
    mt.make_db(other, "other", rows=4)
    snapctl("import", other, "--label", "imported")
    t2 = moved_from(t1)
    ctx.check("snapctl import: the mtime moved", t2 is not None)
    imp = named("_imported.db")
    ctx.require("snapctl import: ls lists it", len(imp) == 1,
                mt.snapshots(mnt))
    ctx.check("snapctl import: the mtime is the import's creation time",
              mt.poll(lambda: mtime() ==
                      os.stat(os.path.join(sd, imp[0])).st_mtime_ns, POLL))
    ctx.check("snapctl import: latest.db points at it",
              os.readlink(os.path.join(sd, "latest.db")) == imp[0])

    # Nothing changed: the mtime stays (reads and a verification write
    # the store, but not its list).
    snapctl("list")
    snapctl("verify", imp[0])
    os.listdir(sd)
    ctx.check("a read and a verification by snapctl leave the mtime",
              mtime() == t2, (mtime(), t2))

    # Another process deletes it while something watches the file.
    w = InotifyWatch(os.path.join(sd, imp[0]), IN_DELETE_SELF | IN_ATTRIB)
    try:
        snapctl("delete", imp[0])
        t3 = moved_from(t2)
        ctx.check("snapctl delete: the mtime moved", t3 is not None)
        ctx.check("snapctl delete: the kernel was told the name is gone "
                  "(a watch on the file hears it)",
                  w.wait(IN_DELETE_SELF | IN_ATTRIB))
    finally:
        w.close()
    ctx.check("snapctl delete: ls no longer lists it",
              imp[0] not in os.listdir(sd), os.listdir(sd))
    ctx.check("snapctl delete: gio list no longer lists it",
              imp[0] not in gio_list(), gio_list())
    ctx.check("snapctl delete: the name no longer resolves",
              not os.path.exists(os.path.join(sd, imp[0])))
    ctx.check("snapctl delete: latest.db points at the newest one left",
              os.readlink(os.path.join(sd, "latest.db")) == made[0])

    # A relabel through the mount.
    t3 = mtime()
    r = ctx.run(["mv", os.path.join(sd, made[0]),
                 os.path.join(sd, "relabelled.db")])
    ctx.check("mv within snapshots/ succeeds", r.returncode == 0, r.stderr)
    t4 = moved_from(t3)
    ctx.check("relabel: the mtime moved", t4 is not None)
    ctx.check("relabel: the old name is gone, the new label listed",
              made[0] not in mt.snapshots(mnt) and
              "relabelled.db" in mt.snapshots(mnt),
              mt.snapshots(mnt))

    # A remount shows the same time.
    t4 = mtime()
    m.stop()
    m = ctx.mount(live, store=store)
    ctx.check("after a remount snapshots/' mtime is the same",
              mtime() == t4, (mtime(), t4))

    # The daemon's own schedule: the database changed, so its first tick
    # takes an automatic snapshot.
    m.stop()
    db = sqlite3.connect(live)
    db.execute("INSERT INTO items(tag, body) VALUES('live', 'changed')")
    db.commit()
    db.close()
    m = ctx.mount(live, store=store, options=["every=1s"])
    autos = mt.poll(lambda: [n for n, k in mt.kinds(mnt).items()
                             if k == "auto"], POLL)
    ctx.require("the schedule's automatic snapshot is listed", autos,
                mt.kinds(mnt))
    auto_t = os.stat(os.path.join(sd, autos[-1])).st_mtime_ns
    ctx.check("an automatic snapshot moves the mtime to its creation time",
              mt.poll(lambda: mtime() == auto_t, POLL), (mtime(), auto_t))
    m.stop()


if __name__ == "__main__":
    mt.main("catalog_views", body, mount=True)
