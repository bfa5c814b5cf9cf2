"""
tests/integration/snaptest.py — the one helper library of the Python
integration tests (Python 3 standard library only): the engine tests
(tests/integration/engine: snapctl against real databases, no mount), the
mount tests (tests/integration/mount: snapfs mounted for real, driven with
cp, mv, rsync, gio, touch, sqlite3), tests/integration/desktop/trial.py and
tests/bench/crash_sweep.py.  A test puts this directory on sys.path and
imports it (engine tests as `st` or `snaptest`, mount tests as `mt`).

Every test runs the real programs ($SNAPCTL, and $SNAPFS as root for a
mount) in a private temporary directory, checks what they promise, and
exits 0 (pass), 77 (skip) or 1 (fail).  Each check prints "ok N - ..." or
"not ok N - ...", so a failing run says what broke.

One calling convention, the same as the shell library's `check`:
  ctx.check(description, condition, detail=None)   record, go on
  ctx.require(description, condition, detail=None) record, stop on failure
  ctx.run(argv, ...)                                any program
  ctx.sc(*snapctl_args, db=, store=, json_out=)     snapctl
  ctx.sc_ok(*snapctl_args, what=..., ...)           snapctl, must exit 0
  ctx.s3_start(env)                                 a real S3 server
  main(name, body)              engine test: needs $SNAPCTL
  main(name, body, mount=True)  mount test: needs $SNAPFS, root, /dev/fuse

Rules these helpers keep for every test:
  * nothing sleeps to wait for readiness: children report through pipes,
    and a mount is ready when the daemon (run with -f) prints its
    "serving ..." line on stderr;
  * every mount is undone on the way out, whatever happened: fusermount3 -u,
    then fusermount3 -uz, then SIGTERM/SIGKILL to the daemon, then wait;
    "mounted" means an exact mount point in /proc/self/mountinfo;
  * the daemon's stderr is kept, printed on failure, and scanned for
    sanitizer reports (a report fails the test);
  * nothing asserts on wall-clock time (timeouts only bound a hang);
  * every child process is killed and reaped, and the directory removed,
    on the way out (set SNAPFS_TEST_KEEP=1 to keep the directory); SIGTERM
    (meson's timeout) runs the same cleanup;
  * randomness is seeded from $SNAPFS_TEST_SEED when set, and the seed is
    printed, so a failing run can be repeated.
"""

import hashlib
import json
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
S3_TEST_SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                              "..", "..", "tools", "s3-test-server")
SQLITE_MAGIC = b"SQLite format 3\x00"
READY_TIMEOUT = 60      # seconds a mount may take to come up
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer",
                   "UndefinedBehaviorSanitizer", "runtime error:",
                   "ThreadSanitizer")


class TestFailed(Exception):
    """A check failed hard; the message says which.  counted: the failed
    check was already counted (ctx.require)."""

    def __init__(self, msg, counted=False):
        super().__init__(msg)
        self.counted = counted


# ---- mounts ----------------------------------------------------------------

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
        """snapfs -f [-o option]... [-o store=...] db mnt."""
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
        """Keep collecting the daemon's stderr lines until it closes."""
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
        """The daemon's stderr so far, indented for a report."""
        return "\n".join("    | " + l for l in self.log)

    def running(self):
        """True while the daemon process lives."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, expect_clean=True):
        """Unmount and reap; check the exit status and the stderr."""
        if self.proc is None:
            return
        rc = unmount(self.mnt)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            terminate(self.proc)
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
        """Fail the test when the daemon's stderr holds a sanitizer report."""
        bad = [l for l in self.log if any(m in l for m in SANITIZER_MARKS)]
        if bad:
            self.ctx.check("no sanitizer report in the daemon's stderr",
                           False, self.text())

    def has_log(self, needle, timeout=30):
        """True when a line of the daemon's stderr contains needle.  The
        stderr is read by a thread, so a line the daemon wrote just before
        replying may not be here yet: wait for it (bounded; a missing line
        costs the timeout, a present one nothing)."""
        return poll(lambda: any(needle in l for l in self.log), timeout)


