/*
 * fs/live.c — the live database as the daemon sees it.
 *
 * Two things the mount needs from the live database that the engine's
 * public API does not give: "has it changed?" and "a consistent image of it
 * right now, without adding a snapshot to the catalog".
 *
 * Change: a long-lived SQLite connection (the watch connection)
 * answers PRAGMA data_version, which moves whenever another connection — an
 * application on the real path, or the engine restoring — commits.  The
 * file's identity (st_dev, st_ino) is checked on every call too: a restore
 * that replaced a broken file by rename, or an application that recreated
 * the file, makes the daemon reopen the connection.  Every observed change
 * moves a 64-bit generation; the mount compares generations (to reuse an
 * image, to detect that an edit session went stale).
 * renewed by reads.
 *
 * Size: stat() of current.db must say how many bytes an open would read
 * (fs/DESIGN.md §1), and for a WAL database that is not the main file's size:
 * committed frames still in the WAL can add pages.  An image made by
 * sqlite3_backup has exactly page_count * page_size bytes of its source as
 * one read transaction sees it (the backup copies page_count pages, and a
 * file longer than its header's page count copies only the counted
 * pages), so snap_live_size() reads page_count, page_size and data_version
 * in one read transaction on the watch connection (microseconds); the image
 * of the same generation, once built, is the authority.  No image is built
 * to answer a stat.
 *
 * The connections are read-write only so that SQLite itself can roll back
 * a hot journal (it is never written through); the live file is never
 * open()ed here: all access goes through SQLite,
 * whose per-process inode table keeps POSIX locks intact across our
 * connections and the engine's (engine/PITFALLS.md 2).
 *
 * During a restore through the mount the watch connection is closed, held
 * peeks are built and their transactions ended, and peeks and builds wait
 * (snap_live_quiesce): the engine can switch a WAL database's page size
 * only when no other connection is open, and a held SHARED lock would
 * make a rollback-mode restore wait.
 *
 * Images and peeks are liveimage.c's.
 *
 * Thread-safety: quiesce_lock is taken shared by every peek and build and
 * exclusively from quiesce to resume (writer-preferring, so a stream of
 * peeks cannot starve a restore); build_lock serializes builds and is held
 * across the backup; lock protects conn, the generation, cur, the list of
 * held images and every image's fd, peek and build_rc (an image's head,
 * size and gen never change).  Order: quiesce_lock, build_lock, then lock
 * (fs.h).  The reaper thread takes them in that order too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "live_int.h"

/* The first column of the one row of sql on conn (a PRAGMA); a SQLite
 * result code. */
int snap_live_pragma_int(sqlite3 *conn, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * PRAGMA data_version on conn; with size, also the size an image taken now
 * would have (page_count * page_size), read in the same read transaction
 * as the data version (PRAGMA page_count starts it, COMMIT ends it), so
 * the size belongs to exactly that version.  0 or a negative errno.
 */
static int live_data_version(sqlite3 *conn, int64_t *out, uint64_t *size)
{
	int64_t pages = 0, page_size = 0;
	int rc;

	if (!size)
		return snap_err_sqlite_errno(snap_live_pragma_int(conn,
				"PRAGMA data_version", out));
	rc = sqlite3_exec(conn, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = snap_live_pragma_int(conn, "PRAGMA page_count", &pages);
	if (rc == SQLITE_OK)
		rc = snap_live_pragma_int(conn, "PRAGMA page_size", &page_size);
	if (rc == SQLITE_OK)
		rc = snap_live_pragma_int(conn, "PRAGMA data_version", out);
	if (!sqlite3_get_autocommit(conn))
		sqlite3_exec(conn, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return snap_err_sqlite_errno(rc);
	if (pages < 0 || page_size <= 0)
		return -EIO;
	*size = (uint64_t)pages * (uint64_t)page_size;
	return 0;
}

/*
 * Open a connection on the live path with a busy timeout.  Read-write (never
 * create) when the file allows it, because only a read-write connection can
 * roll back a hot journal an application or a killed restore left behind
 * (a read-only one gets SQLITE_READONLY_ROLLBACK); the daemon never writes
 * through it.  Read-only otherwise.
 */
int snap_live_connect(const char *path, const char *vfs, sqlite3 **out,
		      snap_err *err)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vfs);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL;
		rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, vfs);
	}
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, db, rc, "opening %s", path);
		sqlite3_close(db);
		return rc;
	}
	/* The engine's busy policy: SQLite's own backs off to 100 ms, and an
	 * application committing in a tight loop starved image builds for
	 * seconds. */
	snap_restore_busy_set(db);
	*out = db;
	return 0;
}

static void live_disconnect_locked(struct snap_live *l)
{
	if (l->conn) {
		sqlite3_close(l->conn);
		l->conn = NULL;
	}
}

