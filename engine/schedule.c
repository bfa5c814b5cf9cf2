/*
 * engine/schedule.c — automatic snapshots at an interval, only of a
 * database that changed.
 *
 * Change detection.  An observation of the live database is:
 *   - PRAGMA data_version on a connection kept open on it (the watch
 *     connection); the value moves whenever another connection commits, in
 *     rollback and WAL mode, and not when one only reads or checkpoints;
 *   - stat() of the database file: device, inode, size, mtime (a file
 *     replaced by rename, or rewritten by something that is not SQLite);
 *   - stat() of its -wal: present, inode, size, mtime.
 * The database changed when the current observation differs from the mark,
 * the observation recorded for the newest automatic snapshot.  No page is
 * read, and the file is never open()ed here: everything goes through SQLite
 * (engine/PITFALLS.md 2).  When the database file is replaced, the watch
 * connection is reopened on the new file, found by its inode.  When
 * data_version cannot be read (the file is locked, or no longer a database)
 * the answer is "changed": the snapshot then waits for the lock or fails and
 * says why.
 *
 * The mark.  The observation is taken before the snapshot's read
 * transaction, so a commit racing with the snapshot leaves the mark behind
 * and the next tick takes another snapshot rather than missing one.  It
 * becomes the mark only after the snapshot succeeded: a failed snapshot is
 * retried at the next due tick.  A snapshot's own passive checkpoint writes
 * the database file in WAL mode, which moves its mtime; so when data_version
 * did not move during the snapshot, the file attributes are read again after
 * it and those become the mark (a non-SQLite write in that window would be
 * missed; that is the price of not snapshotting every WAL database twice).
 *
 * After opening there is no mark: the database may have changed while no
 * daemon watched.  The first due tick therefore takes a snapshot, and so
 * that a restart without changes adds nothing, every automatic snapshot
 * whose image (SHA-256, page size and count) equals the newest snapshot
 * taken before it is deleted again at once (the history then shows the
 * snapshot and its deletion).  This also absorbs false alarms of the file
 * attributes.
 *
 * Time.  `next` starts at the opening time plus the interval.  A tick at or
 * after `next` advances it by whole intervals to the first one in the
 * future, so missed intervals (a suspended machine) are skipped, not
 * replayed.  Ticks take the time as an argument: tests drive the schedule
 * with synthetic times.
 *
 * Failures of the free-space guard and of the snapshot are recorded as
 * "snapshot" events with ok=0, so they reach the failure hook (the
 * snapshot and the guard's -ENOSPC record their own; other failures of the
 * guard are recorded here).  Retention runs only after a snapshot was
 * kept, and only with a policy (keep rules or max_size); it records its own
 * "prune" event.
 *
 * Caveat: the watch connection counts as an open connection, so in WAL mode
 * a restore across page sizes (engine/PITFALLS.md 10) is refused while a
 * scheduler is open in the same process, as it is while an application holds
 * one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "events.h"
#include "livedb.h"
#include "schedule.h"
#include "snapshot.h"
#include "store_int.h"
#include "sys.h"

/* What the live database looks like at one moment. */
typedef struct sched_obs {
	int db_exists;           /* stat() of the database succeeded */
	dev_t dev;               /* its identity: a rename over it moves */
	ino_t ino;               /* these */
	off_t size;              /* size and mtime: writes not by SQLite */
	struct timespec mtim;
	int wal_exists;          /* the -wal file exists */
	ino_t wal_ino;           /* and its identity, size, mtime */
	off_t wal_size;
	struct timespec wal_mtim;
	int dv_ok;               /* data_version was read */
	int64_t dv;              /* PRAGMA data_version on the watch conn */
} sched_obs;

struct snap_sched {
	snap_store *s;
	snap_sched_opts o;       /* a copy */
	int64_t next_ns;         /* next due time, 0 = no schedule */
	char wal_path[4200];     /* "<db>-wal" */
	sqlite3 *conn;           /* watch connection, NULL when the file is
				  * missing */
	dev_t conn_dev;          /* the file conn was opened on */
	ino_t conn_ino;
	int have_mark;           /* mark holds the last snapshot's view */
	sched_obs mark;
};

