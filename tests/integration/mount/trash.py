#!/usr/bin/env python3
"""
The freedesktop trash at the mount's root (fs/DESIGN.md §5, ".Trash-UID/";
issue 8, item 7): a file manager's Delete key on snapshots/X, undone or
emptied, with the programs a desktop uses.

  * `gio trash snapshots/X` (g_file_trash: mkdir .Trash-0, info/X.trashinfo
    written first, then rename into files/) succeeds; X leaves snapshots/
    (and latest.db), waits in .Trash-0/files/ with its bytes and an info
    file naming snapshots/X; `snapctl list` says where it is;
  * a prune with keep rules neither deletes it nor counts it as a kept
    snapshot;
  * `mv .Trash-0/files/X snapshots/` and `gio trash --restore` (gvfs) put
    it back unchanged: same bytes, same created time, same kind;
  * the trashed state survives unmount and mount;
  * `gio trash --empty` (gvfs: files/X -> expunged/N, unlink) and `rm` in
    files/ delete it: gone from the catalog, its pages reclaimed, the store
    verifies;
  * the live database and latest.db cannot be trashed; an info file of a
    snapshot still in the trash cannot be removed alone.

gvfs (trash:///) runs on a D-Bus session bus of the test's own, with HOME
and XDG_DATA_HOME inside the test directory, in a mount namespace of its
own where the machine's other FUSE mounts are unmounted: gvfsd-trash looks
for a trash on every mount, and another test's daemon must not be able to
stall it.  Without gvfs those steps are done with the file operations
gvfsd-trash makes, and the test says so.
"""

import ctypes
import json
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

POLL = 30          # seconds a bounded poll may take
GVFSD_TRASH = "/usr/libexec/gvfsd-trash"


def listing(ctx, db):
    r = ctx.run([ctx.snapctl, "--db", db, "list", "--json"], timeout=60)
    if r.returncode != 0:
        raise mt.TestFailed("snapctl list: " + r.stderr)
    return {s["name"]: s for s in json.loads(r.stdout)}


def status(ctx, db):
    r = ctx.run([ctx.snapctl, "--db", db, "status", "--json"], timeout=60)
    if r.returncode != 0:
        raise mt.TestFailed("snapctl status: " + r.stderr)
    return json.loads(r.stdout)


def change(db, tag):
    """A commit on the real path, so the schedule takes a snapshot."""
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO items(tag, body) VALUES(?, ?)",
                 (tag, "changed " + tag * 40))
    conn.commit()
    conn.close()


def describe(r):
    return "exit %s\nstdout: %s\nstderr: %s" % (r.returncode, r.stdout,
                                                r.stderr)


