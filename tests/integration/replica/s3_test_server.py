#!/usr/bin/python3
"""tools/s3-test-server: start gives a real S3 endpoint that takes signed
object writes, reads and listings and refuses a wrong secret; stop leaves no
process behind; a second start on the same DIR is refused; a stale pid file
never makes stop signal a stranger."""

import datetime
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

SRC = os.environ.get("SRC", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
TOOL = os.path.join(SRC, "tools", "s3-test-server")


def load_tool():
    """The script as a module, for its SigV4 signer (one signer, not two)."""
    loader = importlib.machinery.SourceFileLoader("s3ts", TOOL)
    spec = importlib.util.spec_from_loader("s3ts", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


failed = 0
n = 0


def check(what, ok):
    """TAP-style line; count failures."""
    global failed, n
    n += 1
    print("%s %d - %s" % ("ok" if ok else "not ok", n, what))
    if not ok:
        failed += 1


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


def main():
    """Start, use, refuse, stop; always stop."""
    tool = load_tool()
    d = tempfile.mkdtemp(prefix="snapfs-s3ts-")
    stranger = None
    try:
        r = subprocess.run([TOOL, "start", d], capture_output=True, text=True)
        check("start exits 0", r.returncode == 0)
        if r.returncode != 0:
            print(r.stderr)
            return
        env = {}
        for line in r.stdout.splitlines():
            k, v = line[len("export "):].split("=", 1)
            env[k] = v
        check("start prints the five export lines",
              sorted(env) == ["AWS_ACCESS_KEY_ID", "AWS_ENDPOINT_URL",
                              "AWS_REGION", "AWS_SECRET_ACCESS_KEY",
                              "SNAPFS_TEST_BUCKET"])
        check("four server processes run", len(server_pids(d)) == 4)
        b = "/" + env["SNAPFS_TEST_BUCKET"]
        body = os.urandom(100000)
        st, _ = request(tool, env, "PUT", b + "/dir/obj", body)
        check("signed PUT of an object: 200", st == 200)
        st, got = request(tool, env, "GET", b + "/dir/obj")
        check("GET returns the same bytes", st == 200 and got == body)
        st, got = request(tool, env, "GET", b)
        check("the bucket listing names the object",
              st == 200 and b"<Key>dir/obj</Key>" in got)
        st, _ = request(tool, env, "GET", b + "/dir/obj", secret="wrong")
        check("a wrong secret is refused (403)", st == 403)
        r2 = subprocess.run([TOOL, "start", d], capture_output=True, text=True)
        check("a second start on the same DIR is refused",
              r2.returncode == 1 and "already running" in r2.stderr)
        r3 = subprocess.run([TOOL, "status", d], capture_output=True)
        check("status: running (exit 0)", r3.returncode == 0)
    finally:
        subprocess.run([TOOL, "stop", d])
    check("stop leaves no server process", server_pids(d) == [])
    r = subprocess.run([TOOL, "status", d], capture_output=True)
    check("status after stop: exit 1", r.returncode == 1)
    # A stale pid file naming a stranger: stop must not signal it.
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        with open(os.path.join(d, "run", "proxy.pid"), "w") as f:
            f.write("%d\n" % stranger.pid)
        subprocess.run([TOOL, "stop", d])
        check("stop spares a stranger named by a stale pid file",
              stranger.poll() is None)
    finally:
        stranger.kill()
        stranger.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
    print("# %s: %d checks, %d failed" % (os.path.basename(__file__), n, failed))
    sys.exit(1 if failed or n == 0 else 0)
