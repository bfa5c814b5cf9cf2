/*
 * tests/unit/test_verify.c — engine/verify.h: clean stores verify clean;
 * bit rot in a stored page, a page that cannot be decoded, a missing page,
 * a wrong image hash and a structurally corrupt image are each found, named
 * by snapshot and page, and counted; snapshots not sharing the damage stay
 * ok.  Also image.h's promise that reading a damaged page is -EIO naming
 * the snapshot and the page.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Two snapshots a (older) and b (changed rows, so it has pages of its own). */
static void two_snapshots(tu_env *env, snap_info *a, snap_info *b)
{
	snap_store *st = tu_live_store(env, "delete", 1024, 600);
	*a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET pad = 'changed-' || id WHERE id > 550");
	tu_db_insert(db, 601, 700);
	sqlite3_close(db);
	*b = tu_snap(st, "b");
}

static int verify(snap_store *st, int64_t id, int full, tu_problems *p,
		  snap_err *e)
{
	memset(p, 0, sizeof(*p));
	snap_err_clear(e);
	return snap_verify_snapshot(st, id, full, tu_problem_cb, p, e);
}

/* b is damaged at page pgno: quick and full say so, a stays clean. */
static void expect_damage_at(snap_store *st, const snap_info *a,
			     const snap_info *b, uint32_t pgno)
{
	tu_problems p;
	snap_err e;
	for (int full = 0; full <= 1; full++) {
		int rc = verify(st, b->id, full, &p, &e);
		if (rc != -EBADMSG)
			fail_msg("%s verify of damaged %s: %d (%s)",
				 full ? "full" : "quick", b->name, rc, e.msg);
		assert_true(p.n >= 1);
		assert_int_equal(p.snap_id, b->id);
		assert_string_equal(p.snap_name, b->name);
		assert_true(p.npage >= 1);
		assert_int_equal(p.pgno, pgno);
		/* The structure check beside the quick pass counts only
		 * on an intact image: nothing of it follows. */
		assert_null(strstr(p.text, "integrity_check"));
		assert_non_null(strstr(e.msg, b->name));
		assert_int_equal(verify(st, a->id, full, &p, &e), 0);
		assert_int_equal(p.n, 0);
	}
	unsigned nbad = 99;
	memset(&p, 0, sizeof(p));
	snap_err_clear(&e);
	assert_int_equal(snap_verify_store(st, 0, tu_problem_cb, &p, &nbad, &e),
			 -EBADMSG);
	assert_int_equal(nbad, 1);
	assert_int_equal(p.snap_id, b->id);
}

/* ------------------------------------------------------------------ */

static void test_fresh_store_verifies_clean(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	snap_store *st = env->st;
	tu_problems p;
	snap_err e;
	for (int full = 0; full <= 1; full++) {
		assert_int_equal(verify(st, a.id, full, &p, &e), 0);
		assert_int_equal(verify(st, b.id, full, &p, &e), 0);
		assert_int_equal(p.n, 0);
		unsigned nbad = 99;
		snap_err_clear(&e);
		assert_int_equal(snap_verify_store(st, full, tu_problem_cb, &p,
						   &nbad, &e), 0);
		assert_int_equal(nbad, 0);
		assert_int_equal(p.n, 0);
	}
	/* NULL callback and NULL nbad are allowed. */
	assert_int_equal(snap_verify_snapshot(st, a.id, 1, NULL, NULL, &e), 0);
	assert_int_equal(snap_verify_store(st, 0, NULL, NULL, NULL, &e), 0);
}

static void test_empty_store_verifies_clean(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	unsigned nbad = 99;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_verify_store(st, 1, NULL, NULL, &nbad, &e), 0);
	assert_int_equal(nbad, 0);
}

static void test_verify_of_unknown_snapshot_is_enoent(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	snap_info a = tu_snap(st, "a");
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_verify_snapshot(st, a.id + 50, 0, NULL, NULL, &e),
			 -ENOENT);
}

