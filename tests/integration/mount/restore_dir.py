#!/usr/bin/env python3
"""
restore/, the drop folder (fs/DESIGN.md §4, "restore/";
issue 8 item 4): copying or moving a snapshot or any database file into
restore/ restores it onto the live database, as a copy or rename onto
current.db would, and the file does not stay there.

One check group per gesture a person or a file manager makes:
  cp snapshots/X restore/, cp other.db restore/, cat other.db > restore/y,
  gio copy snapshots/X restore/, gio copy other.db restore/,
  mv snapshots/X restore/ and gio move snapshots/X restore/ (a rename
  within the mount: X stays in snapshots/), mv x.db restore/ (from another
  filesystem: copy, then the source is removed), rsync x.db restore/
  (a dot-named temporary file, then a rename), and a file manager's
  interleaving (a read-only open sniffing the file while it is written).
Each must leave the live database equal to the source and passing
integrity_check, add one pre-restore snapshot, log the restore like a
restore onto current.db, and leave restore/ empty.

Refusals: gio copy, cp and rsync of a file that is not a database fail
(close() or rename() reports it), the live database is byte-for-byte
unchanged, no snapshot is added, the daemon log and the event history say
why, and restore/ is empty again.

Safety: restore/ and the files in it are never wider than the database
(0600 here).
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "original", rows=30)
    os.chmod(live, 0o600)
    m = ctx.mount(live)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")
    rd = os.path.join(mnt, "restore")
    out = ctx.path("outside")
    os.makedirs(out)

    st = os.stat(rd)
    ctx.check("restore/ is listed in the root and is a directory",
              "restore" in os.listdir(mnt) and os.path.isdir(rd),
              os.listdir(mnt))
    ctx.check("restore/ of a 0600 database is 0700",
              (st.st_mode & 0o7777) == 0o700, oct(st.st_mode))
    ctx.check("restore/ starts empty", os.listdir(rd) == [], os.listdir(rd))

    def source(tag, rows):
        p = os.path.join(out, tag + ".db")
        mt.make_db(p, tag, rows=rows)
        return p

    def snapshot_of(tag, rows):
        """A snapshot holding tag's rows; the live database moves on."""
        return mt.snapshot_of(ctx, mnt, source(tag, rows), tag,
                              source(tag + "-after", rows + 5))

    def pre_restores():
        return sum(1 for k in mt.kinds(mnt).values() if k == "pre-restore")

    def verify(what, r, expect, before, logged):
        ctx.check("%s exits 0" % what, r.returncode == 0,
                  r.stdout + r.stderr)
        ctx.check("%s: the live database equals the source" % what,
                  mt.dump(live) == expect)
        ctx.check("%s: the live database passes integrity_check" % what,
                  mt.integrity(live) == "ok")
        ctx.check("%s: one pre-restore snapshot was taken" % what,
                  pre_restores() == before + 1,
                  "%d -> %d" % (before, pre_restores()))
        ctx.check("%s: restore/ is empty again" % what,
                  os.listdir(rd) == [], os.listdir(rd))
        ctx.check("%s: logged as a restore of current.db (%s)"
                  % (what, logged),
                  mt.poll(lambda: m.has_log("restored current.db from " +
                                            logged), 10), m.text())

    # Each gesture: (what, the source is a snapshot or a file outside,
    # the command, how the log names the source).
    cases = [
        ("cp snapshots/X restore/", "snapshot",
         lambda p: ["cp", p, rd + "/"], "written"),
        ("cp other.db restore/", "outside",
         lambda p: ["cp", p, rd + "/"], "written"),
        # The shell closes a first descriptor before any byte comes.
        ("cat other.db > restore/X", "outside",
         lambda p: ["bash", "-c", 'cat "$1" > "$2"', "-", p,
                    os.path.join(rd, os.path.basename(p))], "written"),
        # What a file manager's paste does.
        ("gio copy snapshots/X restore/", "snapshot",
         lambda p: ["gio", "copy", p, rd + "/"], "written"),
        ("gio copy other.db restore/", "outside",
         lambda p: ["gio", "copy", p, rd + "/"], "written"),
        # A rename within the mount: the snapshot stays.
        ("mv snapshots/X restore/", "snapshot",
         lambda p: ["mv", p, rd + "/"], "snapshot"),
        ("gio move snapshots/X restore/", "snapshot",
         lambda p: ["gio", "move", p, rd + "/"], "snapshot"),
        # From another filesystem: a copy, then the source goes.
        ("mv x.db restore/", "outside",
         lambda p: ["mv", p, rd + "/"], "written"),
        # A dot-named temporary file, renamed onto the plain name.
        ("rsync x.db restore/", "outside",
         lambda p: ["rsync", p, rd + "/"], "renamed"),
    ]
    for i, (what, origin, argv, logged) in enumerate(cases):
        tag = "case-%d" % i
        if origin == "snapshot":
            src = os.path.join(sd, snapshot_of(tag, 11 + i))
        else:
            src = source(tag, 11 + i)
        name = os.path.basename(src)
        expect, before = mt.dump(src), pre_restores()
        r = ctx.run(argv(src))
        verify(what, r, expect, before, {
            "written": "the file written to restore/" + name,
            "renamed": "the file restore/" + name,
            "snapshot": "snapshot " + name}[logged])
        if origin == "snapshot":
            ctx.check("%s: X stays listed in snapshots/" % what,
                      name in mt.snapshots(mnt), mt.snapshots(mnt))
            ctx.check("%s: X still reads the same in snapshots/" % what,
                      mt.dump(src) == expect)
            ctx.check("%s: restore/X does not resolve" % what,
                      not os.path.exists(os.path.join(rd, name)))
        elif what.startswith("mv"):
            ctx.check("%s: the source is removed" % what,
                      not os.path.exists(src))

    # A file manager sniffs a file while it is being copied: one restore.
    src = source("sniffed", 19)
    expect, before = mt.dump(src), pre_restores()
    target = os.path.join(rd, "sniffed.db")
    wfd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    ctx.check("a file being written in restore/ is not wider than the "
              "database (0600)",
              (os.fstat(wfd).st_mode & 0o7777) == 0o600,
              oct(os.fstat(wfd).st_mode))
    os.write(wfd, mt.read_bytes(src))
    rfd = os.open(target, os.O_RDONLY)
    head = os.read(rfd, 16)
    os.close(rfd)
    ctx.check("the reader saw the bytes being written",
              head == b"SQLite format 3\0", head)
    os.close(wfd)

    class Done:
        returncode, stdout, stderr = 0, "", ""
    verify("write with a reader sniffing", Done(), expect, before,
           "the file written to restore/sniffed.db")

    # Refusals: not a database.
    bad = os.path.join(out, "bad.db")
    with open(bad, "wb") as f:
        f.write(bytes(ctx.rng.randrange(256) for _ in range(8192)))
    live_sha = mt.sha256(live)
    snaps = mt.snapshots(mnt)
    for what, argv in (
            ("gio copy", ["gio", "copy", bad, rd + "/"]),
            ("cp", ["cp", bad, rd + "/"]),
            ("rsync", ["rsync", bad, rd + "/"])):
        r = ctx.run(argv)
        what = "%s of a file that is not a database" % what
        ctx.check("%s fails" % what, r.returncode != 0, r.stdout + r.stderr)
        ctx.check("%s: the error reaches the user" % what,
                  "Invalid argument" in r.stderr, r.stderr)
        ctx.check("%s: the live database is byte-for-byte unchanged" % what,
                  mt.sha256(live) == live_sha)
        ctx.check("%s: no snapshot is added" % what,
                  mt.snapshots(mnt) == snaps,
                  set(mt.snapshots(mnt)) ^ set(snaps))
        ctx.check("%s: restore/ is empty again" % what,
                  os.listdir(rd) == [], os.listdir(rd))
    ctx.check("the refusals are logged with the reason",
              m.has_log("restore of current.db from the file written to "
                        "restore/bad.db refused") and
              m.has_log("is not a SQLite database"), m.text())
    with open(os.path.join(mnt, ".snapfs", "log")) as f:
        log = f.read()
    ctx.check("the event history records the refusal",
              any("FAILED" in l and "restore/bad.db" in l
                  for l in log.splitlines()), log)

    # Two restores through the mount at once wait their turn: both
    # succeed (fs/DESIGN.md §3), the live database is one of the two.
    a, b = source("first", 31), source("second", 32)
    before = pre_restores()
    pa = ctx.spawn(["cp", a, rd + "/"], stderr=subprocess.PIPE, text=True)
    pb = ctx.spawn(["cp", b, os.path.join(mnt, "current.db")],
                   stderr=subprocess.PIPE, text=True)
    ea, eb = pa.communicate(timeout=120)[1], pb.communicate(timeout=120)[1]
    ctx.check("two restores at once through the mount both succeed",
              pa.returncode == 0 and pb.returncode == 0, ea + eb)
    ctx.check("two restores at once: two pre-restore snapshots",
              pre_restores() == before + 2, mt.kinds(mnt))
    ctx.check("two restores at once: the live database is one of the two",
              mt.dump(live) in (mt.dump(a), mt.dump(b)) and
              mt.integrity(live) == "ok")

    # Tools that set the copy's mode and times after its close (Python's
    # shutil.copy and copy2, install -m): the file left restore/ at the
    # close, restored, and the chmod/utime that follows must not fail.
    for i, (what, argv) in enumerate(mt.mode_setting_copiers(rd)):
        src = source("copier%d" % i, 40 + i)
        before = pre_restores()
        r = ctx.run(argv(src))
        ctx.check("%s into restore/ exits 0" % what, r.returncode == 0,
                  r.stdout + r.stderr)
        ctx.check("%s: the live database equals the source" % what,
                  mt.dump(live) == mt.dump(src))
        ctx.check("%s: one pre-restore snapshot" % what,
                  pre_restores() == before + 1)
        ctx.check("%s: restore/ lists nothing, and the name does not "
                  "resolve for another process" % what,
                  os.listdir(rd) == [] and
                  not os.path.exists(os.path.join(rd, os.path.basename(src))),
                  os.listdir(rd))

    # The name is free again for that process once its mode is set: the
    # same script copying the same name twice restores twice.
    src = source("twice", 44)
    before = pre_restores()
    r = ctx.run([sys.executable, "-c", "import shutil, sys\n"
                 "for i in range(2): shutil.copy(sys.argv[1], sys.argv[2])",
                 src, rd + "/"])
    ctx.check("shutil.copy twice of one name in one process: exit 0, two "
              "restores", r.returncode == 0 and
              pre_restores() == before + 2, r.stdout + r.stderr)

    ctx.check("no staging file is left in the root",
              mt.root_staging(mnt) == [], os.listdir(mnt))
    m.stop()


if __name__ == "__main__":
    mt.main("restore_dir", body, mount=True)
