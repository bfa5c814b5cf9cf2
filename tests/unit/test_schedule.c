/*
 * tests/unit/test_schedule.c — engine/schedule.h: automatic snapshots only
 * when the live database changed.  No change, no snapshot (also on the
 * first tick after opening, when the newest snapshot already holds the
 * same image); a commit gives one snapshot at the next due tick and no
 * more; nothing before the due time; the due time advances by whole
 * intervals, skipping missed ones; retention runs after an automatic
 * snapshot; commits in WAL mode and a file replaced by rename are seen; a
 * failed snapshot is recorded, reaches the failure hook and is retried.
 *
 * Time is synthetic: every tick gets its "now" from snap_sched_next(), so
 * nothing here waits or depends on the wall clock.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS 1000000000LL
#define EVERY (60 * NS)

/* ---- helpers ----------------------------------------------------------- */

static snap_sched *sched_open(snap_store *st, int64_t every,
			      const snap_keep_policy *keep)
{
	snap_sched_opts o;
	memset(&o, 0, sizeof(o));
	o.every_ns = every;
	if (keep)
		o.keep = *keep;
	snap_sched *sc = NULL;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_sched_open(st, &o, &sc, &e);
	if (rc != 0 || !sc)
		fail_msg("snap_sched_open: %d %s", rc, e.msg);
	return sc;
}

/* Tick at the due time; returns the result, fails on an error. */
static snap_tick_result tick_due(snap_sched *sc)
{
	snap_tick_result r;
	snap_err e;
	snap_err_clear(&e);
	int64_t due = snap_sched_next(sc);
	assert_true(due > 0);
	int rc = snap_sched_tick(sc, due, &r, &e);
	if (rc != 0)
		fail_msg("tick: %d %s", rc, e.msg);
	assert_true(snap_sched_next(sc) > due);
	return r;
}

static void commit_rows(const char *path, int from, int to)
{
	sqlite3 *db = tu_open(path);
	tu_db_insert(db, from, to);
	sqlite3_close(db);
}

static void hook_count(void *ctx, const snap_event *ev)
{
	(void)ev;
	(*(int *)ctx)++;
}

/* ---- tests ------------------------------------------------------------ */

static void test_first_tick_of_an_empty_store_takes_a_snapshot(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	snap_sched *sc = sched_open(st, EVERY, NULL);
	assert_int_equal(snap_sched_changed(sc), 1);
	snap_tick_result r = tick_due(sc);
	assert_int_equal(r.took, 1);
	assert_int_equal(r.info.kind, SNAP_KIND_AUTO);
	assert_string_equal(r.info.label, "auto");
	assert_int_equal(r.pruned, 0);
	assert_int_equal(tu_count(st), 1);
	assert_int_equal(snap_sched_changed(sc), 0);
	snap_sched_close(sc);
}

static void test_no_change_takes_no_snapshot(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	tu_snap(st, "manual");
	snap_sched *sc = sched_open(st, EVERY, NULL);
	/* First tick: unknown, so a snapshot is taken, found equal to the
	 * newest, and discarded. */
	snap_tick_result r = tick_due(sc);
	assert_int_equal(r.took, 0);
	assert_int_equal(tu_count(st), 1);
	assert_int_equal(snap_sched_changed(sc), 0);
	for (int i = 0; i < 5; i++) {
		r = tick_due(sc);
		assert_int_equal(r.took, 0);
	}
	assert_int_equal(tu_count(st), 1);
	assert_int_equal(tu_count_kind(st, SNAP_KIND_AUTO), 0);
	snap_sched_close(sc);
}

