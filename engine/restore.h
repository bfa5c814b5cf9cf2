/*
 * engine/restore.h — verified restore of a snapshot into the live database.
 *
 *  1. Verify the source: every page and hash, the image's SHA-256 (so
 *     the image is exactly what was captured) and PRAGMA quick_check
 *     through the store VFS (SNAP_VERIFY_STRUCTURE; integrity_check,
 *     which also checks indexes against tables, costs ~10x more and is
 *     what `snapctl verify --full` and imports run); quick_check once
 *     per image (verify.h)).
 *  2. Take a safety snapshot (kind pre-restore) of the live database.
 *  3. Copy the image into the live database with one sqlite3_backup step
 *     on a connection to the real path: other connections see the old or
 *     the new state; a crash leaves a hot journal SQLite rolls back.  The
 *     live database keeps its journal mode.  A missing or non-database live
 *     file is replaced by a new file renamed into place.
 *  4. Verify the live database equals the image page for page (except the
 *     page-1 counters SQLite maintains), against the page hashes step 1
 *     computed and proved (restore_check.c).
 * The snapshot's catalog row and page map are loaded once and serve
 * steps 1, 3 and 4 (restore_int.h).
 *  5. Any failure after step 2 rolls back to the safety snapshot.
 * One restore at a time per store (-EBUSY), across processes.  Step 1
 * runs on a thread of its own beside steps 2 and 3 (both cores busy); the
 * copy commits only once it passed, so a damaged source still changes
 * nothing.  A table restore runs the same skeleton (snap_restore_run).
 *
 * Restore from a file is restore_file.h; crash recovery of an interrupted
 * restore, recover.h; connections to the live database, livedb.h.
 */
#ifndef ENGINE_RESTORE_H
#define ENGINE_RESTORE_H

#include "livedb.h"
#include "store.h"

typedef struct snap_restore_result {
	snap_info source;         /* the snapshot restored (for a file: the
				     one imported, or the one whose image
				     it is); name "" before it was found */
	int have_safety;          /* 1 when a safety snapshot was taken */
	snap_info safety;         /* the pre-restore snapshot */
	int rolled_back;          /* 1 when a failure was rolled back */
	int verified_pages;       /* 1 when live == image was proven */
	char kept[4096];          /* where a live file that was not a
				     database was kept, "" if none */
} snap_restore_result;

/*
 * Restore snapshot `id` into the live database.  Errors: -EBUSY (another
 * restore), -EBADMSG (source failed verification: nothing changed),
 * -EIO (failure during or after the copy: rolled back), others.
 *
 * No commit is lost: the copy's write lock is taken before the safety
 * snapshot is read and held until the copy commits, so every commit before
 * the restore is in the safety snapshot (WAL: read through a connection of
 * its own, readers are not blocked; rollback mode, where the lock is
 * exclusive: read raw through the locked connection's file handle).
 */
int snap_restore(snap_store *s, int64_t id, snap_restore_result *res,
		 snap_err *err);

/*
 * Called with the live database's write lock held, right before the copy:
 * return 0 to go on, or a negative errno (normally -ESTALE) to refuse with
 * nothing changed.  Such a refusal is the caller's to report: no event is
 * recorded for it, and snap_restore_file_ex deletes the import it made
 * when the refusal is -ESTALE.  In rollback mode the database is locked exclusively:
 * the callback must not read it through another connection (use tok); in
 * WAL mode it may (readers are not blocked).
 */
typedef int (*snap_restore_precond)(void *ctx, const snap_live_token *tok,
				    snap_err *err);

typedef struct snap_restore_opts {
	snap_restore_precond precond;   /* may be NULL */
	void *ctx;
	const char *source_name;        /* restore from a file: what messages
					   and events call it (NULL: its
					   path) */
	const char *import_name;        /* restore from a file: the name of
					   the snapshot it is imported as
					   (snap_create_opts.name; NULL: from
					   the time and label) */
	snap_progress_fn progress;      /* may be NULL: pages done of three
					   passes over the image (the
					   source's verification, the copy,
					   the check), total 3 x its pages */
	void *progress_ctx;
} snap_restore_opts;

/* snap_restore with a precondition and a source name (o may be NULL). */
int snap_restore_ex(snap_store *s, int64_t id, const snap_restore_opts *o,
		    snap_restore_result *res, snap_err *err);

/*
 * What a restore copies into the live database, for the one restore
 * skeleton (snap_restore_run): the whole image (restore.c's own) or one
 * table (tablerestore.c).  Each call gets ctx and `live`, a read-write
 * connection to the live database (the busy policy of livedb.h).
 */
typedef struct snap_restore_copy {
	/* Take the live database's write lock on `live` and check the
	 * request under it; a failure refuses the restore with nothing
	 * changed.  The safety snapshot is read right after, still under
	 * this lock.  si is the snapshot's catalog row, read once by the
	 * skeleton and valid until it returns. */
	int (*lock)(void *ctx, sqlite3 *live, const snap_info *si,
		    snap_err *err);
	/* Copy and commit under that lock; a failure SQLite rolled back
	 * leaves the live database as the safety snapshot has it. */
	int (*copy)(void *ctx, sqlite3 *live, snap_err *err);
	/* Prove the committed result on `live` (*proven = 1 when page
	 * equality was shown); NULL: the copy's commit is the check. */
	int (*check)(void *ctx, sqlite3 *live, int *proven, snap_err *err);
	/* Release what lock and copy hold (called once, always, before
	 * `live` is closed); may be NULL. */
	void (*end)(void *ctx);
	/* What the success event says before "; safety snapshot NAME"
	 * (NULL: "restored into <db>"). */
	void (*describe)(void *ctx, char *out, size_t cap);
	/* The safety snapshot's label. */
	const char *safety_label;
	/* Prefix of a refusal's message: "restore of table t" (NULL:
	 * "restore"). */
	const char *what;
	void *ctx;
} snap_restore_copy;

/*
 * The restore skeleton every restore runs (engine/DESIGN.md §4): the
 * store's restore lock (-EBUSY), the snapshot verified (-EBADMSG), the
 * live database's write lock (cp->lock), the safety snapshot under it,
 * the precondition, the copy, the check, the rollback to the safety
 * snapshot on a failure after the copy, the event.  cp NULL copies the
 * whole image (snap_restore_ex); a table restore passes its own and
 * needs a live database (-ENOENT without one).
 */
int snap_restore_run(snap_store *s, int64_t id, const snap_restore_opts *o,
		     const snap_restore_copy *cp, snap_restore_result *res,
		     snap_err *err);

#endif /* ENGINE_RESTORE_H */
