#!/usr/bin/env python3
"""
tests/bench/crash_sweep.py — SIGKILL at N points spread over snapfs's
operations; counts corrupt outcomes and lost commits.

    crash_sweep.py N [--seed S] [--db-mb MB] [--ops OP,...] [--modes M,...]
                     [--work DIR] [--keep]
    crash_sweep.py 1 --seed S --db-mb MB --op OP --mode M --delay SECONDS

Normally run through tests/bench/crash_sweep.sh, which finds the build
($SNAPCTL, $SNAPFS) and keeps the work directory in tests/bench/data/.
The last line is exactly `N points, K corrupt, L lost commits`; the exit
status is 0 only when K = L = 0 and nothing else went wrong (1 otherwise,
77 when the mount operations cannot run here: not root, no /dev/fuse, no
$SNAPFS).

Operations (OP), each on a rollback-journal and a WAL live database (M):

  snapctl, killed with SIGKILL:
    create          snapctl create
    restore         snapctl restore A
    restore-table   snapctl restore A --table orders
    delete          snapctl delete A
    prune           snapctl prune --keep last:1
    import          snapctl import OTHER
  through a real mount, the daemon (snapfs -f) killed with SIGKILL:
    mount-snapshot  touch MNT/snapshots/sweep
    mount-mv        mv MNT/snapshots/A MNT/current.db
    mount-cp        cp OTHER MNT/current.db
    mount-edit      sqlite3 MNT/current.db "EDIT" beside the writer (the
                    live database moves during the session: the edit is
                    merged as a changeset)
    mount-edit-quiet  the same with no writer (the edit copy is restored)
    mount-rm        rm MNT/snapshots/A
    mount-schedule  snapfs -o every=1s,keep=last:2 (automatic snapshots and
                    retention), killed while it runs

The data.  One database of about --db-mb MB made by gen_db.py (tables users,
orders, events with their indexes) plus a table app(id) that the writer
fills.  A template is built once per run (and copied with the live
database switched to the other journal mode), then copied for every
point: each point starts from the same files, so it can be run again
alone with --op/--mode/--delay.
    A      the generated data, app ids 1..50; snapshot "a" (manual)
    P      A with 30% of its pages changed, app ids 1..100; snapshot "p"
           (manual); three pre-restore snapshots (each of P with another 10%
           changed, taken by `snapctl restore p`); the live database is P
    OTHER  another generated database (app ids 1..10), a file beside it
Content states are compared by `.sha3sum` of each of users, orders and
events (the sqlite3 shell): P, A, O (OTHER), PE (P after EDIT), PTA (P with
A's orders table).

The writer.  While each operation runs (except mount-edit-quiet), a process
inserts app ids 101, 102, ... in autocommit on the real path and counts an
id as committed only once its COMMIT returned (restore_loses_no_commit.py);
it is stopped after the kill.

Kill moments.  Each operation runs once to the end on a fresh copy (in the
first journal mode; the run must leave exactly its after state); its
duration D sets the kill window [0, 1.2 D] of both modes' lanes (an
(operation, mode) pair is a lane): a lane's n points are spread over it
uniformly (stratified, jittered by the seed; the first at exactly 0 when
n >= 4), so early, middle and late points and points past the end are all
covered.  For mount-schedule, D is the time until the second automatic
snapshot is listed.  N points are split evenly across the lanes.

After each kill: the daemon's mount is undone (fusermount3 -u, then -uz),
the writer is stopped, the next command recovers (a remount of the daemon,
whose staging directory must come up empty, then `snapctl list`), and:
  corrupt      the live database fails integrity_check or left its journal
               mode; or `snapctl verify --full` fails, or store.db fails
               integrity_check; or the recovery command fails; or the live
               content is neither the state before nor the state after
               (per operation: before P; after: restore A / O, restore-table
               PTA, edit PE; everything else P), or the snapshots are not
               the template's plus/minus what the operation may add or
               remove (create, import, touch: at most one new snapshot of
               its kind; restores and edits: at most one pre-restore; cp
               and edits: at most one import (the daemon stores the file
               written to current.db before restoring it), edits at most
               one conflict (a refused merge keeps the edit so: not
               corrupt, but not the after state either); delete, rm: only A may go; prune: only what
               `prune --dry-run` names; schedule: only automatic ones
               added, only pre-restore ones removed); or a new snapshot's
               content is not a state it may hold (manual, auto,
               pre-restore: P; import: O, or PE for edits; conflict: PE),
               or holds app ids
               that are not a prefix of the writer's commits; or a restored
               live database holds anything beyond the image plus the
               writer's commits after the restore's write lock.  An
               operation that finished before the kill must show exactly
               its after state.
  lost commit  an id the writer counted as committed (or one of the
               template's ids 1..100) missing from the live database —
               for a restore that replaced the live database (restore,
               mount-mv, mount-cp), missing from both the live database
               and the restore's safety snapshot (commits before the
               restore's write lock are in the safety snapshot, commits
               after it in the live database).
Every failed point prints one line with the reason and the command that
runs it again.  The store check is `snapctl verify` of every snapshot (each
page's and each image's SHA-256) plus `snapctl verify --full` of every
snapshot the point added: the template's snapshots passed --full once when
it was built, and a matching image hash proves their images unchanged, so
together this is what `verify --full` of the whole store proves
(--full-verify-all runs that instead).
"""

