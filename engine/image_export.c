/*
 * engine/image_export.c — a snapshot's image written to a file
 * (snap_image_export, image.h): the page pipeline (pagepipe.h) decodes
 * pages on its workers, this thread feeds the image's SHA-256 in page
 * order, and a writer thread writes each 1 MiB of pages to a temporary
 * file that is renamed into place only when the hash is the catalog's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "codec.h"
#include "image.h"
#include "image_int.h"
#include "pagepipe.h"
#include "store_int.h"
#include "sys.h"

/*
 * The export's writer thread: write(2) of one buffer of pages while the
 * caller's thread fills the other.  The copy into the page cache was 40%
 * of an export's time on the caller's thread (perf, tests/bench/README.md),
 * beside the image's SHA-256 that must stay in page order there.
 */
typedef struct xwriter {
	pthread_mutex_t mu;
	pthread_cond_t cv;       /* a buffer was handed over or written */
	const uint8_t *buf;      /* mu: being written; NULL when idle */
	size_t len;              /* mu */
	int stop;                /* mu: no more buffers */
	int error;               /* mu: errno of the first failed write */
	int fd;
	off_t written, flushed;  /* write_behind's counts (one writer at a
				    time: the thread, or the caller) */
	pthread_t thread;
	int running;             /* the thread exists (caller only) */
} xwriter;

/* An export's state, shared with the page pipeline's callbacks. */
typedef struct xpass {
	snap_image *im;
	EVP_MD_CTX *md;          /* SHA-256 of the whole image, in order */
	int fd;                  /* the temporary file */
	const char *tmp;         /* its name, for messages */
	uint8_t *bufs[2];        /* pages waiting to be written: filled here, */
	int cur;                 /* bufs[cur]; the other may be writing */
	size_t len, cap;
	xwriter w;
	snap_progress_fn progress;
	void *pctx;
	snap_err *err;
} xpass;

/* Pages handed to write(2) at once, and pages between progress calls. */
#define EXPORT_CHUNK (1u << 20)
#define EXPORT_PROGRESS_PAGES 256u

/* The writer thread: write each buffer handed over, until stopped. */
static void *xwriter_main(void *arg)
{
	xwriter *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		const uint8_t *buf;
		size_t len;
		int e = 0;

		while (!w->buf && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->buf)
			break;
		buf = w->buf;
		len = w->len;
		pthread_mutex_unlock(&w->mu);
		if (snap_sys_write_behind(w->fd, buf, len, &w->written,
					  &w->flushed) < 0)
			e = errno ? errno : EIO;
		pthread_mutex_lock(&w->mu);
		if (e && !w->error)
			w->error = e;
		w->buf = NULL;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Wait until the writer is idle; the errno of a failed write, or 0. */
static int xwriter_wait(xwriter *w)
{
	int e;

	pthread_mutex_lock(&w->mu);
	while (w->buf)
		pthread_cond_wait(&w->cv, &w->mu);
	e = w->error;
	pthread_mutex_unlock(&w->mu);
	return e;
}

/* Write the pages buffered so far: handed to the writer thread (after the
 * previous buffer is written), or written here when there is none. */
static int xpass_flush(xpass *x)
{
	int e = 0;

	if (!x->len)
		return 0;
	if (!x->w.running) {
		if (snap_sys_write_behind(x->fd, x->bufs[x->cur], x->len,
					  &x->w.written, &x->w.flushed) < 0)
			e = errno ? errno : EIO;
	} else if ((e = xwriter_wait(&x->w)) == 0) {
		pthread_mutex_lock(&x->w.mu);
		x->w.buf = x->bufs[x->cur];
		x->w.len = x->len;
		pthread_cond_broadcast(&x->w.cv);
		pthread_mutex_unlock(&x->w.mu);
		x->cur ^= 1;
	}
	x->len = 0;
	if (e)
		return snap_err_set(x->err, -e, "cannot write %s: %s", x->tmp,
				    strerror(e));
	return 0;
}

/* Start the writer thread; without one, xpass_flush writes itself. */
static void xwriter_start(xpass *x)
{
	xwriter *w = &x->w;

	w->fd = x->fd;
	if (!x->bufs[1] || pthread_mutex_init(&w->mu, NULL))
		return;
	if (pthread_cond_init(&w->cv, NULL)) {
		pthread_mutex_destroy(&w->mu);
		return;
	}
	if (pthread_create(&w->thread, NULL, xwriter_main, w)) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		return;
	}
	w->running = 1;
}

/* Write what is buffered, stop the writer thread: 0 or a negative errno
 * (a failed write). */
static int xwriter_finish(xpass *x)
{
	xwriter *w = &x->w;
	int rc = xpass_flush(x), e;

	if (!w->running)
		return rc;
	e = xwriter_wait(w);
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	w->running = 0;
	if (!rc && e)
		rc = snap_err_set(x->err, -e, "cannot write %s: %s", x->tmp,
				  strerror(e));
	return rc;
}

