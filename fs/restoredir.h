/*
 * fs/restoredir.h — restore/, the drop folder (restoredir.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_RESTOREDIR_H
#define FS_RESTOREDIR_H

#include "handle.h"

/* ---- restore/, the drop folder (restoredir.c) --------------------------- */

/* The mode of a file created in restore/: what was asked, never wider
 * than the live database's. */
mode_t snap_restoredir_mode(mode_t asked);
/* An open of a node in restore/ (h is a staging handle on it): a write
 * handle on a plain name becomes SNAP_H_RESTORE. */
void snap_restoredir_opened(struct snap_handle *h, int flags);
/* FLUSH of a SNAP_H_RESTORE handle by thread pid (0: none): the
 * restore's verdict (as an upload's); when bytes were restored (or
 * refused) the name leaves restore/, and *gone gets the node to announce
 * after the reply (0: none).  A restored name still resolves for pid's
 * process for a few seconds (attr.h, snap_attr_left). */
int snap_restoredir_flush(struct snap_handle *h, pid_t pid,
			  fuse_ino_t *gone, char *gone_name, size_t len);
/* RELEASE of a SNAP_H_RESTORE handle: late bytes are applied (apply 1),
 * the name leaves restore/. */
void snap_restoredir_release(struct snap_handle *h, int apply);
/* RENAME from or into restore/ (parent or newparent is SNAP_INO_RESTORE):
 * into a plain name restores the source, as a rename onto current.db
 * does; dot-names are staging files.  Replies and queues invalidations. */
void snap_restoredir_rename(fuse_req_t req, fuse_ino_t parent,
			    const char *name, fuse_ino_t newparent,
			    const char *newname, unsigned int flags);
/* 1 when name in restore/ is a staging name (rsync's .x.db.XXXXXX, GIO's
 * .goutputstream-XXXXXX): a dot-name, restored only when renamed to a
 * plain name. */
int snap_restoredir_is_staging(const char *name);

/* ---- restore/'s pairs: a database and its -wal (restorewal.c) ---------- */

/* A file called name begins to arrive in restore/ (a write open, a rename
 * into it): what is kept for another file's partner is dropped, what is
 * kept for this one is claimed. */
void snap_restorewal_arriving(const char *name);
/* The staged file n arrived whole in restore/ as target ("restore/NAME";
 * its close, or a rename onto it, renamed 1): a database is restored (with its
 * waiting -wal), a -wal restores the database just restored with it or
 * waits for it, a -shm or -journal is ignored.  The restore's errno
 * (snap_apply_file), 0 for what waits or is ignored; the caller holds h's
 * lock if any, no other. */
int snap_restorewal_arrived(struct snap_node *n, const char *target,
			    int renamed);
/* The unmount: what is kept is dropped (before the node table is freed). */
void snap_restorewal_shutdown(void);
/* An empty file called name was closed in restore/: 1 when it is a side
 * file (an empty X-wal: X alone is its state, and a kept X waits no
 * more; a -shm, a -journal), which succeeds and leaves; 0 for a
 * database name (an empty upload: -EINVAL, the name kept for bytes). */
int snap_restorewal_empty(const char *name);

#endif /* FS_RESTOREDIR_H */
