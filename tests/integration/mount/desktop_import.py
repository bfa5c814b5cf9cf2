#!/usr/bin/env python3
"""
What a file manager does in snapshots/ and onto current.db (issue 8, items
1, 3, 5 and 6), driven without a GUI: raw open/write/close interleavings as
GIO makes them, and gio itself.

  * A paste into snapshots/ makes exactly one import snapshot, even while
    a reader sniffs the new file's type: the read-only handle never
    imports or snapshots, whether it opens after the bytes, or opens and
    closes while the file is still empty (then no manual snapshot is taken
    and deleted again: the event log says so), or closes last.  gio copy
    and touch still give exactly one snapshot; so does rsync (a
    temporary .NAME.XXXXXX renamed onto NAME) and snapctl export into
    snapshots/ (the same, with its own temporary name), and an rsync of
    bytes that are no database fails at its rename and leaves nothing.
  * A rename within snapshots/ (mv, gio rename, gio move; snapctl rename)
    gives exactly the name typed, with the same size, kind, creation time
    and bytes; a name that is taken, or cannot be a snapshot's, is refused
    with the errno the contract names, the reason logged, and nothing
    renamed.
  * Copying a snapshot onto current.db (cp, gio copy --overwrite, a
    staging file renamed onto it) restores that snapshot and adds only the
    safety snapshot: no import, no import deleted again.
  * latest.db, and snapctl's "latest", are the newest manual, auto or
    import snapshot, never the safety snapshot a restore just took.

The event log is read with `snapctl log --json` beside the daemon; no
check depends on timing.
"""

import errno
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as mt  # noqa: E402  (the shared harness)


