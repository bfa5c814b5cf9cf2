/*
 * fs/dir.c — names: listing directories, and every operation that adds,
 * removes or renames a name.
 *
 * Listings are captured at opendir and served by offset, with attributes
 * (READDIRPLUS, so `ls -l` of ten thousand snapshots is one pass over the
 * catalog, never a snapshot's pages).
 *
 *   unlink current.db            never deletes the live database: the name
 *                                is free for the unlinking process's next
 *                                create (cp --remove-destination, mv across
 *                                filesystems), a staged replace;
 *   unlink snapshots/X           deletes the snapshot (the engine reclaims
 *                                pages no other snapshot uses);
 *   rename snapshots/X, or a staging file, onto current.db
 *                                a verified restore; X stays listed; a
 *                                staging file X-wal beside X is read as
 *                                X's WAL (cp src.db src.db-wal MNT/);
 *   rename within snapshots/     the snapshot takes exactly the name typed
 *                                (time of creation in mtime and xattrs), or
 *                                the rename is refused with a logged reason:
 *                                never another name, never a replacement;
 *   rename root -> snapshots/    EXDEV: mv then copies, which imports;
 *   restore/                     the drop folder (restoredir.c): lists only
 *                                files being written there; a rename into
 *                                it restores;
 *   anything in or out of .Trash-UID/
 *                                the freedesktop trash (trash.c): the
 *                                Delete key, Restore, emptying; but a
 *                                trashed snapshot into restore/ or onto
 *                                current.db is restored and stays there;
 *   mkdir, symlink, link, mknod  EPERM (but .Trash-UID, trash.c).
 *
 * After a rename onto current.db the kernel has moved the source's dentry
 * onto the name current.db (engine/PITFALLS.md 16): both names are invalidated
 * after the reply, from the notifier thread.  After every change of the
 * catalog (a delete, a relabel, a restore's safety snapshot) the catalog
 * watcher is told, after the reply, so snapshots/' time and the kernel's
 * entries follow (watch.c).
 *
 * Thread-safety: nodes are held by an open reference while used outside
 * snap_fs.lock; restores are serialized in staging.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

/* How long the name current.db stays free for the process that unlinked
 * it (cp --remove-destination and mv across filesystems create it again
 * at once). */
#define CURRENT_UNLINK_NS (10LL * 1000000000LL)

struct dir_build {
	struct snap_dirent *ents;
	size_t n, cap;
	int oom;
};

/* A new entry called name at the end of the listing b builds; NULL when
 * out of memory. */
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

