"""
tests/integration/mount/mounttest.py — shared helpers for the mount tests
(Python 3 standard library only).

Every test mounts snapfs for real ($SNAPFS, run as root) on a private
directory, drives it with the programs people use (cp, mv, rsync, gio,
touch, sqlite3), checks what fs/DESIGN.md §1 promises, and exits 0 (pass),
77 (skip) or 1 (fail).  Each check prints "ok N - ..." or "not ok N - ...".

Rules these helpers keep:
  * readiness is a signal, not a sleep: the daemon runs with -f and the
    helper reads its stderr until the "serving ..." line it prints once the
    mount is up;
  * every mount is undone on the way out, whatever happened: fusermount3 -u,
    then fusermount3 -uz, then SIGTERM/SIGKILL to the daemon, then wait;
    "mounted" means an exact mount point in /proc/self/mountinfo;
  * the daemon's stderr is kept, printed on failure, and scanned for
    sanitizer reports (a report fails the test);
  * nothing asserts on wall-clock time (timeouts only bound a hang);
  * SNAPFS_TEST_KEEP=1 keeps the directory.
"""

import hashlib
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SKIP = 77
READY_TIMEOUT = 60      # seconds a mount may take to come up
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer",
                   "UndefinedBehaviorSanitizer", "runtime error:",
                   "ThreadSanitizer")


class TestFailed(Exception):
    """A check failed hard; the message says which."""


def _unescape_mountinfo(s):
    """Undo the octal escapes of /proc/self/mountinfo."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 1 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def is_mounted(path):
    """True when path is exactly a mount point (dead FUSE mounts too)."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == path:
                return True
    return False


