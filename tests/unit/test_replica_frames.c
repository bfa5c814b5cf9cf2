/*
 * tests/unit/test_replica_frames.c — pages of a replica as readers find
 * them (run by test_replica.c's main, also on S3): any byte range of an
 * image read in place is the local image's; page size changes; packs and
 * indexes of format version 2 (runs of pages compressed together in
 * frames, engine/DESIGN.md §6): pages of one frame read singly and in any
 * order, a frame that ends a pack (full or not), a damaged frame found
 * and named with its snapshot; and a version 1 replica (written with the
 * test-only r->pack_version = 1) still read, verified and pushed to.
 * And the writer's cache of them in store.db: a store page id trusted
 * only with its hash, a cache of the older layout rebuilt.
 */
#include "replica_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replica_int.h"

/* What the indexes of the replica at url hold: how many are of version 1
 * and 2, how many version 2 frames hold more than one page, and whether
 * every pack's last page is in a frame of more than one page
 * (*multi_last: packs of version 2 whose last frame holds several). */
typedef struct ixstats {
	unsigned v1, v2, multi, multi_last;
} ixstats;

static ixstats index_stats(snap_replica *r, const char *url)
{
	ixstats x = {0};
	snap_objstore_close(objs_list(url, "index"));
	for (size_t i = 0; i < g_nnames; i++) {
		uint8_t *p;
		size_t len;
		snap_err err;
		ridx ix;
		if (snap_replica_obj_get(r, g_names[i], &p, &len, &err) < 0)
			fail_msg("%s: %s", g_names[i], err.msg);
		assert_int_equal(snap_replica_index_parse(p, len, &ix), 0);
		x.v1 += ix.version == 1;
		x.v2 += ix.version == 2;
		uint32_t page = 0;
		for (uint32_t f = 0; ix.version == 2 && f < ix.nframes; f++) {
			uint32_t np = get32(ix.frames + f * FRAME_ENTRY + 8);
			x.multi += np > 1;
			page += np;
			if (page == ix.count && np > 1)
				x.multi_last++;
		}
		free(p);
	}
	return x;
}

/* The orders assert_image_pages reads pages in. */
enum { BACKWARD, SCATTERED, BOTH_ENDS };

/* Read every page of si's image from the replica singly, in one of the
 * orders above, and compare with the local image. */
static void assert_image_pages(snap_replica *r, snap_store *st,
			       const snap_info *si, int how)
{
	snap_replica_image *img;
	snap_err err;
	size_t len;
	uint8_t *want = tu_image_bytes(st, si->id, &len);
	uint32_t ps = si->page_size, n = (uint32_t)(len / ps);
	uint8_t *buf = malloc(ps);
	assert_non_null(buf);
	assert_true(n % 7919 != 0);         /* 7919 is prime: a permutation */
	assert_int_equal(snap_replica_image_open(r, si->name, &img, &err), 0);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = how == BACKWARD ? n - 1 - k :
			how == SCATTERED ? (uint32_t)(((uint64_t)k * 7919 + 13)
						      % n) :
			k % 2 ? n - 1 - k / 2 : k / 2;
		uint64_t off = (uint64_t)i * ps;
		if (snap_replica_image_read(img, buf, ps, off, &err) !=
		    (long)ps)
			fail_msg("page %u: %s", i + 1, err.msg);
		assert_memory_equal(buf, want + off, ps);
	}
	snap_replica_image_close(img);
	free(buf);
	free(want);
}

/* Read image img over ranges that start and end inside pages and cross
 * them, and compare with want (n bytes). */
