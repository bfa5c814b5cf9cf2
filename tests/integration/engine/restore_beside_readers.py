#!/usr/bin/env python3
"""
restore_beside_readers.py MODE — `snapctl restore` beside another process's
open connection to the live database (MODE: wal, delete).

A reader process keeps one SQLite connection to the live database open for
the whole test and is driven line by line through pipes (the handshake):
"hash" hashes the content in a new transaction, "begin" opens a read
transaction and hashes inside it, "hash-in" hashes again inside it, "end"
ends it, "check" runs integrity_check.

wal:    1. the reader's connection is open and idle while restore A runs;
           a new transaction then sees A;
        2. the reader holds a read transaction while restore B runs; restore
           still succeeds, the open transaction still sees A (snapshot
           isolation), a new one sees B.
delete: the reader holds a read transaction (a SHARED lock); restore A
        starts; the test waits until the restore holds the PENDING lock on
        the live file (it is waiting for the reader, seen with F_GETLK from
        this process, which has no SQLite connection to the file), then lets
        the reader end its transaction.  The restore must then succeed (busy
        handler, not an error), and the reader's next transaction sees A.
"""

import fcntl
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as st  # noqa: E402

ROWS = 3000
PENDING_BYTE = 0x40000000


def reader(db):
    """The reader process: one connection, commands on stdin."""
    con = st.connect(db, timeout=60)

    def h():
        import hashlib
        d = hashlib.sha256()
        for row in con.execute("SELECT * FROM t ORDER BY id"):
            d.update(repr(row).encode())
        return d.hexdigest()

    # The connection is open and has read the database once.
    h()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        try:
            if cmd == "hash":
                con.execute("BEGIN")
                out = h()
                con.execute("COMMIT")
            elif cmd == "begin":
                con.execute("BEGIN")
                out = h()
            elif cmd == "hash-in":
                out = h()
            elif cmd == "end":
                con.execute("COMMIT")
                out = "ended"
            elif cmd == "check":
                out = ";".join(r[0] for r in
                               con.execute("PRAGMA integrity_check"))
            elif cmd == "quit":
                break
            else:
                out = f"error unknown command {cmd}"
        except Exception as e:   # reported to the test, which fails
            out = f"error {type(e).__name__}: {e}"
        print(out, flush=True)
    con.close()


