#!/usr/bin/env python3
"""
Edit sessions: SQLite clients writing to current.db through the mount
(fs/DESIGN.md §2, "Edit sessions").

  * `sqlite3 MNT/current.db "insert ..."` reaches the live database, as a
    verified restore, leaving no -journal/-wal/-shm behind; a read-only
    query through a read-write open changes nothing;
  * a client that switches the session to WAL mode works (its -shm is a
    staging file it can mmap) and its edit reaches the live database;
  * two connections through the mount share one session and both edits
    arrive;
  * when the live database changed since the session began, the edit is
    merged as a changeset: an edit through the mount while an application
    changed other rows on the real path closes without error and both
    sides' rows are in the live database (safety snapshot, an event saying
    "changeset"); an edit that changed no row applies nothing;
  * a row changed on both sides (the same row updated, or the same key
    chosen by both and inserted) refuses the whole edit: close() fails
    (EIO), the edited copy is kept as a snapshot of kind conflict, the
    daemon names the table and the row, on_failure runs, and the
    application's commit stays;
  * so is a changed PRAGMA user_version or application_id (header fields
    a changeset cannot carry) while the live database moved: close()
    fails (EIO), the edit is kept as a conflict snapshot;
  * the same automatic key inserted on both sides (an application
    appending to the table the edit inserts into) is not a conflict: the
    edit's row takes a new key, close() succeeds, the daemon logs the old
    and the new key and the event history says so;
  * with an application writing other rows on the real path all the time,
    repeated `sqlite3 MNT/current.db "insert ..."` all reach the live
    database, and no application commit is lost;
  * with an application inserting into the same table all the time (same
    automatic keys on both sides), repeated `sqlite3 MNT/current.db
    "insert ..."` all exit 0 and no close fails (no failed restore in
    status.json, no "not applied" in the daemon's log), every row of both
    is in the live database under its own key, and no conflict snapshot is
    made.
"""

import json

import errno
import os
import sqlite3
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

# An application on the real path: commits rows tagged app into `table`
# until the stop file exists, then prints how many.
APP = r"""
import os, sqlite3, sys
path, stop, table = sys.argv[1], sys.argv[2], sys.argv[3]
db = sqlite3.connect(path, timeout=60, isolation_level=None)
n = 0
while not os.path.exists(stop):
    n += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO %s(tag, body) VALUES('app', ?)" % table,
               ("app-%d" % n,))
    db.execute("COMMIT")
    if n == 1:
        print("ready", flush=True)
print(n, flush=True)
"""


def rows(path, tag, immutable=False, table="items"):
    uri = "file:%s?mode=ro%s" % (path, "&immutable=1" if immutable else "")
    db = sqlite3.connect(uri, uri=True, timeout=120)
    try:
        return set(r[0] for r in db.execute(
            "SELECT body FROM %s WHERE tag = ?" % table, (tag,)))
    finally:
        db.close()


def pragma_of(path, pragma):
    """PRAGMA pragma of the database at path, read-only."""
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=120)
    try:
        return db.execute("PRAGMA %s" % pragma).fetchone()[0]
    finally:
        db.close()


def app_sql(path, sql):
    """One commit by an application on the real path."""
    db = sqlite3.connect(path, timeout=60)
    db.executescript(sql)
    db.commit()
    db.close()


def mount_edit(cur, sql):
    """One commit through the mount by a SQLite client in this process."""
    c = sqlite3.connect(cur, timeout=30)
    c.executescript(sql)
    c.commit()
    c.close()


def close_errno(fd):
    """os.close(fd): None, or the errno it failed with."""
    try:
        os.close(fd)
    except OSError as e:
        return e.errno
    return None


