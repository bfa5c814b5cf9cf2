#!/usr/bin/env python3
"""
The s3:// client against a hostile server (s3_fake.py): snapctl --replica
fails with a clear error, in bounded time and memory, where a server
  * sends an error document with an entity bomb (refused, not expanded);
  * gives the same continuation token again, a truncated page without a
    token, or pages that do not advance (the listing ends in an error);
  * answers a row with more than a row may hold (neither the get nor its
    prefetch takes the whole body);
  * stalls after the headers, or trickles ("timed out"), or never
    answers a PUT (the failed replicate writes no history entry, which
    would wait as long).
With the argument "daemon": snapfs -o replicate= to a server that stops
answering unmounts (fusermount3 -u, or SIGTERM) and exits 0 (needs root
and FUSE); an endpoint whose TLS certificate is not trusted stops the
start (it is no server that does not answer).
With the argument "rmount": snapfs URL MNT (the replica mounted) with a
reader waiting on the silent server: a reader killed then dies at once
(its request, interrupted, is not retried; it stayed in the kernel for a
minute or more before, for the server's timeouts), so does a reader
killed while it waits for another's read to end, and so does getxattr
of user.snapfs.tables (also fetched from the replica); the next reader
gets the right bytes; and the daemon stopped (SIGTERM) then cancels the
request in flight, exits 0 and the mount goes; and a start interrupted
(Ctrl-C) while it waits on the server leaves nothing mounted when the
server answers later.
Nothing here asserts a time: the subprocess timeouts only bound a hang.
"""

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
import snaptest as st  # noqa: E402
import s3_fake  # noqa: E402

HANG = 240   # seconds a command may take before it counts as a hang


def setup(ctx, snapshots=3):
    """A database with snapshots, replicated unencrypted to a fake."""
    fake = s3_fake.FakeS3(ctx.path("objects"))
    ctx.fakes.append(fake)
    env = fake.env(os.environ)
    db = ctx.path("live.db")
    st.make_db(db, "a")
    for i in range(snapshots):
        c = st.connect(db)
        c.execute("INSERT INTO items(tag, body) VALUES(?, 'x')", ("r%d" % i,))
        c.commit()
        c.close()
        ctx.create(db=db)
    r = ctx.run([ctx.snapctl, "--db", db, "replicate", fake.url(),
                 "--no-encryption"], env=env, timeout=HANG)
    ctx.require("snapctl replicate to the fake S3 exits 0",
                r.returncode == 0, st.describe(r))
    return fake, env, db


def ls(ctx, fake, env):
    return ctx.run([ctx.snapctl, "--replica", fake.url(), "list"], env=env,
                   timeout=HANG)


