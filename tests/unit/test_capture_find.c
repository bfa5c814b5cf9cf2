/*
 * tests/unit/test_capture_find.c — engine/capture_find.c: the incremental
 * fast path (a page equal to the previous snapshot's at its page number
 * takes its id) and the page hashes kept for it, in pieces of
 * SNAP_HASHES_PIECE hashes: ids right across pieces, a damaged piece or
 * one of another snapshot costing only its own pages the fast path, no
 * stale piece after a shorter snapshot, the old single row still read.
 *
 * The pieces' tests use the real piece size (SNAP_HASHES_PIECE, 500
 * hashes) over databases of 512-byte pages, a few pieces each.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture.h"
#include "store_int.h"

#define PIECE SNAP_HASHES_PIECE
/* A piece's header: "SFH2", snapshot id (8), page size, page count, piece
 * number, hashes a piece (4 each); the old row's: "SFH1", id, page size,
 * page count. */
#define HEAD 28
#define HEAD_OLD 20

/* The snapshot's image is the live database's consistent state, byte for
 * byte past the header, and it verifies (each page against its SHA-256,
 * the image against its own). */
static void assert_image_is_live(tu_env *env, snap_store *st, int64_t id)
{
	char copy[PATH_MAX];
	size_t ilen = 0, clen = 0;
	snap_err e;

	tu_path(env, copy, "copy.db");
	unlink(copy);
	tu_db_backup_copy(env->db, copy);
	uint8_t *img = tu_image_bytes(st, id, &ilen);
	uint8_t *want = tu_read_file(copy, &clen);
	assert_int_equal(ilen, clen);
	assert_true(ilen > 100);
	for (size_t off = 100; off < ilen; off++)
		if (img[off] != want[off])
			fail_msg("snapshot %lld differs from the database at "
				 "byte %zu (page %zu)", (long long)id, off,
				 off / (size_t)tu_db_page_size(copy) + 1);
	free(img);
	free(want);
	unlink(copy);
	snap_err_clear(&e);
	if (snap_verify_snapshot(st, id, 0, NULL, NULL, &e) != 0)
		fail_msg("verify %lld: %s", (long long)id, e.msg);
}

/* Take a snapshot and check it holds the live database's state. */
static snap_info snap_checked(tu_env *env, snap_store *st, const char *label)
{
	snap_info si = tu_snap(st, label);

	assert_image_is_live(env, st, si.id);
	return si;
}

/* A connection to the store's own database, beside the engine's. */
static sqlite3 *store_db(tu_env *env)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s.snapfs/store.db", env->db);
	return tu_open(p);
}

/* Run sql on the rollback-mode live database; the first page past page 1
 * whose bytes it changed. */
static uint32_t update_page(tu_env *env, sqlite3 *db, const char *sql)
{
	size_t n0 = 0, n1 = 0, ps = (size_t)tu_db_page_size(env->db);
	uint8_t *before = tu_read_file(env->db, &n0);
	uint32_t pg = 0;

	tu_exec(db, "%s", sql);
	uint8_t *after = tu_read_file(env->db, &n1);
	for (size_t off = ps; !pg && off < n0 && off < n1; off += ps)
		if (memcmp(before + off, after + off, ps))
			pg = (uint32_t)(off / ps) + 1;
	free(before);
	free(after);
	if (!pg)
		fail_msg("%s changed no page", sql);
	return pg;
}

static void test_fast_path_reuses_unchanged_pages_without_a_lookup(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	uint32_t changed = update_page(env, db, "UPDATE t SET pad='x' "
				       "WHERE id=3");
	uint32_t pg = a.page_count / 2 == changed ? changed + 1 :
		      a.page_count / 2;
	int64_t id = tu_page_id(st, a.id, pg);

	/* Make the store's own index unable to find page pg by hash: only
	 * the kept page hashes (no lookup) can give its id back. */
	sqlite3 *sd = store_db(env);
	tu_exec(sd, "UPDATE pages SET hash=randomblob(32) WHERE id=%lld",
		(long long)id);
	sqlite3_close(sd);
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");
	assert_int_equal(tu_page_id(st, b.id, pg), id);
	assert_int_equal(b.page_count, a.page_count);
}

