/*
 * fs/file.c — open files: what an open means, and the bytes that flow
 * through it.
 *
 *   current.db, O_RDONLY        a consistent image (live.c), shared while
 *                               the database is unchanged: its first
 *                               pages from memory (a peek), the rest by
 *                               splice from the copy the first read
 *                               beyond them makes, without a lock; or
 *                               the daemon's newest snapshot's image
 *                               when that is provably the database now
 *                               (livereuse.c);
 *   current.db, O_TRUNC         an upload (staging.c), applied at FLUSH;
 *   current.db, read-write      the edit session (staging.c);
 *   a snapshot                  read-only (EROFS otherwise), pages read by
 *                               the engine's snap_image, keep_cache on;
 *   a staging file              its backing file, page cache as usual (a
 *                               client's -shm is mmapped: no direct_io,
 *                               engine/PITFALLS.md 19);
 *   a snapshot request          its backing file, taken or imported at
 *                               the FLUSH of its last writer, never of a
 *                               reader (staging.c);
 *   a file in restore/          its backing file; written under a plain
 *                               name, an upload restored at FLUSH
 *                               (restoredir.c), under a dot-name a staging
 *                               file;
 *   .snapfs/ files              text made at open, direct_io;
 *   .Trash-UID/info/X.trashinfo the text kept with a trashed snapshot
 *                               (trash.c), read-only, direct_io; GLib's
 *                               files being written there are staging
 *                               nodes.
 *
 * CREATE is create.c's.
 *
 * Every handle on current.db is direct_io, so the kernel's page cache never
 * mixes an image, a session copy and an upload (fs/DESIGN.md §6).  Errors of a
 * restore are returned from FLUSH, where close() and therefore cp, mv,
 * rsync, gio and cat see them; RELEASE only cleans up (engine/PITFALLS.md 24).
 * Invalidations are queued after the reply (notify.c).
 *
 * Thread-safety: a handle's state and its descriptor are guarded by its
 * lock, except an image's descriptor, which never changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

/* 1 when the catalog still has the proof's snapshot with the proof's image
 * hash (one indexed read: the size follows from the hash, and the image's
 * size is checked where it is opened); 0 when not, and the proof is
 * dropped then: its snapshot is gone or holds another image. */
static int reuse_in_catalog(const struct snap_live_proof *p)
{
	int rc = snap_store_has(snap_fs.store, p->snap_id, p->sha256);

	if (rc == 0)
		snap_live_reuse_drop(snap_fs.live, p->snap_id);
	return rc == 1;
}

/*
 * A read-only open of current.db reads the image of the daemon's newest
 * snapshot when that is provably the live database now (livereuse.c): no
 * peek, no copy.  1 when h reads it, 0 when the open goes the usual way.
 */
static int open_current_reused(struct snap_handle *h)
{
	snap_err err;

	if (!snap_live_reuse_find(snap_fs.live, &h->proof) ||
	    !reuse_in_catalog(&h->proof))
		return 0;
	snap_err_clear(&err);
	if (snap_image_open(snap_fs.store, h->proof.snap_id, &h->simg,
			    &err) != 0)
		return 0;
	/* A damaged page fails its read, which reads on from the live
	 * database (read_reused): never wrong bytes. */
	snap_image_prove(h->simg, 1);
	if (snap_image_size(h->simg) < sizeof(h->reuse_hdr) ||
	    snap_image_size(h->simg) != h->proof.size ||
	    snap_image_read(h->simg, h->reuse_hdr, sizeof(h->reuse_hdr), 0,
			    &err) != (ssize_t)sizeof(h->reuse_hdr) ||
	    !reuse_in_catalog(&h->proof)) {
		snap_image_close(h->simg);
		h->simg = NULL;
		return 0;
	}
	h->snap_id = h->proof.snap_id;
	h->reuse = 1;
	snap_live_reuse_count(snap_fs.live);
	return 1;
}

/* Open current.db: image, upload or session by the flags. */
static int open_current(struct fuse_file_info *fi, struct snap_handle **out)
{
	struct snap_handle *h = snap_handle_new(SNAP_H_IMAGE);
	snap_err err;
	int acc = fi->flags & O_ACCMODE, rc;

	if (!h)
		return -ENOMEM;
	if (acc == O_RDONLY && open_current_reused(h)) {
		rc = 0;
	} else if (acc == O_RDONLY) {
		snap_err_clear(&err);
		rc = snap_live_image_open(snap_fs.live, &h->img, &err);
		if (rc != 0)
			snap_log(LOG_ERR, "current.db: no consistent image of "
				 "the live database: %s", err.msg);
	} else if (fi->flags & O_TRUNC) {
		rc = snap_upload_begin(h);
	} else {
		rc = snap_session_join(h);
	}
	if (rc != 0) {
		snap_handle_free(h);
		return rc;
	}
	fi->direct_io = 1;
	fi->keep_cache = 0;
	*out = h;
	return 0;
}