def cli(ctx):
    fake, env, db = setup(ctx)
    r = ls(ctx, fake, env)
    ctx.require("the fake serves the replica (list exits 0)",
                r.returncode == 0, st.describe(r))

    fake.mode = "bomb"
    r = ls(ctx, fake, env)
    ctx.check("an error document with a DTD: refused, its entities never "
              "expanded into the message",
              r.returncode != 0 and "answered 400" in r.stderr and
              "AAAA" not in r.stderr, st.describe(r))

    for mode, needle in (("same-token", "same continuation token"),
                         ("lost-token", "without a continuation token"),
                         ("repeat", "does not advance")):
        fake.mode = mode
        r = ls(ctx, fake, env)
        ctx.check("a listing whose pages go round (%s): an error saying "
                  "%r" % (mode, needle),
                  r.returncode != 0 and needle in r.stderr, st.describe(r))

    fake.mode = "big"
    r = ls(ctx, fake, env)
    ctx.check("rows larger than a row may be: not listed, a warning",
              "rows of the replica are damaged" in r.stderr, st.describe(r))
    ctx.check("no oversized row was downloaded whole, prefetched or not "
              "(%d asked)" % fake.big_asked, fake.big_whole == 0,
              "%d of %d" % (fake.big_whole, fake.big_asked))

    # A server that answers 503 to every GET of a catalog row (busy, or
    # a backend down) is not a damaged replica: list fails and says what
    # the server answered, and a prune deletes nothing (it deleted the
    # packs of every snapshot whose row it could not read).
    fake.mode = "503-rows"
    r = ls(ctx, fake, env)
    ctx.check("rows answered 503: list fails (exit 1) saying the server "
              "answered 503, not that rows are damaged",
              r.returncode == 1 and "answered 503" in r.stderr and
              "damaged" not in r.stderr, st.describe(r))

    def objects():
        out = []
        for d, _, files in os.walk(fake.root):
            out += [os.path.join(d, f) for f in files]
        return sorted(o for o in out if "/locks/" not in o and
                      "/log/" not in o)
    before = objects()
    r = ctx.run([ctx.snapctl, "--replica", fake.url(), "prune", "--keep",
                 "last:1"], env=env, timeout=HANG)
    ctx.check("rows answered 503: prune fails and deletes no object",
              r.returncode == 1 and objects() == before, st.describe(r))
    # Packs answered 503: verify has no verdict (it counted every
    # snapshot bad, 'verification found problems').
    fake.mode = "503-packs"
    for full in ("", " --full"):
        r = ctx.run([ctx.snapctl, "--replica", fake.url(), "verify"] +
                    full.split(), env=env, timeout=HANG)
        ctx.check("packs answered 503: verify%s fails saying it could not "
                  "run, counting no snapshot bad" % full,
                  r.returncode == 1 and "answered 503" in r.stderr and
                  "could not run" in r.stderr and " bad" not in r.stdout and
                  "found problems" not in r.stderr, st.describe(r))
    # An index the store's cache has not seen (another writer's, a killed
    # run's; here the cache emptied) answered 503 while a replicate
    # chooses the seqs of its new pages: the replicate fails.  It took
    # the index for junk, put its new pack one seq above that index's
    # name, inside its range, and the older snapshot no longer read.
    c = st.connect(db + ".snapfs/store.db")
    c.execute("DELETE FROM replica_packs")
    c.execute("DELETE FROM replica_pageids")
    c.commit()
    c.close()
    c = st.connect(db)
    c.execute("INSERT INTO items(tag, body) VALUES('new', zeroblob(20000))")
    c.commit()
    c.close()
    ctx.create(db=db)
    fake.mode = "503-index"
    r = ctx.run([ctx.snapctl, "--db", db, "replicate", fake.url(),
                 "--no-encryption"], env=env, timeout=HANG)
    ctx.check("an index answered 503: replicate fails saying so",
              r.returncode == 1 and "answered 503" in r.stderr,
              st.describe(r))
    fake.mode = "ok"
    r = ctx.run([ctx.snapctl, "--replica", fake.url(), "verify", "--full"],
                env=env, timeout=HANG)
    ctx.check("... and the replica verifies whole afterwards",
              r.returncode == 0, st.describe(r))

    fake.mode = "stall"
    r = ls(ctx, fake, env)
    ctx.check("a server that stalls after the headers: the command fails, "
              "saying it timed out",
              r.returncode != 0 and "timed out" in r.stderr, st.describe(r))

    fake.mode = "trickle"
    r = ls(ctx, fake, env)
    ctx.check("a server that trickles (2 KiB/s): the command fails at the "
              "request's deadline, saying it timed out",
              r.returncode != 0 and "timed out" in r.stderr and
              "deadline" in r.stderr, st.describe(r))

    # A replication whose uploads are never answered: it fails (timed
    # out), and does not then wait as long again to write the replica's
    # history entry of that failure.
    fake.mode = "ok"
    c = st.connect(db)
    c.execute("INSERT INTO items(tag, body) VALUES('late', 'x')")
    c.close()
    ctx.create(db=db)
    fake.mode = "stall-put"
    fake.puts = []
    r = ctx.run([ctx.snapctl, "--db", db, "replicate", fake.url()],
                env=env, timeout=HANG)
    ctx.check("replicate to a server that never answers a PUT: fails, "
              "saying it timed out",
              r.returncode != 0 and "timed out" in r.stderr, st.describe(r))
    ctx.check("it failed after taking the lock, uploading",
              any("/locks/" in "/" + k for k in fake.puts) and
              any("/locks/" not in "/" + k for k in fake.puts), fake.puts)
    ctx.check("no history entry (log/) is attempted after it",
              not any("/log/" in "/" + k for k in fake.puts), fake.puts)


def running_status(ctx, mnt):
    """A replication waiting on the server shows in status.json as
    replica.running_since (and snapctl -C MNT status, text, --json and
    --prometheus)."""
    with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
        rep = json.load(f).get("replica") or {}
    ctx.check("status.json: replica.running_since while the replication "
              "waits", isinstance(rep.get("running_since"), str) and
              isinstance(rep.get("running_since_ns"), int), rep)
    r = ctx.run([ctx.snapctl, "-C", mnt, "status", "--json"])
    js = (json.loads(r.stdout) if r.returncode == 0 else {}).get("replica")
    ctx.check("snapctl -C status --json: the same running_since",
              js and js.get("running_since_ns") == rep.get("running_since_ns"),
              (js, rep))
    r = ctx.run([ctx.snapctl, "-C", mnt, "status"])
    ctx.check("snapctl -C status: a line 'replicating: since ...'",
              r.returncode == 0 and "replicating:" in r.stdout, st.describe(r))
    r = ctx.run([ctx.snapctl, "-C", mnt, "status", "--prometheus"])
    ctx.check("snapctl -C status --prometheus: "
              "snapfs_replica_running_since_timestamp_seconds",
              "\nsnapfs_replica_running_since_timestamp_seconds{" in r.stdout,
              st.describe(r))


