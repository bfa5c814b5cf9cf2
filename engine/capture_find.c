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
 * The transaction that records a snapshot also keeps the SHA-256 of each
 * of its pages by page number, cut in pieces of SNAP_HASHES_PIECE (500)
 * hashes, one meta row a piece, 'capture_hashes:0', 'capture_hashes:1',
 * ... (the last holds the rest):
 *
 *   "SFH2", snapshot id (8, LE), page size (4, LE), page count N (4, LE),
 *   piece number k (4, LE), hashes a piece P (4, LE), the hashes of
 *   pages k*P+1 .. min(N, (k+1)*P), then the SHA-256 of everything
 *   before it.
 *
 * Why pieces: meta is WITHOUT ROWID, so SQLite writes and reads a value
 * only whole, building a record of it; one row of every hash (32 MB for a
 * 4 GB database) made a copy as large as the capture's array beside it.
 * Why so small: a seek in a WITHOUT ROWID table that compares its key
 * with a cell whose record spills onto overflow pages reads that whole
 * record into memory first (btree.c, sqlite3BtreeIndexMoveto), so with
 * pieces of 1 MiB every lookup of a piece read several, and writing and
 * reading them took 2-3 times as long as the one row; a piece of 500
 * (16,060 bytes) fits in one cell of the store's 64 KiB pages and is read
 * and overwritten in place (tests/bench/README.md, "Page hashes in
 * pieces"; in a store made with 4 KiB pages a piece still spills, and a
 * comparison reads 16 KB).  Each piece names its snapshot, shape and place under its
 * own checksum, so pieces of two snapshots are never mixed: the first
 * whole piece names the snapshot, and a piece that is damaged, missing,
 * of another snapshot or past the end leaves only its own pages without
 * the fast path (prev_ok), the others keep it (reading stops at a
 * missing key before a snapshot is named: a missing piece 0, which the
 * writer always writes, costs all).  The writer replaces the
 * pieces it has and deletes every other one, and the old row: a
 * snapshot shorter than the one before leaves no stale piece behind.
 *
 * The old form (snapfs before pieces) is one row 'capture_hashes':
 * "SFH1", id, page size, N, the N hashes, the checksum.  A capture reads
 * it as one piece of N hashes when it is whole and newer than any piece
 * (only an older snapfs writes it), and keeps pieces; a snapfs before
 * pieces looks up only that row, finds none, and loads the whole store's
 * index instead, as for a first snapshot: right, only slower.
 *
 * The next capture loads the hashes piece by piece straight into its
 * array, with that snapshot's map, when that snapshot still exists with
 * that page size and count (snapshot ids are AUTOINCREMENT, never
 * reused, and an existing snapshot's pages never change).  Then a page
 * whose SHA-256, computed from the bytes captured now, equals the one
 * recorded at its pgno takes that snapshot's page id: no lookup, no
 * compression, no write.  Page identity stays the page's full SHA-256,
 * so a verify or a restore proves every page as before; the hashes only
 * spare the lookup.  Other pages are looked up in the capture's own
 * index (pages it met), then in the store by hash with SQL; after
 * cap_sql_lookups_max() of those (an import of an unrelated file, say)
 * the whole store's index is loaded as a capture without the hashes does
 * from the start.  The index keeps only the first 8 bytes of each hash
 * (snap_pfxidx): an id it gives is taken only when the store's recorded
 * hash for that id is the page's whole SHA-256 (cap_find_indexed), so
 * pages that share a prefix stay apart.  Page 1 never takes the fast
 * path (it changes in every snapshot: engine/PITFALLS.md 7), nor does a
 * page written twice (its second write might race its first).
 */
#define HASHES_KEY "capture_hashes"     /* ':' and a piece's number follow */
/* SQL: the piece number after a key's ':' */
#define HASHES_NUM \
	"CAST(substr(key, length('" HASHES_KEY ":') + 1) AS INTEGER)"
#define HASHES_HEAD_OLD 20         /* "SFH1" row */
#define HASHES_HEAD 28             /* "SFH2" piece */

/* A piece's record (value, key of at most 25 bytes, header) must stay
 * under 16,384 bytes: the most a cell of a 64 KiB page holds whole. */
_Static_assert(HASHES_HEAD + SNAP_HASHES_PIECE * 32 + 32 + 40 < 16384,
	       "a piece of page hashes must fit in one cell");

/* A piece's header, as hashes_parse() read it. */
typedef struct hashes_head {
	int64_t id;                /* the snapshot */
	uint32_t ps, n;            /* its page size and page count */
	uint32_t k, per;           /* piece number, hashes a piece */
	uint32_t count;            /* hashes in this piece */
	size_t head;               /* bytes before the hashes */
} hashes_head;

/* The header's little-endian fields, byte by byte (a blob from SQLite and
 * the fields after the magic are not aligned for a wider load or store). */
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

/* Pieces of n hashes, per a piece. */
static uint32_t hashes_pieces(uint32_t n, uint32_t per)
{
	return (uint32_t)(((uint64_t)n + per - 1) / per);
}

/* The meta key of piece k. */
static void hashes_key(char out[32], uint32_t k)
{
	snprintf(out, 32, HASHES_KEY ":%u", k);
}

/* 1 when b (len bytes) is whole: a piece ("SFH2"), or with old set the
 * old row ("SFH1", read as piece 0 of one piece), its header in h; 0 for
 * anything else. */
static int hashes_parse(const uint8_t *b, size_t len, int old, hashes_head *h)
{
	uint8_t sum[32];

	memset(h, 0, sizeof(*h));
	h->head = old ? HASHES_HEAD_OLD : HASHES_HEAD;
	if (!b || len < h->head + 32 || memcmp(b, old ? "SFH1" : "SFH2", 4))
		return 0;
	h->id = (int64_t)hashes_get(b + 4, 8);
	h->ps = (uint32_t)hashes_get(b + 12, 4);
	h->n = (uint32_t)hashes_get(b + 16, 4);
	h->k = old ? 0 : (uint32_t)hashes_get(b + 20, 4);
	h->per = old ? h->n : (uint32_t)hashes_get(b + 24, 4);
	if (!h->n || !h->per || h->k >= hashes_pieces(h->n, h->per))
		return 0;
	h->count = h->n - h->k * h->per < h->per ? h->n - h->k * h->per
						 : h->per;
	return len == h->head + (size_t)h->count * 32 + 32 &&
	       !snap_sha256(b, len - 32, sum) && !memcmp(sum, b + len - 32, 32);
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

/* Forget the previous snapshot's hashes (unusable, or its page size
 * differs). */
static void cap_drop_prev(snap_capture *c)
{
	free(c->prev_ids);
	free(c->sha);
	free(c->prev_ok);
	c->prev_ids = NULL;
	c->sha = NULL;
	c->prev_ok = NULL;
	c->prev = 0;
	c->prev_snap = 0;
	c->prev_n = c->sha_cap = c->prev_piece = 0;
}

/* Does h's snapshot still exist with its page size and count?  1 or 0,
 * or a negative errno when the catalog cannot be read. */
static int hashes_fit(snap_capture *c, const hashes_head *h, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, ok;

	rc = sqlite3_prepare_v2(c->store, "SELECT page_size, page_count FROM "
				"snapshots WHERE id=?", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, h->id);
		rc = sqlite3_step(st);
	}
	ok = rc == SQLITE_ROW &&
	     sqlite3_column_int64(st, 0) == (int64_t)h->ps &&
	     sqlite3_column_int64(st, 1) == (int64_t)h->n;
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return snap_err_sqlite(err, c->store, rc, "cannot read the "
				       "catalog");
	return ok;
}

/* Take h's snapshot as the previous one: room for its hashes (zero until
 * a piece fills them) and for which pieces did. */
static int hashes_start(snap_capture *c, const hashes_head *h, snap_err *err)
{
	cap_drop_prev(c);
	c->sha = calloc(h->n, 32);
	c->prev_ok = calloc(hashes_pieces(h->n, h->per), 1);
	if (!c->sha || !c->prev_ok) {
		cap_drop_prev(c);
		return snap_err_set(err, -ENOMEM, "out of memory for the page "
				    "hashes of snapshot %lld", (long long)h->id);
	}
	c->prev_snap = h->id;
	c->prev_n = c->sha_cap = h->n;
	c->prev_page_size = h->ps;
	c->prev_piece = h->per;
	return 0;
}

/* Copy whole piece b (header h) into place, when it is of the snapshot
 * taken. */
static void hashes_take(snap_capture *c, const hashes_head *h,
			const uint8_t *b)
{
	if (h->id != c->prev_snap || h->ps != c->prev_page_size ||
	    h->n != c->prev_n || h->per != c->prev_piece)
		return;
	memcpy(c->sha[(size_t)h->k * h->per], b + h->head,
	       (size_t)h->count * 32);
	c->prev_ok[h->k] = 1;
}

/* Read the pieces 'capture_hashes:0', 1, ... in order: the first whole
 * one whose snapshot fits names the snapshot (without one, nothing is
 * taken); then every whole piece of that snapshot goes into place.
 * Reading stops at the first missing key before a snapshot is named,
 * after its last piece once one is. */
static int hashes_load_pieces(snap_capture *c, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	hashes_head h;
	char key[32];
	uint32_t k;
	int rc, fit;

	rc = sqlite3_prepare_v2(c->store, "SELECT value FROM meta WHERE key=?",
				-1, &st, NULL);
	for (k = 0; rc == SQLITE_OK; k++) {
		if (c->sha && k >= hashes_pieces(c->prev_n, c->prev_piece))
			break;
		hashes_key(key, k);
		sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE && !c->sha)
			break;
		if (rc == SQLITE_ROW &&
		    hashes_parse(sqlite3_column_blob(st, 0),
				 (size_t)sqlite3_column_bytes(st, 0), 0, &h) &&
		    h.k == k) {
			if (!c->sha) {
				fit = hashes_fit(c, &h, err);
				if (fit <= 0) {
					sqlite3_finalize(st);
					return fit;
				}
				fit = hashes_start(c, &h, err);
				if (fit) {
					sqlite3_finalize(st);
					return fit;
				}
			}
			hashes_take(c, &h, sqlite3_column_blob(st, 0));
		}
		if (rc == SQLITE_ROW || rc == SQLITE_DONE)
			rc = sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK && rc != SQLITE_DONE) {
		cap_drop_prev(c);
		return snap_err_sqlite(err, c->store, rc, "cannot read the "
				       "page hashes of the store");
	}
	return 0;
}

