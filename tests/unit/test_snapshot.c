/*
 * tests/unit/test_snapshot.c — engine/snapshot.h: taking snapshots in
 * rollback and WAL mode, naming, deduplication, progress, importing files
 * and refusing files that are not complete, intact databases.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The first 100 bytes of a snapshot's image. */
static void image_header(snap_store *st, int64_t id, uint8_t hdr[100])
{
	snap_image *im = NULL;
	snap_err e;
	snap_err_clear(&e);
	if (snap_image_open(st, id, &im, &e) != 0)
		fail_msg("snap_image_open: %s", e.msg);
	assert_int_equal(snap_image_read(im, hdr, 100, 0, &e), 100);
	snap_image_close(im);
}

static int64_t file_size(const char *path)
{
	struct stat sb;
	if (stat(path, &sb) != 0)
		return -1;
	return sb.st_size;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* ------------------------------------------------------------------ */

static void test_snapshot_of_rollback_db_is_a_standalone_image(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 500);
	sqlite3 *db = tu_open(env->db);
	int64_t pc = tu_query_int(db, "PRAGMA page_count");
	sqlite3_close(db);
	char live[65], img[65];
	tu_db_digest(env->db, live);
	size_t hl;
	uint8_t *hdr = tu_read_file(env->db, &hl);

	snap_create_opts o = { .kind = SNAP_KIND_MANUAL };
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	int64_t before = snap_time_now_ns();
	assert_int_equal(snap_snapshot_take(st, &o, &si, &e), 0);
	int64_t after = snap_time_now_ns();
	assert_true(si.created_ns >= before && si.created_ns <= after);
	assert_int_equal(si.kind, SNAP_KIND_MANUAL);
	assert_string_equal(si.label, "manual");
	assert_int_equal(si.page_size, 4096);
	assert_int_equal(si.page_count, pc);
	assert_int_equal(si.image_size, (uint64_t)4096 * (uint64_t)pc);
	assert_int_equal(si.change_counter, be32(hdr + 24));
	assert_int_equal(si.pinned, 0);
	free(hdr);

	uint8_t h[100];
	image_header(st, si.id, h);
	assert_memory_equal(h, "SQLite format 3", 16);
	assert_int_equal(h[18], 1);
	assert_int_equal(h[19], 1);
	assert_int_equal(be32(h + 28), pc);
	tu_image_digest(st, si.id, img);
	assert_string_equal(img, live);
	assert_int_equal(tu_count(st), 1);
}

static void test_snapshot_of_wal_db_contains_uncheckpointed_commits(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, 100);
	/* A writer that stays open: its commits live only in the -wal. */
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "PRAGMA wal_autocheckpoint=0");
	tu_exec(w, "BEGIN");
	tu_db_insert(w, 101, 1500);
	tu_exec(w, "COMMIT");
	char wal[PATH_MAX + 8];
	snprintf(wal, sizeof(wal), "%s-wal", env->db);
	assert_true(file_size(wal) > 0);
	char live[65], img[65];
	tu_db_digest_conn(w, live);

	snap_info si = tu_snap(st, "wal");
	/* The main file alone is too small to hold what was committed. */
	assert_true(file_size(env->db) < (int64_t)si.image_size);
	assert_int_equal(si.image_size, (uint64_t)si.page_size * si.page_count);
	uint8_t h[100];
	image_header(st, si.id, h);
	assert_int_equal(h[18], 1);
	assert_int_equal(h[19], 1);
	assert_int_equal(tu_image_rows(st, si.id), 1500);
	tu_image_digest(st, si.id, img);
	assert_string_equal(img, live);
	sqlite3_close(w);
}

static void test_snapshot_in_wal_mode_skips_an_open_transaction(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, 200);
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "BEGIN IMMEDIATE");
	tu_db_insert(w, 201, 900);
	snap_info si = tu_snap(st, "during-write");
	tu_exec(w, "COMMIT");
	sqlite3_close(w);
	assert_int_equal(tu_image_rows(st, si.id), 200);
	snap_info s2 = tu_snap(st, "after-write");
	assert_int_equal(tu_image_rows(st, s2.id), 900);
}