/* dir_add for trash.c's listings. */
static struct snap_dirent *dir_add_trash(void *ctx, const char *name)
{
	return dir_add(ctx, name);
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

/* Capture the listing of directory ino as process pid sees it. */
static int dir_fill(fuse_ino_t ino, pid_t pid, struct dir_build *b)
{
	struct snap_dirent *d;
	struct stat live;
	snap_info *list = NULL;
	size_t n = 0, i, first_node;
	int have_live, rc;
	double ttl;

	if ((d = dir_add(b, "."))) {
		if (snap_ino_is_trash(ino))
			snap_trashdir_attr(ino, &d->st, &ttl);
		else
			snap_attr_dir(ino, &d->st);
	}
	if ((d = dir_add(b, ".."))) {
		snap_attr_dir(SNAP_INO_ROOT, &d->st);
	}
	if (ino == SNAP_INO_META) {
		if ((d = dir_add(b, SNAP_NAME_STATUS)) &&
		    snap_attr_of(SNAP_INO_STATUS, &d->st, &ttl) != 0)
			b->n--;
		if ((d = dir_add(b, SNAP_NAME_LOG)) &&
		    snap_attr_of(SNAP_INO_LOG, &d->st, &ttl) != 0)
			b->n--;
		return b->oom ? -ENOMEM : 0;
	}
	if (ino == SNAP_INO_ROOT) {
		const char *dname;
		fuse_ino_t dino;

		if (!snap_attr_current_hidden(pid) && (d = dir_add(b, SNAP_NAME_CURRENT))
		    && snap_attr_current(&d->st) != 0)
			b->n--;
		for (i = 0; (dname = snap_rootdir_at(i, &dino)); i++) {
			if ((d = dir_add(b, dname))) {
				snap_attr_dir(dino, &d->st);
				d->attr_ttl = SNAP_TTL_DIR;
				d->entry_ttl = 3600;
			}
		}
		snap_trashdir_list(ino, dir_add_trash, b);
	} else if (snap_ino_is_trash(ino)) {
		rc = snap_trashdir_list(ino, dir_add_trash, b);
		if (rc != 0)
			return rc;
	} else if (ino == SNAP_INO_SNAPDIR) {
		snap_err err;
		snap_err_clear(&err);
		rc = snap_store_list(snap_fs.store, &list, &n, &err);
		if (rc != 0) {
			snap_log(LOG_ERR, "listing snapshots: %s", err.msg);
			return rc;
		}
		have_live = snap_live_stat_owner(snap_fs.live, &live) == 0;
		for (i = 0; i < n; i++) {
			if (list[i].trash != SNAP_TRASH_NONE)
				continue;     /* in .Trash-UID/ (trash.c) */
			d = dir_add(b, list[i].name);
			if (!d)
				break;
			snap_attr_snapshot(&list[i], snap_ino_of_snapshot(list[i].id),
				      have_live ? &live : NULL, &d->st);
			d->attr_ttl = SNAP_TTL_SNAP_ATTR;
			d->entry_ttl = SNAP_TTL_SNAP_ENTRY;
		}
		/* latest.db: the newest manual, auto or import snapshot not
		 * in the trash (the list is in the order snap_store_find
		 * uses). */
		for (i = n; i > 0 && (list[i - 1].trash != SNAP_TRASH_NONE ||
				      !snap_kind_is_latest(list[i - 1].kind));
		     i--)
			;
		if (i > 0 && (d = dir_add(b, SNAP_NAME_LATEST)))
			snap_attr_symlink(list[i - 1].name, &d->st);
		free(list);
	}
	first_node = b->n;
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_foreach_locked(ino, dir_collect_node, b);
	pthread_mutex_unlock(&snap_fs.lock);
	for (i = first_node; i < b->n; i++)
		if (snap_attr_of(b->ents[i].node->ino, &b->ents[i].st, &ttl) != 0)
			b->ents[i].st.st_ino = 0;   /* vanished: skipped */
	return b->oom ? -ENOMEM : 0;
}

/* OPENDIR: the listing is captured here, once. */
void snap_ll_opendir(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct dir_build b = { 0 };
	struct snap_handle *h;
	int rc;

	if (!snap_ino_is_dir(ino) && !snap_trashdir_is_dir(ino)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	h = snap_handle_new(SNAP_H_DIR);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = dir_fill(ino, fuse_req_ctx(req)->pid, &b);
	h->ents = b.ents;
	h->nents = b.n;
	if (rc != 0) {
		snap_handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	snap_handle_set(fi, h);
	if (fuse_reply_open(req, fi) != 0)
		snap_handle_free(h);
}

/* READDIR(PLUS) from the captured listing; offsets are indexes + 1.
 * Entries given with attributes count as lookups of dynamic nodes. */
static void dir_read(fuse_req_t req, size_t size, off_t off,
		     struct fuse_file_info *fi, int plus)
{
	struct snap_handle *h = snap_handle_get(fi);
	char *buf = malloc(size);
	size_t used = 0, i;

	if (!buf || !h) {
		fuse_reply_err(req, buf ? EBADF : ENOMEM);
		free(buf);
		snap_handle_put(h);
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
			snap_attr_entry(&e, &d->st, d->attr_ttl, d->entry_ttl);
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
	snap_handle_put(h);
}

/* READDIR: entries of the listing captured at opendir, from off. */
void snap_ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	dir_read(req, size, off, fi, 0);
}

/* READDIRPLUS: the same with attributes (a lookup reference per node). */
void snap_ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
				off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	dir_read(req, size, off, fi, 1);
}

/* RELEASEDIR: free the captured listing. */
void snap_ll_releasedir(fuse_req_t req, fuse_ino_t ino,
			       struct fuse_file_info *fi)
{
	(void)ino;
	snap_handle_free(snap_handle_take(fi));
	fuse_reply_err(req, 0);
}

/* FSYNCDIR: nothing to sync (the catalog commits itself). */
void snap_ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			     struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* UNLINK: see the table at the top. */
void snap_ll_unlink(fuse_req_t req, fuse_ino_t parent,
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
	if (snap_ino_is_trash(parent) && !snap_node_find(parent, name, 0)) {
		/* The trash's own (trash.c); GLib's .trashinfo files being
		 * written are nodes, unlinked below. */
		struct snap_trash_inval inv = { 0 };

		rc = snap_trashdir_unlink(parent, name, &inv);
		fuse_reply_err(req, -rc);
		snap_trashdir_notify(&inv);
		if (rc == 0)
			snap_watch_changed();
		return;
	}
	if (parent == SNAP_INO_META ||
	    (parent > SNAP_INO_SNAPDIR && parent != SNAP_INO_RESTORE &&
	     !snap_ino_is_trash(parent)) ||
	    strcmp(name, SNAP_NAME_LATEST) == 0 ||
	    (parent == SNAP_INO_ROOT && snap_rootdir_ino(name))) {
		fuse_reply_err(req, EPERM);
		return;
	}
	n = snap_node_find_open(parent, name);
	if (n) {
		snap_node_close_leaving(n, name, 1);
		fuse_reply_err(req, 0);
		return;
	}
	if (parent != SNAP_INO_SNAPDIR) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rc = snap_attr_by_name(name, &si);
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
	if (rc == 0)
		snap_watch_changed();
}

/*
 * Rename within snapshots/: the snapshot takes exactly newname (the engine
 * checks it can be a snapshot's name), or the rename is refused, the
 * reason logged: EEXIST for a name another snapshot or a request has (a
 * rename never replaces), EPERM for latest.db, EINVAL for a name that
 * cannot be a snapshot's.  A request not taken yet is renamed as such.
 */
static int rename_in_snapshots(const char *name, const char *newname)
{
	struct snap_node *n, *other;
	snap_info si, out;
	snap_err err;
	int64_t id = 0;
	int rc;

	if (strcmp(name, SNAP_NAME_LATEST) == 0 ||
	    strcmp(newname, SNAP_NAME_LATEST) == 0) {
		snap_log(LOG_INFO, "rename of %s to %s refused: latest.db is "
			 "the link to the newest snapshot, not a snapshot's "
			 "name", name, newname);
		return -EPERM;
	}
	if (strcmp(name, newname) == 0)
		return 0;
	other = snap_node_find_open(SNAP_INO_SNAPDIR, newname);
	if (other) {
		snap_node_close(other);
		snap_log(LOG_INFO, "rename of %s to %s refused: a snapshot "
			 "is being taken under that name", name, newname);
		return -EEXIST;
	}
	n = snap_node_find_open(SNAP_INO_SNAPDIR, name);
	if (n) {
		/* A request not taken yet: rename the request, unless a
		 * snapshot has the name (two entries would share it). */
		int taken = snap_attr_by_name(newname, &si) == 0;

		int moved = 0;

		rc = 0;
		pthread_mutex_lock(&snap_fs.lock);
		if (n->linked && n->snap_id == 0 && !taken) {
			snap_node_rename_locked(n, newname);
			moved = 1;
		} else if (n->snap_id == 0) {
			rc = n->linked ? -EEXIST : -ENOENT;
		} else {
			id = n->snap_id;
		}
		pthread_mutex_unlock(&snap_fs.lock);
		/* rsync's temporary file renamed onto its name: imported
		 * now, the import's verdict the rename's. */
		if (moved)
			rc = snap_pending_renamed(n, name);
		snap_node_close(n);
		if (!id) {
			if (rc == -EEXIST)
				snap_log(LOG_INFO, "rename of %s to %s "
					 "refused: snapshot %s exists",
					 name, newname, newname);
			return rc;
		}
		rc = snap_attr_info(id, &si);
	} else {
		rc = snap_attr_by_name(name, &si);
	}
	if (rc != 0)
		return rc;
	snap_err_clear(&err);
	rc = snap_store_rename(snap_fs.store, si.id, newname, &out, &err);
	if (rc != 0) {
		snap_log(rc == -EINVAL || rc == -EEXIST || rc == -ENAMETOOLONG ?
			 LOG_INFO : LOG_ERR, "rename of snapshot %s to %s "
			 "refused: %s", si.name, newname, err.msg);
		return rc;
	}
	snap_log(LOG_INFO, "snapshot %s is now %s", si.name, out.name);
	return 0;
}

/*
 * A rename with the trash on either side (trash.c).  A restore to another
 * name than the snapshot's own is a restore, then a rename within
 * snapshots/ (trash.c checked before that the name is free).
 */
static int rename_trash(fuse_ino_t parent, const char *name,
			fuse_ino_t newparent, const char *newname,
			unsigned flags, struct snap_trash_inval *inv)
{
	snap_info si;
	int rc = snap_trashdir_rename(parent, name, newparent, newname, flags,
				      &si, inv);

	if (rc == 0 && newparent == SNAP_INO_SNAPDIR &&
	    strcmp(si.name, newname) != 0)
		rc = rename_in_snapshots(si.name, newname);
	return rc;
}

/* RENAME: a restore, a snapshot renamed, a staging file renamed, the
 * trash, or a refusal. */
void snap_ll_rename(fuse_req_t req, fuse_ino_t parent,
			   const char *name, fuse_ino_t newparent,
			   const char *newname, unsigned int flags)
{
	int from_trash, rc;

	if (flags & RENAME_EXCHANGE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* A trashed snapshot into restore/ or onto current.db is a restore
	 * (below, as from snapshots/); every other rename with the trash on
	 * either side is the trash's. */
	from_trash = snap_trashdir_holds_snapshots(parent) &&
		     (newparent == SNAP_INO_RESTORE ||
		      (newparent == SNAP_INO_ROOT &&
		       strcmp(newname, SNAP_NAME_CURRENT) == 0));
	if (!from_trash && (snap_ino_is_trash(parent) ||
			    snap_ino_is_trash(newparent))) {
		struct snap_trash_inval inv;

		rc = rename_trash(parent, name, newparent, newname, flags,
				  &inv);
		fuse_reply_err(req, -rc);
		snap_trashdir_notify(&inv);
		if (rc == 0)
			snap_watch_changed();
		return;
	}
	if (parent == SNAP_INO_META || newparent == SNAP_INO_META ||
	    (parent > SNAP_INO_SNAPDIR && parent != SNAP_INO_RESTORE &&
	     !from_trash) ||
	    (newparent > SNAP_INO_SNAPDIR && newparent != SNAP_INO_RESTORE)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (newparent == SNAP_INO_ROOT &&
	    strcmp(newname, SNAP_NAME_CURRENT) == 0) {
		if (flags & RENAME_NOREPLACE) {
			fuse_reply_err(req, EEXIST);
			return;
		}
		rc = snap_apply_from(parent, name, NULL);
		fuse_reply_err(req, -rc);
		/* The kernel moved the source's dentry onto current.db
		 * (engine/PITFALLS.md 16); a failed rename may have left the
		 * kernel's size of current.db stale too.  Forget both. */
		snap_notify_current(snap_fs.notify);
		snap_notify_entry(snap_fs.notify, parent, name);
		snap_watch_changed();   /* the safety snapshot */
		return;
	}
	if (parent == SNAP_INO_RESTORE || newparent == SNAP_INO_RESTORE) {
		snap_restoredir_rename(req, parent, name, newparent, newname,
				       flags);
		return;
	}
	/* current.db and the root's fixed directories stay where they are
	 * (the directories answered ENOENT: no staging file had the name). */
	if (parent == SNAP_INO_ROOT && (strcmp(name, SNAP_NAME_CURRENT) == 0 ||
					snap_rootdir_ino(name))) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (parent == SNAP_INO_SNAPDIR && newparent == SNAP_INO_SNAPDIR) {
		/* The kernel moves the dentry itself: the name it gets is
		 * the snapshot's name, so there is nothing to forget. */
		rc = rename_in_snapshots(name, newname);
		fuse_reply_err(req, -rc);
		if (rc == 0)
			snap_watch_changed();
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
	if (snap_rootdir_ino(newname) || snap_trashdir_name(newname, NULL)) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((flags & RENAME_NOREPLACE) &&
	    snap_node_find(SNAP_INO_ROOT, newname, 0) != NULL) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	rc = snap_node_rename(SNAP_INO_ROOT, name, newname);
	fuse_reply_err(req, -rc);
}

/* MKDIR: only the trash's (trash.c): GLib makes .Trash-UID, info/ and
 * files/ when it first trashes something. */
void snap_ll_mkdir(fuse_req_t req, fuse_ino_t parent,
			  const char *name, mode_t mode)
{
	struct fuse_entry_param e;
	struct stat st;
	int rc;

	(void)mode;
	rc = snap_trashdir_mkdir(parent, name, fuse_req_ctx(req)->uid, &st);
	if (rc != 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	snap_attr_entry(&e, &st, SNAP_TTL_DIR, 0);
	fuse_reply_entry(req, &e);
}

/* MKNOD: refused (files are made by CREATE). */
void snap_ll_mknod(fuse_req_t req, fuse_ino_t parent,
			  const char *name, mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EPERM);
}

/* RMDIR: only an empty .Trash-UID (trash.c). */
void snap_ll_rmdir(fuse_req_t req, fuse_ino_t parent,
			  const char *name)
{
	fuse_reply_err(req, -snap_trashdir_rmdir(parent, name));
}

/* SYMLINK: refused (the mount holds no links of its own). */
void snap_ll_symlink(fuse_req_t req, const char *link,
			    fuse_ino_t parent, const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EPERM);
}

/* LINK: refused (no hard links in the mount). */
void snap_ll_link(fuse_req_t req, fuse_ino_t ino,
			 fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EPERM);
}