def untrusted_tls(ctx, db, env):
    """An endpoint whose certificate is not trusted (self-signed: a
    mistake in endpoint=, or not the server meant) stops the start, exit
    1, nothing mounted, as a missing bucket does: it is not a server that
    does not answer, which the daemon starts without."""
    cert, key = ctx.path("tls.pem"), ctx.path("tls.key")
    r = ctx.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-keyout", key, "-out", cert, "-days", "1", "-subj",
                 "/CN=127.0.0.1"])
    ctx.require("openssl makes a self-signed certificate",
                r.returncode == 0, st.describe(r))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)

    def serve():
        while True:
            try:
                c, _ = lsock.accept()
            except OSError:
                return           # closed: the test is over
            try:
                tls.wrap_socket(c, server_side=True).close()
            except (OSError, ssl.SSLError):
                c.close()        # the client refused the certificate
    threading.Thread(target=serve, daemon=True).start()
    mnt = ctx.path("mnt-tls")
    os.makedirs(mnt, exist_ok=True)
    try:
        r = ctx.run([ctx.snapfs, "-o", "replicate=s3://bk/app,endpoint="
                     "https://127.0.0.1:%d" % lsock.getsockname()[1], db,
                     mnt], timeout=HANG, env=env)
        ctx.check("an endpoint with an untrusted certificate: exit 1, "
                  "nothing mounted, not 'starting without the replica'",
                  r.returncode == 1 and not st.is_mounted(mnt) and
                  "starting without" not in r.stderr, st.describe(r))
    finally:
        if st.is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", mnt])
        lsock.close()


def daemon(ctx):
    fake, env, db = setup(ctx, snapshots=1)
    untrusted_tls(ctx, db, env)
    os.environ.update(env)   # the daemon's credentials and endpoint
    for how in ("fusermount3 -u", "SIGTERM"):
        fake.mode = "ok"
        fake.held.clear()
        m = ctx.mount(db, options=["replicate=" + fake.url()])
        fake.mode = "blackhole"
        open(os.path.join(m.mnt, "snapshots", "next-" + how[0]),
             "w").close()
        ctx.require("the daemon's replication reached the silent server",
                    fake.held.wait(HANG))
        if how == "fusermount3 -u":
            running_status(ctx, m.mnt)
        if how == "SIGTERM":
            m.proc.send_signal(signal.SIGTERM)
            try:
                m.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            ctx.check("after SIGTERM the daemon exits 0 and the mount is "
                      "gone", m.proc.poll() == 0 and
                      not st.is_mounted(m.mnt), m.text())
        m.stop()   # fusermount3 -u (when mounted); exit 0, clean stderr


def in_fuse_wait(pid):
    """Wait (at most HANG s) until process pid sleeps in the kernel on a
    FUSE request (its wchan); False when it never does."""
    deadline = time.monotonic() + HANG
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/wchan" % pid) as f:
                if "request_wait_answer" in f.read():
                    return True
        except OSError:
            return False
        time.sleep(0.05)   # polling the kernel's state, not a readiness guess
    return False


