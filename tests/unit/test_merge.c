/*
 * tests/unit/test_merge.c — engine/merge.h: an edit of a copy applied onto
 * the live database as a changeset.
 *
 * Every test builds the same world: a live database (rollback or WAL
 * mode), `base` (a backup copy of it: what an edit session starts from)
 * and `edited` (another copy, which the test edits as a client through the
 * mount would).  Then the test changes the live database as an application
 * would, merges, and checks the live database row by row: what both sides
 * did is there when they touched different rows, and when they touched the
 * same row nothing changed at all (the digest of every row and the schema
 * is the same as before the merge).
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* The three files of a merge. */
typedef struct mworld {
	char base[PATH_MAX];
	char edited[PATH_MAX];
} mworld;

/* live.db in `mode` with t (ids 1..50), a WITHOUT ROWID table kv, a table
 * without a primary key, and the copies base and edited of it. */
static snap_store *world(tu_env *env, const char *mode, mworld *w)
{
	sqlite3 *db;

	tu_db_create(env->db, mode, 4096, 50);
	db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
		    "INSERT INTO kv VALUES('a', 1), ('b', 2);"
		    "CREATE TABLE nopk(x, y);"
		    "INSERT INTO nopk VALUES(1, 'one'), (2, 'two');"
		    "CREATE TABLE other(id INTEGER PRIMARY KEY, what TEXT)");
	sqlite3_close(db);
	tu_path(env, w->base, "base.db");
	tu_path(env, w->edited, "edited.db");
	tu_db_backup_copy(env->db, w->base);
	tu_db_backup_copy(env->db, w->edited);
	return tu_store(env);
}

/* Run SQL on the database at path, then close it. */
static void sql_on(const char *path, const char *sql)
{
	sqlite3 *db = tu_open(path);
	tu_exec(db, "%s", sql);
	if (sqlite3_close(db) != SQLITE_OK)
		fail_msg("close %s", path);
}

static int64_t int_on(const char *path, const char *sql)
{
	sqlite3 *db = tu_open(path);
	int64_t v = tu_query_int(db, "%s", sql);
	sqlite3_close(db);
	return v;
}

static char *text_on(const char *path, const char *sql)
{
	sqlite3 *db = tu_open(path);
	char *v = tu_query_text(db, "%s", sql);
	sqlite3_close(db);
	return v;
}

