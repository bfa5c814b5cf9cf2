/*
 * engine/restore.c — verified restore; the steps are in restore.h.
 *
 * The copy is one sqlite3_backup_step(-1) from the snapshot (opened through
 * the store VFS) into a connection on the live database: SQLite takes the
 * locks, writes a rollback journal or WAL frames, and commits atomically, so
 * other connections see the old or the new state and a crash leaves a hot
 * journal SQLite rolls back.  A busy handler waits for readers in rollback
 * mode (engine/PITFALLS.md 11).  The destination keeps its journal mode:
 * SQLite sets the WAL version bytes again after a backup into a WAL database.
 * A WAL database whose page size differs from the image's cannot be a backup
 * destination (engine/PITFALLS.md 10): it is switched to rollback mode,
 * restored, and switched back, which SQLite allows only with no other
 * connection open; otherwise the restore is refused before anything changed.
 * A restore killed in between leaves the database intact but in rollback mode;
 * a marker in the store makes the next snapfs command that opens the store
 * for writing switch it back (recover.c).
 *
 * Verification of the result reads the live database back through SQLite,
 * on the connection that made the copy (a backup into a compare-mode
 * capture), and compares every page with the image's stored hashes, page 1
 * without the counters SQLite maintains.  The image itself passed
 * integrity_check in step 1, so equal pages mean an intact database; a
 * separate integrity_check of the live file would only repeat it.  When
 * another process committed between the copy and the read-back (the
 * pager's data version moved), page equality cannot be expected and those
 * commits must not be rolled back: the database gets an integrity_check
 * instead, and the result says so (verified_pages = 0).  A new file (live
 * file missing or not a database) is verified before it is renamed in.
 *
 * The skeleton (snap_restore_run) is the same for a whole image and one
 * table (tablerestore.c gives its own lock and copy steps): the restore
 * lock; the source's verification started on a thread of its own; the
 * live database's write lock; the safety snapshot under it; the
 * precondition; the copy, whose commit waits for the verification (the
 * backup's last step, or before a table's copy), so a source that fails
 * it leaves the copy's transaction rolled back and nothing changed; the
 * check; on a failure after that, the rollback to the safety snapshot;
 * the event.  A copy into a new file, and a switch out of WAL mode, wait
 * for the verification first.  Fault points (sys.h) before the copy and
 * before the check let tests fail either.
 *
 * Restore from a file (what the file is, before anything is copied) is in
 * restore_file.c, crash recovery in recover.c, the connections to the live
 * database and the backup steps in livedb.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "capture_vfs.h"
#include "events.h"
#include "image.h"
#include "integrity.h"
#include "livedb.h"
#include "recover.h"
#include "restore.h"
#include "snapshot_int.h"
#include "store_int.h"
#include "sys.h"
#include "verify.h"


/* A restore's progress over its three passes of the image's pages:
 * verification, copy, check (snap_restore_opts.progress). */
typedef struct restore_progress {
	snap_progress_fn fn;      /* NULL: nobody asked */
	void *ctx;
	uint64_t pages;           /* the image's pages */
	uint64_t base;            /* pages of the passes before this one */
} restore_progress;

/* Tell the caller: `done` pages of the current pass. */
static void progress_pass(void *ctx, uint64_t done, uint64_t total)
{
	restore_progress *p = ctx;

	(void)total;
	p->fn(p->ctx, p->base + (done < p->pages ? done : p->pages),
	      3 * p->pages);
}

/* Pass k (0 verification, 1 copy, 2 check) starts: how its backup steps
 * report to p (how->fn NULL when no progress is wanted). */
static snap_livedb_steps *progress_at(restore_progress *p, unsigned k,
				      snap_livedb_steps *how)
{
	memset(how, 0, sizeof(*how));
	if (!p || !p->fn)
		return how;
	p->base = k * p->pages;
	progress_pass(p, 0, 0);
	how->fn = progress_pass;
	how->ctx = p;
	return how;
}

/*
 * The source's verification (step 1: pages, hashes, the image's SHA-256,
 * quick_check) runs on a thread of its own beside the copy, so that the
 * copy's I/O and the verification's decompression and hashing use both
 * cores.  The copy commits only after it passed (verify_gate): a source
 * that fails leaves the copy's transaction rolled back, nothing changed.
 */
