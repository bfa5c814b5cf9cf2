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
 *   session     current.db opened for writing without O_TRUNC (a SQLite
 *               client, rsync --inplace, dd conv=notrunc): one copy of the
 *               current image shared by every such handle, made at the first
 *               read or write (GIO opens the target only to fstat it).  It is
 *               applied when the last writer closes — at its FLUSH, counting
 *               handles that already flushed as closed, because RELEASE is
 *               asynchronous and its errors are lost.  While the live
 *               database is unchanged since the copy was taken, the copy is
 *               restored.  Once it moved, the edit is merged instead: the
 *               engine (merge.h) applies the rows the edit changed as a
 *               changeset, comparing the copy with its base — the image
 *               the copy was made from, kept by a dup of its descriptor
 *               (the file is unlinked) and copied out only for a merge.
 *               Rows both sides inserted with the same automatic key (an
 *               application appending to the table the edit inserts into)
 *               are merged, the edit's under new keys, each logged.
 *               A row changed on both sides, or a change a changeset cannot
 *               carry (schema, a table without a key), refuses the merge:
 *               the edit is kept as a snapshot of kind "conflict", the
 *               reason logged and recorded (which runs on_failure), and
 *               close() fails with EIO.  After an apply the base no longer
 *               describes the copy (the copy is not duplicated to keep
 *               one): a later apply of the same session while the live
 *               database moved again is kept as a conflict — a client that
 *               writes again after a close, which is rare.  A client that
 *               left a hot journal or a WAL beside the copy has not
 *               finished its transaction: refused.  An open after every
 *               handle of a session has flushed begins a new session,
 *               even while RELEASEs of the old one are still on their way.
 *               The old session is freed by its last RELEASE.
 *
 *   pending     a name created in snapshots/ (a snapshot request): when its
 *               last write handle closes (FLUSH), nothing written means
 *               "take a manual snapshot labelled NAME" (touch, : >, a file
 *               manager's New File); bytes written mean "import them" (cp
 *               x.db snapshots/, a paste), replacing a manual snapshot an
 *               earlier close took.  The outcome is the node's and happens
 *               once (node->outcome_lock): later flushes with nothing new
 *               return its verdict.  A read-only handle never takes or
 *               imports: file managers sniff a new file's type while it
 *               is being written, or while it is still empty.
 *
 *   wal         a staging file X renamed onto current.db while a staging
 *               file X-wal exists (cp src.db src.db-wal MNT/; mv MNT/src.db
 *               MNT/current.db): the backing files have private names, so
 *               X-wal is hard-linked as "<X's backing file>-wal" for the
 *               time of the restore and SQLite reads X with its committed
 *               transactions, exactly as snapctl restore reads src.db.
 *
 * Restores through the mount are serialized by fs->apply_lock.  An edit
 * session's "unchanged" check runs again inside the restore, under the
 * live database's write lock (snap_restore_file_ex with session_precond):
 * a commit by an application on the real path after the session copy was
 * taken — even one racing with the apply — sends the edit to the merge,
 * never loses the commit.  Rollback mode compares the header's change
 * counter with the one read before the copy was taken; WAL mode, the
 * data_version of a connection opened before the copy was taken.  The
 * merge holds the live write lock itself from its checks to its commit.
 *
 * Thread-safety: handle state is protected by h->lock, held by the caller
 * (ops.c) around every call here; session counters and a request's
 * writers and outcome by fs->lock; reaching a request's outcome by its
 * node's outcome_lock (one at a time, whichever handle closes).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

/* What the session copy is called in messages. */
#define SESSION_SHOWN "the edited copy of current.db"

