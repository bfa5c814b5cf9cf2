#!/usr/bin/env python3
"""
concurrent_commands.py — several snapctl processes on one store at once.

  * PARALLEL `snapctl create` started together (no waiting between them):
    every one exits 0 with a distinct name, every name is listed, each
    snapshot verifies clean;
  * three `snapctl restore` of the same snapshot started together: each
    exits 0, or exits 1 saying another restore is in progress; at least one
    succeeds; the live database then holds the snapshot's content and passes
    integrity_check; the store verifies clean.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import snaptest as st  # noqa: E402

PARALLEL = 5


def start_all(ctx, argvs):
    procs = [ctx.spawn(a, stdout=st.subprocess.PIPE, stderr=st.subprocess.PIPE,
                       text=True) for a in argvs]
    out = []
    for p in procs:
        o, e = p.communicate(timeout=300)
        out.append((p.returncode, o, e))
    return out


def body(ctx):
    db = ctx.path("live.db")
    st.make_blob_db(db, "wal", 6000, 1000, ctx.rng)
    first_hash = st.content_hash(db)
    first = ctx.create(db=db, label="first")
    st.mutate_blob_db(db, 0.3, 1, ctx.rng)

    res = start_all(ctx, [ctx.snapctl_args(["create", "--label", f"par{i}"],
                                           db) for i in range(PARALLEL)])
    names = []
    for i, (rc, out, err) in enumerate(res):
        ctx.check(f"parallel create {i} exits 0 "
                  "and prints a name", rc == 0 and out.strip(), f"rc {rc}\nstdout {out!r}\n"
                  f"stderr {err!r}")
        if out.strip():
            names.append(out.strip().splitlines()[-1])
    ctx.check("the names are distinct", len(set(names)) == len(names),
              str(names))
    listed = [s["name"] for s in ctx.list(db=db)]
    for n in names:
        ctx.check(f"{n} is listed", n in listed)
        r = ctx.sc("verify", n, db=db)
        ctx.check(f"{n} verifies clean", r.returncode == 0, st.describe(r))

    res = start_all(ctx, [ctx.snapctl_args(["restore", first], db)
                          for _ in range(3)])
    ok = 0
    for i, (rc, out, err) in enumerate(res):
        if rc == 0:
            ok += 1
        ctx.check(f"parallel restore {i}: exit 0, or exit 1 saying another "
                  "restore is in progress",
                  rc == 0 or (rc == 1 and "restore" in err.lower() and
                              ("progress" in err.lower() or
                               "busy" in err.lower())), f"rc {rc}\nstdout {out!r}\n"
                  f"stderr {err!r}")
    ctx.check("at least one parallel restore succeeded", ok >= 1, str(res))
    ctx.check("the live database holds the restored snapshot's content",
              st.content_hash(db) == first_hash)
    ctx.check("live integrity_check ok", st.integrity(db, writable=True) == "ok")
    ctx.check("live database is still WAL", st.journal_mode(db) == "wal")
    r = ctx.sc("verify", db=db, timeout=300)
    ctx.check("the store verifies clean", r.returncode == 0, st.describe(r))


if __name__ == "__main__":
    st.main("concurrent-commands", body)
