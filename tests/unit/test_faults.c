/*
 * tests/unit/test_faults.c — every engine operation, failed at every fault
 * point: what the engine does when a disk fails (EIO), fills up (ENOSPC),
 * a call is interrupted (EINTR) or memory runs out.
 *
 * For each operation (snapshot, import, restore, table restore, delete,
 * prune, verify quick and full; the snapshot and the restores over a
 * rollback-mode and a WAL live database, the restore also across page
 * sizes into WAL and over a missing live file), each kind of call (read,
 * write, fsync, open, rename, alloc: fault.h) and each errno (EIO, ENOSPC,
 * EINTR; an allocation fails as NULL), for N = 1, 2, ... the operation
 * runs on a fresh copy of a small fixture with the Nth call of that kind
 * failing once, until a run completes without the fault having fired.
 * After each run, with faults off:
 *   - the result is 0, or a negative errno with a message; not -EBADMSG
 *     ("damaged", "corrupt") and not -EINVAL ("not a database") for an
 *     intact store and database, unless SQLite's read() failed with EIO,
 *     which SQLite itself reports as a damaged file (unixRead's
 *     SQLITE_IOERR_CORRUPTFS); no file descriptor left open;
 *   - the store opens, passes full verification (every snapshot's pages,
 *     hashes and image hash, integrity_check of every image the run made:
 *     the fixture's passed it once, and their bytes are proven unchanged),
 *     PRAGMA integrity_check of store.db, and its reference counts equal
 *     what the page maps say (tu_runs_check);
 *   - the live database reads (as the next SQLite connection sees it,
 *     hot journal rolled back) as exactly its old or its new content, a
 *     digest of schema and rows, in its own journal mode;
 *   - a success has its effect: the new snapshot holds what the live
 *     database held, the import holds the file, the restored database
 *     equals the snapshot and its safety snapshot the state before, the
 *     deleted and pruned snapshots are gone and the others are not;
 *   - a success after the engine's own fsync failed (EIO, ENOSPC) is a
 *     bug: what it wrote may not be on disk;
 *   - after a failure, the same operation, run again without faults,
 *     succeeds and has its effect: a fault never wedges the store (a
 *     stale restore.lock, a marker left behind).
 * The fixture's expectations come from one run without faults, which also
 * counts the calls of each kind.
 *
 * Cost.  An operation makes tens of system calls of each kind but
 * thousands of allocations (SQLite's), and a run with its checks costs
 * tens of milliseconds, so the full matrix (every errno at every N, every
 * allocation) takes hours.  By default a reduced one runs, about a minute:
 * every N of every kind but alloc once, the errno rotating with N (EIO,
 * ENOSPC, EINTR, EIO, ...), so every system-call fault point fails once,
 * and ALLOC_SAMPLES allocations per operation, evenly spaced (under
 * AddressSanitizer less: see SYSCALL_STEP).
 * SNAPFS_FAULT_FULL=1 runs the full matrix.  Each operation prints how
 * many fault runs it made and how many calls of each kind it makes (a TAP
 * comment).  The fixtures live on /dev/shm when it exists: fsync there
 * costs nothing (the faults do not depend on it).
 *
 * To repeat one failure: SNAPFS_FAULT_TEST=<test name pattern>
 * SNAPFS_FAULT_KIND=<read|write|fsync|open|rename|alloc> SNAPFS_FAULT_N=<N>
 * (with SNAPFS_FAULT_FULL=1 every errno, else the rotation's for that N).
 * SNAPFS_FAULT_KEEP_GOING=1 reports every run that went wrong ("# FAIL")
 * instead of stopping at the first; the test still fails.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"

/* The live database's content as a token: a digest, or these. */
#define LIVE_MISSING "missing"

/* A fixture: a live database and a store with four snapshots. */
typedef struct fixture {
	const char *name;
	const char *mode;       /* the live database's journal mode */
	int page_size;          /* its page size */
	int first_page_size;    /* its page size when s1 was taken */
	int missing;            /* 1: the live file is gone at the run */
	int built;
	char tpl[PATH_MAX];     /* pristine copy of the run directory */
	int64_t s[4];           /* s1 manual (state A), s2-s4 auto (B-D) */
	char digest_a[65];      /* s1's content */
	char digest_live[65];   /* the live database's (state E) */
	char digest_import[65]; /* import.db's (state F) */
} fixture;

/* One run's outcome, as the checks see it. */
typedef struct outcome {
	int e;                  /* the errno the fault carried */
	int rc;
	snap_err err;
	unsigned long fired;
	const char *where;
	int engine;
} outcome;

struct op;
typedef int (*op_run_fn)(const struct op *op, fixture *fx, snap_store *s,
			 snap_err *err);
/* Check a successful run's effect on the store; "" or what is wrong. */
typedef void (*op_effect_fn)(const struct op *op, fixture *fx,
			     snap_store *s, int64_t base, char *why,
			     size_t cap);

