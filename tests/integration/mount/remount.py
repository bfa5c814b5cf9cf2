#!/usr/bin/env python3
"""
Mounting again right after an unmount (engine/storelock.c):

  * `fusermount3 -u MNT` returns once the kernel has unmounted, while the
    old daemon is still closing its store and holds daemon.lock; a new
    `snapfs DB MNT` started at once waits for it (bounded) instead of being
    refused.  ROUNDS times in the foreground (-f: every old daemon is then
    reaped and must exit 0), and a few times daemonized, as a script or
    systemd (ExecStop=fusermount3 -u, then start) does;
  * deterministically: the old daemon stopped (SIGSTOP) right before
    `fusermount3 -u`, so it cannot have closed its store when the new one
    starts; the new one must be found blocked on daemon.lock (/proc/locks:
    a waiting FLOCK of its pid), not refused, and must start once the old
    one is let go (SIGCONT) and exits;
  * a second daemon on a store whose mount is still there is refused at
    once, with one message naming the store, the daemon's pid and its
    mount point (a refusal after a wait would say "still held" instead);
  * the daemon.lock text names the daemon and its mount point.
Every mount is undone on the way out (snaptest's cleanup; the daemonized
ones here in a finally).
"""

import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

ROUNDS = int(os.environ.get("SNAPFS_REMOUNT_ROUNDS", "20"))
DAEMONIZED_ROUNDS = 5


def reap(ctx, old):
    """Wait for an unmounted daemon (-f) to exit; it must exit 0.  Its
    mount point may hold the next daemon's mount: never unmount here."""
    try:
        old.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        mt.terminate(old.proc)
    if old.reader:
        old.reader.join(timeout=10)
    status = old.proc.returncode
    old.proc = None
    old.check_sanitizers()
    return status


def foreground_rounds(ctx, live, mnt):
    m = ctx.mount(live, mnt=mnt)
    refused = []
    unclean = []
    for i in range(ROUNDS):
        r = ctx.run(["fusermount3", "-u", mnt])
        ctx.require("round %d: fusermount3 -u exits 0" % i,
                    r.returncode == 0, mt.describe(r))
        new = mt.Mount(ctx, live, mnt)
        try:
            new.start()
        except mt.TestFailed as e:
            refused.append("round %d: %s" % (i, e))
            new = None
        status = reap(ctx, m)
        if status != 0:
            unclean.append("round %d: exit %s\n%s" % (i, status, m.text()))
        m = new or ctx.mount(live, mnt=mnt)
    ctx.check("%d mounts right after fusermount3 -u all started"
              % ROUNDS, not refused, "\n".join(refused))
    ctx.check("every unmounted daemon exited 0", not unclean,
              "\n".join(unclean))
    return m


def waits_on_flock(pid, ino):
    """True when pid is blocked waiting for a flock of inode ino
    (/proc/locks: "N: -> FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE ...")."""
    with open("/proc/locks") as f:
        for line in f:
            fl = line.split()
            if (len(fl) > 5 and fl[1] == "->" and fl[2] == "FLOCK" and
                    fl[5] == str(pid) and
                    fl[6].rsplit(":", 1)[-1] == str(ino)):
                return True
    return False


