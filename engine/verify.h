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

#include "image.h"
#include "store.h"

/* What `full` may be. */
enum {
	SNAP_VERIFY_QUICK = 0,       /* pages, hashes, the image's SHA-256 */
	SNAP_VERIFY_FULL = 1,        /* quick + PRAGMA integrity_check */
	SNAP_VERIFY_STRUCTURE = 2,   /* quick + PRAGMA quick_check: every page
					and record, not indexes against their
					tables; what a restore runs (a full
					integrity_check of 1 GB takes ~20 s).
					Once per image: skipped when an image
					with the same SHA-256 passed it or
					integrity_check before (verify.c) */
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
 * What a verification proved, handed on to a restore's read-back check so
 * that it compares with exactly what was proved, without reading the
 * store again: the SHA-256 of every page as decoded (equal to the
 * store's hash), and page 1's bytes.  The caller allocates both (sha:
 * page_count entries, page1: page_size bytes); they are complete only
 * when the verification returned 0.
 */
typedef struct snap_verify_proof {
	uint8_t (*sha)[32];
	uint8_t *page1;
} snap_verify_proof;

/*
 * snap_verify_snapshot_progress over a loaded row and page map (image.h:
 * src is lent to the store VFS for the integrity check, not loaded
 * again), filling proof when it is not NULL.
 */
int snap_verify_src(snap_store *s, snap_image_src *src, int full,
		    snap_progress_fn progress, void *pctx,
		    snap_verify_proof *proof, snap_err *err);

/*
 * Verify every snapshot.  *nbad (may be NULL) counts bad snapshots.
 * Returns 0, -EBADMSG when any is bad, or another negative errno.
 */
int snap_verify_store(snap_store *s, int full, snap_verify_problem_fn fn,
		      void *ctx, unsigned *nbad, snap_err *err);

#endif /* ENGINE_VERIFY_H */
