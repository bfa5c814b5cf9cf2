#!/usr/bin/env python3
"""
Every program that copies current.db by its size gets a whole database,
while an application writes in WAL mode (issue 7 item 1; fs/DESIGN.md §1
"current.db stat": a reader never sees a size that disagrees with the
bytes it reads).

In WAL mode committed pages can sit in the WAL: the main file is smaller
than the consistent image a read returns.  rsync, tar, gio copy and
Python's shutil.copyfile read exactly st_size bytes (fstat after open; gio
and shutil splice, which stops at the kernel's size), and sqlite3 sizes the
file with fstat: with the main file's size they made malformed copies.

A writer process with wal_autocheckpoint=0 keeps committing on the real
path (each transaction moves money between accounts, so the total is
constant, and adds a row, so the image grows past the main file).
Meanwhile, several rounds of: rsync, tar (then extract), gio copy,
shutil.copyfile, and sqlite3 -readonly on current.db in place.  Every copy
must pass integrity_check with the constant total, and some copy must be
larger than the main file (the WAL really held pages).  Also:

  * a process that opens current.db in one thread and fstats it in another
    (as GIO does) sees the size of what its descriptor reads;
  * with the writer idle but its WAL still there, stat() says exactly the
    number of bytes a read returns, more than the main file holds;
  * a rollback database whose file is longer than its page count says
    (trailing bytes) shows the image's size, and rsync copies it whole;
  * a commit in WAL mode moves current.db's mtime, so a second rsync -a
    backup carries it.
"""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)
from copy_under_load import WRITER

ROUNDS = 5

def copy_rsync(ctx, cur, out):
    r = ctx.run(["rsync", cur, out])
    return out, r.returncode == 0, r.stderr


def copy_tar(ctx, cur, out):
    tar = out + ".tar"
    outdir = out + ".d"
    os.makedirs(outdir)
    r = ctx.run(["tar", "cf", tar, "-C", os.path.dirname(cur),
                 os.path.basename(cur)])
    if r.returncode != 0:
        return None, False, "tar cf: exit %d %s" % (r.returncode, r.stderr)
    r = ctx.run(["tar", "xf", tar, "-C", outdir])
    return (os.path.join(outdir, "current.db"), r.returncode == 0,
            "tar xf: " + r.stderr)


def copy_gio(ctx, cur, out):
    r = ctx.run(["gio", "copy", cur, out])
    return out, r.returncode == 0, r.stderr


def copy_shutil(ctx, cur, out):
    try:
        shutil.copyfile(cur, out)
    except OSError as e:
        return out, False, str(e)
    return out, True, ""


def copy_problem(path, want):
    """None when the copy is a whole database with the constant total."""
    try:
        ic = mt.integrity(path)
        tot = mt.total(path) if ic == "ok" else None
    except sqlite3.DatabaseError as e:
        ic, tot = str(e), None
    if ic == "ok" and tot == want:
        return None
    return "integrity %r, total %s (%d bytes)" % (ic[:200], tot,
                                                  os.path.getsize(path))


COPIERS = [("rsync", copy_rsync), ("tar", copy_tar), ("gio copy", copy_gio),
           ("shutil.copyfile", copy_shutil)]


def fstat_in_other_thread(cur):
    """Open in this thread, fstat in another; (fstat size, bytes read)."""
    fd = os.open(cur, os.O_RDONLY)
    try:
        got = []
        t = threading.Thread(target=lambda: got.append(os.fstat(fd).st_size))
        t.start()
        t.join()
        data = b""
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            data += chunk
        return got[0], len(data)
    finally:
        os.close(fd)


