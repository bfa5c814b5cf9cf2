/*
 * engine/verify.c — quick and full verification of stored snapshots.
 *
 * Quick verification walks the page map once: each page is fetched with its
 * stored hash (one statement joins pages and page_data), decoded, hashed and
 * compared on worker threads; the decoded bytes also feed the SHA-256 of
 * the whole image, in page order on the page pipe's order thread,
 * compared with the catalog at the end.  Both are needed: the image hash
 * proves the bytes in their places, and the page hashes prove the store's
 * record of each page's hash, which a capture's lookup, a replica's
 * mapping of pages and a restore's read-back all trust.  A missing page, a
 * page that does not decode, a page whose hash differs, and a wrong image
 * hash are each reported with the snapshot and the page number.  Full verification
 * also runs PRAGMA integrity_check (a restore's, quick_check) through the
 * store VFS, on a thread of its own beside the quick pass: it is the
 * longer of the two and mostly one core's work; what it finds counts only
 * when the quick pass found the image intact.  A restore verifies
 * over the row and map it loaded (snap_verify_src: the integrity check's
 * VFS borrows them too) and gets each page's proved SHA-256 and page 1
 * back for its read-back check (snap_verify_proof).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "codec.h"
#include "pagepipe.h"
#include "events.h"
#include "image.h"
#include "integrity.h"
#include "store_int.h"
#include "verify.h"

typedef struct vstate {
	const snap_info *si;
	snap_verify_problem_fn fn;
	void *ctx;
	unsigned problems;
	char first[SNAP_ERR_MSG / 2];
	char dict[SNAP_ERR_MSG / 2];   /* an unusable dictionary, unsaid */
} vstate;

static void problem(vstate *v, uint32_t pgno, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Report one problem; remember the first for the summary. */
static void problem(vstate *v, uint32_t pgno, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!v->problems++)
		snprintf(v->first, sizeof(v->first), "%s", msg);
	if (v->fn)
		v->fn(v->ctx, v->si, pgno, msg);
}

/* A problem with the store's dictionaries (storedict.c): a problem of
 * the snapshot only when no intact copy serves and one of its pages needs
 * one; it is said then, before the first such page (vpass_commit).  One
 * damaged copy is the store's to mend, and the next snapshot rewrites
 * it; a snapshot whose pages all decode is intact: neither may refuse
 * its restore. */
static void dict_problem(void *ctx, const char *msg, int usable)
{
	vstate *v = ctx;

	if (!usable && !v->dict[0])
		snprintf(v->dict, sizeof(v->dict), "%s", msg);
}

/* The quick pass's state, shared with the page pipeline's callbacks. */
typedef struct vpass {
	vstate *v;
	const snap_info *si;
	EVP_MD_CTX *md;          /* SHA-256 of the whole image, in order */
	const uint8_t *zero;     /* a zero page, hashed for unreadable ones */
	int oom;                 /* a page could not be hashed (memory) */
	snap_progress_fn progress;   /* may be NULL */
	void *pctx;
	snap_verify_proof *proof;    /* what is proved goes here; may be NULL */
} vpass;

/* Pages between two progress calls (and the last page). */
#define VERIFY_PROGRESS_PAGES 256u

/* Worker: decode a stored page and hash it.  inlen 0 marks a page the
 * producer already found missing (and reported). */
static void vpass_work(void *ctx, snap_pipe_slot *s, snap_codec *codec)
{
	vpass *vp = ctx;
	uint32_t ps = vp->si->page_size;

	if (s->inlen == 0) {
		s->status = -ENOENT;
		return;
	}
	s->status = snap_codec_unpack(codec, s->in, s->inlen, s->out, ps);
	if (!s->status) {
		s->outlen = ps;
		s->status = snap_sha256(s->out, ps, s->sha);
	}
}

/* Did the page decode to the hash the store records for it? */
static int vpass_good(const snap_pipe_slot *s)
{
	return s->status == 0 && memcmp(s->sha, s->want, 32) == 0;
}

/* The pipe's order thread, in page order: the image hash, the pass's
 * only sequential work, off the thread that reads the store. */
static void vpass_order(void *ctx, const snap_pipe_slot *s)
{
	vpass *vp = ctx;

	EVP_DigestUpdate(vp->md, vpass_good(s) ? s->out : vp->zero,
			 vp->si->page_size);
}

/* In page order, on the reading thread: report what is wrong (a
 * dictionary no copy serves before the first page that needs it), keep
 * the proof, report progress.  A missing page was reported when it was
 * read (status -ENOENT). */
