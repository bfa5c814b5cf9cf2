/*
 * tests/unit/test_restore.c — engine/restore.h: verified restore into the
 * live database in rollback and WAL mode, with readers open, across page
 * sizes, into a missing or non-database live file, the refusals (corrupt
 * snapshot, restore already running, bad files) and snap_restore_file.
 *
 * Readiness is never a sleep: the rollback-mode reader test releases its
 * read transaction when a probe connection proves the restore is waiting
 * (a new reader gets SQLITE_BUSY only while a writer holds PENDING).
 */
#include "testutil.h"
#include "store_int.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* v1: rows 1..300.  Snapshot A of it.  v2: rows changed, added, deleted. */
typedef struct fixture {
	snap_info a;
	char v1[65], v2[65];
} fixture;

static void change_to_v2(sqlite3 *db)
{
	tu_exec(db, "DELETE FROM t WHERE id BETWEEN 50 AND 149");
	tu_exec(db, "UPDATE t SET v = 'v2-' || id WHERE id > 250");
	tu_db_insert(db, 301, 700);
}

static void make_fixture(tu_env *env, const char *mode, int page_size,
			 fixture *f)
{
	tu_db_create(env->db, mode, page_size, 300);
	tu_db_digest(env->db, f->v1);
	f->a = tu_snap(tu_store(env), "v1");
	sqlite3 *db = tu_open(env->db);
	change_to_v2(db);
	sqlite3_close(db);
	tu_db_digest(env->db, f->v2);
	assert_string_not_equal(f->v1, f->v2);
}

static int restore(snap_store *st, int64_t id, snap_restore_result *res,
		   snap_err *e)
{
	memset(res, 0x55, sizeof(*res));
	snap_err_clear(e);
	return snap_restore(st, id, res, e);
}

/* The live file equals snapshot id page for page, but page-1 counters. */
static void expect_live_pages_equal(tu_env *env, int64_t id)
{
	size_t il, ll;
	uint8_t *img = tu_image_bytes(env->st, id, &il);
	uint8_t *live = tu_read_file(env->db, &ll);
	assert_int_equal(ll, il);
	for (size_t i = 0; i < il; i++)
		if (img[i] != live[i] && !tu_header_counter_byte(i) &&
		    !(i == 18 || i == 19))
			fail_msg("live byte %zu differs from the image", i);
	free(img);
	free(live);
}

/* ------------------------------------------------------------------ */

static void test_restore_brings_back_an_older_snapshot(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	snap_restore_result res;
	snap_err e;
	int rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	char now[65], safety[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	assert_true(tu_db_integrity_ok(env->db));
	assert_int_equal(res.have_safety, 1);
	assert_int_equal(res.safety.kind, SNAP_KIND_PRE_RESTORE);
	assert_int_equal(res.rolled_back, 0);
	assert_int_equal(res.verified_pages, 1);
	tu_image_digest(env->st, res.safety.id, safety);
	assert_string_equal(safety, f.v2);
	assert_int_equal(tu_count(env->st), 2);
	char *jm = tu_db_journal_mode(env->db);
	assert_string_equal(jm, "delete");
	free(jm);
	expect_live_pages_equal(env, f.a.id);
	/* Restoring the safety snapshot undoes the restore. */
	rc = restore(env->st, res.safety.id, &res, &e);
	assert_int_equal(rc, 0);
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v2);
}

static void test_restore_in_wal_mode_keeps_wal_and_readers_see_it(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "wal", 4096, 300);
	char v1[65], v2[65], now[65];
	tu_db_digest(env->db, v1);
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "v1");
	/* v2 lives in the WAL of a writer that stays open. */
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "PRAGMA wal_autocheckpoint=0");
	change_to_v2(w);
	tu_db_digest_conn(w, v2);
	int64_t n2 = tu_query_int(w, "SELECT count(*) FROM t");
	/* A reader inside a read transaction. */
	sqlite3 *r = tu_open(env->db);
	tu_exec(r, "BEGIN");
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), n2);

	assert_true(tu_reader_lock_held(env->db));
	snap_restore_result res;
	snap_err e;
	int rc = restore(st, a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	/* engine/PITFALLS.md 2: the restore never closed the file under our
	 * locks. */
	assert_true(tu_reader_lock_held(env->db));
	/* The reader keeps its snapshot until its transaction ends ... */
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), n2);
	tu_exec(r, "COMMIT");
	/* ... then sees the restored content. */
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), 300);
	tu_db_digest_conn(r, now);
	assert_string_equal(now, v1);
	tu_db_digest_conn(w, now);
	assert_string_equal(now, v1);
	/* The safety snapshot holds the commits that were only in the WAL. */
	assert_int_equal(res.have_safety, 1);
	char safety[65];
	tu_image_digest(st, res.safety.id, safety);
	assert_string_equal(safety, v2);
	char *jm = tu_query_text(r, "PRAGMA journal_mode");
	assert_string_equal(jm, "wal");
	free(jm);
	sqlite3_close(r);
	sqlite3_close(w);
	/* Only now, with no connection of ours open, read the file. */
	size_t len;
	uint8_t *b = tu_read_file(env->db, &len);
	assert_int_equal(b[18], 2);
	assert_int_equal(b[19], 2);
	free(b);
	assert_true(tu_db_integrity_ok(env->db));
}

typedef struct reader_ctx {
	const char *path;
	sqlite3 *r;               /* holds a read transaction */
	atomic_int restore_done;  /* set when snap_restore returned */
	int saw_waiting;          /* the restore was seen waiting for r */
} reader_ctx;

/*
 * Hold r's read transaction until the restore is waiting for it: a probe
 * connection without a busy handler gets SQLITE_BUSY on a new read only
 * while another connection holds PENDING, i.e. is waiting for readers.
 */
static void *release_when_restore_waits(void *arg)
{
	reader_ctx *c = arg;
	sqlite3 *probe = NULL;
	sqlite3_open_v2(c->path, &probe, SQLITE_OPEN_READONLY, NULL);
	sqlite3_busy_timeout(probe, 0);
	while (!atomic_load(&c->restore_done)) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(probe, "SELECT count(*) FROM t", -1,
					    &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if ((rc & 0xff) == SQLITE_BUSY) {
			c->saw_waiting = 1;
			break;
		}
		sched_yield();
	}
	sqlite3_close(probe);
	sqlite3_exec(c->r, "COMMIT", NULL, NULL, NULL);
	return NULL;
}