static void test_fast_path_page_changed_back_to_older_content(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	sqlite3 *db = tu_open(env->db);
	char *old = tu_query_text(db, "SELECT pad FROM t WHERE id=700");
	snap_info a = tu_snap(st, "a");
	uint32_t pg = update_page(env, db, "UPDATE t SET pad='changed' "
				  "WHERE id=700");
	snap_info b = snap_checked(env, st, "b");
	assert_true(tu_page_id(st, b.id, pg) != tu_page_id(st, a.id, pg));
	tu_exec(db, "UPDATE t SET pad='%s' WHERE id=700", old);
	snap_info c = snap_checked(env, st, "c");
	/* Back to a's bytes: a's page, not b's, and not a new one. */
	assert_int_equal(tu_page_id(st, c.id, pg), tu_page_id(st, a.id, pg));
	sqlite3_close(db);
	free(old);
}

static void test_fast_path_database_shrinks_and_grows(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 3000);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);

	tu_exec(db, "DELETE FROM t WHERE id > 1000");
	tu_exec(db, "VACUUM");
	snap_info b = snap_checked(env, st, "b");
	assert_true(b.page_count < a.page_count);
	tu_db_insert(db, 5001, 9000);
	snap_info c = snap_checked(env, st, "c");
	assert_true(c.page_count > a.page_count);
	tu_exec(db, "UPDATE t SET pad='y' WHERE id=8000");
	snap_checked(env, st, "d");
	sqlite3_close(db);
}

static void test_fast_path_page_size_change(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);

	tu_exec(db, "PRAGMA page_size=8192");
	tu_exec(db, "VACUUM");
	assert_int_equal(tu_db_page_size(env->db), 8192);
	snap_info b = snap_checked(env, st, "b");
	assert_int_equal(b.page_size, 8192);
	assert_true(b.page_count < a.page_count);
	tu_exec(db, "UPDATE t SET pad='z' WHERE id=1500");
	snap_checked(env, st, "c");
	tu_exec(db, "PRAGMA page_size=4096");
	tu_exec(db, "VACUUM");
	snap_info d = snap_checked(env, st, "d");
	assert_int_equal(d.page_size, 4096);
	sqlite3_close(db);
}

static void test_fast_path_wal_database(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, 2000);
	sqlite3 *db = tu_open(env->db);
	sqlite3 *reader = tu_open(env->db);

	tu_exec(db, "PRAGMA wal_autocheckpoint=0");
	snap_info a = tu_snap(st, "a");
	/* A reader holding an old state keeps the commits in the WAL. */
	tu_exec(reader, "BEGIN");
	assert_true(tu_query_int(reader, "SELECT count(*) FROM t") == 2000);
	tu_exec(db, "UPDATE t SET pad='w' WHERE id IN (10, 900, 1900)");
	tu_db_insert(db, 2001, 2300);
	snap_info b = snap_checked(env, st, "b");
	assert_true(b.page_count > a.page_count);
	tu_exec(reader, "COMMIT");
	tu_exec(db, "DELETE FROM t WHERE id BETWEEN 100 AND 400");
	snap_info c = snap_checked(env, st, "c");
	assert_int_equal(tu_image_rows(st, c.id), 2300 - 301);
	sqlite3_close(reader);
	sqlite3_close(db);
}

