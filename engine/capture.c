/*
 * engine/capture.c — capture of pages into the store; see capture.h for
 * the design.
 *
 * Pages arrive through snap_capture_write (from the capture VFS,
 * capture_vfs.c, the destination of a backup) or snap_capture_feed (read
 * raw under a restore's lock).  Page 1 is normalized and kept; every page
 * goes through the page pipe (pagepipe.c): hashing and compression on
 * worker threads (cap_work), the image hash in page order on the pipe's
 * order thread (cap_order), then, in page order on the caller's thread,
 * lookup in the capture's page index (candidates by a hash prefix, confirmed
 * on the full hash: capture_find.c) and insertion of new pages (cap_commit).
 * The image hash streams while pages come in order and is recomputed from
 * the stored pages otherwise (cap_rehash).  In compare mode (verifying a
 * restore) pages are compared with expected hashes instead of stored.
 * The first failure is kept in the capture (snap_capture_fail): SQLite
 * only sees an rc.  In a store without a zstd dictionary, the first 8 MB
 * of pages committed are also kept as samples, and the dictionary trained
 * on them is recorded in the capture's transaction and used from then on
 * (capture_dict.c; engine/DESIGN.md §2, "Dictionary").
 */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "pagepipe.h"
#include "store_int.h"


void snap_capture_fail(snap_capture *c, int code, const char *fmt, ...)
{
	va_list ap;

	if (c->err_code)
		return;
	c->err_code = code;
	va_start(ap, fmt);
	vsnprintf(c->err_msg, sizeof(c->err_msg), fmt, ap);
	va_end(ap);
}

/* Mark pgno pushed into the pipe; *again when it was before. */
static int cap_mark_pushed(snap_capture *c, uint32_t pgno, int *again)
{
	uint32_t byte = (pgno - 1) / 8, cap;
	uint8_t bit = (uint8_t)(1u << ((pgno - 1) % 8)), *m;

	if (byte >= c->pushed_cap) {
		cap = c->pushed_cap ? c->pushed_cap : 4096;
		while (cap <= byte)
			cap *= 2;
		m = realloc(c->pushed, cap);
		if (!m)
			return -ENOMEM;
		memset(m + c->pushed_cap, 0, cap - c->pushed_cap);
		c->pushed = m;
		c->pushed_cap = cap;
	}
	*again = (c->pushed[byte] & bit) != 0;
	c->pushed[byte] |= bit;
	return 0;
}

