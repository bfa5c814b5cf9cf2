#!/usr/bin/env python3
"""
current.db's mode and owner through the mount (issue 7 item 9, chmod).

The live database's mode and owner belong to its administrator; the mount
never changes them, and never pretends it did:

  * chmod or chown of current.db to something else fails with EPERM (it
    used to return 0 and do nothing), and the daemon logs why and which
    real path to change; a chmod to the mode it already has succeeds;
  * restores that set the source's mode on the target afterwards (cp -p,
    rsync -a --inplace, mv from another filesystem, gio copy of a
    snapshot, whose mode has no write bits) succeed and leave the live
    mode alone;
  * snapshots' modes follow the live mode: after `chmod 600` of the real
    file, a snapshot another user could read shows 0400 through the mount
    and that user is refused; so do .snapfs/status.json and log;
  * but not a live file that is missing for a moment, or that somebody
    who may write its directory replaced with a file of their own or a
    symlink: the snapshots keep the database's owner and mode; a FIFO
    there is refused at once (no request waits on it).
"""

import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def mode(path):
    return os.stat(path).st_mode & 0o7777


def wait_for(cond, timeout=30):
    """Poll cond until it holds or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "live")
    os.chmod(live, 0o644)
    os.chmod(ctx.dir, 0o755)           # another user may look in
    m = ctx.mount(live, options=["allow_other"])
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")
    sd = os.path.join(mnt, "snapshots")

    ctx.check("current.db shows the live mode", mode(cur) == 0o644,
              oct(mode(cur)))
    r = ctx.run(["chmod", "600", cur])
    ctx.check("chmod 600 current.db fails with EPERM", r.returncode != 0 and
              "Operation not permitted" in r.stderr, r.stderr)
    ctx.check("and the live file keeps its mode", mode(live) == 0o644,
              oct(mode(live)))
    ctx.check("the daemon says why and names the real file",
              wait_for(lambda: m.has_log("chmod of current.db refused") and
                       m.has_log(live)), m.text())
    r = ctx.run(["chmod", "644", cur])
    ctx.check("chmod to the mode it has succeeds", r.returncode == 0,
              r.stderr)
    r = ctx.run(["chown", "65534", cur])
    ctx.check("chown current.db fails with EPERM", r.returncode != 0 and
              "Operation not permitted" in r.stderr and
              os.stat(live).st_uid == 0, r.stderr)

    # Restores that copy the source's mode onto current.db afterwards.
    r = ctx.run(["touch", os.path.join(sd, "readable")])
    snap = [n for n in mt.snapshots(mnt) if n.endswith("_readable.db")]
    ctx.require("a snapshot", r.returncode == 0 and len(snap) == 1,
                r.stderr)
    sp = os.path.join(sd, snap[0])
    ctx.check("its mode is the live mode without write bits (0444)",
              mode(sp) == 0o444, oct(mode(sp)))
    src_dir = ctx.path("outside")
    os.makedirs(src_dir)
    cases = [
        ("cp -p", lambda s: ["cp", "-p", s, cur]),
        ("rsync -a --inplace", lambda s: ["rsync", "-a", "-I", "--inplace",
                                          s, cur]),
        ("mv from another filesystem", lambda s: ["mv", s, cur]),
        ("gio copy of a snapshot", None),
    ]
    for i, (what, argv) in enumerate(cases):
        if argv:
            src = os.path.join(src_dir, "src-%d.db" % i)
            mt.make_db(src, "src-%d" % i, rows=10 + i)
            os.chmod(src, 0o600)
            expect = mt.dump(src)
            r = ctx.run(argv(src))
        else:
            expect = mt.dump(sp)
            r = ctx.run(["gio", "copy", sp, cur])
        ctx.check("%s onto current.db succeeds and restores" % what,
                  r.returncode == 0 and mt.dump(live) == expect,
                  r.stdout + r.stderr)
        ctx.check("%s leaves the live mode alone" % what,
                  mode(live) == 0o644, oct(mode(live)))

    # The administrator makes the database private on the real path.
    r = ctx.run(NOBODY + ["sh", "-c", 'cat "$1" > /dev/null', "-", sp])
    ctx.check("another user can read the snapshot of a 0644 database",
              r.returncode == 0, r.stderr)
    os.chmod(live, 0o600)
    ctx.check("after chmod 600 of the real file, the snapshot shows 0400 "
              "through the mount", wait_for(lambda: mode(sp) == 0o400),
              oct(mode(sp)))
    r = ctx.run(NOBODY + ["sh", "-c", 'cat "$1" > /dev/null', "-", sp])
    ctx.check("and the other user can no longer read it",
              r.returncode != 0 and "Permission denied" in r.stderr,
              r.stderr)
    ctx.check("current.db shows 0600", mode(cur) == 0o600, oct(mode(cur)))
    # .snapfs/status.json and log name the database, its snapshots and
    # their comments: readable by whom may read the database, no wider.
    for name in ("status.json", "log"):
        p = os.path.join(mnt, ".snapfs", name)
        ctx.check(".snapfs/%s of a 0600 database shows 0400" % name,
                  mode(p) == 0o400, oct(mode(p)))
        r = ctx.run(NOBODY + ["sh", "-c", 'cat "$1" > /dev/null', "-", p])
        ctx.check("and the other user cannot read .snapfs/%s" % name,
                  r.returncode != 0 and "Permission denied" in r.stderr,
                  r.stderr)

    # The live file missing for a moment, or replaced by somebody who may
    # write its directory (a file of their own, a symlink to a readable
    # file): the snapshots keep the owner and mode the database had.  A
    # snapshot snapctl takes while the file is there is looked up for the
    # first time after the change, so its attributes are fresh.
    if ctx.snapctl:
        away = live + ".away"
        other = ctx.path("others.db")
        mt.make_db(other, "other")
        os.chown(other, 65534, 65534)
        os.chmod(other, 0o666)
        for i, what in enumerate(("missing", "replaced by another user's "
                                  "file", "replaced by a symlink")):
            r = ctx.run([ctx.snapctl, "--db", live, "create", "--label",
                         "case%d" % i])
            ctx.require("snapctl create", r.returncode == 0, r.stderr)
            os.rename(live, away)
            if i == 1:
                os.link(other, live)
            elif i == 2:
                os.symlink("/etc/hostname", live)
            names = [n for n in mt.snapshots(mnt)
                     if n.endswith("_case%d.db" % i)]
            ctx.require("its snapshot is listed", len(names) == 1, names)
            p = os.path.join(sd, names[0])
            st = os.stat(p)
            ctx.check("live file %s: a snapshot still shows 0400, owned "
                      "like the database" % what,
                      (st.st_mode & 0o7777) == 0o400 and st.st_uid == 0,
                      "%o uid %d" % (st.st_mode, st.st_uid))
            r = ctx.run(NOBODY + ["sh", "-c", 'cat "$1" > /dev/null', "-",
                                  p])
            ctx.check("live file %s: the other user cannot read it" % what,
                      r.returncode != 0 and "Permission denied" in r.stderr,
                      r.stderr)
            if i:
                os.unlink(live)
            os.rename(away, live)

        # A FIFO planted at the live name: refused at once.  The daemon
        # used to block on its first read, and every request behind it.
        os.rename(live, away)
        os.mkfifo(live, 0o666)
        try:
            for what, argv in (("a snapshot request",
                                ["touch", os.path.join(sd, "on-fifo")]),
                               ("a stat of current.db", ["stat", cur])):
                hung, err = bounded(live, argv)
                ctx.check("live file replaced by a FIFO: %s returns at once"
                          % what, not hung, err)
        finally:
            os.unlink(live)
            os.rename(away, live)
    os.chmod(ctx.dir, 0o700)
    m.stop()


def bounded(fifo, argv, timeout=30):
    """Run argv; (hung, stderr).  When it is still running after timeout
    (a daemon blocked reading fifo), writers open and close fifo until the
    daemon's reads end and argv finishes."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        return False, p.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        pass
    while p.poll() is None:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        time.sleep(0.1)         # clean-up only: the daemon reads again
    return True, p.communicate()[1]


if __name__ == "__main__":
    mt.main("current_mode", body, mount=True)
