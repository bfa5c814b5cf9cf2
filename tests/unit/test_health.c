/*
 * tests/unit/test_health.c — engine/health.h: the check of the live
 * database (healthy; corrupt: a recovery snapshot keeps the corrupt state,
 * events say what happened; auto_recover restores the newest snapshot that
 * passes full verification, skipping a damaged one, and the live database
 * then passes integrity_check with that snapshot's content); the scrub
 * (slices, cursor, wrap, full pass, damage found); the status (counts by
 * kind, age, dedup ratio, last restore/check/verify from the history) and
 * its JSON and Prometheus forms; the failure hook (events.c) firing for
 * failed snapshots and checks and never for successes.
 *
 * The live database is corrupted on purpose by writing over a b-tree page
 * with plain file I/O after every SQLite connection to it was closed.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS 1000000000LL

/* ---- helpers ----------------------------------------------------------- */

/* Write `len` bytes of 0xA5 at `off` in page `pgno` of a closed database. */
static void smash_page(const char *path, int64_t pgno, int off, int len)
{
	sqlite3 *db = tu_open(path);
	int64_t ps = tu_query_int(db, "PRAGMA page_size");
	sqlite3_close(db);
	char junk[256];
	memset(junk, 0xA5, sizeof(junk));
	assert_true(len <= (int)sizeof(junk));
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, (size_t)len,
				(off_t)((pgno - 1) * ps + off)), len);
	close(fd);
}

/* Break the header of index t_v's root page: quick_check fails, and so
 * does count(*) (SQLite counts through the index), the hardest case for
 * keeping the corrupt state. */
static void corrupt_live_index(const char *path)
{
	sqlite3 *db = tu_open(path);
	int64_t root = tu_query_int(db, "SELECT rootpage FROM sqlite_schema "
				    "WHERE name='t_v'");
	sqlite3_close(db);
	assert_true(root > 1);
	smash_page(path, root, 0, 8);
}

/* Overwrite the SQLite header: the file is no longer a database. */
static void corrupt_live_header(const char *path)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "NOT A DATABASE!!", 16, 0), 16);
	close(fd);
}

/* What the failure hook saw. */
typedef struct hook_log {
	int n;                 /* calls */
	char kinds[16][32];    /* kinds of the first 16 calls */
	int all_failed;        /* every event had ok == 0 */
} hook_log;

static void hook_cb(void *ctx, const snap_event *ev)
{
	hook_log *h = ctx;
	if (h->n < 16)
		snprintf(h->kinds[h->n], sizeof(h->kinds[0]), "%s", ev->kind);
	if (ev->ok)
		h->all_failed = 0;
	h->n++;
}

static int hook_saw(const hook_log *h, const char *kind)
{
	for (int i = 0; i < h->n && i < 16; i++)
		if (strcmp(h->kinds[i], kind) == 0)
			return 1;
	return 0;
}

/* ---- check ------------------------------------------------------------ */

static void test_check_of_a_healthy_database_records_ok(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 300);
	int64_t after = tu_last_event_id(st);
	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_health_check(st, 1, &r, &e), 0);
	assert_int_equal(r.corrupt, 0);
	assert_int_equal(r.have_recovery, 0);
	assert_int_equal(r.restored, 0);
	assert_int_equal(tu_count(st), 0);
	/* One event per check, ok. */
	assert_int_equal(tu_count_events(st, after, "check", 1, NULL), 1);
	assert_int_equal(tu_count_events(st, after, "check", 0, NULL), 0);
	/* NULL result and error are allowed. */
	assert_int_equal(snap_health_check(st, 0, NULL, NULL), 0);
}

static void test_check_of_a_healthy_wal_database(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "wal", 4096, 300);
	sqlite3 *w = tu_open(env->db);
	tu_db_insert(w, 301, 400);     /* stays in the -wal while w is open */
	snap_store *st = tu_store(env);
	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_health_check(st, 0, &r, &e), 0);
	assert_int_equal(r.corrupt, 0);
	sqlite3_close(w);
}

static void test_repeated_checks_keep_one_recovery_snapshot_per_state(
	void **state)
{
	/* check=1m on a database that stays corrupt: one recovery snapshot,
	 * not one a minute; a new corrupt state gets its own. */
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 600);
	tu_snap(st, "good");
	corrupt_live_index(env->db);
	snap_check_result r1, r2;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_health_check(st, 0, &r1, &e), -EBADMSG);
	assert_int_equal(snap_health_check(st, 0, &r2, &e), -EBADMSG);
	assert_int_equal(r2.have_recovery, 1);
	assert_int_equal(tu_count_kind(st, SNAP_KIND_RECOVERY), 1);
	assert_int_equal(r2.recovery.id, r1.recovery.id);
	assert_string_equal(r2.recovery.name, r1.recovery.name);
	/* Another corrupt state: kept too. */
	corrupt_live_header(env->db);
	snap_check_result r3;
	if (snap_health_check(st, 0, &r3, &e) == -EBADMSG && r3.have_recovery)
		assert_int_equal(tu_count_kind(st, SNAP_KIND_RECOVERY), 2);
}

