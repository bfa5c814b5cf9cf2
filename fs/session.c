/*
 * fs/session.c — edit sessions of current.db: who joins, who begins a new
 * one, and when the edit is applied (sessionapply.c applies it).
 *
A session is current.db opened for writing without O_TRUNC (a SQLite
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
 *               carry (schema, a table without a key, user_version or
 *               application_id), refuses the merge:
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
 *               A descriptor inherited by a child (fork) is the same
 *               handle: the child's close of its copy — at exec for
 *               SQLite's O_CLOEXEC descriptors, or at exit — sends a
 *               FLUSH too.  While the process that opened the handle
 *               still runs and has not closed it, such a FLUSH is not
 *               the handle's close (counting it applied the edit before
 *               the opener's next transaction, which then became a
 *               conflict); once the opener closed, the inheritors' closes
 *               count, and RELEASE applies what is left either way.
 *
 *
 * Thread-safety: handle state is protected by h->lock, held by the caller
 * (ops.c) around every call here; session counters by fs->lock; making
 * the copy and applying it by fs->apply_lock.
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


/* ---- edit sessions ------------------------------------------------------ */

/* The end of a session: its files and what it holds. */
static void session_free(struct snap_session *s)
{
	unlink(s->path);
	snap_session_watch_close(s);
	snap_session_base_drop(s);
	free(s);
}

/* Join the edit session, or begin one when none is open or all flushed. */
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
	h->let_go = 0;
	h->fd = -1;
	return 0;
}

/* Make sure the session copy exists and h has it open; 0 or -errno. */
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
		snap_session_watch_open(s);
		rc = snap_live_image_get(snap_fs.live, &im, &err);
		if (rc == 0) {
			rc = snap_session_copy(im->fd, im->size, s->path);
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

/* Bytes arrived through h: the session is dirty, h active again. */
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

/* FLUSH of h sent by thread pid: the last active handle applies the
 * edit.  A child's close of the copy it inherited while the opener runs
 * is not the handle's close (see the top of this file). */
int snap_session_flush(struct snap_handle *h, pid_t pid)
{
	struct snap_session *s = h->sess;
	int last, dirty;

	if (!h->let_go && snap_attr_inherited_close(h, pid)) {
		snap_log(LOG_DEBUG, "current.db: process %d closed a copy of "
			 "an edit's descriptor it inherited; the edit goes on",
			 (int)pid);
		return 0;
	}
	h->let_go = 1;
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
	return snap_session_apply(s);
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
		snap_session_apply(s);
	}
	session_free(s);
}

/* RELEASE of h: the last one out applies what is still unapplied. */
void snap_session_leave(struct snap_handle *h)
{
	session_leave(h, 1);
}

/* Leave without applying anything (shutdown, interrupted open). */
void snap_session_discard(struct snap_handle *h)
{
	session_leave(h, 0);
}

/* ftruncate(0) on a session handle: it becomes an upload. */
int snap_session_to_upload(struct snap_handle *h)
{
	session_leave(h, 0);
	return snap_upload_begin(h);
}

/* Size of the session copy through h, or -1 when it is not made yet. */
int64_t snap_session_size(struct snap_handle *h)
{
	struct stat st;

	if (h->fd < 0 || fstat(h->fd, &st) != 0)
		return -1;
	return st.st_size;
}

/* For status.json: is a session open, its writers, dirty. */
void snap_session_describe(int *open, unsigned *writers, int *dirty)
{
	pthread_mutex_lock(&snap_fs.lock);
	*open = snap_fs.session != NULL;
	*writers = snap_fs.session ? snap_fs.session->writers : 0;
	*dirty = snap_fs.session ? snap_fs.session->dirty : 0;
	pthread_mutex_unlock(&snap_fs.lock);
}

/* Discard the session and the finished ones at shutdown. */
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