static void test_verify_finds_a_flipped_byte_in_a_stored_page(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	uint32_t pg = tu_unique_page(env->st, a.id, b.id);
	tu_corrupt_page(env->st, tu_page_id(env->st, b.id, pg));
	expect_damage_at(env->st, &a, &b, pg);
}

static void test_verify_finds_a_page_decoding_to_wrong_content(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	uint32_t pg = tu_unique_page(env->st, a.id, b.id);
	/* Donor: page 2 of a, a valid stored page with other content. */
	int64_t victim = tu_page_id(env->st, b.id, pg);
	int64_t donor = tu_page_id(env->st, a.id, 2);
	assert_int_not_equal(victim, donor);
	tu_swap_page_data(env->st, victim, donor);
	expect_damage_at(env->st, &a, &b, pg);
}

static void test_verify_finds_a_page_that_cannot_be_decoded(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	uint32_t pg = tu_unique_page(env->st, a.id, b.id);
	tu_truncate_page_data(env->st, tu_page_id(env->st, b.id, pg));
	expect_damage_at(env->st, &a, &b, pg);
}

static void test_verify_finds_a_missing_page(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	uint32_t pg = tu_unique_page(env->st, a.id, b.id);
	int64_t pid = tu_page_id(env->st, b.id, pg);
	tu_store_exec(env->st, "DELETE FROM page_data WHERE id = %lld",
		      (long long)pid);
	expect_damage_at(env->st, &a, &b, pg);
}

static void test_verify_finds_a_wrong_image_hash(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	tu_store_exec(env->st, "UPDATE snapshots SET sha256 = zeroblob(32) "
		      "WHERE id = %lld", (long long)b.id);
	tu_problems p;
	snap_err e;
	assert_int_equal(verify(env->st, b.id, 0, &p, &e), -EBADMSG);
	assert_true(p.n >= 1);
	assert_int_equal(p.snap_id, b.id);
	assert_int_equal(verify(env->st, a.id, 0, &p, &e), 0);
	unsigned nbad = 0;
	snap_err_clear(&e);
	assert_int_equal(snap_verify_store(env->st, 0, NULL, NULL, &nbad, &e),
			 -EBADMSG);
	assert_int_equal(nbad, 1);
}

/*
 * The store's record of a page's hash is what a capture's lookup, a
 * replica's mapping of pages and a restore's read-back trust: one that is
 * wrong while the page's bytes and the image are intact (the image's
 * SHA-256 alone would pass it) is found, named by page, at every level,
 * and a restore of that snapshot is refused, the live database unchanged.
 */
static void test_verify_finds_a_wrong_stored_page_hash(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	uint32_t pg = tu_unique_page(env->st, a.id, b.id);
	int64_t pid = tu_page_id(env->st, b.id, pg);
	char before[65], now[65];
	snap_err e;

	tu_store_exec(env->st, "UPDATE pages SET hash = zeroblob(32) WHERE "
		      "id = %lld", (long long)pid);
	expect_damage_at(env->st, &a, &b, pg);
	tu_db_digest(env->db, before);
	snap_err_clear(&e);
	assert_int_equal(snap_restore(env->st, b.id, NULL, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "does not match its hash"));
	tu_db_digest(env->db, now);
	assert_string_equal(now, before);
}