static void test_check_finds_corruption_and_keeps_a_recovery_snapshot(
	void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 600);
	tu_snap(st, "good");
	corrupt_live_index(env->db);
	uint8_t before[32], after_sha[32];
	tu_sha256_file(env->db, before);
	hook_log h = { .all_failed = 1 };
	snap_store_set_failure_hook(st, hook_cb, &h);
	int64_t after = tu_last_event_id(st);

	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_health_check(st, 0, &r, &e), -EBADMSG);
	assert_int_equal(r.corrupt, 1);
	assert_true(r.problem[0] != '\0');
	assert_null(strchr(r.problem, '\n'));
	assert_null(strstr(r.problem, "*** in database"));
	assert_non_null(strstr(e.msg, env->db));
	/* The corrupt state is kept, as kind recovery. */
	assert_int_equal(r.have_recovery, 1);
	assert_int_equal(r.recovery.kind, SNAP_KIND_RECOVERY);
	assert_int_equal(tu_count_kind(st, SNAP_KIND_RECOVERY), 1);
	assert_non_null(strstr(e.msg, r.recovery.name));
	assert_int_equal(r.restored, 0);
	/* Without auto_recover nothing touches the live file. */
	tu_sha256_file(env->db, after_sha);
	assert_memory_equal(before, after_sha, 32);
	assert_int_equal(tu_count(st), 2);
	/* Recorded: a failed check naming the recovery snapshot and the
	 * problem; the hook saw it. */
	snap_event ev = tu_newest_event(st, after, "check", NULL);
	assert_int_equal(ev.ok, 0);
	assert_string_equal(ev.snapshot, r.recovery.name);
	assert_non_null(strstr(ev.detail, r.problem));
	assert_true(h.n >= 1);
	assert_true(hook_saw(&h, "check"));
	assert_true(h.all_failed);
	/* The recovery snapshot holds the corrupt bytes: it fails a full
	 * verification but its pages are intact in the store. */
	snap_err_clear(&e);
	assert_int_equal(snap_verify_snapshot(st, r.recovery.id, 0, NULL, NULL,
					      &e), 0);
	snap_store_set_failure_hook(st, NULL, NULL);
}

static void test_auto_recover_restores_the_newest_intact_snapshot(
	void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 600);
	/* a: 600 rows (intact); b: 700 rows, damaged in the store. */
	snap_info a = tu_snap(st, "a");
	char digest_a[65];
	tu_db_digest(env->db, digest_a);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET pad = 'changed-' || id WHERE id > 550");
	tu_db_insert(db, 601, 700);
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");
	tu_corrupt_page(st, tu_page_id(st, b.id, tu_unique_page(st, a.id,
								    b.id)));
	corrupt_live_index(env->db);
	assert_false(tu_db_integrity_ok(env->db));
	int64_t after = tu_last_event_id(st);

	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_health_check(st, 1, &r, &e);
	if (rc != 0)
		fail_msg("check with auto_recover: %d %s", rc, e.msg);
	assert_int_equal(r.corrupt, 1);
	assert_int_equal(r.have_recovery, 1);
	assert_int_equal(r.restored, 1);
	assert_int_equal(r.restored_from.id, a.id);
	assert_string_equal(r.restored_from.name, a.name);
	assert_int_equal(r.skipped_bad, 1);
	/* The live database is a's content again, and intact. */
	assert_true(tu_db_integrity_ok(env->db));
	char digest[65];
	tu_db_digest(env->db, digest);
	assert_string_equal(digest, digest_a);
	assert_int_equal(tu_db_rows(env->db), 600);
	/* The corrupt state stays in the store for analysis. */
	assert_int_equal(tu_count_kind(st, SNAP_KIND_RECOVERY), 1);
	/* Everything recorded: the failed check, b's failed verification,
	 * the restore of a, and the check that ends in recovery naming both. */
	assert_int_equal(tu_count_events(st, after, "check", 0, r.problem), 1);
	assert_int_equal(tu_count_events(st, after, "verify", 0, NULL), 1);
	snap_event ev = tu_newest_event(st, after, "restore", NULL);
	assert_int_equal(ev.ok, 1);
	assert_string_equal(ev.snapshot, a.name);
	ev = tu_newest_event(st, after, "check", NULL);
	assert_int_equal(ev.ok, 1);
	assert_string_equal(ev.snapshot, a.name);
	assert_non_null(strstr(ev.detail, "recovered"));
	assert_non_null(strstr(ev.detail, b.name));
	/* And a check now finds it healthy. */
	snap_err_clear(&e);
	assert_int_equal(snap_health_check(st, 1, &r, &e), 0);
	assert_int_equal(r.corrupt, 0);
}

static void test_auto_recover_in_wal_mode(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 1024, 600);
	snap_info a = tu_snap(st, "a");
	char digest_a[65];
	tu_db_digest(env->db, digest_a);
	corrupt_live_index(env->db);
	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_health_check(st, 1, &r, &e);
	if (rc != 0)
		fail_msg("check with auto_recover: %d %s", rc, e.msg);
	assert_int_equal(r.restored_from.id, a.id);
	assert_int_equal(r.skipped_bad, 0);
	assert_true(tu_db_integrity_ok(env->db));
	char digest[65];
	tu_db_digest(env->db, digest);
	assert_string_equal(digest, digest_a);
	char *mode = tu_db_journal_mode(env->db);
	assert_string_equal(mode, "wal");
	free(mode);
}