static void test_snapshot_in_rollback_mode_skips_an_open_transaction(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 200);
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "BEGIN IMMEDIATE");   /* RESERVED: readers may still read */
	tu_db_insert(w, 201, 210);
	snap_info si = tu_snap(st, "during-write");
	tu_exec(w, "COMMIT");
	sqlite3_close(w);
	assert_int_equal(tu_image_rows(st, si.id), 200);
}

static void test_snapshot_names_are_unique_within_a_second(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	snap_info s[3];
	for (int i = 0; i < 3; i++)
		s[i] = tu_snap(st, "same");
	assert_string_not_equal(s[0].name, s[1].name);
	assert_string_not_equal(s[0].name, s[2].name);
	assert_string_not_equal(s[1].name, s[2].name);
	snap_err e;
	snap_err_clear(&e);
	for (int i = 0; i < 3; i++) {
		snap_info f;
		assert_string_equal(s[i].label, "same");
		assert_int_equal(snap_store_find(st, s[i].name, &f, &e), 0);
		assert_int_equal(f.id, s[i].id);
		size_t l = strlen(s[i].name);
		assert_string_equal(s[i].name + l - 3, ".db");
		assert_non_null(strstr(s[i].name, "_same"));
	}
}

static void test_snapshot_name_is_utc_time_and_label(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	snap_info si = tu_snap(st, "before migration");
	time_t t = (time_t)(si.created_ns / 1000000000LL);
	struct tm tm;
	gmtime_r(&t, &tm);
	char want[SNAP_NAME_MAX];
	strftime(want, sizeof(want), "%Y-%m-%dT%H%M%SZ_before-migration.db", &tm);
	assert_string_equal(si.name, want);
	assert_string_equal(si.label, "before-migration");
}

static void test_snapshot_of_unchanged_db_adds_at_most_one_page(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	int64_t p1 = tu_pages(st);
	assert_true(a.page_count >= 20);
	assert_true(p1 >= (int64_t)a.page_count - 1);
	snap_info b = tu_snap(st, "b");
	int64_t p2 = tu_pages(st);
	assert_int_equal(b.page_count, a.page_count);
	assert_true(p2 - p1 <= 1);
}

static void test_snapshot_after_few_row_changes_adds_few_pages(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	tu_snap(st, "a");
	int64_t p1 = tu_pages(st);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET pad = 'changed-' || id WHERE id IN (5, 6, 7)");
	sqlite3_close(db);
	tu_snap(st, "b");
	int64_t p2 = tu_pages(st);
	assert_true(p2 - p1 >= 1);
	assert_true(p2 - p1 <= 6);
}

typedef struct progress {
	int calls;
	uint64_t last_done, last_total;
	int backwards;
} progress;

static void progress_cb(void *ctx, uint64_t done, uint64_t total)
{
	progress *p = ctx;
	if (p->calls > 0 && done < p->last_done)
		p->backwards = 1;
	p->calls++;
	p->last_done = done;
	p->last_total = total;
}

static void test_snapshot_progress_reaches_the_page_count(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 1000);
	progress p = { 0 };
	snap_create_opts o = { .kind = SNAP_KIND_AUTO };
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_take_progress(st, &o, progress_cb, &p,
						     &si, &e), 0);
	assert_true(p.calls >= 1);
	assert_false(p.backwards);
	assert_int_equal(p.last_total, si.page_count);
	assert_int_equal(p.last_done, si.page_count);
}

/* engine/PITFALLS.md 2: close() drops every POSIX lock this process holds on a
 * file, including those of our own SQLite connections.  Snapshotting the live
 * database must go through SQLite only. */