static void expect_text(const char *path, const char *sql, const char *want)
{
	char *got = text_on(path, sql);
	if (!got || strcmp(got, want) != 0)
		fail_msg("%s on %s: \"%s\", expected \"%s\"", sql, path,
			 got ? got : "(null)", want);
	free(got);
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/*
 * The logical content of the database at path (malloc'd): every schema
 * row, then each table's rows as type:value of every column, the rows
 * sorted (WITHOUT ROWID tables have no rowid to order by).
 */
static char *content(const char *path)
{
	sqlite3 *db = tu_open(path);
	sqlite3_str *out = sqlite3_str_new(NULL);
	sqlite3_stmt *tabs = NULL;

	if (sqlite3_prepare_v2(db, "SELECT type, name, ifnull(sql, '') FROM "
			       "sqlite_schema ORDER BY type, name", -1, &tabs,
			       NULL) != SQLITE_OK)
		fail_msg("content of %s: %s", path, sqlite3_errmsg(db));
	while (sqlite3_step(tabs) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(tabs, 0);
		const char *name = (const char *)sqlite3_column_text(tabs, 1);
		sqlite3_stmt *st = NULL;
		char **rows = NULL, *q;
		size_t n = 0, i;

		sqlite3_str_appendf(out, "%s %s %s\n", type, name,
				    sqlite3_column_text(tabs, 2));
		if (strcmp(type, "table") != 0)
			continue;
		q = sqlite3_mprintf("SELECT * FROM \"%w\"", name);
		if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
			fail_msg("%s: %s", q, sqlite3_errmsg(db));
		sqlite3_free(q);
		while (sqlite3_step(st) == SQLITE_ROW) {
			sqlite3_str *row = sqlite3_str_new(NULL);
			int c;

			for (c = 0; c < sqlite3_column_count(st); c++)
				sqlite3_str_appendf(row, "%d:%s|",
						    sqlite3_column_type(st, c),
						    sqlite3_column_text(st, c));
			rows = realloc(rows, (n + 1) * sizeof(*rows));
			rows[n++] = sqlite3_str_finish(row);
		}
		sqlite3_finalize(st);
		if (n)
			qsort(rows, n, sizeof(*rows), cmp_str);
		for (i = 0; i < n; i++) {
			sqlite3_str_appendf(out, "  %s\n", rows[i]);
			sqlite3_free(rows[i]);
		}
		free(rows);
	}
	sqlite3_finalize(tabs);
	sqlite3_close(db);
	return sqlite3_str_finish(out);
}

/* Merge; returns the result code, res and err filled. */
static int merge(snap_store *st, const mworld *w, snap_merge_result *res,
		 snap_err *e)
{
	snap_merge_opts o = { "a test edit" };

	snap_err_clear(e);
	return snap_merge_apply(st, w->base, w->edited, &o, res, e);
}

/* The merge must refuse with rc and leave the live database and the
 * catalog exactly as they were; err must mention `needle`. */
static void expect_refusal(tu_env *env, snap_store *st, const mworld *w,
			   int rc_want, int conflict, const char *needle)
{
	char *before, *after;
	snap_merge_result res;
	snap_err e;
	int64_t n = tu_count(st);
	int rc;

	before = content(env->db);
	rc = merge(st, w, &res, &e);
	if (rc != rc_want)
		fail_msg("merge returned %d (%s), expected %d", rc, e.msg,
			 rc_want);
	if (!strstr(e.msg, needle))
		fail_msg("the reason \"%s\" does not mention \"%s\"", e.msg,
			 needle);
	assert_int_equal(res.conflict, conflict);
	after = content(env->db);
	assert_string_equal(before, after);
	sqlite3_free(before);
	sqlite3_free(after);
	assert_true(tu_db_integrity_ok(env->db));
	assert_int_equal(res.have_safety, 0);
	assert_int_equal(tu_count(st), n);   /* no safety snapshot left */
}

/* The count of restore events whose detail holds every one of needles. */
static int events_with(snap_store *st, const char *const *needles)
{
	snap_event *ev = NULL;
	size_t nev = 0, i, k;
	snap_err e;
	int found = 0;

	snap_err_clear(&e);
	assert_int_equal(snap_event_list(st, 0, 0, &ev, &nev, &e), 0);
	for (i = 0; i < nev; i++) {
		int all = strcmp(ev[i].kind, "restore") == 0 && ev[i].ok;

		for (k = 0; all && needles[k]; k++)
			all = strstr(ev[i].detail, needles[k]) != NULL;
		found += all;
	}
	free(ev);
	return found;
}

/* ---- applying ---------------------------------------------------------- */

/* Both sides changed different rows: all of it is in the live database. */
static void disjoint_rows_apply(void **state, const char *mode)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, mode, &w);
	snap_merge_result res;
	const char *needles[] = { "changeset", NULL, NULL };
	snap_err e;
	int64_t before = tu_count(st);
	int rc;

	sql_on(w.edited, "INSERT INTO t(id, v) VALUES(1001, 'edit');"
			 "UPDATE t SET v = 'edited' WHERE id = 5;"
			 "DELETE FROM t WHERE id = 7;"
			 "UPDATE kv SET v = 10 WHERE k = 'a'");
	sql_on(env->db, "INSERT INTO t(id, v) VALUES(2001, 'app');"
			"UPDATE t SET v = 'app' WHERE id = 10;"
			"DELETE FROM t WHERE id = 12;"
			"INSERT INTO kv VALUES('c', 3);"
			"INSERT INTO other(what) VALUES('app')");
	rc = merge(st, &w, &res, &e);
	if (rc != 0)
		fail_msg("merge: %d %s", rc, e.msg);
	assert_int_equal(res.inserted, 1);
	assert_int_equal(res.updated, 2);
	assert_int_equal(res.deleted, 1);
	assert_int_equal(res.conflict, 0);
	/* The edit's rows, and the application's. */
	expect_text(env->db, "SELECT v FROM t WHERE id = 1001", "edit");
	expect_text(env->db, "SELECT v FROM t WHERE id = 5", "edited");
	assert_int_equal(int_on(env->db, "SELECT count(*) FROM t WHERE id = 7"),
			 0);
	expect_text(env->db, "SELECT v FROM kv WHERE k = 'a'", "10");
	expect_text(env->db, "SELECT v FROM t WHERE id = 2001", "app");
	expect_text(env->db, "SELECT v FROM t WHERE id = 10", "app");
	assert_int_equal(int_on(env->db, "SELECT count(*) FROM t WHERE id = "
				"12"), 0);
	expect_text(env->db, "SELECT v FROM kv WHERE k = 'c'", "3");
	assert_int_equal(int_on(env->db, "SELECT count(*) FROM other"), 1);
	assert_int_equal(int_on(env->db, "SELECT count(*) FROM t"), 50);
	assert_true(tu_db_integrity_ok(env->db));
	{
		char *jm = tu_db_journal_mode(env->db);
		assert_string_equal(jm, mode);
		free(jm);
	}
	/* The safety snapshot holds the live state before the merge. */
	assert_int_equal(res.have_safety, 1);
	assert_int_equal(res.safety.kind, SNAP_KIND_PRE_RESTORE);
	assert_int_equal(tu_count(st), before + 1);
	/* One event says what happened. */
	needles[1] = res.safety.name;
	assert_int_equal(events_with(st, needles), 1);
}

