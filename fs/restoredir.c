/*
 * fs/restoredir.c — restore/, the drop folder: a restore a person can do
 * with nothing but a file manager.
 *
 * A snapshot or any database file copied or moved into restore/ is
 * restored onto the live database, exactly as a copy or a rename onto
 * current.db would be, and does not stay there.  What the gestures send:
 *
 *   cp X restore/, gio copy, a file manager's paste, mv from another
 *   filesystem
 *        CREATE restore/X, WRITE..., maybe SETATTR, FLUSH, RELEASE.  A write
 *        handle on a plain name is an upload with a name (SNAP_H_RESTORE):
 *        the upload machinery of current.db (staging.c, snap_upload_*)
 *        restores its bytes at FLUSH, so the verdict is what close() — and
 *        cp, mv, gio — report, and the name leaves restore/ right there.
 *        A close before any byte came (the shell's `cat x > restore/y`
 *        closes a first descriptor early) fails as an empty upload does and
 *        keeps the name for the bytes to come; a file that never gets a
 *        byte leaves at its RELEASE.
 *   rsync X restore/
 *        CREATE restore/.X.XXXXXX, WRITE..., FLUSH, SETATTR, RENAME onto
 *        restore/X.  Dot-names are staging files, as in the root: nothing
 *        happens at their FLUSH; a rename onto a plain name restores, and
 *        its verdict is what rename() returns.
 *   cp X X-wal restore/, in either order
 *        a WAL database and its -wal: each file arriving whole (its
 *        FLUSH, or a rename onto its name) goes to restorewal.c, which
 *        restores X with its WAL whichever comes first; a -shm or a
 *        -journal is ignored there.
 *   mv snapshots/X restore/, gio move (a rename within the mount)
 *        restores snapshot X as `mv snapshots/X current.db` does; X stays
 *        in snapshots/.
 *
 * One restore path: every gesture ends in snap_apply_file or
 * snap_apply_snapshot (through snap_upload_flush or snap_apply_from),
 * the very calls a copy or rename onto current.db makes: the same
 * verification, safety snapshot, rollback, log lines and events ("restored
 * current.db from the file written to restore/X ...").  A refusal (not a
 * database, corrupt, another restore running) fails the close() or the
 * rename with the engine's errno, is logged and recorded in the event
 * history, and leaves the live database untouched; the file leaves
 * restore/ all the same (the source is still where it came from).
 *
 * The kernel is told after the reply, from the notifier: the name is gone
 * (a file of restore/ by notify_delete: the kernel drops it, and a watch
 * on the file hears IN_DELETE_SELF; a snapshot renamed in by invalidation
 * only, since it stays in snapshots/), current.db changed, and after a
 * rename the source's own name is to be looked up again (the kernel moved
 * its dentry).  The catalog watcher hears of the
 * safety snapshot (watch.c).
 *
 * Safety: files here are nodes (inode.c) backed by private files in the
 * staging directory (created 0600, O_EXCL, in a 0700 directory reached
 * through its descriptor); the mode they show is never wider than the
 * live database's, and restore/ itself admits only those who may write the
 * live database (its owner; its group or others when the file lets them
 * write).
 *
 * Thread-safety: node fields under fs->lock; a handle's state under its
 * lock, held by the caller (file.c) around flush and release.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

/* A created file's mode: what was asked, never wider than the live
 * database's. */
mode_t snap_restoredir_mode(mode_t asked)
{
	struct stat live;
	mode_t cap = 0600;

	if (snap_live_stat_owner(snap_fs.live, &live) == 0)
		cap = live.st_mode & 0666;
	return asked & cap;
}

/* 1 when name in restore/ is a staging name (a dot-name). */
int snap_restoredir_is_staging(const char *name)
{
	return name[0] == '.';
}

/* A write handle on a plain name in restore/ becomes SNAP_H_RESTORE. */
void snap_restoredir_opened(struct snap_handle *h, int flags)
{
	char name[NAME_MAX + 1];

	if ((flags & O_ACCMODE) == O_RDONLY)
		return;           /* a reader (a file manager sniffing) */
	pthread_mutex_lock(&snap_fs.lock);
	snprintf(name, sizeof(name), "%s", h->node->name);
	pthread_mutex_unlock(&snap_fs.lock);
	if (snap_restoredir_is_staging(name))
		return;
	snap_restorewal_arriving(name);
	h->kind = SNAP_H_RESTORE;
	snprintf(h->path, sizeof(h->path), "%s", h->node->path);
	snprintf(h->target, sizeof(h->target), "%s/%s", SNAP_NAME_RESTORE,
		 name);
	h->dirty = 0;
	h->attempted = 0;
	h->last_rc = 0;
}

/* Take node n's name out of restore/ (once); *gone and name get what to
 * announce, 0 when it was gone already. */
static void restoredir_leave(struct snap_node *n, fuse_ino_t *gone,
			     char *name, size_t len)
{
	*gone = 0;
	pthread_mutex_lock(&snap_fs.lock);
	if (n->linked && n->parent == SNAP_INO_RESTORE) {
		*gone = n->ino;
		snprintf(name, len, "%s", n->name);
		snap_node_unlink_locked(n);
	}
	pthread_mutex_unlock(&snap_fs.lock);
}

/* FLUSH of a SNAP_H_RESTORE handle by thread pid: the restore's
 * verdict. */
