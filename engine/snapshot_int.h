/*
 * engine/snapshot_int.h — what restore.c and snapshot_import.c take of
 * snapshot.c beyond the public snapshot.h (internal; not installed, not
 * for fs/ or tools/).
 */
#ifndef ENGINE_SNAPSHOT_INT_H
#define ENGINE_SNAPSHOT_INT_H

#include <sqlite3.h>

#include "livedb.h"
#include "snapshot.h"

/*
 * A snapshot of the live database through `live`, a connection whose
 * exclusive lock (rollback mode) a restore holds: its pages are read raw
 * through SQLite's own file handle, so the image is exactly the committed
 * state nobody can change meanwhile.  Table counts are left empty.
 */
int snap_snapshot_take_locked(snap_store *s, sqlite3 *live,
			      const snap_create_opts *o, snap_info *out,
			      snap_err *err);

/*
 * 0 when path may be imported or restored from, as far as its stat says:
 * -EINVAL with the reason for a path that is not a regular file (a pipe
 * would block the open, a device has no size) or that is the store's
 * live database itself (a byte copy of it can be torn, and restoring it
 * onto itself only undoes the commits made meanwhile).  A path that
 * cannot be looked up passes: its open says why.
 */
int snap_snapshot_file_usable(snap_store *s, const char *path,
			      snap_err *err);

/*
 * snap_snapshot_import, recording a failure as an event of kind `event`:
 * a file refused on its way to a restore is a failed "restore" (what
 * on_failure hooks and monitors are told), not a failed "import".
 */
int snap_snapshot_import_for(snap_store *s, const char *path,
			     const snap_create_opts *o,
			     const char *event, snap_info *out,
			     snap_err *err);

/*
 * The capture pipeline (snapshot.c's design block): back up src into a
 * capture on the store and publish the snapshot.  The store's write
 * transaction is taken first; then the source's read transaction, unless
 * `in_txn` (the caller holds one).  `what` names the source in messages.
 */
int snap_snapshot_capture(snap_store *s, sqlite3 *src, int in_txn,
			  const char *what, const snap_create_opts *o,
			  snap_progress_fn fn, void *ctx, snap_info *out,
			  snap_err *err);

/* BEGIN a read transaction on db that really holds a snapshot of it
 * (-EINVAL when path is not a SQLite database). */
int snap_snapshot_begin_read(sqlite3 *db, const char *path, snap_err *err);

#endif /* ENGINE_SNAPSHOT_INT_H */