typedef struct verify_job {
	snap_store *s;
	int64_t id;
	pthread_t thread;
	int started;              /* the thread runs (else: ran inline) */
	int done;                 /* rc and err are final */
	int rc;
	snap_err err;
} verify_job;

static void *verify_main(void *arg)
{
	verify_job *j = arg;

	j->rc = snap_verify_snapshot(j->s, j->id, SNAP_VERIFY_STRUCTURE, NULL,
				     NULL, &j->err);
	return NULL;
}

/* Start the verification of snapshot id (inline when no thread can be
 * made). */
static void verify_start(verify_job *j, snap_store *s, int64_t id)
{
	memset(j, 0, sizeof(*j));
	j->s = s;
	j->id = id;
	snap_err_clear(&j->err);
	if (pthread_create(&j->thread, NULL, verify_main, j) == 0) {
		j->started = 1;
		return;
	}
	verify_main(j);
	j->done = 1;
}

/* Wait for the verification; its result (err filled on failure).  NULL j:
 * nothing to wait for. */
static int verify_wait(verify_job *j, snap_err *err)
{
	if (!j)
		return 0;
	if (!j->done) {
		pthread_join(j->thread, NULL);
		j->done = 1;
	}
	if (j->rc && err)
		*err = j->err;
	return j->rc;
}

/* The gate before a copy commits (snap_livedb_steps.gate). */
static int verify_gate(void *ctx, snap_err *err)
{
	return verify_wait(ctx, err);
}

static int verify_conn(snap_store *s, int64_t id, const snap_info *si,
		       sqlite3 *db, const char *what, int *proven,
		       restore_progress *prog, snap_err *err);


/* What a copy into the live database takes care of around the copy. */
typedef struct copy_plan {
	const snap_create_opts *safety;   /* take one (NULL: a rollback) */
	snap_restore_result *res;         /* where the safety goes */
	const snap_restore_opts *opts;    /* precondition, may be NULL */
	const char *what;                 /* "restore", "restore of table t" */
	restore_progress *prog;           /* may be NULL */
	verify_job *verify;               /* the source's verification, still
					     running (NULL: done) */
	int wait_before_copy;             /* cp commits without a gate: wait
					     for the verification first */
	int wal;                          /* the live database's mode */
	int copied;                       /* set once the copy started */
	int refused;                      /* the precondition said no */
} copy_plan;

/* Take the safety snapshot into plan->res: through the locked connection
 * `locked` (rollback mode), or through a connection of its own (WAL). */
static int take_safety(snap_store *s, copy_plan *plan, sqlite3 *locked,
		       snap_err *err)
{
	int rc = locked ?
		 snap_snapshot_take_locked(s, locked, plan->safety,
					   &plan->res->safety, err) :
		 snap_snapshot_take(s, plan->safety, &plan->res->safety, err);

	if (rc) {
		snap_err_prefix(err, "%s refused: cannot take the safety "
				"snapshot of %s", plan->what, s->db_path);
		return rc;
	}
	plan->res->have_safety = 1;
	return 0;
}

/* A safety snapshot the restore did not use goes again. */
static void drop_safety(snap_store *s, copy_plan *plan)
{
	snap_err ignore;

	if (!plan->res->have_safety)
		return;
	snap_store_delete(s, plan->res->safety.id, &ignore);
	plan->res->have_safety = 0;
}

/* A fault point of the skeleton (sys.h): tests fail a copy or its check
 * there, and learn that the step was reached. */
static int restore_point(snap_sys_kind kind, const char *step, snap_err *err)
{
	int rc = snap_sys_point(kind, step);

	return rc ? snap_err_set(err, rc, "%s: %s", step, strerror(-rc)) : 0;
}

/* The whole image as a snap_restore_copy: one sqlite3_backup from the
 * snapshot (through the store VFS), read back page by page afterwards. */
typedef struct image_copy {
	snap_store *s;
	int64_t id;
	const snap_info *si;
	restore_progress *prog;
	verify_job *verify;       /* waited for before the commit */
	sqlite3 *src;
	sqlite3_backup *bk;
} image_copy;