static void test_snapshot_keeps_this_process_reader_locks(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 200);
	sqlite3 *r = tu_open(env->db);
	tu_exec(r, "BEGIN");
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), 200);
	assert_true(tu_reader_lock_held(env->db));   /* the probe works */
	tu_snap(st, "one");
	assert_true(tu_reader_lock_held(env->db));
	snap_create_opts o = { .kind = SNAP_KIND_AUTO };
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_take_progress(st, &o, progress_cb,
		&(progress){ 0 }, NULL, &e), 0);
	assert_true(tu_reader_lock_held(env->db));
	snap_store_stats ss;
	assert_int_equal(snap_store_stats_get(st, &ss, &e), 0);
	assert_true(tu_reader_lock_held(env->db));
	tu_exec(r, "COMMIT");
	assert_false(tu_reader_lock_held(env->db));
	sqlite3_close(r);
}

static void test_snapshot_records_label_comment_kind_and_pin(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	snap_create_opts o = {
		.kind = SNAP_KIND_AUTO, .label = "Nightly Run.db",
		.comment = "made by \"cron\"", .pinned = 1,
	};
	snap_info si, g;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_take(st, &o, &si, &e), 0);
	assert_int_equal(si.kind, SNAP_KIND_AUTO);
	assert_string_equal(si.label, "Nightly-Run");
	assert_string_equal(si.comment, "made by \"cron\"");
	assert_int_equal(si.pinned, 1);
	assert_int_equal(snap_store_get(st, si.id, &g, &e), 0);
	assert_int_equal(g.kind, SNAP_KIND_AUTO);
	assert_string_equal(g.label, si.label);
	assert_string_equal(g.name, si.name);
	assert_string_equal(g.comment, si.comment);
	assert_int_equal(g.pinned, 1);
	assert_memory_equal(g.sha256, si.sha256, 32);
}

static void test_snapshot_of_missing_db_is_enoent(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	assert_int_equal(unlink(env->db), 0);
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "x" };
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_take(st, &o, NULL, &e), -ENOENT);
	assert_non_null(strstr(e.msg, env->db));
	assert_int_equal(tu_count(st), 0);
	assert_int_equal(tu_pages(st), 0);
	/* Trying must not create an empty database in its place. */
	assert_false(tu_exists(env->db));
}

static void test_snapshot_of_a_non_database_is_einval(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	char junk[8192];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)("not a database "[i % 15]);
	tu_write_file(env->db, junk, sizeof(junk));
	uint8_t before[32], after[32];
	tu_sha256_file(env->db, before);
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "x" };
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_take(st, &o, NULL, &e), -EINVAL);
	assert_true(e.msg[0] != '\0');
	assert_int_equal(tu_count(st), 0);
	assert_int_equal(tu_pages(st), 0);
	tu_sha256_file(env->db, after);
	assert_memory_equal(before, after, 32);
}

/* ---- import and check_file ---- */

static void test_import_of_a_good_file_becomes_a_snapshot(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	char other[PATH_MAX];
	tu_db_create(tu_path(env, other, "other.db"), "delete", 1024, 300);
	char want[65], got[65];
	tu_db_digest(other, want);
	uint8_t fsha[32], fsha2[32];
	tu_sha256_file(other, fsha);

	snap_create_opts o = { .kind = SNAP_KIND_IMPORT, .label = "imported" };
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_check_file(other, &e), 0);
	assert_int_equal(snap_snapshot_import(st, other, &o, &si, &e), 0);
	assert_int_equal(si.kind, SNAP_KIND_IMPORT);
	assert_string_equal(si.label, "imported");
	assert_int_equal(si.page_size, 1024);
	assert_int_equal(tu_count(st), 1);
	tu_image_digest(st, si.id, got);
	assert_string_equal(got, want);
	tu_sha256_file(other, fsha2);
	assert_memory_equal(fsha, fsha2, 32);
	/* An imported rollback-mode file is stored as it is. */
	size_t il, fl;
	uint8_t *img = tu_image_bytes(st, si.id, &il);
	uint8_t *file = tu_read_file(other, &fl);
	assert_int_equal(il, fl);
	assert_memory_equal(img + 100, file + 100, fl - 100);
	free(img);
	free(file);
}

/* An import given a name (a snapshot from a replica) keeps it, unless
 * another snapshot has it or it cannot be a name: then it is named as
 * any import. */
