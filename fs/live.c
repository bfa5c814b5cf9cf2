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
 *
 * Images: a read-only open of current.db reads a copy made by
 * sqlite3_backup with one step (one read transaction on the source, so the
 * copy is one committed state in rollback and WAL mode while applications
 * write — PITFALLS 1, 6) into a private file in the staging directory,
 * which is unlinked at once and read through its descriptor.  Page 1 is
 * normalized to rollback-journal mode (bytes 18-19 = 1), as snapshots are,
 * so `sqlite3 -readonly` works on a copy and never looks for -wal/-shm.  The
 * newest image is kept and handed to every open while the generation is
 * unchanged, so a file manager's peek costs one tiny read transaction.
 *
 * Size: stat() of current.db must say how many bytes an open would read
 * (DESIGN.md §1), and for a WAL database that is not the main file's size:
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
 * connections and the engine's (PITFALLS 2).
 *
 * During a restore through the mount the watch connection is closed and
 * image builds wait (snap_live_quiesce): the engine can switch a WAL
 * database's page size only when no other connection is open.
 *
 * Thread-safety: build_lock serializes image builds and is held across the
 * backup (and across a restore, between quiesce and resume); lock protects
 * conn, the generation and cur.  Order: build_lock,
 * then lock (fs.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

#define LIVE_BACKUP_TRIES 500   /* backup_step retries on BUSY (x 20 ms) */

struct snap_live {
	char path[PATH_MAX];           /* the live database (absolute) */
	char wal_path[PATH_MAX + 4];   /* and its -wal file */
	char tmpdir[PATH_MAX];         /* where images are built */
	pthread_mutex_t build_lock;    /* serializes builds */
	pthread_mutex_t lock;          /* protects the fields below */
	sqlite3 *conn;                 /* watch connection, or NULL */
	dev_t dev;                     /* identity of conn's file */
	ino_t ino;
	int64_t dv;                    /* last data_version seen on conn */
	uint64_t gen;                  /* moves on every observed change */
	struct snap_live_image *cur;   /* newest image (one reference) */
	uint64_t size;                 /* image size at generation size_gen */
	uint64_t size_gen;             /* 0: size unknown */
	unsigned seq;                  /* image file numbers */
	int quiet;                     /* 1 during a restore: no connection */
};

/* The first column of the one row of sql on conn (a PRAGMA); a SQLite
 * result code. */
static int live_pragma_int(sqlite3 *conn, const char *sql, int64_t *out)
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
		return snap_err_sqlite_errno(live_pragma_int(conn,
				"PRAGMA data_version", out));
	rc = sqlite3_exec(conn, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = live_pragma_int(conn, "PRAGMA page_count", &pages);
	if (rc == SQLITE_OK)
		rc = live_pragma_int(conn, "PRAGMA page_size", &page_size);
	if (rc == SQLITE_OK)
		rc = live_pragma_int(conn, "PRAGMA data_version", out);
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
static int live_connect(const char *path, sqlite3 **out, snap_err *err)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL;
		rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
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

/* How live_refresh_locked asks. */
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
static uint64_t live_refresh_locked(struct snap_live *l, int how, int *busy)
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
		if (live_connect(l->path, &l->conn, NULL) != 0)
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
	pthread_mutex_init(&l->build_lock, NULL);
	pthread_mutex_init(&l->lock, NULL);

	/* Prove it is a database now, with SQLite's own words on failure. */
	rc = live_connect(db_path, &db, err);
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
	live_refresh_locked(l, 0, NULL);
	pthread_mutex_unlock(&l->lock);
	*out = l;
	return 0;
}

static void live_image_free(struct snap_live_image *im)
{
	if (im->fd >= 0)
		close(im->fd);
	free(im);
}

void snap_live_close(struct snap_live *l)
{
	if (!l)
		return;
	live_disconnect_locked(l);
	if (l->cur && --l->cur->refs == 0)
		live_image_free(l->cur);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->build_lock);
	free(l);
}

/*
 * A restore is about to run: the engine can restore across page sizes in
 * WAL mode only when no other connection has the database open, and the
 * watch connection would be one.  Close it, and keep image builds (which
 * open connections too) out until snap_live_resume.  The generation moves
 * on resume: the restore changed the database.
 */
void snap_live_quiesce(struct snap_live *l)
{
	pthread_mutex_lock(&l->build_lock);
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
	pthread_mutex_unlock(&l->build_lock);
}