/* Open the source and take the write lock: a backup step of 0 pages. */
static int image_lock(void *ctx, sqlite3 *live, const snap_info *si,
		      snap_err *err)
{
	image_copy *ic = ctx;
	int rc = snap_image_sqlite_open(ic->s, ic->id, &ic->src, err);

	(void)si;
	if (!rc)
		rc = snap_livedb_backup_begin(live, ic->src, ic->s->db_path,
					      &ic->bk, err);
	return rc;
}

/* Copy every page and commit. */
static int image_copy_rest(void *ctx, sqlite3 *live, snap_err *err)
{
	image_copy *ic = ctx;
	sqlite3_backup *bk = ic->bk;
	snap_livedb_steps how;

	(void)live;
	ic->bk = NULL;
	progress_at(ic->prog, 1, &how);
	if (ic->verify) {
		how.gate = verify_gate;
		how.gate_ctx = ic->verify;
	}
	return snap_livedb_backup_steps(bk, ic->s->db_path, &how, err);
}

/* Read the result back and compare it with the image (verify_conn). */
static int image_check(void *ctx, sqlite3 *live, int *proven, snap_err *err)
{
	image_copy *ic = ctx;

	sqlite3_close(ic->src);
	ic->src = NULL;
	return verify_conn(ic->s, ic->id, ic->si, live, ic->s->db_path,
			   proven, ic->prog, err);
}

/* Finish a backup that never ran, close the source. */
static void image_end(void *ctx)
{
	image_copy *ic = ctx;

	if (ic->bk)
		sqlite3_backup_finish(ic->bk);
	sqlite3_close(ic->src);
	ic->bk = NULL;
	ic->src = NULL;
}

/* The whole image of snapshot id as a copy (ic holds its state). */
static void image_ops(snap_store *s, int64_t id, const snap_info *si,
		      restore_progress *prog, verify_job *verify,
		      image_copy *ic, snap_restore_copy *cp)
{
	memset(ic, 0, sizeof(*ic));
	memset(cp, 0, sizeof(*cp));
	ic->s = s;
	ic->id = id;
	ic->si = si;
	ic->prog = prog;
	ic->verify = verify;
	cp->lock = image_lock;
	cp->copy = image_copy_rest;
	cp->check = image_check;
	cp->end = image_end;
	cp->ctx = ic;
}

/*
 * Copy into an existing live database with cp (the whole image or a
 * table), and check the result on the same connection.  The copy's write
 * lock is taken first (cp->lock) and held until it commits, and the safety
 * snapshot is read under it, so no commit falls between the two: in WAL
 * mode through a connection of its own (readers are not blocked), in
 * rollback mode, where no other connection can write, raw through the
 * locked connection's file handle.  The precondition runs under the same
 * lock.
 */
static int copy_into_live(snap_store *s, const snap_info *si,
			  const snap_restore_copy *cp, copy_plan *plan,
			  int *proven, snap_err *err)
{
	sqlite3 *dst = NULL;
	snap_live_token tok;
	int rc;

	*proven = 0;
	rc = snap_livedb_open(s->db_path, SNAP_LIVEDB_RW, NULL, &dst, err);
	if (!rc) {
		rc = cp->lock(cp->ctx, dst, si, err);
		if (rc && cp->what)
			snap_err_prefix(err, "%s refused, %s is unchanged",
					cp->what, s->db_path);
	}
	if (!rc && plan->safety)
		rc = take_safety(s, plan, plan->wal ? NULL : dst, err);
	if (!rc && snap_livedb_token(dst, plan->wal, &tok))
		rc = snap_err_set(err, -EIO, "cannot read the header of %s",
				  s->db_path);
	if (!rc && plan->opts && plan->opts->precond) {
		rc = plan->opts->precond(plan->opts->ctx, &tok, err);
		plan->refused = rc != 0;
	}
	if (rc) {
		drop_safety(s, plan);
	} else {
		plan->copied = 1;
		rc = restore_point(SNAP_SYS_WRITE, "restore: copy", err);
		if (!rc && plan->wait_before_copy)
			rc = verify_wait(plan->verify, err);
		if (!rc)
			rc = cp->copy(cp->ctx, dst, err);
		if (!rc)
			rc = restore_point(SNAP_SYS_READ, "restore: check",
					   err);
		if (!rc && cp->check)
			rc = cp->check(cp->ctx, dst, proven, err);
	}
	if (cp->end)
		cp->end(cp->ctx);
	sqlite3_close(dst);
	return rc;
}