static void test_auto_recover_without_an_intact_snapshot_fails(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 600);
	snap_info a = tu_snap(st, "a");
	tu_corrupt_page(st, tu_page_id(st, a.id, 3));
	corrupt_live_index(env->db);
	uint8_t before[32], after_sha[32];
	tu_sha256_file(env->db, before);
	int64_t after = tu_last_event_id(st);
	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_health_check(st, 1, &r, &e), -EBADMSG);
	assert_int_equal(r.corrupt, 1);
	assert_int_equal(r.restored, 0);
	assert_int_equal(r.skipped_bad, 1);
	assert_non_null(strstr(e.msg, "no intact snapshot"));
	tu_sha256_file(env->db, after_sha);
	assert_memory_equal(before, after_sha, 32);
	snap_event ev = tu_newest_event(st, after, "check", NULL);
	assert_int_equal(ev.ok, 0);
	assert_non_null(strstr(ev.detail, a.name));
	assert_int_equal(tu_count_events(st, after, "restore", -1, NULL), 0);
}

static void test_check_of_a_file_that_is_no_longer_a_database(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 300);
	snap_info a = tu_snap(st, "a");
	corrupt_live_header(env->db);
	int64_t after = tu_last_event_id(st);
	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	/* Without auto_recover: corrupt, and it could not be snapshotted;
	 * the event says why. */
	assert_int_equal(snap_health_check(st, 0, &r, &e), -EBADMSG);
	assert_int_equal(r.corrupt, 1);
	assert_int_equal(r.have_recovery, 0);
	assert_non_null(strstr(e.msg, "could not be kept"));
	snap_event ev = tu_newest_event(st, after, "check", NULL);
	assert_int_equal(ev.ok, 0);
	assert_non_null(strstr(ev.detail, "could not be kept"));
	/* With it: a is restored and the broken file is kept beside. */
	snap_err_clear(&e);
	int rc = snap_health_check(st, 1, &r, &e);
	if (rc != 0)
		fail_msg("check with auto_recover: %d %s", rc, e.msg);
	assert_int_equal(r.restored_from.id, a.id);
	assert_true(tu_db_integrity_ok(env->db));
	assert_int_equal(tu_db_rows(env->db), 300);
	ev = tu_newest_event(st, after, "check", NULL);
	assert_int_equal(ev.ok, 1);
	assert_non_null(strstr(ev.detail, "kept as"));
}

static void test_check_of_an_emptied_database_is_not_healthy(void **state)
{
	/* SQLite reads a 0-byte file as an empty database and quick_check
	 * says ok; a live database truncated to nothing lost everything.
	 * With auto_recover the newest snapshot comes back. */
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 200);
	snap_info a = tu_snap(st, "a");
	assert_int_equal(truncate(env->db, 0), 0);
	int64_t after = tu_last_event_id(st);
	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_health_check(st, 0, &r, &e), -EBADMSG);
	assert_int_equal(r.corrupt, 1);
	assert_non_null(strstr(r.problem, "empty"));
	snap_event ev = tu_newest_event(st, after, "check", NULL);
	assert_int_equal(ev.ok, 0);
	assert_non_null(strstr(ev.detail, "empty"));
	snap_err_clear(&e);
	int rc = snap_health_check(st, 1, &r, &e);
	if (rc != 0)
		fail_msg("check with auto_recover: %d %s", rc, e.msg);
	assert_int_equal(r.restored_from.id, a.id);
	assert_int_equal(tu_db_rows(env->db), 200);
}

static void test_check_of_a_missing_database_is_enoent(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	assert_int_equal(unlink(env->db), 0);
	int64_t after = tu_last_event_id(st);
	snap_check_result r;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_health_check(st, 1, &r, &e), -ENOENT);
	assert_int_equal(r.corrupt, 0);
	assert_non_null(strstr(e.msg, env->db));
	assert_int_equal(tu_count_events(st, after, "check", 0, NULL), 1);
	assert_false(tu_exists(env->db));
}

/* ---- scrub ------------------------------------------------------------ */

static int64_t meta_int(snap_store *st, const char *key)
{
	sqlite3 *db = tu_open(snap_store_file(st));
	int64_t v = tu_query_int(db, "SELECT ifnull((SELECT value FROM meta "
				 "WHERE key='%s'), -1)", key);
	sqlite3_close(db);
	return v;
}

static snap_scrub_result scrub(snap_store *st, unsigned max, int full,
			       int expect_rc)
{
	snap_scrub_result r;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_health_scrub(st, max, full, &r, &e);
	if (rc != expect_rc)
		fail_msg("scrub(%u): %d, expected %d (%s)", max, rc, expect_rc,
			 e.msg);
	return r;
}

static void test_scrub_walks_the_store_in_slices_and_wraps(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	snap_info s[5];
	for (int i = 0; i < 5; i++)
		s[i] = tu_snap(st, "s");
	assert_int_equal(meta_int(st, "scrub_full_pass_ns"), -1);
	int64_t after = tu_last_event_id(st);

	snap_scrub_result r = scrub(st, 2, 0, 0);
	assert_int_equal(r.verified, 2);
	assert_int_equal(r.full_pass_done, 0);
	assert_int_equal(meta_int(st, "scrub_cursor"), s[1].id);
	assert_int_equal(tu_count_events(st, after, "verify", 1, NULL), 2);
	r = scrub(st, 2, 0, 0);
	assert_int_equal(r.verified, 2);
	assert_int_equal(r.full_pass_done, 0);
	assert_int_equal(meta_int(st, "scrub_cursor"), s[3].id);
	assert_int_equal(meta_int(st, "scrub_full_pass_ns"), -1);
	/* s[4], the pass ends, then on from the oldest: s[0]. */
	after = tu_last_event_id(st);
	r = scrub(st, 2, 0, 0);
	assert_int_equal(r.verified, 2);
	assert_int_equal(r.bad, 0);
	assert_int_equal(r.full_pass_done, 1);
	assert_true(meta_int(st, "scrub_full_pass_ns") > 0);
	assert_int_equal(meta_int(st, "scrub_cursor"), s[0].id);
	snap_event ev = tu_newest_event(st, after, "verify", NULL);
	assert_string_equal(ev.snapshot, s[0].name);
	ev = tu_newest_event(st, after, "scrub", NULL);
	assert_int_equal(ev.ok, 1);
	assert_non_null(strstr(ev.detail, "full pass"));
	/* A big slice covers everything once and stops where it began. */
	r = scrub(st, 100, 1, 0);
	assert_int_equal(r.verified, 5);
	assert_int_equal(r.full_pass_done, 1);
	assert_int_equal(meta_int(st, "scrub_cursor"), s[0].id);
	/* max 0 verifies nothing. */
	r = scrub(st, 0, 0, 0);
	assert_int_equal(r.verified, 0);
	assert_int_equal(r.full_pass_done, 0);
}

