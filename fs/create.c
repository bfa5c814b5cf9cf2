/*
 * fs/create.c — CREATE: what a new name means where it is made.
 *
 *   current.db                  an upload (a staged replace, staging.c):
 *                               cp --remove-destination and mv across
 *                               filesystems create it after an unlink;
 *   a name in the root          a staging file (rsync's .x.db.XXXXXX,
 *                               GIO's .goutputstream-XXXXXX, a client's
 *                               -journal/-wal/-shm); EEXIST for a fixed
 *                               directory, EPERM for .Trash-UID;
 *   a name in snapshots/        a snapshot request (pending.c); EEXIST
 *                               for a snapshot's name, EROFS for a side
 *                               file or GIO's temporary copy;
 *   a name in restore/          a file to restore or a tool's temporary
 *                               file (restoredir.c);
 *   info/X.trashinfo            GLib's trash info being written (trash.c);
 * anything else is refused (EACCES in .snapfs/, ENOTDIR elsewhere).  The
 * new node is open in the handle replied with (snap_file_open_node).
 *
 * Thread-safety: as file.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

/* Reply to a create with node n open in handle h. */
static void reply_create(fuse_req_t req, struct fuse_file_info *fi,
			 struct snap_handle *h, const struct stat *st,
			 int is_node)
{
	struct fuse_entry_param e;

	snap_attr_entry(&e, st, 0, 0);
	snap_handle_set(fi, h);
	if (fuse_reply_create(req, &e, fi) != 0) {
		snap_handle_release(h, 0);  /* interrupted: never released */
		if (is_node)
			snap_node_forget(st->st_ino, 1);
	}
}

/* Create current.db after an unlink: a staged replace. */
static void create_current(fuse_req_t req, struct fuse_file_info *fi)
{
	struct snap_handle *h = snap_handle_new(SNAP_H_UPLOAD);
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
		snap_handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	if (snap_attr_current(&st) != 0) {
		memset(&st, 0, sizeof(st));
		st.st_ino = SNAP_INO_CURRENT;
		st.st_mode = S_IFREG | 0600;
		st.st_nlink = 1;
	}
	st.st_size = 0;
	st.st_blocks = 0;
	fi->direct_io = 1;
	snap_attr_current_opened(h, fuse_req_ctx(req)->pid, NULL);
	reply_create(req, fi, h, &st, 0);
}

/* Create a node (staging file in the root, request in snapshots/). */
static void create_node(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	enum snap_node_kind kind = parent == SNAP_INO_SNAPDIR ?
		SNAP_NODE_PENDING : SNAP_NODE_STAGING;
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
				     kind == SNAP_NODE_PENDING ? 0644 :
				     parent == SNAP_INO_RESTORE ?
				     snap_restoredir_mode(mode) : mode,
				     ctx->uid, ctx->gid);
		if (!n) {
			rc = errno;
			snap_log(LOG_ERR, "creating staging file for \"%s\": %s",
				 name, strerror(rc));
			fuse_reply_err(req, rc);
			return;
		}
	}
	rc = snap_file_open_node(n->ino, fi, &h);
	if (rc == 0)
		rc = snap_attr_of(n->ino, &st, &ttl);
	if (rc != 0) {
		if (h)
			snap_handle_release(h, 0);
		snap_node_forget(n->ino, 1);
		fuse_reply_err(req, -rc);
		return;
	}
	reply_create(req, fi, h, &st, 1);
}

/* CREATE: current.db after an unlink is an upload; another name in the
 * root a staging file; a name in snapshots/ a snapshot request. */
void snap_ll_create(fuse_req_t req, fuse_ino_t parent,
			   const char *name, mode_t mode,
			   struct fuse_file_info *fi)
{
	if (parent == SNAP_INO_ROOT) {
		if (strcmp(name, SNAP_NAME_CURRENT) == 0) {
			create_current(req, fi);
			return;
		}
		if (snap_rootdir_ino(name)) {
			fuse_reply_err(req, EEXIST);
			return;
		}
		if (snap_trashdir_name(name, NULL)) {
			fuse_reply_err(req, EPERM);   /* a trash is a dir */
			return;
		}
		create_node(req, parent, name, mode, fi);
		return;
	}
	if (parent == SNAP_INO_RESTORE) {
		/* A file to restore, or a tool's temporary file. */
		create_node(req, parent, name, mode, fi);
		return;
	}
	if (snap_ino_is_trash(parent)) {
		/* GLib's .trashinfo (trash.c); private like the store. */
		int rc = snap_trashdir_may_create(parent, name);

		if (rc != 0)
			fuse_reply_err(req, -rc);
		else
			create_node(req, parent, name, 0600, fi);
		return;
	}
	if (parent == SNAP_INO_SNAPDIR) {
		snap_info si;
		if (strcmp(name, SNAP_NAME_LATEST) == 0 ||
		    snap_attr_by_name(name, &si) == 0) {
			fuse_reply_err(req, EEXIST);
			return;
		}
		/* SQLite's side files and GIO's temporary copies are never
		 * snapshot requests (engine/PITFALLS.md 20). */
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
