/*
 * tests/unit/test_diff.c — engine/diff.h: differences between snapshots and
 * the live database (by key through the session extension, by whole rows
 * for tables without a usable key), restore --dry-run as a diff against
 * the live database, one table restored from a snapshot, and the SQL
 * export re-imported by the sqlite3 shell.
 *
 * Counts are checked exactly against changes the test made itself; a
 * restored or re-imported database is compared with its source through a
 * per-table text of every value with its type (ordered, so tables without
 * a rowid compare too), not only through snap_diff_states, whose session
 * comparison treats 1 and 1.0 alike.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

/* Diff a to b; fail the test on error. */
static snap_diff diff_ok(snap_store *st, int64_t a, int64_t b)
{
	snap_diff d;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_diff_states(st, a, b, &d, &e);
	if (rc != 0)
		fail_msg("snap_diff_states(%lld, %lld): %d %s", (long long)a,
			 (long long)b, rc, e.msg);
	return d;
}

static const snap_table_diff *find_table(const snap_diff *d, const char *t)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->tables[i].table, t) == 0)
			return &d->tables[i];
	return NULL;
}

/* Table t is listed with exactly these counts. */
static void expect_table(const snap_diff *d, const char *t, int64_t added,
			 int64_t removed, int64_t changed, int by_key,
			 int only_in)
{
	const snap_table_diff *td = find_table(d, t);
	if (!td)
		fail_msg("table %s is not in the diff (%zu tables)", t, d->n);
	if (td->added != added || td->removed != removed ||
	    td->changed != changed || td->by_key != by_key ||
	    td->only_in != only_in)
		fail_msg("table %s: added %lld removed %lld changed %lld by_key "
			 "%d only_in %d; expected %lld %lld %lld %d %d", t,
			 (long long)td->added, (long long)td->removed,
			 (long long)td->changed, td->by_key, td->only_in,
			 (long long)added, (long long)removed,
			 (long long)changed, by_key, only_in);
}

/* Every value of table t with its type, rows sorted (malloc'd). */
static char *table_text(sqlite3 *db, const char *t)
{
	sqlite3_stmt *st = NULL;
	char *q = sqlite3_mprintf("SELECT * FROM \"%w\"", t);
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(db));
	sqlite3_free(q);
	sqlite3_str *row = sqlite3_str_new(db);
	for (int i = 0; i < sqlite3_column_count(st); i++)
		sqlite3_str_appendf(row, "%stypeof(\"%w\")||':'||quote(\"%w\")",
				    i ? "||'|'||" : "", sqlite3_column_name(st, i),
				    sqlite3_column_name(st, i));
	sqlite3_finalize(st);
	char *r = sqlite3_str_finish(row);
	char *qt = sqlite3_mprintf("\"%w\"", t);
	char *text = tu_query_text(db, "SELECT ifnull(group_concat(r, char(10)),"
				   " '') FROM (SELECT %s AS r FROM %s ORDER "
				   "BY r)", r, qt);
	sqlite3_free(r);
	sqlite3_free(qt);
	return text;
}

/* Schema (without root pages) and every user table's table_text. */
static char *db_text(sqlite3 *db)
{
	sqlite3_str *all = sqlite3_str_new(db);
	char *schema = tu_query_text(db, "SELECT group_concat(x, char(10)) FROM "
				     "(SELECT type||'|'||name||'|'||tbl_name||'|'"
				     "||ifnull(sql,'') AS x FROM sqlite_schema "
				     "ORDER BY x)");
	sqlite3_str_appendf(all, "%s\n", schema);
	free(schema);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type="
			       "'table' AND ifnull(sql,'') NOT LIKE 'CREATE "
			       "VIRTUAL%' ORDER BY name", -1, &st, NULL))
		fail_msg("db_text: %s", sqlite3_errmsg(db));
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		char *tt = table_text(db, t);
		sqlite3_str_appendf(all, "== %s\n%s\n", t, tt);
		free(tt);
	}
	sqlite3_finalize(st);
	char *r = sqlite3_str_finish(all);
	char *out = strdup(r);
	sqlite3_free(r);
	return out;
}

static char *file_text(const char *path)
{
	sqlite3 *db = tu_open(path);
	char *t = db_text(db);
	sqlite3_close(db);
	return t;
}

static char *snap_text(snap_store *st, int64_t id)
{
	sqlite3 *db = NULL;
	snap_err e;
	snap_err_clear(&e);
	if (snap_image_sqlite_open(st, id, &db, &e) != 0)
		fail_msg("snap_image_sqlite_open: %s", e.msg);
	char *t = db_text(db);
	sqlite3_close(db);
	return t;
}

static char *snap_table_text(snap_store *st, int64_t id, const char *t)
{
	sqlite3 *db = NULL;
	snap_err e;
	snap_err_clear(&e);
	if (snap_image_sqlite_open(st, id, &db, &e) != 0)
		fail_msg("snap_image_sqlite_open: %s", e.msg);
	char *r = table_text(db, t);
	sqlite3_close(db);
	return r;
}

static char *live_table_text(const char *path, const char *t)
{
	sqlite3 *db = tu_open(path);
	char *r = table_text(db, t);
	sqlite3_close(db);
	return r;
}