static void test_a_commit_makes_one_snapshot_on_the_next_due_tick(
	void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	snap_sched *sc = sched_open(st, EVERY, NULL);
	assert_int_equal(tick_due(sc).took, 1);
	assert_int_equal(snap_sched_changed(sc), 0);

	commit_rows(env->db, 101, 120);
	assert_int_equal(snap_sched_changed(sc), 1);
	/* Not due yet: nothing, and the due time stays. */
	int64_t due = snap_sched_next(sc);
	snap_tick_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_sched_tick(sc, due - 1, &r, &e), 0);
	assert_int_equal(r.took, 0);
	assert_int_equal(snap_sched_next(sc), due);
	assert_int_equal(tu_count(st), 1);
	/* Due: one snapshot, with the new rows. */
	r = tick_due(sc);
	assert_int_equal(r.took, 1);
	assert_int_equal(tu_count(st), 2);
	char *tables = NULL;
	assert_int_equal(snap_store_tables_json(st, r.info.id, &tables, &e), 0);
	assert_non_null(strstr(tables, "\"t\":120"));
	free(tables);
	/* And no more until the next commit. */
	assert_int_equal(snap_sched_changed(sc), 0);
	assert_int_equal(tick_due(sc).took, 0);
	assert_int_equal(tick_due(sc).took, 0);
	assert_int_equal(tu_count(st), 2);
	commit_rows(env->db, 121, 121);
	assert_int_equal(tick_due(sc).took, 1);
	assert_int_equal(tu_count_kind(st, SNAP_KIND_AUTO), 3);
	snap_sched_close(sc);
}

static void test_due_time_advances_by_whole_intervals(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	int64_t before = snap_time_now_ns();
	snap_sched *sc = sched_open(st, EVERY, NULL);
	int64_t n0 = snap_sched_next(sc);
	/* About one interval from opening (bounds only, no wall-clock
	 * assertion beyond "after the open began"). */
	assert_true(n0 >= before + EVERY);
	snap_tick_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_sched_tick(sc, n0, &r, &e), 0);
	assert_int_equal(snap_sched_next(sc), n0 + EVERY);
	/* Late by ten and a bit intervals: the missed ones are skipped. */
	assert_int_equal(snap_sched_tick(sc, n0 + 10 * EVERY + 5, &r, &e), 0);
	assert_int_equal(snap_sched_next(sc), n0 + 11 * EVERY);
	/* Exactly on a due time: the next one is one interval later. */
	assert_int_equal(snap_sched_tick(sc, n0 + 11 * EVERY, &r, &e), 0);
	assert_int_equal(snap_sched_next(sc), n0 + 12 * EVERY);
	snap_sched_close(sc);
}

static void test_no_interval_schedules_nothing(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	snap_sched *sc = sched_open(st, 0, NULL);
	assert_int_equal(snap_sched_next(sc), 0);
	snap_tick_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_sched_tick(sc, snap_time_now_ns() + 1000 * EVERY,
					 &r, &e), 0);
	assert_int_equal(r.took, 0);
	assert_int_equal(tu_count(st), 0);
	snap_sched_close(sc);
	/* A negative interval is refused. */
	snap_sched_opts o;
	memset(&o, 0, sizeof(o));
	o.every_ns = -1;
	snap_sched *bad = NULL;
	assert_int_equal(snap_sched_open(st, &o, &bad, &e), -EINVAL);
	assert_null(bad);
}

static void test_retention_runs_after_an_automatic_snapshot(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	snap_info m = tu_snap(st, "manual");
	snap_keep_policy keep;
	memset(&keep, 0, sizeof(keep));
	keep.last = 2;
	snap_sched *sc = sched_open(st, EVERY, &keep);
	size_t pruned = 0;
	for (int i = 0; i < 4; i++) {
		commit_rows(env->db, 101 + i, 101 + i);
		snap_tick_result r = tick_due(sc);
		assert_int_equal(r.took, 1);
		pruned += r.pruned;
		assert_true(tu_count_kind(st, SNAP_KIND_AUTO) <= 2);
	}
	assert_int_equal(pruned, 2);
	assert_int_equal(tu_count_kind(st, SNAP_KIND_AUTO), 2);
	/* The manual snapshot is never pruned automatically. */
	snap_info still;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_get(st, m.id, &still, &e), 0);
	/* Without a change there is no snapshot, so no prune either. */
	assert_int_equal(tick_due(sc).pruned, 0);
	snap_sched_close(sc);
}

static void test_commits_in_wal_mode_are_detected(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, 100);
	/* An application keeps its connection: commits stay in the -wal. */
	sqlite3 *app = tu_open(env->db);
	snap_sched *sc = sched_open(st, EVERY, NULL);
	assert_int_equal(tick_due(sc).took, 1);
	/* The snapshot's checkpoint wrote the file: still no change. */
	assert_int_equal(snap_sched_changed(sc), 0);
	assert_int_equal(tick_due(sc).took, 0);

	tu_db_insert(app, 101, 110);
	assert_int_equal(snap_sched_changed(sc), 1);
	assert_int_equal(tick_due(sc).took, 1);
	assert_int_equal(snap_sched_changed(sc), 0);
	assert_int_equal(tick_due(sc).took, 0);
	assert_int_equal(tick_due(sc).took, 0);

	/* A commit by another connection of this process, too. */
	commit_rows(env->db, 111, 111);
	assert_int_equal(tick_due(sc).took, 1);
	assert_int_equal(tick_due(sc).took, 0);
	assert_int_equal(tu_count_kind(st, SNAP_KIND_AUTO), 3);
	sqlite3_close(app);
	snap_sched_close(sc);
}

