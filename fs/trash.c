/*
 * fs/trash.c — the freedesktop trash at the mount's root: `.Trash-UID/`
 * with files/, info/ and expunged/, so that a file manager's Delete key
 * (GLib's g_file_trash, `gio trash`) works on snapshots/X and can be undone.
 * Names here are snap_trashdir_* (the directories of the trash); what a
 * trashed snapshot is belongs to the engine (engine/trash.h, snap_trash_*).
 *
 * What GLib does, and what it meets here (gio/glocalfile.c, GLib 2.74; the
 * Trash specification 1.0):
 *   lstat .Trash (ENOENT), lstat .Trash-UID: when missing, mkdir 0700 and
 *       lstat again: a directory owned by UID, never a symlink;
 *   mkdir info, files (EEXIST is fine);
 *   open info/X.trashinfo O_CREAT|O_EXCL (a name taken gives EEXIST and
 *       GLib tries X.2 ...), then g_file_set_contents: create
 *       info/X.trashinfo.XXXXXX, write, rename it over info/X.trashinfo;
 *   rename snapshots/X -> .Trash-UID/files/X      the snapshot is trashed,
 *       and the text of info/X.trashinfo is kept with it in the catalog;
 * and gvfs (gvfsd-trash) for trash:///:
 *   Restore: rename files/X -> the info's Path   back in snapshots/;
 *   Empty / Delete: mkdir expunged, rename files/X -> expunged/N, unlink
 *       info/X.trashinfo, chmod expunged 0700, unlink expunged/N
 *                                                  the snapshot is deleted.
 * By hand: `mv .Trash-0/files/X snapshots/` restores, `rm` in files/
 * deletes.  Nothing else enters the trash: the live database is never
 * deleted, staging files are temporary (EPERM, logged).
 *
 * What exists:
 *   .Trash-UID      a directory, mode 0700, owned by UID, while it holds a
 *                   trashed snapshot (the catalog says so, across remounts)
 *                   or after UID made it with mkdir in this run; only UID
 *                   may make it (EPERM otherwise);
 *   files/, info/, expunged/
 *                   always inside it (mkdir of them: EEXIST), 0700, UID's;
 *   files/NAME, expunged/NAME
 *                   the trashed snapshots, with their own inodes and
 *                   attributes (read-only images, as in snapshots/);
 *   info/NAME.trashinfo
 *                   for each files/NAME: the stored text, read-only, 0600;
 *                   and the files GLib writes there before a rename: nodes
 *                   in the staging directory (inode.c), 0600, vanishing at
 *                   unmount if no snapshot took them.
 * Every entry is given with an entry lifetime of 0 (snapctl may change the
 * catalog beside the mount); directories' attributes live SNAP_TTL_DIR.
 *
 * Inode numbers (fs.h): SNAP_INO_TRASH_DIR_BASE + 4*UID + part for the
 * directories, SNAP_INO_TRASH_INFO_BASE + id for a stored .trashinfo; a
 * trashed snapshot keeps SNAP_INO_SNAP_BASE + id, so a rename moves the
 * inode the kernel has, as it expects.
 *
 * This file: names, numbers, existence, attributes, lookups, listings and
 * the directories themselves; trashfiles.c: the files in them and the
 * renames that trash, restore and empty.
 *
 * Thread-safety: the set of directories made in this run is under
 * snap_fs.lock (a leaf; nothing else is done under it).  The catalog is the
 * engine's (one transaction per change).  Invalidations are returned to the
 * caller (struct snap_trash_inval) and queued after its reply.
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

/* The trash directories made by mkdir in this run (snap_fs.lock). */
static struct {
	uint32_t *uids;
	size_t n, cap;
} trash_made;

const char *const snap_trashdir_part_names[] = {
	"", "files", "info", "expunged",
};

/* ---- names and numbers -------------------------------------------------- */

