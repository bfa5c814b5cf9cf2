#!/usr/bin/python3
"""snapctl and replicas, as a user drives them: replicate, then on a
"fresh machine" (another directory, no store, only the URL and the
passphrase) list, show, verify, export and restore give images
byte-identical to the local snapshots (sha256sum of the exported files);
a second run uploads nothing; a wrong or missing passphrase is exit 1,
writes nothing to the replica and is the failed run status reports; a flipped byte or a deleted pack makes verify exit 1 and
name the snapshots; a restore makes a new file, or restores the live
database after a safety snapshot, and the restored database goes on
replicating into the same URL (another database stays refused); a
passphrase change rewrites only the
key; a file:// target on a read-only file system is exit 1 with the
reason and changes nothing local.  With the argument "s3" the replica lives in a real S3 server
(tools/s3-test-server, started and stopped here), and also: no
credentials, wrong credentials, a missing bucket and a server stopped in
the middle of an upload are each a clear error, exit 1, and after the
server is back the next run completes."""

import hashlib
import json
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest  # noqa: E402

S3TS = snaptest.S3_TEST_SERVER
PASS = "a long passphrase nobody guesses"


def sha(path):
    """SHA-256 of a file, as sha256sum prints it."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_db(path, rows):
    """A database with rows rows of text."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t(v) VALUES (?)",
                    [("row %d %s" % (i, "x" * 200),) for i in range(rows)])
    con.commit()
    con.close()


class FileObjects:
    """The objects of a file:// replica, named as in engine/DESIGN.md §6
    ("config", "packs/<seq>", ...), for the tests to read and damage."""

    def __init__(self, url):
        self.root = url[len("file://"):]

    def list(self, under=""):
        """The names of every object under the folder under, sorted."""
        out = []
        for d, _, files in os.walk(os.path.join(self.root, under)):
            out += [os.path.relpath(os.path.join(d, f), self.root)
                    for f in files]
        return sorted(out)

    def read(self, name):
        with open(os.path.join(self.root, name), "rb") as f:
            return f.read()

    def write(self, name, data):
        with open(os.path.join(self.root, name), "wb") as f:
            f.write(data)

    def delete(self, name):
        os.unlink(os.path.join(self.root, name))


