/*
 * fs/ops.c — the one table of FUSE low-level operations snapfs answers,
 * and the operations on inodes: lookup, forget, getattr, readlink, the
 * read-only xattrs, statfs, init.  Open files are in file.c, names and
 * listings in dir.c, attributes in attr.c and getattr.c, setattr in
 * setattr.c.
 *
 * The tree (fs/DESIGN.md §1):
 *
 *   /                  root: current.db, snapshots/, .snapfs/, staging files
 *   /current.db        the live database: stat = the live file's times,
 *                      owner, mode, and the size of what the asking process
 *                      reads (attr.c); read-only
 *                      opens read a consistent image; O_TRUNC/create = staged
 *                      replace; read-write = edit session; rename onto it =
 *                      verified restore; unlink never deletes it; chmod and
 *                      chown EPERM (setattr.c)
 *   /snapshots/        one entry per snapshot (catalog only) + latest.db;
 *                      create = take or import, unlink = delete, rename =
 *                      exactly the name typed, everything else EROFS/EPERM
 *   /.snapfs/          status.json and log, read-only
 *   /restore/          the drop folder: a file copied or moved into it is
 *                      restored onto current.db and leaves (restoredir.c)
 *   /.Trash-UID/       the freedesktop trash (trash.c): files/, info/,
 *                      expunged/
 *
 * Every handler replies exactly once.  Handlers that change what the kernel
 * has cached reply first and then queue invalidations with the notifier
 * (notify.c), never calling the kernel themselves (engine/PITFALLS.md 16-18).
 * The operations the kernel sends while it holds a directory's lock run inside
 * snap_notify_dir_begin/end for that directory (the dirop_* wrappers at
 * the table), so the notifier never waits in the kernel for a lock held on
 * behalf of this daemon (notify.c says why).
 *
 * Attribute lifetimes: current.db 0 (never stale, engine/PITFALLS.md 5); a
 * snapshot's attributes an hour (immutable), its name a second (snapctl may
 * delete it beside the mount); -journal/-wal/-shm next to a snapshot are
 * cached negative entries for an hour, because SQLite looks for them at every
 * read transaction (engine/PITFALLS.md 20).  Handles on current.db are
 * direct_io, so the page cache never mixes an image, a session copy and an
 * upload; snapshot handles keep their cache; staging files use the page cache
 * normally so a client's -shm can be mmapped (engine/PITFALLS.md 19).
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
#include "xattr.h"

/* Reply with an entry; drop the node reference taken for it if the
 * kernel never got it. */
static void reply_entry(fuse_req_t req, const struct fuse_entry_param *e,
			int is_node)
{
	if (fuse_reply_entry(req, e) != 0 && is_node)
		snap_node_forget(e->ino, 1);
}

/* Reply to a lookup with the entry of st (rc 0, lifetimes 0) or the error
 * rc; node: the node st describes, whose lookup reference is dropped when
 * the kernel does not get it (0: none). */
static void reply_stat_entry(fuse_req_t req, int rc, const struct stat *st,
			     fuse_ino_t node)
{
	struct fuse_entry_param e;

	if (rc != 0) {
		if (node)
			snap_node_forget(node, 1);
		fuse_reply_err(req, -rc);
		return;
	}
	snap_attr_entry(&e, st, 0, 0);
	reply_entry(req, &e, node != 0);
}

/* Look up a linked node and reply with it (one lookup reference). */
static int lookup_node(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct snap_node *n = snap_node_find(parent, name, 1);
	struct stat st;
	double ttl;

	if (!n)
		return 0;
	reply_stat_entry(req, snap_attr_of(n->ino, &st, &ttl), &st, n->ino);
	return 1;
}

