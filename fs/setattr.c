/*
 * fs/setattr.c — SETATTR: what a truncation, a chmod, a chown or a change
 * of times does to each kind of file.
 *
 *   current.db   a truncation through a handle cuts its upload or its
 *                session copy (to zero: the handle becomes an upload);
 *                its mode and owner belong to its administrator and never
 *                change through the mount (fs/DESIGN.md §1): what copying
 *                tools set from the process writing it is accepted and
 *                ignored, anything else is EPERM;
 *   a staging    its backing file truncated, its times set, its mode and
 *   node         owner recorded (a file in restore/ never wider than the
 *                live database);
 *   a snapshot   truncated (new bytes for the request's next close; once
 *   request      it became a snapshot, only through a handle of its own,
 *                else EROFS); mode, owner and times kept;
 *   a snapshot   EROFS; the trash: what trash.c allows; the fixed files
 *                and directories: EPERM.
 *
 * Thread-safety: as ops.c's; a handle's state under its lock, nodes under
 * fs->lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

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

/*
 * chmod and chown of current.db.  The live file's mode and owner decide who
 * may read and write the database; they belong to its administrator, and
 * the mount never changes them as a side effect.  A restore keeps them, and
 * the tools that copy a file onto current.db then set the *source's* mode
 * on it: cp -p and mv from another filesystem while their upload is open,
 * rsync --inplace -p right after its close, gio copy by path after its
 * rename (which no handle announces).  Applying those would hand the live
 * database the mode of whatever was restored — a snapshot's 0400 would
 * make it read-only for its application.  So:
 *   - from the process writing current.db (an upload or edit session open,
 *     or closed a moment ago): the copy's mode, accepted and ignored;
 *   - no change to what the live file has: nothing to do;
 *   - anything else: EPERM, with the real path to change in the log.
 */
static int setattr_current_owner(pid_t pid, const struct stat *attr,
				 int to_set)
{
	struct stat live;
	int change = 0, rc;

	to_set &= FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID;
	if (!to_set || snap_attr_current_writer(pid))
		return 0;
	rc = snap_live_stat(snap_fs.live, &live);
	if (rc != 0)
		return rc;
	if ((to_set & FUSE_SET_ATTR_MODE) &&
	    (attr->st_mode & 07777) != (live.st_mode & 07777))
		change = 1;
	if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != live.st_uid)
		change = 1;
	if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != live.st_gid)
		change = 1;
	if (!change)
		return 0;
	snap_log(LOG_INFO, "%s of current.db refused: the live database's "
		 "mode and owner belong to its administrator (change them on "
		 "%s itself); restores through the mount keep them",
		 (to_set & FUSE_SET_ATTR_MODE) ? "chmod" : "chown",
		 snap_fs.db_path);
	return -EPERM;
}

/* SETATTR of a dynamic node: truncation and mode changes of its backing
 * file. */
static int setattr_node(fuse_ino_t ino, struct stat *attr, int to_set,
			struct snap_handle *h)
{
	struct snap_node *n;
	char path[PATH_MAX];
	int pending, committed, rc = 0;
	/* A file in restore/ is never wider than the live database (asked
	 * before fs->lock: it stats the live file). */
	mode_t rmode = (to_set & FUSE_SET_ATTR_MODE) ?
		       snap_restoredir_mode(attr->st_mode) : 0;

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
			n->mode = S_IFREG | (n->parent == SNAP_INO_RESTORE ?
					     rmode : (attr->st_mode & 07777));
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
				snap_pending_wrote(h);
			else if (rc == 0 && h->kind == SNAP_H_RESTORE)
				h->dirty = 1;
			pthread_mutex_unlock(&h->lock);
		} else {
			rc = truncate(path, attr->st_size) ? -errno : 0;
			if (rc == 0 && pending) {
				/* New bytes for the request's next close. */
				pthread_mutex_lock(&snap_fs.lock);
				n = snap_node_get_locked(ino);
				if (n)
					n->dirty = 1;
				pthread_mutex_unlock(&snap_fs.lock);
			}
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

/* SETATTR: truncation of current.db and nodes; times and modes where
 * harmless. */
void snap_ll_setattr(fuse_req_t req, fuse_ino_t ino,
			    struct stat *attr, int to_set,
			    struct fuse_file_info *fi)
{
	struct snap_handle *h = snap_handle_get(fi);
	struct stat st;
	double ttl = 0;
	int rc = 0;

	if (fi && !h) {
		rc = -EBADF;
	} else if (ino == SNAP_INO_CURRENT) {
		pid_t pid = fuse_req_ctx(req)->pid;

		rc = setattr_current_owner(pid, attr, to_set);
		if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE))
			rc = setattr_current_size(h, attr->st_size);
		/* Times of the live file are its applications': accepted
		 * and ignored, so cp -p, mv, rsync and GIO finish. */
		if (rc == 0)
			rc = snap_attr_current_req(pid, h, &st);
	} else if (snap_ino_is_snapshot(ino) || ino == SNAP_INO_LATEST) {
		rc = -EROFS;
	} else if (snap_ino_is_trash(ino)) {
		rc = snap_trashdir_setattr(ino, attr, to_set, &st, &ttl);
	} else if (ino == SNAP_INO_LEFT) {
		/* A file restored from restore/ or imported a moment ago:
		 * the mode and times its copying tool sets afterwards are
		 * ignored; the mode comes last, and then the name is free
		 * again for that process (attr.c). */
		snap_attr_left_stat(&st);
		if (to_set & FUSE_SET_ATTR_MODE)
			snap_attr_left_done(snap_attr_tgid(
						    fuse_req_ctx(req)->pid));
	} else if (ino < SNAP_INO_NODE_BASE) {
		rc = -EPERM;
	} else {
		rc = setattr_node(ino, attr, to_set, h);
		if (rc == 0)
			rc = snap_attr_of(ino, &st, &ttl);
	}
	if (rc != 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ttl);
	snap_handle_put(h);
}
