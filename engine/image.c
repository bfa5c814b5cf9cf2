/*
 * engine/image.c — reading a snapshot's image from the store.
 *
 * A snap_image decodes the page map once and keeps one prepared statement
 * on its own read-only store connection; a read fetches each page by id and
 * decompresses it straight into the caller's buffer (whole pages) or into a
 * one-page scratch buffer (partial pages).  The last decoded page is kept,
 * so SQLite's small reads of one page (header, then the rest) cost one
 * decompression.
 *
 * An export reads the whole image another way: the page pipeline
 * (pagepipe.h) decodes pages on its workers, this thread feeds the image's
 * SHA-256 in page order, and a writer thread writes each 1 MiB of pages
 * to a temporary file that is renamed into place only when the hash is
 * the catalog's.
 *
 * Each read runs in its own short read transaction of the store (WAL: never
 * blocks writers).  Pages of a snapshot never change; a snapshot deleted
 * while an image is open makes later reads fail with -EIO, which is why the
 * daemon keeps deleted-but-open snapshots alive until the last close.
 *
 * A snap_image_src (image.h) is a snapshot's row and map loaded once and
 * lent: an image opened over it borrows both instead of loading them.
 *
 * The read-only VFS that opens a snapshot as a SQLite database is in
 * image_vfs.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "codec.h"
#include "image.h"
#include "pagepipe.h"
#include "store_int.h"
#include "sys.h"

struct snap_image {
	snap_store *s;
	sqlite3 *db;            /* own read-only store connection */
	sqlite3_stmt *get;      /* SELECT zdata FROM page_data WHERE id=? */
	sqlite3_stmt *hash;     /* SELECT hash FROM pages WHERE id=? */
	snap_codec codec;
	snap_dicts dicts;       /* the store's zstd dictionaries */
	snap_info info;
	int64_t *map;           /* page ids by pgno-1 */
	int owns_map;           /* 0: borrowed from a snap_image_src */
	uint8_t *scratch;       /* one page */
	uint32_t scratch_pgno;  /* page held in scratch, 0 = none */
	sqlite3_stmt *begin;    /* BEGIN, prepared once */
	sqlite3_stmt *commit;   /* COMMIT, prepared once */
	int in_txn;             /* a read transaction is open */
	unsigned hold;          /* >0: keep it open across calls, renewed
				   every `hold` reads (the store VFS) */
	unsigned txn_reads;     /* reads in the current transaction */
};

/* Open the read transaction a read runs in, unless one is open. */
static void image_txn_begin(snap_image *im)
{
	if (im->in_txn)
		return;
	sqlite3_step(im->begin);
	sqlite3_reset(im->begin);
	im->in_txn = 1;
	im->txn_reads = 0;
}

/* End it, unless held; a held one ends every `hold` reads so the store's
 * WAL can still be checkpointed behind a long reader. */
static void image_txn_end(snap_image *im, int force)
{
	if (!im->in_txn)
		return;
	if (!force && im->hold && ++im->txn_reads < im->hold)
		return;
	sqlite3_step(im->commit);
	sqlite3_reset(im->commit);
	im->in_txn = 0;
}

/* Check a loaded row and its map's length (n entries). */
static int image_info_check(const snap_info *si, uint32_t n, snap_err *err)
{
	int rc = snap_store_info_check(si, err);

	if (!rc && n != si->page_count)
		rc = snap_err_set(err, -EBADMSG, "snapshot %s: page map has %u "
				  "entries, catalog says %u", si->name, n,
				  si->page_count);
	return rc;
}

int snap_image_src_load(snap_store *s, int64_t snap_id, snap_image_src *src,
			snap_err *err)
{
	sqlite3 *db = NULL;
	uint32_t n = 0;
	int rc;

	memset(src, 0, sizeof(*src));
	rc = snap_store_connect(s, 1, &db, err);
	if (!rc)
		rc = snap_store_get_db(db, snap_id, &src->info, err);
	if (!rc)
		rc = snap_store_info_check(&src->info, err);
	if (!rc)
		rc = snap_store_load_map(db, snap_id, &n, &src->map, err);
	if (!rc)
		rc = image_info_check(&src->info, n, err);
	sqlite3_close(db);
	if (rc) {
		free(src->map);
		src->map = NULL;
	}
	return rc;
}

void snap_image_src_free(snap_store *s, snap_image_src *src)
{
	snap_image_src **p;

	if (src->token) {
		snap_store_lock(s);
		for (p = &s->lent; *p; p = &(*p)->next)
			if (*p == src) {
				*p = src->next;
				break;
			}
		snap_store_unlock(s);
		src->token = 0;
	}
	free(src->map);
	src->map = NULL;
}

/* The rest of an open, once im->info and im->map are set: statements on
 * the image's own connection, the codec, the scratch page. */