static void test_restore_in_rollback_mode_waits_for_a_reader(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	reader_ctx c = { .path = env->db };
	atomic_init(&c.restore_done, 0);
	c.r = tu_open(env->db);
	tu_exec(c.r, "BEGIN");
	int64_t n2 = tu_query_int(c.r, "SELECT count(*) FROM t");
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, release_when_restore_waits,
					&c), 0);
	snap_restore_result res;
	snap_err e;
	int rc = restore(env->st, f.a.id, &res, &e);
	atomic_store(&c.restore_done, 1);
	pthread_join(th, NULL);
	if (rc != 0)
		fail_msg("restore with a reader: %d %s", rc, e.msg);
	assert_true(c.saw_waiting);
	assert_int_not_equal(tu_query_int(c.r, "SELECT count(*) FROM t"), n2);
	char now[65];
	tu_db_digest_conn(c.r, now);
	assert_string_equal(now, f.v1);
	sqlite3_close(c.r);
	assert_true(tu_db_integrity_ok(env->db));
}

static void test_restore_reloads_an_idle_connection_schema(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 100);
	snap_info a = tu_snap(st, "v1");
	sqlite3 *r = tu_open(env->db);
	tu_exec(r, "CREATE TABLE extra(x); INSERT INTO extra VALUES (1)");
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM extra"), 1);
	snap_restore_result res;
	snap_err e;
	int rc = restore(st, a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	/* The open connection sees the restored schema: no table extra. */
	sqlite3_stmt *s = NULL;
	rc = sqlite3_prepare_v2(r, "SELECT count(*) FROM extra", -1, &s, NULL);
	if (rc == SQLITE_OK)   /* prepared on the cached schema; step checks */
		rc = sqlite3_step(s);
	sqlite3_finalize(s);
	assert_int_equal(rc, SQLITE_ERROR);
	assert_non_null(strstr(sqlite3_errmsg(r), "no such table"));
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), 100);
	sqlite3_close(r);
}

static void test_restore_of_other_page_size_into_rollback_db(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 1024, &f);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "PRAGMA page_size=4096");
	tu_exec(db, "VACUUM");
	sqlite3_close(db);
	assert_int_equal(tu_db_page_size(env->db), 4096);
	snap_restore_result res;
	snap_err e;
	int rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	assert_int_equal(tu_db_page_size(env->db), 1024);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	assert_true(tu_db_integrity_ok(env->db));
	char *jm = tu_db_journal_mode(env->db);
	assert_string_equal(jm, "delete");
	free(jm);
}

/* A WAL-mode live database at 4096-byte pages holding v2; A has 1024. */
static void wal_other_page_size(tu_env *env, fixture *f)
{
	make_fixture(env, "wal", 1024, f);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "PRAGMA journal_mode=DELETE");
	tu_exec(db, "PRAGMA page_size=4096");
	tu_exec(db, "VACUUM");
	tu_exec(db, "PRAGMA journal_mode=WAL");
	sqlite3_close(db);
	assert_int_equal(tu_db_page_size(env->db), 4096);
	char *jm = tu_db_journal_mode(env->db);
	assert_string_equal(jm, "wal");
	free(jm);
}

static void test_restore_of_other_page_size_into_idle_wal_db(void **state)
{
	tu_env *env = *state;
	fixture f;
	wal_other_page_size(env, &f);
	snap_restore_result res;
	snap_err e;
	int rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore into idle WAL db: %d %s", rc, e.msg);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	assert_int_equal(tu_db_page_size(env->db), 1024);
	char *jm = tu_db_journal_mode(env->db);
	assert_string_equal(jm, "wal");
	free(jm);
	assert_true(tu_db_integrity_ok(env->db));
}

static void test_restore_of_other_page_size_into_busy_wal_db(void **state)
{
	tu_env *env = *state;
	fixture f;
	wal_other_page_size(env, &f);
	/* Another connection has the database open (idle, after a read). */
	sqlite3 *other = tu_open(env->db);
	assert_true(tu_query_int(other, "SELECT count(*) FROM t") > 0);
	snap_restore_result res;
	snap_err e;
	int rc = restore(env->st, f.a.id, &res, &e);
	char now[65];
	tu_db_digest_conn(other, now);
	char *jm = tu_query_text(other, "PRAGMA journal_mode");
	int64_t ps = tu_query_int(other, "PRAGMA page_size");
	if (rc == 0) {
		/* It worked: the content is v1 and the mode is still WAL. */
		assert_string_equal(now, f.v1);
		assert_string_equal(jm, "wal");
	} else {
		/* Or a clear refusal, the live database unchanged. */
		print_message("# refused: %d %s\n", rc, e.msg);
		assert_true(e.msg[0] != '\0');
		assert_string_equal(now, f.v2);
		assert_string_equal(jm, "wal");
		assert_int_equal(ps, 4096);
		assert_int_equal(res.rolled_back == 1 || res.have_safety == 0, 1);
	}
	free(jm);
	sqlite3_close(other);
	assert_true(tu_db_integrity_ok(env->db));
}

static void test_restore_into_a_missing_live_file_creates_it(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	assert_int_equal(unlink(env->db), 0);
	snap_restore_result res;
	snap_err e;
	int rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore into missing file: %d %s", rc, e.msg);
	assert_true(tu_exists(env->db));
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	assert_true(tu_db_integrity_ok(env->db));
	assert_int_equal(res.have_safety, 0);
}

static void test_restore_into_a_missing_file_ignores_a_stale_wal(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "wal", 4096, 300);
	char v1[65], now[65];
	tu_db_digest(env->db, v1);
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "v1");
	/* Keep a -wal full of committed frames, then lose the database. */
	char wal[PATH_MAX + 8];
	snprintf(wal, sizeof(wal), "%s-wal", env->db);
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "PRAGMA wal_autocheckpoint=0");
	change_to_v2(w);
	size_t wl;
	uint8_t *wb = tu_read_file(wal, &wl);
	assert_true(wl > 32);
	sqlite3_close(w);
	assert_int_equal(unlink(env->db), 0);
	tu_write_file(wal, wb, wl);
	uint8_t wsha[32];
	tu_sha256(wb, wl, wsha);
	free(wb);

	snap_restore_result res;
	snap_err e;
	int rc = restore(st, a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	tu_db_digest(env->db, now);
	assert_string_equal(now, v1);
	assert_true(tu_db_integrity_ok(env->db));
	/* The stale -wal was moved aside, not applied and not lost. */
	char *kept = tu_find_file_with_sha(env->dir, wsha);
	assert_non_null(kept);
	assert_string_not_equal(kept, wal);
	free(kept);
}

/* Leave a stale -wal with committed frames where the live database was,
 * and no database; returns the -wal's SHA-256. */
