/*
 * tests/unit/test_events.c — engine/events.h: the event history records
 * snapshots, imports, restores, verifications, deletions, relabels and pins
 * with kind, snapshot name and outcome; failures are recorded with ok=0
 * even though the failed operation rolled back; the list honours after_id
 * and limit and survives reopening the store.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* tu_newest_event, whose ok must be `ok`. */
static snap_event expect_event(snap_store *st, int64_t after, const char *kind,
			       const char *snapshot, int ok)
{
	snap_event found = tu_newest_event(st, after, kind, snapshot);
	assert_int_equal(found.ok, ok);
	return found;
}

static snap_info setup_store(tu_env *env)
{
	tu_db_create(env->db, "delete", 4096, 200);
	return tu_snap(tu_store(env), "first");
}

/* ------------------------------------------------------------------ */

static void test_event_add_and_list_round_trip(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	int64_t after = tu_last_event_id(st);
	int64_t t0 = snap_time_now_ns();
	assert_int_equal(snap_event_add(st, "test-a", "x.db", 1, "one %d", 1), 0);
	assert_int_equal(snap_event_add(st, "test-b", "", 0, "two %s", "2"), 0);
	assert_int_equal(snap_event_add(st, "test-c", NULL, 1, "three"), 0);
	int64_t t1 = snap_time_now_ns();
	snap_event *ev = NULL;
	size_t n = 0;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_event_list(st, after, 0, &ev, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ev[0].kind, "test-a");
	assert_string_equal(ev[0].snapshot, "x.db");
	assert_int_equal(ev[0].ok, 1);
	assert_string_equal(ev[0].detail, "one 1");
	assert_string_equal(ev[1].kind, "test-b");
	assert_int_equal(ev[1].ok, 0);
	assert_string_equal(ev[1].detail, "two 2");
	assert_string_equal(ev[2].snapshot, "");
	for (size_t i = 0; i < n; i++) {
		assert_true(ev[i].id > after);
		assert_true(ev[i].time_ns >= t0 && ev[i].time_ns <= t1);
		if (i > 0) {
			assert_true(ev[i].id > ev[i - 1].id);
			assert_true(ev[i].time_ns >= ev[i - 1].time_ns);
		}
	}
	free(ev);
}

static void test_event_list_honours_after_id_and_limit(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	for (int i = 0; i < 5; i++)
		snap_event_add(st, "test", "", 1, "n=%d", i);
	snap_event *all;
	size_t n = tu_events(st, 0, &all);
	assert_true(n >= 5);
	int64_t mid = all[n - 3].id;   /* two events come after it */
	snap_event *ev = NULL;
	size_t m = 0;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_event_list(st, mid, 0, &ev, &m, &e), 0);
	assert_int_equal(m, 2);
	assert_int_equal(ev[0].id, all[n - 2].id);
	assert_int_equal(ev[1].id, all[n - 1].id);
	free(ev);
	/* At most `limit`, still oldest first and after after_id.  Which
	 * of the candidates a limit keeps is not part of the contract. */
	assert_int_equal(snap_event_list(st, 0, 2, &ev, &m, &e), 0);
	assert_int_equal(m, 2);
	assert_true(ev[0].id < ev[1].id);
	free(ev);
	assert_int_equal(snap_event_list(st, all[n - 1].id, 0, &ev, &m, &e), 0);
	assert_int_equal(m, 0);
	free(ev);
	free(all);
}

static void test_event_detail_is_bounded(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	char big[3 * SNAP_ERR_MSG];
	memset(big, 'd', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	int64_t after = tu_last_event_id(st);
	snap_event_add(st, "test-big", "", 1, "%s", big);
	snap_event ev = expect_event(st, after, "test-big", "", 1);
	assert_true(strlen(ev.detail) < SNAP_ERR_MSG);
	assert_true(strlen(ev.detail) > 100);
}

static void test_snapshot_is_recorded(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	int64_t after = tu_last_event_id(st);
	snap_info si = tu_snap(st, "recorded");
	expect_event(st, after, "snapshot", si.name, 1);
}

static void test_failed_snapshot_is_recorded_as_failure(void **state)
{
	tu_env *env = *state;
	setup_store(env);
	assert_int_equal(unlink(env->db), 0);
	int64_t after = tu_last_event_id(env->st);
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "gone" };
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_take(env->st, &o, NULL, &e), -ENOENT);
	snap_event ev = expect_event(env->st, after, "snapshot", NULL, 0);
	assert_true(ev.detail[0] != '\0');
}

static void test_import_and_failed_import_are_recorded(void **state)
{
	tu_env *env = *state;
	setup_store(env);
	char good[PATH_MAX], bad[PATH_MAX];
	tu_db_create(tu_path(env, good, "good.db"), "delete", 4096, 5);
	tu_write_file(tu_path(env, bad, "bad.db"), "not a database at all", 21);
	int64_t after = tu_last_event_id(env->st);
	snap_create_opts o = { .kind = SNAP_KIND_IMPORT, .label = "in" };
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_import(env->st, good, &o, &si, &e), 0);
	expect_event(env->st, after, "import", si.name, 1);
	after = tu_last_event_id(env->st);
	assert_int_equal(snap_snapshot_import(env->st, bad, &o, &si, &e), -EINVAL);
	snap_event ev = expect_event(env->st, after, "import", NULL, 0);
	assert_non_null(strstr(ev.detail, "bad.db"));
}