static void test_scrub_ending_exactly_at_the_newest_completes_the_pass(
	void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	for (int i = 0; i < 3; i++)
		tu_snap(st, "s");
	snap_scrub_result r = scrub(st, 3, 0, 0);
	assert_int_equal(r.verified, 3);
	assert_int_equal(r.full_pass_done, 1);
	assert_int_equal(meta_int(st, "scrub_cursor"), 0);
	/* The next slice starts a new pass from the oldest. */
	r = scrub(st, 1, 0, 0);
	assert_int_equal(r.verified, 1);
	assert_int_equal(r.full_pass_done, 0);
}

static void test_scrub_of_an_empty_store_completes_a_pass(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	snap_scrub_result r = scrub(st, 10, 0, 0);
	assert_int_equal(r.verified, 0);
	assert_int_equal(r.full_pass_done, 1);
	assert_true(meta_int(st, "scrub_full_pass_ns") > 0);
}

static void test_scrub_finds_a_damaged_snapshot(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 600);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	tu_db_insert(db, 601, 700);
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");
	snap_info c = tu_snap(st, "c");
	tu_corrupt_page(st, tu_page_id(st, a.id, tu_unique_page(st, b.id,
								    a.id)));
	hook_log h = { .all_failed = 1 };
	snap_store_set_failure_hook(st, hook_cb, &h);
	int64_t after = tu_last_event_id(st);
	snap_scrub_result r = scrub(st, 10, 0, -EBADMSG);
	assert_int_equal(r.verified, 3);
	assert_int_equal(r.bad, 1);
	assert_int_equal(r.full_pass_done, 1);
	snap_event ev = tu_newest_event(st, after, "scrub", NULL);
	assert_int_equal(ev.ok, 0);
	assert_non_null(strstr(ev.detail, a.name));
	assert_null(strstr(ev.detail, c.name));
	assert_int_equal(tu_count_events(st, after, "verify", 0, NULL), 1);
	assert_true(hook_saw(&h, "verify"));
	assert_true(hook_saw(&h, "scrub"));
	assert_true(h.all_failed);
	/* Status: the last verification failed; the pass is recorded. */
	snap_status s;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	assert_true(s.last_verify_ns > 0);
	assert_int_equal(s.last_verify_ok, 0);
	assert_true(s.last_full_scrub_ns > 0);
	snap_store_set_failure_hook(st, NULL, NULL);
}

/* ---- status ----------------------------------------------------------- */

static void test_status_of_an_empty_store(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	snap_status s;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	assert_string_equal(s.db_path, snap_store_db_path(st));
	assert_string_equal(s.store_dir, snap_store_dir(st));
	assert_int_equal(s.count, 0);
	assert_int_equal(s.have_newest, 0);
	assert_true(s.dedup_ratio == 0);
	assert_int_equal(s.last_restore_ns, 0);
	assert_int_equal(s.last_check_ns, 0);
	assert_int_equal(s.last_verify_ns, 0);
	assert_int_equal(s.last_full_scrub_ns, 0);
	assert_int_equal(s.next_snapshot_ns, 0);
	assert_int_equal(s.interval_ns, 0);
}

