/*
 * engine/replica_image.c — whole images of a replica's snapshots, rebuilt
 * page by page (replica_read.c proves each page) and proven against the
 * snapshot's SHA-256: export (and so restore), verify; and images read in
 * place (snap_replica_image_*, which the replica mount serves).
 *
 * A whole image is read in two stages: the calling thread fetches, opens,
 * decodes and proves pages into a chunk, and a second thread hashes the
 * whole image and writes it, a chunk behind (two chunks of WALK_CHUNK
 * bytes: bounded memory); the two cores each do about half the work.
 */
#include "replica_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sys.h"

/* ---- whole images --------------------------------------------------------- */

/* Load row's page map (the seqs of pages 1..N). */
int snap_replica_map_load(snap_replica *r, const rrow *row, int64_t **seqs,
			  snap_err *err)
{
	uint8_t *blob;
	size_t len;
	int rc = snap_replica_obj_get(r, row->map, &blob, &len, err);
	if (rc == -ENOENT)
		return snap_err_set(err, -EIO, "%s/%s: missing (the page map "
				    "of %s)", snap_objstore_url(r->os),
				    row->map, row->si.name);
	if (rc < 0)
		return rc;
	rc = snap_map_decode(blob, len, row->si.page_count, seqs);
	free(blob);
	if (rc < 0)
		return snap_err_set(err, -EIO, "%s/%s: not a valid page map of "
				    "%s", snap_objstore_url(r->os), row->map,
				    row->si.name);
	return 0;
}

/* The second stage of a whole-image read: a thread that hashes the image
 * and writes it to fd, a chunk behind the pages' proof.  Two chunks: the
 * calling thread fills one while the other is hashed and written. */
#define WALK_CHUNK (512u << 10)

typedef struct walkout {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	int threaded;          /* th runs (else stage two runs inline) */
	uint8_t *buf[2];
	size_t len[2];         /* bytes in each chunk; a chunk is full (for
				  stage two) while full[] says so */
	int full[2];
	int done;              /* no more chunks */
	int fd;                /* -1: hash only */
	off_t off, flushed;    /* bytes written to fd; handed to writeback */
	EVP_MD_CTX *md;
	int werr;              /* errno of a failed write (then nothing more
				  is written) */
} walkout;

/* Hash chunk k and write it (unless a write failed: *werr), handing
 * what is written to the kernel's writeback as it goes (write_behind). */
static void walk_out(walkout *w, int k, int *werr)
{
	EVP_DigestUpdate(w->md, w->buf[k], w->len[k]);
	if (w->fd >= 0 && !*werr &&
	    snap_sys_write_behind(w->fd, w->buf[k], w->len[k], &w->off,
				  &w->flushed) < 0)
		*werr = errno ? errno : EIO;
}