/* 1 when name is ".Trash-UID" (*uid set when uid is not NULL). */
int snap_trashdir_name(const char *name, uint32_t *uid)
{
	uint64_t v = 0;
	const char *p;

	if (strncmp(name, ".Trash-", 7) != 0 || name[7] == '\0' ||
	    (name[7] == '0' && name[8] != '\0'))
		return 0;
	for (p = name + 7; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v >= UINT32_MAX)          /* (uid_t)-1 is no user */
			return 0;
	}
	if (uid)
		*uid = (uint32_t)v;
	return 1;
}

/* The inode of uid's trash part. */
fuse_ino_t snap_trashdir_ino(uint32_t uid, int part)
{
	return SNAP_INO_TRASH_DIR_BASE + ((fuse_ino_t)uid << 2) + (fuse_ino_t)part;
}

/* 1 when ino is a trash directory's number (*uid, *part set). */
int snap_trashdir_of(fuse_ino_t ino, uint32_t *uid, int *part)
{
	fuse_ino_t x;

	if (ino < SNAP_INO_TRASH_DIR_BASE)
		return 0;
	x = ino - SNAP_INO_TRASH_DIR_BASE;
	if ((x >> 2) >= UINT32_MAX)
		return 0;
	*uid = (uint32_t)(x >> 2);
	*part = (int)(x & 3);
	return 1;
}

/* The engine's directory for a part (files/, expunged/), or NONE. */
snap_trash_dir snap_trashdir_part_dir(int part)
{
	return part == SNAP_TRASH_PART_FILES ? SNAP_TRASH_FILES :
	       part == SNAP_TRASH_PART_EXPUNGED ? SNAP_TRASH_EXPUNGED :
	       SNAP_TRASH_NONE;
}

/* "X" of "X.trashinfo" into base; 0, or -ENOENT for another name. */
int snap_trashdir_info_base(const char *name, char *base, size_t cap)
{
	size_t len = strlen(name), sl = strlen(TRASH_INFO_SUFFIX);

	if (len <= sl || strcmp(name + len - sl, TRASH_INFO_SUFFIX) != 0 ||
	    len - sl >= cap)
		return -ENOENT;
	memcpy(base, name, len - sl);
	base[len - sl] = '\0';
	return 0;
}

/* ---- existence ---------------------------------------------------------- */

/* 1 when uid's trash was made in this run (snap_fs.lock held). */
static int trash_made_locked(uint32_t uid)
{
	size_t i;

	for (i = 0; i < trash_made.n; i++)
		if (trash_made.uids[i] == uid)
			return 1;
	return 0;
}

/* Remember that uid's trash exists for the rest of the run; -ENOMEM. */
int snap_trashdir_remember(uint32_t uid)
{
	int rc = 0;

	pthread_mutex_lock(&snap_fs.lock);
	if (!trash_made_locked(uid)) {
		if (trash_made.n == trash_made.cap) {
			size_t cap = trash_made.cap ? trash_made.cap * 2 : 4;
			uint32_t *v = realloc(trash_made.uids,
					      cap * sizeof(*v));
			if (v) {
				trash_made.uids = v;
				trash_made.cap = cap;
			}
		}
		if (trash_made.n < trash_made.cap)
			trash_made.uids[trash_made.n++] = uid;
		else
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&snap_fs.lock);
	return rc;
}

/* The trashed snapshots of uid's trash (uid < 0: every trash). */
static int trash_items(int64_t uid, snap_info **v, size_t *n)
{
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_trash_list(snap_fs.store, uid, v, n, &err);
	if (rc != 0)
		snap_log(LOG_ERR, "listing the trash: %s", err.msg);
	return rc;
}

/* 1 when uid's trash exists (made in this run, or holding a snapshot). */
int snap_trashdir_exists(uint32_t uid)
{
	snap_info *v = NULL;
	size_t n = 0;
	int made;

	pthread_mutex_lock(&snap_fs.lock);
	made = trash_made_locked(uid);
	pthread_mutex_unlock(&snap_fs.lock);
	if (made)
		return 1;
	if (trash_items(uid, &v, &n) != 0)
		return 0;
	free(v);
	return n > 0;
}