static void leave_stale_wal(tu_env *env, int from, uint8_t sha[32])
{
	char wal[PATH_MAX + 8];
	snprintf(wal, sizeof(wal), "%s-wal", env->db);
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "PRAGMA journal_mode=WAL");
	tu_exec(w, "PRAGMA wal_autocheckpoint=0");
	tu_db_insert(w, from, from + 300);
	size_t wl;
	uint8_t *wb = tu_read_file(wal, &wl);
	assert_true(wl > 32);
	sqlite3_close(w);
	assert_int_equal(unlink(env->db), 0);
	tu_write_file(wal, wb, wl);
	tu_sha256(wb, wl, sha);
	free(wb);
}

static void test_restore_twice_over_stale_wals_keeps_both(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "wal", 4096, 300);
	char v1[65], now[65];
	tu_db_digest(env->db, v1);
	snap_info a = tu_snap(tu_store(env), "v1");
	uint8_t sha[2][32];
	for (int i = 0; i < 2; i++) {
		leave_stale_wal(env, 1000 + 1000 * i, sha[i]);
		snap_restore_result res;
		snap_err e;
		int rc = restore(env->st, a.id, &res, &e);
		if (rc != 0)
			fail_msg("restore %d: %d %s", i + 1, rc, e.msg);
		tu_db_digest(env->db, now);
		assert_string_equal(now, v1);
	}
	for (int i = 0; i < 2; i++) {
		char *kept = tu_find_file_with_sha(env->dir, sha[i]);
		if (kept == NULL)
			fail_msg("stale -wal %d was not kept", i + 1);
		free(kept);
	}
}

static void test_restore_over_a_non_database_keeps_its_bytes(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	char junk[10000];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 7 + 3);
	tu_write_file(env->db, junk, sizeof(junk));
	uint8_t jsha[32];
	tu_sha256(junk, sizeof(junk), jsha);
	snap_restore_result res;
	snap_err e;
	int rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore over garbage: %d %s", rc, e.msg);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	/* Nothing silently lost: the old bytes are somewhere under the
	 * test directory (beside the database or in the store). */
	char *kept = tu_find_file_with_sha(env->dir, jsha);
	if (kept == NULL)
		fail_msg("the replaced non-database file was not kept");
	assert_string_not_equal(kept, env->db);
	free(kept);
}

static void test_restore_over_a_non_database_twice_keeps_both(void **state)
{
	/* Two restores over junk in quick succession (same second): each
	 * must succeed and each old file must be kept. */
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	uint8_t sha[2][32];
	for (int i = 0; i < 2; i++) {
		char junk[6000];
		memset(junk, 'j' + i, sizeof(junk));
		tu_write_file(env->db, junk, sizeof(junk));
		tu_sha256(junk, sizeof(junk), sha[i]);
		snap_restore_result res;
		snap_err e;
		int rc = restore(env->st, f.a.id, &res, &e);
		if (rc != 0)
			fail_msg("restore %d over junk: %d %s", i + 1, rc, e.msg);
		char now[65];
		tu_db_digest(env->db, now);
		assert_string_equal(now, f.v1);
	}
	for (int i = 0; i < 2; i++) {
		char *kept = tu_find_file_with_sha(env->dir, sha[i]);
		if (kept == NULL)
			fail_msg("junk file %d was not kept", i + 1);
		free(kept);
	}
}

/* The verification runs beside the copy, which commits only after it
 * passed: a damaged source leaves the live database as it was, in either
 * journal mode. */
static void refuses_corrupt_snapshot(tu_env *env, const char *mode)
{
	fixture f;
	make_fixture(env, mode, 4096, &f);
	uint32_t pg = tu_unique_page(env->st, -1, f.a.id);
	tu_corrupt_page(env->st, tu_page_id(env->st, f.a.id, pg));
	uint8_t before[32], after[32];
	tu_sha256_file(env->db, before);
	int64_t n = tu_count(env->st);
	snap_restore_result res;
	snap_err e;
	int rc = restore(env->st, f.a.id, &res, &e);
	assert_int_equal(rc, -EBADMSG);
	assert_non_null(strstr(e.msg, f.a.name));
	assert_int_equal(res.have_safety, 0);
	tu_sha256_file(env->db, after);
	assert_memory_equal(before, after, 32);
	assert_int_equal(tu_count(env->st), n);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v2);
}

static void test_restore_refuses_corrupt_snapshot(void **state)
{
	refuses_corrupt_snapshot(*state, "delete");
}

static void test_restore_refuses_corrupt_snapshot_wal(void **state)
{
	refuses_corrupt_snapshot(*state, "wal");
}

static void test_restore_is_ebusy_while_another_restore_runs(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	char lock[PATH_MAX + 16];
	snprintf(lock, sizeof(lock), "%s/restore.lock", snap_store_dir(env->st));
	int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	uint8_t before[32], after[32];
	tu_sha256_file(env->db, before);
	snap_restore_result res;
	snap_err e;
	assert_int_equal(restore(env->st, f.a.id, &res, &e), -EBUSY);
	assert_true(e.msg[0] != '\0');
	tu_sha256_file(env->db, after);
	assert_memory_equal(before, after, 32);
	assert_int_equal(res.have_safety, 0);
	/* Once the other restore is over, it works. */
	flock(fd, LOCK_UN);
	close(fd);
	int rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore after the lock was released: %d %s", rc, e.msg);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
}

static void test_restore_of_unknown_snapshot_is_enoent(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	uint8_t before[32], after[32];
	tu_sha256_file(env->db, before);
	snap_restore_result res;
	snap_err e;
	assert_int_equal(restore(env->st, f.a.id + 77, &res, &e), -ENOENT);
	tu_sha256_file(env->db, after);
	assert_memory_equal(before, after, 32);
	assert_int_equal(tu_count(env->st), 1);
}