/* How snap_live_refresh_locked asks. */
enum {
	LIVE_SIZE = 1,      /* also learn the size of an image (l->size) */
	LIVE_NOWAIT = 2,    /* do not wait for a writer's lock */
};

/* live_data_version on l->conn, without waiting for locks with nowait. */
static int live_query_locked(struct snap_live *l, int nowait, int64_t *dv,
			     uint64_t *size)
{
	int rc;

	if (nowait)
		sqlite3_busy_timeout(l->conn, 0);
	rc = live_data_version(l->conn, dv, size);
	if (nowait)
		snap_restore_busy_set(l->conn);
	return rc;
}

/*
 * Look at the live database and move the generation if it changed; with
 * LIVE_SIZE, also remember the size of an image of it (l->size, valid for
 * generation l->size_gen).  Any doubt (missing file, failed query) counts
 * as a change: the cost is a rebuilt image or a refused edit session, never
 * a stale answer.  With LIVE_NOWAIT, a lock held by a writer (rollback
 * mode) is not waited for: *busy is set and the generation stays.
 */
uint64_t snap_live_refresh_locked(struct snap_live *l, int how, int *busy)
{
	uint64_t size = 0, *psize = (how & LIVE_SIZE) ? &size : NULL;
	int nowait = (how & LIVE_NOWAIT) != 0, rc;
	struct stat st;
	int64_t dv;

	if (busy)
		*busy = 0;
	if (l->quiet)
		return l->gen;          /* a restore is changing it anyway */
	if (stat(l->path, &st) != 0) {
		if (l->conn) {
			live_disconnect_locked(l);
			l->gen++;
		}
		return l->gen;
	}
	if (l->conn && (st.st_dev != l->dev || st.st_ino != l->ino)) {
		live_disconnect_locked(l);
		l->gen++;
	}
	if (!l->conn) {
		if (snap_live_connect(l->path, NULL, &l->conn, NULL) != 0)
			return ++l->gen;
		l->dev = st.st_dev;
		l->ino = st.st_ino;
		rc = live_query_locked(l, nowait, &l->dv, psize);
		if (rc != 0) {
			if (rc == -EBUSY && nowait && busy)
				*busy = 1;
			live_disconnect_locked(l);
			return ++l->gen;
		}
		l->gen++;
	} else if ((rc = live_query_locked(l, nowait, &dv, psize)) != 0) {
		if (rc == -EBUSY && nowait) {
			if (busy)
				*busy = 1;
			return l->gen;
		}
		live_disconnect_locked(l);
		return ++l->gen;
	} else if (dv != l->dv) {
		l->dv = dv;
		l->gen++;
	}
	if (psize) {
		l->size = size;
		l->size_gen = l->gen;
	}
	return l->gen;
}

/* The locks, the reaper's condition on the monotonic clock, and a
 * quiesce lock that a writer does not wait behind new readers for. */
static void live_locks_init(struct snap_live *l)
{
	pthread_rwlockattr_t ra;
	pthread_condattr_t ca;

	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra,
		PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&l->quiesce_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&l->build_lock, NULL);
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->reap_cond, &ca);
	pthread_condattr_destroy(&ca);
}

int snap_live_open(const char *db_path, const char *tmpdir,
		   struct snap_live **out, snap_err *err)
{
	struct snap_live *l = calloc(1, sizeof(*l));
	sqlite3 *db = NULL;
	int64_t dv;
	int rc;

	if (!l)
		return snap_err_set(err, -ENOMEM, "out of memory");
	snprintf(l->path, sizeof(l->path), "%s", db_path);
	snprintf(l->wal_path, sizeof(l->wal_path), "%s-wal", l->path);
	snprintf(l->tmpdir, sizeof(l->tmpdir), "%s", tmpdir ? tmpdir : "");
	live_locks_init(l);

	/* Prove it is a database now, with SQLite's own words on failure. */
	rc = snap_live_connect(db_path, NULL, &db, err);
	if (rc == 0) {
		rc = live_data_version(db, &dv, NULL);
		if (rc == 0) {
			sqlite3_stmt *st = NULL;
			int src = sqlite3_prepare_v2(db,
				"SELECT count(*) FROM sqlite_schema", -1, &st,
				NULL);
			if (src == SQLITE_OK)
				src = sqlite3_step(st);
			if (src != SQLITE_ROW)
				rc = snap_err_sqlite(err, db, src,
						     "reading %s", db_path);
			sqlite3_finalize(st);
		} else {
			snap_err_sqlite(err, db, SQLITE_NOTADB, "reading %s",
					db_path);
		}
		sqlite3_close(db);
	}
	if (rc != 0) {
		snap_live_close(l);
		return rc;
	}
	pthread_mutex_lock(&l->lock);
	snap_live_refresh_locked(l, 0, NULL);
	pthread_mutex_unlock(&l->lock);
	*out = l;
	return 0;
}