/* (Re)open the watch connection on the database file now at the path. */
static int sched_connect(snap_sched *sc, const struct stat *st, snap_err *err)
{
	const char *path = snap_store_db_path(sc->s);
	sqlite3 *db = NULL;
	int rc;

	if (sc->conn) {
		sqlite3_close(sc->conn);
		sc->conn = NULL;
	}
	/* Read-write only so SQLite can roll back a hot journal; nothing is
	 * ever written through it.  The short wait: a data_version that
	 * cannot be read in time counts as a change. */
	rc = snap_livedb_open(path, SNAP_LIVEDB_RW | SNAP_LIVEDB_SHORT, NULL,
			      &db, err);
	if (rc)
		return rc;
	sc->conn = db;
	sc->conn_dev = st->st_dev;
	sc->conn_ino = st->st_ino;
	return 0;
}

/* Observe the live database now (see the top of this file). */
static void sched_observe(snap_sched *sc, sched_obs *o)
{
	struct stat st;

	memset(o, 0, sizeof(*o));
	if (snap_sys_stat(snap_store_db_path(sc->s), &st) == 0) {
		o->db_exists = 1;
		o->dev = st.st_dev;
		o->ino = st.st_ino;
		o->size = st.st_size;
		o->mtim = st.st_mtim;
		if (!sc->conn || sc->conn_dev != st.st_dev ||
		    sc->conn_ino != st.st_ino)
			sched_connect(sc, &st, NULL);
	}
	if (snap_sys_stat(sc->wal_path, &st) == 0) {
		o->wal_exists = 1;
		o->wal_ino = st.st_ino;
		o->wal_size = st.st_size;
		o->wal_mtim = st.st_mtim;
	}
	if (o->db_exists && sc->conn &&
	    snap_livedb_data_version(sc->conn, &o->dv, NULL) == 0)
		o->dv_ok = 1;
}

