#!/usr/bin/env python3
"""
The daemon replicates (issue 11): -o replicate=URL on a real mount, the
replica driven with snapctl --replica URL as a user would.

  * bad replica options are refused before anything is mounted: not a
    replica URL, replicate_every=/passphrase_file= without replicate=, a
    missing passphrase file, one others may read, a symlink to one, no
    passphrase to create the replica with, (s3) no credentials and a
    missing bucket, and (after the replica exists) a wrong passphrase:
    exit 1, a message, no mount;
  * a snapshot taken through the mount (touch snapshots/NAME) shows up in
    the replica's listing; status.json, `snapctl status` (text, --json,
    --prometheus) report the replica's url, newest snapshot, lag and the
    last replication;
  * a broken replica (its snapshots/ replaced by a symlink, which the file://
    backend refuses): the next snapshot's replication fails, the event log
    says so, on_failure runs with SNAPFS_EVENT=replicate, status says
    ok=false; the local snapshot is there; after the repair the next
    snapshot replicates both;
  * -o replicate_every=1s: a snapshot reaches the replica too;
  * (s3) the server down when the daemon starts: it mounts with a
    warning, the failure is an event (on_failure, status), and once the
    server is back (same port) the next snapshot replicates;
  * (file://) another database's daemon given the same replica: its
    replication is refused ("another database", on_failure, status
    ok=false) and the replica lists only the first database's snapshots.

With the argument "s3" the replica lives in a real S3 server
(tools/s3-test-server) instead of a file:// directory, and the broken
replica part is left out.  Waits are bounded polls (no fixed sleeps).
"""

import json
import os
import shutil
import stat
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

POLL = 60   # seconds a bounded poll may take
PASS = "correct horse battery staple"


def status(mnt):
    with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
        return json.load(f)


def failed_replication(mnt):
    """status.json's last replication when it failed, else None."""
    last = (status(mnt).get("replica") or {}).get("last_replication")
    return last if last and last["ok"] is False else None


