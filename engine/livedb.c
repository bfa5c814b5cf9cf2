/*
 * engine/livedb.c — the one place that opens the live database (the
 * engine's modules and the daemon alike), its busy policy, data_version
 * checks, page-1 normalization, and sqlite3_backup into it.
 *
 * Every connection on the live database is opened by snap_livedb_open:
 * never creating the file, never through a symlink, with a busy handler
 * that polls often (live_busy), so an application committing in a tight
 * loop cannot starve a restore or an edit (engine/PITFALLS.md 11).  One
 * policy waits about SNAP_LIVEDB_WAIT_MS; a watcher that may call the
 * database changed when it cannot ask (the scheduler) waits
 * SNAP_LIVEDB_WATCH_MS, and a look that must not queue (the daemon's
 * stat) does not wait; the three live in this file only.  The live file is probed
 * (missing, not a database, a database: its journal mode and page size)
 * through SQLite only, never with open()/close() of our own
 * (engine/PITFALLS.md 2).  A backup into it takes the destination's write
 * lock first (a step of 0 pages) and keeps it until the rest is copied and
 * committed; a lock SQLite reports without calling the busy handler gets a
 * second try.  The token a restore's precondition reads (the header's
 * change counter) is read through the locked connection's own file handle.
 *
 * Split from restore.c, its first user; the openers snapshot.c, diff,
 * health, schedule and fs/liveconn.c had of their own (with busy timeouts
 * of 2 to 30 s) now call it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "anchor.h"
#include "livedb.h"
#include "sys.h"

/* Pages per backup step when progress is reported: 4 MiB of 4 KiB pages,
 * a few hundred calls for 1 GB. */
#define LIVE_STEP_PAGES 1024

/* The busy handler's tries for a wait of ms milliseconds: 1000 polls of
 * 0.1 ms, then one every 1 ms. */
#define LIVE_TRIES(ms) ((ms) <= 100 ? (ms) * 10 : 1000 + ((ms) - 100))
static const int live_tries[] = {
	[SNAP_LIVEDB_WAIT] = LIVE_TRIES(SNAP_LIVEDB_WAIT_MS),
	[SNAP_LIVEDB_WATCH] = LIVE_TRIES(SNAP_LIVEDB_WATCH_MS),
};

/*
 * Busy handler for connections to the live database; ctx points at the
 * number of tries its policy allows.  SQLite's own backs off to 100 ms
 * between tries; an application that commits in a tight loop takes the
 * lock again within microseconds of releasing it, so a restore waiting
 * that way starves (rollback mode).  Poll often instead.
 */
static int live_busy(void *ctx, int n)
{
	if (n >= *(const int *)ctx)
		return 0;
	usleep(n < 1000 ? 100 : 1000);
	return 1;
}

void snap_livedb_busy_set(sqlite3 *db, enum snap_livedb_wait wait)
{
	if (wait == SNAP_LIVEDB_NOWAIT)
		sqlite3_busy_handler(db, NULL, NULL);
	else
		sqlite3_busy_handler(db, live_busy, (void *)&live_tries[wait]);
}

/* The error for a failed open of path (db as sqlite3_open_v2 left it). */
static int open_error(const char *path, const char *opened, sqlite3 *db,
		      int rc, snap_err *err)
{
	struct stat st;

	if (rc == SQLITE_CANTOPEN_SYMLINK)
		return snap_err_set(err, -ELOOP, "cannot open %s: a symbolic "
				    "link is in its path; snapfs opens the "
				    "live database only at its real path "
				    "(name that one)", path);
	if ((rc & 0xff) == SQLITE_CANTOPEN && strncmp(path, "file:", 5) != 0 &&
	    snap_sys_stat(opened, &st) < 0 && errno == ENOENT)
		return snap_err_set(err, -ENOENT, "cannot open %s: no such "
				    "file (snapfs does not create it)", path);
	return snap_err_sqlite(err, db, rc, "cannot open %s", path);
}

/* The live file at path as SQLite must open it: anchored to its
 * directory (anchor.c), with the refusal in words naming path. */
