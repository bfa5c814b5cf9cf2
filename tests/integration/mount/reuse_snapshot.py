#!/usr/bin/env python3
"""
`cp current.db` reuses a snapshot's image when the database has not
changed since that snapshot (issue 9; fs/livereuse.c).

Checked through a real mount, in the journal mode given as the argument
(delete or wal), on a database larger than a peek's head (so that an open
that is not served by a snapshot copies the database into staging and
counts it in status.json's current_reads.images_built):

  * touch snapshots/one, then cp current.db: the copy is byte for byte
    snapshots/one, `sqlite3 -readonly` opens it (integrity_check ok), and
    no image was built: current_reads.snapshots_reused moved by one,
    images_built did not (the cp added nothing to the staging directory);
  * one row written with sqlite3 to the live file directly: cp current.db
    has the row (no stale reuse), and an image was built;
  * a snapshot of that state: the image already built for it is shared
    (nothing reused, nothing built);
  * then the row deleted again (the content goes back to the older one):
    cp gives the state without the row, not the snapshot's;
  * a snapshot taken by snapctl outside the daemon proves nothing: an open
    after it is not served by it;
  * the reused snapshot deleted (snapctl delete, its pages reclaimed) while
    a handle that read its first bytes from it is open: the handle reads on
    (from a copy of the unchanged database) and gets the snapshot's bytes;
    and an open after the delete is not served by it;
  * the same with a commit after the delete: the handle's state is gone,
    the read fails (EIO), never a mix of two states;
  * a restore through the mount (mv snapshots/X current.db) ends the reuse
    of the snapshot taken before it.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

MODE = sys.argv[1] if len(sys.argv) > 1 else "delete"


def reads(mnt):
    """status.json's account of read-only opens of current.db."""
    with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
        return json.load(f)["mount"].get("current_reads", {})


def counts(mnt):
    """(snapshots_reused, images_built); None where the daemon is silent."""
    r = reads(mnt)
    return r.get("snapshots_reused"), r.get("images_built")


def rows(path):
    """The notes in a copy, by id (and its integrity)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return ([r[0] for r in db.execute("SELECT id FROM notes ORDER BY id")],
                db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def write(live, sql):
    """One transaction with the sqlite3 shell on the live file."""
    r = subprocess.run(["sqlite3", live, sql], capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        raise mt.TestFailed("sqlite3 %s: %s" % (sql, r.stderr))


class Run:
    def __init__(self, ctx, m, live):
        self.ctx, self.m, self.live = ctx, m, live
        self.cur = os.path.join(m.mnt, "current.db")
        self.n = 0

    def snap(self, label):
        """touch snapshots/LABEL; the new snapshot's name."""
        before = set(mt.snapshots(self.m.mnt))
        r = self.ctx.run(["touch", os.path.join(self.m.mnt, "snapshots",
                                                label)])
        new = [n for n in mt.snapshots(self.m.mnt)
               if n not in before and n.endswith("_%s.db" % label)]
        self.ctx.require("touch snapshots/%s takes a snapshot" % label,
                         r.returncode == 0 and len(new) == 1, r.stderr)
        return new[0]

    def cp(self, what):
        """cp current.db out; (path, counts before, counts after)."""
        self.n += 1
        out = self.ctx.path("cp-%d-%s.db" % (self.n, what))
        before = counts(self.m.mnt)
        r = self.ctx.run(["cp", self.cur, out])
        self.ctx.require("cp current.db (%s)" % what, r.returncode == 0,
                         r.stderr)
        return out, before, counts(self.m.mnt)


def reused(before, after):
    """Whether the open was served by a snapshot's image and built
    nothing."""
    return (before[0] is not None and after[0] == before[0] + 1 and
            after[1] == before[1])


def sqlite3_ro(path):
    r = subprocess.run(["sqlite3", "-readonly", path,
                        "PRAGMA integrity_check"], capture_output=True,
                       text=True, timeout=120)
    return r.returncode, r.stdout.strip(), r.stderr.strip()