static void test_status_counts_ages_sizes_and_history(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 500);
	tu_snap_kind(st, SNAP_KIND_MANUAL, "m1");
	tu_snap_kind(st, SNAP_KIND_MANUAL, "m2");
	tu_snap_kind(st, SNAP_KIND_AUTO, "auto");
	snap_info newest = tu_snap_kind(st, SNAP_KIND_RECOVERY, "r");
	snap_status s;
	snap_err e;
	snap_err_clear(&e);
	int64_t now = newest.created_ns + 90 * NS + 5;
	assert_int_equal(snap_status_get(st, now, &s, &e), 0);
	assert_int_equal(s.count, 4);
	assert_int_equal(s.count_by_kind[SNAP_KIND_MANUAL], 2);
	assert_int_equal(s.count_by_kind[SNAP_KIND_AUTO], 1);
	assert_int_equal(s.count_by_kind[SNAP_KIND_RECOVERY], 1);
	assert_int_equal(s.count_by_kind[SNAP_KIND_IMPORT], 0);
	assert_int_equal(s.have_newest, 1);
	assert_string_equal(s.newest.name, newest.name);
	assert_int_equal(s.newest_age_ns, 90 * NS + 5);
	/* Four identical images: logical is four images, stored about one. */
	assert_int_equal(s.stats.snapshots, 4);
	assert_int_equal(s.stats.logical_bytes, 4 * newest.image_size);
	assert_true(s.stats.stored_bytes > 0);
	assert_true(s.dedup_ratio > 2.0);
	double want = (double)s.stats.logical_bytes /
		      (double)s.stats.stored_bytes;
	assert_true(s.dedup_ratio > want - 1e-9 && s.dedup_ratio < want + 1e-9);
	/* An age is never negative. */
	assert_int_equal(snap_status_get(st, newest.created_ns - NS, &s, &e),
			 0);
	assert_int_equal(s.newest_age_ns, 0);

	/* The history: a check, a verify, a restore. */
	assert_int_equal(s.last_check_ns, 0);
	assert_int_equal(snap_health_check(st, 0, NULL, &e), 0);
	assert_int_equal(snap_verify_snapshot(st, newest.id, 0, NULL, NULL, &e),
			 0);
	snap_restore_result rr;
	assert_int_equal(snap_restore(st, newest.id, &rr, &e), 0);
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	snap_event c = tu_newest_event(st, 0, "check", NULL);
	assert_int_equal(s.last_check_ns, c.time_ns);
	assert_int_equal(s.last_check_ok, 1);
	assert_string_equal(s.last_check, c.detail);
	snap_event v = tu_newest_event(st, 0, "verify", NULL);
	/* The restore verified too: the newest verify event is its own. */
	assert_int_equal(s.last_verify_ns, v.time_ns);
	assert_int_equal(s.last_verify_ok, 1);
	snap_event r = tu_newest_event(st, 0, "restore", NULL);
	assert_int_equal(s.last_restore_ns, r.time_ns);
	assert_int_equal(s.last_restore_ok, 1);
	assert_non_null(strstr(s.last_restore, "restored"));
	/* A pre-restore snapshot is counted as its kind. */
	assert_int_equal(s.count_by_kind[SNAP_KIND_PRE_RESTORE], 1);
	/* A failed check shows as the last check. */
	corrupt_live_index(env->db);
	assert_int_equal(snap_health_check(st, 0, NULL, &e), -EBADMSG);
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	assert_int_equal(s.last_check_ok, 0);
	assert_non_null(strstr(s.last_check, "corrupt"));
}

/* Member `key` of obj, of type t; fails the test otherwise. */
static const tu_jv *jget(const tu_jv *obj, const char *key, tu_jtype t)
{
	const tu_jv *v = tu_json_get(obj, key);
	if (!v)
		fail_msg("JSON has no member %s", key);
	if (v->type != t)
		fail_msg("JSON member %s has type %d, expected %d", key,
			 (int)v->type, (int)t);
	return v;
}

static tu_jv *status_json(snap_status *s)
{
	snap_json j;
	snap_json_init(&j);
	snap_status_json(&j, s);
	assert_false(j.oom);
	const char *why = NULL;
	tu_jv *v = tu_json_parse(j.buf, &why);
	if (!v)
		fail_msg("status JSON does not parse (%s): %s", why, j.buf);
	snap_json_free(&j);
	assert_int_equal(v->type, TU_JOBJ);
	return v;
}

