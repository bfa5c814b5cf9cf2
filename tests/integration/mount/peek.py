#!/usr/bin/env python3
"""
A peek at current.db copies nothing (issue 8 item 8; fs/DESIGN.md §1
"current.db open read-only").

To show a file's type a file manager opens it read-only and reads its
first bytes (GIO: `gio info -a standard::content-type`; the raw
interleaving: open, fstat, read 4096, sometimes a second open while the
first is still open, close).  The daemon used to copy the whole database
into its staging directory for that.  Now an open takes the size and the
first pages in one read transaction, and only a read beyond them copies
the rest, from the same transaction.  Checked, in the journal mode given
as the argument (delete or wal):

  * head -c 4096, gio's content-type sniff and the file manager's
    interleaving build no image: status.json's current_reads.images_built
    stays 0, and while the peeking files are open the daemon holds no
    staging image (/proc/PID/fd);
  * a handle that peeks, waits while an application commits, then reads
    on gets one whole state, the one at its open: size as fstat said,
    integrity_check clean, the counter and the balances of that state
    (not a mix of the old first pages and the new rest), and the rest was
    copied exactly once.  In rollback mode the application's commit goes
    through while the handle is still open (the held read lock is
    bounded); in WAL mode (wal_autocheckpoint=0) the image includes pages
    that are still in the WAL;
  * a restore through the mount (mv snapshots/X current.db) while a handle
    peeks goes through, and the handle still reads its state whole;
  * a database no larger than the first pages is read whole from them: cp
    gives the live state (WAL frames included) and builds no image;
  * nothing is left in the staging directory.
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

# One transaction per line on stdin: move 7 from account 1 to account 2,
# add a 3000-byte note (the database grows), count it.  The connection
# stays open with wal_autocheckpoint=0, so in WAL mode the commits stay in
# the WAL.  Prints "ready", then "done N" after each commit.
STEPPER = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=120, isolation_level=None)
db.execute("PRAGMA wal_autocheckpoint=0")
print("ready", flush=True)
n = 0
for line in sys.stdin:
    db.execute("BEGIN IMMEDIATE")
    db.execute("UPDATE accounts SET balance = balance - 7 WHERE id = 1")
    db.execute("UPDATE accounts SET balance = balance + 7 WHERE id = 2")
    db.execute("INSERT INTO notes(body) VALUES(?)", ("s" * 3000,))
    db.execute("UPDATE counter SET n = n + 1")
    db.execute("COMMIT")
    n += 1
    print("done", n, flush=True)
db.close()
"""


def reads(mnt):
    """status.json's account of read-only opens of current.db."""
    with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
        return json.load(f)["mount"].get("current_reads", {})


def built(mnt):
    """Whole images copied so far (None when the daemon does not say)."""
    return reads(mnt).get("images_built")


def staged_images(m):
    """The staging images the daemon has open (unlinked files)."""
    fds = "/proc/%d/fd" % m.proc.pid
    out = []
    for fd in os.listdir(fds):
        try:
            target = os.readlink(os.path.join(fds, fd))
        except OSError:
            continue
        if "/staging/image-" in target:
            out.append(target)
    return out


def staging_dir(live):
    return live + ".snapfs/staging"


