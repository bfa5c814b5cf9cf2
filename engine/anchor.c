/*
 * engine/anchor.c — paths that name a file inside a directory we hold open,
 * and the VFS shim that lets SQLite open them without turning them back into
 * names.
 *
 * The daemon runs as root over directories other users may write.  Checking
 * a directory (owner, mode, not a symlink) and then opening files in it by
 * name leaves a window: whoever can write the directory's parent can rename
 * it away and put their own directory, or a symlink, at its name, and every
 * later open by name lands there.  The store and the staging directory are
 * therefore opened once (O_DIRECTORY|O_NOFOLLOW) and checked through the fd,
 * and their files are named "/proc/self/fd/<dirfd>/<name>": the kernel
 * resolves /proc/self/fd/N as a magic link to the open directory itself, so
 * no rename of the directory or its parents can redirect the open.
 *
 * SQLite's unix VFS would undo that: its xFullPathname canonicalizes a path,
 * following every symlink with readlink(), so "/proc/self/fd/7/store.db"
 * became "/srv/app/app.db.snapfs/store.db" again, and the -wal, -shm and
 * -journal names SQLite derives from it would be opened by name.  The
 * "snapfs-anchored" VFS delegates everything to the default VFS (normally
 * "unix") except xFullPathname, which returns an anchored path unchanged.
 * It is registered as the default VFS, once per process: other paths go
 * through untouched, and every connection on an anchored path — the store's
 * own, and the daemon's on staging files (uploads, session copies, images of
 * current.db) — keeps its anchor, side files included.
 *
 * The shim hands SQLite the default VFS's own file objects (xOpen is called
 * on that VFS, so its locking, its inode table and its O_NOFOLLOW on side
 * files are untouched).  An anchored path whose last component is a symlink
 * makes xFullPathname return SQLITE_OK_SYMLINK, as the unix VFS does, so
 * SQLITE_OPEN_NOFOLLOW refuses it.
 *
 * The forwarding itself (snap_anchor_forward_init) serves every shim of
 * the project: fs/peek.c's recording VFS is built on it too.
 *
 * The base VFS's open() is wrapped too (anchor_open): SQLite never opens
 * a FIFO, which would hang the daemon on its first read, nor a symlink in
 * an anchored directory.
 *
 * The live database is anchored too (snap_anchor_path, at the end): its
 * directory is opened once per process by a walk that follows no
 * symlink, so a directory renamed or swapped under the daemon (by
 * whoever may write a parent) never redirects an open of the live file
 * or of the -journal, -wal and -shm SQLite opens by name later.
 *
 * Without /proc (a chroot, a container without it) an anchor cannot be
 * made: snap_anchor_dir() says so and callers fall back to names, after
 * the checks they did through the fd.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "anchor.h"
#include "sys.h"

#define ANCHOR_PREFIX "/proc/self/fd/"

static sqlite3_vfs anchor_vfs;          /* the shim; pAppData = the base */
static pthread_once_t anchor_once = PTHREAD_ONCE_INIT;
static int anchor_rc = SQLITE_ERROR;    /* what registration returned */

/* The VFS everything is delegated to. */
static sqlite3_vfs *base(sqlite3_vfs *v)
{
	return v->pAppData;
}

/* 1 when path is anchored ("/proc/self/fd/..."). */
int snap_anchor_is(const char *path)
{
	return path && strncmp(path, ANCHOR_PREFIX,
			       sizeof(ANCHOR_PREFIX) - 1) == 0;
}

/*
 * An anchored path stays as it is (it is absolute and holds no "." or ".."
 * that we did not put there); its last component being a symlink is
 * reported as the unix VFS reports one, so SQLITE_OPEN_NOFOLLOW refuses it.
 */
static int anchor_full_pathname(sqlite3_vfs *v, const char *name, int n,
				char *out)
{
	struct stat st;
	size_t len;

	if (!snap_anchor_is(name))
		return base(v)->xFullPathname(base(v), name, n, out);
	len = strlen(name);
	if (len + 1 > (size_t)n)
		return SQLITE_CANTOPEN;
	memcpy(out, name, len + 1);
	if (snap_sys_lstat(name, &st) == 0 && S_ISLNK(st.st_mode))
		return SQLITE_OK_SYMLINK;
	return SQLITE_OK;
}

/* The forwarders of snap_anchor_forward_init: each calls the base VFS
 * (pAppData) with the same arguments. */
static int fwd_open(sqlite3_vfs *v, const char *name, sqlite3_file *f,
		       int flags, int *out)
{
	return base(v)->xOpen(base(v), name, f, flags, out);
}

