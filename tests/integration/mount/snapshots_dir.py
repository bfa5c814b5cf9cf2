#!/usr/bin/env python3
"""
snapshots/ as the contract says (fs/DESIGN.md §1, "snapshots/"):

  * touch, `: >`, `gio save` each take one manual snapshot, listed at once
    under "<UTC time>_<label>.db" with mtime = creation time; latest.db
    points at the newest;
  * `sqlite3 -readonly` queries a snapshot in place and sees the database
    as it was; user.snapfs.sha256 equals sha256sum of the file; the mode is
    the live mode without write bits;
  * write, truncate, chmod, touch (utimens) on a snapshot and mkdir, ln -s
    in snapshots/ fail; SQLite's -journal/-wal/-shm names never exist;
  * `cp db snapshots/` imports (kind import); `cp text snapshots/` fails and
    leaves nothing;
  * rm deletes; mv within snapshots/ gives exactly the name typed, or is
    refused, and never replaces another snapshot;
  * .snapfs/status.json parses and counts the snapshots; .snapfs/log lists
    the events;
  * a remount shows the same snapshots, names and contents.
"""

import errno
import json
import os
import re
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "live", rows=10)
    os.chmod(live, 0o640)
    m = ctx.mount(live)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")

    ctx.check("a fresh store lists no snapshots and no latest.db",
              os.listdir(sd) == [], os.listdir(sd))

    # touch: one manual snapshot, listed at once, mtime = creation time.
    t0 = time.time()
    r = ctx.run(["touch", os.path.join(sd, "before-migration")])
    t1 = time.time()
    ctx.check("touch snapshots/before-migration succeeds", r.returncode == 0,
              r.stderr)
    names = mt.snapshots(mnt)
    ctx.require("the listing shows one snapshot at once", len(names) == 1,
                names)
    first = names[0]
    ctx.check("its name is <UTC time>_before-migration.db",
              re.fullmatch(r"\d{4}-\d\d-\d\dT\d{6}Z_before-migration\.db",
                           first) is not None, first)
    fp = os.path.join(sd, first)
    st = os.stat(fp)
    ctx.check("its mtime is the time it was taken",
              t0 - 1 <= st.st_mtime <= t1 + 1,
              "mtime %s, touch ran %s..%s" % (st.st_mtime, t0, t1))
    ctx.check("the request's own name does not linger",
              not os.path.exists(os.path.join(sd, "before-migration")))
    ctx.check("kind is manual, label before-migration",
              mt.xattr(fp, "kind") == "manual" and
              mt.xattr(fp, "label") == "before-migration")
    ctx.check("mode is the live 0640 without write bits (0440)",
              (st.st_mode & 0o7777) == 0o440, oct(st.st_mode))
    ctx.check("size is the image size", st.st_size == os.stat(live).st_size,
              (st.st_size, os.stat(live).st_size))
    ctx.check("user.snapfs.sha256 equals sha256sum of the file",
              mt.xattr(fp, "sha256") == mt.sha256(fp))
    def xattr_errno(path, name):
        try:
            os.getxattr(path, name)
        except OSError as e:
            return e.errno
        return 0
    # What ls -l asks of every file (answered without the catalog row).
    ctx.check("security.selinux, an ACL and an unknown user.snapfs name: "
              "ENODATA",
              [xattr_errno(fp, n) for n in
               ("security.selinux", "system.posix_acl_access",
                "user.snapfs.nosuch")] == [errno.ENODATA] * 3)
    tables = json.loads(mt.xattr(fp, "tables"))
    ctx.check("user.snapfs.tables counts rows per table",
              tables.get("items") == 10, tables)
    ctx.check("latest.db points at it",
              os.readlink(os.path.join(sd, "latest.db")) == first)

    # sqlite3 -readonly in place, after the live database moved on.
    db = sqlite3.connect(live)
    db.execute("INSERT INTO items(tag, body) VALUES('live', 'later')")
    db.commit()
    db.close()
    r = ctx.run(["sqlite3", "-readonly", fp,
                 "SELECT count(*) FROM items; PRAGMA integrity_check;"])
    ctx.check("sqlite3 -readonly queries the snapshot in place",
              r.returncode == 0 and r.stdout.split() == ["10", "ok"],
              r.stdout + r.stderr)
    ctx.check("a snapshot opens with ?immutable=1 too",
              mt.integrity(fp, immutable=True) == "ok")
    ctx.check("-journal, -wal, -shm beside a snapshot do not exist",
              not any(os.path.exists(fp + s)
                      for s in ("-journal", "-wal", "-shm")))

    # : > and gio save take one snapshot each.
    r = ctx.run(["bash", "-c", ': > "$1"', "-", os.path.join(sd, "colon")])
    ctx.check(": > snapshots/colon succeeds", r.returncode == 0, r.stderr)
    r = ctx.run(["gio", "save", os.path.join(sd, "from-gio")], input="")
    ctx.check("gio save snapshots/from-gio succeeds", r.returncode == 0,
              r.stderr)
    names = mt.snapshots(mnt)
    ctx.check("each took exactly one snapshot",
              len(names) == 3 and
              sum(n.endswith("_colon.db") for n in names) == 1 and
              sum(n.endswith("_from-gio.db") for n in names) == 1, names)
    newest = [n for n in names if n.endswith("_from-gio.db")][0]
    ctx.check("latest.db follows the newest",
              os.readlink(os.path.join(sd, "latest.db")) == newest)
    ctx.check("the new snapshots hold the later state (11 rows)",
              mt.count_rows(os.path.join(sd, newest)) == 11)

    # Everything that would change a snapshot fails.
    r = ctx.run(["bash", "-c", 'echo x >> "$1"', "-", fp])
    ctx.check("appending to a snapshot fails", r.returncode != 0)
    r = ctx.run(["truncate", "-s", "0", fp])
    ctx.check("truncating a snapshot fails", r.returncode != 0)
    r = ctx.run(["chmod", "666", fp])
    ctx.check("chmod on a snapshot fails", r.returncode != 0)
    r = ctx.run(["touch", fp])
    ctx.check("touch (utimens) on an existing snapshot fails",
              r.returncode != 0)
    try:
        fd = os.open(fp, os.O_WRONLY)
        os.close(fd)
        ok = False
    except OSError as e:
        ok = e.errno == 30   # EROFS
    ctx.check("open for writing is EROFS", ok)
    r = ctx.run(["mkdir", os.path.join(sd, "dir")])
    ctx.check("mkdir in snapshots/ fails", r.returncode != 0)
    r = ctx.run(["ln", "-s", first, os.path.join(sd, "link")])
    ctx.check("ln -s in snapshots/ fails", r.returncode != 0)
    r = ctx.run(["touch", fp + "-journal"])
    ctx.check("creating a -journal next to a snapshot fails",
              r.returncode != 0)
    ctx.check("the content did not change",
              mt.xattr(fp, "sha256") == mt.sha256(fp) and
              mt.snapshots(mnt) == names)

    # cp a database in: import; cp text in: refused, nothing left.
    other = ctx.path("other.db")
    mt.make_db(other, "other", rows=7)
    r = ctx.run(["cp", other, sd + "/"])
    ctx.check("cp other.db snapshots/ succeeds", r.returncode == 0, r.stderr)
    imp = [n for n in mt.snapshots(mnt) if n.endswith("_other.db")]
    ctx.check("it is listed as kind import with the same content",
              len(imp) == 1 and
              mt.xattr(os.path.join(sd, imp[0]), "kind") == "import" and
              mt.dump(os.path.join(sd, imp[0])) == mt.dump(other), imp)
    text = ctx.path("notes.txt")
    with open(text, "w") as f:
        f.write("not a database\n" * 100)
    before = mt.snapshots(mnt)
    r = ctx.run(["cp", text, sd + "/"])
    ctx.check("cp notes.txt snapshots/ fails", r.returncode != 0, r.stdout)
    ctx.check("and leaves nothing behind", mt.snapshots(mnt) == before and
              not os.path.exists(os.path.join(sd, "notes.txt")))

    # rm deletes.
    colon = [n for n in mt.snapshots(mnt) if n.endswith("_colon.db")][0]
    r = ctx.run(["rm", os.path.join(sd, colon)])
    ctx.check("rm deletes a snapshot", r.returncode == 0 and
              colon not in mt.snapshots(mnt), r.stderr)
    r = ctx.run(["rm", "-f", os.path.join(sd, "latest.db")])
    ctx.check("rm latest.db fails", r.returncode != 0 and
              os.path.islink(os.path.join(sd, "latest.db")))

    # mv within snapshots/ gives exactly the name typed (the label follows
    # it, without the snapshot's own time prefix).
    prefix = first.split("_")[0]
    r = ctx.run(["mv", fp, os.path.join(sd, prefix + "_renamed.db")])
    ctx.check("mv T_before-migration.db T_renamed.db succeeds",
              r.returncode == 0, r.stderr)
    names = mt.snapshots(mnt)
    ren = os.path.join(sd, prefix + "_renamed.db")
    ctx.check("it is renamed in place", prefix + "_renamed.db" in names
              and first not in names and mt.xattr(ren, "label") == "renamed",
              names)
    r = ctx.run(["mv", ren, os.path.join(sd, "short")])
    ctx.check("mv to a name without .db is refused and changes nothing",
              r.returncode != 0 and mt.snapshots(mnt) == names,
              mt.snapshots(mnt))
    r = ctx.run(["mv", ren, os.path.join(sd, "short.db")])
    ctx.check("mv to short.db gives exactly short.db",
              r.returncode == 0 and "short.db" in mt.snapshots(mnt) and
              mt.xattr(os.path.join(sd, "short.db"), "label") == "short",
              mt.snapshots(mnt))
    shortp = os.path.join(sd, "short.db")
    ctx.check("a renamed snapshot still reads the same",
              mt.count_rows(shortp) == 10)
    r = ctx.run(["mv", "-f", shortp, os.path.join(sd, newest)])
    ctx.check("mv onto another snapshot fails and deletes nothing",
              r.returncode != 0 and "short.db" in
              mt.snapshots(mnt) and newest in mt.snapshots(mnt))

    # status.json and log.
    with open(os.path.join(mnt, ".snapfs", "status.json")) as f:
        status = json.load(f)
    ctx.check("status.json counts the snapshots",
              status.get("snapshots") == len(mt.snapshots(mnt)) and
              status.get("database") == os.path.realpath(live) and
              status.get("mount", {}).get("mountpoint") == mnt and
              isinstance(status["mount"].get("started_ns"), int), status)
    with open(os.path.join(mnt, ".snapfs", "log")) as f:
        log = f.read().splitlines()
    ctx.check(".snapfs/log lists snapshots and the deletion",
              any(" snapshot " in l for l in log) and
              any(colon in l for l in log), "\n".join(log[-10:]))
    r = ctx.run(["bash", "-c", 'echo x > "$1"', "-",
                 os.path.join(mnt, ".snapfs", "status.json")])
    ctx.check(".snapfs/status.json is read-only", r.returncode != 0)

    # Tools that set the copy's mode and times after its close (shutil.copy
    # and copy2, install -m): the import is listed under its snapshot's
    # name at the close, and the chmod/utime that follows must not fail.
    src = ctx.path("to-import.db")
    mt.make_db(src, "to-import", rows=12)
    for what, argv in mt.mode_setting_copiers(sd):
        names = set(mt.snapshots(mnt))
        r = ctx.run(argv(src))
        added = set(mt.snapshots(mnt)) - names
        ctx.check("%s into snapshots/ exits 0" % what, r.returncode == 0,
                  r.stdout + r.stderr)
        ctx.check("%s: exactly one import, of the file's bytes" % what,
                  len(added) == 1 and
                  mt.dump(os.path.join(sd, added.pop())) == mt.dump(src),
                  added)
        ctx.check("%s: the name written does not resolve for another "
                  "process" % what,
                  not os.path.exists(os.path.join(sd, "to-import.db")))

    # Remount: the same snapshots, names, contents.
    before = {n: mt.sha256(os.path.join(sd, n)) for n in mt.snapshots(mnt)}
    m.stop()
    ctx.check("nothing is mounted after the unmount",
              not mt.is_mounted(mnt))
    m = ctx.mount(live)
    after = {n: mt.sha256(os.path.join(sd, n)) for n in mt.snapshots(mnt)}
    ctx.check("a remount shows the same snapshots, names and contents",
              before == after, (before, after))
    m.stop()


if __name__ == "__main__":
    mt.main("snapshots_dir", body, mount=True)