static void test_restore_file_applies_a_good_file(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	char other[PATH_MAX], want[65], now[65];
	tu_db_create(tu_path(env, other, "other.db"), "delete", 512, 123);
	sqlite3 *db = tu_open(other);
	tu_exec(db, "CREATE TABLE only_in_other(x); INSERT INTO only_in_other "
		    "VALUES ('here')");
	sqlite3_close(db);
	tu_db_digest(other, want);
	snap_restore_result res;
	snap_err e;
	snap_err_clear(&e);
	memset(&res, 0, sizeof(res));
	int rc = snap_restore_file(env->st, other, NULL, &res, &e);
	if (rc != 0)
		fail_msg("restore_file: %d %s", rc, e.msg);
	tu_db_digest(env->db, now);
	assert_string_equal(now, want);
	assert_true(tu_db_integrity_ok(env->db));
	assert_int_equal(res.have_safety, 1);
	char safety[65];
	tu_image_digest(env->st, res.safety.id, safety);
	assert_string_equal(safety, f.v2);
	/* The file became a snapshot of kind import, labelled after it. */
	snap_info *list = NULL;
	size_t n = 0;
	assert_int_equal(snap_store_list(env->st, &list, &n, &e), 0);
	int found = 0;
	for (size_t i = 0; i < n; i++)
		if (list[i].kind == SNAP_KIND_IMPORT &&
		    strcmp(list[i].label, "other") == 0)
			found++;
	assert_int_equal(found, 1);
	free(list);

	/* With a label given (to bytes no snapshot has: a copy of one
	 * restores that one, label or not). */
	db = tu_open(other);
	tu_exec(db, "INSERT INTO only_in_other VALUES ('again')");
	sqlite3_close(db);
	rc = snap_restore_file(env->st, other, "given label", &res, &e);
	assert_int_equal(rc, 0);
	assert_int_equal(snap_store_list(env->st, &list, &n, &e), 0);
	found = 0;
	for (size_t i = 0; i < n; i++)
		if (list[i].kind == SNAP_KIND_IMPORT &&
		    strcmp(list[i].label, "given-label") == 0)
			found++;
	assert_int_equal(found, 1);
	free(list);
}

/* A precondition that refuses, and what it saw. */
static int refusing_calls;
static int refuse(void *ctx, const snap_live_token *tok, snap_err *err)
{
	(void)ctx;
	(void)tok;
	refusing_calls++;
	return snap_err_set(err, -ESTALE, "refused by the test");
}

/* A precondition's refusal changes nothing: no import or safety snapshot
 * stays in the catalog, no event is recorded (the caller reports it). */
static void test_restore_file_refused_by_precondition_leaves_nothing(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	char other[PATH_MAX], now[65];
	tu_db_create(tu_path(env, other, "other.db"), "delete", 4096, 10);
	snap_restore_opts o = { .precond = refuse };
	snap_restore_result res;
	snap_event *ev = NULL;
	size_t nev = 0, nev0 = 0;
	snap_err e;
	int64_t n0 = tu_count(env->st);

	snap_err_clear(&e);
	assert_int_equal(snap_event_list(env->st, 0, 0, &ev, &nev0, &e), 0);
	free(ev);
	refusing_calls = 0;
	assert_int_equal(snap_restore_file_ex(env->st, other, NULL, &o, &res,
					      &e), -ESTALE);
	assert_int_equal(refusing_calls, 1);
	assert_non_null(strstr(e.msg, "refused by the test"));
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v2);
	assert_int_equal(tu_count(env->st), n0);
	assert_int_equal(snap_event_list(env->st, 0, 0, &ev, &nev, &e), 0);
	for (size_t i = nev0; i < nev; i++)
		if (strcmp(ev[i].kind, "restore") == 0)
			fail_msg("a restore event was recorded: %s",
				 ev[i].detail);
	free(ev);
}

static void test_restore_file_of_a_snapshot_copy_adds_no_import(void **state)
{
	/* cp snapshots/X current.db: the file equals snapshot X, so X is
	 * restored and the catalog gains only the safety snapshot. */
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "wal", 4096, &f);
	char copy[PATH_MAX];
	snap_err e;
	tu_path(env, copy, "copy-of-v1.db");
	assert_int_equal(snap_image_export(env->st, f.a.id, copy, &e), 0);
	int64_t before = tu_count(env->st);
	snap_restore_result res;
	int rc = snap_restore_file(env->st, copy, NULL, &res, &e);
	if (rc != 0)
		fail_msg("restore of a snapshot's copy: %d %s", rc, e.msg);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	assert_int_equal(res.have_safety, 1);
	assert_int_equal(tu_count(env->st), before + 1);
	snap_info *list = NULL;
	size_t n = 0;
	assert_int_equal(snap_store_list(env->st, &list, &n, &e), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_not_equal(list[i].kind, SNAP_KIND_IMPORT);
	free(list);
}

/* The mount names its uploads ("upload"): a labelled restore of a copy of
 * a snapshot restores that snapshot all the same, and neither imports the
 * file nor records an import or a deletion; a -wal beside the copy, which
 * SQLite would read with it, makes it a file like any other. */
static void test_restore_file_of_a_labelled_snapshot_copy_imports_nothing(
	void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	char copy[PATH_MAX], wal[PATH_MAX], now[65];
	snap_restore_result res;
	snap_event *ev = NULL;
	size_t nev0 = 0, nev = 0;
	snap_err e;

	snap_err_clear(&e);
	tu_path(env, copy, "upload-7");
	assert_int_equal(snap_image_export(env->st, f.a.id, copy, &e), 0);
	assert_int_equal(snap_event_list(env->st, 0, 0, &ev, &nev0, &e), 0);
	free(ev);
	int64_t before = tu_count(env->st);
	int rc = snap_restore_file(env->st, copy, "upload", &res, &e);
	if (rc != 0)
		fail_msg("restore of a snapshot's copy: %d %s", rc, e.msg);
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	assert_int_equal(res.have_safety, 1);
	assert_int_equal(res.safety.kind, SNAP_KIND_PRE_RESTORE);
	assert_int_equal(tu_count(env->st), before + 1);
	assert_int_equal(snap_event_list(env->st, 0, 0, &ev, &nev, &e), 0);
	for (size_t i = nev0; i < nev; i++) {
		if (strcmp(ev[i].kind, "import") == 0 ||
		    strcmp(ev[i].kind, "delete") == 0)
			fail_msg("event %s %s: %s", ev[i].kind, ev[i].snapshot,
				 ev[i].detail);
		if (strcmp(ev[i].kind, "restore") == 0)
			assert_string_equal(ev[i].snapshot, f.a.name);
	}
	free(ev);

	/* With a -wal beside it, the copy is imported as a file is. */
	snprintf(wal, sizeof(wal), "%s-wal", copy);
	tu_write_file(wal, "", 0);
	before = tu_count(env->st);
	rc = snap_restore_file(env->st, copy, "upload", &res, &e);
	if (rc != 0)
		fail_msg("restore of a copy with a -wal: %d %s", rc, e.msg);
	assert_int_equal(tu_count(env->st), before + 2);
}

/* restore_file(path) fails with rc; the live db and the store unchanged. */
/* What the failure hook was told last. */
static char hooked_kind[32];

static void record_failure(void *ctx, const struct snap_event *ev)
{
	(void)ctx;
	snprintf(hooked_kind, sizeof(hooked_kind), "%s", ev->kind);
}

