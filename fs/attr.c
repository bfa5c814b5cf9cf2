/*
 * fs/attr.c — what the mount says about its files: attributes, entries,
 * and the names every handler resolves the same way.
 *
 *   root, .snapfs/, restore/     directories owned like the live database,
 *                                times = when the daemon started; restore/
 *                                writable by whoever may write the live
 *                                database (restoredir.c);
 *   snapshots/                   the same, but its mtime and ctime are when
 *                                the catalog last changed (watch.c);
 *   current.db                   the live file's times, owner and mode,
 *                                never cached (engine/PITFALLS.md 5); its size
 *                                is what the asking reader reads (below);
 *   a snapshot                   the live mode without write bits (a 0600
 *                                database never yields a snapshot others
 *                                can read), mtime = creation time, size =
 *                                image size, from the catalog only;
 *   latest.db                    a symlink to the newest manual, auto or
 *                                import snapshot's name (never a safety
 *                                snapshot);
 *   a dynamic node               its backing file; a snapshot request that
 *                                became a snapshot shows that snapshot.
 *
 * "Like the live database" is snap_live_stat_owner(): the file's owner and
 * mode while it is a regular file of the owner it had at mount, else the
 * last such; a missing or replaced live file never widens them.
 *
 * What a getattr answers for any inode, and current.db as each process
 * sees it: getattr.c.
 *
 * Names: a snapshot is found by its exact listed name (the engine also
 * accepts a name without ".db" and "latest", which the listing never
 * shows); current.db is hidden, for a few seconds, from the one process
 * that just unlinked it, so its following create is a staged replace.
 *
 * A file restored from restore/ leaves at its close, and so does a file
 * imported into snapshots/ (listed under its snapshot's name), but the
 * tool that copied it may set its mode and times right after
 * (shutil.copy and copy2, install -m): for a few seconds, or until that
 * process sets its mode (the last thing those tools do), its name still
 * resolves, for that process only, to an empty file whose mode and times
 * may be set and are ignored (SNAP_INO_LEFT; never listed, never opened).
 *
 * Thread-safety: snap_fs fields under snap_fs.lock; the names that left
 * restore/ under left_lock, a leaf lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

/* t (ns since the epoch) as a timespec. */
void snap_attr_ts(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000LL;
	ts->tv_nsec = ns % 1000000000LL;
}

/* The fixed directories of the root, in listing order (fs.h). */
static const struct {
	const char *name;
	fuse_ino_t ino;
} attr_rootdirs[] = {
	{ SNAP_NAME_SNAPDIR, SNAP_INO_SNAPDIR },
	{ SNAP_NAME_META, SNAP_INO_META },
	{ SNAP_NAME_RESTORE, SNAP_INO_RESTORE },
};

#define ATTR_NROOTDIRS (sizeof(attr_rootdirs) / sizeof(attr_rootdirs[0]))

/* The inode of the root directory called name, 0 when there is none. */
fuse_ino_t snap_rootdir_ino(const char *name)
{
	size_t i;

	for (i = 0; i < ATTR_NROOTDIRS; i++)
		if (strcmp(name, attr_rootdirs[i].name) == 0)
			return attr_rootdirs[i].ino;
	return 0;
}

/* The i-th fixed directory's name and inode; NULL past the end. */
const char *snap_rootdir_at(size_t i, fuse_ino_t *ino)
{
	if (i >= ATTR_NROOTDIRS)
		return NULL;
	*ino = attr_rootdirs[i].ino;
	return attr_rootdirs[i].name;
}

/* 1 for the root and the fixed directories. */
int snap_ino_is_dir(fuse_ino_t ino)
{
	size_t i;

	for (i = 0; i < ATTR_NROOTDIRS; i++)
		if (attr_rootdirs[i].ino == ino)
			return 1;
	return ino == SNAP_INO_ROOT;
}

/* restore/'s own mode: the owner's, and group's or others' when they may
 * write the live database. */
static mode_t attr_restore_dirmode(const struct stat *live)
{
	mode_t m = 0700;

	if (live && (live->st_mode & S_IWGRP))
		m |= 0070;
	if (live && (live->st_mode & S_IWOTH))
		m |= 0007;
	return m;
}

/* The fixed directories: owned like the live database, times = start
 * (snapshots/: the catalog's last change). */
void snap_attr_dir(fuse_ino_t ino, struct stat *st)
{
	struct stat live;
	int have_live = snap_live_stat_owner(snap_fs.live, &live) == 0;
	int64_t t = ino == SNAP_INO_SNAPDIR ? snap_watch_dir_ns() : 0;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | (ino == SNAP_INO_META ? 0555 : 0755);
	if (ino == SNAP_INO_RESTORE)
		st->st_mode = S_IFDIR | attr_restore_dirmode(have_live ?
								&live : NULL);
	st->st_nlink = 2;
	if (have_live) {
		st->st_uid = live.st_uid;
		st->st_gid = live.st_gid;
	}
	snap_attr_ts(&st->st_mtim, t > 0 ? t : snap_fs.started_ns);
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_blksize = 4096;
}