def private_file(path, text, mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def replica_names(ctx, env, url):
    """The replica's snapshot names (snapctl --replica URL list --json),
    or None when it cannot be listed."""
    r = ctx.run([ctx.snapctl, "--replica", url, "list", "--json"], env=env,
                timeout=120)
    if r.returncode != 0:
        return None
    return [s["name"] for s in json.loads(r.stdout)]


def local_names(ctx, db):
    return [s["name"] for s in ctx.list(db=db)]


def take(ctx, mnt, db, label):
    """touch snapshots/label; the new snapshot's full name."""
    before = set(local_names(ctx, db))
    open(os.path.join(mnt, "snapshots", label), "w").close()
    new = [n for n in local_names(ctx, db) if n not in before]
    ctx.require("touch snapshots/%s took a snapshot" % label, len(new) == 1,
                new)
    return new[0]


def refused_part(ctx, env, db, url, passfile):
    mnt = ctx.path("mnt-refused")
    os.makedirs(mnt, exist_ok=True)
    open_pass = ctx.path("pass-open")
    private_file(open_pass, PASS + "\n", 0o646)
    link = ctx.path("pass-link")
    os.symlink(passfile, link)
    noenv = {k: v for k, v in env.items() if k != "SNAPFS_PASSPHRASE"}
    bad = [(["replicate=http://example.com/x"], "not a replica URL", env),
           (["replicate_every=1m"], "need", env),
           (["passphrase_file=" + passfile], "need", env),
           (["replicate=" + url, "replicate_every=soon"], "replicate_every=",
            env),
           (["replicate=" + url, "passphrase_file=" + ctx.path("nope")],
            "No such file", env),
           (["replicate=" + url, "passphrase_file=" + open_pass],
            "chmod 600", env),
           (["replicate=" + url, "passphrase_file=" + link],
            "symbolic link", env),
           (["replicate=" + url], "no passphrase", noenv)]
    if url.startswith("s3://"):
        nocred = {k: v for k, v in env.items()
                  if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        bad += [(["replicate=" + url, "passphrase_file=" + passfile],
                 "no credentials", nocred),
                (["replicate=s3://no-such-bucket-snapfs/x",
                  "passphrase_file=" + passfile], "no bucket", env)]
    for opts, needle, e in bad:
        argv = [ctx.snapfs, "-f"]
        for o in opts:
            argv += ["-o", o]
        r = ctx.run(argv + [db, mnt], timeout=120, env=e)
        print("# " + r.stderr.strip().replace("\n", "\n# "))
        ctx.check("-o %s refused (exit 1, says %r), nothing mounted"
                  % (",".join(opts), needle),
                  r.returncode == 1 and needle in r.stderr and
                  not mt.is_mounted(mnt), mt.describe(r))
    ctx.check("no replica was created by a refused start",
              replica_names(ctx, env, url) is None)


def replicate_part(ctx, env, db, url, passfile, s3):
    mnt = ctx.path("mnt")
    hook_out = ctx.path("hook.out")
    hook = ('echo "$SNAPFS_EVENT|$SNAPFS_DETAIL" >> ' + hook_out)
    m = ctx.mount(db, mnt, options=["replicate=" + url,
                                    "passphrase_file=" + passfile,
                                    "on_failure=" + hook.replace(",", "\\,")])
    first = take(ctx, mnt, db, "first")
    names = mt.poll(lambda: (lambda n: n if n and first in n else None)(
        replica_names(ctx, env, url)), POLL)
    ctx.check("the snapshot taken through the mount reaches the replica",
              bool(names), names)

    def replica_status():
        rep = status(mnt).get("replica")
        return rep if rep and rep.get("newest") == first else None
    rep = mt.poll(replica_status, POLL)
    ctx.check("status.json: replica names the url and its newest snapshot",
              rep and rep["url"] == url and rep["newest"] == first,
              status(mnt).get("replica"))
    last = (rep or {}).get("last_replication") or {}
    ctx.check("status.json: lag 0, last replication ok with a time",
              rep and rep["lag_seconds"] == 0 and last.get("ok") is True
              and last.get("time_ns", 0) > 0, rep)
    ctx.check("status.json: running_since null once no replication runs",
              mt.poll(lambda: "running_since" in status(mnt)["replica"] and
                      status(mnt)["replica"]["running_since"] is None,
                      POLL), status(mnt).get("replica"))
    r = ctx.sc("status", "--json", db=db)
    js = json.loads(r.stdout) if r.returncode == 0 else {}
    ctx.check("snapctl status --json reports the replica too (no mount)",
              (js.get("replica") or {}).get("newest") == first and
              js["replica"]["url"] == url, mt.describe(r))
    r = ctx.sc("status", db=db)
    ctx.check("snapctl status says where the replica is",
              r.returncode == 0 and "replica:" in r.stdout and url in
              r.stdout, mt.describe(r))
    r = ctx.sc("status", "--prometheus", db=db)
    ctx.check("--prometheus: snapfs_replica_last_ok 1, lag 0, a timestamp",
              r.returncode == 0 and
              "snapfs_replica_last_ok{" in r.stdout and
              any(l.startswith("snapfs_replica_last_ok{") and
                  l.endswith(" 1") for l in r.stdout.splitlines()) and
              any(l.startswith("snapfs_replica_lag_seconds{") and
                  l.endswith(" 0.000") for l in r.stdout.splitlines()) and
              "snapfs_replica_last_timestamp_seconds{" in r.stdout,
              r.stdout)

    if not s3:
        # Break the replica: snapshots/ (where every new snapshot's row is
        # written) becomes a symlink, which the file://
        # backend refuses to write through.
        rdir = url[len("file://"):]
        moved = rdir + "-snapshots"
        os.rename(os.path.join(rdir, "snapshots"), moved)
        os.makedirs(ctx.path("elsewhere"), exist_ok=True)
        os.symlink(ctx.path("elsewhere"), os.path.join(rdir, "snapshots"))
        second = take(ctx, mnt, db, "second")

        last = mt.poll(lambda: failed_replication(mnt), POLL)
        ctx.check("a failed replication: status last_replication ok=false "
                  "with the reason", last and url in last["detail"], last)
        ctx.check("the reason starts with the URL and names it once",
                  last and last["detail"].startswith(url + ": ") and
                  last["detail"].count(url) == 1, last)
        ctx.check("the replica still names the last good snapshot",
                  (status(mnt).get("replica") or {}).get("newest") == first,
                  status(mnt).get("replica"))
        ctx.check("on_failure ran with SNAPFS_EVENT=replicate",
                  mt.poll(lambda: os.path.exists(hook_out) and
                          "replicate|" in open(hook_out).read(), POLL),
                  open(hook_out).read() if os.path.exists(hook_out) else
                  "no output")
        with open(os.path.join(mnt, ".snapfs", "log")) as f:
            log = f.read()
        ctx.check(".snapfs/log has the FAILED replicate event",
                  any("replicate" in l and "FAILED" in l
                      for l in log.splitlines()), log)
        ctx.check("the daemon logged one line about it",
                  m.has_log("replicate to " + url + " failed"), m.text())
        ctx.check("the local snapshot is intact",
                  second in local_names(ctx, db) and
                  mt.integrity(os.path.join(mnt, "snapshots", second)) ==
                  "ok")
        r = ctx.sc("status", "--prometheus", db=db)
        ctx.check("--prometheus: snapfs_replica_last_ok 0",
                  any(l.startswith("snapfs_replica_last_ok{") and
                      l.endswith(" 0") for l in r.stdout.splitlines()),
                  r.stdout)
        # Repair; the next snapshot retries and brings both.
        os.unlink(os.path.join(rdir, "snapshots"))
        os.rename(moved, os.path.join(rdir, "snapshots"))
        third = take(ctx, mnt, db, "third")
        names = mt.poll(lambda: (lambda n: n if n and third in n else None)(
            replica_names(ctx, env, url)), POLL)
        ctx.check("after the repair the next snapshot replicates both",
                  names and second in names and third in names, names)
        ctx.check("status: ok again, newest is the third",
                  mt.poll(lambda: (status(mnt).get("replica") or {}).get(
                      "newest") == third and status(mnt)["replica"][
                      "last_replication"]["ok"] is True, POLL),
                  status(mnt).get("replica"))
        r = ctx.run([ctx.snapctl, "--replica", url, "verify"], env=env,
                    timeout=300)
        ctx.check("snapctl --replica URL verify is clean", r.returncode == 0,
                  mt.describe(r))
    m.stop()

    # Batched: replicate_every=1s.
    m = ctx.mount(db, mnt, options=["replicate=" + url,
                                    "replicate_every=1s",
                                    "passphrase_file=" + passfile])
    batched = take(ctx, mnt, db, "batched")
    names = mt.poll(lambda: (lambda n: n if n and batched in n else None)(
        replica_names(ctx, env, url)), POLL)
    ctx.check("replicate_every=1s: the snapshot reaches the replica",
              bool(names), names)
    m.stop()

    # snapctl replicate records its run the same way (no daemon).
    def replicate_events():
        r = ctx.sc("log", "--json", db=db)
        return [e for e in json.loads(r.stdout) if e["kind"] == "replicate"]
    before = len(replicate_events())
    r = ctx.run([ctx.snapctl, "--db", db, "replicate", url], env=env,
                timeout=300)
    evs = replicate_events()
    ctx.check("snapctl replicate records a replicate event naming the "
              "replica's newest snapshot",
              r.returncode == 0 and len(evs) == before + 1 and
              evs[-1]["ok"] and evs[-1]["snapshot"] == batched and
              evs[-1]["detail"].startswith(url + ": "),
              (mt.describe(r), evs[-1:]))

    # Another replica replicated by hand while the daemon keeps url: the
    # mount's status.json and snapctl -C status still report url, with
    # its own newest snapshot (not the other one's, nor "never").
    other = url + "-other"
    n = len([e for e in replicate_events() if e["detail"].startswith(url)])
    m = ctx.mount(db, mnt, options=["replicate=" + url,
                                    "passphrase_file=" + passfile])
    mt.poll(lambda: len([e for e in replicate_events()
                         if e["detail"].startswith(url + ": ")]) > n, POLL)
    r = ctx.run([ctx.snapctl, "--db", db, "replicate", other], env=env,
                timeout=300)
    ctx.require("snapctl replicate to another replica", r.returncode == 0,
                mt.describe(r))
    rep = status(mnt).get("replica") or {}
    ctx.check("status.json: still the daemon's replica and its newest",
              rep.get("url") == url and rep.get("newest") == batched, rep)
    r = ctx.run([ctx.snapctl, "-C", mnt, "status", "--json"], env=env)
    js = (json.loads(r.stdout) if r.returncode == 0 else {}).get("replica")
    ctx.check("snapctl -C status --json: the mount's replica, as "
              "status.json", js == rep, (js, rep))
    m.stop()

    # The replica exists now: a wrong passphrase is refused at start.
    wrong = ctx.path("pass-wrong")
    private_file(wrong, "not the passphrase\n")
    r = ctx.run([ctx.snapfs, "-f", "-o", "replicate=" + url, "-o",
                 "passphrase_file=" + wrong, db, mnt], timeout=120, env=env)
    ctx.check("a wrong passphrase: exit 1, a message, nothing mounted",
              r.returncode == 1 and "passphrase" in r.stderr and
              not mt.is_mounted(mnt), mt.describe(r))
    if s3:
        server_gone(ctx, db, url, mnt, passfile, hook, hook_out)


def plain_part(ctx, env, db, url, passfile):
    """A replica made with --no-encryption, and the daemon given a
    passphrase for it: refused, and the message says why (not "no
    passphrase")."""
    r = ctx.run([ctx.snapctl, "--db", db, "replicate", url,
                 "--no-encryption"], env=env, timeout=300)
    ctx.require("snapctl replicate --no-encryption", r.returncode == 0,
                mt.describe(r))
    mnt = ctx.path("mnt-plain")
    os.makedirs(mnt, exist_ok=True)
    r = ctx.run([ctx.snapfs, "-f", "-o", "replicate=" + url, "-o",
                 "passphrase_file=" + passfile, db, mnt], timeout=120,
                env=env)
    ctx.check("a plain replica with a passphrase: exit 1, 'not encrypted' "
              "(not 'no passphrase'), what to do with the daemon's "
              "options (not snapctl's --no-encryption), nothing mounted",
              r.returncode == 1 and "not encrypted" in r.stderr and
              "no passphrase" not in r.stderr and
              "passphrase_file=" in r.stderr and
              "--no-encryption" not in r.stderr and
              not mt.is_mounted(mnt), mt.describe(r))


def other_database_part(ctx, env, url, passfile):
    """A daemon of another database given the replica of app.db: every
    replication refused, nothing of it in the replica."""
    odb = ctx.path("other.db")
    mt.make_db(odb, "other", rows=100)
    mnt = ctx.path("mnt-other")
    hook_out = ctx.path("hook-other.out")
    before = replica_names(ctx, env, url)
    m = ctx.mount(odb, mnt, options=[
        "replicate=" + url, "passphrase_file=" + passfile,
        "on_failure=echo \"$SNAPFS_DETAIL\" >> " + hook_out])
    take(ctx, mnt, odb, "other")

    last = mt.poll(lambda: failed_replication(mnt), POLL)
    ctx.check("another database's daemon on the same replica: replication "
              "refused, status says 'another database' and what to do",
              last and "another database" in last["detail"] and
              "another URL or prefix" in last["detail"], last)
    ctx.check("... and on_failure ran",
              mt.poll(lambda: os.path.exists(hook_out) and
                      "another database" in open(hook_out).read(), POLL))
    m.stop()
    ctx.check("the replica lists only app.db's snapshots",
              replica_names(ctx, env, url) == before, before)


def server_gone(ctx, db, url, mnt, passfile, hook, hook_out):
    """S3: the server stops under a mount; the next snapshot's replication
    fails, on_failure runs, and status gives the reason, naming the
    replica's URL once."""
    m = ctx.mount(db, mnt, options=["replicate=" + url,
                                    "passphrase_file=" + passfile,
                                    "on_failure=" + hook.replace(",", "\\,")])
    r = ctx.run([mt.S3_TEST_SERVER, "stop", ctx.s3dirs[-1]])
    ctx.require("the S3 test server stops", r.returncode == 0,
                mt.describe(r))
    take(ctx, mnt, db, "server-gone")

    last = mt.poll(lambda: failed_replication(mnt), POLL)
    ctx.check("server stopped: status last_replication ok=false, the "
              "reason names the URL once",
              last and last["detail"].startswith(url + ": ") and
              last["detail"].count(url) == 1, last)
    ctx.check("server stopped: on_failure ran with SNAPFS_EVENT=replicate",
              mt.poll(lambda: os.path.exists(hook_out) and
                      "replicate|" in open(hook_out).read(), POLL),
              open(hook_out).read() if os.path.exists(hook_out) else
              "no output")
    m.stop()
    down_at_start(ctx, db, url, mnt, passfile, hook, hook_out)


def down_at_start(ctx, db, url, mnt, passfile, hook, hook_out):
    """S3: the server is down when the daemon starts (a network not up yet
    at boot): the daemon mounts all the same with a warning, its first
    replication fails (event, on_failure, status names the URL), local
    snapshots go on; once the server is back, the next snapshot opens the
    replica and replicates every snapshot it lacks."""
    os.remove(hook_out)
    m = ctx.mount(db, mnt, options=["replicate=" + url,
                                    "passphrase_file=" + passfile,
                                    "on_failure=" + hook.replace(",", "\\,")])
    ctx.check("server down at start: the daemon mounts, warning that it "
              "starts without the replica",
              mt.is_mounted(mnt) and
              "starting without the replica" in "".join(m.log), m.log)
    last = mt.poll(lambda: failed_replication(mnt), POLL)
    ctx.check("server down at start: status names the replica, "
              "last_replication ok=false naming the URL once",
              last and last["detail"].startswith(url + ": ") and
              last["detail"].count(url) == 1 and
              status(mnt)["replica"].get("url") == url, last)
    ctx.check("server down at start: on_failure ran",
              mt.poll(lambda: os.path.exists(hook_out) and
                      "replicate|" in open(hook_out).read(), POLL))
    offline = take(ctx, mnt, db, "while-down")
    r = ctx.run([mt.S3_TEST_SERVER, "start", ctx.s3dirs[-1]])
    ctx.require("the S3 test server starts again", r.returncode == 0,
                mt.describe(r))
    endpoint = "export AWS_ENDPOINT_URL=" + os.environ["AWS_ENDPOINT_URL"]
    ctx.require("the S3 test server is back on its port (another process "
                "took it meanwhile when not: run the test again)",
                endpoint in r.stdout.splitlines(), r.stdout)
    back = take(ctx, mnt, db, "server-back")
    env = dict(os.environ, SNAPFS_PASSPHRASE=PASS)
    names = mt.poll(lambda: (lambda n: n if n and back in n else None)(
        replica_names(ctx, env, url)), POLL)
    ctx.check("server back: the next snapshot opens the replica and "
              "replicates what it lacks (the one taken while it was down "
              "too)", bool(names) and offline in names, names)
    ok = mt.poll(lambda: (lambda r: r if r and r.get("ok") else None)(
        (status(mnt).get("replica") or {}).get("last_replication")), POLL)
    ctx.check("server back: status last_replication ok=true", bool(ok), ok)
    m.stop()


def body(ctx):
    s3 = len(sys.argv) > 1 and sys.argv[1] == "s3"
    if not ctx.snapctl or not os.access(ctx.snapctl, os.X_OK):
        mt.skip("$SNAPCTL is not set to an executable snapctl")
    env = dict(os.environ)
    env.pop("SNAPFS_PASSPHRASE", None)
    if s3:
        ctx.s3_start(env)
        url = "s3://%s/daemon" % env["SNAPFS_TEST_BUCKET"]
        # The daemon reads AWS_* from its environment: the harness's
        # mounts inherit this process's.
        os.environ.update({k: v for k, v in env.items()
                           if k.startswith("AWS_") or
                           k == "SNAPFS_TEST_BUCKET"})
    else:
        url = "file://" + ctx.path("replica")
    db = ctx.path("app.db")
    mt.make_db(db, "replicate", rows=300)
    passfile = ctx.path("pass")
    private_file(passfile, PASS + "\n")
    refused_part(ctx, env, db, url, passfile)
    env["SNAPFS_PASSPHRASE"] = PASS
    replicate_part(ctx, env, db, url, passfile, s3)
    if not s3:
        plain_part(ctx, env, db, url + "-plain", passfile)
        other_database_part(ctx, env, url, passfile)
    st = os.stat(passfile)
    ctx.check("the passphrase file is untouched",
              stat.S_IMODE(st.st_mode) == 0o600)
    shutil.rmtree(ctx.path("elsewhere"), ignore_errors=True)


if __name__ == "__main__":
    mt.main("replicate", body, mount=True)
