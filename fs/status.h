/*
 * fs/status.h — status files (status.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_STATUS_H
#define FS_STATUS_H

#include "ino.h"

/* ---- status files (status.c) -------------------------------------------- */

/* The text of .snapfs/status.json or .snapfs/log; free() it. */
int snap_status_text(fuse_ino_t ino, char **text, size_t *len);

#endif /* FS_STATUS_H */