static int vpass_commit(void *ctx, const snap_pipe_slot *s)
{
	vpass *vp = ctx;
	vstate *v = vp->v;

	if (vpass_good(s)) {
		if (vp->proof) {
			memcpy(vp->proof->sha[s->pgno - 1], s->sha, 32);
			if (s->pgno == 1)
				memcpy(vp->proof->page1, s->out,
				       vp->si->page_size);
		}
	} else if (s->status == 0) {
		problem(v, s->pgno, "page %u (stored page %" PRId64 ") does "
			"not match its hash", s->pgno, s->id);
	} else if (s->status == -ENOMEM) {
		vp->oom = 1;         /* a check that could not run */
	} else if (s->status != -ENOENT) {
		if (s->status == -ENOKEY && v->dict[0]) {
			problem(v, 0, "%s", v->dict);
			v->dict[0] = '\0';
		}
		problem(v, s->pgno, "page %u (stored page %" PRId64 ") %s",
			s->pgno, s->id, snap_codec_unpack_why(s->status));
	}
	if (vp->progress && (s->pgno % VERIFY_PROGRESS_PAGES == 0 ||
			     s->pgno == vp->si->page_count))
		vp->progress(vp->pctx, s->pgno, vp->si->page_count);
	return 0;
}

/*
 * The quick pass over one snapshot's pages: this thread reads each stored
 * page and its hash from the store, workers decode and hash
 * (pagepipe.h), and the pipe's order thread feeds the image hash in page
 * order.  map: the page map already loaded (NULL: load it here).
 */
static int verify_pages(sqlite3 *db, const snap_info *si, const int64_t *map,
			vstate *v, snap_progress_fn progress, void *pctx,
			snap_verify_proof *proof, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	snap_pagepipe *pipe = NULL;
	snap_dicts dicts = { 0 };
	vpass vp = { v, si, NULL, NULL, 0, progress, pctx, proof };
	int64_t *own = NULL;
	uint8_t whole[32];
	uint32_t n = si->page_count, i;
	unsigned int mdlen = 32;
	snap_err bad;
	int rc;

	if (snap_store_info_check(si, &bad)) {
		problem(v, 0, "%s", bad.msg);
		return 0;
	}
	rc = map ? 0 : snap_store_load_map(db, si->id, &n, &own, err);
	if (rc == -EBADMSG) {
		problem(v, 0, "%s", err->msg);
		return 0;
	}
	if (rc)
		return rc;
	if (!map)
		map = own;
	if (n != si->page_count) {
		problem(v, 0, "page map has %u entries, catalog says %u", n,
			si->page_count);
		free(own);
		return 0;
	}
	rc = snap_store_dicts_load(db, &dicts, 0, dict_problem, v, err);
	if (rc) {
		free(own);
		return rc;
	}
	vp.zero = calloc(1, si->page_size);
	vp.md = EVP_MD_CTX_new();
	if (!vp.zero || !vp.md || !EVP_DigestInit_ex(vp.md, EVP_sha256(), NULL) ||
	    snap_pagepipe_start_ordered(&pipe, si->page_size, vpass_work,
					vpass_order, vpass_commit, &vp)) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	snap_pagepipe_use_dicts(pipe, &dicts);
	/* Each stored page is read once, in page order (image.h). */
	sqlite3_exec(db, "PRAGMA cache_size=-" SNAP_IMAGE_STORE_CACHE_KIB,
		     NULL, NULL, NULL);
	rc = sqlite3_prepare_v2(db, "SELECT p.hash, d.zdata, p.size FROM pages "
				"p LEFT JOIN page_data d ON d.id=p.id WHERE "
				"p.id=?", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, db, rc, "store");
		goto out;
	}
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (i = 0; i < n; i++) {
		const void *z = NULL, *want = NULL;
		size_t zlen = 0;

		sqlite3_bind_int64(st, 1, map[i]);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			z = sqlite3_column_blob(st, 1);
			zlen = (size_t)sqlite3_column_bytes(st, 1);
			if (sqlite3_column_bytes(st, 0) == 32)
				want = sqlite3_column_blob(st, 0);
			if (!z) {
				problem(v, i + 1, "page %u (stored page %" PRId64
					") has no data in the store", i + 1,
					map[i]);
				zlen = 0;
			} else if (sqlite3_column_int64(st, 2) !=
				   si->page_size) {
				problem(v, i + 1, "page %u (stored page %" PRId64
					") has the wrong size", i + 1, map[i]);
				zlen = 0;
			}
		} else if (rc == SQLITE_DONE) {
			problem(v, i + 1, "page %u (stored page %" PRId64 ") is "
				"missing from the store", i + 1, map[i]);
		} else {
			rc = snap_err_sqlite(err, db, rc, "snapshot %s: cannot "
					     "read page %u", si->name, i + 1);
			sqlite3_reset(st);
			goto out_txn;
		}
		/* A page without a 32-byte hash cannot match: zeros. */
		snap_pagepipe_push(pipe, i + 1, map[i], z, zlen,
				   want ? want : vp.zero);
		sqlite3_reset(st);
	}
	rc = 0;
	snap_pagepipe_drain(pipe);
	if (vp.oom) {
		rc = snap_err_set(err, -ENOMEM, "snapshot %s: out of memory "
				  "while hashing its pages", si->name);
		goto out_txn;
	}
	EVP_DigestFinal_ex(vp.md, whole, &mdlen);
	if (memcmp(whole, si->sha256, 32) != 0 && v->problems == 0)
		problem(v, 0, "the image's SHA-256 differs from the catalog");