struct snap_session {
	char path[PATH_MAX];   /* the session copy (fixed at creation) */
	int ready;             /* the copy exists (fs->lock) */
	uint64_t base_gen;     /* live generation the copy was taken at */
	unsigned writers;      /* joined handles (fs->lock) */
	unsigned active;       /* joined handles not yet flushed (fs->lock) */
	int dirty;             /* written since the last apply (fs->lock) */
	/* The conflict check under the live write lock (session_precond):
	 * what the live database was when the copy was taken. */
	int wal;               /* it was in WAL mode */
	uint32_t base_counter; /* rollback mode: header change counter */
	sqlite3 *watch;        /* WAL mode: a connection open since then */
	int64_t watch_dv;      /* and its PRAGMA data_version then */
	/* The merge: what the copy was when the edit began (apply_lock). */
	int base_fd;           /* the image the copy was made from (a dup of
				  its descriptor; the file is unlinked), or
				  -1 once an apply made it meaningless */
	int merged;            /* an apply merged the edit: the copy is no
				  longer what the live database holds, so
				  it must never be restored over it */
	struct snap_session *next; /* on the list of finished sessions
				  waiting for their RELEASEs (fs->lock) */
};

/* Sessions replaced while RELEASEs were outstanding (fs->lock). */
static struct snap_session *finished;

/* Take s off the finished list, if it is there.  Caller holds fs->lock. */
static void finished_remove(struct snap_session *s)
{
	struct snap_session **p;

	for (p = &finished; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			return;
		}
}

/* PRAGMA data_version on db; 0 or -EIO. */
static int session_data_version(sqlite3 *db, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = -EIO;

	if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	}
	sqlite3_finalize(st);
	return rc;
}

static void session_watch_close(struct snap_session *s)
{
	if (s->watch)
		sqlite3_close_v2(s->watch);
	s->watch = NULL;
}

/* Forget the merge's base: an apply made the edit part of the live
 * database, so "what the edit changed" starts again from the copy (which
 * is not kept: see the top of this file). */
static void session_base_drop(struct snap_session *s)
{
	if (s->base_fd >= 0)
		close(s->base_fd);
	s->base_fd = -1;
}

/* Remember the live database's state before the copy is taken (a commit
 * in between makes a false conflict, never a lost one). */
static void session_watch_open(struct snap_session *s)
{
	snap_live_token tok;
	snap_err err;

	snap_err_clear(&err);
	session_watch_close(s);
	s->wal = 0;
	if (snap_live_token_get(snap_fs.db_path, &tok, &err) != 0)
		return;
	s->wal = tok.wal;
	s->base_counter = tok.change_counter;
	if (!tok.wal)
		return;
	if (sqlite3_open_v2(snap_fs.db_path, &s->watch,
			    SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    session_data_version(s->watch, &s->watch_dv) != 0)
		session_watch_close(s);
}

/* Page size in a database file's header, 0 if unreadable. */
static unsigned file_page_size(const char *path)
{
	unsigned char h[2];
	unsigned ps = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, h, 2, 16) == 2)
		ps = h[0] << 8 | h[1];
	close(fd);
	return ps == 1 ? 65536 : ps;
}

/*
 * Run by the engine with the live database's write lock held, right before
 * the copy: did anything commit since the session copy was taken?  Rollback
 * mode: the header's change counter (read under the lock, through tok).
 * WAL mode: the data_version of the connection kept open since the start.
 */
static int session_precond(void *ctx, const snap_live_token *tok,
			   snap_err *err)
{
	struct snap_session *s = ctx;
	int64_t dv;

	if (tok->wal != s->wal) {
		snap_err_set(err, -ESTALE, "the live database changed journal "
			     "mode since the edit began");
		return -ESTALE;
	}
	if (!tok->wal) {
		if (tok->change_counter == s->base_counter)
			return 0;
		snap_err_set(err, -ESTALE, "the live database changed since "
			     "the edit began (change counter %u, was %u)",
			     tok->change_counter, s->base_counter);
		return -ESTALE;
	}
	if (s->watch && session_data_version(s->watch, &dv) == 0 &&
	    dv == s->watch_dv)
		return 0;
	snap_err_set(err, -ESTALE, "the live database changed since the edit "
		     "began");
	return -ESTALE;
}

/* ---- the staging directory -------------------------------------------- */

/*
 * The staging directory is the store's (engine/storedir.c): created 0700,
 * opened without following a link, checked and emptied there, and kept
 * open here for the daemon's lifetime.  Every path in it is anchored to
 * that fd ("/proc/self/fd/N/upload-7"), so nobody who can rename the store
 * away can redirect a staging file; SQLite keeps the anchor too (the
 * engine's anchored VFS).
 */