/* Insert a new page (hash, stored bytes) into the store and the index. */
static int cap_insert(snap_capture *c, const uint8_t sha[32], const void *z,
		      size_t zlen, size_t len, int64_t *id)
{
	int rc;

	sqlite3_bind_blob(c->ins_page, 1, sha, 32, SQLITE_STATIC);
	sqlite3_bind_int64(c->ins_page, 2, (int64_t)len);
	sqlite3_bind_int64(c->ins_page, 3, (int64_t)zlen);
	rc = sqlite3_step(c->ins_page);
	sqlite3_reset(c->ins_page);
	if (rc != SQLITE_DONE)
		goto sqlfail;
	*id = sqlite3_last_insert_rowid(c->store);
	sqlite3_bind_int64(c->ins_data, 1, *id);
	sqlite3_bind_blob(c->ins_data, 2, z, (int)zlen, SQLITE_STATIC);
	rc = sqlite3_step(c->ins_data);
	sqlite3_reset(c->ins_data);
	if (rc != SQLITE_DONE)
		goto sqlfail;
	if (c->n_new == c->cap_new) {
		size_t cap = c->cap_new ? c->cap_new * 2 : 1024;
		int64_t *v = realloc(c->new_ids, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->new_ids = v;
		c->cap_new = cap;
	}
	c->new_ids[c->n_new++] = *id;
	c->new_bytes += zlen;
	pthread_rwlock_wrlock(&c->idx_lock);
	rc = snap_pfxidx_add(&c->idx, sha, *id);
	pthread_rwlock_unlock(&c->idx_lock);
	return rc;
sqlfail:
	rc = snap_err_sqlite_errno(rc);
	snap_capture_fail(c, rc, "cannot write a page into the store: %s",
		 sqlite3_errmsg(c->store));
	return rc;
}

/* Insert a page the store lacks: its stored bytes z (zlen), or, when
 * zlen is 0 (a worker saw an index candidate and left it unpacked),
 * compressed here from page (len bytes). */
static int cap_pack_insert(snap_capture *c, const uint8_t *page, size_t len,
			   const uint8_t sha[32], const void *z, size_t zlen,
			   int64_t *id)
{
	if (!zlen) {
		if (c->zcap < ZSTD_compressBound(len)) {
			free(c->zbuf);
			c->zcap = ZSTD_compressBound(len);
			c->zbuf = malloc(c->zcap);
			if (!c->zbuf) {
				c->zcap = 0;
				return -ENOMEM;
			}
		}
		zlen = snap_codec_pack(&c->codec, page, len, c->zbuf, c->zcap);
		z = c->zbuf;
	}
	return cap_insert(c, sha, z, zlen, len, id);
}

/* Find or store one page image, on this thread; gives its id. */
static int cap_store_page(snap_capture *c, const uint8_t *page, size_t len,
			  const uint8_t sha[32], int64_t *id)
{
	int rc = snap_capture_find(c, sha, id);

	if (rc || *id)
		return rc;
	return cap_pack_insert(c, page, len, sha, NULL, 0, id);
}

/* Make room in the map for pgno: first as many pages as the previous
 * snapshot had (an incremental capture's map then never grows), then by
 * an eighth (a block this size grows in place, mremap), where doubling
 * left up to half of it unused at the capture's peak (8 MB for 4 GB). */
static int cap_map_reserve(snap_capture *c, uint32_t pgno)
{
	uint32_t cap;
	int64_t *m;

	if (pgno <= c->map_cap)
		return 0;
	cap = c->map_cap ? c->map_cap : c->prev_n > 1024 ? c->prev_n : 1024;
	while (cap < pgno)
		cap = cap > UINT32_MAX - cap / 8 - 1 ? UINT32_MAX :
		      cap + cap / 8 + 1;
	m = realloc(c->map, (size_t)cap * sizeof(*m));
	if (!m)
		return -ENOMEM;
	memset(m + c->map_cap, 0, (size_t)(cap - c->map_cap) * sizeof(*m));
	c->map = m;
	c->map_cap = cap;
	return 0;
}

/* Page number of the lock-byte page (the page holding offset 1 GiB),
 * which a backup never writes and which reads as zeros. */
static uint32_t lock_byte_pgno(uint32_t page_size)
{
	return (uint32_t)(0x40000000u / page_size) + 1;
}

/* Stream page pgno into the image hash when it is the next one expected;
 * any other order makes the final hash come from the stored pages. */
static void cap_hash_next(snap_capture *c, uint32_t pgno, const uint8_t *page)
{
	static const uint8_t zero[SNAP_PAGE_MAX];

	if (!c->in_order)
		return;
	if (pgno == c->hashed + 2 &&
	    c->hashed + 1 == lock_byte_pgno(c->page_size)) {
		EVP_DigestUpdate(c->image_sha, zero, c->page_size);
		c->hashed++;
	}
	if (pgno != c->hashed + 1) {
		c->in_order = 0;
		return;
	}
	EVP_DigestUpdate(c->image_sha, page, c->page_size);
	c->hashed = pgno;
}

/*
 * The backup's own commit may write page 1 again, with the destination's
 * counters moved (change counter 24-27, schema cookie 40-43, version-valid
 * 92-95; engine/PITFALLS.md 7).  Those belong to the destination connection,
 * not to the image: keep the first page 1, the source's own header.
 */
int snap_page1_same(const uint8_t *a, const uint8_t *b, size_t n)
{
	static const struct { size_t off, len; } skip[] = {
		{18, 2}, {24, 4}, {40, 4}, {92, 4},
	};
	size_t at = 0, k;

	for (k = 0; k < sizeof(skip) / sizeof(skip[0]); k++) {
		if (memcmp(a + at, b + at, skip[k].off - at))
			return 0;
		at = skip[k].off + skip[k].len;
	}
	return memcmp(a + at, b + at, n - at) == 0;
}

/* Compare mode: does page pgno equal what the image says? */
static int cap_compare(snap_capture *c, const uint8_t *page, uint32_t pgno)
{
	uint8_t sha[32];
	int same;

	if (pgno > c->npages)
		c->npages = pgno;
	if (pgno == 1) {      /* served back if SQLite re-reads it */
		memcpy(c->page1, page, c->page_size);
		c->have_page1 = 1;
	}
	if (pgno > c->expect_pages)
		same = 0;
	else if (pgno == 1)
		same = snap_page1_same(c->expect_page1, page, c->page_size);
	else {
		int rc = snap_sha256(page, c->page_size, sha);

		if (rc)
			return rc;
		same = memcmp(sha, c->expect[pgno - 1], 32) == 0;
	}
	if (!same && !c->mismatches++)
		c->first_mismatch = pgno;
	return 0;
}

/* Keep page 1 (normalized) and what its header says. */
static void cap_set_page1(snap_capture *c, const uint8_t *page)
{
	memcpy(c->page1, page, c->page_size);
	c->change_counter = be32toh(*(uint32_t *)(c->page1 + 24));
	c->header_pages = be32toh(*(uint32_t *)(c->page1 + 28));
	/* Rollback-journal mode, so the image opens standalone. */
	c->page1[18] = 1;
	c->page1[19] = 1;
	c->have_page1 = 1;
}

/* Worker threads: hash the page; if it is the previous snapshot's page at
 * this pgno, take its id; if the index has no candidate for it, compress
 * it.  s->id comes in as -1 for a page pushed before (no fast path), else
 * 0; it leaves as the fast path's id or 0 (outlen 0: not packed). */
static void cap_work(void *ctx, snap_pipe_slot *s, snap_codec *codec)
{
	snap_capture *c = ctx;
	int again = s->id < 0, known;

	s->id = 0;
	s->status = snap_sha256(s->in, s->inlen, s->sha);
	if (s->status)
		return;
	if (!again && s->pgno > 1 && snap_capture_prev_has(c, s->pgno) &&
	    memcmp(s->sha, c->sha[s->pgno - 1], 32) == 0) {
		s->id = c->prev_ids[s->pgno - 1];
		return;
	}
	/* A candidate under the hash's prefix is most likely this page,
	 * stored already: leave it unpacked.  Only the commit, which can
	 * read the store, takes it as this page (on the full hash), and
	 * packs the page itself when it is not. */
	pthread_rwlock_rdlock(&c->idx_lock);
	known = snap_pfxidx_has(&c->idx, s->sha);
	pthread_rwlock_unlock(&c->idx_lock);
	if (!known)
		s->outlen = snap_codec_pack(codec, s->in, s->inlen, s->out,
					    snap_pagepipe_bufsize(c->page_size));
}

/* The pipe's order thread, in arrival order: the image hash, which alone
 * costs as much as reading the pages, so it stays off the backup's
 * thread.  It owns image_sha, hashed and in_order while the pipe runs. */
static void cap_order(void *ctx, const snap_pipe_slot *p)
{
	snap_capture *c = ctx;

	if (!p->status)
		cap_hash_next(c, p->pgno, p->in);
}

/* The backup's thread, in arrival order: store, map. */
static int cap_commit(void *ctx, const snap_pipe_slot *p)
{
	snap_capture *c = ctx;
	int64_t id = p->id;
	int rc;

	if (p->status)
		return p->status;
	if (c->samples && (rc = snap_capture_dict_sample(c, p->in)))
		return rc;
	/* A page first seen in a slot still in flight is in the index now;
	 * a candidate the worker saw is confirmed here. */
	if (!id && (rc = snap_capture_find(c, p->sha, &id)))
		return rc;
	if (!id) {
		rc = cap_pack_insert(c, p->in, c->page_size, p->sha, p->out,
				     p->outlen, &id);
		if (rc)
			return rc;
	}
	rc = cap_map_reserve(c, p->pgno);
	if (rc)
		return rc;
	if (c->map[p->pgno - 1])
		c->rehash = 1;        /* rewritten: hash again at the end */
	c->map[p->pgno - 1] = id;
	if (p->pgno > c->npages)
		c->npages = p->pgno;
	/* Only a page that took the fast path has its hash in place: a
	 * page written twice, found by lookup with the previous id, may
	 * have left the first write's hash there. */
	if (p->id)
		c->fast_pages++;
	else if (snap_capture_sha_set(c, p->pgno, p->sha))
		return -ENOMEM;
	if (c->progress && (p->pgno & 1023) == 0)
		c->progress(c->progress_ctx, p->pgno, c->header_pages);
	return 0;
}

/* One page arrives from the backup. */
static int cap_page(snap_capture *c, const void *buf, int amt,
		    sqlite3_int64 off)
{
	const uint8_t *page = buf;
	uint32_t pgno;
	int rc, again;

	if (c->page_size == 0) {
		snap_capture_fail(c, -EIO, "capture: page size unknown");
		return -EIO;
	}
	if ((uint32_t)amt != c->page_size || off % c->page_size) {
		snap_capture_fail(c, -EIO, "capture: unaligned write of %d "
				  "bytes at %lld", amt, (long long)off);
		return -EIO;
	}
	pgno = (uint32_t)(off / c->page_size) + 1;
	if (c->expect)
		return cap_compare(c, page, pgno);
	if (pgno == 1) {
		if (c->have_page1 &&
		    snap_page1_same(c->page1, page, (size_t)amt))
			return 0;
		cap_set_page1(c, page);
		page = c->page1;
	}
	if (!c->pipe) {
		rc = snap_capture_settle(c);
		if (!rc)
			rc = snap_capture_dicts_ready(c);
		if (rc)
			return rc;
		rc = snap_pagepipe_start_ordered(&c->pipe, c->page_size,
						 cap_work, cap_order,
						 cap_commit, c);
		if (rc)
			return rc;
		snap_pagepipe_use_dicts(c->pipe, snap_capture_dicts(c));
	}
	rc = cap_mark_pushed(c, pgno, &again);
	if (rc)
		return rc;
	return snap_pagepipe_push(c->pipe, pgno, again ? -1 : 0, page,
				  c->page_size, NULL);
}

int snap_capture_write(snap_capture *c, const void *page, int amt,
		       int64_t off)
{
	int rc;

	if (c->err_code)
		return c->err_code;
	rc = cap_page(c, page, amt, off);
	if (rc)
		snap_capture_fail(c, rc, "capture: %s", strerror(-rc));
	return rc;
}

int snap_capture_feed(snap_capture *c, const void *page, int64_t off)
{
	return snap_capture_write(c, page, (int)c->page_size, off);
}

int snap_capture_init_compare(snap_capture *c, const uint8_t (*expect)[32],
			      const uint8_t *page1, uint32_t npages,
			      snap_err *err)
{
	(void)err;      /* nothing here fails (the VFS registers at open) */
	memset(c, 0, sizeof(*c));
	c->expect = expect;
	c->expect_page1 = page1;
	c->expect_pages = npages;
	return 0;
}

int snap_capture_init(snap_capture *c, sqlite3 *store, snap_err *err)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->store = store;
	c->in_order = 1;
	pthread_rwlock_init(&c->idx_lock, NULL);
	c->have_idx_lock = 1;
	rc = snap_codec_init(&c->codec);
	if (rc)
		return snap_err_set(err, rc, "out of memory for zstd");
	c->image_sha = EVP_MD_CTX_new();
	if (!c->image_sha || !EVP_DigestInit_ex(c->image_sha, EVP_sha256(),
						NULL))
		return snap_err_set(err, -ENOMEM, "cannot start SHA-256");
	rc = sqlite3_prepare_v2(store, "INSERT INTO pages(hash, size, zlen, "
				"runs) VALUES(?,?,?,1)", -1, &c->ins_page,
				NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(store, "INSERT INTO page_data(id, "
					"zdata) VALUES(?,?)", -1, &c->ins_data,
					NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(store, "SELECT id FROM pages WHERE "
					"hash=?", -1, &c->find_page, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(store, "SELECT hash FROM pages WHERE "
					"id=?", -1, &c->page_hash, NULL);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, store, rc, "store");
	if (snap_pfxidx_init(&c->idx, 4096))
		return snap_err_set(err, -ENOMEM, "out of memory for the page "
				    "index");
	return snap_capture_prev_load(c, err);
}

void snap_capture_free(snap_capture *c)
{
	snap_pagepipe_stop(c->pipe);
	if (c->have_idx_lock)
		pthread_rwlock_destroy(&c->idx_lock);
	sqlite3_finalize(c->ins_page);
	sqlite3_finalize(c->ins_data);
	sqlite3_finalize(c->find_page);
	sqlite3_finalize(c->page_hash);
	snap_pfxidx_free(&c->idx);
	free(c->prev_ids);
	free(c->prev_ok);
	free(c->sha);
	free(c->sha_more);
	free(c->pushed);
	snap_codec_free(&c->codec);
	snap_dicts_free(&c->dicts);
	snap_dicts_free(&c->trained);
	snap_capture_samples_free(c);
	EVP_MD_CTX_free(c->image_sha);
	free(c->zbuf);
	free(c->map);
	free(c->new_ids);
	memset(c, 0, sizeof(*c));
}

int snap_capture_begin(snap_capture *c, sqlite3 *src, snap_err *err)
{
	sqlite3_file *f = NULL;
	int rc;

	rc = sqlite3_file_control(src, "main", SQLITE_FCNTL_FILE_POINTER, &f);
	if (rc != SQLITE_OK || !f || !f->pMethods)
		return 0;
	return snap_capture_begin_file(c, f, err);
}

int snap_capture_begin_file(snap_capture *c, sqlite3_file *f, snap_err *err)
{
	uint8_t sha[32], *p1;
	uint32_t ps;
	int64_t id;
	int rc;

	p1 = malloc(SNAP_PAGE_MAX);
	if (!p1)
		return snap_err_set(err, -ENOMEM, "out of memory");
	/* Read through SQLite's own descriptor (engine/PITFALLS.md 2).  A
	 * short read or an empty header means no prediction, not an error; a
	 * read that fails is one (it is not "no database"). */
	rc = f->pMethods->xRead(f, p1, 100, 0);
	if (rc != SQLITE_OK || memcmp(p1, "SQLite format 3", 16) != 0)
		goto none;
	ps = ((uint32_t)p1[16] << 8) | p1[17];
	if (ps == 1)
		ps = 65536;
	if (ps < 512 || (ps & (ps - 1)))
		goto none;
	rc = f->pMethods->xRead(f, p1, (int)ps, 0);
	if (rc != SQLITE_OK)
		goto none;
	c->page_size = ps;
	cap_set_page1(c, p1);
	free(p1);
	rc = snap_capture_settle(c);
	if (!rc)
		rc = snap_capture_dicts_ready(c);
	if (!rc)
		rc = snap_sha256(c->page1, c->page_size, sha);
	if (!rc)
		rc = cap_map_reserve(c, 1);
	if (!rc)
		rc = cap_store_page(c, c->page1, c->page_size, sha, &id);
	if (!rc)
		rc = snap_capture_sha_set(c, 1, sha);
	if (rc)
		return snap_err_set(err, rc, "capture: %s", c->err_msg[0] ?
				    c->err_msg : strerror(-rc));
	c->map[0] = id;
	c->npages = 1;
	cap_hash_next(c, 1, c->page1);
	return 0;
none:
	free(p1);
	if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ)
		return snap_err_sqlite(err, NULL, rc, "cannot read the "
				       "database header");
	return 0;
}


/* Recompute the image hash from the stored pages (the slow path). */
static int cap_rehash(snap_capture *c, uint8_t sha[32], snap_err *err)
{
	sqlite3_stmt *st = NULL;
	uint8_t *page = malloc(c->page_size);
	uint32_t i;
	unsigned int n = 32;
	int rc;

	if (!page)
		return snap_err_set(err, -ENOMEM, "out of memory");
	EVP_DigestInit_ex(c->image_sha, EVP_sha256(), NULL);
	rc = sqlite3_prepare_v2(c->store, "SELECT zdata FROM page_data WHERE "
				"id=?", -1, &st, NULL);
	for (i = 0; rc == SQLITE_OK && i < c->npages; i++) {
		sqlite3_bind_int64(st, 1, c->map[i]);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		if (snap_codec_unpack(&c->codec, sqlite3_column_blob(st, 0),
				      (size_t)sqlite3_column_bytes(st, 0),
				      page, c->page_size)) {
			rc = SQLITE_CORRUPT;
			break;
		}
		EVP_DigestUpdate(c->image_sha, page, c->page_size);
		rc = sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	free(page);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, c->store, rc, "cannot re-read the "
				       "captured image");
	EVP_DigestFinal_ex(c->image_sha, sha, &n);
	return 0;
}

int snap_capture_finish(snap_capture *c, uint8_t sha[32], snap_err *err)
{
	uint32_t i;
	int64_t zero_id = 0;
	uint8_t zero_sha[32];
	unsigned int n = 32;
	int rc;

	if (c->pipe) {
		rc = snap_pagepipe_drain(c->pipe);
		snap_pagepipe_stop(c->pipe);
		c->pipe = NULL;
		if (rc && !c->err_code)
			snap_capture_fail(c, rc, "capture: %s", strerror(-rc));
	}
	if (c->err_code)
		return snap_err_set(err, c->err_code, "%s", c->err_msg);
	if (!c->have_page1 || c->npages == 0)
		return snap_err_set(err, -EINVAL, "the backup produced no "
				    "pages: the source is empty or not a "
				    "database");
	/* Pages the backup never writes (the lock-byte page) are zeros. */
	for (i = 0; i < c->npages; i++) {
		if (c->map[i])
			continue;
		if (!zero_id) {
			uint8_t *z = calloc(1, c->page_size);
			uint8_t zsha[32];

			if (!z)
				return snap_err_set(err, -ENOMEM, "out of memory");
			rc = snap_sha256(z, c->page_size, zsha);
			if (!rc)
				rc = cap_store_page(c, z, c->page_size, zsha,
						    &zero_id);
			free(z);
			if (rc)
				return snap_err_set(err, rc, "%s", c->err_msg);
			memcpy(zero_sha, zsha, 32);
		}
		c->map[i] = zero_id;
		if (snap_capture_sha_set(c, i + 1, zero_sha))
			return snap_err_set(err, -ENOMEM, "out of memory");
	}
	/* Every page has its id: the index (a third of a capture's memory
	 * on a first snapshot) is not needed by what follows (the runs,
	 * the catalog row, the hashes), which has peaks of its own. */
	snap_pfxidx_free(&c->idx);
	if (c->in_order && !c->rehash && c->hashed == c->npages) {
		EVP_DigestFinal_ex(c->image_sha, sha, &n);
		return 0;
	}
	return cap_rehash(c, sha, err);
}
