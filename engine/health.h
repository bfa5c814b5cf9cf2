/*
 * engine/health.h — the health of the live database and of the store.
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
 *
 * The status report people and monitors read is status.h.
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

/* When the last complete scrub pass ended (0: never). */
int snap_health_scrub_last(snap_store *s, int64_t *ns, snap_err *err);

#endif /* ENGINE_HEALTH_H */