/* Run a shell command; its exit status. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
	char cmd[PATH_MAX * 3];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ---- diff ------------------------------------------------------------ */

/* A: t with 100 rows, u untouched.  B: 7 inserted, 5 deleted, 4 updated. */
static void test_diff_counts_keyed_inserts_deletes_updates(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 100);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE u(id INTEGER PRIMARY KEY, x); "
		"INSERT INTO u VALUES(1,'one'),(2,'two')");
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	tu_db_insert(db, 101, 107);
	tu_exec(db, "DELETE FROM t WHERE id IN (3, 10, 20, 30, 40)");
	tu_exec(db, "UPDATE t SET v = 'new-' || id WHERE id IN (50,51,52,53)");
	/* An UPDATE to the same value changes nothing. */
	tu_exec(db, "UPDATE t SET v = v WHERE id = 60");
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");

	snap_diff d = diff_ok(st, a.id, b.id);
	assert_int_equal(d.n, 1);
	expect_table(&d, "t", 7, 5, 4, 1, 0);
	assert_int_equal(d.tables[0].columns_changed, 0);
	assert_int_equal(d.schema_changed, 0);
	snap_diff_free(&d);
	/* Backwards, additions and removals swap. */
	d = diff_ok(st, b.id, a.id);
	assert_int_equal(d.n, 1);
	expect_table(&d, "t", 5, 7, 4, 1, 0);
	snap_diff_free(&d);
	/* A state against itself. */
	d = diff_ok(st, b.id, b.id);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.schema_changed, 0);
	snap_diff_free(&d);
	snap_diff_free(&d);    /* safe twice */
}

/* No PRIMARY KEY: multisets of whole rows, duplicates and types count. */
static void test_diff_without_primary_key_compares_multisets(void **state)
{
	tu_env *env = *state;
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE n(a, b); "
		"INSERT INTO n VALUES(1,'x'),(1,'x'),(1,'x'),(2,'y'),(3,'z'),"
		"(4,NULL),(5, 1),(6, X'00ff')");
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	/* Two of the three (1,'x') go, (3,'z') becomes (3,'Z'), (4,NULL)
	 * stays, 1 becomes 1.0 and '1' (same value, other types), two
	 * (7,'w') arrive, the blob changes one byte. */
	tu_exec(db, "DELETE FROM n WHERE rowid IN (SELECT rowid FROM n WHERE "
		"a = 1 LIMIT 2)");
	tu_exec(db, "UPDATE n SET b = 'Z' WHERE a = 3");
	tu_exec(db, "UPDATE n SET b = 1.0 WHERE a = 5");
	tu_exec(db, "INSERT INTO n VALUES(5, '1'), (7,'w'), (7,'w')");
	tu_exec(db, "UPDATE n SET b = X'00fe' WHERE a = 6");
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");

	snap_diff d = diff_ok(st, a.id, b.id);
	assert_int_equal(d.n, 1);
	/* removed: 2x(1,x), (3,z), (5,1), (6,00ff) = 5;
	 * added: (3,Z), (5,1.0), (5,'1'), 2x(7,w), (6,00fe) = 6. */
	expect_table(&d, "n", 6, 5, 0, 0, 0);
	snap_diff_free(&d);
	/* Rewriting every row with the same values is no difference. */
	db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE n2 AS SELECT * FROM n; DELETE FROM n; "
		"INSERT INTO n SELECT * FROM n2; DROP TABLE n2");
	sqlite3_close(db);
	snap_info c = tu_snap(st, "c");
	d = diff_ok(st, b.id, c.id);
	assert_int_equal(d.n, 0);
	snap_diff_free(&d);
}

/* WITHOUT ROWID tables go by key; a NULL in a rowid table's key falls back
 * to whole rows (the session would skip those rows). */
static void test_diff_without_rowid_and_null_keys(void **state)
{
	tu_env *env = *state;
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE w(k TEXT, j INT, v, PRIMARY KEY(k, j)) "
		"WITHOUT ROWID; "
		"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c "
		"WHERE i < 50) INSERT INTO w SELECT 'k' || i, i %% 3, i FROM c; "
		"CREATE TABLE nk(k TEXT PRIMARY KEY, v); "
		"INSERT INTO nk VALUES('a', 1), (NULL, 2), (NULL, 3), ('b', 4)");
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	tu_exec(db, "DELETE FROM w WHERE v <= 3; "
		"UPDATE w SET v = -v WHERE v BETWEEN 10 AND 19; "
		"INSERT INTO w VALUES('new', 0, 0), ('new', 1, 0); "
		"UPDATE nk SET v = 30 WHERE v = 3; "
		"INSERT INTO nk VALUES(NULL, 5)");
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");

	snap_diff d = diff_ok(st, a.id, b.id);
	assert_int_equal(d.n, 2);
	expect_table(&d, "w", 2, 3, 10, 1, 0);
	/* (NULL,3) -> (NULL,30) is one removed, one added; (NULL,5) added. */
	expect_table(&d, "nk", 2, 1, 0, 0, 0);
	assert_int_equal(d.schema_changed, 0);
	snap_diff_free(&d);
}