static void test_fast_path_ignores_damaged_or_stale_page_hashes(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	sqlite3 *sd = store_db(env);
	uint32_t pg = update_page(env, db, "UPDATE t SET pad='damaged' "
				  "WHERE id=1200");
	size_t n = 0, ps = (size_t)tu_db_page_size(env->db);
	uint8_t *now = tu_read_file(env->db, &n), sha[32];
	char hex[65];
	int64_t before = tu_pages(st);

	/* Claim, for page pg, the hash of the bytes it holds now, without
	 * the piece's own checksum: believed, it would give page pg a's
	 * (older) page. */
	tu_sha256(now + (pg - 1) * ps, ps, sha);
	free(now);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sha[i]);
	tu_exec(sd, "UPDATE meta SET value=CAST(substr(value, 1, %d + %u * 32)"
		" || X'%s' || substr(value, %d + %u * 32 + 1) AS BLOB) "
		"WHERE key='capture_hashes:0'", HEAD, pg - 1, hex, HEAD, pg);
	assert_int_equal(tu_query_int(sd, "SELECT length(value) FROM meta "
				      "WHERE key='capture_hashes:0'"),
			 HEAD + 32 * (int64_t)a.page_count + 32);
	snap_info b = snap_checked(env, st, "b");
	assert_true(tu_pages(st) > before);
	assert_true(tu_page_id(st, b.id, pg) != tu_page_id(st, a.id, pg));
	/* The hashes of a deleted snapshot are not used either. */
	snap_err e;
	snap_err_clear(&e);
	tu_exec(db, "UPDATE t SET pad='again' WHERE id=1200");
	snap_info c = tu_snap(st, "c");
	assert_int_equal(snap_store_delete(st, c.id, &e), 0);
	tu_exec(db, "UPDATE t SET pad='damaged' WHERE id=1200");
	snap_info d = snap_checked(env, st, "d");
	assert_int_equal(tu_page_id(st, d.id, pg), tu_page_id(st, b.id, pg));
	sqlite3_close(sd);
	sqlite3_close(db);
}


/* ------------------------------------------------------------------ */
/* Page hashes in pieces. */

/* Little-endian fields of a piece's header. */
static uint64_t le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

/* A rollback-mode live database of 512-byte pages with at least `pages`
 * pages: t (tu_db_create, 100 rows) and big(id, x), one row of 440
 * random bytes a page, so no two pages are alike; its store. */
static snap_store *big_store(tu_env *env, uint32_t pages)
{
	snap_store *st = tu_live_store(env, "delete", 512, 100);
	sqlite3 *db = tu_open(env->db);

	tu_exec(db, "CREATE TABLE big(id INTEGER PRIMARY KEY, x BLOB)");
	tu_exec(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 "
		"FROM c WHERE i < %u) INSERT INTO big SELECT i, "
		"randomblob(440) FROM c", pages);
	assert_true(tu_query_int(db, "PRAGMA page_count") >= pages);
	sqlite3_close(db);
	return st;
}

/* The row of big about at page pgno (about 29 pages of t come first, and
 * an interior page every 50 leaves). */
static uint32_t row_near(uint32_t pgno)
{
	return (pgno - 30) * 49 / 50;
}

/* Give row `row` of big other random bytes, in place; the page that
 * changed, which must be in piece `piece`. */
static uint32_t change_row(tu_env *env, sqlite3 *db, uint32_t row,
			   uint32_t piece)
{
	char sql[96];
	uint32_t pg;

	snprintf(sql, sizeof(sql), "UPDATE big SET x=randomblob(440) WHERE "
		 "id=%u", row);
	pg = update_page(env, db, sql);
	if ((pg - 1) / PIECE != piece)
		fail_msg("row %u is on page %u, not in piece %u", row, pg,
			 piece);
	return pg;
}

/* A stored page hidden from lookups by hash (its recorded hash replaced):
 * only the kept page hashes can give its id to the next capture. */
typedef struct hidden {
	int64_t id;
	char *hex;          /* its real hash, to put back */
} hidden;

static hidden hide(snap_store *st, int64_t snap, uint32_t pgno)
{
	hidden h = { tu_page_id(st, snap, pgno), NULL };
	sqlite3 *sd = tu_open(snap_store_file(st));

	h.hex = tu_query_text(sd, "SELECT hex(hash) FROM pages WHERE id=%lld",
			      (long long)h.id);
	tu_exec(sd, "UPDATE pages SET hash=randomblob(32) WHERE id=%lld",
		(long long)h.id);
	sqlite3_close(sd);
	return h;
}

static void unhide(snap_store *st, hidden *h)
{
	tu_store_exec(st, "UPDATE pages SET hash=X'%s' WHERE id=%lld", h->hex,
		      (long long)h->id);
	free(h->hex);
	h->hex = NULL;
}