static void expect_restore_file_refused(tu_env *env, const char *path, int rc)
{
	uint8_t before[32], after[32];
	tu_sha256_file(env->db, before);
	int64_t n = tu_count(env->st);
	snap_restore_result res;
	snap_event *ev = NULL;
	size_t nev = 0;
	snap_err e;
	snap_err_clear(&e);
	memset(&res, 0, sizeof(res));
	hooked_kind[0] = '\0';
	snap_store_set_failure_hook(env->st, record_failure, NULL);
	int r = snap_restore_file(env->st, path, NULL, &res, &e);
	snap_store_set_failure_hook(env->st, NULL, NULL);
	if (r != rc)
		fail_msg("restore_file(%s) = %d (%s), want %d", path, r, e.msg, rc);
	assert_true(e.msg[0] != '\0');
	assert_int_equal(res.have_safety, 0);
	/* A refused file is a failed restore, for the history and for
	 * on_failure (not a failed "import"). */
	assert_int_equal(snap_event_list(env->st, 0, 1, &ev, &nev, NULL), 0);
	assert_int_equal(nev, 1);
	assert_string_equal(ev[0].kind, "restore");
	assert_int_equal(ev[0].ok, 0);
	free(ev);
	assert_string_equal(hooked_kind, "restore");
	tu_sha256_file(env->db, after);
	assert_memory_equal(before, after, 32);
	assert_int_equal(tu_count(env->st), n);
}

static void test_restore_file_refuses_bad_files(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	char p[PATH_MAX], good[PATH_MAX];
	tu_db_create(tu_path(env, good, "good.db"), "delete", 1024, 400);
	size_t len;
	uint8_t *b = tu_read_file(good, &len);

	char text[3000];
	memset(text, 'T', sizeof(text));
	tu_write_file(tu_path(env, p, "text.db"), text, sizeof(text));
	expect_restore_file_refused(env, p, -EINVAL);
	tu_write_file(tu_path(env, p, "empty.db"), "", 0);
	expect_restore_file_refused(env, p, -EINVAL);
	tu_write_file(tu_path(env, p, "half.db"), b, len / 2);
	expect_restore_file_refused(env, p, -EINVAL);
	tu_write_file(tu_path(env, p, "header.db"), b, 100);
	expect_restore_file_refused(env, p, -EINVAL);
	memset(b + len - 1024, 0x5a, 1024);
	tu_write_file(tu_path(env, p, "corrupt.db"), b, len);
	expect_restore_file_refused(env, p, -EINVAL);
	expect_restore_file_refused(env, tu_path(env, p, "missing.db"), -ENOENT);
	free(b);
	/* A pipe is refused, not waited on (the open blocked until a
	 * writer came; the watchdog ends a test that hangs). */
	assert_int_equal(mkfifo(tu_path(env, p, "pipe.db"), 0600), 0);
	expect_restore_file_refused(env, p, -EINVAL);
	expect_restore_file_refused(env, "/dev/null", -EINVAL);
	/* The live database itself, by its path or a link: a byte copy of
	 * it can be torn, and restoring it only undoes commits made since
	 * it was read. */
	expect_restore_file_refused(env, env->db, -EINVAL);
	assert_int_equal(symlink(env->db, tu_path(env, p, "link.db")), 0);
	expect_restore_file_refused(env, p, -EINVAL);
	{
		snap_info si;
		snap_err e;
		int64_t n = tu_count(env->st);

		snap_err_clear(&e);
		assert_int_equal(snap_snapshot_import(env->st, env->db, NULL,
						      &si, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "the live database"));
		assert_int_equal(tu_count(env->st), n);
	}
}

static void test_restore_file_names_its_source_as_asked(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	char p[PATH_MAX];
	char text[3000];
	snap_restore_opts o = { .source_name = "the file written to current.db" };
	snap_restore_result res;
	snap_event *ev = NULL;
	size_t nev = 0;
	snap_err e;

	memset(text, 'T', sizeof(text));
	tu_write_file(tu_path(env, p, "private-upload-7"), text, sizeof(text));
	snap_err_clear(&e);
	memset(&res, 0, sizeof(res));
	assert_int_equal(snap_restore_file_ex(env->st, p, "upload", &o, &res,
					      &e), -EINVAL);
	/* Neither the message nor the recorded event shows the private
	 * path; both name the file as the caller knows it. */
	assert_null(strstr(e.msg, "private-upload-7"));
	assert_non_null(strstr(e.msg, o.source_name));
	assert_int_equal(snap_event_list(env->st, 0, 1, &ev, &nev, NULL), 0);
	assert_int_equal(nev, 1);
	assert_null(strstr(ev[0].detail, "private-upload-7"));
	assert_non_null(strstr(ev[0].detail, o.source_name));
	free(ev);
}

/*
 * A restore across page sizes killed while the live database was out of
 * WAL mode leaves the marker "live-was-wal" in the store.  Opening the
 * store does not touch the live database (the store sits below restore);
 * snap_restore_recover(), which snapctl and the daemon call right after
 * opening, switches it back to WAL and records a "recover" event; on a
 * store opened read-only it does nothing.
 */
static void test_recover_after_open_finishes_an_interrupted_restore(
	void **state)
{
	tu_env *env = *state;
	char marker[PATH_MAX];
	snap_store *st, *ro;
	snap_event *ev = NULL;
	size_t n = 0;
	snap_err e;
	char *jm;

	tu_db_create(env->db, "wal", 4096, 50);
	snap_store_close(tu_store(env));
	env->st = NULL;
	/* What leave_wal() leaves behind when the restore is killed. */
	char *dir = snap_store_default_dir(env->db);
	assert_non_null(dir);
	snprintf(marker, sizeof(marker), "%s/live-was-wal", dir);
	free(dir);
	tu_write_file(marker, "", 0);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "PRAGMA journal_mode=DELETE");
	sqlite3_close(db);

	assert_int_equal(snap_store_open(env->db, NULL, 0, &st, &e), 0);
	env->st = st;
	jm = tu_db_journal_mode(env->db);
	assert_string_equal(jm, "delete");
	free(jm);
	assert_true(tu_exists(marker));

	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_READONLY,
					 &ro, &e), 0);
	assert_int_equal(snap_restore_recover(ro), 0);
	snap_store_close(ro);
	assert_true(tu_exists(marker));

	assert_int_equal(snap_restore_recover(st), 0);
	jm = tu_db_journal_mode(env->db);
	assert_string_equal(jm, "wal");
	free(jm);
	assert_false(tu_exists(marker));
	assert_int_equal(snap_event_list(st, 0, 1, &ev, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].kind, "recover");
	assert_int_equal(ev[0].ok, 1);
	free(ev);
}

/* ---- the skeleton's rollback, shared by whole-image and table restores -- */

/* The step of the restore skeleton the fault point fails once ("restore:
 * copy", "restore: check"; a rollback passes it again), and how often it
 * was reached. */
static const char *fail_step;
static int step_reached;

