/*
 * fs/livereuse.c — a snapshot's image served as current.db when the live
 * database provably has not changed since the snapshot was taken.
 *
 * `cp current.db` right after a snapshot used to copy the whole database
 * into staging (liveimage.c) although the store already holds exactly
 * those bytes.  A read-only open now reads that snapshot's image instead
 * (the reader of snapshots/NAME, engine/image.h), when this module can
 * prove the two are the same state.  Correctness first: a stale image is
 * never served; any doubt means the ordinary peek or build.
 *
 * The proof.  The watch connection (live.c) answers PRAGMA data_version,
 * which, on one connection, differs between two calls whenever any other
 * connection committed in between (in rollback and in WAL mode alike: it
 * is how SQLite itself knows its page cache is stale).  live.c folds that,
 * the file's dev/ino and every reconnect into the generation: an equal
 * generation at two refreshes means no commit, no replacement of the file,
 * no restore (quiesce closes the connection, resume moves the
 * generation) between them.  For a snapshot the daemon takes (a name
 * touched in snapshots/, pending.c; the schedule, timer.c) the generation
 * is read just before (snap_live_capture_begin) and just after
 * (snap_live_capture_end) the engine's capture, whose one read transaction
 * lies between the two; when they are equal the snapshot is the state of
 * the database at that generation, and the proof records the snapshot's
 * id, its image hash and size, the generation, and the file's identity
 * then (dev, ino, size and mtime, after any checkpoint the capture did).
 * No proof while a restore is under way (the generation is not checked
 * then), when the connection could not be opened, or when the generation
 * moved: an application committed during the capture.
 *
 * At an open (snap_live_reuse_find): a refresh; the proof holds when the
 * generation is still the proof's and the file's identity is the one
 * recorded.  Then no commit happened since the snapshot was taken: the
 * snapshot is the live database now.  An image of this state already
 * built in staging is still preferred (splicing a file costs less than
 * decoding the snapshot's pages); otherwise no peek, no copy.  The file's size and mtime are not
 * needed for that; they are there so that a writer that is not SQLite
 * (a cp over the file in place) also ends the reuse, at the cost of
 * reusing less after a checkpoint without commits.
 *
 * Only the daemon's own snapshots are proven.  A snapshot snapctl takes
 * outside the daemon proves nothing here (the daemon does not see its
 * capture's bounds), so it is never reused, and the proof of a snapshot
 * the daemon took stays valid while the catalog changes around it: ids
 * are never reused (AUTOINCREMENT), and file.c also checks that the
 * catalog still has the snapshot with the proof's hash and size.
 *
 * Bytes.  A reused open reads the snapshot's image exactly: `cp
 * current.db` right after a snapshot gives a file byte-identical to
 * snapshots/NAME, in either journal mode, whose page 1 says rollback mode
 * (bytes 18-19 = 1, engine/capture.c), so `sqlite3 -readonly` opens it
 * without looking for -wal or -shm.  An image built into staging has the
 * same pages but not quite the same header: sqlite3_backup commits into
 * its destination, and a copy's change counter and version-valid-for
 * (bytes 24-27, 92-95) count the copy's own commits.  A built image has
 * 1 (snap_live_page1_normalize); a snapshot has what the engine's capture
 * leaves (2 or more: it counts up from one snapshot of a store to the
 * next).  Neither is the live database's own counter, and no reader
 * depends on it (SQLite uses it only to notice other connections' commits
 * to the same file), so both stay as they are; what matters is that one
 * handle never sees two headers (below).
 *
 * The snapshot goes away under a reader (retention, the trash emptied,
 * snapctl delete): its pages may be reclaimed, and their ids reused by
 * later pages.  file.c therefore checks after every read of a reused
 * image that the catalog still has the snapshot with the proof's hash
 * (snap_store_has: one indexed row, about a fifth of the read's cost with
 * snap_store_get's full row); if it is gone, or a read
 * failed, the handle falls back to a whole image of the live database
 * (snap_live_reuse_fallback), which has the same pages when the proof
 * still holds before and after that image is built, and file.c lays the
 * snapshot's 100-byte header over the image's in what the handle reads
 * (the counters above), so the reader sees one file.  If the database
 * changed meanwhile the read fails with EIO: the reader's state is gone
 * and a different one would mix two states in one file.
 *
 * Thread-safety: the proof and the counter are under live->lock; no other
 * lock is taken here but snap_live_image_get's (quiesce_lock, build_lock,
 * lock, in live.c's order).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "fs.h"
#include "live_int.h"

/* 1 when p holds now: the generation gen (just refreshed) is p's, the
 * watch connection is up and the file is the one p recorded.  l->lock
 * held. */
static int reuse_holds_locked(struct snap_live *l,
			      const struct snap_live_proof *p, uint64_t gen)
{
	struct stat st;

	if (!p->snap_id || l->quiet || !l->conn || gen != p->gen)
		return 0;
	if (stat(l->path, &st) != 0)
		return 0;
	return st.st_dev == p->dev && st.st_ino == p->ino &&
	       st.st_size == p->st_size &&
	       st.st_mtim.tv_sec == p->mtime.tv_sec &&
	       st.st_mtim.tv_nsec == p->mtime.tv_nsec;
}

