/*
 * engine/replica_push.c — writing a store's snapshots into a replica: new
 * pages packed (version 2: runs of pages compressed together in frames of
 * FRAME_TARGET bytes) and sealed, each pack's index after it, a
 * snapshot's map and then its catalog row (engine/DESIGN.md §6; written
 * by replica_rows.c, the snapshots of one run after the packs they share:
 * push_finish).  The
 * writer's cache in store.db that makes an unchanged page cost one lookup
 * is replica_cache.c.
 *
 * Up to UPLOADS packs are in flight while the next is built: the calling
 * thread reads, hashes and collects a pack's plain pages; a full pack goes
 * to an upload thread of its own, with its own connection to the replica
 * (a request costs far more waiting than work), that compresses its
 * frames, seals and writes the pack, then its index.  Before it hands
 * over a pack, the calling thread waits for the oldest in flight and
 * records that pack's pages in the cache; before a snapshot's map is
 * written, it waits for all of them: a map is still written only after
 * every pack it needs is durable, and at most UPLOADS + 1 packs are in
 * memory.  Only the calling thread talks to store.db.
 */
#include "replica_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"

/* ---- writing: one snapshot ------------------------------------------------ */

typedef struct pending {
	uint64_t first;        /* seq of the first page in the pack */
	uint32_t count;
	uint8_t *data;         /* the pages' plain bytes, back to back */
	size_t len, cap;
	uint32_t *sizes;       /* each page's size */
	uint8_t *shas;         /* each page's SHA-256 */
	int64_t *ids;          /* each page's id in the store */
	size_t pcap;           /* pages sizes, shas and ids have room for */
	snap_pageidx seen;     /* sha -> seq + 1 of the pages in this pack */
	struct uploads *q;     /* the packs in flight (NULL in theirs) */
} pending;

/* The pack on its way to the replica: compressed, sealed and uploaded on
 * its own thread. */
typedef struct upload {
	pthread_t th;
	int busy;              /* a pack is in flight (not yet waited for) */
	int threaded;          /* ... on th (else it was built here) */
	snap_replica *r;
	pending p;             /* its pages (swapped with the filled one) */
	snap_objstore *os;     /* its own connection to the replica */
	snap_codec codec;      /* the thread's own zstd context */
	int codec_ok;
	uint8_t *pack, *index; /* the objects built */
	size_t pcap, icap, plen, ilen;
	uint64_t bytes;        /* what it uploaded */
	int rc;
	snap_err err;
} upload;

/* The packs in flight, each on its own thread and connection: a request
 * to the object store costs far more waiting than work (one per pack and
 * one per index), so several overlap.  turn: the oldest. */
#define UPLOADS 2

typedef struct uploads {
	upload u[UPLOADS];
	int turn;
} uploads;

/* Make room for n more bytes in a growing buffer. */
static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 65536;
	while (c < need)
		c *= 2;
	uint8_t *b = realloc(*buf, c);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = c;
	return 0;
}

/* Start an empty pack at seq first. */
static int pending_reset(pending *p, uint64_t first)
{
	p->first = first;
	p->count = 0;
	p->len = 0;
	snap_pageidx_free(&p->seen);
	if (snap_pageidx_init(&p->seen, 2048) < 0)
		return -ENOMEM;
	return 0;
}

static void pending_free(pending *p)
{
	free(p->data);
	free(p->sizes);
	free(p->shas);
	free(p->ids);
	snap_pageidx_free(&p->seen);
}

/* The end of the frame that starts at page i: one page in a version 1 pack; else the pages of i's size that follow,
 * up to FRAME_TARGET bytes. */
static uint32_t frame_end(const pending *p, uint32_t i, int v1)
{
	uint32_t j = i + 1;
	size_t plain = p->sizes[i];
	while (!v1 && j < p->count && p->sizes[j] == p->sizes[i] &&
	       plain + p->sizes[j] <= FRAME_TARGET)
		plain += p->sizes[j++];
	return j;
}

/* Build the pack and index objects of u->p (version r->pack_version):
 * each frame compressed (stored raw when that is not smaller). */
