/*
 * engine/storedir.c — the store's directory and the files in it, handled so
 * that nobody else can redirect, read or plant them.
 *
 * The daemon runs as root, and the default store sits beside the database,
 * in a directory other users may write.  The rules:
 *
 *   1. The store directory is opened once, O_DIRECTORY|O_NOFOLLOW, and kept
 *      open for the store's lifetime (s->dirfd).  A symlink at its name is
 *      refused, never followed.
 *   2. Through that fd it is checked: a directory, owned by the effective
 *      user (otherwise refused, naming the owner), and private: wider modes
 *      are tightened to 0700 when the directory holds nothing but store
 *      files, refused otherwise (a --store pointing at a home directory is
 *      never chmod'ed), and a world-writable one is refused outright.  On a
 *      read-only filesystem the mode cannot change, and nobody can plant
 *      anything either: it is left as it is.
 *   3. Every store file — store.db and SQLite's side files, daemon.lock,
 *      restore.lock, the live-was-wal marker, the staging directory — is
 *      reached relative to s->dirfd with O_NOFOLLOW (openat, unlinkat,
 *      mkdirat, fstatat with AT_SYMLINK_NOFOLLOW).  A symlink there is
 *      refused with a message, never followed, and never removed (it is
 *      evidence, and it is not ours).
 *   4. Store files are 0600, the staging directory 0700; existing ones that
 *      are wider are tightened through their own fd.  A store file with a
 *      second name (a hard link) is refused: it may be another file of
 *      the same owner, linked in while somebody could write the directory.
 *   5. SQLite opens store.db by a path anchored to s->dirfd
 *      ("/proc/self/fd/<dirfd>/store.db", anchor.c), so renaming the
 *      directory away after the checks cannot redirect it either.  Without
 *      /proc the path is the name (after the checks above).
 *
 * A store directory whose store.db is gone while other store files remain
 * (daemon.lock, staging, a -wal, ...) lost its catalog: it is refused, never
 * silently replaced by an empty store (snap_storedir_remains).
 *
 * Thread-safety: these run while the store is being opened or closed, or
 * (files, subdirectories) on an open store, whose dirfd never changes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "anchor.h"
#include "store_int.h"
#include "sys.h"

/* Every name the store keeps in its directory; store.db first. */
static const char *const storedir_names[] = {
	"store.db", "store.db-wal", "store.db-shm", "store.db-journal",
	"daemon.lock", "restore.lock", "staging", "live-was-wal", "reserve",
	NULL,
};

/* "alice (uid 1000)" or "uid 1000" into out. */
static void storedir_user(uid_t uid, char *out, size_t cap)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		snprintf(out, cap, "%s (uid %u)", pw.pw_name, (unsigned)uid);
	else
		snprintf(out, cap, "uid %u", (unsigned)uid);
}

/* The refusal for something that is not ours, naming its owner. */
static int storedir_not_ours(const char *what, uid_t owner, snap_err *err)
{
	char them[320], us[320];

	storedir_user(owner, them, sizeof(them));
	storedir_user(geteuid(), us, sizeof(us));
	return snap_err_set(err, -EPERM, "%s belongs to %s, not to %s who runs "
			    "snapfs: a store is used only by the user who owns "
			    "it, so nobody else can plant files in it; run "
			    "snapfs and snapctl as its owner, or give a "
			    "directory of your own (--store / -o store=)",
			    what, them, us);
}

/* The refusal for a symlink where a store file or directory should be. */
static int storedir_symlink(const char *path, snap_err *err)
{
	char target[256];
	ssize_t n = readlink(path, target, sizeof(target) - 1);

	target[n > 0 ? n : 0] = '\0';
	return snap_err_set(err, -ELOOP, "%s is a symbolic link%s%s%s; snapfs "
			    "never follows a link in a store (somebody may have "
			    "planted it to make snapfs write elsewhere): remove "
			    "it, and check who could write there", path,
			    n > 0 ? " (to " : "", target, n > 0 ? ")" : "");
}

