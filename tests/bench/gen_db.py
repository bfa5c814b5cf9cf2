#!/usr/bin/env python3
"""Generate (or mutate) a realistic SQLite database for the snapfs benchmarks.

    gen_db.py OUT.db --size 64M|1G [--journal delete|wal] [--seed N] [--page-size 4096]
    gen_db.py OUT.db --mutate PCT [--seed N] [--no-count]

Generation builds three tables that look like an application's data, so pages
compress like real pages (neither random bytes nor zeros):

    users(id, name, email UNIQUE, country, created, bio)   -- text-heavy
    orders(id, user_id, ts, amount, qty, status, sku, note) -- numbers, short text
    events(id, order_id, ts, kind, payload)                 -- log-like rows
    indexes: users(email) unique, orders(user_id, ts), events(order_id)

Rows are appended until the file reaches the target size (within one batch).
Generation runs with journal_mode=OFF and synchronous=OFF in large
transactions, then sets the requested final journal mode.

--mutate PCT updates scattered rows in place (same-size values, no indexed
column touched) so that about PCT% of the database's pages change, the way an
application's writes between two snapshots do.  Unless --no-count is given it
compares the file before and after and prints how many pages really changed.

Deterministic for a given --seed (the default seed is 1; --mutate derives its
row choice from the seed and the database's change counter, so repeated
mutations touch different pages).
"""
import argparse
import os
import random
import sqlite3
import sys
import time
import zlib

SYLL = ["an", "ber", "co", "da", "el", "fin", "ga", "hor", "is", "jo", "ka",
        "lem", "mo", "nor", "ol", "pe", "qua", "ri", "sa", "tor", "u", "vel",
        "wi", "xa", "yo", "zen", "ar", "st", "ch", "ley"]
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "IT", "ES", "NL",
             "SE", "PL", "MX", "AU", "KR", "CH", "BE", "AT", "NO"]
STATUS = ["pending", "paid", "shipped", "delivered", "refunded", "cancelled"]
KINDS = ["view", "click", "cart", "checkout", "payment", "email", "support"]
DOMAINS = ["example.com", "mail.test", "corp.example", "inbox.test",
           "post.example.org"]