static int fail_at_step(snap_sys_kind kind, const char *what)
{
	(void)kind;
	if (!fail_step || strcmp(what, fail_step) != 0)
		return 0;
	return step_reached++ == 0 ? EIO : 0;
}

/* Restore snapshot id whole (table NULL) or one table with the skeleton
 * failing at `step`: the result, safety snapshot and rollback flag. */
static int restore_failing_at(snap_store *st, int64_t id, const char *table,
			      const char *step, int *have_safety,
			      int *rolled_back, snap_err *e)
{
	snap_restore_result res;
	snap_table_restore tr;
	int rc;

	fail_step = step;
	step_reached = 0;
	snap_sys.point = fail_at_step;
	snap_err_clear(e);
	if (table) {
		rc = snap_restore_table(st, id, table, &tr, e);
		*have_safety = tr.have_safety;
		*rolled_back = -1;   /* a table restore does not say */
	} else {
		rc = restore(st, id, &res, e);
		*have_safety = res.have_safety;
		*rolled_back = res.rolled_back;
	}
	snap_sys.point = NULL;
	fail_step = NULL;
	assert_true(step_reached >= 1);
	return rc;
}

/*
 * A whole-image restore and a table restore share the skeleton's rollback:
 * a failure before the copy committed leaves the live database as it was
 * and drops the safety snapshot; a failure after it (the check) puts the
 * safety snapshot back.  Either way the live database is as before and the
 * failure is recorded.
 */
static void test_restore_and_table_restore_share_the_rollback(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	static const char *const tables[] = { NULL, "t" };
	char now[65];
	snap_err e;
	int have_safety, rolled_back, rc;

	for (size_t i = 0; i < 2; i++) {
		const char *table = tables[i];
		int64_t nsnap = tu_count(env->st);

		/* The copy fails before it started: nothing to undo. */
		rc = restore_failing_at(env->st, f.a.id, table, "restore: copy",
					&have_safety, &rolled_back, &e);
		assert_int_equal(rc, -EIO);
		assert_int_equal(have_safety, 0);
		if (!table)
			assert_int_equal(rolled_back, 0);
		assert_non_null(strstr(e.msg, "is unchanged"));
		tu_db_digest(env->db, now);
		assert_string_equal(now, f.v2);
		assert_int_equal(tu_count(env->st), nsnap);

		/* The check after the commit fails: back to the safety
		 * snapshot, which stays. */
		rc = restore_failing_at(env->st, f.a.id, table,
					"restore: check", &have_safety,
					&rolled_back, &e);
		assert_int_equal(rc, -EIO);
		assert_int_equal(have_safety, 1);
		if (!table)
			assert_int_equal(rolled_back, 1);
		if (!strstr(e.msg, "rolled back to"))
			fail_msg("%s: %s", table ? table : "whole", e.msg);
		tu_db_digest(env->db, now);
		assert_string_equal(now, f.v2);
		assert_true(tu_db_integrity_ok(env->db));
		assert_int_equal(tu_count(env->st), nsnap + 1);
		assert_true(tu_count_events(env->st, 0, "restore", 0,
					    "rolled back") >= 1);
	}
}

/* ---- progress ---------------------------------------------------------- */

typedef struct seen_progress {
	uint64_t last, total, calls, in_copy, in_check;
	int backwards, total_moved;
} seen_progress;

static void note_progress(void *ctx, uint64_t done, uint64_t total)
{
	seen_progress *p = ctx;

	if (p->calls++ && total != p->total)
		p->total_moved = 1;
	if (done < p->last)
		p->backwards = 1;
	p->last = done;
	p->total = total;
	if (total && done * 3 > total && done * 3 < 2 * total)
		p->in_copy++;
	if (total && done * 3 >= 2 * total && done < total)
		p->in_check++;
}

/* snap_restore_ex reports its three passes over the image (verification,
 * copy, check) in order, never backwards, ending at 3 x the pages. */
static void test_restore_reports_progress_of_each_pass(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "wal", 1024, &f);
	/* Enough pages for several backup steps of 1024 pages. */
	sqlite3 *db = tu_open(env->db);
	tu_db_insert(db, 1000, 40000);
	sqlite3_close(db);
	snap_info big = tu_snap(env->st, "big");
	seen_progress p;
	snap_restore_opts o = { .progress = note_progress,
				.progress_ctx = &p };
	snap_restore_result res;
	snap_err e;

	for (int back = 0; back < 2; back++) {
		int64_t id = back ? f.a.id : big.id;
		snap_info si;

		memset(&p, 0, sizeof(p));
		snap_err_clear(&e);
		assert_int_equal(snap_store_get(env->st, id, &si, &e), 0);
		int rc = snap_restore_ex(env->st, id, &o, &res, &e);
		if (rc != 0)
			fail_msg("restore: %d %s", rc, e.msg);
		assert_int_equal(p.backwards, 0);
		assert_int_equal(p.total_moved, 0);
		assert_int_equal(p.total, 3 * (uint64_t)si.page_count);
		assert_int_equal(p.last, p.total);
		if (!back) {
			/* A big image: inside the copy (in steps), at the
			 * check (one step: its source is the live database). */
			assert_true(si.page_count > 2 * 1024);
			assert_true(p.in_copy > 0);
			assert_true(p.in_check > 0);
		}
	}
}

/* A restore loads the snapshot's catalog row and page map once, for its
 * verification, copy and check together (store_int.h's test counter),
 * in either journal mode and into a missing live file.  A later snapshot
 * is taken first: the safety snapshot's capture loads the map of the
 * last snapshot taken (its incremental fast path), which is not the
 * restore's doing. */
static void loads_once(tu_env *env, const char *mode, int missing)
{
	fixture f;
	make_fixture(env, mode, 4096, &f);
	tu_snap(env->st, "v2");
	if (missing)
		assert_int_equal(unlink(env->db), 0);
	snap_restore_result res;
	snap_err e;
	unsigned rows = 0, maps = 0;
	snap_store_count_loads(f.a.id);
	int rc = restore(env->st, f.a.id, &res, &e);
	snap_store_loads(&rows, &maps);
	snap_store_count_loads(0);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	assert_int_equal(res.verified_pages, 1);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	if (rows != 1 || maps != 1)
		fail_msg("the restore loaded the catalog row %u times and the "
			 "page map %u times (want 1 and 1)", rows, maps);
}

static void test_restore_loads_row_and_map_once(void **state)
{
	loads_once(*state, "delete", 0);
}

static void test_restore_loads_row_and_map_once_wal(void **state)
{
	loads_once(*state, "wal", 0);
}

static void test_restore_loads_row_and_map_once_into_a_new_file(
	void **state)
{
	loads_once(*state, "delete", 1);
}

