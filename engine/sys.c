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

static int libc_open(const char *path, int flags, mode_t mode)
{
	return open(path, flags, mode);
}

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
	.rmdir = rmdir, .fchmod = fchmod, .rename = rename, \
	.renameat = renameat, .link = link, .unlink = unlink, \
	.unlinkat = unlinkat, .opendir = opendir, .fdopendir = fdopendir, \
	.mkostemp = mkostemp, .point = NULL, \
}

const snap_sys_table snap_sys_libc = SYS_LIBC;
snap_sys_table snap_sys = SYS_LIBC;

/* Call `expr` (which sets r) again for as long as it fails with EINTR. */
#define SYS_RETRY(expr) \
	do { (expr); } while (r < 0 && errno == EINTR)

int snap_sys_open(const char *path, int flags, mode_t mode)
{
	int r;

	SYS_RETRY(r = snap_sys.open(path, flags, mode));
	return r;
}

int snap_sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	int r;

	SYS_RETRY(r = snap_sys.openat(dirfd, path, flags, mode));
	return r;
}

int snap_sys_close(int fd)
{
	return snap_sys.close(fd);
}

ssize_t snap_sys_read(int fd, void *buf, size_t n)
{
	ssize_t r;

	SYS_RETRY(r = snap_sys.read(fd, buf, n));
	return r;
}

ssize_t snap_sys_pread(int fd, void *buf, size_t n, off_t off)
{
	ssize_t r;

	SYS_RETRY(r = snap_sys.pread(fd, buf, n, off));
	return r;
}

ssize_t snap_sys_write(int fd, const void *buf, size_t n)
{
	ssize_t r;

	SYS_RETRY(r = snap_sys.write(fd, buf, n));
	return r;
}

ssize_t snap_sys_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t r;

	SYS_RETRY(r = snap_sys.pwrite(fd, buf, n, off));
	return r;
}

int snap_sys_fsync(int fd)
{
	int r;

	SYS_RETRY(r = snap_sys.fsync(fd));
	return r;
}

int snap_sys_ftruncate(int fd, off_t len)
{
	int r;

	SYS_RETRY(r = snap_sys.ftruncate(fd, len));
	return r;
}

int snap_sys_flock(int fd, int op)
{
	int r;

	SYS_RETRY(r = snap_sys.flock(fd, op));
	return r;
}

int snap_sys_fstat(int fd, struct stat *st)
{
	int r;

	SYS_RETRY(r = snap_sys.fstat(fd, st));
	return r;
}

int snap_sys_stat(const char *path, struct stat *st)
{
	int r;

	SYS_RETRY(r = snap_sys.stat(path, st));
	return r;
}

int snap_sys_lstat(const char *path, struct stat *st)
{
	int r;

	SYS_RETRY(r = snap_sys.lstat(path, st));
	return r;
}

int snap_sys_fstatat(int dirfd, const char *path, struct stat *st,
		     int flags)
{
	int r;

	SYS_RETRY(r = snap_sys.fstatat(dirfd, path, st, flags));
	return r;
}

int snap_sys_access(const char *path, int mode)
{
	int r;

	SYS_RETRY(r = snap_sys.access(path, mode));
	return r;
}

int snap_sys_mkdir(const char *path, mode_t mode)
{
	int r;

	SYS_RETRY(r = snap_sys.mkdir(path, mode));
	return r;
}

int snap_sys_mkdirat(int dirfd, const char *path, mode_t mode)
{
	int r;

	SYS_RETRY(r = snap_sys.mkdirat(dirfd, path, mode));
	return r;
}

int snap_sys_rmdir(const char *path)
{
	int r;

	SYS_RETRY(r = snap_sys.rmdir(path));
	return r;
}

int snap_sys_fchmod(int fd, mode_t mode)
{
	int r;

	SYS_RETRY(r = snap_sys.fchmod(fd, mode));
	return r;
}

int snap_sys_rename(const char *from, const char *to)
{
	int r;

	SYS_RETRY(r = snap_sys.rename(from, to));
	return r;
}

int snap_sys_renameat(int fromfd, const char *from, int tofd,
		      const char *to)
{
	int r;

	SYS_RETRY(r = snap_sys.renameat(fromfd, from, tofd, to));
	return r;
}

int snap_sys_link(const char *from, const char *to)
{
	int r;

	SYS_RETRY(r = snap_sys.link(from, to));
	return r;
}

int snap_sys_unlink(const char *path)
{
	int r;

	SYS_RETRY(r = snap_sys.unlink(path));
	return r;
}

int snap_sys_unlinkat(int dirfd, const char *path, int flags)
{
	int r;

	SYS_RETRY(r = snap_sys.unlinkat(dirfd, path, flags));
	return r;
}

DIR *snap_sys_opendir(const char *path)
{
	DIR *d;

	do {
		d = snap_sys.opendir(path);
	} while (!d && errno == EINTR);
	return d;
}

DIR *snap_sys_fdopendir(int fd)
{
	DIR *d;

	do {
		d = snap_sys.fdopendir(fd);
	} while (!d && errno == EINTR);
	return d;
}

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

int snap_sys_point(snap_sys_kind kind, const char *what)
{
	int e;

	if (!snap_sys.point)
		return 0;
	e = snap_sys.point(kind, what);
	return e ? -e : 0;
}