/* LOOKUP: the fixed names, snapshots, nodes and the trash. */
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
			if (snap_attr_current_hidden(fuse_req_ctx(req)->pid)) {
				fuse_reply_err(req, ENOENT);
				return;
			}
			rc = snap_attr_current_req(fuse_req_ctx(req)->pid,
						   NULL, &st);
			reply_stat_entry(req, rc, &st, 0);
			return;
		}
		if (snap_rootdir_ino(name)) {
			snap_attr_dir(snap_rootdir_ino(name), &st);
			snap_attr_entry(&e, &st, SNAP_TTL_DIR, 3600);
			reply_entry(req, &e, 0);
			return;
		}
		if (!snap_trashdir_name(name, NULL) &&
		    lookup_node(req, parent, name))
			return;
	}
	if (parent == SNAP_INO_ROOT || snap_ino_is_trash(parent)) {
		/* The trash (trash.c); GLib's .trashinfo files being
		 * written are nodes in info/. */
		if (parent != SNAP_INO_ROOT && lookup_node(req, parent, name))
			return;
		rc = snap_trashdir_lookup(parent, name, &st, &ttl);
		if (rc != 0) {
			fuse_reply_err(req, -rc);
			return;
		}
		snap_attr_entry(&e, &st, ttl, 0);
		reply_entry(req, &e, 0);
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
		reply_stat_entry(req, snap_attr_of(ino, &st, &ttl), &st, 0);
		return;
	}
	if (parent == SNAP_INO_RESTORE) {
		/* Only files still being written (or staged) are there, and
		 * for its writer a file restored a moment ago (attr.c). */
		if (lookup_node(req, parent, name))
			return;
		if (!snap_attr_left_is(parent, name, snap_attr_tgid(
					       fuse_req_ctx(req)->pid))) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		snap_attr_left_stat(&st);
		snap_attr_entry(&e, &st, 0, 0);
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
		 * never, and the kernel may remember that
		 * (engine/PITFALLS.md 20). */
		memset(&e, 0, sizeof(e));
		e.ino = 0;
		e.entry_timeout = SNAP_TTL_NEGATIVE;
		fuse_reply_entry(req, &e);
		return;
	}
	if (strcmp(name, SNAP_NAME_LATEST) == 0) {
		rc = snap_attr_of(SNAP_INO_LATEST, &st, &ttl);
		reply_stat_entry(req, rc, &st, 0);
		return;
	}
	if (lookup_node(req, parent, name))
		return;
	rc = snap_attr_by_name(name, &si);
	if (rc == -ENOENT && snap_attr_left_is(parent, name, snap_attr_tgid(
						       fuse_req_ctx(req)->pid))) {
		/* Imported a moment ago by this process (attr.c). */
		snap_attr_left_stat(&st);
		snap_attr_entry(&e, &st, 0, 0);
		reply_entry(req, &e, 0);
		return;
	}
	if (rc != 0) {
		fuse_reply_err(req, rc == -ENOENT ? ENOENT : -rc);
		return;
	}
	rc = snap_live_stat_owner(snap_fs.live, &live);
	snap_attr_snapshot(&si, snap_ino_of_snapshot(si.id), rc == 0 ? &live : NULL,
		      &st);
	snap_attr_entry(&e, &st, SNAP_TTL_SNAP_ATTR, SNAP_TTL_SNAP_ENTRY);
	reply_entry(req, &e, 0);
}

/* FORGET: the kernel drops nlookup references to ino. */
static void snap_ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	if (ino >= SNAP_INO_NODE_BASE)
		snap_node_forget(ino, nlookup);
	fuse_reply_none(req);
}