static void test_merge_applies_disjoint_rows_rollback(void **state)
{
	disjoint_rows_apply(state, "delete");
}

static void test_merge_applies_disjoint_rows_wal(void **state)
{
	disjoint_rows_apply(state, "wal");
}

/* In WAL mode, beside an application's open connection and its read
 * transaction, which keeps seeing its own snapshot. */
static void test_merge_wal_beside_an_open_reader(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "wal", &w);
	snap_merge_result res;
	snap_err e;
	sqlite3 *app = tu_open(env->db);
	int rc;

	sql_on(w.edited, "INSERT INTO t(id, v) VALUES(1001, 'edit')");
	tu_exec(app, "INSERT INTO other(what) VALUES('app')");
	tu_exec(app, "BEGIN");
	assert_int_equal(tu_query_int(app, "SELECT count(*) FROM t"), 50);
	rc = merge(st, &w, &res, &e);
	if (rc != 0)
		fail_msg("merge: %d %s", rc, e.msg);
	assert_int_equal(tu_query_int(app, "SELECT count(*) FROM t"), 50);
	tu_exec(app, "COMMIT");
	assert_int_equal(tu_query_int(app, "SELECT count(*) FROM t"), 51);
	assert_int_equal(tu_query_int(app, "SELECT count(*) FROM other"), 1);
	sqlite3_close(app);
}

/* A table without a PRIMARY KEY that the edit did not change does not
 * stop the merge. */
static void test_merge_ignores_unchanged_table_without_primary_key(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	snap_merge_result res;
	snap_err e;
	int rc;

	sql_on(w.edited, "UPDATE t SET v = 'edited' WHERE id = 3");
	sql_on(env->db, "INSERT INTO nopk VALUES(3, 'three');"
			"UPDATE t SET v = 'app' WHERE id = 4");
	rc = merge(st, &w, &res, &e);
	if (rc != 0)
		fail_msg("merge: %d %s", rc, e.msg);
	expect_text(env->db, "SELECT v FROM t WHERE id = 3", "edited");
	expect_text(env->db, "SELECT v FROM t WHERE id = 4", "app");
	assert_int_equal(int_on(env->db, "SELECT count(*) FROM nopk"), 3);
}

/* An edit that changed no row (a VACUUM moves pages only) applies nothing
 * and takes no snapshot. */