static void assert_ranges_equal(snap_replica_image *img, const uint8_t *want,
				size_t n, uint32_t page_size)
{
	static const size_t lens[] = {1, 100, 4096, 5000, 65536, 131072};
	uint8_t *buf = malloc(131072);
	snap_err err;
	assert_non_null(buf);
	for (size_t k = 0; k < sizeof lens / sizeof *lens; k++)
		for (uint64_t off = 0; off < n; off += 3 * page_size + 777) {
			size_t len = lens[k];
			long got = snap_replica_image_read(img, buf, len, off,
							   &err);
			size_t expect = off + len > n ? n - off : len;
			assert_int_equal(got, (long)expect);
			assert_memory_equal(buf, want + off, expect);
		}
	/* At and past the end: nothing. */
	assert_int_equal(snap_replica_image_read(img, buf, 10, n, &err), 0);
	assert_int_equal(snap_replica_image_read(img, buf, 10, n + 9, &err),
			 0);
	free(buf);
}

/* snap_replica_image_*: any byte range of a snapshot's image, read in
 * place, is the local image's; two images open at once share the cache;
 * a flipped byte in a pack is -EIO naming the pack, never wrong bytes;
 * an unknown name is -ENOENT. */
void test_image_read_in_place(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_err err;
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	snap_replica_close(r);
	r = ropen(url, 0);
	size_t na, nb;
	uint8_t *wa = tu_image_bytes(st, a.id, &na);
	uint8_t *wb = tu_image_bytes(st, b.id, &nb);
	snap_replica_image *ia, *ib, *none;
	assert_int_equal(snap_replica_image_open(r, a.name, &ia, &err), 0);
	assert_int_equal(snap_replica_image_open(r, b.name, &ib, &err), 0);
	assert_int_equal(snap_replica_image_info(ib)->image_size, nb);
	assert_memory_equal(snap_replica_image_info(ib)->sha256, b.sha256,
			    32);
	assert_ranges_equal(ia, wa, na, a.page_size);
	assert_ranges_equal(ib, wb, nb, b.page_size);
	assert_ranges_equal(ia, wa, na, a.page_size);
	assert_int_equal(snap_replica_image_open(r, "no-such.db", &none,
						 &err), -ENOENT);
	assert_null(none);
	snap_replica_image_close(ia);
	snap_replica_image_close(ib);
	snap_replica_close(r);
	/* A flipped byte in the first pack: -EIO, the pack named. */
	snap_objstore_close(objs_list(url, "packs"));
	char pack[64];
	snprintf(pack, sizeof pack, "%s", g_names[0]);
	obj_flip(url, pack, 0);
	r = ropen(url, 0);
	assert_int_equal(snap_replica_image_open(r, a.name, &ia, &err), 0);
	uint8_t *buf = malloc(na);
	assert_non_null(buf);
	assert_int_equal(snap_replica_image_read(ia, buf, na, 0, &err), -EIO);
	assert_non_null(strstr(err.msg, pack));
	snap_replica_image_close(ia);
	snap_replica_close(r);
	free(buf);
	free(wa);
	free(wb);
}

/* A damaged pack holding scattered pages of an image (every 100th, the
 * only ones changed since the snapshot before): read as cp reads it (128
 * KiB after 128 KiB, the reads a window serves), only the reads that
 * cover one of its pages fail; the others give the image's bytes, so dd
 * conv=noerror salvages everything else.  Which pages are damaged: each
 * read alone, last first (never a window). */