def unchanged_phase(ctx, t, staging):
    one = t.snap("one")
    snapfile = os.path.join(t.m.mnt, "snapshots", one)
    # The file `touch` made waits in staging until the kernel forgets its
    # inode, which it does when it likes: what counts is that the cp adds
    # nothing there.
    left = set(os.listdir(staging))
    copy, before, after = t.cp("unchanged")
    ctx.check("cp current.db right after touch snapshots/one is byte for "
              "byte snapshots/%s" % one,
              mt.read_bytes(copy) == mt.read_bytes(snapfile))
    ctx.check("and was read from the snapshot, nothing built (current_reads "
              "%s -> %s)" % (before, after), reused(before, after))
    ctx.check("the cp added nothing to the staging directory",
              set(os.listdir(staging)) <= left, (sorted(left),
                                                 os.listdir(staging)))
    code, out, err = sqlite3_ro(copy)
    ctx.check("sqlite3 -readonly opens the copy (integrity_check ok)",
              code == 0 and out == "ok", (code, out, err))
    ctx.check("the copy has the live content", mt.dump(copy) ==
              mt.dump(t.live))
    return one


def changed_phase(ctx, t):
    ids, _ = rows(t.live)
    write(t.live, "INSERT INTO notes(body) VALUES('new row')")
    new_id = rows(t.live)[0][-1]
    copy, before, after = t.cp("one-row")
    got, ok = rows(copy)
    ctx.check("after one row written to the live file, cp current.db has "
              "it (row %d) and is intact" % new_id,
              new_id in got and ok == "ok" and got == ids + [new_id])
    ctx.check("and was not served by the snapshot (current_reads %s -> %s)"
              % (before, after), after[0] == before[0] and
              after[1] == before[1] + 1)

    # A snapshot of that state: the image already built for it is shared
    # (splicing it costs less than decoding the snapshot).
    t.snap("with-row")
    again, before, after = t.cp("built-shared")
    ctx.check("a snapshot after a cp: the next cp shares the image built "
              "(current_reads %s -> %s)" % (before, after),
              after == before and
              mt.read_bytes(again) == mt.read_bytes(copy))

    # Then the row deleted: back to the older content; the newer snapshot
    # must not be served.
    write(t.live, "DELETE FROM notes WHERE id = %d" % new_id)
    copy, before, after = t.cp("row-deleted")
    got, ok = rows(copy)
    ctx.check("after the row is deleted again, cp current.db has the older "
              "content, not the snapshot's (%d rows)" % len(got),
              got == ids and ok == "ok")
    ctx.check("and was not served by a snapshot (current_reads %s -> %s)"
              % (before, after), after[0] == before[0])


def snapctl_phase(ctx, t):
    write(t.live, "INSERT INTO notes(body) VALUES('before snapctl')")
    r = ctx.sc("create", "--label", "outside", db=t.live)
    ctx.require("snapctl create from another process", r.returncode == 0,
                mt.describe(r))
    copy, before, after = t.cp("after-snapctl")
    ctx.check("a snapshot snapctl took outside the daemon is not reused "
              "(current_reads %s -> %s)" % (before, after),
              after[0] == before[0])
    ctx.check("and the copy is the live content", mt.dump(copy) ==
              mt.dump(t.live))


