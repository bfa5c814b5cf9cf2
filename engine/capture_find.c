/*
 * engine/capture_find.c — where a captured page's id comes from: the
 * previous snapshot's page hashes (the incremental fast path), the
 * capture's own index, or the store; and keeping this capture's hashes
 * for the next one.  The rest of the capture is capture.c; the struct
 * and the design are in capture.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "store_int.h"

/*
 * Page hashes: the incremental fast path.
 *
 * The transaction that records a snapshot also keeps, in meta
 * 'capture_hashes', the SHA-256 of each of its pages by page number:
 *
 *   "SFH1", snapshot id (8, LE), page size (4, LE), page count N (4, LE),
 *   N SHA-256s, then the SHA-256 of everything before it.
 *
 * The next capture loads it, with that snapshot's map, when the blob is
 * whole and that snapshot still exists with that page size and count
 * (snapshot ids are AUTOINCREMENT, never reused, and an existing
 * snapshot's pages never change).  Then a page whose SHA-256, computed
 * from the bytes captured now, equals the one recorded at its pgno takes
 * that snapshot's page id: no lookup, no compression, no write.  Page
 * identity stays the page's full SHA-256, so a verify or a restore
 * proves every page as before; the blob only spares the lookup.  Other
 * pages are looked up in the capture's own index (pages it met), then in
 * the store by hash with SQL; after cap_sql_lookups_max() of those (an
 * import of an unrelated file, say) the whole store's index is loaded as a
 * capture without the blob does from the start.  The index keeps only
 * the first 8 bytes of each hash (snap_pfxidx): an id it gives is taken
 * only when the store's recorded hash for that id is the page's whole
 * SHA-256 (cap_find_indexed), so pages that share a prefix stay apart.  Page 1 never takes the
 * fast path (it changes in every snapshot: engine/PITFALLS.md 7), nor
 * does a page written twice (its second write might race its first).
 */
#define HASHES_KEY "capture_hashes"
#define HASHES_HEAD 20

/* The header's little-endian fields, byte by byte (a blob from SQLite and
 * the fields after "SFH1" are not aligned for a wider load or store). */
static uint64_t hashes_get(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void hashes_put(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}
/* Lookups by hash with SQL before the whole store's index is loaded:
 * at least 4,096, and an eighth of the previous snapshot's pages.  A
 * lookup is one probe of the store's hash index (a few microseconds);
 * loading the index reads every page row of the store and holds 16
 * bytes for each (25 MB for a 4 GB database): it pays only when a large
 * part of the database missed.  With an absolute bound, a 1% change of
 * a 4 GB database (10,000 pages) loaded it. */
static uint32_t cap_sql_lookups_max(const snap_capture *c)
{
	return c->prev_n / 8 > 4096 ? c->prev_n / 8 : 4096;
}

/* Forget the previous snapshot's hashes (its page size differs). */
static void cap_drop_prev(snap_capture *c)
{
	free(c->prev_ids);
	free(c->hbuf);
	c->prev_ids = NULL;
	c->hbuf = NULL;
	c->sha = NULL;
	c->prev = 0;
	c->prev_n = c->sha_cap = 0;
}

/* Load the page hashes the store keeps (top of this section), if they
 * are whole and their snapshot is there; anything else only means no
 * fast path.  0, or a negative errno when the store cannot be read. */
int snap_capture_prev_load(snap_capture *c, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	const uint8_t *b;
	uint8_t sum[32];
	size_t len;
	int64_t id = 0;
	uint32_t ps = 0, n = 0, got = 0;
	snap_err scratch;
	int rc, ok = 0;

	rc = sqlite3_prepare_v2(c->store, "SELECT value FROM meta WHERE key=?",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, HASHES_KEY, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		b = sqlite3_column_blob(st, 0);
		len = (size_t)sqlite3_column_bytes(st, 0);
		if (b && len >= HASHES_HEAD + 32 && !memcmp(b, "SFH1", 4)) {
			id = (int64_t)hashes_get(b + 4, 8);
			ps = (uint32_t)hashes_get(b + 12, 4);
			n = (uint32_t)hashes_get(b + 16, 4);
			ok = n && len == HASHES_HEAD + (size_t)n * 32 + 32 &&
			     !snap_sha256(b, len - 32, sum) &&
			     !memcmp(sum, b + len - 32, 32);
		}
		if (ok) {
			/* Room for the blob this capture keeps around the
			 * hashes (snap_capture_keep_hashes). */
			c->hbuf = malloc(HASHES_HEAD + (size_t)n * 32 + 32);
			c->sha = (uint8_t (*)[32])(c->hbuf + HASHES_HEAD);
			if (!c->hbuf) {
				sqlite3_finalize(st);
				return snap_err_set(err, -ENOMEM, "out of "
						    "memory");
			}
			memcpy(c->sha, b + HASHES_HEAD, (size_t)n * 32);
		}
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, c->store, rc, "cannot read the "
				       "page hashes of the store");
	if (!ok)
		return 0;
	/* Its snapshot, still there with that shape, and its map. */
	rc = sqlite3_prepare_v2(c->store, "SELECT page_size, page_count FROM "
				"snapshots WHERE id=?", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
	}
	ok = rc == SQLITE_ROW &&
	     sqlite3_column_int64(st, 0) == (int64_t)ps &&
	     sqlite3_column_int64(st, 1) == (int64_t)n;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		cap_drop_prev(c);
		return snap_err_sqlite(err, c->store, rc, "cannot read the "
				       "catalog");
	}
	if (!ok || snap_store_load_map(c->store, id, &got, &c->prev_ids,
				       &scratch) || got != n) {
		cap_drop_prev(c);
		return 0;
	}
	c->prev = 1;
	c->prev_snap = id;
	c->prev_n = c->sha_cap = n;
	c->prev_page_size = ps;
	return 0;
}