/* Worker: decode one stored page. */
static void xpass_work(void *ctx, snap_pipe_slot *s, snap_codec *codec)
{
	xpass *x = ctx;

	s->outlen = x->im->info.page_size;
	s->status = snap_codec_unpack(codec, s->in, s->inlen, s->out,
				      s->outlen);
}

/* In page order: hash the page into the image's SHA-256, buffer it for
 * the file, report progress. */
static int xpass_commit(void *ctx, const snap_pipe_slot *s)
{
	xpass *x = ctx;
	uint32_t ps = x->im->info.page_size;

	if (s->status)
		return snap_err_set(x->err, -EIO, "snapshot %s: page %u (stored "
				    "page %" PRId64 ") %s; nothing was exported "
				    "(run snapctl verify)", x->im->info.name,
				    s->pgno, s->id,
				    snap_codec_unpack_why(s->status));
	EVP_DigestUpdate(x->md, s->out, ps);
	memcpy(x->bufs[x->cur] + x->len, s->out, ps);
	x->len += ps;
	if (x->len + ps > x->cap && xpass_flush(x))
		return x->err ? x->err->code : -EIO;
	if (x->progress && (s->pgno % EXPORT_PROGRESS_PAGES == 0 ||
			    s->pgno == x->im->info.page_count))
		x->progress(x->pctx, s->pgno, x->im->info.page_count);
	return 0;
}

/*
 * Every page of the image through the page pipeline: this thread fetches
 * each stored page (one read transaction), workers decode, and the pages
 * come back in order to xpass_commit.
 */
static int export_pages(xpass *x)
{
	snap_image *im = x->im;
	snap_pagepipe *pipe = NULL;
	uint32_t pgno;
	int rc;

	if (snap_pagepipe_start(&pipe, im->info.page_size, xpass_work,
				xpass_commit, x))
		return snap_err_set(x->err, -ENOMEM, "out of memory");
	snap_pagepipe_use_dicts(pipe, &im->dicts);
	rc = image_txn_begin(im, x->err);
	for (pgno = 1; !rc && pgno <= im->info.page_count; pgno++) {
		int64_t id = im->map[pgno - 1];

		sqlite3_bind_int64(im->get, 1, id);
		rc = sqlite3_step(im->get);
		if (rc == SQLITE_ROW)
			rc = snap_pagepipe_push(pipe, pgno, id,
				sqlite3_column_blob(im->get, 0),
				(size_t)sqlite3_column_bytes(im->get, 0), NULL);
		else if (rc == SQLITE_DONE)
			rc = snap_err_set(x->err, -EIO, "snapshot %s: page %u "
					  "(stored page %" PRId64 ") is missing "
					  "from the store; nothing was exported "
					  "(run snapctl verify)", im->info.name,
					  pgno, id);
		else
			rc = snap_err_sqlite(x->err, im->db, rc, "snapshot %s: "
					     "cannot read page %u",
					     im->info.name, pgno);
		sqlite3_reset(im->get);
	}
	if (!rc)
		rc = snap_pagepipe_drain(pipe);
	image_txn_end(im, 1);
	snap_pagepipe_stop(pipe);
	return rc;
}

/* Whether the regular file path is a snapfs store (store.db): its SQLite
 * header carries the store's application_id 'SNAP' (written with the
 * schema, before the store is first in WAL mode). */
static int export_is_store(const char *path)
{
	static const uint8_t magic[16] = "SQLite format 3";
	uint8_t h[72];
	struct stat st;
	/* O_NONBLOCK: a FIFO put there since the lstat never blocks us. */
	int fd = snap_sys_open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
			       O_CLOEXEC, 0);
	ssize_t n = fd < 0 || snap_sys_fstat(fd, &st) < 0 ||
		    !S_ISREG(st.st_mode) ? -1 :
		    snap_sys_pread(fd, h, sizeof(h), 0);

	if (fd >= 0)
		snap_sys_close(fd);
	return n == (ssize_t)sizeof(h) && !memcmp(h, magic, sizeof(magic)) &&
	       !memcmp(h + 68, "SNAP", 4);
}

/* Whether the regular file path is the live database of a store in its
 * default directory ("PATH.snapfs/store.db"). */
static int export_has_store(const char *path)
{
	char *dir = snap_store_default_dir(path), *file = NULL;
	struct stat st;
	int has = dir && asprintf(&file, "%s/store.db", dir) >= 0 &&
		  lstat(file, &st) == 0;

	free(file);
	free(dir);
	return has;
}