/* Created and dropped tables; schema changes without row changes. */
static void test_diff_created_dropped_and_altered_tables(void **state)
{
	tu_env *env = *state;
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE old(x); INSERT INTO old VALUES(1),(2),(3); "
		"CREATE TABLE keep(id INTEGER PRIMARY KEY, v); "
		"INSERT INTO keep VALUES(1,'a'),(2,'b'); "
		"CREATE TABLE \"we ird\"\"t\"(id INTEGER PRIMARY KEY, v); "
		"INSERT INTO \"we ird\"\"t\" VALUES(1, 1)");
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	tu_exec(db, "DROP TABLE old; CREATE TABLE new(y PRIMARY KEY); "
		"INSERT INTO new VALUES(1),(2),(3),(4); "
		"ALTER TABLE keep ADD COLUMN extra DEFAULT 7; "
		"UPDATE \"we ird\"\"t\" SET v = 2");
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");
	snap_diff d = diff_ok(st, a.id, b.id);
	assert_int_equal(d.schema_changed, 1);
	assert_int_equal(d.n, 4);
	expect_table(&d, "old", 0, 3, 0, 0, 1);
	expect_table(&d, "new", 4, 0, 0, 0, 2);
	expect_table(&d, "we ird\"t", 0, 0, 1, 1, 0);
	/* A new column: listed, rows compared on the columns in common. */
	expect_table(&d, "keep", 0, 0, 0, 0, 0);
	assert_int_equal(find_table(&d, "keep")->columns_changed, 1);
	/* In name order. */
	assert_string_equal(d.tables[0].table, "keep");
	assert_string_equal(d.tables[3].table, "we ird\"t");
	snap_diff_free(&d);

	/* Only an index: the schema changed, no table is listed. */
	db = tu_open(env->db);
	tu_exec(db, "CREATE INDEX new_y ON new(y)");
	sqlite3_close(db);
	snap_info c = tu_snap(st, "c");
	d = diff_ok(st, b.id, c.id);
	assert_int_equal(d.schema_changed, 1);
	assert_int_equal(d.n, 0);
	snap_diff_free(&d);
}

/* restore --dry-run: diff from the live database to a snapshot, in both
 * journal modes, while another connection writes; zero after a restore. */
static void dry_run_against_live(tu_env *env, const char *mode)
{
	snap_store *st = tu_live_store(env, mode, 4096, 200);
	snap_info a = tu_snap(st, "a");
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "PRAGMA wal_autocheckpoint=0");
	tu_exec(w, "DELETE FROM t WHERE id > 190");
	tu_exec(w, "UPDATE t SET v = 'changed' WHERE id <= 3");
	tu_db_insert(w, 1000, 1019);
	tu_exec(w, "CREATE TABLE extra(z)");
	/* w stays open: in WAL mode its commits are only in the WAL. */
	snap_diff d = diff_ok(st, SNAP_DIFF_LIVE, a.id);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.schema_changed, 1);
	/* Restoring a would remove the 20 new rows, bring back 10, undo 3. */
	expect_table(&d, "t", 10, 20, 3, 1, 0);
	expect_table(&d, "extra", 0, 0, 0, 0, 1);
	snap_diff_free(&d);
	d = diff_ok(st, a.id, SNAP_DIFF_LIVE);
	expect_table(&d, "t", 20, 10, 3, 1, 0);
	expect_table(&d, "extra", 0, 0, 0, 0, 2);
	snap_diff_free(&d);
	/* engine/PITFALLS.md 2: the diff never closed the file under w's
	 * locks. */
	tu_exec(w, "BEGIN");
	assert_int_equal(tu_query_int(w, "SELECT count(*) FROM t"), 210);
	assert_true(tu_reader_lock_held(env->db));
	d = diff_ok(st, SNAP_DIFF_LIVE, a.id);
	snap_diff_free(&d);
	assert_true(tu_reader_lock_held(env->db));
	tu_exec(w, "COMMIT");
	sqlite3_close(w);

	snap_restore_result res;
	snap_err e;
	snap_err_clear(&e);
	if (snap_restore(st, a.id, &res, &e) != 0)
		fail_msg("restore: %s", e.msg);
	d = diff_ok(st, SNAP_DIFF_LIVE, a.id);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.schema_changed, 0);
	snap_diff_free(&d);
}

static void test_diff_live_is_restore_dry_run_rollback(void **state)
{
	dry_run_against_live(*state, "delete");
}

static void test_diff_live_is_restore_dry_run_wal(void **state)
{
	dry_run_against_live(*state, "wal");
}

static void test_diff_of_unknown_states_is_enoent(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	snap_info a = tu_snap(st, "a");
	snap_diff d;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_diff_states(st, a.id, 999, &d, &e), -ENOENT);
	assert_int_equal(d.n, 0);
	assert_null(d.tables);
	assert_int_equal(snap_diff_states(st, 999, a.id, &d, &e), -ENOENT);
	assert_int_equal(unlink(env->db), 0);
	snap_err_clear(&e);
	assert_int_equal(snap_diff_states(st, SNAP_DIFF_LIVE, a.id, &d, &e),
			 -ENOENT);
	assert_non_null(strstr(e.msg, env->db));
}

