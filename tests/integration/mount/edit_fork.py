#!/usr/bin/env python3
"""
Edit sessions and child processes (fs/DESIGN.md §2, "Edit sessions"): a
child that inherited the editing process's descriptor of current.db closes
its copy at exec or exit, and the kernel sends a FLUSH for it as for any
close().  That close is not the editor's: the edit goes on.

  * the new-user repro, with an application committing on the real path
    all the time: a Python client updates a row, commits, runs
    os.system('true') (the child closes SQLite's O_CLOEXEC descriptor at
    exec), updates another row, commits, closes: both edits are in the
    live database, no conflict snapshot, nothing "not applied";
  * the same with a commit on the real path surely between the child and
    the second edit (no timing involved);
  * a forked child that exits (no exec) while the parent edits on;
  * a child that inherited a descriptor without O_CLOEXEC and exits after
    the parent closed: the parent's close() applied the edit, the child's
    close and the RELEASE lose nothing.
"""

import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

# An application on the real path: commits a row into log until the stop
# file exists, then prints how many.
APP = r"""
import os, sqlite3, sys
path, stop = sys.argv[1], sys.argv[2]
db = sqlite3.connect(path, timeout=60, isolation_level=None)
n = 0
while not os.path.exists(stop):
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO log(body) VALUES(?)", ("app-%d" % n,))
    db.execute("COMMIT")
    if n == 1:
        print("ready", flush=True)
print(n, flush=True)
"""

# The repro as the new user ran it, on rows A and B.
REPRO = ("import sqlite3,os; m=sqlite3.connect('%s',timeout=10); "
         "m.execute(\"update u set name='%s' where id=%d\"); m.commit(); "
         "os.system('true'); "
         "m.execute(\"update u set name='%s' where id=%d\"); m.commit(); "
         "m.close()")