def terminate(proc):
    """SIGTERM, 30 s to exit, then SIGKILL; reaped either way."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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


# ---- the test run ----------------------------------------------------------

def skip(why):
    """Report why the test cannot run here and exit 77 (skip)."""
    print("SKIP: " + why)
    sys.exit(SKIP)


class Ctx:
    """One test run: its directory, its children and mounts, its checks.

    mount=False (an engine test) needs an executable $SNAPCTL; mount=True
    (a mount test) needs an executable $SNAPFS, root, /dev/fuse and
    fusermount3, and leaves $SNAPCTL to the test."""

    def __init__(self, name, mount=False):
        self.name = name
        self.snapfs = os.environ.get("SNAPFS", "")
        self.snapctl = os.environ.get("SNAPCTL", "")
        if mount:
            if not self.snapfs or not os.access(self.snapfs, os.X_OK):
                skip("$SNAPFS is not set to an executable snapfs (%r)"
                     % self.snapfs)
            if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
                skip("mount tests need root and /dev/fuse")
            if not shutil.which("fusermount3"):
                skip("fusermount3 is not installed")
        elif not self.snapctl or not os.access(self.snapctl, os.X_OK):
            skip("$SNAPCTL is not set to an executable snapctl (%r)"
                 % self.snapctl)
        self.dir = tempfile.mkdtemp(prefix="snapfs-%s%s-"
                                    % ("mount-" if mount else "", name))
        self.daemons = []
        self.children = []
        self.s3dirs = []
        self.nchecks = 0
        self.nfail = 0
        seed = os.environ.get("SNAPFS_TEST_SEED")
        self.seed = int(seed) if seed else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        print("# %s: directory %s, seed %d (SNAPFS_TEST_SEED to repeat)"
              % (name, self.dir, self.seed))
        sys.stdout.flush()

    def path(self, *parts):
        """A path inside the test's private directory."""
        return os.path.join(self.dir, *parts)

    # -- checks --------------------------------------------------------
    def check(self, desc, cond, detail=None):
        """Record one check; a failed check does not stop the test."""
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
        """A check the rest of the test depends on: stop when it fails."""
        if not self.check(desc, cond, detail):
            raise TestFailed(desc, counted=True)

    # -- processes -----------------------------------------------------
    def run(self, argv, timeout=300, input=None, env=None, cwd=None):
        """Run a real program to completion; returns CompletedProcess
        (text).  stdin is input, or /dev/null; a hang past timeout fails
        the test."""
        try:
            return subprocess.run(
                argv, input=input, capture_output=True, text=True,
                timeout=timeout, env=env, cwd=cwd,
                stdin=subprocess.DEVNULL if input is None else None)
        except subprocess.TimeoutExpired as e:
            raise TestFailed("%s did not finish within %ss (hang?); "
                             "stderr: %r" % (" ".join(map(str, argv)),
                                             timeout, e.stderr))

    def snapctl_args(self, args, db=None, store=None, json_out=False):
        """The argv of snapctl [--db db] [--store store] [--json] args."""
        argv = [self.snapctl]
        if db is not None:
            argv += ["--db", db]
        if store is not None:
            argv += ["--store", store]
        if json_out:
            argv += ["--json"]
        return argv + list(args)

    def sc(self, *args, db=None, store=None, json_out=False, timeout=120):
        """Run snapctl to completion; returns CompletedProcess (text)."""
        return self.run(self.snapctl_args(args, db, store, json_out),
                        timeout=timeout)

    def sc_ok(self, *args, what=None, **kw):
        """Run snapctl, require exit 0, return the CompletedProcess."""
        r = self.sc(*args, **kw)
        self.require(what or f"snapctl {' '.join(args)} exits 0",
                     r.returncode == 0, describe(r))
        return r

    def spawn(self, argv, **kw):
        """Start a child that is killed and reaped at exit."""
        p = subprocess.Popen(argv, **kw)
        self.children.append(p)
        return p

    def sc_kill_after(self, args, db, delay):
        """Run snapctl --db db args and SIGKILL it if it is still running
        after delay seconds (a crash at a random point).  Returns
        (process, stdout, stderr, killed, seconds): seconds is how long a
        run that finished took (the next kill point is drawn from it),
        None for a killed one."""
        p = self.spawn(self.snapctl_args(args, db), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        try:
            out, err = p.communicate(timeout=delay)
            return p, out, err, False, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            out, err = p.communicate(timeout=60)
            return p, out, err, True, None

    def mount(self, db, mnt=None, store=None, options=()):
        """Mount db (on ctx.path("mnt") unless mnt); the started Mount."""
        return Mount(self, db, mnt or self.path("mnt"), store,
                     options).start()

    # -- catalog ---------------------------------------------------------
    def list(self, db=None, store=None):
        """`snapctl list --json` parsed (oldest first, as snapctl gives)."""
        r = self.sc("list", "--json", db=db, store=store)
        self.require("snapctl list --json exits 0", r.returncode == 0,
                     describe(r))
        try:
            val = json.loads(r.stdout)
        except ValueError as e:
            raise TestFailed(f"list --json is not JSON ({e}): "
                             f"{r.stdout[:500]!r}")
        self.require("list --json is an array", isinstance(val, list),
                     r.stdout[:500])
        return val

    def create(self, db=None, store=None, label=None, timeout=120):
        """Take a snapshot, require success, return its name."""
        args = ["create"] + (["--label", label] if label else [])
        r = self.sc_ok(*args, db=db, store=store, timeout=timeout,
                       what=f"snapctl create{' --label ' + label if label else ''} exits 0")
        name = r.stdout.strip().splitlines()[-1].strip() if r.stdout.strip() else ""
        self.require("create prints the new snapshot's name", name != "",
                     describe(r))
        return name

    # -- teardown --------------------------------------------------------
    def s3_start(self, env):
        """Start a real S3 server (tools/s3-test-server) under the test's
        directory, stopped by cleanup whatever happens; its AWS_* and
        SNAPFS_TEST_BUCKET variables are set in env.  Returns its dir."""
        d = self.path("s3-%d" % len(self.s3dirs))
        self.s3dirs.append(d)
        r = self.run([S3_TEST_SERVER, "start", d])
        self.require("the S3 test server starts", r.returncode == 0,
                     describe(r))
        for line in r.stdout.splitlines():
            k, v = line[len("export "):].split("=", 1)
            env[k] = v
        return d

    def cleanup(self):
        """Kill and reap every child, unmount every mount (fusermount3 -u,
        -uz, then SIGTERM/SIGKILL to the daemon), stop S3 test servers,
        remove the directory."""
        for d in self.s3dirs:
            subprocess.run([S3_TEST_SERVER, "stop", d])
        for p in self.children:
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"# child {p.pid} did not die")
        for m in self.daemons:
            unmount(m.mnt)
            if m.proc is not None and m.proc.poll() is None:
                terminate(m.proc)
            if is_mounted(m.mnt):
                subprocess.run(["fusermount3", "-uz", m.mnt])
            m.check_sanitizers()
        if os.environ.get("SNAPFS_TEST_KEEP"):
            print("# kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dump_logs(self):
        """Print the stderr of every daemon this test started."""
        for m in self.daemons:
            print("# daemon stderr (%s):" % m.mnt)
            print(m.text())


def describe(r):
    """Exit status, stdout and stderr of a CompletedProcess, for a report."""
    args = r.args if isinstance(r.args, str) else " ".join(map(str, r.args))
    return (f"command: {args}\nexit: {r.returncode}\n"
            f"stdout: {r.stdout.strip()[:2000]}\n"
            f"stderr: {r.stderr.strip()[:2000]}")


def main(name, body, mount=False):
    """Run body(ctx); clean up whatever happened (children, mounts, the
    directory); turn the outcome into the exit status."""
    ctx = Ctx(name, mount)

    def on_term(signum, frame):
        raise TestFailed(f"terminated by signal {signum} (meson timeout?)")

    signal.signal(signal.SIGTERM, on_term)
    try:
        body(ctx)
    except TestFailed as e:
        print("# stopped: %s" % e)
        ctx.nfail += 0 if e.counted else 1
    except Exception:
        traceback.print_exc(file=sys.stdout)
        print("# stopped: unexpected exception")
        ctx.nfail += 1
    finally:
        # A second SIGTERM must not cut the unmounting short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if ctx.nfail:
            ctx.dump_logs()
        ctx.cleanup()
    if ctx.nfail:
        print("# %s: %d checks, %d failed -> FAIL"
              % (name, ctx.nchecks, ctx.nfail))
    else:
        print("# %s: %d checks -> PASS" % (name, ctx.nchecks))
    sys.stdout.flush()
    sys.exit(1 if ctx.nfail else 0)


# ---- databases -------------------------------------------------------------

def connect(path, timeout=30.0):
    """An autocommit connection with a busy timeout (seconds)."""
    con = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    con.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return con


def set_journal_mode(path, mode):
    """Set journal_mode, or fail the test."""
    con = connect(path)
    got = con.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
    con.close()
    if got.lower() != mode.lower():
        raise TestFailed(f"could not set journal_mode={mode} on {path}: {got}")


def page_size(path):
    """The database's page size."""
    con = connect(path)
    try:
        return con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()


def journal_mode(path):
    """The database's journal mode, lower case."""
    con = connect(path)
    try:
        return con.execute("PRAGMA journal_mode").fetchone()[0].lower()
    finally:
        con.close()


def content_hash(path):
    """SHA-256 over the schema and every row of every table, in rowid order.

    Opens the database the way an application would (read-write, so a hot
    journal left by a killed writer is rolled back first)."""
    con = connect(path)
    try:
        h = hashlib.sha256()
        con.execute("BEGIN")
        rows = con.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                           "ORDER BY type, name").fetchall()
        for r in rows:
            h.update(repr(r).encode())
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE "
                                   "type='table' AND name NOT LIKE 'sqlite_%' "
                                   "ORDER BY name").fetchall():
            h.update(f"table {name}\n".encode())
            for row in con.execute(f'SELECT * FROM "{name}" ORDER BY rowid'):
                h.update(repr(row).encode())
        con.execute("COMMIT")
        return h.hexdigest()
    finally:
        con.close()


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