void snap_live_close(struct snap_live *l)
{
	struct snap_live_image *cur = NULL;

	if (!l)
		return;
	if (l->reaper_started) {
		pthread_mutex_lock(&l->lock);
		l->reaper_stop = 1;
		pthread_cond_broadcast(&l->reap_cond);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->reaper, NULL);
	}
	live_disconnect_locked(l);
	if (l->cur && --l->cur->refs == 0) {
		cur = l->cur;
		snap_live_unhold_locked(l, cur);
	}
	l->cur = NULL;
	if (cur)
		snap_live_image_free(cur);
	pthread_cond_destroy(&l->reap_cond);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->build_lock);
	pthread_rwlock_destroy(&l->quiesce_lock);
	free(l);
}

/*
 * A restore is about to run: the engine can restore across page sizes in
 * WAL mode only when no other connection has the database open, and the
 * watch connection would be one; a held peek is one too, and in rollback
 * mode its SHARED lock would keep the restore waiting.  Build every held
 * image (its readers keep their state) and end its transaction, close the
 * watch connection, and keep peeks and builds (which open connections
 * too) out until snap_live_resume.  The generation moves on resume: the
 * restore changed the database.
 */
void snap_live_quiesce(struct snap_live *l)
{
	struct snap_live_image *im;
	snap_err err;

	pthread_rwlock_wrlock(&l->quiesce_lock);
	for (;;) {
		pthread_mutex_lock(&l->lock);
		im = l->held;
		if (im)
			im->refs++;
		pthread_mutex_unlock(&l->lock);
		if (!im)
			break;
		snap_err_clear(&err);
		pthread_mutex_lock(&l->build_lock);
		snap_live_materialize(l, im, &err);    /* takes it off the list */
		pthread_mutex_unlock(&l->build_lock);
		snap_live_image_put(l, im);
	}
	pthread_mutex_lock(&l->lock);
	live_disconnect_locked(l);
	l->quiet = 1;
	pthread_mutex_unlock(&l->lock);
}

void snap_live_resume(struct snap_live *l)
{
	pthread_mutex_lock(&l->lock);
	l->quiet = 0;
	l->gen++;
	pthread_mutex_unlock(&l->lock);
	pthread_rwlock_unlock(&l->quiesce_lock);
}

uint64_t snap_live_gen(struct snap_live *l)
{
	uint64_t gen;

	pthread_mutex_lock(&l->lock);
	gen = snap_live_refresh_locked(l, 0, NULL);
	pthread_mutex_unlock(&l->lock);
	return gen;
}

int snap_live_stat(struct snap_live *l, struct stat *st)
{
	return stat(l->path, st) == 0 ? 0 : -errno;
}

/*
 * The size of the image an open would read now: the image of the current
 * generation if one is built, else page_count * page_size of the state the
 * watch connection sees (one small read transaction).
 *
 * A stat must not queue behind a busy application.  A WAL database's
 * readers never wait for its writers, and its main file is not its size
 * (pages sit in the WAL), so it is asked, waiting if need be.  In rollback
 * mode the file is the committed state except while a writer commits, so
 * it is asked without waiting for the writer's lock (nor for this
 * module's lock, which a build may hold while it waits): -EAGAIN then,
 * and the caller takes the file's own size.  -EAGAIN too when the
 * database cannot be asked at all (missing, being restored).
 */
int snap_live_size(struct snap_live *l, uint64_t *size)
{
	struct stat st;
	uint64_t gen;
	int wal, busy, rc = 0;

	wal = stat(l->wal_path, &st) == 0;
	if (!wal) {
		if (pthread_mutex_trylock(&l->lock) != 0)
			return -EAGAIN;
	} else {
		pthread_mutex_lock(&l->lock);
	}
	gen = snap_live_refresh_locked(l, LIVE_SIZE | (wal ? 0 : LIVE_NOWAIT),
				  &busy);
	if (busy)
		rc = -EAGAIN;
	else if (l->cur && l->cur->gen == gen)
		*size = l->cur->size;
	else if (l->size_gen == gen)
		*size = l->size;
	else
		rc = -EAGAIN;
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void snap_live_journal_mode(struct snap_live *l, char *out, size_t len)
{
	sqlite3_stmt *st = NULL;

	snprintf(out, len, "%s", "");
	pthread_mutex_lock(&l->lock);
	snap_live_refresh_locked(l, 0, NULL);
	if (l->conn && sqlite3_prepare_v2(l->conn, "PRAGMA journal_mode", -1,
					  &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, len, "%s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&l->lock);
}

