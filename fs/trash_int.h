/*
 * fs/trash_int.h — what trash.c and trashfiles.c share: the trash's
 * modes, names and numbers.  Private to the two.
 */
#ifndef FS_TRASH_INT_H
#define FS_TRASH_INT_H

#include "fs.h"

#define TRASH_DIR_MODE 0700
#define TRASH_FILE_MODE 0600
#define TRASH_INFO_SUFFIX ".trashinfo"

/* The names of a trash's parts, by SNAP_TRASH_PART_* ("" for the top). */
extern const char *const snap_trashdir_part_names[];

/* The inode of uid's trash part. */
fuse_ino_t snap_trashdir_ino(uint32_t uid, int part);
/* 1 when ino is a trash directory's number (*uid, *part set). */
int snap_trashdir_of(fuse_ino_t ino, uint32_t *uid, int *part);
/* The engine's directory for a part (files/, expunged/), or NONE. */
snap_trash_dir snap_trashdir_part_dir(int part);
/* "X" of "X.trashinfo" into base; 0, or -ENOENT for another name. */
int snap_trashdir_info_base(const char *name, char *base, size_t cap);
/* Remember that uid's trash exists for the rest of the run; -ENOMEM. */
int snap_trashdir_remember(uint32_t uid);
/* 1 when uid's trash exists (made in this run, or holding a snapshot). */
int snap_trashdir_exists(uint32_t uid);
/* The trashed snapshot behind a stored info file's inode, still in
 * files/. */
int snap_trashdir_info_snapshot(fuse_ino_t ino, snap_info *si);

#endif /* FS_TRASH_INT_H */