/* Open s->dir without following a link (creating it when asked) and check
 * it. */
int snap_storedir_open(snap_store *s, int create, int *made, snap_err *err)
{
	struct stat st;
	char anchor[64];
	int fd, e;

	*made = 0;
	fd = snap_sys_open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			   O_CLOEXEC, 0);
	if (fd < 0 && errno == ENOENT && create) {
		if (snap_sys_mkdir(s->dir, 0700) == 0)
			*made = 1;
		else if (errno != EEXIST)
			return snap_err_set(err, errno == EROFS ? -EROFS :
					    -errno, "cannot create store "
					    "directory %s: %s", s->dir,
					    strerror(errno));
		fd = snap_sys_open(s->dir, O_RDONLY | O_DIRECTORY |
				   O_NOFOLLOW | O_CLOEXEC, 0);
	}
	if (fd < 0) {
		e = errno;
		if (e == ENOENT)
			return snap_err_set(err, -ENOENT, "no store at %s (take "
					    "a first snapshot to create it)",
					    s->dir);
		if (snap_sys_lstat(s->dir, &st) == 0 && S_ISLNK(st.st_mode))
			return storedir_symlink(s->dir, err);
		if (e == ENOTDIR)
			return snap_err_set(err, -ENOTDIR, "store %s is not a "
					    "directory", s->dir);
		return snap_err_set(err, -e, "cannot open store directory %s: "
				    "%s", s->dir, strerror(e));
	}
	s->dirfd = fd;
	if (snap_sys_fstat(fd, &st) < 0)
		return snap_err_set(err, -errno, "cannot stat store directory "
				    "%s: %s", s->dir, strerror(errno));
	if (st.st_uid != geteuid())
		return storedir_not_ours(s->dir, st.st_uid, err);
	if (snap_anchor_dir(fd, anchor, sizeof(anchor)) == 0)
		e = asprintf(&s->sqlfile, "%s/store.db", anchor);
	else
		e = asprintf(&s->sqlfile, "%s", s->file);
	if (e < 0) {
		s->sqlfile = NULL;
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* 1 when the directory holds nothing but store files. */
static int storedir_only_store_files(int dirfd)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dirfd), ok = 1, i;

	if (fd < 0 || !(d = snap_sys_fdopendir(fd))) {
		if (fd >= 0)
			snap_sys_close(fd);
		return 0;
	}
	rewinddir(d);
	while (ok && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		for (i = 0; storedir_names[i]; i++)
			if (!strcmp(de->d_name, storedir_names[i]))
				break;
		ok = storedir_names[i] != NULL;
	}
	closedir(d);
	return ok;
}

/* Make the store directory 0700, or refuse it when that is not safe. */
int snap_storedir_private(snap_store *s, snap_err *err)
{
	struct stat st;

	if (snap_sys_fstat(s->dirfd, &st) < 0)
		return snap_err_set(err, -errno, "cannot stat store directory "
				    "%s: %s", s->dir, strerror(errno));
	if (!(st.st_mode & 077))
		return 0;
	if ((st.st_mode & 002) && !storedir_only_store_files(s->dirfd))
		return snap_err_set(err, -EPERM, "store directory %s is "
				    "writable by every user (mode %04o): a store "
				    "needs a directory of its own; give a new "
				    "one (--store / -o store=), snapfs creates "
				    "it private", s->dir,
				    (unsigned)(st.st_mode & 07777));
	if (!storedir_only_store_files(s->dirfd))
		return snap_err_set(err, -EPERM, "store directory %s (mode "
				    "%04o) can be read by other users and holds "
				    "files that are not the store's: give a "
				    "directory of its own (--store / -o store=), "
				    "or make this one private (chmod 700 %s)",
				    s->dir, (unsigned)(st.st_mode & 07777),
				    s->dir);
	/* A read-only filesystem cannot be tightened, nor planted in. */
	if (snap_sys_fchmod(s->dirfd, 0700) < 0 && errno != EROFS)
		return snap_err_set(err, -errno, "store directory %s has mode "
				    "%04o and cannot be made private (0700): "
				    "%s", s->dir,
				    (unsigned)(st.st_mode & 07777),
				    strerror(errno));
	return 0;
}