class Desktop:
    """A session bus of our own, on which gio finds gvfs (gvfsd-trash
    behind trash:///) as on a desktop.  Everything it starts carries a
    marker in its environment, so what the bus activated is found and
    ended when the session stops."""

    def __init__(self, ctx, keep):
        self.ctx = ctx
        home = ctx.path("home")
        os.makedirs(home, exist_ok=True)
        self.marker = ctx.dir
        self.env = dict(os.environ, HOME=home,
                        XDG_DATA_HOME=os.path.join(home, ".local", "share"),
                        SNAPFS_TEST_DESKTOP=self.marker)
        self.env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        # The other mounts are listed inside the new namespace, so that
        # one made meanwhile (another test's remount) is not missed.
        self.proc = ctx.spawn(["unshare", "--mount", "--propagation",
                               "private", "--", sys.executable, "-c",
                               NAMESPACE_SCRIPT, os.path.realpath(keep),
                               os.path.dirname(os.path.abspath(mt.__file__))],
                              stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=self.env)
        # Readiness: the bus prints its address once it listens.
        r, _, _ = select.select([self.proc.stdout], [], [], POLL)
        line = self.proc.stdout.readline().decode().strip() if r else ""
        if not line:
            self.stop()
            raise mt.TestFailed("dbus-daemon gave no address")
        self.env["DBUS_SESSION_BUS_ADDRESS"] = line

    def gio(self, *args):
        return self.ctx.run(["gio"] + list(args), env=self.env, timeout=120)

    def started(self):
        """Processes the session started (the bus, gvfsd, gvfsd-trash)."""
        pids = []
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/environ" % p, "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            if ("SNAPFS_TEST_DESKTOP=" + self.marker).encode() in env:
                pids.append(int(p))
        return pids

    def stop(self):
        """End the bus; gvfs leaves with it (or is ended), and is reaped
        (a zombie's environment cannot be read: the pids are taken
        first)."""
        pids = [p for p in self.started() if p != self.proc.pid]
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=60)
        mt.poll(lambda: not alive(pids), 10)
        for pid in alive(pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        mt.poll(lambda: not alive(pids), 10)
        reap_orphans(self.ctx)


# Run by the Desktop's bus in its own mount namespace: lazily unmount
# every FUSE mount but argv[1] (this namespace's copies only), then become
# the session bus.
NAMESPACE_SCRIPT = """
import os, subprocess, sys
sys.path.insert(0, sys.argv[2])
import snaptest as mt
with open("/proc/self/mountinfo") as f:
    for line in f:
        left, _, right = line.partition(" - ")
        point = mt._unescape_mountinfo(left.split()[4])
        if right.split()[0].startswith("fuse") and point != sys.argv[1]:
            subprocess.run(["umount", "-l", point])
os.execvp("dbus-daemon", ["dbus-daemon", "--session", "--nofork",
                          "--print-address=1"])
"""


def alive(pids):
    """The pids that are not zombies."""
    out = []
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.append(pid)
        except OSError:
            pass
    return out


def reap_orphans(ctx):
    """Collect the zombies the bus left to us (we are their subreaper):
    our exited children that no Popen of ours waits for."""
    ours = {p.pid for p in ctx.children}
    ours |= {m.proc.pid for m in ctx.daemons if m.proc is not None}
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) in ours:
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            try:
                os.waitpid(int(p), os.WNOHANG)
            except ChildProcessError:
                pass


def gvfs_available():
    return (os.path.exists(GVFSD_TRASH) and shutil.which("dbus-daemon")
            is not None and shutil.which("unshare") is not None)


def trash(ctx, path):
    r = ctx.run(["gio", "trash", path])
    return r.returncode == 0, describe(r)


def check_trashed(ctx, m, db, name, sha):
    """name waits in .Trash-0/files, with its bytes and its info."""
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")
    tr = os.path.join(mnt, ".Trash-0")
    ctx.check("%s left snapshots/" % name, name not in os.listdir(sd),
              os.listdir(sd))
    f = os.path.join(tr, "files", name)
    ctx.check("it waits in .Trash-0/files/ with its bytes (sha256)",
              os.path.exists(f) and mt.sha256(f) == sha,
              os.listdir(os.path.join(tr, "files")))
    info = os.path.join(tr, "info", name + ".trashinfo")
    text = open(info).read() if os.path.exists(info) else ""
    ctx.check("info/%s.trashinfo names snapshots/%s and a DeletionDate"
              % (name, name),
              text.startswith("[Trash Info]\n") and
              "\nPath=snapshots/%s\n" % name in text and
              "\nDeletionDate=" in text, text)
    entry = listing(ctx, db).get(name)
    ctx.check("snapctl list --json says where it is",
              entry is not None and entry.get("trash") is not None and
              entry["trash"]["path"] == ".Trash-0/files/" + name, entry)
    r = ctx.run([ctx.snapctl, "--db", db, "list"])
    ctx.check("snapctl list marks it", r.returncode == 0 and
              (".Trash-0/files/" + name) in r.stdout, describe(r))


def check_back(ctx, m, db, name, sha, created, kind):
    """name is back in snapshots/ exactly as it was."""
    sd = os.path.join(m.mnt, "snapshots")
    p = os.path.join(sd, name)
    ctx.check("%s is back in snapshots/ with its bytes, created time and "
              "kind" % name,
              os.path.exists(p) and mt.sha256(p) == sha and
              mt.xattr(p, "created") == created and
              mt.xattr(p, "kind") == kind,
              os.listdir(sd))
    entry = listing(ctx, db).get(name)
    ctx.check("snapctl list: no longer in the trash",
              entry is not None and entry.get("trash") is None, entry)
    info = os.path.join(m.mnt, ".Trash-0", "info", name + ".trashinfo")
    ctx.check("its info file is gone", not os.path.exists(info))