class Reader:
    def __init__(self, ctx, db):
        self.p = ctx.spawn([sys.executable, os.path.abspath(__file__),
                            "--reader", db],
                           stdin=st.subprocess.PIPE, stdout=st.subprocess.PIPE,
                           text=True)
        first = self.p.stdout.readline().strip()
        if first != "ready":
            raise st.TestFailed(f"reader did not start: {first!r}")

    def ask(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()
        out = self.p.stdout.readline().strip()
        if not out:
            raise st.TestFailed(f"reader died on {cmd!r} "
                                f"(rc {self.p.poll()})")
        return out

    def quit(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait(timeout=60)


def rows_hash(db):
    import hashlib
    con = st.connect(db)
    d = hashlib.sha256()
    for row in con.execute("SELECT * FROM t ORDER BY id"):
        d.update(repr(row).encode())
    con.close()
    return d.hexdigest()


def make_states(ctx, db, mode):
    con = st.connect(db)
    con.execute(f"PRAGMA journal_mode={mode}")
    con.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    con.execute("BEGIN")
    con.executemany("INSERT INTO t VALUES(?, ?)",
                    [(i, f"a-{i}-" + "x" * 200) for i in range(1, ROWS + 1)])
    con.execute("COMMIT")
    con.close()
    hash_a = rows_hash(db)
    snap_a = ctx.create(db=db, label="state-a")
    con = st.connect(db)
    con.execute("UPDATE t SET v = 'b-' || id || '-' || hex(randomblob(50))"
                " WHERE id % 2 = 0")
    con.execute("INSERT INTO t(v) VALUES('only in b')")
    con.close()
    hash_b = rows_hash(db)
    snap_b = ctx.create(db=db, label="state-b")
    ctx.require("states A and B differ", hash_a != hash_b)
    ctx.require(f"live database is in {mode} mode", st.journal_mode(db) == mode)
    return hash_a, snap_a, hash_b, snap_b


def pending_holder(db):
    """pid of the process holding a write lock on SQLite's PENDING byte of
    db, or 0.  F_GETLK from this process, which holds no SQLite connection
    to db (closing a descriptor would otherwise drop SQLite's locks)."""
    fd = os.open(db, os.O_RDONLY)
    try:
        req = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET,
                          PENDING_BYTE, 1, 0)
        res = fcntl.fcntl(fd, fcntl.F_GETLK, req)
        ltype, _, _, _, pid = struct.unpack("hhqqi4x", res)
        return pid if ltype == fcntl.F_WRLCK else 0
    finally:
        os.close(fd)


def body_wal(ctx, db):
    hash_a, snap_a, hash_b, snap_b = make_states(ctx, db, "wal")
    rd = Reader(ctx, db)
    ctx.check("reader sees B before the restore", rd.ask("hash") == hash_b)

    # 1. idle open connection
    r = ctx.sc("restore", snap_a, db=db, timeout=120)
    ctx.check(f"restore {snap_a} beside an idle WAL "
              "connection exits 0", r.returncode == 0, st.describe(r))
    ctx.check("the reader's next transaction sees the restored state A",
              rd.ask("hash") == hash_a)
    ctx.check("integrity_check through the reader", rd.ask("check") == "ok")

    # 2. reader inside a read transaction
    ctx.check("reader opens a read transaction "
              "on A", rd.ask("begin") == hash_a)
    r = ctx.sc("restore", snap_b, db=db, timeout=120)
    ctx.check(f"restore {snap_b} while a WAL reader holds "
              "a read transaction exits 0", r.returncode == 0, st.describe(r))
    ctx.check("the open read transaction still "
              "sees A (snapshot isolation)", rd.ask("hash-in") == hash_a)
    ctx.check("the reader ends its transaction", rd.ask("end") == "ended")
    ctx.check("the reader's next transaction sees the restored state B",
              rd.ask("hash") == hash_b)
    ctx.check("integrity_check through the reader", rd.ask("check") == "ok")
    rd.quit()
    ctx.check("live database is still WAL", st.journal_mode(db) == "wal")
    ctx.check("a fresh connection sees B", rows_hash(db) == hash_b)


def body_delete(ctx, db):
    hash_a, snap_a, hash_b, snap_b = make_states(ctx, db, "delete")
    rd = Reader(ctx, db)
    ctx.check("reader holds a read transaction (SHARED lock) on B",
              rd.ask("begin") == hash_b)
    p = ctx.spawn(ctx.snapctl_args(["restore", snap_a], db),
                  stdout=st.subprocess.PIPE, stderr=st.subprocess.PIPE,
                  text=True)
    # Wait until the restore waits for the reader: it holds PENDING.
    # (Polling a lock state; the bound only stops a hang.)
    holder = 0
    deadline = st.time.monotonic() + 120
    while st.time.monotonic() < deadline:
        holder = pending_holder(db)
        if holder:
            break
        try:
            p.wait(timeout=0.01)
            break              # exited without ever waiting for the reader
        except st.subprocess.TimeoutExpired:
            pass
    if not ctx.check("restore reaches the copy and waits "
                     "for the reader (holds PENDING on the live file)", holder == p.pid,
                     f"holder {holder}, restore pid {p.pid}, "
                     f"restore rc {p.poll()}"):
        out, err = p.communicate(timeout=120)
        print(f"#   restore stdout {out!r}\n#   restore stderr {err!r}")
        ctx.check("the reader's open transaction still sees B",
                  rd.ask("hash-in") == hash_b)
        rd.ask("end")
        ctx.check("reader then sees A", rd.ask("hash") == hash_a)
        rd.quit()
        return
    ctx.check("the reader's open transaction still sees B",
              rd.ask("hash-in") == hash_b)
    ctx.check("the reader ends its transaction", rd.ask("end") == "ended")
    out, err = p.communicate(timeout=120)
    ctx.check("the restore then succeeds (busy handler)", p.returncode == 0,
              f"rc {p.returncode}\nstdout {out!r}\nstderr {err!r}")
    ctx.check("the reader's next transaction sees the restored state A",
              rd.ask("hash") == hash_a)
    ctx.check("integrity_check through the reader", rd.ask("check") == "ok")
    rd.quit()
    ctx.check("live database is still in rollback mode",
              st.journal_mode(db) == "delete")
    ctx.check("no journal left behind", not os.path.exists(db + "-journal"))


def body(ctx, mode):
    db = ctx.path("live.db")
    if mode == "wal":
        body_wal(ctx, db)
    else:
        body_delete(ctx, db)
    r = ctx.sc("verify", db=db)
    ctx.check("store verifies clean", r.returncode == 0, st.describe(r))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--reader":
        reader(sys.argv[2])
        sys.exit(0)
    if len(sys.argv) != 2 or sys.argv[1] not in ("delete", "wal"):
        print("usage: restore_beside_readers.py delete|wal", file=sys.stderr)
        sys.exit(2)
    mode = sys.argv[1]
    st.main(f"restore-beside-readers-{mode}", lambda ctx: body(ctx, mode))
