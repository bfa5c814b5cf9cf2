/*
 * tests/unit/test_dict.c — the store's zstd dictionary (engine/storedict.c,
 * engine/codec.c, engine/DESIGN.md §2): the first capture with enough pages
 * trains one and compresses with it; a store with a dictionary round-trips
 * (snapshot, verify, export byte-identical, restore); a store written
 * before (schema version 2, pages without a dictID) still reads, and gains
 * a dictionary for what it stores next; a damaged copy of the dictionary
 * or its hash is reported by verify while pages decode from the intact
 * copy, and two damaged copies make the pages that need it fail verify;
 * a table of dictionaries that cannot be read (a damaged page, another
 * shape) leaves the pages that need none readable, and those that need
 * one fail saying so.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* Rows that make a database of about 16 MB: more pages than a dictionary
 * is trained on (8 MB). */
#define BIG_ROWS 150000

static int verify(snap_store *st, int64_t id, int full, tu_problems *p)
{
	snap_err e;

	memset(p, 0, sizeof(*p));
	snap_err_clear(&e);
	return snap_verify_snapshot(st, id, full, tu_problem_cb, p, &e);
}

/* Stored pages of st: how many, and how many name a dictionary. */
static void count_dict_pages(snap_store *st, int64_t *all, int64_t *dict)
{
	sqlite3 *db = tu_open(snap_store_file(st));
	sqlite3_stmt *q = NULL;

	*all = *dict = 0;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT zdata FROM page_data",
					    -1, &q, NULL), SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW) {
		(*all)++;
		if (ZSTD_getDictID_fromFrame(sqlite3_column_blob(q, 0),
					     (size_t)sqlite3_column_bytes(q, 0)))
			(*dict)++;
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
}

/* Export snapshot si and check it is its image, byte for byte. */
static void expect_export(tu_env *env, snap_store *st, const snap_info *si)
{
	char out[PATH_MAX];
	uint8_t sha[32];
	snap_err e;

	snap_err_clear(&e);
	tu_path(env, out, "export.db");
	if (snap_image_export(st, si->id, out, &e))
		fail_msg("export of %s: %s", si->name, e.msg);
	tu_sha256_file(out, sha);
	assert_memory_equal(sha, si->sha256, 32);
	unlink(out);
}

/* Change every 50th row: a few pages of their own for the next one. */
static void change_rows(tu_env *env, int round)
{
	sqlite3 *db = tu_open(env->db);

	tu_exec(db, "UPDATE t SET pad = 'changed-%d-' || id WHERE id %% 50 = 0",
		round);
	sqlite3_close(db);
}

static void test_store_with_a_dictionary_round_trips(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, BIG_ROWS);
	char at_a[65], at_b[65], now[65];
	snap_restore_result res;
	tu_problems p;
	int64_t all, dict;
	snap_err e;

	tu_db_digest(env->db, at_a);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(snap_store_file(st));
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM dicts"), 1);
	sqlite3_close(db);
	/* The pages before the dictionary was trained have none; the
	 * others (nearly half of 16 MB) name it. */
	count_dict_pages(st, &all, &dict);
	assert_true(dict > all / 3);
	assert_true(dict < all);

	change_rows(env, 1);
	tu_db_digest(env->db, at_b);
	int64_t before = dict;
	snap_info b = tu_snap(st, "b");
	count_dict_pages(st, &all, &dict);
	assert_true(dict > before);      /* b's own pages use it too */
	db = tu_open(snap_store_file(st));
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM dicts"), 1);
	sqlite3_close(db);

	for (int full = 0; full <= 1; full++) {
		assert_int_equal(verify(st, a.id, full, &p), 0);
		assert_int_equal(verify(st, b.id, full, &p), 0);
		assert_int_equal(p.n, 0);
	}
	expect_export(env, st, &a);
	expect_export(env, st, &b);
	snap_err_clear(&e);
	memset(&res, 0, sizeof(res));
	if (snap_restore(st, a.id, &res, &e))
		fail_msg("restore: %s", e.msg);
	assert_true(res.verified_pages);
	tu_db_digest(env->db, now);
	assert_string_equal(now, at_a);
	/* Deleting every snapshot leaves the dictionary (pages of later
	 * snapshots may use it). */
	assert_int_equal(snap_store_delete(st, a.id, &e), 0);
	assert_int_equal(snap_store_delete(st, b.id, &e), 0);
	if (res.have_safety)
		assert_int_equal(snap_store_delete(st, res.safety.id, &e), 0);
	db = tu_open(snap_store_file(st));
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM dicts"), 1);
	sqlite3_close(db);
}

