/*
 * fs/sessionapply.c — applying an edit session's copy to the live
 * database: restored while the live database is unchanged since the copy
 * was taken, merged as a changeset once it moved, kept as a conflict
 * snapshot when neither can carry it (session.c says when).
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
 *
 * Thread-safety: the caller holds fs->apply_lock across an apply; the
 * session's counters are fs->lock's.
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
#include "session.h"

/* What the session copy is called in messages. */
#define SESSION_SHOWN "the edited copy of current.db"

/* Close the connection that watches the live database's data_version. */
void snap_session_watch_close(struct snap_session *s)
{
	if (s->watch)
		sqlite3_close_v2(s->watch);
	s->watch = NULL;
}

/* Forget the merge's base: an apply made the edit part of the live
 * database, so "what the edit changed" starts again from the copy (which
 * is not kept: see the top of this file). */
void snap_session_base_drop(struct snap_session *s)
{
	if (s->base_fd >= 0)
		close(s->base_fd);
	s->base_fd = -1;
}

/* Remember the live database's state before the copy is taken (a commit
 * in between makes a false conflict, never a lost one). */
void snap_session_watch_open(struct snap_session *s)
{
	snap_live_token tok;
	snap_err err;

	snap_err_clear(&err);
	snap_session_watch_close(s);
	s->wal = 0;
	if (snap_livedb_token_get(snap_fs.db_path, &tok, &err) != 0)
		return;
	s->wal = tok.wal;
	s->base_counter = tok.change_counter;
	if (!tok.wal)
		return;
	if (snap_livedb_open(snap_fs.db_path, SNAP_LIVEDB_RO |
			     SNAP_LIVEDB_SHARED, NULL, &s->watch, &err) != 0 ||
	    snap_livedb_data_version(s->watch, &s->watch_dv, NULL) != 0)
		snap_session_watch_close(s);
}

/* Page size in a database file's header, 0 if unreadable (the session
 * copy: a staging file of the daemon's own). */
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

/* The live database's page size, 0 if unknown: asked of SQLite, never
 * read with a descriptor of our own, whose close() would drop the locks
 * the daemon's connections hold on the file (engine/PITFALLS.md 2), and
 * whose open() would follow a symlink or wait for good on a FIFO planted
 * at the live name. */
static unsigned live_page_size(void)
{
	enum snap_live_state state;
	int64_t ps = 0;
	int wal;

	if (snap_livedb_probe(snap_fs.db_path, &state, &wal, &ps, NULL) != 0 ||
	    state != SNAP_LIVE_DB || ps <= 0)
		return 0;
	return (unsigned)ps;
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
	if (s->watch && snap_livedb_data_version(s->watch, &dv, NULL) == 0 &&
	    dv == s->watch_dv)
		return 0;
	snap_err_set(err, -ESTALE, "the live database changed since the edit "
		     "began");
	return -ESTALE;
}


/* Copy the first size bytes of the file open as src into a new file at
 * path (an image into a session copy, a session's base for the merge). */
int snap_session_copy(int src, uint64_t size, const char *path)
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

/* 1 when the staging file called name in the root holds an unfinished
 * transaction: a hot rollback journal or a non-empty WAL. */
static int session_side_busy(const char *name)
{
	struct snap_node *n;
	char path[PATH_MAX];
	struct stat st;

	n = snap_node_find_open(SNAP_INO_ROOT, name);
	if (!n)
		return 0;
	snprintf(path, sizeof(path), "%s", n->path);
	snap_node_close(n);
	if (stat(path, &st) != 0 || st.st_size == 0)
		return 0;
	if (strstr(name, "-wal"))
		return 1;
	return snap_staging_journal_hot(path);
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
	rc = snap_staging_side_path(s->path, "-base", base, sizeof(base));
	if (rc == 0)
		rc = fstat(s->base_fd, &st) == 0 ?
		     snap_session_copy(s->base_fd, (uint64_t)st.st_size, base) :
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
int snap_session_apply(struct snap_session *s)
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
		snap_apply_count(-EIO);
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
		    live_page_size()) {
			snap_session_watch_close(s);
			rop = NULL;
		}
		rc = snap_apply_file_locked(s->path, SESSION_SHOWN, "edit", rop);
		if (rc == 0) {
			gen = snap_live_gen(snap_fs.live);
			snap_session_watch_open(s);
			snap_session_base_drop(s);
			pthread_mutex_lock(&snap_fs.lock);
			s->base_gen = gen;
			pthread_mutex_unlock(&snap_fs.lock);
		}
		if (rc != -ESTALE) {
			pthread_mutex_unlock(&snap_fs.apply_lock);
			return snap_apply_errno(rc);
		}
		/* An application committed after the check above. */
	}

	/* The live database moved on: merge the edit's rows into it. */
	snap_err_clear(&err);
	rc = session_merge(s, &err);
	if (rc == 0) {
		s->merged = 1;
		snap_session_base_drop(s);
		pthread_mutex_unlock(&snap_fs.apply_lock);
		snap_apply_count(0);
		return 0;
	}
	rc = session_conflict(s, &err);
	pthread_mutex_unlock(&snap_fs.apply_lock);
	return snap_apply_errno(rc);
}

