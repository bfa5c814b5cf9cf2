/*
 * fs/ino.h — inode numbers, fixed names, cache lifetimes, the root's fixed
 * directories (attr.c, inode.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_INO_H
#define FS_INO_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "snapfs.h"

/* ---- inode numbers ------------------------------------------------------ */

enum {
	SNAP_INO_ROOT = FUSE_ROOT_ID, /* the mount root */
	SNAP_INO_CURRENT = 2,         /* current.db */
	SNAP_INO_SNAPDIR = 3,         /* snapshots/ */
	SNAP_INO_META = 4,            /* .snapfs/ */
	SNAP_INO_STATUS = 5,          /* .snapfs/status.json */
	SNAP_INO_LOG = 6,             /* .snapfs/log */
	SNAP_INO_LATEST = 7,          /* snapshots/latest.db */
	SNAP_INO_RESTORE = 8,         /* restore/ */
	SNAP_INO_LEFT = 9,            /* a name that just left restore/
				       * or snapshots/ (attr.c) */
};

#define SNAP_INO_SNAP_BASE ((fuse_ino_t)1 << 32)
#define SNAP_INO_NODE_BASE ((fuse_ino_t)1 << 56)
#define SNAP_INO_TRASH_INFO_BASE ((fuse_ino_t)1 << 60)
#define SNAP_INO_TRASH_DIR_BASE ((fuse_ino_t)1 << 61)

#define SNAP_NAME_CURRENT "current.db"
#define SNAP_NAME_SNAPDIR "snapshots"
#define SNAP_NAME_META ".snapfs"
#define SNAP_NAME_STATUS "status.json"
#define SNAP_NAME_LOG "log"
#define SNAP_NAME_LATEST "latest.db"
#define SNAP_NAME_RESTORE "restore"

/* Kernel cache lifetimes, seconds. */
#define SNAP_TTL_DIR 1.0          /* the fixed directories */
#define SNAP_TTL_SNAP_ENTRY 1.0   /* a snapshot's name (snapctl may delete) */
#define SNAP_TTL_SNAP_ATTR 3600.0 /* a snapshot's attributes (immutable) */
#define SNAP_TTL_NEGATIVE 3600.0  /* -journal/-wal/-shm next to a snapshot */

static inline int snap_ino_is_snapshot(fuse_ino_t ino)
{
	return ino >= SNAP_INO_SNAP_BASE && ino < SNAP_INO_NODE_BASE;
}

static inline int64_t snap_ino_snapshot_id(fuse_ino_t ino)
{
	return (int64_t)(ino - SNAP_INO_SNAP_BASE);
}

static inline fuse_ino_t snap_ino_of_snapshot(int64_t id)
{
	return SNAP_INO_SNAP_BASE + (fuse_ino_t)id;
}

/* 1 for the trash's own inodes (its directories, stored .trashinfo). */
static inline int snap_ino_is_trash(fuse_ino_t ino)
{
	return ino >= SNAP_INO_TRASH_INFO_BASE;
}

/* 1 when name ends in -journal, -wal or -shm (SQLite's side files). */
int snap_name_is_sidefile(const char *name);

/*
 * The fixed directories of the root (attr.c), in listing order: one table,
 * so a new one is a row there and every handler (lookup, listing, open,
 * create, unlink, rename) treats it as a directory.
 * snap_rootdir_ino: the inode of the root directory called name, 0 when
 * there is none; snap_rootdir_at: the i-th one's name and inode, NULL past
 * the end; snap_ino_is_dir: 1 for the root and the fixed directories.
 */
fuse_ino_t snap_rootdir_ino(const char *name);
const char *snap_rootdir_at(size_t i, fuse_ino_t *ino);
int snap_ino_is_dir(fuse_ino_t ino);

#endif /* FS_INO_H */
