#!/usr/bin/env python3
"""
tests/integration/desktop/trial.py — the desktop user's flow, driven in a
real file manager (Thunar) on a virtual display.  A manual check: CI does
not run it (it needs Xvfb, Thunar and xdotool, and its screenshots are
compared by eye); see README.md beside it.

What a person with only a file manager does, each gesture made with the
keyboard as a user would make it, then checked two ways: the state of the
mount and the store (automatic "ok"/"not ok" lines, as the mount tests
print them) and a screenshot (OUTDIR/NN-name.png) to look at:

  01 browse the root                  nothing created, nothing logged
  02 open snapshots/                  the snapshot taken before the trial
  03 File > Create Document > Empty File "before-upgrade"
                                      exactly one manual snapshot
  04 a snapshot taken by snapctl      the listing's mtime moves; two
     (another process)                shots: before and after F5
  05 F2 rename to pre-upgrade-KEEP.db exactly that name, no ghost entry
  06 copy a snapshot, paste into      a verified restore of it; restore/
     restore/                         stays empty, no duplicate snapshot
  07 Delete key on a snapshot         it moves to the trash (.Trash-0/files)
  08 cut it from .Trash-0/files, paste
     into snapshots/                  undo: back, same bytes
  09 Shift+Delete in snapshots/       deleted for good after the dialog

Usage (as root, after building):
  SNAPFS=build/fs/snapfs SNAPCTL=build/tools/snapctl \\
      python3 tests/integration/desktop/trial.py [OUTDIR]
Exit status 0 when every state check passed; the screenshots are the rest.
"""

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import snaptest as mt  # noqa: E402

NEEDED = ("Xvfb", "thunar", "xdotool", "import", "dbus-launch", "gio")