out_txn:
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
out:
	/* The pipe's threads are gone before vp's hash is freed. */
	snap_pagepipe_stop(pipe);
	snap_dicts_free(&dicts);
	sqlite3_finalize(st);
	EVP_MD_CTX_free(vp.md);
	free((void *)vp.zero);
	free(own);
	return rc;
}

/* One problem integrity_check reports. */
static void integrity_problem(void *ctx, const char *text)
{
	problem(ctx, 0, "integrity_check: %s", text);
}

/* The structure check beside the quick pass (verify_one): its own
 * problems, told to the verification only after the quick pass found the
 * image intact, and its connection, which the quick pass interrupts when
 * it found the image damaged. */
typedef struct vcheck {
	snap_store *s;
	const snap_info *si;
	snap_image_src *src;
	int full;
	vstate v;                /* fn: vcheck_keep */
	char **msgs;             /* what it found, in order */
	unsigned nmsgs;
	int oom;                 /* a finding could not be kept */
	pthread_mutex_t mu;
	sqlite3 *db;             /* mu: open while the check runs */
	int stop;                /* mu: interrupt it (or do not start) */
	int rc;
	snap_err err;
	pthread_t thread;
} vcheck;

/* Keep one finding of the structure check. */
static void vcheck_keep(void *ctx, const snap_info *si, uint32_t pgno,
			const char *msg)
{
	vcheck *c = ctx;
	char **m = realloc(c->msgs, (c->nmsgs + 1) * sizeof(*m));

	(void)si;
	(void)pgno;
	if (m)
		c->msgs = m;
	if (!m || !(c->msgs[c->nmsgs] = strdup(msg)))
		c->oom = 1;
	else
		c->nmsgs++;
}

/* 1 when the quick pass found the image damaged: the check may stop. */
static int vcheck_stopped(void *ctx)
{
	vcheck *c = ctx;
	int stop;

	pthread_mutex_lock(&c->mu);
	stop = c->stop;
	pthread_mutex_unlock(&c->mu);
	return stop;
}

/* PRAGMA integrity_check of the snapshot through the store VFS.  A check
 * that could not run (memory, an I/O error) fails the verification; it
 * finds no problem.  Neither does a check during which a page could not be
 * read: the quick pass beside it read every page intact, so the failure
 * is the store's or the machine's, not the snapshot's. */
static int verify_integrity(vcheck *c, snap_err *err)
{
	snap_store *s = c->s;
	const snap_info *si = c->si;
	snap_image_src *src = c->src;
	int full = c->full;
	vstate *v = &c->v;
	sqlite3 *db = NULL;
	const char *pragma = full == SNAP_VERIFY_STRUCTURE ?
			     "PRAGMA quick_check(100)" :
			     "PRAGMA integrity_check(100)";
	char what[SNAP_NAME_MAX + 16];
	unsigned n = 0;
	int read_rc, rc = src ? snap_image_sqlite_open_src(s, src, &db, err) :
			  snap_image_sqlite_open(s, si->id, &db, err);

	if (rc)
		return rc;
	/* quick_check reads each page twice (the b-tree walk, then a scan
	 * of every table's rows) whatever the cache; integrity_check's
	 * index lookups come back to pages. */
	if (full == SNAP_VERIFY_STRUCTURE)
		snap_image_sqlite_scan(db);
	snprintf(what, sizeof(what), "snapshot %s", si->name);
	/* An interrupt before the check's statement runs would be cleared
	 * by its first step: the progress handler asks as it runs. */
	sqlite3_progress_handler(db, 1000, vcheck_stopped, c);
	pthread_mutex_lock(&c->mu);
	c->db = db;
	pthread_mutex_unlock(&c->mu);
	rc = vcheck_stopped(c) ? 0 :
	     snap_integrity_run(db, pragma, what, integrity_problem, v, &n,
				err);
	if ((read_rc = snap_image_sqlite_error(db, err)) != 0) {
		rc = read_rc;
		snap_err_prefix(err, "%s could not be checked", what);
	}
	pthread_mutex_lock(&c->mu);
	c->db = NULL;
	pthread_mutex_unlock(&c->mu);
	sqlite3_close(db);
	return rc;
}