/* The value of meta `key` (malloc'd, *len bytes); fails when absent. */
static uint8_t *meta_get(snap_store *st, const char *key, size_t *len)
{
	sqlite3 *sd = tu_open(snap_store_file(st));
	sqlite3_stmt *q = NULL;
	uint8_t *b = NULL;

	if (sqlite3_prepare_v2(sd, "SELECT value FROM meta WHERE key=?", -1,
			       &q, NULL) != SQLITE_OK)
		fail_msg("meta: %s", sqlite3_errmsg(sd));
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_ROW)
		fail_msg("the store has no meta '%s'", key);
	*len = (size_t)sqlite3_column_bytes(q, 0);
	b = malloc(*len ? *len : 1);
	memcpy(b, sqlite3_column_blob(q, 0), *len);
	sqlite3_finalize(q);
	sqlite3_close(sd);
	return b;
}

/* Set meta `key` to blob b. */
static void meta_put(snap_store *st, const char *key, const uint8_t *b,
		     size_t len)
{
	sqlite3 *sd = tu_open(snap_store_file(st));
	sqlite3_stmt *q = NULL;

	if (sqlite3_prepare_v2(sd, "INSERT OR REPLACE INTO meta(key, value) "
			       "VALUES(?, ?)", -1, &q, NULL) != SQLITE_OK)
		fail_msg("meta: %s", sqlite3_errmsg(sd));
	sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_blob(q, 2, b, (int)len, SQLITE_STATIC);
	if (sqlite3_step(q) != SQLITE_DONE)
		fail_msg("meta '%s': %s", key, sqlite3_errmsg(sd));
	sqlite3_finalize(q);
	sqlite3_close(sd);
}

/* The store keeps snapshot si's page hashes and nothing else: exactly
 * its pieces, each whole, naming si, holding the SHA-256 of each page of
 * si's image at its page number; no old single row. */
static void assert_pieces_of(snap_store *st, const snap_info *si)
{
	uint32_t n = si->page_count, np = (n + PIECE - 1) / PIECE, k, i;
	size_t ilen = 0, len = 0, ps = si->page_size;
	uint8_t *img = tu_image_bytes(st, si->id, &ilen), sum[32];
	sqlite3 *sd = tu_open(snap_store_file(st));
	char key[32];

	assert_int_equal(ilen, (size_t)n * ps);
	assert_int_equal(tu_query_int(sd, "SELECT count(*) FROM meta WHERE "
				      "key='capture_hashes'"), 0);
	assert_int_equal(tu_query_int(sd, "SELECT count(*) FROM meta WHERE "
				      "key GLOB 'capture_hashes:*'"), np);
	sqlite3_close(sd);
	for (k = 0; k < np; k++) {
		uint32_t count = n - k * PIECE < PIECE ? n - k * PIECE : PIECE;
		uint8_t *b;

		snprintf(key, sizeof(key), "capture_hashes:%u", k);
		b = meta_get(st, key, &len);
		assert_int_equal(len, HEAD + (size_t)count * 32 + 32);
		assert_memory_equal(b, "SFH2", 4);
		assert_int_equal(le(b + 4, 8), si->id);
		assert_int_equal(le(b + 12, 4), ps);
		assert_int_equal(le(b + 16, 4), n);
		assert_int_equal(le(b + 20, 4), k);
		assert_int_equal(le(b + 24, 4), PIECE);
		tu_sha256(b, len - 32, sum);
		assert_memory_equal(sum, b + len - 32, 32);
		for (i = 0; i < count; i++) {
			size_t pg = (size_t)k * PIECE + i;

			tu_sha256(img + pg * ps, ps, sum);
			if (memcmp(sum, b + HEAD + (size_t)i * 32, 32))
				fail_msg("piece %u holds a wrong hash for "
					 "page %zu", k, pg + 1);
		}
		free(b);
	}
	free(img);
}

