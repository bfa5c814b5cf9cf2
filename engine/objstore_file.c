/*
 * engine/objstore_file.c — the file:// object store: one directory per
 * object directory ("packs/", "index/", ...) under the target directory,
 * opened relative to the target's descriptor with O_NOFOLLOW at every
 * step: a symlink planted anywhere in a shared target is refused, never
 * followed.  Objects are written as a private dot-named temporary file,
 * fsynced, renamed into place, and the directory fsynced, so a crash
 * leaves the old object or the new one, and at worst a dot file that no
 * listing returns.
 */
#include "objstore_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys.h"


/* Open (and with create, make) the object directory of name, relative to
 * the target; *base gets the name within it.  A name without a directory
 * lives in the target itself (a dup of its descriptor). */
static int file_dir(snap_objstore *o, const char *name, int create,
		    const char **base, snap_err *err)
{
	const char *slash = strchr(name, '/');
	if (!slash) {
		*base = name;
		int fd = fcntl(o->dirfd, F_DUPFD_CLOEXEC, 0);
		if (fd < 0)
			return snap_err_set(err, -errno, "%s: %s", o->path,
					    strerror(errno));
		return fd;
	}
	char dir[256];
	size_t n = (size_t)(slash - name);
	memcpy(dir, name, n);
	dir[n] = '\0';
	*base = slash + 1;
	if (create && snap_sys_mkdirat(o->dirfd, dir, 0700) < 0 &&
	    errno != EEXIST)
		return snap_err_set(err, -errno, "%s/%s: cannot create: %s",
				    o->path, dir, strerror(errno));
	int fd = snap_sys_openat(o->dirfd, dir,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				 O_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return -ENOENT;
		return snap_err_set(err, -e, "%s/%s: %s%s", o->path, dir,
				    strerror(e),
				    e == ELOOP || e == ENOTDIR ?
				    " (a symlink or a file where the replica "
				    "keeps a directory: refused)" : "");
	}
	return fd;
}

/* Write an object: a private temporary file, fsync, rename, fsync of
 * the directory. */
