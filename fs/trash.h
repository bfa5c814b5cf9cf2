/*
 * fs/trash.h — the freedesktop trash (trash.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_TRASH_H
#define FS_TRASH_H

#include "ino.h"

/* ---- the freedesktop trash (trash.c) ------------------------------------ */

/* The parts of one user's trash: .Trash-UID itself and its directories. */
enum {
	SNAP_TRASH_TOP = 0,
	SNAP_TRASH_PART_FILES = 1,
	SNAP_TRASH_PART_INFO = 2,
	SNAP_TRASH_PART_EXPUNGED = 3,
};

/* What the kernel must forget after a trash operation; queued by
 * snap_trashdir_notify after the reply. */
struct snap_trash_inval {
	fuse_ino_t parent;             /* an info/ directory, 0 = nothing */
	char name[NAME_MAX + 1];       /* NAME.trashinfo in it */
	int latest;                    /* latest.db may name another */
};

/* Add an entry called name to a listing; the entry to fill, or NULL. */
typedef struct snap_dirent *(*snap_trash_add_fn)(void *ctx,
						 const char *name);

/* 1 when name is ".Trash-UID" (*uid set when uid is not NULL). */
int snap_trashdir_name(const char *name, uint32_t *uid);
/* 1 when ino is a trash directory that exists now. */
int snap_trashdir_is_dir(fuse_ino_t ino);
/* Attributes of a trash inode; -ENOENT when it does not exist now. */
int snap_trashdir_attr(fuse_ino_t ino, struct stat *st, double *ttl);
/* The entry name in parent (the root's .Trash-UID, or a trash directory;
 * nodes in info/ are inode.c's): 0 with its attributes and their lifetime
 * (the entry's is 0), or -errno. */
int snap_trashdir_lookup(fuse_ino_t parent, const char *name,
			 struct stat *st, double *attr_ttl);
/* The listing of a trash directory, or the .Trash-UID entries of the root
 * (ino SNAP_INO_ROOT), through add; 0 or -errno. */
int snap_trashdir_list(fuse_ino_t ino, snap_trash_add_fn add, void *ctx);
/* mkdir .Trash-UID (by UID alone) or one of its directories (EEXIST). */
int snap_trashdir_mkdir(fuse_ino_t parent, const char *name, uid_t who,
			struct stat *st);
/* rmdir .Trash-UID: 0 when it holds nothing, -ENOTEMPTY, -EPERM. */
int snap_trashdir_rmdir(fuse_ino_t parent, const char *name);
/* setattr of a trash inode: only what changes nothing (chmod 0700 of a
 * trash directory, times) succeeds; st gets the attributes. */
int snap_trashdir_setattr(fuse_ino_t ino, const struct stat *attr,
			  int to_set, struct stat *st, double *ttl);
/* 0 when a file called name may be created in trash directory parent (a
 * .trashinfo in info/), or -errno. */
int snap_trashdir_may_create(fuse_ino_t parent, const char *name);
/* Open a trash inode: the stored .trashinfo's text (malloc()ed), -EISDIR,
 * or -EPERM for a write. */
int snap_trashdir_open(fuse_ino_t ino, int flags, char **text, size_t *len);
/* unlink in a trash directory (but of a node): files/ and expunged/
 * delete the snapshot (emptying the trash). */
int snap_trashdir_unlink(fuse_ino_t parent, const char *name,
			 struct snap_trash_inval *inv);
/* rename with a trash directory on either side: snapshots/ -> files/
 * trashes, files/ (expunged/) -> snapshots/ restores (*restored gets the
 * snapshot, back under its own name), files/ <-> expunged/ moves, info/
 * -> info/ renames a node; anything else -EPERM. */
int snap_trashdir_rename(fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned flags, snap_info *restored,
			 struct snap_trash_inval *inv);
/* Queue what inv says (after the reply). */
int snap_trashdir_holds_snapshots(fuse_ino_t ino);
int snap_trashdir_snapshot(fuse_ino_t parent, const char *name,
			   snap_info *si);
void snap_trashdir_notify(const struct snap_trash_inval *inv);

#endif /* FS_TRASH_H */
