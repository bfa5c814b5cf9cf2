#!/usr/bin/python3
"""snapfs URL MNT: a replica mounted read-only, as users drive it.

A store's snapshots are replicated (snapctl replicate file://...), then
the URL is mounted with only the passphrase: snapshots/ lists the same
names and sizes as `snapctl --replica URL list --json`, with their mtimes
and user.snapfs.* xattrs; cp of each gives the image snapctl export
gives (sha256); sqlite3 -readonly runs integrity_check and a query in
place; there is no current.db; every write is EROFS; .snapfs/status.json
names the URL.  A flipped byte in a pack makes reading the snapshots
that use it fail with EIO (never wrong bytes).  A wrong passphrase, a
missing replica, an unreadable passphrase file, one its group or others
may read or a symbolic link to one (the daemon's replicate= check and
message), missing S3 credentials
or a daemon option (every=) are exit 1 with nothing mounted, in the foreground and daemonized.  With the argument "s3" the
replica lives in a real S3 server (tools/s3-test-server)."""

import errno
import json
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import snaptest  # noqa: E402
from replica_cli import make_db  # noqa: E402  (the same database)

PASS = "a long passphrase nobody guesses"


sha = snaptest.sha256


def refused(ctx, env, url, mnt, extra, what):
    """snapfs [extra] url mnt exits 1 with a message and mounts nothing;
    an unexpected mount is taken down again."""
    r = ctx.run([ctx.snapfs] + extra + [url, mnt], env=env, timeout=120)
    mounted = snaptest.is_mounted(mnt)
    if mounted:
        snaptest.unmount(mnt)
    ctx.check("%s: exit 1, a message, nothing mounted" % what,
              r.returncode == 1 and "snapfs:" in r.stderr and not mounted,
              snaptest.describe(r))
    return r