/* "<db>.snapfs-replaced-<stamp>[-N]<suffix>" that does not exist yet, so
 * two restores in the same second keep both files. */
static void aside_name(const char *path, const char *stamp, const char *suffix,
		       char *out, size_t cap)
{
	struct stat st;
	int k;

	for (k = 1; k < 1000; k++) {
		if (k == 1)
			snprintf(out, cap, "%s.snapfs-replaced-%s%s", path, stamp,
				 suffix);
		else
			snprintf(out, cap, "%s.snapfs-replaced-%s-%d%s", path,
				 stamp, k, suffix);
		if (snap_sys_lstat(out, &st) < 0 && errno == ENOENT)
			return;
	}
}

/* Move a side file (-journal, -wal) out of the way, keeping its bytes. */
static int set_aside(const char *path, const char *suffix, const char *stamp,
		     snap_err *err)
{
	char from[PATH_MAX], to[PATH_MAX];

	snprintf(from, sizeof(from), "%s%s", path, suffix);
	if (snap_sys_access(from, F_OK) < 0)
		return 0;
	aside_name(path, stamp, suffix, to, sizeof(to));
	if (snap_sys_rename(from, to) < 0 && errno != ENOENT)
		return snap_err_set(err, -errno, "cannot move %s aside: %s",
				    from, strerror(errno));
	return 0;
}

/*
 * Remove "<db>.snapfs-restore-*" files (and their -journal) left by
 * restores that were killed: the caller holds the restore lock, so no
 * running restore owns one.
 */
static void remove_stale_restores(const char *db_path)
{
	char *dup = strdup(db_path), *dir, *base, path[PATH_MAX];
	size_t blen;
	struct dirent *de;
	DIR *d;

	if (!dup)
		return;
	dir = dirname(dup);
	base = strrchr(db_path, '/');
	base = base ? base + 1 : (char *)db_path;
	blen = strlen(base);
	d = snap_sys_opendir(dir);
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, base, blen) != 0 ||
		    strncmp(de->d_name + blen, ".snapfs-restore-", 16) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		snap_sys_unlink(path);
	}
	if (d)
		closedir(d);
	free(dup);
}

/*
 * The live file is missing or not a database: write the image into a new
 * file beside it and rename that into place.  A non-database file is kept
 * as "<db>.snapfs-replaced-<time>" so nothing is lost; stale -journal and
 * -wal files are moved aside too, since SQLite would otherwise apply them
 * to the new file.
 */