static int pack_build(upload *u)
{
	const pending *p = &u->p;
	int v1 = u->r->pack_version == 1;
	uint32_t nframes = 0;
	size_t bound = 20;
	for (uint32_t i = 0; i < p->count; nframes++) {
		uint32_t j = frame_end(p, i, v1);
		bound += ZSTD_compressBound((size_t)(j - i) * p->sizes[i]);
		i = j;
	}
	size_t ilen = v1 ? 20 + (size_t)p->count * INDEX_ENTRY :
		INDEX_HEAD2 + (size_t)nframes * FRAME_ENTRY +
		(size_t)p->count * 32;
	if (grow(&u->pack, &u->pcap, bound) < 0 ||
	    grow(&u->index, &u->icap, ilen) < 0)
		return snap_err_set(&u->err, -ENOMEM, "out of memory");
	ZSTD_CCtx_setParameter(u->codec.cctx, ZSTD_c_compressionLevel,
			       v1 ? SNAP_ZSTD_LEVEL : FRAME_LEVEL);
	uint8_t *ix = u->index, *fe = ix + INDEX_HEAD2;
	memcpy(u->pack, PACK_MAGIC, 4);
	put32(u->pack + 4, v1 ? 1 : 2);
	put64(u->pack + 8, p->first);
	put32(u->pack + 16, p->count);
	memcpy(ix, INDEX_MAGIC, 4);
	put32(ix + 4, v1 ? 1 : 2);
	put64(ix + 8, p->first);
	put32(ix + 16, p->count);
	if (!v1) {
		put32(ix + 20, nframes);
		memcpy(fe + (size_t)nframes * FRAME_ENTRY, p->shas,
		       (size_t)p->count * 32);
	}
	size_t len = 20, off = 0;
	for (uint32_t i = 0; i < p->count;) {
		uint32_t j = frame_end(p, i, v1);
		size_t plain = (size_t)(j - i) * p->sizes[i];
		size_t z = snap_codec_pack(&u->codec, p->data + off, plain,
					   u->pack + len, u->pcap - len);
		if (v1) {
			uint8_t *e = ix + 20 + (size_t)i * INDEX_ENTRY;
			memcpy(e, p->shas + (size_t)i * 32, 32);
			if (u->r->enc)
				snap_pageid(&u->r->keys, p->data + off, plain,
					    e + 32);
			else
				memcpy(e + 32, e, 32);
			put32(e + 64, (uint32_t)plain);
			put32(e + 68, (uint32_t)z);
			put32(e + 72, (uint32_t)len);
		} else {
			put32(fe, (uint32_t)len);
			put32(fe + 4, (uint32_t)z);
			put32(fe + 8, j - i);
			put32(fe + 12, p->sizes[i]);
			fe += FRAME_ENTRY;
		}
		len += z;
		off += plain;
		i = j;
	}
	u->plen = len;
	u->ilen = ilen;
	return 0;
}

/* The upload thread's body: build the pack and its index, then write the
 * pack, then the index. */
static void *upload_main(void *arg)
{
	upload *u = arg;
	char name[64];
	u->rc = pack_build(u);
	/* The plain pages are in the pack now: give their memory back while
	 * the pack is sealed and sent (the next pack to fill allocates
	 * again), so that a pack waiting on the network holds only its
	 * compressed bytes. */
	free(u->p.data);
	u->p.data = NULL;
	u->p.cap = 0;
	if (u->rc < 0)
		return NULL;
	snprintf(name, sizeof name, "packs/%016llx",
		 (unsigned long long)u->p.first);
	u->rc = snap_replica_obj_put_to(u->r, u->os, name, u->pack, u->plen,
					&u->bytes, &u->err);
	if (u->rc < 0)
		return NULL;
	snprintf(name, sizeof name, "index/%016llx",
		 (unsigned long long)u->p.first);
	u->rc = snap_replica_obj_put_to(u->r, u->os, name, u->index, u->ilen,
					&u->bytes, &u->err);
	return NULL;
}

/* Wait for the pack in flight (if any), record its pages in the cache
 * and account for it; its error, if it failed, becomes err (unless err
 * already holds one: rc_now < 0). */
static int upload_wait(upload *u, snap_store *s, snap_replicate_stats *st,
		       int rc_now, snap_err *err)
{
	if (!u || !u->busy)
		return 0;
	if (u->threaded)
		pthread_join(u->th, NULL);
	u->busy = 0;
	st->bytes += u->bytes;
	if (u->rc == 0)
		u->rc = snap_replica_cache_add(s, u->r, u->p.first, u->p.count,
					       u->p.shas, 32, u->p.ids,
					       &u->err);
	if (u->rc < 0) {
		if (rc_now >= 0)
			*err = u->err;
		return u->rc;
	}
	st->pages += u->p.count;
	return 0;
}

/* Wait for every pack in flight, oldest first; the first error. */
static int uploads_wait(uploads *q, snap_store *s, snap_replicate_stats *st,
			int rc_now, snap_err *err)
{
	int rc = 0;
	for (int k = 0; k < UPLOADS; k++) {
		int urc = upload_wait(&q->u[(q->turn + k) % UPLOADS], s, st,
				      rc_now < 0 ? rc_now : rc, err);
		if (rc == 0)
			rc = urc;
	}
	return rc;
}