def open_ro(path, immutable=False):
    """A read-only connection (immutable=True: no locks, no -shm), the way
    a reader of snapshots/ or a peek opens a database."""
    uri = "file:%s?mode=ro%s" % (path, "&immutable=1" if immutable else "")
    return sqlite3.connect(uri, uri=True, timeout=120)


def dump(path):
    """The logical content of a database (schema and rows)."""
    db = open_ro(path)
    try:
        return list(db.iterdump())
    finally:
        db.close()


def tag_counts(path, skip=None):
    """{tag: rows} of make_db's table items (rows tagged skip left out)."""
    db = open_ro(path)
    try:
        return dict(db.execute("SELECT tag, count(*) FROM items WHERE "
                               "tag IS NOT ?1 GROUP BY tag",
                               (skip,)).fetchall())
    finally:
        db.close()


def count_rows(path, immutable=False, table="items"):
    """Rows of `table` in the database at path, read-only."""
    db = open_ro(path, immutable)
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


def total(path, immutable=False):
    """sum(balance) of a make_bank database, read-only."""
    db = open_ro(path, immutable)
    try:
        return db.execute("SELECT sum(balance) FROM accounts").fetchone()[0]
    finally:
        db.close()


def integrity(path, immutable=False, writable=False):
    """PRAGMA integrity_check as one string ('ok' when clean).  Read-only
    by default (immutable=True: no locks); writable=True opens the database
    the way an application would, so a hot journal left by a killed writer
    is rolled back first."""
    con = connect(path) if writable else open_ro(path, immutable)
    try:
        return "\n".join(r[0] for r in con.execute("PRAGMA integrity_check"))
    finally:
        con.close()