/* ---- restore of one table -------------------------------------------- */

/* Live: t (rows 1..100), u, and a log table filled by a trigger on t. */
static void make_two_tables(tu_env *env, const char *mode)
{
	tu_db_create(env->db, mode, 4096, 100);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE u(id INTEGER PRIMARY KEY AUTOINCREMENT, x); "
		"INSERT INTO u(x) VALUES('u1'),('u2'),('u3'); "
		"CREATE TABLE log(what); "
		"CREATE TRIGGER t_del AFTER DELETE ON t BEGIN "
		"INSERT INTO log VALUES('del'); END");
	sqlite3_close(db);
}

static int restore_table(snap_store *st, int64_t id, const char *t,
			 snap_table_restore *res, snap_err *e)
{
	memset(res, 0x55, sizeof(*res));
	snap_err_clear(e);
	return snap_restore_table(st, id, t, res, e);
}

static void test_restore_table_restores_exactly_one_table(void **state)
{
	tu_env *env = *state;
	make_two_tables(env, "delete");
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	char *t_a = snap_table_text(st, a.id, "t");
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "DELETE FROM t WHERE id > 50; UPDATE t SET v = 'x'; "
		"INSERT INTO u(x) VALUES('u4'); DELETE FROM log");
	tu_db_insert(db, 500, 509);
	sqlite3_close(db);
	char *u_now = live_table_text(env->db, "u");
	char *t_now = live_table_text(env->db, "t");
	int64_t nsnap = tu_count(st);

	snap_table_restore res;
	snap_err e;
	int rc = restore_table(st, a.id, "t", &res, &e);
	if (rc != 0)
		fail_msg("restore_table: %d %s", rc, e.msg);
	char *t_after = live_table_text(env->db, "t");
	char *u_after = live_table_text(env->db, "u");
	assert_string_equal(t_after, t_a);
	assert_string_equal(u_after, u_now);
	assert_int_equal(res.rows_before, 60);
	assert_int_equal(res.rows_after, 100);
	assert_int_equal(res.fk_violations, 0);
	/* The safety snapshot holds the table as it was. */
	assert_int_equal(res.have_safety, 1);
	assert_int_equal(res.safety.kind, SNAP_KIND_PRE_RESTORE);
	assert_string_equal(res.safety.label, "before-table-t");
	assert_int_equal(tu_count(st), nsnap + 1);
	char *t_safety = snap_table_text(st, res.safety.id, "t");
	assert_string_equal(t_safety, t_now);
	/* Only t differs from the snapshot now, and the trigger's log. */
	snap_diff d = diff_ok(st, a.id, SNAP_DIFF_LIVE);
	assert_int_equal(d.n, 2);
	expect_table(&d, "u", 1, 0, 0, 1, 0);
	/* The DELETE fired t's trigger once per row (documented). */
	expect_table(&d, "log", 60, 0, 0, 0, 0);
	snap_diff_free(&d);
	assert_true(tu_db_integrity_ok(env->db));
	assert_int_equal(tu_count_events(st, 0, "restore", 1,
					 "table t restored"), 1);
	free(t_a);
	free(u_now);
	free(t_now);
	free(t_after);
	free(u_after);
	free(t_safety);
}

/* Refusals leave the live database as it was and take no snapshot. */
static void test_restore_table_refuses_missing_or_different_tables(void **state)
{
	tu_env *env = *state;
	make_two_tables(env, "delete");
	snap_store *st = tu_store(env);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE gone(x); CREATE TABLE later_changed(a, b); "
		"CREATE VIRTUAL TABLE ft USING fts5(body)");
	sqlite3_close(db);
	snap_info a = tu_snap(st, "a");
	db = tu_open(env->db);
	tu_exec(db, "DROP TABLE gone; CREATE TABLE fresh(x); "
		"ALTER TABLE later_changed ADD COLUMN c; DELETE FROM t");
	sqlite3_close(db);
	char *before = file_text(env->db), *now;
	int64_t nsnap = tu_count(st);
	static const char *const bad[] = {
		"gone", "fresh", "later_changed", "no_such", "ft",
		"sqlite_sequence", "",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snap_table_restore res;
		snap_err e;
		int rc = restore_table(st, a.id, bad[i], &res, &e);
		if (rc != -EINVAL)
			fail_msg("restore of table '%s': %d (%s), expected "
				 "-EINVAL", bad[i], rc, e.msg);
		assert_true(strlen(e.msg) > 0);
		assert_int_equal(res.have_safety, 0);
		now = file_text(env->db);
		assert_string_equal(now, before);
		free(now);
		assert_int_equal(tu_count(st), nsnap);
	}
	snap_table_restore res;
	snap_err e;
	/* The message names what differs. */
	restore_table(st, a.id, "later_changed", &res, &e);
	assert_non_null(strstr(e.msg, "columns"));
	assert_int_equal(restore_table(st, a.id + 99, "t", &res, &e), -ENOENT);
	assert_int_equal(restore_table(st, a.id, NULL, &res, &e), -EINVAL);
	now = file_text(env->db);
	assert_string_equal(now, before);
	assert_int_equal(tu_count(st), nsnap);
	/* Refusals are recorded. */
	assert_true(tu_count_events(st, 0, "restore", 0, "gone") >= 1);
	free(now);
	free(before);
}