def peak_rss_mb(pid):
    """VmHWM of process pid, in MB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def bounded_cache(ctx, env, work, url):
    """A snapshot of ~130 MB of incompressible pages (about 20 packs of
    8 MB, several times the reader's cache of 3) read through the mount: the bytes are
    the export's, and the daemon's peak memory stays under 80 MB, well
    below the image: pages are fetched on demand through a bounded
    cache, never the whole image (not checked under ASan, whose
    quarantine keeps freed memory).  Another database: a replica of its
    own."""
    url += "-big"
    db = os.path.join(work, "big.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)")
    con.executemany("INSERT INTO b(v) VALUES (?)",
                    [(ctx.rng.randbytes(3000),) for _ in range(40000)])
    con.commit()
    con.close()
    r = ctx.run([ctx.snapctl, "--db", db, "create", "--label", "big"],
                env=env)
    ctx.require("snapctl create (big) exits 0", r.returncode == 0,
                snaptest.describe(r))
    name = r.stdout.strip()
    out = os.path.join(work, "big-export.db")
    r = ctx.run([ctx.snapctl, "--db", db, "export", name, out], env=env)
    ctx.require("snapctl export (big) exits 0", r.returncode == 0,
                snaptest.describe(r))
    want = sha(out)
    size = os.path.getsize(out)
    os.unlink(out)
    r = ctx.run([ctx.snapctl, "--db", db, "replicate", url], env=env)
    ctx.require("snapctl replicate (big) exits 0", r.returncode == 0,
                snaptest.describe(r))
    os.environ["SNAPFS_PASSPHRASE"] = PASS
    mnt = ctx.path("mnt")
    m = ctx.mount(url, mnt=mnt)
    p = os.path.join(mnt, "snapshots", name)
    r = ctx.run(["cp", p, out])
    ctx.check("cp of a %d MB snapshot (about 20 packs) is its export"
              % (size >> 20), r.returncode == 0 and sha(out) == want,
              snaptest.describe(r))
    asan = "asan" in ctx.run(["ldd", ctx.snapfs]).stdout
    rss = peak_rss_mb(m.proc.pid)
    if not asan:
        ctx.check("the daemon's peak memory (%.0f MB) stays under 80 MB "
                  "reading a %d MB image" % (rss, size >> 20),
                  rss is not None and rss < 80 and size > 120 << 20)
    m.stop()


def reused_name(ctx, env, work):
    """A store that reused a name (a replicated snapshot deleted, another
    renamed to its name) leaves the replica two rows of one name: the
    mount lists that name once, as the row a read of it opens (export's:
    the newest), its size, mtime and sha256 xattr that row's."""
    db = os.path.join(work, "reuse.db")
    url = "file://" + ctx.path("replica-reuse")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("INSERT INTO t(v) VALUES ('old')")
    con.commit()

    def ctl(args):
        r = ctx.run([ctx.snapctl] + args, env=env)
        ctx.require("snapctl %s exits 0" % args[2], r.returncode == 0,
                    snaptest.describe(r))
        return r.stdout.strip()
    a = ctl(["--db", db, "create", "--label", "a"])
    ctl(["--db", db, "replicate", url])
    ctl(["--db", db, "delete", a])
    con.executemany("INSERT INTO t(v) VALUES (?)",
                    [("new %d %s" % (i, "y" * 200),) for i in range(100)])
    con.commit()
    con.close()
    b = ctl(["--db", db, "create", "--label", "b"])
    ctl(["--db", db, "rename", b, a])
    ctl(["--db", db, "replicate", url])
    rows = json.loads(ctl(["--replica", url, "list", "--json"]))
    ctx.require("the replica holds two rows named %s" % a,
                [x["name"] for x in rows] == [a, a], rows)
    out = os.path.join(work, "reuse-export.db")
    ctl(["--replica", url, "export", a, out])
    want = sha(out)
    mnt = ctx.path("mnt")
    m = ctx.mount(url, mnt=mnt)
    try:
        snaps = os.path.join(mnt, "snapshots")
        listed = os.listdir(snaps)
        ctx.check("a name two rows share is listed once", listed == [a],
                  listed)
        p = os.path.join(snaps, a)
        st = os.stat(p)
        got = sha(p)
        ctx.check("its bytes, size and sha256 xattr are the export's (the "
                  "newest row's)", got == want and
                  st.st_size == os.path.getsize(out) and
                  os.getxattr(p, "user.snapfs.sha256").decode() == want,
                  "%s %d vs %s %d" % (got, st.st_size, want,
                                      os.path.getsize(out)))
    finally:
        m.stop()


def body(ctx, kind):
    check = ctx.check
    work = ctx.path("work")
    os.makedirs(work)
    env = dict(os.environ)
    env["SNAPFS_PASSPHRASE"] = PASS
    if kind == "s3":
        ctx.s3_start(env)
        url = "s3://%s/mnt-test" % env["SNAPFS_TEST_BUCKET"]
    else:
        url = "file://" + ctx.path("replica")

    def ctl(args):
        return ctx.run([ctx.snapctl] + args, env=env)

    db = os.path.join(work, "app.db")
    make_db(db, 3000)
    names = []
    for label in ("one", "two", "three"):
        r = ctl(["--db", db, "create", "--label", label])
        ctx.require("snapctl create exits 0", r.returncode == 0,
                    snaptest.describe(r))
        names.append(r.stdout.strip())
        con = sqlite3.connect(db)
        con.execute("UPDATE t SET v = 'changed %s' WHERE id %% 97 = 0"
                    % label)
        con.execute("INSERT INTO t(v) VALUES ('%s')" % label)
        con.commit()
        con.close()
    local = {}
    for name in names:
        out = os.path.join(work, "local-" + name)
        r = ctl(["--db", db, "export", name, out])
        ctx.require("snapctl export exits 0", r.returncode == 0,
                    snaptest.describe(r))
        local[name] = sha(out)
    r = ctl(["--db", db, "replicate", url])
    ctx.require("snapctl replicate exits 0", r.returncode == 0,
                snaptest.describe(r))
    r = ctl(["--replica", url, "list", "--json"])
    ctx.require("snapctl --replica list exits 0", r.returncode == 0,
                snaptest.describe(r))
    listed = json.loads(r.stdout)

    # The mount sees the passphrase from the environment, nothing else.
    os.environ["SNAPFS_PASSPHRASE"] = PASS
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        if k in env:
            os.environ[k] = env[k]
    mnt = ctx.path("mnt")
    # S3: the endpoint from -o endpoint=URL, not the environment.
    endpoint = (["endpoint=" + env["AWS_ENDPOINT_URL"]]
                if kind == "s3" else [])
    m = ctx.mount(url, mnt=mnt, options=endpoint)
    snaps = os.path.join(mnt, "snapshots")
    r = ctl(["-C", mnt, "list"])
    check("snapctl -C on a replica mount: exit 1, says to use --replica URL",
          r.returncode == 1 and "--replica " + url in r.stderr, r.stderr)
    check("the root holds snapshots/ and .snapfs/, no current.db",
          sorted(os.listdir(mnt)) == [".snapfs", "snapshots"],
          os.listdir(mnt))
    seen = {n: os.stat(os.path.join(snaps, n)) for n in os.listdir(snaps)}
    check("snapshots/ lists the replica's snapshots",
          sorted(seen) == sorted(s["name"] for s in listed),
          "%s vs %s" % (sorted(seen), [s["name"] for s in listed]))
    for s in listed:
        st = seen.get(s["name"])
        check("%s: size and mtime as the replica lists them" % s["name"],
              st is not None and st.st_size == s["size"] and
              st.st_mtime_ns // 1000000 == s["created_ns"] // 1000000,
              "%r vs %r" % (st, s))
        check("%s: mode 0400 (private to whoever mounted)" % s["name"],
              st is not None and (st.st_mode & 0o7777) == 0o400)
        p = os.path.join(snaps, s["name"])
        try:
            xa = os.getxattr(p, "user.snapfs.sha256").decode()
            kind_x = os.getxattr(p, "user.snapfs.kind").decode()
            tables = json.loads(os.getxattr(p, "user.snapfs.tables"))
        except OSError as e:
            xa, kind_x, tables = str(e), None, None
        check("%s: user.snapfs.sha256, kind and tables" % s["name"],
              xa == s["sha256"] and kind_x == s["kind"] and
              isinstance(tables, dict) and tables.get("t", 0) >= 3000,
              "%r %r %r" % (xa, kind_x, tables))
    for name in names:
        out = os.path.join(work, "cp-" + name)
        r = ctx.run(["cp", os.path.join(snaps, name), out])
        check("cp %s out exits 0" % name, r.returncode == 0,
              snaptest.describe(r))
        check("cp of %s is the image snapctl export gives" % name,
              r.returncode == 0 and sha(out) == local[name])
        p = os.path.join(snaps, name)
        r = ctx.run(["sqlite3", "-readonly", p, "PRAGMA integrity_check"])
        check("sqlite3 -readonly %s: integrity_check ok" % name,
              r.returncode == 0 and r.stdout.strip() == "ok",
              snaptest.describe(r))
        r = ctx.run(["sqlite3", "-readonly", p,
                     "SELECT count(*) FROM t WHERE v LIKE 'row %'"])
        check("sqlite3 -readonly %s: a query returns rows" % name,
              r.returncode == 0 and int(r.stdout.strip() or 0) > 2900,
              snaptest.describe(r))
    # Several readers at once (the mount's worker threads share one
    # replica handle): each still gets its snapshot's bytes.
    procs = [ctx.spawn(["sha256sum", os.path.join(snaps, n)],
                       stdout=subprocess.PIPE, text=True)
             for n in names * 3]
    outs = [p.communicate(timeout=120)[0].split()[0] for p in procs]
    check("sha256sum of every snapshot, nine at once, as exported",
          outs == [local[n] for n in names * 3], outs)
    with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
        status = json.load(f)
    check("status.json names the replica and says read-only",
          status.get("replica") == url and status.get("read_only") is True
          and status.get("snapshots") == len(names), status)
    # Times twice, as every JSON output gives them (snapctl(1), JSON
    # OUTPUT): the ISO string and its _ns integer, the same instant.
    mounted_ns = status.get("mounted_ns")
    check("status.json's mounted has its mounted_ns integer, the same time",
          isinstance(mounted_ns, int)
          and time.strftime("%Y-%m-%dT%H:%M:%S",
                            time.gmtime(mounted_ns // 10**9))
          == status.get("mounted", "")[:19], status)

    # Every write is EROFS.
    first = os.path.join(snaps, names[0])

    def erofs(what, fn):
        try:
            fn()
            check(what + " is refused with EROFS", False, "it succeeded")
        except OSError as e:
            check(what + " is refused with EROFS", e.errno == errno.EROFS,
                  str(e))
    erofs("open for writing", lambda: open(first, "r+b").close())
    erofs("a new file in snapshots/",
          lambda: open(os.path.join(snaps, "new.db"), "wb").close())
    erofs("rm of a snapshot", lambda: os.unlink(first))
    erofs("mv of a snapshot",
          lambda: os.rename(first, os.path.join(snaps, "x.db")))
    erofs("mkdir", lambda: os.mkdir(os.path.join(mnt, "d")))
    erofs("setxattr", lambda: os.setxattr(first, "user.snapfs.label",
                                          b"x"))
    erofs("current.db created", lambda: open(os.path.join(
        mnt, "current.db"), "wb").close())
    r = ctx.run(["touch", os.path.join(snaps, "made-by-touch.db")])
    check("touch in snapshots/ fails (read-only file system)",
          r.returncode != 0 and "Read-only" in r.stderr,
          snaptest.describe(r))
    m.stop()

    # Wrong passphrase, no replica, unreadable passphrase file: exit 1,
    # nothing mounted (foreground and daemonized).
    bad = dict(env)
    bad["SNAPFS_PASSPHRASE"] = "not the passphrase"
    for extra in (["-f"], []):
        mode = "foreground" if extra else "daemonized"
        r = refused(ctx, bad, url, mnt, extra,
                    "wrong passphrase (%s)" % mode)
        check("wrong passphrase: the message says so (%s)" % mode,
              "passphrase" in r.stderr, r.stderr)
        check("wrong passphrase: the message names the URL once (%s)" % mode,
              r.stderr.count(url) == 1, r.stderr)
    pf = ctx.path("pass-wrong")
    with open(pf, "w") as f:
        f.write("wrong one\n")
    os.chmod(pf, 0o600)
    r = refused(ctx, env, url, mnt, ["-f", "-o", "passphrase_file=" + pf],
                "a wrong passphrase file")
    check("a wrong passphrase file: the message says so", "wrong passphrase"
          in r.stderr, r.stderr)
    # The passphrase file is checked as the daemon's replicate= and
    # snapctl check it (one function, one text): one its group or others
    # may change is refused, the right passphrase or not.
    pf = ctx.path("pass-open")
    with open(pf, "w") as f:
        f.write(PASS + "\n")
    os.chmod(pf, 0o664)
    r = refused(ctx, env, url, mnt, ["-f", "-o", "passphrase_file=" + pf],
                "a passphrase file its group may change")
    check("a passphrase file its group may change: the daemon's message",
          "snapfs: passphrase_file=%s: its group or others may change it "
          "(mode 0664): refused; make it private with chmod 600 %s"
          % (pf, pf) in r.stderr, r.stderr)
    os.symlink(ctx.path("pass-wrong"), ctx.path("pass-link"))
    r = refused(ctx, env, url, mnt, ["-f", "-o", "passphrase_file=" +
                                     ctx.path("pass-link")],
                "a symbolic link as the passphrase file")
    check("a symbolic link as the passphrase file: the daemon's message",
          "(a symbolic link: name the file itself)" in r.stderr, r.stderr)
    refused(ctx, env, url, mnt, ["-f", "-o", "passphrase_file=" +
                                 ctx.path("no-such-file")],
            "a missing passphrase file")
    refused(ctx, env, url, mnt, ["-f", "-o", "every=1h"],
            "a daemon option (every=) with a replica")
    # replicate= and replicate_every= are the daemon's too: refused by
    # snapfs with its reason, not by libfuse as unknown options.
    for opt in ("replicate=file:///tmp/elsewhere", "replicate_every=1h"):
        r = refused(ctx, env, url, mnt, ["-f", "-o", opt],
                    "a daemon option (%s) with a replica" % opt)
        check("-o %s with a replica: snapfs says why, not 'unknown "
              "option'" % opt, "a replica is mounted read-only" in r.stderr
              and "unknown option" not in r.stderr, r.stderr)
    r = refused(ctx, env, "http://example.com/x", mnt, ["-f"],
                "an http:// URL")
    check("an http:// URL: 'not a replica URL' (not 'no such database')",
          "not a replica URL" in r.stderr, r.stderr)
    nopass = dict(env)
    nopass.pop("SNAPFS_PASSPHRASE", None)
    r = refused(ctx, nopass, url, mnt, ["-f"], "no passphrase")
    check("no passphrase: the message says so", "passphrase" in r.stderr,
          r.stderr)
    check("no passphrase: the message names snapfs's own option "
          "(-o passphrase_file=FILE)", "passphrase_file=" in r.stderr,
          r.stderr)
    if kind == "file":
        refused(ctx, env, "file://" + ctx.path("no-replica"), mnt, ["-f"],
                "no replica at the URL")
        # A plain replica and SNAPFS_PASSPHRASE set: refused, and the
        # advice is snapfs's own (snapfs has no --no-encryption).
        purl = "file://" + ctx.path("plain-replica")
        r = ctl(["--db", db, "replicate", purl, "--no-encryption"])
        ctx.require("replicate --no-encryption exits 0", r.returncode == 0,
                    snaptest.describe(r))
        r = refused(ctx, env, purl, mnt, ["-f"],
                    "a passphrase for a plain replica")
        check("a passphrase for a plain replica: the advice is to mount "
              "without one, not snapctl's --no-encryption",
              "--no-encryption" not in r.stderr and
              "SNAPFS_PASSPHRASE" in r.stderr, r.stderr)
        saved = os.environ.pop("SNAPFS_PASSPHRASE", None)
        try:
            m = ctx.mount(purl, mnt=mnt)
            check("the plain replica mounted without a passphrase lists "
                  "its snapshots", sorted(os.listdir(snaps)) == sorted(names))
            m.stop()
        finally:
            if saved is not None:
                os.environ["SNAPFS_PASSPHRASE"] = saved
    else:
        nocred = dict(env)
        nocred.pop("AWS_ACCESS_KEY_ID", None)
        nocred.pop("AWS_SECRET_ACCESS_KEY", None)
        r = refused(ctx, nocred, url, mnt, ["-f"], "no credentials")
        check("no credentials: the message names AWS_ACCESS_KEY_ID",
              "AWS_ACCESS_KEY_ID" in r.stderr, r.stderr)
    pf = ctx.path("pass-right")
    with open(pf, "w") as f:
        f.write(PASS + "\n")
    os.chmod(pf, 0o600)
    os.environ.pop("SNAPFS_PASSPHRASE", None)
    m = ctx.mount(url, mnt=mnt,
                  options=["passphrase_file=" + pf] + endpoint)
    check("mounted with -o passphrase_file: the snapshots are listed",
          sorted(os.listdir(snaps)) == sorted(names))
    check("a private passphrase file: no warning",
          not any("warning" in l for l in m.log), m.text())
    m.stop()
    # One its group or others may only read (umask 022's mode) is used,
    # with a warning that says how to make it private.
    os.chmod(pf, 0o644)
    m = ctx.mount(url, mnt=mnt,
                  options=["passphrase_file=" + pf] + endpoint)
    check("a passphrase file others may read: mounted, the snapshots "
          "listed", sorted(os.listdir(snaps)) == sorted(names))
    check("a passphrase file others may read: the daemon warns",
          m.has_log("snapfs: warning: passphrase_file=%s: its group or "
                    "others may read it (mode 0644); chmod 600 %s keeps "
                    "the passphrase private" % (pf, pf)), m.text())
    m.stop()

    if kind != "file":
        return
    os.environ["SNAPFS_PASSPHRASE"] = PASS
    # With allow_other, another user still reads nothing: the decrypted
    # images are private to whoever mounted (0400, directories 0500).
    m = ctx.mount(url, mnt=mnt, options=["allow_other"])
    os.chmod(ctx.dir, 0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534",
              "--clear-groups"]
    r = ctx.run(nobody + ["cat", first])
    check("allow_other: another user cannot read a snapshot",
          r.returncode != 0 and "Permission denied" in r.stderr,
          snaptest.describe(r))
    r = ctx.run(nobody + ["ls", snaps])
    check("allow_other: nor list snapshots/",
          r.returncode != 0 and "Permission denied" in r.stderr,
          snaptest.describe(r))
    check("allow_other: whoever mounted still reads it",
          open(first, "rb").read(16) == b"SQLite format 3\0")
    os.chmod(ctx.dir, 0o700)
    m.stop()
    reused_name(ctx, env, work)
    bounded_cache(ctx, env, work, url)
    # A flipped byte in a pack: reading the snapshot fails with EIO.
    root = url[len("file://"):]
    packs = sorted(os.listdir(os.path.join(root, "packs")))
    ctx.require("the replica has packs", packs, packs)
    pack = os.path.join(root, "packs", packs[0])
    with open(pack, "r+b") as f:
        data = f.read()
        at = len(data) // 2
        f.seek(at)
        f.write(bytes([data[at] ^ 0x40]))
    os.environ["SNAPFS_PASSPHRASE"] = PASS
    m = ctx.mount(url, mnt=mnt)
    try:
        with open(first, "rb") as f:
            got = f.read()
        check("reading a snapshot whose pack is damaged fails with EIO",
              False, "read %d bytes" % len(got))
    except OSError as e:
        check("reading a snapshot whose pack is damaged fails with EIO",
              e.errno == errno.EIO, str(e))
    r = ctx.run(["cp", first, os.path.join(work, "damaged-copy")])
    check("cp of it fails (Input/output error)",
          r.returncode != 0 and "Input/output error" in r.stderr,
          snaptest.describe(r))
    check("the daemon logs what failed, naming the pack",
          m.has_log("packs/" + packs[0]), m.text())
    m.stop()


if __name__ == "__main__":
    kind = sys.argv[1] if len(sys.argv) > 1 else "file"
    snaptest.main("replica-mount-" + kind,
                  lambda ctx: body(ctx, kind), mount=True)
