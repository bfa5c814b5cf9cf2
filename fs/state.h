/*
 * fs/state.h — the one state of the daemon (state.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_STATE_H
#define FS_STATE_H

#include "handle.h"

/* ---- the filesystem ----------------------------------------------------- */

struct snap_fs {
	snap_store *store;
	const char *db_path;            /* absolute, from the store */
	char mountpoint[PATH_MAX];
	char staging_dir[PATH_MAX];     /* <store>/staging, mode 0700, as a
					   path anchored to its open fd
					   ("/proc/self/fd/N") */
	struct fuse_session *se;
	struct snap_notify *notify;
	struct snap_live *live;
	int debug;
	int foreground;

	pthread_mutex_t apply_lock;     /* see the lock order above */
	pthread_mutex_t lock;           /* leaf: the fields below */
	struct snap_node *nodes;        /* dynamic nodes */
	uint64_t node_seq;              /* last node number handed out */
	uint64_t file_seq;              /* last staging file number */
	struct snap_session *session;   /* the edit session, or NULL */
	struct snap_handle *handles;    /* every open handle */
	uint64_t handle_seq;            /* last current.db open number */
	uint64_t handle_ids;            /* last handle id handed out */
	pthread_cond_t unpinned;        /* a handle's pins dropped to 0 */
	pid_t unlink_pid;               /* who unlinked current.db, 0 = none */
	int64_t unlink_until_ns;        /* and until when the name is free */
	pid_t writer_tgid;              /* last process that wrote current.db */
	int64_t writer_until_ns;        /* and until when it counts as writing */
	/* counters for status.json (fs->lock) */
	uint64_t restores_ok;
	uint64_t restores_failed;
	uint64_t conflicts;
	int64_t started_ns;
};

extern struct snap_fs snap_fs;

#endif /* FS_STATE_H */