/* Where the hash of pgno goes (the backup's thread); NULL: no memory. */
static uint8_t *cap_sha_slot(snap_capture *c, uint32_t pgno)
{
	uint32_t k = pgno - 1 - c->sha_cap, cap;
	uint8_t *m;

	if (pgno <= c->sha_cap)
		return c->sha[pgno - 1];
	if (k >= c->sha_more_cap) {
		cap = c->sha_more_cap ? c->sha_more_cap : 1024;
		while (cap <= k)
			cap *= 2;
		/* With room for the blob's head and checksum, like hbuf. */
		m = realloc(c->hmore, HASHES_HEAD + (size_t)cap * 32 + 32);
		if (!m)
			return NULL;
		c->hmore = m;
		c->sha_more = (uint8_t (*)[32])(m + HASHES_HEAD);
		c->sha_more_cap = cap;
	}
	return c->sha_more[k];
}

/* Record pgno's hash for the page hashes this capture will keep. */
int snap_capture_sha_set(snap_capture *c, uint32_t pgno,
			 const uint8_t sha[32])
{
	uint8_t *slot = cap_sha_slot(c, pgno);

	if (!slot)
		return -ENOMEM;
	memcpy(slot, sha, 32);
	return 0;
}

/* Load every stored page's hash into the in-memory index (under the
 * index's write lock: workers may be reading it). */
static int cap_load_index(snap_capture *c, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	int rc;

	rc = sqlite3_prepare_v2(c->store, "SELECT count(*) FROM pages", -1,
				&st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	pthread_rwlock_wrlock(&c->idx_lock);
	if (c->idx.used == 0) {
		snap_pfxidx_free(&c->idx);
		rc = snap_pfxidx_init(&c->idx, (size_t)n + 4096);
		if (rc) {
			pthread_rwlock_unlock(&c->idx_lock);
			return snap_err_set(err, rc, "out of memory for the "
					    "page index");
		}
	}
	rc = sqlite3_prepare_v2(c->store, "SELECT hash, id FROM pages", -1,
				&st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) == 32 &&
		    snap_pfxidx_add(&c->idx, sqlite3_column_blob(st, 0),
				    sqlite3_column_int64(st, 1))) {
			rc = SQLITE_NOMEM;
			break;
		}
		rc = SQLITE_OK;
	}
	pthread_rwlock_unlock(&c->idx_lock);
	sqlite3_finalize(st);
	if (rc == SQLITE_NOMEM)
		return snap_err_set(err, -ENOMEM, "out of memory for the page "
				    "index");
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, c->store, rc, "cannot load the "
				       "page index");
	c->full_idx = 1;
	return 0;
}

/* Once the page size is known: keep the previous hashes if they are of
 * that size, else index the whole store. */
int snap_capture_settle(snap_capture *c)
{
	snap_err e = {0};
	int rc;

	if (c->settled)
		return 0;
	c->settled = 1;
	if (c->prev && c->prev_page_size != c->page_size)
		cap_drop_prev(c);
	if (c->prev)
		return 0;
	rc = cap_load_index(c, &e);
	if (rc)
		snap_capture_fail(c, rc, "%s", e.msg);
	return rc;
}

/* Is stored page `id` the page of this hash?  Its full hash, read back
 * from the store, decides: an index candidate shares only the prefix. */
static int cap_confirm(snap_capture *c, int64_t id, const uint8_t sha[32],
		       int *same)
{
	int rc;

	sqlite3_bind_int64(c->page_hash, 1, id);
	rc = sqlite3_step(c->page_hash);
	*same = rc == SQLITE_ROW &&
		sqlite3_column_bytes(c->page_hash, 0) == 32 &&
		memcmp(sqlite3_column_blob(c->page_hash, 0), sha, 32) == 0;
	sqlite3_reset(c->page_hash);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	rc = snap_err_sqlite_errno(rc);
	snap_capture_fail(c, rc, "cannot read a page's hash in the store: %s",
			  sqlite3_errmsg(c->store));
	return rc;
}