static void test_status_json_has_the_documented_fields(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 200);
	snap_status s;
	snap_err e;
	snap_err_clear(&e);

	/* Empty store, never checked: nulls. */
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	tu_jv *v = status_json(&s);
	assert_string_equal(jget(v, "database", TU_JSTR)->str,
			    snap_store_db_path(st));
	assert_string_equal(jget(v, "store", TU_JSTR)->str, snap_store_dir(st));
	assert_string_equal(jget(v, "snapshots", TU_JNUM)->num, "0");
	jget(v, "newest", TU_JNULL);
	jget(v, "last_restore", TU_JNULL);
	jget(v, "last_check", TU_JNULL);
	jget(v, "last_verify", TU_JNULL);
	jget(v, "last_full_scrub", TU_JNULL);
	jget(v, "next_snapshot", TU_JNULL);
	jget(v, "next_snapshot_ns", TU_JNULL);
	jget(v, "last_full_scrub_ns", TU_JNULL);
	jget(v, "interval_seconds", TU_JNULL);
	assert_true(strtod(jget(v, "dedup_ratio", TU_JNUM)->num, NULL) == 0);
	tu_json_free(v);

	/* Two snapshots, a check, a scrub pass and a schedule. */
	snap_info a = tu_snap(st, "a");
	snap_info b = tu_snap_kind(st, SNAP_KIND_AUTO, "auto");
	assert_int_equal(snap_health_check(st, 0, NULL, &e), 0);
	snap_scrub_result sr;
	assert_int_equal(snap_health_scrub(st, 10, 0, &sr, &e), 0);
	assert_int_equal(snap_status_get(st, b.created_ns + 42 * NS, &s, &e),
			 0);
	s.next_snapshot_ns = b.created_ns + 600 * NS;
	s.interval_ns = 900 * NS;
	v = status_json(&s);
	assert_string_equal(jget(v, "snapshots", TU_JNUM)->num, "2");
	const tu_jv *k = jget(v, "by_kind", TU_JOBJ);
	assert_int_equal(k->n, SNAP_KIND_COUNT);
	assert_string_equal(jget(k, "manual", TU_JNUM)->num, "1");
	assert_string_equal(jget(k, "auto", TU_JNUM)->num, "1");
	assert_string_equal(jget(k, "pre-restore", TU_JNUM)->num, "0");
	assert_string_equal(jget(k, "recovery", TU_JNUM)->num, "0");
	const tu_jv *n = jget(v, "newest", TU_JOBJ);
	assert_string_equal(jget(n, "name", TU_JSTR)->str, b.name);
	assert_string_equal(jget(n, "kind", TU_JSTR)->str, "auto");
	char iso[40];
	snap_time_iso(b.created_ns, iso);
	assert_string_equal(jget(n, "created", TU_JSTR)->str, iso);
	assert_string_equal(jget(n, "age_seconds", TU_JNUM)->num, "42");
	assert_true(strtoll(jget(v, "store_bytes", TU_JNUM)->num, NULL, 10) >
		    0);
	assert_int_equal(strtoll(jget(v, "logical_bytes", TU_JNUM)->num, NULL,
				 10), (long long)(a.image_size + b.image_size));
	assert_true(strtoll(jget(v, "file_bytes", TU_JNUM)->num, NULL, 10) > 0);
	double ratio = strtod(jget(v, "dedup_ratio", TU_JNUM)->num, NULL);
	assert_true(ratio > s.dedup_ratio - 0.001 &&
		    ratio < s.dedup_ratio + 0.001);
	/* Times a program reads are integers next to the ISO strings. */
	char next_ns[32];
	snprintf(next_ns, sizeof(next_ns), "%lld",
		 (long long)s.next_snapshot_ns);
	assert_string_equal(jget(v, "next_snapshot_ns", TU_JNUM)->num,
			    next_ns);
	const tu_jv *c = jget(v, "last_check", TU_JOBJ);
	jget(c, "time", TU_JSTR);
	jget(c, "time_ns", TU_JNUM);
	assert_int_equal(jget(c, "ok", TU_JBOOL)->b, 1);
	assert_non_null(strstr(jget(c, "detail", TU_JSTR)->str, "ok"));
	const tu_jv *vf = jget(v, "last_verify", TU_JOBJ);
	assert_non_null(strstr(jget(vf, "detail", TU_JSTR)->str, "scrub"));
	jget(v, "last_restore", TU_JNULL);
	jget(v, "last_full_scrub", TU_JSTR);
	snap_time_iso(s.next_snapshot_ns, iso);
	assert_string_equal(jget(v, "next_snapshot", TU_JSTR)->str, iso);
	assert_string_equal(jget(v, "interval_seconds", TU_JNUM)->num, "900");
	tu_json_free(v);
}

/* Every sample line: name{labels} value; returns the value of the first
 * sample whose line starts with `prefix`, NULL when none. */
static const char *prom_value(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p = text;
	while (*p) {
		if (strncmp(p, prefix, n) == 0)
			return p + n;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return NULL;
}

static void test_status_prometheus_has_the_metrics(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 200);
	snap_info a = tu_snap_kind(st, SNAP_KIND_AUTO, "auto");
	snap_err e;
	snap_err_clear(&e);
	snap_status s;
	assert_int_equal(snap_status_get(st, a.created_ns + 90 * NS, &s, &e),
			 0);
	char *t = snap_status_prometheus(&s);
	assert_non_null(t);
	/* Well-formed: comments, or "name{...} value" lines. */
	int samples = 0;
	for (char *line = t; *line;) {
		char *end = strchr(line, '\n');
		assert_non_null(end);
		if (line[0] != '#') {
			char *brace = strchr(line, '{');
			char *rb = strstr(line, "} ");
			assert_non_null(brace);
			assert_non_null(rb);
			assert_true(brace < rb && rb < end);
			assert_int_equal(strncmp(line, "snapfs_", 7), 0);
			char *num_end;
			strtod(rb + 2, &num_end);
			assert_true(num_end == end);
			samples++;
		}
		line = end + 1;
	}
	assert_true(samples > 10);
	char want[PATH_MAX + 128];
	snprintf(want, sizeof(want), "snapfs_snapshots{db=\"%s\",kind=\"auto\"} ",
		 s.db_path);
	assert_non_null(prom_value(t, want));
	assert_int_equal(atoi(prom_value(t, want)), 1);
	snprintf(want, sizeof(want), "snapfs_snapshots{db=\"%s\",kind=\"manual\"} ",
		 s.db_path);
	assert_int_equal(atoi(prom_value(t, want)), 0);
	snprintf(want, sizeof(want), "snapfs_newest_snapshot_age_seconds{db=\"%s\"} ",
		 s.db_path);
	assert_non_null(prom_value(t, want));
	assert_true(strtod(prom_value(t, want), NULL) == 90.0);
	snprintf(want, sizeof(want),
		 "snapfs_newest_snapshot_timestamp_seconds{db=\"%s\"} ",
		 s.db_path);
	assert_true(strtoll(prom_value(t, want), NULL, 10) ==
		    a.created_ns / NS);
	assert_non_null(strstr(t, "# TYPE snapfs_snapshots gauge\n"));
	assert_non_null(strstr(t, "# HELP snapfs_store_bytes "));
	assert_non_null(strstr(t, "\nsnapfs_store_bytes{"));
	assert_non_null(strstr(t, "\nsnapfs_logical_bytes{"));
	assert_non_null(strstr(t, "\nsnapfs_dedup_ratio{"));
	/* Never checked: the HELP is there, the sample is not. */
	assert_non_null(strstr(t, "# TYPE snapfs_last_check_ok gauge\n"));
	assert_null(strstr(t, "\nsnapfs_last_check_ok{"));
	free(t);

	assert_int_equal(snap_health_check(st, 0, NULL, &e), 0);
	assert_int_equal(snap_verify_snapshot(st, a.id, 0, NULL, NULL, &e), 0);
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	t = snap_status_prometheus(&s);
	snprintf(want, sizeof(want), "snapfs_last_check_ok{db=\"%s\"} ",
		 s.db_path);
	assert_non_null(prom_value(t, want));
	assert_int_equal(atoi(prom_value(t, want)), 1);
	snprintf(want, sizeof(want), "snapfs_last_verify_ok{db=\"%s\"} ",
		 s.db_path);
	assert_int_equal(atoi(prom_value(t, want)), 1);
	assert_non_null(strstr(t, "\nsnapfs_last_check_timestamp_seconds{"));
	assert_null(strstr(t, "\nsnapfs_last_restore_ok{"));
	assert_non_null(strstr(t, "# TYPE snapfs_last_restore_ok gauge\n"));
	free(t);
}

