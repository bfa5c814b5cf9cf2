#!/usr/bin/env python3
"""
tests/integration/engine/snapctl_progress.py — the progress bars of
`snapctl verify`, `export` and `import` (issue 9), seen as a user sees them.

snapctl runs with its stderr on a pseudo-terminal (Python's pty), the way a
shell runs it, and SNAPCTL_PROGRESS_DELAY_MS=0 so that a small database
draws its bar at once (by default a bar waits 0.3 s, so quick commands
never flicker; waiting for that would make the test depend on time):
  * verify NAME, verify (every snapshot), export NAME FILE and import FILE
    each draw "<what> [###...] N%" moved by the engine's page count up to
    100% (import's steps are the capture's, so only its 100% is checked),
    and erase the line before exiting ("\\r\\033[K" last);
  * stdout stays clean (no "\\r", no bar) and says what it always said;
  * with --json on the same terminal there is no bar, and stdout is JSON;
  * with stderr a pipe (no terminal) there is no bar and no "\\r".
"""

import json
import os
import pty
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest  # noqa: E402

DEADLINE = 120   # seconds one command may take


def run_on_tty(ctx, argv):
    """Run argv with stderr on a new pty; (exit code, stdout, tty bytes)."""
    master, slave = pty.openpty()
    env = dict(os.environ, SNAPCTL_PROGRESS_DELAY_MS="0")
    p = ctx.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                  stderr=slave, env=env)
    os.close(slave)
    tty = b""
    end = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < end:
            ready, _, _ = select.select([master], [], [],
                                        max(0.0, end - time.monotonic()))
            if not ready:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:      # EIO: every writer closed the terminal
                break
            if not data:
                break
            tty += data
        out = p.stdout.read()
        rc = p.wait(timeout=DEADLINE)
    finally:
        os.close(master)
    return rc, out.decode(), tty.decode(errors="replace")


def run_piped(ctx, argv):
    """Run argv with stderr a pipe (not a terminal)."""
    env = dict(os.environ, SNAPCTL_PROGRESS_DELAY_MS="0")
    return ctx.run(argv, env=env, timeout=DEADLINE)


def make_db(path):
    """A database of about 3.5 MB: over 800 pages of 4 KiB."""
    con = snaptest.connect(path)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("BEGIN")
    for i in range(12000):
        con.execute("INSERT INTO t(v) VALUES(?)",
                    (f"row {i} " + "x" * (200 + i % 100),))
    con.execute("COMMIT")
    con.close()


def check_bar(ctx, what, label, r, moves=True):
    """The bar's checks; moves=False for import, whose steps are the
    capture's (a backup step of many pages may be one call)."""
    rc, out, tty = r
    ctx.check(f"{label}: exits 0", rc == 0, f"exit {rc}\n{out}\n{tty!r}")
    ctx.check(f"{label}: draws a '{what} [' bar on the terminal",
              f"{what} [" in tty, repr(tty[-400:]))
    ctx.check(f"{label}: the bar moves (at least two percentages)",
              not moves or len({seg.split("%")[0][-3:] for seg in tty.split("\r")
                   if f"{what} [" in seg and "%" in seg}) >= 2,
              repr(tty[-600:]))
    ctx.check(f"{label}: the bar reaches 100%",
              "] 100%" in tty, repr(tty[-400:]))
    ctx.check(f"{label}: the line is erased at the end",
              tty.endswith("\r\x1b[K"), repr(tty[-80:]))
    ctx.check(f"{label}: stdout has no bar", "\r" not in out and
              "[#" not in out, repr(out))
    return out


def body(ctx):
    db = ctx.path("live.db")
    make_db(db)
    name = ctx.create(db=db, label="first")
    sc = ctx.snapctl
    pages = os.path.getsize(db) // 4096
    ctx.require("the database has more pages than one progress step (256)",
                pages > 512, f"{pages} pages")

    out = check_bar(ctx, "verifying", "verify NAME on a tty",
                    run_on_tty(ctx, [sc, "--db", db, "verify", name]))
    ctx.check("verify NAME on a tty: stdout says it verified, 0 bad",
              "1 snapshot verified, 0 bad" in out, repr(out))
    check_bar(ctx, "verifying", "verify (all) on a tty",
              run_on_tty(ctx, [sc, "--db", db, "verify"]))
    exp = ctx.path("exported.db")
    out = check_bar(ctx, "exporting", "export on a tty",
                    run_on_tty(ctx, [sc, "--db", db, "export", name, exp]))
    ctx.check("export on a tty: stdout says exported",
              out.startswith("exported "), repr(out))
    ctx.check("export on a tty: the file is the snapshot's image",
              snaptest.integrity(exp) == "ok" and
              snaptest.count_rows(exp, table="t") == 12000)
    check_bar(ctx, "importing", "import on a tty",
              run_on_tty(ctx, [sc, "--db", db, "import", exp]), moves=False)

    # --json: no bar even on a terminal.
    for args in (["verify", name], ["export", name, ctx.path("j.db")]):
        rc, out, tty = run_on_tty(ctx, [sc, "--db", db, "--json"] + args)
        ctx.check(f"--json {args[0]} on a tty: exits 0", rc == 0,
                  f"{out}\n{tty!r}")
        ctx.check(f"--json {args[0]} on a tty: no bar, no \\r", "[" not in
                  tty and "\r" not in tty, repr(tty))
        try:
            json.loads(out)
            ok = True
        except ValueError:
            ok = False
        ctx.check(f"--json {args[0]} on a tty: stdout is JSON", ok,
                  repr(out))

    # No terminal: no bar.
    for args in (["verify", name], ["verify"],
                 ["export", name, ctx.path("p.db")],
                 ["import", exp]):
        r = run_piped(ctx, [sc, "--db", db] + args)
        ctx.check(f"{args[0]} without a tty: exits 0", r.returncode == 0,
                  snaptest.describe(r))
        ctx.check(f"{args[0]} without a tty: no bar, no \\r on stderr",
                  "\r" not in r.stderr and "[#" not in r.stderr and
                  "[." not in r.stderr, repr(r.stderr))


if __name__ == "__main__":
    snaptest.main("snapctl_progress", body)
