/*
 * fs/replica_ops.c — the tree of a replica mount (snapfs URL MNT) and its
 * FUSE operations.
 *
 *   /                      0500, owned by whoever mounted, times = mount
 *                          (the whole tree is private to whoever mounted:
 *                          the images are decrypted, and nothing says
 *                          who else may read the database; with
 *                          allow_other the kernel enforces the modes);
 *   snapshots/             one file per snapshot of the replica as it was
 *                          at mount time (remount to see newer ones):
 *                          0400, size = image size, mtime = creation
 *                          time, the user.snapfs.* xattrs of the normal
 *                          mount (kind, label, created, sha256, comment,
 *                          tables);
 *   .snapfs/status.json    the replica's URL, whether it is encrypted,
 *                          how many snapshots it holds.
 * No current.db, no restore/, no latest.db, no trash.  The mount is made
 * with -o ro, so the kernel answers EROFS to every write, create, mkdir,
 * rename and unlink; setxattr and removexattr say EROFS here too.
 *
 * Inode numbers: 1 the root, 2 snapshots/, 3 .snapfs/, 4 status.json,
 * RM_INO_SNAP + i the i-th snapshot of the list (fixed for the mount's
 * life: the list never changes while mounted).
 *
 * Reading a snapshot reads its pages on demand (engine/replica.h,
 * snap_replica_image_*): each page proven against its SHA-256, a damaged
 * or missing page is EIO; the engine caches a few packs (bounded memory).
 * Snapshot images never change, so the kernel keeps their page cache.
 *
 * Thread-safety: the replica handle and its images share one cache and
 * are not thread-safe; every call on them holds rm_lock (reads of
 * different files are serialized; the object store is the bottleneck
 * either way).  The tree itself is read-only after start.
 *
 * Interrupts: a reader killed while its open, read or getxattr of
 * user.snapfs.tables waits on the server would stay in the kernel
 * (uninterruptibly: FUSE waits for the answer of a request it already
 * sent) until the server's timeouts, a minute or more.  Those requests
 * take turns (rm_enter) before rm_lock; the FUSE INTERRUPT of the one
 * whose turn it is turns snap_replica_interrupt on, so its request in
 * flight fails at once (EINTR); one interrupted while it waits for its
 * turn stops waiting (EINTR).  Off again before the turn goes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <syslog.h>

#include "fs.h"
#include "rmount.h"
#include "xattr.h"

enum {
	RM_INO_ROOT = FUSE_ROOT_ID,
	RM_INO_SNAPDIR = 2,
	RM_INO_META = 3,
	RM_INO_STATUS = 4,
	RM_INO_SNAP = 16,
};

#define RM_TTL 3600.0          /* nothing changes while mounted */

static struct snap_rmount *rm;
static pthread_mutex_t rm_lock = PTHREAD_MUTEX_INITIALIZER;
/* Opens and reads take turns (rm_busy, under rm_intr_mu) before rm_lock:
 * a turn waited for ends when its request is interrupted.  rm_holder is
 * the request whose turn it is; rm_intr_mu is taken after libfuse's lock
 * of a request, never the other way. */
static pthread_mutex_t rm_intr_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rm_turn = PTHREAD_COND_INITIALIZER;
static int rm_busy;
static fuse_req_t rm_holder;

/* libfuse's interrupt callback: the holder's requests stop; a request
 * waiting for its turn stops waiting. */
static void rm_interrupt(fuse_req_t req, void *data)
{
	(void)data;
	pthread_mutex_lock(&rm_intr_mu);
	if (rm_holder == req)
		snap_replica_interrupt(rm->r, 1);
	else
		pthread_cond_broadcast(&rm_turn);
	pthread_mutex_unlock(&rm_intr_mu);
}

/* req's turn on the replica and rm_lock: 0, or -EINTR when req was
 * interrupted before its turn came (nothing held then). */
static int rm_enter(fuse_req_t req)
{
	fuse_req_interrupt_func(req, rm_interrupt, NULL);
	pthread_mutex_lock(&rm_intr_mu);
	while (rm_busy && !fuse_req_interrupted(req))
		pthread_cond_wait(&rm_turn, &rm_intr_mu);
	if (rm_busy) {
		pthread_mutex_unlock(&rm_intr_mu);
		fuse_req_interrupt_func(req, NULL, NULL);
		return -EINTR;
	}
	rm_busy = 1;
	rm_holder = req;
	if (fuse_req_interrupted(req))
		snap_replica_interrupt(rm->r, 1);
	pthread_mutex_unlock(&rm_intr_mu);
	pthread_mutex_lock(&rm_lock);
	return 0;
}

/* Give the turn and rm_lock back (req's interrupt forgotten, the
 * replica's off). */
static void rm_leave(fuse_req_t req)
{
	pthread_mutex_unlock(&rm_lock);
	fuse_req_interrupt_func(req, NULL, NULL);
	pthread_mutex_lock(&rm_intr_mu);
	rm_holder = NULL;
	rm_busy = 0;
	snap_replica_interrupt(rm->r, 0);
	pthread_cond_broadcast(&rm_turn);
	pthread_mutex_unlock(&rm_intr_mu);
}

