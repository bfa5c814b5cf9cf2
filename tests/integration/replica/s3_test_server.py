#!/usr/bin/python3
"""tools/s3-test-server: start gives a real S3 endpoint that takes signed
object writes, reads and listings and refuses a wrong secret; the proxy's
cache (memcached) runs beside the four Swift servers; stop leaves no
process behind, memcached included; a second start on the same DIR is refused; a stale pid file
never makes stop signal a stranger."""

import datetime
import importlib.machinery
import importlib.util
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest  # noqa: E402

TOOL = snaptest.S3_TEST_SERVER


def load_tool():
    """The script as a module, for its SigV4 signer (one signer, not two)."""
    loader = importlib.machinery.SourceFileLoader("s3ts", TOOL)
    spec = importlib.util.spec_from_loader("s3ts", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def request(tool, env, method, path, body=b"", secret=None):
    """A signed request to the endpoint in env; (status, body)."""
    port = int(env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    host = "127.0.0.1:%d" % port
    saved = tool.SECRET_KEY
    if secret is not None:
        tool.SECRET_KEY = secret
    try:
        hdrs = tool.sign(method, None, host, path, body,
                         datetime.datetime.now(datetime.timezone.utc))
    finally:
        tool.SECRET_KEY = saved
    req = urllib.request.Request("http://%s%s" % (host, path),
                                 data=body if method == "PUT" else None,
                                 method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def server_pids(d):
    """Pids of processes whose command line names d and _serve."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if os.fsencode(d) in argv and b"_serve" in argv:
            out.append(int(p))
    return out


def stat(pid):
    """(command name, state, parent pid) of a process, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    rest = text[text.rindex(")") + 2:].split()
    return comm, rest[0], int(rest[1])


def alive(pid):
    """True while pid runs (a zombie nobody reaped yet does not)."""
    st = stat(pid)
    return st is not None and st[1] not in ("Z", "X")


def memcached_of(pids):
    """Pids of the memcached processes whose parent is one of pids."""
    out = []
    for p in os.listdir("/proc"):
        st = stat(int(p)) if p.isdigit() else None
        if st and st[0] == "memcached" and st[2] in pids and alive(int(p)):
            out.append(int(p))
    return out


def body(ctx):
    """Start, use, refuse, stop."""
    check = ctx.check
    tool = load_tool()
    env = {}
    d = ctx.s3_start(env)
    check("start prints the five export lines",
          sorted(env) == ["AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL",
                          "AWS_REGION", "AWS_SECRET_ACCESS_KEY",
                          "SNAPFS_TEST_BUCKET"])
    check("four server processes and memcached's run",
          len(server_pids(d)) == 5)
    cache = memcached_of(server_pids(d))
    check("memcached runs, the child of its server process", len(cache) == 1)
    b = "/" + env["SNAPFS_TEST_BUCKET"]
    data = os.urandom(100000)
    st, _ = request(tool, env, "PUT", b + "/dir/obj", data)
    check("signed PUT of an object: 200", st == 200)
    st, got = request(tool, env, "GET", b + "/dir/obj")
    check("GET returns the same bytes", st == 200 and got == data)
    st, got = request(tool, env, "GET", b)
    check("the bucket listing names the object",
          st == 200 and b"<Key>dir/obj</Key>" in got)
    st, _ = request(tool, env, "GET", b + "/dir/obj", secret="wrong")
    check("a wrong secret is refused (403)", st == 403)
    r = ctx.run([TOOL, "start", d])
    check("a second start on the same DIR is refused",
          r.returncode == 1 and "already running" in r.stderr)
    r = ctx.run([TOOL, "status", d])
    check("status: running (exit 0)", r.returncode == 0)
    ctx.run([TOOL, "stop", d])
    check("stop leaves no server process", server_pids(d) == [])
    check("stop leaves no memcached",
          cache and not any(alive(c) for c in cache))
    r = ctx.run([TOOL, "status", d])
    check("status after stop: exit 1", r.returncode == 1)
    # memcached's parent stopped (it cannot pass SIGTERM on, and is
    # SIGKILLed at the deadline): stop still ends memcached, through the
    # process group (memcached dropped root, and with it its signal on
    # the parent's death).
    r = ctx.run([TOOL, "start", d])
    ctx.require("start again on the same DIR", r.returncode == 0,
                snaptest.describe(r))
    with open(os.path.join(d, "run", "memcache.pid")) as f:
        parent = int(f.read())
    cache = memcached_of([parent])
    os.kill(parent, signal.SIGSTOP)
    ctx.run([TOOL, "stop", d])
    check("stop ends memcached when its parent cannot pass a signal on",
          cache and not any(alive(c) for c in cache)
          and server_pids(d) == [])
    # A stale pid file naming a stranger: stop must not signal it.
    stranger = subprocess.Popen(["sleep", "600"])
    ctx.children.append(stranger)
    with open(os.path.join(d, "run", "proxy.pid"), "w") as f:
        f.write("%d\n" % stranger.pid)
    ctx.run([TOOL, "stop", d])
    check("stop spares a stranger named by a stale pid file",
          stranger.poll() is None)


if __name__ == "__main__":
    snaptest.main("s3_test_server", body)
