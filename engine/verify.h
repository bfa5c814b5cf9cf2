/*
 * engine/verify.h — verifying stored snapshots.
 *
 * Quick: the catalog row's shape (page size, page count, image size)
 * possible, every page of the map present, each page's SHA-256 right, the
 * image's SHA-256 right.  Full: quick, then PRAGMA integrity_check through
 * the read-only VFS.  Every problem is reported through a callback naming
 * the snapshot and, where it applies, the page; the result is recorded in
 * the event history.
 */
#ifndef ENGINE_VERIFY_H
#define ENGINE_VERIFY_H

#include "store.h"

/* What `full` may be. */
enum {
	SNAP_VERIFY_QUICK = 0,       /* pages, hashes, the image's SHA-256 */
	SNAP_VERIFY_FULL = 1,        /* quick + PRAGMA integrity_check */
	SNAP_VERIFY_STRUCTURE = 2,   /* quick + PRAGMA quick_check: every page
					and record, not indexes against their
					tables; what a restore runs (a full
					integrity_check of 1 GB takes ~20 s) */
};

/* One problem found: snapshot, page number (0 = not page-specific), text. */
typedef void (*snap_verify_problem_fn)(void *ctx, const snap_info *si,
				       uint32_t pgno, const char *problem);

/*
 * Verify one snapshot.  Returns 0 when it is intact, -EBADMSG when a
 * problem was found (each reported through fn, which may be NULL; err gets
 * a summary), another negative errno when verification itself failed.
 */
int snap_verify_snapshot(snap_store *s, int64_t id, int full,
			 snap_verify_problem_fn fn, void *ctx, snap_err *err);
/* The same, calling progress(pctx, pages checked, pages in the snapshot)
 * during the quick pass, every 256 pages and at the last (progress may be
 * NULL; a full check's integrity_check reports none). */
int snap_verify_snapshot_progress(snap_store *s, int64_t id, int full,
				  snap_verify_problem_fn fn, void *ctx,
				  snap_progress_fn progress, void *pctx,
				  snap_err *err);

/*
 * Verify every snapshot.  *nbad (may be NULL) counts bad snapshots.
 * Returns 0, -EBADMSG when any is bad, or another negative errno.
 */
int snap_verify_store(snap_store *s, int full, snap_verify_problem_fn fn,
		      void *ctx, unsigned *nbad, snap_err *err);

#endif /* ENGINE_VERIFY_H */
