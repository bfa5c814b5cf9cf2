/*
 * fs/rmount.h — `snapfs [options] URL MOUNTPOINT`: a replica (s3:// or
 * file://, engine/replica.h) mounted read-only.  replica.c is the command
 * line and the mount's life; replica_ops.c the tree and its operations.
 * Separate from the daemon: no store, no live database, no timer.
 */
#ifndef FS_RMOUNT_H
#define FS_RMOUNT_H

#include "ino.h"
#include "replica.h"

/* 1 when the first non-option argument of argv is a replica URL (s3://,
 * file://): main() then hands argv to snap_rmount_main. */
int snap_rmount_wanted(int argc, char *argv[]);

/* The replica mount's main(): parse, open the replica, mount, serve;
 * the exit status (1 with a message on stderr when nothing was mounted). */
int snap_rmount_main(int argc, char *argv[]);

/* The state replica_ops.c serves from; set before the session loop. */
struct snap_rmount {
	snap_replica *r;          /* under lock */
	const char *url;
	snap_info *snaps;         /* the catalog rows at mount time */
	size_t nsnaps;
	char *status;             /* .snapfs/status.json's text */
	int64_t started_ns;
	uid_t uid;
	gid_t gid;
};

/* The operations of the replica mount, serving m (kept by pointer). */
const struct fuse_lowlevel_ops *snap_rmount_ops(struct snap_rmount *m);

/* Free what snap_rmount_ops's handlers left (open images); after the
 * session loop ended. */
void snap_rmount_ops_end(void);

#endif /* FS_RMOUNT_H */