/* Stage two: every full chunk in turn, until done. */
static void *walk_main(void *arg)
{
	walkout *w = arg;
	pthread_mutex_lock(&w->mu);
	for (int k = 0;; k ^= 1) {
		while (!w->full[k] && !w->done)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->full[k])
			break;
		pthread_mutex_unlock(&w->mu);
		int werr = w->werr;    /* only this thread writes it */
		walk_out(w, k, &werr);
		pthread_mutex_lock(&w->mu);
		w->werr = werr;
		w->full[k] = 0;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Hand chunk k to stage two (inline when there is no thread). */
static void walk_put(walkout *w, int k)
{
	if (!w->threaded) {
		walk_out(w, k, &w->werr);
		return;
	}
	pthread_mutex_lock(&w->mu);
	w->full[k] = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Wait until chunk k is free to fill; the errno of a failed write so
 * far (0: none). */
static int walk_take(walkout *w, int k)
{
	if (!w->threaded)
		return w->werr;
	pthread_mutex_lock(&w->mu);
	while (w->full[k])
		pthread_cond_wait(&w->cv, &w->mu);
	int werr = w->werr;
	pthread_mutex_unlock(&w->mu);
	return werr;
}

/* No more chunks: let stage two finish. */
static void walk_finish(walkout *w)
{
	if (!w->threaded)
		return;
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	w->threaded = 0;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

/* Rebuild row's image page by page; write it to fd when fd >= 0.  Pages
 * are read into a chunk here; the whole-image hash and the write run on
 * stage two (walkout).  With r->whole set, the pages are proven by that
 * hash alone (*mismatch set when it differs); else each is proven by its
 * own SHA-256 too.  A page that cannot be read: its number in *badpg when
 * badpg is given (verify reports it apart), else in err's message
 * ("NAME, page N: ..."). */
static int walk(snap_replica *r, const rrow *row, int fd,
		snap_progress_fn progress, void *pctx, uint32_t *badpg,
		int *mismatch, snap_err *err)
{
	int64_t *seqs = NULL;
	uint32_t ps = row->si.page_size;
	size_t per = ps && ps < WALK_CHUNK ? WALK_CHUNK / ps : 1;
	size_t cap = per * (size_t)ps;
	walkout w = {.fd = fd, .md = EVP_MD_CTX_new()};
	w.buf[0] = malloc(cap ? cap : 1);
	w.buf[1] = malloc(cap ? cap : 1);
	int rc, k = 0;
	if (!w.buf[0] || !w.buf[1] || !w.md ||
	    !EVP_DigestInit_ex(w.md, EVP_sha256(), NULL)) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = snap_replica_firsts_load(r, err);
	if (rc < 0)
		goto out;
	rc = snap_replica_map_load(r, row, &seqs, err);
	if (rc < 0)
		goto out;
	if (pthread_mutex_init(&w.mu, NULL) == 0) {
		if (pthread_cond_init(&w.cv, NULL) == 0) {
			w.threaded = pthread_create(&w.th, NULL, walk_main,
						    &w) == 0;
			if (!w.threaded)
				pthread_cond_destroy(&w.cv);
		}
		if (!w.threaded)
			pthread_mutex_destroy(&w.mu);
	}
	r->readahead = 1;
	w.len[k] = 0;
	for (uint32_t i = 0; i < row->si.page_count; i++) {
		rc = snap_replica_page_read(r, (uint64_t)seqs[i], ps,
					    w.buf[k] + w.len[k], err);
		if (rc < 0) {
			if (badpg)
				*badpg = i + 1;
			else
				snap_err_prefix(err, "%s, page %u",
						row->si.name, i + 1);
			goto out;
		}
		w.len[k] += ps;
		if (w.len[k] == per * ps || i + 1 == row->si.page_count) {
			walk_put(&w, k);
			k ^= 1;
			int werr = walk_take(&w, k);
			w.len[k] = 0;
			if (werr)       /* stage two failed: stop early */
				break;
		}
		if (progress && (i % 256 == 255 || i + 1 == row->si.page_count))
			progress(pctx, i + 1, row->si.page_count);
	}
	walk_finish(&w);
	if (w.werr) {
		rc = snap_err_set(err, -w.werr, "cannot write the image of %s: "
				  "%s", row->si.name, strerror(w.werr));
		goto out;
	}
	uint8_t h[32];
	EVP_DigestFinal_ex(w.md, h, NULL);
	if (memcmp(h, row->si.sha256, 32)) {
		*mismatch = 1;
		rc = snap_err_set(err, -EIO, "%s: the rebuilt image does not "
				  "match the snapshot's SHA-256",
				  row->si.name);
	}
out:
	walk_finish(&w);
	r->readahead = 0;
	EVP_MD_CTX_free(w.md);
	free(w.buf[0]);
	free(w.buf[1]);
	free(seqs);
	return rc;
}

/* A whole image, proven by its SHA-256 (the row's, sealed with it under
 * encryption): any changed byte changes it, so one hash proves every
 * page, and the SHA-256 of each page (a second pass over the image,
 * 0.7 s of one core a GB here) is taken only when the whole does not
 * match, to name the page that is wrong. */
static int image_walk(snap_replica *r, const rrow *row, int fd,
		      snap_progress_fn progress, void *pctx, uint32_t *badpg,
		      snap_err *err)
{
	int mismatch = 0;
	r->whole = 1;
	int rc = walk(r, row, fd, progress, pctx, badpg, &mismatch, err);
	r->whole = 0;
	if (rc < 0 && mismatch) {
		snap_err e;
		snap_err_clear(&e);
		int again = 0;
		int rc2 = walk(r, row, -1, NULL, NULL, badpg, &again, &e);
		if (rc2 == -ENOMEM) {  /* no name, and no verdict either */
			*err = e;
			rc = rc2;
		} else if (rc2 < 0 && !again) {
			*err = e;      /* the page that is wrong, named */
		}
	}
	return rc;
}

int snap_replica_export(snap_replica *r, const char *name, const char *path,
			snap_progress_fn progress, void *pctx, snap_err *err)
{
	rrow row;
	int rc = snap_replica_row_find(r, name, &row, err);
	if (rc < 0)
		return rc;
	int fd = snap_sys_open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			       O_CLOEXEC, 0600);
	if (fd < 0)
		return snap_err_set(err, -errno, "%s: %s%s", path,
				    strerror(errno), errno == EEXIST ?
				    " (export never overwrites a file)" : "");
	rc = image_walk(r, &row, fd, progress, pctx, NULL, err);
	if (rc == 0 && snap_sys_fsync(fd) < 0)
		rc = snap_err_set(err, -errno, "%s: %s", path, strerror(errno));
	snap_sys_close(fd);
	if (rc == 0 && snap_sys_sync_dir(path) < 0)
		rc = snap_err_set(err, -errno, "%s: %s", path, strerror(errno));
	if (rc < 0)
		snap_sys_unlink(path);
	return rc;
}

/* PRAGMA integrity_check of a rebuilt image; 0 ok, -EIO with the first
 * problem in err. */
static int image_integrity(const char *path, snap_err *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
					NULL);
	if (rc != SQLITE_OK) {
		rc = snap_err_set(err, -EIO, "integrity_check could not run: "
				  "%s", sqlite3_errmsg(db));
		goto out;
	}
	rc = 0;
	if (sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "ok"))
		rc = snap_err_set(err, -EIO, "integrity_check: %s",
				  sqlite3_column_text(st, 0) ?
				  (const char *)sqlite3_column_text(st, 0) :
				  sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

int snap_replica_verify(snap_replica *r, const char *name, int full,
			const char *tmpdir, snap_replica_problem_fn fn,
			void *ctx, unsigned *nbad, snap_err *err)
{
	rrow *rows;
	size_t k;
	*nbad = 0;
	int rc = snap_replica_rows_load(r, name, &rows, &k, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; !name && i < r->bad_rows.n; i++) {
		(*nbad)++;
		if (fn)
			fn(ctx, r->bad_rows.v[i], 0, "this catalog row does not "
			   "open with the replica's key or is not a snapshot "
			   "record (damaged): its snapshot cannot be read");
	}
	for (size_t i = 0; i < k; i++) {
		snap_err e;
		snap_err_clear(&e);
		int fd = -1;
		char tmp[4096] = "";
		if (full) {
			snprintf(tmp, sizeof tmp, "%s/.snapfs-verify-XXXXXX",
				 tmpdir ? tmpdir : "/tmp");
			fd = snap_sys_mkostemp(tmp, O_CLOEXEC);
			if (fd < 0) {
				rc = snap_err_set(err, -errno, "%s: %s", tmp,
						  strerror(errno));
				break;
			}
		}
		uint32_t pg = 0;
		int vrc = image_walk(r, &rows[i], fd, NULL, NULL, &pg, &e);
		if (fd >= 0) {
			snap_sys_close(fd);
			if (vrc == 0)
				vrc = image_integrity(tmp, &e);
			snap_sys_unlink(tmp);
		}
		if (vrc == -ENOMEM) {
			rc = snap_err_set(err, -ENOMEM, "%s", e.msg);
			break;
		}
		if (vrc < 0) {
			(*nbad)++;
			if (fn)
				fn(ctx, rows[i].si.name, pg, e.msg);
		}
	}
	free(rows);
	return rc;
}

/* ---- images read in place ------------------------------------------------- */

struct snap_replica_image {
	snap_replica *r;
	rrow row;
	int64_t *seqs;         /* the page map: seqs of pages 1..N */
	uint8_t *page;         /* the last page read (page_size bytes) */
	int64_t cur;           /* its index (0-based), -1: none */
};

int snap_replica_image_open(snap_replica *r, const char *name,
			    snap_replica_image **out, snap_err *err)
{
	*out = NULL;
	snap_replica_image *img = calloc(1, sizeof *img);
	if (!img)
		return snap_err_set(err, -ENOMEM, "out of memory");
	img->r = r;
	img->cur = -1;
	int rc = snap_replica_row_find(r, name, &img->row, err);
	if (rc == 0 && !img->row.si.page_size)
		rc = snap_err_set(err, -EIO, "%s: page size 0 in its catalog "
				  "row", name);
	if (rc == 0 && !(img->page = malloc(img->row.si.page_size)))
		rc = snap_err_set(err, -ENOMEM, "out of memory");
	if (rc == 0 && !r->firsts)
		rc = snap_replica_firsts_load(r, err);
	if (rc == 0)
		rc = snap_replica_map_load(r, &img->row, &img->seqs, err);
	if (rc < 0) {
		snap_replica_image_close(img);
		return rc;
	}
	*out = img;
	return 0;
}

long snap_replica_image_read(snap_replica_image *img, void *buf, size_t len,
			     uint64_t off, snap_err *err)
{
	const snap_info *si = &img->row.si;
	uint64_t size = (uint64_t)si->page_size * si->page_count;
	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	if (len > (size_t)LONG_MAX)
		len = (size_t)LONG_MAX;
	size_t done = 0;
	while (done < len) {
		uint64_t at = off + done;
		int64_t i = (int64_t)(at / si->page_size);
		size_t in = (size_t)(at % si->page_size);
		if (img->cur != i) {
			img->cur = -1;
			int rc = snap_replica_page_read(img->r, (uint64_t)img->seqs[i],
					   si->page_size, img->page, err);
			if (rc < 0) {
				snap_err_prefix(err, "%s, page %lld", si->name,
						(long long)i + 1);
				return rc;
			}
			img->cur = i;
		}
		size_t n = si->page_size - in;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)buf + done, img->page + in, n);
		done += n;
	}
	return (long)done;
}

const snap_info *snap_replica_image_info(const snap_replica_image *img)
{
	return &img->row.si;
}

void snap_replica_image_close(snap_replica_image *img)
{
	if (!img)
		return;
	free(img->seqs);
	free(img->page);
	free(img);
}