class Desktop:
    """Xvfb, a session bus and one Thunar window, stopped on cleanup."""

    def __init__(self, ctx, outdir):
        self.ctx = ctx
        self.outdir = outdir
        self.env = dict(os.environ)
        self.procs = []
        self.shot_no = 0

    def start(self, folder):
        # Xvfb writes the display number to -displayfd once it accepts
        # connections: the readiness signal.
        r, w = os.pipe()
        x = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0",
                              "1280x800x24", "-nolisten", "tcp"],
                             pass_fds=(w,), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(x)
        os.close(w)
        num = b""
        while not num.endswith(b"\n"):
            c = os.read(r, 16)
            if not c:
                raise mt.TestFailed("Xvfb exited before it was ready")
            num += c
        os.close(r)
        self.env["DISPLAY"] = ":" + num.decode().strip()
        self.env["NO_AT_BRIDGE"] = "1"
        bus = subprocess.run(["dbus-launch", "--sh-syntax"], env=self.env,
                             capture_output=True, text=True, check=True)
        for line in bus.stdout.splitlines():
            if line.startswith("DBUS_SESSION_BUS_ADDRESS="):
                self.env["DBUS_SESSION_BUS_ADDRESS"] = \
                    line.split("=", 1)[1].rstrip(";").strip("'")
            if line.startswith("DBUS_SESSION_BUS_PID="):
                self.bus_pid = int(line.split("=", 1)[1].rstrip(";"))
        t = subprocess.Popen(["thunar", folder], env=self.env,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.procs.append(t)
        self.win = mt.poll(lambda: self.xdo("search", "--onlyvisible",
                                            "--class", "Thunar"), 30)
        if not self.win:
            raise mt.TestFailed("no Thunar window appeared")
        self.win = self.win.split()[0]
        # No window manager: focus the window and keep the pointer on it.
        self.xdo("windowsize", self.win, "1200", "700")
        self.xdo("windowfocus", "--sync", self.win)
        self.point_at(self.win)

    def xdo(self, *args):
        r = subprocess.run(["xdotool"] + list(args), env=self.env,
                           capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""

    def windows(self):
        """The visible Thunar windows: {id: name} (menus have no name)."""
        out = {}
        for w in self.xdo("search", "--onlyvisible", "--class",
                          "Thunar").split():
            out[w] = self.xdo("getwindowname", w)
        return out

    def point_at(self, win):
        """No window manager: keyboard focus follows the pointer, so
        put the pointer in the middle of the window that should type."""
        geo = dict(line.split("=", 1) for line in
                   self.xdo("getwindowgeometry", "--shell",
                            win).splitlines() if "=" in line)
        self.xdo("mousemove", str(int(geo["X"]) + int(geo["WIDTH"]) // 2),
                 str(int(geo["Y"]) + int(geo["HEIGHT"]) // 2))

    def dialog(self, prefix):
        """Wait for a window whose title starts with prefix; point at it."""
        w = mt.poll(lambda: next((i for i, n in self.windows().items()
                                  if n.startswith(prefix)), None), 15)
        if not w:
            raise mt.TestFailed("no %r window appeared (have %s)"
                                % (prefix, self.windows()))
        self.point_at(w)
        return w

    def closed(self, win):
        """Wait for a dialog to go, then point at the main window."""
        mt.poll(lambda: win not in self.windows(), 15)
        self.point_at(self.win)

    def popups(self, n):
        """Wait until n menus (nameless windows) are open."""
        mt.poll(lambda: sum(1 for v in self.windows().values() if not v)
                >= n, 10)

    def keys(self, *keys):
        for k in keys:
            self.xdo("key", "--delay", "60", k)

    def type(self, text):
        self.xdo("type", "--delay", "30", text)

    def go(self, path):
        """Ctrl+L, the path, Return: what a user types to go somewhere;
        done when the window's title names the folder."""
        self.keys("ctrl+l")
        self.type(path)
        self.keys("Return")
        want = os.path.basename(path.rstrip("/")) + " - Thunar"
        if not mt.poll(lambda: self.xdo("getwindowname", self.win) == want,
                       15):
            raise mt.TestFailed("Thunar did not open %s" % path)
        self.keys("Escape")     # the focus back to the view

    def select(self, pattern):
        """Edit > Select by Pattern (Ctrl+S)."""
        self.keys("ctrl+s")
        w = self.dialog("Select by Pattern")
        self.type(pattern)
        self.keys("Return")
        self.closed(w)

    def new_file(self, name):
        """File > Create Document > Empty File, then the name."""
        self.keys("alt+f")
        self.popups(1)
        self.keys("d")
        self.popups(2)
        self.keys("Return")
        w = self.dialog("New Empty File")
        self.keys("ctrl+a")
        self.type(name)
        self.keys("Return")
        self.closed(w)

    def rename(self, name):
        """F2, the new name, Return."""
        self.keys("F2")
        w = self.dialog("Rename")
        self.keys("ctrl+a")
        self.type(name)
        self.keys("Return")
        self.closed(w)

    def shot(self, name):
        self.shot_no += 1
        path = os.path.join(self.outdir, "%02d-%s.png" % (self.shot_no,
                                                           name))
        subprocess.run(["import", "-window", "root", path], env=self.env,
                       check=False)
        print("# screenshot %s" % path)
        return path

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if getattr(self, "bus_pid", None):
            try:
                os.kill(self.bus_pid, 15)
            except ProcessLookupError:
                pass


def body(ctx):
    missing = [p for p in NEEDED if not shutil.which(p)]
    if missing:
        print("SKIP: needs %s (apt-get install xvfb thunar xdotool "
              "imagemagick dbus-x11 libglib2.0-bin)" % ", ".join(missing))
        sys.exit(mt.SKIP)
    outdir = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                             "desktop-trial")
    os.makedirs(outdir, exist_ok=True)
    live = ctx.path("app.db")
    mt.make_db(live, "live", rows=200)
    ctl = [ctx.snapctl, "--db", live]
    ctx.require("a snapshot before the trial",
                ctx.run(ctl + ["create", "--label", "first"]).returncode
                == 0)
    m = ctx.mount(live)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")
    d = Desktop(ctx, outdir)
    try:
        trial(ctx, d, m, mnt, sd, live, ctl)
    finally:
        d.stop()


def names(sd):
    return sorted(n for n in os.listdir(sd) if n != "latest.db")


def trial(ctx, d, m, mnt, sd, live, ctl):
    before = names(sd)
    d.start(mnt)
    d.shot("root")
    ctx.check("01 browsing the root creates no snapshot",
              names(sd) == before, names(sd))

    d.go(sd)
    d.shot("snapshots")

    # 03 New file.
    d.new_file("before-upgrade")
    made = mt.poll(lambda: [n for n in names(sd) if "before-upgrade" in n],
                   30)
    d.shot("new-file")
    ctx.check("03 Empty File takes exactly one manual snapshot",
              made and len(made) == 1 and
              mt.kinds(mnt).get(made[0]) == "manual", mt.kinds(mnt))

    # 04 Another process takes a snapshot.
    mtime = os.stat(sd).st_mtime_ns
    ctx.check("04 snapctl create beside the mount",
              ctx.run(ctl + ["create", "--label", "by-snapctl"]).returncode
              == 0)
    ctx.check("04 snapshots/ mtime moves",
              mt.poll(lambda: os.stat(sd).st_mtime_ns != mtime, 15))
    d.shot("after-snapctl-no-F5")
    d.keys("F5")
    d.shot("after-snapctl-F5")

    # 05 Rename.
    if made:
        d.select("*before-upgrade*")
        d.rename("pre-upgrade-KEEP.db")
        ok = mt.poll(lambda: "pre-upgrade-KEEP.db" in names(sd), 15)
        d.shot("renamed")
        ctx.check("05 the snapshot takes exactly the typed name",
                  ok and not [n for n in names(sd) if "before-upgrade" in n],
                  names(sd))

    # 06 Restore by paste into restore/.
    first = [n for n in names(sd) if n.endswith("_first.db")]
    n_before = len(names(sd))
    app = mt.count_rows(live)
    subprocess.run(["sqlite3", live, "DELETE FROM items WHERE id > 10"],
                   check=True)
    ctx.check("06 (the live database changed)", mt.count_rows(live) < app)
    d.select("*_first.db")
    d.keys("ctrl+c")
    d.go(os.path.join(mnt, "restore"))
    d.keys("ctrl+v")
    ok = mt.poll(lambda: mt.count_rows(live) == app, 30)
    d.shot("restore-paste")
    ctx.check("06 pasting a snapshot into restore/ restores it", ok,
              m.text()[-2000:])
    ctx.check("06 restore/ is empty afterwards",
              os.listdir(os.path.join(mnt, "restore")) == [])
    kinds = mt.kinds(mnt)
    ctx.check("06 only the safety snapshot was added",
              len(names(sd)) == n_before + 1 and
              sorted(kinds.values()).count("import") == 0, kinds)

    # 07 Delete key: to the trash.
    d.go(sd)
    victim = first[0] if first else None
    if victim:
        data = mt.sha256(os.path.join(sd, victim))
        d.select(victim)
        d.keys("Delete")
        trash = os.path.join(mnt, ".Trash-0", "files")
        ok = mt.poll(lambda: victim not in names(sd) and
                     os.path.exists(os.path.join(trash, victim)), 30)
        d.shot("trashed")
        ctx.check("07 the Delete key moves the snapshot to the trash", ok,
                  m.text()[-2000:])

        # 08 Undo: from the trash back into snapshots/.
        d.go(trash)
        d.select(victim)
        d.keys("ctrl+x")
        d.go(sd)
        d.keys("ctrl+v")
        ok = mt.poll(lambda: victim in names(sd), 30)
        d.shot("undone")
        ctx.check("08 moved back from the trash, same bytes",
                  ok and mt.sha256(os.path.join(sd, victim)) == data)

        # 09 Shift+Delete: gone for good.
        d.select(victim)
        d.keys("shift+Delete")
        w = d.dialog("Attention")
        d.shot("delete-dialog")
        d.keys("Return")
        d.closed(w)
        ok = mt.poll(lambda: victim not in names(sd), 30)
        d.shot("deleted")
        ctx.check("09 Shift+Delete deletes the snapshot", ok)
    r = ctx.run(ctl + ["verify"])
    ctx.check("the store verifies after the trial", r.returncode == 0,
              r.stdout + r.stderr)


if __name__ == "__main__":
    mt.main("desktop-trial", body, mount=True)
