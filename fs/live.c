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
 * write — engine/PITFALLS.md 1, 6) into a private file in the staging
 * directory, which is unlinked at once and read through its descriptor.  Page
 * 1 is normalized to rollback-journal mode (bytes 18-19 = 1), as snapshots
 * are, so `sqlite3 -readonly` works on a copy and never looks for -wal/-shm.
 * The newest image is kept and handed to every open while the generation is
 * unchanged.
 *
 * Peeks: a read-only open does not build that copy.  It takes a peek
 * (peek.c): the size and the first LIVE_PEEK_BYTES in one read
 * transaction on a connection of its own, which stays open, so that the
 * first read beyond the head copies the rest (the backup, into staging as
 * above) from the very same transaction: one committed state for the
 * whole handle, however long applications kept committing meanwhile.  A
 * file manager that reads the first bytes and closes never causes a copy
 * nor a staging file; a database no larger than the head never needs one
 * (the transaction ends at once and the head is the image).  Images are
 * in three states: complete in memory (head only), held (head and a read
 * transaction, the rest not copied yet), built (a file; the head, if any,
 * is kept for the reads it covers and its page 1 is written over the
 * copy's, so one handle never sees two page 1s).
 *
 * How long a transaction is held.  In rollback mode a read transaction
 * holds a SHARED lock, and an application's commit waits for it (or fails
 * at once with busy_timeout 0); in WAL mode writers never wait, but a
 * checkpoint cannot pass the reader, so the WAL grows.  A held peek is
 * therefore built when it is LIVE_HOLD_ROLLBACK_MS (500 ms; WAL:
 * LIVE_HOLD_WAL_MS, 5 s) old and still open: by the reaper thread, from
 * the held transaction, after which the transaction ends.  The reader
 * keeps its one state; the image costs what every open cost before
 * peeks.  Why 500 ms: the programs that read on (cp, rsync, tar, gio,
 * sqlite3, a file manager's copy) send their next read within
 * milliseconds, and a file manager's peek closes as fast, so the bound
 * only meets a handle that is left open idle; for it, 500 ms is what a
 * build of a database of a few hundred MB held the same lock for at every
 * open before (294 MB: 0.5 s), so no writer waits longer than it did,
 * plus the build itself.  The bound is measured from the open, not
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

#define LIVE_BACKUP_TRIES 500   /* backup_step retries on BUSY (x 20 ms) */
#define LIVE_PEEK_BYTES (128 * 1024)  /* a peek's head: one FUSE read */
#define LIVE_HOLD_ROLLBACK_MS 500     /* see "How long" above */
#define LIVE_HOLD_WAL_MS 5000

struct snap_live {
	char path[PATH_MAX];           /* the live database (absolute) */
	char wal_path[PATH_MAX + 4];   /* and its -wal file */
	char tmpdir[PATH_MAX];         /* where images are built */
	pthread_rwlock_t quiesce_lock; /* shared: peeks, builds; exclusive:
					  from quiesce to resume */
	pthread_mutex_t build_lock;    /* serializes builds */
	pthread_mutex_t lock;          /* protects the fields below */
	pthread_cond_t reap_cond;      /* a held peek was added; stop */
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
	struct snap_live_image *held;  /* images holding a read transaction */
	pthread_t reaper;              /* builds held images past their time */
	int reaper_started;
	int reaper_stop;
	int no_peeks;                  /* a peek could not see its pages:
					  copy whole images from then on */
	uint64_t peeks;                /* opens served by a peek (status) */
	uint64_t builds;               /* images copied into staging */
};

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
	live_refresh_locked(l, 0, NULL);
	pthread_mutex_unlock(&l->lock);
	*out = l;
	return 0;
}

/* Now on the monotonic clock, in nanoseconds (hold deadlines). */
static int64_t live_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Take im off the list of held images, if it is on it. */
static void live_unhold_locked(struct snap_live *l, struct snap_live_image *im)
{
	struct snap_live_image **pp;

	for (pp = &l->held; *pp; pp = &(*pp)->held_next)
		if (*pp == im) {
			*pp = im->held_next;
			im->held_next = NULL;
			return;
		}
}

