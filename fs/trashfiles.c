/*
 * fs/trashfiles.c — the files of the freedesktop trash (trash.c says what
 * exists and why): info/NAME.trashinfo created, opened and unlinked, and
 * the renames that trash a snapshot (snapshots/X -> files/X), restore it
 * (files/X -> snapshots/), move it to expunged/, and empty the trash.
 *
 * Thread-safety: as trash.c's.  The catalog is the engine's (one
 * transaction per change).  Invalidations are returned to the caller
 * (struct snap_trash_inval) and queued after its reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"
#include "trash_int.h"

/* ---- files -------------------------------------------------------------- */

/* May a file called name be created in trash directory parent: 0 or -errno. */
int snap_trashdir_may_create(fuse_ino_t parent, const char *name)
{
	char base[NAME_MAX + 1];
	snap_info si;
	snap_err err;
	uint32_t uid;
	int part;

	if (!snap_trashdir_of(parent, &uid, &part) || !snap_trashdir_exists(uid))
		return -ENOENT;
	/* Only .trashinfo files (and GLib's temporary copies of one) are
	 * written into the trash; snapshots arrive by rename. */
	if (part != SNAP_TRASH_PART_INFO || !strstr(name, TRASH_INFO_SUFFIX))
		return -EPERM;
	snap_err_clear(&err);
	if (snap_trashdir_info_base(name, base, sizeof(base)) == 0 &&
	    snap_trash_find(snap_fs.store, uid, SNAP_TRASH_FILES, base, &si,
			    &err) == 0)
		return -EEXIST;
	return 0;
}

/* Open a trash inode: a stored .trashinfo's text; -EISDIR; -EPERM for a
 * write. */
int snap_trashdir_open(fuse_ino_t ino, int flags, char **text, size_t *len)
{
	snap_info si;
	snap_err err;
	int rc;

	if (ino >= SNAP_INO_TRASH_DIR_BASE)
		return -EISDIR;
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EPERM;        /* what GLib wrote, kept as it was */
	rc = snap_trashdir_info_snapshot(ino, &si);
	snap_err_clear(&err);
	if (rc == 0)
		rc = snap_trash_info(snap_fs.store, si.id, text, &err);
	if (rc == 0)
		*len = strlen(*text);
	return rc;
}

/* Up to cap - 1 bytes of a node's file into buf, NUL-terminated; their
 * number, or -1. */
static ssize_t trash_node_read(struct snap_node *n, char *buf, size_t cap)
{
	ssize_t got = -1;
	int fd = open(n->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0) {
		got = read(fd, buf, cap - 1);
		close(fd);
	}
	if (got >= 0)
		buf[got] = '\0';
	return got;
}

/* Queue the invalidation of info/NAME.trashinfo of uid's trash. */
static void trash_inval_info(struct snap_trash_inval *inv, uint32_t uid,
			     const char *name)
{
	if (snprintf(inv->name, sizeof(inv->name), "%s%s", name,
		     TRASH_INFO_SUFFIX) < (int)sizeof(inv->name))
		inv->parent = snap_trashdir_ino(uid, SNAP_TRASH_PART_INFO);
}

/* Queue the invalidations inv names (after the reply). */
void snap_trashdir_notify(const struct snap_trash_inval *inv)
{
	if (inv->parent)
		snap_notify_entry(snap_fs.notify, inv->parent, inv->name);
	if (inv->latest)
		snap_notify_inode(snap_fs.notify, SNAP_INO_LATEST);
}

/* unlink in a trash directory: files/ and expunged/ delete the snapshot. */
int snap_trashdir_unlink(fuse_ino_t parent, const char *name,
			 struct snap_trash_inval *inv)
{
	char base[NAME_MAX + 1];
	snap_info si;
	snap_err err;
	uint32_t uid;
	int part, rc;

	if (!snap_trashdir_of(parent, &uid, &part) || !snap_trashdir_exists(uid))
		return -ENOENT;
	snap_err_clear(&err);
	if (part == SNAP_TRASH_PART_INFO) {
		rc = snap_trashdir_info_base(name, base, sizeof(base));
		if (rc == 0)
			rc = snap_trash_find(snap_fs.store, uid,
					     SNAP_TRASH_FILES, base, &si, &err);
		if (rc != 0)
			return rc;
		snap_log(LOG_INFO, "unlink of .Trash-%u/info/%s refused: "
			 "snapshot %s is still in files/; empty the trash or "
			 "restore it", uid, name, si.name);
		return -EPERM;
	}
	if (part == SNAP_TRASH_TOP)
		return -EPERM;
	rc = snap_trash_find(snap_fs.store, uid, snap_trashdir_part_dir(part), name,
			     &si, &err);
	if (rc == 0)
		rc = snap_store_delete(snap_fs.store, si.id, &err);
	if (rc == 0) {
		snap_log(LOG_INFO, "snapshot %s deleted from the trash "
			 "(.Trash-%u/%s/%s)", si.name, uid,
			 snap_trashdir_part_names[part], name);
		if (part == SNAP_TRASH_PART_FILES)
			trash_inval_info(inv, uid, name);
	} else if (rc != -ENOENT) {
		snap_log(LOG_ERR, "deleting snapshot %s from the trash: %s",
			 si.name, err.msg);
	}
	return rc;
}