/* xFullPathname: forwarded. */
static int fwd_full_pathname(sqlite3_vfs *v, const char *name, int n,
			     char *out)
{
	return base(v)->xFullPathname(base(v), name, n, out);
}

/* xDelete: forwarded. */
static int fwd_delete(sqlite3_vfs *v, const char *name, int sync)
{
	return base(v)->xDelete(base(v), name, sync);
}

/* xAccess: forwarded. */
static int fwd_access(sqlite3_vfs *v, const char *name, int flags,
			 int *out)
{
	return base(v)->xAccess(base(v), name, flags, out);
}

/* xDlOpen: forwarded. */
static void *fwd_dlopen(sqlite3_vfs *v, const char *name)
{
	return base(v)->xDlOpen(base(v), name);
}

/* xDlError: forwarded. */
static void fwd_dlerror(sqlite3_vfs *v, int n, char *out)
{
	base(v)->xDlError(base(v), n, out);
}

static void (*fwd_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
	return base(v)->xDlSym(base(v), h, sym);
}

/* xDlClose: forwarded. */
static void fwd_dlclose(sqlite3_vfs *v, void *h)
{
	base(v)->xDlClose(base(v), h);
}

/* xRandomness: forwarded. */
static int fwd_randomness(sqlite3_vfs *v, int n, char *out)
{
	return base(v)->xRandomness(base(v), n, out);
}

/* xSleep: forwarded. */
static int fwd_sleep(sqlite3_vfs *v, int us)
{
	return base(v)->xSleep(base(v), us);
}

/* xCurrentTime: forwarded. */
static int fwd_time(sqlite3_vfs *v, double *out)
{
	return base(v)->xCurrentTime(base(v), out);
}

/* xGetLastError: forwarded (0 when the base has none). */
static int fwd_last_error(sqlite3_vfs *v, int n, char *out)
{
	return base(v)->xGetLastError ?
	       base(v)->xGetLastError(base(v), n, out) : 0;
}

/* xCurrentTimeInt64: forwarded. */
static int fwd_time64(sqlite3_vfs *v, sqlite3_int64 *out)
{
	return base(v)->xCurrentTimeInt64(base(v), out);
}

/* xSetSystemCall: forwarded. */
static int fwd_set_syscall(sqlite3_vfs *v, const char *name,
			      sqlite3_syscall_ptr p)
{
	return base(v)->xSetSystemCall(base(v), name, p);
}

/* xGetSystemCall: forwarded. */
static sqlite3_syscall_ptr fwd_get_syscall(sqlite3_vfs *v,
					      const char *name)
{
	return base(v)->xGetSystemCall(base(v), name);
}

/* xNextSystemCall: forwarded. */
static const char *fwd_next_syscall(sqlite3_vfs *v, const char *name)
{
	return base(v)->xNextSystemCall(base(v), name);
}

/* Every forwarder, in a VFS of version 3; snap_anchor_forward_init trims
 * it to what the base has. */
static const sqlite3_vfs fwd_all = {
	.xOpen = fwd_open,
	.xDelete = fwd_delete,
	.xAccess = fwd_access,
	.xFullPathname = fwd_full_pathname,
	.xDlOpen = fwd_dlopen,
	.xDlError = fwd_dlerror,
	.xDlSym = fwd_dlsym,
	.xDlClose = fwd_dlclose,
	.xRandomness = fwd_randomness,
	.xSleep = fwd_sleep,
	.xCurrentTime = fwd_time,
	.xGetLastError = fwd_last_error,
	.xCurrentTimeInt64 = fwd_time64,
	.xSetSystemCall = fwd_set_syscall,
	.xGetSystemCall = fwd_get_syscall,
	.xNextSystemCall = fwd_next_syscall,
};

/* Fill v as a VFS forwarding every call to b (anchor.h). */
void snap_anchor_forward_init(sqlite3_vfs *v, sqlite3_vfs *b,
			      const char *name)
{
	*v = fwd_all;
	v->iVersion = b->iVersion < 3 ? b->iVersion : 3;
	v->szOsFile = b->szOsFile;
	v->mxPathname = b->mxPathname;
	v->zName = name;
	v->pAppData = b;
	/* No dynamic loading where the base has none. */
	if (!b->xDlOpen || !b->xDlError || !b->xDlSym || !b->xDlClose) {
		v->xDlOpen = b->xDlOpen ? fwd_dlopen : NULL;
		v->xDlError = b->xDlError ? fwd_dlerror : NULL;
		v->xDlSym = b->xDlSym ? fwd_dlsym : NULL;
		v->xDlClose = b->xDlClose ? fwd_dlclose : NULL;
	}
	if (v->iVersion < 2)
		v->xCurrentTimeInt64 = NULL;
	if (v->iVersion < 3) {
		v->xSetSystemCall = NULL;
		v->xGetSystemCall = NULL;
		v->xNextSystemCall = NULL;
	}
}

