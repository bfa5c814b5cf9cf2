/*
 * engine/restore_int.h — what restore.c and restore_check.c share
 * (internal).
 *
 * A restore loads its snapshot's catalog row and page map once
 * (snap_image_src) and passes them, with what its verification proved
 * (snap_verify_proof), to the copy and the read-back check; a rollback
 * copies the safety snapshot, which has neither, and its check reads the
 * hashes from the store.
 */
#ifndef ENGINE_RESTORE_INT_H
#define ENGINE_RESTORE_INT_H

#include "image.h"
#include "livedb.h"
#include "sys.h"
#include "verify.h"

/* The image a copy writes and its check compares with. */
typedef struct restore_source {
	int64_t id;
	const snap_info *si;
	snap_image_src *src;             /* row and map, loaded once; NULL:
					    opened by id */
	const snap_verify_proof *proof;  /* the verification's page hashes and
					    page 1 (complete: it passed); NULL:
					    the store's hashes */
} restore_source;

/* A restore's progress over its three passes of the image's pages:
 * verification, copy, check (snap_restore_opts.progress). */
typedef struct restore_progress {
	snap_progress_fn fn;      /* NULL: nobody asked */
	void *ctx;
	uint64_t pages;           /* the image's pages */
	uint64_t base;            /* pages of the passes before this one */
} restore_progress;

/* Pass k (0 verification, 1 copy, 2 check) starts: how its backup steps
 * report to p (how->fn NULL when no progress is wanted; p may be NULL). */
snap_livedb_steps *snap_restore_progress_at(restore_progress *p, unsigned k,
					    snap_livedb_steps *how);

/* A fault point of the skeleton (sys.h): tests fail a step there, or act
 * there, and learn that it was reached.  0 or a negative errno in err. */
int snap_restore_point(snap_sys_kind kind, const char *step, snap_err *err);

/* Open rs's image as a SQLite database through the store VFS: over its
 * loaded row and map when it has them. */
int snap_restore_source_open(snap_store *s, const restore_source *rs,
			     sqlite3 **db, snap_err *err);

/*
 * Step 3 for a live file in `state` (missing or not a database): the
 * image copied into a new file, checked, renamed into place; a
 * non-database file kept, its name in kept ("" if none).  *proven as
 * snap_restore_check.
 */
int snap_restore_new_file(snap_store *s, const restore_source *rs,
			  enum snap_live_state state, char *kept,
			  size_t keptcap, restore_progress *prog, int *proven,
			  snap_err *err);

/*
 * The read-back check on `db`, the connection that just committed the
 * copy (or a new file's): 0 and *proven = 1 when every page equals rs's
 * image (page 1 without SQLite's counters); when another connection
 * committed in between, an integrity_check instead (*proven = 0).  `what`
 * names the database in messages; how (may be NULL) reports progress.
 */
int snap_restore_check(snap_store *s, const restore_source *rs, sqlite3 *db,
		       const char *what, int *proven, snap_livedb_steps *how,
		       snap_err *err);

/* 1 when the live database holds exactly snapshot si's image, read through
 * a connection of its own (the store's hashes). */
int snap_restore_live_equals(snap_store *s, const snap_info *si);

#endif /* ENGINE_RESTORE_INT_H */
