/*
 * engine/replica_image.c — whole images of a replica's snapshots, rebuilt
 * page by page (replica_read.c proves each page) and proven against the
 * snapshot's SHA-256: export (and so restore), verify.  Images read in
 * place (the replica mount) are replica_inplace.c.
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
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "diff.h"
#include "image.h"
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

/* ---- images whose pages interleave packs ----------------------------------
 *
 * A snapshot uploaded in one run reads its packs in page order.  One whose
 * pages came in several runs (a database whose scattered rows change
 * between snapshots) interleaves their packs page by page: read in page
 * order through PACK_CACHE packs, every page could fetch a pack again (a
 * 235 MB snapshot of four such runs did not finish in 11 minutes).  Such
 * an image is read in the order of its pages in the replica instead (each
 * pack fetched once), each run of consecutive pages written where it
 * belongs, and the file hashed afterwards.
 */

/* 1 when reading seqs in page order through the reader's PACK_CACHE packs
 * (least recently used goes) would fetch packs more often than once and a
 * little: counted by playing that cache. */
static int walk_scattered(const snap_replica *r, const int64_t *seqs,
			  uint32_t n)
{
	size_t slot[PACK_CACHE];
	uint64_t used[PACK_CACHE] = {0}, clock = 0, misses = 0, distinct = 0;
	uint8_t *seen = calloc(r->nfirsts ? r->nfirsts : 1, 1);
	if (!seen)
		return 0;
	for (int k = 0; k < PACK_CACHE; k++)
		slot[k] = SIZE_MAX;
	for (uint32_t i = 0; i < n; i++) {
		size_t p = snap_replica_pack_of(r, (uint64_t)seqs[i]);
		int k, victim = 0;
		if (p == SIZE_MAX)
			continue;
		for (k = 0; k < PACK_CACHE && slot[k] != p; k++)
			if (used[k] < used[victim])
				victim = k;
		if (k < PACK_CACHE) {
			used[k] = ++clock;
			continue;
		}
		misses++;
		distinct += !seen[p];
		seen[p] = 1;
		slot[victim] = p;
		used[victim] = ++clock;
	}
	free(seen);
	return misses > distinct + distinct / 4 + 2;
}

struct wpage {
	uint64_t seq;
	uint32_t pgno;
};

static int wpage_cmp(const void *a, const void *b)
{
	const struct wpage *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->pgno < y->pgno ? -1 : x->pgno > y->pgno;
}

/* Bytes of consecutive pages gathered for one pwrite. */
#define RUN_BYTES (512u << 10)

/* pwrite all of len bytes at off; 0 or an errno. */
static int write_at(int fd, const uint8_t *p, size_t len, off_t off)
{
	while (len) {
		ssize_t k = snap_sys_pwrite(fd, p, len, off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EIO;
		p += k;
		len -= (size_t)k;
		off += k;
	}
	return 0;
}

/* Write row's pages (seqs) into fd, in the order of their seqs. */
static int walk_by_pack(snap_replica *r, const rrow *row, const int64_t *seqs,
			int fd, snap_progress_fn progress, void *pctx,
			uint32_t *badpg, int *wfail, snap_err *err)
{
	uint32_t n = row->si.page_count, ps = row->si.page_size;
	size_t per = ps && ps < RUN_BYTES ? RUN_BYTES / ps : 1;
	struct wpage *v = malloc(n ? (size_t)n * sizeof *v : 1);
	uint8_t *run = malloc(per * ps);
	uint32_t run_pg = 0, run_n = 0;
	int rc = 0, werr = 0;
	if (!v || !run) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint32_t i = 0; i < n; i++)
		v[i] = (struct wpage){(uint64_t)seqs[i], i + 1};
	qsort(v, n, sizeof *v, wpage_cmp);
	for (uint32_t j = 0; j < n && !werr; j++) {
		if (run_n && (v[j].pgno != run_pg + run_n || run_n == per)) {
			werr = write_at(fd, run, (size_t)run_n * ps,
					(off_t)(run_pg - 1) * ps);
			run_n = 0;
		}
		if (!run_n)
			run_pg = v[j].pgno;
		rc = snap_replica_page_read(r, v[j].seq, ps,
					    run + (size_t)run_n * ps, err);
		if (rc < 0) {
			if (badpg)
				*badpg = v[j].pgno;
			else
				snap_err_prefix(err, "%s, page %u",
						row->si.name, v[j].pgno);
			goto out;
		}
		run_n++;
		if (progress && (j % 256 == 255 || j + 1 == n))
			progress(pctx, j + 1, n);
	}
	if (run_n && !werr)
		werr = write_at(fd, run, (size_t)run_n * ps,
				(off_t)(run_pg - 1) * ps);
	if (werr) {
		*wfail = 1;
		r->werr = fd >= 0;
		rc = snap_err_set(err, -werr, "cannot write the image of %s: "
				  "%s", row->si.name, strerror(werr));
	}
out:
	free(v);
	free(run);
	return rc;
}