/* 1 when a store file other than store.db is in the directory. */
int snap_storedir_remains(snap_store *s, char *found, size_t cap)
{
	struct stat st;
	int i;

	for (i = 1; storedir_names[i]; i++)
		if (snap_sys_fstatat(s->dirfd, storedir_names[i], &st,
				     AT_SYMLINK_NOFOLLOW) == 0) {
			snprintf(found, cap, "%s", storedir_names[i]);
			return 1;
		}
	return 0;
}

/* "<dir>/<name>" for messages. */
static void storedir_path(const snap_store *s, const char *name, char *out,
			  size_t cap)
{
	snprintf(out, cap, "%s/%s", s->dir, name);
}

/* Check an open store file: regular, ours, no wider than 0600. */
static int storedir_file_checked(snap_store *s, int fd, const char *name,
				 snap_err *err)
{
	char path[PATH_MAX];
	struct stat st;

	storedir_path(s, name, path, sizeof(path));
	if (snap_sys_fstat(fd, &st) < 0)
		return snap_err_set(err, -errno, "cannot stat %s: %s", path,
				    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return snap_err_set(err, -EINVAL, "%s is not a regular file; "
				    "snapfs keeps only its own files in a store: "
				    "remove it", path);
	if (st.st_uid != geteuid())
		return storedir_not_ours(path, st.st_uid, err);
	/* A second name may be a file of ours elsewhere (/etc/shadow) that
	 * somebody linked in while they could write the directory. */
	if (st.st_nlink > 1)
		return snap_err_set(err, -EPERM, "%s has %lu names (hard "
				    "links): a store file has one, and this one "
				    "may be another file of the same owner "
				    "linked in to make snapfs write it; snapfs "
				    "refuses it: remove this name, and check "
				    "who could write the store", path,
				    (unsigned long)st.st_nlink);
	if ((st.st_mode & 077) && snap_sys_fchmod(fd, 0600) < 0 &&
	    errno != EROFS)
		return snap_err_set(err, -errno, "%s has mode %04o and cannot "
				    "be made private (0600): %s", path,
				    (unsigned)(st.st_mode & 07777),
				    strerror(errno));
	return 0;
}

/* Open store file `name` relative to s->dirfd, never through a link. */
int snap_store_file_open(snap_store *s, const char *name, int flags,
			 snap_err *err)
{
	char path[PATH_MAX];
	int fd, rc, e;

	/* O_TRUNC only after the checks: it would empty a file that is not
	 * ours (another user's, a hard link) before fstat could refuse it. */
	fd = snap_sys_openat(s->dirfd, name, (flags & ~O_TRUNC) | O_NOFOLLOW |
			     O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
	if (fd < 0) {
		e = errno;
		storedir_path(s, name, path, sizeof(path));
		if (e == ELOOP)
			return storedir_symlink(path, err);
		return snap_err_set(err, -e, "cannot open %s: %s", path,
				    strerror(e));
	}
	rc = storedir_file_checked(s, fd, name, err);
	if (!rc && (flags & O_TRUNC) && snap_sys_ftruncate(fd, 0) < 0) {
		storedir_path(s, name, path, sizeof(path));
		rc = snap_err_set(err, -errno, "cannot empty %s: %s", path,
				  strerror(errno));
	}
	if (rc) {
		snap_sys_close(fd);
		return rc;
	}
	/* Blocking from here on (O_NONBLOCK only kept a FIFO from hanging
	 * the open). */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* Check store.db and its side files: regular, ours, no links, 0600. */
int snap_storedir_files_check(snap_store *s, snap_err *err)
{
	struct stat st;
	int i, fd;

	/* The first four names: store.db and SQLite's side files. */
	for (i = 0; i < 4; i++) {
		if (snap_sys_fstatat(s->dirfd, storedir_names[i], &st,
				     AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		fd = snap_store_file_open(s, storedir_names[i], O_RDONLY, err);
		if (fd < 0)
			return fd;
		snap_sys_close(fd);
	}
	return 0;
}

/* 1 when the store directory holds `name` (a link counts). */
int snap_store_file_exists(snap_store *s, const char *name)
{
	struct stat st;

	return snap_sys_fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Unlink store file `name`; 0 also when it is absent. */
int snap_store_file_remove(snap_store *s, const char *name)
{
	return snap_sys_unlinkat(s->dirfd, name, 0) == 0 || errno == ENOENT ?
	       0 :
	       -errno;
}

/* fsync the store directory through s->dirfd. */
int snap_store_dir_sync(snap_store *s)
{
	return snap_sys_fsync(s->dirfd) < 0 ? -errno : 0;
}

/* Remove what a failed open created (the directory too when `made`). */
void snap_storedir_undo_create(snap_store *s, int made)
{
	int i;

	for (i = 0; storedir_names[i]; i++)
		if (strcmp(storedir_names[i], "staging"))
			snap_sys_unlinkat(s->dirfd, storedir_names[i], 0);
	if (made)
		snap_sys_rmdir(s->dir);
}

/* Remove every entry of the directory fd holds (never following links;
 * subdirectories stay). */
static void storedir_empty(int dirfd)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dirfd);

	if (fd < 0 || !(d = snap_sys_fdopendir(fd))) {
		if (fd >= 0)
			snap_sys_close(fd);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			snap_sys_unlinkat(dirfd, de->d_name, 0);
	closedir(d);
}

/* Open (creating 0700) the store's private subdirectory `name`, checked. */
int snap_storedir_sub_open(snap_store *s, const char *name, char *path,
			   size_t cap, snap_err *err)
{
	char shown[PATH_MAX];
	struct stat st;
	int fd, e;

	storedir_path(s, name, shown, sizeof(shown));
	if (snap_sys_mkdirat(s->dirfd, name, 0700) < 0 && errno != EEXIST)
		return snap_err_set(err, -errno, "cannot create %s: %s", shown,
				    strerror(errno));
	fd = snap_sys_openat(s->dirfd, name, O_RDONLY | O_DIRECTORY |
			     O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0) {
		e = errno;
		if (snap_sys_fstatat(s->dirfd, name, &st,
				     AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			return storedir_symlink(shown, err);
		return snap_err_set(err, -e, "cannot open %s: %s", shown,
				    e == ENOTDIR ? "it is not a directory; "
				    "remove it" : strerror(e));
	}
	if (snap_sys_fstat(fd, &st) < 0) {
		e = errno;
		snap_sys_close(fd);
		return snap_err_set(err, -e, "cannot stat %s: %s", shown,
				    strerror(e));
	}
	if (st.st_uid != geteuid()) {
		snap_sys_close(fd);
		return storedir_not_ours(shown, st.st_uid, err);
	}
	if ((st.st_mode & 07777) != 0700 && snap_sys_fchmod(fd, 0700) < 0) {
		e = errno;
		snap_sys_close(fd);
		return snap_err_set(err, -e, "cannot make %s private (0700): "
				    "%s", shown, strerror(e));
	}
	storedir_empty(fd);     /* what a killed daemon left */
	if (snap_anchor_dir(fd, path, cap) != 0 &&
	    snprintf(path, cap, "%s", shown) >= (int)cap) {
		snap_sys_close(fd);
		return snap_err_set(err, -ENAMETOOLONG, "%s: path too long",
				    shown);
	}
	return fd;
}

/* Empty and remove subdirectory `name` and close fd. */
void snap_storedir_sub_remove(snap_store *s, const char *name, int fd)
{
	if (fd < 0)
		return;
	storedir_empty(fd);
	snap_sys_close(fd);
	snap_sys_unlinkat(s->dirfd, name, AT_REMOVEDIR);
}