int snap_export_target_check(const char *path, snap_err *err)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : snap_err_set(err, -errno, "%s: %s",
							  path,
							  strerror(errno));
	/* A rename over a database behind SQLite's back (and a daemon's,
	 * which goes on writing the file it has open) is not a restore;
	 * over a store, it loses every snapshot. */
	if (S_ISREG(st.st_mode) && export_has_store(path))
		return snap_err_set(err, -EEXIST, "%s is the live database of "
				    "the store %s.snapfs: an export never "
				    "replaces it; restore into it (snapctl "
				    "restore, or --replica URL restore NAME "
				    "--db %s)", path, path, path);
	if (S_ISREG(st.st_mode) && export_is_store(path))
		return snap_err_set(err, -EEXIST, "%s is a snapfs store: an "
				    "export never replaces it; name another "
				    "file", path);
	if (S_ISREG(st.st_mode))
		return 0;
	return snap_err_set(err, -EEXIST, "%s is %s: an export writes a new "
			    "file (or replaces a regular one), never %s; "
			    "name another file%s", path, S_ISLNK(st.st_mode) ?
			    "a symbolic link" : S_ISDIR(st.st_mode) ?
			    "a directory" : "not a regular file (a device, "
			    "a pipe)", S_ISLNK(st.st_mode) ? "a link" :
			    "anything else", S_ISLNK(st.st_mode) ? " (or "
			    "remove the link)" : " (--sql writes to standard "
			    "output with FILE -)");
}

int snap_export_tmp_name(const char *path, const char *tag, char *out,
			 size_t cap)
{
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path + 1) : 0;
	int n = snprintf(out, cap, "%.*s.%s.%s-XXXXXX", dirlen, path,
			 path + dirlen, tag);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int snap_export_open(const char *path, const char *tag, char *tmp,
		     size_t cap, snap_err *err)
{
	int rc = snap_export_target_check(path, err), fd;

	if (rc)
		return rc;
	if (snap_export_tmp_name(path, tag, tmp, cap))
		return snap_err_set(err, -ENAMETOOLONG, "cannot write %s: "
				    "path too long", path);
	fd = snap_sys_mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return snap_err_set(err, -errno, "cannot write %s: %s", path,
				    strerror(errno));
	return fd;
}

int snap_export_close(int fd, const char *tmp, const char *path, int rc,
		      snap_err *err)
{
	int renamed = 0;

	if (rc == 0 && snap_sys_fsync(fd) < 0)
		rc = snap_err_set(err, -errno, "cannot sync %s: %s", tmp,
				  strerror(errno));
	snap_sys_close(fd);
	if (rc == 0 && snap_sys_rename(tmp, path) < 0)
		rc = snap_err_set(err, -errno, "cannot rename %s to %s: %s",
				  tmp, path, strerror(errno));
	else if (rc == 0)
		renamed = 1;
	/* The rename is durable too. */
	if (rc == 0 && snap_sys_sync_dir(path) < 0)
		rc = snap_err_set(err, -errno, "cannot sync the directory of "
				  "%s: %s", path, strerror(errno));
	if (rc && !renamed)
		snap_sys_unlink(tmp);
	return rc;
}

int snap_image_export(snap_store *s, int64_t snap_id, const char *path,
		      snap_err *err)
{
	return snap_image_export_progress(s, snap_id, path, NULL, NULL, err);
}

int snap_image_export_progress(snap_store *s, int64_t snap_id,
			       const char *path, snap_progress_fn progress,
			       void *pctx, snap_err *err)
{
	xpass x = { .fd = -1, .cap = EXPORT_CHUNK, .progress = progress,
		    .pctx = pctx };
	char tmp[PATH_MAX];
	snap_err local;
	uint8_t sha[32];
	int rc;

	if (!err) {
		snap_err_clear(&local);
		err = &local;
	}
	x.err = err;
	x.tmp = tmp;
	x.fd = snap_export_open(path, "snapfs-tmp", tmp, sizeof(tmp), err);
	if (x.fd < 0)
		return x.fd;
	rc = snap_image_open(s, snap_id, &x.im, err);
	if (rc)
		return snap_export_close(x.fd, tmp, path, rc, err);
	if (x.cap < x.im->info.page_size)
		x.cap = x.im->info.page_size;
	x.bufs[0] = malloc(x.cap);
	x.bufs[1] = malloc(x.cap);    /* none: no writer thread */
	x.md = EVP_MD_CTX_new();
	if (!x.bufs[0] || !x.md ||
	    !EVP_DigestInit_ex(x.md, EVP_sha256(), NULL)) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	xwriter_start(&x);
	rc = export_pages(&x);
	/* Always: the writer thread must be gone before the buffers.  After
	 * a failure nothing more is written, and err keeps the failure. */
	if (rc) {
		snap_err ignored;

		snap_err_clear(&ignored);
		x.len = 0;
		x.err = &ignored;
		xwriter_finish(&x);
		goto out;
	}
	rc = xwriter_finish(&x);
	if (rc)
		goto out;
	/* Never hand out an image that differs from what was captured. */
	EVP_DigestFinal_ex(x.md, sha, NULL);
	if (memcmp(sha, x.im->info.sha256, 32) != 0)
		rc = snap_err_set(err, -EBADMSG, "snapshot %s is damaged: its "
				  "image does not match its SHA-256; nothing "
				  "was exported (run snapctl verify)",
				  x.im->info.name);
out:
	rc = snap_export_close(x.fd, tmp, path, rc, err);
	EVP_MD_CTX_free(x.md);
	free(x.bufs[0]);
	free(x.bufs[1]);
	snap_image_close(x.im);
	return rc;
}