static void uploads_free(uploads *q)
{
	for (int k = 0; k < UPLOADS; k++) {
		upload *u = &q->u[k];
		pending_free(&u->p);
		free(u->pack);
		free(u->index);
		if (u->codec_ok)
			snap_codec_free(&u->codec);
		snap_objstore_close(u->os);
	}
}

/* Send the pending pack on its way: wait for the oldest in flight, hand
 * this one's pages to its upload thread (run here when no thread starts)
 * and start an empty pack after it. */
static int pending_flush(snap_replica *r, snap_store *s, pending *p,
			 snap_replicate_stats *st, snap_err *err)
{
	uploads *q = p->q;
	upload *u = &q->u[q->turn];
	int rc = snap_replica_lock_keep(r, err);
	if (rc < 0)
		return rc;
	rc = upload_wait(u, s, st, 0, err);
	if (rc < 0 || p->count == 0)
		return rc;
	if (!u->codec_ok) {
		if (snap_codec_init(&u->codec) < 0)
			return snap_err_set(err, -ENOMEM, "out of memory");
		u->codec_ok = 1;
	}
	if (!u->os) {
		rc = snap_objstore_open(snap_objstore_url(r->os), 0, &u->os,
					err);
		if (rc < 0)
			return rc;
	}
	q->turn = (q->turn + 1) % UPLOADS;
	pending full = *p;
	*p = u->p;
	p->q = q;
	u->p = full;
	u->p.q = NULL;
	u->r = r;
	u->bytes = 0;
	u->rc = 0;
	memset(&u->err, 0, sizeof u->err);
	u->busy = 1;
	u->threaded = pthread_create(&u->th, NULL, upload_main, u) == 0;
	if (!u->threaded)
		upload_main(u);
	return pending_reset(p, u->p.first + u->p.count);
}

/* Add one new page (the store's page id) to the pending pack; *seq gets
 * its number. */
static int pending_add(pending *p, const uint8_t *page, uint32_t size,
		       const uint8_t sha[32], int64_t id, uint64_t *seq)
{
	if (grow(&p->data, &p->cap, p->len + size) < 0)
		return -ENOMEM;
	if (p->count == p->pcap) {
		size_t n = p->pcap ? 2 * p->pcap : 1024;
		uint32_t *sz = realloc(p->sizes, n * sizeof *sz);
		if (!sz)
			return -ENOMEM;
		p->sizes = sz;
		uint8_t *h = realloc(p->shas, n * 32);
		if (!h)
			return -ENOMEM;
		p->shas = h;
		int64_t *ids = realloc(p->ids, n * sizeof *ids);
		if (!ids)
			return -ENOMEM;
		p->ids = ids;
		p->pcap = n;
	}
	memcpy(p->data + p->len, page, size);
	memcpy(p->shas + (size_t)p->count * 32, sha, 32);
	p->sizes[p->count] = size;
	p->ids[p->count] = id;
	p->len += size;
	*seq = p->first + p->count++;
	if (snap_pageidx_put(&p->seen, sha, (int64_t)*seq + 1) < 0)
		return -ENOMEM;
	return 0;
}

/* Send one local snapshot's new pages (into the pending pack, packs
 * handed to the upload threads as they fill); *seqs_out gets the seq of
 * each of its pages (free()).  Its map and catalog row are written by
 * push_finish once every pack they need is durable. */
