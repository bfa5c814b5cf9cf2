/*
 * fs/staging.c — bytes on their way into the live database or the store.
 *
 * Nothing written through the mount ever lands in the live database
 * directly (engine/PITFALLS.md 1-5).  It lands in a private file in the
 * staging directory (<store>/staging, mode 0700, emptied at start and at exit,
 * named by a path anchored to its open fd: see snap_staging_init) and
 * reaches the live database only as a verified restore by the engine:
 *
 *   upload      current.db opened with O_TRUNC, or created after an unlink
 *               (cp, cp --remove-destination, cat >, mv across filesystems):
 *               one file per handle, applied at FLUSH so the verdict reaches
 *               close() and the copying program (engine/PITFALLS.md 24: errors
 *               from RELEASE are lost).  A flush with nothing new since the
 *               last one returns the last verdict again (touch, shells that
 *               dup2 and close the original descriptor).
 *
 *   wal         a staging file X renamed onto current.db while a staging
 *               file X-wal exists (cp src.db src.db-wal MNT/; mv MNT/src.db
 *               MNT/current.db): the backing files have private names, so
 *               X-wal is hard-linked as "<X's backing file>-wal" for the
 *               time of the restore and SQLite reads X with its committed
 *               transactions, exactly as snapctl restore reads src.db.
 *               A hot X-journal (no X-wal) is linked the same way and
 *               rolled back on the staged copy first.
 *
 *
 * Edit sessions (session.c, sessionapply.c) and snapshot requests
 * (pending.c) stage their bytes here too and apply them through the
 * restores below.
 *
 * Restores through the mount are serialized by fs->apply_lock.
 *
 * Thread-safety: handle state is protected by h->lock, held by the caller
 * (ops.c) around every call here; the counters by fs->lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fs.h"

/* ---- the staging directory ---------------------------------------------- */

/*
 * The staging directory is the store's (engine/storedir.c): created 0700,
 * opened without following a link, checked and emptied there, and kept
 * open here for the daemon's lifetime.  Every path in it is anchored to
 * that fd ("/proc/self/fd/N/upload-7"), so nobody who can rename the store
 * away can redirect a staging file; SQLite keeps the anchor too (the
 * engine's anchored VFS).
 */
static int staging_fd = -1;     /* written at start-up and shutdown only */

/* Open the store's staging directory, emptied, and anchor its path. */
int snap_staging_init(snap_store *store, char *out, size_t len,
		      snap_err *err)
{
	int fd = snap_storedir_sub_open(store, "staging", out, len, err);

	if (fd < 0)
		return fd;
	staging_fd = fd;
	return 0;
}

/* Remove the staging directory and everything in it. */
void snap_staging_cleanup(snap_store *store)
{
	if (staging_fd < 0)
		return;
	snap_storedir_sub_remove(store, "staging", staging_fd);
	staging_fd = -1;
}

/* A fresh private file path in the staging directory ("upload-7"). */
void snap_staging_path(const char *what, char *out, size_t len)
{
	uint64_t seq;

	pthread_mutex_lock(&snap_fs.lock);
	seq = ++snap_fs.file_seq;
	pthread_mutex_unlock(&snap_fs.lock);
	if (snprintf(out, len, "%s/%s-%llu", snap_fs.staging_dir, what,
		     (unsigned long long)seq) >= (int)len)
		out[0] = 0;
}

/* ---- restores ----------------------------------------------------------- */

/*
 * The errno a restore (or import) through the mount returns to the program
 * that asked — mv, cp, cat, a file manager — which prints only its text.
 * The engine's errno passes when its text says what happened: EINVAL (not
 * a usable database), EBUSY (another restore runs), ENOSPC, EDQUOT,
 * ENOMEM, EACCES, EPERM, EROFS.  Every other one is EIO, as engine/DESIGN.md
 * §4 promises for a refused or failed restore: "Bad message" (EBADMSG, a
 * source that failed verification), "Stale file handle", "Interrupted
 * system call" (which invites a retry), "File exists", "No such file or
 * directory" (the source is there) and the like would mislead.  The
 * engine's errno and reason are logged before this mapping.
 */