typedef struct op {
	const char *name;
	fixture *fx;
	op_run_fn run;
	op_effect_fn effect;
	int changes_live;       /* the live database's new state differs */
	/* from the reference run */
	char live_new[65];
	int64_t count_old, count_new;
	unsigned long calls[SNAP_SYS_KIND_COUNT];
	/* tallies */
	unsigned long points, failed, succeeded;
	unsigned long bad;             /* runs that went wrong */
} op;

static char root[PATH_MAX];     /* private directory of this run */
static char run_dir[PATH_MAX];  /* where every run happens */
static char live_path[PATH_MAX];
static char import_path[PATH_MAX];
static int full_matrix;
static int keep_going;          /* SNAPFS_FAULT_KEEP_GOING: report all */
static int only_kind = -1;      /* SNAPFS_FAULT_KIND, or all */
static unsigned long only_n;    /* SNAPFS_FAULT_N, or every N */

/* ------------------------------------------------------------------ */
/* files                                                               */

/* Copy the regular files of from (and of its subdirectories) to to. */
static void copy_tree(const char *from, const char *to)
{
	DIR *d = opendir(from);
	struct dirent *de;

	if (!d)
		fail_msg("opendir %s: %s", from, strerror(errno));
	if (mkdir(to, 0700) < 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", to, strerror(errno));
	while ((de = readdir(d))) {
		char a[PATH_MAX], b[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
		snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
		if (lstat(a, &st) < 0)
			fail_msg("lstat %s: %s", a, strerror(errno));
		if (S_ISDIR(st.st_mode)) {
			copy_tree(a, b);
		} else if (S_ISREG(st.st_mode)) {
			size_t len;
			uint8_t *buf = tu_read_file(a, &len);
			tu_write_file(b, buf, len);
			chmod(b, st.st_mode & 07777);
			free(buf);
		}
	}
	closedir(d);
}

/* Open file descriptors of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1;     /* the one opendir holds */
}

/* The directory of the live file at path, as the engine keeps it open
 * once per process (engine/anchor.c), so that counts leave it out. */
static void keep_live_dir(const char *path)
{
	char anchored[PATH_MAX + 32];

	if (snap_livedb_path(path, anchored, sizeof(anchored), NULL))
		fail_msg("cannot anchor %s", path);
}

/* ------------------------------------------------------------------ */
/* states                                                              */

/*
 * The live database as the next connection sees it (read-write, so a hot
 * journal is rolled back first), as a digest; LIVE_MISSING without one.
 */
static void live_digest(char out[65])
{
	sqlite3 *db = NULL;

	if (!tu_exists(live_path)) {
		snprintf(out, 65, LIVE_MISSING);
		return;
	}
	if (sqlite3_open_v2(live_path, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK)
		fail_msg("open %s: %s", live_path, sqlite3_errmsg(db));
	sqlite3_busy_timeout(db, 10000);
	tu_db_digest_conn(db, out);
	sqlite3_close(db);
}

/* A snapshot's content digest, read through the store VFS. */
static void snap_digest(snap_store *s, int64_t id, char out[65])
{
	sqlite3 *db = NULL;
	snap_err e;

	snap_err_clear(&e);
	if (snap_image_sqlite_open(s, id, &db, &e))
		fail_msg("open snapshot %lld: %s", (long long)id, e.msg);
	tu_db_digest_conn(db, out);
	sqlite3_close(db);
}

/* The newest snapshot (highest id). */
static snap_info newest(snap_store *s)
{
	snap_info *v = NULL, out;
	size_t n = 0, i, best = 0;
	snap_err e;

	if (snap_store_list(s, &v, &n, &e) || n == 0)
		fail_msg("no snapshots: %s", e.msg);
	for (i = 1; i < n; i++)
		if (v[i].id > v[best].id)
			best = i;
	out = v[best];
	free(v);
	return out;
}

static int snap_exists(snap_store *s, int64_t id)
{
	snap_info si;
	snap_err e;
	int rc = snap_store_get(s, id, &si, &e);

	if (rc && rc != -ENOENT)
		fail_msg("snapshot %lld: %s", (long long)id, e.msg);
	return rc == 0;
}

/* ------------------------------------------------------------------ */
/*
 * import.db: a WAL database whose last transactions are still in its
 * -wal (copied while a connection held them), state F.
 */
static void make_import(fixture *fx)
{
	char src[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
	sqlite3 *db;
	size_t len;
	uint8_t *buf;

	snprintf(src, sizeof(src), "%s/import-src.db", root);
	unlink(src);
	tu_db_create(src, "wal", 1024, 30);
	db = tu_open(src);
	tu_exec(db, "PRAGMA wal_autocheckpoint=0");
	tu_exec(db, "UPDATE t SET v = 'f' || v WHERE id %% 3 = 0");
	tu_db_insert(db, 31, 45);
	tu_db_digest_conn(db, fx->digest_import);
	buf = tu_read_file(src, &len);
	tu_write_file(import_path, buf, len);
	free(buf);
	snprintf(a, sizeof(a), "%s-wal", src);
	snprintf(b, sizeof(b), "%s-wal", import_path);
	buf = tu_read_file(a, &len);
	if (len == 0)
		fail_msg("import fixture: the -wal is empty");
	tu_write_file(b, buf, len);
	free(buf);
	sqlite3_close(db);
	unlink(src);
}

/*
 * Build fx in run_dir and keep a pristine copy: live states A (s1,
 * manual), B, C, D (s2-s4, auto), then E, the live database's content;
 * tables t (tu_db_create) and u.
 */
static void build(fixture *fx)
{
	snap_store *s = NULL;
	snap_err e;
	sqlite3 *db;

	tu_rmrf(run_dir);
	if (mkdir(run_dir, 0700) < 0)
		fail_msg("mkdir %s: %s", run_dir, strerror(errno));
	tu_db_create(live_path, "delete", fx->first_page_size, 60);
	db = tu_open(live_path);
	tu_exec(db, "CREATE TABLE u(k TEXT PRIMARY KEY, n INTEGER)");
	tu_exec(db, "INSERT INTO u VALUES('a', 1), ('b', 2), ('c', 3)");
	if (snap_store_open(live_path, NULL, SNAP_OPEN_CREATE, &s, &e))
		fail_msg("store: %s", e.msg);
	fx->s[0] = tu_snap_kind(s, SNAP_KIND_MANUAL, "a").id;
	if (fx->page_size != fx->first_page_size) {
		tu_exec(db, "PRAGMA page_size=%d", fx->page_size);
		tu_exec(db, "VACUUM");
	}
	tu_exec(db, "PRAGMA journal_mode=%s", fx->mode);
	tu_exec(db, "UPDATE t SET v = 'b' || v WHERE id <= 10");
	tu_exec(db, "DELETE FROM t WHERE id > 50");
	fx->s[1] = tu_snap_kind(s, SNAP_KIND_AUTO, NULL).id;
	tu_db_insert(db, 61, 80);
	tu_exec(db, "UPDATE u SET n = n + 10");
	fx->s[2] = tu_snap_kind(s, SNAP_KIND_AUTO, NULL).id;
	tu_exec(db, "UPDATE t SET pad = 'd' || pad WHERE id BETWEEN 20 AND 30");
	fx->s[3] = tu_snap_kind(s, SNAP_KIND_AUTO, NULL).id;
	tu_exec(db, "UPDATE t SET v = 'e' || v WHERE id BETWEEN 40 AND 45");
	tu_exec(db, "INSERT INTO u VALUES('e', 5)");
	snap_digest(s, fx->s[0], fx->digest_a);
	tu_db_digest_conn(db, fx->digest_live);
	if (snap_verify_store(s, 1, NULL, NULL, NULL, &e))
		fail_msg("the fixture fails verification: %s", e.msg);
	sqlite3_close(db);
	snap_store_close(s);
	make_import(fx);
	if (fx->missing) {
		unlink(live_path);
		snprintf(fx->digest_live, sizeof(fx->digest_live),
			 LIVE_MISSING);
	}
	snprintf(fx->tpl, sizeof(fx->tpl), "%s/tpl-%s", root, fx->name);
	tu_rmrf(fx->tpl);
	copy_tree(run_dir, fx->tpl);
	fx->built = 1;
}

/* A fresh run directory from the fixture's pristine copy. */
static void reset(fixture *fx)
{
	if (!fx->built)
		build(fx);
	tu_rmrf(run_dir);
	copy_tree(fx->tpl, run_dir);
}

static snap_store *open_store(void)
{
	snap_store *s = NULL;
	snap_err e;

	snap_err_clear(&e);
	if (snap_store_open(live_path, NULL, 0, &s, &e))
		fail_msg("the store does not open: %s", e.msg);
	snap_restore_recover(s); /* as snapctl and the daemon do */
	return s;
}

/* ------------------------------------------------------------------ */
/* operations                                                          */

static int run_snapshot(const op *o, fixture *fx, snap_store *s,
			snap_err *err)
{
	snap_create_opts opts = { .kind = SNAP_KIND_MANUAL, .label = "x" };

	(void)o;
	(void)fx;
	return snap_snapshot_take(s, &opts, NULL, err);
}

static int run_import(const op *o, fixture *fx, snap_store *s, snap_err *err)
{
	(void)o;
	(void)fx;
	return snap_snapshot_import(s, import_path, NULL, NULL, err);
}

static int run_restore(const op *o, fixture *fx, snap_store *s,
		       snap_err *err)
{
	(void)o;
	return snap_restore(s, fx->s[0], NULL, err);
}

static int run_table(const op *o, fixture *fx, snap_store *s, snap_err *err)
{
	(void)o;
	return snap_restore_table(s, fx->s[0], "t", NULL, err);
}

static int run_delete(const op *o, fixture *fx, snap_store *s, snap_err *err)
{
	(void)o;
	return snap_store_delete(s, fx->s[1], err);
}

static int run_prune(const op *o, fixture *fx, snap_store *s, snap_err *err)
{
	snap_keep_policy p = { .last = 1 };
	snap_keep_decision *d = NULL;
	size_t n = 0, pruned = 0;
	int rc;

	(void)o;
	(void)fx;
	rc = snap_retention_prune(s, &p, 0, &d, &n, &pruned, err);
	free(d);
	return rc;
}

static int run_verify(const op *o, fixture *fx, snap_store *s, snap_err *err)
{
	unsigned nbad = 0;

	(void)fx;
	return snap_verify_store(s, strstr(o->name, "full") ? 1 : 0, NULL,
				 NULL, &nbad, err);
}

/* The newest snapshot holds `want`, and the store one more snapshot. */
static void effect_new_snapshot(snap_store *s, int64_t base, const char *want,
				char *why, size_t cap)
{
	char got[65];
	snap_info si = newest(s);

	snap_digest(s, si.id, got);
	if (tu_count(s) != base + 1)
		snprintf(why, cap, "%lld snapshots, expected %lld",
			 (long long)tu_count(s), (long long)base + 1);
	else if (strcmp(got, want) != 0)
		snprintf(why, cap, "the new snapshot %s does not hold the "
			 "expected content", si.name);
}

static void effect_snapshot(const op *o, fixture *fx, snap_store *s,
			    int64_t base, char *why, size_t cap)
{
	(void)o;
	effect_new_snapshot(s, base, fx->digest_live, why, cap);
}

static void effect_import(const op *o, fixture *fx, snap_store *s,
			  int64_t base, char *why, size_t cap)
{
	(void)o;
	effect_new_snapshot(s, base, fx->digest_import, why, cap);
}

/* The safety snapshot holds the state before (none for a missing file). */
static void effect_restore(const op *o, fixture *fx, snap_store *s,
			   int64_t base, char *why, size_t cap)
{
	char got[65];
	snap_info si;

	(void)o;
	if (fx->missing) {
		if (tu_count(s) != base)
			snprintf(why, cap, "%lld snapshots, expected %lld",
				 (long long)tu_count(s), (long long)base);
		return;
	}
	si = newest(s);
	if (si.kind != SNAP_KIND_PRE_RESTORE) {
		snprintf(why, cap, "the newest snapshot %s is not the safety "
			 "snapshot", si.name);
		return;
	}
	snap_digest(s, si.id, got);
	if (strcmp(got, fx->digest_live) != 0)
		snprintf(why, cap, "the safety snapshot %s does not hold the "
			 "state before the restore", si.name);
}

static void effect_delete(const op *o, fixture *fx, snap_store *s,
			  int64_t base, char *why, size_t cap)
{
	(void)o;
	(void)base;
	if (snap_exists(s, fx->s[1]))
		snprintf(why, cap, "the deleted snapshot is still there");
	else if (!snap_exists(s, fx->s[0]) || !snap_exists(s, fx->s[2]))
		snprintf(why, cap, "a snapshot that was not deleted is gone");
}

static void effect_prune(const op *o, fixture *fx, snap_store *s,
			 int64_t base, char *why, size_t cap)
{
	(void)o;
	(void)base;
	if (snap_exists(s, fx->s[1]) || snap_exists(s, fx->s[2]))
		snprintf(why, cap, "a pruned snapshot is still there");
	else if (!snap_exists(s, fx->s[0]) || !snap_exists(s, fx->s[3]))
		snprintf(why, cap, "a snapshot the rules keep is gone");
}

static void effect_none(const op *o, fixture *fx, snap_store *s,
			int64_t base, char *why, size_t cap)
{
	(void)o;
	(void)fx;
	if (tu_count(s) != base)
		snprintf(why, cap, "%lld snapshots, expected %lld",
			 (long long)tu_count(s), (long long)base);
}

/* ------------------------------------------------------------------ */
/* one run                                                             */

/* Run op once on a fresh fixture, with whatever fault is armed by arm(). */
static outcome run_once(op *o, snap_sys_kind kind, int e, unsigned long n,
			int count)
{
	outcome out;
	snap_store *s;
	int fds;

	memset(&out, 0, sizeof(out));
	out.e = e;
	reset(o->fx);
	/* Counted around the store: SQLite defers closing a connection's
	 * descriptor while another connection to the file holds a lock
	 * (WAL mode: the catalog connection, always).  The live file's
	 * directory is kept open by the engine for the process's life
	 * (engine/anchor.c): kept before counting. */
	keep_live_dir(live_path);
	fds = count_fds();
	s = open_store();
	snap_err_clear(&out.err);
	if (count)
		fault_count();
	else
		fault_arm(kind, e, n, 0);
	out.rc = o->run(o, o->fx, s, &out.err);
	fault_disarm();
	out.fired = count ? 0 : fault_fired();
	out.where = fault_where();
	out.engine = fault_fired_engine();
	snap_store_close(s);
	if (count_fds() != fds)
		fail_msg("%s: %d file descriptors open after the operation, %d "
			 "before (rc %d: %s)", o->name, count_fds(), fds,
			 out.rc, out.err.msg);
	return out;
}

/* Open the store, or say why not. */
static snap_store *try_store(char *msg, size_t cap)
{
	snap_store *s = NULL;
	snap_err e;

	snap_err_clear(&e);
	if (snap_store_open(live_path, NULL, 0, &s, &e))
		snprintf(msg, cap, "the store does not open: %s", e.msg);
	else
		snap_restore_recover(s); /* as snapctl and the daemon do */
	return s;
}

/*
 * Full verification of the store: every snapshot's pages, hashes and image
 * hash, and integrity_check of every image the fixture did not have (the
 * fixture's passed it when it was built, and the quick pass proves their
 * bytes are still those).
 */
static int verify_full(snap_store *s, const fixture *fx, snap_err *e)
{
	snap_info *v = NULL;
	size_t n = 0, i;
	unsigned nbad = 0;
	int rc = snap_verify_store(s, 0, NULL, NULL, &nbad, e);

	if (!rc)
		rc = snap_store_list(s, &v, &n, e);
	for (i = 0; !rc && i < n; i++)
		if (v[i].id > fx->s[3])
			rc = snap_verify_snapshot(s, v[i].id, 1, NULL, NULL, e);
	free(v);
	return rc;
}

/* Record what is wrong and leave check_after. */
#define BAD(...) \
	do { \
		snprintf(msg, cap, __VA_ARGS__); \
		goto out; \
	} while (0)

/*
 * Everything that must hold after a run (see the top), with faults off:
 * 0, or 1 with what is wrong in msg.
 */
static int check_after(op *o, const outcome *r, char *msg, size_t cap)
{
	fixture *fx = o->fx;
	char live[65], why[512] = "", store_db[PATH_MAX], marker[PATH_MAX];
	snap_store *s = NULL;
	snap_err e;
	unsigned nbad = 0;
	int64_t count, lo, hi;
	char *mode;
	int rc;

	msg[0] = '\0';
	if (r->rc > 0 || (r->rc < 0 && !r->err.msg[0]))
		BAD("returned %d without a message", r->rc);
	/* SQLite itself reads EIO from read() as a damaged file
	 * (SQLITE_IOERR_CORRUPTFS, reported as SQLITE_CORRUPT). */
	if ((r->rc == -EBADMSG || r->rc == -EINVAL) &&
	    !(r->e == EIO && !r->engine && strstr(r->where, "read")))
		BAD("%s (%d) for an intact store and database: %s",
		    strerror(-r->rc), r->rc, r->err.msg);
	if (r->rc == 0 && r->fired && r->engine && r->e != EINTR &&
	    strstr(r->where, "fsync"))
		BAD("succeeded after the %s failed", r->where);

	if (!(s = try_store(msg, cap)))
		goto out;
	snap_err_clear(&e);
	if (verify_full(s, fx, &e))
		BAD("the store fails verification afterwards (rc %d: %s): %s",
		    r->rc, r->err.msg, e.msg);
	snprintf(store_db, sizeof(store_db), "%s", snap_store_file(s));
	if (tu_runs_check(s, why, sizeof(why)))
		BAD("the reference counts are wrong afterwards (rc %d: %s): "
		    "%s", r->rc, r->err.msg, why);
	count = tu_count(s);
	live_digest(live);
	if (strcmp(live, fx->digest_live) && strcmp(live, o->live_new))
		BAD("the live database is neither its old nor its new state "
		    "(rc %d: %s)", r->rc, r->err.msg);
	if (strcmp(live, LIVE_MISSING) != 0) {
		mode = tu_db_journal_mode(live_path);
		rc = strcmp(mode, fx->mode);
		snprintf(why, sizeof(why), "%s", mode);
		free(mode);
		if (rc)
			BAD("the live database is in %s mode, it was in %s "
			    "(rc %d: %s)", why, fx->mode, r->rc, r->err.msg);
	}
	if (r->rc == 0) {
		if (strcmp(live, o->live_new) != 0)
			BAD("succeeded, but the live database does not hold "
			    "the result");
		if (count != o->count_new)
			BAD("succeeded with %lld snapshots, expected %lld",
			    (long long)count, (long long)o->count_new);
		why[0] = '\0';
		o->effect(o, fx, s, o->count_old, why, sizeof(why));
		if (why[0])
			BAD("succeeded, but %s", why);
	} else {
		lo = o->count_old < o->count_new ? o->count_old : o->count_new;
		hi = o->count_old < o->count_new ? o->count_new : o->count_old;
		if (count < lo || count > hi)
			BAD("failed (%s), leaving %lld snapshots, not between "
			    "%lld and %lld", r->err.msg, (long long)count,
			    (long long)lo, (long long)hi);
		/* Not wedged: the same operation succeeds now. */
		snap_err_clear(&e);
		rc = o->run(o, fx, s, &e);
		if (rc)
			BAD("failed (%s), and then failed again without a "
			    "fault: %d %s", r->err.msg, rc, e.msg);
		snap_store_close(s);
		s = NULL;
		live_digest(live);
		if (strcmp(live, o->live_new) != 0)
			BAD("after the retry the live database does not hold "
			    "the result");
		if (!(s = try_store(msg, cap)))
			goto out;
		if (snap_verify_store(s, 0, NULL, NULL, &nbad, &e))
			BAD("the store fails verification after the retry: %s",
			    e.msg);
	}
	if (!tu_db_integrity_ok(store_db))
		BAD("store.db fails integrity_check");
	snprintf(marker, sizeof(marker), "%s.snapfs/live-was-wal", live_path);
	if (tu_exists(marker))
		BAD("a restore marker was left behind");
out:
	if (s)
		snap_store_close(s);
	return msg[0] != '\0';
}

/* ------------------------------------------------------------------ */
/* the sweep                                                           */

static const int errnos[] = { EIO, ENOSPC, EINTR };
/*
 * The reduced matrix: every SYSCALL_STEP-th system-call fault point, and
 * ALLOC_SAMPLES allocations per operation.  Under AddressSanitizer a run
 * costs ten times as much (fresh shadow memory, threads): it samples every
 * third point, which still takes every error path the engine has (the
 * points between fail inside the same SQLite call), while the plain build
 * fails every point.
 */
#ifdef __SANITIZE_ADDRESS__
#define SYSCALL_STEP 3
#define ALLOC_SAMPLES 20
#else
#define SYSCALL_STEP 1
#define ALLOC_SAMPLES 60
#endif
#define N_ERRNOS (sizeof(errnos) / sizeof(errnos[0]))

static const char *errno_name(int e)
{
	return e == EIO ? "EIO" : e == ENOSPC ? "ENOSPC" : e == EINTR ?
	       "EINTR" : e == ENOMEM ? "ENOMEM" : "?";
}

/* A run went wrong: fail, or count it (keep going). */
static void bad(op *o, const char *what, const char *msg)
{
	if (!keep_going)
		fail_msg("%s: %s", what, msg);
	printf("# FAIL %s: %s\n", what, msg);
	fflush(stdout);
	o->bad++;
}

/* The reference run: counts, and the new state to expect. */
static void reference(op *o)
{
	outcome r;
	snap_store *s;

	reset(o->fx);
	s = open_store();
	o->count_old = tu_count(s);
	snap_store_close(s);
	r = run_once(o, 0, 0, 0, 1);
	for (int k = 0; k < SNAP_SYS_KIND_COUNT; k++)
		o->calls[k] = fault_calls((snap_sys_kind)k);
	if (r.rc)
		fail_msg("%s: fails without a fault: %d %s", o->name, r.rc,
			 r.err.msg);
	s = open_store();
	o->count_new = tu_count(s);
	snap_store_close(s);
	live_digest(o->live_new);
	if (o->run == run_restore && strcmp(o->live_new, o->fx->digest_a))
		fail_msg("%s: the reference run did not restore snapshot a",
			 o->name);
	if (o->changes_live == !strcmp(o->live_new, o->fx->digest_live))
		fail_msg("%s: the reference run %s the live database", o->name,
			 o->changes_live ? "did not change" : "changed");
}

/* Every fault point of one operation (see the top for the matrix). */
static void sweep(op *o)
{
	char what[256], msg[2048];

	tu_watchdog(120, o->name);
	reference(o);
	for (int k = 0; k < SNAP_SYS_KIND_COUNT; k++) {
		snap_sys_kind kind = (snap_sys_kind)k;
		int alloc = kind == SNAP_SYS_ALLOC;
		unsigned long cap = 2 * o->calls[k] + 64, n, idx, step = 1;

		if (only_kind >= 0 && k != only_kind)
			continue;
		/* The reduced matrix samples allocations evenly. */
		if (!full_matrix && !only_n)
			step = alloc ? o->calls[k] / ALLOC_SAMPLES + 1 :
			       SYSCALL_STEP;
		for (idx = 0, n = only_n ? only_n : 1;; idx++, n += step) {
			unsigned fired = 0;
			size_t i0 = 0, i1 = N_ERRNOS;

			if (alloc) {
				i1 = 1;
			} else if (!full_matrix) {
				i0 = (idx + (unsigned long)k) % N_ERRNOS;
				i1 = i0 + 1;
			}
			if (n > cap)
				fail_msg("%s: %s faults still fire at call %lu; "
					 "the reference run made %lu", o->name,
					 fault_kind_name(kind), n, o->calls[k]);
			for (size_t i = i0; i < i1; i++) {
				int e = alloc ? ENOMEM : errnos[i];
				outcome r;

				tu_watchdog(120, o->name);
				r = run_once(o, kind, e, n, 0);
				snprintf(what, sizeof(what), "%s with %s call "
					 "%lu failing with %s (%s)", o->name,
					 fault_kind_name(kind), n, errno_name(e),
					 r.fired ? r.where : "did not fire");
				if (!r.fired && r.rc)
					fail_msg("%s: failed without a fault: "
						 "%d %s", what, r.rc, r.err.msg);
				if (check_after(o, &r, msg, sizeof(msg)))
					bad(o, what, msg);
				fired += r.fired > 0;
				o->points += r.fired > 0;
				if (r.fired && r.rc)
					o->failed++;
				else if (r.fired)
					o->succeeded++;
			}
			if (!fired || only_n)
				break;
		}
	}
	printf("# %s: %lu fault runs (calls: read %lu, write %lu, fsync %lu, "
	       "open %lu, rename %lu, alloc %lu), %lu failed cleanly, %lu "
	       "succeeded\n", o->name, o->points, o->calls[SNAP_SYS_READ],
	       o->calls[SNAP_SYS_WRITE], o->calls[SNAP_SYS_FSYNC],
	       o->calls[SNAP_SYS_OPEN], o->calls[SNAP_SYS_RENAME],
	       o->calls[SNAP_SYS_ALLOC], o->failed, o->succeeded);
	fflush(stdout);
	if (o->bad)
		fail_msg("%s: %lu runs went wrong (above)", o->name, o->bad);
	tu_watchdog(0, NULL);
}

/* ------------------------------------------------------------------ */
/* fixtures and operations                                             */

static fixture fx_rollback = { .name = "rollback", .mode = "delete",
			       .page_size = 1024, .first_page_size = 1024 };
static fixture fx_wal = { .name = "wal", .mode = "wal", .page_size = 1024,
			  .first_page_size = 1024 };
static fixture fx_wal_ps = { .name = "wal-pagesize", .mode = "wal",
			     .page_size = 1024, .first_page_size = 2048 };
static fixture fx_missing = { .name = "missing", .mode = "delete",
			      .page_size = 1024, .first_page_size = 1024,
			      .missing = 1 };

#define OP(fn, fx_, run_, effect_, changes) \
	static void fn(void **state) \
	{ \
		static op o = { .name = #fn, .fx = &(fx_), .run = (run_), \
				.effect = (effect_), \
				.changes_live = (changes) }; \
		(void)state; \
		sweep(&o); \
	}

OP(test_snapshot_of_a_rollback_database, fx_rollback, run_snapshot,
   effect_snapshot, 0)
OP(test_snapshot_of_a_wal_database, fx_wal, run_snapshot, effect_snapshot, 0)
OP(test_import, fx_rollback, run_import, effect_import, 0)
OP(test_restore_into_a_rollback_database, fx_rollback, run_restore,
   effect_restore, 1)
OP(test_restore_into_a_wal_database, fx_wal, run_restore, effect_restore, 1)
OP(test_restore_into_a_wal_database_of_another_page_size, fx_wal_ps,
   run_restore, effect_restore, 1)
OP(test_restore_over_a_missing_live_file, fx_missing, run_restore,
   effect_restore, 1)
OP(test_table_restore_into_a_rollback_database, fx_rollback, run_table,
   effect_restore, 1)
OP(test_table_restore_into_a_wal_database, fx_wal, run_table,
   effect_restore, 1)
OP(test_delete, fx_rollback, run_delete, effect_delete, 0)
OP(test_prune, fx_rollback, run_prune, effect_prune, 0)
OP(test_verify_quick, fx_rollback, run_verify, effect_none, 0)
OP(test_verify_full, fx_rollback, run_verify, effect_none, 0)

/* The fault point without a system call fails as armed, and only then. */
static void test_the_fault_point_fails_only_when_armed(void **state)
{
	(void)state;
	assert_int_equal(snap_sys_point(SNAP_SYS_WRITE, "test"), 0);
	fault_arm(SNAP_SYS_WRITE, EIO, 2, 0);
	assert_int_equal(snap_sys_point(SNAP_SYS_WRITE, "test"), 0);
	assert_int_equal(snap_sys_point(SNAP_SYS_READ, "test"), 0);
	assert_int_equal(snap_sys_point(SNAP_SYS_WRITE, "test"), -EIO);
	assert_int_equal(snap_sys_point(SNAP_SYS_WRITE, "test"), 0);
	fault_disarm();
	assert_int_equal(fault_fired(), 1);
}

/* The engine retries an interrupted call; a real error comes back. */
static void test_the_engine_retries_eintr(void **state)
{
	char path[PATH_MAX];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/eintr", root);
	fault_arm(SNAP_SYS_OPEN, EINTR, 1, 0);
	int fd = snap_sys_open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	fault_disarm();
	assert_true(fd >= 0);
	assert_int_equal(fault_fired(), 1);
	snap_sys_close(fd);
	fault_arm(SNAP_SYS_OPEN, EIO, 1, 0);
	assert_int_equal(snap_sys_stat(path, &st), -1);
	assert_int_equal(errno, EIO);
	fault_disarm();
	unlink(path);
}

/*
 * An export writes on its own writer thread: a write that fails there
 * (the second 1 MiB, and every one after) fails the export naming the
 * file and leaves no file behind; the next export, with nothing armed,
 * writes the snapshot's image; no descriptor is left open.
 */
static void test_export_with_a_failing_write(void **state)
{
	char dir[PATH_MAX], db_path[PATH_MAX], out[PATH_MAX];
	snap_store *s = NULL;
	snap_info si;
	snap_err e;
	uint8_t sha[32];
	int fds, rc;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/export", root);
	snprintf(db_path, sizeof(db_path), "%s/live.db", dir);
	snprintf(out, sizeof(out), "%s/out.db", dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	tu_db_create(db_path, "delete", 4096, 20000);
	/* Counted around the store (see run_once). */
	keep_live_dir(db_path);
	fds = count_fds();
	snap_err_clear(&e);
	assert_int_equal(snap_store_open(db_path, NULL, SNAP_OPEN_CREATE, &s,
					 &e), 0);
	si = tu_snap(s, "x");
	assert_true(si.image_size > 2u << 20);
	fault_arm(SNAP_SYS_WRITE, EIO, 2, 1);
	rc = snap_image_export(s, si.id, out, &e);
	fault_disarm();
	assert_int_equal(rc, -EIO);
	assert_true(fault_fired() >= 1);
	if (!strstr(e.msg, "cannot write") || !strstr(e.msg, "out.db"))
		fail_msg("the error does not name the write: %s", e.msg);
	assert_false(tu_exists(out));
	{
		DIR *d = opendir(dir);
		struct dirent *de;

		assert_non_null(d);
		while ((de = readdir(d)) != NULL)
			if (strstr(de->d_name, "snapfs-tmp"))
				fail_msg("%s left behind", de->d_name);
		closedir(d);
	}
	snap_err_clear(&e);
	assert_int_equal(snap_image_export(s, si.id, out, &e), 0);
	tu_sha256_file(out, sha);
	assert_memory_equal(sha, si.sha256, 32);
	snap_store_close(s);
	assert_int_equal(count_fds(), fds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_fault_point_fails_only_when_armed),
		cmocka_unit_test(test_the_engine_retries_eintr),
		cmocka_unit_test(test_export_with_a_failing_write),
		cmocka_unit_test(test_snapshot_of_a_rollback_database),
		cmocka_unit_test(test_snapshot_of_a_wal_database),
		cmocka_unit_test(test_import),
		cmocka_unit_test(test_restore_into_a_rollback_database),
		cmocka_unit_test(test_restore_into_a_wal_database),
		cmocka_unit_test(test_restore_into_a_wal_database_of_another_page_size),
		cmocka_unit_test(test_restore_over_a_missing_live_file),
		cmocka_unit_test(test_table_restore_into_a_rollback_database),
		cmocka_unit_test(test_table_restore_into_a_wal_database),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_prune),
		cmocka_unit_test(test_verify_quick),
		cmocka_unit_test(test_verify_full),
	};
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	int rc;

	/* Before anything initializes SQLite. */
	fault_install();
	/* Thousands of runs open connections with 64 KiB store pages: keep
	 * freed memory in the process instead of faulting it in afresh. */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	full_matrix = getenv("SNAPFS_FAULT_FULL") &&
		      strcmp(getenv("SNAPFS_FAULT_FULL"), "0") != 0;
	/* To repeat one failure: the test, the kind, the call. */
	if (getenv("SNAPFS_FAULT_TEST"))
		cmocka_set_test_filter(getenv("SNAPFS_FAULT_TEST"));
	for (int k = 0; k < SNAP_SYS_KIND_COUNT && getenv("SNAPFS_FAULT_KIND");
	     k++)
		if (strcmp(getenv("SNAPFS_FAULT_KIND"),
			   fault_kind_name((snap_sys_kind)k)) == 0)
			only_kind = k;
	if (getenv("SNAPFS_FAULT_N"))
		only_n = strtoul(getenv("SNAPFS_FAULT_N"), NULL, 10);
	keep_going = getenv("SNAPFS_FAULT_KEEP_GOING") != NULL;
	snprintf(root, sizeof(root), "%s/snapfs-faults-XXXXXX", base);
	if (!mkdtemp(root)) {
		perror(root);
		return 1;
	}
	snprintf(run_dir, sizeof(run_dir), "%s/run", root);
	snprintf(live_path, sizeof(live_path), "%s/live.db", run_dir);
	snprintf(import_path, sizeof(import_path), "%s/import.db", run_dir);
	umask(022);
	printf("# fault matrix: %s (SNAPFS_FAULT_FULL=1 for every errno at "
	       "every fault point)\n", full_matrix ? "full" : "reduced");
	rc = cmocka_run_group_tests_name("faults", tests, NULL, NULL);
	tu_rmrf(root);
	return rc;
}