/* The SHA-256 of the first size bytes of fd. */
static int hash_fd(int fd, uint64_t size, uint8_t h[32], snap_err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t *buf = malloc(WALK_CHUNK);
	int rc = 0;
	if (!md || !buf || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (uint64_t off = 0; off < size;) {
		size_t want = size - off < WALK_CHUNK ? (size_t)(size - off) :
			      WALK_CHUNK;
		ssize_t k = snap_sys_pread(fd, buf, want, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : EIO;
			rc = snap_err_set(err, -e, "cannot read the rebuilt "
					  "image back: %s", strerror(e));
			goto out;
		}
		EVP_DigestUpdate(md, buf, (size_t)k);
		off += (uint64_t)k;
	}
	EVP_DigestFinal_ex(md, h, NULL);
out:
	EVP_MD_CTX_free(md);
	free(buf);
	return rc;
}

/* A whole image read pack by pack (above) into fd, or into a temporary
 * file under tmpdir when fd < 0; then proven by its SHA-256 (*mismatch
 * set when it differs).  WALK_NO_TMP (positive) when no temporary file
 * could be made or written: the caller reads in page order instead (not
 * -EAGAIN, which is also the server failing: that is an error to report,
 * not a reason to read every page again). */
#define WALK_NO_TMP 1
static int walk_planned(snap_replica *r, const rrow *row, const int64_t *seqs,
			int fd, const char *tmpdir, snap_progress_fn progress,
			void *pctx, uint32_t *badpg, int *mismatch,
			snap_err *err)
{
	int tfd = fd;
	if (fd < 0) {
		char tmp[PATH_MAX];
		snprintf(tmp, sizeof tmp, "%s/.snapfs-image-XXXXXX",
			 tmpdir ? tmpdir : "/tmp");
		tfd = snap_sys_mkostemp(tmp, O_CLOEXEC);
		if (tfd < 0)
			return WALK_NO_TMP;
		snap_sys_unlink(tmp);     /* gone with its descriptor */
	}
	int wfail = 0;
	int rc = walk_by_pack(r, row, seqs, tfd, progress, pctx, badpg, &wfail,
			      err);
	uint8_t h[32];
	if (rc == 0)
		rc = hash_fd(tfd, row->si.image_size, h, err);
	if (rc == 0 && memcmp(h, row->si.sha256, 32)) {
		*mismatch = 1;
		rc = snap_err_set(err, -EIO, "%s: the rebuilt image does not "
				  "match the snapshot's SHA-256",
				  row->si.name);
	}
	if (fd < 0)
		snap_sys_close(tfd);
	/* Our own file could not be written (a small /tmp): say nothing
	 * of the snapshot; the caller reads it in page order instead. */
	return fd < 0 && wfail ? WALK_NO_TMP : rc;
}

/* Rebuild row's image page by page; write it to fd when fd >= 0.  Pages
 * are read into a chunk here; the whole-image hash and the write run on
 * stage two (walkout).  With r->whole set, the pages are proven by that
 * hash alone (*mismatch set when it differs); else each is proven by its
 * own SHA-256 too.  A page that cannot be read: its number in *badpg when
 * badpg is given (verify reports it apart), else in err's message
 * ("NAME, page N: ..."). */
static int walk(snap_replica *r, const rrow *row, int fd, const char *tmpdir,
		snap_progress_fn progress, void *pctx, uint32_t *badpg,
		int *mismatch, snap_err *err)
{
	snap_replica_image *img = NULL;
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
	r->readahead = 1;
	if (walk_scattered(r, seqs, row->si.page_count)) {
		rc = walk_planned(r, row, seqs, fd, tmpdir, progress, pctx,
				  badpg, mismatch, err);
		if (rc != WALK_NO_TMP)
			goto out;
		/* No temporary file: in page order, a window at a time,
		 * each window's pages read in the order of their packs. */
		rc = snap_replica_image_of(r, row, seqs, &img, err);
		if (rc < 0)
			goto out;
	}
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
	w.len[k] = 0;
	for (uint32_t i = 0; i < row->si.page_count; i++) {
		if (img) {
			long got = snap_replica_image_read(img, w.buf[k] +
							   w.len[k], ps,
							   (uint64_t)i * ps,
							   err);
			rc = got == (long)ps ? 0 : got < 0 ? (int)got : -EIO;
		} else {
			rc = snap_replica_page_read(r, (uint64_t)seqs[i], ps,
						    w.buf[k] + w.len[k], err);
		}
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
		r->werr = 1;
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
	snap_replica_image_close(img);
	free(seqs);
	return rc;
}

/* A whole image, proven by its SHA-256 (the row's, sealed with it under
 * encryption): any changed byte changes it, so one hash proves every
 * page, and the SHA-256 of each page (a second pass over the image,
 * 0.7 s of one core a GB here) is taken only when the whole does not
 * match, to name the page that is wrong. */
static int image_walk(snap_replica *r, const rrow *row, int fd,
		      const char *tmpdir, snap_progress_fn progress,
		      void *pctx, uint32_t *badpg, snap_err *err)
{
	int mismatch = 0;
	r->whole = 1;
	int rc = walk(r, row, fd, tmpdir, progress, pctx, badpg, &mismatch,
		      err);
	r->whole = 0;
	if (rc < 0 && mismatch) {
		snap_err e;
		snap_err_clear(&e);
		int again = 0;
		int rc2 = walk(r, row, -1, tmpdir, NULL, NULL, badpg, &again,
			       &e);
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
	char tmp[PATH_MAX];
	rrow row;
	int rc = snap_replica_row_find(r, name, &row, err);
	if (rc < 0)
		return rc;
	/* As a store's export (image_export.c): a new file of our own
	 * beside path, 0600, renamed over it at the end; a regular file
	 * there is replaced, anything else refused.  Read too (it is open
	 * read-write): an image read pack by pack is hashed from the file. */
	int fd = snap_export_open(path, "snapfs-tmp", tmp, sizeof(tmp), err);
	if (fd < 0)
		return fd;
	rc = image_walk(r, &row, fd, NULL, progress, pctx, NULL, err);
	return snap_export_close(fd, tmp, path, rc, err);
}

/*
 * PRAGMA integrity_check of a rebuilt image, the temporary file path (fd,
 * ours, still open) in TMPDIR, a directory others may write (/tmp):
 * opened immutable, so SQLite looks for no -journal or -wal beside it
 * and takes no lock: another user could plant a hot journal at its name's
 * -journal (listed in /tmp), and a read-only open then fails
 * (SQLITE_READONLY_ROLLBACK: a good snapshot reported bad).  The name must
 * still be fd's file once opened (a TMPDIR without the sticky bit lets
 * others put another file there): -ESTALE, no verdict.  0 ok, -EIO with
 * the first problem in err.
 */
static int image_integrity(const char *path, int fd, snap_err *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct stat a, b;
	char *uri = snap_diff_file_uri(path, "immutable=1&mode=ro");
	int rc = uri ? sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY |
				       SQLITE_OPEN_URI, NULL) : SQLITE_NOMEM;
	sqlite3_free(uri);
	if (rc == SQLITE_OK && (snap_sys_fstat(fd, &a) < 0 ||
				snap_sys_lstat(path, &b) < 0 ||
				a.st_dev != b.st_dev || a.st_ino != b.st_ino)) {
		rc = snap_err_set(err, -ESTALE, "%s was replaced by another "
				  "file (somebody who may write TMPDIR)",
				  path);
		goto out;
	}
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

/* The set of pruned snapshots: replicate and prune read it and refuse
 * the replica while it does not open, so verify names it too. */
static int pruned_verify(snap_replica *r, snap_replica_problem_fn fn,
			 void *ctx, unsigned *nbad, snap_err *err)
{
	uint8_t *keys;
	size_t n;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_replica_pruned_load(r, &keys, &n, &e);
	if (rc == -ENOMEM)
		return snap_err_set(err, rc, "%s", e.msg);
	if (rc == 0) {
		free(keys);
		return 0;
	}
	(*nbad)++;
	if (fn) {
		char why[SNAP_ERR_MSG + 256];
		snprintf(why, sizeof why, "%s; replicate and prune refuse the "
			 "replica while it is so (deleted, it lets them go on: "
			 "replicate then sends again the pruned snapshots the "
			 "store still has)", e.msg);
		fn(ctx, PRUNED_OBJ, 0, why);
	}
	return 0;
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
		r->werr = 0;
		int vrc = image_walk(r, &rows[i], fd, tmpdir, NULL, NULL, &pg,
				     &e);
		if (fd >= 0) {
			if (vrc == 0)
				vrc = image_integrity(tmp, fd, &e);
			if (vrc == -ESTALE)
				r->werr = ESTALE;   /* ours, not the snapshot */
			snap_sys_close(fd);
			snap_sys_unlink(tmp);
		}
		if (vrc == -ENOMEM) {
			rc = snap_err_set(err, -ENOMEM, "%s", e.msg);
			break;
		}
		if (vrc < 0 && vrc != -EIO && vrc != -EFBIG && !r->werr) {
			/* The server failing or busy (-EAGAIN), out of reach,
			 * a timeout, an interruption: not the snapshot's
			 * bytes (those are -EIO), so no verdict on it. */
			rc = snap_err_set(err, vrc, "%s: verification could "
					  "not run: %s", rows[i].si.name,
					  e.msg);
			break;
		}
		if (vrc < 0 && r->werr) {
			/* Our temporary file, not the snapshot: no verdict. */
			rc = snap_err_set(err, vrc, "%s (in %s; set TMPDIR to "
					  "a directory with room for the "
					  "image): verification could not "
					  "run", e.msg, tmpdir ? tmpdir :
					  "/tmp");
			break;
		}
		if (vrc < 0) {
			(*nbad)++;
			if (fn)
				fn(ctx, rows[i].si.name, pg, e.msg);
		}
	}
	free(rows);
	if (rc == 0 && !name)
		rc = snap_replica_log_verify(r, fn, ctx, nbad, err);
	if (rc == 0 && !name)
		rc = pruned_verify(r, fn, ctx, nbad, err);
	return rc;
}
