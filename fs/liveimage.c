/*
 * fs/liveimage.c — consistent images of the live database for read-only
 * opens of current.db: peeks, held read transactions, and copies built
 * into the staging directory (live.c says when the database changed).
 *
 * Before any of this, a read-only open is served by the image of the
 * daemon's newest snapshot when that is provably the live database now
 * (livereuse.c): no peek, no copy.
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
 *
 * Thread-safety: as live.c's (the lock order quiesce_lock, build_lock,
 * lock); the reaper thread takes them in that order too.
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

/* Now on the monotonic clock, in nanoseconds (hold deadlines). */
static int64_t live_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Take im off the list of held images, if it is on it. */
void snap_live_unhold_locked(struct snap_live *l, struct snap_live_image *im)
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
void snap_live_image_free(struct snap_live_image *im)
{
	snap_peek_end(im->peek);
	if (im->fd >= 0)
		close(im->fd);
	free(im->head);
	free(im);
}

/* Copy the database src reads (its transaction, or a new one) into path
 * with one backup step (engine/livedb.c: its busy policy, its retry). */
static int live_backup(sqlite3 *src, const char *path, snap_err *err)
{
	sqlite3 *dst = NULL;
	int rc;

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
	rc = snap_livedb_backup_all(dst, src, path, NULL, err);
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
		rc = snap_livedb_open(l->path, SNAP_LIVEDB_DAEMON, NULL,
				      &own, err);
		if (rc != 0)
			return rc;
		src = own;
	}
	rc = live_backup(src, path, err);
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
		snap_livedb_page1_normalize(hdr, ps ? (uint64_t)st.st_size / ps
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
int snap_live_materialize(struct snap_live *l, struct snap_live_image *im,
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
	snap_live_unhold_locked(l, im);
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
void *snap_live_reaper(void *arg)
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
		if (snap_live_materialize(l, due, &err) == 0)
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
		rc = pthread_create(&l->reaper, NULL, snap_live_reaper, l);
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
		snap_live_unhold_locked(l, old);
		return old;
	}
	return NULL;
}

/* A whole consistent image of the live database now (reused while
 * unchanged). */
int snap_live_image_get(struct snap_live *l, struct snap_live_image **out,
			snap_err *err)
{
	struct snap_live_image *im = NULL, *old = NULL;
	uint64_t gen;
	int rc;

	pthread_rwlock_rdlock(&l->quiesce_lock);
	pthread_mutex_lock(&l->build_lock);
	pthread_mutex_lock(&l->lock);
	gen = snap_live_refresh_locked(l, 0, NULL);
	if (live_reusable_locked(l, gen) && (l->cur->fd >= 0 || l->cur->peek)) {
		/* Built, or held: then built from its own transaction. */
		im = l->cur;
		im->refs++;
		pthread_mutex_unlock(&l->lock);
		rc = snap_live_materialize(l, im, err);
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
		snap_live_image_free(old);
	return rc;
}

/* The image a read-only open reads: the current one or a new peek. */
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
	gen = snap_live_refresh_locked(l, 0, NULL);
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
		rc = snap_live_materialize(l, im, err);
		pthread_mutex_unlock(&l->build_lock);
	}
	pthread_rwlock_unlock(&l->quiesce_lock);
	if (old)
		snap_live_image_free(old);
	if (rc != 0) {
		snap_live_image_put(l, im);
		return rc;
	}
	*out = im;
	return 0;
}

/* Where the bytes of a read are: in memory or at off in a file. */
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
	rc = snap_live_materialize(l, im, err);
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
		snap_live_unhold_locked(l, im);
	if (im == l->cur && im->refs == 1 &&
	    (im->peek || im->build_rc ||
	     snap_live_refresh_locked(l, 0, NULL) != im->gen)) {
		l->cur = NULL;
		stale = im;
	}
	pthread_mutex_unlock(&l->lock);
	if (free_it)
		snap_live_image_free(im);
	else
		snap_live_image_put(l, stale);
}

/* How many opens a peek served, how many images were built, how many
 * opens read a snapshot's image (livereuse.c). */
void snap_live_counts(struct snap_live *l, uint64_t *peeks, uint64_t *builds,
		      uint64_t *reused)
{
	pthread_mutex_lock(&l->lock);
	*peeks = l->peeks;
	*builds = l->builds;
	*reused = l->reused;
	pthread_mutex_unlock(&l->lock);
}