/* BATCH_FORGET: FORGET for each inode of the batch. */
static void snap_ll_forget_multi(fuse_req_t req, size_t count,
				 struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		if (forgets[i].ino >= SNAP_INO_NODE_BASE)
			snap_node_forget(forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* GETATTR: through the handle when given, else as the asking process
 * sees it. */
static void snap_ll_getattr(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct snap_handle *h;
	struct stat st;
	double ttl = 0;
	int rc;

	if (ino == SNAP_INO_CURRENT) {
		h = snap_handle_get(fi);
		rc = snap_attr_current_req(fuse_req_ctx(req)->pid, h, &st);
		snap_handle_put(h);
	} else {
		rc = snap_attr_of(ino, &st, &ttl);
	}
	if (rc != 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ttl);
}

/* READLINK: latest.db names the newest snapshot. */
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

/* The snapshot behind ino (a snapshot or a committed request), or 0. */
static int64_t xattr_snapshot(fuse_ino_t ino)
{
	if (snap_ino_is_snapshot(ino))
		return snap_ino_snapshot_id(ino);
	if (ino >= SNAP_INO_NODE_BASE)
		return snap_attr_pending_id(ino);
	return 0;
}

/* The tables attribute from the store's catalog (xattr.h). */
static int xattr_tables(void *ctx, const snap_info *si, char **out)
{
	snap_err err;

	(void)ctx;
	snap_err_clear(&err);
	return snap_store_tables_json(snap_fs.store, si->id, out, &err);
}

/* GETXATTR: a snapshot's user.snapfs.* attributes from the catalog. */
static void snap_ll_getxattr(fuse_req_t req, fuse_ino_t ino,
			     const char *name, size_t size)
{
	int64_t id = xattr_snapshot(ino);
	char *value = NULL;
	snap_info si;
	int rc;

	/* ls -l asks every file for security.selinux and an ACL: answered
	 * without the catalog row (one query each, 10,000 files a listing). */
	if (!id || strncmp(name, SNAP_XATTR_PREFIX,
			   strlen(SNAP_XATTR_PREFIX)) != 0) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = snap_attr_info(id, &si);
	if (rc == 0)
		rc = snap_xattr_value(&si, name, xattr_tables, NULL, &value);
	if (rc != 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	snap_xattr_reply(req, value, size);
	free(value);
}

/* LISTXATTR: the names of a snapshot's user.snapfs.* attributes. */
static void snap_ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	snap_xattr_list_reply(req, xattr_snapshot(ino) != 0, size);
}

/* SETXATTR: refused (EROFS on a snapshot, ENOTSUP elsewhere). */
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

/* REMOVEXATTR: refused (EROFS on a snapshot, ENOTSUP elsewhere). */
static void snap_ll_removexattr(fuse_req_t req, fuse_ino_t ino,
				const char *name)
{
	(void)name;
	fuse_reply_err(req, xattr_snapshot(ino) ? EROFS : ENOTSUP);
}

/* STATFS: the store's filesystem. */
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

/* INIT: the capabilities the daemon asks of the kernel. */
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
	 * path (engine/PITFALLS.md 4). */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

/*
 * Operations the kernel sends with a directory locked: the directory is
 * busy for the notifier until the handler replied (notify.c).
 */
#define DIROP_BUSY(dir) snap_notify_dir_begin(snap_fs.notify, (dir))
#define DIROP_DONE(dir) snap_notify_dir_end(snap_fs.notify, (dir))

/* LOOKUP with its directory marked busy for the notifier. */
static void dirop_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	DIROP_BUSY(parent);
	snap_ll_lookup(req, parent, name);
	DIROP_DONE(parent);
}

/* READDIR with its directory marked busy for the notifier. */
static void dirop_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, struct fuse_file_info *fi)
{
	DIROP_BUSY(ino);
	snap_ll_readdir(req, ino, size, off, fi);
	DIROP_DONE(ino);
}

/* READDIRPLUS with its directory marked busy for the notifier. */
static void dirop_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			      off_t off, struct fuse_file_info *fi)
{
	DIROP_BUSY(ino);
	snap_ll_readdirplus(req, ino, size, off, fi);
	DIROP_DONE(ino);
}

/* CREATE with its directory marked busy for the notifier. */
static void dirop_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			 mode_t mode, struct fuse_file_info *fi)
{
	DIROP_BUSY(parent);
	snap_ll_create(req, parent, name, mode, fi);
	DIROP_DONE(parent);
}

/* UNLINK with its directory marked busy for the notifier. */
static void dirop_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	DIROP_BUSY(parent);
	snap_ll_unlink(req, parent, name);
	DIROP_DONE(parent);
}

/* RENAME with both directories marked busy for the notifier. */
static void dirop_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned int flags)
{
	DIROP_BUSY(parent);
	DIROP_BUSY(newparent);
	snap_ll_rename(req, parent, name, newparent, newname, flags);
	DIROP_DONE(newparent);
	DIROP_DONE(parent);
}

const struct fuse_lowlevel_ops snap_ll_ops = {
	.init = snap_ll_init,
	.lookup = dirop_lookup,
	.forget = snap_ll_forget,
	.forget_multi = snap_ll_forget_multi,
	.getattr = snap_ll_getattr,
	.setattr = snap_ll_setattr,
	.readlink = snap_ll_readlink,
	.mknod = snap_ll_mknod,
	.mkdir = snap_ll_mkdir,
	.unlink = dirop_unlink,
	.rmdir = snap_ll_rmdir,
	.symlink = snap_ll_symlink,
	.rename = dirop_rename,
	.link = snap_ll_link,
	.open = snap_ll_open,
	.read = snap_ll_read,
	.write = snap_ll_write,
	.flush = snap_ll_flush,
	.release = snap_ll_release,
	.fsync = snap_ll_fsync,
	.opendir = snap_ll_opendir,
	.readdir = dirop_readdir,
	.readdirplus = dirop_readdirplus,
	.releasedir = snap_ll_releasedir,
	.fsyncdir = snap_ll_fsyncdir,
	.statfs = snap_ll_statfs,
	.setxattr = snap_ll_setxattr,
	.getxattr = snap_ll_getxattr,
	.listxattr = snap_ll_listxattr,
	.removexattr = snap_ll_removexattr,
	.create = dirop_create,
};