def body(ctx):
    if not shutil.which("gio"):
        print("SKIP: gio (libglib2.0-bin) is not installed")
        sys.exit(mt.SKIP)
    # gvfs's daemons outlive the bus that started them by a moment: be
    # their reaper (PR_SET_CHILD_SUBREAPER) rather than leave zombies.
    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    db = ctx.path("app.db")
    mt.make_db(db, "live", rows=20)
    m = ctx.mount(db, options=["every=1s"])
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")

    # Two automatic snapshots (the schedule), then a manual one.
    def autos():
        return sorted(n for n, s in listing(ctx, db).items()
                      if s["kind"] == "auto")
    change(db, "a")
    ctx.require("the schedule takes a first automatic snapshot",
                len(mt.poll(autos, POLL)) == 1, autos())
    change(db, "b")
    mt.poll(lambda: len(autos()) >= 2, POLL)
    ctx.require("and a second one", len(autos()) >= 2, autos())
    # A commit racing with a snapshot leaves the schedule's mark behind, and
    # the next tick rightly takes another one (engine/schedule.c): end the
    # schedule before anything here depends on which snapshot is newest.
    m.stop()
    m = ctx.mount(db)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")
    a1, a2 = autos()[-2:]
    r = ctx.run(["touch", os.path.join(sd, "by-hand")])
    ctx.require("touch takes a manual snapshot", r.returncode == 0,
                describe(r))
    man = [n for n in mt.snapshots(mnt) if n.endswith("_by-hand.db")][0]
    facts = {}
    for n in (a1, a2, man):
        p = os.path.join(sd, n)
        facts[n] = (mt.sha256(p), mt.xattr(p, "created"),
                    mt.xattr(p, "kind"))

    # The Delete key.
    ok, why = trash(ctx, os.path.join(sd, a2))
    ctx.require("gio trash snapshots/<newest auto> succeeds", ok, why)
    st = os.lstat(os.path.join(mnt, ".Trash-0"))
    ctx.check(".Trash-0 is a directory of uid 0, mode 0700, no symlink",
              os.path.isdir(os.path.join(mnt, ".Trash-0")) and
              not os.path.islink(os.path.join(mnt, ".Trash-0")) and
              st.st_uid == 0 and (st.st_mode & 0o7777) == 0o700,
              oct(st.st_mode))
    check_trashed(ctx, m, db, a2, facts[a2][0])

    # Out of retention's reach, and not a kept snapshot either: last:1
    # keeps a1 (the newest automatic snapshot not in the trash).
    r = ctx.run([ctx.snapctl, "--db", db, "prune", "--keep", "last:1"])
    names = listing(ctx, db)
    ctx.check("prune --keep last:1 deletes nothing: a2 is in the trash, a1 "
              "is the one kept", r.returncode == 0 and a1 in names and
              a2 in names and names[a2]["trash"] is not None,
              describe(r) + "\n" + str(sorted(names)))

    # Moving it back by hand restores it.
    r = ctx.run(["mv", os.path.join(mnt, ".Trash-0", "files", a2), sd + "/"])
    ctx.check("mv .Trash-0/files/X snapshots/ succeeds", r.returncode == 0,
              describe(r))
    check_back(ctx, m, db, a2, *facts[a2])

    # What cannot go to the trash.
    before = mt.sha256(db)
    ok, why = trash(ctx, os.path.join(mnt, "current.db"))
    ctx.check("gio trash current.db fails, the live database untouched",
              not ok and mt.sha256(db) == before and
              os.path.exists(os.path.join(mnt, "current.db")), why)
    ok, why = trash(ctx, os.path.join(sd, "latest.db"))
    ctx.check("gio trash snapshots/latest.db fails",
              not ok and os.path.islink(os.path.join(sd, "latest.db")), why)

    # Trashing the newest snapshot moves latest.db; the state survives a
    # remount.
    ok, why = trash(ctx, os.path.join(sd, man))
    ctx.require("gio trash snapshots/<manual> succeeds", ok, why)
    ctx.check("latest.db no longer names it",
              os.readlink(os.path.join(sd, "latest.db")) == a2,
              os.readlink(os.path.join(sd, "latest.db")))
    info = os.path.join(mnt, ".Trash-0", "info", man + ".trashinfo")
    r = ctx.run(["rm", "-f", info])
    ctx.check("its info file cannot be removed while it is in the trash",
              r.returncode != 0 and os.path.exists(info), describe(r))
    m.stop()
    m = ctx.mount(db)
    print("# unmounted and mounted again")
    check_trashed(ctx, m, db, man, facts[man][0])

    if gvfs_available():
        desk = Desktop(ctx, mnt)
        try:
            r = desk.gio("trash", "--list")
            line = [l for l in r.stdout.splitlines()
                    if l.endswith("\t" + os.path.join(sd, man))]
            ctx.check("gio trash --list shows it with its original path",
                      r.returncode == 0 and len(line) == 1, describe(r))
            uri = line[0].split("\t")[0] if line else ""
            r = desk.gio("info", "-a", "trash::orig-path", uri)
            ctx.check("gio info shows trash::orig-path",
                      r.returncode == 0 and
                      ("trash::orig-path: " + os.path.join(sd, man))
                      in r.stdout, describe(r))
            r = desk.gio("trash", "--restore", uri)
            ctx.check("gio trash --restore succeeds", r.returncode == 0,
                      describe(r))
        finally:
            desk.stop()
    else:
        print("# gvfs (gvfsd-trash, dbus-daemon) is not installed: "
              "restoring and emptying as gvfsd-trash does, by rename and "
              "unlink")
        r = ctx.run(["mv", os.path.join(mnt, ".Trash-0", "files", man),
                     os.path.join(sd, man)])
        ctx.check("mv back to the original path succeeds",
                  r.returncode == 0, describe(r))
    check_back(ctx, m, db, man, *facts[man])

    # Emptying the trash deletes for good.
    ok, why = trash(ctx, os.path.join(sd, man))
    ctx.require("gio trash snapshots/<manual> again", ok, why)
    ok, why = trash(ctx, os.path.join(sd, a1))
    ctx.require("gio trash snapshots/<older auto>", ok, why)
    before = status(ctx, db)
    r = ctx.run(["rm", os.path.join(mnt, ".Trash-0", "files", a1)])
    ctx.check("rm .Trash-0/files/X deletes it", r.returncode == 0 and
              a1 not in listing(ctx, db), describe(r))
    if gvfs_available():
        desk = Desktop(ctx, mnt)
        try:
            r = desk.gio("trash", "--empty")
            ctx.check("gio trash --empty succeeds", r.returncode == 0,
                      describe(r))
            # gvfsd-trash expunges in a thread of its own, after replying.
            mt.poll(lambda: man not in listing(ctx, db), POLL)
        finally:
            desk.stop()
    else:
        tr = os.path.join(mnt, ".Trash-0")
        os.makedirs(os.path.join(tr, "expunged"), exist_ok=True)
        os.rename(os.path.join(tr, "files", man),
                  os.path.join(tr, "expunged", "4242"))
        os.unlink(os.path.join(tr, "expunged", "4242"))
    after = status(ctx, db)
    ctx.check("the emptied snapshots are gone from the catalog",
              man not in listing(ctx, db) and a1 not in listing(ctx, db),
              sorted(listing(ctx, db)))
    ctx.check("their pages are reclaimed",
              after["store_bytes"] < before["store_bytes"] and
              after["snapshots"] == before["snapshots"] - 2,
              (before["store_bytes"], after["store_bytes"]))
    tr = os.path.join(mnt, ".Trash-0")
    ctx.check("files/, info/ and expunged/ are empty",
              all(os.listdir(os.path.join(tr, d)) == []
                  for d in ("files", "info", "expunged")),
              [os.listdir(os.path.join(tr, d))
               for d in ("files", "info", "expunged")])
    r = ctx.run([ctx.snapctl, "--db", db, "verify", "--full"])
    ctx.check("the store verifies", r.returncode == 0, describe(r))
    ctx.check("a2 is untouched", mt.sha256(os.path.join(sd, a2)) ==
              facts[a2][0])
    m.stop()


if __name__ == "__main__":
    mt.main("trash", body, mount=True)
