/*
 * engine/health.h — the health of the live database and of the store, and
 * the status report people and monitors read.
 *
 * check: PRAGMA quick_check on the live database.  On corruption the
 * corrupt state is kept as a snapshot of kind recovery (for analysis), the
 * failure is recorded, and with auto_recover the newest snapshot that
 * passes full verification is restored (damaged ones are skipped and named;
 * snapshots in the trash are never chosen).
 *
 * scrub: verification of stored snapshots a slice at a time (like kopia's
 * verify percentage): each call verifies the next snapshots after a cursor
 * kept in the store, so repeated calls cover the whole store; when the
 * cursor wraps, the time of the last full pass is recorded.
 */
#ifndef ENGINE_HEALTH_H
#define ENGINE_HEALTH_H

#include "store.h"

typedef struct snap_check_result {
	int corrupt;               /* quick_check found problems */
	char problem[512];         /* its first line */
	int have_recovery;         /* the corrupt state was kept */
	snap_info recovery;
	int restored;              /* auto_recover restored a snapshot */
	snap_info restored_from;
	unsigned skipped_bad;      /* damaged snapshots skipped */
} snap_check_result;

/* 0 when the live database is healthy or was recovered; -EBADMSG when it
 * is corrupt and stays so; other errors as usual (-ENOENT: no database;
 * -EBUSY: locked too long), the check then could not run.  Every outcome is
 * recorded as "check" events (health.c lists them).  r and err may be
 * NULL. */
int snap_health_check(snap_store *s, int auto_recover, snap_check_result *r,
		      snap_err *err);

typedef struct snap_scrub_result {
	unsigned verified;         /* snapshots verified in this slice */
	unsigned bad;              /* of which damaged */
	int full_pass_done;        /* this slice completed a pass */
} snap_scrub_result;

/* Verify up to `max` snapshots after the cursor (quick verification;
 * full when `full`).  0, or -EBADMSG when the slice found a damaged
 * snapshot (err names them), or another error that stopped the slice (the
 * cursor stays before the snapshot it could not verify).  r may be NULL. */
int snap_health_scrub(snap_store *s, unsigned max, int full,
		      snap_scrub_result *r, snap_err *err);

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
} snap_status;

/* Fill st from the store as of now_ns (for the age).  next_snapshot_ns
 * and interval_ns are left 0: the daemon, which owns the schedule, sets
 * them (snap_sched_next) before formatting. */
int snap_status_get(snap_store *s, int64_t now_ns, snap_status *st,
		    snap_err *err);
/* JSON object (fields in health.c's header comment; the contract for
 * scripts); Prometheus text exposition format (snapfs_* metrics). */
struct snap_json;
void snap_status_json(struct snap_json *j, const snap_status *st);
/* Appends to a malloc()ed string; returns it (NULL on ENOMEM). */
char *snap_status_prometheus(const snap_status *st);

#endif /* ENGINE_HEALTH_H */