def stopped_old_daemon(ctx, live, mnt, lock):
    """The old daemon cannot close its store (SIGSTOP) when the new one
    starts: the new one must wait for it, then serve."""
    old = ctx.mount(live, mnt=mnt)
    new = mt.Mount(ctx, live, mnt)
    failed = []

    def start():
        try:
            new.start()
        except mt.TestFailed as e:
            failed.append(str(e))

    t = threading.Thread(target=start, daemon=True)
    os.kill(old.proc.pid, signal.SIGSTOP)
    try:
        r = ctx.run(["fusermount3", "-u", mnt], timeout=60)
        ctx.require("fusermount3 -u of a stopped daemon's mount exits 0",
                    r.returncode == 0, mt.describe(r))
        t.start()
        ino = os.stat(lock).st_ino

        def state():
            if failed or (new.proc is not None and
                          new.proc.poll() is not None):
                return "exited"
            if new.proc is not None and waits_on_flock(new.proc.pid, ino):
                return "waiting"
            return None

        ctx.check("a new daemon waits on daemon.lock for the stopped one "
                  "(not refused)", mt.poll(state) == "waiting",
                  "\n".join(failed) or new.text())
    finally:
        os.kill(old.proc.pid, signal.SIGCONT)
    t.join(timeout=mt.READY_TIMEOUT + 30)
    ctx.require("and serves once the old one exited",
                not t.is_alive() and not failed and new.proc is not None and
                new.running() and mt.is_mounted(mnt),
                "\n".join(failed) or new.text())
    status = reap(ctx, old)
    ctx.check("the stopped daemon exited 0 once let go", status == 0,
              old.text())
    return new


def daemonized_rounds(ctx, live, mnt):
    """snapfs DB MNT; fusermount3 -u MNT; snapfs DB MNT, as a user types
    it: the first exit says "mounted"."""
    bad = []
    try:
        r = ctx.run([ctx.snapfs, live, mnt], timeout=120)
        ctx.require("daemonized snapfs mounts", r.returncode == 0 and
                    mt.is_mounted(mnt), mt.describe(r))
        for i in range(DAEMONIZED_ROUNDS):
            u = ctx.run(["fusermount3", "-u", mnt])
            ctx.require("daemonized round %d: fusermount3 -u exits 0" % i,
                        u.returncode == 0, mt.describe(u))
            r = ctx.run([ctx.snapfs, live, mnt], timeout=120)
            if r.returncode != 0 or not mt.is_mounted(mnt):
                bad.append("round %d: %s" % (i, mt.describe(r)))
                if not mt.is_mounted(mnt):
                    # The old one has gone by now, or will: try again.
                    r = ctx.run([ctx.snapfs, live, mnt], timeout=120)
                    ctx.require("daemonized round %d: a later mount "
                                "starts" % i, r.returncode == 0,
                                mt.describe(r))
        ctx.check("%d daemonized mounts right after fusermount3 -u all "
                  "started" % DAEMONIZED_ROUNDS, not bad, "\n".join(bad))
    finally:
        mt.unmount(mnt)


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "live")
    mnt = ctx.path("mnt")
    os.makedirs(mnt)
    lock = live + ".snapfs/daemon.lock"

    m = foreground_rounds(ctx, live, mnt)
    m.stop()
    m = stopped_old_daemon(ctx, live, mnt, lock)
    real = os.path.realpath(mnt)
    with open(lock) as f:
        text = f.read()
    ctx.check("daemon.lock names the daemon and its mount point",
              text == "%d\n%s\n" % (m.proc.pid, real), repr(text))

    # Still mounted: a second daemon (another mount point) is refused at
    # once, the holder named once.
    mnt2 = ctx.path("mnt2")
    os.makedirs(mnt2)
    second = mt.Mount(ctx, live, mnt2)
    try:
        second.start()
        ctx.check("a second daemon on a mounted store is refused", False,
                  second.text())
    except mt.TestFailed:
        msg = "\n".join(second.log)
        want = ("is already served by another snapfs daemon (pid %d, "
                "mounted at %s)" % (m.proc.pid, real))
        ctx.check("a second daemon on a mounted store is refused at once, "
                  "naming its pid and mount point",
                  second.proc.returncode == 1 and want in msg and
                  live + ".snapfs" in msg, second.text())
        ctx.check("and says so once", msg.count("already served") == 1,
                  second.text())
        second.proc = None
    ctx.check("nothing is mounted at the second mount point",
              not mt.is_mounted(mnt2))
    ctx.check("the first mount still serves",
              mt.is_mounted(mnt) and
              "snapshots" in os.listdir(mnt), os.listdir(mnt))
    m.stop()

    daemonized_rounds(ctx, live, mnt)


if __name__ == "__main__":
    mt.main("remount", body, mount=True)