static void test_verify_counts_every_bad_snapshot(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	snap_store *st = env->st;
	sqlite3 *db = tu_open(env->db);
	tu_db_insert(db, 701, 900);
	sqlite3_close(db);
	snap_info c = tu_snap(st, "c");
	uint32_t pb = tu_unique_page(st, a.id, b.id);
	uint32_t pc = tu_unique_page(st, b.id, c.id);
	int64_t idb = tu_page_id(st, b.id, pb), idc = tu_page_id(st, c.id, pc);
	/* Make sure c does not also use b's damaged page and vice versa. */
	uint32_t n;
	{
		snap_image *ic = NULL;
		snap_err e;
		snap_err_clear(&e);
		assert_int_equal(snap_image_open(st, c.id, &ic, &e), 0);
		n = snap_image_page_count(ic);
		for (uint32_t q = 1; q <= n; q++)
			if (snap_image_page_id(ic, q) == idb)
				idb = -1;
		snap_image_close(ic);
	}
	if (idb < 0)
		fail_msg("fixture: c shares b's unique page");
	tu_corrupt_page(st, idb);
	tu_corrupt_page(st, idc);
	unsigned nbad = 0;
	tu_problems p;
	memset(&p, 0, sizeof(p));
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_verify_store(st, 0, tu_problem_cb, &p, &nbad, &e),
			 -EBADMSG);
	assert_int_equal(nbad, 2);
	assert_true(p.n >= 2);
	assert_int_equal(verify(st, a.id, 1, &p, &e), 0);
}

static void test_full_verify_finds_a_snapshot_of_a_corrupt_db(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 1024, 600);
	/* An index that no longer matches its table: every page is a valid
	 * b-tree page and every query works, only integrity_check sees the
	 * rows missing from the index. */
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE u(a, b); CREATE INDEX u_a ON u(a)");
	tu_exec(db, "INSERT INTO u SELECT id, -id FROM t");
	tu_exec(db, "PRAGMA writable_schema=ON");
	tu_exec(db, "UPDATE sqlite_schema SET sql='CREATE INDEX u_a ON u(b)' "
		    "WHERE name='u_a'");
	sqlite3_close(db);
	assert_false(tu_db_integrity_ok(env->db));
	snap_store *st = tu_store(env);
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "rotten" };
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_snapshot_take(st, &o, &si, &e);
	if (rc == -EINVAL) {
		/* Refusing to snapshot a corrupt database is also a choice. */
		print_message("# snapshot refused: %s\n", e.msg);
		assert_int_equal(tu_count(st), 0);
		return;
	}
	assert_int_equal(rc, 0);
	tu_problems p;
	/* Every stored page matches its hash: quick is clean ... */
	assert_int_equal(verify(st, si.id, 0, &p, &e), 0);
	/* ... only integrity_check sees the damage. */
	assert_int_equal(verify(st, si.id, 1, &p, &e), -EBADMSG);
	assert_true(p.n >= 1);
	assert_int_equal(p.snap_id, si.id);
	unsigned nbad = 0;
	snap_err_clear(&e);
	assert_int_equal(snap_verify_store(st, 1, NULL, NULL, &nbad, &e), -EBADMSG);
	assert_int_equal(nbad, 1);
	assert_int_equal(snap_verify_store(st, 0, NULL, NULL, &nbad, &e), 0);
	assert_int_equal(nbad, 0);
}

static void test_image_read_of_an_undecodable_page_is_eio(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	uint32_t pg = tu_unique_page(env->st, a.id, b.id);
	tu_truncate_page_data(env->st, tu_page_id(env->st, b.id, pg));
	snap_image *im = NULL;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_image_open(env->st, b.id, &im, &e), 0);
	uint8_t buf[1024];
	ssize_t r = snap_image_read(im, buf, sizeof(buf),
				    (uint64_t)(pg - 1) * 1024, &e);
	assert_int_equal(r, -EIO);
	assert_non_null(strstr(e.msg, b.name));
	char num[16];
	snprintf(num, sizeof(num), "%u", pg);
	assert_non_null(strstr(e.msg, num));
	/* Pages before it still read. */
	assert_int_equal(snap_image_read(im, buf, 100, 0, &e), 100);
	snap_image_close(im);
	/* And export refuses to write a damaged image. */
	char out[PATH_MAX];
	assert_true(snap_image_export(env->st, b.id, tu_path(env, out, "x.db"),
				      &e) < 0);
	assert_false(tu_exists(out));
}