/* Open snapshot id read-only through the engine's image reader. */
static int open_snapshot(int64_t id, struct fuse_file_info *fi,
			 struct snap_handle **out)
{
	struct snap_handle *h;
	snap_err err;
	int rc;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return -EROFS;
	h = snap_handle_new(SNAP_H_SNAPSHOT);
	if (!h)
		return -ENOMEM;
	snap_err_clear(&err);
	rc = snap_image_open(snap_fs.store, id, &h->simg, &err);
	if (rc != 0) {
		if (rc != -ENOENT)
			snap_log(LOG_ERR, "opening snapshot %lld: %s",
				 (long long)id, err.msg);
		snap_handle_free(h);
		return rc;
	}
	/* Nothing else proves what cp, rsync or sqlite3 read here (nor a
	 * copy onto current.db, which restores those bytes): each page is
	 * proven against its hash, a damaged one is EIO, never wrong
	 * bytes. */
	snap_image_prove(h->simg, 1);
	h->snap_id = id;
	fi->keep_cache = 1;        /* a snapshot's bytes never change */
	*out = h;
	return 0;
}

/* Open a staging or pending node's backing file. */
int snap_file_open_node(fuse_ino_t ino, struct fuse_file_info *fi,
		     struct snap_handle **out)
{
	struct snap_handle *h;
	struct snap_node *n;
	char path[PATH_MAX];
	int64_t id;
	int flags;

	pthread_mutex_lock(&snap_fs.lock);
	n = snap_node_get_locked(ino);
	if (n)
		snap_node_open_locked(n);
	id = n && n->kind == SNAP_NODE_PENDING ? n->snap_id : 0;
	pthread_mutex_unlock(&snap_fs.lock);
	if (!n)
		return -ENOENT;
	if (id > 0) {
		/* The request became a snapshot: open that. */
		snap_node_close(n);
		return open_snapshot(id, fi, out);
	}
	h = snap_handle_new(n->kind == SNAP_NODE_PENDING ? SNAP_H_PENDING :
		       SNAP_H_STAGING);
	if (!h) {
		snap_node_close(n);
		return -ENOMEM;
	}
	h->node = n;
	snprintf(path, sizeof(path), "%s", n->path);
	/* O_APPEND is the kernel's business: it gives us the offsets. */
	flags = (fi->flags & O_ACCMODE) | O_CLOEXEC;
	h->fd = open(path, flags == (O_WRONLY | O_CLOEXEC) ?
		     O_RDWR | O_CLOEXEC : flags);
	if (h->fd < 0) {
		int rc = -errno;
		snap_handle_free(h);
		snap_node_close(n);
		return rc;
	}
	if (h->kind == SNAP_H_PENDING) {
		/* A reader (a file manager sniffing the type) never
		 * decides what the request becomes. */
		snap_pending_open(h, (fi->flags & O_ACCMODE) != O_RDONLY);
		fi->direct_io = 1;
	}
	if (n->parent == SNAP_INO_RESTORE)
		snap_restoredir_opened(h, fi->flags);
	if ((fi->flags & O_TRUNC) && ftruncate(h->fd, 0) == 0) {
		if (h->kind == SNAP_H_PENDING)
			snap_pending_wrote(h);
		else if (h->kind == SNAP_H_RESTORE)
			h->dirty = 1;
	}
	*out = h;
	return 0;
}