def parse_size(s):
    s = s.strip().upper()
    mult = 1
    for suf, m in (("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30)):
        if s.endswith(suf + "B"):
            s = s[:-2]
        if s.endswith(suf):
            s, mult = s[:-1], m
            break
    return int(float(s) * mult)


def make_vocab(rng, n):
    words = set()
    while len(words) < n:
        k = rng.choice((1, 2, 2, 3, 3, 4))
        words.add("".join(rng.choice(SYLL) for _ in range(k)))
    return sorted(words)


def make_sentences(rng, vocab, n, lo, hi):
    # Zipf-ish word frequencies, like natural text.
    weights = [1.0 / (i + 1) for i in range(len(vocab))]
    out = []
    for _ in range(n):
        k = rng.randint(lo, hi)
        ws = rng.choices(vocab, weights, k=k)
        s = " ".join(ws)
        out.append(s[:1].upper() + s[1:] + "." if s else "")
    return out


SCHEMA = """
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  country TEXT NOT NULL,
  created INTEGER NOT NULL,
  bio TEXT
);
CREATE TABLE orders(
  id INTEGER PRIMARY KEY,
  user_id INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  amount REAL NOT NULL,
  qty INTEGER NOT NULL,
  status TEXT NOT NULL,
  sku TEXT NOT NULL,
  note TEXT
);
CREATE TABLE events(
  id INTEGER PRIMARY KEY,
  order_id INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT
);
CREATE UNIQUE INDEX users_email ON users(email);
CREATE INDEX orders_user_ts ON orders(user_id, ts);
CREATE INDEX events_order ON events(order_id);
"""


def db_bytes(con):
    pc = con.execute("PRAGMA page_count").fetchone()[0]
    ps = con.execute("PRAGMA page_size").fetchone()[0]
    return pc * ps


def generate(args):
    target = parse_size(args.size)
    rng = random.Random(args.seed)
    for suffix in ("", "-journal", "-wal", "-shm"):
        try:
            os.unlink(args.out + suffix)
        except FileNotFoundError:
            pass
    t0 = time.monotonic()
    con = sqlite3.connect(args.out, isolation_level=None)
    con.execute("PRAGMA page_size=%d" % args.page_size)
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-262144")  # 256 MiB: index inserts stay in memory
    con.execute("PRAGMA temp_store=MEMORY")
    con.executescript(SCHEMA)

    vocab = make_vocab(rng, 3000)
    bios = make_sentences(rng, vocab, 4096, 8, 60)
    notes = make_sentences(rng, vocab, 2048, 0, 12)
    payloads = make_sentences(rng, vocab, 2048, 2, 20)
    first = [w.capitalize() for w in vocab[:800]]
    last = [w.capitalize() for w in vocab[800:2400]]
    skus = ["SKU-%05d-%s" % (i, rng.choice(vocab)[:4].upper())
            for i in range(5000)]

    # Per batch: up to 2,000 users, 10,000 orders, 15,000 events (~3.5 MB).
    # Smaller batches for small targets so they land near the size asked.
    scale = max(0.02, min(1.0, target / float(64 << 20)))
    NU, NO, NE = int(2000 * scale), int(10000 * scale), int(15000 * scale)
    uid = oid = eid = 0
    base_ts = 1_600_000_000
    r = rng.random
    ri = rng.randrange
    while True:
        con.execute("BEGIN")
        users = []
        for _ in range(NU):
            uid += 1
            fn = first[ri(len(first))]
            ln = last[ri(len(last))]
            users.append((uid, fn + " " + ln,
                          "%s.%s%d@%s" % (fn.lower(), ln.lower(), uid,
                                          DOMAINS[uid % len(DOMAINS)]),
                          COUNTRIES[ri(len(COUNTRIES))],
                          base_ts + uid * 37 + ri(30),
                          bios[ri(len(bios))] if r() < 0.85 else None))
        con.executemany("INSERT INTO users VALUES(?,?,?,?,?,?)", users)
        orders = []
        for _ in range(NO):
            oid += 1
            orders.append((oid, 1 + ri(uid), base_ts + oid * 7 + ri(7),
                           round(r() * 500, 2), 1 + ri(9),
                           STATUS[ri(len(STATUS))], skus[ri(len(skus))],
                           notes[ri(len(notes))] if r() < 0.3 else None))
        con.executemany("INSERT INTO orders VALUES(?,?,?,?,?,?,?,?)", orders)
        events = []
        for _ in range(NE):
            eid += 1
            events.append((eid, 1 + ri(oid), base_ts + eid * 5,
                           KINDS[ri(len(KINDS))], payloads[ri(len(payloads))]))
        con.executemany("INSERT INTO events VALUES(?,?,?,?,?)", events)
        con.execute("COMMIT")
        if db_bytes(con) >= target:
            break
    con.execute("PRAGMA journal_mode=%s" % args.journal.upper())
    con.close()
    size = os.path.getsize(args.out)
    if not args.quiet:
        print("%s: %d bytes (%d pages), %d users, %d orders, %d events, "
              "journal %s, %.1fs" % (args.out, size, size // args.page_size,
                                     uid, oid, eid, args.journal,
                                     time.monotonic() - t0))


def page_crcs(path):
    out = []
    with open(path, "rb") as f:
        ps = None
        while True:
            if ps is None:
                hdr = f.read(100)
                if len(hdr) < 100:
                    return out, 4096
                ps = int.from_bytes(hdr[16:18], "big")
                if ps == 1:
                    ps = 65536
                buf = hdr + f.read(ps - 100)
            else:
                buf = f.read(ps)
            if not buf:
                break
            out.append(zlib.crc32(buf))
    return out, ps


def mutate(args):
    pct = args.mutate
    t0 = time.monotonic()
    con = sqlite3.connect(args.out, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    if mode == "wal":
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = None if args.no_count else page_crcs(args.out)[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    with open(args.out, "rb") as f:
        f.seek(24)
        counter = int.from_bytes(f.read(4), "big")
    rng = random.Random(args.seed * 1_000_003 + counter)
    # Rows are appended in rowid order, so a random sample of rowids lands on
    # random leaf pages; interior pages change rarely. Split the updates
    # between the tables by their share of the file (rough: rows x width).
    maxid = {t: con.execute("SELECT max(id) FROM %s" % t).fetchone()[0] or 0
             for t in ("users", "orders", "events")}
    width = {"users": 210, "orders": 60, "events": 75}
    weight = {t: maxid[t] * width[t] for t in maxid}
    total_w = sum(weight.values()) or 1
    n = max(1, int(round(pages * pct / 100.0)))
    # Index pages (about a quarter of the file) never change: aim the table
    # updates at n pages among the table-leaf pages.
    con.execute("BEGIN")
    for t, w in weight.items():
        k = int(round(n * w / total_w))
        if k == 0 or maxid[t] == 0:
            continue
        ids = rng.sample(range(1, maxid[t] + 1), min(k, maxid[t]))
        if t == "users":
            con.executemany("UPDATE users SET created = created + 1 "
                            "WHERE id = ?", ((i,) for i in ids))
        elif t == "orders":
            con.executemany("UPDATE orders SET qty = (qty % 9) + 1, "
                            "status = ? WHERE id = ?",
                            ((STATUS[i % len(STATUS)], i) for i in ids))
        else:
            con.executemany("UPDATE events SET kind = ? WHERE id = ?",
                            ((KINDS[(i + counter) % len(KINDS)], i)
                             for i in ids))
    con.execute("COMMIT")
    if mode == "wal" and not args.no_count:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    if not args.quiet:
        msg = "%s: mutated about %.2f%% of %d pages" % (args.out, pct, pages)
        if before is not None:
            after, _ = page_crcs(args.out)
            changed = sum(1 for a, b in zip(before, after) if a != b)
            changed += abs(len(after) - len(before))
            msg += ": %d pages changed (%.2f%%)" % (changed,
                                                   100.0 * changed / len(after))
        print(msg + ", %.1fs" % (time.monotonic() - t0))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="database file to create (or mutate)")
    ap.add_argument("--size", default="64M", help="target size: 64M, 1G, ...")
    ap.add_argument("--journal", default="delete", choices=("delete", "wal"),
                    help="final journal mode (default delete)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--page-size", type=int, default=4096)
    ap.add_argument("--mutate", type=float, metavar="PCT",
                    help="change about PCT%% of the pages of an existing OUT")
    ap.add_argument("--no-count", action="store_true",
                    help="with --mutate: do not count the changed pages")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    if args.mutate is not None:
        if not os.path.exists(args.out):
            sys.exit("gen_db.py: %s does not exist" % args.out)
        mutate(args)
    else:
        generate(args)


if __name__ == "__main__":
    main()