/* The id of a stored page whose full hash is sha among the index's
 * candidates for its prefix; 0 if none. */
static int cap_find_indexed(snap_capture *c, const uint8_t sha[32],
			    int64_t *id)
{
	size_t pos = 0;
	int64_t cand;
	int rc, same;

	*id = 0;
	while ((cand = snap_pfxidx_next(&c->idx, sha, &pos)) != 0) {
		rc = cap_confirm(c, cand, sha, &same);
		if (rc)
			return rc;
		if (same) {
			*id = cand;
			return 0;
		}
	}
	return 0;
}

/* The id of a stored page with this hash, 0 if none (the backup's
 * thread): the capture's index (its candidates confirmed on the full
 * hash), then the store. */
int snap_capture_find(snap_capture *c, const uint8_t sha[32], int64_t *id)
{
	snap_err e = {0};
	int rc;

	rc = cap_find_indexed(c, sha, id);
	if (rc || *id || c->full_idx)
		return rc;
	if (++c->sql_lookups > cap_sql_lookups_max(c)) {
		rc = cap_load_index(c, &e);
		if (rc) {
			snap_capture_fail(c, rc, "%s", e.msg);
			return rc;
		}
		return cap_find_indexed(c, sha, id);
	}
	sqlite3_bind_blob(c->find_page, 1, sha, 32, SQLITE_STATIC);
	rc = sqlite3_step(c->find_page);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(c->find_page, 0);
	sqlite3_reset(c->find_page);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		rc = snap_err_sqlite_errno(rc);
		snap_capture_fail(c, rc, "cannot look up a page in the "
				  "store: %s", sqlite3_errmsg(c->store));
		return rc;
	}
	if (!*id)
		return 0;
	pthread_rwlock_wrlock(&c->idx_lock);
	rc = snap_pfxidx_add(&c->idx, sha, *id);
	pthread_rwlock_unlock(&c->idx_lock);
	return rc;
}

int snap_capture_keep_hashes(snap_capture *c, int64_t id, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	size_t len = HASHES_HEAD + (size_t)c->npages * 32 + 32;
	uint8_t *b, *at;
	uint32_t k;
	int rc;

	/* The map is in the catalog row now: give its memory back before the
	 * blob (the peak of a capture's memory is here). */
	free(c->map);
	free(c->prev_ids);
	free(c->pushed);
	c->map = NULL;
	c->prev_ids = NULL;
	c->pushed = NULL;
	c->map_cap = c->pushed_cap = 0;
	c->prev = 0;
	/* Pages past the previous snapshot's end: their hashes join the
	 * previous ones' array, grown in place (realloc of a block this
	 * size moves no bytes), instead of a copy of both. */
	if (c->hbuf && c->npages > c->sha_cap) {
		uint8_t *m = realloc(c->hbuf, len);

		if (!m)
			return snap_err_set(err, -ENOMEM, "out of memory");
		for (k = c->sha_cap + 1; k <= c->npages; k++)
			memcpy(m + HASHES_HEAD + (size_t)(k - 1) * 32,
			       c->sha_more[k - 1 - c->sha_cap], 32);
		c->hbuf = m;
		c->sha = (uint8_t (*)[32])(m + HASHES_HEAD);
		c->sha_cap = c->npages;
		free(c->hmore);
		c->hmore = NULL;
		c->sha_more = NULL;
		c->sha_more_cap = 0;
	}
	/* When one array holds every hash (the previous ones, or none
	 * loaded), the blob is built in place around it. */
	if (c->hbuf && c->npages <= c->sha_cap) {
		b = c->hbuf;
	} else if (!c->sha_cap && c->hmore && c->npages <= c->sha_more_cap) {
		b = c->hmore;
	} else {
		b = malloc(len);
		if (!b)
			return snap_err_set(err, -ENOMEM, "out of memory");
		for (k = 1, at = b + HASHES_HEAD; k <= c->npages; k++, at += 32)
			memcpy(at, cap_sha_slot(c, k), 32);
	}
	memcpy(b, "SFH1", 4);
	hashes_put(b + 4, (uint64_t)id, 8);
	hashes_put(b + 12, c->page_size, 4);
	hashes_put(b + 16, c->npages, 4);
	rc = snap_sha256(b, len - 32, b + len - 32);
	if (!rc) {
		rc = sqlite3_prepare_v2(c->store, "INSERT OR REPLACE INTO "
					"meta(key, value) VALUES(?, ?)", -1,
					&st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, HASHES_KEY, -1,
					  SQLITE_STATIC);
			sqlite3_bind_blob(st, 2, b, (int)len, SQLITE_STATIC);
			rc = sqlite3_step(st);
		}
		sqlite3_finalize(st);
		rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, c->store, rc,
			"cannot keep the page hashes of the snapshot");
	} else {
		rc = snap_err_set(err, rc, "cannot hash the page hashes");
	}
	if (b != c->hbuf && b != c->hmore)
		free(b);
	return rc;
}