static void test_page_hashes_are_kept_in_pieces_and_give_ids_across_them(
	void **state)
{
	tu_env *env = *state;
	snap_store *st = big_store(env, 5 * PIECE + PIECE / 2);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	uint32_t pg[6], keep[6];
	hidden h[6];

	assert_true(a.page_count > 5 * PIECE);
	assert_pieces_of(st, &a);           /* six */
	/* A page changed in each piece; one unchanged page of each that
	 * only the kept hashes can give its id back. */
	for (uint32_t k = 0; k < 6; k++) {
		pg[k] = change_row(env, db, row_near(k * PIECE + PIECE / 2), k);
		keep[k] = pg[k] - 3;
		h[k] = hide(st, a.id, keep[k]);
	}
	snap_info b = tu_snap(st, "b");
	for (uint32_t k = 0; k < 6; k++) {
		assert_int_equal(tu_page_id(st, b.id, keep[k]), h[k].id);
		assert_true(tu_page_id(st, b.id, pg[k]) !=
			    tu_page_id(st, a.id, pg[k]));
		unhide(st, &h[k]);
	}
	assert_image_is_live(env, st, b.id);
	assert_pieces_of(st, &b);
	sqlite3_close(db);
}

static void test_a_damaged_piece_costs_only_its_own_pages_the_fast_path(
	void **state)
{
	tu_env *env = *state;
	snap_store *st = big_store(env, 2 * PIECE + PIECE / 2);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	uint32_t pg = change_row(env, db, row_near(PIECE / 2), 0);
	size_t n = 0, len = 0;
	uint8_t *now = tu_read_file(env->db, &n);
	uint8_t *piece = meta_get(st, "capture_hashes:0", &len);

	/* Piece 0, the first, claims for pg the hash of the bytes it holds
	 * now, its checksum not matching: believed, it would give pg a's
	 * page. */
	assert_true(a.page_count > PIECE);
	tu_sha256(now + (size_t)(pg - 1) * 512, 512,
		  piece + HEAD + (size_t)(pg - 1) * 32);
	meta_put(st, "capture_hashes:0", piece, len);
	free(piece);
	free(now);
	hidden h1 = hide(st, a.id, PIECE + PIECE / 2);
	hidden h2 = hide(st, a.id, 2 * PIECE + 10);
	snap_info b = tu_snap(st, "b");
	/* Pieces 1 and 2 gave their pages' ids; piece 0 was not believed. */
	assert_int_equal(tu_page_id(st, b.id, PIECE + PIECE / 2), h1.id);
	assert_int_equal(tu_page_id(st, b.id, 2 * PIECE + 10), h2.id);
	assert_true(tu_page_id(st, b.id, pg) != tu_page_id(st, a.id, pg));
	unhide(st, &h1);
	unhide(st, &h2);
	assert_image_is_live(env, st, b.id);
	/* b kept every piece whole, piece 0 too: its pages take the fast
	 * path again. */
	assert_pieces_of(st, &b);
	hidden h0 = hide(st, b.id, pg + 5);
	snap_info c = tu_snap(st, "c");
	assert_int_equal(tu_page_id(st, c.id, pg + 5), h0.id);
	unhide(st, &h0);
	assert_image_is_live(env, st, c.id);
	sqlite3_close(db);
}

static void test_a_piece_of_another_snapshot_is_never_taken(void **state)
{
	tu_env *env = *state;
	snap_store *st = big_store(env, 2 * PIECE + PIECE / 2);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	uint32_t row = row_near(PIECE + PIECE / 2);
	char *was = tu_query_text(db, "SELECT hex(x) FROM big WHERE id=%u",
				  row);
	size_t len = 0;
	uint8_t *a1 = meta_get(st, "capture_hashes:1", &len);
	uint32_t pg = change_row(env, db, row, 1);
	snap_info b = snap_checked(env, st, "b");

	/* a's piece 1, whole, among b's pieces; and page pg holding a's
	 * bytes again.  Taken, a's hash at pg would give pg b's page. */
	meta_put(st, "capture_hashes:1", a1, len);
	tu_exec(db, "UPDATE big SET x=X'%s' WHERE id=%u", was, row);
	snap_info c = snap_checked(env, st, "c");
	assert_int_equal(tu_page_id(st, c.id, pg), tu_page_id(st, a.id, pg));
	assert_true(tu_page_id(st, c.id, pg) != tu_page_id(st, b.id, pg));
	assert_pieces_of(st, &c);
	free(a1);
	free(was);
	sqlite3_close(db);
}

