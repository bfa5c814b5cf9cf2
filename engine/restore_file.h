/*
 * engine/restore_file.h — restore from a database file (the design is at
 * the top of restore_file.c; the restore itself is restore.h's).
 */
#ifndef ENGINE_RESTORE_FILE_H
#define ENGINE_RESTORE_FILE_H

#include "restore.h"

/*
 * Restore from a database file: it is verified and imported as a snapshot
 * of kind import (label from the file name unless given), then restored.
 * A file whose bytes are exactly a snapshot's image (a copy of one: cp
 * snapshots/X current.db), with no -wal or -journal beside it, restores
 * that snapshot instead, label or not: nothing is imported, and the
 * catalog gains only the safety snapshot.  Without a label, an import
 * whose image equals an existing snapshot's is dropped again the same way.
 * -EINVAL when the file is not a usable database; nothing changed then.
 */
int snap_restore_file(snap_store *s, const char *path, const char *label,
		      snap_restore_result *res, snap_err *err);
int snap_restore_file_ex(snap_store *s, const char *path, const char *label,
			 const snap_restore_opts *o, snap_restore_result *res,
			 snap_err *err);

#endif /* ENGINE_RESTORE_FILE_H */