def run_writer(ctx, live, table, edits, cur, tag, sql=None):
    """An application committing into `table` on the real path while
    `edits` sqlite3 clients insert rows tagged `tag` through the mount (or
    run sql(i)); returns (exit codes of the clients, the application's
    commit count)."""
    stop = ctx.path("stop-" + tag)
    w = ctx.spawn([sys.executable, "-c", APP, live, stop, table],
                  stdout=subprocess.PIPE, text=True)
    ctx.require("application writer started (%s)" % table,
                w.stdout.readline().strip() == "ready")
    results = []
    for i in range(edits):
        r = ctx.run(["sqlite3", "-cmd", ".timeout 30000", cur,
                     sql(i) if sql else
                     "INSERT INTO items(tag, body) VALUES('%s', '%s-%d')"
                     % (tag, tag, i)])
        results.append(r.returncode)
    open(stop, "w").close()
    out, _ = w.communicate(timeout=120)
    return results, int(out.split()[-1])


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "base", rows=50)
    app_sql(live, "CREATE TABLE events(id INTEGER PRIMARY KEY, tag TEXT, "
                  "body TEXT)")
    hook_out = ctx.path("hook.out")
    hook = "echo \"$SNAPFS_EVENT|$SNAPFS_DETAIL\" >> " + hook_out
    m = ctx.mount(live, options=["on_failure=" + hook.replace(",", "\\,")])
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")
    sd = os.path.join(mnt, "snapshots")

    def root_clean(what):
        root = mt.root_staging(mnt)
        ctx.check("%s: nothing left beside current.db" % what,
                  root == [], root)

    # A plain insert through the mount.
    r = ctx.run(["sqlite3", cur,
                 "INSERT INTO items(tag, body) VALUES('mount', 'one')"])
    ctx.check("sqlite3 current.db \"insert ...\" exits 0", r.returncode == 0,
              r.stderr)
    ctx.check("the insert reached the live database",
              rows(live, "mount") == {"one"})
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")
    ks = mt.kinds(mnt)
    ctx.check("it went through a verified restore (a pre-restore "
              "snapshot exists)", "pre-restore" in ks.values(), ks)
    root_clean("insert")

    # A transaction of several statements.
    r = ctx.run(["sqlite3", cur,
                 "BEGIN; INSERT INTO items(tag, body) VALUES('mount','two');"
                 "INSERT INTO items(tag, body) VALUES('mount','three');"
                 "DELETE FROM items WHERE body = 'base row 0 ';"
                 "COMMIT;"])
    ctx.check("a multi-statement transaction through the mount",
              r.returncode == 0 and
              rows(live, "mount") == {"one", "two", "three"}, r.stderr)

    # Two transactions in one session, the first growing the file: the
    # second must see the grown copy's size through the same descriptor
    # (the crash sweep once saw "database disk image is malformed" here,
    # when fstat of a session reported the image's size).
    r = ctx.run(["sqlite3", cur,
                 "INSERT INTO items(tag, body) SELECT 'grow', "
                 "printf('%.3000c', 'g') FROM items;"
                 "DELETE FROM items WHERE tag = 'grow';"
                 "INSERT INTO items(tag, body) VALUES('mount','four');"])
    ctx.check("two transactions in one session, the first growing the "
              "file", r.returncode == 0 and "malformed" not in r.stderr and
              rows(live, "grow") == set() and
              "four" in rows(live, "mount"), r.stderr)
    app_sql(live, "DELETE FROM items WHERE body = 'four'")

    # Reading through a read-write open changes nothing.
    n_snaps = len(mt.snapshots(mnt))
    sha = mt.sha256(live)
    r = ctx.run(["sqlite3", cur, "SELECT count(*) FROM items"])
    ctx.check("a query through a read-write open answers",
              r.returncode == 0 and r.stdout.strip() == "52", r.stdout)
    ctx.check("and changes nothing", mt.sha256(live) == sha and
              len(mt.snapshots(mnt)) == n_snaps)
    root_clean("query")

    # A client that switches its session to WAL mode.
    r = ctx.run(["sqlite3", cur, "PRAGMA journal_mode=WAL;"
                 "INSERT INTO items(tag, body) VALUES('mount', 'wal');"])
    ctx.check("a WAL-mode client through the mount", r.returncode == 0,
              r.stdout + r.stderr)
    ctx.check("its edit reached the live database",
              "wal" in rows(live, "mount") and mt.integrity(live) == "ok")
    root_clean("WAL client")

    # Two connections share one session.
    c1 = sqlite3.connect(cur, timeout=30)
    c2 = sqlite3.connect(cur, timeout=30)
    c1.execute("INSERT INTO items(tag, body) VALUES('mount', 'c1')")
    c1.commit()
    seen = c2.execute("SELECT count(*) FROM items WHERE body = 'c1'"
                      ).fetchone()[0]
    c2.execute("INSERT INTO items(tag, body) VALUES('mount', 'c2')")
    c2.commit()
    c1.close()
    c2.close()
    ctx.check("a second connection sees the first one's commit", seen == 1)
    ctx.check("both edits reached the live database",
              {"c1", "c2"} <= rows(live, "mount"))

    def conflicts():
        return [n for n, k in mt.kinds(mnt).items() if k == "conflict"]

    def hooked():
        return open(hook_out).read() if os.path.exists(hook_out) else ""

    def restores_failed():
        with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
            return json.load(f)["mount"]["restores"]["failed"]

    # The live database moves while a session is open, on other rows: the
    # edit is merged.  A descriptor of our own keeps the session open
    # across the client's close, so the application's commit surely falls
    # between the session copy and the apply, and the verdict is what our
    # close() returns.  (A child's close of an inherited copy does not
    # count while we run: edit_fork.py.)
    fd = os.open(cur, os.O_RDWR)
    mount_edit(cur, "INSERT INTO items(tag, body) VALUES('mount', 'merged');"
                    "UPDATE items SET body = 'edited' WHERE id = 2")
    ctx.check("the edit waits for the last writer's close",
              "merged" not in rows(live, "mount"))
    app_sql(live, "INSERT INTO events(tag, body) VALUES('app', 'during');"
                  "UPDATE items SET body = 'app-updated' WHERE id = 3")
    n_safety = list(mt.kinds(mnt).values()).count("pre-restore")
    err = close_errno(fd)
    ctx.check("close() after the live database changed succeeds: the edit "
              "is merged", err is None, err)
    ctx.check("the edit's rows are in the live database",
              "merged" in rows(live, "mount") and
              "edited" in rows(live, "base"))
    ctx.check("and the application's rows too",
              "during" in rows(live, "app", table="events") and
              "app-updated" in rows(live, "base"))
    ctx.check("no conflict snapshot", not conflicts(), mt.kinds(mnt))
    ctx.check("a safety snapshot was taken before the merge",
              list(mt.kinds(mnt).values()).count("pre-restore") ==
              n_safety + 1, mt.kinds(mnt))
    ctx.check("the daemon says it merged a changeset",
              m.has_log("as a changeset"), m.text())
    with open(os.path.join(mnt, ".snapfs", "log")) as f:
        history = f.read()
    ctx.check("the event history says so", "changeset" in history,
              history[-2000:])
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")

    # A stale edit that changed no row (a raw write of the same bytes).
    fd = os.open(cur, os.O_RDWR)
    page = os.pread(fd, 4096, 0)
    app_sql(live, "INSERT INTO items(tag, body) VALUES('app', 'during')")
    os.pwrite(fd, page, 0)
    err = close_errno(fd)
    ctx.check("close() of a stale edit that changed no row succeeds",
              err is None, err)
    ctx.check("the application's commit is still in the live database",
              "during" in rows(live, "app"))
    ctx.check("no conflict snapshot for it", not conflicts(), mt.kinds(mnt))

    # An open while the RELEASE of a finished edit is still on its way (a
    # dup keeps that file open after its close() flushed; the kernel may
    # send RELEASE late under load): the open begins a new edit, and a
    # stale raw write through it is merged like the one above.
    old = os.open(cur, os.O_RDWR)
    page = os.pread(old, 4096, 0)
    app_sql(live, "INSERT INTO items(tag, body) VALUES('app', 'during-2')")
    os.pwrite(old, page, 0)
    err = close_errno(os.dup(old))
    ctx.check("a finished edit's close() succeeds", err is None, err)
    fd = os.open(cur, os.O_RDWR)
    page = os.pread(fd, 4096, 0)
    app_sql(live, "INSERT INTO items(tag, body) VALUES('app', 'during-3')")
    os.pwrite(fd, page, 0)
    err = close_errno(fd)
    os.close(old)
    ctx.check("an edit opened before the last one's release closes "
              "without error", err is None, err)
    ctx.check("no conflict snapshot for it either", not conflicts(),
              mt.kinds(mnt))
    ctx.check("the application's commits are in the live database",
              {"during-2", "during-3"} <= rows(live, "app"))

    # The same row changed on both sides: a conflict.
    fd = os.open(cur, os.O_RDWR)
    mount_edit(cur, "UPDATE items SET body = 'mount-side' WHERE id = 5")
    app_sql(live, "UPDATE items SET body = 'app-side' WHERE id = 5")
    err = close_errno(fd)
    ctx.check("close() of an edit that conflicts fails with EIO",
              err == errno.EIO, err)
    ctx.check("the application's row stays in the live database",
              "app-side" in rows(live, "base") and
              "mount-side" not in rows(live, "base"))
    found = conflicts()
    ctx.check("the edit is kept as a conflict snapshot", len(found) == 1,
              mt.kinds(mnt))
    if found:
        cp = os.path.join(sd, found[0])
        ctx.check("the conflict snapshot holds the edit",
                  "mount-side" in rows(cp, "base") and
                  "app-side" not in rows(cp, "base"))
        ctx.check("its comment says why",
                  "items" in mt.xattr(cp, "comment"),
                  mt.xattr(cp, "comment"))
    ctx.check("the daemon names the table and the row",
              m.has_log("conflict in table items, row id=5"), m.text())
    ctx.check("on_failure ran for it",
              mt.poll(lambda: "conflict in table items" in hooked()),
              hooked())

    # The same key chosen on both sides (id 1 is free since the
    # multi-statement transaction above deleted it): a conflict.
    fd = os.open(cur, os.O_RDWR)
    mount_edit(cur, "INSERT INTO items(id, tag, body) VALUES(1, 'mount', "
                    "'chosen')")
    app_sql(live, "INSERT INTO items(id, tag, body) VALUES(1, 'app', "
                  "'chosen-app')")
    err = close_errno(fd)
    ctx.check("an insert of a key the application chose too fails at "
              "close() with EIO", err == errno.EIO, err)
    ctx.check("and is not applied", "chosen" not in rows(live, "mount") and
              "chosen-app" in rows(live, "app"))
    found = [n for n in conflicts() if "chosen" in
             rows(os.path.join(sd, n), "mount")]
    ctx.check("it is kept as a conflict snapshot", len(found) == 1)
    ctx.check("the daemon says the key was chosen, not assigned",
              m.has_log("not past the end"), m.text())

    # A header field an application sets (PRAGMA user_version at offset
    # 60, application_id at 68) changed while the live database moved: a
    # changeset cannot carry it, so the edit is refused and kept, never
    # dropped in silence.
    for pragma, value in (("user_version", 42), ("application_id", 7)):
        old = pragma_of(live, pragma)
        before = set(conflicts())
        fd = os.open(cur, os.O_RDWR)
        r = ctx.run(["sqlite3", cur, "PRAGMA %s=%d" % (pragma, value)])
        app_sql(live, "INSERT INTO items(tag, body) VALUES('app', '%s')"
                % pragma)
        err = close_errno(fd)
        ctx.check("close() of an edit of PRAGMA %s fails with EIO"
                  % pragma, r.returncode == 0 and err == errno.EIO,
                  (mt.describe(r), err))
        ctx.check("the live database keeps its %s and the application's "
                  "row" % pragma, pragma_of(live, pragma) == old and
                  pragma in rows(live, "app"))
        found = sorted(set(conflicts()) - before)
        ctx.check("the edit is kept as a conflict snapshot holding "
                  "%s = %d" % (pragma, value), len(found) == 1 and
                  pragma_of(os.path.join(sd, found[0]), pragma) == value,
                  found)
        ctx.check("the daemon says why", m.has_log("changed PRAGMA %s"
                                                   % pragma), m.text())

    # The new user's gesture: `sqlite3 current.db "pragma user_version=N"`
    # while the application writes.  Whether the live database moved
    # before the apply is up to timing: either the edit is in the live
    # database or it is kept as a conflict snapshot, never lost.
    before = set(conflicts())
    results, _ = run_writer(ctx, live, "events", 1, cur, "uv",
                            sql=lambda i: "PRAGMA user_version=43")
    found = [n for n in set(conflicts()) - before
             if pragma_of(os.path.join(sd, n), "user_version") == 43]
    ctx.check("sqlite3 \"pragma user_version=43\" while the application "
              "writes: applied or kept as a conflict snapshot",
              results == [0] and (pragma_of(live, "user_version") == 43 or
                                  len(found) == 1),
              (results, pragma_of(live, "user_version"), found))
    if pragma_of(live, "user_version") == 43:
        app_sql(live, "PRAGMA user_version=0")
    root_clean("conflicts")

    # The same automatic key inserted on both sides, through a real SQLite
    # client: the edit's row takes a new key.
    n_conflicts = len(conflicts())
    fd = os.open(cur, os.O_RDWR)
    c = sqlite3.connect(cur, timeout=30)
    c.execute("INSERT INTO items(tag, body) VALUES('mount', 'mine')")
    c.commit()
    mine = c.execute("SELECT id FROM items WHERE body = 'mine'"
                     ).fetchone()[0]
    c.close()
    app_sql(live, "INSERT INTO items(tag, body) VALUES('app', 'theirs')")
    err = close_errno(fd)
    ctx.check("an insert whose automatic key the application took "
              "meanwhile closes without error", err is None, err)
    db = sqlite3.connect("file:%s?mode=ro" % live, uri=True, timeout=60)
    got = dict(db.execute("SELECT body, id FROM items WHERE body IN "
                          "('mine', 'theirs')").fetchall())
    db.close()
    ctx.check("both rows are in the live database, the application's "
              "under the key it got, the edit's under a new one",
              got.get("theirs") == mine and got.get("mine", 0) > mine, got)
    ctx.check("no conflict snapshot for it",
              len(conflicts()) == n_conflicts, mt.kinds(mnt))
    ctx.check("the daemon logs the old and the new key",
              m.has_log("its row id=%d of table items is now id=%d"
                        % (mine, got.get("mine", 0))), m.text())
    with open(os.path.join(mnt, ".snapfs", "log")) as f:
        history = f.read()
    ctx.check("the event history says so",
              "items id %d -> %d" % (mine, got.get("mine", 0)) in history,
              history[-2000:])

    # An application writing other rows all the time, and edits through
    # the mount: every one of both is in the live database.
    n_conflicts = len(conflicts())
    results, napp = run_writer(ctx, live, "events", 5, cur, "side")
    ctx.check("the sqlite3 clients ran", all(rc == 0 for rc in results),
              results)
    missing = {"app-%d" % i for i in range(1, napp + 1)} - \
        rows(live, "app", table="events")
    ctx.check("every one of the application's %d commits is in the live "
              "database" % napp, not missing, sorted(missing)[:20])
    lost = {"side-%d" % i for i in range(5)} - rows(live, "side")
    ctx.check("every edit through the mount is in the live database",
              not lost, sorted(lost))
    ctx.check("no conflict snapshot", len(conflicts()) == n_conflicts,
              mt.kinds(mnt))
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")

    # An application inserting into the same table all the time: the
    # same automatic keys on both sides, and every edit still merges.
    n_conflicts = len(conflicts())
    failed = restores_failed()
    n_log = len(m.log)
    results, napp = run_writer(ctx, live, "items", 10, cur, "edit")
    ctx.check("every sqlite3 client exits 0", all(rc == 0 for rc in results),
              results)
    ctx.check("no close() failed (no failed restore in status.json)",
              restores_failed() == failed, restores_failed())
    refused = [l for l in m.log[n_log:] if "not applied" in l or
               "refused" in l]
    ctx.check("the daemon refused nothing", not refused, "\n".join(refused))
    ctx.check("no conflict snapshot", len(conflicts()) == n_conflicts,
              mt.kinds(mnt))
    got = rows(live, "app")
    missing = {"app-%d" % i for i in range(1, napp + 1)} - got
    ctx.check("every one of the application's %d commits is in the live "
              "database" % napp, not missing, sorted(missing)[:20])
    lost = {"edit-%d" % i for i in range(10)} - rows(live, "edit")
    ctx.check("every edit through the mount is in the live database",
              not lost, sorted(lost))
    db = sqlite3.connect("file:%s?mode=ro" % live, uri=True, timeout=60)
    dup = db.execute("SELECT count(*) - count(DISTINCT body) FROM items "
                     "WHERE tag IN ('app', 'edit')").fetchone()[0]
    db.close()
    ctx.check("each of them once", dup == 0, dup)
    ctx.check("some edits met the application's keys and took new ones "
              "(the daemon logged it)",
              mt.poll(lambda: any("is now id=" in l for l in m.log[n_log:])),
              "\n".join(m.log[n_log:]))
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")
    root_clean("concurrent edits")
    m.stop()


if __name__ == "__main__":
    mt.main("edit_session", body, mount=True)