/* Free an image nobody references (and no list holds): a held read
 * transaction ends here.  No lock held: closing talks to SQLite. */
static void live_image_free(struct snap_live_image *im)
{
	snap_peek_end(im->peek);
	if (im->fd >= 0)
		close(im->fd);
	free(im->head);
	free(im);
}

static void *live_reaper(void *arg);

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
		live_unhold_locked(l, cur);
	}
	l->cur = NULL;
	if (cur)
		live_image_free(cur);
	pthread_cond_destroy(&l->reap_cond);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->build_lock);
	pthread_rwlock_destroy(&l->quiesce_lock);
	free(l);
}

static int live_materialize(struct snap_live *l, struct snap_live_image *im,
			    snap_err *err);

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
		live_materialize(l, im, &err);    /* takes it off the list */
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

static void live_put32(unsigned char *p, uint32_t v)
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
void snap_live_page1_normalize(unsigned char *hdr, uint64_t pages)
{
	hdr[18] = hdr[19] = 1;
	live_put32(hdr + 24, 1);
	live_put32(hdr + 28, (uint32_t)pages);
	live_put32(hdr + 40, 1);
	live_put32(hdr + 92, 1);
	live_put32(hdr + 96, (uint32_t)sqlite3_libversion_number());
}

/* Copy the database src reads (its transaction, or a new one) into path
 * with one backup step. */
static int live_backup(sqlite3 *src, const char *live, const char *path,
		       snap_err *err)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *b;
	int rc, tries = 0;

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
	return rc;
}

/*
 * Copy the live database into a new file in the staging directory, from
 * src's read transaction (a held peek) or, without src, from a connection
 * of its own; the file is unlinked at once and its descriptor returned.
 */
static int live_copy(struct snap_live *l, sqlite3 *src, int *out,
		     snap_err *err)
{
	char path[PATH_MAX];
	sqlite3 *own = NULL;
	unsigned seq;
	int fd, rc;

	pthread_mutex_lock(&l->lock);
	seq = ++l->seq;
	pthread_mutex_unlock(&l->lock);
	if (snprintf(path, sizeof(path), "%s/image-%u.db", l->tmpdir, seq) >=
	    (int)sizeof(path))
		return snap_err_set(err, -ENAMETOOLONG, "staging path too long");
	unlink(path);
	if (!src) {
		rc = snap_live_connect(l->path, NULL, &own, err);
		if (rc != 0)
			return rc;
		src = own;
	}
	rc = live_backup(src, l->path, path, err);
	sqlite3_close(own);
	if (rc != 0) {
		unlink(path);
		return rc;
	}
	fd = open(path, O_RDWR | O_CLOEXEC);
	unlink(path);
	if (fd < 0)
		return snap_err_set(err, -errno, "opening image %s: %s", path,
				    strerror(errno));
	pthread_mutex_lock(&l->lock);
	l->builds++;
	pthread_mutex_unlock(&l->lock);
	*out = fd;
	return 0;
}

/* Make a new whole image at generation gen; 0 or a negative errno. */
static int live_build(struct snap_live *l, uint64_t gen,
		      struct snap_live_image **out, snap_err *err)
{
	struct snap_live_image *im;
	unsigned char hdr[100];
	struct stat st;
	uint32_t ps;
	int fd, rc;