void test_damaged_pack_fails_only_the_reads_that_need_it(void **state)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_info a, b;
	snap_err err;
	snap_store *st = big_snapshot(env, 3000, "randomblob(3000)", &a);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE big SET b = randomblob(3000) WHERE id %% 100 = 0");
	sqlite3_close(db);
	b = tu_snap(st, "b");
	push(r, st);
	snap_replica_close(r);
	snap_objstore_close(objs_list(url, "packs"));
	obj_flip(url, g_names[g_nnames - 1], 0);    /* b's own pages */
	size_t len;
	uint8_t *want = tu_image_bytes(st, b.id, &len);
	uint32_t ps = b.page_size, np = (uint32_t)(len / ps), nbad = 0;
	uint8_t *bad = calloc(np, 1), *buf = malloc(128 << 10);
	snap_replica_image *img;
	assert_non_null(bad);
	assert_non_null(buf);
	r = ropen(url, 0);
	assert_int_equal(snap_replica_image_open(r, b.name, &img, &err), 0);
	for (uint32_t i = np; i-- > 0;) {
		long got = snap_replica_image_read(img, buf, ps,
						   (uint64_t)i * ps, &err);
		bad[i] = got < 0;
		nbad += bad[i];
		if (got >= 0)
			assert_memory_equal(buf, want + (size_t)i * ps, ps);
	}
	snap_replica_image_close(img);
	assert_true(nbad >= 10 && nbad < np / 50);
	unsigned failed = 0;
	assert_int_equal(snap_replica_image_open(r, b.name, &img, &err), 0);
	for (size_t off = 0; off < len; off += 128 << 10) {
		long got = snap_replica_image_read(img, buf, 128 << 10, off,
						   &err);
		int covers = 0;
		for (size_t i = off / ps; i < (off + (128 << 10)) / ps &&
		     i < np; i++)
			covers |= bad[i];
		if (covers != (got < 0))
			fail_msg("read at %zu: %ld (%s); covers a damaged page: "
				 "%d", off, got, got < 0 ? err.msg : "ok",
				 covers);
		failed += got < 0;
		if (got >= 0)
			assert_memory_equal(buf, want + off, (size_t)got);
	}
	assert_true(failed > 0);
	snap_replica_image_close(img);
	snap_replica_close(r);
	free(bad);
	free(buf);
	free(want);
}

void test_page_size_change_and_shrink(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_store *st = env->st = two_snapshots(env, 1024, &a, &b);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "DELETE FROM t WHERE id > 100");
	tu_exec(db, "PRAGMA page_size = 8192");
	tu_exec(db, "VACUUM");
	sqlite3_close(db);
	snap_info c = tu_snap(st, "c");
	assert_int_equal(c.page_size, 8192);
	assert_true(c.image_size < b.image_size);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	assert_export_equals(env, r, st, &b);
	assert_export_equals(env, r, st, &c);
	snap_replica_close(r);
}

void test_version_1_replica_is_read_and_pushed_to(void **state)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_err err;
	tu_db_create(env->db, "delete", 4096, 1500);
	snap_store *st = env->st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	r->pack_version = 1;                /* as every build before v2 */
	push(r, st);
	ixstats x = index_stats(r, url);
	assert_true(x.v1 >= 1);
	assert_int_equal(x.v2, 0);
	snap_replica_close(r);
	/* Read back by this build: export, in place, verify --full. */
	r = ropen(url, 0);
	assert_export_equals(env, r, st, &a);
	assert_image_pages(r, st, &a, BACKWARD);
	assert_verify_clean(env, r);
	/* Pushed to: the new pages go to a version 2 pack beside the old. */
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = 'changed' WHERE id %% 50 = 0");
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.snapshots, 1);
	assert_true(s.pages >= 1 && s.pages < a.page_count);
	x = index_stats(r, url);
	assert_true(x.v1 >= 1);
	assert_int_equal(x.v2, 1);
	snap_replica_close(r);
	r = ropen(url, 0);
	assert_export_equals(env, r, st, &a);
	assert_export_equals(env, r, st, &b);
	assert_verify_clean(env, r);
	/* A flipped byte in a version 1 pack is still found. */
	snap_replica_close(r);
	snap_objstore_close(objs_list(url, "packs"));
	char pack[64];
	snprintf(pack, sizeof pack, "%s", g_names[0]);
	obj_flip(url, pack, 0);
	r = ropen(url, 0);
	g_nprob = 0;
	unsigned nbad;
	assert_int_equal(snap_replica_verify(r, a.name, 0, NULL, prob_cb, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 1);
	assert_string_equal(g_prob_snap, a.name);
	snap_replica_close(r);
}

void test_pages_of_one_frame_read_singly_in_any_order(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_replica *r = replica_pair(env, url, path, &a, &b);
	snap_store *st = env->st;
	ixstats x = index_stats(r, url);
	assert_int_equal(x.v1, 0);
	assert_true(x.v2 >= 1);
	assert_true(x.multi >= 1);          /* frames of several pages */
	snap_replica_close(r);
	r = ropen(url, 0);
	assert_image_pages(r, st, &b, SCATTERED);
	assert_image_pages(r, st, &b, BOTH_ENDS);
	snap_replica_close(r);
}