/* A small database trains nothing: its pages are stored as before. */
static void test_small_database_gets_no_dictionary(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	int64_t all, dict;
	tu_problems p;

	snap_info a = tu_snap(st, "a");
	count_dict_pages(st, &all, &dict);
	assert_true(all > 0);
	assert_int_equal(dict, 0);
	assert_int_equal(verify(st, a.id, 1, &p), 0);
	expect_export(env, st, &a);
}

/* A store of schema version 2 (as snapfs wrote it before dictionaries:
 * no table dicts, pages without a dictID) reads as it is read-only, and
 * opened for writing is upgraded; its next large capture trains a
 * dictionary, and old and new pages both read. */
static void test_store_of_version_2_reads_and_gains_a_dictionary(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, 2000);
	snap_info a = tu_snap(st, "old");
	char file[PATH_MAX];
	snap_store *ro = NULL;
	tu_problems p;
	int64_t all, dict;
	snap_err e;

	snprintf(file, sizeof(file), "%s", snap_store_file(st));
	snap_store_close(st);
	env->st = NULL;
	sqlite3 *db = tu_open(file);
	tu_exec(db, "DROP TABLE dicts; UPDATE meta SET value=2 WHERE "
		"key='schema_version'; PRAGMA user_version=2");
	sqlite3_close(db);

	snap_err_clear(&e);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_READONLY,
					 &ro, &e), 0);
	assert_int_equal(verify(ro, a.id, 1, &p), 0);
	expect_export(env, ro, &a);
	snap_store_close(ro);
	db = tu_open(file);
	assert_int_equal(tu_query_int(db, "PRAGMA user_version"), 2);
	sqlite3_close(db);

	st = tu_store(env);
	db = tu_open(env->db);
	tu_db_insert(db, 2001, BIG_ROWS);
	sqlite3_close(db);
	snap_info b = tu_snap(st, "new");
	db = tu_open(file);
	assert_int_equal(tu_query_int(db, "PRAGMA user_version"), 3);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM dicts"), 1);
	sqlite3_close(db);
	count_dict_pages(st, &all, &dict);
	assert_true(dict > 0);
	assert_true(dict < all);
	for (int full = 0; full <= 1; full++) {
		assert_int_equal(verify(st, a.id, full, &p), 0);
		assert_int_equal(verify(st, b.id, full, &p), 0);
	}
	expect_export(env, st, &a);
	expect_export(env, st, &b);
}

/* Flip one bit of column col of the store's dictionary. */
static void damage_dict(snap_store *st, const char *col)
{
	sqlite3 *db = tu_open(snap_store_file(st));
	char sql[128];
	sqlite3_stmt *q = NULL;

	snprintf(sql, sizeof(sql), "SELECT %s FROM dicts", col);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	size_t n = (size_t)sqlite3_column_bytes(q, 0);
	uint8_t *buf = malloc(n);
	assert_non_null(buf);
	memcpy(buf, sqlite3_column_blob(q, 0), n);
	sqlite3_finalize(q);
	buf[n / 2] ^= 0x10;
	snprintf(sql, sizeof(sql), "UPDATE dicts SET %s=?", col);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
	sqlite3_bind_blob(q, 1, buf, (int)n, SQLITE_TRANSIENT);
	assert_int_equal(sqlite3_step(q), SQLITE_DONE);
	sqlite3_finalize(q);
	sqlite3_close(db);
	free(buf);
}

/* The store's dictionary row whole again: both copies equal, and the
 * hash theirs (with one copy damaged, a verify still passes: the other
 * matches the hash). */
static void expect_dict_mended(snap_store *st, const snap_info *si)
{
	sqlite3 *db = tu_open(snap_store_file(st));
	tu_problems p;

	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM dicts WHERE "
				      "data IS NOT data2"), 0);
	sqlite3_close(db);
	damage_dict(st, "data2");
	assert_int_equal(verify(st, si->id, 0, &p), 0);
	tu_store_exec(st, "UPDATE dicts SET data2=data");
}