static int staging_fd = -1;     /* written at start-up and shutdown only */

int snap_staging_init(snap_store *store, char *out, size_t len,
		      snap_err *err)
{
	int fd = snap_storedir_sub_open(store, "staging", out, len, err);

	if (fd < 0)
		return fd;
	staging_fd = fd;
	return 0;
}

void snap_staging_cleanup(snap_store *store)
{
	if (staging_fd < 0)
		return;
	snap_storedir_sub_remove(store, "staging", staging_fd);
	staging_fd = -1;
}

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

/* ---- restores --------------------------------------------------------- */

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
static int apply_errno(int rc)
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

static void apply_count(int rc)
{
	pthread_mutex_lock(&snap_fs.lock);
	if (rc == 0)
		snap_fs.restores_ok++;
	else
		snap_fs.restores_failed++;
	pthread_mutex_unlock(&snap_fs.lock);
}

static void apply_report(int rc, const char *from, const snap_err *err,
			 const snap_restore_result *res)
{
	apply_count(rc);
	if (rc == 0)
		snap_log(LOG_INFO, "restored current.db from %s%s%s%s", from,
			 res->have_safety ? " (the previous state is snapshot "
					  : "",
			 res->have_safety ? res->safety.name : "",
			 res->have_safety ? ")" : "");
	else
		snap_log(LOG_ERR, "restore of current.db from %s refused (%s%s"
			 "): %s%s", from, strerror(-rc), apply_errno(rc) != rc ?
			 ", reported as an I/O error" : "",
			 err->msg[0] ? err->msg : "no detail",
			 res->rolled_back ? "; the live database was rolled "
					    "back to its previous state" :
					    "; the live database is unchanged");
}

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
	return apply_errno(rc);
}

/* The same, for a file; the caller holds apply_lock. */
static int apply_file_locked(const char *path, const char *shown_name,
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
static int side_path(const char *path, const char *suffix, char *out,
		     size_t len)
{
	return snprintf(out, len, "%s%s", path, suffix) >= (int)len ?
	       -ENAMETOOLONG : 0;
}

/* Remove what SQLite finds beside a staging file: "-wal", "-shm". */
static void side_remove(const char *path)
{
	static const char *const suffix[] = { "-wal", "-shm" };
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < 2; i++)
		if (side_path(path, suffix[i], p, sizeof(p)) == 0)
			unlink(p);
}

int snap_apply_file(const char *path, const char *wal, const char *shown_name,
		    const char *label)
{
	char link_path[PATH_MAX];
	int rc = 0;

	pthread_mutex_lock(&snap_fs.apply_lock);
	if (wal) {
		/* The staged -wal under the name SQLite looks for: the
		 * engine reads the file as SQLite would beside its WAL
		 * (committed transactions included), as snapctl restore
		 * does with the original files.  A hard link: both live in
		 * the staging directory, and nothing writes the WAL. */
		side_remove(path);
		rc = side_path(path, "-wal", link_path, sizeof(link_path));
		if (rc == 0 && link(wal, link_path) != 0)
			rc = -errno;
		if (rc != 0) {
			snap_log(LOG_ERR, "restore of current.db from %s "
				 "refused: cannot place its WAL beside it in "
				 "the staging directory: %s; the live "
				 "database is unchanged", shown_name,
				 strerror(-rc));
			apply_count(rc);
		}
	}
	if (rc == 0)
		rc = apply_file_locked(path, shown_name, label, NULL);
	if (wal)
		side_remove(path);
	pthread_mutex_unlock(&snap_fs.apply_lock);
	return apply_errno(rc);
}

/* ---- uploads (staged replace) ------------------------------------------ */

/* What an upload is written to, for messages: current.db, or the name a
 * file in restore/ has (restoredir.c). */
static const char *upload_target(const struct snap_handle *h)
{
	return h->target[0] ? h->target : SNAP_NAME_CURRENT;
}

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
		rc = snap_apply_file(h->path, NULL, shown, "upload");
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

/* ---- edit sessions ------------------------------------------------------ */

/* The end of a session: its files and what it holds. */
static void session_free(struct snap_session *s)
{
	unlink(s->path);
	session_watch_close(s);
	session_base_drop(s);
	free(s);
}

