/*
 * engine/vfs.c — the methods the engine's VFSes share; see vfs.h.
 *
 * Randomness, sleep and time come from the default VFS as it is when they
 * are called (the engine registers its VFSes without making them the
 * default).
 */
#include <stdio.h>

#include "vfs.h"

int snap_vfs_sync(sqlite3_file *f, int flags)
{
	(void)f;
	(void)flags;
	return SQLITE_OK;
}

int snap_vfs_lock(sqlite3_file *f, int level)
{
	(void)f;
	(void)level;
	return SQLITE_OK;
}

int snap_vfs_check_reserved(sqlite3_file *f, int *out)
{
	(void)f;
	*out = 0;
	return SQLITE_OK;
}

int snap_vfs_fcntl(sqlite3_file *f, int op, void *arg)
{
	(void)f;
	(void)op;
	(void)arg;
	return SQLITE_NOTFOUND;
}

int snap_vfs_sector(sqlite3_file *f)
{
	(void)f;
	return 4096;
}

int snap_vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	(void)vfs;
	(void)name;
	(void)flags;
	*out = 0;
	return SQLITE_OK;
}

int snap_vfs_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
	(void)vfs;
	snprintf(out, (size_t)n, "%s", name);
	return SQLITE_OK;
}

int snap_vfs_random(sqlite3_vfs *vfs, int n, char *out)
{
	sqlite3_vfs *d = sqlite3_vfs_find(NULL);

	(void)vfs;
	return d->xRandomness(d, n, out);
}

int snap_vfs_sleep(sqlite3_vfs *vfs, int us)
{
	sqlite3_vfs *d = sqlite3_vfs_find(NULL);

	(void)vfs;
	return d->xSleep(d, us);
}

int snap_vfs_time(sqlite3_vfs *vfs, double *t)
{
	sqlite3_vfs *d = sqlite3_vfs_find(NULL);

	(void)vfs;
	return d->xCurrentTime(d, t);
}

int snap_vfs_lasterr(sqlite3_vfs *vfs, int n, char *out)
{
	(void)vfs;
	(void)n;
	(void)out;
	return 0;
}