static int image_setup(snap_image *im, snap_err *err)
{
	snap_store *s = im->s;
	int rc = 0;

	if (sqlite3_prepare_v2(im->db, "SELECT zdata FROM page_data WHERE "
			       "id=?", -1, &im->get, NULL) ||
	    sqlite3_prepare_v2(im->db, "SELECT hash FROM pages WHERE id=?",
			       -1, &im->hash, NULL) ||
	    sqlite3_prepare_v2(im->db, "BEGIN", -1, &im->begin, NULL) ||
	    sqlite3_prepare_v2(im->db, "COMMIT", -1, &im->commit, NULL))
		rc = snap_err_sqlite(err, im->db, sqlite3_errcode(im->db),
				     "store %s", s->dir);
	if (!rc && snap_codec_init(&im->codec))
		rc = snap_err_set(err, -ENOMEM, "out of memory for zstd");
	if (!rc)
		rc = snap_store_dicts_load(im->db, &im->dicts, 0, NULL, NULL,
					   err);
	if (!rc)
		snap_codec_use(&im->codec, &im->dicts);
	if (!rc) {
		im->scratch = malloc(im->info.page_size ? im->info.page_size
				     : 1);
		if (!im->scratch)
			rc = snap_err_set(err, -ENOMEM, "out of memory");
	}
	return rc;
}

/* Open an image of snapshot snap_id, over src when it is not NULL. */
static int image_open(snap_store *s, int64_t snap_id,
		      const snap_image_src *src, snap_image **out,
		      snap_err *err)
{
	snap_image *im = calloc(1, sizeof(*im));
	uint32_t n = 0;
	int rc;

	*out = NULL;
	if (!im)
		return snap_err_set(err, -ENOMEM, "out of memory");
	im->s = s;
	im->owns_map = !src;
	rc = snap_store_connect(s, 1, &im->db, err);
	/* An image reads each stored page about once, in page order: the
	 * store's pages along one path of its b-trees are what it reuses
	 * (2 MB, not the connection's 8 MB: a restore has two images open
	 * beside a capture, within snapctl's 64 MB). */
	if (!rc)
		rc = snap_store_exec(im->db, "PRAGMA cache_size=-"
				     SNAP_IMAGE_STORE_CACHE_KIB, err);
	if (!rc && src) {
		im->info = src->info;
		im->map = src->map;
	} else if (!rc) {
		rc = snap_store_get_db(im->db, snap_id, &im->info, err);
		if (!rc)
			rc = snap_store_info_check(&im->info, err);
		if (!rc)
			rc = snap_store_load_map(im->db, snap_id, &n, &im->map,
						 err);
		if (!rc)
			rc = image_info_check(&im->info, n, err);
	}
	if (!rc)
		rc = image_setup(im, err);
	if (rc) {
		snap_image_close(im);
		return rc;
	}
	*out = im;
	return 0;
}

int snap_image_open(snap_store *s, int64_t snap_id, snap_image **out,
		    snap_err *err)
{
	return image_open(s, snap_id, NULL, out, err);
}

int snap_image_open_src(snap_store *s, const snap_image_src *src,
			snap_image **out, snap_err *err)
{
	return image_open(s, src->info.id, src, out, err);
}

void snap_image_close(snap_image *im)
{
	if (!im)
		return;
	image_txn_end(im, 1);
	sqlite3_finalize(im->begin);
	sqlite3_finalize(im->commit);
	sqlite3_finalize(im->get);
	sqlite3_finalize(im->hash);
	sqlite3_close(im->db);
	snap_codec_free(&im->codec);
	snap_dicts_free(&im->dicts);
	if (im->owns_map)
		free(im->map);
	free(im->scratch);
	free(im);
}

uint64_t snap_image_size(const snap_image *im) { return im->info.image_size; }
uint32_t snap_image_page_size(const snap_image *im)
{
	return im->info.page_size;
}
uint32_t snap_image_page_count(const snap_image *im)
{
	return im->info.page_count;
}

int64_t snap_image_page_id(const snap_image *im, uint32_t pgno)
{
	if (pgno < 1 || pgno > im->info.page_count)
		return 0;
	return im->map[pgno - 1];
}

/* Decode page pgno into buf. */
static int image_page(snap_image *im, uint32_t pgno, void *buf, snap_err *err)
{
	int64_t id = im->map[pgno - 1];
	int rc;

	sqlite3_bind_int64(im->get, 1, id);
	rc = sqlite3_step(im->get);
	if (rc == SQLITE_ROW) {
		rc = snap_codec_unpack(&im->codec,
				       sqlite3_column_blob(im->get, 0),
				       (size_t)sqlite3_column_bytes(im->get, 0),
				       buf, im->info.page_size);
		if (rc)
			rc = snap_err_set(err, -EIO, "snapshot %s: page %u "
					  "(stored page %" PRId64 ") %s",
					  im->info.name, pgno, id,
					  snap_codec_unpack_why(rc));
	} else if (rc == SQLITE_DONE) {
		rc = snap_err_set(err, -EIO, "snapshot %s: page %u (stored page "
				  "%" PRId64 ") is missing from the store",
				  im->info.name, pgno, id);
	} else {
		rc = snap_err_sqlite(err, im->db, rc, "snapshot %s: cannot "
				     "read page %u", im->info.name, pgno);
	}
	sqlite3_reset(im->get);
	return rc;
}