def fuse_type(path):
    """The filesystem type of mount point path, or None."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == path:
                return right.split()[0]
    return None


class Mount:
    """One snapfs daemon in the foreground, its stderr collected."""

    def __init__(self, ctx, db, mnt, store=None, options=()):
        self.ctx = ctx
        self.db = db
        self.mnt = mnt
        self.store = store
        self.options = list(options)
        self.proc = None
        self.log = []
        self.reader = None

    def argv(self):
        argv = [self.ctx.snapfs, "-f"]
        for o in self.options:
            argv += ["-o", o]
        if self.store:
            argv += ["-o", "store=" + self.store]
        return argv + [self.db, self.mnt]

    def start(self):
        """Start and wait for the ready line; raise if the daemon dies."""
        os.makedirs(self.mnt, exist_ok=True)
        self.log = []
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.ctx.daemons.append(self)
        fd = self.proc.stderr.fileno()
        buf = b""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TestFailed("snapfs did not come up within %ds:\n%s"
                                 % (READY_TIMEOUT, self.text()))
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                self.log.append(buf.decode(errors="replace"))
                self.proc.wait()
                raise TestFailed("snapfs exited %s before mounting:\n%s"
                                 % (self.proc.returncode, self.text()))
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.decode(errors="replace")
                self.log.append(line)
                if line.startswith("snapfs: serving "):
                    self.reader = threading.Thread(target=self._drain,
                                                   args=(buf,), daemon=True)
                    self.reader.start()
                    if not is_mounted(self.mnt):
                        raise TestFailed("ready line but no mount at %s"
                                         % self.mnt)
                    return self

    def _drain(self, rest):
        data = rest
        fd = self.proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                self.log.append(line.decode(errors="replace"))
        if data:
            self.log.append(data.decode(errors="replace"))

    def text(self):
        return "\n".join("    | " + l for l in self.log)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, expect_clean=True):
        """Unmount and reap; check the exit status and the stderr."""
        if self.proc is None:
            return
        rc = unmount(self.mnt)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.reader:
            self.reader.join(timeout=10)
        status = self.proc.returncode
        self.proc = None
        if expect_clean:
            self.ctx.check("daemon unmounted cleanly (fusermount3 -u: %s, "
                           "exit %s)" % (rc, status),
                           rc == 0 and status == 0, self.text())
        self.check_sanitizers()

    def kill(self):
        """SIGKILL the daemon, then lazily unmount what it left."""
        if self.proc is None:
            return
        self.proc.kill()
        self.proc.wait()
        if self.reader:
            self.reader.join(timeout=10)
        self.proc = None
        subprocess.run(["fusermount3", "-uz", self.mnt],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.check_sanitizers()

    def check_sanitizers(self):
        bad = [l for l in self.log if any(m in l for m in SANITIZER_MARKS)]
        if bad:
            self.ctx.check("no sanitizer report in the daemon's stderr",
                           False, self.text())

    def has_log(self, needle):
        return any(needle in l for l in self.log)


def unmount(mnt):
    """fusermount3 -u, then -uz; returns the first one's status."""
    if not is_mounted(mnt):
        return 0
    r = subprocess.run(["fusermount3", "-u", mnt], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if r.returncode != 0 and is_mounted(mnt):
        subprocess.run(["fusermount3", "-uz", mnt],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode


class Ctx:
    """One test run: its directory, its mounts, its checks."""

    def __init__(self, name):
        self.name = name
        self.snapfs = os.environ.get("SNAPFS", "")
        self.snapctl = os.environ.get("SNAPCTL", "")
        if not self.snapfs or not os.access(self.snapfs, os.X_OK):
            print("SKIP: $SNAPFS is not set to an executable snapfs (%r)"
                  % self.snapfs)
            sys.exit(SKIP)
        if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
            print("SKIP: mount tests need root and /dev/fuse")
            sys.exit(SKIP)
        if not shutil.which("fusermount3"):
            print("SKIP: fusermount3 is not installed")
            sys.exit(SKIP)
        self.dir = tempfile.mkdtemp(prefix="snapfs-mount-%s-" % name)
        self.daemons = []
        self.children = []
        self.nchecks = 0
        self.nfail = 0
        seed = os.environ.get("SNAPFS_TEST_SEED")
        self.seed = int(seed) if seed else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        print("# %s: directory %s, seed %d" % (name, self.dir, self.seed))
        sys.stdout.flush()

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def check(self, desc, cond, detail=None):
        self.nchecks += 1
        if cond:
            print("ok %d - %s" % (self.nchecks, desc))
        else:
            self.nfail += 1
            print("not ok %d - %s" % (self.nchecks, desc))
            if detail:
                for line in str(detail).rstrip().splitlines():
                    print("#   " + line)
        sys.stdout.flush()
        return cond

    def require(self, desc, cond, detail=None):
        if not self.check(desc, cond, detail):
            raise TestFailed(desc)

    def mount(self, db, mnt=None, store=None, options=()):
        return Mount(self, db, mnt or self.path("mnt"), store,
                     options).start()

    def run(self, argv, timeout=300, input=None, env=None, cwd=None):
        """Run a real program; returns CompletedProcess (text)."""
        return subprocess.run(argv, input=input, capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=cwd)

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.children.append(p)
        return p

    def cleanup(self):
        for p in self.children:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        for m in self.daemons:
            unmount(m.mnt)
            if m.proc is not None and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGTERM)
                try:
                    m.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait()
            if is_mounted(m.mnt):
                subprocess.run(["fusermount3", "-uz", m.mnt])
            m.check_sanitizers()
        if os.environ.get("SNAPFS_TEST_KEEP"):
            print("# kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self):
        for m in self.daemons:
            print("# daemon stderr (%s):" % m.mnt)
            print(m.text())


def main(name, body):
    """Run body(ctx); turn the outcome into the exit status."""
    ctx = Ctx(name)
    rc = 0
    try:
        body(ctx)
    except TestFailed as e:
        print("# stopped: %s" % e)
        ctx.nfail += 1
    except Exception:
        traceback.print_exc(file=sys.stdout)
        ctx.nfail += 1
    finally:
        if ctx.nfail:
            ctx.dump_logs()
        ctx.cleanup()
    if ctx.nfail:
        print("# %s: %d checks, %d failed -> FAIL"
              % (name, ctx.nchecks, ctx.nfail))
        rc = 1
    else:
        print("# %s: %d checks -> PASS" % (name, ctx.nchecks))
    sys.stdout.flush()
    sys.exit(rc)


# ---- databases -----------------------------------------------------------

def make_bank(path, accounts=50, balance=1000, mode="delete", filler=0):
    """A database of accounts whose balances always sum to a constant."""
    if os.path.exists(path):
        os.unlink(path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=%s" % mode)
    db.execute("CREATE TABLE accounts(id INTEGER PRIMARY KEY, "
               "balance INTEGER NOT NULL)")
    db.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
    db.executemany("INSERT INTO accounts VALUES(?, ?)",
                   [(i, balance) for i in range(accounts)])
    for i in range(filler):
        db.execute("INSERT INTO notes(body) VALUES(?)",
                   ("note %d " % i + "x" * 200,))
    db.commit()
    db.close()
    return accounts * balance


def make_db(path, tag, rows=20):
    """A small rollback-mode database whose content names tag."""
    if os.path.exists(path):
        os.unlink(path)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE items(id INTEGER PRIMARY KEY, tag TEXT, "
               "body TEXT)")
    db.executemany("INSERT INTO items(tag, body) VALUES(?, ?)",
                   [(tag, "%s row %d %s" % (tag, i, "y" * (i % 50)))
                    for i in range(rows)])
    db.commit()
    db.close()


def dump(path):
    """The logical content of a database (schema and rows)."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=120)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def count_rows(path, immutable=False, table="items"):
    """Rows of `table` in the database at path, read-only."""
    uri = "file:%s?mode=ro%s" % (path, "&immutable=1" if immutable else "")
    db = sqlite3.connect(uri, uri=True, timeout=120)
    try:
        return db.execute("SELECT count(*) FROM \"%s\"" % table
                          ).fetchone()[0]
    finally:
        db.close()


def poll(fn, timeout=60):
    """fn() until it is truthy or the deadline passed; its last value.
    For what the daemon does after replying (on_failure, timers): the
    deadline only bounds a hang, nothing asserts how long it took."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(0.1)


def integrity(path, immutable=False):
    uri = "file:%s?mode=ro%s" % (path, "&immutable=1" if immutable else "")
    db = sqlite3.connect(uri, uri=True, timeout=120)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def total(path, immutable=False):
    uri = "file:%s?mode=ro%s" % (path, "&immutable=1" if immutable else "")
    db = sqlite3.connect(uri, uri=True, timeout=120)
    try:
        return db.execute("SELECT sum(balance) FROM accounts").fetchone()[0]
    finally:
        db.close()


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# ---- the mount -----------------------------------------------------------

# What the mount root always holds (fs/DESIGN.md §1, "Mount root"), sorted;
# anything else there is a staging file.
ROOT_FIXED = [".snapfs", "current.db", "restore", "snapshots"]


def root_staging(mnt):
    """Names in the mount root beyond the fixed ones, sorted."""
    return sorted(n for n in os.listdir(mnt) if n not in ROOT_FIXED)


def snapshots(mnt):
    """Names in snapshots/ (without latest.db), sorted."""
    return sorted(n for n in os.listdir(os.path.join(mnt, "snapshots"))
                  if n != "latest.db")


def snapshot_of(ctx, mnt, src, tag, after):
    """Restore the database src onto current.db, take a snapshot labelled
    tag of it, then restore the database after (the live database moves
    on); the snapshot's name."""
    cur = os.path.join(mnt, "current.db")
    r = ctx.run(["cp", src, cur])
    ctx.require("setup: cp %s onto current.db" % tag, r.returncode == 0,
                r.stderr)
    r = ctx.run(["touch", os.path.join(mnt, "snapshots", tag)])
    ctx.require("setup: touch snapshots/%s" % tag, r.returncode == 0,
                r.stderr)
    names = [n for n in snapshots(mnt) if n.endswith("_%s.db" % tag)]
    ctx.require("setup: snapshot %s listed" % tag, len(names) == 1, names)
    r = ctx.run(["cp", after, cur])
    ctx.require("setup: live moved on", r.returncode == 0, r.stderr)
    return names[0]


def xattr(path, key):
    return os.getxattr(path, "user.snapfs." + key).decode()


def kinds(mnt):
    """{name: kind} of every snapshot."""
    return {n: xattr(os.path.join(mnt, "snapshots", n), "kind")
            for n in snapshots(mnt)}
