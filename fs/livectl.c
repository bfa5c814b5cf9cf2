/*
 * fs/livectl.c — the daemon's view of the live database from open to
 * close (live.c, liveimage.c): its locks, the reaper thread, and the quiet
 * around a restore.
 *
 * During a restore through the mount the watch connection is closed, held
 * peeks are built and their transactions ended, and peeks and builds wait
 * (snap_live_quiesce): the engine can switch a WAL database's page size
 * only when no other connection is open, and a held SHARED lock would
 * make a rollback-mode restore wait.
 *
 * Thread-safety: live.c's lock order (quiesce_lock, build_lock, lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "live_int.h"

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
	pthread_mutex_init(&l->owner_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->reap_cond, &ca);
	pthread_condattr_destroy(&ca);
}

/* Open the daemon's view of the live database at db_path; images go to
 * tmpdir. */
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
	rc = snap_livedb_open(db_path, SNAP_LIVEDB_DAEMON, NULL, &db, err);
	if (rc == 0) {
		rc = snap_livedb_data_version(db, &dv, NULL);
		if (rc == 0) {
			sqlite3_stmt *st = NULL;
			int src = sqlite3_prepare_v2(db,
				"SELECT count(*) FROM sqlite_schema", -1, &st,
				NULL);
			if (src == SQLITE_OK)
				src = sqlite3_step(st);
			if (src != SQLITE_ROW)
				rc = snap_livedb_read_error(db, src, db_path,
							    err);
			sqlite3_finalize(st);
		} else if (snap_livedb_read_error(db,
						  sqlite3_extended_errcode(db),
						  db_path, err) != -ELOOP) {
			snap_err_sqlite(err, db, SQLITE_NOTADB, "reading %s",
					db_path);
		}
		sqlite3_close(db);
	}
	if (rc == 0 && lstat(db_path, &l->owned) == 0 &&
	    S_ISREG(l->owned.st_mode)) {
		l->owner = l->owned.st_uid;     /* whose history it is */
		l->have_owned = 1;
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

/* Stop the reaper, close the connection, free the current image. */
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
	snap_live_disconnect_locked(l);
	if (l->cur && --l->cur->refs == 0) {
		cur = l->cur;
		snap_live_unhold_locked(l, cur);
	}
	l->cur = NULL;
	if (cur)
		snap_live_image_free(cur);
	pthread_cond_destroy(&l->reap_cond);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->owner_lock);
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
	snap_live_disconnect_locked(l);
	l->quiet = 1;
	pthread_mutex_unlock(&l->lock);
}

/* After a restore: peeks and builds may run again; the generation moves. */
void snap_live_resume(struct snap_live *l)
{
	pthread_mutex_lock(&l->lock);
	l->quiet = 0;
	l->gen++;
	pthread_mutex_unlock(&l->lock);
	pthread_rwlock_unlock(&l->quiesce_lock);
}
