/*
 * engine/schedule.h — automatic snapshots at an interval, taken only when
 * the live database changed since the last snapshot.
 *
 * Change detection never reads the database: a connection kept open on the
 * live database reports PRAGMA data_version, which moves whenever another
 * connection commits (rollback or WAL mode), and the file's size, mtime and
 * inode (and the -wal file's) catch replacement.  The mark is taken before
 * a snapshot's read transaction, so a commit racing with the snapshot makes
 * the next tick take another snapshot rather than miss one; it becomes the
 * mark only when the snapshot succeeded, so a failed one is retried at the
 * next due tick.  After opening there is no mark (the database may have
 * changed while nothing watched): the first due tick takes a snapshot.  Any
 * automatic snapshot whose image hash (and size) equals the newest
 * snapshot's is deleted again at once, so a restart without changes, or a
 * false alarm of the file attributes, keeps nothing (tick result took=0).
 *
 * The watch connection counts as an open connection: in WAL mode a restore
 * across page sizes (engine/PITFALLS.md 10) is refused while it is open, as it
 * is while any application holds one.
 *
 * Thread-safety: one snap_sched per daemon, driven by one thread.
 */
#ifndef ENGINE_SCHEDULE_H
#define ENGINE_SCHEDULE_H

#include "retention.h"
#include "store.h"

typedef struct snap_sched snap_sched;

typedef struct snap_sched_opts {
	int64_t every_ns;          /* interval; 0 = no automatic snapshots */
	snap_keep_policy keep;     /* applied after each automatic snapshot */
} snap_sched_opts;

/* Open the watch connection on the live database (-ENOENT when it does
 * not exist; -EINVAL for a negative interval).  The first snapshot is due
 * one interval after opening. */
int snap_sched_open(snap_store *s, const snap_sched_opts *o,
		    snap_sched **out, snap_err *err);
void snap_sched_close(snap_sched *sc);
/* When the next snapshot is due (UTC ns), 0 if none scheduled. */
int64_t snap_sched_next(const snap_sched *sc);
/* 1 when the live database changed since the last mark (always 1 before
 * the first snapshot a tick kept or found unchanged). */
int snap_sched_changed(snap_sched *sc);

typedef struct snap_tick_result {
	int took;                  /* an automatic snapshot was taken (and
				      kept: 0 when it equalled the newest) */
	snap_info info;            /* the snapshot kept, zeroed otherwise */
	size_t pruned;             /* snapshots retention removed */
} snap_tick_result;

/* Run when due (now >= next): snapshot if changed (after making room),
 * then retention (when the policy has keep rules or max_size).  Errors
 * are recorded as events (and so reach the failure hook); the next due
 * time always advances, by whole intervals past now_ns (missed intervals
 * are skipped).  Before the due time: nothing, 0.  r may be NULL. */
int snap_sched_tick(snap_sched *sc, int64_t now_ns, snap_tick_result *r,
		    snap_err *err);

#endif /* ENGINE_SCHEDULE_H */
