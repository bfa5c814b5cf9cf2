#!/usr/bin/env python3
"""
The daemon and its store (issue 7, items 2 and 7):

  * a staging symlink planted in the store (staging -> a directory of
    someone else's): the mount is refused with a message that names it;
    the target directory keeps its files and its mode;
  * a store directory that belongs to another user: refused, naming the
    owner; nothing is written in it;
  * a store that lost store.db (daemon.lock still there): refused with
    "the catalog store.db is gone", no empty store made;
  * a store on a full filesystem: the daemon starts, says that new
    snapshots need space, lists and serves the snapshots (a copy has the
    sha256 snapctl lists); taking one fails with ENOSPC; once there is room
    again, taking one works.
"""

import errno
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def listing(ctx, store):
    """{name: sha256} from snapctl list --json."""
    r = ctx.run([ctx.snapctl, "--store", store, "list", "--json"])
    if r.returncode != 0:
        raise mt.TestFailed("snapctl list: " + r.stderr)
    return {s["name"]: s["sha256"] for s in json.loads(r.stdout)}


def refused(ctx, what, live, mnt, store, needle):
    # Without -f: the exit says "mounted" (0) or "refused" (1), so a
    # daemon that wrongly mounts is found and unmounted here.
    r = ctx.run([ctx.snapfs, "-o", "store=" + store, live, mnt],
                timeout=120)
    ctx.check("%s: the mount is refused with a clear message" % what,
              r.returncode != 0 and needle in r.stderr,
              "exit %d: %s" % (r.returncode, r.stderr))
    ctx.check("%s: nothing is mounted" % what, not mt.is_mounted(mnt))
    if mt.is_mounted(mnt):
        mt.unmount(mnt)
    return r


def fill(path):
    """Write to path until its filesystem is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (65536, 512):
            try:
                while os.write(fd, b"\x5a" * size) > 0:
                    pass
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "live", rows=200)
    mnt = ctx.path("mnt")
    os.makedirs(mnt)

    # ---- a planted staging symlink ----
    store = ctx.path("store")
    r = ctx.run([ctx.snapctl, "--db", live, "--store", store, "create"])
    ctx.require("a store to plant in", r.returncode == 0, r.stderr)
    victim = ctx.path("victim")
    os.makedirs(victim)
    os.chmod(victim, 0o755)
    with open(os.path.join(victim, "keep"), "w") as f:
        f.write("not the daemon's\n")
    os.symlink(victim, os.path.join(store, "staging"))
    refused(ctx, "staging -> a directory", live, mnt, store,
            "symbolic link")
    ctx.check("the target directory keeps its file",
              os.path.exists(os.path.join(victim, "keep")))
    ctx.check("the target directory keeps its mode",
              os.stat(victim).st_mode & 0o7777 == 0o755,
              oct(os.stat(victim).st_mode))
    ctx.check("the planted link is left for inspection",
              os.path.islink(os.path.join(store, "staging")))
    os.unlink(os.path.join(store, "staging"))

    # ---- another user's store directory ----
    theirs = ctx.path("theirs")
    os.makedirs(theirs)
    os.chown(theirs, 65534, 65534)
    refused(ctx, "a store of uid 65534", live, mnt, theirs, "65534")
    ctx.check("nothing was created in it", os.listdir(theirs) == [])

    # ---- a lost catalog ----
    m = ctx.mount(live, store=store)     # leaves daemon.lock behind
    m.stop()
    gone = ctx.path("gone")
    shutil.copytree(store, gone)
    os.unlink(os.path.join(gone, "store.db"))
    refused(ctx, "store.db gone", live, mnt, gone,
            "the catalog store.db is gone")
    ctx.check("no empty store.db was made",
              not os.path.exists(os.path.join(gone, "store.db")))

    # ---- a full store ----
    full = ctx.path("full")
    os.makedirs(full)
    r = ctx.run(["mount", "-t", "tmpfs", "-o", "size=3m", "snapfs-test",
                 full])
    if r.returncode != 0:
        print("# cannot mount a tmpfs (%s): the full-store part is skipped"
              % r.stderr.strip())
        return
    try:
        full_store(ctx, live, mnt, os.path.join(full, "store"), full)
    finally:
        if mt.is_mounted(mnt):
            mt.unmount(mnt)
        subprocess.run(["umount", full])
        if mt.is_mounted(full):
            subprocess.run(["umount", "-l", full])


def full_store(ctx, live, mnt, store, fs):
    for label in ("one", "two"):
        r = ctx.run([ctx.snapctl, "--db", live, "--store", store, "create",
                     "--label", label])
        ctx.require("snapshot %s into the small store" % label,
                    r.returncode == 0, r.stderr)
    want = listing(ctx, store)
    filler = os.path.join(fs, "filler")
    fill(filler)
    st = os.statvfs(fs)
    print("# store filesystem: %d bytes free" % (st.f_bavail * st.f_frsize))

    m = ctx.mount(live, store=store)
    ctx.check("the daemon starts on a full store", mt.is_mounted(mnt))
    ctx.check("and says new snapshots need space",
              m.has_log("read-only") and m.has_log("may need"), m.text())
    names = mt.snapshots(mnt)
    ctx.check("it lists the stored snapshots", names == sorted(want),
              "%s vs %s" % (names, sorted(want)))
    for n in names:
        got = mt.sha256(os.path.join(mnt, "snapshots", n))
        ctx.check("%s reads back with its sha256" % n, got == want.get(n),
                  "%s vs %s" % (got, want.get(n)))
    r = ctx.run(["touch", os.path.join(mnt, "snapshots", "on-full")])
    ctx.check("taking a snapshot fails with ENOSPC",
              r.returncode != 0 and "No space left" in r.stderr, r.stderr)
    ctx.check("nothing was added", mt.snapshots(mnt) == names)

    os.unlink(filler)
    r = ctx.run(["touch", os.path.join(mnt, "snapshots", "room-again")])
    ctx.check("once there is room, taking a snapshot works",
              r.returncode == 0 and
              any(n.endswith("_room-again.db") for n in mt.snapshots(mnt)),
              r.stderr)
    m.stop()
    ctx.check("snapctl sees it too",
              any(n.endswith("_room-again.db") for n in listing(ctx, store)))


if __name__ == "__main__":
    mt.main("store_safety", body, mount=True)