/* The base VFS's own open() (its system call "open"). */
static int (*anchor_open_base)(const char *, int, int);

/*
 * The base VFS's open(), never of a FIFO.  A FIFO planted at a name SQLite
 * opens (the live database, by whoever may write its directory) would
 * block the open or the first read forever, and every request that
 * touches the database behind it (the mount's users stuck in the kernel).
 * A read-only open is made non-blocking (a read-write one never blocks on
 * a FIFO), the descriptor is checked, a FIFO is refused with ENXIO (what
 * open(2) says of a FIFO without a reader) and anything else goes back to
 * blocking.  The descriptor was never SQLite's: closing it drops no lock.
 */
static int anchor_open(const char *path, int flags, int mode)
{
	int nb = (flags & O_ACCMODE) != O_RDWR && !(flags & O_NONBLOCK);
	int fd;
	struct stat st;

	/* A file in an anchored directory ("/proc/self/fd/N/NAME", not the
	 * directory itself, which SQLite opens to sync it) is never reached
	 * through a symlink, whatever flags SQLite's version passes. */
	if (snap_anchor_is(path) &&
	    strchr(path + sizeof(ANCHOR_PREFIX) - 1, '/'))
		flags |= O_NOFOLLOW;
	fd = anchor_open_base(path, flags | (nb ? O_NONBLOCK : 0), mode);

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode)) {
		close(fd);
		errno = ENXIO;
		return -1;
	}
	if (nb) {
		int fl = fcntl(fd, F_GETFL);

		if (fl >= 0)       /* else it stays non-blocking: harmless for
				      the regular file it is */
			fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	}
	return fd;
}

/* Build the shim over the current default VFS and make it the default;
 * the base's open() gets the FIFO guard when it lets us replace it. */
static void anchor_register(void)
{
	sqlite3_vfs *b = sqlite3_vfs_find(NULL);

	if (!b)
		return;
	if (b->iVersion >= 3 && b->xGetSystemCall && b->xSetSystemCall) {
		anchor_open_base = (int (*)(const char *, int, int))
				   b->xGetSystemCall(b, "open");
		if (anchor_open_base &&
		    b->xSetSystemCall(b, "open",
				      (sqlite3_syscall_ptr)anchor_open) !=
		    SQLITE_OK)
			anchor_open_base = NULL;
	}
	snap_anchor_forward_init(&anchor_vfs, b, SNAP_ANCHOR_VFS);
	anchor_vfs.xFullPathname = anchor_full_pathname;
	anchor_rc = sqlite3_vfs_register(&anchor_vfs, 1);
}

/* Register the anchored VFS as the default, once. */
int snap_anchor_register(snap_err *err)
{
	pthread_once(&anchor_once, anchor_register);
	if (anchor_rc != SQLITE_OK)
		return snap_err_sqlite(err, NULL, anchor_rc, "cannot register "
				       "the %s VFS", SNAP_ANCHOR_VFS);
	return 0;
}

