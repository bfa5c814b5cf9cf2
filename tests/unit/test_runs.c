/*
 * tests/unit/test_runs.c — reference counting by runs (engine/store.c).
 *
 * A page's `runs` must equal the number of maximal runs of consecutive
 * snapshots (by id) whose maps hold it, and a page row must exist exactly
 * when that is > 0.  These tests recompute that from every map after each
 * step of create/change/delete sequences, including contents that come back
 * after a gap (A -> B -> A), and check the stored counts against it.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

/* One random step: change rows (sometimes back to an earlier value) and
 * snapshot, snapshot unchanged, or delete a random snapshot. */
static void random_step(snap_store *st, sqlite3 *live)
{
	snap_info *v = NULL;
	size_t n = 0;
	snap_err e;
	int r = rand() % 10;

	if (r < 4) {
		/* 'same' makes contents return after a gap (A -> B -> A). */
		tu_exec(live, "UPDATE t SET v = %s WHERE id %% 23 = %d",
			rand() % 3 ? "hex(randomblob(60))" : "'same'",
			rand() % 23);
	}
	if (r < 7) {
		if (snap_snapshot_take(st, NULL, NULL, &e))
			fail_msg("snapshot: %s", e.msg);
		return;
	}
	assert_int_equal(snap_store_list(st, &v, &n, &e), 0);
	if (n && snap_store_delete(st, v[rand() % n].id, &e))
		fail_msg("delete: %s", e.msg);
	free(v);
}

static void test_runs_match_the_maps_through_random_histories(void **state)
{
	tu_env *env = *state;
	unsigned seed;

	tu_db_create(env->db, "delete", 1024, 800);
	sqlite3 *live = tu_open(env->db);
	snap_store *st = tu_store(env);
	for (seed = 1; seed <= 3; seed++) {
		srand(seed);
		for (int step = 0; step < 40; step++) {
			random_step(st, live);
			tu_assert_runs(st);
		}
	}
	unsigned nbad = 0;
	snap_err e;
	if (snap_verify_store(st, 0, NULL, NULL, &nbad, &e))
		fail_msg("verify after the histories: %s", e.msg);
	sqlite3_close(live);
}

static void test_content_back_after_a_gap_survives_deleting_the_gap(void **state)
{
	/* A, B, A': deleting B merges the two runs of A's pages; deleting A
	 * then must keep them for A'. */
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 200);
	sqlite3 *live = tu_open(env->db);
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	tu_exec(live, "UPDATE t SET v = 'b' || v");
	snap_info b = tu_snap(st, "b");
	tu_exec(live, "UPDATE t SET v = substr(v, 2)");
	snap_info a2 = tu_snap(st, "a2");
	tu_assert_runs(st);
	snap_err e;
	assert_int_equal(snap_store_delete(st, b.id, &e), 0);
	tu_assert_runs(st);
	assert_int_equal(snap_store_delete(st, a.id, &e), 0);
	tu_assert_runs(st);
	assert_int_equal(snap_verify_snapshot(st, a2.id, 1, NULL, NULL, &e), 0);
	sqlite3_close(live);
}

static void test_deleting_every_snapshot_leaves_no_pages(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "wal", 4096, 300);
	sqlite3 *live = tu_open(env->db);
	snap_store *st = tu_store(env);
	snap_info s[4];
	for (int i = 0; i < 4; i++) {
		tu_exec(live, "UPDATE t SET v = v || '%d' WHERE id %% 5 = %d",
			i, i);
		s[i] = tu_snap(st, "s");
	}
	snap_err e;
	/* Middle first, then the ends. */
	int order[4] = { 2, 1, 3, 0 };
	for (int i = 0; i < 4; i++) {
		assert_int_equal(snap_store_delete(st, s[order[i]].id, &e), 0);
		tu_assert_runs(st);
	}
	assert_int_equal(tu_pages(st), 0);
	sqlite3_close(live);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_runs_match_the_maps_through_random_histories),
		tu_test(test_content_back_after_a_gap_survives_deleting_the_gap),
		tu_test(test_deleting_every_snapshot_leaves_no_pages),
	};
	return cmocka_run_group_tests_name("runs", tests, NULL, NULL);
}