import argparse
import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import snaptest as st  # noqa: E402

SKIP = 77
TABLES = ("users", "orders", "events")
BASE_IDS = frozenset(range(1, 101))     # app ids of the template (P)
# The edit an edit session makes through the mount (rows of orders and
# events; the writer's rows are in app, so a merge never conflicts).
EDIT = ("BEGIN; UPDATE orders SET note = 'edited through the mount' "
        "WHERE id % 3 = 0; DELETE FROM events WHERE id % 7 = 0; COMMIT;")
STEP_TIMEOUT = 300                      # bounds any one command (a hang)

CTL_OPS = ("create", "restore", "restore-table", "delete", "prune", "import")
MOUNT_OPS = ("mount-snapshot", "mount-mv", "mount-cp", "mount-edit",
             "mount-edit-quiet", "mount-rm", "mount-schedule")
MODES = ("delete", "wal")

# The writer: app ids start+1, start+2, ... in autocommit; an id counts as
# committed once execute() returned.  It stops when the stop file exists
# and prints {"committed": [...], "uncertain": [...], "errors": [...]}.
WRITER = r"""
import json, os, sqlite3, sys, time
db, stop, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db, timeout=60, isolation_level=None)
i = max(start, c.execute("SELECT coalesce(max(id), 0) FROM app").fetchone()[0])
committed, uncertain, errors = [], [], []
while True:
    i += 1
    try:
        c.execute("INSERT INTO app VALUES (?)", (i,))
        committed.append(i)
    except sqlite3.Error as e:
        # Not known to be committed; not known not to be either.
        uncertain.append(i)
        errors.append("id %d: %s" % (i, e))
    if len(committed) + len(uncertain) == 1:
        print("ready", flush=True)
    if os.path.exists(stop):
        break
    time.sleep(0.002)
c.close()
print(json.dumps({"committed": committed, "uncertain": uncertain,
                  "errors": errors[:20]}), flush=True)
"""


class Problem(Exception):
    """A point cannot go on; the message says why."""


# ---- small helpers ---------------------------------------------------------

def run(argv, timeout=STEP_TIMEOUT, **kw):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise Problem("hang: %s did not finish within %ds"
                      % (" ".join(argv), timeout))


def short(text, n=300):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "..."


def data_state(path):
    """(users, orders, events) content hashes by the sqlite3 shell, or a
    string saying why the database could not be read."""
    argv = ["sqlite3", "-bail", "-batch", path] + [".sha3sum " + t
                                                   for t in TABLES]
    try:
        r = run(argv, timeout=STEP_TIMEOUT)
    except Problem as e:
        return str(e)
    lines = r.stdout.split()
    if r.returncode != 0 or len(lines) != len(TABLES):
        return "unreadable (%s)" % short(r.stderr or r.stdout, 160)
    return tuple(lines)


def app_ids(path):
    con = st.connect(path, timeout=60)
    try:
        return {row[0] for row in con.execute("SELECT id FROM app")}
    finally:
        con.close()


def copy_tree(src, dst):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    r = run(["cp", "-a", src, dst])
    if r.returncode != 0:
        raise Problem("cp -a %s %s: %s" % (src, dst, r.stderr))


def ids_desc(ids, n=8):
    ids = sorted(ids)
    s = ",".join(map(str, ids[:n]))
    return s + (",... (%d in all)" % len(ids) if len(ids) > n else "")


class SweepCtx:
    """What snaptest.Mount needs of its context: the daemon's path, the
    list of started daemons (for cleanup) and check(), which here records a
    failed check as a problem of the current point instead of printing."""

    def __init__(self, snapfs):
        self.snapfs = snapfs
        self.daemons = []
        self.failed = []

    def check(self, desc, cond, detail=None):
        if not cond:
            self.failed.append(desc + (": " + short(detail, 600)
                                       if detail else ""))
        return cond


# ---- the sweep -------------------------------------------------------------