static void test_damaged_dictionary_is_mended(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, BIG_ROWS);
	snap_info a = tu_snap(st, "a");
	tu_problems p;
	snap_err e;
	snap_info x;
	char out[PATH_MAX];

	assert_int_equal(verify(st, a.id, 0, &p), 0);
	/* One copy: every page still decodes, so the snapshot is not
	 * damaged (a restore of it goes on), and the next snapshot rewrites
	 * the copy from the intact one. */
	damage_dict(st, "data");
	assert_int_equal(verify(st, a.id, 0, &p), 0);
	expect_export(env, st, &a);
	tu_snap(st, "b");
	expect_dict_mended(st, &a);
	/* The hash: both copies agree and serve; the next snapshot rewrites
	 * the hash (after which one damaged copy is again only that). */
	damage_dict(st, "sha256");
	assert_int_equal(verify(st, a.id, 0, &p), 0);
	expect_export(env, st, &a);
	tu_snap(st, "c");
	expect_dict_mended(st, &a);
	/* Both copies, differently: the pages that need it fail, and no
	 * snapshot is taken into the store (it would share them). */
	damage_dict(st, "data");
	tu_store_exec(st, "UPDATE dicts SET data2=zeroblob(10)");
	assert_int_equal(verify(st, a.id, 0, &p), -EBADMSG);
	assert_true(p.npage >= 1);
	if (!strstr(p.text, "zstd dictionary"))
		fail_msg("problem: %s", p.text);
	snap_err_clear(&e);
	tu_path(env, out, "export.db");
	assert_int_equal(snap_image_export(st, a.id, out, &e), -EIO);
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "d" };
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_take(st, &o, &x, &e), -EBADMSG);
	if (!strstr(e.msg, "zstd dictionary") || !strstr(e.msg, "both copies"))
		fail_msg("capture: %s", e.msg);
}

/* Damage the page of store file `file` that holds table dicts (its
 * b-tree root): bit rot on disk, the way a table of an intact store
 * becomes unreadable.  Its page type byte becomes none SQLite knows, so
 * every SELECT of the table fails (SQLITE_CORRUPT) while the store's
 * other tables read as before.  The store must be closed. */