int snap_livedb_path(const char *path, char *out, size_t cap, snap_err *err)
{
	int rc = snap_anchor_path(path, out, cap);

	switch (rc) {
	case 0:
		return 0;
	case -ELOOP:
		return snap_err_set(err, rc, "cannot open %s: a symbolic link "
				    "is in its path; snapfs opens the live "
				    "database only at its real path (name "
				    "that one)", path);
	case -ENOENT:
		return snap_err_set(err, rc, "cannot open %s: no such file "
				    "(snapfs does not create it)", path);
	case -ESTALE:   /* EPERM: ESTALE means a refused precondition to
			   the callers (restore_file.c, fs/staging.c) */
		return snap_err_set(err, -EPERM, "cannot open %s: its directory is "
				    "not the one this process first opened "
				    "it in (renamed or replaced since, by "
				    "whoever may write a parent directory); "
				    "snapfs never follows a directory swapped "
				    "under it: put the directory back, or "
				    "restart snapfs", path);
	default:
		return snap_err_set(err, rc, "cannot open %s: %s", path,
				    strerror(-rc));
	}
}

/* The owner check of snap_livedb_owned (see livedb.h), on the file at
 * `at` (anchored), named path in the message. */
int snap_livedb_owned(const char *at, const char *path, snap_err *err)
{
	char dir[PATH_MAX + 32], *slash;
	struct stat f, d;

	if (snap_sys_lstat(at, &f) < 0 || !S_ISREG(f.st_mode) ||
	    snprintf(dir, sizeof(dir), "%s", at) >= (int)sizeof(dir) ||
	    !(slash = strrchr(dir, '/')))
		return 0;
	slash[slash == dir] = '\0';
	if (snap_sys_stat(dir, &d) < 0 || !(d.st_mode & S_IWOTH) ||
	    f.st_uid == 0 || f.st_uid == geteuid() || f.st_uid == d.st_uid)
		return 0;
	return snap_err_set(err, -EPERM, "%s belongs to uid %u, and anyone "
			    "may write its directory (mode %04o): another "
			    "user may have put it there to receive what "
			    "snapfs writes into it (a restore, an edit); "
			    "refused: keep the database in a directory that "
			    "only its owner may write, or have the directory's "
			    "owner own it", path, (unsigned)f.st_uid,
			    (unsigned)(d.st_mode & 07777));
}

/*
 * Open the live database (see livedb.h).  SQLITE_OPEN_NOFOLLOW makes
 * SQLite refuse a symlink anywhere in the path (it resolves each one
 * itself); the daemon runs as root over a directory other users may
 * write, and a restore writes through this connection.  RW_OR_RO tries
 * read-write first: only a read-write connection can roll back a hot
 * journal an application or a killed restore left behind (a read-only
 * one gets SQLITE_READONLY_ROLLBACK).
 */
int snap_livedb_open(const char *path, int flags, const char *vfs,
		     sqlite3 **db, snap_err *err)
{
	int extra = (flags & SNAP_LIVEDB_SHARED ? 0 : SQLITE_OPEN_NOMUTEX) |
		    (flags & SNAP_LIVEDB_URI ? SQLITE_OPEN_URI : 0) |
		    (flags & SNAP_LIVEDB_FOLLOW ? 0 : SQLITE_OPEN_NOFOLLOW);
	int mode = flags & SNAP_LIVEDB_RW_OR_RO;
	int rc = SQLITE_CANTOPEN;
	const char *shown = path;
	char anchored[PATH_MAX + 32];

	*db = NULL;
	/* Before the first open: SQLite's open() refuses a FIFO (anchor.c). */
	snap_anchor_register(NULL);
	/* The live file through its kept directory: no rename or symlink
	 * of a directory redirects this open or SQLite's later opens of its
	 * side files. */
	if (!(flags & SNAP_LIVEDB_FOLLOW) && strncmp(path, "file:", 5) != 0 &&
	    !snap_anchor_is(path)) {
		rc = snap_livedb_path(path, anchored, sizeof(anchored), err);
		if (rc)
			return rc;
		path = anchored;
	} else if ((flags & SNAP_LIVEDB_FOLLOW) &&
		   strncmp(path, "file:", 5) != 0 && !snap_anchor_is(path)) {
		/* A file a user named (an import): its links resolved now,
		 * then anchored too, so the -shm SQLite creates beside it
		 * (as root, given the file's owner) lands beside it even if
		 * its directory is swapped for a link meanwhile. */
		char *real = realpath(path, NULL);

		/* An anchor refused (a directory swapped since realpath,
		 * or replaced since this process kept it) is refused here
		 * too: the name would reopen the window the anchor closes. */
		rc = real ? snap_livedb_path(real, anchored, sizeof(anchored),
					     err) : SQLITE_CANTOPEN;
		free(real);
		if (rc < 0)
			return rc;
		if (rc == 0)
			path = anchored;
		rc = SQLITE_CANTOPEN;
	}
	if (mode & SNAP_LIVEDB_RW) {
		rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | extra,
				     vfs);
		if (rc != SQLITE_OK && *db)
			rc = sqlite3_extended_errcode(*db);
		if (rc != SQLITE_OK && mode == SNAP_LIVEDB_RW_OR_RO &&
		    rc != SQLITE_CANTOPEN_SYMLINK) {
			sqlite3_close(*db);
			*db = NULL;
			mode = SNAP_LIVEDB_RO;
		}
	}
	if (mode == SNAP_LIVEDB_RO) {
		rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY | extra,
				     vfs);
		if (rc != SQLITE_OK && *db)
			rc = sqlite3_extended_errcode(*db);
	}
	if (rc != SQLITE_OK) {
		rc = open_error(shown, path, *db, rc, err);
		sqlite3_close(*db);
		*db = NULL;
		return rc;
	}
	/* Checked once SQLite holds the file: one put at the name before
	 * the open is seen here (in a sticky directory nobody else can
	 * change the name's file once it is not theirs). */
	if (path == anchored && !(flags & SNAP_LIVEDB_FOLLOW) &&
	    (flags & SNAP_LIVEDB_RW) &&
	    (rc = snap_livedb_owned(path, shown, err)) != 0) {
		sqlite3_close(*db);
		*db = NULL;
		return rc;
	}
	snap_livedb_busy_set(*db, flags & SNAP_LIVEDB_SHORT ?
			     SNAP_LIVEDB_WATCH : SNAP_LIVEDB_WAIT);
	sqlite3_extended_result_codes(*db, 1);
	return 0;
}