def sha256(path):
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_bytes(path):
    """A file's bytes."""
    with open(path, "rb") as f:
        return f.read()


def header(path, n=100):
    """The first n bytes of a file (the SQLite header)."""
    with open(path, "rb") as f:
        return f.read(n)


def sqlite3_cli(path, sql, timeout=120):
    """Run the sqlite3 shell on path; returns CompletedProcess (text)."""
    return subprocess.run(["sqlite3", "-bail", "-batch", path, sql],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def make_blob_db(path, mode, rows, blob_size, rng, page_size=None):
    """A database of `rows` random (incompressible) blobs in table t."""
    con = connect(path)
    if page_size:
        con.execute(f"PRAGMA page_size={page_size}")
    con.execute(f"PRAGMA journal_mode={mode}")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, gen INTEGER, "
                "data BLOB)")
    con.execute("BEGIN")
    for i in range(rows):
        con.execute("INSERT INTO t VALUES(?, 0, ?)",
                    (i + 1, rng.randbytes(blob_size)))
    con.execute("COMMIT")
    con.close()


def mutate_blob_db(path, fraction, gen, rng):
    """Rewrite a random `fraction` of t's rows with new random data."""
    con = connect(path)
    (n,) = con.execute("SELECT count(*) FROM t").fetchone()
    (size,) = con.execute("SELECT length(data) FROM t LIMIT 1").fetchone()
    con.execute("BEGIN IMMEDIATE")
    for rid in rng.sample(range(1, n + 1), max(1, int(n * fraction))):
        con.execute("UPDATE t SET gen=?, data=? WHERE id=?",
                    (gen, rng.randbytes(size), rid))
    con.execute("COMMIT")
    con.close()