static int copy_to_new_file(snap_store *s, int64_t id, const snap_info *si,
			    enum snap_live_state state, char *kept,
			    size_t keptcap, restore_progress *prog,
			    int *proven, snap_err *err)
{
	char tmp[PATH_MAX], stamp[32];
	sqlite3 *src = NULL, *dst = NULL;
	snap_livedb_steps how;
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	kept[0] = '\0';
	remove_stale_restores(s->db_path);
	snprintf(tmp, sizeof(tmp), "%s.snapfs-restore-%ld", s->db_path,
		 (long)getpid());
	snap_sys_unlink(tmp);
	rc = snap_image_sqlite_open(s, id, &src, err);
	if (!rc) {
		rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE |
				     SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				     NULL);
		if (rc != SQLITE_OK)
			rc = snap_err_sqlite(err, dst, rc, "cannot create %s",
					     tmp);
	}
	if (!rc)
		rc = snap_store_exec(dst, "PRAGMA synchronous=FULL", err);
	if (!rc)
		rc = snap_livedb_backup_all(dst, src, tmp,
					    progress_at(prog, 1, &how), err);
	sqlite3_close(src);
	/* Verified before it takes the live name: nobody else has it open. */
	if (!rc)
		rc = verify_conn(s, id, si, dst, tmp, proven, prog, err);
	sqlite3_close(dst);
	if (!rc)
		rc = set_aside(s->db_path, "-journal", stamp, err);
	if (!rc)
		rc = set_aside(s->db_path, "-wal", stamp, err);
	if (!rc && state == SNAP_LIVE_NOT_DB) {
		aside_name(s->db_path, stamp, "", kept, keptcap);
		if (snap_sys_link(s->db_path, kept) < 0)
			rc = snap_err_set(err, -errno, "cannot keep the old "
					  "file %s as %s: %s", s->db_path,
					  kept, strerror(errno));
	}
	if (!rc) {
		char shm[PATH_MAX];
		snprintf(shm, sizeof(shm), "%s-shm", s->db_path);
		snap_sys_unlink(shm);
		if (snap_sys_rename(tmp, s->db_path) < 0)
			rc = snap_err_set(err, -errno, "cannot move the restored "
					  "file into place at %s: %s",
					  s->db_path, strerror(errno));
		else if (snap_sys_sync_dir(s->db_path) < 0)
			rc = snap_err_set(err, -errno, "%s is restored, but its "
					  "directory could not be synced (%s): "
					  "a crash may undo the restore; run "
					  "it again", s->db_path,
					  strerror(errno));
	}
	if (rc)
		snap_sys_unlink(tmp);
	return rc;
}

/* Load the expected hash of every page of snapshot id, and its page 1. */
static int load_expected(snap_store *s, int64_t id, const snap_info *si,
			 uint8_t (**hashes)[32], uint8_t **page1,
			 snap_err *err)
{
	snap_image *im = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int64_t *map = NULL;
	uint32_t n = 0, i;
	int rc;

	*hashes = NULL;
	*page1 = NULL;
	rc = snap_image_open(s, id, &im, err);
	if (!rc) {
		*page1 = malloc(si->page_size);
		rc = *page1 ? snap_image_read_page(im, 1, *page1, NULL, err)
			    : snap_err_set(err, -ENOMEM, "out of memory");
	}
	snap_image_close(im);
	if (!rc)
		rc = snap_store_connect(s, 1, &db, err);
	if (!rc)
		rc = snap_store_load_map(db, id, &n, &map, err);
	if (!rc) {
		*hashes = malloc((size_t)n * 32 + 1);
		if (!*hashes)
			rc = snap_err_set(err, -ENOMEM, "out of memory");
	}
	if (!rc)
		rc = sqlite3_prepare_v2(db, "SELECT hash FROM pages WHERE id=?",
					-1, &st, NULL) == SQLITE_OK ? 0 :
		     snap_err_sqlite(err, db, sqlite3_errcode(db), "store");
	if (!rc)
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (i = 0; !rc && i < n; i++) {
		sqlite3_bind_int64(st, 1, map[i]);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_bytes(st, 0) == 32)
			memcpy((*hashes)[i], sqlite3_column_blob(st, 0), 32);
		else
			rc = snap_err_set(err, -EIO, "snapshot %s: page %u "
					  "vanished from the store", si->name,
					  i + 1);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(map);
	if (rc) {
		free(*hashes);
		free(*page1);
		*hashes = NULL;
		*page1 = NULL;
	}
	return rc;
}

/* The pager's data version of db's main file: it moves with this
 * connection's own commits and when a transaction of this connection finds
 * that another connection committed.  Read without starting a transaction. */
static unsigned data_version(sqlite3 *db)
{
	unsigned v = 0;

	sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION, &v);
	return v;
}

/* Integrity check on a connection, as the fallback verification. */
static int conn_integrity(sqlite3 *db, const char *what, snap_err *err)
{
	unsigned bad = 0;
	int rc = snap_integrity_run(db, "PRAGMA integrity_check(5)", what,
				    NULL, NULL, &bad, err);

	if (!rc && bad)
		rc = snap_err_set(err, -EIO, "%s fails integrity_check after "
				  "the restore", what);
	return rc;
}

/*
 * Step 4 on the connection that just committed the copy: read the database
 * back through SQLite and compare every page with the image (see the top
 * comment).  The read-back proves something only if no other connection
 * committed since our commit; the pager's data version, taken before and
 * after, says so.  If one did, its writes are legitimate and must not be
 * rolled back: the database gets an integrity_check instead.
 */