/* ---- attributes --------------------------------------------------------- */

/* A trash directory: 0700, owned by its user, times = the daemon's start. */
static void trash_dir_stat(uint32_t uid, int part, struct stat *st)
{
	snap_attr_dir(SNAP_INO_SNAPDIR, st);
	st->st_ino = snap_trashdir_ino(uid, part);
	st->st_mode = S_IFDIR | TRASH_DIR_MODE;
	st->st_uid = (uid_t)uid;
	st->st_nlink = part == SNAP_TRASH_TOP ? 5 : 2;
}

/* A trashed snapshot as files/ and expunged/ show it. */
static void trash_snap_stat(const snap_info *si, struct stat *st)
{
	struct stat live;
	int have = snap_live_stat_owner(snap_fs.live, &live) == 0;

	snap_attr_snapshot(si, snap_ino_of_snapshot(si->id),
			   have ? &live : NULL, st);
}

/* info/NAME.trashinfo of trashed snapshot si (in files/): its text's
 * size, 0600, owned by the trash's user, mtime = when it was trashed. */
static int trash_info_stat(const snap_info *si, struct stat *st)
{
	char *text = NULL;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_trash_info(snap_fs.store, si->id, &text, &err);
	if (rc != 0)
		return rc;
	snap_attr_dir(SNAP_INO_SNAPDIR, st);
	st->st_ino = SNAP_INO_TRASH_INFO_BASE + (fuse_ino_t)si->id;
	st->st_mode = S_IFREG | TRASH_FILE_MODE;
	st->st_nlink = 1;
	st->st_uid = (uid_t)si->trash_uid;
	st->st_size = (off_t)strlen(text);
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim.tv_sec = si->trashed_ns / 1000000000LL;
	st->st_mtim.tv_nsec = si->trashed_ns % 1000000000LL;
	st->st_atim = st->st_ctim = st->st_mtim;
	free(text);
	return 0;
}

/* The trashed snapshot behind a stored info file's inode, still in
 * files/ (the info goes when it leaves). */
int snap_trashdir_info_snapshot(fuse_ino_t ino, snap_info *si)
{
	int rc = snap_attr_info((int64_t)(ino - SNAP_INO_TRASH_INFO_BASE), si);

	if (rc == 0 && si->trash != SNAP_TRASH_FILES)
		rc = -ENOENT;
	return rc;
}

/* Attributes of a trash inode; -ENOENT when it does not exist now. */
int snap_trashdir_attr(fuse_ino_t ino, struct stat *st, double *ttl)
{
	snap_info si;
	uint32_t uid;
	int part, rc;

	*ttl = 0;
	if (snap_trashdir_of(ino, &uid, &part)) {
		if (!snap_trashdir_exists(uid))
			return -ENOENT;
		trash_dir_stat(uid, part, st);
		*ttl = SNAP_TTL_DIR;
		return 0;
	}
	rc = snap_trashdir_info_snapshot(ino, &si);
	return rc == 0 ? trash_info_stat(&si, st) : rc;
}

/* 1 when ino is a trash directory that exists now. */
int snap_trashdir_is_dir(fuse_ino_t ino)
{
	uint32_t uid;
	int part;

	return snap_trashdir_of(ino, &uid, &part) && snap_trashdir_exists(uid);
}

/* ---- lookup and listing ------------------------------------------------- */

/* The entry name in parent (the root or a trash directory), or -errno. */
int snap_trashdir_lookup(fuse_ino_t parent, const char *name,
			 struct stat *st, double *attr_ttl)
{
	char base[NAME_MAX + 1];
	snap_info si;
	snap_err err;
	uint32_t uid;
	int part, k, rc;