def load_phase(ctx):
    live = ctx.path("bank.db")
    want = mt.make_bank(live, accounts=500, mode="wal", filler=50)
    m = ctx.mount(live)
    cur = os.path.join(m.mnt, "current.db")
    stop = ctx.path("stop")
    w = ctx.spawn([sys.executable, "-c", WRITER, live, str(ctx.seed), stop,
                   "grow"],
                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    ctx.require("the WAL writer started",
                w.stdout.readline().strip() == "ready")

    bad, sizes = [], []
    for rnd in range(ROUNDS):
        for name, copier in COPIERS:
            out = ctx.path("copy-%d-%s.db" % (rnd, name.split()[0]))
            path, ok, err = copier(ctx, cur, out)
            if not ok:
                bad.append("%s round %d failed: %s" % (name, rnd, err))
                continue
            problem = copy_problem(path, want)
            if problem:
                bad.append("%s round %d: %s" % (name, rnd, problem))
            sizes.append(os.path.getsize(path))
        r = ctx.run(["sqlite3", "-readonly", cur,
                     "PRAGMA integrity_check; "
                     "SELECT sum(balance) FROM accounts;"])
        if r.returncode != 0 or r.stdout.split() != ["ok", str(want)]:
            bad.append("sqlite3 -readonly current.db round %d: %r %r"
                       % (rnd, r.stdout[:300], r.stderr[:300]))
        st, n = fstat_in_other_thread(cur)
        if st != n:
            bad.append("round %d: fstat from another thread says %d bytes, "
                       "the descriptor reads %d" % (rnd, st, n))
    main = os.path.getsize(live)
    ctx.check("%d rounds of rsync, tar, gio copy, shutil.copyfile and "
              "sqlite3 -readonly on current.db while a WAL writer commits: "
              "every copy passes integrity_check with the constant total"
              % ROUNDS, not bad, "\n".join(bad))
    ctx.check("the copies were of a moving database and held pages still "
              "in the WAL (main file %d bytes; %d copy sizes up to %d)"
              % (main, len(set(sizes)), max(sizes or [0])),
              len(set(sizes)) > 1 and max(sizes) > main)

    # The writer stops committing but keeps its WAL.
    open(stop, "w").close()
    line = w.stdout.readline().split()
    ctx.require("the writer stopped after committing", len(line) == 2 and
                line[0] == "stopped" and int(line[1]) > ROUNDS, line)
    size = os.stat(cur).st_size
    data = mt.read_bytes(cur)
    main = os.path.getsize(live)
    ctx.check("idle WAL database: stat says %d bytes, a read returns %d, "
              "the main file has %d" % (size, len(data), main),
              size == len(data) and size > main)
    w.stdin.close()
    w.wait(timeout=120)
    ctx.check("the writer exited cleanly", w.returncode == 0)
    ctx.check("the live database is intact with the constant total",
              mt.integrity(live) == "ok" and mt.total(live) == want)
    m.stop()


def trailing_bytes_phase(ctx):
    live = ctx.path("long.db")
    mt.make_db(live, "long", rows=200)
    db = sqlite3.connect(live)
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    with open(live, "ab") as f:
        f.write(b"\x5a" * 5000)
    ctx.require("SQLite ignores the trailing bytes",
                mt.integrity(live) == "ok")
    m = ctx.mount(live, mnt=ctx.path("mnt2"))
    cur = os.path.join(m.mnt, "current.db")
    size = os.stat(cur).st_size
    n = len(mt.read_bytes(cur))
    ctx.check("a file longer than its page count: stat says %d, a read "
              "returns %d, page_count * page_size = %d (file %d)"
              % (size, n, pages * page_size, os.path.getsize(live)),
              size == n == pages * page_size)
    out = ctx.path("long-copy.db")
    r = ctx.run(["rsync", cur, out])
    try:
        same = mt.integrity(out) == "ok" and mt.dump(out) == mt.dump(live)
    except sqlite3.DatabaseError as e:
        same = False
        r.stderr += str(e)
    ctx.check("rsync copies it whole", r.returncode == 0 and same, r.stderr)
    m.stop()


def rsync_again_phase(ctx):
    """rsync -a skips a file whose size and mtime are unchanged: a commit
    in WAL mode writes only the -wal, so current.db's mtime is its
    content's (the newer of the file's and its -wal's), or a second rsync
    backup of a changed database would silently keep the old bytes."""
    live = ctx.path("walrsync.db")
    db = sqlite3.connect(live)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t(v) VALUES (?)",
                   [("row %04d" % i,) for i in range(200)])
    db.commit()
    m = ctx.mount(live, mnt=ctx.path("mnt3"))
    cur = os.path.join(m.mnt, "current.db")
    # Both files an hour old: the commit below is newer than either,
    # whatever the clock's granularity (no waiting for a tick).
    old = os.stat(live).st_mtime - 3600
    for f in (live, live + "-wal"):
        os.utime(f, (old, old))
    before = os.stat(cur)
    bk = ctx.path("bk")
    os.makedirs(bk)
    r1 = ctx.run(["rsync", "-a", cur, bk + "/"])
    db.execute("UPDATE t SET v = 'changed' WHERE id = 7")   # same size
    db.commit()
    after = os.stat(cur)
    ctx.check("a WAL commit (the main file untouched) moves current.db's "
              "mtime (%d -> %d ns), its size unchanged (%d)"
              % (before.st_mtime_ns, after.st_mtime_ns, after.st_size),
              after.st_mtime_ns > before.st_mtime_ns and
              after.st_size == before.st_size and
              os.stat(live).st_mtime_ns < after.st_mtime_ns)
    r2 = ctx.run(["rsync", "-a", cur, bk + "/"])
    got = None
    try:
        c = sqlite3.connect(os.path.join(bk, "current.db"))
        got = c.execute("SELECT v FROM t WHERE id = 7").fetchone()
        c.close()
    except sqlite3.DatabaseError as e:
        got = str(e)
    ctx.check("a second rsync -a of current.db after a WAL commit carries "
              "the change (got %r)" % (got,), r1.returncode == 0 and
              r2.returncode == 0 and got == ("changed",),
              r1.stderr + r2.stderr)
    db.close()
    m.stop()


def body(ctx):
    for prog in ("rsync", "tar", "gio", "sqlite3"):
        if not shutil.which(prog):
            print("SKIP: %s is not installed" % prog)
            sys.exit(mt.SKIP)
    load_phase(ctx)
    trailing_bytes_phase(ctx)
    rsync_again_phase(ctx)


if __name__ == "__main__":
    mt.main("copy_tools_wal", body, mount=True)