static void test_merge_of_no_row_change_does_nothing(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	snap_merge_result res;
	char *before, *after;
	snap_err e;
	int64_t n = tu_count(st);

	sql_on(w.edited, "UPDATE t SET v = v WHERE id = 3; VACUUM");
	sql_on(env->db, "UPDATE t SET v = 'app' WHERE id = 4");
	before = content(env->db);
	assert_int_equal(merge(st, &w, &res, &e), 0);
	after = content(env->db);
	assert_string_equal(before, after);
	sqlite3_free(before);
	sqlite3_free(after);
	assert_int_equal(res.have_safety, 0);
	assert_int_equal(tu_count(st), n);
}

/* Triggers fired in the edit; their rows come with the changeset and do
 * not fire again on the live database. */
static void test_merge_does_not_fire_triggers_twice(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	snap_merge_result res;
	snap_err e;
	sqlite3 *db;
	int rc;

	/* Trigger and audit table in all three (they share the schema). */
	const char *ddl = "CREATE TABLE audit(id INTEGER PRIMARY KEY, what);"
			  "CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN "
			  "INSERT INTO audit(what) VALUES('t ' || new.id); END";
	sql_on(env->db, ddl);
	sql_on(w.base, ddl);
	sql_on(w.edited, ddl);
	sql_on(w.edited, "INSERT INTO t(id, v) VALUES(1001, 'edit')");
	assert_int_equal(int_on(w.edited, "SELECT count(*) FROM audit"), 1);
	sql_on(env->db, "INSERT INTO other(what) VALUES('app')");
	rc = merge(st, &w, &res, &e);
	if (rc != 0)
		fail_msg("merge: %d %s", rc, e.msg);
	db = tu_open(env->db);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM audit"), 1);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM audit WHERE "
				      "what = 't 1001'"), 1);
	/* And the trigger still works for the application. */
	tu_exec(db, "INSERT INTO t(id, v) VALUES(2001, 'app')");
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM audit"), 2);
	sqlite3_close(db);
}

/* AUTOINCREMENT never reuses a key the edit handed out. */
static void test_merge_keeps_the_larger_autoincrement(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	snap_merge_result res;
	snap_err e;
	int rc;

	const char *ddl = "CREATE TABLE seqd(id INTEGER PRIMARY KEY "
			  "AUTOINCREMENT, v);"
			  "INSERT INTO seqd(v) VALUES('x');";
	sql_on(env->db, ddl);
	sql_on(w.base, ddl);
	sql_on(w.edited, ddl);
	sql_on(w.edited, "INSERT INTO seqd(v) VALUES('e2');"
			 "INSERT INTO seqd(v) VALUES('e3');"
			 "DELETE FROM seqd WHERE id = 3");
	sql_on(env->db, "INSERT INTO other(what) VALUES('app')");
	rc = merge(st, &w, &res, &e);
	if (rc != 0)
		fail_msg("merge: %d %s", rc, e.msg);
	assert_int_equal(int_on(env->db, "SELECT seq FROM sqlite_sequence "
				"WHERE name = 'seqd'"), 3);
	sql_on(env->db, "INSERT INTO seqd(v) VALUES('app')");
	assert_int_equal(int_on(env->db, "SELECT max(id) FROM seqd"), 4);
}

/* ---- refusing ---------------------------------------------------------- */

/* The same row updated on both sides. */
static void same_row_refuses(void **state, const char *mode)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, mode, &w);

	sql_on(w.edited, "INSERT INTO t(id, v) VALUES(1001, 'edit');"
			 "UPDATE t SET v = 'edited' WHERE id = 5");
	sql_on(env->db, "UPDATE t SET v = 'app' WHERE id = 5");
	expect_refusal(env, st, &w, -ESTALE, 1, "id=5");
	expect_text(env->db, "SELECT v FROM t WHERE id = 5", "app");
	assert_int_equal(int_on(env->db, "SELECT count(*) FROM t WHERE id = "
				"1001"), 0);
}