static void test_a_shorter_snapshot_leaves_no_stale_piece(void **state)
{
	tu_env *env = *state;
	snap_store *st = big_store(env, 3 * PIECE + PIECE / 2);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	size_t len = 0;
	uint8_t *junk;

	assert_pieces_of(st, &a);           /* four */
	tu_exec(db, "DELETE FROM big WHERE id > %u", PIECE + PIECE / 4);
	tu_exec(db, "VACUUM");
	snap_info b = snap_checked(env, st, "b");
	assert_true(b.page_count > PIECE && b.page_count <= 2 * PIECE);
	assert_pieces_of(st, &b);           /* two, not a's four */
	/* Keys past the end, or that no piece number spells, are deleted by
	 * the next snapshot. */
	junk = meta_get(st, "capture_hashes:0", &len);
	meta_put(st, "capture_hashes:9", junk, len);
	meta_put(st, "capture_hashes:01", junk, len);
	meta_put(st, "capture_hashes:x", junk, len);
	free(junk);
	tu_exec(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 "
		"FROM c WHERE i < %u) INSERT INTO big(x) SELECT "
		"randomblob(440) FROM c", 2 * PIECE);
	snap_info c = snap_checked(env, st, "c");
	assert_true(c.page_count > 3 * PIECE);
	assert_pieces_of(st, &c);           /* four, and nothing else */
	sqlite3_close(db);
}

/* Replace the store's page hashes with the row a snapfs before pieces
 * kept for snapshot si (one 'capture_hashes', "SFH1"), built from si's
 * image. */
static void put_old_row(snap_store *st, const snap_info *si)
{
	size_t ilen = 0, ps = si->page_size, n = si->page_count;
	uint8_t *img = tu_image_bytes(st, si->id, &ilen);
	size_t len = HEAD_OLD + n * 32 + 32;
	uint8_t *b = malloc(len);

	assert_int_equal(ilen, n * ps);
	memcpy(b, "SFH1", 4);
	put_le(b + 4, (uint64_t)si->id, 8);
	put_le(b + 12, ps, 4);
	put_le(b + 16, n, 4);
	for (size_t i = 0; i < n; i++)
		tu_sha256(img + i * ps, ps, b + HEAD_OLD + i * 32);
	tu_sha256(b, len - 32, b + len - 32);
	tu_store_exec(st, "DELETE FROM meta WHERE key GLOB "
		      "'capture_hashes:*'");
	meta_put(st, "capture_hashes", b, len);
	free(b);
	free(img);
}

static void test_the_old_single_row_is_read_and_replaced_by_pieces(
	void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	size_t len = 0;

	/* A store an older snapfs kept hashes in. */
	put_old_row(st, &a);
	uint32_t pg = update_page(env, db, "UPDATE t SET pad='x' WHERE id=3");
	uint32_t keep = a.page_count / 2 == pg ? pg + 1 : a.page_count / 2;
	hidden h = hide(st, a.id, keep);
	snap_info b = tu_snap(st, "b");
	assert_int_equal(tu_page_id(st, b.id, keep), h.id);
	unhide(st, &h);
	assert_image_is_live(env, st, b.id);
	assert_pieces_of(st, &b);
	/* Then an older snapfs again: it leaves b's pieces and writes its
	 * own row for c.  The newer of the two is taken. */
	uint8_t *b0 = meta_get(st, "capture_hashes:0", &len);
	pg = update_page(env, db, "UPDATE t SET pad='y' WHERE id=1500");
	snap_info c = snap_checked(env, st, "c");
	put_old_row(st, &c);
	meta_put(st, "capture_hashes:0", b0, len);
	free(b0);
	h = hide(st, c.id, pg);            /* c's page, not b's */
	snap_info d = tu_snap(st, "d");
	assert_int_equal(tu_page_id(st, d.id, pg), h.id);
	unhide(st, &h);
	assert_image_is_live(env, st, d.id);
	assert_pieces_of(st, &d);
	sqlite3_close(db);
}

