/*
 * fs/pending.c — snapshot requests: names created in snapshots/.
 *
A pending node is a name created in snapshots/ (a snapshot request): when its
 *               last write handle closes (FLUSH), nothing written means
 *               "take a manual snapshot labelled NAME" (touch, : >, a file
 *               manager's New File); bytes written mean "import them" (cp
 *               x.db snapshots/, a paste), replacing a manual snapshot an
 *               earlier close took.  The outcome is the node's and happens
 *               once (node->outcome_lock): later flushes with nothing new
 *               return its verdict.  A read-only handle never takes or
 *               imports: file managers sniff a new file's type while it
 *               is being written, or while it is still empty.
 *               A dot-name (rsync's .X.XXXXXX) is a tool's temporary
 *               file: its close decides nothing; its rename onto a plain
 *               name decides under that name (snap_pending_renamed).
 *
 *
 * Thread-safety: handle state is protected by h->lock, held by the caller
 * (ops.c); a request's writers and outcome by fs->lock; reaching a
 * request's outcome by its node's outcome_lock (one at a time, whichever
 * handle closes).
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

/* A handle opened on a snapshot request; a writer counts among its writers. */
void snap_pending_open(struct snap_handle *h, int writable)
{
	pthread_mutex_lock(&snap_fs.lock);
	h->writer = writable;
	h->closing = 0;
	if (writable)
		h->node->writers++;
	pthread_mutex_unlock(&snap_fs.lock);
}

/* Bytes arrived through a request handle: its outcome is to be reached
 * again. */
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
	struct snap_live_mark mark;
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
		return snap_apply_errno(rc);
	}
	memset(&o, 0, sizeof(o));
	o.label = label;
	snap_err_clear(&err);
	if (st.st_size == 0) {
		if (had)
			return 0;           /* already a snapshot */
		o.kind = SNAP_KIND_MANUAL;
		snap_live_capture_begin(snap_fs.live, &mark);
		rc = snap_snapshot_take(snap_fs.store, &o, &info, &err);
		snap_live_capture_end(snap_fs.live, &mark, rc == 0 ? info.id
				      : 0, info.sha256, info.image_size);
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
				 snap_apply_errno(rc) != rc ? ", reported as an "
				 "I/O error" : "", err.msg);
	}
	pthread_mutex_lock(&snap_fs.lock);
	n->decided = 1;
	n->snap_id = rc == 0 ? info.id : 0;
	n->last_rc = snap_apply_errno(rc);
	if (n->linked)
		snap_node_unlink_locked(n);
	pthread_mutex_unlock(&snap_fs.lock);
	return snap_apply_errno(rc);
}

/* 1 when a request's name is a tool's temporary file (a dot-name:
 * rsync's .X.XXXXXX), which no snapshot can be called: its close decides
 * nothing, and its rename onto a plain name does (snap_pending_renamed). */
static int pending_is_staging(const char *name)
{
	return name[0] == '.';
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
	ask = (n->dirty || !n->decided) && !pending_is_staging(n->name);
	rc = n->decided ? n->last_rc : 0;
	pthread_mutex_unlock(&snap_fs.lock);
	if (last && ask)
		rc = pending_decide(n, h->fd);
	pthread_mutex_unlock(&n->outcome_lock);
	return rc;
}

/*
 * Node n, a request not decided yet, was just renamed within snapshots/
 * from a dot-name to a plain one (rsync: .X.XXXXXX onto X): when no writer
 * has it open any more, its outcome is reached now, under the new name,
 * and is the rename's verdict (a file still being written decides at its
 * last close, as any request).
 */
int snap_pending_renamed(struct snap_node *n, const char *oldname)
{
	int ask, fd, rc = 0;

	if (!pending_is_staging(oldname))
		return 0;
	pthread_mutex_lock(&n->outcome_lock);
	pthread_mutex_lock(&snap_fs.lock);
	ask = n->writers == 0 && !n->decided && n->linked &&
	      !pending_is_staging(n->name);
	pthread_mutex_unlock(&snap_fs.lock);
	if (ask) {
		fd = open(n->path, O_RDONLY | O_CLOEXEC);
		rc = fd < 0 ? -EIO : pending_decide(n, fd);
		if (fd >= 0)
			close(fd);
	}
	pthread_mutex_unlock(&n->outcome_lock);
	return rc;
}

/* RELEASE of a request handle (apply 0: the kernel never had it). */
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