/* One integer from a query (a PRAGMA). */
int snap_livedb_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

int snap_livedb_read_error(sqlite3 *db, int rc, const char *path,
			   snap_err *err)
{
	static const char *const sfx[] = { "-wal", "-journal", "-shm" };
	char side[PATH_MAX + 16];
	struct stat st;

	for (size_t i = 0; (rc & 0xff) == SQLITE_CANTOPEN &&
	     i < sizeof(sfx) / sizeof(*sfx); i++) {
		snprintf(side, sizeof(side), "%s%s", path, sfx[i]);
		if (lstat(side, &st) == 0 && S_ISLNK(st.st_mode))
			return snap_err_set(err, -ELOOP, "cannot read %s: %s "
					    "is a symbolic link; SQLite and "
					    "snapfs refuse a database whose "
					    "-wal, -journal or -shm is one (it "
					    "would make them write elsewhere): "
					    "remove the link", path, side);
	}
	if (rc == SQLITE_READONLY_ROLLBACK)
		return snap_err_set(err, -EINVAL, "cannot read %s: its "
				    "%s-journal holds an interrupted "
				    "transaction (a hot journal: the file was "
				    "copied, or its writer stopped, in the "
				    "middle of one), so the file alone is "
				    "torn; a restore or import never changes "
				    "its source: open it once with sqlite3, "
				    "which rolls the transaction back, or copy "
				    "both into a mount's restore/", path,
				    path);
	return snap_err_sqlite(err, db, rc, "cannot read %s", path);
}

/* Classify the live file, and learn its journal mode and page size. */
int snap_livedb_probe(const char *path, enum snap_live_state *state, int *wal,
		      int64_t *page_size, snap_err *err)
{
	struct stat st;
	sqlite3 *db = NULL;
	sqlite3_stmt *jm = NULL;
	int rc;

	*wal = 0;
	*page_size = 0;
	if (snap_sys_stat(path, &st) < 0) {
		if (errno != ENOENT)
			return snap_err_set(err, -errno, "cannot stat %s: %s",
					    path, strerror(errno));
		*state = SNAP_LIVE_MISSING;
		return 0;
	}
	*state = SNAP_LIVE_NOT_DB;
	if (st.st_size == 0)
		return 0;
	rc = snap_livedb_open(path, SNAP_LIVEDB_RW, NULL, &db, err);
	if (rc)
		return rc;
	rc = snap_livedb_int(db, "SELECT count(*) FROM sqlite_schema",
			     page_size);
	if ((rc & 0xff) == SQLITE_NOTADB) {
		sqlite3_close(db);
		return 0;
	}
	if (rc == SQLITE_OK)
		rc = snap_livedb_int(db, "PRAGMA page_size", page_size);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &jm,
					NULL);
	if (rc == SQLITE_OK && sqlite3_step(jm) == SQLITE_ROW)
		*wal = strcmp((const char *)sqlite3_column_text(jm, 0),
			      "wal") == 0;
	sqlite3_finalize(jm);
	if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_CORRUPT) {
		rc = snap_livedb_read_error(db, rc, path, err);
		sqlite3_close(db);
		return rc;
	}
	sqlite3_close(db);
	*state = SNAP_LIVE_DB;
	return 0;
}