	*attr_ttl = 0;
	if (parent == SNAP_INO_ROOT) {
		if (!snap_trashdir_name(name, &uid) || !snap_trashdir_exists(uid))
			return -ENOENT;
		trash_dir_stat(uid, SNAP_TRASH_TOP, st);
		*attr_ttl = SNAP_TTL_DIR;
		return 0;
	}
	if (!snap_trashdir_of(parent, &uid, &part) || !snap_trashdir_exists(uid))
		return -ENOENT;
	snap_err_clear(&err);
	switch (part) {
	case SNAP_TRASH_TOP:
		for (k = SNAP_TRASH_PART_FILES; k <= SNAP_TRASH_PART_EXPUNGED;
		     k++)
			if (strcmp(name, snap_trashdir_part_names[k]) == 0) {
				trash_dir_stat(uid, k, st);
				*attr_ttl = SNAP_TTL_DIR;
				return 0;
			}
		return -ENOENT;
	case SNAP_TRASH_PART_INFO:
		rc = snap_trashdir_info_base(name, base, sizeof(base));
		if (rc == 0)
			rc = snap_trash_find(snap_fs.store, uid,
					     SNAP_TRASH_FILES, base, &si, &err);
		return rc == 0 ? trash_info_stat(&si, st) : rc;
	default:
		rc = snap_trash_find(snap_fs.store, uid, snap_trashdir_part_dir(part),
				     name, &si, &err);
		if (rc != 0)
			return rc;
		trash_snap_stat(&si, st);
		*attr_ttl = SNAP_TTL_SNAP_ATTR;
		return 0;
	}
}

/* The listing of a trash directory (or .Trash-UID in the root) through add. */
int snap_trashdir_list(fuse_ino_t ino, snap_trash_add_fn add, void *ctx)
{
	char name[NAME_MAX + 1];
	struct snap_dirent *d;
	snap_info *v = NULL;
	uint32_t uid, *uids = NULL;
	size_t n = 0, nu = 0, i, j;
	int part, rc = 0, k;

	if (ino == SNAP_INO_ROOT) {
		/* Every trash that exists: made in this run, or holding. */
		if (trash_items(-1, &v, &n) != 0)
			return 0;         /* the root still lists */
		pthread_mutex_lock(&snap_fs.lock);
		uids = calloc(trash_made.n + n + 1, sizeof(*uids));
		if (uids && trash_made.n) {   /* (memcpy of NULL is UB) */
			memcpy(uids, trash_made.uids,
			       trash_made.n * sizeof(*uids));
			nu = trash_made.n;
		}
		pthread_mutex_unlock(&snap_fs.lock);
		for (i = 0; uids && i < n; i++) {
			for (j = 0; j < nu && uids[j] != v[i].trash_uid; j++)
				;
			if (j == nu)
				uids[nu++] = v[i].trash_uid;
		}
		for (j = 0; j < nu; j++) {
			snprintf(name, sizeof(name), ".Trash-%u", uids[j]);
			if ((d = add(ctx, name))) {
				trash_dir_stat(uids[j], SNAP_TRASH_TOP,
					       &d->st);
				d->attr_ttl = SNAP_TTL_DIR;
			}
		}
		rc = uids || n == 0 ? 0 : -ENOMEM;
		free(uids);
		free(v);
		return rc;
	}
	if (!snap_trashdir_of(ino, &uid, &part))
		return -ENOTDIR;
	if (part == SNAP_TRASH_TOP) {
		for (k = SNAP_TRASH_PART_FILES; k <= SNAP_TRASH_PART_EXPUNGED;
		     k++)
			if ((d = add(ctx, snap_trashdir_part_names[k]))) {
				trash_dir_stat(uid, k, &d->st);
				d->attr_ttl = SNAP_TTL_DIR;
			}
		return 0;
	}
	rc = trash_items(uid, &v, &n);
	for (i = 0; rc == 0 && i < n; i++) {
		if (part == SNAP_TRASH_PART_INFO) {
			if (v[i].trash != SNAP_TRASH_FILES ||
			    snprintf(name, sizeof(name), "%s%s",
				     v[i].trash_name, TRASH_INFO_SUFFIX) >=
			    (int)sizeof(name))
				continue;
			if ((d = add(ctx, name)) &&
			    trash_info_stat(&v[i], &d->st) != 0)
				d->st.st_ino = 0;     /* gone: skipped */
		} else if (v[i].trash == snap_trashdir_part_dir(part) &&
			   (d = add(ctx, v[i].trash_name))) {
			trash_snap_stat(&v[i], &d->st);
			d->attr_ttl = SNAP_TTL_SNAP_ATTR;
		}
	}
	free(v);
	return rc;
}

