/*
 * fs/ops.c — every FUSE low-level operation snapfs answers, and the one
 * table that names them.
 *
 * The tree (DESIGN.md §1):
 *
 *   /                  root: current.db, snapshots/, .snapfs/, staging files
 *   /current.db        the live database: stat = the live file; read-only
 *                      opens read a consistent image; O_TRUNC/create = staged
 *                      replace; read-write = edit session; rename onto it =
 *                      verified restore; unlink never deletes it
 *   /snapshots/        one entry per snapshot (catalog only) + latest.db;
 *                      create = take or import, unlink = delete, rename =
 *                      relabel, everything else EROFS/EPERM
 *   /.snapfs/          status.json and log, read-only
 *
 * Every handler replies exactly once.  Handlers that change what the kernel
 * has cached reply first and then queue invalidations with the notifier
 * (notify.c), never calling the kernel themselves (PITFALLS 16-18).
 *
 * Attribute lifetimes: current.db 0 (never stale, PITFALLS 5); a snapshot's
 * attributes an hour (immutable), its name a second (snapctl may delete it
 * beside the mount); -journal/-wal/-shm next to a snapshot are cached
 * negative entries for an hour, because SQLite looks for them at every read
 * transaction (PITFALLS 20).  Handles on current.db are direct_io, so the
 * page cache never mixes an image, a session copy and an upload; snapshot
 * handles keep their cache; staging files use the page cache normally so a
 * client's -shm can be mmapped (PITFALLS 19).
 *
 * Thread-safety: handlers run on the session loop's worker threads.  Shared
 * state lives in snap_fs (fs.h gives the lock order); each open file's
 * state is guarded by its handle's lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

/* How long the name current.db stays free for the process that unlinked
 * it (cp --remove-destination and mv across filesystems create it again
 * at once). */
#define CURRENT_UNLINK_NS (10LL * 1000000000LL)

#define XATTR_PREFIX "user.snapfs."

static const char *const snap_xattrs[] = {
	"kind", "label", "created", "sha256", "comment", "tables",
};

/* ---- attributes ------------------------------------------------------- */

static void ts_from_ns(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = ns / 1000000000LL;
	ts->tv_nsec = ns % 1000000000LL;
}

/* The fixed directories: owned like the live database, times = start. */
static void attr_dir(fuse_ino_t ino, struct stat *st)
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
static int attr_current(struct stat *st)
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
static void attr_snapshot(const snap_info *si, fuse_ino_t ino,
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

static void attr_symlink(const char *target, struct stat *st)
{
	attr_dir(SNAP_INO_LATEST, st);
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
	attr_dir(ino, st);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)len;
	ts_from_ns(&st->st_mtim, snap_time_now_ns());
	return 0;
}

/* The catalog row for snapshot inode ino. */
static int snapshot_get(int64_t id, snap_info *si)
{
	snap_err err;

	snap_err_clear(&err);
	return snap_store_get(snap_fs.store, id, si, &err);
}