static void test_merge_refuses_a_row_changed_on_both_sides_rollback(void **state)
{
	same_row_refuses(state, "delete");
}

static void test_merge_refuses_a_row_changed_on_both_sides_wal(void **state)
{
	same_row_refuses(state, "wal");
}

/* Other columns of the same row: still the same row. */
static void test_merge_refuses_other_columns_of_the_same_row(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);

	sql_on(w.edited, "UPDATE t SET v = 'edited' WHERE id = 5");
	sql_on(env->db, "UPDATE t SET pad = 'app' WHERE id = 5");
	expect_refusal(env, st, &w, -ESTALE, 1, "changed in the live");
}

/* Updated in the edit, deleted live; deleted in the edit, updated live. */
static void test_merge_refuses_a_row_deleted_on_the_other_side(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);

	sql_on(w.edited, "UPDATE t SET v = 'edited' WHERE id = 5");
	sql_on(env->db, "DELETE FROM t WHERE id = 5");
	expect_refusal(env, st, &w, -ESTALE, 1, "deleted in the live");

	tu_db_backup_copy(env->db, w.base);
	tu_db_backup_copy(env->db, w.edited);
	sql_on(w.edited, "DELETE FROM t WHERE id = 6");
	sql_on(env->db, "UPDATE t SET v = 'app' WHERE id = 6");
	expect_refusal(env, st, &w, -ESTALE, 1, "id=6");
}

/* An explicit key that fills a gap below base's end, inserted on both
 * sides: somebody chose it, so it is the same row. */
static void test_merge_refuses_a_chosen_key_inserted_on_both_sides(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);

	sql_on(env->db, "DELETE FROM t WHERE id = 20");
	tu_db_backup_copy(env->db, w.base);
	tu_db_backup_copy(env->db, w.edited);
	sql_on(w.edited, "INSERT INTO t(id, v) VALUES(20, 'edit')");
	sql_on(env->db, "INSERT INTO t(id, v) VALUES(20, 'app')");
	expect_refusal(env, st, &w, -ESTALE, 1, "not past the end");
	expect_text(env->db, "SELECT v FROM t WHERE id = 20", "app");
}

/* The same key inserted on both sides of a WITHOUT ROWID table: its keys
 * are never assigned by SQLite. */
static void test_merge_refuses_a_text_key_inserted_on_both_sides(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);

	sql_on(w.edited, "INSERT INTO kv VALUES('c', 'edit')");
	sql_on(env->db, "INSERT INTO kv VALUES('c', 'app')");
	expect_refusal(env, st, &w, -ESTALE, 1, "not an automatic");
	expect_text(env->db, "SELECT v FROM kv WHERE k = 'c'", "app");
}

/* An automatic key inserted on both sides, but another row of the edit
 * holds it (a reference without a declared foreign key). */
static void test_merge_refuses_new_keys_for_a_referenced_row(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	const char *ddl = "CREATE TABLE ref(id INTEGER PRIMARY KEY, t_id "
			  "INTEGER)";

	sql_on(env->db, ddl);
	sql_on(w.base, ddl);
	sql_on(w.edited, ddl);
	sql_on(w.edited, "INSERT INTO t(v) VALUES('edit');"
			 "INSERT INTO ref(t_id) VALUES(last_insert_rowid())");
	sql_on(env->db, "INSERT INTO t(v) VALUES('app')");
	expect_refusal(env, st, &w, -ESTALE, 1, "holds the value 51");
	expect_text(env->db, "SELECT v FROM t WHERE id = 51", "app");
}

/* A declared foreign key refers to the table: no new keys there. */
static void test_merge_refuses_new_keys_in_a_referenced_table(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	const char *ddl = "CREATE TABLE child(id INTEGER PRIMARY KEY, "
			  "t_id INTEGER REFERENCES t(id))";

	sql_on(env->db, ddl);
	sql_on(w.base, ddl);
	sql_on(w.edited, ddl);
	sql_on(w.edited, "INSERT INTO t(v) VALUES('edit')");
	sql_on(env->db, "INSERT INTO t(v) VALUES('app')");
	expect_refusal(env, st, &w, -ESTALE, 1, "foreign key refers");
}

