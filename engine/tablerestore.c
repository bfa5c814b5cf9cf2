/*
 * engine/tablerestore.c — one table of the live database restored from a
 * snapshot.
 *
 * snap_restore_table runs the restore skeleton of restore.c (restore.h:
 * snap_restore_run) with its own lock and copy steps: the store's restore
 * lock (full restores and table restores exclude each other), the snapshot
 * verified, then on a read-write connection to the live database with the
 * snapshot attached, BEGIN IMMEDIATE and the table checked under that write
 * lock (a refused request leaves no trace but the event), the safety
 * snapshot read under the same lock (no commit can fall between it and the
 * copy), DELETE + INSERT ... SELECT and COMMIT, and on a failure after the
 * copy the skeleton's rollback to the safety snapshot.
 * Foreign keys are off for the copy: a cascade would change other tables.
 * Violations that appear are counted (foreign_key_check of the table and of
 * the tables whose keys point at it, before and after) and reported, not
 * refused: restoring two related tables one after the other must be
 * possible, and the safety snapshot undoes it.  Triggers fire, as for any
 * DELETE and INSERT (documented in diff.h).  Rows keep their INTEGER
 * PRIMARY KEY; a table without one gets fresh rowids, as after VACUUM.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "diff_int.h"
#include "restore.h"
#include "store_int.h"

/* 0 when schema has `table` as an ordinary table; -EINVAL naming `what`
 * when it has none, or a virtual one. */
static int rt_table_exists(sqlite3 *db, const char *schema, const char *table,
			   const char *what, snap_err *err)
{
	char *sql = sqlite3_mprintf("SELECT ifnull((SELECT CASE WHEN "
				    "ifnull(sql,'') LIKE 'CREATE VIRTUAL "
				    "TABLE%%' THEN 2 ELSE 1 END FROM \"%w\"."
				    "sqlite_schema WHERE type='table' AND "
				    "name=?1 COLLATE NOCASE), 0)", schema);
	int64_t v = 0;
	int rc;

	if (!sql)
		return snap_err_set(err, -ENOMEM, "out of memory");
	rc = snap_diff_query_int(db, sql, table, &v, err);
	sqlite3_free(sql);
	if (rc)
		return rc;
	if (v == 0)
		return snap_err_set(err, -EINVAL, "%s has no table %s", what,
				    table);
	if (v == 2)
		return snap_err_set(err, -EINVAL, "%s is a virtual table in "
				    "%s; restore its shadow tables or the "
				    "whole snapshot", table, what);
	return 0;
}

/* Column names of c as "a, b, c" into out (for messages). */
static void rt_col_names(const diff_cols *c, char *out, size_t cap)
{
	size_t len = 0;
	int i;

	out[0] = '\0';
	for (i = 0; i < c->n && len < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s %s",
					i ? "," : "", c->c[i].name,
					c->c[i].type);
}

/* The table exists as an ordinary table in main (live) and snap with the
 * same columns; -EINVAL with the reason otherwise. */
static int rt_check(sqlite3 *db, snap_store *s, const snap_info *si,
		    const char *table, snap_err *err)
{
	char what[SNAP_NAME_MAX + 16], lw[4200];
	diff_cols cl, cs;
	int rc;

	if (sqlite3_strnicmp(table, "sqlite_", 7) == 0)
		return snap_err_set(err, -EINVAL, "%s is one of SQLite's own "
				    "tables; only user tables can be restored "
				    "one by one", table);
	snprintf(what, sizeof(what), "snapshot %s", si->name);
	snprintf(lw, sizeof(lw), "the live database %s", s->db_path);
	rc = rt_table_exists(db, "snap", table, what, err);
	if (!rc)
		rc = rt_table_exists(db, "main", table, lw, err);
	if (rc)
		return rc;
	rc = snap_diff_cols_load(db, "main", table, &cl, err);
	if (rc)
		return rc;
	rc = snap_diff_cols_load(db, "snap", table, &cs, err);
	if (!rc && !snap_diff_cols_same(&cl, &cs, 1)) {
		char a[400], b[400];

		rt_col_names(&cs, a, sizeof(a));
		rt_col_names(&cl, b, sizeof(b));
		rc = snap_err_set(err, -EINVAL, "table %s has other columns "
				  "in snapshot %s (%s) than in the live "
				  "database (%s); restore the whole snapshot "
				  "instead", table, si->name, a, b);
	}
	snap_diff_cols_free(&cl);
	snap_diff_cols_free(&cs);
	return rc;
}

/* Foreign-key violations that involve `table` in main: its own rows'
 * references, and other tables' references to it.  -1 when they cannot
 * be counted. */
static int64_t rt_fk_count(sqlite3 *db, const char *table)
{
	static const char sql[] =
		"SELECT count(*) FROM main.sqlite_schema m, "
		"pragma_foreign_key_check(m.name, 'main') c "
		"WHERE m.type = 'table' AND ifnull(m.sql,'') NOT LIKE "
		"'CREATE VIRTUAL TABLE%' AND (m.name = ?1 COLLATE NOCASE OR "
		"EXISTS (SELECT 1 FROM pragma_foreign_key_list(m.name, 'main') "
		"f WHERE f.\"table\" = ?1 COLLATE NOCASE)) AND (m.name = ?1 "
		"COLLATE NOCASE OR c.parent = ?1 COLLATE NOCASE)";
	int64_t n = -1;

	if (snap_diff_query_int(db, sql, table, &n, NULL))
		return -1;
	return n;
}