void test_damaged_frame_names_the_snapshot(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX], out[PATH_MAX], pack[64];
	snap_err err;
	snap_replica *r = NULL;
	unsigned nbad;
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "plain", url, path);
	/* Not sealed: the flipped byte lands in a frame, not in a seal. */
	assert_int_equal(snap_replica_open(url, NULL, 0, SNAP_REPLICA_CREATE |
					   SNAP_REPLICA_NO_ENCRYPTION, &r,
					   &err), 0);
	push(r, st);
	snap_replica_close(r);
	snap_objstore_close(objs_list(url, "packs"));
	snprintf(pack, sizeof pack, "%s", g_names[0]);
	obj_flip(url, pack, 0);
	assert_int_equal(snap_replica_open(url, NULL, 0, 0, &r, &err), 0);
	g_nprob = 0;
	assert_int_equal(snap_replica_verify(r, NULL, 0, NULL, prob_cb, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 2);          /* both snapshots use that pack */
	assert_int_equal(g_nprob, 2);
	tu_path(env, out, "out.db");
	assert_int_equal(snap_replica_export(r, a.name, out, NULL, NULL, &err),
			 -EIO);
	assert_non_null(strstr(err.msg, a.name));
	assert_non_null(strstr(err.msg, pack));
	assert_non_null(strstr(err.msg, "frame of pages"));
	assert_false(tu_exists(out));
	snap_replica_image *img;
	uint8_t buf[4096];
	assert_int_equal(snap_replica_image_open(r, b.name, &img, &err), 0);
	long got = 0;
	for (uint64_t off = 0; got >= 0 && off < b.image_size; off += 4096)
		got = snap_replica_image_read(img, buf, sizeof buf, off, &err);
	assert_int_equal(got, -EIO);
	assert_non_null(strstr(err.msg, b.name));
	assert_non_null(strstr(err.msg, "frame of pages"));
	snap_replica_image_close(img);
	snap_replica_close(r);
}

void test_frame_ending_a_pack(void **state)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX];
	/* Half the rows compress, half do not: frames stored both ways. */
	snap_info a;
	snap_store *st = big_snapshot(env, 2300, "CASE WHEN i % 2 THEN "
				      "randomblob(3000) ELSE zeroblob(3000) "
				      "END", &a);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	ixstats x = index_stats(r, url);
	assert_true(x.v2 >= 2);             /* a full pack and the rest */
	assert_int_equal(x.multi_last, x.v2);
	snap_replica_close(r);
	r = ropen(url, 0);
	assert_image_pages(r, st, &a, BACKWARD);  /* a frame's last first */
	assert_export_equals(env, r, st, &a);
	snap_replica_close(r);
}

/* The writer's cache names a store page by its id and proves the id
 * by the page's hash: an id whose row names other content (a page
 * deleted, its id given to a new page) is not trusted, and the pages are
 * sent again instead of being mapped to what the replica holds under
 * the old content. */
void test_cache_row_of_other_content_is_not_trusted(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_replica *r = replica_pair(env, url, path, &a, &b);
	snap_store *st = env->st;
	tu_store_exec(st, "UPDATE replica_pageids SET hash = zeroblob(32)");
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = 'again' WHERE id = 900");
	sqlite3_close(db);
	snap_info c = tu_snap(st, "c");
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.snapshots, 1);
	assert_true(s.pages > 6);        /* not only the changed ones */
	assert_export_equals(env, r, st, &c);
	assert_verify_clean(env, r);
	snap_replica_close(r);
}

/* A store whose cache is of the older layout (replica_pages, keyed by
 * hash) drops it at the next run and rebuilds the cache from the
 * replica's indexes: nothing it already sent is sent again. */