static void test_import_keeps_a_given_name_when_it_can(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	char other[PATH_MAX];
	tu_db_create(tu_path(env, other, "other.db"), "delete", 1024, 50);
	const char *given = "2026-01-02T030405Z_kept.db";
	snap_create_opts o = { .kind = SNAP_KIND_IMPORT, .label = "kept",
			       .name = given };
	snap_info si, again, bad;
	snap_err e;
	assert_int_equal(snap_snapshot_import(st, other, &o, &si, &e), 0);
	assert_string_equal(si.name, given);
	assert_string_equal(si.label, "kept");
	assert_int_equal(snap_snapshot_import(st, other, &o, &again, &e), 0);
	assert_string_not_equal(again.name, given);
	assert_non_null(strstr(again.name, "_kept"));
	o.name = "../escape.db";
	assert_int_equal(snap_snapshot_import(st, other, &o, &bad, &e), 0);
	assert_null(strchr(bad.name, '/'));
	assert_int_equal(tu_count(st), 3);
}

static void test_import_of_a_wal_file_is_normalized(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	char other[PATH_MAX];
	tu_db_create(tu_path(env, other, "walfile.db"), "wal", 4096, 300);
	size_t fl;
	uint8_t *file = tu_read_file(other, &fl);
	assert_int_equal(file[18], 2);   /* the input really is WAL-flagged */
	free(file);
	char want[65], got[65];
	tu_db_digest(other, want);
	snap_create_opts o = { .kind = SNAP_KIND_IMPORT, .label = "w" };
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_import(st, other, &o, &si, &e), 0);
	uint8_t h[100];
	image_header(st, si.id, h);
	assert_int_equal(h[18], 1);
	assert_int_equal(h[19], 1);
	tu_image_digest(st, si.id, got);
	assert_string_equal(got, want);
}

static void test_import_of_a_wal_file_includes_commits_in_its_wal(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	char other[PATH_MAX];
	tu_db_create(tu_path(env, other, "app.db"), "wal", 4096, 100);
	sqlite3 *w = tu_open(other);
	tu_exec(w, "PRAGMA wal_autocheckpoint=0");
	tu_db_insert(w, 101, 400);
	char want[65], got[65];
	tu_db_digest_conn(w, want);
	snap_create_opts o = { .kind = SNAP_KIND_IMPORT, .label = "app" };
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_snapshot_import(st, other, &o, &si, &e);
	sqlite3_close(w);
	if (rc != 0)
		fail_msg("import: %d %s", rc, e.msg);
	tu_image_digest(st, si.id, got);
	assert_string_equal(got, want);
	assert_int_equal(tu_image_rows(st, si.id), 400);
}

/* Import and check_file both refuse path with rc; the store is unchanged. */
static void expect_refused(tu_env *env, const char *path, int rc)
{
	snap_store *st = tu_store(env);
	int64_t n = tu_count(st), p = tu_pages(st);
	snap_create_opts o = { .kind = SNAP_KIND_IMPORT, .label = "bad" };
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	int r = snap_snapshot_import(st, path, &o, &si, &e);
	if (r != rc)
		fail_msg("import of %s: %d (%s), want %d", path, r, e.msg, rc);
	assert_true(e.msg[0] != '\0');
	assert_int_equal(tu_count(st), n);
	assert_int_equal(tu_pages(st), p);
	snap_err_clear(&e);
	r = snap_snapshot_check_file(path, &e);
	if (r != rc)
		fail_msg("check_file of %s: %d (%s), want %d", path, r, e.msg, rc);
	assert_true(e.msg[0] != '\0');
}

/* A valid multi-page database at path; returns its bytes. */
static uint8_t *make_good(tu_env *env, const char *name, char *path,
			  size_t *len)
{
	tu_db_create(tu_path(env, path, name), "delete", 1024, 400);
	return tu_read_file(path, len);
}