def check_export(ctx, snap, path, expect_sql=None, db=None, store=None):
    """Export `snap` (a list --json object) to path and check it stands
    alone: rollback header, sha256 and size as listed, integrity_check ok.
    expect_sql: {sql: expected CLI output} checked with the sqlite3 shell.
    Returns True when every check passed."""
    name = snap["name"]
    for side in ("-wal", "-shm", "-journal"):
        if os.path.exists(path + side):
            os.unlink(path + side)
    r = ctx.sc("export", name, path, db=db, store=store)
    good = ctx.check(f"{name}: export exits 0 and writes the file",
                     r.returncode == 0 and os.path.isfile(path),
                     describe(r))
    if not good:
        return False
    hdr = header(path)
    good &= ctx.check(f"{name}: SQLite magic", hdr[:16] == SQLITE_MAGIC)
    good &= ctx.check(f"{name}: header bytes 18-19 = 1/1 (rollback mode)",
                      hdr[18] == 1 and hdr[19] == 1,
                      f"got {hdr[18]}/{hdr[19]}")
    size = os.path.getsize(path)
    if "size" in snap:
        good &= ctx.check(f"{name}: file size {size} == listed size",
                          size == snap["size"],
                          f"listed {snap['size']}")
    if "sha256" in snap:
        sha = sha256(path)
        good &= ctx.check(f"{name}: sha256 of the export == listed sha256",
                          sha == snap["sha256"],
                          f"file {sha}\nlisted {snap['sha256']}")
    good &= ctx.check(f"{name}: no -wal beside the export",
                      not os.path.exists(path + "-wal"))
    r = sqlite3_cli(path, "PRAGMA integrity_check; PRAGMA journal_mode;")
    good &= ctx.check(f"{name}: sqlite3 opens the export standalone: "
                      "integrity_check ok, journal_mode delete",
                      r.returncode == 0 and r.stdout.split() == ["ok", "delete"], describe(r))
    for sql, want in (expect_sql or {}).items():
        r = sqlite3_cli(path, sql)
        good &= ctx.check(f"{name}: `{sql}` gives {want}",
                          r.returncode == 0 and r.stdout.strip() == str(want), describe(r))
    return good


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


def copy_commands(dst):
    """The ways a user puts a database file onto dst (current.db), as
    [(what, argv_of(src))]: cp, cp --remove-destination, a shell redirect,
    rsync (whole file and --inplace), gio copy, mv from another
    filesystem."""
    return [
        ("cp", lambda s: ["cp", s, dst]),
        ("cp --remove-destination",
         lambda s: ["cp", "--remove-destination", s, dst]),
        ("cat >", lambda s: ["bash", "-c", 'cat "$1" > "$2"', "-", s, dst]),
        ("rsync", lambda s: ["rsync", "-I", s, dst]),
        ("rsync --inplace", lambda s: ["rsync", "-I", "--inplace", s, dst]),
        ("gio copy", lambda s: ["gio", "copy", s, dst]),
        ("mv from another filesystem", lambda s: ["mv", s, dst]),
    ]


def mode_setting_copiers(dst_dir):
    """The copying tools that set the copy's mode (and times) by path
    after closing it, as [(what, argv_of(src))] into directory dst_dir:
    Python's shutil.copy and copy2, install -m."""
    py = "import shutil, sys; shutil.%s(*sys.argv[1:])"
    return [
        ("shutil.copy", lambda s: [sys.executable, "-c", py % "copy", s,
                                   dst_dir + "/"]),
        ("shutil.copy2", lambda s: [sys.executable, "-c", py % "copy2", s,
                                    dst_dir + "/"]),
        ("install -m 644", lambda s: ["install", "-m", "644", s,
                                      dst_dir + "/"]),
    ]


def xattr(path, key):
    """The user.snapfs.<key> attribute of path, as text."""
    return os.getxattr(path, "user.snapfs." + key).decode()


def kinds(mnt):
    """{name: kind} of every snapshot."""
    return {n: xattr(os.path.join(mnt, "snapshots", n), "kind")
            for n in snapshots(mnt)}