void test_cache_of_older_layout_is_rebuilt(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_store *st = replicated_pair(env, url, path, &a, &b);
	tu_store_exec(st, "DELETE FROM replica_pageids; CREATE TABLE "
		      "replica_pages(replica TEXT NOT NULL, hash BLOB NOT "
		      "NULL, seq INTEGER NOT NULL, PRIMARY KEY(replica, "
		      "hash)) WITHOUT ROWID");
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = 'again' WHERE id = 900");
	sqlite3_close(db);
	snap_info c = tu_snap(st, "c");
	snap_replica *r = ropen(url, 0);
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.snapshots, 1);
	assert_true(s.pages >= 1 && s.pages <= 6);
	assert_export_equals(env, r, st, &c);
	snap_replica_close(r);
	db = tu_open(snap_store_file(st));
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM sqlite_master "
				      "WHERE name = 'replica_pages'"), 0);
	assert_true(tu_query_int(db, "SELECT count(*) FROM "
				 "replica_pageids") > 0);
	sqlite3_close(db);
}

/* A pack the replica lost (deleted by a prune, here by hand with its
 * index) is forgotten by the writer's cache at the next run: a snapshot
 * whose pages were in it sends them again instead of naming seqs that
 * are gone; also when that run failed while forgetting it. */
static void pack_gone(void **state, int fail_once, int keep_index)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX], last[64];
	tu_db_create(env->db, "delete", 4096, 1500);
	snap_store *st = env->st = tu_store(env);
	tu_snap(st, "a");
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = 'changed' WHERE id = 42");
	sqlite3_close(db);
	tu_snap(st, "b");
	assert_true(push(r, st).pages >= 1);    /* b's pages: the last pack */
	snap_replica_close(r);
	snap_objstore_close(objs_list(url, "packs"));
	assert_true(g_nnames >= 2);
	snprintf(last, sizeof last, "%s", g_names[g_nnames - 1]);
	obj_flip(url, last, 1);
	memcpy(last, "index", 5);
	if (!keep_index)
		obj_flip(url, last, 1);
	snap_info c = tu_snap(st, "c");        /* b's pages again */
	r = ropen(url, 0);
	if (fail_once) {
		/* Forgetting the pack's pages fails: the pack is not
		 * forgotten either (one transaction), so the next run
		 * still sees it gone and forgets both. */
		snap_replicate_stats f;
		snap_err err;
		tu_store_exec(st, "CREATE TRIGGER no_forget BEFORE DELETE ON "
			      "replica_pageids BEGIN SELECT RAISE(ABORT, "
			      "'injected'); END");
		assert_true(snap_replica_push(r, st, NULL, NULL, &f, &err) < 0);
		tu_store_exec(st, "DROP TRIGGER no_forget");
	}
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.snapshots, 1);
	assert_true(s.pages >= 1);
	assert_export_equals(env, r, st, &c);
	snap_replica_close(r);
	/* Again: nothing to send, and c stays whole (no new pack took
	 * seqs the lost pack's index still names). */
	r = ropen(url, 0);
	assert_int_equal(push(r, st).pages, 0);
	assert_export_equals(env, r, st, &c);
	snap_replica_close(r);
}

void test_pack_gone_from_the_replica_is_forgotten(void **state)
{
	pack_gone(state, 0, 0);
}

void test_pack_forgotten_with_its_pages_or_not_at_all(void **state)
{
	pack_gone(state, 1, 0);
}

/* A pack lost alone, its index still there (deleted by hand, lost by the
 * provider): the next run sends its pages again for a new snapshot, which
 * it committed before naming the missing pack's seqs (verify: "missing"). */
void test_pack_lost_without_its_index_is_sent_again(void **state)
{
	pack_gone(state, 0, 1);
}

/* A page whose bytes changed in a frame that still decodes (a plain
 * replica, incompressible pages stored raw): a whole image proven by its
 * SHA-256 finds it, and the pass that proves each page names it, in
 * verify and in export. */