static void test_import_refuses_a_non_database(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 10);
	char p[PATH_MAX];
	char text[5000];
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (char)('a' + i % 26);
	tu_write_file(tu_path(env, p, "text.db"), text, sizeof(text));
	expect_refused(env, p, -EINVAL);
}

/* A FIFO where a file is expected is refused at once, not waited on. */
static void test_import_refuses_a_fifo(void **state)
{
	tu_env *env = *state;
	char p[PATH_MAX];

	tu_db_create(env->db, "delete", 4096, 10);
	assert_int_equal(mkfifo(tu_path(env, p, "fifo.db"), 0600), 0);
	expect_refused(env, p, -EINVAL);
}

static void test_import_refuses_an_empty_file(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 10);
	char p[PATH_MAX];
	tu_write_file(tu_path(env, p, "empty.db"), "", 0);
	expect_refused(env, p, -EINVAL);
}

static void test_import_refuses_a_truncated_database(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 10);
	char good[PATH_MAX], p[PATH_MAX];
	size_t len;
	uint8_t *b = make_good(env, "good.db", good, &len);
	assert_true(len >= 20 * 1024);
	tu_write_file(tu_path(env, p, "half.db"), b, len / 2);
	expect_refused(env, p, -EINVAL);
	tu_write_file(tu_path(env, p, "ragged.db"), b, len / 2 + 100);
	expect_refused(env, p, -EINVAL);
	tu_write_file(tu_path(env, p, "lastpage.db"), b, len - 1024);
	expect_refused(env, p, -EINVAL);
	free(b);
}

static void test_import_refuses_a_header_only_file(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 10);
	char good[PATH_MAX], p[PATH_MAX];
	size_t len;
	uint8_t *b = make_good(env, "good.db", good, &len);
	tu_write_file(tu_path(env, p, "header.db"), b, 100);
	expect_refused(env, p, -EINVAL);
	free(b);
}

static void test_import_refuses_a_database_with_a_corrupt_page(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 10);
	char good[PATH_MAX], p[PATH_MAX];
	size_t len;
	uint8_t *b = make_good(env, "good.db", good, &len);
	/* Overwrite the last page (a b-tree page) with junk: the size and
	 * header are right, only integrity_check can tell. */
	memset(b + len - 1024, 0x5a, 1024);
	tu_write_file(tu_path(env, p, "corrupt.db"), b, len);
	expect_refused(env, p, -EINVAL);
	free(b);
}

static void test_import_of_a_missing_file_is_enoent(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 10);
	char p[PATH_MAX];
	expect_refused(env, tu_path(env, p, "nope.db"), -ENOENT);
	assert_false(tu_exists(p));
}

static void test_check_file_accepts_good_files_and_leaves_them(void **state)
{
	tu_env *env = *state;
	char a[PATH_MAX], b[PATH_MAX];
	tu_db_create(tu_path(env, a, "roll.db"), "delete", 4096, 100);
	tu_db_create(tu_path(env, b, "wal.db"), "wal", 512, 100);
	uint8_t sa[32], sb[32], sa2[32], sb2[32];
	tu_sha256_file(a, sa);
	tu_sha256_file(b, sb);
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_check_file(a, &e), 0);
	assert_int_equal(snap_snapshot_check_file(b, &e), 0);
	tu_sha256_file(a, sa2);
	tu_sha256_file(b, sb2);
	assert_memory_equal(sa, sa2, 32);
	assert_memory_equal(sb, sb2, 32);
	char j[PATH_MAX + 16];
	snprintf(j, sizeof(j), "%s-journal", a);
	assert_false(tu_exists(j));
}

typedef struct taker {
	snap_store *st;        /* shared store, or NULL: open our own */
	const char *db;
	int n;                 /* snapshots to take */
	int rc;
	char why[SNAP_ERR_MSG];
	snap_info got[4];
} taker;