static void test_restore_is_recorded(void **state)
{
	tu_env *env = *state;
	snap_info a = setup_store(env);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "DELETE FROM t WHERE id < 50");
	sqlite3_close(db);
	int64_t after = tu_last_event_id(env->st);
	snap_restore_result res;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_restore(env->st, a.id, &res, &e), 0);
	expect_event(env->st, after, "restore", a.name, 1);
	/* The safety snapshot is a snapshot like any other. */
	expect_event(env->st, after, "snapshot", res.safety.name, 1);
}

static void test_refused_restores_are_recorded_as_failures(void **state)
{
	tu_env *env = *state;
	snap_info a = setup_store(env);
	/* Busy. */
	char lock[PATH_MAX + 16];
	snprintf(lock, sizeof(lock), "%s/restore.lock", snap_store_dir(env->st));
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	int64_t after = tu_last_event_id(env->st);
	snap_restore_result res;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_restore(env->st, a.id, &res, &e), -EBUSY);
	expect_event(env->st, after, "restore", a.name, 0);
	flock(fd, LOCK_UN);
	close(fd);
	/* Corrupt source. */
	uint32_t pg = tu_unique_page(env->st, -1, a.id);
	tu_corrupt_page(env->st, tu_page_id(env->st, a.id, pg));
	after = tu_last_event_id(env->st);
	assert_int_equal(snap_restore(env->st, a.id, &res, &e), -EBADMSG);
	snap_event ev = expect_event(env->st, after, "restore", a.name, 0);
	assert_true(ev.detail[0] != '\0');
}

static void test_verify_is_recorded_with_its_outcome(void **state)
{
	tu_env *env = *state;
	snap_info a = setup_store(env);
	int64_t after = tu_last_event_id(env->st);
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_verify_snapshot(env->st, a.id, 0, NULL, NULL, &e), 0);
	expect_event(env->st, after, "verify", a.name, 1);
	uint32_t pg = tu_unique_page(env->st, -1, a.id);
	tu_corrupt_page(env->st, tu_page_id(env->st, a.id, pg));
	after = tu_last_event_id(env->st);
	assert_int_equal(snap_verify_snapshot(env->st, a.id, 0, NULL, NULL, &e),
			 -EBADMSG);
	snap_event ev = expect_event(env->st, after, "verify", a.name, 0);
	assert_true(ev.detail[0] != '\0');
}

static void test_delete_is_recorded(void **state)
{
	tu_env *env = *state;
	snap_info a = setup_store(env);
	int64_t after = tu_last_event_id(env->st);
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_delete(env->st, a.id, &e), 0);
	expect_event(env->st, after, "delete", a.name, 1);
}

/* Some event after `after` names snapshot a or b. */
static void expect_any_event_naming(snap_store *st, int64_t after,
				    const char *a, const char *b)
{
	snap_event *ev;
	size_t n = tu_events(st, 0, &ev);
	int hit = 0;
	for (size_t i = 0; i < n; i++)
		if (ev[i].id > after && ev[i].ok == 1 &&
		    (strcmp(ev[i].snapshot, a) == 0 ||
		     (b && strcmp(ev[i].snapshot, b) == 0)))
			hit = 1;
	free(ev);
	if (!hit)
		fail_msg("no event names %s", a);
}

static void test_relabel_and_pin_are_recorded(void **state)
{
	tu_env *env = *state;
	snap_info a = setup_store(env);
	int64_t after = tu_last_event_id(env->st);
	snap_info r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_relabel(env->st, a.id, "renamed", &r, &e), 0);
	expect_any_event_naming(env->st, after, r.name, a.name);
	after = tu_last_event_id(env->st);
	assert_int_equal(snap_store_set_pinned(env->st, a.id, 1, &e), 0);
	expect_any_event_naming(env->st, after, r.name, NULL);
}

static void test_events_survive_reopening_the_store(void **state)
{
	tu_env *env = *state;
	snap_info a = setup_store(env);
	snap_event_add(env->st, "test-keep", a.name, 1, "kept");
	snap_store_close(env->st);
	env->st = NULL;
	snap_store *st = tu_store(env);
	expect_event(st, 0, "test-keep", a.name, 1);
	expect_event(st, 0, "snapshot", a.name, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_event_add_and_list_round_trip),
		tu_test(test_event_list_honours_after_id_and_limit),
		tu_test(test_event_detail_is_bounded),
		tu_test(test_snapshot_is_recorded),
		tu_test(test_failed_snapshot_is_recorded_as_failure),
		tu_test(test_import_and_failed_import_are_recorded),
		tu_test(test_restore_is_recorded),
		tu_test(test_refused_restores_are_recorded_as_failures),
		tu_test(test_verify_is_recorded_with_its_outcome),
		tu_test(test_delete_is_recorded),
		tu_test(test_relabel_and_pin_are_recorded),
		tu_test(test_events_survive_reopening_the_store),
	};
	return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