/* The error for a backup that ended with rc. */
static int backup_error(int rc, const char *what, snap_err *err)
{
	if ((rc & 0xff) == SQLITE_READONLY)
		return snap_err_set(err, -EROFS, "cannot write %s: SQLite "
				    "refused the copy (read-only file, or WAL "
				    "mode with another page size)", what);
	if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
		return snap_err_set(err, -EBUSY, "copying into %s: a database "
				    "stayed locked by another connection for "
				    "%d s", what, 2 * SNAP_LIVEDB_WAIT_MS /
				    1000);
	return snap_err_sqlite(err, NULL, rc, "copying into %s failed", what);
}

/* 1 when rc says another connection holds the lock. */
static int busy(int rc)
{
	return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/*
 * Start a backup of src into dst and take dst's write lock (a step of 0
 * pages opens the destination's write transaction and keeps it until the
 * backup finishes: WAL, the write lock; rollback mode, an exclusive lock).
 * Each try waits up to SNAP_LIVEDB_WAIT_MS in the busy handler; a second try
 * covers a lock SQLite reports without calling it.
 */
int snap_livedb_backup_begin(sqlite3 *dst, sqlite3 *src, const char *what,
			     sqlite3_backup **out, snap_err *err)
{
	int tries, rc = SQLITE_BUSY;

	*out = NULL;
	for (tries = 0; tries < 2; tries++) {
		sqlite3_backup *bk = sqlite3_backup_init(dst, "main", src,
							 "main");
		if (!bk)
			return snap_err_sqlite(err, dst, sqlite3_errcode(dst),
					       "cannot start copying into %s",
					       what);
		rc = sqlite3_backup_step(bk, 0);
		if (rc == SQLITE_OK || rc == SQLITE_DONE) {
			*out = bk;
			return 0;
		}
		sqlite3_backup_finish(bk);
		if (!busy(rc))
			break;
		sqlite3_sleep(50);   /* the busy handler already waited */
	}
	return backup_error(rc, what, err);
}

/*
 * Copy the rest and commit; finishes bk either way.  Without fn or gate,
 * one step of every page; otherwise steps of LIVE_STEP_PAGES, fn told the
 * pages done after each, and gate asked before the step that would copy
 * the last pages and commit: when it says no (a negative errno, err
 * filled), the backup is finished unfinished, which rolls the
 * destination's transaction back.  That transaction stays open between
 * steps (SQLite's backup keeps it until the last step commits), and the
 * sources here do not change, so the copy is as atomic either way.  A
 * busy step is tried once more, as in snap_livedb_backup_begin.
 */
int snap_livedb_backup_steps(sqlite3_backup *bk, const char *what,
			     const snap_livedb_steps *how, snap_err *err)
{
	int tries = 0, rc = SQLITE_OK, step = how ? LIVE_STEP_PAGES : -1;

	while (tries < 2) {
		if (how && how->gate && sqlite3_backup_remaining(bk) <= step) {
			int g = how->gate(how->gate_ctx, err);

			if (g) {
				sqlite3_backup_finish(bk);
				return g;
			}
			step = -1;
		}
		rc = sqlite3_backup_step(bk, step);
		if (rc == SQLITE_OK) {
			tries = 0;
			if (how && how->fn)
				how->fn(how->ctx, (uint64_t)
					(sqlite3_backup_pagecount(bk) -
					 sqlite3_backup_remaining(bk)),
					(uint64_t)sqlite3_backup_pagecount(bk));
			continue;
		}
		if (rc == SQLITE_DONE || !busy(rc))
			break;
		tries++;
	}
	if (rc == SQLITE_DONE && how && how->fn)
		how->fn(how->ctx, (uint64_t)sqlite3_backup_pagecount(bk),
			(uint64_t)sqlite3_backup_pagecount(bk));
	sqlite3_backup_finish(bk);
	return rc == SQLITE_DONE ? 0 : backup_error(rc, what, err);
}

/* Copy the rest and commit in one step; finishes bk either way. */
int snap_livedb_backup_rest(sqlite3_backup *bk, const char *what,
			    snap_err *err)
{
	return snap_livedb_backup_steps(bk, what, NULL, err);
}

/* Run one whole backup from src into dst (how as in
 * snap_livedb_backup_steps; may be NULL). */
int snap_livedb_backup_all(sqlite3 *dst, sqlite3 *src, const char *what,
			   const snap_livedb_steps *how, snap_err *err)
{
	sqlite3_backup *bk = NULL;
	int rc = snap_livedb_backup_begin(dst, src, what, &bk, err);

	return rc ? rc : snap_livedb_backup_steps(bk, what, how, err);
}

/* The live database's token, through db's own file handle (which holds a
 * lock: engine/PITFALLS.md 2 forbids a descriptor of our own). */
int snap_livedb_token(sqlite3 *db, int wal, snap_live_token *tok)
{
	sqlite3_file *f = NULL;
	uint8_t h[100];

	memset(tok, 0, sizeof(*tok));
	tok->wal = wal;
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) !=
	    SQLITE_OK || !f || !f->pMethods ||
	    f->pMethods->xRead(f, h, sizeof(h), 0) != SQLITE_OK)
		return -EIO;
	tok->change_counter = ((uint32_t)h[24] << 24) | ((uint32_t)h[25] << 16) |
			      ((uint32_t)h[26] << 8) | h[27];
	return 0;
}

