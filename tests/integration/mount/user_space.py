#!/usr/bin/env python3
"""
A user's bytes through the mount never take the space only root may use.

The daemon runs as root, and what a user writes through the mount (a copy
into restore/, an upload onto current.db, an edit session) lands in its
staging directory as root's files: the blocks a filesystem keeps for root
would not stop them, and a user allowed to restore the database could fill
the filesystem to the last block.  On an ext4 image with half its blocks
kept for root, holding the database and its store:

  * another user who may write the database (allow_other) copies 8 MiB
    more into restore/ than the filesystem leaves to users: the copy
    fails with ENOSPC, and the blocks kept for root are still free (but
    for what the daemon itself records);
  * root may still use them (a snapshot as root works afterwards).

Skipped when a loop mount of a fresh ext4 image is not possible here.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def body(ctx):
    img = ctx.path("fs.img")
    fs = ctx.path("fs")
    os.makedirs(fs)
    with open(img, "wb") as f:
        f.truncate(48 << 20)
    r = ctx.run(["mkfs.ext4", "-q", "-m", "50", img])
    if r.returncode != 0:
        mt.skip("cannot make an ext4 image: %s" % r.stderr.strip())
    r = ctx.run(["mount", "-o", "loop", img, fs])
    if r.returncode != 0:
        mt.skip("cannot loop-mount an ext4 image: %s" % r.stderr.strip())
    try:
        on_small_fs(ctx, fs)
    finally:
        mnt = ctx.path("mnt")
        if mt.is_mounted(mnt):
            mt.unmount(mnt)
        subprocess.run(["umount", fs])
        if mt.is_mounted(fs):
            subprocess.run(["umount", "-l", fs])


def on_small_fs(ctx, fs):
    app = os.path.join(fs, "app")
    os.makedirs(app)
    live = os.path.join(app, "app.db")
    mt.make_db(live, "live")
    for p in (app, live):
        os.chown(p, 65534, 65534)
    os.chmod(live, 0o600)
    os.chmod(ctx.dir, 0o755)
    m = ctx.mount(live, options=["allow_other"])
    v = os.statvfs(fs)
    kept = (v.f_bfree - v.f_bavail) * v.f_frsize
    users = v.f_bavail * v.f_frsize
    print("# %d bytes left to users, %d kept for root" % (users, kept))
    mb = users // (1 << 20) + 8
    ctx.require("the image keeps blocks for root", kept > (8 << 20))

    big = os.path.join(m.mnt, "restore", "big.db")
    r = ctx.run(NOBODY + ["dd", "if=/dev/zero", "of=" + big, "bs=1M",
                          "count=%d" % mb])
    ctx.check("a copy into restore/ larger than the space left to users "
              "fails with ENOSPC", r.returncode != 0 and
              "No space left" in r.stderr, r.stderr)
    v = os.statvfs(fs)
    # Root's own bookkeeping (the failure recorded in the store) may use
    # a little of them; the copy would have taken 8 MiB more.
    ctx.check("and the blocks kept for root are still free",
              v.f_bfree * v.f_frsize >= kept - (1 << 20),
              "%d bytes free, %d kept" % (v.f_bfree * v.f_frsize, kept))
    r = ctx.run(["touch", os.path.join(m.mnt, "snapshots", "as-root")])
    ctx.check("root still takes a snapshot", r.returncode == 0 and
              any(n.endswith("_as-root.db") for n in mt.snapshots(m.mnt)),
              r.stderr)
    os.chmod(ctx.dir, 0o700)
    m.stop()


if __name__ == "__main__":
    mt.main("user_space", body, mount=True)
