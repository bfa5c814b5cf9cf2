/*
 * fs/state.c — the daemon's one shared state (struct snap_fs in state.h):
 * the store, the live database, the node table, the handles, the edit
 * session and the counters, with the locks fs/fs.h orders.
 */
#include "fs.h"

struct snap_fs snap_fs = {
	.apply_lock = PTHREAD_MUTEX_INITIALIZER,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.unpinned = PTHREAD_COND_INITIALIZER,
};
