/*
 * engine/vfs.h — what the engine's own SQLite VFSes share (internal): the
 * methods that do nothing, and those taken from the default VFS.
 *
 * The capture VFS (capture_vfs.c) and the read-only snapshot VFS
 * (image_vfs.c) each serve one main database file and no side file: no locks
 * (a capture has one writer; a snapshot is opened immutable), no journal,
 * no WAL.  Their own methods are the reads, writes and sizes; the rest is
 * here, so the two tables differ only where the files do.
 */
#ifndef ENGINE_VFS_H
#define ENGINE_VFS_H

#include <sqlite3.h>

/* xSync: nothing to make durable (SQLITE_OK). */
int snap_vfs_sync(sqlite3_file *f, int flags);
/* xLock and xUnlock: no locks to take (SQLITE_OK). */
int snap_vfs_lock(sqlite3_file *f, int level);
/* xCheckReservedLock: nobody holds one. */
int snap_vfs_check_reserved(sqlite3_file *f, int *out);
/* xFileControl: no file controls (SQLITE_NOTFOUND). */
int snap_vfs_fcntl(sqlite3_file *f, int op, void *arg);
/* xSectorSize: 4096. */
int snap_vfs_sector(sqlite3_file *f);

/* xAccess: no side file (journal, WAL) ever exists. */
int snap_vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out);
/* xFullPathname: the name as given. */
int snap_vfs_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out);
/* xRandomness, xSleep, xCurrentTime: the default VFS's. */
int snap_vfs_random(sqlite3_vfs *vfs, int n, char *out);
int snap_vfs_sleep(sqlite3_vfs *vfs, int us);
int snap_vfs_time(sqlite3_vfs *vfs, double *t);
/* xGetLastError: no error text of our own (0). */
int snap_vfs_lasterr(sqlite3_vfs *vfs, int n, char *out);

#endif /* ENGINE_VFS_H */
