/*
 * fs/session.h — what session.c and sessionapply.c share: one edit
 * session's state and the steps of its apply.  Private to the two.
 */
#ifndef FS_SESSION_H
#define FS_SESSION_H

#include "fs.h"

struct snap_session {
	char path[PATH_MAX];   /* the session copy (fixed at creation) */
	int ready;             /* the copy exists (fs->lock) */
	uint64_t base_gen;     /* live generation the copy was taken at */
	unsigned writers;      /* joined handles (fs->lock) */
	unsigned active;       /* joined handles not yet flushed (fs->lock) */
	int dirty;             /* written since the last apply (fs->lock) */
	/* The conflict check under the live write lock (session_precond):
	 * what the live database was when the copy was taken. */
	int wal;               /* it was in WAL mode */
	uint32_t base_counter; /* rollback mode: header change counter */
	sqlite3 *watch;        /* WAL mode: a connection open since then */
	int64_t watch_dv;      /* and its PRAGMA data_version then */
	/* The merge: what the copy was when the edit began (apply_lock). */
	int base_fd;           /* the image the copy was made from (a dup of
				  its descriptor; the file is unlinked), or
				  -1 once an apply made it meaningless */
	int merged;            /* an apply merged the edit: the copy is no
				  longer what the live database holds, so
				  it must never be restored over it */
	struct snap_session *next; /* on the list of finished sessions
				  waiting for their RELEASEs (fs->lock) */
};


/* Close the connection that watches the live database's data_version. */
void snap_session_watch_close(struct snap_session *s);
/* Remember the live database's state before the copy is taken (a commit
 * in between makes a false conflict, never a lost one). */
void snap_session_watch_open(struct snap_session *s);
/* Forget the merge's base: an apply made the edit part of the live
 * database. */
void snap_session_base_drop(struct snap_session *s);
/* Copy the first size bytes of the file open as src into a new file at
 * path; 0 or a negative errno (the file removed). */
int snap_session_copy(int src, uint64_t size, const char *path);
/* Apply the session copy (restore, else merge, else conflict snapshot);
 * 0 or the negative errno close() reports. */
int snap_session_apply(struct snap_session *s);

#endif /* FS_SESSION_H */