/*
 * An application appending to t while the edit inserts into t: both got
 * keys 51, 52 (and the edit 53).  The edit's rows take new keys after the
 * application's, in their own order; a row the edit inserted elsewhere
 * keeps its key.
 */
static void same_table_inserts_merge(void **state, const char *mode)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, mode, &w);
	static const char *const needles[] = {
		"3 of the inserted rows took new keys", "t id 51 -> 53",
		"t id 52 -> 54", "t id 53 -> 55", NULL };
	snap_merge_result res;
	snap_err e;
	size_t i;
	int rc;

	sql_on(w.edited, "INSERT INTO t(v) VALUES('e1');"
			 "INSERT INTO t(v) VALUES('e2');"
			 "INSERT INTO t(v) VALUES('e3');"
			 "INSERT INTO other(what) VALUES('edit')");
	sql_on(env->db, "INSERT INTO t(v) VALUES('a1');"
			"INSERT INTO t(v) VALUES('a2')");
	rc = merge(st, &w, &res, &e);
	if (rc != 0)
		fail_msg("merge: %d %s", rc, e.msg);
	assert_int_equal(res.conflict, 0);
	assert_int_equal(res.inserted, 4);
	/* Every row, each once. */
	assert_int_equal(int_on(env->db, "SELECT count(*) FROM t"), 55);
	expect_text(env->db, "SELECT group_concat(v, ',') FROM (SELECT v "
		    "FROM t WHERE id > 50 ORDER BY id)", "a1,a2,e1,e2,e3");
	expect_text(env->db, "SELECT group_concat(id, ',') FROM (SELECT id "
		    "FROM t WHERE id > 50 ORDER BY id)", "51,52,53,54,55");
	expect_text(env->db, "SELECT what FROM other WHERE id = 1", "edit");
	assert_true(tu_db_integrity_ok(env->db));
	{
		char *jm = tu_db_journal_mode(env->db);
		assert_string_equal(jm, mode);
		free(jm);
	}
	/* Said in the result and in the event. */
	assert_int_equal(res.nrekeyed, 3);
	for (i = 0; i < 3; i++) {
		assert_string_equal(res.rekeyed[i].table, "t");
		assert_string_equal(res.rekeyed[i].column, "id");
		assert_int_equal(res.rekeyed[i].old_key, 51 + (int64_t)i);
		assert_int_equal(res.rekeyed[i].new_key, 53 + (int64_t)i);
	}
	assert_int_equal(events_with(st, needles), 1);
	snap_merge_result_free(&res);
	/* The application goes on where the merge left off. */
	sql_on(env->db, "INSERT INTO t(v) VALUES('a3')");
	assert_int_equal(int_on(env->db, "SELECT id FROM t WHERE v = 'a3'"),
			 56);
}

static void test_merge_gives_same_table_inserts_new_keys_rollback(void **state)
{
	same_table_inserts_merge(state, "delete");
}

static void test_merge_gives_same_table_inserts_new_keys_wal(void **state)
{
	same_table_inserts_merge(state, "wal");
}

/* AUTOINCREMENT: new keys past the live sqlite_sequence value (never a
 * key the application used and deleted), and the sequence follows. */