/* The errno answered for an engine error rc, logged with msg (an
 * interrupted request only at LOG_INFO: its reader gave up). */
static int rm_errno(const char *what, const char *name, int rc,
		    const char *msg)
{
	snap_log(rc == -EINTR ? LOG_INFO : LOG_ERR, "%s%s%s: %s", what,
		 name ? " " : "", name ? name : "", msg);
	return rc == -ENOMEM ? ENOMEM : rc == -EINTR ? EINTR : EIO;
}

/* The snapshot of inode ino, or NULL. */
static const snap_info *rm_snap(fuse_ino_t ino)
{
	if (ino < RM_INO_SNAP || ino - RM_INO_SNAP >= rm->nsnaps)
		return NULL;
	return &rm->snaps[ino - RM_INO_SNAP];
}

/* The attributes of ino; 0 or -ENOENT. */
static int rm_stat(fuse_ino_t ino, struct stat *st)
{
	const snap_info *si = rm_snap(ino);

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = rm->uid;
	st->st_gid = rm->gid;
	snap_attr_ts(&st->st_mtim, rm->started_ns);
	st->st_atim = st->st_ctim = st->st_mtim;
	if (ino == RM_INO_ROOT || ino == RM_INO_SNAPDIR ||
	    ino == RM_INO_META) {
		st->st_mode = S_IFDIR | 0500;
		st->st_nlink = ino == RM_INO_ROOT ? 4 : 2;
	} else if (ino == RM_INO_STATUS) {
		st->st_mode = S_IFREG | 0400;
		st->st_nlink = 1;
		st->st_size = (off_t)strlen(rm->status);
	} else if (si) {
		st->st_mode = S_IFREG | 0400;
		st->st_nlink = 1;
		st->st_size = (off_t)si->image_size;
		st->st_blksize = si->page_size;
		st->st_blocks = (blkcnt_t)((si->image_size + 511) / 512);
		snap_attr_ts(&st->st_mtim, si->created_ns);
		st->st_atim = st->st_ctim = st->st_mtim;
	} else {
		return -ENOENT;
	}
	return 0;
}

/* The inode of name in directory parent, or 0. */
static fuse_ino_t rm_find(fuse_ino_t parent, const char *name)
{
	if (parent == RM_INO_ROOT) {
		if (!strcmp(name, SNAP_NAME_SNAPDIR))
			return RM_INO_SNAPDIR;
		if (!strcmp(name, SNAP_NAME_META))
			return RM_INO_META;
	} else if (parent == RM_INO_META) {
		if (!strcmp(name, "status.json"))
			return RM_INO_STATUS;
	} else if (parent == RM_INO_SNAPDIR) {
		for (size_t i = 0; i < rm->nsnaps; i++)
			if (!strcmp(name, rm->snaps[i].name))
				return RM_INO_SNAP + i;
	}
	return 0;
}

/* LOOKUP: the fixed names and the snapshots' listed names. */
static void rm_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	fuse_ino_t ino = rm_find(parent, name);

	if (!ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.attr_timeout = e.entry_timeout = RM_TTL;
	rm_stat(ino, &e.attr);
	fuse_reply_entry(req, &e);
}

/* GETATTR. */
static void rm_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int rc = rm_stat(ino, &st);

	(void)fi;
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, RM_TTL);
}

/* Add one entry to a readdir buffer (next: the offset of the entry
 * after it); 0 when it did not fit. */
static int rm_dirent(fuse_req_t req, char *buf, size_t size, size_t *len,
		     const char *name, fuse_ino_t ino, off_t next)
{
	struct stat st;
	size_t need;

	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = ino < RM_INO_SNAP && ino != RM_INO_STATUS ? S_IFDIR :
		S_IFREG;
	need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
	if (*len + need > size)
		return 0;
	fuse_add_direntry(req, buf + *len, size - *len, name, &st, next);
	*len += need;
	return 1;
}

/* READDIR: entry k of a directory is its k-th name; off is where the
 * previous reply ended (the index of the next entry). */
static void rm_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	const char *names[8];
	fuse_ino_t inos[8];
	size_t n = 0, len = 0, k;
	char *buf;

	(void)fi;
	names[n] = ".";
	inos[n++] = ino;
	names[n] = "..";
	inos[n++] = ino == RM_INO_META || ino == RM_INO_SNAPDIR ?
		RM_INO_ROOT : ino;
	if (ino == RM_INO_ROOT) {
		names[n] = SNAP_NAME_SNAPDIR;
		inos[n++] = RM_INO_SNAPDIR;
		names[n] = SNAP_NAME_META;
		inos[n++] = RM_INO_META;
	} else if (ino == RM_INO_META) {
		names[n] = "status.json";
		inos[n++] = RM_INO_STATUS;
	} else if (ino != RM_INO_SNAPDIR) {
		fuse_reply_err(req, rm_snap(ino) || ino == RM_INO_STATUS ?
			       ENOTDIR : ENOENT);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* The entries after off: the fixed ones, then the snapshots. */
	for (k = (size_t)off; ; k++) {
		const char *name;
		fuse_ino_t e;
		if (k < n) {
			name = names[k];
			e = inos[k];
		} else if (ino == RM_INO_SNAPDIR && k - n < rm->nsnaps) {
			name = rm->snaps[k - n].name;
			e = RM_INO_SNAP + (k - n);
		} else {
			break;
		}
		if (!rm_dirent(req, buf, size, &len, name, e,
			       (off_t)(k + 1)))
			break;
	}
	fuse_reply_buf(req, buf, len);
	free(buf);
}