int snap_apply_errno(int rc)
{
	switch (rc) {
	case 0:
	case -EINVAL:
	case -EBUSY:
	case -ENOSPC:
	case -EDQUOT:
	case -ENOMEM:
	case -EACCES:
	case -EPERM:
	case -EROFS:
	case -EIO:
		return rc;
	default:
		return -EIO;
	}
}

/* Count a restore through the mount as done (rc 0) or failed. */
void snap_apply_count(int rc)
{
	pthread_mutex_lock(&snap_fs.lock);
	if (rc == 0)
		snap_fs.restores_ok++;
	else
		snap_fs.restores_failed++;
	pthread_mutex_unlock(&snap_fs.lock);
}

/* Count a restore and log its outcome, naming its source as from. */
static void apply_report(int rc, const char *from, const snap_err *err,
			 const snap_restore_result *res)
{
	snap_apply_count(rc);
	if (rc == 0)
		snap_log(LOG_INFO, "restored current.db from %s%s%s%s", from,
			 res->have_safety ? " (the previous state is snapshot "
					  : "",
			 res->have_safety ? res->safety.name : "",
			 res->have_safety ? ")" : "");
	else
		snap_log(LOG_ERR, "restore of current.db from %s refused (%s%s"
			 "): %s%s", from, strerror(-rc), snap_apply_errno(rc) != rc ?
			 ", reported as an I/O error" : "",
			 err->msg[0] ? err->msg : "no detail",
			 res->rolled_back ? "; the live database was rolled "
					    "back to its previous state" :
					    "; the live database is unchanged");
}

/* Restore snapshot id onto the live database (rename snapshots/X). */
int snap_apply_snapshot(int64_t id, const char *shown_name)
{
	snap_restore_result res;
	snap_err err;
	int rc;

	memset(&res, 0, sizeof(res));
	snap_err_clear(&err);
	pthread_mutex_lock(&snap_fs.apply_lock);
	snap_live_quiesce(snap_fs.live);
	rc = snap_restore(snap_fs.store, id, &res, &err);
	snap_live_resume(snap_fs.live);
	pthread_mutex_unlock(&snap_fs.apply_lock);
	apply_report(rc, shown_name, &err, &res);
	return snap_apply_errno(rc);
}

/* The same, for a file; the caller holds apply_lock. */
int snap_apply_file_locked(const char *path, const char *shown_name,
			     const char *label, const snap_restore_opts *o)
{
	snap_restore_opts named;
	snap_restore_result res;
	snap_err err;
	int rc;

	/* The engine's messages and events name the file as the user knows
	 * it, not by its private staging path. */
	memset(&named, 0, sizeof(named));
	if (o)
		named = *o;
	named.source_name = shown_name;
	memset(&res, 0, sizeof(res));
	snap_err_clear(&err);
	snap_live_quiesce(snap_fs.live);
	rc = snap_restore_file_ex(snap_fs.store, path, label, &named, &res,
				  &err);
	snap_live_resume(snap_fs.live);
	snap_err_rename(&err, path, shown_name);
	if (rc != -ESTALE)      /* a refused session: the caller reports */
		apply_report(rc, shown_name, &err, &res);
	return rc;
}

/* "<path><suffix>" into out; 0 or -ENAMETOOLONG. */
int snap_staging_side_path(const char *path, const char *suffix, char *out,
		     size_t len)
{
	return snprintf(out, len, "%s%s", path, suffix) >= (int)len ?
	       -ENAMETOOLONG : 0;
}

/* Remove what SQLite finds beside a staging file. */
static void side_remove(const char *path)
{
	static const char *const suffix[] = { "-wal", "-shm", "-journal" };
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < 3; i++)
		if (snap_staging_side_path(path, suffix[i], p, sizeof(p)) == 0)
			unlink(p);
}

/* SQLite's rollback journal header magic (pager.c, aJournalMagic). */
static const unsigned char journal_magic[8] = {
	0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7
};

int snap_staging_journal_hot(const char *path)
{
	unsigned char head[sizeof(journal_magic)];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t got;

	if (fd < 0)
		return 0;
	got = pread(fd, head, sizeof(head), 0);
	close(fd);
	return got == (ssize_t)sizeof(head) &&
	       memcmp(head, journal_magic, sizeof(head)) == 0;
}