/* The old form's row, taken instead of the pieces when it is whole and
 * of a newer snapshot that fits (an older snapfs wrote it after them). */
static int hashes_load_old(snap_capture *c, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	const uint8_t *b;
	hashes_head h;
	int rc, fit = 0;

	rc = sqlite3_prepare_v2(c->store, "SELECT value FROM meta WHERE key=?",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, HASHES_KEY, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		b = sqlite3_column_blob(st, 0);
		if (hashes_parse(b, (size_t)sqlite3_column_bytes(st, 0), 1,
				 &h) && h.id > c->prev_snap)
			fit = hashes_fit(c, &h, err);
		if (fit > 0 && !(fit = hashes_start(c, &h, err)))
			hashes_take(c, &h, b);
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (fit < 0)
		return fit;
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, c->store, rc, "cannot read the "
				       "page hashes of the store");
	return 0;
}

/* Load the page hashes the store keeps (top of this section), and their
 * snapshot's map; anything unusable only means no fast path, for its
 * pages or for all.  0, or a negative errno when the store cannot be
 * read. */
int snap_capture_prev_load(snap_capture *c, snap_err *err)
{
	snap_err scratch;
	uint32_t got = 0;
	int rc;

	rc = hashes_load_pieces(c, err);
	if (!rc)
		rc = hashes_load_old(c, err);
	if (rc || !c->sha) {
		cap_drop_prev(c);
		return rc;
	}
	if (snap_store_load_map(c->store, c->prev_snap, &got, &c->prev_ids,
				&scratch) || got != c->prev_n) {
		cap_drop_prev(c);
		return 0;
	}
	c->prev = 1;
	return 0;
}