static int push_pages(snap_replica *r, snap_store *s, const snap_info *si,
		      pending *p, snap_replica_lookup *lk,
		      snap_progress_fn progress, void *pctx, uint64_t *done,
		      uint64_t total, snap_replicate_stats *st,
		      int64_t **seqs_out, snap_err *err)
{
	snap_image *im = NULL;
	int64_t *seqs = calloc(si->page_count ? si->page_count : 1,
			       sizeof *seqs);
	uint8_t *page = malloc(si->page_size);
	int rc;
	if (!seqs || !page) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = snap_image_open(s, si->id, &im, err);
	if (rc < 0)
		goto out;
	snap_image_hold(im, LOOKUP_BATCH);
	for (uint32_t i = 0; i < si->page_count; i++) {
		int64_t seq, id = snap_image_page_id(im, i + 1);
		if (i % 4096 == 0 && (rc = snap_replica_lock_keep(r, err)))
			goto out;
		rc = snap_replica_lookup_seq(lk, id, &seq, err);
		if (rc == 0) {
			seqs[i] = seq;
			continue;
		}
		if (rc != -ENOENT)
			goto out;
		uint8_t stored[32], h[32];
		rc = snap_image_read_page(im, i + 1, page, stored, err);
		if (rc < 0)
			goto out;
		if (snap_sha256(page, si->page_size, h) < 0) {
			rc = snap_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		if (memcmp(h, stored, 32)) {
			rc = snap_err_set(err, -EIO,
					  "%s: page %u does not match its hash "
					  "in the local store; nothing of it "
					  "was replicated (run snapctl verify)",
					  si->name, i + 1);
			goto out;
		}
		int64_t known = snap_pageidx_get(&p->seen, h);
		for (int k = 0; known <= 0 && k < UPLOADS; k++)
			if (p->q->u[k].busy)     /* a pack in flight */
				known = snap_pageidx_get(&p->q->u[k].p.seen,
							 h);
		if (known > 0) {
			seqs[i] = known - 1;
			continue;
		}
		uint64_t nseq;
		if (pending_add(p, page, si->page_size, h, id, &nseq) < 0) {
			rc = snap_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		seqs[i] = (int64_t)nseq;
		if (p->len >= PACK_TARGET) {
			snap_replica_lookup_end(lk);
			rc = pending_flush(r, s, p, st, err);
			if (rc < 0)
				goto out;
		}
		if (progress && (++*done % 256 == 0))
			progress(pctx, *done, total);
	}
	*seqs_out = seqs;
	seqs = NULL;
	rc = 0;
out:
	snap_replica_lookup_end(lk);
	snap_image_close(im);
	free(page);
	free(seqs);
	return rc;
}

/* Snapshots whose pages are sent and whose maps and rows wait for the
 * packs they are in: the snapshots of one run share packs (a run of 30
 * snapshots of a few new pages each sends a pack or two, not 30 packs and
 * 30 indexes), at most DEFER_SNAPS of them or DEFER_BYTES of their seqs
 * held at once. */
#define DEFER_SNAPS 64
#define DEFER_BYTES (8u << 20)

typedef struct deferred {
	const snap_info *si;
	int64_t *seqs;
} deferred;

typedef struct defers {
	deferred v[DEFER_SNAPS];
	size_t n, bytes;
} defers;

/* Make every pending page durable (the pending pack sent, every upload
 * waited for), then write each deferred snapshot's map and row, in
 * order. */
static int push_finish(snap_replica *r, snap_store *s, const char *store_id,
		       pending *p, snap_replica_lookup *lk, defers *d,
		       snap_replicate_stats *st, snap_err *err)
{
	snap_replica_lookup_end(lk);
	int rc = pending_flush(r, s, p, st, err);
	if (rc == 0)
		rc = uploads_wait(p->q, s, st, rc, err);
	/* Maps and rows only while the lock is still this run's. */
	if (rc == 0 && d->n)
		rc = snap_replica_lock_held(r, err);
	for (size_t i = 0; i < d->n; i++) {
		if (rc == 0)
			rc = snap_replica_row_write(r, s, store_id, d->v[i].si,
						    d->v[i].seqs, st, err);
		free(d->v[i].seqs);
	}
	d->n = d->bytes = 0;
	return rc;
}

static int row_name_cmp(const void *a, const void *b)
{
	return strcmp((*(const rrow *const *)a)->si.name,
		      (*(const rrow *const *)b)->si.name);
}

/* 1 when the replica has a row of si's name and SHA-256 (byname: its
 * rows sorted by name; a name may have several). */
static int row_present(const rrow **byname, size_t n, const snap_info *si)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {      /* the first row of si's name or after */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(byname[mid]->si.name, si->name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < n && !strcmp(byname[lo]->si.name, si->name); lo++)
		if (!memcmp(byname[lo]->si.sha256, si->sha256, 32))
			return 1;
	return 0;
}

int snap_replica_push(snap_replica *r, snap_store *s,
		      snap_progress_fn progress, void *pctx,
		      snap_replicate_stats *st, snap_err *err)
{
	memset(st, 0, sizeof *st);
	uploads q = {0};
	pending p = {.q = &q};
	snap_replica_lookup lk = {0};
	snap_info *local = NULL;
	size_t nlocal = 0;
	rrow *rows = NULL;
	const rrow **byname = NULL;
	size_t nrows = 0;
	uint8_t *gone = NULL;          /* the pruned set */
	size_t ngone = 0;
	uint64_t next;
	char lock[64] = "", store_id[33] = "";
	int refused = 0;
	defers d = {.n = 0};
	int rc = snap_replica_lock(r, "replicate", lock, sizeof lock, err);
	if (rc < 0)
		return rc;
	/* Whose the replica is, first: another database's is refused with
	 * nothing written, here or there.  The rows this store has seen come
	 * from its cache; the others are cached once the replica is known
	 * to be its own. */
	r->rowstore = s;
	rc = snap_replica_rows_load(r, NULL, &rows, &nrows, err);
	if (rc == 0)
		rc = snap_store_list(s, &local, &nlocal, err);
	if (rc == 0) {
		rc = snap_replica_owner_check(s, r, rows, nrows, local, nlocal,
					      store_id, err);
		refused = rc == -EEXIST;
	}
	if (rc < 0)
		goto out;
	rc = snap_replica_cache_sync(s, r, &next, err);
	if (rc < 0)
		goto out;
	snap_replica_rowcache_save(s, r);
	rc = snap_replica_lookup_init(&lk, s, r, err);
	if (rc == 0)
		rc = snap_replica_pruned_load(r, &gone, &ngone, err);
	if (rc < 0)
		goto out;
	/* The replica's rows by name: a local snapshot is found in log
	 * time (a loop over every row for every snapshot was 10^8 steps
	 * with 10,000 of each). */
	byname = malloc((nrows ? nrows : 1) * sizeof *byname);
	if (!byname) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < nrows; k++)
		byname[k] = &rows[k];
	qsort(byname, nrows, sizeof *byname, row_name_cmp);
	uint64_t total = 0, done = 0;
	for (size_t i = 0; i < nlocal; i++)
		total += local[i].page_count;
	if (pending_reset(&p, next) < 0) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nlocal; i++) {
		const snap_info *si = &local[i];
		int have = row_present(byname, nrows, si);
		if (si->trash != SNAP_TRASH_NONE)
			continue;
		if (have) {
			st->present++;
			continue;
		}
		if (snap_replica_pruned_has(gone, ngone, si->name,
					    si->sha256)) {
			st->pruned++;
			continue;
		}
		int64_t *seqs = NULL;
		rc = push_pages(r, s, si, &p, &lk, progress, pctx, &done,
				total, st, &seqs, err);
		if (rc == 0) {
			d.v[d.n++] = (deferred){si, seqs};
			d.bytes += (size_t)si->page_count * sizeof *seqs;
			if (d.n == DEFER_SNAPS || d.bytes >= DEFER_BYTES)
				rc = push_finish(r, s, store_id, &p, &lk, &d,
						 st, err);
		}
		if (rc < 0)
			goto failed;
	}
	rc = push_finish(r, s, store_id, &p, &lk, &d, st, err);
	if (rc < 0)
		goto failed;
	if (progress)
		progress(pctx, total, total);
	goto out;
failed: {
		/* "URL: what failed", the URL once. */
		const char *url = snap_objstore_url(r->os);
		if (!strstr(err->msg, url))
			snap_err_prefix(err, "%s", url);
	}
out:
	for (size_t i = 0; i < d.n; i++)   /* a failure's leftovers */
		free(d.v[i].seqs);
	{
		/* A failure can leave a pack in flight: let it land first. */
		int urc = uploads_wait(&q, s, st, rc, err);
		if (rc == 0)
			rc = urc;
	}
	if (rc == 0 && st->snapshots) {
		char what[160];
		snprintf(what, sizeof what, "%llu snapshot%s, %llu page%s, "
			 "%llu bytes", (unsigned long long)st->snapshots,
			 st->snapshots == 1 ? "" : "s",
			 (unsigned long long)st->pages,
			 st->pages == 1 ? "" : "s",
			 (unsigned long long)st->bytes);
		snap_replica_log_add(r, "replicate", 1, what);
	} else if (rc < 0 && rc != -EBUSY && !refused &&
		   rc != -ETIMEDOUT && rc != -EHOSTUNREACH && rc != -EAGAIN &&
		   rc != -ECANCELED) {
		/* Not when the server did not answer (or we are stopping):
		 * the entry would wait out the same timeouts again, for a
		 * history the local event keeps anyway. */
		snap_replica_log_add(r, "replicate", 0, err->msg);
	}
	snap_replica_unlock(r, lock);
	r->rowstore = NULL;
	r->rowcache_tried = 0;
	snap_replica_rowcache_forget(r);
	snap_replica_lookup_free(&lk);
	pending_free(&p);
	uploads_free(&q);
	free(local);
	free(byname);
	free(rows);
	free(gone);
	return rc;
}