/* Roll back the hot journal placed beside the staging file path: open it
 * for writing (it is the daemon's private copy; the anchored path stays
 * anchored, the anchored VFS being SQLite's default), and SQLite's first
 * read rolls the interrupted transaction back and deletes the journal.
 * 0, or -EINVAL with the reason logged. */
static int rollback_staged(const char *path, const char *shown_name)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema",
				  NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		snap_log(LOG_ERR, "restore of current.db from %s refused: its "
			 "rollback journal (an interrupted transaction) cannot "
			 "be rolled back: %s; the live database is unchanged",
			 shown_name, db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -EINVAL;
}

/* Restore a staging file (and its staged -wal or hot -journal) onto the
 * live database. */
int snap_apply_file(const char *path, const char *side, const char *suffix,
		    const char *shown_name, const char *label)
{
	int journal = side && strcmp(suffix, "-journal") == 0;
	char link_path[PATH_MAX];
	int rc = 0;

	pthread_mutex_lock(&snap_fs.apply_lock);
	if (side) {
		/* The staged side file under the name SQLite looks for: the
		 * engine reads the file as SQLite would beside its WAL
		 * (committed transactions included), as snapctl restore
		 * does with the original files; a journal is rolled back
		 * first, as SQLite would on opening it.  A hard link: both
		 * live in the staging directory. */
		side_remove(path);
		rc = snap_staging_side_path(path, suffix, link_path,
					    sizeof(link_path));
		if (rc == 0 && link(side, link_path) != 0)
			rc = -errno;
		if (rc != 0)
			snap_log(LOG_ERR, "restore of current.db from %s "
				 "refused: cannot place its %s beside it in "
				 "the staging directory: %s; the live "
				 "database is unchanged", shown_name,
				 journal ? "rollback journal" : "WAL",
				 strerror(-rc));
		else if (journal)
			rc = rollback_staged(path, shown_name);
		if (rc != 0)
			snap_apply_count(rc);
	}
	if (rc == 0)
		rc = snap_apply_file_locked(path, shown_name, label, NULL);
	if (side)
		side_remove(path);
	pthread_mutex_unlock(&snap_fs.apply_lock);
	return snap_apply_errno(rc);
}

/* Restore onto current.db from snapshots/name or a staging file in the
 * root or restore/ (staging.h). */
int snap_apply_from(fuse_ino_t parent, const char *name, const char *shown_as)
{
	static const char *const logs[] = { "-wal", "-journal" };
	char path[PATH_MAX], wal[PATH_MAX], walname[NAME_MAX + 1];
	char shown[2 * NAME_MAX + 48];
	struct snap_node *n, *w = NULL;
	snap_info si;
	int64_t id = 0;
	int k, rc;

	if (parent == SNAP_INO_SNAPDIR) {
		if (strcmp(name, SNAP_NAME_LATEST) == 0) {
			rc = snap_store_find(snap_fs.store, "latest", &si,
					     NULL);
		} else if ((n = snap_node_find_open(parent, name))) {
			pthread_mutex_lock(&snap_fs.lock);
			id = n->snap_id;
			pthread_mutex_unlock(&snap_fs.lock);
			snap_node_close(n);
			rc = id ? snap_attr_info(id, &si) : -EBUSY;
		} else {
			rc = snap_attr_by_name(name, &si);
		}
		if (rc != 0)
			return rc;
		snprintf(shown, sizeof(shown), "snapshot %s", si.name);
		return snap_apply_snapshot(si.id, shown);
	}
	if (snap_ino_is_trash(parent)) {
		/* A trashed snapshot: restored, it stays in the trash. */
		rc = snap_trashdir_snapshot(parent, name, &si);
		if (rc != 0)
			return rc;
		snprintf(shown, sizeof(shown), "snapshot %s (in the trash)",
			 si.name);
		return snap_apply_snapshot(si.id, shown);
	}
	if (parent == SNAP_INO_ROOT && strcmp(name, SNAP_NAME_CURRENT) == 0)
		return 0;
	n = snap_node_find_open(parent, name);
	if (!n)
		return parent == SNAP_INO_ROOT && snap_rootdir_ino(name) ?
		       -EISDIR : -ENOENT;
	/* Its WAL, or a hot rollback journal, if one was copied in beside
	 * it (cp src.db src.db-wal): held open so its file stays while the
	 * engine reads it. */
	for (k = 0; k < 2 && !w; k++) {
		if (snprintf(walname, sizeof(walname), "%s%s", name,
			     logs[k]) >= (int)sizeof(walname))
			break;
		w = snap_node_find_open(parent, walname);
		pthread_mutex_lock(&snap_fs.lock);
		snprintf(wal, sizeof(wal), "%s", w ? w->path : "");
		pthread_mutex_unlock(&snap_fs.lock);
		if (w && k == 1 && !snap_staging_journal_hot(wal)) {
			snap_node_close(w);
			w = NULL;
		}
	}
	pthread_mutex_lock(&snap_fs.lock);
	snprintf(path, sizeof(path), "%s", n->path);
	pthread_mutex_unlock(&snap_fs.lock);
	snprintf(shown, sizeof(shown), "the file %s%s%s",
		 shown_as ? shown_as : name, w ? " with its " : "",
		 w ? walname : "");
	rc = snap_apply_file(path, w ? wal : NULL, logs[w ? k - 1 : 0], shown,
			     "upload");
	if (w)
		snap_node_close(w);
	/* Like a rename: the source name is gone. */
	snap_node_close_leaving(n, name, rc == 0);
	return rc;
}