static int verify_conn(snap_store *s, int64_t id, const snap_info *si,
		       sqlite3 *db, const char *what, int *proven,
		       restore_progress *prog, snap_err *err)
{
	uint8_t (*hashes)[32] = NULL;
	uint8_t *page1 = NULL;
	snap_capture c;
	snap_livedb_steps how;
	sqlite3 *cap = NULL;
	unsigned v0 = data_version(db), v1;
	int rc;

	*proven = 0;
	memset(&c, 0, sizeof(c));
	rc = load_expected(s, id, si, &hashes, &page1, err);
	if (!rc)
		rc = snap_capture_init_compare(&c, (const uint8_t (*)[32])hashes,
					       page1, si->page_count, err);
	if (!rc) {
		c.page_size = si->page_size;
		rc = snap_capture_open_db(&c, &cap, err);
		/* One step: the read-back holds one read transaction of
		 * the live database throughout (a stepped backup of a
		 * source that changes restarts). */
		progress_at(prog, 2, &how);
		if (!rc)
			rc = snap_livedb_backup_all(cap, db,
						    "a verification copy",
						    NULL, err);
		if (!rc && how.fn)
			how.fn(how.ctx, si->page_count, si->page_count);
		sqlite3_close(cap);
		if (!rc && c.err_code)
			rc = snap_err_set(err, c.err_code, "%s", c.err_msg);
	}
	v1 = data_version(db);
	if (!rc && v0 != v1) {
		rc = conn_integrity(db, what, err);
	} else if (!rc) {
		if (c.page_size != si->page_size || c.npages != si->page_count)
			rc = snap_err_set(err, -EIO, "after the restore %s has "
					  "%u pages of %u bytes, the snapshot "
					  "%u of %u", what, c.npages,
					  c.page_size, si->page_count,
					  si->page_size);
		else if (c.mismatches)
			rc = snap_err_set(err, -EIO, "after the restore %u "
					  "page%s of %s differ from snapshot "
					  "%s (first: page %u)", c.mismatches,
					  c.mismatches > 1 ? "s" : "", what,
					  si->name, c.first_mismatch);
		else
			*proven = 1;
	}
	free(hashes);
	free(page1);
	return rc;
}

/*
 * 1 when the live database holds exactly snapshot si's image (page by page,
 * page 1 without SQLite's counters), read through a connection of its own.
 * A failed copy that SQLite rolled back leaves the database equal to the
 * safety snapshot: then there is nothing to roll back, and saying "the
 * rollback failed" (it would, on a full disk) would be wrong.
 */
static int live_equals(snap_store *s, const snap_info *si)
{
	sqlite3 *db = NULL;
	snap_err ignore;
	int64_t n;
	int proven = 0;

	snap_err_clear(&ignore);
	/* A first read settles the new connection's data version, which
	 * verify_conn compares before and after. */
	if (snap_livedb_open(s->db_path, SNAP_LIVEDB_RW, NULL, &db,
			     &ignore) == 0 &&
	    snap_livedb_int(db, "SELECT count(*) FROM sqlite_schema", &n) ==
	    SQLITE_OK &&
	    verify_conn(s, si->id, si, db, s->db_path, &proven, NULL,
			&ignore) != 0)
		proven = 0;
	sqlite3_close(db);
	return proven;
}

/* Say how much space a restore of si needs beside the live database and
 * how much there is (an ENOSPC alone does not tell the user what to free). */
static void space_needed(const char *db_path, const snap_info *si,
			 snap_err *err)
{
	char *dup = strdup(db_path);
	struct statvfs vf;
	unsigned long long mb = 1024 * 1024, need, avail;

	if (!dup)
		return;
	if (statvfs(dirname(dup), &vf) == 0) {
		/* The image, plus a journal (rollback mode) or WAL of at
		 * most as many pages again. */
		need = (2 * si->image_size + mb - 1) / mb;
		avail = (unsigned long long)vf.f_bavail * vf.f_frsize / mb;
		snap_err_suffix(err, " (the restore of %s needs up to %llu MB "
				"free beside %s: the image and its journal; "
				"%llu MB are free)", si->name, need, db_path,
				avail);
	}
	free(dup);
}