/* ---- what the read-back check compares with --------------------------- */

/* What act_at_step does, once, when the restore reaches `step`: wait for
 * the source's verification to pass (its event, polled with a deadline),
 * then damage the store under the restore. */
static struct {
	const char *step;
	snap_store *st;
	int verified_before;     /* "verify" events before the restore */
	int64_t victim, donor;   /* victim's stored bytes become donor's */
	int64_t rehash;          /* this stored page's hash becomes zeros */
	int reached;
} act;

static void act_wait_verified(void)
{
	struct timespec t0, now, ms = { 0, 1000000 };

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (tu_count_events(act.st, 0, "verify", 1, "passed") <=
	       act.verified_before) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 60)
			fail_msg("the restore's verification did not pass");
		nanosleep(&ms, NULL);
	}
}

static int act_at_step(snap_sys_kind kind, const char *what)
{
	(void)kind;
	if (act.reached || !act.step || strcmp(what, act.step) != 0)
		return 0;
	act.reached = 1;
	act_wait_verified();
	if (act.victim)
		tu_swap_page_data(act.st, act.victim, act.donor);
	if (act.rehash)
		tu_store_exec(act.st, "UPDATE pages SET hash=zeroblob(32) "
			      "WHERE id=%lld", (long long)act.rehash);
	return 0;
}

/* Restore snapshot id with act armed at `step`. */
static int restore_acting_at(tu_env *env, int64_t id, const char *step,
			     snap_restore_result *res, snap_err *e)
{
	act.step = step;
	act.st = env->st;
	act.reached = 0;
	act.verified_before = tu_count_events(env->st, 0, "verify", 1,
					      "passed");
	snap_sys.point = act_at_step;
	int rc = restore(env->st, id, res, e);
	snap_sys.point = NULL;
	act.step = NULL;
	assert_int_equal(act.reached, 1);
	return rc;
}

/* Snapshot A's fixture and a snapshot of v2 (so that no page of A picked
 * below is shared with the safety snapshot a restore takes), and a stored
 * page of A that v2 has not, with another of A's pages to swap in. */
static void damage_fixture(tu_env *env, const char *mode, fixture *f)
{
	make_fixture(env, mode, 4096, f);
	snap_info v2 = tu_snap(env->st, "v2");
	uint32_t pg = tu_unique_page(env->st, v2.id, f->a.id);
	memset(&act, 0, sizeof(act));
	act.victim = tu_page_id(env->st, f->a.id, pg);
	act.donor = tu_page_id(env->st, f->a.id, 1);
	assert_true(act.victim != act.donor);
}

/*
 * A stored page of the source that changes after its verification proved
 * it and before the copy opens the source (which then reads the store in
 * one read transaction) is caught by the read-back check, which compares
 * the live database with the hashes the verification proved: the copy is
 * rolled back to the safety snapshot.
 */
static void damaged_after_verification(tu_env *env, const char *mode)
{
	fixture f;
	damage_fixture(env, mode, &f);
	snap_restore_result res;
	snap_err e;
	int rc = restore_acting_at(env, f.a.id, "restore: source", &res, &e);
	assert_int_equal(rc, -EIO);
	if (!strstr(e.msg, "differ from snapshot") ||
	    !strstr(e.msg, "rolled back"))
		fail_msg("%s", e.msg);
	assert_int_equal(res.rolled_back, 1);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v2);
	assert_true(tu_db_integrity_ok(env->db));
}

static void test_restore_catches_a_page_damaged_after_verification(
	void **state)
{
	damaged_after_verification(*state, "delete");
}

static void test_restore_catches_a_page_damaged_after_verification_wal(
	void **state)
{
	damaged_after_verification(*state, "wal");
}

/* The same into a missing live file: the new file fails its check before
 * it takes the live name, and nothing is left behind. */
static void test_restore_into_a_new_file_catches_a_page_damaged_after_verification(
	void **state)
{
	tu_env *env = *state;
	fixture f;
	damage_fixture(env, "delete", &f);
	assert_int_equal(unlink(env->db), 0);
	snap_restore_result res;
	snap_err e;
	int rc = restore_acting_at(env, f.a.id, "restore: copy", &res, &e);
	assert_int_equal(rc, -EIO);
	if (!strstr(e.msg, "differ from snapshot"))
		fail_msg("%s", e.msg);
	assert_int_equal(access(env->db, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	DIR *d = opendir(env->dir);
	struct dirent *de;
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".snapfs-restore-"))
			fail_msg("%s was left behind", de->d_name);
	closedir(d);
}

/*
 * The check compares with what the verification proved and reads no hash
 * from the store again: a stored hash that changes after the copy (here
 * zeroed, which no page matches) changes nothing, and the restore is
 * proven page for page.
 */
static void test_restore_check_uses_the_verified_hashes(void **state)
{
	tu_env *env = *state;
	fixture f;
	damage_fixture(env, "delete", &f);
	act.rehash = act.victim;
	act.victim = 0;
	snap_restore_result res;
	snap_err e;
	int rc = restore_acting_at(env, f.a.id, "restore: check", &res, &e);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	assert_int_equal(res.verified_pages, 1);
	assert_int_equal(res.rolled_back, 0);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	expect_live_pages_equal(env, f.a.id);
}

/* A restore into a database with more pages than the image (it shrinks)
 * and one with fewer (it grows) is proven page for page both ways. */
static void shrinks_and_grows(tu_env *env, const char *mode)
{
	fixture f;
	make_fixture(env, mode, 4096, &f);
	snap_info b = tu_snap(env->st, "v2");
	assert_true(f.a.page_count < b.page_count);
	snap_restore_result res;
	snap_err e;
	char now[65];

	int rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore (shrink): %d %s", rc, e.msg);
	assert_int_equal(res.verified_pages, 1);
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	expect_live_pages_equal(env, f.a.id);
	rc = restore(env->st, b.id, &res, &e);
	if (rc != 0)
		fail_msg("restore (grow): %d %s", rc, e.msg);
	assert_int_equal(res.verified_pages, 1);
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v2);
	expect_live_pages_equal(env, b.id);
}

static void test_restore_shrinks_and_grows_the_live_database(void **state)
{
	shrinks_and_grows(*state, "delete");
}

static void test_restore_shrinks_and_grows_the_live_database_wal(
	void **state)
{
	shrinks_and_grows(*state, "wal");
}

/*
 * quick_check runs once per image: a second restore of the same snapshot
 * proves its pages and its SHA-256 again but skips the quick_check its
 * image passed (the event says so), a restore of another image runs its
 * own, and a record never lets a damaged image through: the hash pass
 * comes first.
 */