/* OPEN: read-only opens of a snapshot (its image opened in the replica:
 * catalog row and page map) or of status.json. */
static void rm_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const snap_info *si = rm_snap(ino);
	snap_replica_image *img = NULL;
	snap_err err;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (ino == RM_INO_STATUS) {
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
		return;
	}
	if (!si) {
		fuse_reply_err(req, ino < RM_INO_SNAP ? EISDIR : ENOENT);
		return;
	}
	snap_err_clear(&err);
	rc = rm_enter(req);
	if (rc == 0) {
		rc = snap_replica_image_open(rm->r, si->name, &img, &err);
		rm_leave(req);
	} else {
		snap_err_set(&err, rc, "interrupted while another read ran");
	}
	if (rc < 0) {
		fuse_reply_err(req, rm_errno("open", si->name, rc, err.msg));
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)img;
	fi->keep_cache = 1;           /* a snapshot's image never changes */
	if (fuse_reply_open(req, fi) != 0)
		snap_replica_image_close(img);
}

/* READ: status.json from memory, a snapshot's pages from the replica. */
static void rm_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	snap_replica_image *img = (snap_replica_image *)(uintptr_t)fi->fh;
	snap_err err;
	char *buf;
	long n;

	if (ino == RM_INO_STATUS) {
		size_t len = strlen(rm->status);
		if ((size_t)off >= len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, rm->status + off,
				       len - (size_t)off < size ?
				       len - (size_t)off : size);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	snap_err_clear(&err);
	n = rm_enter(req);
	if (n == 0) {
		n = snap_replica_image_read(img, buf, size, (uint64_t)off,
					    &err);
		rm_leave(req);
	} else {
		snap_err_set(&err, (int)n, "interrupted while another read ran");
	}
	if (n < 0) {
		fuse_reply_err(req, rm_errno("read", NULL, (int)n, err.msg));
	} else {
		fuse_reply_buf(req, buf, (size_t)n);
	}
	free(buf);
}

/* RELEASE: the image goes. */
static void rm_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	pthread_mutex_lock(&rm_lock);
	snap_replica_image_close((snap_replica_image *)(uintptr_t)fi->fh);
	pthread_mutex_unlock(&rm_lock);
	fuse_reply_err(req, 0);
}

/* The tables attribute from the replica (xattr.h); ctx is the request
 * (its interrupt stops the fetch, as a read's). */
static int rm_xattr_tables(void *ctx, const snap_info *si, char **out)
{
	fuse_req_t req = ctx;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = rm_enter(req);
	if (rc == 0) {
		rc = snap_replica_tables(rm->r, si->name, out, &err);
		rm_leave(req);
	} else {
		snap_err_set(&err, rc, "interrupted while another read ran");
	}
	return rc < 0 ? -rm_errno("xattr tables of", si->name, rc, err.msg) :
		0;
}

/* GETXATTR: a snapshot's user.snapfs.* attributes. */
static void rm_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	const snap_info *si = rm_snap(ino);
	char *value = NULL;
	int rc;

	rc = si ? snap_xattr_value(si, name, rm_xattr_tables, req, &value) :
		-ENODATA;
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	snap_xattr_reply(req, value, size);
	free(value);
}

/* LISTXATTR: the names of a snapshot's attributes. */
static void rm_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	snap_xattr_list_reply(req, rm_snap(ino) != NULL, size);
}

/* SETXATTR, REMOVEXATTR: a read-only mount. */
static void rm_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void rm_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, EROFS);
}

/* INIT: no locks (nothing to lock), no writeback cache. */
static void rm_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS |
			FUSE_CAP_WRITEBACK_CACHE);
}

static const struct fuse_lowlevel_ops rm_ops = {
	.init = rm_init,
	.lookup = rm_lookup,
	.getattr = rm_getattr,
	.readdir = rm_readdir,
	.open = rm_open,
	.read = rm_read,
	.release = rm_release,
	.getxattr = rm_getxattr,
	.listxattr = rm_listxattr,
	.setxattr = rm_setxattr,
	.removexattr = rm_removexattr,
};

const struct fuse_lowlevel_ops *snap_rmount_ops(struct snap_rmount *m)
{
	rm = m;
	return &rm_ops;
}

void snap_rmount_ops_end(void)
{
	rm = NULL;
}