int snap_livedb_token_get(const char *db_path, snap_live_token *tok,
			  snap_err *err)
{
	sqlite3 *db = NULL;
	int64_t ignore;
	char mode[16] = "";
	sqlite3_stmt *st = NULL;
	int rc = snap_livedb_open(db_path, SNAP_LIVEDB_RW, NULL, &db, err);

	if (rc)
		return rc;
	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		snprintf(mode, sizeof(mode), "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	/* Read the header inside a read transaction: a stable value. */
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	rc = snap_livedb_int(db, "SELECT count(*) FROM sqlite_schema", &ignore);
	if (rc == SQLITE_OK)
		rc = snap_livedb_token(db, strcmp(mode, "wal") == 0, tok);
	else
		rc = snap_livedb_read_error(db, rc, db_path, err);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	if (rc == -EIO)
		snap_err_set(err, rc, "cannot read the header of %s", db_path);
	return rc;
}

/* v big-endian at p (a database header field). */
static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/*
 * Every image's page 1 (the database header), as sqlite3_backup leaves a
 * fresh copy, written out so that an image built whole and the head of a
 * peek agree byte for byte, whatever SQLite version made them: rollback
 * journal mode (bytes 18-19 = 1: a copy never looks for -wal and -shm),
 * change counter, schema cookie and version-valid-for 1 (the copy's first
 * commit), the page count, and the library's version number.
 */
void snap_livedb_page1_normalize(unsigned char *hdr, uint64_t pages)
{
	hdr[18] = hdr[19] = 1;
	put32(hdr + 24, 1);
	put32(hdr + 28, (uint32_t)pages);
	put32(hdr + 40, 1);
	put32(hdr + 92, 1);
	put32(hdr + 96, (uint32_t)sqlite3_libversion_number());
}

/*
 * PRAGMA data_version on db; with size, also the size an image taken now
 * would have, read in the same read transaction as the data version
 * (PRAGMA page_count starts it, COMMIT ends it).  Without size the pragma
 * runs in a read transaction of its own, which is when SQLite notices
 * another connection's commit.
 */
int snap_livedb_data_version(sqlite3 *db, int64_t *dv, uint64_t *size)
{
	int64_t pages = 0, page_size = 0;
	int rc;

	if (!size)
		return snap_err_sqlite_errno(snap_livedb_int(db,
				"PRAGMA data_version", dv));
	rc = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = snap_livedb_int(db, "PRAGMA page_count", &pages);
	if (rc == SQLITE_OK)
		rc = snap_livedb_int(db, "PRAGMA page_size", &page_size);
	if (rc == SQLITE_OK)
		rc = snap_livedb_int(db, "PRAGMA data_version", dv);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return snap_err_sqlite_errno(rc);
	if (pages < 0 || page_size <= 0)
		return -EIO;
	*size = (uint64_t)pages * (uint64_t)page_size;
	return 0;
}
