/*
 * engine/storespace.c — room on the store's filesystem: what a snapshot
 * may take (snap_store_space, the numbers of the guard in retention.h).
 * Whether the store may be written now (snap_store_writable: a store
 * opened read-only because its filesystem was full becomes writable again
 * once there is room) is in storeopen.c, with the connections.
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
	/* A reserve given back (below) is not room for snapshots: it comes
	 * back after the next one. */
	if (snap_sys_fstatat(s->dirfd, "reserve", &wst, AT_SYMLINK_NOFOLLOW) <
	    0) {
		uint64_t r = snap_store_reserve_size(s);
		sp->fs_free -= sp->fs_free < r ? sp->fs_free : r;
	}
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


/*
 * The reserve: a file (snap_store_reserve_size) kept in the store while its
 * filesystem has room, given back when a catalog change (a delete, a
 * prune, the trash) finds the filesystem full.  Without it a full store
 * could not even delete a snapshot to make room: SQLite needs space to
 * checkpoint its -wal and to log the change (as ZFS keeps slop space for
 * its own deletes).  A snapshot never uses it: the file is not free space.
 */
uint64_t snap_store_reserve_size(snap_store *s)
{
	struct statvfs v;
	struct stat st;
	uint64_t n;

	if (fstatvfs(s->dirfd, &v) < 0)
		return STORE_RESERVE_MIN;
	n = (uint64_t)v.f_blocks * (uint64_t)v.f_frsize / 64;
	/* ... and a 16th of the store: a small store on a big disk needs
	 * no more to delete, and pays it in its size. */
	if (snap_sys_fstatat(s->dirfd, "store.db", &st, AT_SYMLINK_NOFOLLOW) ==
	    0 && (uint64_t)st.st_size / 16 < n)
		n = (uint64_t)st.st_size / 16;
	return n < STORE_RESERVE_MIN ? STORE_RESERVE_MIN :
	       n > STORE_RESERVE_MAX ? STORE_RESERVE_MAX : n;
}

void snap_store_reserve_keep(snap_store *s)
{
	uint64_t size = snap_store_reserve_size(s);
	struct stat st;
	snap_err e;
	int fd;

	if (snap_sys_fstatat(s->dirfd, "reserve", &st, AT_SYMLINK_NOFOLLOW) ==
	    0)
		return;
	if (errno != ENOENT || snap_store_room(s) == UINT64_MAX ||
	    snap_store_room(s) < size + STORE_ROOM_MIN)
		return;
	fd = snap_store_file_open(s, "reserve", O_RDWR | O_CREAT | O_EXCL, &e);
	if (fd < 0)
		return;
	/* Real blocks (fallocate), not a hole: it must be space to give. */
	if (posix_fallocate(fd, 0, (off_t)size) != 0) {
		snap_sys_close(fd);
		snap_sys_unlinkat(s->dirfd, "reserve", 0);
		return;
	}
	snap_sys_close(fd);
}

int snap_store_reserve_release(snap_store *s)
{
	return snap_sys_unlinkat(s->dirfd, "reserve", 0) == 0;
}