static int file_put(snap_objstore *o, const char *name, const void *data,
		    size_t len, snap_err *err)
{
	const char *base;
	int dfd = file_dir(o, name, 1, &base, err);
	if (dfd < 0)
		return dfd == -ENOENT ? snap_err_set(err, -ENOENT,
						     "%s: vanished", o->path)
				      : dfd;
	char tmp[300];
	int rc = 0, fd = -1;
	for (int tries = 0; fd < 0 && tries < 100; tries++) {
		snprintf(tmp, sizeof tmp, ".%s.%ld.%d", base, (long)getpid(),
			 rand());
		fd = snap_sys_openat(dfd, tmp,
				     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				     O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		rc = snap_err_set(err, -errno, "%s/%s: cannot create: %s",
				  o->path, name, strerror(errno));
		goto out;
	}
	if (snap_sys_write_all(fd, data, len) < 0 || snap_sys_fsync(fd) < 0) {
		rc = snap_err_set(err, -errno, "%s/%s: cannot write: %s",
				  o->path, name, strerror(errno));
		snap_sys_close(fd);
		snap_sys_unlinkat(dfd, tmp, 0);
		goto out;
	}
	if (snap_sys_close(fd) < 0 || snap_sys_renameat(dfd, tmp, dfd, base) < 0) {
		rc = snap_err_set(err, -errno, "%s/%s: cannot write: %s",
				  o->path, name, strerror(errno));
		snap_sys_unlinkat(dfd, tmp, 0);
		goto out;
	}
	if (snap_sys_fsync(dfd) < 0)
		rc = snap_err_set(err, -errno, "%s/%s: cannot make durable: %s",
				  o->path, name, strerror(errno));
out:
	snap_sys_close(dfd);
	return rc;
}

/* Read a whole object (a regular file, never through a symlink). */
static int file_get(snap_objstore *o, const char *name, size_t max,
		    uint8_t **data, size_t *len, snap_err *err)
{
	const char *base;
	int dfd = file_dir(o, name, 0, &base, err);
	if (dfd < 0)
		return dfd;
	int rc = 0;
	uint8_t *buf = NULL;
	/* O_NONBLOCK: a FIFO planted under an object's name must not hang
	 * the reader before fstat says it is not a regular file. */
	int fd = snap_sys_openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
				 O_NONBLOCK, 0);
	snap_sys_close(dfd);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		return snap_err_set(err, -errno, "%s/%s: %s", o->path, name,
				    strerror(errno));
	}
	struct stat st;
	if (snap_sys_fstat(fd, &st) < 0) {
		rc = snap_err_set(err, -errno, "%s/%s: %s", o->path, name,
				  strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = snap_err_set(err, -EIO, "%s/%s: not a replica object "
				  "(not a regular file)", o->path, name);
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		rc = snap_err_set(err, -EFBIG, "%s/%s: %lld bytes, more than "
				  "such an object can hold (%zu): refused",
				  o->path, name, (long long)st.st_size, max);
		goto out;
	}
	size_t n = (size_t)st.st_size, got = 0;
	buf = malloc(n ? n : 1);
	if (!buf) {
		rc = snap_err_set(err, -ENOMEM, "%s/%s: out of memory",
				  o->path, name);
		goto out;
	}
	while (got < n) {
		ssize_t r = snap_sys_read(fd, buf + got, n - got);
		if (r < 0) {
			rc = snap_err_set(err, -errno, "%s/%s: cannot read: %s",
					  o->path, name, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	*data = buf;
	*len = got;
	buf = NULL;
out:
	free(buf);
	snap_sys_close(fd);
	return rc;
}

/* The regular files of one object directory, dot names left out. */
static int file_list(snap_objstore *o, const char *dir,
		     snap_objstore_list_fn fn, void *ctx, snap_err *err)
{
	char probe[300];
	snprintf(probe, sizeof probe, "%s/x", dir);
	const char *base;
	int dfd = file_dir(o, probe, 0, &base, err);
	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	DIR *d = snap_sys_fdopendir(dfd);
	if (!d) {
		int e = errno;
		snap_sys_close(dfd);
		return snap_err_set(err, -e, "%s/%s: %s", o->path, dir,
				    strerror(e));
	}
	int rc = 0;
	struct dirent *de;
	char name[300];
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		snprintf(name, sizeof name, "%s/%s", dir, de->d_name);
		if (snap_objstore_name_check(name) < 0)
			continue;
		rc = fn(ctx, name, (uint64_t)st.st_size);
	}
	if (rc == 0 && errno != 0)
		rc = snap_err_set(err, -errno, "%s/%s: cannot list: %s",
				  o->path, dir, strerror(errno));
	closedir(d);
	return rc;
}

/* Unlink an object and make that durable; a missing one is fine. */
static int file_del(snap_objstore *o, const char *name, snap_err *err)
{
	const char *base;
	int dfd = file_dir(o, name, 0, &base, err);
	if (dfd == -ENOENT)
		return 0;
	if (dfd < 0)
		return dfd;
	int rc = 0;
	if (snap_sys_unlinkat(dfd, base, 0) < 0 && errno != ENOENT)
		rc = snap_err_set(err, -errno, "%s/%s: cannot delete: %s",
				  o->path, name, strerror(errno));
	else if (snap_sys_fsync(dfd) < 0)
		rc = snap_err_set(err, -errno, "%s/%s: cannot make durable: %s",
				  o->path, name, strerror(errno));
	snap_sys_close(dfd);
	return rc;
}

/* Close the target directory. */
static void file_close(snap_objstore *o)
{
	if (o->dirfd >= 0)
		snap_sys_close(o->dirfd);
	free(o->path);
}

static const snap_objstore_backend file_backend = {
	file_put, file_get, file_list, file_del, file_close,
	NULL,   /* prefetch: a local read costs no round trip */
	NULL,   /* interrupt: a local read does not wait on a server */
};

/* What a directory may hold before a replica is made in it: what a
 * replica puts there (a run killed before its config landed leaves
 * those, and dot-named temporaries) and the lost+found of a fresh file
 * system.  Anything else is someone's files. */
static int file_is_replica_name(const char *n)
{
	static const char *const names[] = {
		"config", "packs", "index", "maps", "locks", "log", "snapshots",
		"pruned", "lost+found", NULL,
	};
	if (n[0] == '.')
		return 1;
	for (int i = 0; names[i]; i++)
		if (!strcmp(n, names[i]))
			return 1;
	return 0;
}

/* With create, a target that has no config yet must be empty but for a
 * replica's own names: a new replica is never scattered among other
 * files (file:/// is the root directory, file:///home/me a home). */
static int file_target_check(snap_objstore *o, snap_err *err)
{
	struct stat st;
	if (fstatat(o->dirfd, "config", &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	int fd = fcntl(o->dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd < 0 ? NULL : snap_sys_fdopendir(fd);
	if (!d) {
		int e = errno;
		if (fd >= 0)
			snap_sys_close(fd);
		return snap_err_set(err, -e, "%s: %s", o->path, strerror(e));
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!file_is_replica_name(de->d_name))
			rc = snap_err_set(err, -ENOTEMPTY,
					  "%s: not a replica, and not empty "
					  "(it holds %s): give a new or empty "
					  "directory for a new replica", o->url,
					  de->d_name);
	}
	closedir(d);
	return rc;
}

int snap_objstore_file_open(snap_objstore *o, const char *path,
			    unsigned flags, snap_err *err)
{
	o->be = &file_backend;
	if (path[0] != '/' || strstr(path, "/../") ||
	    (strlen(path) >= 3 && !strcmp(path + strlen(path) - 3, "/..")))
		return snap_err_set(err, -EINVAL,
				    "%s: a file:// replica needs an absolute "
				    "path (file:///mnt/backup/app)", o->url);
	o->path = strdup(path);
	if (!o->path)
		return snap_err_set(err, -ENOMEM, "out of memory");
	o->dirfd = snap_sys_open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
				 O_CLOEXEC, 0);
	if (o->dirfd < 0 && errno == ENOENT && (flags & SNAP_OBJSTORE_CREATE)) {
		if (snap_sys_mkdir(path, 0700) < 0 && errno != EEXIST)
			return snap_err_set(err, -errno,
					    "%s: cannot create the replica "
					    "directory: %s", path,
					    strerror(errno));
		o->dirfd = snap_sys_open(path, O_RDONLY | O_DIRECTORY |
					 O_NOFOLLOW | O_CLOEXEC, 0);
	}
	if (o->dirfd < 0) {
		int e = errno;
		return snap_err_set(err, -e, "%s: %s%s", path, strerror(e),
				    e == ELOOP || e == ENOTDIR ?
				    " (a symlink or not a directory: refused; "
				    "give the real directory)" : "");
	}
	return flags & SNAP_OBJSTORE_CREATE ? file_target_check(o, err) : 0;
}