/* WAL live database with a writer open and a reader inside a transaction:
 * the reader keeps its view until it ends, then sees the restored table. */
static void test_restore_table_in_wal_mode_beside_connections(void **state)
{
	tu_env *env = *state;
	make_two_tables(env, "wal");
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	char *t_a = snap_table_text(st, a.id, "t");
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "PRAGMA wal_autocheckpoint=0");
	tu_exec(w, "DELETE FROM t WHERE id %% 2 = 0");
	sqlite3 *r = tu_open(env->db);
	tu_exec(r, "BEGIN");
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), 50);
	assert_true(tu_reader_lock_held(env->db));

	snap_table_restore res;
	snap_err e;
	int rc = restore_table(st, a.id, "T", &res, &e);   /* any case */
	if (rc != 0)
		fail_msg("restore_table: %d %s", rc, e.msg);
	assert_true(tu_reader_lock_held(env->db));
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), 50);
	tu_exec(r, "COMMIT");
	char *t_r = table_text(r, "t");
	char *t_w = table_text(w, "t");
	assert_string_equal(t_r, t_a);
	assert_string_equal(t_w, t_a);
	/* The writer goes on writing. */
	tu_db_insert(w, 101, 101);
	char *jm = tu_query_text(r, "PRAGMA journal_mode");
	assert_string_equal(jm, "wal");
	/* The safety snapshot has the writer's commits from the WAL. */
	assert_int_equal(res.rows_before, 50);
	snap_diff d = diff_ok(st, a.id, res.safety.id);
	expect_table(&d, "t", 0, 50, 0, 1, 0);
	snap_diff_free(&d);
	sqlite3_close(r);
	sqlite3_close(w);
	assert_true(tu_db_integrity_ok(env->db));
	free(jm);
	free(t_a);
	free(t_r);
	free(t_w);
}

/* Foreign keys: no cascade into other tables, new violations counted;
 * AUTOINCREMENT never goes back. */
static void test_restore_table_counts_foreign_key_violations(void **state)
{
	tu_env *env = *state;
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "PRAGMA foreign_keys=ON; "
		"CREATE TABLE p(id INTEGER PRIMARY KEY AUTOINCREMENT, name); "
		"CREATE TABLE c(id INTEGER PRIMARY KEY, "
		"p INTEGER REFERENCES p(id) ON DELETE CASCADE); "
		"INSERT INTO p(name) VALUES('a'),('b'); "
		"INSERT INTO c VALUES(1, 1), (2, 2)");
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	tu_exec(db, "INSERT INTO p(name) VALUES('c'),('d'),('e'); "
		"INSERT INTO c VALUES(3, 3), (4, 4)");
	sqlite3_close(db);
	snap_table_restore res;
	snap_err e;
	int rc = restore_table(st, a.id, "p", &res, &e);
	if (rc != 0)
		fail_msg("restore_table: %d %s", rc, e.msg);
	db = tu_open(env->db);
	/* No cascade: c keeps its 4 rows, 2 of them now dangle. */
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM c"), 4);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM p"), 2);
	assert_int_equal(res.fk_violations, 2);
	/* AUTOINCREMENT keeps the highest id ever used. */
	assert_int_equal(tu_query_int(db, "SELECT seq FROM sqlite_sequence "
				      "WHERE name = 'p'"), 5);
	tu_exec(db, "INSERT INTO p(name) VALUES('f')");
	assert_int_equal(tu_query_int(db, "SELECT max(id) FROM p"), 6);
	sqlite3_close(db);
	assert_int_equal(tu_count_events(st, 0, "restore", 1,
					 "new foreign-key violations: 2"), 1);
}

/* A corrupt snapshot, a running restore: refused, nothing changed. */
static void test_restore_table_refuses_corrupt_snapshot_and_busy(void **state)
{
	tu_env *env = *state;
	make_two_tables(env, "delete");
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "DELETE FROM t");
	sqlite3_close(db);
	char before[65], now[65];
	tu_db_digest(env->db, before);
	int64_t nsnap = tu_count(st);

	/* Another restore holds the lock. */
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/restore.lock", snap_store_dir(st));
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	snap_table_restore res;
	snap_err e;
	assert_int_equal(restore_table(st, a.id, "t", &res, &e), -EBUSY);
	close(fd);

	tu_corrupt_page(st, tu_page_id(st, a.id, tu_unique_page(st, -1,
								 a.id)));
	assert_int_equal(restore_table(st, a.id, "t", &res, &e), -EBADMSG);
	assert_int_equal(res.have_safety, 0);
	tu_db_digest(env->db, now);
	assert_string_equal(now, before);
	assert_int_equal(tu_count(st), nsnap);
}

/* ---- a writer racing a table restore ---------------------------------- */

/* A writer that tries one commit into t (busy timeout 0) whenever any
 * connection of the engine on the live database starts a statement. */