/* Copy and check, with cp (NULL: the whole image of id); the part of a
 * restore that a rollback repeats (with the safety snapshot's image). */
static int apply(snap_store *s, int64_t id, const snap_info *si,
		 const snap_restore_copy *cp, enum snap_live_state state,
		 copy_plan *plan, char *kept, size_t keptcap, int *proven,
		 snap_err *err)
{
	snap_restore_copy whole;
	image_copy ic;

	if (state != SNAP_LIVE_DB) {
		plan->copied = 1;
		return copy_to_new_file(s, id, si, state, kept, keptcap,
					plan->prog, proven, err);
	}
	if (!cp) {
		/* The backup waits for the verification before it
		 * commits. */
		image_ops(s, id, si, plan->prog, plan->verify, &ic, &whole);
		cp = &whole;
	} else {
		plan->wait_before_copy = 1;
	}
	return copy_into_live(s, si, cp, plan, proven, err);
}

/* 5. After a failed copy: nothing to undo when SQLite rolled the copy
 * back (the live database equals the safety snapshot), else back to the
 * safety snapshot; err says which. */
static int roll_back(snap_store *s, copy_plan *plan, char *kept,
		     size_t keptcap, int rc, snap_err *err)
{
	snap_restore_result *res = plan->res;
	enum snap_live_state state;
	copy_plan back;
	snap_err again;
	int64_t live_ps = 0;
	int proven = 0, wal = 0, rrc;

	if (live_equals(s, &res->safety)) {
		/* The copy never committed: no rollback to fail. */
		snap_err_prefix(err, "%s failed, %s is unchanged", plan->what,
				s->db_path);
		drop_safety(s, plan);
		return rc;
	}
	snap_err_clear(&again);
	rrc = snap_livedb_probe(s->db_path, &state, &wal, &live_ps, &again);
	memset(&back, 0, sizeof(back));
	back.res = res;
	back.wal = wal;
	back.what = plan->what;
	if (!rrc)
		rrc = apply(s, res->safety.id, &res->safety, NULL, state, &back,
			    kept, keptcap, &proven, &again);
	res->rolled_back = rrc == 0;
	if (rrc)
		snap_err_prefix(err, "%s failed AND the rollback failed (%s); "
				"the state before the restore is snapshot %s",
				plan->what, again.msg, res->safety.name);
	else
		snap_err_prefix(err, "%s failed and was rolled back to %s",
				plan->what, res->safety.name);
	return rc != -EBUSY && rc != -ENOSPC ? -EIO : rc;
}