def state(path):
    """(counter, balance of account 1, total, integrity) of a copy."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return (db.execute("SELECT n FROM counter").fetchone()[0],
                db.execute("SELECT balance FROM accounts WHERE id = 1"
                           ).fetchone()[0],
                db.execute("SELECT sum(balance) FROM accounts"
                           ).fetchone()[0],
                db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


def read_rest(fd, off):
    """Everything fd reads from off on, by read() as cp does."""
    os.lseek(fd, off, os.SEEK_SET)
    out = b""
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return out
        out += chunk


def peek_then(ctx, cur, between, name):
    """Open current.db, read its first 4096 bytes and fstat it, run
    between(), read the rest; (fstat's size, the bytes, their state)."""
    fd = os.open(cur, os.O_RDONLY)
    try:
        data = os.pread(fd, 4096, 0)
        size = os.fstat(fd).st_size
        between()
        data += read_rest(fd, len(data))
    finally:
        os.close(fd)
    out = ctx.path("%s-%s.db" % (name, MODE))
    with open(out, "wb") as f:
        f.write(data)
    return size, data, state(out)


def make_live(path, filler):
    want = mt.make_bank(path, accounts=500, mode=MODE, filler=filler)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE counter(n INTEGER)")
    db.execute("INSERT INTO counter VALUES(0)")
    db.commit()
    db.close()
    return want


class Stepper:
    """An application on the real path that commits when told to."""

    def __init__(self, ctx, live):
        self.p = ctx.spawn([sys.executable, "-c", STEPPER, live],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
        ctx.require("the application started",
                    self.p.stdout.readline().strip() == "ready")

    def commit(self):
        """One transaction; returns once it committed (its count)."""
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().split()
        if len(line) != 2 or line[0] != "done":
            raise mt.TestFailed("the application's commit failed: %r"
                                % line)
        return int(line[1])

    def close(self):
        self.p.stdin.close()
        self.p.wait(timeout=120)
        return self.p.returncode


def peek_phase(ctx, m, cur, live):
    """Peeks copy nothing."""
    r = subprocess.run(["head", "-c", "4096", cur], capture_output=True,
                       timeout=120)
    first = r.stdout
    ctx.check("head -c 4096 current.db gives a database header in "
              "rollback-journal mode", r.returncode == 0 and
              len(first) == 4096 and
              first[:16] == b"SQLite format 3\x00" and
              first[18:20] == b"\x01\x01", r.stderr)
    r = ctx.run(["gio", "info", "-a", "standard::content-type", cur])
    ctx.check("gio sniffs the content type (application/vnd.sqlite3)",
              r.returncode == 0 and "application/vnd.sqlite3" in r.stdout,
              r.stdout + r.stderr)

    # A file manager: open, fstat, read the first bytes; a second open
    # sniffs while the first is still open; then both close.
    fd1 = os.open(cur, os.O_RDONLY)
    try:
        size1 = os.fstat(fd1).st_size
        sniff1 = os.pread(fd1, 4096, 0)
        fd2 = os.open(cur, os.O_RDONLY)
        try:
            sniff2 = os.pread(fd2, 4096, 0)
            size2 = os.fstat(fd2).st_size
            held = staged_images(m)
        finally:
            os.close(fd2)
    finally:
        os.close(fd1)
    ctx.check("two file-manager sniffs see the same header and size "
              "(%d bytes)" % size1, sniff1 == sniff2 == first and
              size1 == size2 and size1 > 128 * 1024)
    ctx.check("while they were open the daemon held no staging image",
              not held, held)
    ctx.check("no image was built for head, gio or the sniffs "
              "(current_reads %s)" % reads(m.mnt), built(m.mnt) == 0)
    ctx.check("the staging directory is empty",
              os.listdir(staging_dir(live)) == [],
              os.listdir(staging_dir(live)))


def read_on_phase(ctx, m, cur, live, want):
    """A handle that peeks and then reads on gets the state at its open,
    whatever was committed in between."""
    app = Stepper(ctx, live)
    app.commit()
    before = built(m.mnt)
    main_at_open = os.path.getsize(live)

    def commit():
        n = app.commit()        # rollback: only once the hold ended
        ctx.check("the application committed while the peeking handle "
                  "was open (%d commits)" % n, n == 2)

    size, data, got = peek_then(ctx, cur, commit, "read-on")
    ctx.check("the handle read exactly the size fstat gave (%d)" % size,
              len(data) == size, "read %d" % len(data))
    ctx.check("and one whole state, the one at its open: counter 1, "
              "account 1 at 993, constant total, integrity ok "
              "(got %s)" % (got,), got == (1, 993, want, "ok"))
    ctx.check("the rest was copied once (images_built %s -> %s)"
              % (before, built(m.mnt)), built(m.mnt) == before + 1)
    if MODE == "wal":
        ctx.check("the image held pages still in the WAL (image %d bytes, "
                  "main file %d)" % (size, main_at_open),
                  size > main_at_open)
    live_state = state(live)
    ctx.check("the live database moved on meanwhile (counter %d)"
              % live_state[0], live_state[0] == 2)

    # Unchanged since: a peek and a whole copy agree byte for byte.
    r = subprocess.run(["head", "-c", "4096", cur], capture_output=True,
                       timeout=120)
    copy = ctx.path("cp-%s.db" % MODE)
    r2 = ctx.run(["cp", cur, copy])
    got = state(copy) if r2.returncode == 0 else None
    ctx.check("cp current.db gives the live state (counter 2, account 1 "
              "at 986), whose first 4096 bytes are head's",
              got == (2, 986, want, "ok") and
              mt.read_bytes(copy)[:4096] == r.stdout, (got, r2.stderr))
    ctx.check("the application exited cleanly", app.close() == 0)


def restore_phase(ctx, m, cur, live, want):
    """A restore through the mount while a handle peeks: the restore goes
    through (the held read transaction does not keep it waiting) and the
    handle still reads the state at its open."""
    r = ctx.run(["touch", os.path.join(m.mnt, "snapshots", "two")])
    snap = [n for n in mt.snapshots(m.mnt) if n.endswith("_two.db")]
    ctx.require("a snapshot of the state with counter 2",
                r.returncode == 0 and len(snap) == 1, r.stderr)
    db = sqlite3.connect(live, timeout=60)
    db.execute("UPDATE counter SET n = 3")
    db.commit()
    db.close()

    def restore():
        r = ctx.run(["mv", os.path.join(m.mnt, "snapshots", snap[0]), cur])
        ctx.check("mv snapshots/%s current.db restores while a handle "
                  "peeks" % snap[0], r.returncode == 0, r.stderr)

    size, data, got = peek_then(ctx, cur, restore, "restore")
    ctx.check("the peeking handle read its state whole (counter 3, %d "
              "bytes as fstat said; got %s, %d bytes)"
              % (size, got, len(data)),
              len(data) == size and got[0] == 3 and got[2:] == (want, "ok"))
    ctx.check("the live database is the restored state (counter 2)",
              state(live)[0] == 2 and mt.integrity(live) == "ok")


def small_phase(ctx, live):
    """A database no larger than the head is read from it alone."""
    small = ctx.path("small.db")
    make_live(small, filler=0)
    m = ctx.mount(small, mnt=ctx.path("mnt-small"))
    cur = os.path.join(m.mnt, "current.db")
    app = Stepper(ctx, small)
    app.commit()
    size = os.stat(cur).st_size
    copy = ctx.path("small-copy.db")
    r = ctx.run(["cp", cur, copy])
    got = state(copy) if r.returncode == 0 else None
    ctx.check("a %d-byte database: cp gives the live state, the commit "
              "kept in the WAL included (counter 1)" % size,
              size <= 128 * 1024 and got is not None and got[0] == 1 and
              got[3] == "ok" and mt.dump(copy) == mt.dump(small),
              (got, r.stderr))
    ctx.check("and builds no image (current_reads %s)" % reads(m.mnt),
              built(m.mnt) == 0)
    ctx.check("the application exited cleanly", app.close() == 0)
    m.stop()


def body(ctx):
    for prog in ("gio", "head", "cp"):
        if not shutil.which(prog):
            print("SKIP: %s is not installed" % prog)
            sys.exit(mt.SKIP)
    live = ctx.path("bank.db")
    want = make_live(live, filler=3000)
    m = ctx.mount(live)
    cur = os.path.join(m.mnt, "current.db")
    peek_phase(ctx, m, cur, live)
    read_on_phase(ctx, m, cur, live, want)
    restore_phase(ctx, m, cur, live, want)
    ctx.check("nothing is left in the staging directory",
              os.listdir(staging_dir(live)) == [],
              os.listdir(staging_dir(live)))
    m.stop()
    small_phase(ctx, live)


if __name__ == "__main__":
    mt.main("peek_" + MODE, body, mount=True)