class S3Objects:
    """The same for an s3://BUCKET/PREFIX replica on the test server,
    through curl --aws-sigv4 (Python's urllib cannot sign).  The key
    (test:tester) holds a colon, which curl's --user splits at, so the
    credentials go in the URL's user part, percent-encoded, and the URL in
    a -K config on curl's stdin, never on a command line
    (tests/bench/README.md, "curl and the test server's key").  env is
    read at every request: a restarted server has a new endpoint."""

    S3NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"

    def __init__(self, ctx, env, url):
        self.ctx, self.env = ctx, env
        self.bucket, _, prefix = url[len("s3://"):].partition("/")
        self.prefix = prefix.rstrip("/") + "/"

    def _curl(self, method, key, query="", body=None):
        """One signed request; the response body (curl -f: an HTTP error
        is a failed check and an exception)."""
        from urllib.parse import quote
        e = self.env
        user = quote(e["AWS_ACCESS_KEY_ID"], safe="") + ":" + \
            quote(e["AWS_SECRET_ACCESS_KEY"], safe="")
        host = e["AWS_ENDPOINT_URL"].split("://", 1)[1].rstrip("/")
        url = "http://%s@%s/%s/%s%s" % (user, host, self.bucket,
                                        quote(key), query)
        args = ["curl", "-sS", "-f", "-K", "-", "-X", method,
                "--aws-sigv4", "aws:amz:%s:s3" % e["AWS_REGION"],
                "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]
        tmp = None
        if body is not None:
            tmp = self.ctx.path("s3-body")
            with open(tmp, "wb") as f:
                f.write(body)
            args += ["--data-binary", "@" + tmp]
        try:
            r = subprocess.run(args, input=('url = "%s"\n' % url).encode(),
                               capture_output=True, timeout=60)
        finally:
            if tmp:
                os.unlink(tmp)
        if r.returncode != 0:
            self.ctx.check("curl %s %s" % (method, key), False,
                           r.stderr.decode(errors="replace"))
            raise RuntimeError("curl %s %s failed" % (method, key))
        return r.stdout

    def list(self, under=""):
        from urllib.parse import quote
        import xml.etree.ElementTree as ET
        want = self.prefix + (under.rstrip("/") + "/" if under else "")
        out, token = [], None
        while True:
            q = "?list-type=2&prefix=" + quote(want, safe="")
            if token:
                q += "&continuation-token=" + quote(token, safe="")
            doc = ET.fromstring(self._curl("GET", "", q))
            out += [c.find(self.S3NS + "Key").text[len(self.prefix):]
                    for c in doc.iter(self.S3NS + "Contents")]
            token = doc.findtext(self.S3NS + "NextContinuationToken")
            if doc.findtext(self.S3NS + "IsTruncated") != "true" or not token:
                return sorted(out)

    def read(self, name):
        return self._curl("GET", self.prefix + name)

    def write(self, name, data):
        self._curl("PUT", self.prefix + name, body=data)

    def delete(self, name):
        self._curl("DELETE", self.prefix + name)


def replica_objects(ctx, env, url):
    """The objects of the replica at url, file:// or s3://."""
    if url.startswith("file://"):
        return FileObjects(url)
    return S3Objects(ctx, env, url)


def flip(store, name, mask):
    """xor the middle byte of object name with mask; its old bytes."""
    orig = store.read(name)
    data = bytearray(orig)
    data[len(data) // 2] ^= mask
    store.write(name, bytes(data))
    return orig


def contents(store):
    """Every object of a replica as {name: bytes}."""
    return {n: store.read(n) for n in store.list()}


def run(ctx, work, env, url, s3dir):
    """The whole story against url."""
    check = ctx.check

    def ctl(args, env, cwd=None):
        return ctx.run([ctx.snapctl] + args, env=env, cwd=cwd)

    db = os.path.join(work, "app.db")
    make_db(db, 3000)
    names = []
    for label in ("one", "two", "three"):
        r = ctl(["--db", db, "create", "--label", label], env)
        names.append(r.stdout.strip())
        con = sqlite3.connect(db)
        con.execute("UPDATE t SET v = 'changed %s' WHERE id %% 97 = 0" % label)
        con.commit()
        con.close()
    local = {}
    for name in names:
        out = os.path.join(work, "local-" + name)
        ctl(["--db", db, "export", name, out], env)
        local[name] = sha(out)

    noenc = dict(env)
    noenc.pop("SNAPFS_PASSPHRASE", None)
    r = ctl(["--db", db, "replicate", url], noenc)
    check("replicate without a passphrase is refused (exit 1)",
          r.returncode == 1 and "SNAPFS_PASSPHRASE" in r.stderr, r.stderr)

    r = ctl(["--db", db, "replicate", "http://example.com/x"], noenc)
    check("an invalid URL without a passphrase: exit 1, the URL is what "
          "is wrong", r.returncode == 1 and "not a replica URL" in r.stderr,
          r.stderr)
    r = ctl(["--help"], env)
    check("snapctl --help names --replica, --passphrase-file, --endpoint "
          "and the AWS_* variables", r.returncode == 0 and
          all(x in r.stdout for x in ("--replica URL", "--passphrase-file",
                                      "--endpoint", "AWS_REGION",
                                      "AWS_ENDPOINT_URL", "restore NAME "
                                      "--db PATH")), r.stdout)

    r = ctl(["--db", db, "replicate", url, "--json"], env)
    check("first replicate exits 0", r.returncode == 0, r.stderr)
    first = json.loads(r.stdout) if r.returncode == 0 else {}
    check("--json summary counts 3 snapshots and some pages",
          first.get("snapshots") == 3 and first.get("pages", 0) > 0, r.stdout)
    r = ctl(["--db", db, "replicate", url, "--json"], env)
    again = json.loads(r.stdout) if r.returncode == 0 else {}
    check("a second run uploads nothing",
          again.get("snapshots") == 0 and again.get("bytes") == 0 and
          again.get("present") == 3, r.stdout + r.stderr)
    # Another database into the same URL: refused, nothing written, so
    # that its snapshots never mix with app.db's in a listing or restore.
    odb = os.path.join(work, "other.db")
    make_db(odb, 300)
    ctl(["--db", odb, "create", "--label", "other"], env)
    before = contents(replica_objects(ctx, env, url))
    r = ctl(["--db", odb, "replicate", url], env)
    check("replicate of another database into the same URL: exit 1, says "
          "so and what to do, writes nothing", r.returncode == 1 and
          "another database" in r.stderr and "another URL or prefix" in
          r.stderr and contents(replica_objects(ctx, env, url)) == before,
          r.stdout + r.stderr)

    # The fresh machine: another directory, no store, URL + passphrase.
    fresh = os.path.join(work, "fresh")
    os.mkdir(fresh)
    r = ctl(["--replica", url, "list", "--json"], env, cwd=fresh)
    listed = [s["name"] for s in json.loads(r.stdout)] if r.returncode == 0 else []
    check("list from the URL alone names the three snapshots",
          listed == names, r.stdout + r.stderr)
    ok = True
    for name in names:
        out = os.path.join(fresh, name)
        r = ctl(["--replica", url, "export", name, out], env, cwd=fresh)
        ok = ok and r.returncode == 0 and sha(out) == local[name]
    check("export from the replica is byte-identical (sha256) for each", ok)
    r = ctl(["--replica", url, "show", "latest"], env)
    check("show latest names the newest", r.returncode == 0 and names[-1] in r.stdout,
          r.stdout + r.stderr)
    r = ctl(["--replica", url, "verify", "--full"], env)
    check("verify --full: exit 0, 3 verified", r.returncode == 0 and
          "3 snapshots verified, 0 bad" in r.stdout, r.stdout + r.stderr)

    newdb = os.path.join(fresh, "restored.db")
    r = ctl(["--replica", url, "restore", names[0], "--db", newdb], env)
    check("restore into a new file", r.returncode == 0 and
          sha(newdb) == local[names[0]], r.stdout + r.stderr)
    # The temporary file beside PATH has a name nobody can guess: one
    # planted at the name of snapctl's pid (a shell that execs snapctl
    # keeps its pid) does not stop the restore.
    planted = os.path.join(fresh, "planted.db")
    r = ctx.run(["sh", "-c", 'f=$1; shift; touch "$f.snapfs-replica-$$" && exec "$@"',
                 "sh", planted, ctx.snapctl, "--replica", url, "restore",
                 names[0], "--db", planted], env=env)
    check("restore into a new file beside a file planted at the pid's "
          "temporary name", r.returncode == 0 and
          sha(planted) == local[names[0]], r.stdout + r.stderr)
    nodir = os.path.join(fresh, "no-such-dir", "x.db")
    r = ctl(["--replica", url, "restore", names[0], "--db", nodir], env)
    check("restore into a directory that does not exist: exit 1, names "
          "it (not a temporary file)", r.returncode == 1 and
          os.path.dirname(nodir) in r.stderr and
          ".snapfs-replica-" not in r.stderr, r.stderr)
    r = ctl(["--replica", url, "restore", names[0], "--db", db], env)
    rows = sqlite3.connect(db).execute(
        "SELECT count(*) FROM t WHERE v LIKE 'changed%'").fetchone()[0]
    r2 = ctl(["--db", db, "list", "--json"], env)
    kinds = [s["kind"] for s in json.loads(r2.stdout)]
    check("restore into the live database, after a safety snapshot",
          r.returncode == 0 and rows == 0 and "pre-restore" in kinds,
          r.stdout + r.stderr)
    restore_keeps_name(ctx, ctl, env, work, url + "-names")
    restore_continues(ctx, ctl, env, work, url + "-dr")

    # Killed with SIGKILL at many points, resumed each time: whatever the
    # replica lists verifies, and the last run completes it.
    kdb = os.path.join(work, "kill.db")
    make_db(kdb, 20000)
    for i in range(4):
        ctl(["--db", kdb, "create", "--label", "k%d" % i], env)
        con = sqlite3.connect(kdb)
        con.execute("UPDATE t SET v = 'k%d' || id WHERE id %% 5 = %d" % (i, i))
        con.commit()
        con.close()
    os.environ.update(env)
    p, _, _, _, full = ctx.sc_kill_after(["replicate", url + "-probe"], kdb, 300)
    points = 10
    finished = killed = 0
    listed_ok = True
    for i in range(points):
        delay = full * (i + ctx.rng.random()) / points
        p, out, err, was_killed, _ = ctx.sc_kill_after(
            ["replicate", url + "-kill"], kdb, delay)
        killed += was_killed
        finished += not was_killed and p.returncode == 0
        r = ctl(["--replica", url + "-kill", "verify"], env)
        # Killed before its config was written: no replica yet, also fine.
        if r.returncode != 0 and "no replica there" not in r.stderr:
            listed_ok = False
            print("# after a kill at %.3fs: %s%s" % (delay, r.stdout, r.stderr))
    check("killed at %d points (%d in flight): every listed snapshot verifies"
          % (points, killed), listed_ok and killed > 0)
    r = ctl(["--db", kdb, "replicate", url + "-kill"], env)
    r2 = ctl(["--replica", url + "-kill", "verify", "--full"], env)
    r3 = ctl(["--replica", url + "-kill", "list", "--json"], env)
    check("the next run completes it: 4 snapshots, verify --full clean",
          r.returncode == 0 and r2.returncode == 0 and r3.returncode == 0 and
          len(json.loads(r3.stdout)) == 4, r.stderr + r2.stdout + r2.stderr)

    # Retention on the replica: safety snapshots (kind pre-restore) come
    # and go by the rules; manual ones stay; what remains still verifies.
    pdb = os.path.join(work, "prune.db")
    make_db(pdb, 4000)
    ctl(["--db", pdb, "create", "--label", "base"], env)
    for i in range(3):
        con = sqlite3.connect(pdb)
        con.execute("UPDATE t SET v = 'p%d-' || id" % i)  # every page
        con.commit()
        con.close()
        ctl(["--db", pdb, "restore", "latest"], env)       # a pre-restore
    purl = url + "-prune"
    ctl(["--db", pdb, "replicate", purl], env)
    before = json.loads(ctl(["--replica", purl, "list", "--json"], env).stdout)
    r = ctl(["--replica", purl, "prune", "--keep", "last:1", "--dry-run"], env)
    same = json.loads(ctl(["--replica", purl, "list", "--json"], env).stdout)
    check("prune --dry-run on a replica says 'would prune' and deletes "
          "nothing", r.returncode == 0 and "would prune" in r.stdout and
          same == before, r.stdout + r.stderr)
    r = ctl(["--replica", purl, "prune", "--keep", "last:1"], env)
    after = json.loads(ctl(["--replica", purl, "list", "--json"], env).stdout)
    kinds = sorted(x["kind"] for x in after)
    check("prune --keep last:1: two safety snapshots gone, manual kept, "
          "packs only they used deleted",
          r.returncode == 0 and len(after) == len(before) - 2 and
          "manual" in kinds and "pack" in r.stdout and
          " 0 packs" not in r.stdout, r.stdout + r.stderr)
    r = ctl(["--replica", purl, "verify", "--full"], env)
    check("what prune left verifies (--full)", r.returncode == 0,
          r.stdout + r.stderr)
    r = ctl(["--replica", purl, "log", "--json"], env)
    ev = json.loads(r.stdout) if r.returncode == 0 else []
    check("log on the replica: the replicate run, then the prune, both ok",
          [(e["kind"], e["ok"]) for e in ev] == [("replicate", True),
                                                ("prune", True)],
          r.stdout + r.stderr)
    r = ctl(["--db", pdb, "replicate", purl, "--json"], env)
    again = json.loads(r.stdout) if r.returncode == 0 else {}
    now = json.loads(ctl(["--replica", purl, "list", "--json"], env).stdout)
    check("replicate after a prune: the pruned snapshots are not sent "
          "again (the store still has them)", again.get("snapshots") == 0
          and again.get("pruned") == 2 and now == after,
          r.stdout + r.stderr)

    bad = dict(env, SNAPFS_PASSPHRASE="wrong")
    store = replica_objects(ctx, env, url)
    before = contents(store)
    r = ctl(["--replica", url, "list"], bad)
    check("a wrong passphrase: exit 1, 'wrong passphrase'",
          r.returncode == 1 and "wrong passphrase" in r.stderr, r.stderr)
    r = ctl(["--db", db, "replicate", url], bad)
    check("replicate with a wrong passphrase: exit 1",
          r.returncode == 1 and "wrong passphrase" in r.stderr, r.stderr)
    r = ctl(["--db", db, "status", "--json"], env)
    last = json.loads(r.stdout)["replica"]["last_replication"] \
        if r.returncode == 0 else {}
    check("and status reports that failed run, not the last success",
          last.get("ok") is False and "wrong passphrase" in
          last.get("detail", "") and last["detail"].startswith(url + ": "),
          r.stdout + r.stderr)
    check("and nothing was written (%d objects)" % len(before),
          len(before) > 0 and contents(store) == before)
    # --passphrase-file is read as the daemon reads passphrase_file=: a
    # file its group or others may change, or a link, is refused (exit 1,
    # nothing written); one they may only read is used, with a warning.
    noenv = {k: v for k, v in env.items() if k != "SNAPFS_PASSPHRASE"}
    pf = os.path.join(work, "pass-file")
    with open(pf, "w") as f:
        f.write(env["SNAPFS_PASSPHRASE"] + "\n")
    os.symlink(pf, pf + "-link")
    for mode, link, want in ((0o666, "", "may change it (mode 0666): "
                              "refused; make it private with chmod 600"),
                             (0o620, "", "may change it (mode 0620)"),
                             (0o600, "-link", "a symbolic link")):
        os.chmod(pf, mode)
        r = ctl(["--db", db, "replicate", url, "--passphrase-file",
                 pf + link], noenv)
        check("--passphrase-file %s (mode %o): exit 1, %r, nothing written"
              % (link or "a file", mode, want), r.returncode == 1 and
              want in r.stderr and contents(store) == before, r.stderr)
    os.chmod(pf, 0o644)
    r = ctl(["--replica", url, "list", "--passphrase-file", pf], noenv)
    check("--passphrase-file others may read: listed, with a warning",
          r.returncode == 0 and "snapctl: warning: --passphrase-file %s: "
          "its group or others may read it (mode 0644); chmod 600 %s keeps "
          "the passphrase private" % (pf, pf) in r.stderr, r.stderr)
    os.chmod(pf, 0o600)
    r = ctl(["--replica", url, "list", "--passphrase-file", pf], noenv)
    check("--passphrase-file private: listed, no warning",
          r.returncode == 0 and "warning" not in r.stderr, r.stderr)
    # config gone (deleted, or a 404 from an eventually consistent
    # store): replicate must not make a new key over the replica's data,
    # which would leave every snapshot there unreadable.
    config = store.read("config")
    store.delete("config")
    rest = contents(store)
    r = ctl(["--db", db, "replicate", url], env)
    check("replicate where config is gone but the data is there: exit 1, "
          "says so, nothing written", r.returncode == 1 and
          "but no config" in r.stderr and contents(store) == rest,
          r.stderr)
    store.write("config", b"X" + config[1:])
    r = ctl(["--replica", url, "list"], env)
    check("a config that is no JSON: exit 1, says it is damaged",
          r.returncode == 1 and "config: damaged (not a JSON object)" in
          r.stderr, r.stderr)
    store.write("config", config)
    r = ctl(["--replica", url, "list"], env)
    check("with config put back the replica reads again",
          r.returncode == 0 and contents(store) == before, r.stderr)
    # A flipped byte in one record of the history: log still lists the
    # others and says which one cannot be read (exit 1); verify finds it.
    r = ctl(["--replica", url, "prune", "--keep", "last:1000"], env)
    logs = sorted(n for n in store.list() if n.startswith("log/"))
    ctx.require("the replica has history records (a prune adds one)",
                r.returncode == 0 and len(logs) >= 2, repr(logs) + r.stderr)
    before = contents(store)
    good = flip(store, logs[0], 0x20)
    r = ctl(["--replica", url, "log"], env)
    check("log with one damaged record: exit 1, names it, lists the rest",
          r.returncode == 1 and logs[0] in r.stdout + r.stderr and
          "unreadable" in r.stdout and
          r.stdout.count("\n") >= len(logs) and
          "cannot be read" in r.stderr, r.stdout + r.stderr)
    r = ctl(["--replica", url, "verify"], env)
    check("verify finds the damaged history record: exit 1, names it",
          r.returncode == 1 and logs[0] in r.stdout + r.stderr,
          r.stdout + r.stderr)
    check("... as no snapshot's problem: every snapshot good, one other "
          "object damaged", " 0 bad; 1 other object damaged" in r.stdout
          and "problems in" not in r.stderr, r.stdout + r.stderr)
    r = ctl(["--replica", url, "verify", "--json"], env)
    doc = json.loads(r.stdout) if r.returncode == 1 and r.stdout else {}
    check("verify --json: ok false, bad 0, other 1",
          doc.get("ok") is False and doc.get("bad") == 0 and
          doc.get("other") == 1, r.stdout + r.stderr)
    store.write(logs[0], good)
    r = ctl(["--replica", url, "verify"], env)
    check("with the record put back, verify is clean", r.returncode == 0,
          r.stdout + r.stderr)

    newp = dict(env, SNAPFS_NEW_PASSPHRASE="another one")
    r = ctl(["--replica", url, "passphrase", "change"], newp)
    r1 = ctl(["--replica", url, "list"], env)
    r2 = ctl(["--replica", url, "list"], dict(env, SNAPFS_PASSPHRASE="another one"))
    check("passphrase change: the old one fails, the new one lists",
          r.returncode == 0 and r1.returncode == 1 and r2.returncode == 0,
          r.stderr + r1.stderr + r2.stderr)
    env["SNAPFS_PASSPHRASE"] = "another one"

    if url.startswith("file://"):
        root = url[len("file://"):]
        # A new replica is never scattered among someone's files.
        home = os.path.join(work, "home")
        os.mkdir(home)
        with open(os.path.join(home, "notes.txt"), "w") as f:
            f.write("mine\n")
        r = ctl(["--db", db, "replicate", "file://" + home], env)
        check("replicate into a non-empty directory that is no replica: "
              "exit 1, 'not empty', nothing written there",
              r.returncode == 1 and "not empty" in r.stderr and
              os.listdir(home) == ["notes.txt"], r.stderr)
        # One writer at a time: a live lock of another machine refuses
        # replicate and prune; a dead one of this machine is cleared.
        import socket
        import time
        # (A plain replica, so the test can write lock objects itself:
        # in an encrypted one a lock that does not open is ignored.)
        eurl = url + "-enc"
        ctl(["--db", db, "replicate", eurl], env)
        r = ctl(["--db", db, "replicate", eurl, "--no-encryption"], env)
        check("--no-encryption onto an encrypted replica: exit 0, and a "
              "warning that it stays encrypted", r.returncode == 0 and
              "stays encrypted" in r.stderr, r.stderr)
        lurl = url + "-lock"
        ctl(["--db", db, "replicate", lurl, "--no-encryption"], env)
        lock = os.path.join(lurl[len("file://"):], "locks", "0123456789abcdef")
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        with open(lock, "w") as f:
            json.dump({"what": "replicate", "host": "elsewhere.example",
                       "pid": 4242, "time": int(time.time())}, f)
        r = ctl(["--db", db, "replicate", lurl, "--no-encryption"], env)
        r2 = ctl(["--replica", lurl, "prune", "--keep", "last:1",
                  "--no-encryption"], env)
        check("another machine's replicate running: replicate and prune "
              "refused (exit 1), and say so",
              r.returncode == 1 and "another replicate is running" in r.stderr
              and r2.returncode == 1 and "elsewhere.example" in r2.stderr,
              r.stderr + r2.stderr)
        dead = subprocess.Popen(["true"])
        dead.wait()
        with open(lock, "w") as f:
            json.dump({"what": "replicate", "host": socket.gethostname(),
                       "pid": dead.pid, "time": int(time.time())}, f)
        r = ctl(["--db", db, "replicate", lurl, "--no-encryption"], env)
        check("a killed run's lock on this machine does not block the next",
              r.returncode == 0 and not os.path.exists(lock), r.stderr)
        import shutil

        def copy(tag):
            """A copy of the replica to damage: (url, root)."""
            dst = root + "-" + tag
            shutil.copytree(root, dst)
            return "file://" + dst, dst

        # A config rewritten to "no encryption" (same id): refused when a
        # passphrase is given, nothing uploaded in the clear.
        curl_, croot = copy("plain")
        cfg = json.load(open(os.path.join(croot, "config")))
        plain = {"format": cfg["format"], "version": cfg["version"],
                 "id": cfg["id"], "created": cfg["created"],
                 "encryption": "none", "page_id": "sha256"}
        json.dump(plain, open(os.path.join(croot, "config"), "w"))
        r = ctl(["--db", db, "replicate", curl_], env)
        r2 = ctl(["--replica", curl_, "list"], env)
        check("a config turned plain: replicate and list refuse (exit 1)",
              r.returncode == 1 and "not encrypted" in r.stderr and
              r2.returncode == 1, r.stderr + r2.stderr)
        # Key derivation parameters raised to hours and gigabytes.
        cfg2 = dict(cfg)
        cfg2["kdf"] = dict(cfg["kdf"], opslimit=4294967295)
        json.dump(cfg2, open(os.path.join(croot, "config"), "w"))
        r = ctl(["--replica", curl_, "list"], env)
        check("an absurd Argon2id cost in config: refused at once (exit 1)",
              r.returncode == 1 and "out of range" in r.stderr, r.stderr)
        # A FIFO where config should be: an error, not a hang.
        furl, froot = copy("fifo")
        os.unlink(os.path.join(froot, "config"))
        os.mkfifo(os.path.join(froot, "config"))
        r = ctx.run([ctx.snapctl, "--replica", furl, "list"], env=env,
                    timeout=60)
        check("a FIFO named config: exit 1, no hang",
              r.returncode == 1 and "not a replica object" in r.stderr,
              r.stderr)
        # A junk object in index/ shadows nothing; replicate goes on.
        jurl, jroot = copy("junk")
        with open(os.path.join(jroot, "index", "0000000000000002"), "wb") as f:
            f.write(os.urandom(100))
        r = ctl(["--replica", jurl, "verify"], env)
        r2 = ctl(["--db", db, "replicate", jurl], env)
        check("junk in index/: verify still proves every snapshot, "
              "replicate still works", r.returncode == 0 and
              r2.returncode == 0, r.stdout + r.stderr + r2.stderr)
        # One damaged catalog row hides only its own snapshot.
        durl, droot = copy("row")
        rows = sorted(os.listdir(os.path.join(droot, "snapshots")))
        rp = os.path.join(droot, "snapshots", rows[0])
        data = bytearray(open(rp, "rb").read())
        data[len(data) // 2] ^= 1
        open(rp, "wb").write(bytes(data))
        r = ctl(["--replica", durl, "list", "--json"], env)
        r2 = ctl(["--replica", durl, "verify"], env)
        check("a damaged catalog row: list shows the others and warns, "
              "verify exit 1 names the object",
              r.returncode == 0 and len(json.loads(r.stdout)) >= 1 and
              "damaged" in r.stderr and r2.returncode == 1 and
              rows[0] in r2.stdout, r.stderr + r2.stdout + r2.stderr)
        # An object far larger than any replica object: refused, not read.
        burl, broot = copy("big")
        with open(os.path.join(broot, "config"), "ab") as f:
            f.truncate(64 << 20)
        r = ctl(["--replica", burl, "list"], env)
        check("a 64 MB config: refused (exit 1)", r.returncode == 1 and
              "more than such an object can hold" in r.stderr, r.stderr)

        pack_faults(ctx, ctl, env, url, store, names, fresh)
        read_only_target(ctx, ctl, env, db)
        return

    # S3 only: credentials, bucket, a server that goes away.
    nocred = dict(env)
    nocred.pop("AWS_ACCESS_KEY_ID")
    r = ctl(["--replica", url, "list"], nocred)
    check("no credentials: exit 1, says which variables",
          r.returncode == 1 and "AWS_ACCESS_KEY_ID" in r.stderr, r.stderr)
    r = ctl(["--replica", url, "list"], dict(env, AWS_SECRET_ACCESS_KEY="nope"))
    check("wrong credentials: exit 1, access denied",
          r.returncode == 1 and "access denied" in r.stderr, r.stderr)
    secret = "a-wrong-secret-nobody-prints"
    r = ctl(["--db", db, "replicate", url],
            dict(env, AWS_SECRET_ACCESS_KEY=secret))
    st = ctl(["--db", db, "status", "--json"], env)
    lg = ctl(["--db", db, "log"], env)
    last = json.loads(st.stdout)["replica"]["last_replication"] \
        if st.returncode == 0 else {}
    check("replicate with wrong credentials: exit 1, and status reports "
          "the failed run; the secret is in no output",
          r.returncode == 1 and last.get("ok") is False and
          "access denied" in last.get("detail", "") and
          all(secret not in x for x in (r.stdout, r.stderr, st.stdout,
                                        lg.stdout)),
          r.stderr + st.stdout)
    r = ctl(["--replica", url, "list"], dict(env, AWS_REGION="eu-west-1"))
    check("a region the bucket is not in: exit 1, the server's reason "
          "(names the region)", r.returncode == 1 and "eu-west-1" in
          r.stderr and "region" in r.stderr, r.stderr)
    r = ctl(["--replica", "s3://no-such-bucket/x", "list"], env)
    check("a missing bucket: exit 1, 'no bucket'",
          r.returncode == 1 and "no bucket" in r.stderr, r.stderr)
    r = ctl(["--replica", url + "-elsewhere", "list"], env)
    check("a prefix with no replica: exit 1, 'no replica'",
          r.returncode == 1 and "no replica" in r.stderr, r.stderr)
    # The server stopped in the middle of an upload.
    make_db(os.path.join(work, "big.db"), 60000)
    big = os.path.join(work, "big.db")
    ctl(["--db", big, "create"], env)
    p = subprocess.Popen([ctx.snapctl, "--db", big, "replicate", url + "-big"],
                         env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    # Stop the server while replicate runs (a stop takes ~0.2 s, the
    # upload of this 15 MB database longer): it fails wherever it is.
    subprocess.run([S3TS, "stop", s3dir], check=True)
    out, err = p.communicate(timeout=120)
    check("server stopped during replicate: exit 1, clear error",
          p.returncode == 1 and "snapctl:" in err, err)
    r = subprocess.run([S3TS, "start", s3dir], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        k, v = line[len("export "):].split("=", 1)
        env[k] = v
    r = ctl(["--replica", url, "list", "--json"], env)
    listed = [x["name"] for x in json.loads(r.stdout)] if r.returncode == 0 else []
    check("the server back: what it stored before is still there",
          listed == names, r.stdout + r.stderr)
    r = ctl(["--db", big, "replicate", url + "-big"], env)
    r2 = ctl(["--replica", url + "-big", "verify", "--full"], env)
    check("after the restart, replicate completes and verifies",
          r.returncode == 0 and r2.returncode == 0, r.stderr + r2.stdout)
    pack_faults(ctx, ctl, env, url, store, names, fresh)


def restore_keeps_name(ctx, ctl, env, work, url):
    """A snapshot the store no longer has (deleted here, kept in the
    replica), restored from the replica into the live database, comes back
    under its own name and label (kind import), so the next replicate
    finds it in the replica instead of adding a copy."""
    check = ctx.check
    db = os.path.join(work, "names.db")
    make_db(db, 300)
    names = []
    for label in ("one", "two"):
        names.append(ctl(["--db", db, "create", "--label", label],
                         env).stdout.strip())
        con = sqlite3.connect(db)
        con.execute("UPDATE t SET v = '%s' WHERE id = 1" % label)
        con.commit()
        con.close()
    ctl(["--db", db, "replicate", url], env)
    ctl(["--db", db, "delete", names[0]], env)
    r = ctl(["--replica", url, "restore", names[0], "--db", db], env)
    snaps = json.loads(ctl(["--db", db, "list", "--json"], env).stdout)
    back = [(s["label"], s["kind"]) for s in snaps if s["name"] == names[0]]
    check("restore from the replica of a snapshot deleted here: imported "
          "under its own name and label", r.returncode == 0 and
          back == [("one", "import")] and
          not any(s["label"] == "replica" for s in snaps),
          r.stdout + r.stderr + repr(snaps))
    check("... into the database that wrote the replica: no notice that it "
          "does not continue the replica (it does)",
          "snapshots of its own" not in r.stderr and
          "does not continue" not in r.stderr, r.stderr)
    r = ctl(["--db", db, "replicate", url, "--json"], env)
    sent = json.loads(r.stdout) if r.returncode == 0 else {}
    check("... and the next replicate does not send it again (only the "
          "safety snapshot)", sent.get("snapshots") == 1 and
          sent.get("present") == 2, r.stdout + r.stderr)


def restore_continues(ctx, ctl, env, work, url):
    """Disaster recovery goes on into the same replica: on a fresh
    machine a snapshot restored into a new file, the database changed, a
    snapshot taken and replicated into the URL it came from (exit 0,
    listed after the old ones); a live database with no replica of its
    own restored from it goes on too; another database is still refused
    and told how a restored one continues a replica."""
    check = ctx.check
    db = os.path.join(work, "dr.db")
    make_db(db, 300)
    old = [ctl(["--db", db, "create", "--label", "one"], env).stdout.strip()]
    ctl(["--db", db, "replicate", url], env)
    fresh = os.path.join(work, "dr-fresh")
    os.mkdir(fresh)
    newdb = os.path.join(fresh, "app.db")
    r = ctl(["--replica", url, "restore", "latest", "--db", newdb], env,
            cwd=fresh)
    check("DR: restore into a new file on a fresh machine", r.returncode == 0
          and os.path.exists(newdb), r.stdout + r.stderr)
    con = sqlite3.connect(newdb)
    con.execute("UPDATE t SET v = 'after the restore' WHERE id = 1")
    con.commit()
    con.close()
    new = ctl(["--db", newdb, "create", "--label", "after"], env).stdout.strip()
    r = ctl(["--db", newdb, "replicate", url], env)
    r2 = ctl(["--replica", url, "list", "--json"], env)
    listed = [s["name"] for s in json.loads(r2.stdout)] if \
        r2.returncode == 0 else []
    check("DR: the restored database replicates into the same URL (exit 0), "
          "its new snapshot listed after the old ones", r.returncode == 0 and
          listed == old + [new], r.stdout + r.stderr + repr(listed))
    live = os.path.join(work, "dr-live.db")
    make_db(live, 50)
    r = ctl(["--replica", url, "restore", new, "--db", live], env)
    r2 = ctl(["--db", live, "replicate", url], env)
    check("DR: a live database that never replicated, restored from the "
          "replica, replicates into it (exit 0)", r.returncode == 0 and
          r2.returncode == 0, r.stdout + r.stderr + r2.stdout + r2.stderr)
    mine = os.path.join(work, "dr-mine.db")
    make_db(mine, 70)
    ctl(["--db", mine, "create", "--label", "mine"], env)
    r = ctl(["--replica", url, "restore", new, "--db", mine], env)
    r2 = ctl(["--db", mine, "replicate", url], env)
    check("DR: a live database with snapshots of its own, restored from "
          "the replica, keeps its history out of it (restore exit 0 and "
          "says so; replicate refused)", r.returncode == 0 and
          "snapshots of its own" in r.stderr and r2.returncode == 1 and
          "another database" in r2.stderr,
          r.stdout + r.stderr + r2.stdout + r2.stderr)
    odb = os.path.join(work, "dr-other.db")
    make_db(odb, 300)
    ctl(["--db", odb, "create", "--label", "other"], env)
    r = ctl(["--db", odb, "replicate", url], env)
    check("DR: another database into that URL is still refused, and told "
          "how a restored database continues a replica", r.returncode == 1
          and "another database" in r.stderr and
          "snapctl --replica %s restore" % url in r.stderr, r.stderr)


def pack_faults(ctx, ctl, env, url, store, names, fresh):
    """Damage the replica's packs through store (FileObjects or
    S3Objects): a flipped byte in a pack makes verify exit 1 and name every
    snapshot (the test's three share the first pack), and the original
    put back verifies again; a deleted pack makes verify exit 1 and name
    the snapshots that need it, and the export of one of those exits 1
    and leaves no file.  The same checks on both kinds of target."""
    check = ctx.check
    packs = store.list("packs")
    check("the replica's packs are listed (%d)" % len(packs),
          len(packs) > 0 and all(p.startswith("packs/") for p in packs),
          packs)
    if not packs:
        return
    orig = flip(store, packs[0], 1)
    r = ctl(["--replica", url, "verify"], env)
    check("a flipped byte in a pack: verify exit 1, names the snapshots",
          r.returncode == 1 and all(x in r.stdout for x in names),
          r.stdout + r.stderr)
    store.write(packs[0], orig)
    r = ctl(["--replica", url, "verify"], env)
    check("the pack put back: verify exit 0", r.returncode == 0,
          r.stdout + r.stderr)
    store.delete(packs[-1])
    r = ctl(["--replica", url, "verify", "--json"], env)
    rep = json.loads(r.stdout) if r.stdout.startswith("{") else {}
    hit = [n for n in names
           if any(n == p.get("snapshot") for p in rep.get("problems", []))]
    # The last pack holds the newest pages: the newest snapshot needs it.
    check("a deleted pack: verify exit 1, names the snapshots that need it",
          r.returncode == 1 and names[-1] in hit and
          len(hit) == rep.get("bad"), r.stdout + r.stderr)
    out = os.path.join(fresh, "x.db")
    r = ctl(["--replica", url, "export", names[-1], out], env)
    check("export of a snapshot that needs it: exit 1, no file left",
          r.returncode == 1 and not os.path.exists(out), r.stderr)


def read_only_target(ctx, ctl, env, db):
    """A file:// target on a read-only file system (root ignores mode
    bits, so a read-only tmpfs): creating a replica there and pushing to
    one that turned read-only are exit 1 with the reason, and the local
    store is unchanged."""
    check = ctx.check
    ro = ctx.path("ro")
    os.mkdir(ro)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=4m", "tmpfs",
                        ro], capture_output=True, text=True)
    if r.returncode != 0:
        check("a read-only tmpfs for the read-only target", False, r.stderr)
        return
    try:
        r = ctl(["--db", db, "replicate", "file://" + ro + "/rep"], env)
        check("replicate to a new replica on a read-only file system: "
              "exit 1, 'Read-only file system'",
              r.returncode == 1 and "Read-only file system" in r.stderr,
              r.stderr)
        subprocess.run(["mount", "-o", "remount,rw", ro], check=True)
        r = ctl(["--db", db, "replicate", "file://" + ro + "/rep"], env)
        check("the same target writable: replicate exits 0",
              r.returncode == 0, r.stderr)
        subprocess.run(["mount", "-o", "remount,ro", ro], check=True)
        ctl(["--db", db, "create", "--label", "after-ro"], env)
        before = ctl(["--db", db, "list", "--json"], env).stdout
        r = ctl(["--db", db, "replicate", "file://" + ro + "/rep"], env)
        check("replicate to a replica that turned read-only: exit 1, "
              "'Read-only file system'",
              r.returncode == 1 and "Read-only file system" in r.stderr,
              r.stderr)
        after = ctl(["--db", db, "list", "--json"], env).stdout
        check("the failed replication changed no local snapshot",
              before == after and "after-ro" in after, after)
    finally:
        if subprocess.run(["umount", ro]).returncode != 0:
            subprocess.run(["umount", "-l", ro])


def body(ctx):
    """file:// by default; 's3' for the real server."""
    env = dict(os.environ, SNAPFS_PASSPHRASE=PASS)
    s3dir = None
    if len(sys.argv) > 1 and sys.argv[1] == "s3":
        s3dir = ctx.s3_start(env)
        url = "s3://%s/cli-%d" % (env["SNAPFS_TEST_BUCKET"], os.getpid())
    else:
        url = "file://" + ctx.path("replica")
    run(ctx, ctx.dir, env, url, s3dir)


if __name__ == "__main__":
    snaptest.main("replica_cli", body)