def body(ctx):
    live = ctx.path("app.db")
    mt.make_db(live, "live", rows=10)
    m = ctx.mount(live)
    mnt = m.mnt
    sd = os.path.join(mnt, "snapshots")
    cur = os.path.join(mnt, "current.db")
    src = ctx.path("src.db")
    mt.make_db(src, "pasted", rows=40)
    data = mt.read_bytes(src)

    def events():
        r = ctx.run([ctx.snapctl, "--db", live, "--json", "log"])
        ctx.require("snapctl log --json works beside the daemon",
                    r.returncode == 0, r.stderr)
        return json.loads(r.stdout)

    mark = [len(events())]

    def catalog():
        """{name: kind} of the store's snapshots (snapctl list --json)."""
        r = ctx.run([ctx.snapctl, "--db", live, "--json", "list"])
        ctx.require("snapctl list --json works beside the daemon",
                    r.returncode == 0, r.stderr)
        return {s["name"]: s["kind"] for s in json.loads(r.stdout)}

    def new_events():
        """Events since the last call, as (kind, ok) pairs and details."""
        ev = events()
        new = ev[mark[0]:]
        mark[0] = len(ev)
        return new

    def kinds_of(evs):
        return sorted(e["kind"] for e in evs)

    def one_new(before, what, kind, label):
        """Exactly one snapshot more than `before`, of kind and label."""
        now = catalog()
        added = sorted(set(now) - set(before))
        gone = sorted(set(before) - set(now))
        ok = ctx.check("%s: exactly one snapshot added, none removed" % what,
                       len(added) == 1 and not gone,
                       "added %s, removed %s" % (added, gone))
        if ok:
            p = os.path.join(sd, added[0])
            ctx.check("%s: it is kind %s, label %s" % (what, kind, label),
                      now[added[0]] == kind and
                      mt.xattr(p, "label") == label,
                      (added[0], now[added[0]], mt.xattr(p, "label")))
        return added[0] if ok else None

    def one_import(before, what, label):
        """One import labelled label since before, and one import event."""
        one_new(before, what, "import", label)
        ev = new_events()
        ctx.check("%s: the event log has one import and nothing else" % what,
                  kinds_of(ev) == ["import"], ev)

    # ---- item 1: one paste, one snapshot -----------------------------

    # The reader opens after the bytes arrived; the writer closes first.
    before = catalog()
    new_events()
    p = os.path.join(sd, "pasted.db")
    w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(w, data)
    r = os.open(p, os.O_RDONLY)
    head = os.read(r, 16)
    os.close(w)
    os.close(r)
    ctx.check("a reader of the file being pasted reads its bytes",
              head == data[:16], head)
    one_import(before, "write, sniff, close writer, close reader", "pasted")

    # The reader opens and closes while the file is still empty.
    before = catalog()
    p = os.path.join(sd, "empty-sniff.db")
    w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    r = os.open(p, os.O_RDONLY)
    head = os.read(r, 16)
    os.close(r)
    ctx.check("an empty request reads as empty", head == b"", head)
    # (No snapctl here: a child process closing its inherited copy of the
    # writer's descriptor at exec is a close of the writer too.)
    between = set(mt.snapshots(mnt)) - set(before)
    ctx.check("the reader's close while empty took no snapshot: only the "
              "request is listed", between == {"empty-sniff.db"}, between)
    os.write(w, data)
    os.close(w)
    one_import(before, "sniff while empty, then write (no manual snapshot "
               "taken and deleted)", "empty-sniff")

    # The reader opens while empty and closes after the writer.
    before = catalog()
    p = os.path.join(sd, "reader-last.db")
    w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    r = os.open(p, os.O_RDONLY)
    os.write(w, data)
    os.close(w)
    os.read(r, 4096)
    os.close(r)
    one_import(before, "reader open throughout, closing last", "reader-last")

    # gio copy and touch: one snapshot each.
    before = catalog()
    res = ctx.run(["gio", "copy", src, sd + "/"])
    ctx.check("gio copy src.db snapshots/ succeeds", res.returncode == 0,
              res.stderr)
    one_import(before, "gio copy", "src")
    before = catalog()
    res = ctx.run(["touch", os.path.join(sd, "touched")])
    ctx.check("touch snapshots/touched succeeds", res.returncode == 0,
              res.stderr)
    one_new(before, "touch", "manual", "touched")
    ctx.check("touch: one snapshot event", kinds_of(new_events()) ==
              ["snapshot"])

    # rsync writes .NAME.XXXXXX, closes it, then renames it onto NAME: the
    # temporary file is no snapshot (its close imported it under its own
    # name, and the rename failed with ENOENT), the rename imports it.
    before = catalog()
    res = ctx.run(["rsync", src, os.path.join(sd, "by-rsync.db")])
    ctx.check("rsync src.db snapshots/by-rsync.db succeeds",
              res.returncode == 0, res.stdout + res.stderr)
    one_import(before, "rsync", "by-rsync")
    bad = ctx.path("bad.db")
    with open(bad, "wb") as f:
        f.write(b"not a database" * 300)
    before = catalog()
    res = ctx.run(["rsync", bad, os.path.join(sd, "bad-rsync.db")])
    ctx.check("rsync of a file that is not a database fails: the rename "
              "says EINVAL", res.returncode != 0 and "Invalid argument" in
              res.stderr, res.stdout + res.stderr)
    ctx.check("... and leaves nothing in snapshots/ or the catalog",
              catalog() == before and
              not [n for n in os.listdir(sd) if "bad-rsync" in n],
              (sorted(set(catalog()) - set(before)), os.listdir(sd)))
    # snapctl export NAME MNT/snapshots/NEW.db writes a temporary file
    # beside NEW.db and renames it: a dot-name, as rsync's, so the rename
    # imports it once (a plain temporary name was imported at its close
    # under that name, and the rename then failed with ENOENT).
    new_events()
    before = catalog()
    res = ctx.run([ctx.snapctl, "--db", live, "export", "latest",
                   os.path.join(sd, "by-export.db")])
    ctx.check("snapctl export latest snapshots/by-export.db succeeds",
              res.returncode == 0, res.stdout + res.stderr)
    one_import(before, "snapctl export", "by-export")
    ctx.check("... and leaves no temporary snapshot",
              not [n for n in catalog() if "snapfs-tmp" in n], catalog())
    new_events()
    ctx.check("snapshots/ lists exactly the catalog: no request left over",
              mt.snapshots(mnt) == sorted(catalog()),
              (mt.snapshots(mnt), sorted(catalog())))

    # ---- items 5 and 6: restore by copy; latest.db -------------------

    def restore_by(argv, what, expect_rows):
        before = catalog()
        new_events()
        res = ctx.run(argv)
        ctx.check("%s succeeds" % what, res.returncode == 0,
                  res.stdout + res.stderr)
        ctx.check("%s: the live database holds the snapshot's rows" % what,
                  mt.count_rows(live) == expect_rows)
        now = catalog()
        added = sorted(set(now) - set(before))
        ctx.check("%s: only the safety snapshot was added" % what,
                  [now[a] for a in added] == ["pre-restore"] and
                  set(before) <= set(now), added)
        ev = new_events()
        ctx.check("%s: no import stored or deleted (events: %s)" %
                  (what, ", ".join(kinds_of(ev))),
                  "import" not in kinds_of(ev) and
                  "delete" not in kinds_of(ev), ev)
        target = os.readlink(os.path.join(sd, "latest.db"))
        ctx.check("%s: latest.db is not the safety snapshot" % what,
                  added and target != added[0] and
                  now.get(target) in ("manual", "auto", "import"),
                  (target, added))
        newest = max((n for n in now if now[n] in ("manual", "auto",
                                                    "import")),
                     key=lambda n: os.stat(os.path.join(sd, n)).st_mtime_ns)
        ctx.check("%s: latest.db is the newest manual/auto/import" % what,
                  target == newest, (target, newest))
        out = ctx.path("latest-export.db")
        if os.path.exists(out):
            os.unlink(out)
        res = ctx.run([ctx.snapctl, "--db", live, "export", "latest", out])
        ctx.check("%s: snapctl export latest is latest.db's snapshot" % what,
                  res.returncode == 0 and
                  mt.sha256(out) == mt.xattr(os.path.join(sd, target),
                                             "sha256"), res.stderr)

    imp = [n for n in mt.snapshots(mnt) if n.endswith("_pasted.db")]
    ctx.require("the pasted import is listed", len(imp) == 1, imp)
    xp = os.path.join(sd, imp[0])
    restore_by(["cp", xp, cur], "cp snapshots/X current.db", 40)
    tp = os.path.join(sd, [n for n in mt.snapshots(mnt)
                           if n.endswith("_touched.db")][0])
    restore_by(["gio", "copy", tp, cur],
               "gio copy snapshots/touched current.db (overwrite)", 10)
    staged = os.path.join(mnt, "staged.db")
    res = ctx.run(["cp", xp, staged])
    ctx.require("cp snapshots/X MNT/staged.db (a staging file)",
                res.returncode == 0, res.stderr)
    restore_by(["mv", staged, cur], "mv MNT/staged.db current.db", 40)

    # ---- item 3: a rename gives exactly the name typed -----------------

    x = xp
    st0 = os.stat(x)
    created = mt.xattr(x, "created")
    sha = mt.xattr(x, "sha256")
    others = sorted(set(mt.snapshots(mnt)) - {imp[0]})

    def renamed(old, new, what):
        """old is gone, new is listed exactly, the rest unchanged."""
        names = mt.snapshots(mnt)
        ctx.require("%s: ls shows exactly %s, no ghost, nothing else moved"
                    % (what, new),
                    new in names and old not in names and
                    sorted(set(names) - {new}) == others, names)
        q = os.path.join(sd, new)
        st = os.stat(q)
        ctx.check("%s: same size, creation time (mtime and xattr), kind "
                  "and bytes" % what,
                  st.st_size == st0.st_size and
                  st.st_mtime_ns == st0.st_mtime_ns and
                  mt.xattr(q, "created") == created and
                  mt.xattr(q, "kind") == "import" and
                  mt.sha256(q) == sha,
                  (st.st_size, st0.st_size, st.st_mtime_ns,
                   st0.st_mtime_ns))

    res = ctx.run(["mv", x, os.path.join(sd, "pre-upgrade-KEEP.db")])
    ctx.check("mv X snapshots/pre-upgrade-KEEP.db succeeds",
              res.returncode == 0, res.stderr)
    renamed(imp[0], "pre-upgrade-KEEP.db", "mv")
    res = ctx.run([ctx.snapctl, "--db", live, "show", "pre-upgrade-KEEP"])
    ctx.check("snapctl finds it by the new name (without .db too)",
              res.returncode == 0 and "pre-upgrade-KEEP.db" in res.stdout,
              res.stdout + res.stderr)
    res = ctx.run(["gio", "rename", os.path.join(sd, "pre-upgrade-KEEP.db"),
                   "by gio rename.db"])
    ctx.check("gio rename succeeds", res.returncode == 0, res.stderr)
    renamed("pre-upgrade-KEEP.db", "by gio rename.db", "gio rename")
    res = ctx.run(["gio", "move", os.path.join(sd, "by gio rename.db"),
                   os.path.join(sd, "moved.db")])
    ctx.check("gio move within snapshots/ succeeds", res.returncode == 0,
              res.stderr)
    renamed("by gio rename.db", "moved.db", "gio move")

    xp = os.path.join(sd, "moved.db")
    refusals = [
        (others[0], errno.EEXIST, "another snapshot's name"),
        ("latest.db", errno.EPERM, "latest.db"),
        ("no-extension", errno.EINVAL, "a name without .db"),
        (".hidden.db", errno.EINVAL, "a hidden name"),
        ("live.db", errno.EINVAL, "live.db (snapctl's word for the live "
                                  "database)"),
        ("twice.db.db", errno.EINVAL, "a name ending in .db.db"),
        ("tab\there.db", errno.EINVAL, "a name with a control character"),
    ]
    for new, want, what in refusals:
        try:
            os.rename(xp, os.path.join(sd, new))
            got = 0
        except OSError as e:
            got = e.errno
        ctx.check("rename to %s is refused with %s" %
                  (what, errno.errorcode[want]), got == want,
                  "got %s" % (errno.errorcode.get(got, got)))
    names = mt.snapshots(mnt)
    ctx.check("after the refusals nothing was renamed or deleted",
              "moved.db" in names and sorted(set(names) - {"moved.db"}) ==
              others, names)
    ctx.check("the daemon logged why a name cannot be a snapshot's",
              m.has_log("no-extension") and m.has_log("cannot be"),
              m.text())
    res = ctx.run(["mv", "-f", xp, os.path.join(sd, others[0])])
    ctx.check("mv -f onto another snapshot fails and deletes nothing",
              res.returncode != 0 and mt.snapshots(mnt) == names,
              res.stderr)

    # snapctl rename: the same engine operation, seen in the mount.
    res = ctx.run([ctx.snapctl, "--db", live, "rename", "moved",
                   "by-snapctl"])
    ctx.check("snapctl rename moved by-snapctl succeeds",
              res.returncode == 0 and "renamed by-snapctl.db" in res.stdout,
              res.stdout + res.stderr)
    renamed("moved.db", "by-snapctl.db", "snapctl rename")
    res = ctx.run([ctx.snapctl, "--db", live, "rename", "by-snapctl",
                   "latest"])
    ctx.check("snapctl rename to latest is refused (exit 1) with the reason",
              res.returncode == 1 and "cannot be a snapshot's name" in
              res.stderr and "by-snapctl.db" in mt.snapshots(mnt),
              res.stdout + res.stderr)

    # A file still being pasted is not renamed onto a snapshot's name.
    p = os.path.join(sd, "in-progress.db")
    w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.rename(p, os.path.join(sd, "by-snapctl.db"))
        got = 0
    except OSError as e:
        got = e.errno
    os.write(w, data)
    os.close(w)
    ctx.check("renaming a paste in progress onto a snapshot's name is EEXIST",
              got == errno.EEXIST, errno.errorcode.get(got, got))
    names = mt.snapshots(mnt)
    ctx.check("both are there afterwards: the snapshot and the paste",
              "by-snapctl.db" in names and
              sum(n.endswith("_in-progress.db") for n in names) == 1, names)

    m.stop()


if __name__ == "__main__":
    mt.main("desktop_import", body, mount=True)