static void *vcheck_main(void *arg)
{
	vcheck *c = arg;

	c->rc = verify_integrity(c, &c->err);
	return NULL;
}

/* Stop the structure check early: the quick pass found the image
 * damaged, and what the check finds would not count. */
static void vcheck_interrupt(vcheck *c)
{
	pthread_mutex_lock(&c->mu);
	c->stop = 1;
	if (c->db)
		sqlite3_interrupt(c->db);
	pthread_mutex_unlock(&c->mu);
}

static void vcheck_free(vcheck *c)
{
	unsigned i;

	for (i = 0; i < c->nmsgs; i++)
		free(c->msgs[i]);
	free(c->msgs);
	pthread_mutex_destroy(&c->mu);
}

/*
 * The structure check runs once per image.  Its result is a function of
 * the image's bytes, which the quick pass proves equal to the catalog's
 * SHA-256 every time: once quick_check or integrity_check passed on an
 * image, meta 'checked:<hex SHA-256>' records the level, and a later
 * structural verification (a restore's) of an image with that SHA-256
 * runs only the quick pass.  `snapctl verify --full` always runs its
 * integrity_check.  Each new record drops those of images no snapshot
 * has any more.  Recorded through the catalog connection when the
 * store is writable; a record that cannot be written is not an error.
 */
static void checked_key(const snap_info *si, char *out, size_t cap)
{
	size_t i, n = snprintf(out, cap, "checked:");

	for (i = 0; i < 32 && n + 2 < cap; i++)
		n += snprintf(out + n, cap - n, "%02x", si->sha256[i]);
}

/* The level recorded for si's image (0: none). */
static int checked_level(snap_store *s, const snap_info *si)
{
	char key[80], val[16];

	checked_key(si, key, sizeof(key));
	snap_store_lock(s);
	if (snap_store_meta_get(s->db, key, val, sizeof(val)))
		val[0] = '\0';
	snap_store_unlock(s);
	return atoi(val);
}