static void test_merge_gives_new_keys_past_autoincrement(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	snap_merge_result res;
	snap_err e;
	int rc;

	const char *ddl = "CREATE TABLE seqd(id INTEGER PRIMARY KEY "
			  "AUTOINCREMENT, v);"
			  "INSERT INTO seqd(v) VALUES('x');";
	sql_on(env->db, ddl);
	sql_on(w.base, ddl);
	sql_on(w.edited, ddl);
	sql_on(w.edited, "INSERT INTO seqd(v) VALUES('e2');"
			 "INSERT INTO seqd(v) VALUES('e3')");
	sql_on(env->db, "INSERT INTO seqd(v) VALUES('a2');"
			"INSERT INTO seqd(v) VALUES('a3');"
			"INSERT INTO seqd(v) VALUES('a4');"
			"DELETE FROM seqd WHERE id = 4");
	rc = merge(st, &w, &res, &e);
	if (rc != 0)
		fail_msg("merge: %d %s", rc, e.msg);
	expect_text(env->db, "SELECT group_concat(id || v, ',') FROM (SELECT "
		    "id, v FROM seqd ORDER BY id)", "1x,2a2,3a3,5e2,6e3");
	assert_int_equal(int_on(env->db, "SELECT seq FROM sqlite_sequence "
				"WHERE name = 'seqd'"), 6);
	assert_int_equal(res.nrekeyed, 2);
	snap_merge_result_free(&res);
	sql_on(env->db, "INSERT INTO seqd(v) VALUES('app')");
	assert_int_equal(int_on(env->db, "SELECT max(id) FROM seqd"), 7);
	assert_true(tu_db_integrity_ok(env->db));
}

/* A UNIQUE index the two sides' new rows break together. */
static void test_merge_refuses_a_broken_unique_constraint(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	const char *ddl = "CREATE UNIQUE INDEX t_pad ON t(pad)";

	sql_on(env->db, ddl);
	sql_on(w.base, ddl);
	sql_on(w.edited, ddl);
	sql_on(w.edited, "INSERT INTO t(id, v, pad) VALUES(1001, 'e', 'mail')");
	sql_on(env->db, "INSERT INTO t(id, v, pad) VALUES(2001, 'a', 'mail')");
	expect_refusal(env, st, &w, -ESTALE, 1, "constraint");
}

/* A row the edit refers to, deleted live. */
static void test_merge_refuses_a_dangling_foreign_key(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	const char *ddl = "CREATE TABLE child(id INTEGER PRIMARY KEY, "
			  "t_id INTEGER REFERENCES t(id))";

	sql_on(env->db, ddl);
	sql_on(w.base, ddl);
	sql_on(w.edited, ddl);
	sql_on(w.edited, "INSERT INTO child VALUES(1, 9)");
	sql_on(env->db, "DELETE FROM t WHERE id = 9");
	expect_refusal(env, st, &w, -ESTALE, 1, "foreign-key");
}

/* The edit changed the schema. */
static void test_merge_refuses_a_schema_change_in_the_edit(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);

	sql_on(w.edited, "ALTER TABLE t ADD COLUMN extra;"
			 "UPDATE t SET extra = 1 WHERE id = 2");
	sql_on(env->db, "UPDATE t SET v = 'app' WHERE id = 4");
	expect_refusal(env, st, &w, -EOPNOTSUPP, 0, "schema");

	tu_db_backup_copy(env->db, w.base);
	tu_db_backup_copy(env->db, w.edited);
	sql_on(w.edited, "CREATE INDEX t_pad ON t(pad)");
	sql_on(env->db, "UPDATE t SET v = 'app2' WHERE id = 4");
	expect_refusal(env, st, &w, -EOPNOTSUPP, 0, "schema");
}

/* The live database changed its schema since the edit began. */
static void test_merge_refuses_a_schema_change_in_the_live_database(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);

	sql_on(w.edited, "UPDATE t SET v = 'edited' WHERE id = 2");
	sql_on(env->db, "CREATE TABLE migration(x)");
	expect_refusal(env, st, &w, -ESTALE, 0, "schema");
}

/* An edit that set PRAGMA pragma = 7 (and ran more) while the live
 * database changed a row is refused; the live one keeps its 0. */
static void header_refuses(tu_env *env, snap_store *st, const mworld *w,
			   const char *pragma, const char *more)
{
	char sql[160];

	tu_db_backup_copy(env->db, w->base);
	tu_db_backup_copy(env->db, w->edited);
	snprintf(sql, sizeof(sql), "PRAGMA %s = 7; %s", pragma, more);
	sql_on(w->edited, sql);
	sql_on(env->db, "UPDATE t SET v = v || '+' WHERE id = 4");
	expect_refusal(env, st, w, -EOPNOTSUPP, 0, pragma);
	snprintf(sql, sizeof(sql), "PRAGMA %s", pragma);
	assert_int_equal(int_on(env->db, sql), 0);
}