/* ---- renames ------------------------------------------------------------ */

/* snapshots/name -> files/newname of uid's trash: the Delete key. */
static int trash_put(const char *name, uint32_t uid, const char *newname,
		     struct snap_trash_inval *inv)
{
	char info[SNAP_TRASH_INFO_MAX + 2], iname[NAME_MAX + 1];
	struct snap_node *n = NULL;
	ssize_t len = -1;
	snap_info si, out;
	snap_err err;
	int rc;

	if (strcmp(name, SNAP_NAME_LATEST) == 0) {
		snap_log(LOG_INFO, "trashing snapshots/latest.db refused: it "
			 "is a link to the newest snapshot; trash that one");
		return -EPERM;
	}
	rc = snap_attr_by_name(name, &si);
	if (rc == -ENOENT && (n = snap_node_find_open(SNAP_INO_SNAPDIR,
						      name))) {
		snap_node_close(n);      /* a snapshot being created */
		return -EBUSY;
	}
	if (rc != 0)
		return rc;
	/* The .trashinfo GLib wrote for it just before, if any. */
	if (snprintf(iname, sizeof(iname), "%s%s", newname,
		     TRASH_INFO_SUFFIX) < (int)sizeof(iname))
		n = snap_node_find_open(snap_trashdir_ino(uid, SNAP_TRASH_PART_INFO),
					iname);
	if (n)
		len = trash_node_read(n, info, sizeof(info));
	snap_err_clear(&err);
	rc = snap_trash_put(snap_fs.store, si.id, uid, newname,
			    len >= 0 ? info : NULL, len >= 0 ? (size_t)len : 0,
			    &out, &err);
	if (rc == 0 && n) {
		/* Its text is the catalog's now. */
		pthread_mutex_lock(&snap_fs.lock);
		if (n->linked && strcmp(n->name, iname) == 0)
			snap_node_unlink_locked(n);
		pthread_mutex_unlock(&snap_fs.lock);
	}
	if (n)
		snap_node_close(n);
	if (rc != 0) {
		snap_log(rc == -EEXIST ? LOG_INFO : LOG_ERR, "moving snapshot "
			 "%s to the trash: %s", si.name, err.msg);
		return rc;
	}
	snap_trashdir_remember(uid);
	snap_log(LOG_INFO, "snapshot %s moved to the trash (.Trash-%u/files/"
		 "%s); it is kept until the trash is emptied", si.name, uid,
		 newname);
	trash_inval_info(inv, uid, newname);
	inv->latest = 1;
	return 0;
}

/* files/name or expunged/name of uid's trash -> snapshots/newname. */
static int trash_restore(uint32_t uid, int part, const char *name,
			 const char *newname, snap_info *out,
			 struct snap_trash_inval *inv)
{
	struct snap_node *n;
	snap_info si, other;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_trash_find(snap_fs.store, uid, snap_trashdir_part_dir(part), name,
			     &si, &err);
	if (rc != 0)
		return rc;
	/* Never in place of something in snapshots/. */
	if (strcmp(newname, SNAP_NAME_LATEST) == 0)
		return -EPERM;
	if (snap_attr_by_name(newname, &other) == 0)
		return -EEXIST;
	if ((n = snap_node_find_open(SNAP_INO_SNAPDIR, newname))) {
		snap_node_close(n);
		return -EEXIST;
	}
	rc = snap_trash_restore(snap_fs.store, si.id, out, &err);
	if (rc != 0) {
		snap_log(LOG_ERR, "restoring snapshot %s from the trash: %s",
			 si.name, err.msg);
		return rc;
	}
	snap_log(LOG_INFO, "snapshot %s restored from the trash "
		 "(.Trash-%u/%s/%s)", si.name, uid, snap_trashdir_part_names[part],
		 name);
	if (part == SNAP_TRASH_PART_FILES)
		trash_inval_info(inv, uid, name);
	inv->latest = 1;
	return 0;
}

/* 1 when ino is the files/ or expunged/ of a trash that exists: the
 * directories whose entries are trashed snapshots. */
int snap_trashdir_holds_snapshots(fuse_ino_t ino)
{
	uint32_t uid;
	int part;

	return snap_trashdir_of(ino, &uid, &part) && snap_trashdir_exists(uid) &&
	       snap_trashdir_part_dir(part) != SNAP_TRASH_NONE;
}