int snap_image_read_page(snap_image *im, uint32_t pgno, void *buf,
			 uint8_t sha_out[32], snap_err *err)
{
	int rc;

	if (pgno < 1 || pgno > im->info.page_count)
		return snap_err_set(err, -EINVAL, "snapshot %s has no page %u",
				    im->info.name, pgno);
	/* The page and its hash in one read transaction (held across
	 * calls after snap_image_hold). */
	image_txn_begin(im);
	rc = image_page(im, pgno, buf, err);
	if (!rc && sha_out) {
		sqlite3_bind_int64(im->hash, 1, im->map[pgno - 1]);
		if (sqlite3_step(im->hash) == SQLITE_ROW &&
		    sqlite3_column_bytes(im->hash, 0) == 32)
			memcpy(sha_out, sqlite3_column_blob(im->hash, 0), 32);
		else
			rc = snap_err_set(err, -EIO, "snapshot %s: page %u has "
					  "no stored hash", im->info.name,
					  pgno);
		sqlite3_reset(im->hash);
	}
	image_txn_end(im, 0);
	return rc;
}

void snap_image_hold(snap_image *im, unsigned reads)
{
	im->hold = reads;
}

ssize_t snap_image_read(snap_image *im, void *buf, size_t len, uint64_t off,
			snap_err *err)
{
	uint32_t ps = im->info.page_size;
	uint64_t size = im->info.image_size;
	size_t done = 0;
	int rc = 0;

	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	/* One read transaction for the whole call. */
	image_txn_begin(im);
	while (done < len) {
		uint64_t pos = off + done;
		uint32_t pgno = (uint32_t)(pos / ps) + 1;
		size_t in = (size_t)(pos % ps), n = ps - in;

		if (n > len - done)
			n = len - done;
		if (in == 0 && n == ps) {
			rc = image_page(im, pgno, (char *)buf + done, err);
		} else {
			if (im->scratch_pgno != pgno) {
				im->scratch_pgno = 0;
				rc = image_page(im, pgno, im->scratch, err);
				if (!rc)
					im->scratch_pgno = pgno;
			}
			if (!rc)
				memcpy((char *)buf + done, im->scratch + in, n);
		}
		if (rc)
			break;
		done += n;
	}
	image_txn_end(im, 0);
	return rc ? rc : (ssize_t)done;
}

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
		if (snap_sys_write_all(w->fd, buf, len) < 0)
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
		if (snap_sys_write_all(x->fd, x->bufs[x->cur], x->len) < 0)
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
	image_txn_begin(im);
	for (pgno = 1, rc = 0; !rc && pgno <= im->info.page_count; pgno++) {
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
	rc = snap_image_open(s, snap_id, &x.im, err);
	if (rc)
		return rc;
	/* A new file of our own (mkostemp: O_EXCL, so no link is followed,
	 * mode 0600: never wider than a private database), renamed over
	 * path at the end (a link at path is replaced, not followed). */
	snprintf(tmp, sizeof(tmp), "%s.snapfs-tmp-XXXXXX", path);
	if (x.cap < x.im->info.page_size)
		x.cap = x.im->info.page_size;
	x.bufs[0] = malloc(x.cap);
	x.bufs[1] = malloc(x.cap);    /* none: no writer thread */
	x.fd = snap_sys_mkostemp(tmp, O_CLOEXEC);
	if (x.fd < 0)
		tmp[0] = '\0';
	if (!x.bufs[0] || x.fd < 0) {
		rc = snap_err_set(err, x.fd < 0 ? -errno : -ENOMEM, "cannot "
				  "write %s: %s", path, x.fd < 0 ?
				  strerror(errno) : "out of memory");
		goto out;
	}
	x.md = EVP_MD_CTX_new();
	if (!x.md || !EVP_DigestInit_ex(x.md, EVP_sha256(), NULL)) {
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
	if (memcmp(sha, x.im->info.sha256, 32) != 0) {
		rc = snap_err_set(err, -EBADMSG, "snapshot %s is damaged: its "
				  "image does not match its SHA-256; nothing "
				  "was exported (run snapctl verify)",
				  x.im->info.name);
		goto out;
	}
	if (snap_sys_fsync(x.fd) < 0) {
		rc = snap_err_set(err, -errno, "cannot sync %s: %s", tmp,
				  strerror(errno));
		goto out;
	}
	snap_sys_close(x.fd);
	x.fd = -1;
	if (snap_sys_rename(tmp, path) < 0)
		rc = snap_err_set(err, -errno, "cannot rename %s to %s: %s",
				  tmp, path, strerror(errno));
out:
	if (x.fd >= 0)
		snap_sys_close(x.fd);
	if (rc && tmp[0])
		snap_sys_unlink(tmp);
	EVP_MD_CTX_free(x.md);
	free(x.bufs[0]);
	free(x.bufs[1]);
	snap_image_close(x.im);
	return rc;
}