/* OPEN: what the open means depends on the inode and the flags (above). */
void snap_ll_open(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct snap_handle *h = NULL;
	int rc;

	switch (snap_ino_is_dir(ino) ? SNAP_INO_ROOT : ino) {
	case SNAP_INO_ROOT:             /* and every fixed directory */
		rc = -EISDIR;
		break;
	case SNAP_INO_CURRENT: {
		/* The content's times before the open fixes its state: a
		 * commit in between makes them older than the image, never
		 * newer (rsync then copies once more, never skips). */
		struct stat cs;
		int have = snap_live_stat_content(snap_fs.live, &cs) == 0;
		rc = open_current(fi, &h);
		if (rc == 0)
			snap_attr_current_opened(h, fuse_req_ctx(req)->pid,
						 have ? &cs : NULL);
		break;
	}
	case SNAP_INO_STATUS:
	case SNAP_INO_LOG:
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			rc = -EACCES;
			break;
		}
		h = snap_handle_new(SNAP_H_TEXT);
		rc = h ? snap_status_text(ino, &h->text, &h->text_len)
		       : -ENOMEM;
		fi->direct_io = 1;
		break;
	case SNAP_INO_LATEST:
		rc = -ELOOP;
		break;
	default:
		if (snap_ino_is_trash(ino)) {
			h = snap_handle_new(SNAP_H_TEXT);
			rc = h ? snap_trashdir_open(ino, fi->flags, &h->text,
						    &h->text_len) : -ENOMEM;
			fi->direct_io = 1;
		} else if (snap_ino_is_snapshot(ino))
			rc = open_snapshot(snap_ino_snapshot_id(ino), fi, &h);
		else
			rc = snap_file_open_node(ino, fi, &h);
	}
	if (rc != 0) {
		if (h)
			snap_handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	snap_handle_set(fi, h);
	if (fuse_reply_open(req, fi) != 0)
		snap_handle_release(h, 0);  /* interrupted: never released */
}

/* Reply with size bytes of fd at off, by splice where the kernel can. */
static void reply_fd(fuse_req_t req, int fd, size_t size, off_t off)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

/*
 * Reply with len bytes at off (< 100) of a fallback image (at *fd, or
 * head) with the snapshot's database header over the image's: the two
 * differ only there (a copy's own change counter, livereuse.c), and a
 * reader that read the header from the snapshot must see it again.
 */
static void reply_reused_header(fuse_req_t req, struct snap_handle *h,
				int fd, const void *head, size_t len, off_t off)
{
	size_t n = sizeof(h->reuse_hdr) - (size_t)off;
	char *buf = malloc(len);

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (fd < 0)
		memcpy(buf, head, len);
	else if (pread(fd, buf, len, off) != (ssize_t)len) {
		free(buf);
		fuse_reply_err(req, EIO);
		return;
	}
	memcpy(buf, h->reuse_hdr + off, n < len ? n : len);
	fuse_reply_buf(req, buf, len);
	free(buf);
}

/*
 * READ of current.db from a snapshot's image (open_current_reused).  The
 * bytes count only if the catalog still has the snapshot after they were
 * read: its pages cannot have been reclaimed (nor their ids reused) before
 * then.  Otherwise, or when the read failed, the handle goes on from a
 * whole image of the live database, which has the same bytes while the
 * proof holds (snap_live_reuse_fallback), or fails with EIO.  h->lock
 * held.
 */
static void read_reused(fuse_req_t req, struct snap_handle *h, size_t size,
			off_t off)
{
	const void *head;
	snap_err err;
	size_t len;
	ssize_t n = -EIO;
	char *buf = NULL;
	int rc, fd;

	snap_err_clear(&err);
	if (h->simg) {
		buf = malloc(size ? size : 1);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		n = snap_image_read(h->simg, buf, size, (uint64_t)off, &err);
		if (n >= 0 && reuse_in_catalog(&h->proof)) {
			fuse_reply_buf(req, buf, (size_t)n);
			free(buf);
			return;
		}
		free(buf);
		snap_log(LOG_INFO, "current.db: snapshot %lld, read in its "
			 "place, is gone or unreadable (%s); reading on from a "
			 "copy of the live database", (long long)h->snap_id,
			 n < 0 ? err.msg : "no longer in the catalog");
		snap_image_close(h->simg);
		h->simg = NULL;
		snap_err_clear(&err);
		rc = snap_live_reuse_fallback(snap_fs.live, &h->proof, &h->img,
					      &err);
		if (rc != 0) {
			snap_log(LOG_ERR, "current.db: %s", err.msg);
			fuse_reply_err(req, rc == -ESTALE ? EIO : -rc);
			return;
		}
	}
	if (!h->img) {
		fuse_reply_err(req, EIO);
		return;
	}
	rc = snap_live_image_read(snap_fs.live, h->img, (uint64_t)off, size,
				  &fd, &head, &len, &err);
	if (rc != 0)
		fuse_reply_err(req, -rc);
	else if ((uint64_t)off < sizeof(h->reuse_hdr) && len > 0)
		reply_reused_header(req, h, fd, head, len, off);
	else if (fd >= 0)
		reply_fd(req, fd, len, off);
	else
		fuse_reply_buf(req, head, len);
}

