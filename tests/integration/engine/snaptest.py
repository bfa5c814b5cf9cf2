"""
tests/integration/engine/snaptest.py — shared helpers for the engine-level
integration tests (Python 3 standard library only).

Every test runs `snapctl` (path in $SNAPCTL) as a real program against real
SQLite databases in a private temporary directory, checks what it promises,
and exits 0 (pass), 77 (skip) or 1 (fail).  Each check is printed as it is
made ("ok - ..." / "not ok - ..."), so a failing run says what broke.

Rules these helpers keep for every test:
  * nothing sleeps to wait for readiness: children report through pipes;
  * nothing asserts on wall-clock time (timeouts only bound a hang);
  * every child process is killed and reaped, and the directory removed,
    on the way out (set SNAPFS_TEST_KEEP=1 to keep the directory);
  * randomness is seeded from $SNAPFS_TEST_SEED when set, and the seed is
    printed, so a failing run can be repeated.
"""

import hashlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
SQLITE_MAGIC = b"SQLite format 3\x00"


class TestFailed(Exception):
    """A check failed; the message says which."""


class Ctx:
    """One test run: its directory, its children, its check counter."""

    def __init__(self, name):
        self.name = name
        self.snapctl = os.environ.get("SNAPCTL", "")
        if not self.snapctl or not os.access(self.snapctl, os.X_OK):
            print("SKIP: $SNAPCTL is not set to an executable snapctl "
                  f"({self.snapctl!r})")
            sys.exit(SKIP)
        self.dir = tempfile.mkdtemp(prefix=f"snapfs-{name}-")
        self.children = []
        self.nchecks = 0
        self.nfail = 0
        seed = os.environ.get("SNAPFS_TEST_SEED")
        self.seed = int(seed) if seed else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        print(f"# {name}: directory {self.dir}, seed {self.seed} "
              "(SNAPFS_TEST_SEED to repeat)")
        sys.stdout.flush()

    # -- paths ---------------------------------------------------------
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # -- checks --------------------------------------------------------
    def check(self, cond, what, detail=None):
        """Record one check; a failed check does not stop the test."""
        self.nchecks += 1
        if cond:
            print(f"ok {self.nchecks} - {what}")
        else:
            self.nfail += 1
            print(f"not ok {self.nchecks} - {what}")
            if detail:
                for line in str(detail).rstrip().splitlines():
                    print(f"#   {line}")
        sys.stdout.flush()
        return cond

    def require(self, cond, what, detail=None):
        """A check the rest of the test depends on: stop when it fails."""
        if not self.check(cond, what, detail):
            raise TestFailed(what)

    # -- processes -----------------------------------------------------
    def snapctl_args(self, args, db=None, store=None, json_out=False):
        argv = [self.snapctl]
        if db is not None:
            argv += ["--db", db]
        if store is not None:
            argv += ["--store", store]
        if json_out:
            argv += ["--json"]
        return argv + list(args)

    def run(self, *args, db=None, store=None, json_out=False, timeout=120):
        """Run snapctl to completion; returns CompletedProcess (text)."""
        argv = self.snapctl_args(args, db, store, json_out)
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise TestFailed(f"{' '.join(argv)} did not finish within "
                             f"{timeout}s (hang?); stderr: {e.stderr!r}")

    def spawn(self, argv, **kw):
        """Start a child that is killed and reaped at exit."""
        p = subprocess.Popen(argv, **kw)
        self.children.append(p)
        return p

    def ok_run(self, *args, what=None, **kw):
        """Run snapctl, require exit 0, return the CompletedProcess."""
        r = self.run(*args, **kw)
        self.require(r.returncode == 0,
                     what or f"snapctl {' '.join(args)} exits 0",
                     describe(r))
        return r

    # -- catalog ---------------------------------------------------------
    def list(self, db=None, store=None):
        """`snapctl list --json` parsed (oldest first, as snapctl gives)."""
        r = self.run("list", "--json", db=db, store=store)
        self.require(r.returncode == 0, "snapctl list --json exits 0",
                     describe(r))
        try:
            val = json.loads(r.stdout)
        except ValueError as e:
            raise TestFailed(f"list --json is not JSON ({e}): "
                             f"{r.stdout[:500]!r}")
        self.require(isinstance(val, list), "list --json is an array",
                     r.stdout[:500])
        return val

    def create(self, db=None, store=None, label=None, timeout=120):
        """Take a snapshot, require success, return its name."""
        args = ["create"] + (["--label", label] if label else [])
        r = self.ok_run(*args, db=db, store=store, timeout=timeout,
                        what=f"snapctl create{' --label ' + label if label else ''} exits 0")
        name = r.stdout.strip().splitlines()[-1].strip() if r.stdout.strip() else ""
        self.require(name != "", "create prints the new snapshot's name",
                     describe(r))
        return name

    # -- teardown --------------------------------------------------------
    def cleanup(self):
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
        if os.environ.get("SNAPFS_TEST_KEEP"):
            print(f"# kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def describe(r):
    """Exit status, stdout and stderr of a CompletedProcess, for a report."""
    args = r.args if isinstance(r.args, str) else " ".join(map(str, r.args))
    return (f"command: {args}\nexit: {r.returncode}\n"
            f"stdout: {r.stdout.strip()[:2000]}\n"
            f"stderr: {r.stderr.strip()[:2000]}")


def main(name, body):
    """Run body(ctx) and exit with the right status."""
    ctx = Ctx(name)

    def on_term(signum, frame):
        raise TestFailed(f"terminated by signal {signum} (meson timeout?)")

    signal.signal(signal.SIGTERM, on_term)
    status = 1
    try:
        body(ctx)
        status = 0 if ctx.nfail == 0 else 1
    except TestFailed as e:
        print(f"# FAILED: {e}")
    except Exception:
        traceback.print_exc(file=sys.stdout)
        print("# FAILED: unexpected exception")
    finally:
        ctx.cleanup()
    print(f"# {name}: {ctx.nchecks} checks, {ctx.nfail} failed -> "
          f"{'PASS' if status == 0 else 'FAIL'}")
    sys.exit(status)


# -- databases ---------------------------------------------------------------

def connect(path, timeout=30.0):
    """An autocommit connection with a busy timeout (seconds)."""
    con = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    con.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return con


def set_journal_mode(path, mode):
    con = connect(path)
    got = con.execute(f"PRAGMA journal_mode={mode}").fetchone()[0]
    con.close()
    if got.lower() != mode.lower():
        raise TestFailed(f"could not set journal_mode={mode} on {path}: {got}")


def page_size(path):
    con = connect(path)
    try:
        return con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()


def journal_mode(path):
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


def integrity(path):
    """PRAGMA integrity_check result as one string ('ok' when clean)."""
    con = connect(path)
    try:
        return "\n".join(r[0] for r in con.execute("PRAGMA integrity_check"))
    finally:
        con.close()


def header(path, n=100):
    with open(path, "rb") as f:
        return f.read(n)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    r = ctx.run("export", name, path, db=db, store=store)
    good = ctx.check(r.returncode == 0 and os.path.isfile(path),
                     f"{name}: export exits 0 and writes the file",
                     describe(r))
    if not good:
        return False
    hdr = header(path)
    good &= ctx.check(hdr[:16] == SQLITE_MAGIC, f"{name}: SQLite magic")
    good &= ctx.check(hdr[18] == 1 and hdr[19] == 1,
                      f"{name}: header bytes 18-19 = 1/1 (rollback mode)",
                      f"got {hdr[18]}/{hdr[19]}")
    size = os.path.getsize(path)
    if "size" in snap:
        good &= ctx.check(size == snap["size"],
                          f"{name}: file size {size} == listed size",
                          f"listed {snap['size']}")
    if "sha256" in snap:
        sha = file_sha256(path)
        good &= ctx.check(sha == snap["sha256"],
                          f"{name}: sha256 of the export == listed sha256",
                          f"file {sha}\nlisted {snap['sha256']}")
    good &= ctx.check(not os.path.exists(path + "-wal"),
                      f"{name}: no -wal beside the export")
    r = sqlite3_cli(path, "PRAGMA integrity_check; PRAGMA journal_mode;")
    good &= ctx.check(r.returncode == 0 and r.stdout.split() == ["ok", "delete"],
                      f"{name}: sqlite3 opens the export standalone: "
                      "integrity_check ok, journal_mode delete", describe(r))
    for sql, want in (expect_sql or {}).items():
        r = sqlite3_cli(path, sql)
        good &= ctx.check(r.returncode == 0 and r.stdout.strip() == str(want),
                          f"{name}: `{sql}` gives {want}", describe(r))
    return good