static void damage_dicts_table(const char *file)
{
	sqlite3 *db = tu_open(file);
	int64_t root, ps;
	size_t len;

	tu_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	root = tu_query_int(db, "SELECT rootpage FROM sqlite_schema WHERE "
			    "type='table' AND name='dicts'");
	ps = tu_query_int(db, "PRAGMA page_size");
	sqlite3_close(db);
	assert_true(root > 1);
	uint8_t *buf = tu_read_file(file, &len);
	assert_true((size_t)(root * ps) <= len);
	buf[(root - 1) * ps] = 0x00;
	tu_write_file(file, buf, len);
	free(buf);
	db = tu_open(file);
	assert_int_not_equal(sqlite3_exec(db, "SELECT * FROM dicts", NULL,
					  NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* Problems verify reported: how many, and whether one said the table of
 * dictionaries cannot be read, or a page that its dictionary is
 * missing. */
typedef struct dict_problems {
	int n, table, keyless;
} dict_problems;

static void dict_problem_cb(void *ctx, const snap_info *si, uint32_t pgno,
			    const char *problem)
{
	dict_problems *d = ctx;

	(void)si;
	d->n++;
	if (!pgno && strstr(problem, "table of zstd dictionaries cannot be "
			    "read"))
		d->table++;
	if (pgno && strstr(problem, "the zstd dictionary it was compressed "
			   "with is missing or damaged"))
		d->keyless++;
}

/* Close env's store and damage its table dicts; the store opened again
 * read-only. */
static snap_store *with_dicts_table_damaged(tu_env *env, snap_store *st)
{
	char file[PATH_MAX];
	snap_store *ro = NULL;
	snap_err e;

	snprintf(file, sizeof(file), "%s", snap_store_file(st));
	snap_store_close(st);
	env->st = NULL;
	damage_dicts_table(file);
	snap_err_clear(&e);
	if (snap_store_open(env->db, NULL, SNAP_OPEN_READONLY, &ro, &e))
		fail_msg("open: %s", e.msg);
	return ro;
}

/* An unreadable table of dictionaries in a store with one: images still
 * open, the pages stored before the dictionary read, those that need it
 * fail saying so (read, export), and verify reports the table. */
static void test_unreadable_dicts_table_leaves_other_pages_readable(
	void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, BIG_ROWS);
	snap_info a = tu_snap(st, "a");
	snap_image *im = NULL;
	dict_problems d = { 0 };
	uint32_t pg, ok = 0, bad = 0;
	char out[PATH_MAX];
	uint8_t *buf;
	snap_err e;

	st = with_dicts_table_damaged(env, st);
	snap_err_clear(&e);
	if (snap_image_open(st, a.id, &im, &e))
		fail_msg("image open: %s", e.msg);
	buf = malloc(a.page_size);
	assert_non_null(buf);
	for (pg = 1; pg <= a.page_count; pg++) {
		snap_err_clear(&e);
		if (!snap_image_read_page(im, pg, buf, NULL, &e)) {
			ok++;
			continue;
		}
		bad++;
		assert_int_equal(e.code, -EIO);
		if (!strstr(e.msg, "the zstd dictionary it was compressed "
			    "with is missing or damaged"))
			fail_msg("page %u: %s", pg, e.msg);
	}
	free(buf);
	/* Page 1 was stored before the dictionary was trained. */
	snap_err_clear(&e);
	assert_int_equal(snap_image_read(im, out, 100, 0, &e), 100);
	snap_image_close(im);
	assert_true(ok > 0);
	assert_true(bad > 0);

	snap_err_clear(&e);
	assert_int_equal(snap_verify_snapshot(st, a.id, 0, dict_problem_cb, &d,
					      &e), -EBADMSG);
	assert_int_equal(d.table, 1);
	assert_int_equal((uint32_t)d.keyless, bad);

	snap_err_clear(&e);
	tu_path(env, out, "export.db");
	assert_int_equal(snap_image_export(st, a.id, out, &e), -EIO);
	if (!strstr(e.msg, "the zstd dictionary it was compressed with is "
		    "missing or damaged"))
		fail_msg("export: %s", e.msg);
	assert_false(tu_exists(out));
	snap_store_close(st);
}

/* Snapshot si of st, a store without a dictionary whose table of them
 * cannot be read: it exports whole, and verify (full or quick) finds it
 * intact (no page of it needs a dictionary; the table is said with the
 * first page that does: test_unreadable_dicts_table_leaves_other_pages_
 * readable), so nothing refuses its restore. */
static void expect_whole_but_table_reported(tu_env *env, snap_store *st,
					    const snap_info *si, int full)
{
	dict_problems d = { 0 };
	snap_err e;

	expect_export(env, st, si);
	snap_err_clear(&e);
	if (snap_verify_snapshot(st, si->id, full, dict_problem_cb, &d, &e))
		fail_msg("verify of an intact snapshot: %s", e.msg);
	assert_int_equal(d.n, 0);
}

/* In a store without a dictionary, an unreadable table of them costs no
 * page: the snapshot exports whole and verifies, and a capture (which
 * would record a dictionary there) is refused, saying what to do. */
static void test_unreadable_dicts_table_without_a_dictionary(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	snap_info x;
	snap_err e;

	st = with_dicts_table_damaged(env, st);
	expect_whole_but_table_reported(env, st, &a, 1);
	snap_store_close(st);

	st = tu_store(env);
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "b" };
	snap_err_clear(&e);
	assert_int_not_equal(snap_snapshot_take(st, &o, &x, &e), 0);
	if (!strstr(e.msg, "zstd dictionaries") ||
	    !strstr(e.msg, "move the store aside"))
		fail_msg("capture: %s", e.msg);
}

/* A table dicts of another shape (as a store edited by hand, or by a
 * tool that recreated it, has it): its SELECT cannot be prepared, and a
 * reader goes on without dictionaries. */
static void test_dicts_table_of_another_shape(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "wal", 4096, 2000);
	snap_info a = tu_snap(st, "a");

	tu_store_exec(st, "DROP TABLE dicts; CREATE TABLE dicts(x)");
	expect_whole_but_table_reported(env, st, &a, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_store_with_a_dictionary_round_trips),
		tu_test(test_small_database_gets_no_dictionary),
		tu_test(test_store_of_version_2_reads_and_gains_a_dictionary),
		tu_test(test_damaged_dictionary_is_mended),
		tu_test(test_unreadable_dicts_table_leaves_other_pages_readable),
		tu_test(test_unreadable_dicts_table_without_a_dictionary),
		tu_test(test_dicts_table_of_another_shape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
