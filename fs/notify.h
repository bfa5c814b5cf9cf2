/*
 * fs/notify.h — the notifier thread that invalidates kernel caches (notify.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_NOTIFY_H
#define FS_NOTIFY_H

#include "ino.h"

/* ---- the notifier (notify.c) -------------------------------------------- */

struct snap_notify;

/* Start the thread; 0 or -errno. */
int snap_notify_start(struct fuse_session *se, struct snap_notify **out);
/* Stop and join it, dropping what is still queued. */
void snap_notify_stop(struct snap_notify *n);
/* Queue "forget the kernel's dentry parent/name" (never blocks on FUSE). */
void snap_notify_entry(struct snap_notify *n, fuse_ino_t parent,
		       const char *name);
/* Queue "forget the kernel's attributes and cached data of ino". */
void snap_notify_inode(struct snap_notify *n, fuse_ino_t ino);
/* Both, for current.db after a restore or an upload
 * (engine/PITFALLS.md 16). */
void snap_notify_current(struct snap_notify *n);
/* Around the handler of an operation the kernel sends with directory dir
 * locked (lookup, readdir, create, unlink, rename, ...; ops.c): no name in
 * dir is invalidated meanwhile (see notify.c).  Never blocks. */
void snap_notify_dir_begin(struct snap_notify *n, fuse_ino_t dir);
void snap_notify_dir_end(struct snap_notify *n, fuse_ino_t dir);
/* Queue "the name parent/name, which named child, is deleted": the kernel
 * drops the dentry and the inode's link (an inotify watch on the file
 * hears IN_DELETE_SELF). */
void snap_notify_delete(struct snap_notify *n, fuse_ino_t parent,
			fuse_ino_t child, const char *name);

#endif /* FS_NOTIFY_H */
