#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/.

The seeds are committed; this script says how they were made and makes
them again (python3 and its sqlite3 module only).  Each seed is a small
input the target's reader understands, so fuzzing starts from the formats
instead of having to find "SQLite format 3" or a zstd frame by chance.
Inputs that once found a bug are kept beside them as found-<what>; this
script never removes files.

    tests/fuzz/make_seeds.py
"""
import os
import sqlite3
import struct
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def zstd_raw_frame(payload):
    """A zstd frame holding payload in raw blocks, with its content size
    (what snap_map_decode checks) and no checksum."""
    n = len(payload)
    if n < 256:
        head = bytes([0x20]) + bytes([n])                  # 1-byte size
    elif n < 65536 + 256:
        head = bytes([0x60]) + struct.pack("<H", n - 256)  # 2-byte size
    else:
        head = bytes([0xA0]) + struct.pack("<I", n)
    out = b"\x28\xb5\x2f\xfd" + head
    blocks = [payload[i:i + 65536] for i in range(0, n, 65536)] or [b""]
    for k, b in enumerate(blocks):
        last = 1 if k == len(blocks) - 1 else 0
        hdr = last | (0 << 1) | (len(b) << 3)              # raw block
        out += struct.pack("<I", hdr)[:3] + b
    return out


# ---- import: small real databases, and broken ones -------------------------

def make_db(ps, sql, journal="delete"):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.db")
        db = sqlite3.connect(path, isolation_level=None)
        db.execute(f"PRAGMA page_size={ps}")
        db.execute(f"PRAGMA journal_mode={journal}")
        db.executescript(sql)
        if journal == "wal":
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()
        with open(path, "rb") as f:
            return f.read()


def import_seeds():
    tiny = make_db(512, "CREATE TABLE t(a); INSERT INTO t VALUES(1);")
    put("import", "tiny-512.db", tiny)
    rows = "".join(f"INSERT INTO t(v) VALUES('row {i} {'x' * (i % 40)}');"
                   for i in range(40))
    indexed = make_db(1024, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
                      "CREATE INDEX t_v ON t(v);" + rows)
    put("import", "indexed-1024.db", indexed)
    put("import", "wal-1024.db",
        make_db(1024, "CREATE TABLE t(a, b); INSERT INTO t VALUES(1, 'x');",
                journal="wal"))
    put("import", "schema-512.db", make_db(512, """
        PRAGMA auto_vacuum=FULL;
        CREATE TABLE a(id INTEGER PRIMARY KEY, v TEXT UNIQUE);
        CREATE TABLE w(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
        CREATE VIEW va AS SELECT v FROM a;
        CREATE TRIGGER ta AFTER INSERT ON a BEGIN
          INSERT INTO w VALUES(new.v, zeroblob(10)); END;
        INSERT INTO a(v) VALUES('one'), ('two'), ('three');
    """))
    put("import", "freelist-512.db", make_db(512, """
        CREATE TABLE t(v);
        INSERT INTO t SELECT randomblob(200) FROM
          (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c
           WHERE x < 20) SELECT x FROM c);
        DELETE FROM t WHERE rowid % 2 = 0;
    """))
    put("import", "two-pages-4096.db",
        make_db(4096, "CREATE TABLE t(a); INSERT INTO t VALUES(1);"))
    put("import", "truncated-1024.db", indexed[:-1024])
    put("import", "header-only.db", tiny[:100])
    broken = bytearray(indexed)
    broken[1024 + 10] ^= 0xff
    put("import", "bad-page-1024.db", bytes(broken))


# ---- codec: page maps and stored pages --------------------------------------

def codec_seeds():
    ids = [5, 6, 7]
    deltas = [ids[0]] + [ids[i] - ids[i - 1] for i in range(1, len(ids))]
    frame = zstd_raw_frame(b"".join(struct.pack("<q", d) for d in deltas))
    put("codec", "map-3", b"\x00" + struct.pack(">I", 3) + frame)
    put("codec", "map-count-wrong", b"\x00" + struct.pack(">I", 4) + frame)
    put("codec", "ids", b"\x01" + b"".join(struct.pack(">Q", i) for i in
                                             [1, 2, 3, 3, 900, 2**63 - 1]))
    page = (b"SQLite page " * 100)[:1024]
    put("codec", "frame-1024", b"\x02\x01" + zstd_raw_frame(page))
    put("codec", "frame-short", b"\x02\x01" + zstd_raw_frame(page[:1000]))
    put("codec", "raw-1024", b"\x02\x01" + page)
    put("codec", "page-text", b"\x03\x01" + b"create table t(a, b);")


# ---- catalog: edits of a real store (see fuzz_catalog.c) --------------------

U8, U32, U64 = (lambda v: bytes([v & 0xff]),
                lambda v: struct.pack(">I", v & 0xffffffff),
                lambda v: struct.pack(">Q", v & 0xffffffffffffffff))
COLS = ["page_size", "page_count", "image_size", "sha256", "kind", "name",
        "label", "created_ns", "pinned", "comment", "tables",
        "change_counter", "pagemap"]


def blob(b):
    return struct.pack(">H", len(b)) + b


def set_col(snap, col, value):
    """Edit op 0: column := value (int, str or bytes)."""
    head = U8(0) + U8(snap - 1) + U8(COLS.index(col))
    if isinstance(value, str):
        return head + U8(4) + blob(value.encode())
    if isinstance(value, bytes):
        return head + U8(5) + blob(value)
    return head + U8(3) + U64(value)


def catalog_seeds():
    put("catalog", "untouched", U8(0))
    put("catalog", "page-size-0", U8(0) + set_col(1, "page_size", 0))
    put("catalog", "page-size-huge", U8(1) + set_col(2, "page_size", 2**31))
    put("catalog", "page-count-plus-1",
        U8(2) + U8(1) + U8(2) + U8(COLS.index("page_count")) + U8(1))
    put("catalog", "image-size-plus-1",
        U8(0) + U8(1) + U8(0) + U8(COLS.index("image_size")) + U8(1))
    put("catalog", "kind-unknown", U8(1) + set_col(2, "kind", "bogus"))
    put("catalog", "name-slash", U8(0) + set_col(1, "name", "../x/y.db"))
    put("catalog", "sha-short", U8(0) + set_col(1, "sha256", b"\x01" * 7))
    put("catalog", "created-min", U8(2) + set_col(3, "created_ns", -2**63))
    put("catalog", "map-garbage",
        U8(1) + U8(2) + U8(1) + U8(0) + blob(b"\x28\xb5\x2f\xfd" + b"x" * 20))
    put("catalog", "map-forged",
        U8(0) + U8(3) + U8(0) + U8(0) + U8(3) +
        U8(0) + U8(1) + U8(0) + U8(2) + U8(0x80) + U64(2**40))
    put("catalog", "map-bit", U8(2) + U8(4) + U8(2) + U8(0) + U32(77))
    put("catalog", "page-frame",
        U8(0) + U8(5) + U8(0) + U8(0) + U8(3) + U8(1) +
        blob(b"not a page") + U8(0))
    put("catalog", "page-bit", U8(0) + U8(6) + U8(0) + U8(0) + U8(1) + U32(9))
    put("catalog", "page-size-column",
        U8(0) + U8(7) + U8(0) + U8(0) + U8(2) + U8(0) + U8(1) + U8(0))
    put("catalog", "page-deleted", U8(1) + U8(8) + U8(0) + U8(0) + U8(4) +
        U8(1))
    put("catalog", "sha-bit", U8(0) + U8(9) + U8(0) + U8(0) + U32(3))
    # First byte: bit 6 diffs the target, bit 7 restores it.
    put("catalog", "diff-untouched", U8(0x40))
    put("catalog", "diff-kind", U8(0x41) + set_col(2, "kind", "import"))
    put("catalog", "restore-untouched", U8(0x80))
    put("catalog", "restore-page-size-0",
        U8(0x80) + set_col(1, "page_size", 0))
    put("catalog", "restore-page-bit",
        U8(0xc2) + U8(6) + U8(2) + U8(0) + U8(5) + U32(1000))


# ---- options and labels -----------------------------------------------------

def plan(records):
    """Snapshots for the retention plan: (flags, time) pairs."""
    out = U8(len(records))
    for flags, t in records:
        out += U8(flags) + (U64(t) if flags & 0x80 else U32(t))
    return out


def options_seeds():
    values = ["15m", "1h30m", "0s", "7d", "2w3d", "9223372036s", "10G",
              "512K", "10MiB", "512B", "1P", "last:24,daily:7,weekly:4",
              "last:3,hourly:24,daily:7,weekly:4,monthly:12,yearly:3,"
              "within:2d", "hourly:0", "within:1w", "last:1,last:2",
              "daily:x"]
    auto = [(1, i * 3600) for i in range(30)] + [(0, 5), (0x11, 7)]
    for i, v in enumerate(values):
        put("options", f"value-{i:02d}",
            v.encode() + b"\n" + plan(auto if i % 2 else auto[:5]))
    put("options", "plan-extremes", b"weekly:2\n" + plan(
        [(0x81, 2**63 - 1), (0x81, -2**63), (0x81, 0), (1, 1)]))


def label_seeds():
    for i, v in enumerate([
            "before-migration", "before migration!", "caf\u00e9",
            "\u65e5\u672c\u8a9e", "../../etc/passwd", "a/b\\c:d", ".hidden",
            "..", ".", "x.db", "x.db.db", "x-journal", "x-wal", "x-shm",
            "2026-11-22T014900Z_before-migration.db", "latest", "latest.db",
            "x" * 70, "x" * 61 + ".dbzz", "\t\n"]):
        put("label", f"label-{i:02d}", v)


if __name__ == "__main__":
    import_seeds()
    codec_seeds()
    catalog_seeds()
    options_seeds()
    label_seeds()