/* 1 when two timestamps are the same to the nanosecond. */
static int sched_ts_equal(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* 1 when o differs from the mark, or either could not see everything. */
static int sched_differs(const sched_obs *m, const sched_obs *o)
{
	if (!m->dv_ok || !o->dv_ok || m->dv != o->dv)
		return 1;
	if (m->db_exists != o->db_exists || m->dev != o->dev ||
	    m->ino != o->ino || m->size != o->size ||
	    !sched_ts_equal(&m->mtim, &o->mtim))
		return 1;
	if (m->wal_exists != o->wal_exists)
		return 1;
	return o->wal_exists && (m->wal_ino != o->wal_ino ||
				 m->wal_size != o->wal_size ||
				 !sched_ts_equal(&m->wal_mtim, &o->wal_mtim));
}

/* Start watching the live database for a schedule (see schedule.h). */
int snap_sched_open(snap_store *s, const snap_sched_opts *o,
		    snap_sched **out, snap_err *err)
{
	const char *path = snap_store_db_path(s);
	snap_sched *sc;
	struct stat st;
	int rc;

	*out = NULL;
	if (o->every_ns < 0)
		return snap_err_set(err, -EINVAL, "the snapshot interval must "
				    "not be negative");
	if (snap_sys_stat(path, &st) < 0)
		return snap_err_set(err, -errno, "cannot schedule snapshots of "
				    "%s: %s", path, strerror(errno));
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return snap_err_set(err, -ENOMEM, "out of memory");
	sc->s = s;
	sc->o = *o;
	snprintf(sc->wal_path, sizeof(sc->wal_path), "%s-wal", path);
	rc = sched_connect(sc, &st, err);
	if (rc) {
		free(sc);
		return rc;
	}
	if (o->every_ns > 0)
		sc->next_ns = snap_time_now_ns() + o->every_ns;
	*out = sc;
	return 0;
}

/* Close the watch connection and free sc. */
void snap_sched_close(snap_sched *sc)
{
	if (!sc)
		return;
	sqlite3_close(sc->conn);
	free(sc);
}

/* When the next snapshot is due (UTC ns), 0 if none is scheduled. */
int64_t snap_sched_next(const snap_sched *sc)
{
	return sc->next_ns;
}

/* 1 when the live database changed since the last mark. */
int snap_sched_changed(snap_sched *sc)
{
	sched_obs now;

	if (!sc->have_mark)
		return 1;
	sched_observe(sc, &now);
	return sched_differs(&sc->mark, &now);
}

/* The newest snapshot by id (the one taken last), or 0 in *have. */
static int sched_newest(snap_store *s, snap_info *si, int *have,
			snap_err *err)
{
	int64_t id = 0;
	int rc;

	*have = 0;
	snap_store_lock(s);     /* recursive: the row stays the newest */
	rc = snap_store_query_ints(s, "SELECT max(id) FROM snapshots", &id, 1,
				   "find the newest snapshot", err);
	if (!rc && id > 0) {
		rc = snap_store_get_db(s->db, id, si, err);
		*have = rc == 0;
	}
	snap_store_unlock(s);
	return rc;
}

/* Take the automatic snapshot of a due tick (the database changed). */
static int sched_take(snap_sched *sc, snap_tick_result *r, snap_err *err)
{
	snap_create_opts o = { .kind = SNAP_KIND_AUTO, .label = "auto" };
	snap_keep_decision *dec = NULL;
	snap_info prev;
	sched_obs pending, after;
	size_t n = 0;
	int have_prev = 0, rc;

	sched_observe(sc, &pending);
	rc = snap_retention_make_room(sc->s, &sc->o.keep, err);
	if (rc) {
		/* It records its own refusal (-ENOSPC), not other failures. */
		if (rc != -ENOSPC)
			snap_event_add(sc->s, "snapshot", "", 0, "automatic "
				       "snapshot of %s not taken: %s",
				       snap_store_db_path(sc->s), err ?
				       err->msg : "cannot make room");
		return rc;
	}
	rc = sched_newest(sc->s, &prev, &have_prev, err);
	if (!rc)
		rc = snap_snapshot_take(sc->s, &o, &r->info, err);
	if (rc)
		return rc;   /* the snapshot recorded its failure */
	/* The checkpoint inside the snapshot may have moved the file's
	 * attributes; with no commit meanwhile, they are the mark. */
	sched_observe(sc, &after);
	sc->mark = after.dv_ok && pending.dv_ok && after.dv == pending.dv &&
		   after.ino == pending.ino && after.dev == pending.dev ?
		   after : pending;
	sc->have_mark = 1;
	if (have_prev && prev.page_size == r->info.page_size &&
	    prev.page_count == r->info.page_count &&
	    memcmp(prev.sha256, r->info.sha256, 32) == 0) {
		/* Nothing new since the newest snapshot: do not keep it. */
		rc = snap_store_delete(sc->s, r->info.id, err);
		if (!rc)
			memset(&r->info, 0, sizeof(r->info));
		r->took = rc != 0;
		return rc;
	}
	r->took = 1;
	/* max_size alone is not a keep rule but still prunes. */
	if (snap_keep_empty(&sc->o.keep) && !sc->o.keep.max_size)
		return 0;
	rc = snap_retention_prune(sc->s, &sc->o.keep, 0, &dec, &n, &r->pruned,
				  err);
	free(dec);
	return rc;
}

/* When due: a snapshot if the database changed, then retention. */
int snap_sched_tick(snap_sched *sc, int64_t now_ns, snap_tick_result *r,
		    snap_err *err)
{
	snap_tick_result tmp;

	if (!r)
		r = &tmp;
	memset(r, 0, sizeof(*r));
	if (!sc->next_ns || now_ns < sc->next_ns)
		return 0;
	/* Advance first: the next due time moves even when this fails. */
	sc->next_ns += sc->o.every_ns;
	if (sc->next_ns <= now_ns)
		sc->next_ns += ((now_ns - sc->next_ns) / sc->o.every_ns + 1) *
			       sc->o.every_ns;
	if (!snap_sched_changed(sc))
		return 0;
	return sched_take(sc, r, err);
}
