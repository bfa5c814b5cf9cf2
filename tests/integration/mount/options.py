#!/usr/bin/env python3
"""
The command line (issue 3, "What to build" 1 and 6):

  * -h prints our usage then libfuse's options; -V prints snapfs's,
    SQLite's and libfuse's versions; both exit 0 and mount nothing;
  * a missing database, a file that is not a database, a missing or
    non-directory mount point, a dead mount on the mount point, an unknown
    option, a store already served by another daemon, a mount point that
    would hide the database or the store (the database's directory or one
    above it, through a symlink too; the store or a directory holding it;
    a directory inside the store): a clear message, a non-zero exit,
    nothing mounted (and no store created for a non-database or a refused
    mount point);
  * mount(8) words (_netdev, noauto, nofail, user, users, auto, defaults,
    rw, x-*) are accepted; -o store=DIR puts the store there;
  * without -f, snapfs returns only once the mount is up (the exit is the
    readiness signal) and goes away on fusermount3 -u, removing its staging
    directory;
  * SIGTERM and SIGINT unmount cleanly and remove the staging directory.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def wait_gone(pid, timeout=60):
    """Bounded wait for a process that is not our child to exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def refused_bounded(ctx, what, argv, needle, mp):
    """A refusal that must come at once: a daemon that mounted instead
    (with -f it stays) is killed after a bound and its mount removed, so
    a regression fails here instead of hanging the machine's tests."""
    try:
        r = ctx.run(argv, timeout=30)
        ok = r.returncode != 0 and needle in r.stderr
        detail = "exit %d: %s" % (r.returncode, r.stderr)
    except subprocess.TimeoutExpired:
        ok, detail = False, "still running after 30 s: it mounted"
    ctx.check("%s: refused with a clear message" % what, ok, detail)
    mounted = mt.is_mounted(mp)
    if mounted:
        subprocess.run(["fusermount3", "-uz", os.path.realpath(mp)])
    ctx.check("%s: nothing mounted" % what, not mounted)


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "live")
    mnt = ctx.path("mnt")
    os.makedirs(mnt)

    r = ctx.run([ctx.snapfs, "-h"])
    ctx.check("-h exits 0 with our usage, then libfuse's options",
              r.returncode == 0 and "DBFILE MOUNTPOINT" in r.stdout and
              "store=DIR" in r.stdout and "allow_other" in r.stdout,
              r.stdout + r.stderr)
    r = ctx.run([ctx.snapfs, "-V"])
    out = r.stdout + r.stderr
    ctx.check("-V prints snapfs, SQLite and libfuse versions",
              r.returncode == 0 and "snapfs version" in out and
              "SQLite version" in out and "libfuse version" in out, out)

    def refused(what, argv, needle, mp=mnt):
        r = ctx.run(argv, timeout=60)
        ctx.check("%s: non-zero exit with a clear message" % what,
                  r.returncode != 0 and needle in r.stderr,
                  "exit %d: %s" % (r.returncode, r.stderr))
        ctx.check("%s: nothing mounted" % what, not mt.is_mounted(mp))
        return r

    refused("missing database", [ctx.snapfs, ctx.path("nope.db"), mnt],
            "No such file")
    text = ctx.path("notes.db")
    with open(text, "w") as f:
        f.write("hello, not a database\n" * 50)
    refused("not a database", [ctx.snapfs, text, mnt],
            "not a usable SQLite database")
    ctx.check("no store was created for a non-database",
              not os.path.exists(text + ".snapfs"))
    refused("missing mount point", [ctx.snapfs, live, ctx.path("nomnt")],
            "mount point")
    refused("mount point is a file", [ctx.snapfs, live, text],
            "not a directory", mp=text)
    refused("unknown option", [ctx.snapfs, "-f", "-o", "bogus_option", live,
                               mnt], "bogus_option")
    refused("no mount point", [ctx.snapfs, live], "mount point")

    # A mount that would hide the database or its store from the daemon
    # itself (issue 7 item 4: the first access hung in D state).
    nested = ctx.path("a", "b", "nested.db")
    os.makedirs(os.path.dirname(nested))
    mt.make_db(nested, "nested")
    os.symlink(os.path.dirname(nested), ctx.path("to-b"))
    hiding = [
        ("mount point is the database's directory", nested,
         os.path.dirname(nested), [], "contains the database"),
        ("mount point is above the database", nested, ctx.path("a"), [],
         "contains the database"),
        ("mount point is a symlink to the database's directory", nested,
         ctx.path("to-b"), [], "contains the database"),
        ("mount point contains -o store=DIR", live, ctx.path("outer"),
         ["-o", "store=" + ctx.path("outer", "store")],
         "contains the snapshot store"),
    ]
    os.makedirs(ctx.path("outer"))
    for what, db, mp, opts, needle in hiding:
        refused_bounded(ctx, what, [ctx.snapfs, "-f"] + opts + [db, mp],
                        needle, mp)
    ctx.check("no store was created for a refused mount",
              not os.path.exists(nested + ".snapfs") and
              not os.path.exists(ctx.path("outer", "store")))

    # mount(8) words accepted; store elsewhere.
    store = ctx.path("elsewhere", "store")
    os.makedirs(os.path.dirname(store))
    m = mt.Mount(ctx, live, mnt, store=store,
                 options=["_netdev,noauto,nofail,user,users,auto,defaults,rw",
                          "x-systemd.automount,x-gvfs-show"]).start()
    ctx.check("mount(8) words are accepted", mt.is_mounted(mnt))
    ctx.check("-o store=DIR holds the store",
              os.path.exists(os.path.join(store, "store.db")) and
              not os.path.exists(live + ".snapfs"))
    ctx.check("the mount is fuse.snapfs", mt.fuse_type(mnt) == "fuse.snapfs",
              mt.fuse_type(mnt))

    # allow_other implies default_permissions: another user cannot read a
    # snapshot of a 0600 database.
    m.stop()
    os.chmod(ctx.dir, 0o755)
    os.chmod(live, 0o600)
    m = mt.Mount(ctx, live, mnt, store=store,
                 options=["allow_other"]).start()
    with open("/proc/self/mountinfo") as f:
        line = [l for l in f if " %s " % mnt in l][0]
    ctx.check("allow_other mounts with default_permissions",
              "default_permissions" in line and "allow_other" in line, line)
    r = ctx.run(["touch", os.path.join(mnt, "snapshots", "private")])
    snap = [n for n in mt.snapshots(mnt) if n.endswith("_private.db")]
    ctx.require("a snapshot of the 0600 database", r.returncode == 0 and
                len(snap) == 1, r.stderr)
    sp = os.path.join(mnt, "snapshots", snap[0])
    ctx.check("its mode is 0400", (os.stat(sp).st_mode & 0o777) == 0o400,
              oct(os.stat(sp).st_mode))
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    r = ctx.run(nobody + ["ls", os.path.join(mnt, "snapshots")])
    ctx.check("another user can list snapshots/", r.returncode == 0,
              r.stderr)
    r = ctx.run(nobody + ["cat", sp])
    ctx.check("but cannot read the snapshot", r.returncode != 0 and
              "Permission denied" in r.stderr, r.stderr)
    r = ctx.run(nobody + ["cat", os.path.join(mnt, "current.db")])
    ctx.check("nor current.db", r.returncode != 0 and
              "Permission denied" in r.stderr, r.stderr)
    r = ctx.run(nobody + ["touch", os.path.join(mnt, "snapshots", "x")])
    ctx.check("nor take a snapshot", r.returncode != 0 and
              len(mt.snapshots(mnt)) == 1, r.stderr)
    os.chmod(ctx.dir, 0o700)

    # A second daemon on the same store is refused.
    mnt2 = ctx.path("mnt2")
    os.makedirs(mnt2)
    refused("store already served", [ctx.snapfs, "-f", "-o",
                                     "store=" + store, live, mnt2],
            "already served", mp=mnt2)
    m.stop()

    # The store's own directory, and a directory inside it, are refused.
    inner = os.path.join(store, "inner")
    os.makedirs(inner)
    refused_bounded(ctx, "mount point is the store", [ctx.snapfs, "-f", "-o",
                    "store=" + store, live, store],
                    "contains the snapshot store", store)
    refused_bounded(ctx, "mount point is inside the store",
                    [ctx.snapfs, "-f", "-o", "store=" + store, live, inner],
                    "inside the snapshot store", inner)
    os.rmdir(inner)

    # Daemonized: the exit of `snapfs db mnt` means "mounted".
    r = ctx.run([ctx.snapfs, live, mnt], timeout=120)
    ctx.check("snapfs without -f exits 0", r.returncode == 0, r.stderr)
    up = mt.is_mounted(mnt)
    ctx.check("and the mount is up when it returns", up)
    if up:
        ctx.daemons.append(mt.Mount(ctx, live, mnt))   # cleanup on failure
        with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
            pid = json.load(f)["mount"]["pid"]
        ctx.check("it serves at once", os.listdir(os.path.join(mnt,
                  "snapshots")) == [])
        staging = os.path.join(live + ".snapfs", "staging")
        ctx.check("its staging directory exists", os.path.isdir(staging))
        r = ctx.run(["fusermount3", "-u", mnt])
        ctx.check("fusermount3 -u unmounts it", r.returncode == 0, r.stderr)
        ctx.check("the daemon goes away", wait_gone(pid))
        ctx.check("and removes its staging directory",
                  not os.path.exists(staging))

    # A dead mount on the mount point is named as such.
    m = ctx.mount(live)
    m.proc.kill()
    m.proc.wait()
    m.proc = None
    refused("a dead mount on the mount point", [ctx.snapfs, "-f", live, mnt],
            "fusermount3 -uz", mp=ctx.path("never"))
    subprocess.run(["fusermount3", "-uz", mnt])
    ctx.check("fusermount3 -uz clears it", not mt.is_mounted(mnt))

    # SIGTERM and SIGINT unmount cleanly.
    for sig in (signal.SIGTERM, signal.SIGINT):
        m = ctx.mount(live)
        staging = os.path.join(live + ".snapfs", "staging")
        with open(os.path.join(mnt, "upload.tmp"), "w") as f:
            f.write("a staging file")
        m.proc.send_signal(sig)
        rc = m.proc.wait(timeout=60)
        if m.reader:
            m.reader.join(timeout=10)
        m.proc = None
        ctx.check("%s: the daemon exits 0" % sig.name, rc == 0, m.text())
        ctx.check("%s: the mount is gone" % sig.name,
                  not mt.is_mounted(mnt))
        ctx.check("%s: staging files are removed" % sig.name,
                  not os.path.exists(staging))
        m.check_sanitizers()


if __name__ == "__main__":
    mt.main("options", body, mount=True)
