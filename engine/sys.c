/*
 * engine/sys.c — the system-call table and its EINTR-retrying callers; see
 * sys.h for the design.
 *
 * The defaults are thin functions over libc rather than libc's own
 * addresses: open() and openat() are variadic, and calling a variadic
 * function through a pointer of another type is undefined.  A test that
 * replaces an entry calls the matching snap_sys_libc entry to pass a call
 * through.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "sys.h"

/* open(2) with a fixed signature (open is variadic). */
static int libc_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags, mode);
}

/* openat(2) with a fixed signature (openat is variadic). */
static int libc_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return openat(dirfd, path, flags, mode);
}

/* libc's functions, in the table's order. */
#define SYS_LIBC { \
	.open = libc_open, .openat = libc_openat, .close = close, \
	.read = read, .pread = pread, .write = write, .pwrite = pwrite, \
	.fsync = fsync, .ftruncate = ftruncate, .flock = flock, \
	.fstat = fstat, .stat = stat, .lstat = lstat, .fstatat = fstatat, \
	.access = access, .mkdir = mkdir, .mkdirat = mkdirat, \
	.rmdir = rmdir, .fchmod = fchmod, .fchown = fchown, \
	.rename = rename, \
	.renameat = renameat, .link = link, .unlink = unlink, \
	.unlinkat = unlinkat, .opendir = opendir, .fdopendir = fdopendir, \
	.mkostemp = mkostemp, .point = NULL, \
}

const snap_sys_table snap_sys_libc = SYS_LIBC;
snap_sys_table snap_sys = SYS_LIBC;

/*
 * snap_sys_<name>(params): snap_sys.<name>(args) called again for as long
 * as it fails (`failed`, a test of its result r) with EINTR, then its
 * result.  SYS_CALL: the calls that fail by returning -1.
 */
#define SYS_CALL_AS(type, failed, name, params, args) \
	type snap_sys_##name params \
	{ \
		type r; \
		do { \
			r = snap_sys.name args; \
		} while ((failed) && errno == EINTR); \
		return r; \
	}
#define SYS_CALL(type, name, params, args) \
	SYS_CALL_AS(type, r < 0, name, params, args)

SYS_CALL(int, open, (const char *path, int flags, mode_t mode),
	 (path, flags, mode))
SYS_CALL(int, openat, (int dirfd, const char *path, int flags, mode_t mode),
	 (dirfd, path, flags, mode))

/* close(2) is never retried: after EINTR the fd is gone on Linux. */
int snap_sys_close(int fd)
{
	return snap_sys.close(fd);
}

SYS_CALL(ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n))
SYS_CALL(ssize_t, pread, (int fd, void *buf, size_t n, off_t off),
	 (fd, buf, n, off))
SYS_CALL(ssize_t, write, (int fd, const void *buf, size_t n), (fd, buf, n))
SYS_CALL(ssize_t, pwrite, (int fd, const void *buf, size_t n, off_t off),
	 (fd, buf, n, off))
SYS_CALL(int, fsync, (int fd), (fd))
SYS_CALL(int, ftruncate, (int fd, off_t len), (fd, len))
SYS_CALL(int, flock, (int fd, int op), (fd, op))
SYS_CALL(int, fstat, (int fd, struct stat *st), (fd, st))
SYS_CALL(int, stat, (const char *path, struct stat *st), (path, st))
SYS_CALL(int, lstat, (const char *path, struct stat *st), (path, st))
SYS_CALL(int, fstatat,
	 (int dirfd, const char *path, struct stat *st, int flags),
	 (dirfd, path, st, flags))
SYS_CALL(int, access, (const char *path, int mode), (path, mode))
SYS_CALL(int, mkdir, (const char *path, mode_t mode), (path, mode))
SYS_CALL(int, mkdirat, (int dirfd, const char *path, mode_t mode),
	 (dirfd, path, mode))
SYS_CALL(int, rmdir, (const char *path), (path))
SYS_CALL(int, fchmod, (int fd, mode_t mode), (fd, mode))
SYS_CALL(int, fchown, (int fd, uid_t uid, gid_t gid), (fd, uid, gid))
SYS_CALL(int, rename, (const char *from, const char *to), (from, to))
SYS_CALL(int, renameat,
	 (int fromfd, const char *from, int tofd, const char *to),
	 (fromfd, from, tofd, to))
SYS_CALL(int, link, (const char *from, const char *to), (from, to))
SYS_CALL(int, unlink, (const char *path), (path))
SYS_CALL(int, unlinkat, (int dirfd, const char *path, int flags),
	 (dirfd, path, flags))

SYS_CALL_AS(DIR *, !r, opendir, (const char *path), (path))
SYS_CALL_AS(DIR *, !r, fdopendir, (int fd), (fd))

/* mkostemp, retried on EINTR from the same template. */
int snap_sys_mkostemp(char *tmpl, int flags)
{
	size_t n = strlen(tmpl);
	char xs[7];
	int r;

	if (n < 6) {
		errno = EINVAL;
		return -1;
	}
	memcpy(xs, tmpl + n - 6, sizeof(xs));
	do {
		memcpy(tmpl + n - 6, xs, sizeof(xs));
		r = snap_sys.mkostemp(tmpl, flags);
	} while (r < 0 && errno == EINTR);
	return r;
}

/* Write all n bytes, continuing after short writes; 0 or -1 with errno. */
int snap_sys_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = snap_sys_write(fd, p, n);

		if (w < 0)
			return -1;
		if (w == 0) {        /* no progress and no error: say so */
			errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int snap_sys_write_behind(int fd, const void *buf, size_t n, off_t *written,
			  off_t *flushed)
{
	if (snap_sys_write_all(fd, buf, n) < 0)
		return -1;
	*written += (off_t)n;
	if (*written - *flushed >= (off_t)SNAP_WRITE_BEHIND) {
		(void)sync_file_range(fd, *flushed, *written - *flushed,
				      SYNC_FILE_RANGE_WRITE);
		*flushed = *written;
	}
	return 0;
}

/* fsync the directory that holds path; 0 or -1 with errno. */
int snap_sys_sync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc, e;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = snap_sys_open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	rc = snap_sys_fsync(fd);
	e = errno;
	snap_sys_close(fd);
	errno = e;
	return rc;
}

/* A fault point: what the test hook says (a negative errno), or 0. */
int snap_sys_point(snap_sys_kind kind, const char *what)
{
	int e;

	if (!snap_sys.point)
		return 0;
	e = snap_sys.point(kind, what);
	return e ? -e : 0;
}