static struct {
	char live[PATH_MAX];   /* the live database ("" : not racing) */
	sqlite3 *w;            /* the writer's connection */
	int inside;            /* the writer is writing: no recursion */
	int next;              /* its next row id */
	int committed[256];    /* row ids it committed */
	int ncommitted;
	int refused;           /* tries the write lock refused */
} race;

static int race_stmt(unsigned type, void *ctx, void *p, void *x)
{
	char sql[80];

	(void)type; (void)ctx; (void)p; (void)x;
	if (race.inside || !race.w || race.ncommitted == 256)
		return 0;
	race.inside = 1;
	snprintf(sql, sizeof(sql), "INSERT INTO t(id, v) VALUES(%d, 'race')",
		 race.next);
	if (sqlite3_exec(race.w, sql, NULL, NULL, NULL) == SQLITE_OK)
		race.committed[race.ncommitted++] = race.next;
	else
		race.refused++;
	race.next++;
	race.inside = 0;
	return 0;
}

/* Auto extension: trace every new connection on the live database. */
static int race_attach(sqlite3 *db, const char **msg, const void *api)
{
	const char *f = sqlite3_db_filename(db, "main");
	struct stat a, b;

	(void)msg; (void)api;
	/* The same file (the engine names it through its directory's
	 * descriptor, /proc/self/fd/N/live.db: engine/anchor.c). */
	if (race.live[0] && !race.inside && f && *f && stat(f, &a) == 0 &&
	    stat(race.live, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino)
		sqlite3_trace_v2(db, SQLITE_TRACE_STMT, race_stmt, NULL);
	return SQLITE_OK;
}

/* 1 when row id is in t of the connection db. */
static int has_row(sqlite3 *db, int id)
{
	return tu_query_int(db, "SELECT count(*) FROM t WHERE id = %d", id) == 1;
}

/*
 * The safety snapshot of a table restore is read under the live write
 * lock: a writer that commits at any moment of the restore either is
 * refused (the lock is held) or its row is in the safety snapshot or in
 * the live table afterwards; none is lost between the safety snapshot and
 * the copy that deletes every row of t.  Rollback and WAL mode (the
 * tests below).
 */
static void restore_table_racing_a_writer(tu_env *env, const char *mode)
{
	{
		make_two_tables(env, mode);
		snap_store *st = tu_store(env);
		snap_info a = tu_snap(st, "a");
		snap_table_restore res;
		snap_err e;

		memset(&race, 0, sizeof(race));
		race.next = 10000;
		race.inside = 1;
		race.w = tu_open(env->db);
		sqlite3_busy_timeout(race.w, 0);
		race.inside = 0;
		assert_non_null(realpath(env->db, race.live));
		sqlite3_auto_extension((void (*)(void))race_attach);
		int rc = restore_table(st, a.id, "t", &res, &e);
		sqlite3_cancel_auto_extension((void (*)(void))race_attach);
		race.live[0] = '\0';
		sqlite3_close(race.w);
		race.w = NULL;
		if (rc != 0)
			fail_msg("restore_table (%s): %d %s", mode, rc,
				 e.msg);
		/* The writer raced: some commits went in, some were
		 * refused by the restore's write lock. */
		assert_true(race.ncommitted > 0);
		assert_true(race.refused > 0);
		sqlite3 *safety = NULL, *live = tu_open(env->db);
		snap_err_clear(&e);
		assert_int_equal(snap_image_sqlite_open(st, res.safety.id,
							&safety, &e), 0);
		for (int i = 0; i < race.ncommitted; i++)
			if (!has_row(safety, race.committed[i]) &&
			    !has_row(live, race.committed[i]))
				fail_msg("%s: row %d was committed during the "
					 "restore and is in neither the safety "
					 "snapshot nor the live database",
					 mode, race.committed[i]);
		sqlite3_close(safety);
		sqlite3_close(live);
	}
}

static void test_restore_table_safety_snapshot_under_the_write_lock(
	void **state)
{
	restore_table_racing_a_writer(*state, "delete");
}

static void test_restore_table_safety_snapshot_under_the_write_lock_wal(
	void **state)
{
	restore_table_racing_a_writer(*state, "wal");
}

/* ---- SQL export ------------------------------------------------------ */

static const char tricky_sql[] =
	"CREATE TABLE \"odd \"\"name\"\"\"(\"col one\" TEXT, \"it's\" REAL, "
	"\"b\"\"q\" BLOB, n INTEGER);"
	"INSERT INTO \"odd \"\"name\"\"\" VALUES"
	"('it''s \"quoted\"', 0.1, X'00ff10', NULL),"
	"('line1\nline2', 1e300, X'', 9223372036854775807),"
	"('ünïcødé ☃ 日本', -0.30000000000000004, zeroblob(3), -1),"
	"(NULL, 1e999, NULL, 0), ('', -1e999, 'text in blob col', 1.5),"
	"('dup', 2.5, NULL, 1), ('dup', 2.5, NULL, 1);"
	"CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v UNIQUE);"
	"INSERT INTO a(v) VALUES('x'),('y'),('z'); DELETE FROM a WHERE v='z';"
	"CREATE TABLE wr(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
	"INSERT INTO wr VALUES('b', 1), ('a', 2.0), ('c', '3');"
	"CREATE TABLE g(x INT, y INT GENERATED ALWAYS AS (x * 2) STORED, "
	"z GENERATED ALWAYS AS (x + 1) VIRTUAL);"
	"INSERT INTO g(x) VALUES(1), (2);"
	"CREATE INDEX \"idx \"\"odd\"\"\" ON \"odd \"\"name\"\"\"(n);"
	"CREATE VIEW v AS SELECT v, id FROM a;"
	"CREATE TABLE log(m);"
	"CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO log "
	"VALUES('ins;' || new.v); END;"
	"INSERT INTO a(v) VALUES('w');"
	"CREATE VIRTUAL TABLE ft USING fts5(body);"
	"INSERT INTO ft VALUES('the quick brown fox'), ('lazy dogs');"
	"ANALYZE;";

/* Export snapshot id to <dir>/<name>.sql and load it into <name>.db with
 * the sqlite3 shell. */
static void export_and_import(tu_env *env, snap_store *st, int64_t id,
			      const char *name, char *dbpath)
{
	char sql[PATH_MAX], errp[PATH_MAX], n[64];
	snprintf(n, sizeof(n), "%s.sql", name);
	tu_path(env, sql, n);
	snprintf(n, sizeof(n), "%s.db", name);
	tu_path(env, dbpath, n);
	snprintf(n, sizeof(n), "%s.err", name);
	tu_path(env, errp, n);
	FILE *f = fopen(sql, "w");
	assert_non_null(f);
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_export_sql(st, id, f, &e);
	assert_int_equal(fclose(f), 0);
	if (rc != 0)
		fail_msg("snap_export_sql: %d %s", rc, e.msg);
	/* -bail: the first failing statement fails the import. */
	rc = run("sqlite3 -bail '%s' < '%s' 2> '%s'", dbpath, sql, errp);
	if (rc != 0) {
		size_t len = 0;
		uint8_t *msg = tu_read_file(errp, &len);
		fail_msg("sqlite3 import of %s failed (%d): %.*s", sql, rc,
			 (int)len, (const char *)msg);
	}
	size_t len = 1;
	free(tu_read_file(errp, &len));
	assert_int_equal(len, 0);
}

/* An export's text after its first line (malloc'd). */
static char *sql_body(const char *path)
{
	size_t len = 0;
	char *b = (char *)tu_read_file(path, &len);
	char *nl = memchr(b, '\n', len);
	assert_non_null(nl);
	char *r = strndup(nl + 1, len - (size_t)(nl + 1 - b));
	free(b);
	return r;
}

static void test_export_sql_reimports_to_the_same_content(void **state)
{
	tu_env *env = *state;
	if (run("sqlite3 -version > /dev/null 2>&1") != 0)
		skip();
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "%s", tricky_sql);
	sqlite3_close(db);
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "tricky");
	char newdb[PATH_MAX];
	export_and_import(env, st, a.id, "new", newdb);

	/* Same schema and the same values with the same types. */
	char *want = snap_text(st, a.id);
	char *got = file_text(newdb);
	assert_string_equal(got, want);
	free(want);
	free(got);
	/* Imported as a snapshot, the engine sees no difference either. */
	snap_create_opts o = { .kind = SNAP_KIND_IMPORT, .label = "reimport" };
	snap_info b;
	snap_err e;
	snap_err_clear(&e);
	if (snap_snapshot_import(st, newdb, &o, &b, &e) != 0)
		fail_msg("import: %s", e.msg);
	snap_diff d = diff_ok(st, a.id, b.id);
	assert_int_equal(d.n, 0);
	assert_int_equal(d.schema_changed, 0);
	snap_diff_free(&d);

	db = tu_open(newdb);
	char *r = tu_query_text(db, "PRAGMA integrity_check");
	assert_string_equal(r, "ok");
	free(r);
	/* Infinities, the largest integer, the real 0.1 exactly. */
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM \"odd \"\"name"
				      "\"\"\" WHERE \"it's\" = 1e999 OR \"it's\" "
				      "= -1e999"), 2);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM \"odd \"\"name"
				      "\"\"\" WHERE \"it's\" = 0.1 AND \"b\"\"q\" "
				      "= X'00ff10'"), 1);
	assert_int_equal(tu_query_int(db, "SELECT max(n) FROM \"odd \"\"name"
				      "\"\"\""), INT64_MAX);
	/* AUTOINCREMENT state, the view, the trigger, the FTS index. */
	assert_int_equal(tu_query_int(db, "SELECT seq FROM sqlite_sequence "
				      "WHERE name = 'a'"), 4);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM v"), 3);
	tu_exec(db, "INSERT INTO a(v) VALUES('after')");
	assert_int_equal(tu_query_int(db, "SELECT max(id) FROM a"), 5);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM log"), 2);
	assert_int_equal(tu_query_int(db, "SELECT rowid FROM ft WHERE ft "
				      "MATCH 'lazy'"), 2);
	assert_int_equal(tu_query_int(db, "SELECT y + z FROM g WHERE x = 2"),
			 7);
	sqlite3_close(db);

	/* ... and exactly the row added to the re-imported database since,
	 * with the row its trigger logged. */
	snap_info c;
	o.label = "after";
	if (snap_snapshot_import(st, newdb, &o, &c, &e) != 0)
		fail_msg("import: %s", e.msg);
	d = diff_ok(st, a.id, c.id);
	assert_int_equal(d.n, 2);
	expect_table(&d, "a", 1, 0, 0, 1, 0);
	expect_table(&d, "log", 1, 0, 0, 0, 0);
	snap_diff_free(&d);

	/* A second export of the re-imported database is the same text
	 * (but for the first comment line, which names the snapshot). */
	char again[PATH_MAX];
	export_and_import(env, st, b.id, "again", again);
	char p1[PATH_MAX], p2[PATH_MAX];
	char *s1 = sql_body(tu_path(env, p1, "new.sql"));
	char *s2 = sql_body(tu_path(env, p2, "again.sql"));
	assert_string_equal(s1, s2);
	free(s1);
	free(s2);
}