static void test_restore_runs_quick_check_once_per_image(void **state)
{
	tu_env *env = *state;
	fixture f;
	make_fixture(env, "delete", 4096, &f);
	const char *skip = "not run again";
	snap_restore_result res;
	snap_err e;

	int rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	assert_int_equal(tu_count_events(env->st, 0, "verify", 1, skip), 0);
	/* Another image (the safety snapshot's): checked itself. */
	rc = restore(env->st, res.safety.id, &res, &e);
	if (rc != 0)
		fail_msg("restore of the safety snapshot: %d %s", rc, e.msg);
	assert_int_equal(tu_count_events(env->st, 0, "verify", 1, skip), 0);
	/* The first image again: proven, not quick_checked again. */
	rc = restore(env->st, f.a.id, &res, &e);
	if (rc != 0)
		fail_msg("second restore: %d %s", rc, e.msg);
	assert_int_equal(res.verified_pages, 1);
	assert_int_equal(tu_count_events(env->st, 0, "verify", 1, skip), 1);
	char now[65];
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	/* Damaged since: refused by the hash pass, nothing changed. */
	uint32_t pg = tu_unique_page(env->st, -1, f.a.id);
	tu_corrupt_page(env->st, tu_page_id(env->st, f.a.id, pg));
	rc = restore(env->st, f.a.id, &res, &e);
	assert_int_equal(rc, -EBADMSG);
	tu_db_digest(env->db, now);
	assert_string_equal(now, f.v1);
	/* A record of an image no snapshot has (its snapshots deleted) is
	 * dropped by the next record: they stay as many as the images. */
	int64_t newest = tu_query_int(env->st->db,
				      "SELECT max(id) FROM snapshots");
	tu_exec(env->st->db, "INSERT INTO meta(key, value) "
		"VALUES('checked:%064d', 1)", 0);
	rc = restore(env->st, newest, &res, &e);
	if (rc != 0)
		fail_msg("restore of the newest safety snapshot: %d %s", rc,
			 e.msg);
	assert_int_equal(tu_query_int(env->st->db, "SELECT count(*) FROM meta "
				      "WHERE key LIKE 'checked:%%' AND "
				      "substr(key, 9) NOT IN (SELECT "
				      "lower(hex(sha256)) FROM snapshots)"), 0);
	assert_true(tu_query_int(env->st->db, "SELECT count(*) FROM meta "
				 "WHERE key LIKE 'checked:%%'") >= 2);
}

/*
 * A restore reads its image once or twice in page order (the verification,
 * quick_check, the copy): SQLite's page caches over it stay small whatever
 * the image's size (image.h, SNAP_IMAGE_SCAN_CACHE_KIB; 16 MB each before,
 * over the 64 MB of snapctl on a 1 GB restore).  SQLite's own count of the
 * memory it holds, at its highest during a restore of a 24 MB image, stays
 * under 16 MB (about 11 MB, and 13 MB since the copy's source and
 * quick_check each have a read-ahead with a store connection of its own,
 * image.c); the image comes back intact.
 */
static void test_restore_keeps_sqlite_memory_small(void **state)
{
	tu_env *env = *state;
	snap_restore_result res;
	sqlite3_int64 cur = 0, hi = 0;
	char want[65], now[65];
	snap_err e;

	tu_db_create(env->db, "delete", 4096, 0);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 "
		"FROM c WHERE i < 6000) INSERT INTO t(id, v, pad) SELECT i, "
		"printf('row-%%06d', i), randomblob(3000) FROM c");
	sqlite3_close(db);
	tu_db_digest(env->db, want);
	snap_info a = tu_snap(tu_store(env), "big");
	db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET pad = randomblob(3000) WHERE id %% 100 = 0");
	sqlite3_close(db);
	sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 1);
	int rc = restore(env->st, a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore: %d %s", rc, e.msg);
	sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 0);
	tu_db_digest(env->db, now);
	assert_string_equal(now, want);
	assert_true(hi > 0);      /* SQLite counts its memory */
	if (hi > 16 * 1024 * 1024)
		fail_msg("SQLite held up to %lld bytes during the restore",
			 (long long)hi);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_restore_brings_back_an_older_snapshot),
		tu_test(test_restore_in_wal_mode_keeps_wal_and_readers_see_it),
		tu_test(test_restore_in_rollback_mode_waits_for_a_reader),
		tu_test(test_restore_reloads_an_idle_connection_schema),
		tu_test(test_restore_of_other_page_size_into_rollback_db),
		tu_test(test_restore_of_other_page_size_into_idle_wal_db),
		tu_test(test_restore_of_other_page_size_into_busy_wal_db),
		tu_test(test_restore_into_a_missing_live_file_creates_it),
		tu_test(test_restore_into_a_missing_file_ignores_a_stale_wal),
		tu_test(test_restore_twice_over_stale_wals_keeps_both),
		tu_test(test_restore_over_a_non_database_keeps_its_bytes),
		tu_test(test_restore_over_a_non_database_twice_keeps_both),
		tu_test(test_restore_refuses_corrupt_snapshot),
		tu_test(test_restore_refuses_corrupt_snapshot_wal),
		tu_test(test_restore_is_ebusy_while_another_restore_runs),
		tu_test(test_restore_of_unknown_snapshot_is_enoent),
		tu_test(test_restore_file_applies_a_good_file),
		tu_test(test_restore_file_of_a_snapshot_copy_adds_no_import),
		tu_test(test_restore_file_of_a_labelled_snapshot_copy_imports_nothing),
		tu_test(test_restore_file_refused_by_precondition_leaves_nothing),
		tu_test(test_restore_file_refuses_bad_files),
		tu_test(test_restore_file_names_its_source_as_asked),
		tu_test(test_recover_after_open_finishes_an_interrupted_restore),
		tu_test(test_restore_and_table_restore_share_the_rollback),
		tu_test(test_restore_reports_progress_of_each_pass),
		tu_test(test_restore_loads_row_and_map_once),
		tu_test(test_restore_loads_row_and_map_once_wal),
		tu_test(test_restore_loads_row_and_map_once_into_a_new_file),
		tu_test(test_restore_catches_a_page_damaged_after_verification),
		tu_test(test_restore_catches_a_page_damaged_after_verification_wal),
		tu_test(test_restore_into_a_new_file_catches_a_page_damaged_after_verification),
		tu_test(test_restore_check_uses_the_verified_hashes),
		tu_test(test_restore_shrinks_and_grows_the_live_database),
		tu_test(test_restore_shrinks_and_grows_the_live_database_wal),
		tu_test(test_restore_runs_quick_check_once_per_image),
		tu_test(test_restore_keeps_sqlite_memory_small),
	};
	return cmocka_run_group_tests_name("restore", tests, NULL, NULL);
}