/* "/proc/self/fd/<dirfd>" into out, checked to lead to the directory itself. */
int snap_anchor_dir(int dirfd, char *out, size_t cap)
{
	struct stat a, b;
	int n;

	n = snprintf(out, cap, ANCHOR_PREFIX "%d", dirfd);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	/* The magic link must lead to the directory itself. */
	if (snap_sys_fstat(dirfd, &a) < 0 || snap_sys_stat(out, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
		out[0] = '\0';
		return -ENOENT;
	}
	return 0;
}

/*
 * The directories of files opened by name in a directory somebody else
 * may write (the live database and its side files): each is reached once
 * per process by a walk from "/" that follows no symlink, kept open, and
 * its files named "/proc/self/fd/<dirfd>/<name>" from then on.  A later
 * call walks the name again and must reach the same directory: one
 * renamed away, or a symlink or another directory put at its name (by
 * whoever may write a parent), is refused (-ESTALE), never followed; the
 * kept descriptor means SQLite's later opens of -journal, -wal and -shm
 * land in the directory that was checked, whatever happens to the names
 * meanwhile.  A directory that was removed (no links left) gives way to
 * the new one at its name, which takes its descriptor's number (dup3).
 * Descriptors are never closed (a connection may still name one; its
 * number must never lead to another directory than the one at that
 * name): one per directory a process works in.
 */
struct anchored_dir {
	char *name;
	int fd;
	dev_t dev;
	ino_t ino;
};
static struct anchored_dir *adirs;
static size_t nadirs;
static pthread_mutex_t adirs_lock = PTHREAD_MUTEX_INITIALIZER;

/* Open dir (absolute or relative) walking each component with
 * O_NOFOLLOW: a symlink on the way is -ELOOP.  The descriptor (O_PATH)
 * or a negative errno; st its identity. */
static int walk_dir(const char *dir, struct stat *st)
{
	char buf[PATH_MAX], *save = NULL, *c;
	int fd, nfd, e;

	if (snprintf(buf, sizeof(buf), "%s", dir) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	fd = snap_sys_open(dir[0] == '/' ? "/" : ".", O_PATH | O_DIRECTORY |
			   O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	for (c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		struct stat l;

		if (!strcmp(c, "."))
			continue;
		nfd = snap_sys_openat(fd, c, O_PATH | O_DIRECTORY | O_NOFOLLOW |
				      O_CLOEXEC, 0);
		e = errno;
		if (nfd < 0 && e == ENOTDIR &&
		    snap_sys_fstatat(fd, c, &l, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(l.st_mode))
			e = ELOOP;
		snap_sys_close(fd);
		if (nfd < 0)
			return -e;
		fd = nfd;
	}
	if (snap_sys_fstat(fd, st) < 0) {
		e = errno;
		snap_sys_close(fd);
		return -e;
	}
	return fd;
}

/* The kept directory called dir that is (dev, ino), or a new one; its
 * descriptor, or -ESTALE when the one kept under that name still exists
 * elsewhere.  Called with adirs_lock held; takes fd or closes it. */
static int adir_keep(const char *dir, int fd, const struct stat *st)
{
	struct anchored_dir *a = NULL, *grown;
	struct stat old;
	size_t i;

	for (i = 0; i < nadirs && !a; i++)
		if (!strcmp(adirs[i].name, dir))
			a = &adirs[i];
	if (a && a->dev == st->st_dev && a->ino == st->st_ino) {
		snap_sys_close(fd);
		return a->fd;
	}
	if (a && !(snap_sys_fstat(a->fd, &old) == 0 && old.st_nlink == 0)) {
		snap_sys_close(fd);
		return -ESTALE;
	}
	if (a) {
		/* Removed: its number now leads to the directory at its
		 * name, as a name would have (a connection left in it) */
		if (dup3(fd, a->fd, O_CLOEXEC) < 0) {
			int e = errno;

			snap_sys_close(fd);
			return -e;
		}
		snap_sys_close(fd);
		a->dev = st->st_dev;
		a->ino = st->st_ino;
		return a->fd;
	}
	{
		char *name = strdup(dir);

		grown = name ? realloc(adirs, (nadirs + 1) * sizeof(*adirs)) :
			NULL;
		if (!grown) {
			free(name);
			snap_sys_close(fd);
			return -ENOMEM;
		}
		adirs = grown;
		a = &adirs[nadirs++];
		a->name = name;
	}
	a->fd = fd;
	a->dev = st->st_dev;
	a->ino = st->st_ino;
	return fd;
}

/* path's file named through its directory's kept descriptor (anchor.h). */
int snap_anchor_path(const char *path, char *out, size_t cap)
{
	char dir[PATH_MAX], abs[PATH_MAX], anchor[64];
	const char *slash;
	struct stat st;
	int fd;

	/* A relative name is kept under its absolute one: a later chdir
	 * must not make "." another directory's key. */
	if (path[0] != '/') {
		if (!getcwd(dir, sizeof(dir)))
			return -errno;
		if (snprintf(abs, sizeof(abs), "%s/%s", strcmp(dir, "/") ?
			     dir : "", path) >= (int)sizeof(abs))
			return -ENAMETOOLONG;
		path = abs;
	}
	slash = strrchr(path, '/');
	if (!slash[1])
		return -EINVAL;
	if (snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 :
		     (int)(slash - path), path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	fd = walk_dir(dir, &st);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&adirs_lock);
	fd = adir_keep(dir, fd, &st);
	pthread_mutex_unlock(&adirs_lock);
	if (fd < 0)
		return fd;
	/* Without /proc: the name, after the walk's checks. */
	if (snap_anchor_dir(fd, anchor, sizeof(anchor)) != 0)
		return snprintf(out, cap, "%s", path) >= (int)cap ?
		       -ENAMETOOLONG : 0;
	return snprintf(out, cap, "%s%s", anchor, slash) >= (int)cap ?
	       -ENAMETOOLONG : 0;
}