/* The edit changed a header field an application sets (user_version at
 * offset 60, application_id at 68): not a row, so not in a changeset. */
static void test_merge_refuses_a_header_field_change_in_the_edit(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);

	header_refuses(env, st, &w, "user_version", "");
	header_refuses(env, st, &w, "application_id",
		       "UPDATE t SET v = 'edited' WHERE id = 2");
}

/* Changed rows of a table without a PRIMARY KEY. */
static void test_merge_refuses_a_changed_table_without_primary_key(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);

	sql_on(w.edited, "INSERT INTO nopk VALUES(9, 'nine');"
			 "UPDATE t SET v = 'edited' WHERE id = 2");
	sql_on(env->db, "UPDATE t SET v = 'app' WHERE id = 4");
	expect_refusal(env, st, &w, -EOPNOTSUPP, 0, "nopk");
}

/* An edited file that is not an intact database. */
static void test_merge_refuses_a_damaged_edit(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	int fd;

	fd = open(w.edited, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "not a database", 14), 14);
	close(fd);
	sql_on(env->db, "UPDATE t SET v = 'app' WHERE id = 4");
	expect_refusal(env, st, &w, -EINVAL, 0, "edited.db");
}

/* Another restore holds the store's restore lock. */
static void test_merge_refuses_while_a_restore_runs(void **state)
{
	tu_env *env = *state;
	mworld w;
	snap_store *st = world(env, "delete", &w);
	char p[PATH_MAX];
	int fd;

	sql_on(w.edited, "UPDATE t SET v = 'edited' WHERE id = 2");
	sql_on(env->db, "UPDATE t SET v = 'app' WHERE id = 4");
	snprintf(p, sizeof(p), "%s/restore.lock", snap_store_dir(st));
	fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	expect_refusal(env, st, &w, -EBUSY, 0, "");
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_merge_applies_disjoint_rows_rollback),
		tu_test(test_merge_applies_disjoint_rows_wal),
		tu_test(test_merge_wal_beside_an_open_reader),
		tu_test(test_merge_ignores_unchanged_table_without_primary_key),
		tu_test(test_merge_of_no_row_change_does_nothing),
		tu_test(test_merge_does_not_fire_triggers_twice),
		tu_test(test_merge_keeps_the_larger_autoincrement),
		tu_test(test_merge_refuses_a_row_changed_on_both_sides_rollback),
		tu_test(test_merge_refuses_a_row_changed_on_both_sides_wal),
		tu_test(test_merge_refuses_other_columns_of_the_same_row),
		tu_test(test_merge_refuses_a_row_deleted_on_the_other_side),
		tu_test(test_merge_gives_same_table_inserts_new_keys_rollback),
		tu_test(test_merge_gives_same_table_inserts_new_keys_wal),
		tu_test(test_merge_gives_new_keys_past_autoincrement),
		tu_test(test_merge_refuses_a_chosen_key_inserted_on_both_sides),
		tu_test(test_merge_refuses_a_text_key_inserted_on_both_sides),
		tu_test(test_merge_refuses_new_keys_for_a_referenced_row),
		tu_test(test_merge_refuses_new_keys_in_a_referenced_table),
		tu_test(test_merge_refuses_a_broken_unique_constraint),
		tu_test(test_merge_refuses_a_dangling_foreign_key),
		tu_test(test_merge_refuses_a_schema_change_in_the_edit),
		tu_test(test_merge_refuses_a_schema_change_in_the_live_database),
		tu_test(test_merge_refuses_a_header_field_change_in_the_edit),
		tu_test(test_merge_refuses_a_changed_table_without_primary_key),
		tu_test(test_merge_refuses_a_damaged_edit),
		tu_test(test_merge_refuses_while_a_restore_runs),
	};
	return cmocka_run_group_tests_name("merge", tests, NULL, NULL);
}