	rc = live_copy(l, NULL, &fd, err);
	if (rc != 0)
		return rc;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		close(fd);
		return snap_err_set(err, rc, "image: %s", strerror(-rc));
	}
	/* Normalize page 1 (a copy of an empty database has none). */
	if (pread(fd, hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
	    memcmp(hdr, "SQLite format 3", 16) == 0) {
		ps = (uint32_t)hdr[16] << 8 | hdr[17];
		if (ps == 1)
			ps = 65536;
		snap_live_page1_normalize(hdr, ps ? (uint64_t)st.st_size / ps
						  : 0);
		if (pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr)) {
			rc = snap_err_set(err, -errno, "writing image: %s",
					  strerror(errno));
			close(fd);
			return rc;
		}
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

/*
 * Build the rest of a held image: copy the whole database from the peek's
 * own read transaction into staging, write the head's page 1 over the
 * copy's, end the transaction.  The caller holds quiesce_lock (either
 * way) and build_lock, and a reference.  0 when the image is built (now
 * or before); otherwise the error, which later reads get too (logged
 * here, once).
 */
static int live_materialize(struct snap_live *l, struct snap_live_image *im,
			    snap_err *err)
{
	struct snap_peek *p;
	struct stat st;
	int fd = -1, rc;

	pthread_mutex_lock(&l->lock);
	p = im->peek;
	rc = im->build_rc ? im->build_rc : im->fd >= 0 ? 0 : -EIO;
	pthread_mutex_unlock(&l->lock);
	if (!p)
		return rc;
	rc = live_copy(l, snap_peek_db(p), &fd, err);
	if (rc == 0 && pwrite(fd, im->head, im->page_size, 0) !=
		       (ssize_t)im->page_size)
		rc = snap_err_set(err, -errno, "writing image: %s",
				  strerror(errno));
	if (rc == 0 && fstat(fd, &st) != 0)
		rc = snap_err_set(err, -errno, "image: %s", strerror(errno));
	/* The size the reader was told is page_count * page_size of this
	 * transaction, which is what the backup copies. */
	if (rc == 0 && (uint64_t)st.st_size != im->size &&
	    ftruncate(fd, (off_t)im->size) != 0)
		rc = snap_err_set(err, -errno, "image: %s", strerror(errno));
	if (rc != 0 && fd >= 0) {
		close(fd);
		fd = -1;
	}
	pthread_mutex_lock(&l->lock);
	im->peek = NULL;
	live_unhold_locked(l, im);
	if (rc == 0)
		im->fd = fd;
	else
		im->build_rc = rc;
	pthread_mutex_unlock(&l->lock);
	snap_peek_end(p);
	if (rc != 0)
		snap_log(LOG_ERR, "current.db: copying the image of the live "
			 "database beyond its first %zu bytes: %s",
			 im->head_len, err->msg);
	return rc;
}

/*
 * The reaper: builds every held image whose hold time is up, so that no
 * read transaction is held longer than LIVE_HOLD_*_MS (above).
 */
static void *live_reaper(void *arg)
{
	struct snap_live *l = arg;
	struct snap_live_image *im, *due;
	struct timespec ts;
	int64_t now, next;
	snap_err err;

	pthread_mutex_lock(&l->lock);
	while (!l->reaper_stop) {
		now = live_mono_ns();
		due = NULL;
		next = INT64_MAX;
		for (im = l->held; im && !due; im = im->held_next) {
			if (im->hold_until_ns <= now)
				due = im;
			else if (im->hold_until_ns < next)
				next = im->hold_until_ns;
		}
		if (!due) {
			if (next == INT64_MAX) {
				pthread_cond_wait(&l->reap_cond, &l->lock);
			} else {
				ts.tv_sec = next / 1000000000LL;
				ts.tv_nsec = next % 1000000000LL;
				pthread_cond_timedwait(&l->reap_cond, &l->lock,
						       &ts);
			}
			continue;
		}
		due->refs++;
		pthread_mutex_unlock(&l->lock);
		snap_err_clear(&err);
		pthread_rwlock_rdlock(&l->quiesce_lock);
		pthread_mutex_lock(&l->build_lock);
		if (live_materialize(l, due, &err) == 0)
			snap_log(LOG_DEBUG, "current.db: a reader kept its "
				 "file open past the hold time without "
				 "reading on: image built, read transaction "
				 "ended");
		pthread_mutex_unlock(&l->build_lock);
		pthread_rwlock_unlock(&l->quiesce_lock);
		snap_live_image_put(l, due);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* Put a new held image on the list and wake (or start) the reaper; 0, or
 * -1 when there is no reaper to bound the hold. */
static int live_hold_locked(struct snap_live *l, struct snap_live_image *im,
			    int wal)
{
	int rc;

	if (!l->reaper_started) {
		rc = pthread_create(&l->reaper, NULL, live_reaper, l);
		if (rc != 0) {
			snap_log(LOG_WARNING, "current.db: cannot start the "
				 "thread that ends held reads (%s); copying "
				 "whole images at open", strerror(rc));
			return -1;
		}
		l->reaper_started = 1;
	}
	im->hold_until_ns = live_mono_ns() + 1000000LL *
		(wal ? LIVE_HOLD_WAL_MS : LIVE_HOLD_ROLLBACK_MS);
	im->held_next = l->held;
	l->held = im;
	pthread_cond_signal(&l->reap_cond);
	return 0;
}

/* cur, if a reader opening now may share it: the current generation,
 * nothing failed. */
static int live_reusable_locked(struct snap_live *l, uint64_t gen)
{
	return l->cur && l->cur->gen == gen && l->cur->build_rc == 0;
}

/* Make im the current image (one reference for cur), dropping the old
 * one; returns the old image to free when nobody else held it. */
static struct snap_live_image *live_set_cur_locked(struct snap_live *l,
						   struct snap_live_image *im)
{
	struct snap_live_image *old = l->cur;

	l->cur = im;
	if (old && --old->refs == 0) {
		live_unhold_locked(l, old);
		return old;
	}
	return NULL;
}

int snap_live_image_get(struct snap_live *l, struct snap_live_image **out,
			snap_err *err)
{
	struct snap_live_image *im = NULL, *old = NULL;
	uint64_t gen;
	int rc;

	pthread_rwlock_rdlock(&l->quiesce_lock);
	pthread_mutex_lock(&l->build_lock);
	pthread_mutex_lock(&l->lock);
	gen = live_refresh_locked(l, 0, NULL);
	if (live_reusable_locked(l, gen) && (l->cur->fd >= 0 || l->cur->peek)) {
		/* Built, or held: then built from its own transaction. */
		im = l->cur;
		im->refs++;
		pthread_mutex_unlock(&l->lock);
		rc = live_materialize(l, im, err);
		pthread_mutex_unlock(&l->build_lock);
		pthread_rwlock_unlock(&l->quiesce_lock);
		if (rc != 0) {
			snap_live_image_put(l, im);
			return rc;
		}
		*out = im;
		return 0;
	}
	pthread_mutex_unlock(&l->lock);

	rc = live_build(l, gen, &im, err);
	if (rc == 0) {
		pthread_mutex_lock(&l->lock);
		im->refs = 2;            /* cur's and the caller's */
		old = live_set_cur_locked(l, im);
		pthread_mutex_unlock(&l->lock);
		*out = im;
	}
	pthread_mutex_unlock(&l->build_lock);
	pthread_rwlock_unlock(&l->quiesce_lock);
	if (old)
		live_image_free(old);
	return rc;
}

int snap_live_image_open(struct snap_live *l, struct snap_live_image **out,
			 snap_err *err)
{
	struct snap_live_image *im, *old = NULL;
	struct snap_peek *held = NULL;
	struct snap_peek_head h;
	uint64_t gen;
	int rc, now = 0;

	pthread_rwlock_rdlock(&l->quiesce_lock);
	pthread_mutex_lock(&l->lock);
	gen = live_refresh_locked(l, 0, NULL);
	if (live_reusable_locked(l, gen) || l->no_peeks) {
		if (l->no_peeks) {
			pthread_mutex_unlock(&l->lock);
			pthread_rwlock_unlock(&l->quiesce_lock);
			return snap_live_image_get(l, out, err);
		}
		l->cur->refs++;
		*out = l->cur;
		pthread_mutex_unlock(&l->lock);
		pthread_rwlock_unlock(&l->quiesce_lock);
		return 0;
	}
	pthread_mutex_unlock(&l->lock);

	rc = snap_peek_begin(l->path, LIVE_PEEK_BYTES, &held, &h, err);
	if (rc == 0 && !(im = calloc(1, sizeof(*im)))) {
		snap_peek_end(held);
		free(h.bytes);
		rc = snap_err_set(err, -ENOMEM, "out of memory");
	}
	if (rc != 0) {
		pthread_rwlock_unlock(&l->quiesce_lock);
		if (rc != -EPROTO)
			return rc;
		/* The peek could not see its pages: copy the whole, now and
		 * from now on. */
		pthread_mutex_lock(&l->lock);
		l->no_peeks = 1;
		pthread_mutex_unlock(&l->lock);
		snap_log(LOG_WARNING, "current.db: %s; copying whole images "
			 "at every open from now on", err->msg);
		snap_err_clear(err);
		return snap_live_image_get(l, out, err);
	}
	im->fd = -1;
	im->head = h.bytes;
	im->head_len = h.len;
	im->size = h.size;
	im->page_size = h.page_size;
	im->gen = gen;
	im->peek = held;
	im->refs = 2;                    /* cur's and the caller's */
	pthread_mutex_lock(&l->lock);
	old = live_set_cur_locked(l, im);
	if (held && live_hold_locked(l, im, h.wal) != 0)
		now = 1;
	l->peeks++;
	pthread_mutex_unlock(&l->lock);
	if (now) {
		pthread_mutex_lock(&l->build_lock);
		rc = live_materialize(l, im, err);
		pthread_mutex_unlock(&l->build_lock);
	}
	pthread_rwlock_unlock(&l->quiesce_lock);
	if (old)
		live_image_free(old);
	if (rc != 0) {
		snap_live_image_put(l, im);
		return rc;
	}
	*out = im;
	return 0;
}

int snap_live_image_read(struct snap_live *l, struct snap_live_image *im,
			 uint64_t off, size_t size, int *fd,
			 const void **buf, size_t *len, snap_err *err)
{
	uint64_t end;
	int rc;

	*fd = -1;
	*buf = NULL;
	*len = 0;
	if (off >= im->size)
		return 0;
	end = im->size - off < size ? im->size : off + size;
	*len = (size_t)(end - off);
	if (end <= im->head_len) {
		*buf = im->head + off;
		return 0;
	}
	pthread_mutex_lock(&l->lock);
	*fd = im->fd;
	rc = im->build_rc;
	pthread_mutex_unlock(&l->lock);
	if (*fd >= 0 || rc != 0)
		return rc;
	/* The first read beyond the head: the rest, from the same
	 * transaction. */
	pthread_rwlock_rdlock(&l->quiesce_lock);
	pthread_mutex_lock(&l->build_lock);
	rc = live_materialize(l, im, err);
	pthread_mutex_unlock(&l->build_lock);
	pthread_rwlock_unlock(&l->quiesce_lock);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&l->lock);
	*fd = im->fd;
	pthread_mutex_unlock(&l->lock);
	return 0;
}

/*
 * Drop a reference.  When only the cache still holds the newest image and
 * the database moved on, the cache lets go too: an image costs as much disk
 * as the database, so at most one image of the current state is kept.  A
 * held image is let go as soon as no reader has it open (its read
 * transaction ends), and so is one whose build failed.
 */
void snap_live_image_put(struct snap_live *l, struct snap_live_image *im)
{
	struct snap_live_image *stale = NULL;
	int free_it;

	if (!im)
		return;
	pthread_mutex_lock(&l->lock);
	free_it = --im->refs == 0;
	if (free_it)
		live_unhold_locked(l, im);
	if (im == l->cur && im->refs == 1 &&
	    (im->peek || im->build_rc ||
	     live_refresh_locked(l, 0, NULL) != im->gen)) {
		l->cur = NULL;
		stale = im;
	}
	pthread_mutex_unlock(&l->lock);
	if (free_it)
		live_image_free(im);
	else
		snap_live_image_put(l, stale);
}

void snap_live_counts(struct snap_live *l, uint64_t *peeks, uint64_t *builds)
{
	pthread_mutex_lock(&l->lock);
	*peeks = l->peeks;
	*builds = l->builds;
	pthread_mutex_unlock(&l->lock);
}