/* sqlite_stat1 rows come back too (ANALYZE sqlite_schema first). */
static void test_export_sql_keeps_statistics_and_live_state(void **state)
{
	tu_env *env = *state;
	if (run("sqlite3 -version > /dev/null 2>&1") != 0)
		skip();
	tu_db_create(env->db, "wal", 4096, 50);
	sqlite3 *w = tu_open(env->db);
	tu_exec(w, "ANALYZE; PRAGMA wal_autocheckpoint=0");
	tu_db_insert(w, 51, 60);     /* only in the WAL */
	snap_store *st = tu_store(env);
	char newdb[PATH_MAX];
	/* The live database as a state: its WAL commits included. */
	export_and_import(env, st, SNAP_DIFF_LIVE, "fromlive", newdb);
	char *want = db_text(w);
	char *got = file_text(newdb);
	assert_string_equal(got, want);
	sqlite3 *n = tu_open(newdb);
	assert_true(tu_query_int(n, "SELECT count(*) FROM sqlite_stat1") > 0);
	assert_int_equal(tu_query_int(n, "SELECT count(*) FROM t"), 60);
	sqlite3_close(n);
	sqlite3_close(w);
	free(want);
	free(got);
}

static void test_export_sql_reports_write_errors(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	FILE *f = fopen("/dev/full", "w");
	if (!f)
		skip();
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_export_sql(st, a.id, f, &e);
	fclose(f);
	assert_int_equal(rc, -EIO);
	assert_non_null(strstr(e.msg, a.name));
	snap_err_clear(&e);
	f = fopen("/dev/null", "w");
	assert_int_equal(snap_export_sql(st, a.id + 5, f, &e), -ENOENT);
	fclose(f);
}