/* READ from whatever the handle reads. */
static void read_handle(fuse_req_t req, struct snap_handle *h, size_t size,
			off_t off)
{
	const void *head;
	snap_err err;
	size_t len;
	char *buf;
	ssize_t n;
	int rc, fd;

	switch (h->kind) {
	case SNAP_H_IMAGE:
		if (h->reuse) {
			pthread_mutex_lock(&h->lock);
			read_reused(req, h, size, off);
			pthread_mutex_unlock(&h->lock);
			return;
		}
		/* The head or the built copy: immutable, no lock. */
		snap_err_clear(&err);
		rc = snap_live_image_read(snap_fs.live, h->img, (uint64_t)off,
					  size, &fd, &head, &len, &err);
		if (rc != 0)
			fuse_reply_err(req, -rc);
		else if (fd >= 0)
			reply_fd(req, fd, len, off);
		else
			fuse_reply_buf(req, head, len);
		return;
	case SNAP_H_SNAPSHOT:
		buf = malloc(size ? size : 1);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		snap_err_clear(&err);
		pthread_mutex_lock(&h->lock);
		n = snap_image_read(h->simg, buf, size, (uint64_t)off, &err);
		pthread_mutex_unlock(&h->lock);
		if (n < 0) {
			snap_log(LOG_ERR, "reading snapshot %lld: %s",
				 (long long)h->snap_id, err.msg);
			fuse_reply_err(req, (int)-n);
		} else {
			fuse_reply_buf(req, buf, (size_t)n);
		}
		free(buf);
		return;
	case SNAP_H_TEXT:
		if ((size_t)off >= h->text_len)
			fuse_reply_buf(req, NULL, 0);
		else
			fuse_reply_buf(req, h->text + off,
				       h->text_len - (size_t)off < size ?
				       h->text_len - (size_t)off : size);
		return;
	case SNAP_H_SESSION:
		pthread_mutex_lock(&h->lock);
		rc = h->kind == SNAP_H_SESSION ? snap_session_ready(h) : 0;
		if (rc != 0) {
			pthread_mutex_unlock(&h->lock);
			fuse_reply_err(req, -rc);
			return;
		}
		reply_fd(req, h->fd, size, off);
		pthread_mutex_unlock(&h->lock);
		return;
	case SNAP_H_UPLOAD:
	case SNAP_H_RESTORE:
	case SNAP_H_PENDING:
	case SNAP_H_STAGING:
		pthread_mutex_lock(&h->lock);
		reply_fd(req, h->fd, size, off);
		pthread_mutex_unlock(&h->lock);
		return;
	default:
		fuse_reply_err(req, EISDIR);
	}
}

/* READ: the bytes of the handle fi names. */
void snap_ll_read(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi)
{
	struct snap_handle *h = snap_handle_get(fi);

	(void)ino;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	read_handle(req, h, size, off);
	snap_handle_put(h);
}

/* WRITE into an upload, the session copy, a staging file or a request;
 * nothing else is writable. */
static void write_handle(fuse_req_t req, struct snap_handle *h,
			 const char *buf, size_t size, off_t off)
{
	ssize_t n;
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	switch (h->kind) {
	case SNAP_H_SESSION:
		rc = snap_session_ready(h);
		break;
	case SNAP_H_UPLOAD:
	case SNAP_H_RESTORE:
	case SNAP_H_PENDING:
	case SNAP_H_STAGING:
		break;
	default:
		rc = -EBADF;
	}
	if (rc == 0)
		rc = snap_handle_room(h->fd, fuse_req_ctx(req)->uid, size, off);
	if (rc == 0) {
		n = pwrite(h->fd, buf, size, off);
		if (n < 0)
			rc = -errno;
		else if (h->kind == SNAP_H_SESSION)
			snap_session_wrote(h);
		else if (h->kind == SNAP_H_PENDING)
			snap_pending_wrote(h);
		else
			h->dirty = 1;
	}
	pthread_mutex_unlock(&h->lock);
	if (rc != 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, (size_t)n);
}

/* WRITE: into the handle fi names (staging, upload, session, request). */
void snap_ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
			  size_t size, off_t off, struct fuse_file_info *fi)
{
	struct snap_handle *h = snap_handle_get(fi);

	(void)ino;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	write_handle(req, h, buf, size, off);
	snap_handle_put(h);
}

/* FLUSH (every close()): where uploads, edits and snapshot requests are
 * applied, so that their verdict is what close() returns. */