void test_changed_page_in_raw_frame_is_named(void **state)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX], out[PATH_MAX];
	snap_info a;
	snap_err err;
	snap_replica *r = NULL;
	unsigned nbad;
	/* Rows of overflow pages of random bytes: frames that zstd does not
	 * make smaller, stored raw (a flipped byte in a zstd frame fails
	 * its checksum and is named by its frame). */
	snap_store *st = env->st = big_snapshot(env, 40, "randomblob(100000)",
						 &a);
	url_of(env, "plain", url, path);
	assert_int_equal(snap_replica_open(url, NULL, 0, SNAP_REPLICA_CREATE |
					   SNAP_REPLICA_NO_ENCRYPTION, &r,
					   &err), 0);
	push(r, st);
	snap_replica_close(r);
	snap_objstore_close(objs_list(url, "packs"));
	assert_true(g_nnames >= 1);
	obj_flip(url, g_names[0], 0);
	assert_int_equal(snap_replica_open(url, NULL, 0, 0, &r, &err), 0);
	g_nprob = 0;
	g_prob_page = 0;
	assert_int_equal(snap_replica_verify(r, NULL, 0, NULL, prob_cb, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 1);
	assert_true(g_prob_page > 1);
	assert_non_null(strstr(g_prob_text, "does not match its SHA-256"));
	tu_path(env, out, "out.db");
	assert_int_equal(snap_replica_export(r, a.name, out, NULL, NULL, &err),
			 -EIO);
	char want[64];
	snprintf(want, sizeof want, "%s, page %u:", a.name, g_prob_page);
	assert_non_null(strstr(err.msg, want));
	assert_false(tu_exists(out));
	snap_replica_close(r);
}

/* A writer reads the catalog rows it has seen from its own cache, not
 * from the replica: a row it wrote is not fetched again (here, damaged
 * in the replica after it was written, it still counts as present for
 * its writer, while a reader with no store skips it); a row gone from
 * the replica's listing (pruned) is sent again and leaves the cache. */
void test_writer_reads_rows_it_has_seen_from_its_cache(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX], gone[64];
	snap_store *st = replicated_pair(env, url, path, &a, &b);
	snap_objstore_close(objs_list(url, "snapshots"));
	assert_int_equal(g_nnames, 2);
	snprintf(gone, sizeof gone, "%s", g_names[1]);
	obj_flip(url, g_names[0], 0);
	snap_replica *r = ropen(url, 0);
	snap_info *v;
	size_t n;
	snap_err err;
	assert_int_equal(snap_replica_list(r, &v, &n, &err), 0);
	assert_int_equal(n, 1);          /* a reader: one row damaged */
	free(v);
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.present, 2);  /* its writer: both, from its cache */
	assert_int_equal(s.snapshots, 0);
	obj_flip(url, gone, 1);
	s = push(r, st);
	assert_int_equal(s.present, 1);
	assert_int_equal(s.snapshots, 1);
	snap_replica_close(r);
	sqlite3 *db = tu_open(snap_store_file(st));
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM replica_rows "
				      "WHERE obj = '%s'", gone), 0);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM replica_rows"),
			 2);
	sqlite3_close(db);
}

/* The snapshots of one run share packs: five snapshots a few pages
 * apart, sent by one replicate, make one pack (not five packs and five
 * indexes), and each reads back as it is. */
void test_snapshots_of_one_run_share_packs(void **state)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX], label[8];
	snap_info v[5];
	tu_db_create(env->db, "delete", 4096, 1500);
	snap_store *st = env->st = tu_store(env);
	for (int i = 0; i < 5; i++) {
		sqlite3 *db = tu_open(env->db);
		tu_exec(db, "UPDATE t SET v = 'run %d' WHERE id = %d", i,
			300 * i + 1);
		sqlite3_close(db);
		snprintf(label, sizeof label, "s%d", i);
		v[i] = tu_snap(st, label);
	}
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	assert_int_equal(push(r, st).snapshots, 5);
	snap_objstore_close(objs_list(url, "packs"));
	assert_int_equal(g_nnames, 1);
	snap_objstore_close(objs_list(url, "index"));
	assert_int_equal(g_nnames, 1);
	for (int i = 0; i < 5; i++)
		assert_export_equals(env, r, st, &v[i]);
	snap_replica_close(r);
}