/* A stored page that decodes to another page's content (the codec cannot
 * tell): export --sql and diff read the snapshot through the store VFS,
 * which proves their pages, and fail instead of dumping or counting the
 * wrong rows. */
static void test_export_sql_and_diff_refuse_a_damaged_snapshot(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	uint32_t pg = a.page_count - 1;
	FILE *f = fopen("/dev/null", "w");
	snap_diff d;
	snap_err e;

	assert_non_null(f);
	assert_true(pg > 3);
	tu_swap_page_data(st, tu_page_id(st, a.id, pg),
			  tu_page_id(st, a.id, pg - 1));
	snap_err_clear(&e);
	assert_true(snap_export_sql(st, a.id, f, &e) < 0);
	assert_non_null(strstr(e.msg, a.name));
	assert_non_null(strstr(e.msg, "does not match its hash"));
	fclose(f);
	snap_err_clear(&e);
	memset(&d, 0, sizeof(d));
	assert_true(snap_diff_states(st, a.id, SNAP_DIFF_LIVE, &d, &e) < 0);
	snap_diff_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_diff_counts_keyed_inserts_deletes_updates),
		tu_test(test_diff_without_primary_key_compares_multisets),
		tu_test(test_diff_without_rowid_and_null_keys),
		tu_test(test_diff_created_dropped_and_altered_tables),
		tu_test(test_diff_live_is_restore_dry_run_rollback),
		tu_test(test_diff_live_is_restore_dry_run_wal),
		tu_test(test_diff_of_unknown_states_is_enoent),
		tu_test(test_export_sql_and_diff_refuse_a_damaged_snapshot),
		tu_test(test_restore_table_restores_exactly_one_table),
		tu_test(test_restore_table_refuses_missing_or_different_tables),
		tu_test(test_restore_table_in_wal_mode_beside_connections),
		tu_test(test_restore_table_counts_foreign_key_violations),
		tu_test(test_restore_table_refuses_corrupt_snapshot_and_busy),
		tu_test(test_restore_table_safety_snapshot_under_the_write_lock),
		tu_test(test_restore_table_safety_snapshot_under_the_write_lock_wal),
		tu_test(test_export_sql_reimports_to_the_same_content),
		tu_test(test_export_sql_keeps_statistics_and_live_state),
		tu_test(test_export_sql_reports_write_errors),
	};
	return cmocka_run_group_tests_name("diff", tests, NULL, NULL);
}