/* Record that si's image passed the check of level `full`. */
static void checked_record(snap_store *s, const snap_info *si, int full)
{
	sqlite3_stmt *st = NULL;
	char key[80];

	checked_key(si, key, sizeof(key));
	snap_store_lock(s);
	if (s->readonly == SNAP_STORE_RW &&
	    sqlite3_prepare_v2(s->db, "INSERT INTO meta(key, value) "
			       "VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET "
			       "value=max(value, ?2)", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, full);
		sqlite3_step(st);
		/* Forget the images no snapshot has any more, so the
		 * records stay as many as the catalog's images. */
		sqlite3_exec(s->db, "DELETE FROM meta WHERE key LIKE "
			     "'checked:%' AND substr(key, 9) NOT IN "
			     "(SELECT lower(hex(sha256)) FROM snapshots)",
			     NULL, NULL, NULL);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
}

/* The verification level's name, for events. */
static const char *level_name(int full)
{
	return full == SNAP_VERIFY_FULL ? "full" :
	       full == SNAP_VERIFY_STRUCTURE ? "structural" : "quick";
}

/* What verify_one verifies and how it reports. */
typedef struct vjob {
	snap_image_src *src;          /* row and map loaded; may be NULL */
	int full;
	snap_verify_problem_fn fn;
	void *ctx;
	snap_progress_fn progress;
	void *pctx;
	snap_verify_proof *proof;     /* may be NULL */
} vjob;

/* Verify one snapshot on a given store connection. */
static int verify_one(snap_store *s, sqlite3 *db, const snap_info *si,
		      const vjob *j, snap_err *err)
{
	vstate v = { si, j->fn, j->ctx, 0, "", "" };
	vcheck c = { .s = s, .si = si, .src = j->src, .full = j->full,
		     .v = { .si = si, .fn = vcheck_keep, .ctx = &c },
		     .mu = PTHREAD_MUTEX_INITIALIZER };
	int full = j->full, skipped = 0, check = 0, beside = 0, rc;
	unsigned i;

	/* Levels by strength: quick 0, structure (quick_check) 1, full
	 * (integrity_check) 2.  The check starts beside the quick pass, or
	 * after it when no thread can be had. */
	if (full) {
		skipped = full == SNAP_VERIFY_STRUCTURE &&
			  checked_level(s, si) >= 1;
		check = !skipped;
		beside = check &&
			 pthread_create(&c.thread, NULL, vcheck_main, &c) == 0;
	}
	rc = verify_pages(db, si, j->src ? j->src->map : NULL, &v,
			  j->progress, j->pctx, j->proof, err);
	if (rc || v.problems)
		vcheck_interrupt(&c);
	if (beside)
		pthread_join(c.thread, NULL);
	else if (check && !rc && v.problems == 0)
		vcheck_main(&c);
	if (check && !rc && v.problems == 0) {
		if (c.oom)
			rc = snap_err_set(err, -ENOMEM, "out of memory");
		else if ((rc = c.rc) != 0 && err)
			*err = c.err;
		for (i = 0; !rc && i < c.nmsgs; i++)
			problem(&v, 0, "%s", c.msgs[i]);
		if (!rc && v.problems == 0)
			checked_record(s, si, full == SNAP_VERIFY_FULL ? 2 : 1);
	}
	vcheck_free(&c);
	if (rc) {
		snap_event_add(s, "verify", si->name, 0, "verification could "
			       "not run: %s", err ? err->msg : "error");
		return rc;
	}
	if (v.problems) {
		snap_event_add(s, "verify", si->name, 0, "%s verification: %u "
			       "problem%s; first: %s", level_name(full),
			       v.problems, v.problems > 1 ? "s" : "", v.first);
		return snap_err_set(err, -EBADMSG, "snapshot %s is damaged: %u "
				    "problem%s; first: %s", si->name,
				    v.problems, v.problems > 1 ? "s" : "",
				    v.first);
	}
	snap_event_add(s, "verify", si->name, 1, "%s verification passed%s",
		       level_name(full), skipped ? " (quick_check passed on "
		       "this image before: not run again)" : "");
	return 0;
}

int snap_verify_snapshot(snap_store *s, int64_t id, int full,
			 snap_verify_problem_fn fn, void *ctx, snap_err *err)
{
	return snap_verify_snapshot_progress(s, id, full, fn, ctx, NULL, NULL,
					     err);
}

int snap_verify_snapshot_progress(snap_store *s, int64_t id, int full,
				  snap_verify_problem_fn fn, void *ctx,
				  snap_progress_fn progress, void *pctx,
				  snap_err *err)
{
	vjob j = { NULL, full, fn, ctx, progress, pctx, NULL };
	sqlite3 *db = NULL;
	snap_info si;
	int rc = snap_store_connect(s, 1, &db, err);

	if (!rc)
		rc = snap_store_get_db(db, id, &si, err);
	if (!rc)
		rc = verify_one(s, db, &si, &j, err);
	sqlite3_close(db);
	return rc;
}

int snap_verify_src(snap_store *s, snap_image_src *src, int full,
		    snap_progress_fn progress, void *pctx,
		    snap_verify_proof *proof, snap_err *err)
{
	vjob j = { src, full, NULL, NULL, progress, pctx, proof };
	sqlite3 *db = NULL;
	int rc = snap_store_connect(s, 1, &db, err);

	if (!rc)
		rc = verify_one(s, db, &src->info, &j, err);
	sqlite3_close(db);
	return rc;
}

int snap_verify_store(snap_store *s, int full, snap_verify_problem_fn fn,
		      void *ctx, unsigned *nbad, snap_err *err)
{
	snap_info *v = NULL;
	sqlite3 *db = NULL;
	size_t n = 0, i;
	unsigned bad = 0;
	int rc = snap_store_list(s, &v, &n, err);

	if (!rc)
		rc = snap_store_connect(s, 1, &db, err);
	for (i = 0; !rc && i < n; i++) {
		snap_err one;

		vjob j = { NULL, full, fn, ctx, NULL, NULL, NULL };

		snap_err_clear(&one);
		rc = verify_one(s, db, &v[i], &j, &one);
		if (rc == -EBADMSG) {
			bad++;
			rc = 0;
		} else if (rc) {
			snap_err_set(err, rc, "%s", one.msg);
		}
	}
	sqlite3_close(db);
	free(v);
	if (nbad)
		*nbad = bad;
	if (!rc && bad)
		rc = snap_err_set(err, -EBADMSG, "%u of %zu snapshots are "
				  "damaged", bad, n);
	return rc;
}
