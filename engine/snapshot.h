/*
 * engine/snapshot.h — taking a snapshot of the live database, importing a
 * database file as a snapshot.
 *
 * A snapshot is a consistent image read by sqlite3_backup from a connection
 * on the live database (one step, one read transaction: consistent in
 * rollback and WAL mode while other processes write) into the engine's
 * capturing VFS, which hashes, deduplicates and compresses each page into the
 * store as it arrives; the image is never held in memory.  Page 1 is
 * normalized to rollback-journal mode (header bytes 18-19 = 1) so every
 * snapshot opens standalone.  The snapshot is published in the same store
 * transaction that wrote its pages, only after the backup completed.
 *
 * Taking is snapshot.c; importing and checking a file, snapshot_import.c.
 */
#ifndef ENGINE_SNAPSHOT_H
#define ENGINE_SNAPSHOT_H

#include "store.h"

typedef struct snap_create_opts {
	snap_kind kind;          /* SNAP_KIND_MANUAL, ... */
	const char *label;       /* NULL: the kind's name */
	const char *comment;     /* NULL: none */
	int pinned;
	const char *source_name; /* import: what messages and the event call
				    the file (NULL: its path) */
	const char *name;        /* NULL: "<time>_<label>.db"; else this
				    name when it can be one and no snapshot
				    has it (a snapshot from a replica keeps
				    its own) */
} snap_create_opts;

/*
 * Take a snapshot of the store's live database.  On success *out (may be
 * NULL) describes the new snapshot.  Errors: -ENOENT (no database), -EINVAL
 * (not a database), -ENOSPC, -EIO; nothing is published on failure.
 */
int snap_snapshot_take(snap_store *s, const snap_create_opts *o,
		       snap_info *out, snap_err *err);
int snap_snapshot_take_progress(snap_store *s, const snap_create_opts *o,
				snap_progress_fn fn, void *ctx,
				snap_info *out, snap_err *err);

/*
 * Import a database file as a snapshot (kind from o, normally
 * SNAP_KIND_IMPORT), after verifying it is a complete, intact SQLite
 * database (header, size, PRAGMA integrity_check).  -EINVAL with a reason
 * when it is not.
 */
int snap_snapshot_import(snap_store *s, const char *path,
			 const snap_create_opts *o, snap_info *out,
			 snap_err *err);
/* The same, calling fn(ctx, pages stored, pages in the file) while the
 * file is captured (fn may be NULL).  The integrity_check before it
 * reports no progress. */
int snap_snapshot_import_progress(snap_store *s, const char *path,
				  const snap_create_opts *o,
				  snap_progress_fn fn, void *ctx,
				  snap_info *out, snap_err *err);

/*
 * Check that `path` is a complete, intact SQLite database without storing
 * anything: header magic, file size against the header's page count,
 * integrity_check.  0 or -EINVAL/-ENOENT with the reason.
 */
int snap_snapshot_check_file(const char *path, snap_err *err);

#endif /* ENGINE_SNAPSHOT_H */