/* The generation before a daemon snapshot's capture. */
void snap_live_capture_begin(struct snap_live *l, struct snap_live_mark *m)
{
	m->gen = 0;
	m->ok = 0;
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	m->gen = snap_live_refresh_locked(l, 0, NULL);
	m->ok = !l->quiet && l->conn != NULL;
	pthread_mutex_unlock(&l->lock);
}

/*
 * After the capture of snapshot snap_id (0: none was taken): when the
 * generation did not move across it, record the proof that the snapshot
 * is the database at that generation (it replaces an older one, which
 * cannot hold any more unless the generation is still the same).
 */
void snap_live_capture_end(struct snap_live *l, const struct snap_live_mark *m,
			   int64_t snap_id, const uint8_t sha256[32],
			   uint64_t size)
{
	struct snap_live_proof p;
	struct stat st;
	uint64_t gen;
	int proven;

	if (!l || !m->ok || snap_id <= 0)
		return;
	pthread_mutex_lock(&l->lock);
	gen = snap_live_refresh_locked(l, 0, NULL);
	proven = !l->quiet && l->conn && gen == m->gen &&
		 stat(l->path, &st) == 0 && st.st_dev == l->dev &&
		 st.st_ino == l->ino;
	if (proven) {
		memset(&p, 0, sizeof(p));
		p.snap_id = snap_id;
		memcpy(p.sha256, sha256, sizeof(p.sha256));
		p.size = size;
		p.gen = gen;
		p.dev = st.st_dev;
		p.ino = st.st_ino;
		p.st_size = st.st_size;
		p.mtime = st.st_mtim;
		l->proof = p;
	}
	pthread_mutex_unlock(&l->lock);
	snap_log(LOG_DEBUG, "current.db: snapshot %lld %s", (long long)snap_id,
		 proven ? "is the live database at this generation: opens "
		 "read its image until the database changes" :
		 "may not be the live database (it changed during the "
		 "capture): opens copy the database");
}

/*
 * The proof, when it holds now and no whole image of this state is built
 * already: splicing that file costs less than decoding the snapshot's
 * pages, so it is shared as before (liveimage.c).
 */
int snap_live_reuse_find(struct snap_live *l, struct snap_live_proof *out)
{
	uint64_t gen;
	int ok = 0;

	pthread_mutex_lock(&l->lock);
	if (l->proof.snap_id) {
		gen = snap_live_refresh_locked(l, 0, NULL);
		ok = reuse_holds_locked(l, &l->proof, gen) &&
		     !(l->cur && l->cur->gen == gen && l->cur->fd >= 0 &&
		       !l->cur->build_rc);
		if (ok)
			*out = l->proof;
	}
	pthread_mutex_unlock(&l->lock);
	return ok;
}

/* Whether p (a copy a handle keeps) still holds now. */
int snap_live_reuse_holds(struct snap_live *l, const struct snap_live_proof *p)
{
	int ok;

	pthread_mutex_lock(&l->lock);
	ok = reuse_holds_locked(l, p, snap_live_refresh_locked(l, 0, NULL));
	pthread_mutex_unlock(&l->lock);
	return ok;
}

/* Snapshot snap_id is gone from the catalog: nothing reuses it now. */
void snap_live_reuse_drop(struct snap_live *l, int64_t snap_id)
{
	pthread_mutex_lock(&l->lock);
	if (l->proof.snap_id == snap_id)
		memset(&l->proof, 0, sizeof(l->proof));
	pthread_mutex_unlock(&l->lock);
}

/* An open was served by a snapshot's image (status.json). */
void snap_live_reuse_count(struct snap_live *l)
{
	pthread_mutex_lock(&l->lock);
	l->reused++;
	pthread_mutex_unlock(&l->lock);
}

/*
 * A whole image of the live database for a reader whose snapshot went
 * away: built (or the current one) only when p holds before, and still
 * after, so that nothing was committed from before the build to after it
 * and the image is the state p's snapshot was.  -ESTALE when the database
 * changed.
 */
int snap_live_reuse_fallback(struct snap_live *l,
			     const struct snap_live_proof *p,
			     struct snap_live_image **out, snap_err *err)
{
	struct snap_live_image *im = NULL;
	int rc;

	if (!snap_live_reuse_holds(l, p))
		return snap_err_set(err, -ESTALE, "snapshot %lld, which this "
				    "reader of current.db was reading, is "
				    "gone, and the database changed since",
				    (long long)p->snap_id);
	rc = snap_live_image_get(l, &im, err);
	if (rc != 0)
		return rc;
	if (im->size != p->size || !snap_live_reuse_holds(l, p)) {
		snap_live_image_put(l, im);
		return snap_err_set(err, -ESTALE, "snapshot %lld, which this "
				    "reader of current.db was reading, is "
				    "gone, and the database changed while it "
				    "was copied", (long long)p->snap_id);
	}
	*out = im;
	return 0;
}
