#!/usr/bin/python3
"""What snapctl --replica prints, held to snapctl(1): an export from a
replica says what it wrote as a store's export does, and with --json its
standard output is one object (action, snapshot); a restore from a
replica with --json is the restore object (restored, database, safety,
verified_pages), for a new file and for a live database, and the text
says where a replaced file is kept as a store's restore does; passphrase
change --json is one object; verify --json gives the page a problem is
about (not 0) and the text names the snapshot once ("NAME: page N: ...");
"latest" in a replica without snapshots is said as a store says it; the
replica's log says "1 snapshot", as the store's event does; prune on a
replica with --max-size or without --keep is a usage error (exit 2); a
label names the one snapshot that carries it (show, verify, export,
restore), as in a store, and one that two carry is exit 1.
A file:// replica: the outputs do not depend on the target."""

import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest  # noqa: E402

PASS = "a long passphrase nobody guesses"


def one_json(r):
    """The one JSON value on r's stdout, or None (exactly one line)."""
    try:
        if r.stdout.count("\n") != 1:
            return None
        return json.loads(r.stdout)
    except ValueError:
        return None


def body(ctx):
    check = ctx.check
    env = dict(os.environ, SNAPFS_PASSPHRASE=PASS)
    url = "file://" + ctx.path("replica")
    work = ctx.path("work")
    os.makedirs(work)

    def ctl(args, e=env):
        return ctx.run([ctx.snapctl] + args, env=e, cwd=work)

    db = os.path.join(work, "app.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.executemany("INSERT INTO t(v) VALUES (?)",
                    [("row %d %s" % (i, "x" * 300),) for i in range(2000)])
    con.commit()
    con.close()
    r = ctl(["--db", db, "create", "--label", "one"])
    ctx.require("create exits 0", r.returncode == 0, snaptest.describe(r))
    name = r.stdout.strip()
    r = ctl(["--db", db, "replicate", url])
    ctx.require("replicate exits 0", r.returncode == 0, snaptest.describe(r))

    # log: the run's detail counts as the store's event does ("1 snapshot").
    r = ctl(["--replica", url, "log"])
    check("log on the replica: one snapshot is '1 snapshot,' not "
          "'1 snapshots'", r.returncode == 0 and " 1 snapshot, " in r.stdout
          and "1 snapshots" not in r.stdout, snaptest.describe(r))

    # export: a sentence, or one JSON object.
    r = ctl(["--replica", url, "export", "latest", "a.db"])
    check("export from a replica: exit 0, says what it exported where",
          r.returncode == 0 and r.stdout.startswith("exported " + name) and
          "a.db" in r.stdout, snaptest.describe(r))
    r = ctl(["--replica", url, "export", "latest", "b.db", "--json"])
    j = one_json(r)
    check("export --json from a replica: one object, action 'exported', "
          "the snapshot", r.returncode == 0 and j is not None and
          j.get("action") == "exported" and j.get("snapshot") == name,
          snaptest.describe(r))
    check("and the file is the snapshot's image",
          os.path.exists(os.path.join(work, "b.db")) and
          snaptest.sha256(os.path.join(work, "b.db")) ==
          snaptest.sha256(os.path.join(work, "a.db")))

    # As a store's export: a regular file at FILE is replaced (it was
    # refused, "File exists"), a symlink refused and left alone, and no
    # temporary file stays behind.
    stale = os.path.join(work, "stale.db")
    with open(stale, "w") as f:
        f.write("an older copy")
    r = ctl(["--replica", url, "export", "latest", "stale.db"])
    check("export onto an existing regular file replaces it with the image",
          r.returncode == 0 and snaptest.sha256(stale) ==
          snaptest.sha256(os.path.join(work, "a.db")), snaptest.describe(r))
    target = os.path.join(work, "target")
    with open(target, "w") as f:
        f.write("keep me")
    os.symlink(target, os.path.join(work, "link.db"))
    r = ctl(["--replica", url, "export", "latest", "link.db"])
    check("export onto a symlink: refused (exit 1, says it is a link), "
          "the link and its target untouched",
          r.returncode == 1 and "symbolic link" in r.stderr and
          os.path.islink(os.path.join(work, "link.db")) and
          open(target).read() == "keep me", snaptest.describe(r))
    check("no temporary file left beside the exports",
          not [n for n in os.listdir(work) if "snapfs-tmp" in n],
          os.listdir(work))

    # ... but never the live database of a store, nor a store itself, as
    # a store's export refuses its own: a rename behind SQLite's (and a
    # daemon's) back is not a restore; both were replaced.
    live_sum = snaptest.sha256(db)
    store_db = os.path.join(work, "app.db.snapfs", "store.db")
    store_sum = snaptest.sha256(store_db)
    r = ctl(["--replica", url, "export", "latest", "app.db"])
    check("export onto a store's live database: refused (exit 1, says "
          "restore), the database untouched",
          r.returncode == 1 and "restore" in r.stderr and
          snaptest.sha256(db) == live_sum, snaptest.describe(r))
    r = ctl(["--replica", url, "export", "latest", store_db])
    check("export onto a store's store.db: refused (exit 1), the store "
          "untouched", r.returncode == 1 and "store" in r.stderr and
          snaptest.sha256(store_db) == store_sum, snaptest.describe(r))
    r = ctl(["--db", db, "list"])
    check("... and the store still lists its snapshot",
          r.returncode == 0 and name in r.stdout, snaptest.describe(r))

    # A label names the one snapshot that carries it, as in a store
    # (snapctl(1): "list, show NAME, verify [--full] [NAME]: As for a
    # store"); two carrying it: exit 1, "give the full name".
    r = ctl(["--replica", url, "show", "one", "--json"])
    j = one_json(r) or {}
    check("show LABEL on a replica: the snapshot labelled so",
          r.returncode == 0 and j.get("name") == name, snaptest.describe(r))
    r = ctl(["--replica", url, "verify", "one"])
    check("verify LABEL on a replica: exit 0, one snapshot verified",
          r.returncode == 0 and "1 snapshot verified" in r.stdout,
          snaptest.describe(r))
    r = ctl(["--replica", url, "export", "one", "by-label.db"])
    check("export LABEL FILE from a replica: exit 0, that snapshot",
          r.returncode == 0 and r.stdout.startswith("exported " + name),
          snaptest.describe(r))
    r = ctl(["--replica", url, "restore", "one", "--db", "by-label-new.db"])
    check("restore LABEL --db NEW from a replica: exit 0, that snapshot",
          r.returncode == 0 and name in r.stdout, snaptest.describe(r))

    # restore --json: into a new file, and into the live database.
    new = os.path.join(work, "new.db")
    r = ctl(["--replica", url, "restore", "latest", "--db", new, "--json"])
    j = one_json(r)
    check("restore --json into a new file: the restore object, no safety",
          r.returncode == 0 and j is not None and j.get("restored") == name
          and j.get("database") == new and "safety" in j and
          j["safety"] is None and j.get("verified_pages") is True,
          snaptest.describe(r))
    con = sqlite3.connect(db)
    con.execute("DELETE FROM t")
    con.commit()
    con.close()
    r = ctl(["--replica", url, "restore", "latest", "--db", db, "--json"])
    j = one_json(r)
    kinds = [s["kind"] for s in json.loads(
        ctl(["--db", db, "list", "--json"]).stdout)]
    check("restore --json into the live database: the restore object "
          "naming the safety snapshot", r.returncode == 0 and j is not None
          and j.get("restored") == name and j.get("database") == db and
          isinstance(j.get("safety"), str) and "pre-restore" in kinds,
          snaptest.describe(r))

    # A relative PATH: named as a store names its database (absolute).
    r = ctl(["--replica", url, "restore", "latest", "--db", "rel.db",
             "--json"])
    j = one_json(r) or {}
    check("restore --json --db rel.db: database is the absolute path",
          r.returncode == 0 and j.get("database") ==
          os.path.realpath(os.path.join(work, "rel.db")),
          snaptest.describe(r))

    # PATH an empty file: replaced, and the text says where it is kept.
    empty = os.path.join(work, "empty.db")
    open(empty, "w").close()
    r = ctl(["--replica", url, "restore", "latest", "--db", empty])
    check("restore onto an empty file: says where the old file is kept",
          r.returncode == 0 and "is kept as " + empty in r.stdout,
          snaptest.describe(r))

    # prune on a replica: --keep only; --max-size (a store's) and no
    # policy are usage errors (exit 2), as export --sql is, before
    # anything is asked of the replica.
    for extra in (["--max-size", "1M"], ["--keep", "last:1", "--max-size",
                                          "1M"], []):
        r = ctl(["--replica", url, "prune"] + extra)
        check("prune %s on a replica: a usage error (exit 2) saying what "
              "it takes" % " ".join(extra), r.returncode == 2 and
              "--keep" in r.stderr and
              ("--max-size" in r.stderr) == bool(extra),
              snaptest.describe(r))

    # passphrase change --json.
    r = ctl(["--replica", url, "passphrase", "change", "--json"],
            dict(env, SNAPFS_NEW_PASSPHRASE="another one"))
    j = one_json(r)
    check("passphrase change --json: one object", r.returncode == 0 and
          j is not None and j.get("replica") == url, snaptest.describe(r))
    env["SNAPFS_PASSPHRASE"] = "another one"

    # "latest" in a replica that has no snapshot: said as a store says it.
    db2 = os.path.join(work, "empty-store.db")
    sqlite3.connect(db2).execute("CREATE TABLE a(x)").connection.close()
    ctl(["--db", db2, "create"])
    ctl(["--db", db2, "delete", "latest"])
    url2 = url + "-empty"
    r = ctl(["--db", db2, "replicate", url2])
    ctx.require("replicate of a store with no snapshot", r.returncode == 0,
                snaptest.describe(r))
    r = ctl(["--replica", url2, "show", "latest"])
    check("show latest of an empty replica: exit 1, no snapshot 'latest' "
          "(not 'latest.db')", r.returncode == 1 and '"latest"' in
          r.stderr and "latest.db" not in r.stderr, snaptest.describe(r))

    # A deleted pack: the problem is about a page.
    root = url[len("file://"):]
    packs = sorted(os.listdir(os.path.join(root, "packs")))
    ctx.require("the replica has packs", packs, packs)
    os.unlink(os.path.join(root, "packs", packs[0]))
    r = ctl(["--replica", url, "verify", "--json"])
    j = one_json(r) or {}
    probs = j.get("problems", [])
    check("verify --json of a missing pack: exit 1, the problem names "
          "the page (not 0)", r.returncode == 1 and probs and
          all(p.get("page", 0) >= 1 for p in probs), snaptest.describe(r))
    r = ctl(["--replica", url, "verify"])
    line = r.stdout.splitlines()[0] if r.stdout else ""
    check("verify's line: 'NAME: page N: ...', the name once",
          r.returncode == 1 and line.startswith(name + ": page ") and
          line.count(name) == 1, snaptest.describe(r))

    # A label two snapshots carry: exit 1, naming the newest, asking for
    # the full name (as a store's ctl_find says it).
    r = ctl(["--db", db, "create", "--label", "one"])
    twice = r.stdout.strip()
    url3 = url + "-labels"
    r = ctl(["--db", db, "replicate", url3])
    ctx.require("replicate of two snapshots labelled 'one'",
                r.returncode == 0, snaptest.describe(r))
    r = ctl(["--replica", url3, "show", "one"])
    check("show LABEL that two snapshots carry: exit 1, naming the "
          "newest, asking for the full name", r.returncode == 1 and
          twice in r.stderr and "full name" in r.stderr,
          snaptest.describe(r))


    # A catalog row that does not read (a flipped byte): prune refuses,
    # deleting no object (the row's snapshot's pages may be in any pack;
    # it deleted them as unreferenced), and says which way out.
    root3 = url3[len("file://"):]
    rows = sorted(os.listdir(os.path.join(root3, "snapshots")))
    row = os.path.join(root3, "snapshots", rows[0])
    with open(row, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0xFF]))

    def objects():
        out = []
        for d, _, files in os.walk(root3):
            out += [os.path.join(d, f) for f in files
                    if "/locks" not in d and "/log" not in d]
        return sorted(out)
    before = objects()
    r = ctl(["--replica", url3, "prune", "--keep", "last:1"])
    check("prune with a damaged row: exit 1, says the row does not read and "
          "nothing was deleted", r.returncode == 1 and "does not read" in
          r.stderr and "no pack deleted" in r.stderr, snaptest.describe(r))
    check("... and no object of the replica is gone", objects() == before)


if __name__ == "__main__":
    snaptest.main("replica-outputs", body)