/* One table restore's state, for the restore skeleton's calls. */
typedef struct rt_state {
	snap_store *s;
	int64_t id;
	const snap_info *si;      /* the skeleton's catalog row */
	const char *table;
	snap_table_restore *res;
} rt_state;

/*
 * The skeleton's lock step: the snapshot attached as "snap", foreign keys
 * off (a cascade would change other tables), the write lock (BEGIN
 * IMMEDIATE, waiting for writers), and the table checked under it: a
 * refusal leaves no trace but the event.
 */
static int rt_lock(void *ctx, sqlite3 *db, const snap_info *si,
		   snap_err *err)
{
	rt_state *t = ctx;
	int rc = snap_diff_exec(db, sqlite3_mprintf("PRAGMA foreign_keys=OFF"),
				err);

	t->si = si;
	if (!rc)
		rc = snap_diff_attach(t->s, db, t->id, "snap", err);
	if (rc)
		return rc;
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, db, rc, "cannot start a write "
				       "transaction on %s (another writer "
				       "held it for %d s?)", t->s->db_path,
				       SNAP_LIVEDB_WAIT_MS / 1000);
	return rt_check(db, t->s, si, t->table, err);
}

/* The skeleton's copy step: DELETE and INSERT ... SELECT in the
 * transaction rt_lock opened, then COMMIT; on failure nothing changed. */
static int rt_copy(void *ctx, sqlite3 *db, snap_err *err)
{
	rt_state *t = ctx;
	snap_table_restore *res = t->res;
	diff_cols cl;
	char *cols = NULL;
	int64_t fk0, fk1;
	int n = 0, rc;

	rc = snap_diff_cols_load(db, "main", t->table, &cl, err);
	if (rc)
		goto out;
	cols = snap_diff_col_list(&cl, NULL, 0, &n);
	snap_diff_cols_free(&cl);
	if (!cols) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	fk0 = rt_fk_count(db, t->table);
	rc = snap_diff_exec(db, sqlite3_mprintf("DELETE FROM main.\"%w\"",
						t->table), err);
	if (rc)
		goto out;
	res->rows_before = sqlite3_changes64(db);
	rc = snap_diff_exec(db, sqlite3_mprintf(
		"INSERT INTO main.\"%w\"(%s) SELECT %s FROM snap.\"%w\"",
		t->table, cols, cols, t->table), err);
	if (rc)
		goto out;
	res->rows_after = sqlite3_changes64(db);
	fk1 = rt_fk_count(db, t->table);
	res->fk_violations = fk0 < 0 || fk1 < 0 ? -1 : fk1 > fk0 ? fk1 - fk0
			     : 0;
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "cannot commit the restored "
				     "table %s into %s", t->table,
				     t->s->db_path);
out:
	sqlite3_free(cols);
	if (rc && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (rc)
		snap_err_prefix(err, "copying table %s from %s", t->table,
				t->si->name);
	return rc;
}

/* The success event's text. */
static void rt_describe(void *ctx, char *out, size_t cap)
{
	rt_state *t = ctx;
	char fkmsg[64] = "";

	if (t->res->fk_violations > 0)
		snprintf(fkmsg, sizeof(fkmsg), "; new foreign-key violations: "
			 "%" PRId64, t->res->fk_violations);
	else if (t->res->fk_violations < 0)
		snprintf(fkmsg, sizeof(fkmsg), "; foreign keys not checked");
	snprintf(out, cap, "table %s restored into %s: %" PRId64 " rows (%"
		 PRId64 " before)%s", t->table, t->s->db_path,
		 t->res->rows_after, t->res->rows_before, fkmsg);
}

/* Replace table's rows in the live database with snapshot id's (see
 * diff.h), through the restore skeleton (restore.h). */
int snap_restore_table(snap_store *s, int64_t id, const char *table,
		       snap_table_restore *res, snap_err *err)
{
	snap_restore_copy cp = { .lock = rt_lock, .copy = rt_copy,
				 .describe = rt_describe };
	snap_restore_result rr;
	snap_table_restore tmp;
	char label[SNAP_LABEL_MAX + 1], what[SNAP_LABEL_MAX + 32];
	rt_state t = { .s = s, .id = id, .table = table };
	int rc;

	memset(&rr, 0, sizeof(rr));

	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	if (!table || !*table)
		return snap_err_set(err, -EINVAL, "restore of a table: no "
				    "table named");
	t.res = res;
	snprintf(label, sizeof(label), "before-table-%s", table);
	snprintf(what, sizeof(what), "restore of table %s", table);
	cp.safety_label = label;
	cp.what = what;
	cp.ctx = &t;
	rc = snap_restore_run(s, id, NULL, &cp, &rr, err);
	res->have_safety = rr.have_safety;
	res->safety = rr.safety;
	return rc;
}