uint64_t snap_live_gen(struct snap_live *l)
{
	uint64_t gen;

	pthread_mutex_lock(&l->lock);
	gen = live_refresh_locked(l, 0, NULL);
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
	gen = live_refresh_locked(l, LIVE_SIZE | (wal ? 0 : LIVE_NOWAIT),
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
	live_refresh_locked(l, 0, NULL);
	if (l->conn && sqlite3_prepare_v2(l->conn, "PRAGMA journal_mode", -1,
					  &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, len, "%s",
			 (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	pthread_mutex_unlock(&l->lock);
}

/* Copy the live database into path with one backup step. */
static int live_backup(const char *live, const char *path, snap_err *err)
{
	sqlite3 *src = NULL, *dst = NULL;
	sqlite3_backup *b;
	int rc, tries = 0;

	rc = live_connect(live, &src, err);
	if (rc != 0)
		return rc;
	rc = sqlite3_open_v2(path, &dst,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst, "PRAGMA journal_mode=OFF;"
				  "PRAGMA synchronous=OFF;"
				  "PRAGMA locking_mode=EXCLUSIVE;",
				  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, dst, rc, "creating image %s", path);
		goto out;
	}
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) {
		rc = snap_err_sqlite(err, dst, sqlite3_errcode(dst),
				     "copying %s", live);
		goto out;
	}
	for (;;) {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
		    ++tries < LIVE_BACKUP_TRIES) {
			sqlite3_sleep(20);
			continue;
		}
		break;
	}
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		rc = snap_err_sqlite(err, NULL, rc, "copying %s", live);
		goto out;
	}
	rc = 0;
out:
	sqlite3_close(dst);
	sqlite3_close(src);
	return rc;
}

/* Make a new image at generation gen; 0 or a negative errno. */
static int live_build(struct snap_live *l, uint64_t gen,
		      struct snap_live_image **out, snap_err *err)
{
	char path[PATH_MAX];
	struct snap_live_image *im;
	unsigned char mode[2];
	struct stat st;
	unsigned seq;
	int fd, rc;

	pthread_mutex_lock(&l->lock);
	seq = ++l->seq;
	pthread_mutex_unlock(&l->lock);
	if (snprintf(path, sizeof(path), "%s/image-%u.db", l->tmpdir, seq) >=
	    (int)sizeof(path))
		return snap_err_set(err, -ENAMETOOLONG, "staging path too long");
	unlink(path);
	rc = live_backup(l->path, path, err);
	if (rc != 0) {
		unlink(path);
		return rc;
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	unlink(path);
	if (fd < 0)
		return snap_err_set(err, -errno, "opening image %s: %s", path,
				    strerror(errno));
	/* Normalize a WAL-flagged copy to rollback-journal mode. */
	if (pread(fd, mode, 2, 18) == 2 && (mode[0] == 2 || mode[1] == 2)) {
		mode[0] = mode[1] = 1;
		if (pwrite(fd, mode, 2, 18) != 2) {
			rc = snap_err_set(err, -errno, "writing image: %s",
					  strerror(errno));
			close(fd);
			return rc;
		}
	}
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		close(fd);
		return snap_err_set(err, rc, "image: %s", strerror(-rc));
	}
	im = calloc(1, sizeof(*im));
	if (!im) {
		close(fd);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	im->fd = fd;
	im->size = (uint64_t)st.st_size;
	im->gen = gen;
	*out = im;
	return 0;
}

int snap_live_image_get(struct snap_live *l, struct snap_live_image **out,
			snap_err *err)
{
	struct snap_live_image *im = NULL, *old = NULL;
	uint64_t gen;
	int rc;

	pthread_mutex_lock(&l->build_lock);
	pthread_mutex_lock(&l->lock);
	gen = live_refresh_locked(l, 0, NULL);
	if (l->cur && l->cur->gen == gen) {
		l->cur->refs++;
		*out = l->cur;
		pthread_mutex_unlock(&l->lock);
		pthread_mutex_unlock(&l->build_lock);
		return 0;
	}
	pthread_mutex_unlock(&l->lock);

	rc = live_build(l, gen, &im, err);
	if (rc == 0) {
		pthread_mutex_lock(&l->lock);
		old = l->cur;
		im->refs = 2;            /* cur's and the caller's */
		l->cur = im;
		if (old && --old->refs == 0)
			live_image_free(old);
		pthread_mutex_unlock(&l->lock);
		*out = im;
	}
	pthread_mutex_unlock(&l->build_lock);
	return rc;
}

/*
 * Drop a reference.  When only the cache still holds the newest image and
 * the database moved on, the cache lets go too: an image costs as much disk
 * as the database, so at most one image of the current state is kept.
 */
void snap_live_image_put(struct snap_live *l, struct snap_live_image *im)
{
	struct snap_live_image *stale = NULL;
	int free_it;

	if (!im)
		return;
	pthread_mutex_lock(&l->lock);
	free_it = --im->refs == 0;
	if (im == l->cur && im->refs == 1 &&
	    live_refresh_locked(l, 0, NULL) != im->gen) {
		l->cur = NULL;
		stale = im;
	}
	pthread_mutex_unlock(&l->lock);
	if (free_it)
		live_image_free(im);
	else
		snap_live_image_put(l, stale);
}