def names(path):
    """{id: name} of table u in the database at path."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=120)
    try:
        return dict(db.execute("SELECT id, name FROM u"))
    finally:
        db.close()


def app_commit(path, body):
    """One commit by an application on the real path."""
    db = sqlite3.connect(path, timeout=60)
    db.execute("INSERT INTO log(body) VALUES(?)", (body,))
    db.commit()
    db.close()


def body(ctx):
    live = ctx.path("app.db")
    db = sqlite3.connect(live)
    db.execute("CREATE TABLE u(id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("CREATE TABLE log(id INTEGER PRIMARY KEY, body TEXT)")
    db.executemany("INSERT INTO u(id, name) VALUES(?, ?)",
                   [(i, "n%d" % i) for i in range(1, 61)])
    db.commit()
    db.close()
    m = ctx.mount(live)
    cur = os.path.join(m.mnt, "current.db")

    def conflicts():
        return [n for n, k in mt.kinds(m.mnt).items() if k == "conflict"]

    def refused(since):
        return [l for l in m.log[since:] if "not applied" in l or
                "conflict" in l]

    # The repro, with a writer on the real path all the time.
    stop = ctx.path("stop")
    w = ctx.spawn([sys.executable, "-c", APP, live, stop],
                  stdout=subprocess.PIPE, text=True)
    ctx.require("application writer started",
                w.stdout.readline().strip() == "ready")
    n_log = len(m.log)
    results = []
    for a, b in ((30, 31), (32, 33), (34, 35)):
        r = ctx.run([sys.executable, "-c",
                     REPRO % (cur, "F%d" % a, a, "F%d" % b, b)])
        results.append(r)
    open(stop, "w").close()
    out, _ = w.communicate(timeout=120)
    napp = int(out.split()[-1])
    ctx.check("the repro's clients exit 0",
              all(r.returncode == 0 for r in results),
              "\n".join(mt.describe(r) for r in results))
    got = names(live)
    want = {i: "F%d" % i for i in range(30, 36)}
    ctx.check("both edits of each client are in the live database",
              all(got.get(i) == v for i, v in want.items()),
              {i: got.get(i) for i in want})
    ctx.check("no conflict snapshot", not conflicts(), conflicts())
    ctx.check("the daemon refused nothing", not refused(n_log),
              "\n".join(refused(n_log)))
    db = sqlite3.connect("file:%s?mode=ro" % live, uri=True, timeout=60)
    have = set(r[0] for r in db.execute("SELECT body FROM log"))
    db.close()
    missing = {"app-%d" % i for i in range(1, napp + 1)} - have
    ctx.check("every one of the application's %d commits is in the live "
              "database" % napp, not missing, sorted(missing)[:20])

    def around_child(what, a, b, child, between):
        """Update row a, commit, run child() (returns its exit status),
        commit `between` on the real path, update row b, commit, close:
        both edits must be in the live database."""
        n_log = len(m.log)
        c = sqlite3.connect(cur, timeout=30)
        c.execute("UPDATE u SET name = 'X%d' WHERE id = ?" % a, (a,))
        c.commit()
        status = child()
        app_commit(live, between)
        c.execute("UPDATE u SET name = 'X%d' WHERE id = ?" % b, (b,))
        c.commit()
        c.close()
        got = names(live)
        ctx.check("%s while the client holds current.db: both edits "
                  "applied" % what, status == 0 and
                  got.get(a) == "X%d" % a and got.get(b) == "X%d" % b,
                  (status, got.get(a), got.get(b)))
        ctx.check("no conflict snapshot", not conflicts(), conflicts())
        ctx.check("the daemon refused nothing", not refused(n_log),
                  "\n".join(refused(n_log)))

    def fork_exit():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        return os.waitpid(pid, 0)[1]

    # The same, with the live database surely moved between the child's
    # exec and the second edit.
    around_child("a child's exec", 40, 41, lambda: os.system("true"),
                 "between-exec")
    # A forked child that exits without exec: its exit closes its copy.
    around_child("a forked child's exit", 42, 43, fork_exit, "between-exit")

    # A child that inherited a descriptor without O_CLOEXEC outlives the
    # parent's close: the parent's close() applies, the child's exit and
    # the RELEASE after it lose nothing.
    n_log = len(m.log)
    fd = os.open(cur, os.O_RDWR)
    os.set_inheritable(fd, True)
    child = ctx.spawn([sys.executable, "-c",
                       "import sys; sys.stdin.read()"],
                      stdin=subprocess.PIPE, pass_fds=(fd,))
    c = sqlite3.connect(cur, timeout=30)
    c.execute("UPDATE u SET name = 'K1' WHERE id = 44")
    c.commit()
    c.close()
    app_commit(live, "before-close")
    err = None
    try:
        os.close(fd)
    except OSError as e:
        err = e.errno
    got = names(live)
    ctx.check("the parent's close() succeeds and applies the edit "
              "while the child still holds the descriptor",
              err is None and got.get(44) == "K1", (err, got.get(44)))
    child.stdin.close()
    ctx.check("the child exits 0", child.wait(timeout=60) == 0)
    c = sqlite3.connect(cur, timeout=30)
    c.execute("UPDATE u SET name = 'K2' WHERE id = 45")
    c.commit()
    c.close()
    got = names(live)
    ctx.check("after the child's exit nothing is lost and the next edit "
              "applies", got.get(44) == "K1" and got.get(45) == "K2",
              {44: got.get(44), 45: got.get(45)})
    db = sqlite3.connect("file:%s?mode=ro" % live, uri=True, timeout=60)
    have = set(r[0] for r in db.execute("SELECT body FROM log"))
    db.close()
    ctx.check("the application's commits are in the live database",
              {"between-exec", "between-exit", "before-close"} <= have)
    ctx.check("no conflict snapshot", not conflicts(), conflicts())
    ctx.check("the daemon refused nothing", not refused(n_log),
              "\n".join(refused(n_log)))
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")
    m.stop()


if __name__ == "__main__":
    mt.main("edit_fork", body, mount=True)
