/*
 * fs/attr.c — what the mount says about its files: attributes, entries,
 * and the names every handler resolves the same way.
 *
 *   root, snapshots/, .snapfs/   directories owned like the live database,
 *                                times = when the daemon started;
 *   current.db                   the live file's stat(), never cached
 *                                (PITFALLS 5); through a handle, the size of
 *                                what that handle reads (an image, a
 *                                session copy, an upload);
 *   a snapshot                   the live mode without write bits (a 0600
 *                                database never yields a snapshot others
 *                                can read), mtime = creation time, size =
 *                                image size, from the catalog only;
 *   latest.db                    a symlink to the newest snapshot's name;
 *   a dynamic node               its backing file; a snapshot request that
 *                                became a snapshot shows that snapshot.
 *
 * Names: a snapshot is found by its exact listed name (the engine also
 * accepts a name without ".db" and "latest", which the listing never
 * shows); current.db is hidden, for a few seconds, from the one process
 * that just unlinked it, so its following create is a staged replace.
 *
 * Thread-safety: no state of its own; snap_fs fields under snap_fs.lock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

static void ts_from_ns(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000LL;
	ts->tv_nsec = ns % 1000000000LL;
}

/* The fixed directories: owned like the live database, times = start. */
void snap_attr_dir(fuse_ino_t ino, struct stat *st)
{
	struct stat live;

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR | (ino == SNAP_INO_META ? 0555 : 0755);
	st->st_nlink = 2;
	if (snap_live_stat(snap_fs.live, &live) == 0) {
		st->st_uid = live.st_uid;
		st->st_gid = live.st_gid;
	}
	ts_from_ns(&st->st_mtim, snap_fs.started_ns);
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_blksize = 4096;
}

/* current.db: the live file's attributes. */
int snap_attr_current(struct stat *st)
{
	struct stat live;
	int rc = snap_live_stat(snap_fs.live, &live);

	if (rc != 0)
		return rc;
	*st = live;
	st->st_ino = SNAP_INO_CURRENT;
	st->st_nlink = 1;
	st->st_mode = S_IFREG | (live.st_mode & 07777);
	return 0;
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
	ts_from_ns(&st->st_mtim, si->created_ns);
	st->st_atim = st->st_ctim = st->st_mtim;
}

void snap_attr_symlink(const char *target, struct stat *st)
{
	snap_attr_dir(SNAP_INO_LATEST, st);
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_size = (off_t)strlen(target);
}

static int attr_text(fuse_ino_t ino, struct stat *st)
{
	char *text;
	size_t len;
	int rc = snap_status_text(ino, &text, &len);

	if (rc != 0)
		return rc;
	free(text);
	snap_attr_dir(ino, st);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)len;
	ts_from_ns(&st->st_mtim, snap_time_now_ns());
	return 0;
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

/* Attributes of a dynamic node (a pending node that became a snapshot
 * shows the snapshot). */
static int attr_node(fuse_ino_t ino, struct stat *st, double *ttl)
{
	struct snap_node *n;
	int64_t id;
	struct stat live;
	snap_info si;
	int rc;

	*ttl = 0;
	id = snap_attr_pending_id(ino);
	if (id > 0 && snap_attr_info(id, &si) == 0) {
		rc = snap_live_stat(snap_fs.live, &live);
		snap_attr_snapshot(&si, ino, rc == 0 ? &live : NULL, st);
		return 0;
	}
	pthread_mutex_lock(&snap_fs.lock);
	n = snap_node_get_locked(ino);
	if (n)
		snap_node_open_locked(n);   /* keep it while we stat */
	pthread_mutex_unlock(&snap_fs.lock);
	if (!n)
		return -ENOENT;
	rc = snap_node_stat(n, st);
	snap_node_close(n);
	return rc;
}

/* Attributes of any inode; ttl gets its lifetime. */
int snap_attr_of(fuse_ino_t ino, struct stat *st, double *ttl)
{
	struct stat live;
	snap_info si;
	int rc;

	*ttl = 0;
	switch (ino) {
	case SNAP_INO_ROOT:
	case SNAP_INO_SNAPDIR:
	case SNAP_INO_META:
		snap_attr_dir(ino, st);
		*ttl = SNAP_TTL_DIR;
		return 0;
	case SNAP_INO_CURRENT:
		return snap_attr_current(st);
	case SNAP_INO_STATUS:
	case SNAP_INO_LOG:
		return attr_text(ino, st);
	case SNAP_INO_LATEST:
		rc = snap_store_find(snap_fs.store, "latest", &si, NULL);
		if (rc != 0)
			return -ENOENT;
		snap_attr_symlink(si.name, st);
		return 0;
	}
	if (snap_ino_is_snapshot(ino)) {
		rc = snap_attr_info(snap_ino_snapshot_id(ino), &si);
		if (rc != 0)
			return rc;
		rc = snap_live_stat(snap_fs.live, &live);
		snap_attr_snapshot(&si, ino, rc == 0 ? &live : NULL, st);
		*ttl = SNAP_TTL_SNAP_ATTR;
		return 0;
	}
	return attr_node(ino, st, ttl);
}

/* current.db's attributes as this handle sees them (fstat on an image
 * gives the image's size: that is what reading it yields). */
int snap_attr_current_fh(struct snap_handle *h, struct stat *st)
{
	struct stat b;
	int rc = snap_attr_current(st);

	if (!h)
		return rc;
	if (rc != 0) {
		/* No live file (yet): describe the handle alone. */
		memset(st, 0, sizeof(*st));
		st->st_ino = SNAP_INO_CURRENT;
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
	}
	pthread_mutex_lock(&h->lock);
	if (h->kind == SNAP_H_IMAGE && h->img) {
		st->st_size = (off_t)h->img->size;
	} else if ((h->kind == SNAP_H_UPLOAD || h->kind == SNAP_H_SESSION) &&
		   h->fd >= 0 && fstat(h->fd, &b) == 0) {
		st->st_size = b.st_size;
	}
	pthread_mutex_unlock(&h->lock);
	st->st_blocks = (st->st_size + 511) / 512;
	return 0;
}

/* 1 when current.db is hidden from this process: it just unlinked it. */
int snap_attr_current_hidden(pid_t pid)
{
	int hidden = 0;

	pthread_mutex_lock(&snap_fs.lock);
	if (snap_fs.unlink_pid) {
		if (snap_time_now_ns() >= snap_fs.unlink_until_ns)
			snap_fs.unlink_pid = 0;
		else
			hidden = snap_fs.unlink_pid == pid;
	}
	pthread_mutex_unlock(&snap_fs.lock);
	return hidden;
}

/* The snapshot called exactly name (not "latest", not without .db). */
int snap_attr_by_name(const char *name, snap_info *si)
{
	int rc;

	if (strcmp(name, SNAP_NAME_LATEST) == 0)
		return -ENOENT;
	rc = snap_store_find(snap_fs.store, name, si, NULL);
	if (rc != 0)
		return rc;
	return strcmp(si->name, name) == 0 ? 0 : -ENOENT;
}

void snap_attr_entry(struct fuse_entry_param *e, const struct stat *st,
		       double attr_ttl, double entry_ttl)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->attr = *st;
	e->attr_timeout = attr_ttl;
	e->entry_timeout = entry_ttl;
}