static void test_a_file_replaced_by_rename_is_detected(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	snap_sched *sc = sched_open(st, EVERY, NULL);
	assert_int_equal(tick_due(sc).took, 1);
	assert_int_equal(snap_sched_changed(sc), 0);

	char other[PATH_MAX];
	tu_db_create(tu_path(env, other, "other.db"), "delete", 4096, 250);
	assert_int_equal(rename(other, env->db), 0);
	assert_int_equal(snap_sched_changed(sc), 1);
	snap_tick_result r = tick_due(sc);
	assert_int_equal(r.took, 1);
	char *tables = NULL;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_tables_json(st, r.info.id, &tables, &e), 0);
	assert_non_null(strstr(tables, "\"t\":250"));
	free(tables);
	/* Watching the new file now: quiet until it changes. */
	assert_int_equal(snap_sched_changed(sc), 0);
	assert_int_equal(tick_due(sc).took, 0);
	commit_rows(env->db, 251, 251);
	assert_int_equal(tick_due(sc).took, 1);
	snap_sched_close(sc);
}

static void test_a_failed_snapshot_is_recorded_and_retried(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	int hooked = 0;
	snap_store_set_failure_hook(st, hook_count, &hooked);
	snap_sched *sc = sched_open(st, EVERY, NULL);
	assert_int_equal(tick_due(sc).took, 1);
	assert_int_equal(hooked, 0);

	/* The database is replaced by something that is not one. */
	char good[PATH_MAX], junk[PATH_MAX];
	assert_int_equal(rename(env->db, tu_path(env, good, "good.db")), 0);
	tu_write_file(tu_path(env, junk, "junk"), "this is not a database",
		      22);
	assert_int_equal(rename(junk, env->db), 0);
	int64_t after = tu_last_event_id(st);
	int64_t due = snap_sched_next(sc);
	snap_tick_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_true(snap_sched_tick(sc, due, &r, &e) < 0);
	assert_int_equal(r.took, 0);
	assert_true(e.msg[0] != '\0');
	assert_true(snap_sched_next(sc) > due);   /* advanced anyway */
	assert_int_equal(tu_count_events(st, after, "snapshot", 0, NULL), 1);
	assert_int_equal(hooked, 1);
	assert_int_equal(tu_count(st), 1);

	/* A database again (with other content): the next due tick takes
	 * it; the failure did not consume the change. */
	commit_rows(good, 101, 101);
	assert_int_equal(rename(good, env->db), 0);
	r = tick_due(sc);
	assert_int_equal(r.took, 1);
	assert_int_equal(hooked, 1);
	assert_int_equal(tu_count(st), 2);
	snap_store_set_failure_hook(st, NULL, NULL);
	snap_sched_close(sc);
}

static void test_open_refuses_a_missing_database(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	assert_int_equal(unlink(env->db), 0);
	snap_sched_opts o;
	memset(&o, 0, sizeof(o));
	o.every_ns = EVERY;
	snap_sched *sc = NULL;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_sched_open(st, &o, &sc, &e), -ENOENT);
	assert_null(sc);
	assert_non_null(strstr(e.msg, env->db));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_first_tick_of_an_empty_store_takes_a_snapshot),
		tu_test(test_no_change_takes_no_snapshot),
		tu_test(test_a_commit_makes_one_snapshot_on_the_next_due_tick),
		tu_test(test_due_time_advances_by_whole_intervals),
		tu_test(test_no_interval_schedules_nothing),
		tu_test(test_retention_runs_after_an_automatic_snapshot),
		tu_test(test_commits_in_wal_mode_are_detected),
		tu_test(test_a_file_replaced_by_rename_is_detected),
		tu_test(test_a_failed_snapshot_is_recorded_and_retried),
		tu_test(test_open_refuses_a_missing_database),
	};
	return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}
