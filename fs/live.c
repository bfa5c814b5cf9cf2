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
 * The connections, data_version and page 1: engine/livedb.c (the one
 * opener of the live database).  Images and peeks: liveimage.c.  Opening,
 * closing, and the quiet around a restore: livectl.c.
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



/* Close the watch connection (l->lock held, or no other thread). */
void snap_live_disconnect_locked(struct snap_live *l)
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

/* snap_livedb_data_version on l->conn, without waiting for locks with nowait. */
static int live_query_locked(struct snap_live *l, int nowait, int64_t *dv,
			     uint64_t *size)
{
	int rc;

	if (nowait)
		snap_livedb_busy_set(l->conn, SNAP_LIVEDB_NOWAIT);
	rc = snap_livedb_data_version(l->conn, dv, size);
	if (nowait)
		snap_livedb_busy_set(l->conn, SNAP_LIVEDB_WAIT);
	return rc;
}

/* lstat() of the live file, which must be a regular file: a symlink or
 * a FIFO at the name is no database (SQLite refuses it) and says nothing
 * of the live file, so it counts as none (ENOENT). */
static int live_lstat(const char *path, struct stat *st)
{
	if (lstat(path, st) != 0)
		return -1;
	if (!S_ISREG(st->st_mode)) {
		errno = ENOENT;
		return -1;
	}
	return 0;
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
	if (live_lstat(l->path, &st) != 0) {
		if (l->conn) {
			snap_live_disconnect_locked(l);
			l->gen++;
		}
		return l->gen;
	}
	if (l->conn && (st.st_dev != l->dev || st.st_ino != l->ino)) {
		snap_live_disconnect_locked(l);
		l->gen++;
	}
	if (!l->conn) {
		if (snap_livedb_open(l->path, SNAP_LIVEDB_DAEMON, NULL,
				     &l->conn, NULL) != 0)
			return ++l->gen;
		l->dev = st.st_dev;
		l->ino = st.st_ino;
		rc = live_query_locked(l, nowait, &l->dv, psize);
		if (rc != 0) {
			if (rc == -EBUSY && nowait && busy)
				*busy = 1;
			snap_live_disconnect_locked(l);
			return ++l->gen;
		}
		l->gen++;
	} else if ((rc = live_query_locked(l, nowait, &dv, psize)) != 0) {
		if (rc == -EBUSY && nowait) {
			if (busy)
				*busy = 1;
			return l->gen;
		}
		snap_live_disconnect_locked(l);
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

/* The live database's generation now (checked: one small read). */
uint64_t snap_live_gen(struct snap_live *l)
{
	uint64_t gen;

	pthread_mutex_lock(&l->lock);
	gen = snap_live_refresh_locked(l, 0, NULL);
	pthread_mutex_unlock(&l->lock);
	return gen;
}

/* The live file's attributes (never opened). */
int snap_live_stat(struct snap_live *l, struct stat *st)
{
	return live_lstat(l->path, st) == 0 ? 0 : -errno;
}

int snap_live_stat_owner(struct snap_live *l, struct stat *st)
{
	struct stat now;
	int rc = -ENOENT;

	/* Not followed: a link there names somebody else's file. */
	if (lstat(l->path, &now) != 0)
		now.st_mode = 0;
	pthread_mutex_lock(&l->owner_lock);
	if (S_ISREG(now.st_mode) && l->have_owned &&
	    now.st_uid == l->owner)
		l->owned = now;
	if (l->have_owned) {
		*st = l->owned;
		rc = 0;
	}
	pthread_mutex_unlock(&l->owner_lock);
	return rc;
}

/* a < b for two timestamps. */
static int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int snap_live_stat_content(struct snap_live *l, struct stat *st)
{
	struct stat w;

	if (live_lstat(l->path, st) != 0)
		return -errno;
	/* A commit in WAL mode writes the -wal only.  Not followed: a link
	 * there is refused elsewhere and says nothing of the content. */
	if (lstat(l->wal_path, &w) == 0 && S_ISREG(w.st_mode)) {
		if (ts_before(&st->st_mtim, &w.st_mtim))
			st->st_mtim = w.st_mtim;
		if (ts_before(&st->st_ctim, &w.st_ctim))
			st->st_ctim = w.st_ctim;
	}
	return 0;
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

/* "wal", "delete", ... of the live database; "" if unknown. */
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
