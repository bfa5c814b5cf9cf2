/*
 * engine/anchor.h — paths anchored to an open directory, and the VFS shim
 * that keeps SQLite from resolving them back into names (see anchor.c).
 *
 * Thread-safety: registration runs once per process (pthread_once);
 * snap_anchor_path's kept directories are under a mutex; the other calls
 * have no state.
 */
#ifndef ENGINE_ANCHOR_H
#define ENGINE_ANCHOR_H

#include <stddef.h>

#include <sqlite3.h>

#include "err.h"

#define SNAP_ANCHOR_VFS "snapfs-anchored"

/*
 * Register the anchored VFS as SQLite's default (once; later calls only
 * report the outcome).  0 or a negative errno.  Must run before the first
 * connection on an anchored path.
 */
int snap_anchor_register(snap_err *err);

/*
 * "/proc/self/fd/<dirfd>" into out, after checking that it leads to the
 * directory dirfd holds.  0; -ENOENT (out empty) when /proc cannot anchor
 * it; -ENAMETOOLONG.
 */
int snap_anchor_dir(int dirfd, char *out, size_t cap);

/*
 * Fill v as a VFS called name that forwards every VFS-level call to b
 * (kept in v->pAppData) unchanged: its version (at most 3), file size,
 * path length and every method b has.  A shim then replaces what it
 * changes (xOpen, xFullPathname, szOsFile, ...) and registers v.
 */
void snap_anchor_forward_init(sqlite3_vfs *v, sqlite3_vfs *b,
			      const char *name);

/*
 * path (a file in a directory others may write: the live database) as
 * "/proc/self/fd/<dirfd>/<name>" into out, dirfd that directory kept open
 * for the process's life.  The directory is reached by a walk from "/" (or
 * the working directory) that follows no symlink, and must be the one
 * kept under that name by the first call (one removed gives way).  0;
 * -ELOOP (a symlink on the way), -ENOENT, -ENOTDIR, -ESTALE (the directory
 * at that name is not the one kept: renamed or replaced since;
 * snap_livedb_path reports it as -EPERM), -EINVAL
 * (no file name), -ENAMETOOLONG, -ENOMEM.  Without /proc, out is path
 * (checked by the walk).  Thread-safe.
 */
int snap_anchor_path(const char *path, char *out, size_t cap);

/* 1 when path is anchored ("/proc/self/fd/..."). */
int snap_anchor_is(const char *path);

#endif /* ENGINE_ANCHOR_H */