static void *take_thread(void *arg)
{
	taker *t = arg;
	snap_store *st = t->st;
	snap_err e;
	snap_err_clear(&e);
	if (st == NULL && (t->rc = snap_store_open(t->db, NULL, 0, &st, &e)) != 0) {
		snprintf(t->why, sizeof(t->why), "open: %s", e.msg);
		return NULL;
	}
	for (int i = 0; i < t->n && t->rc == 0; i++) {
		snap_create_opts o = { .kind = SNAP_KIND_AUTO, .label = "par" };
		t->rc = snap_snapshot_take(st, &o, &t->got[i], &e);
		if (t->rc)
			snprintf(t->why, sizeof(t->why), "take: %s", e.msg);
	}
	if (t->st == NULL)
		snap_store_close(st);
	return NULL;
}

/* Threads sharing one store (and others with their own handle) take
 * snapshots at once: all succeed, names are unique, the store verifies. */
static void test_snapshots_taken_concurrently_all_succeed(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 1024, 800);
	enum { NT = 6, PER = 3 };
	taker t[NT];
	pthread_t th[NT];
	for (int i = 0; i < NT; i++) {
		t[i] = (taker){ .st = i % 2 ? NULL : st, .db = env->db, .n = PER };
		assert_int_equal(pthread_create(&th[i], NULL, take_thread, &t[i]), 0);
	}
	/* A writer keeps changing the database meanwhile. */
	sqlite3 *w = tu_open(env->db);
	for (int k = 0; k < 20; k++)
		tu_exec(w, "UPDATE t SET pad = 'w%d-' || id WHERE id %% 20 = %d",
			k, k);
	sqlite3_close(w);
	for (int i = 0; i < NT; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NT; i++)
		if (t[i].rc != 0)
			fail_msg("thread %d: %d %s", i, t[i].rc, t[i].why);
	assert_int_equal(tu_count(st), NT * PER);
	for (int i = 0; i < NT * PER; i++)
		for (int j = i + 1; j < NT * PER; j++)
			assert_string_not_equal(t[i / PER].got[i % PER].name,
						t[j / PER].got[j % PER].name);
	unsigned nbad = 99;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_verify_store(st, 1, NULL, NULL, &nbad, &e), 0);
	assert_int_equal(nbad, 0);
}

/* ---- the incremental fast path (engine/capture.c, "Page hashes") ---- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_snapshot_of_rollback_db_is_a_standalone_image),
		tu_test(test_snapshot_of_wal_db_contains_uncheckpointed_commits),
		tu_test(test_snapshot_in_wal_mode_skips_an_open_transaction),
		tu_test(test_snapshot_in_rollback_mode_skips_an_open_transaction),
		tu_test(test_snapshot_names_are_unique_within_a_second),
		tu_test(test_snapshot_name_is_utc_time_and_label),
		tu_test(test_snapshot_of_unchanged_db_adds_at_most_one_page),
		tu_test(test_snapshot_after_few_row_changes_adds_few_pages),
		tu_test(test_snapshot_progress_reaches_the_page_count),
		tu_test(test_snapshots_taken_concurrently_all_succeed),
		tu_test(test_snapshot_keeps_this_process_reader_locks),
		tu_test(test_snapshot_records_label_comment_kind_and_pin),
		tu_test(test_snapshot_of_missing_db_is_enoent),
		tu_test(test_snapshot_of_a_non_database_is_einval),
		tu_test(test_import_of_a_good_file_becomes_a_snapshot),
		tu_test(test_import_keeps_a_given_name_when_it_can),
		tu_test(test_import_of_a_wal_file_is_normalized),
		tu_test(test_import_of_a_wal_file_includes_commits_in_its_wal),
		tu_test(test_import_refuses_a_non_database),
		tu_test(test_import_refuses_a_fifo),
		tu_test(test_import_refuses_an_empty_file),
		tu_test(test_import_refuses_a_truncated_database),
		tu_test(test_import_refuses_a_header_only_file),
		tu_test(test_import_refuses_a_database_with_a_corrupt_page),
		tu_test(test_import_of_a_missing_file_is_enoent),
		tu_test(test_check_file_accepts_good_files_and_leaves_them),
	};
	return cmocka_run_group_tests_name("snapshot", tests, NULL, NULL);
}