def rmount(ctx):
    fake, env, db = setup(ctx, snapshots=2)
    os.environ.update(env)   # the daemon's credentials and endpoint
    os.environ.pop("SNAPFS_PASSPHRASE", None)
    m = ctx.mount(fake.url(), mnt=ctx.path("rmnt"))
    snaps = sorted(os.listdir(os.path.join(m.mnt, "snapshots")))
    ctx.require("the replica mount lists the snapshots", len(snaps) == 2,
                snaps)
    path = os.path.join(m.mnt, "snapshots", snaps[0])
    local = ctx.path("local.db")
    r = ctx.run([ctx.snapctl, "--db", db, "export", snaps[0], local])
    ctx.require("snapctl export exits 0", r.returncode == 0,
                st.describe(r))

    def silent_reader(argv):
        """Run argv, waiting on the silent server (on a file never read
        before: nothing of it is in the kernel's cache)."""
        fake.mode = "blackhole"
        fake.held.clear()
        with fake.lock:
            fake.held_paths.clear()
        reader = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        ctx.require("%s: its request reached the silent server"
                    % os.path.basename(argv[0]),
                    fake.held.wait(HANG))
        return reader

    def reap(p):
        """p's exit status once it ended (None: still running after HANG
        s) and the requests the server held meanwhile."""
        try:
            p.wait(timeout=HANG)
        except subprocess.TimeoutExpired:
            pass
        with fake.lock:
            return p.poll(), list(fake.held_paths)

    reader = silent_reader(["cat", path])
    reader.kill()
    status, held = reap(reader)
    ctx.check("a reader killed while it waits on the silent server dies",
              status is not None, m.text())
    ctx.check("its request was interrupted, not timed out and tried "
              "again", len(held) == len(set(held)), held)
    # Two readers: the second waits for the first's turn on the replica,
    # and killed, goes at once, while the first still waits.
    first = silent_reader(["cat", path])
    second = subprocess.Popen(
        ["cat", os.path.join(m.mnt, "snapshots", snaps[1])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ctx.require("the second reader waits on the mount",
                    in_fuse_wait(second.pid))
        second.kill()
        status, _ = reap(second)
        ctx.check("a reader killed while another read waits on the server "
                  "goes at once (the other still waits)",
                  status is not None and first.poll() is None, m.text())
        first.kill()
        ctx.check("then the first reader killed goes too",
                  reap(first)[0] is not None, m.text())
    finally:
        for p in (first, second):
            if p.poll() is None:
                p.kill()
                p.wait()
    # The tables xattr, fetched from the replica: the same (getxattr(2)
    # from python: getfattr is not a dependency).
    reader = silent_reader([sys.executable, "-c", "import os, sys; "
                            "os.getxattr(sys.argv[1], 'user.snapfs.tables')",
                            path])
    reader.kill()
    status, held = reap(reader)
    ctx.check("getxattr of user.snapfs.tables killed while it waits on "
              "the silent server goes at once",
              status is not None and len(held) == len(set(held)), held)
    fake.mode = "ok"
    out = ctx.path("copy.db")
    r = ctx.run(["cp", path, out], timeout=HANG)
    ctx.check("then cp of the snapshot gives the snapshot's bytes",
              r.returncode == 0 and st.sha256(out) == st.sha256(local),
              st.describe(r))

    reader = silent_reader(["cat", os.path.join(m.mnt, "snapshots",
                                                snaps[1])])
    try:
        m.proc.send_signal(signal.SIGTERM)
        _, held = reap(m.proc)
        ctx.check("after SIGTERM the replica mount exits 0 and is gone",
                  m.proc.poll() == 0 and not st.is_mounted(m.mnt),
                  m.text())
        ctx.check("the request in flight was cancelled, not timed out "
                  "and tried again", len(held) == len(set(held)), held)
        ctx.check("the reader got an error",
                  reader.wait(timeout=HANG) != 0)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
        m.stop()
    interrupted_start(ctx, fake)


def daemon_pids(argv):
    """The pids of the processes running exactly argv."""
    want = "\0".join(argv) + "\0"
    out = []
    for d in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % d) as f:
                if d.isdigit() and f.read() == want:
                    out.append(int(d))
        except OSError:
            pass
    return out


def interrupted_start(ctx, fake):
    """snapfs URL MNT (daemonized) interrupted (Ctrl-C) while it waits on
    the silent server: when the server answers later, its daemon does not
    mount behind the user's back (it did, and served on)."""
    mnt = ctx.path("rmnt2")
    os.makedirs(mnt)
    argv = [ctx.snapfs, fake.url(), mnt]
    fake.mode = "blackhole"
    fake.held.clear()
    starter = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    pids = []
    try:
        ctx.require("the start's request reached the silent server",
                    fake.held.wait(HANG))
        pids = [p for p in daemon_pids(argv) if p != starter.pid]
        ctx.require("the daemon was forked", len(pids) == 1, pids)
        starter.send_signal(signal.SIGINT)
        starter.wait(timeout=HANG)
        fake.mode = "ok"
        fake.unhold.set()      # its request fails; the retry is answered
        deadline = time.monotonic() + HANG
        while os.path.exists("/proc/%d" % pids[0]) and \
                time.monotonic() < deadline:
            time.sleep(0.05)   # the daemon's end, polled: not our child
        gone = not os.path.exists("/proc/%d" % pids[0])
        ctx.check("the daemon of an interrupted start exits and leaves "
                  "nothing mounted", gone and not st.is_mounted(mnt),
                  "alive" if not gone else "mounted")
    finally:
        if st.is_mounted(mnt):
            st.unmount(mnt)
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def body(ctx):
    ctx.fakes = []
    mode = sys.argv[1:]
    try:
        {("daemon",): daemon, ("rmount",): rmount}.get(tuple(mode),
                                                       cli)(ctx)
    finally:
        for f in ctx.fakes:
            f.stop()


if __name__ == "__main__":
    st.main("replica-hostile", body,
            mount=sys.argv[1:] in (["daemon"], ["rmount"]))