/* ---- uploads (staged replace) ------------------------------------------- */

/* What an upload is written to, for messages: current.db, or the name a
 * file in restore/ has (restoredir.c). */
static const char *upload_target(const struct snap_handle *h)
{
	return h->target[0] ? h->target : SNAP_NAME_CURRENT;
}

/* An upload handle: create its private file. */
int snap_upload_begin(struct snap_handle *h)
{
	snap_staging_path("upload", h->path, sizeof(h->path));
	if (!h->path[0])
		return -ENAMETOOLONG;
	h->fd = open(h->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (h->fd < 0) {
		int rc = -errno;
		snap_log(LOG_ERR, "creating staging file %s: %s", h->path,
			 strerror(-rc));
		return rc;
	}
	h->kind = SNAP_H_UPLOAD;
	h->dirty = 0;
	h->attempted = 0;
	h->last_rc = 0;
	return 0;
}

/* FLUSH of an upload: apply its bytes, or repeat the last verdict. */
int snap_upload_flush(struct snap_handle *h)
{
	char shown[sizeof(h->target) + 32];
	struct stat st;
	int rc;

	if (!h->dirty && h->attempted)
		return h->last_rc;
	if (fstat(h->fd, &st) != 0)
		rc = -errno;
	else if (st.st_size == 0) {
		/* Nothing arrived yet.  Not news: the shell's `cat x >
		 * current.db` and dd's of= close a first descriptor before
		 * any byte comes (dup2, then close).  This close fails all the same, since an
		 * empty file is not a database (cp of an empty file, `: >`);
		 * whether anything ever came is logged at RELEASE. */
		snap_log(LOG_DEBUG, "%s: a close with nothing written yet: "
			 "nothing to restore (EINVAL)", upload_target(h));
		rc = -EINVAL;
	} else {
		snprintf(shown, sizeof(shown), "the file written to %s",
			 upload_target(h));
		rc = snap_apply_file(h->path, NULL, NULL, shown, "upload");
	}
	h->dirty = 0;
	h->attempted = 1;
	h->last_rc = rc;
	return rc;
}

/* The end of an upload handle (RELEASE): the only place that knows no
 * byte will ever come, so the one that says so. */
void snap_upload_end(struct snap_handle *h, int apply)
{
	struct stat st;
	int rc;

	if (apply && h->dirty) {
		rc = snap_upload_flush(h);
		snap_log(rc ? LOG_ERR : LOG_WARNING, "%s: bytes written after "
			 "the last close were applied at release (%s)",
			 upload_target(h), rc ? strerror(-rc) : "ok");
	} else if (apply && fstat(h->fd, &st) == 0 && st.st_size == 0) {
		snap_log(LOG_NOTICE, "%s: nothing was written to it, and an "
			 "empty file is not a database; the live database is "
			 "unchanged", upload_target(h));
	}
	if (!h->node)          /* a node's file goes with the node */
		unlink(h->path);
}