/* May the fast path compare pgno with the previous snapshot's hash (its
 * piece was loaded whole)? */
int snap_capture_prev_has(const snap_capture *c, uint32_t pgno)
{
	return c->prev && pgno >= 1 && pgno <= c->prev_n &&
	       c->prev_ok[(pgno - 1) / c->prev_piece];
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
		m = realloc(c->sha_more, (size_t)cap * 32);
		if (!m)
			return NULL;
		c->sha_more = (uint8_t (*)[32])m;
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

void snap_capture_trim(snap_capture *c)
{
	int64_t *m;

	free(c->prev_ids);
	free(c->pushed);
	c->prev_ids = NULL;
	c->pushed = NULL;
	c->pushed_cap = 0;
	c->prev = 0;
	/* The map grows ahead of the pages (cap_map_reserve) and its tail
	 * is zeroed, so resident.  A shrinking realloc of a block this size
	 * gives it back (mremap). */
	if (c->map && c->npages && c->npages < c->map_cap &&
	    (m = realloc(c->map, (size_t)c->npages * sizeof(*m))) != NULL) {
		c->map = m;
		c->map_cap = c->npages;
	}
}

/* Keep this capture's hashes as pieces (top of this section): each is
 * built in one buffer of a piece and written, so SQLite's record of a
 * value is a piece, never all the hashes; then the old row and every
 * other piece are deleted.  A piece replaced by one of the same size
 * (all but the last, as a rule) is overwritten in place by SQLite. */
int snap_capture_keep_hashes(snap_capture *c, int64_t id, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	uint32_t per = SNAP_HASHES_PIECE, k, i, count;
	uint32_t pieces = hashes_pieces(c->npages, per);
	uint8_t *b = NULL, *at, *h;
	size_t len;
	char key[32];
	int rc;

	/* The map is in the catalog row now: give its memory back before the
	 * pieces (snap_capture_trim gave back the rest). */
	free(c->map);
	c->map = NULL;
	c->map_cap = 0;
	c->prev = 0;
	b = malloc(HASHES_HEAD + (size_t)(c->npages < per ? c->npages : per) *
		   32 + 32);
	if (!b)
		return snap_err_set(err, -ENOMEM, "out of memory");
	rc = sqlite3_prepare_v2(c->store, "INSERT OR REPLACE INTO meta(key, "
				"value) VALUES(?, ?)", -1, &st, NULL);
	for (k = 0; rc == SQLITE_OK && k < pieces; k++) {
		count = c->npages - k * per < per ? c->npages - k * per : per;
		memcpy(b, "SFH2", 4);
		hashes_put(b + 4, (uint64_t)id, 8);
		hashes_put(b + 12, c->page_size, 4);
		hashes_put(b + 16, c->npages, 4);
		hashes_put(b + 20, k, 4);
		hashes_put(b + 24, per, 4);
		for (i = 0, at = b + HASHES_HEAD; i < count; i++, at += 32) {
			h = cap_sha_slot(c, k * per + i + 1);
			if (!h)
				break;
			memcpy(at, h, 32);
		}
		len = (size_t)(at - b) + 32;
		if (i < count || snap_sha256(b, len - 32, at)) {
			rc = SQLITE_NOMEM;
			break;
		}
		hashes_key(key, k);
		sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
		sqlite3_bind_blob(st, 2, b, (int)len, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			rc = sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	free(b);
	/* Then the old row and every other piece: past the new end, or
	 * under a key this number would not spell. */
	if (rc == SQLITE_OK) {
		rc = sqlite3_prepare_v2(c->store, "DELETE FROM meta WHERE key='"
					HASHES_KEY "' OR (key>='" HASHES_KEY ":' "
					"AND key<'" HASHES_KEY ";' AND NOT "
					"(" HASHES_NUM " BETWEEN 0 AND ? - 1 "
					"AND key='" HASHES_KEY ":' || "
					HASHES_NUM "))",
					-1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(st, 1, pieces);
			rc = sqlite3_step(st);
			rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		}
		sqlite3_finalize(st);
	}
	if (rc == SQLITE_NOMEM)
		return snap_err_set(err, -ENOMEM, "out of memory for the page "
				    "hashes of the snapshot");
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, c->store, rc, "cannot keep the "
				       "page hashes of the snapshot");
	return 0;
}