int snap_restoredir_flush(struct snap_handle *h, pid_t pid,
			  fuse_ino_t *gone, char *gone_name, size_t len)
{
	struct stat st;
	int rc;

	*gone = 0;
	if (fstat(h->fd, &st) == 0 && st.st_size == 0) {
		const char *nm = strchr(h->target, '/');
		if (!snap_restorewal_empty(nm ? nm + 1 : h->target))
			return snap_upload_flush(h);   /* no byte yet */
		h->dirty = 0;
		h->attempted = 1;
		h->last_rc = 0;
		restoredir_leave(h->node, gone, gone_name, len);
		return 0;
	}
	if (h->dirty || !h->attempted) {
		/* A database, its -wal or a side file (restorewal.c). */
		h->last_rc = snap_restorewal_arrived(h->node, h->target,
						       0);
		h->dirty = 0;
		h->attempted = 1;
	}
	rc = h->last_rc;
	restoredir_leave(h->node, gone, gone_name, len);
	if (rc == 0 && *gone && pid > 0)
		/* Restored: its tool may set its mode and times now. */
		snap_attr_left(SNAP_INO_RESTORE, gone_name,
			       snap_attr_tgid(pid));
	return rc;
}

/* RELEASE of a SNAP_H_RESTORE handle: late bytes applied, the name leaves. */
void snap_restoredir_release(struct snap_handle *h, int apply)
{
	char name[NAME_MAX + 1];
	fuse_ino_t gone;
	int late = apply && h->dirty, rc;

	if (late) {
		/* As a flush would (not an upload's own: a -wal is none). */
		rc = snap_restoredir_flush(h, 0, &gone, name, sizeof(name));
		snap_log(rc ? LOG_ERR : LOG_WARNING, "%s: bytes written after "
			 "the last close were applied at release (%s)",
			 h->target, rc ? strerror(-rc) : "ok");
	}
	snap_upload_end(h, apply && !late);
	restoredir_leave(h->node, &gone, name, sizeof(name));
	if (gone)
		snap_notify_delete(snap_fs.notify, SNAP_INO_RESTORE, gone,
				   name);
	if (late) {
		snap_notify_current(snap_fs.notify);
		snap_watch_changed();
	}
}

/* The staging file parent/name (in the root or restore/) a rename moves
 * into restore/, which its restore then removes; 0 for anything else. */
static fuse_ino_t restoredir_source_node(fuse_ino_t parent, const char *name)
{
	struct snap_node *n;
	fuse_ino_t ino = 0;

	if (parent == SNAP_INO_SNAPDIR)
		return 0;
	n = snap_node_find_open(parent, name);
	if (n) {
		ino = n->ino;
		snap_node_close(n);
	}
	return ino;
}

/* A staging file of restore/ (rsync's) renamed onto target
 * ("restore/NAME"): a database, its -wal or a side file arrived whole
 * (restorewal.c); restored, it leaves.  *src gets its node. */
static int restoredir_rename_staged(const char *name, const char *target,
				    fuse_ino_t *src)
{
	struct snap_node *n = snap_node_find_open(SNAP_INO_RESTORE, name);
	int rc;

	*src = 0;
	if (!n)
		return -ENOENT;
	*src = n->ino;
	rc = snap_restorewal_arrived(n, target, 1);
	snap_node_close_leaving(n, name, rc == 0);
	return rc;
}

/* RENAME from or into restore/: into a plain name restores the source. */
void snap_restoredir_rename(fuse_req_t req, fuse_ino_t parent,
			    const char *name, fuse_ino_t newparent,
			    const char *newname, unsigned int flags)
{
	char shown[NAME_MAX + 16];
	fuse_ino_t src;
	int rc;

	if (newparent != SNAP_INO_RESTORE) {
		/* Out of restore/: only onto current.db (dir.c); into
		 * snapshots/, mv copies, which imports. */
		fuse_reply_err(req, newparent == SNAP_INO_SNAPDIR ? EXDEV :
			       EPERM);
		return;
	}
	if (parent == SNAP_INO_ROOT && (strcmp(name, SNAP_NAME_CURRENT) == 0
					|| snap_rootdir_ino(name))) {
		/* current.db and the directories stay where they are. */
		fuse_reply_err(req, EPERM);
		return;
	}
	if ((flags & RENAME_NOREPLACE) &&
	    snap_node_find(SNAP_INO_RESTORE, newname, 0) != NULL) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if (snap_restoredir_is_staging(newname)) {
		/* A staging file renamed within restore/; nothing else
		 * moves in under a staging name. */
		rc = parent == SNAP_INO_RESTORE ?
		     snap_node_rename(parent, name, newname) : -EPERM;
		fuse_reply_err(req, -rc);
		return;
	}
	/* Onto a plain name: restore what is renamed. */
	snprintf(shown, sizeof(shown), "%s/%s", SNAP_NAME_RESTORE, newname);
	snap_restorewal_arriving(newname);
	if (parent == SNAP_INO_RESTORE) {
		rc = restoredir_rename_staged(name, shown, &src);
	} else {
		src = restoredir_source_node(parent, name);
		rc = snap_apply_from(parent, name, shown);
	}
	fuse_reply_err(req, -rc);
	/* The kernel moved the source's dentry to restore/newname: that
	 * name is gone, and the source's own name is looked up again.  A
	 * staging file is gone for good (notify_delete); a snapshot stays in
	 * snapshots/, so its inode keeps its link. */
	if (rc == 0 && src)
		snap_notify_delete(snap_fs.notify, SNAP_INO_RESTORE, src,
				   newname);
	else
		snap_notify_entry(snap_fs.notify, SNAP_INO_RESTORE, newname);
	snap_notify_entry(snap_fs.notify, parent, name);
	snap_notify_current(snap_fs.notify);
	snap_watch_changed();
}
