/*
 * engine/storespace.c — room on the store's filesystem: what a snapshot
 * may take (snap_store_space, the numbers of the guard in retention.h) and
 * whether the store may be written now (snap_store_writable).  A store
 * opened read-only because its filesystem was full becomes writable again
 * here, once there is room.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "anchor.h"
#include "codec.h"
#include "store_int.h"
#include "sys.h"

/* What a snapshot adds beside its pages: catalog row, map, index pages. */
#define STORE_SPACE_SLACK (1ull << 20)

/*
 * A store read-only for want of room: writable again once there is room.
 * The new catalog connection is made without s->mu (it may wait for
 * another writer) and swapped in under it.  Returns the store's state.
 */
static int store_retry_rw(snap_store *s)
{
	sqlite3 *db = NULL;
	snap_err e;
	int full, ro;

	if (snap_store_room(s) < STORE_ROOM_MIN ||
	    snap_store_open_rw(s, SQLITE_OPEN_FULLMUTEX, &db, &full, &e) != 0)
		return SNAP_STORE_RO_FULL;
	snap_store_lock(s);
	if (s->readonly == SNAP_STORE_RO_FULL) {
		sqlite3 *old = s->db;

		s->db = db;
		db = old;
		s->readonly = SNAP_STORE_RW;
		s->immutable = 0;
	}
	ro = s->readonly;
	snap_store_unlock(s);
	sqlite3_close(db);
	return ro;
}

/* Size of a file, 0 when it does not exist. */
static uint64_t file_size(const char *path)
{
	struct stat st;

	return snap_sys_stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Measure (see snap_retention_make_room in retention.h for the formula). */
int snap_store_space(snap_store *s, snap_space *sp, snap_err *err)
{
	char path[PATH_MAX];
	struct statvfs vfs;
	struct stat wst;
	uint64_t live, unit;
	int64_t pages[2] = { 0, 0 };
	int rc;

	memset(sp, 0, sizeof(*sp));
	if (fstatvfs(s->dirfd, &vfs) < 0)
		return snap_err_set(err, -errno, "store %s: cannot measure its "
				    "free space: %s", s->dir, strerror(errno));
	sp->fs_free = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	rc = snap_store_query_ints(s, "SELECT freelist_count, page_size "
				   "FROM pragma_freelist_count, "
				   "pragma_page_size", pages, 2,
				   "read its free pages", err);
	if (rc)
		return rc;
	sp->reusable = (uint64_t)pages[0] * (uint64_t)pages[1];
	if (snap_sys_fstatat(s->dirfd, "store.db-wal", &wst,
			     AT_SYMLINK_NOFOLLOW) == 0)
		sp->wal = (uint64_t)wst.st_size;
	snprintf(path, sizeof(path), "%s-wal", s->db_path);
	live = file_size(s->db_path) + file_size(path);
	unit = live + live / 16 + STORE_SPACE_SLACK;
	sp->unit = unit;
	sp->need = unit + (unit > sp->reusable ? unit - sp->reusable : 0);
	return 0;
}

/* 0 when the store takes changes now; otherwise why not (-EROFS, -ENOSPC). */
int snap_store_writable(snap_store *s, snap_err *err)
{
	unsigned long long free_mb, need_mb;
	uint64_t room = 0, need = 0;
	snap_space sp;
	snap_err e;
	int ro;

	snap_store_lock(s);
	ro = s->readonly;
	snap_store_unlock(s);
	if (ro == SNAP_STORE_RO_FULL)
		ro = store_retry_rw(s);
	switch (ro) {
	case SNAP_STORE_RW:
		return 0;
	case SNAP_STORE_RO_FULL:
		snap_err_clear(&e);
		if (snap_store_space(s, &sp, &e) < 0) {
			room = snap_store_room(s);
		} else {
			room = sp.fs_free;
			need = sp.need;
		}
		free_mb = room / (1 << 20);
		need_mb = (need + (1 << 20) - 1) / (1 << 20);
		return snap_err_set(err, -ENOSPC, "store %s: its filesystem is "
				    "full (%llu MB free): its snapshots can be "
				    "listed, read, verified and exported, but "
				    "nothing can be added or changed; a "
				    "snapshot of %s may need %llu MB: free "
				    "space, or move the store (-o store=)",
				    s->dir, free_mb, s->db_path, need_mb);
	case SNAP_STORE_RO_ASKED:
		return snap_err_set(err, -EROFS, "store %s was opened only for "
				    "reading", s->dir);
	default:
		return snap_err_set(err, -EROFS, "store %s is read-only (the "
				    "filesystem or the directory is not "
				    "writable): it can be listed, verified and "
				    "exported, not changed", s->dir);
	}
}