static void flush_handle(fuse_req_t req, struct snap_handle *h)
{
	char name[NAME_MAX + 1] = "", gone_name[NAME_MAX + 1] = "";
	pid_t pid = fuse_req_ctx(req)->pid;
	fuse_ino_t gone = 0;
	int rc = 0, touched_current = 0, request = 0;

	pthread_mutex_lock(&h->lock);
	switch (h->kind) {
	case SNAP_H_UPLOAD:
		rc = snap_upload_flush(h);
		touched_current = 1;
		break;
	case SNAP_H_SESSION:
		rc = snap_session_flush(h, pid);
		touched_current = 1;
		break;
	case SNAP_H_PENDING:
		pthread_mutex_lock(&snap_fs.lock);
		if (h->node->linked)
			snprintf(name, sizeof(name), "%s", h->node->name);
		pthread_mutex_unlock(&snap_fs.lock);
		rc = snap_pending_flush(h);
		pthread_mutex_lock(&snap_fs.lock);
		if (h->node->linked)
			name[0] = '\0';    /* no outcome yet: still listed */
		pthread_mutex_unlock(&snap_fs.lock);
		request = 1;
		break;
	case SNAP_H_RESTORE:
		rc = snap_restoredir_flush(h, pid, &gone, gone_name,
					   sizeof(gone_name));
		touched_current = 1;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&h->lock);
	if (name[0] && rc == 0 && pid > 0)
		/* An import's name is gone (below): its writer may still set
		 * the mode and times it copied (attr.c), told before the
		 * reply lets it go on. */
		snap_attr_left(SNAP_INO_SNAPDIR, name, snap_attr_tgid(pid));
	fuse_reply_err(req, -rc);
	if (touched_current)
		snap_notify_current(snap_fs.notify);
	if (gone)      /* restored or refused: it left restore/ */
		snap_notify_delete(snap_fs.notify, SNAP_INO_RESTORE, gone,
				   gone_name);
	if (touched_current || request)
		snap_watch_changed();   /* a snapshot, import or safety one */
	if (name[0]) {
		/* The request's name is gone: the snapshot is listed under
		 * its own time-stamped name. */
		snap_notify_entry(snap_fs.notify, SNAP_INO_SNAPDIR, name);
	}
}

/* FLUSH: apply what the handle wrote; close()'s verdict. */
void snap_ll_flush(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct snap_handle *h = snap_handle_get(fi);

	(void)ino;
	if (!h) {
		fuse_reply_err(req, EBADF);
		return;
	}
	flush_handle(req, h);
	snap_handle_put(h);
}

/*
 * Give back what a handle holds — its image, its place in the session, its
 * snapshot reader, its upload file, its node — and free it.  With apply,
 * bytes that arrived after the last FLUSH are still applied (their verdict
 * can only be logged); without, they are dropped (an interrupted open, the
 * shutdown).
 */
void snap_handle_release(struct snap_handle *h, int apply)
{
	struct snap_node *node = h->node;

	pthread_mutex_lock(&h->lock);
	switch (h->kind) {
	case SNAP_H_IMAGE:
		snap_live_image_put(snap_fs.live, h->img);
		h->img = NULL;
		snap_image_close(h->simg);
		h->simg = NULL;
		break;
	case SNAP_H_SESSION:
		if (apply)
			snap_session_leave(h);
		else
			snap_session_discard(h);
		break;
	case SNAP_H_UPLOAD:
		snap_upload_end(h, apply);
		break;
	case SNAP_H_RESTORE:
		snap_restoredir_release(h, apply);
		break;
	case SNAP_H_SNAPSHOT:
		snap_image_close(h->simg);
		h->simg = NULL;
		break;
	case SNAP_H_PENDING:
		snap_pending_release(h, apply);
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&h->lock);
	snap_handle_free(h);
	if (node)
		snap_node_close(node);
}

/* At shutdown: release every handle the kernel never released. */
void snap_handle_free_all(void)
{
	struct snap_handle *h;

	for (;;) {
		pthread_mutex_lock(&snap_fs.lock);
		h = snap_fs.handles;
		pthread_mutex_unlock(&snap_fs.lock);
		if (!h)
			break;
		snap_handle_release(h, 0);
	}
}

/* RELEASE: give back what the handle holds (late bytes still applied). */
void snap_ll_release(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi)
{
	struct snap_handle *h = snap_handle_take(fi);

	(void)ino;
	if (h)
		snap_handle_release(h, 1);
	fuse_reply_err(req, 0);
}

/* FSYNC: nothing to do; staged bytes are made durable by the restore. */
void snap_ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
			  struct fuse_file_info *fi)
{
	/* Staged bytes are temporary by nature: durability comes with the
	 * restore, which the engine makes durable. */
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}
