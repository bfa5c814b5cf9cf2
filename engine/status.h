/*
 * engine/status.h — the status report people and monitors read: one
 * snap_status gathered from the store, written as JSON or as Prometheus
 * text (the fields and metrics are listed at the top of status.c).
 */
#ifndef ENGINE_STATUS_H
#define ENGINE_STATUS_H

#include "events.h"
#include "store.h"

/* Everything `snapctl status` and .snapfs/status.json show. */
typedef struct snap_status {
	char db_path[4096];
	char store_dir[4096];
	int64_t count;                       /* snapshots */
	int64_t count_by_kind[SNAP_KIND_COUNT];
	int have_newest;
	snap_info newest;
	int64_t newest_age_ns;               /* now - newest.created_ns */
	snap_store_stats stats;              /* sizes, pages */
	double dedup_ratio;                  /* logical / stored, 0 if empty */
	/* From the event history: time (0 = never), ok, detail. */
	int64_t last_restore_ns;  int last_restore_ok;  char last_restore[256];
	int64_t last_check_ns;    int last_check_ok;    char last_check[256];
	int64_t last_verify_ns;   int last_verify_ok;   char last_verify[256];
	int64_t last_full_scrub_ns;          /* last completed scrub pass */
	int64_t next_snapshot_ns;            /* set by the daemon, 0 = none */
	int64_t interval_ns;                 /* schedule, 0 = none */
	/* The offsite replica, from the newest "replicate" event (no
	 * network): have_replica 0 when the store was never replicated. */
	int have_replica;
	char replica_url[1024];              /* the event's detail, up to ": " */
	char replica_newest[SNAP_NAME_MAX];  /* "" when unknown */
	int have_replica_lag;                /* newest is in the local catalog */
	int64_t replica_lag_ns;              /* store newest - replica newest */
	int64_t last_replicate_ns; int last_replicate_ok;
	char last_replicate[SNAP_ERR_MSG];
	/* When a replication still running began (ns since the epoch), 0
	 * when none: only a mount knows (its replicate= thread), so only
	 * status.json and snapctl -C report one (snap_status_get sets 0). */
	int64_t replica_running_ns;
} snap_status;

/* Fill st from the store as of now_ns (for the age).  next_snapshot_ns
 * and interval_ns are left 0: the daemon, which owns the schedule, sets
 * them (snap_sched_next) before formatting. */
int snap_status_get(snap_store *s, int64_t now_ns, snap_status *st,
		    snap_err *err);
/* The replica part of st again, for the replica at url (a daemon's
 * -o replicate=URL, or the one a mount's status.json names): its own
 * events only, and url named even before its first replication (newest,
 * lag and last replication then unknown).  0 or a negative errno. */
int snap_status_replica(snap_store *s, snap_status *st, const char *url,
			snap_err *err);
/* JSON object (fields in status.c's header comment; the contract for
 * scripts); Prometheus text exposition format (snapfs_* metrics). */
struct snap_json;
void snap_status_json(struct snap_json *j, const snap_status *st);
/* Appends to a malloc()ed string; returns it (NULL on ENOMEM). */
char *snap_status_prometheus(const snap_status *st);

#endif /* ENGINE_STATUS_H */