static void test_status_prometheus_escapes_the_db_label(void **state)
{
	(void)state;
	snap_status s;
	memset(&s, 0, sizeof(s));
	snprintf(s.db_path, sizeof(s.db_path), "/x/a\"b\\c\nd.db");
	char *t = snap_status_prometheus(&s);
	assert_non_null(t);
	assert_non_null(strstr(t, "snapfs_store_bytes{db=\"/x/a\\\"b\\\\c\\nd.db\"}"
			       " 0\n"));
	/* No snapshot, no schedule: those samples are absent. */
	assert_null(strstr(t, "\nsnapfs_newest_snapshot_age_seconds{"));
	assert_null(strstr(t, "\nsnapfs_next_snapshot_timestamp_seconds{"));
	free(t);
}

/* ---- the failure hook --------------------------------------------------- */

/* The replica's part of status: from the replicate events, no network. */
static void test_status_reports_the_replica(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 200);
	snap_status s;
	snap_err e;
	snap_err_clear(&e);

	/* Never replicated: null, no replica gauges. */
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	assert_int_equal(s.have_replica, 0);
	tu_jv *v = status_json(&s);
	jget(v, "replica", TU_JNULL);
	tu_json_free(v);
	char *t = snap_status_prometheus(&s);
	assert_non_null(t);
	assert_null(strstr(t, "snapfs_replica_last_ok{"));
	free(t);

	/* a replicated, then b taken: lag b - a; then a failure. */
	snap_info a = tu_snap(st, "a");
	snap_event_add(st, SNAP_REPLICATE_EVENT, a.name, 1,
		       "s3://bk/app: 1 snapshot uploaded");
	snap_info b = tu_snap(st, "b");
	snap_event_add(st, SNAP_REPLICATE_EVENT, "", 0,
		       "s3://bk/app: the server said 503");
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	assert_int_equal(s.have_replica, 1);
	assert_string_equal(s.replica_url, "s3://bk/app");
	assert_string_equal(s.replica_newest, a.name);
	assert_int_equal(s.have_replica_lag, 1);
	assert_int_equal(s.replica_lag_ns, b.created_ns - a.created_ns);
	assert_int_equal(s.last_replicate_ok, 0);
	v = status_json(&s);
	const tu_jv *r = jget(v, "replica", TU_JOBJ);
	assert_string_equal(jget(r, "url", TU_JSTR)->str, "s3://bk/app");
	assert_string_equal(jget(r, "newest", TU_JSTR)->str, a.name);
	jget(r, "lag_seconds", TU_JNUM);
	const tu_jv *l = jget(r, "last_replication", TU_JOBJ);
	assert_int_equal(jget(l, "ok", TU_JBOOL)->b, 0);
	assert_string_equal(jget(l, "detail", TU_JSTR)->str,
			    "s3://bk/app: the server said 503");
	/* Issue 11: status reports the replica's last error. */
	assert_string_equal(jget(r, "last_error", TU_JSTR)->str,
			    "s3://bk/app: the server said 503");
	tu_json_free(v);
	t = snap_status_prometheus(&s);
	assert_non_null(t);
	assert_non_null(strstr(t, "snapfs_replica_last_ok{db=\""));
	assert_non_null(strstr(t, "} 0\n# HELP snapfs_replica_last_timestamp"));
	assert_non_null(strstr(t, "snapfs_replica_lag_seconds{"));
	assert_null(strstr(t, "snapfs_replica_running_since_timestamp_"
			       "seconds{"));
	free(t);
	/* A mount's replication in progress (only the daemon sets it). */
	s.replica_running_ns = 1764900000LL * 1000000000LL;
	v = status_json(&s);
	r = jget(v, "replica", TU_JOBJ);
	assert_string_equal(jget(r, "running_since", TU_JSTR)->str,
			    "2025-12-05T02:00:00.000Z");
	assert_string_equal(jget(r, "running_since_ns", TU_JNUM)->num,
			    "1764900000000000000");
	tu_json_free(v);
	t = snap_status_prometheus(&s);
	assert_non_null(strstr(t, "snapfs_replica_running_since_timestamp_"
				  "seconds{db=\""));
	assert_non_null(strstr(t, "} 1764900000.000\n"));
	free(t);

	/* Up to date again: lag 0.  Another URL: its own newest (none). */
	snap_event_add(st, SNAP_REPLICATE_EVENT, b.name, 1,
		       "s3://bk/app: 1 snapshot uploaded");
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	assert_int_equal(s.replica_lag_ns, 0);
	assert_int_equal(s.last_replicate_ok, 1);
	v = status_json(&s);
	jget(jget(v, "replica", TU_JOBJ), "last_error", TU_JNULL);
	tu_json_free(v);
	snap_event_add(st, SNAP_REPLICATE_EVENT, "", 0,
		       "file:///other: no such directory");
	assert_int_equal(snap_status_get(st, snap_time_now_ns(), &s, &e), 0);
	assert_string_equal(s.replica_url, "file:///other");
	assert_string_equal(s.replica_newest, "");
	assert_int_equal(s.have_replica_lag, 0);
	v = status_json(&s);
	r = jget(v, "replica", TU_JOBJ);
	jget(r, "newest", TU_JNULL);
	jget(r, "lag_seconds", TU_JNULL);
	jget(r, "running_since", TU_JNULL);
	jget(r, "running_since_ns", TU_JNULL);
	jget(r, "last_error", TU_JSTR);
	tu_json_free(v);

	/* A daemon's replicate=s3://bk/app: that URL's own events, though
	 * the newest event is another replica's. */
	assert_int_equal(snap_status_replica(st, &s, "s3://bk/app", &e), 0);
	assert_int_equal(s.have_replica, 1);
	assert_string_equal(s.replica_url, "s3://bk/app");
	assert_string_equal(s.replica_newest, b.name);
	assert_int_equal(s.have_replica_lag, 1);
	assert_int_equal(s.last_replicate_ok, 1);
	/* One never replicated to: named, the rest unknown, no gauges. */
	assert_int_equal(snap_status_replica(st, &s, "file:///new", &e), 0);
	assert_int_equal(s.have_replica, 1);
	assert_string_equal(s.replica_url, "file:///new");
	assert_string_equal(s.replica_newest, "");
	assert_int_equal(s.have_replica_lag, 0);
	assert_int_equal(s.last_replicate_ns, 0);
	v = status_json(&s);
	r = jget(v, "replica", TU_JOBJ);
	jget(r, "last_replication", TU_JNULL);
	jget(r, "last_error", TU_JNULL);
	tu_json_free(v);
	t = snap_status_prometheus(&s);
	assert_non_null(t);
	assert_null(strstr(t, "snapfs_replica_last_ok{"));
	assert_null(strstr(t, "snapfs_replica_last_timestamp_seconds{"));
	free(t);
}

