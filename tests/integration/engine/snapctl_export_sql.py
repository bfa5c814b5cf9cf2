#!/usr/bin/env python3
"""
tests/integration/engine/snapctl_export_sql.py — `snapctl export NAME FILE
--sql`: the dump, fed to the real sqlite3 shell, gives the same content.

The database has what a dump can get wrong: text with quotes, newlines and
non-ASCII, blobs with zero bytes, exact and extreme reals (and infinity),
the extreme integers, NULLs, a table without a primary key holding
duplicates, a WITHOUT ROWID table, AUTOINCREMENT (sqlite_sequence), an
index, a view and a trigger (and an FTS5 table when both the sqlite3 shell
and Python's SQLite have FTS5).  It is snapshotted, then changed, so the
dump must be of the snapshot and not of the live file.

Each way out is checked: `export NAME - --sql | sqlite3 new.db`, `export
NAME FILE --sql` then `sqlite3 new.db < FILE`, and `export live - --sql`.
Same content means: the same schema rows (type, name, table, SQL) and, per
table, the same rows in the same order (ordered by every column, values
compared with their types, so 1, 1.0 and '1' differ), and the view gives
the same rows.  Also: the file is written whole (no temporary left),
'-' without --sql is a usage error, and the live database is refused as
FILE.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest  # noqa: E402
from snaptest import connect, describe  # noqa: E402


def has_fts5():
    """FTS5 in Python's SQLite and in the sqlite3 shell."""
    try:
        c = connect(":memory:")
        c.execute("CREATE VIRTUAL TABLE f USING fts5(x)")
        c.close()
    except Exception:
        return False
    r = subprocess.run(["sqlite3", ":memory:",
                        "CREATE VIRTUAL TABLE f USING fts5(x);"],
                       capture_output=True, text=True,
                       stdin=subprocess.DEVNULL)
    return r.returncode == 0


def make_db(path, fts):
    con = connect(path)
    con.executescript("""
        CREATE TABLE items(id INTEGER PRIMARY KEY AUTOINCREMENT,
                           name TEXT NOT NULL, price REAL, data BLOB,
                           qty INTEGER DEFAULT 0);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
        CREATE TABLE nokey(a, b);
        CREATE INDEX items_name ON items(name);
        CREATE VIEW cheap AS SELECT name, price FROM items WHERE price < 10;
        CREATE TABLE audit(what TEXT);
        CREATE TRIGGER items_audit AFTER INSERT ON items
          BEGIN INSERT INTO audit VALUES('added ' || new.name); END;
    """)
    con.execute("BEGIN")
    values = [
        ("plain", 1.5, b"abc", 1),
        ("it's \"quoted\"", 0.1, b"\x00\x01\x00\xff", 2),
        ("line\nbreak\ttab", 1e308, b"", 3),
        ("ünïcødé ✓ 漢字", -2.2250738585072014e-308, None, None),
        ("inf", float("inf"), b"\x00" * 100, 9223372036854775807),
        ("-inf", float("-inf"), bytes(range(256)), -9223372036854775808),
        ("null price", None, None, 0),
        ("integral real", 3.0, b"x", 4),
        ("tiny", 5e-324, b"y", 5),
        ("pi", 3.141592653589793, b"z", 6),
    ]
    for v in values:
        con.execute("INSERT INTO items(name, price, data, qty) "
                    "VALUES(?, ?, ?, ?)", v)
    con.execute("DELETE FROM items WHERE name = 'plain'")   # seq stays 10
    for k, v in (("a", 1), ("b", 1.0), ("c", "1"), ("d", None),
                 ("e", b"1"), ("quote'", "x'y")):
        con.execute("INSERT INTO kv VALUES(?, ?)", (k, v))
    for a, b in ((1, "x"), (1, "x"), (2, None), (None, None), (3.5, b"\0")):
        con.execute("INSERT INTO nokey VALUES(?, ?)", (a, b))
    if fts:
        con.execute("CREATE VIRTUAL TABLE docs USING fts5(body)")
        con.execute("INSERT INTO docs VALUES('the quick brown fox'), "
                    "('jumps over the lazy dog')")
    con.execute("COMMIT")
    con.close()


def typed(v):
    """A value with its type, so 1, 1.0 and '1' compare unequal."""
    return (type(v).__name__, v)


