/*
 * engine/capture_vfs.h — the write-capturing VFS (internal): a SQLite
 * connection whose main file is a capture (capture.h), to be the
 * destination of a sqlite3_backup.  The design is at the top of
 * capture_vfs.c.
 */
#ifndef ENGINE_CAPTURE_VFS_H
#define ENGINE_CAPTURE_VFS_H

#include <sqlite3.h>

#include "capture.h"

/* Open a destination connection whose main file is capture c (registering
 * the VFS the first time): 0, or a negative errno with *dst NULL. */
int snap_capture_open_db(snap_capture *c, sqlite3 **dst, snap_err *err);

#endif /* ENGINE_CAPTURE_VFS_H */