/* One capture of img (n pages of ps bytes) with page 5 as x, written a
 * second time back to img's page 5 when twice; keeps its hashes naming
 * keep_id (0: rolled back).  *id5: the id page 5 took. */
static void run_capture(snap_store *st, const uint8_t *img, uint32_t n,
			size_t ps, const uint8_t *x, int twice, int64_t keep_id,
			int64_t *id5)
{
	sqlite3 *store = NULL;
	snap_capture c;
	snap_err e;
	uint8_t sha[32];

	snap_err_clear(&e);
	assert_int_equal(snap_store_connect(st, 0, &store, &e), 0);
	assert_int_equal(snap_store_exec(store, "BEGIN IMMEDIATE", &e), 0);
	assert_int_equal(snap_capture_init(&c, store, &e), 0);
	assert_true(c.prev);
	c.page_size = (uint32_t)ps;
	for (uint32_t pg = 2; pg <= n; pg++)
		assert_int_equal(snap_capture_write(&c, pg == 5 ? x : img +
				 (pg - 1) * ps, (int)ps, (int64_t)(pg - 1) * ps), 0);
	if (twice)   /* page 5 again, back to the previous bytes */
		assert_int_equal(snap_capture_write(&c, img + 4 * ps, (int)ps,
				 4 * (int64_t)ps), 0);
	assert_int_equal(snap_capture_write(&c, img, (int)ps, 0), 0);
	if (snap_capture_finish(&c, sha, &e))
		fail_msg("finish: %s", e.msg);
	*id5 = c.map[4];
	if (keep_id) {
		if (snap_capture_keep_hashes(&c, keep_id, &e))
			fail_msg("keep: %s", e.msg);
		assert_int_equal(snap_store_exec(store, "COMMIT", &e), 0);
	} else {
		snap_store_exec(store, "ROLLBACK", &e);
	}
	snap_capture_free(&c);
	sqlite3_close(store);
}

/*
 * A page written twice in one capture, the second time back to the
 * previous snapshot's bytes, is found by lookup with the previous page's
 * id: the hash kept for the next capture must be that page's, not the
 * first write's, or the next capture's fast path would give a page with
 * the first write's bytes the previous page's id (a wrong snapshot).
 */
static void test_a_page_written_twice_keeps_its_last_hash(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	size_t ilen = 0, ps = a.page_size;
	uint8_t *img = tu_image_bytes(st, a.id, &ilen);
	uint8_t *x = malloc(ps);
	int64_t p5 = tu_page_id(st, a.id, 5), got;

	memcpy(x, img + 4 * ps, ps);
	x[ps - 1] ^= 0x5a;
	/* Capture 1: the same image as a, page 5 written X then P. Its map
	 * is a's; its hashes are kept naming a. */
	run_capture(st, img, a.page_count, ps, x, 1, a.id, &got);
	assert_int_equal(got, p5);
	/* Capture 2: page 5 holds X.  Must not be a's page 5 (P). */
	run_capture(st, img, a.page_count, ps, x, 0, 0, &got);
	if (got == p5)
		fail_msg("page 5 holds X but took P's id %lld (wrong page)",
			 (long long)got);
	free(x);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_fast_path_reuses_unchanged_pages_without_a_lookup),
		tu_test(test_fast_path_page_changed_back_to_older_content),
		tu_test(test_fast_path_database_shrinks_and_grows),
		tu_test(test_fast_path_page_size_change),
		tu_test(test_fast_path_wal_database),
		tu_test(test_fast_path_ignores_damaged_or_stale_page_hashes),
		tu_test(test_page_hashes_are_kept_in_pieces_and_give_ids_across_them),
		tu_test(test_a_damaged_piece_costs_only_its_own_pages_the_fast_path),
		tu_test(test_a_piece_of_another_snapshot_is_never_taken),
		tu_test(test_a_shorter_snapshot_leaves_no_stale_piece),
		tu_test(test_the_old_single_row_is_read_and_replaced_by_pieces),
		tu_test(test_a_page_written_twice_keeps_its_last_hash),
	};
	return cmocka_run_group_tests_name("capture_find", tests, NULL, NULL);
}