static void test_image_read_of_a_missing_page_is_eio(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	two_snapshots(env, &a, &b);
	uint32_t pg = tu_unique_page(env->st, a.id, b.id);
	int64_t pid = tu_page_id(env->st, b.id, pg);
	tu_store_exec(env->st, "DELETE FROM page_data WHERE id = %lld",
		      (long long)pid);
	snap_image *im = NULL;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_image_open(env->st, b.id, &im, &e), 0);
	uint8_t buf[1024];
	snap_err_clear(&e);
	ssize_t r = snap_image_read(im, buf, sizeof(buf),
				    (uint64_t)(pg - 1) * 1024, &e);
	assert_int_equal(r, -EIO);
	assert_non_null(strstr(e.msg, b.name));
	snap_image_close(im);
}


/* Pages reported damaged, in the order reported. */
typedef struct page_list {
	uint32_t pg[16];
	int n;
	uint64_t done, total;
} page_list;

static void list_problem(void *ctx, const snap_info *si, uint32_t pgno,
			 const char *problem)
{
	page_list *l = ctx;

	(void)si;
	(void)problem;
	if (pgno && l->n < 16)
		l->pg[l->n++] = pgno;
}

static void list_progress(void *ctx, uint64_t done, uint64_t total)
{
	page_list *l = ctx;

	l->done = done;
	l->total = total;
}

/*
 * The quick pass hashes on worker threads and reports in page order:
 * three damaged pages spread over more than the pipe's ring of slots (a
 * flipped byte, another page's data, one that cannot be decoded) are each
 * reported with their own page number, in order, and progress reaches the
 * last page.
 */
static void test_verify_with_threads_names_each_damaged_page(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 6000);
	snap_info si = tu_snap(st, "big");
	uint32_t p1 = 3, p2 = si.page_count / 2, p3 = si.page_count - 1;
	page_list l = { { 0 }, 0, 0, 0 };
	snap_err e;

	assert_true(si.page_count > 600);
	tu_corrupt_page(st, tu_page_id(st, si.id, p1));
	tu_swap_page_data(st, tu_page_id(st, si.id, p2),
			  tu_page_id(st, si.id, p2 + 1));
	tu_truncate_page_data(st, tu_page_id(st, si.id, p3));
	snap_err_clear(&e);
	assert_int_equal(snap_verify_snapshot_progress(st, si.id,
						       SNAP_VERIFY_QUICK,
						       list_problem, &l,
						       list_progress, &l, &e),
			 -EBADMSG);
	assert_int_equal(l.n, 3);
	assert_int_equal(l.pg[0], p1);
	assert_int_equal(l.pg[1], p2);
	assert_int_equal(l.pg[2], p3);
	assert_int_equal(l.done, si.page_count);
	assert_int_equal(l.total, si.page_count);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_fresh_store_verifies_clean),
		tu_test(test_empty_store_verifies_clean),
		tu_test(test_verify_of_unknown_snapshot_is_enoent),
		tu_test(test_verify_finds_a_flipped_byte_in_a_stored_page),
		tu_test(test_verify_finds_a_page_decoding_to_wrong_content),
		tu_test(test_verify_finds_a_page_that_cannot_be_decoded),
		tu_test(test_verify_finds_a_missing_page),
		tu_test(test_verify_finds_a_wrong_image_hash),
		tu_test(test_verify_finds_a_wrong_stored_page_hash),
		tu_test(test_verify_counts_every_bad_snapshot),
		tu_test(test_full_verify_finds_a_snapshot_of_a_corrupt_db),
		tu_test(test_image_read_of_an_undecodable_page_is_eio),
		tu_test(test_image_read_of_a_missing_page_is_eio),
		tu_test(test_verify_with_threads_names_each_damaged_page),
	};
	return cmocka_run_group_tests_name("verify", tests, NULL, NULL);
}