def deleted_phase(ctx, t, commit):
    """Open, read the first bytes (from the snapshot), delete the
    snapshot, optionally commit, read on."""
    write(t.live, "INSERT INTO notes(body) VALUES('before the snapshot')")
    name = t.snap("gone-%s" % ("commit" if commit else "same"))
    snapfile = os.path.join(t.m.mnt, "snapshots", name)
    want = mt.read_bytes(snapfile)
    before = counts(t.m.mnt)
    fd = os.open(t.cur, os.O_RDONLY)
    err = None
    try:
        data = os.pread(fd, 4096, 0)
        mid = counts(t.m.mnt)
        ctx.check("an open right after the snapshot reads it (current_reads "
                  "%s -> %s)" % (before, mid), reused(before, mid))
        r = ctx.sc("delete", name, db=t.live)
        ctx.require("snapctl delete %s while a reader has it open" % name,
                    r.returncode == 0, mt.describe(r))
        if commit:
            write(t.live, "INSERT INTO notes(body) VALUES('after delete')")
        # Another snapshot, which may take the reclaimed page ids.
        write_other = ctx.sc("create", "--label", "other", db=t.live)
        ctx.require("snapctl create", write_other.returncode == 0,
                    mt.describe(write_other))
        try:
            while True:
                chunk = os.pread(fd, 1 << 20, len(data))
                if not chunk:
                    break
                data += chunk
            again = os.pread(fd, 4096, 0)
        except OSError as e:
            err = e
    finally:
        os.close(fd)
    if commit:
        ctx.check("with a commit after the delete, reading on fails (EIO) "
                  "rather than mixing two states (%s)" % err,
                  err is not None and err.errno == 5)
    else:
        ctx.check("with the snapshot deleted under it, the reader reads on "
                  "and gets the snapshot's bytes (%d of %d; %s)"
                  % (len(data), len(want), err),
                  err is None and data == want)
        ctx.check("and its first page read again is still the snapshot's "
                  "(the header a copy of the database would have differs)",
                  err is None and again == want[:4096])
        ctx.check("the daemon said it read on from a copy",
                  t.m.has_log("reading on from a copy"), t.m.text())
    copy, before, after = t.cp("after-delete")
    ctx.check("an open after the delete is not served by it (current_reads "
              "%s -> %s)" % (before, after), after[0] == before[0])
    ctx.check("and gives the live content", mt.dump(copy) == mt.dump(t.live))


def restore_phase(ctx, t, one):
    t.snap("before-restore")
    r = ctx.run(["mv", os.path.join(t.m.mnt, "snapshots", one), t.cur])
    ctx.require("mv snapshots/%s current.db restores" % one,
                r.returncode == 0, r.stderr)
    copy, before, after = t.cp("after-restore")
    ctx.check("after a restore through the mount, the snapshot taken before "
              "it is not served (current_reads %s -> %s)" % (before, after),
              after[0] == before[0])
    ctx.check("and cp gives the restored content",
              mt.dump(copy) == mt.dump(t.live))


def body(ctx):
    for prog in ("sqlite3", "cp", "touch"):
        if not shutil.which(prog):
            print("SKIP: %s is not installed" % prog)
            sys.exit(mt.SKIP)
    if not ctx.snapctl:
        print("SKIP: $SNAPCTL is not set")
        sys.exit(mt.SKIP)
    live = ctx.path("app.db")
    mt.make_bank(live, accounts=200, mode=MODE, filler=3000)
    db = sqlite3.connect(live)
    db.execute("CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, "
               "body TEXT)")
    db.executemany("INSERT INTO notes(body) VALUES(?)",
                   [("n" * 2000,) for _ in range(100)])
    db.commit()
    db.close()
    ctx.require("the database is larger than a peek's head",
                os.path.getsize(live) > 256 * 1024)
    m = ctx.mount(live)
    t = Run(ctx, m, live)
    staging = live + ".snapfs/staging"
    one = unchanged_phase(ctx, t, staging)
    changed_phase(ctx, t)
    snapctl_phase(ctx, t)
    deleted_phase(ctx, t, commit=False)
    deleted_phase(ctx, t, commit=True)
    restore_phase(ctx, t, one)
    ctx.check("nothing is left in the staging directory",
              os.listdir(staging) == [], os.listdir(staging))
    m.stop()


if __name__ == "__main__":
    mt.main("reuse_snapshot_" + MODE, body, mount=True)