/* A snapshot: the live mode without write bits, mtime = created. */
void snap_attr_snapshot(const snap_info *si, fuse_ino_t ino,
			  const struct stat *live, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | ((live ? live->st_mode : 0444) & 0555);
	st->st_nlink = 1;
	if (live) {
		st->st_uid = live->st_uid;
		st->st_gid = live->st_gid;
	}
	st->st_size = (off_t)si->image_size;
	st->st_blocks = (blkcnt_t)((si->image_size + 511) / 512);
	st->st_blksize = si->page_size ? (blksize_t)si->page_size : 4096;
	snap_attr_ts(&st->st_mtim, si->created_ns);
	st->st_atim = st->st_ctim = st->st_mtim;
}

/* A symlink to target (latest.db), owned like the root. */
void snap_attr_symlink(const char *target, struct stat *st)
{
	snap_attr_dir(SNAP_INO_LATEST, st);
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_size = (off_t)strlen(target);
}

/* The catalog row for snapshot inode ino. */
int snap_attr_info(int64_t id, snap_info *si)
{
	snap_err err;

	snap_err_clear(&err);
	return snap_store_get(snap_fs.store, id, si, &err);
}

/* The snapshot a committed pending node became, or 0. */
int64_t snap_attr_pending_id(fuse_ino_t ino)
{
	struct snap_node *n;
	int64_t id = 0;

	pthread_mutex_lock(&snap_fs.lock);
	n = snap_node_get_locked(ino);
	if (n && n->kind == SNAP_NODE_PENDING)
		id = n->snap_id;
	pthread_mutex_unlock(&snap_fs.lock);
	return id;
}

/* The snapshot called exactly name in snapshots/ (not "latest", not
 * without .db, not one in the trash: trash.c finds those). */
int snap_attr_by_name(const char *name, snap_info *si)
{
	int rc;

	if (strcmp(name, SNAP_NAME_LATEST) == 0)
		return -ENOENT;
	rc = snap_store_find(snap_fs.store, name, si, NULL);
	if (rc != 0)
		return rc;
	return strcmp(si->name, name) == 0 && si->trash == SNAP_TRASH_NONE ?
	       0 : -ENOENT;
}

/* Names that left restore/ or snapshots/ a moment ago, by the process
 * that wrote them. */
#define ATTR_LEFT_NS (5LL * 1000000000LL)
#define ATTR_LEFT_MAX 4

static struct {
	fuse_ino_t parent;
	char name[NAME_MAX + 1];
	pid_t tgid;
	int64_t until;                 /* monotonic ns */
} attr_left[ATTR_LEFT_MAX];
static int attr_left_next;
static pthread_mutex_t left_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t left_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void snap_attr_left(fuse_ino_t parent, const char *name, pid_t tgid)
{
	if (tgid <= 0)
		return;
	pthread_mutex_lock(&left_lock);
	attr_left[attr_left_next].parent = parent;
	snprintf(attr_left[attr_left_next].name, NAME_MAX + 1, "%s", name);
	attr_left[attr_left_next].tgid = tgid;
	attr_left[attr_left_next].until = left_now() + ATTR_LEFT_NS;
	attr_left_next = (attr_left_next + 1) % ATTR_LEFT_MAX;
	pthread_mutex_unlock(&left_lock);
}

int snap_attr_left_is(fuse_ino_t parent, const char *name, pid_t tgid)
{
	int64_t now = left_now();
	int i, found = 0;

	pthread_mutex_lock(&left_lock);
	for (i = 0; i < ATTR_LEFT_MAX && !found; i++)
		found = attr_left[i].tgid == tgid && now < attr_left[i].until &&
			attr_left[i].parent == parent &&
			strcmp(attr_left[i].name, name) == 0;
	pthread_mutex_unlock(&left_lock);
	return found;
}

void snap_attr_left_done(pid_t tgid)
{
	int i;

	pthread_mutex_lock(&left_lock);
	for (i = 0; i < ATTR_LEFT_MAX; i++)
		if (attr_left[i].tgid == tgid)
			attr_left[i].until = 0;
	pthread_mutex_unlock(&left_lock);
}

void snap_attr_left_stat(struct stat *st)
{
	struct stat live;

	memset(st, 0, sizeof(*st));
	st->st_ino = SNAP_INO_LEFT;
	st->st_mode = S_IFREG | 0600;
	st->st_nlink = 1;
	if (snap_live_stat_owner(snap_fs.live, &live) == 0) {
		st->st_uid = live.st_uid;
		st->st_gid = live.st_gid;
	}
	snap_attr_ts(&st->st_mtim, snap_time_now_ns());
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_blksize = 4096;
}

/* Fill a FUSE entry reply from st and the two lifetimes. */
void snap_attr_entry(struct fuse_entry_param *e, const struct stat *st,
		       double attr_ttl, double entry_ttl)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->attr = *st;
	e->attr_timeout = attr_ttl;
	e->entry_timeout = entry_ttl;
}