static void test_failure_hook_fires_for_failures_only(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 600);
	hook_log h = { .all_failed = 1 };
	snap_store_set_failure_hook(st, hook_cb, &h);
	snap_err e;
	snap_err_clear(&e);

	/* Successes: none reach the hook. */
	snap_info a = tu_snap(st, "a");
	assert_int_equal(snap_health_check(st, 0, NULL, &e), 0);
	assert_int_equal(snap_verify_snapshot(st, a.id, 1, NULL, NULL, &e), 0);
	assert_int_equal(h.n, 0);

	/* A failed snapshot does. */
	char moved[PATH_MAX];
	assert_int_equal(rename(env->db, tu_path(env, moved, "moved.db")), 0);
	assert_int_equal(snap_snapshot_take(st, NULL, NULL, &e), -ENOENT);
	assert_int_equal(h.n, 1);
	assert_string_equal(h.kinds[0], "snapshot");
	assert_int_equal(rename(moved, env->db), 0);

	/* A failed check does. */
	corrupt_live_index(env->db);
	assert_int_equal(snap_health_check(st, 0, NULL, &e), -EBADMSG);
	assert_true(hook_saw(&h, "check"));
	assert_true(h.all_failed);

	/* A failed replication does (the daemon's replicate=). */
	snap_event_add(st, SNAP_REPLICATE_EVENT, "", 0, "file:///r: refused");
	assert_true(hook_saw(&h, "replicate"));

	/* Removed: silence. */
	snap_store_set_failure_hook(st, NULL, NULL);
	int before = h.n;
	assert_int_equal(snap_health_check(st, 0, NULL, &e), -EBADMSG);
	assert_int_equal(h.n, before);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_check_of_a_healthy_database_records_ok),
		tu_test(test_status_reports_the_replica),
		tu_test(test_check_of_a_healthy_wal_database),
		tu_test(test_check_finds_corruption_and_keeps_a_recovery_snapshot),
		tu_test(test_repeated_checks_keep_one_recovery_snapshot_per_state),
		tu_test(test_auto_recover_restores_the_newest_intact_snapshot),
		tu_test(test_auto_recover_in_wal_mode),
		tu_test(test_auto_recover_without_an_intact_snapshot_fails),
		tu_test(test_check_of_a_file_that_is_no_longer_a_database),
		tu_test(test_check_of_an_emptied_database_is_not_healthy),
		tu_test(test_check_of_a_missing_database_is_enoent),
		tu_test(test_scrub_walks_the_store_in_slices_and_wraps),
		tu_test(test_scrub_ending_exactly_at_the_newest_completes_the_pass),
		tu_test(test_scrub_of_an_empty_store_completes_a_pass),
		tu_test(test_scrub_finds_a_damaged_snapshot),
		tu_test(test_status_of_an_empty_store),
		tu_test(test_status_counts_ages_sizes_and_history),
		tu_test(test_status_json_has_the_documented_fields),
		tu_test(test_status_prometheus_has_the_metrics),
		tu_test(test_status_prometheus_escapes_the_db_label),
		tu_test(test_failure_hook_fires_for_failures_only),
	};
	return cmocka_run_group_tests_name("health", tests, NULL, NULL);
}
