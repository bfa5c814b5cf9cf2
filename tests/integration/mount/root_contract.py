#!/usr/bin/env python3
"""
The mount root as the contract says (fs/DESIGN.md §1, "Mount root"), beyond
the restore commands:

  * stat current.db is the live file's size, mtime, owner and mode, and is
    never stale: a commit on the real path shows at once
    (engine/PITFALLS.md 5);
  * a read-only open of current.db reads one committed state fixed at open,
    whatever applications commit meanwhile;
  * `rm current.db` never deletes the live database, and current.db is
    there again for everyone else at once;
  * other new files in the root are staging files: listed, readable,
    renamable, deletable, and gone after an unmount; they never touch the
    live database unless renamed onto current.db;
  * chmod of current.db is refused (EPERM, current_mode.py has the rest);
    touch is accepted; neither changes anything;
  * mkdir, symlink, link in the root fail; .snapfs/ is read-only; the root
    directories cannot be removed or renamed.
"""

import errno
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "live", rows=40)
    os.chmod(live, 0o640)
    m = ctx.mount(live)
    mnt = m.mnt
    cur = os.path.join(mnt, "current.db")

    def same_attrs(what):
        a, b = os.stat(cur), os.stat(live)
        ctx.check("%s: stat current.db is the live file's" % what,
                  (a.st_size, a.st_mtime_ns, a.st_uid, a.st_gid,
                   a.st_mode) ==
                  (b.st_size, b.st_mtime_ns, b.st_uid, b.st_gid, b.st_mode),
                  "%s\n%s" % (a, b))

    same_attrs("at mount")
    db = sqlite3.connect(live)
    db.executemany("INSERT INTO items(tag, body) VALUES('more', ?)",
                   [("x" * 3000,) for _ in range(30)])
    db.commit()
    db.close()
    same_attrs("right after a commit that grew the file")

    # An image is fixed at open.
    fd = os.open(cur, os.O_RDONLY)
    head = os.pread(fd, 4096, 0)
    db = sqlite3.connect(live)
    db.execute("DELETE FROM items WHERE tag = 'more'")
    db.commit()
    db.execute("VACUUM")
    db.close()
    data = b""
    while True:
        chunk = os.pread(fd, 1 << 16, len(data))
        if not chunk:
            break
        data += chunk
    os.close(fd)
    out = ctx.path("held.db")
    with open(out, "wb") as f:
        f.write(data)
    ctx.check("a read-only open keeps the state it was opened at",
              data[:4096] == head and mt.integrity(out) == "ok" and
              len(mt.dump(out)) > len(mt.dump(live)))
    r = ctx.run(["cp", cur, ctx.path("now.db")])
    ctx.check("a new open sees the new state",
              r.returncode == 0 and mt.dump(ctx.path("now.db")) ==
              mt.dump(live))

    # rm current.db never deletes the live database.
    sha = mt.sha256(live)
    r = ctx.run(["rm", cur])
    ctx.check("rm current.db succeeds", r.returncode == 0, r.stderr)
    ctx.check("the live database is untouched", os.path.exists(live) and
              mt.sha256(live) == sha)
    ctx.check("and current.db is there for everyone else at once",
              "current.db" in os.listdir(mnt) and os.path.exists(cur))
    same_attrs("after rm")

    # Staging files.
    tmp = os.path.join(mnt, "notes.txt")
    with open(tmp, "w") as f:
        f.write("a staging file\n")
    ctx.check("a new file in the root is listed and readable",
              "notes.txt" in os.listdir(mnt) and
              open(tmp).read() == "a staging file\n")
    os.rename(tmp, os.path.join(mnt, "renamed.txt"))
    ctx.check("it can be renamed", os.listdir(mnt).count("renamed.txt") == 1
              and "notes.txt" not in os.listdir(mnt))
    with open(os.path.join(mnt, "renamed.txt"), "a") as f:
        f.write("more\n")
    ctx.check("appended to", open(os.path.join(mnt, "renamed.txt")).read()
              == "a staging file\nmore\n")
    os.unlink(os.path.join(mnt, "renamed.txt"))
    ctx.check("and deleted", "renamed.txt" not in os.listdir(mnt))
    with open(os.path.join(mnt, "left.txt"), "w") as f:
        f.write("left behind")
    ctx.check("staging files never touch the live database",
              mt.sha256(live) == sha)

    # chmod of current.db is refused, touch accepted; nothing changes.
    r = ctx.run(["chmod", "600", cur])
    r2 = ctx.run(["touch", "-d", "2001-01-01", cur])
    ctx.check("chmod of current.db is refused, touch accepted",
              r.returncode != 0 and "Operation not permitted" in r.stderr
              and r2.returncode == 0, r.stderr + r2.stderr)
    ctx.check("and change nothing", (os.stat(live).st_mode & 0o777) == 0o640
              and mt.sha256(live) == sha and os.stat(live).st_mtime >
              time.mktime((2002, 1, 1, 0, 0, 0, 0, 0, 0)))

    # What the root refuses.
    for what, argv in [
            ("mkdir in the root", ["mkdir", os.path.join(mnt, "d")]),
            ("ln -s in the root", ["ln", "-s", "current.db",
                                   os.path.join(mnt, "l")]),
            ("ln in the root", ["ln", cur, os.path.join(mnt, "hard")]),
            ("rmdir snapshots", ["rmdir", os.path.join(mnt, "snapshots")]),
            ("mv snapshots away", ["mv", os.path.join(mnt, "snapshots"),
                                   os.path.join(mnt, "x")]),
            ("mv current.db away", ["mv", cur, os.path.join(mnt, "y.db")]),
            ("writing .snapfs/log", ["bash", "-c", 'echo x >> "$1"', "-",
                                     os.path.join(mnt, ".snapfs", "log")]),
            ("creating in .snapfs", ["touch", os.path.join(mnt, ".snapfs",
                                                           "new")])]:
        r = ctx.run(argv)
        ctx.check("%s fails" % what, r.returncode != 0, r.stdout)
    ctx.check("the live database is still untouched", mt.sha256(live) == sha)
    # A fixed directory renamed: EPERM, as current.db (not ENOENT, which
    # says the directory is not there).
    for d in ("snapshots", "restore", ".snapfs"):
        try:
            os.rename(os.path.join(mnt, d), os.path.join(mnt, "moved"))
            err = 0
        except OSError as e:
            err = e.errno
        ctx.check("rename of %s/ fails with EPERM" % d, err == errno.EPERM,
                  os.strerror(err) if err else "renamed")

    # Staging files vanish at unmount.
    m.stop()
    m = ctx.mount(live)
    ctx.check("staging files are gone after a remount",
              sorted(os.listdir(mnt)) == mt.ROOT_FIXED, os.listdir(mnt))
    m.stop()


if __name__ == "__main__":
    mt.main("root_contract", body, mount=True)