/* ---- directories -------------------------------------------------------- */

/* mkdir .Trash-UID (by UID alone) or one of its directories. */
int snap_trashdir_mkdir(fuse_ino_t parent, const char *name, uid_t who,
			struct stat *st)
{
	uint32_t uid;
	int part, k, rc;

	if (parent == SNAP_INO_ROOT && snap_trashdir_name(name, &uid)) {
		if (snap_trashdir_exists(uid))
			return -EEXIST;
		if (uid != (uint32_t)who) {
			snap_log(LOG_INFO, "mkdir %s by uid %u refused: a "
				 "trash directory is made by its own user",
				 name, (unsigned)who);
			return -EPERM;
		}
		rc = snap_trashdir_remember(uid);
		if (rc == 0)
			trash_dir_stat(uid, SNAP_TRASH_TOP, st);
		return rc;
	}
	if (snap_trashdir_of(parent, &uid, &part) && part == SNAP_TRASH_TOP &&
	    snap_trashdir_exists(uid))
		for (k = SNAP_TRASH_PART_FILES; k <= SNAP_TRASH_PART_EXPUNGED;
		     k++)
			if (strcmp(name, snap_trashdir_part_names[k]) == 0)
				return -EEXIST;
	/* Directories are never trashed: snapshots are files. */
	return -EPERM;
}

/* Count the nodes of a directory (snap_node_foreach_locked). */
static void trash_count_node(struct snap_node *n, void *ctx)
{
	(void)n;
	(*(size_t *)ctx)++;
}

/* rmdir .Trash-UID: 0 when it holds nothing, -ENOTEMPTY, -EPERM. */
int snap_trashdir_rmdir(fuse_ino_t parent, const char *name)
{
	snap_info *v = NULL;
	size_t n = 0, nodes = 0, i;
	uint32_t uid;

	if (parent != SNAP_INO_ROOT || !snap_trashdir_name(name, &uid))
		return -EPERM;
	if (!snap_trashdir_exists(uid))
		return -ENOENT;
	if (trash_items(uid, &v, &n) != 0)
		return -EIO;
	free(v);
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_foreach_locked(snap_trashdir_ino(uid, SNAP_TRASH_PART_INFO),
				 trash_count_node, &nodes);
	if (n == 0 && nodes == 0) {
		for (i = 0; i < trash_made.n; i++)
			if (trash_made.uids[i] == uid)
				trash_made.uids[i] =
					trash_made.uids[--trash_made.n];
	}
	pthread_mutex_unlock(&snap_fs.lock);
	return n || nodes ? -ENOTEMPTY : 0;
}

/* setattr of a trash inode: only what changes nothing succeeds. */
int snap_trashdir_setattr(fuse_ino_t ino, const struct stat *attr,
			  int to_set, struct stat *st, double *ttl)
{
	int rc = snap_trashdir_attr(ino, st, ttl);

	if (rc != 0)
		return rc;
	if ((to_set & FUSE_SET_ATTR_MODE) &&
	    (attr->st_mode & 07777) != (st->st_mode & 07777))
		return -EPERM;
	if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != st->st_uid) ||
	    ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != st->st_gid))
		return -EPERM;
	if (to_set & FUSE_SET_ATTR_SIZE)
		return S_ISDIR(st->st_mode) ? -EISDIR : -EPERM;
	/* chmod 0700 of expunged/ (gvfs) and times: nothing to change. */
	return 0;
}

