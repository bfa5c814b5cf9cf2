#!/usr/bin/env python3
"""
What a restore through the mount tells the user (issue 7 item 8):

  * `cat x > MNT/current.db` and `dd if=x of=MNT/current.db` restore x, and
    the daemon does not log "nothing was written": the shell (and dd) close
    a first descriptor before any byte arrives, an early empty close that
    is not news;
  * `: > MNT/current.db` leaves the live database unchanged and the daemon
    logs "nothing was written" exactly once (when the handle ends); an
    empty upload still fails at close() with EINVAL;
  * a snapshot whose stored page is damaged, moved onto current.db: mv
    fails with "Input/output error" (EIO, engine/DESIGN.md §4), not "Bad
    message", the live database is unchanged, and the daemon logs the
    reason;
  * a damaged database file restored by cp (upload), by mv of a file in the
    mount root (rename) and by dd conv=notrunc (edit session): each fails
    with "Input/output error", and the daemon's log names the file as the
    user knows it, never by its private staging path (/proc/self/fd/N/...).

Every wait is on a signal: an upload's handle has ended when its staging
file is gone, and a line the daemon logged before a later snapshot's "taken"
line has been read once that line is.
"""

import errno
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)

NOTHING = "nothing was written"


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "base", rows=200)
    m = ctx.mount(live)
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")
    sd = os.path.join(mnt, "snapshots")
    staging = live + ".snapfs/staging"
    marks = [0]

    def uploads():
        return [n for n in os.listdir(staging) if n.startswith("upload-")]

    def settled(what):
        """Every upload handle has ended, and what the daemon logged so
        far has been read."""
        ctx.require("%s: its upload handle ended (staging file gone)" % what,
                    mt.poll(lambda: not uploads()), uploads())
        marks[0] += 1
        label = "mark-%d" % marks[0]
        open(os.path.join(sd, label), "w").close()
        ctx.require("%s: the daemon's log is read up to now" % what,
                    mt.poll(lambda: m.has_log(label + ".db taken")),
                    m.text())

    def nothing_lines():
        return sum(NOTHING in l for l in m.log)

    def rows(tag):
        """Rows of items in the live database when all are tagged tag."""
        db = sqlite3.connect("file:%s?mode=ro" % live, uri=True, timeout=60)
        try:
            tags = set(t for (t,) in db.execute("SELECT tag FROM items"))
            n = db.execute("SELECT count(*) FROM items").fetchone()[0]
        finally:
            db.close()
        return n if tags == {tag} else -1

    # cat x > current.db: the shell's early close, then cat's bytes.
    x = ctx.path("x.db")
    mt.make_db(x, "fromcat", rows=30)
    r = ctx.run(["bash", "-c", 'cat "$1" > "$2"', "-", x, cur])
    ctx.check("cat x > current.db exits 0", r.returncode == 0, r.stderr)
    ctx.check("and restored x", rows("fromcat") == 30)
    settled("cat")
    ctx.check("the daemon did not log \"%s\" for it" % NOTHING,
              nothing_lines() == 0, m.text())

    # dd if=y of=current.db (truncating): dd's early close, then bytes.
    y = ctx.path("y.db")
    mt.make_db(y, "fromdd", rows=40)
    r = ctx.run(["dd", "if=" + y, "of=" + cur, "status=none"])
    ctx.check("dd if=y of=current.db exits 0", r.returncode == 0, r.stderr)
    ctx.check("and restored y", rows("fromdd") == 40)
    settled("dd")
    ctx.check("the daemon did not log \"%s\" for it" % NOTHING,
              nothing_lines() == 0, m.text())

    # : > current.db: nothing ever arrives.
    sha = mt.sha256(live)
    r = ctx.run(["bash", "-c", ': > "$1"', "-", cur])
    settled(": >")
    ctx.check(": > current.db leaves the live database unchanged",
              mt.sha256(live) == sha)
    ctx.check("the daemon logged \"%s\" once" % NOTHING,
              nothing_lines() == 1, m.text())
    fd = os.open(cur, os.O_WRONLY | os.O_TRUNC)
    try:
        os.close(fd)
        err = None
    except OSError as e:
        err = e.errno
    ctx.check("close() of an empty upload fails with EINVAL",
              err == errno.EINVAL, err)
    settled("empty upload")
    ctx.check("the daemon logged \"%s\" for it, once" % NOTHING,
              nothing_lines() == 2, m.text())
    ctx.check("the live database is still unchanged", mt.sha256(live) == sha)

    # A damaged snapshot moved onto current.db.
    store = live + ".snapfs/store.db"
    open(os.path.join(sd, "before"), "w").close()
    s = sqlite3.connect(store, timeout=60)
    max1 = s.execute("SELECT max(id) FROM pages").fetchone()[0]
    s.close()
    db = sqlite3.connect(live)
    db.execute("UPDATE items SET body = 'changed ' || id WHERE id % 3 = 0")
    db.commit()
    db.close()
    open(os.path.join(sd, "victim"), "w").close()
    victim = [n for n in mt.snapshots(mnt) if n.endswith("_victim.db")]
    ctx.require("the snapshot to damage exists", len(victim) == 1,
                mt.snapshots(mnt))
    s = sqlite3.connect(store, timeout=60)
    pid = s.execute("SELECT id FROM pages WHERE id > ? ORDER BY id LIMIT 1",
                    (max1,)).fetchone()
    ctx.require("a page stored for it alone exists", pid is not None)
    blob = bytearray(s.execute("SELECT zdata FROM page_data WHERE id = ?",
                               pid).fetchone()[0])
    blob[len(blob) // 2] ^= 0x5A
    s.execute("UPDATE page_data SET zdata = ? WHERE id = ?",
              (bytes(blob), pid[0]))
    s.commit()
    s.close()
    sha = mt.sha256(live)
    n_log = len(m.log)
    r = ctx.run(["mv", os.path.join(sd, victim[0]), cur])
    ctx.check("mv of a damaged snapshot onto current.db fails",
              r.returncode != 0, r.stdout + r.stderr)
    ctx.check("with \"Input/output error\"",
              "Input/output error" in r.stderr, r.stderr)
    ctx.check("the live database is unchanged", mt.sha256(live) == sha)
    # The daemon's stderr is read by a thread: wait for the line, bounded.
    ctx.check("the daemon logs the reason",
              mt.poll(lambda: any("damaged" in l and victim[0] in l
                                  for l in m.log[n_log:])),
              m.text())

    # A damaged database file (page 1's b-tree overwritten), restored
    # three ways.
    bad = ctx.path("bad.db")
    data = bytearray(mt.read_bytes(y))
    data[100:4096] = b"\xff" * 3996
    with open(bad, "wb") as f:
        f.write(data)
    n_log = len(m.log)
    for what, argv in (
            ("cp (an upload)", ["cp", bad, cur]),
            ("mv of a file in the mount root (a rename)",
             ["bash", "-c", 'cp "$1" "$2/bad.db" && mv "$2/bad.db" "$3"',
              "-", bad, mnt, cur]),
            ("dd conv=notrunc (an edit session)",
             ["dd", "if=" + bad, "of=" + cur, "conv=notrunc",
              "status=none"])):
        r = ctx.run(argv)
        ctx.check("%s of a damaged database fails with \"Input/output "
                  "error\"" % what, r.returncode != 0 and
                  "Input/output error" in r.stderr, r.stderr)
        ctx.check("%s: the live database is unchanged" % what,
                  mt.sha256(live) == sha)
    if os.path.exists(os.path.join(mnt, "bad.db")):
        os.unlink(os.path.join(mnt, "bad.db"))    # mv keeps its source
    settled("damaged files")
    private = [l for l in m.log[n_log:] if "/proc/self/fd/" in l]
    ctx.check("the daemon's log never names a private staging path",
              not private, "\n".join(private))
    for shown in ("the file written to current.db", "the file bad.db",
                  "the edited copy of current.db"):
        ctx.check("the daemon's log names %s" % shown,
                  mt.poll(lambda: any(shown in l for l in m.log[n_log:])),
                  m.text())
    with open(os.path.join(mnt, ".snapfs", "log")) as f:
        history = [l for l in f if "/proc/self/fd/" in l]
    ctx.check("the event history (.snapfs/log) never names a private "
              "staging path", not history, "".join(history))
    ctx.check("the live database passes integrity_check",
              mt.integrity(live) == "ok")
    root = mt.root_staging(mnt)
    ctx.check("nothing left beside current.db", root == [], root)
    m.stop()


if __name__ == "__main__":
    mt.main("restore_messages", body, mount=True)