int snap_session_join(struct snap_handle *h)
{
	struct snap_session *s;

	pthread_mutex_lock(&snap_fs.lock);
	s = snap_fs.session;
	if (s && s->active == 0) {
		/* Every handle of it has flushed (its edit applied or
		 * refused) and only RELEASEs are outstanding: an open now
		 * begins a new edit, from the live database as it is. */
		s->next = finished;
		finished = s;
		snap_fs.session = NULL;
		s = NULL;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			pthread_mutex_unlock(&snap_fs.lock);
			return -ENOMEM;
		}
		s->base_fd = -1;
		if (snprintf(s->path, sizeof(s->path), "%s/session-%llu.db",
			     snap_fs.staging_dir,
			     (unsigned long long)++snap_fs.file_seq) >=
		    (int)sizeof(s->path)) {
			free(s);
			pthread_mutex_unlock(&snap_fs.lock);
			return -ENAMETOOLONG;
		}
		snap_fs.session = s;
	}
	s->writers++;
	s->active++;
	pthread_mutex_unlock(&snap_fs.lock);
	h->kind = SNAP_H_SESSION;
	h->sess = s;
	h->closing = 0;
	h->fd = -1;
	return 0;
}

/* Copy the first size bytes of the file open as src into a new file at
 * path (an image into a session copy, a session's base for the merge). */