/* The trashed snapshot parent/name names (parent files/ or expunged/ of a
 * trash that exists), for a restore of the live database from it: the
 * snapshot stays in the trash.  0, -ENOENT, or -EPERM for a parent that
 * holds no snapshots. */
int snap_trashdir_snapshot(fuse_ino_t parent, const char *name, snap_info *si)
{
	snap_err err;
	uint32_t uid;
	int part;

	snap_err_clear(&err);
	if (!snap_trashdir_holds_snapshots(parent) ||
	    !snap_trashdir_of(parent, &uid, &part))
		return -EPERM;
	return snap_trash_find(snap_fs.store, uid, snap_trashdir_part_dir(part),
			       name, si, &err);
}

/* files/ <-> expunged/ within uid's trash (gvfs empties that way). */
static int trash_move(uint32_t uid, int part, const char *name, int newpart,
		      const char *newname, struct snap_trash_inval *inv)
{
	snap_info si, out;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_trash_find(snap_fs.store, uid, snap_trashdir_part_dir(part), name,
			     &si, &err);
	if (rc == 0)
		rc = snap_trash_move(snap_fs.store, si.id,
				     snap_trashdir_part_dir(newpart), newname, &out,
				     &err);
	if (rc != 0) {
		if (rc != -ENOENT && rc != -EEXIST)
			snap_log(LOG_ERR, "moving %s within the trash: %s",
				 name, err.msg);
		return rc;
	}
	if (part == SNAP_TRASH_PART_FILES)
		trash_inval_info(inv, uid, name);
	return 0;
}

/* info/name -> info/newname of one trash: GLib's temporary .trashinfo. */
static int trash_info_rename(uint32_t uid, const char *name,
			     const char *newname, unsigned flags)
{
	fuse_ino_t dir = snap_trashdir_ino(uid, SNAP_TRASH_PART_INFO);
	struct snap_node *n;
	int rc;

	rc = snap_trashdir_may_create(dir, newname);
	if (rc != 0)
		return rc;             /* a stored info is never replaced */
	if ((flags & RENAME_NOREPLACE) && snap_node_find(dir, newname, 0))
		return -EEXIST;
	n = snap_node_find_open(dir, name);
	if (!n)
		return snap_trashdir_may_create(dir, name) == -EEXIST ?
		       -EPERM : -ENOENT;
	pthread_mutex_lock(&snap_fs.lock);
	if (n->linked) {
		snap_node_rename_locked(n, newname);
		rc = 0;
	} else {
		rc = -ENOENT;
	}
	pthread_mutex_unlock(&snap_fs.lock);
	snap_node_close(n);
	return rc;
}

/* rename with a trash directory on either side: trash, restore, move. */
int snap_trashdir_rename(fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned flags, snap_info *restored,
			 struct snap_trash_inval *inv)
{
	uint32_t uid = 0, newuid = 0;
	int part = -1, newpart = -1, from, to;

	memset(inv, 0, sizeof(*inv));
	memset(restored, 0, sizeof(*restored));
	from = snap_trashdir_of(parent, &uid, &part) && snap_trashdir_exists(uid);
	to = snap_trashdir_of(newparent, &newuid, &newpart) &&
	     snap_trashdir_exists(newuid);
	if ((snap_ino_is_trash(parent) && !from) ||
	    (snap_ino_is_trash(newparent) && !to))
		return -ENOENT;
	if (parent == SNAP_INO_SNAPDIR && to &&
	    newpart == SNAP_TRASH_PART_FILES)
		return trash_put(name, newuid, newname, inv);
	if (from && newparent == SNAP_INO_SNAPDIR &&
	    snap_trashdir_part_dir(part) != SNAP_TRASH_NONE)
		return trash_restore(uid, part, name, newname, restored, inv);
	if (from && to && uid == newuid) {
		if (snap_trashdir_part_dir(part) != SNAP_TRASH_NONE &&
		    snap_trashdir_part_dir(newpart) != SNAP_TRASH_NONE)
			return trash_move(uid, part, name, newpart, newname,
					  inv);
		if (part == SNAP_TRASH_PART_INFO &&
		    newpart == SNAP_TRASH_PART_INFO)
			return trash_info_rename(uid, name, newname, flags);
	}
	if (parent == SNAP_INO_ROOT && to)
		snap_log(LOG_INFO, "trashing %s refused: %s", name,
			 strcmp(name, SNAP_NAME_CURRENT) == 0 ?
			 "the live database is never deleted; restore a "
			 "snapshot to undo a change" :
			 "only snapshots go to the trash; files in the root "
			 "are temporary (delete them)");
	return -EPERM;
}