def dump(path):
    """Schema rows and every table's rows, ordered by every column."""
    con = connect(path)
    try:
        schema = sorted(con.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_autoindex%'").fetchall(), key=repr)
        tables = {}
        for (name,) in con.execute("SELECT name FROM sqlite_master WHERE "
                                   "type = 'table' ORDER BY name").fetchall():
            if name.startswith("sqlite_stat"):
                continue
            cols = [r[1] for r in con.execute(
                f'PRAGMA table_info("{name}")').fetchall()]
            order = ", ".join(f'"{c}"' for c in cols) or "1"
            tables[name] = [tuple(typed(v) for v in row) for row in
                            con.execute(f'SELECT * FROM "{name}" '
                                        f'ORDER BY {order}').fetchall()]
        view = con.execute("SELECT * FROM cheap ORDER BY name").fetchall()
        return schema, tables, view
    finally:
        con.close()


def load(ctx, sql_text, path, what):
    """sqlite3 NEW.db < SQL; True when the shell took it without a word."""
    r = subprocess.run(["sqlite3", "-bail", path], input=sql_text,
                       capture_output=True, text=True, timeout=120)
    return ctx.check(f"{what}: sqlite3 re-imports the dump cleanly",
                     r.returncode == 0 and r.stderr == "",
                     describe(r))


def compare(ctx, want, path, what):
    got = dump(path)
    ctx.check(f"{what}: the same schema", got[0] == want[0],
              f"got {got[0]}\nwant {want[0]}")
    ctx.check(f"{what}: the same tables", sorted(got[1]) == sorted(want[1]),
              f"got {sorted(got[1])}\nwant {sorted(want[1])}")
    for t in sorted(want[1]):
        ctx.check(f"{what}: table {t}: the same {len(want[1][t])} rows, "
                  "in order, with their types",
                  got[1].get(t) == want[1][t],
                  f"got {got[1].get(t)}\nwant {want[1][t]}")
    ctx.check(f"{what}: the view gives the same rows", got[2] == want[2])
    ctx.check(f"{what}: integrity_check ok",
              snaptest.integrity(path, writable=True) == "ok")


def body(ctx):
    if subprocess.run(["sqlite3", "-version"], capture_output=True,
                      stdin=subprocess.DEVNULL).returncode != 0:
        print("SKIP: the sqlite3 shell is not installed")
        sys.exit(snaptest.SKIP)
    fts = has_fts5()
    print(f"# FTS5 table included: {fts}")
    db = ctx.path("app.db")
    make_db(db, fts)
    want = dump(db)
    snap = ctx.create(db=db, label="dump-me")
    # Change the live database: the export must be the snapshot's state.
    con = connect(db)
    con.execute("INSERT INTO items(name, price) VALUES('after', 1)")
    con.execute("DELETE FROM nokey")
    con.close()
    live = dump(db)

    # export NAME - --sql | sqlite3 new.db
    p1 = subprocess.Popen(ctx.snapctl_args(["export", snap, "-", "--sql"],
                                           db=db),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          stdin=subprocess.DEVNULL)
    ctx.children.append(p1)
    new1 = ctx.path("piped.db")
    r = subprocess.run(["sqlite3", "-bail", new1], stdin=p1.stdout,
                       capture_output=True, text=True, timeout=120)
    p1.stdout.close()
    err = p1.stderr.read().decode()
    p1.wait(timeout=120)
    ctx.check("export NAME - --sql exits 0, nothing on stderr",
              p1.returncode == 0 and err == "",
              f"exit {p1.returncode}\nstderr {err}")
    ctx.check("piped into sqlite3: accepted cleanly",
              r.returncode == 0 and r.stderr == "", describe(r))
    compare(ctx, want, new1, "export - | sqlite3")

    # export NAME FILE --sql, then sqlite3 new.db < FILE
    f = ctx.path("dump.sql")
    r = ctx.sc("export", snap, f, "--sql", db=db)
    ctx.check("export NAME FILE --sql writes FILE and says "
              "so", r.returncode == 0 and os.path.isfile(f) and
              f in r.stdout, describe(r))
    left = [n for n in os.listdir(ctx.dir) if ".snapctl-" in n]
    ctx.check("no temporary file left beside FILE", left == [], left)
    with open(f) as fh:
        text = fh.read()
    ctx.check("the file is the whole dump (ends with COMMIT;)",
              text.rstrip().endswith("COMMIT;"), text[-200:])
    new2 = ctx.path("from-file.db")
    if load(ctx, text, new2, "export FILE"):
        compare(ctx, want, new2, "export FILE; sqlite3 < FILE")

    # export live FILE without --sql: no snapshot of that name, and the
    # message says how to export the live database.
    r = ctx.sc("export", "live", ctx.path("live-image.db"), db=db)
    ctx.check("export live FILE (no --sql): exit 1, points at --sql",
              r.returncode == 1 and "--sql" in r.stderr and
              not os.path.exists(ctx.path("live-image.db")), describe(r))

    # export live - --sql
    r = ctx.sc("export", "live", "-", "--sql", db=db)
    ctx.check("export live - --sql exits 0", r.returncode == 0, describe(r))
    new3 = ctx.path("live.db")
    if r.returncode == 0 and load(ctx, r.stdout, new3, "export live"):
        compare(ctx, live, new3, "export live")

    # Refusals.
    r = ctx.sc("export", snap, "-", db=db)
    ctx.check("export NAME - without --sql: usage error (exit 2)",
              r.returncode == 2 and "--sql" in r.stderr,
              describe(r))
    r = ctx.sc("export", snap, db, "--sql", db=db)
    ctx.check("export --sql onto the live database is refused (exit 1)",
              r.returncode == 1 and "live database" in r.stderr,
              describe(r))
    ctx.check("the live database is unchanged", dump(db) == live)


if __name__ == "__main__":
    snaptest.main("snapctl_export_sql", body)