class Sweep:
    def __init__(self, args):
        self.args = args
        self.snapctl = os.environ.get("SNAPCTL", "")
        self.snapfs = os.environ.get("SNAPFS", "")
        self.seed = args.seed
        self.work = tempfile.mkdtemp(prefix="crash.", dir=args.work)
        self.point = os.path.join(self.work, "point")
        self.live = os.path.join(self.point, "live.db")
        self.store = self.live + ".snapfs"
        self.mnt = os.path.join(self.work, "mnt")
        self.other = os.path.join(self.work, "other.db")
        self.stop_file = os.path.join(self.work, "writer.stop")
        self.sctx = SweepCtx(self.snapfs)
        self.children = []
        self.tmpl = {}          # mode -> template facts
        self.states = {}        # mode -> {state name: data hash}
        self.other_ids = set()

    # -- commands ----------------------------------------------------------
    def ctl_argv(self, *args):
        return [self.snapctl, "--db", self.live] + list(args)

    def ctl(self, *args, timeout=STEP_TIMEOUT):
        return run(self.ctl_argv(*args), timeout=timeout)

    def listing(self):
        r = self.ctl("list", "--json")
        if r.returncode != 0:
            raise Problem("snapctl list: " + short(r.stderr))
        return json.loads(r.stdout)

    def gen_db(self, *args):
        r = run([sys.executable, os.path.join(HERE, "gen_db.py"), "-q"] +
                list(args), timeout=1800)
        if r.returncode != 0:
            raise Problem("gen_db.py %s: %s" % (" ".join(args), r.stderr))

    def export_state(self, name):
        """(data hash, app ids) of snapshot name, by snapctl export."""
        out = os.path.join(self.work, "export.db")
        for side in ("", "-journal", "-wal", "-shm"):
            if os.path.exists(out + side):
                os.unlink(out + side)
        r = self.ctl("export", name, out)
        if r.returncode != 0:
            return ("export failed: " + short(r.stderr), set())
        try:
            return data_state(out), app_ids(out)
        except sqlite3.Error as e:
            return ("unreadable export: %s" % e, set())
        finally:
            os.unlink(out)

    # -- the data ----------------------------------------------------------
    def build_data(self):
        mb = self.args.db_mb
        base = os.path.join(self.work, "base.db")
        t0 = time.monotonic()
        self.gen_db(base, "--size", "%dM" % mb, "--seed", str(self.seed))
        self.gen_db(self.other, "--size", "%dM" % mb, "--seed",
                    str(self.seed + 1))
        con = st.connect(self.other)
        con.execute("CREATE TABLE app(id INTEGER PRIMARY KEY)")
        con.executemany("INSERT INTO app VALUES(?)",
                        [(i,) for i in range(1, 11)])
        con.close()
        self.other_ids = set(range(1, 11))
        first = "delete"        # always, so one point runs again the same
        self.build_template(first, base)
        for mode in [m for m in self.args.modes if m != first]:
            # The same files with the live database in another journal
            # mode (snapshots are stored in rollback mode whatever the
            # live database's mode, so they are the same).
            copy_tree(self.tmpl[first]["dir"], self.point)
            st.set_journal_mode(self.live, mode)
            self.tmpl[mode] = dict(self.tmpl[first],
                                   dir=os.path.join(self.work,
                                                    "tmpl-" + mode))
            self.states[mode] = self.states[first]
            os.rename(self.point, self.tmpl[mode]["dir"])
        os.unlink(base)
        print("# data: %d MB databases (%d bytes live), templates for %s "
              "built in %.1fs" % (mb, os.path.getsize(
                  os.path.join(self.work, "tmpl-delete", "live.db")),
                  ", ".join(self.args.modes), time.monotonic() - t0))
        sys.stdout.flush()

    def build_template(self, mode, base):
        """The files every point of this mode starts from (see the top)."""
        if os.path.exists(self.point):
            shutil.rmtree(self.point)
        os.makedirs(self.point)
        shutil.copyfile(base, self.live)
        st.set_journal_mode(self.live, mode)
        con = st.connect(self.live)
        con.execute("CREATE TABLE app(id INTEGER PRIMARY KEY)")
        con.executemany("INSERT INTO app VALUES(?)",
                        [(i,) for i in range(1, 51)])
        con.close()

        def create(label):
            r = self.ctl("create", "--label", label)
            if r.returncode != 0:
                raise Problem("template: create %s: %s" % (label, r.stderr))
            return r.stdout.split()[-1]

        a = create("a")
        self.gen_db(self.live, "--mutate", "30", "--no-count",
                    "--seed", str(self.seed + 2))
        con = st.connect(self.live)
        con.executemany("INSERT INTO app VALUES(?)",
                        [(i,) for i in range(51, 101)])
        con.close()
        p = create("p")
        for k in range(3):
            self.gen_db(self.live, "--mutate", "10", "--no-count",
                        "--seed", str(self.seed + 10 + k))
            r = self.ctl("restore", p)
            if r.returncode != 0:
                raise Problem("template: restore p: " + r.stderr)
        r = self.ctl("verify", "--full")
        if r.returncode != 0:
            raise Problem("template: verify --full: " + r.stdout + r.stderr)
        if st.journal_mode(self.live) != mode:
            raise Problem("template: live database not in %s mode" % mode)
        snaps = self.listing()
        pre = [s["name"] for s in snaps if s["kind"] == "pre-restore"]
        r = self.ctl("--json", "prune", "--keep", "last:1", "--dry-run")
        if r.returncode != 0:
            raise Problem("template: prune --dry-run: " + r.stderr)
        pruned = {d["name"] for d in json.loads(r.stdout) if not d["keep"]}
        if app_ids(self.live) != BASE_IDS:
            raise Problem("template: live app ids are not 1..100")

        # The content states, computed beside the engine, not by it.
        states = {"P": data_state(self.live)}
        states["A"], a_ids = self.export_state(a)
        states["O"] = data_state(self.other)
        scratch = os.path.join(self.work, "scratch.db")
        shutil.copyfile(self.live, scratch)
        r = st.sqlite3_cli(scratch, EDIT)
        if r.returncode != 0:
            raise Problem("template: the edit on a copy: " + r.stderr)
        states["PE"] = data_state(scratch)
        shutil.copyfile(self.live, scratch)
        aexp = os.path.join(self.work, "a.db")
        r = self.ctl("export", a, aexp)
        if r.returncode != 0:
            raise Problem("template: export a: " + r.stderr)
        con = st.connect(scratch)
        con.execute("ATTACH ? AS a", (aexp,))
        con.execute("BEGIN")
        con.execute("DELETE FROM orders")
        con.execute("INSERT INTO orders SELECT * FROM a.orders")
        con.execute("COMMIT")
        con.close()
        states["PTA"] = data_state(scratch)
        os.unlink(scratch)
        os.unlink(aexp)
        bad = [k for k, v in states.items() if not isinstance(v, tuple)]
        if bad or len(set(states.values())) != len(states):
            raise Problem("template: content states unreadable or not "
                          "distinct: %s" % states)
        if a_ids != set(range(1, 51)):
            raise Problem("template: snapshot a has app ids %s"
                          % ids_desc(a_ids))
        self.states[mode] = states
        self.tmpl[mode] = {
            "a": a, "p": p, "pre": pre, "pruned": pruned,
            "names": {s["name"] for s in snaps},
            "kinds": {s["name"]: s["kind"] for s in snaps},
            "dir": os.path.join(self.work, "tmpl-" + mode),
        }
        os.rename(self.point, self.tmpl[mode]["dir"])

    # -- operations ----------------------------------------------------------
    def op_spec(self, op, mode):
        """argv of the operation and what it may change (see the top):
        adds       {kind: most snapshots of that kind it may add}
        removes    the snapshots it may remove
        data       the live content states it may leave (before, after)
        image      the state a whole-database restore puts in place
        after      (content, {kind: count} added) when it ran to the end
        snap       {kind: content state} of the snapshots it adds"""
        t = self.tmpl[mode]
        sd = os.path.join(self.mnt, "snapshots")
        cur = os.path.join(self.mnt, "current.db")
        spec = {"writer": op != "mount-edit-quiet", "adds": {},
                "removes": set(), "data": ("P",), "image": None,
                "options": [], "argv": None,
                "snap": {"manual": "P", "auto": "P", "pre-restore": "P",
                         "import": "O", "conflict": "PE"}}
        restore = {"pre-restore": 1}
        # A file written to current.db is stored as an import snapshot
        # (label "upload" or "edit"), then restored.
        upload = {"import": 1, "pre-restore": 1}
        if op == "create":
            spec.update(argv=self.ctl_argv("create", "--label", "sweep"),
                        adds={"manual": 1})
        elif op == "restore":
            spec.update(argv=self.ctl_argv("restore", t["a"]), adds=restore,
                        data=("P", "A"), image="A")
        elif op == "restore-table":
            spec.update(argv=self.ctl_argv("restore", t["a"], "--table",
                                           "orders"),
                        adds=restore, data=("P", "PTA"))
        elif op == "delete":
            spec.update(argv=self.ctl_argv("delete", t["a"]),
                        removes={t["a"]})
        elif op == "prune":
            spec.update(argv=self.ctl_argv("prune", "--keep", "last:1"),
                        removes=set(t["pruned"]))
        elif op == "import":
            spec.update(argv=self.ctl_argv("import", self.other, "--label",
                                           "sweep"), adds={"import": 1})
        elif op == "mount-snapshot":
            spec.update(argv=["touch", os.path.join(sd, "sweep")],
                        adds={"manual": 1})
        elif op == "mount-mv":
            spec.update(argv=["mv", os.path.join(sd, t["a"]), cur],
                        adds=restore, data=("P", "A"), image="A")
        elif op == "mount-cp":
            spec.update(argv=["cp", self.other, cur], adds=upload,
                        data=("P", "O"), image="O")
        elif op in ("mount-edit", "mount-edit-quiet"):
            spec.update(argv=["sqlite3", "-bail", "-batch", cur, EDIT],
                        adds=dict(upload, conflict=1), data=("P", "PE"))
            spec["snap"]["import"] = "PE"
            if op == "mount-edit-quiet":
                spec["after"] = ("PE", upload)
        elif op == "mount-rm":
            spec.update(argv=["rm", os.path.join(sd, t["a"])],
                        removes={t["a"]})
        elif op == "mount-schedule":
            spec.update(options=["every=1s,keep=last:2"], adds={"auto": 1000},
                        removes=set(t["pre"]))
        else:
            raise ValueError(op)
        if "after" not in spec:
            spec["after"] = (spec["data"][-1],
                             {} if spec["removes"] else spec["adds"])
        return spec

    # -- one point -----------------------------------------------------------
    def start_writer(self):
        if os.path.exists(self.stop_file):
            os.unlink(self.stop_file)
        w = subprocess.Popen([sys.executable, "-c", WRITER, self.live,
                              self.stop_file, str(max(BASE_IDS))],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
        self.children.append(w)
        r, _, _ = select.select([w.stdout], [], [], 60)
        line = w.stdout.readline().strip() if r else ""
        if line != "ready":
            w.kill()
            raise Problem("the writer did not start: %s"
                          % short(w.stderr.read() if w.poll() is not None
                                  else "no ready line within 60s"))
        return w

    def stop_writer(self, w):
        with open(self.stop_file, "w"):
            pass
        try:
            out, err = w.communicate(timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            w.kill()
            w.communicate()
            raise Problem("hang: the writer did not stop within %ds"
                          % STEP_TIMEOUT)
        try:
            return json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise Problem("the writer died: rc %s, %s"
                          % (w.returncode, short(err)))

    def mount(self, options):
        return st.Mount(self.sctx, self.live, self.mnt, None,
                        options).start()

    def kill_daemon(self, m):
        """SIGKILL, then fusermount3 -u and -uz (snaptest.unmount)."""
        if m.proc is not None and m.proc.poll() is None:
            os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait()
        st.unmount(self.mnt)
        m.kill()      # reaps what is left and scans the stderr
        if st.is_mounted(self.mnt):
            raise Problem("the dead mount is still there after -uz")

    def run_point(self, op, mode, delay):
        """Run op on a fresh copy of the template, SIGKILL at delay seconds
        (None: let it finish; the daemon is then unmounted cleanly).
        Returns a dict: corrupt (reasons), lost (ids), other (reasons),
        finished, duration, outcome."""
        spec = self.op_spec(op, mode)
        res = {"corrupt": [], "lost": set(), "other": [], "finished": False,
               "duration": None, "outcome": "?"}
        self.sctx.failed = []
        self.sctx.daemons = []      # every earlier one is stopped and reaped
        if st.is_mounted(self.mnt):
            raise Problem("%s is still mounted" % self.mnt)
        copy_tree(self.tmpl[mode]["dir"], self.point)
        is_mount = op.startswith("mount-")
        m = w = p = None
        wres = {"committed": [], "uncertain": [], "errors": []}
        rc, out, err = None, "", ""
        try:
            if is_mount:
                m = self.mount(spec["options"])
            if spec["writer"]:
                w = self.start_writer()
            t0 = time.monotonic()
            if spec["argv"]:
                p = subprocess.Popen(spec["argv"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
                self.children.append(p)
                try:
                    out, err = p.communicate(
                        timeout=STEP_TIMEOUT if delay is None else delay)
                    res["finished"] = True
                    res["duration"] = time.monotonic() - t0
                    rc = p.returncode
                except subprocess.TimeoutExpired:
                    if delay is None:
                        raise Problem("hang: %s did not finish within %ds"
                                      % (" ".join(spec["argv"]),
                                         STEP_TIMEOUT))
            elif delay is None:
                # mount-schedule: until the second automatic snapshot.
                deadline = t0 + 120
                while sum(s["kind"] == "auto" for s in self.listing()) < 2:
                    if time.monotonic() > deadline:
                        raise Problem("no second automatic snapshot within "
                                      "120s")
                    time.sleep(0.05)
                res["duration"] = time.monotonic() - t0
            else:
                time.sleep(delay)       # the kill point; waits for nothing
            if delay is None:
                if m is not None:
                    m.stop()            # a clean unmount
                    m = None
            else:
                if m is not None:
                    self.kill_daemon(m)
                    m = None
                elif p is not None and not res["finished"]:
                    p.kill()
                if p is not None and not res["finished"]:
                    try:
                        out, err = p.communicate(timeout=60)
                    except subprocess.TimeoutExpired:
                        raise Problem("hang: %s still runs 60s after the "
                                      "kill" % " ".join(spec["argv"]))
                    rc = p.returncode
            if w is not None:
                wres = self.stop_writer(w)
                w = None
        finally:
            for child in (p, w):
                if child is not None and child.poll() is None:
                    child.kill()
                    child.wait()
            if m is not None:
                self.kill_daemon(m)
            self.children = [c for c in self.children if c.poll() is None]
        res["rc"], res["out"], res["err"] = rc, out, err
        if wres["errors"]:
            res["other"].append("the writer got errors: "
                                + "; ".join(wres["errors"][:3]))

        # The next command recovers: a remount for the daemon (its staging
        # directory emptied at start), then the next snapctl command.
        if is_mount and delay is not None:
            try:
                m2 = self.mount([])
            except st.TestFailed as e:
                res["corrupt"].append("the remount after the kill failed: "
                                      + short(e, 600))
                m2 = None
            if m2 is not None:
                staging = os.path.join(self.store, "staging")
                left = os.listdir(staging) if os.path.isdir(staging) else []
                if left:
                    res["other"].append("the remount left files in "
                                        "staging: %s" % left)
                m2.stop()
        r = self.ctl("list", "--json")
        if r.returncode != 0:
            res["corrupt"].append("the next snapctl command (list) fails: "
                                  + short(r.stderr))
            res["other"] += self.sctx.failed
            return res
        snaps = json.loads(r.stdout)
        self.judge(op, mode, spec, snaps, wres, res)
        res["other"] += self.sctx.failed
        return res

    # -- the verdict ---------------------------------------------------------
    def judge(self, op, mode, spec, snaps, wres, res):
        """Fill res (corrupt, lost, outcome) from what the point left: the
        live database, the store and the writer's report (see the top)."""
        t = self.tmpl[mode]
        states = self.states[mode]
        names = {s["name"]: s["kind"] for s in snaps}
        corrupt = res["corrupt"]
        committed = set(wres["committed"])
        uncertain = set(wres["uncertain"])
        known = BASE_IDS | committed      # must not be lost
        may = known | uncertain           # may be present

        # The live database.
        try:
            ic = st.integrity(self.live, writable=True)
        except sqlite3.Error as e:
            ic = "cannot open: %s" % e
        if ic != "ok":
            corrupt.append("live integrity_check: " + short(ic))
        jm = st.journal_mode(self.live) if ic == "ok" else mode
        if jm != mode:
            corrupt.append("live database left %s mode (now %s)"
                           % (mode, jm))
        data = data_state(self.live)
        by_hash = {v: k for k, v in states.items()}
        state = by_hash.get(data, "unknown")
        if state not in spec["data"]:
            corrupt.append("live content is %s, neither %s"
                           % (state if state != "unknown" else
                              short(data, 120), " nor ".join(spec["data"])))
        try:
            live_ids = app_ids(self.live)
        except sqlite3.Error as e:
            corrupt.append("live app table unreadable: %s" % e)
            live_ids = set()

        # The store.
        if self.args.full_verify_all:
            r = self.ctl("verify", "--full")
        else:
            r = self.ctl("verify")
        if r.returncode != 0:
            corrupt.append("snapctl verify%s: %s" % (
                " --full" if self.args.full_verify_all else "",
                short(r.stdout + r.stderr, 600)))
        try:
            sic = st.integrity(os.path.join(self.store, "store.db"),
                               writable=True)
        except sqlite3.Error as e:
            sic = "cannot open: %s" % e
        if sic != "ok":
            corrupt.append("store.db integrity_check: " + short(sic))
        added = {n: k for n, k in names.items() if n not in t["names"]}
        removed = t["names"] - set(names)
        per_kind = {}
        for n, k in added.items():
            per_kind[k] = per_kind.get(k, 0) + 1
        for k, c in per_kind.items():
            if c > spec["adds"].get(k, 0):
                corrupt.append("%d new %s snapshot(s) (at most %d): %s"
                               % (c, k, spec["adds"].get(k, 0),
                                  sorted(n for n in added
                                         if added[n] == k)))
        if removed - spec["removes"]:
            corrupt.append("snapshots disappeared: %s"
                           % sorted(removed - spec["removes"]))
        safety_ids = None
        for n, k in sorted(added.items()):
            if not self.args.full_verify_all:
                r = self.ctl("verify", "--full", n)
                if r.returncode != 0:
                    corrupt.append("snapctl verify --full %s: %s"
                                   % (n, short(r.stdout + r.stderr, 400)))
            sdata, sids = self.export_state(n)
            want = spec["snap"].get(k)
            if sdata != states.get(want):
                corrupt.append("new %s snapshot %s holds %s, not %s"
                               % (k, n, by_hash.get(sdata, short(sdata, 80)),
                                  want))
            elif want == "O":
                if sids != self.other_ids:
                    corrupt.append("import %s holds app ids %s"
                                   % (n, ids_desc(sids)))
            else:
                bad = self.not_a_prefix(sids, known, may)
                if bad:
                    corrupt.append("new %s snapshot %s: %s" % (k, n, bad))
            if k == "pre-restore":
                safety_ids = sids

        # The writer's commits, against the state the live database is in.
        image = spec["image"]
        if image is not None and state == image:
            img_ids = set(range(1, 51)) if image == "A" else self.other_ids
            if safety_ids is None:
                corrupt.append("restored (%s) without a safety snapshot"
                               % image)
                safety_ids = set()
            s = max(safety_ids | {0})
            res["lost"] = known - live_ids - safety_ids
            extra = live_ids - img_ids - {i for i in may if i > s}
            if extra:
                corrupt.append("the restored database holds ids beyond the "
                               "image and the commits after the restore's "
                               "lock: %s" % ids_desc(extra))
        else:
            res["lost"] = known - live_ids
            extra = live_ids - may
            if extra:
                corrupt.append("the live database holds ids nobody "
                               "committed: %s" % ids_desc(extra))

        # An operation that finished before the kill shows its after state.
        missed = self.after_state(op, spec, state, per_kind, removed)
        if res["finished"] and op != "mount-edit" and res["rc"] != 0:
            res["other"].append("the operation failed uninterrupted: rc "
                                "%s: %s" % (res["rc"], short(res["err"],
                                                             400)))
        elif res["finished"] and missed:
            corrupt.append("finished (rc %s) but %s" % (res["rc"], missed))
        if not missed:
            res["outcome"] = "after"
        elif state == "P" and not added and not removed:
            res["outcome"] = "before"
        else:
            res["outcome"] = "between"

    @staticmethod
    def not_a_prefix(ids, known, may):
        """Why ids is not a consistent state of the app table (the
        template's ids plus a prefix of the writer's), or None."""
        if not BASE_IDS <= ids:
            return "missing template ids %s" % ids_desc(BASE_IDS - ids)
        if ids - may:
            return "ids nobody committed: %s" % ids_desc(ids - may)
        top = max(ids)
        gap = {i for i in known if i <= top} - ids
        if gap:
            return "holds id %d but not the earlier %s" % (top,
                                                          ids_desc(gap))
        return None

    @staticmethod
    def after_state(op, spec, state, per_kind, removed):
        """None when the store and the live database are exactly in the
        operation's after state; otherwise what differs."""
        if op == "mount-schedule":
            ok = per_kind.get("auto", 0) >= 1
            return None if ok else "no automatic snapshot was taken"
        got = (state, per_kind, removed)
        if op == "mount-edit":
            # Beside a writer the live database moves: the edit is merged
            # (a "before-merge" safety snapshot), or restored with its copy
            # stored as an import when no commit fell in the session.
            if got in (("PE", {"pre-restore": 1}, set()),
                       ("PE", {"import": 1, "pre-restore": 1}, set())):
                return None
            return "live is %s, added %s, removed %s" % (
                state, per_kind, sorted(removed))
        want = spec["after"] + (spec["removes"],)
        if got != want:
            return "live is %s, added %s, removed %s; the after state is " \
                "%s, added %s, removed %s" % (state, per_kind,
                                              sorted(removed), want[0],
                                              want[1], sorted(want[2]))
        return None

    # -- the plan ------------------------------------------------------------
    def plan(self):
        """[(op, mode, [delays or None])] with N split evenly; delays are
        filled in once the lane's duration is measured."""
        lanes = [(op, mode) for op in self.args.ops
                 for mode in self.args.modes]
        n = self.args.n
        per, extra = divmod(n, len(lanes))
        start = self.seed % len(lanes)
        counts = {}
        for i, lane in enumerate(lanes):
            counts[lane] = per + (1 if (i - start) % len(lanes) < extra
                                  else 0)
        return [(op, mode, counts[(op, mode)]) for op, mode in lanes
                if counts[(op, mode)]]

    def delays(self, op, mode, k, duration):
        rng = random.Random("%d/%s/%s" % (self.seed, op, mode))
        span = 1.2 * duration
        out = []
        for i in range(k):
            u = rng.random()
            out.append(0.0 if (i == 0 and k >= 4) else span * (i + u) / k)
        return out

    def repro(self, op, mode, delay):
        return ("tests/bench/crash_sweep.sh 1 --seed %d --db-mb %d --op %s "
                "--mode %s --delay %.4f" % (self.seed, self.args.db_mb, op,
                                            mode, delay))

    def measure(self, op, mode):
        """Run op once to the end (it must leave its after state); returns
        (duration or None when the run failed, its result)."""
        try:
            res = self.run_point(op, mode, None)
        except Problem as e:
            res = {"corrupt": [], "lost": set(), "duration": None,
                   "other": [str(e)]}
        bad = res["corrupt"] + res["other"]
        if res["lost"]:
            bad.append("LOST %d commits: %s" % (len(res["lost"]),
                                                ids_desc(res["lost"])))
        if bad or res["duration"] is None:
            print("FAIL %s/%s: the uninterrupted run: %s (seed %d)"
                  % (op, mode, "; ".join(bad) or "no duration", self.seed))
            sys.stdout.flush()
            return None, res
        return res["duration"], res

    def main(self):
        t_start = time.monotonic()
        print("# crash sweep: %d points, seed %d, %d MB databases, work "
              "directory %s" % (self.args.n, self.seed, self.args.db_mb,
                                self.work))
        sys.stdout.flush()
        self.build_data()
        npoints = ncorrupt = nlost = nother = 0
        summary = []
        measured = {}       # op -> duration (None: the run failed)
        for op, mode, k in self.plan():
            lane = "%s/%s" % (op, mode)
            if self.args.delay is not None:
                delays, duration = [self.args.delay], None
            else:
                if op not in measured:
                    # Corruption or a lost commit without a kill counts.
                    measured[op], res = self.measure(op, mode)
                    ncorrupt += bool(res["corrupt"])
                    nlost += len(res["lost"])
                    nother += bool(res["other"])
                duration = measured[op]
                if duration is None:
                    print("# %-24s %4d points skipped: the uninterrupted "
                          "run failed" % (lane, k))
                    continue
                delays = self.delays(op, mode, k, duration)
            stats = {"killed": 0, "finished": 0}
            outcomes = {}
            for delay in delays:
                npoints += 1
                try:
                    res = self.run_point(op, mode, delay)
                except Problem as e:
                    res = {"corrupt": [], "lost": set(), "finished": False,
                           "other": [str(e)], "outcome": "error"}
                except Exception:
                    res = {"corrupt": [], "lost": set(), "finished": False,
                           "other": ["harness error: " + short(
                               traceback.format_exc(), 1500)],
                           "outcome": "error"}
                stats["finished" if res["finished"] else "killed"] += 1
                outcomes[res["outcome"]] = outcomes.get(res["outcome"], 0) + 1
                what = []
                if res["corrupt"]:
                    ncorrupt += 1
                    what.append("CORRUPT: " + "; ".join(res["corrupt"]))
                if res["lost"]:
                    nlost += len(res["lost"])
                    what.append("LOST %d commits: %s"
                                % (len(res["lost"]), ids_desc(res["lost"])))
                if res["other"]:
                    nother += 1
                    what.append("PROBLEM: " + "; ".join(res["other"]))
                if what or self.args.verbose:
                    print("%s point %d: %s delay %.4fs (%s, %s): %s | again: %s"
                          % ("FAIL" if what else "ok", npoints, lane, delay,
                             "finished first" if res["finished"] else
                             "killed in flight", res["outcome"],
                             " | ".join(what) or "ok",
                             self.repro(op, mode, delay)))
                    sys.stdout.flush()
            line = ("# %-24s %4d points, D %.3fs: %d killed in flight, %d "
                    "finished first; outcomes %s"
                    % (lane, len(delays), duration or 0.0, stats["killed"],
                       stats["finished"],
                       ", ".join("%s %d" % kv for kv in
                                 sorted(outcomes.items()))))
            summary.append(line)
            print(line)
            print("# %d points so far, %d corrupt, %d lost commits, %.0fs"
                  % (npoints, ncorrupt, nlost, time.monotonic() - t_start))
            sys.stdout.flush()
        if len(summary) > 1:
            print("# lanes:")
            for line in summary:
                print(line)
        print("# seed %d, %d MB databases, %.0fs" % (
            self.seed, self.args.db_mb, time.monotonic() - t_start))
        if nother:
            print("# %d other problems (see the FAIL lines above)" % nother)
        print("%d points, %d corrupt, %d lost commits"
              % (npoints, ncorrupt, nlost))
        sys.stdout.flush()
        return 0 if ncorrupt == 0 and nlost == 0 and nother == 0 else 1

    def cleanup(self):
        for c in self.children:
            if c.poll() is None:
                c.kill()
                c.wait()
        for m in self.sctx.daemons:
            if m.proc is not None and m.proc.poll() is None:
                m.proc.kill()
                m.proc.wait()
        st.unmount(self.mnt)
        if st.is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-uz", self.mnt])
        if self.args.keep:
            print("# kept %s" % self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


def parse_args():
    ap = argparse.ArgumentParser(
        description="SIGKILL sweep over snapfs's operations (see the "
        "file's header).")
    ap.add_argument("n", type=int, help="number of kill points")
    ap.add_argument("--seed", type=int, default=None,
                    help="default: $SNAPFS_TEST_SEED, else random")
    ap.add_argument("--db-mb", type=int, default=24,
                    help="size of the generated databases (default 24)")
    ap.add_argument("--ops", default=",".join(CTL_OPS + MOUNT_OPS),
                    help="comma-separated operations (default: all)")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="journal modes: delete,wal")
    ap.add_argument("--op", help="run this operation only (with --mode, "
                    "--delay: one point again)")
    ap.add_argument("--mode", help="this journal mode only")
    ap.add_argument("--delay", type=float, default=None,
                    help="kill at exactly this delay (skips measuring)")
    ap.add_argument("--work", default=None,
                    help="where the work directory goes (default $TMPDIR)")
    ap.add_argument("--full-verify-all", action="store_true",
                    help="snapctl verify --full of the whole store after "
                    "every point (slower; see the header)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="one line per point, also for good ones")
    a = ap.parse_args()
    if a.seed is None:
        env = os.environ.get("SNAPFS_TEST_SEED")
        a.seed = int(env) if env else random.randrange(1 << 30)
    a.ops = [a.op] if a.op else a.ops.split(",")
    a.modes = [a.mode] if a.mode else a.modes.split(",")
    for o in a.ops:
        if o not in CTL_OPS + MOUNT_OPS:
            ap.error("unknown operation %s (one of %s)"
                     % (o, ", ".join(CTL_OPS + MOUNT_OPS)))
    for m in a.modes:
        if m not in MODES:
            ap.error("unknown journal mode %s (delete or wal)" % m)
    if a.n < 1:
        ap.error("N must be at least 1")
    if a.delay is not None and (len(a.ops) != 1 or len(a.modes) != 1):
        ap.error("--delay needs --op and --mode")
    if a.db_mb < 1:
        ap.error("--db-mb must be at least 1")
    return a


def main():
    args = parse_args()
    snapctl = os.environ.get("SNAPCTL", "")
    if not snapctl or not os.access(snapctl, os.X_OK):
        print("crash_sweep: $SNAPCTL is not set to an executable snapctl "
              "(%r); run tests/bench/crash_sweep.sh" % snapctl)
        return 2
    if any(o.startswith("mount-") for o in args.ops):
        snapfs = os.environ.get("SNAPFS", "")
        why = None
        if not snapfs or not os.access(snapfs, os.X_OK):
            why = "$SNAPFS is not set to an executable snapfs"
        elif os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
            why = "mounting needs root and /dev/fuse"
        elif not shutil.which("fusermount3"):
            why = "fusermount3 is not installed"
        if why:
            print("SKIP: %s (--ops %s runs the snapctl operations alone)"
                  % (why, ",".join(CTL_OPS)))
            return SKIP
    if args.work:
        os.makedirs(args.work, exist_ok=True)
    sweep = Sweep(args)

    def on_term(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        return sweep.main()
    except Problem as e:
        print("crash_sweep: %s" % e)
        return 1
    except KeyboardInterrupt:
        print("crash_sweep: interrupted")
        return 1
    finally:
        sweep.cleanup()


if __name__ == "__main__":
    sys.exit(main())
