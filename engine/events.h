/*
 * engine/events.h — the event history: every snapshot, import, restore,
 * verification, deletion, relabel, pin and failure, with time, kind,
 * snapshot, outcome and detail.  Stored in the store's events table; an
 * event is written in its own transaction (or inside the caller's when the
 * store connection already has one open) so a failure is recorded even when
 * the operation's own transaction rolled back.
 */
#ifndef ENGINE_EVENTS_H
#define ENGINE_EVENTS_H

#include "store.h"

typedef struct snap_event {
	int64_t id;
	int64_t time_ns;
	char kind[32];                 /* "snapshot", "restore", "verify", ... */
	char snapshot[SNAP_NAME_MAX];  /* "" when none */
	int ok;                        /* 1 success, 0 failure */
	char detail[SNAP_ERR_MSG];
} snap_event;

/* The kind of a replication's event (snap_replica_push_recorded): its
 * detail starts with the replica's URL and ": "; its snapshot column
 * names the replica's newest snapshot (success) or is empty (failure).
 * The status report reads them (status.c). */
#define SNAP_REPLICATE_EVENT "replicate"

/* Record an event; never fails the caller's operation (returns rc). */
int snap_event_add(snap_store *s, const char *kind, const char *snapshot,
		   int ok, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Events with id > after_id, oldest first; with `limit` (0 = all) only
 * the newest `limit` of them. */
int snap_event_list(snap_store *s, int64_t after_id, size_t limit,
		    snap_event **out, size_t *n, snap_err *err);

/*
 * A hook run for failures (snapshot, check, verify, restore, scrub,
 * import and replicate events with ok == 0): the daemon's on_failure=CMD.  fn gets the
 * event, outside the store's lock.  One hook per store; NULL removes it.
 */
typedef void (*snap_failure_hook)(void *ctx, const struct snap_event *ev);
void snap_store_set_failure_hook(snap_store *s, snap_failure_hook fn,
				 void *ctx);

#endif /* ENGINE_EVENTS_H */