static int session_copy(int src, uint64_t size, const char *path)
{
	char buf[1 << 16];
	off_t off = 0;
	int fd, rc = 0;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while ((uint64_t)off < size) {
		ssize_t n = pread(src, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		if (pwrite(fd, buf, (size_t)n, off) != n) {
			rc = -errno;
			break;
		}
		off += n;
	}
	close(fd);
	if (rc != 0)
		unlink(path);
	return rc;
}

int snap_session_ready(struct snap_handle *h)
{
	struct snap_session *s = h->sess;
	struct snap_live_image *im = NULL;
	snap_err err;
	int ready, rc = 0;

	if (h->fd >= 0)
		return 0;
	snap_err_clear(&err);
	pthread_mutex_lock(&snap_fs.apply_lock);
	pthread_mutex_lock(&snap_fs.lock);
	ready = s->ready;
	pthread_mutex_unlock(&snap_fs.lock);
	if (!ready) {
		/* Before the image: a commit in between makes a false
		 * conflict, never a lost one. */
		session_watch_open(s);
		rc = snap_live_image_get(snap_fs.live, &im, &err);
		if (rc == 0) {
			rc = session_copy(im->fd, im->size, s->path);
			if (rc == 0) {
				/* Keep the image itself as the merge's base
				 * (its own reference to the unlinked file). */
				s->base_fd = fcntl(im->fd, F_DUPFD_CLOEXEC, 0);
				if (s->base_fd < 0)
					snap_log(LOG_WARNING, "current.db: "
						 "keeping the edit's base: %s; "
						 "if the live database changes "
						 "meanwhile, the edit will be "
						 "kept as a conflict snapshot",
						 strerror(errno));
				pthread_mutex_lock(&snap_fs.lock);
				s->ready = 1;
				s->base_gen = im->gen;
				pthread_mutex_unlock(&snap_fs.lock);
			} else
				snap_err_set(&err, rc, "copying the image to "
					     "%s: %s", s->path, strerror(-rc));
			snap_live_image_put(snap_fs.live, im);
		}
		if (rc != 0)
			snap_log(LOG_ERR, "current.db: cannot start an edit "
				 "session: %s", err.msg);
	}
	pthread_mutex_unlock(&snap_fs.apply_lock);
	if (rc != 0)
		return rc;
	h->fd = open(s->path, O_RDWR | O_CLOEXEC);
	return h->fd < 0 ? -errno : 0;
}

void snap_session_wrote(struct snap_handle *h)
{
	struct snap_session *s = h->sess;

	pthread_mutex_lock(&snap_fs.lock);
	s->dirty = 1;
	if (h->closing) {
		h->closing = 0;
		s->active++;
	}
	pthread_mutex_unlock(&snap_fs.lock);
}

/* 1 when the staging file called name in the root holds an unfinished
 * transaction: a hot rollback journal or a non-empty WAL. */
static int session_side_busy(const char *name)
{
	static const unsigned char magic[8] = {
		0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7 };
	unsigned char hdr[8];
	struct snap_node *n;
	char path[PATH_MAX];
	struct stat st;
	int fd, busy = 0;

	n = snap_node_find_open(SNAP_INO_ROOT, name);
	if (!n)
		return 0;
	snprintf(path, sizeof(path), "%s", n->path);
	snap_node_close(n);
	if (stat(path, &st) != 0 || st.st_size == 0)
		return 0;
	if (strstr(name, "-wal"))
		return 1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	busy = pread(fd, hdr, 8, 0) == 8 && memcmp(hdr, magic, 8) == 0;
	close(fd);
	return busy;
}

/*
 * Merge the session's edit into the live database as a changeset (the
 * live database changed since the copy was taken): the engine compares a
 * copy of the base with the session copy.  The caller holds apply_lock.
 * 0 or a negative errno, err saying why.
 */
static int session_merge(struct snap_session *s, snap_err *err)
{
	snap_merge_opts o = { "an edit of current.db through the mount" };
	snap_merge_result res;
	char base[PATH_MAX];
	struct stat st;
	size_t i;
	int rc;

	if (s->base_fd < 0)
		return snap_err_set(err, -ESTALE, "the live database changed "
				    "since the edit began, and what the edit "
				    "began from is no longer known (it was "
				    "applied once already), so its own changes "
				    "cannot be told apart");
	rc = side_path(s->path, "-base", base, sizeof(base));
	if (rc == 0)
		rc = fstat(s->base_fd, &st) == 0 ?
		     session_copy(s->base_fd, (uint64_t)st.st_size, base) :
		     -errno;
	if (rc != 0)
		return snap_err_set(err, rc, "copying what the edit began from "
				    "into the staging directory: %s",
				    strerror(-rc));
	rc = snap_merge_apply(snap_fs.store, base, s->path, &o, &res, err);
	unlink(base);
	snap_err_rename(err, base, "the copy the edit began "
		 "from");
	snap_err_rename(err, s->path, SESSION_SHOWN);
	if (rc == 0)
		snap_log(LOG_INFO, "edit of current.db merged into the live "
			 "database as a changeset (%lld row%s inserted, %lld "
			 "updated, %lld deleted)%s%s%s",
			 (long long)res.inserted, res.inserted == 1 ? "" : "s",
			 (long long)res.updated, (long long)res.deleted,
			 res.have_safety ? "; the previous state is snapshot "
					 : "",
			 res.have_safety ? res.safety.name : "",
			 res.have_safety ? "" : "; nothing to change");
	for (i = 0; rc == 0 && i < res.nrekeyed; i++)
		snap_log(LOG_INFO, "edit of current.db: its row %s=%lld of "
			 "table %s is now %s=%lld (an application inserted a "
			 "row with the same automatic key meanwhile)",
			 res.rekeyed[i].column,
			 (long long)res.rekeyed[i].old_key,
			 res.rekeyed[i].table, res.rekeyed[i].column,
			 (long long)res.rekeyed[i].new_key);
	snap_merge_result_free(&res);
	return rc;
}

/*
 * An edit that cannot be applied is kept as a snapshot of kind conflict,
 * the reason (why) logged and recorded, which runs on_failure.  The caller
 * holds apply_lock.  Returns -EIO (the edit is kept), or why it could not
 * be kept.
 */
static int session_conflict(struct snap_session *s, const snap_err *why)
{
	char comment[SNAP_COMMENT_MAX + 1];
	snap_create_opts o;
	snap_info info;
	snap_err err;
	int rc;

	memset(&o, 0, sizeof(o));
	o.kind = SNAP_KIND_CONFLICT;
	o.label = "conflict";
	snprintf(comment, sizeof(comment), "an edit of current.db through "
		 "the mount, not applied: %s", why->msg);
	o.comment = comment;
	o.source_name = SESSION_SHOWN;
	snap_err_clear(&err);
	rc = snap_snapshot_import(snap_fs.store, s->path, &o, &info, &err);
	pthread_mutex_lock(&snap_fs.lock);
	snap_fs.conflicts++;
	snap_fs.restores_failed++;
	pthread_mutex_unlock(&snap_fs.lock);
	if (rc == 0) {
		snap_log(LOG_ERR, "edit of current.db not applied: %s; the "
			 "edited copy is kept as snapshot %s", why->msg,
			 info.name);
		snap_event_add(snap_fs.store, "restore", info.name, 0,
			       "edit of current.db through the mount not "
			       "applied: %s; kept as conflict snapshot %s",
			       why->msg, info.name);
		return -EIO;
	}
	snap_log(LOG_ERR, "edit of current.db not applied: %s; and the edited "
		 "copy could not be kept: %s", why->msg, err.msg);
	snap_event_add(snap_fs.store, "restore", "", 0, "edit of current.db "
		       "through the mount not applied: %s; the edited copy "
		       "could not be kept: %s", why->msg, err.msg);
	return rc;
}

/*
 * Apply the session copy to the live database: as a restore when the live
 * database did not change since the copy was taken, otherwise as a merge;
 * what neither can apply is kept as a conflict snapshot.  0 or a negative
 * errno (the reason logged).
 */
static int session_apply(struct snap_session *s)
{
	snap_err err;
	uint64_t gen;
	int rc, dirty;

	pthread_mutex_lock(&snap_fs.apply_lock);
	pthread_mutex_lock(&snap_fs.lock);
	dirty = s->dirty && s->ready;
	s->dirty = 0;
	pthread_mutex_unlock(&snap_fs.lock);
	if (!dirty) {
		pthread_mutex_unlock(&snap_fs.apply_lock);
		return 0;
	}
	if (session_side_busy(SNAP_NAME_CURRENT "-journal") ||
	    session_side_busy(SNAP_NAME_CURRENT "-wal")) {
		snap_log(LOG_ERR, "edit of current.db not applied: the client "
			 "left an unfinished transaction (a hot journal or a "
			 "WAL beside it); the live database is unchanged");
		pthread_mutex_unlock(&snap_fs.apply_lock);
		apply_count(-EIO);
		return -EIO;
	}
	gen = snap_live_gen(snap_fs.live);
	if (!s->merged && gen == s->base_gen) {
		snap_restore_opts ro = { .precond = session_precond,
					 .ctx = s };
		const snap_restore_opts *rop = &ro;

		/* WAL across page sizes is refused while any connection is
		 * open (engine/PITFALLS.md 10): then only the check above
		 * applies. */
		if (s->wal && file_page_size(s->path) !=
		    file_page_size(snap_fs.db_path)) {
			session_watch_close(s);
			rop = NULL;
		}
		rc = apply_file_locked(s->path, SESSION_SHOWN, "edit", rop);
		if (rc == 0) {
			gen = snap_live_gen(snap_fs.live);
			session_watch_open(s);
			session_base_drop(s);
			pthread_mutex_lock(&snap_fs.lock);
			s->base_gen = gen;
			pthread_mutex_unlock(&snap_fs.lock);
		}
		if (rc != -ESTALE) {
			pthread_mutex_unlock(&snap_fs.apply_lock);
			return apply_errno(rc);
		}
		/* An application committed after the check above. */
	}

	/* The live database moved on: merge the edit's rows into it. */
	snap_err_clear(&err);
	rc = session_merge(s, &err);
	if (rc == 0) {
		s->merged = 1;
		session_base_drop(s);
		pthread_mutex_unlock(&snap_fs.apply_lock);
		apply_count(0);
		return 0;
	}
	rc = session_conflict(s, &err);
	pthread_mutex_unlock(&snap_fs.apply_lock);
	return apply_errno(rc);
}

int snap_session_flush(struct snap_handle *h)
{
	struct snap_session *s = h->sess;
	int last, dirty;

	pthread_mutex_lock(&snap_fs.lock);
	if (!h->closing) {
		h->closing = 1;
		s->active--;
	}
	last = s->active == 0;
	dirty = s->dirty;
	pthread_mutex_unlock(&snap_fs.lock);
	if (!last || !dirty)
		return 0;
	return session_apply(s);
}

/* Leave the session; the last one out applies what is still unapplied
 * (only when apply is 1) and removes the copy. */
static void session_leave(struct snap_handle *h, int apply)
{
	struct snap_session *s = h->sess;
	int last, dirty;

	pthread_mutex_lock(&snap_fs.lock);
	s->writers--;
	if (!h->closing)
		s->active--;
	last = s->writers == 0;
	if (last && snap_fs.session == s)
		snap_fs.session = NULL;
	else if (last)
		finished_remove(s);
	dirty = s->dirty;
	pthread_mutex_unlock(&snap_fs.lock);
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	h->sess = NULL;
	if (!last)
		return;
	if (!apply && dirty)
		snap_log(LOG_WARNING, "current.db: an edit that was never "
			 "closed is discarded");
	if (apply && dirty) {
		snap_log(LOG_WARNING, "current.db: the last writer went away "
			 "without a close that could report; applying its "
			 "edit now");
		session_apply(s);
	}
	session_free(s);
}

void snap_session_leave(struct snap_handle *h)
{
	session_leave(h, 1);
}

void snap_session_discard(struct snap_handle *h)
{
	session_leave(h, 0);
}

int snap_session_to_upload(struct snap_handle *h)
{
	session_leave(h, 0);
	return snap_upload_begin(h);
}

int64_t snap_session_size(struct snap_handle *h)
{
	struct stat st;

	if (h->fd < 0 || fstat(h->fd, &st) != 0)
		return -1;
	return st.st_size;
}

void snap_session_describe(int *open, unsigned *writers, int *dirty)
{
	pthread_mutex_lock(&snap_fs.lock);
	*open = snap_fs.session != NULL;
	*writers = snap_fs.session ? snap_fs.session->writers : 0;
	*dirty = snap_fs.session ? snap_fs.session->dirty : 0;
	pthread_mutex_unlock(&snap_fs.lock);
}

void snap_session_shutdown(void)
{
	struct snap_session *s;

	pthread_mutex_lock(&snap_fs.lock);
	s = snap_fs.session;
	snap_fs.session = NULL;
	while (finished) {
		struct snap_session *f = finished;

		finished = f->next;
		session_free(f);
	}
	pthread_mutex_unlock(&snap_fs.lock);
	if (!s)
		return;
	if (s->dirty)
		snap_log(LOG_WARNING, "unmounting with an unapplied edit of "
			 "current.db still open; it is discarded");
	/* Handles still pointing at s are gone with the session loop. */
	session_free(s);
}

/* ---- snapshot requests (pending nodes) ---------------------------------- */

/* Delete snapshot id quietly (a request's earlier outcome it replaces). */
static void pending_drop(int64_t id)
{
	snap_err err;

	snap_err_clear(&err);
	if (id > 0 && snap_store_delete(snap_fs.store, id, &err) != 0)
		snap_log(LOG_WARNING, "removing snapshot %lld: %s",
			 (long long)id, err.msg);
}

void snap_pending_open(struct snap_handle *h, int writable)
{
	pthread_mutex_lock(&snap_fs.lock);
	h->writer = writable;
	h->closing = 0;
	if (writable)
		h->node->writers++;
	pthread_mutex_unlock(&snap_fs.lock);
}

void snap_pending_wrote(struct snap_handle *h)
{
	struct snap_node *n = h->node;

	pthread_mutex_lock(&snap_fs.lock);
	n->dirty = 1;
	if (h->writer && h->closing) {
		/* Written again after its close (a shell's dup2): it is
		 * one of the writers to wait for again. */
		h->closing = 0;
		n->writers++;
	}
	pthread_mutex_unlock(&snap_fs.lock);
}

/*
 * Take or import: what the request's bytes say now.  Nothing means "take
 * a manual snapshot labelled NAME" (touch, : >, a file manager's New
 * File); bytes mean "import them" (cp x.db snapshots/, a paste), and
 * replace what an earlier outcome of the same request made (a manual
 * snapshot taken at a first, empty close).  fd is a handle's descriptor
 * on the request's file.  The caller holds the node's outcome_lock;
 * returns the verdict (0 or a negative errno, logged).
 */
static int pending_decide(struct snap_node *n, int fd)
{
	snap_create_opts o;
	snap_info info;
	snap_err err;
	char label[NAME_MAX + 1];
	struct stat st;
	int64_t had;
	int rc;

	pthread_mutex_lock(&snap_fs.lock);
	had = n->decided ? n->snap_id : 0;
	n->dirty = 0;               /* bytes from now on ask again */
	snprintf(label, sizeof(label), "%s", n->name);
	pthread_mutex_unlock(&snap_fs.lock);

	if (fstat(fd, &st) != 0) {
		rc = -errno;
		snap_log(LOG_ERR, "snapshot request \"%s\": its staging file: "
			 "%s; nothing changed", label, strerror(-rc));
		pthread_mutex_lock(&snap_fs.lock);
		n->dirty = 1;           /* the next close asks again */
		pthread_mutex_unlock(&snap_fs.lock);
		return apply_errno(rc);
	}
	memset(&o, 0, sizeof(o));
	o.label = label;
	snap_err_clear(&err);
	if (st.st_size == 0) {
		if (had)
			return 0;           /* already a snapshot */
		o.kind = SNAP_KIND_MANUAL;
		rc = snap_snapshot_take(snap_fs.store, &o, &info, &err);
		if (rc == 0)
			snap_log(LOG_INFO, "snapshot %s taken", info.name);
		else
			snap_log(LOG_ERR, "taking snapshot \"%s\": %s", label,
				 err.msg);
	} else {
		/* The bytes replace what the request made before (first, so
		 * that the import gets the name without a suffix). */
		pending_drop(had);
		o.kind = SNAP_KIND_IMPORT;
		o.source_name = "the file";
		rc = snap_snapshot_import(snap_fs.store, n->path, &o, &info,
					  &err);
		if (rc == 0)
			snap_log(LOG_INFO, "imported snapshot %s", info.name);
		else
			snap_log(LOG_ERR, "importing \"%s\" as a snapshot "
				 "refused (%s%s): %s", label, strerror(-rc),
				 apply_errno(rc) != rc ? ", reported as an "
				 "I/O error" : "", err.msg);
	}
	pthread_mutex_lock(&snap_fs.lock);
	n->decided = 1;
	n->snap_id = rc == 0 ? info.id : 0;
	n->last_rc = apply_errno(rc);
	if (n->linked)
		snap_node_unlink_locked(n);
	pthread_mutex_unlock(&snap_fs.lock);
	return apply_errno(rc);
}

/*
 * FLUSH of a handle on a request.  The outcome belongs to the node: it is
 * reached once, when its last writer closes (a writer that writes again
 * counts again), and again only when new bytes arrived since.  A reader
 * never reaches it: a file manager opens a new file read-only to sniff
 * its type while the paste is still being written, and its close must
 * neither import the bytes so far nor take a snapshot of an empty file.
 */
int snap_pending_flush(struct snap_handle *h)
{
	struct snap_node *n = h->node;
	int last, ask, rc;

	if (!h->writer)
		return 0;
	pthread_mutex_lock(&n->outcome_lock);
	pthread_mutex_lock(&snap_fs.lock);
	if (!h->closing) {
		h->closing = 1;
		n->writers--;
	}
	last = n->writers == 0;
	ask = n->dirty || !n->decided;
	rc = n->decided ? n->last_rc : 0;
	pthread_mutex_unlock(&snap_fs.lock);
	if (last && ask)
		rc = pending_decide(n, h->fd);
	pthread_mutex_unlock(&n->outcome_lock);
	return rc;
}

void snap_pending_release(struct snap_handle *h, int apply)
{
	int closing;

	pthread_mutex_lock(&snap_fs.lock);
	closing = h->closing;
	pthread_mutex_unlock(&snap_fs.lock);
	if (!h->writer || closing)
		return;
	if (apply) {
		/* Bytes after the last close: their verdict can only be
		 * logged (pending_decide did). */
		snap_pending_flush(h);
		return;
	}
	pthread_mutex_lock(&snap_fs.lock);
	h->closing = 1;
	h->node->writers--;
	pthread_mutex_unlock(&snap_fs.lock);
}