/* The restore skeleton (restore.h; the steps: engine/DESIGN.md §4). */
int snap_restore_run(snap_store *s, int64_t id, const snap_restore_opts *o,
		     const snap_restore_copy *cp, snap_restore_result *res,
		     snap_err *err)
{
	snap_restore_result tmp;
	snap_create_opts safety = { .kind = SNAP_KIND_PRE_RESTORE };
	snap_livedb_steps how;
	restore_progress prog = { o ? o->progress : NULL,
				  o ? o->progress_ctx : NULL, 0, 0 };
	copy_plan plan;
	enum snap_live_state state;
	snap_info si;
	char label[SNAP_LABEL_MAX + 1], said[SNAP_ERR_MSG];
	char *kept;
	verify_job vj;
	snap_err verr;
	int64_t live_ps = 0;
	int lockfd = -1, wal = 0, left_wal = 0, vrc, rc;

	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	memset(&plan, 0, sizeof(plan));
	plan.what = cp && cp->what ? cp->what : "restore";
	kept = res->kept;
	rc = snap_store_get(s, id, &si, err);
	if (rc)
		return rc;
	prog.pages = si.page_count;
	/* 1. One restore at a time, and the source must be intact: its
	 * verification runs beside steps 2 and 3 (verify_job). */
	memset(&vj, 0, sizeof(vj));
	vj.done = 1;
	rc = snap_store_restore_lock(s, &lockfd, err);
	if (rc)
		goto record;
	progress_at(&prog, 0, &how);
	verify_start(&vj, s, id);
	plan.verify = &vj;
	rc = snap_livedb_probe(s->db_path, &state, &wal, &live_ps, err);
	if (!rc && cp && state != SNAP_LIVE_DB)
		rc = snap_err_set(err, -ENOENT, "%s is not a database; restore "
				  "the whole snapshot %s instead", s->db_path,
				  si.name);
	if (rc) {
		snap_err_prefix(err, "%s refused, %s is unchanged", plan.what,
				s->db_path);
		goto record;
	}
	/* A new file is copied after the verification, and a database is
	 * taken out of WAL mode only for a source that passed it. */
	if (state != SNAP_LIVE_DB || (!cp && wal && live_ps != si.page_size))
		rc = verify_wait(&vj, err);
	if (rc)
		goto record;
	if (!cp && state == SNAP_LIVE_DB && wal && live_ps != si.page_size) {
		rc = snap_recover_leave_wal(s, &si, live_ps, err);
		if (rc)
			goto record;
		left_wal = 1;
		wal = 0;
	}
	/* 2, 3 and 4: safety snapshot, copy, check. */
	if (cp && cp->safety_label)
		snprintf(label, sizeof(label), "%s", cp->safety_label);
	else
		snprintf(label, sizeof(label), "before-restore-%s", si.label);
	safety.label = label;
	plan.safety = state == SNAP_LIVE_DB ? &safety : NULL;
	plan.res = res;
	plan.opts = o;
	plan.wal = wal;
	plan.prog = &prog;
	if (state != SNAP_LIVE_DB && o && o->precond) {
		snap_live_token none = { 0, 0 };
		rc = o->precond(o->ctx, &none, err);
		plan.refused = rc != 0;
		if (rc)
			goto mode;
	}
	rc = apply(s, id, &si, cp, state, &plan, kept, sizeof(res->kept),
		   &res->verified_pages, err);
	if (rc == -ENOSPC)
		space_needed(s->db_path, &si, err);
	/* A source that failed its verification: no copy committed (it
	 * waits for the verification), nothing to roll back. */
	if (rc && verify_wait(&vj, NULL)) {
		drop_safety(s, &plan);
		goto record;
	}
	/* 5. A failure after the copy started: back to the safety
	 * snapshot. */
	if (rc && plan.copied && res->have_safety)
		rc = roll_back(s, &plan, kept, sizeof(res->kept), rc, err);
mode:
	if (left_wal) {
		snap_err mode;

		snap_err_clear(&mode);
		if (snap_recover_return_to_wal(s, &mode) && !rc)
			snap_event_add(s, "restore", si.name, 0, "%s", mode.msg);
	}
record:
	/* The verification's failure is the answer whenever it failed:
	 * nothing changed then (see above). */
	snap_err_clear(&verr);
	vrc = verify_wait(&vj, &verr);
	if (vrc) {
		rc = vrc;
		if (err)
			*err = verr;
		snap_err_prefix(err, "%s refused, %s is unchanged", plan.what,
				s->db_path);
		plan.refused = 0;
	}
	snap_store_restore_unlock(lockfd);
	if (rc && !plan.refused) {
		snap_event_add(s, "restore", si.name, 0, "%s", err ? err->msg :
			       "restore failed");
		return rc;
	}
	if (rc)
		return rc;
	if (cp && cp->describe)
		cp->describe(cp->ctx, said, sizeof(said));
	else
		snprintf(said, sizeof(said), "restored into %s", s->db_path);
	snap_event_add(s, "restore", si.name, 1, "%s%s%s%s%s", said,
		       res->have_safety ? "; safety snapshot " : "",
		       res->have_safety ? res->safety.name : "", *kept ?
		       "; the old file is kept as " : "", kept);
	return 0;
}

int snap_restore_ex(snap_store *s, int64_t id, const snap_restore_opts *o,
		    snap_restore_result *res, snap_err *err)
{
	return snap_restore_run(s, id, o, NULL, res, err);
}

int snap_restore(snap_store *s, int64_t id, snap_restore_result *res,
		 snap_err *err)
{
	return snap_restore_ex(s, id, NULL, res, err);
}