/* The snapshot a committed pending node became, or 0. */
static int64_t pending_snap_id(fuse_ino_t ino)
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
	id = pending_snap_id(ino);
	if (id > 0 && snapshot_get(id, &si) == 0) {
		rc = snap_live_stat(snap_fs.live, &live);
		attr_snapshot(&si, ino, rc == 0 ? &live : NULL, st);
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
static int attr_of(fuse_ino_t ino, struct stat *st, double *ttl)
{
	struct stat live;
	snap_info si;
	int rc;

	*ttl = 0;
	switch (ino) {
	case SNAP_INO_ROOT:
	case SNAP_INO_SNAPDIR:
	case SNAP_INO_META:
		attr_dir(ino, st);
		*ttl = SNAP_TTL_DIR;
		return 0;
	case SNAP_INO_CURRENT:
		return attr_current(st);
	case SNAP_INO_STATUS:
	case SNAP_INO_LOG:
		return attr_text(ino, st);
	case SNAP_INO_LATEST:
		rc = snap_store_find(snap_fs.store, "latest", &si, NULL);
		if (rc != 0)
			return -ENOENT;
		attr_symlink(si.name, st);
		return 0;
	}
	if (snap_ino_is_snapshot(ino)) {
		rc = snapshot_get(snap_ino_snapshot_id(ino), &si);
		if (rc != 0)
			return rc;
		rc = snap_live_stat(snap_fs.live, &live);
		attr_snapshot(&si, ino, rc == 0 ? &live : NULL, st);
		*ttl = SNAP_TTL_SNAP_ATTR;
		return 0;
	}
	return attr_node(ino, st, ttl);
}

/* ---- handles ------------------------------------------------------------ */

static struct snap_handle *handle_new(enum snap_handle_kind kind)
{
	struct snap_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	h->fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	return h;
}

static void handle_free(struct snap_handle *h)
{
	size_t i;

	if (!h)
		return;
	if (h->fd >= 0)
		close(h->fd);
	for (i = 0; i < h->nents; i++)
		if (h->ents[i].node)
			snap_node_close(h->ents[i].node);
	free(h->ents);
	free(h->text);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static struct snap_handle *handle_of(struct fuse_file_info *fi)
{
	return fi ? (struct snap_handle *)(uintptr_t)fi->fh : NULL;
}

/* current.db's attributes as this handle sees them (fstat on an image
 * gives the image's size: that is what reading it yields). */
static int attr_current_fh(struct snap_handle *h, struct stat *st)
{
	struct stat b;
	int rc = attr_current(st);

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

/* ---- names ------------------------------------------------------------ */

/* 1 when current.db is hidden from this process: it just unlinked it. */
static int current_hidden(pid_t pid)
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
static int snapshot_by_name(const char *name, snap_info *si)
{
	int rc;

	if (strcmp(name, SNAP_NAME_LATEST) == 0)
		return -ENOENT;
	rc = snap_store_find(snap_fs.store, name, si, NULL);
	if (rc != 0)
		return rc;
	return strcmp(si->name, name) == 0 ? 0 : -ENOENT;
}

static void entry_init(struct fuse_entry_param *e, const struct stat *st,
		       double attr_ttl, double entry_ttl)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->attr = *st;
	e->attr_timeout = attr_ttl;
	e->entry_timeout = entry_ttl;
}

/* Reply with an entry; drop the node reference taken for it if the
 * kernel never got it. */
static void reply_entry(fuse_req_t req, const struct fuse_entry_param *e,
			int is_node)
{
	if (fuse_reply_entry(req, e) != 0 && is_node)
		snap_node_forget(e->ino, 1);
}

/* Look up a linked node and reply with it (one lookup reference). */
static int lookup_node(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct snap_node *n = snap_node_find(parent, name, 1);
	struct stat st;
	double ttl;
	int rc;

	if (!n)
		return 0;
	rc = attr_of(n->ino, &st, &ttl);
	if (rc != 0) {
		snap_node_forget(n->ino, 1);
		fuse_reply_err(req, -rc);
		return 1;
	}
	entry_init(&e, &st, 0, 0);
	reply_entry(req, &e, 1);
	return 1;
}

static void snap_ll_lookup(fuse_req_t req, fuse_ino_t parent,
			   const char *name)
{
	struct fuse_entry_param e;
	struct stat st, live;
	snap_info si;
	double ttl;
	int rc;

	if (parent == SNAP_INO_ROOT) {
		if (strcmp(name, SNAP_NAME_CURRENT) == 0) {
			if (current_hidden(fuse_req_ctx(req)->pid)) {
				fuse_reply_err(req, ENOENT);
				return;
			}
			rc = attr_current(&st);
			if (rc != 0) {
				fuse_reply_err(req, -rc);
				return;
			}
			entry_init(&e, &st, 0, 0);
			reply_entry(req, &e, 0);
			return;
		}
		if (strcmp(name, SNAP_NAME_SNAPDIR) == 0 ||
		    strcmp(name, SNAP_NAME_META) == 0) {
			attr_dir(name[0] == '.' ? SNAP_INO_META :
				 SNAP_INO_SNAPDIR, &st);
			entry_init(&e, &st, SNAP_TTL_DIR, 3600);
			reply_entry(req, &e, 0);
			return;
		}
		if (!lookup_node(req, parent, name))
			fuse_reply_err(req, ENOENT);
		return;
	}
	if (parent == SNAP_INO_META) {
		fuse_ino_t ino = strcmp(name, SNAP_NAME_STATUS) == 0 ?
			SNAP_INO_STATUS : strcmp(name, SNAP_NAME_LOG) == 0 ?
			SNAP_INO_LOG : 0;
		if (!ino) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		rc = attr_of(ino, &st, &ttl);
		if (rc != 0) {
			fuse_reply_err(req, -rc);
			return;
		}
		entry_init(&e, &st, 0, 0);
		reply_entry(req, &e, 0);
		return;
	}
	if (parent != SNAP_INO_SNAPDIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}

	/* snapshots/ */
	if (snap_name_is_sidefile(name)) {
		/* SQLite's question "is there a hot journal / a WAL?": no,
		 * never, and the kernel may remember that (PITFALLS 20). */
		memset(&e, 0, sizeof(e));
		e.ino = 0;
		e.entry_timeout = SNAP_TTL_NEGATIVE;
		fuse_reply_entry(req, &e);
		return;
	}
	if (strcmp(name, SNAP_NAME_LATEST) == 0) {
		rc = attr_of(SNAP_INO_LATEST, &st, &ttl);
		if (rc != 0) {
			fuse_reply_err(req, -rc);
			return;
		}
		entry_init(&e, &st, 0, 0);
		reply_entry(req, &e, 0);
		return;
	}
	if (lookup_node(req, parent, name))
		return;
	rc = snapshot_by_name(name, &si);
	if (rc != 0) {
		fuse_reply_err(req, rc == -ENOENT ? ENOENT : -rc);
		return;
	}
	rc = snap_live_stat(snap_fs.live, &live);
	attr_snapshot(&si, snap_ino_of_snapshot(si.id), rc == 0 ? &live : NULL,
		      &st);
	entry_init(&e, &st, SNAP_TTL_SNAP_ATTR, SNAP_TTL_SNAP_ENTRY);
	reply_entry(req, &e, 0);
}

static void snap_ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (ino >= SNAP_INO_NODE_BASE)
		snap_node_forget(ino, nlookup);
	fuse_reply_none(req);
}

static void snap_ll_forget_multi(fuse_req_t req, size_t count,
				 struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		if (forgets[i].ino >= SNAP_INO_NODE_BASE)
			snap_node_forget(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void snap_ll_getattr(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct stat st;
	double ttl = 0;
	int rc;

	if (ino == SNAP_INO_CURRENT)
		rc = attr_current_fh(handle_of(fi), &st);
	else
		rc = attr_of(ino, &st, &ttl);
	if (rc != 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ttl);
}

/* ---- setattr ------------------------------------------------------------ */

/* Truncation of current.db through a handle: an upload is cut, a session
 * copy is cut (to zero: the handle becomes an upload — GIO's fallback). */
static int setattr_current_size(struct snap_handle *h, off_t size)
{
	int rc = 0;

	if (!h) {
		snap_log(LOG_INFO, "truncate of current.db refused: an empty "
			 "or cut database is not a database; copy a database "
			 "onto current.db instead");
		return -EINVAL;
	}
	pthread_mutex_lock(&h->lock);
	switch (h->kind) {
	case SNAP_H_UPLOAD:
		if (ftruncate(h->fd, size) != 0)
			rc = -errno;
		else
			h->dirty = 1;
		break;
	case SNAP_H_SESSION:
		if (size == 0) {
			rc = snap_session_to_upload(h);
			if (rc == 0)
				h->dirty = 1;
			break;
		}
		rc = snap_session_ready(h);
		if (rc == 0 && ftruncate(h->fd, size) != 0)
			rc = -errno;
		if (rc == 0)
			snap_session_wrote(h);
		break;
	default:
		rc = -EBADF;
	}
	pthread_mutex_unlock(&h->lock);
	return rc;
}

static int setattr_node(fuse_ino_t ino, struct stat *attr, int to_set,
			struct snap_handle *h)
{
	struct snap_node *n;
	char path[PATH_MAX];
	int pending, committed, rc = 0;

	pthread_mutex_lock(&snap_fs.lock);
	n = snap_node_get_locked(ino);
	if (!n) {
		pthread_mutex_unlock(&snap_fs.lock);
		return -ENOENT;
	}
	pending = n->kind == SNAP_NODE_PENDING;
	committed = pending && n->snap_id > 0;
	if (!pending) {
		if (to_set & FUSE_SET_ATTR_MODE)
			n->mode = S_IFREG | (attr->st_mode & 07777);
		if (to_set & FUSE_SET_ATTR_UID)
			n->uid = attr->st_uid;
		if (to_set & FUSE_SET_ATTR_GID)
			n->gid = attr->st_gid;
	}
	snprintf(path, sizeof(path), "%s", n->path);
	pthread_mutex_unlock(&snap_fs.lock);

	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (committed && !(h && h->kind == SNAP_H_PENDING))
			return -EROFS;
		if (h && h->fd >= 0) {
			pthread_mutex_lock(&h->lock);
			rc = ftruncate(h->fd, attr->st_size) ? -errno : 0;
			if (rc == 0 && h->kind == SNAP_H_PENDING)
				h->dirty = 1;
			pthread_mutex_unlock(&h->lock);
		} else {
			rc = truncate(path, attr->st_size) ? -errno : 0;
		}
		if (rc != 0)
			return rc;
	}
	if (!pending && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec ts[2];
		ts[0].tv_nsec = ts[1].tv_nsec = UTIME_OMIT;
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		if (utimensat(AT_FDCWD, path, ts, 0) != 0)
			return -errno;
	}
	/* A snapshot request ignores modes and times (touch, cp -p). */
	return 0;
}

static void snap_ll_setattr(fuse_req_t req, fuse_ino_t ino,
			    struct stat *attr, int to_set,
			    struct fuse_file_info *fi)
{
	struct snap_handle *h = handle_of(fi);
	struct stat st;
	double ttl = 0;
	int rc = 0;

	if (ino == SNAP_INO_CURRENT) {
		if (to_set & FUSE_SET_ATTR_SIZE)
			rc = setattr_current_size(h, attr->st_size);
		/* Modes, owners and times of the live file belong to its
		 * administrator: accepted and ignored, so cp -p, mv, rsync
		 * and GIO finish their work. */
		if (rc == 0)
			rc = attr_current_fh(h, &st);
	} else if (snap_ino_is_snapshot(ino) || ino == SNAP_INO_LATEST) {
		rc = -EROFS;
	} else if (ino < SNAP_INO_NODE_BASE) {
		rc = -EPERM;
	} else {
		rc = setattr_node(ino, attr, to_set, h);
		if (rc == 0)
			rc = attr_of(ino, &st, &ttl);
	}
	if (rc != 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ttl);
}

static void snap_ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	snap_info si;

	if (ino != SNAP_INO_LATEST) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (snap_store_find(snap_fs.store, "latest", &si, NULL) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fuse_reply_readlink(req, si.name);
}

/* ---- open, create ------------------------------------------------------- */

/* Open current.db: image, upload or session by the flags. */
static int open_current(struct fuse_file_info *fi, struct snap_handle **out)
{
	struct snap_handle *h = handle_new(SNAP_H_IMAGE);
	snap_err err;
	int acc = fi->flags & O_ACCMODE, rc;

	if (!h)
		return -ENOMEM;
	if (acc == O_RDONLY) {
		snap_err_clear(&err);
		rc = snap_live_image_get(snap_fs.live, &h->img, &err);
		if (rc != 0)
			snap_log(LOG_ERR, "current.db: no consistent image of "
				 "the live database: %s", err.msg);
	} else if (fi->flags & O_TRUNC) {
		rc = snap_upload_begin(h);
	} else {
		rc = snap_session_join(h);
	}
	if (rc != 0) {
		handle_free(h);
		return rc;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	*out = h;
	return 0;
}

static int open_snapshot(int64_t id, struct fuse_file_info *fi,
			 struct snap_handle **out)
{
	struct snap_handle *h;
	snap_err err;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	h = handle_new(SNAP_H_SNAPSHOT);
	if (!h)
		return -ENOMEM;
	snap_err_clear(&err);
	rc = snap_image_open(snap_fs.store, id, &h->simg, &err);
	if (rc != 0) {
		if (rc != -ENOENT)
			snap_log(LOG_ERR, "opening snapshot %lld: %s",
				 (long long)id, err.msg);
		handle_free(h);
		return rc;
	}
	h->snap_id = id;
	fi->keep_cache = 1;        /* a snapshot's bytes never change */
	*out = h;
	return 0;
}

/* Open a staging or pending node's backing file. */
static int open_node(fuse_ino_t ino, struct fuse_file_info *fi,
		     struct snap_handle **out)
{
	struct snap_handle *h;
	struct snap_node *n;
	char path[PATH_MAX];
	int64_t id;
	int flags;

	pthread_mutex_lock(&snap_fs.lock);
	n = snap_node_get_locked(ino);
	if (n)
		snap_node_open_locked(n);
	id = n && n->kind == SNAP_NODE_PENDING ? n->snap_id : 0;
	pthread_mutex_unlock(&snap_fs.lock);
	if (!n)
		return -ENOENT;
	if (id > 0) {
		/* The request became a snapshot: open that. */
		snap_node_close(n);
		return open_snapshot(id, fi, out);
	}
	h = handle_new(n->kind == SNAP_NODE_PENDING ? SNAP_H_PENDING :
		       SNAP_H_STAGING);
	if (!h) {
		snap_node_close(n);
		return -ENOMEM;
	}
	h->node = n;
	snprintf(path, sizeof(path), "%s", n->path);
	/* O_APPEND is the kernel's business: it gives us the offsets. */
	flags = (fi->flags & O_ACCMODE) | O_CLOEXEC;
	h->fd = open(path, flags == (O_WRONLY | O_CLOEXEC) ?
		     O_RDWR | O_CLOEXEC : flags);
	if (h->fd < 0) {
		int rc = -errno;
		handle_free(h);
		snap_node_close(n);
		return rc;
	}
	if ((fi->flags & O_TRUNC) && ftruncate(h->fd, 0) == 0 &&
	    h->kind == SNAP_H_PENDING)
		h->dirty = 1;
	if (h->kind == SNAP_H_PENDING)
		fi->direct_io = 1;
	*out = h;
	return 0;
}

static void snap_ll_open(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct snap_handle *h = NULL;
	int rc;

	switch (ino) {
	case SNAP_INO_ROOT:
	case SNAP_INO_SNAPDIR:
	case SNAP_INO_META:
		rc = -EISDIR;
		break;
	case SNAP_INO_CURRENT:
		rc = open_current(fi, &h);
		break;
	case SNAP_INO_STATUS:
	case SNAP_INO_LOG:
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			rc = -EACCES;
			break;
		}
		h = handle_new(SNAP_H_TEXT);
		rc = h ? snap_status_text(ino, &h->text, &h->text_len)
		       : -ENOMEM;
		fi->direct_io = 1;
		break;
	case SNAP_INO_LATEST:
		rc = -ELOOP;
		break;
	default:
		if (snap_ino_is_snapshot(ino))
			rc = open_snapshot(snap_ino_snapshot_id(ino), fi, &h);
		else
			rc = open_node(ino, fi, &h);
	}
	if (rc != 0) {
		if (h)
			handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0) {
		/* Interrupted: the kernel will never release it. */
		if (h->kind == SNAP_H_IMAGE)
			snap_live_image_put(snap_fs.live, h->img);
		else if (h->kind == SNAP_H_SESSION)
			snap_session_leave(h);
		else if (h->kind == SNAP_H_SNAPSHOT)
			snap_image_close(h->simg);
		else if (h->kind == SNAP_H_UPLOAD)
			unlink(h->path);
		if (h->node)
			snap_node_close(h->node);
		handle_free(h);
	}
}

/* Reply to a create with node n open in handle h. */
static void reply_create(fuse_req_t req, struct fuse_file_info *fi,
			 struct snap_handle *h, const struct stat *st,
			 int is_node)
{
	struct fuse_entry_param e;

	entry_init(&e, st, 0, 0);
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_create(req, &e, fi) != 0) {
		if (h->kind == SNAP_H_UPLOAD)
			unlink(h->path);
		if (h->node)
			snap_node_close(h->node);
		if (is_node)
			snap_node_forget(st->st_ino, 1);
		handle_free(h);
	}
}

/* Create current.db after an unlink: a staged replace. */
static void create_current(fuse_req_t req, struct fuse_file_info *fi)
{
	struct snap_handle *h = handle_new(SNAP_H_UPLOAD);
	struct stat st;
	int rc;

	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&snap_fs.lock);
	snap_fs.unlink_pid = 0;
	pthread_mutex_unlock(&snap_fs.lock);
	rc = snap_upload_begin(h);
	if (rc != 0) {
		handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	if (attr_current(&st) != 0) {
		memset(&st, 0, sizeof(st));
		st.st_ino = SNAP_INO_CURRENT;
		st.st_mode = S_IFREG | 0600;
		st.st_nlink = 1;
	}
	st.st_size = 0;
	st.st_blocks = 0;
	fi->direct_io = 1;
	reply_create(req, fi, h, &st, 0);
}

/* Create a node (staging file in the root, request in snapshots/). */
static void create_node(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	enum snap_node_kind kind = parent == SNAP_INO_ROOT ?
		SNAP_NODE_STAGING : SNAP_NODE_PENDING;
	struct snap_handle *h = NULL;
	struct snap_node *n;
	struct stat st;
	double ttl;
	int rc;

	n = snap_node_find(parent, name, 0);
	if (n) {
		if (fi->flags & O_EXCL) {
			fuse_reply_err(req, EEXIST);
			return;
		}
		n = snap_node_find(parent, name, 1);
		if (!n) {
			fuse_reply_err(req, ENOENT);
			return;
		}
	} else {
		n = snap_node_create(kind, parent, name,
				     kind == SNAP_NODE_PENDING ? 0644 : mode,
				     ctx->uid, ctx->gid);
		if (!n) {
			rc = errno;
			snap_log(LOG_ERR, "creating staging file for \"%s\": %s",
				 name, strerror(rc));
			fuse_reply_err(req, rc);
			return;
		}
	}
	rc = open_node(n->ino, fi, &h);
	if (rc == 0)
		rc = attr_of(n->ino, &st, &ttl);
	if (rc != 0) {
		if (h) {
			snap_node_close(h->node);
			handle_free(h);
		}
		snap_node_forget(n->ino, 1);
		fuse_reply_err(req, -rc);
		return;
	}
	reply_create(req, fi, h, &st, 1);
}

static void snap_ll_create(fuse_req_t req, fuse_ino_t parent,
			   const char *name, mode_t mode,
			   struct fuse_file_info *fi)
{
	if (parent == SNAP_INO_ROOT) {
		if (strcmp(name, SNAP_NAME_CURRENT) == 0) {
			create_current(req, fi);
			return;
		}
		if (strcmp(name, SNAP_NAME_SNAPDIR) == 0 ||
		    strcmp(name, SNAP_NAME_META) == 0) {
			fuse_reply_err(req, EEXIST);
			return;
		}
		create_node(req, parent, name, mode, fi);
		return;
	}
	if (parent == SNAP_INO_SNAPDIR) {
		snap_info si;
		if (strcmp(name, SNAP_NAME_LATEST) == 0 ||
		    snapshot_by_name(name, &si) == 0) {
			fuse_reply_err(req, EEXIST);
			return;
		}
		/* SQLite's side files and GIO's temporary copies are never
		 * snapshot requests (PITFALLS 20). */
		if (snap_name_is_sidefile(name) ||
		    strncmp(name, ".goutputstream-", 15) == 0) {
			fuse_reply_err(req, EROFS);
			return;
		}
		create_node(req, parent, name, mode, fi);
		return;
	}
	fuse_reply_err(req, parent == SNAP_INO_META ? EACCES : ENOTDIR);
}

/* ---- read, write -------------------------------------------------------- */

/* Reply with size bytes of fd at off, by splice where the kernel can. */
static void reply_fd(fuse_req_t req, int fd, size_t size, off_t off)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void snap_ll_read(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi)
{
	struct snap_handle *h = handle_of(fi);
	snap_err err;
	char *buf;
	ssize_t n;
	int rc;

	(void)ino;
	switch (h->kind) {
	case SNAP_H_IMAGE:
		reply_fd(req, h->img->fd, size, off); /* immutable: no lock */
		return;
	case SNAP_H_SNAPSHOT:
		buf = malloc(size ? size : 1);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		snap_err_clear(&err);
		pthread_mutex_lock(&h->lock);
		n = snap_image_read(h->simg, buf, size, (uint64_t)off, &err);
		pthread_mutex_unlock(&h->lock);
		if (n < 0) {
			snap_log(LOG_ERR, "reading snapshot %lld: %s",
				 (long long)h->snap_id, err.msg);
			fuse_reply_err(req, (int)-n);
		} else {
			fuse_reply_buf(req, buf, (size_t)n);
		}
		free(buf);
		return;
	case SNAP_H_TEXT:
		if ((size_t)off >= h->text_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, h->text + off,
				       h->text_len - (size_t)off < size ?
				       h->text_len - (size_t)off : size);
		return;
	case SNAP_H_SESSION:
		pthread_mutex_lock(&h->lock);
		rc = h->kind == SNAP_H_SESSION ? snap_session_ready(h) : 0;
		if (rc != 0) {
			pthread_mutex_unlock(&h->lock);
			fuse_reply_err(req, -rc);
			return;
		}
		reply_fd(req, h->fd, size, off);
		pthread_mutex_unlock(&h->lock);
		return;
	case SNAP_H_UPLOAD:
	case SNAP_H_PENDING:
	case SNAP_H_STAGING:
		pthread_mutex_lock(&h->lock);
		reply_fd(req, h->fd, size, off);
		pthread_mutex_unlock(&h->lock);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

static void snap_ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
			  size_t size, off_t off, struct fuse_file_info *fi)
{
	struct snap_handle *h = handle_of(fi);
	ssize_t n;
	int rc = 0;

	(void)ino;
	pthread_mutex_lock(&h->lock);
	switch (h->kind) {
	case SNAP_H_SESSION:
		rc = snap_session_ready(h);
		break;
	case SNAP_H_UPLOAD:
	case SNAP_H_PENDING:
	case SNAP_H_STAGING:
		break;
	default:
		rc = -EBADF;
	}
	if (rc == 0) {
		n = pwrite(h->fd, buf, size, off);
		if (n < 0)
			rc = -errno;
		else if (h->kind == SNAP_H_SESSION)
			snap_session_wrote(h);
		else
			h->dirty = 1;
	}
	pthread_mutex_unlock(&h->lock);
	if (rc != 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, (size_t)n);
}

/* ---- flush, release, fsync ---------------------------------------------- */

static void invalidate_current(void)
{
	snap_notify_inode(snap_fs.notify, SNAP_INO_CURRENT);
	snap_notify_entry(snap_fs.notify, SNAP_INO_ROOT, SNAP_NAME_CURRENT);
}

static void snap_ll_flush(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct snap_handle *h = handle_of(fi);
	char name[NAME_MAX + 1] = "";
	int rc = 0, touched_current = 0;

	(void)ino;
	pthread_mutex_lock(&h->lock);
	switch (h->kind) {
	case SNAP_H_UPLOAD:
		rc = snap_upload_flush(h);
		touched_current = 1;
		break;
	case SNAP_H_SESSION:
		rc = snap_session_flush(h);
		touched_current = 1;
		break;
	case SNAP_H_PENDING:
		pthread_mutex_lock(&snap_fs.lock);
		if (h->node->linked)
			snprintf(name, sizeof(name), "%s", h->node->name);
		pthread_mutex_unlock(&snap_fs.lock);
		rc = snap_pending_flush(h);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&h->lock);
	fuse_reply_err(req, -rc);
	if (touched_current)
		invalidate_current();
	if (name[0]) {
		/* The request's name is gone: the snapshot is listed under
		 * its own time-stamped name. */
		snap_notify_entry(snap_fs.notify, SNAP_INO_SNAPDIR, name);
	}
}

static void snap_ll_release(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct snap_handle *h = handle_of(fi);
	struct snap_node *node = h->node;
	int rc;

	(void)ino;
	pthread_mutex_lock(&h->lock);
	switch (h->kind) {
	case SNAP_H_IMAGE:
		snap_live_image_put(snap_fs.live, h->img);
		h->img = NULL;
		break;
	case SNAP_H_SESSION:
		snap_session_leave(h);
		break;
	case SNAP_H_UPLOAD:
		if (h->dirty) {
			rc = snap_upload_flush(h);
			snap_log(rc ? LOG_ERR : LOG_WARNING, "current.db: bytes "
				 "written after the last close were applied at "
				 "release (%s)", rc ? strerror(-rc) : "ok");
		}
		unlink(h->path);
		break;
	case SNAP_H_SNAPSHOT:
		snap_image_close(h->simg);
		h->simg = NULL;
		break;
	case SNAP_H_PENDING:
		if (h->dirty || !h->attempted)
			snap_pending_flush(h);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&h->lock);
	handle_free(h);
	if (node)
		snap_node_close(node);
	fuse_reply_err(req, 0);
}

static void snap_ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
			  struct fuse_file_info *fi)
{
	/* Staged bytes are temporary by nature: durability comes with the
	 * restore, which the engine makes durable. */
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* ---- directories -------------------------------------------------------- */

struct dir_build {
	struct snap_dirent *ents;
	size_t n, cap;
	int oom;
};

static struct snap_dirent *dir_add(struct dir_build *b, const char *name)
{
	struct snap_dirent *d;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		d = realloc(b->ents, cap * sizeof(*d));
		if (!d) {
			b->oom = 1;
			return NULL;
		}
		b->ents = d;
		b->cap = cap;
	}
	d = &b->ents[b->n++];
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	return d;
}

/* Collect linked nodes with an open reference each (fs->lock held). */
static void dir_collect_node(struct snap_node *n, void *ctx)
{
	struct dir_build *b = ctx;
	struct snap_dirent *d = dir_add(b, n->name);

	if (d) {
		d->node = n;
		snap_node_open_locked(n);
	}
}

static int dir_fill(fuse_ino_t ino, pid_t pid, struct dir_build *b)
{
	struct snap_dirent *d;
	struct stat live;
	snap_info *list = NULL;
	size_t n = 0, i, first_node;
	int have_live, rc;
	double ttl;

	if ((d = dir_add(b, "."))) {
		attr_dir(ino, &d->st);
	}
	if ((d = dir_add(b, ".."))) {
		attr_dir(SNAP_INO_ROOT, &d->st);
	}
	if (ino == SNAP_INO_META) {
		if ((d = dir_add(b, SNAP_NAME_STATUS)) &&
		    attr_of(SNAP_INO_STATUS, &d->st, &ttl) != 0)
			b->n--;
		if ((d = dir_add(b, SNAP_NAME_LOG)) &&
		    attr_of(SNAP_INO_LOG, &d->st, &ttl) != 0)
			b->n--;
		return b->oom ? -ENOMEM : 0;
	}
	if (ino == SNAP_INO_ROOT) {
		if (!current_hidden(pid) && (d = dir_add(b, SNAP_NAME_CURRENT))
		    && attr_current(&d->st) != 0)
			b->n--;
		if ((d = dir_add(b, SNAP_NAME_SNAPDIR))) {
			attr_dir(SNAP_INO_SNAPDIR, &d->st);
			d->attr_ttl = SNAP_TTL_DIR;
			d->entry_ttl = 3600;
		}
		if ((d = dir_add(b, SNAP_NAME_META))) {
			attr_dir(SNAP_INO_META, &d->st);
			d->attr_ttl = SNAP_TTL_DIR;
			d->entry_ttl = 3600;
		}
	} else {
		snap_err err;
		snap_err_clear(&err);
		rc = snap_store_list(snap_fs.store, &list, &n, &err);
		if (rc != 0) {
			snap_log(LOG_ERR, "listing snapshots: %s", err.msg);
			return rc;
		}
		have_live = snap_live_stat(snap_fs.live, &live) == 0;
		for (i = 0; i < n; i++) {
			d = dir_add(b, list[i].name);
			if (!d)
				break;
			attr_snapshot(&list[i], snap_ino_of_snapshot(list[i].id),
				      have_live ? &live : NULL, &d->st);
			d->attr_ttl = SNAP_TTL_SNAP_ATTR;
			d->entry_ttl = SNAP_TTL_SNAP_ENTRY;
		}
		if (n > 0 && (d = dir_add(b, SNAP_NAME_LATEST)))
			attr_symlink(list[n - 1].name, &d->st);
		free(list);
	}
	first_node = b->n;
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_foreach_locked(ino, dir_collect_node, b);
	pthread_mutex_unlock(&snap_fs.lock);
	for (i = first_node; i < b->n; i++)
		if (attr_of(b->ents[i].node->ino, &b->ents[i].st, &ttl) != 0)
			b->ents[i].st.st_ino = 0;   /* vanished: skipped */
	return b->oom ? -ENOMEM : 0;
}

static void snap_ll_opendir(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct dir_build b = { 0 };
	struct snap_handle *h;
	int rc;

	if (ino != SNAP_INO_ROOT && ino != SNAP_INO_SNAPDIR &&
	    ino != SNAP_INO_META) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	h = handle_new(SNAP_H_DIR);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = dir_fill(ino, fuse_req_ctx(req)->pid, &b);
	h->ents = b.ents;
	h->nents = b.n;
	if (rc != 0) {
		handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		handle_free(h);
}

static void dir_read(fuse_req_t req, size_t size, off_t off,
		     struct fuse_file_info *fi, int plus)
{
	struct snap_handle *h = handle_of(fi);
	char *buf = malloc(size);
	size_t used = 0, i;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = (size_t)off; i < h->nents; i++) {
		struct snap_dirent *d = &h->ents[i];
		size_t len;
		int dot = strcmp(d->name, ".") == 0 ||
			  strcmp(d->name, "..") == 0;

		if (d->st.st_ino == 0)
			continue;
		if (plus) {
			struct fuse_entry_param e;
			entry_init(&e, &d->st, d->attr_ttl, d->entry_ttl);
			if (d->node && !dot) {
				pthread_mutex_lock(&snap_fs.lock);
				snap_node_lookup_locked(d->node, 1);
				pthread_mutex_unlock(&snap_fs.lock);
			}
			len = fuse_add_direntry_plus(req, buf + used,
						     size - used, d->name, &e,
						     (off_t)i + 1);
			if (len > size - used) {
				if (d->node && !dot)
					snap_node_forget(d->node->ino, 1);
				break;
			}
		} else {
			len = fuse_add_direntry(req, buf + used, size - used,
						d->name, &d->st, (off_t)i + 1);
			if (len > size - used)
				break;
		}
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void snap_ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	dir_read(req, size, off, fi, 0);
}

static void snap_ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
				off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	dir_read(req, size, off, fi, 1);
}

static void snap_ll_releasedir(fuse_req_t req, fuse_ino_t ino,
			       struct fuse_file_info *fi)
{
	(void)ino;
	handle_free(handle_of(fi));
	fuse_reply_err(req, 0);
}

static void snap_ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			     struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* ---- unlink, rename ---------------------------------------------------- */

static void snap_ll_unlink(fuse_req_t req, fuse_ino_t parent,
			   const char *name)
{
	struct snap_node *n;
	snap_info si;
	snap_err err;
	int rc;

	if (parent == SNAP_INO_ROOT && strcmp(name, SNAP_NAME_CURRENT) == 0) {
		/* Never delete the live database: free the name for the
		 * create that follows (cp --remove-destination, mv). */
		pthread_mutex_lock(&snap_fs.lock);
		snap_fs.unlink_pid = fuse_req_ctx(req)->pid;
		snap_fs.unlink_until_ns = snap_time_now_ns() +
					  CURRENT_UNLINK_NS;
		pthread_mutex_unlock(&snap_fs.lock);
		snap_log(LOG_DEBUG, "unlink of current.db: the live database "
			 "stays; the name is free for process %d",
			 (int)fuse_req_ctx(req)->pid);
		fuse_reply_err(req, 0);
		return;
	}
	if (parent == SNAP_INO_META || parent > SNAP_INO_SNAPDIR ||
	    strcmp(name, SNAP_NAME_LATEST) == 0 ||
	    (parent == SNAP_INO_ROOT && (strcmp(name, SNAP_NAME_SNAPDIR) == 0
					 || strcmp(name, SNAP_NAME_META) == 0))) {
		fuse_reply_err(req, EPERM);
		return;
	}
	n = snap_node_find_open(parent, name);
	if (n) {
		pthread_mutex_lock(&snap_fs.lock);
		if (n->linked && strcmp(n->name, name) == 0)
			snap_node_unlink_locked(n);
		pthread_mutex_unlock(&snap_fs.lock);
		snap_node_close(n);
		fuse_reply_err(req, 0);
		return;
	}
	if (parent == SNAP_INO_ROOT) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = snapshot_by_name(name, &si);
	if (rc == 0) {
		snap_err_clear(&err);
		rc = snap_store_delete(snap_fs.store, si.id, &err);
		if (rc == 0)
			snap_log(LOG_INFO, "snapshot %s deleted", si.name);
		else
			snap_log(LOG_ERR, "deleting snapshot %s: %s", si.name,
				 err.msg);
	}
	fuse_reply_err(req, -rc);
}

/* The label a rename within snapshots/ asks for: the new name without
 * the snapshot's own time prefix and without ".db". */
static void rename_label(const snap_info *si, const char *newname,
			 char out[SNAP_LABEL_MAX + 1])
{
	const char *us = strchr(si->name, '_');
	size_t plen = us ? (size_t)(us - si->name) + 1 : 0;

	if (plen && strncmp(newname, si->name, plen) == 0 && newname[plen])
		newname += plen;
	snap_label_sanitize(newname, "snapshot", out);
}

static int rename_in_snapshots(const char *name, const char *newname,
			       unsigned flags, char *result, size_t rlen)
{
	char label[SNAP_LABEL_MAX + 1];
	snap_info si, other, out;
	struct snap_node *n;
	snap_err err;
	int64_t id = 0;
	int rc;

	(void)flags;
	if (strcmp(name, SNAP_NAME_LATEST) == 0 ||
	    strcmp(newname, SNAP_NAME_LATEST) == 0)
		return -EPERM;
	if (strcmp(name, newname) == 0)
		return 0;
	n = snap_node_find_open(SNAP_INO_SNAPDIR, name);
	if (n) {
		/* A request not taken yet: rename the request. */
		pthread_mutex_lock(&snap_fs.lock);
		if (n->linked && n->snap_id == 0)
			snap_node_rename_locked(n, newname);
		else
			id = n->snap_id;
		pthread_mutex_unlock(&snap_fs.lock);
		snap_node_close(n);
		if (!id)
			return 0;
		rc = snapshot_get(id, &si);
	} else {
		rc = snapshot_by_name(name, &si);
	}
	if (rc != 0)
		return rc;
	/* Never replace (delete) another snapshot implicitly. */
	if (snapshot_by_name(newname, &other) == 0 && other.id != si.id)
		return -EEXIST;
	rename_label(&si, newname, label);
	snap_err_clear(&err);
	rc = snap_store_relabel(snap_fs.store, si.id, label, &out, &err);
	if (rc != 0) {
		snap_log(LOG_ERR, "relabelling snapshot %s: %s", si.name,
			 err.msg);
		return rc;
	}
	snap_log(LOG_INFO, "snapshot %s is now %s", si.name, out.name);
	snprintf(result, rlen, "%s", out.name);
	return 0;
}

/* Restore onto current.db from snapshots/name or a staging file. */
static int rename_onto_current(fuse_ino_t parent, const char *name)
{
	char path[PATH_MAX], shown[NAME_MAX + 32];
	struct snap_node *n;
	snap_info si;
	int64_t id = 0;
	int rc;

	if (parent == SNAP_INO_SNAPDIR) {
		if (strcmp(name, SNAP_NAME_LATEST) == 0) {
			rc = snap_store_find(snap_fs.store, "latest", &si,
					     NULL);
		} else if ((n = snap_node_find_open(parent, name))) {
			pthread_mutex_lock(&snap_fs.lock);
			id = n->snap_id;
			pthread_mutex_unlock(&snap_fs.lock);
			snap_node_close(n);
			rc = id ? snapshot_get(id, &si) : -EBUSY;
		} else {
			rc = snapshot_by_name(name, &si);
		}
		if (rc != 0)
			return rc;
		snprintf(shown, sizeof(shown), "snapshot %s", si.name);
		return snap_apply_snapshot(si.id, shown);
	}
	if (strcmp(name, SNAP_NAME_CURRENT) == 0)
		return 0;
	n = snap_node_find_open(SNAP_INO_ROOT, name);
	if (!n)
		return strcmp(name, SNAP_NAME_SNAPDIR) == 0 ||
		       strcmp(name, SNAP_NAME_META) == 0 ? -EISDIR : -ENOENT;
	pthread_mutex_lock(&snap_fs.lock);
	snprintf(path, sizeof(path), "%s", n->path);
	pthread_mutex_unlock(&snap_fs.lock);
	snprintf(shown, sizeof(shown), "the file %s", name);
	rc = snap_apply_file(path, shown, "upload");
	if (rc == 0) {
		/* Like a rename: the source name is gone. */
		pthread_mutex_lock(&snap_fs.lock);
		if (n->linked && strcmp(n->name, name) == 0)
			snap_node_unlink_locked(n);
		pthread_mutex_unlock(&snap_fs.lock);
	}
	snap_node_close(n);
	return rc;
}

static void snap_ll_rename(fuse_req_t req, fuse_ino_t parent,
			   const char *name, fuse_ino_t newparent,
			   const char *newname, unsigned int flags)
{
	char result[SNAP_NAME_MAX] = "";
	struct snap_node *n;
	int rc;

	if (flags & RENAME_EXCHANGE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (parent == SNAP_INO_META || newparent == SNAP_INO_META ||
	    parent > SNAP_INO_SNAPDIR || newparent > SNAP_INO_SNAPDIR) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (newparent == SNAP_INO_ROOT &&
	    strcmp(newname, SNAP_NAME_CURRENT) == 0) {
		if (flags & RENAME_NOREPLACE) {
			fuse_reply_err(req, EEXIST);
			return;
		}
		rc = rename_onto_current(parent, name);
		fuse_reply_err(req, -rc);
		/* The kernel moved the source's dentry onto current.db
		 * (PITFALLS 16); a failed rename may have left the kernel's
		 * size of current.db stale too.  Forget both. */
		invalidate_current();
		snap_notify_entry(snap_fs.notify, parent, name);
		return;
	}
	if (parent == SNAP_INO_ROOT && strcmp(name, SNAP_NAME_CURRENT) == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (parent == SNAP_INO_SNAPDIR && newparent == SNAP_INO_SNAPDIR) {
		rc = rename_in_snapshots(name, newname, flags, result,
					 sizeof(result));
		fuse_reply_err(req, -rc);
		if (rc == 0 && result[0] && strcmp(result, newname) != 0)
			snap_notify_entry(snap_fs.notify, SNAP_INO_SNAPDIR,
					  newname);
		return;
	}
	if (parent == SNAP_INO_ROOT && newparent == SNAP_INO_SNAPDIR) {
		/* mv falls back to copy + unlink: a create that imports. */
		fuse_reply_err(req, EXDEV);
		return;
	}
	if (parent == SNAP_INO_SNAPDIR) {
		/* A snapshot leaves snapshots/ only by restore. */
		fuse_reply_err(req, EPERM);
		return;
	}
	/* Root to root: staging files among themselves. */
	if (strcmp(newname, SNAP_NAME_SNAPDIR) == 0 ||
	    strcmp(newname, SNAP_NAME_META) == 0) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((flags & RENAME_NOREPLACE) &&
	    snap_node_find(SNAP_INO_ROOT, newname, 0) != NULL) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	n = snap_node_find_open(SNAP_INO_ROOT, name);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	pthread_mutex_lock(&snap_fs.lock);
	if (n->linked) {
		snap_node_rename_locked(n, newname);
		rc = 0;
	} else
		rc = -ENOENT;
	pthread_mutex_unlock(&snap_fs.lock);
	snap_node_close(n);
	fuse_reply_err(req, -rc);
}

static void snap_ll_mkdir(fuse_req_t req, fuse_ino_t parent,
			  const char *name, mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	fuse_reply_err(req, EPERM);
}

static void snap_ll_mknod(fuse_req_t req, fuse_ino_t parent,
			  const char *name, mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM);
}

static void snap_ll_rmdir(fuse_req_t req, fuse_ino_t parent,
			  const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void snap_ll_symlink(fuse_req_t req, const char *link,
			    fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

static void snap_ll_link(fuse_req_t req, fuse_ino_t ino,
			 fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM);
}

/* ---- xattrs ------------------------------------------------------------ */

/* The snapshot behind ino (a snapshot or a committed request), or 0. */
static int64_t xattr_snapshot(fuse_ino_t ino)
{
	if (snap_ino_is_snapshot(ino))
		return snap_ino_snapshot_id(ino);
	if (ino >= SNAP_INO_NODE_BASE)
		return pending_snap_id(ino);
	return 0;
}

/* The value of user.snapfs.<key> for snapshot si; malloc()ed. */
static int xattr_value(const snap_info *si, const char *key, char **out)
{
	char buf[SNAP_COMMENT_MAX + 80];
	snap_err err;

	if (strcmp(key, "kind") == 0)
		snprintf(buf, sizeof(buf), "%s", snap_kind_name(si->kind));
	else if (strcmp(key, "label") == 0)
		snprintf(buf, sizeof(buf), "%s", si->label);
	else if (strcmp(key, "created") == 0) {
		char iso[40];
		snap_time_iso(si->created_ns, iso);
		snprintf(buf, sizeof(buf), "%s", iso);
	} else if (strcmp(key, "sha256") == 0) {
		char hex[65];
		snap_hex(si->sha256, hex);
		snprintf(buf, sizeof(buf), "%s", hex);
	} else if (strcmp(key, "comment") == 0)
		snprintf(buf, sizeof(buf), "%s", si->comment);
	else if (strcmp(key, "tables") == 0) {
		snap_err_clear(&err);
		return snap_store_tables_json(snap_fs.store, si->id, out,
					      &err);
	} else
		return -ENODATA;
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

static void snap_ll_getxattr(fuse_req_t req, fuse_ino_t ino,
			     const char *name, size_t size)
{
	int64_t id = xattr_snapshot(ino);
	char *value = NULL;
	snap_info si;
	size_t len;
	int rc;

	if (!id || strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = snapshot_get(id, &si);
	if (rc == 0)
		rc = xattr_value(&si, name + strlen(XATTR_PREFIX), &value);
	if (rc != 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	len = strlen(value);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
	free(value);
}

static void snap_ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char buf[512];
	size_t len = 0, i;

	if (xattr_snapshot(ino)) {
		for (i = 0; i < sizeof(snap_xattrs) / sizeof(snap_xattrs[0]);
		     i++)
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
						"%s%s", XATTR_PREFIX,
						snap_xattrs[i]) + 1;
	}
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
}

static void snap_ll_setxattr(fuse_req_t req, fuse_ino_t ino,
			     const char *name, const char *value,
			     size_t size, int flags)
{
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, xattr_snapshot(ino) ? EROFS : ENOTSUP);
}

static void snap_ll_removexattr(fuse_req_t req, fuse_ino_t ino,
				const char *name)
{
	(void)name;
	fuse_reply_err(req, xattr_snapshot(ino) ? EROFS : ENOTSUP);
}

/* ---- the filesystem ----------------------------------------------------- */

static void snap_ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	if (statvfs(snap_store_dir(snap_fs.store), &sv) != 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static void snap_ll_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* O_TRUNC arrives with OPEN, so a truncating open is an upload
	 * from the start rather than an edit session cut to zero. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* One round trip lists a directory with its attributes. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* Writes must reach the daemon in order and at once. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Locks stay kernel-local: nothing here is shared with the real
	 * path (PITFALLS 4). */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

const struct fuse_lowlevel_ops snap_ll_ops = {
	.init = snap_ll_init,
	.lookup = snap_ll_lookup,
	.forget = snap_ll_forget,
	.forget_multi = snap_ll_forget_multi,
	.getattr = snap_ll_getattr,
	.setattr = snap_ll_setattr,
	.readlink = snap_ll_readlink,
	.mknod = snap_ll_mknod,
	.mkdir = snap_ll_mkdir,
	.unlink = snap_ll_unlink,
	.rmdir = snap_ll_rmdir,
	.symlink = snap_ll_symlink,
	.rename = snap_ll_rename,
	.link = snap_ll_link,
	.open = snap_ll_open,
	.read = snap_ll_read,
	.write = snap_ll_write,
	.flush = snap_ll_flush,
	.release = snap_ll_release,
	.fsync = snap_ll_fsync,
	.opendir = snap_ll_opendir,
	.readdir = snap_ll_readdir,
	.readdirplus = snap_ll_readdirplus,
	.releasedir = snap_ll_releasedir,
	.fsyncdir = snap_ll_fsyncdir,
	.statfs = snap_ll_statfs,
	.setxattr = snap_ll_setxattr,
	.getxattr = snap_ll_getxattr,
	.listxattr = snap_ll_listxattr,
	.removexattr = snap_ll_removexattr,
	.create = snap_ll_create,
};
