/*
 * engine/diff.c — differences between two states of the database.  What
 * table restore (tablerestore.c) and SQL export (export.c) share with it,
 * opening and attaching states and reading their columns, is here too
 * (diff_int.h).
 *
 * Two states on one connection: an empty in-memory "main" with state A
 * ATTACHed as "a" and state B as "b" — a snapshot as
 * "file:snapfs-snapshot-<id>?immutable=1&vfs=<store VFS>", the live file as
 * "file:<path>?mode=ro&vfs=<default VFS>" (an ATTACH otherwise inherits the
 * main database's VFS).  The main database is not a snapshot because SQLite
 * opens temporary files (the sorter of a large GROUP BY) through the main
 * database's VFS, and the store VFS opens nothing but snapshots.  The live
 * file is only ever opened through SQLite (engine/PITFALLS.md 2).  Everything
 * is read inside one read transaction, so a live database written meanwhile is
 * seen as of one commit.
 *
 * Per table, two ways to count:
 *   by key    the session extension.  One session per table, attached to
 *             that table (engine/PITFALLS.md 22: sqlite3session_diff records
 *             nothing for a table that was not attached), sqlite3session_diff
 *             from "a", and the changeset's INSERT/DELETE/UPDATE operations
 *             are rows added/removed/changed.  The session compares values
 *             with SQL's IS, so 1 and 1.0 are the same value here.  One
 *             session per table keeps only one table's changes in memory.
 *   by row    everything the session cannot do: no declared PRIMARY KEY
 *             (the session ignores such tables), a NULL in a key column
 *             (the session skips those rows silently), column lists that
 *             differ between the states (sqlite3session_diff fails with
 *             SQLITE_SCHEMA).  Both tables' rows go through one UNION ALL,
 *             +1 for B and -1 for A, grouped by every column (BINARY and
 *             typeof, so 'a'/'A', 1/1.0/'1' all differ): a group's sum is
 *             how many more copies B has.  This is EXCEPT ALL, which SQLite
 *             lacks, in both directions at once; duplicates count.  A
 *             changed row is one removed and one added.
 * Virtual tables are skipped (their shadow tables are ordinary tables and
 * are compared), and so are SQLite's own sqlite_% tables.  The schema is
 * "changed" when any (type, name, tbl_name, sql) row of sqlite_schema is in
 * one state only.
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
#include "events.h"
#include "image.h"
#include "snapshot.h"
#include "store_int.h"
#include "sys.h"
#include "verify.h"


/* --- schema ------------------------------------------------------------- */

/* The tables of one schema, by name (NOCASE, SQLite's name rule). */
static int diff_tables(sqlite3 *db, const char *schema, diff_tab **out,
		       size_t *n, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	char *sql = sqlite3_mprintf("SELECT name, ifnull(sql,'') LIKE "
				    "'CREATE VIRTUAL TABLE%%' FROM \"%w\"."
				    "sqlite_schema WHERE type='table' AND name "
				    "NOT LIKE 'sqlite\\_%%' ESCAPE '\\' ORDER BY "
				    "name COLLATE NOCASE", schema);
	diff_tab *v = NULL;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if (!sql)
		return snap_err_set(err, -ENOMEM, "out of memory");
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	sqlite3_free(sql);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (snap_array_grow(&v, &cap, *n, sizeof(*v), 16)) {
			rc = SQLITE_NOMEM;
			break;
		}
		v[*n].name = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
		v[*n].virt = sqlite3_column_int(st, 1);
		if (!v[(*n)++].name) {
			rc = SQLITE_NOMEM;
			break;
		}
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	*out = v;
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, db, rc, "cannot list the tables");
	return 0;
}

/* Free n tables of a list and the list. */
static void diff_tables_free(diff_tab *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		sqlite3_free(v[i].name);
	free(v);
}


/* 1 in *changed when sqlite_schema differs between schemas x and y. */
int snap_diff_schema_changed(sqlite3 *db, const char *x, const char *y,
			     int *changed, snap_err *err)
{
#define DIFF_SCHEMA_ROWS "SELECT type, name, tbl_name, sql FROM \"%w\"." \
	"sqlite_schema WHERE name NOT LIKE 'sqlite\\_%%' ESCAPE '\\'"
	char *sql = sqlite3_mprintf("SELECT EXISTS (" DIFF_SCHEMA_ROWS
				    " EXCEPT " DIFF_SCHEMA_ROWS ") OR EXISTS ("
				    DIFF_SCHEMA_ROWS " EXCEPT "
				    DIFF_SCHEMA_ROWS ")", y, x, x, y);
#undef DIFF_SCHEMA_ROWS
	int64_t v = 0;
	int rc;

	if (!sql)
		return snap_err_set(err, -ENOMEM, "out of memory");
	rc = snap_diff_query_int(db, sql, NULL, &v, err);
	sqlite3_free(sql);
	*changed = v != 0;
	return rc;
}

/* --- counting ----------------------------------------------------------- */

/* Rows of schema.table. */
static int diff_count(sqlite3 *db, const char *schema, const char *table,
		      int64_t *n, snap_err *err)
{
	char *sql = sqlite3_mprintf("SELECT count(*) FROM \"%w\".\"%w\"",
				    schema, table);
	int rc;

	if (!sql)
		return snap_err_set(err, -ENOMEM, "out of memory");
	rc = snap_diff_query_int(db, sql, NULL, n, err);
	sqlite3_free(sql);
	return rc;
}

/* 1 in *has when a key column of `table` holds NULL in b or a: the
 * session would skip those rows. */
static int diff_null_keys(sqlite3 *db, const char *table, const diff_cols *c,
			  int *has, snap_err *err)
{
	static const char *const schemas[] = { "b", "a" };
	int64_t v = 0;
	int rc = 0, i, k;

	*has = 0;
	for (k = 0; k < 2 && !rc && !*has; k++) {
		sqlite3_str *q = sqlite3_str_new(NULL);
		char *sql;
		int nk = 0;

		sqlite3_str_appendf(q, "SELECT EXISTS (SELECT 1 FROM \"%w\"."
				    "\"%w\" WHERE ", schemas[k], table);
		for (i = 0; i < c->n; i++)
			if (c->c[i].pk)
				sqlite3_str_appendf(q, "%s\"%w\" IS NULL",
						    nk++ ? " OR " : "",
						    c->c[i].name);
		sqlite3_str_appendall(q, ")");
		sql = sqlite3_str_finish(q);
		if (!sql)
			return snap_err_set(err, -ENOMEM, "out of memory");
		rc = snap_diff_query_int(db, sql, NULL, &v, err);
		sqlite3_free(sql);
		*has = v != 0;
	}
	return rc;
}

/*
 * Count by key with the session extension.  *schema_err is set (and 0
 * returned) when the session refuses the table for its schema, so the
 * caller can compare whole rows instead.
 */
static int diff_by_key(sqlite3 *db, const char *table, snap_table_diff *td,
		       int *schema_err, snap_err *err)
{
	sqlite3_session *ses = NULL;
	sqlite3_changeset_iter *it = NULL;
	char *zerr = NULL;
	void *cs = NULL;
	int ncs = 0, rc;

	*schema_err = 0;
	rc = snap_diff_session(db, "b", table, &ses);
	if (rc == SQLITE_OK)
		rc = sqlite3session_diff(ses, "a", table, &zerr);
	if ((rc & 0xff) == SQLITE_SCHEMA) {
		*schema_err = 1;
		rc = SQLITE_OK;
		goto out;
	}
	if (rc == SQLITE_OK)
		rc = sqlite3session_changeset(ses, &ncs, &cs);
	if (rc == SQLITE_OK)
		rc = sqlite3changeset_start(&it, ncs, cs);
	while (rc == SQLITE_OK && (rc = sqlite3changeset_next(it)) ==
	       SQLITE_ROW) {
		const char *tab;
		int ncol, op, indirect;

		rc = sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
		if (op == SQLITE_INSERT)
			td->added++;
		else if (op == SQLITE_DELETE)
			td->removed++;
		else if (op == SQLITE_UPDATE)
			td->changed++;
	}
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	td->by_key = 1;
out:
	if (it) {
		int frc = sqlite3changeset_finalize(it);

		if (rc == SQLITE_OK)
			rc = frc;
	}
	if (rc != SQLITE_OK)
		rc = snap_err_set(err, snap_err_sqlite_errno(rc), "comparing "
				  "table %s by key failed: %s", table, zerr ?
				  zerr : sqlite3_errstr(rc));
	sqlite3_free(zerr);
	sqlite3_free(cs);
	sqlite3session_delete(ses);
	return rc;
}

/*
 * Count as multisets of whole rows over the stored columns b and a have
 * in common: +1 per row of b, -1 per row of a, grouped by value
 * and type.  With no column in common, every row differs.
 */
static int diff_by_row(sqlite3 *db, const char *table, const diff_cols *cb,
		       const diff_cols *ca, snap_table_diff *td, snap_err *err)
{
	sqlite3_str *q;
	sqlite3_stmt *st = NULL;
	char *cols, *kcols, *sql;
	int n = 0, i, rc;

	td->by_key = 0;
	cols = snap_diff_col_list(cb, ca, 0, &n);
	kcols = snap_diff_col_list(cb, ca, 1, &n);
	if (!cols || !kcols) {
		sqlite3_free(cols);
		sqlite3_free(kcols);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	if (n == 0) {
		sqlite3_free(cols);
		sqlite3_free(kcols);
		rc = diff_count(db, "b", table, &td->added, err);
		if (!rc)
			rc = diff_count(db, "a", table, &td->removed, err);
		return rc;
	}
	q = sqlite3_str_new(NULL);
	sqlite3_str_appendf(q, "SELECT coalesce(sum(max(d,0)),0), "
			    "coalesce(sum(max(-d,0)),0) FROM (SELECT sum(w) AS "
			    "d FROM (SELECT %s, 1 AS w FROM b.\"%w\" UNION "
			    "ALL SELECT %s, -1 FROM a.\"%w\") GROUP BY ", kcols,
			    table, cols, table);
	for (i = 1; i <= n; i++)
		sqlite3_str_appendf(q, "%sk%d COLLATE BINARY, typeof(k%d)",
				    i > 1 ? ", " : "", i, i);
	sqlite3_str_appendall(q, " HAVING d <> 0)");
	sqlite3_free(cols);
	sqlite3_free(kcols);
	sql = sqlite3_str_finish(q);
	if (!sql)
		return snap_err_set(err, -ENOMEM, "out of memory");
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	sqlite3_free(sql);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		td->added = sqlite3_column_int64(st, 0);
		td->removed = sqlite3_column_int64(st, 1);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, db, rc, "comparing the rows of "
				       "table %s failed", table);
	return 0;
}

/* Compare one table present in both states. */
static int diff_table(sqlite3 *db, const char *table, snap_table_diff *td,
		      snap_err *err)
{
	diff_cols cb, ca;
	int nulls = 0, schema_err = 1, npk = 0, i, rc;

	rc = snap_diff_cols_load(db, "b", table, &cb, err);
	if (rc)
		return rc;
	rc = snap_diff_cols_load(db, "a", table, &ca, err);
	if (rc) {
		snap_diff_cols_free(&cb);
		return rc;
	}
	td->columns_changed = !snap_diff_cols_same(&cb, &ca, 0);
	for (i = 0; i < cb.n; i++)
		npk += cb.c[i].pk != 0;
	if (!td->columns_changed && npk > 0) {
		rc = diff_null_keys(db, table, &cb, &nulls, err);
		if (!rc && !nulls)
			rc = diff_by_key(db, table, td, &schema_err, err);
	}
	if (!rc && schema_err)
		rc = diff_by_row(db, table, &cb, &ca, td, err);
	snap_diff_cols_free(&cb);
	snap_diff_cols_free(&ca);
	return rc;
}

/* Append td to d. */
static int diff_push(snap_diff *d, const snap_table_diff *td, snap_err *err)
{
	snap_table_diff *nt = realloc(d->tables, (d->n + 1) * sizeof(*nt));

	if (!nt)
		return snap_err_set(err, -ENOMEM, "out of memory");
	d->tables = nt;
	d->tables[d->n++] = *td;
	return 0;
}

/* An empty main with a attached as "a" and b as "b", in a read
 * transaction. */
static int diff_open_pair(snap_store *s, int64_t a, int64_t b, sqlite3 **db,
			  snap_err *err)
{
	int rc = sqlite3_open_v2(":memory:", db, SQLITE_OPEN_READWRITE |
				 SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);

	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, *db, rc, "cannot open a connection");
	} else {
		snap_livedb_busy_set(*db, SNAP_LIVEDB_WAIT);  /* "live" attached */
		sqlite3_extended_result_codes(*db, 1);
		rc = snap_diff_attach(s, *db, a, "a", err);
	}
	if (!rc)
		rc = snap_diff_attach(s, *db, b, "b", err);
	if (!rc)
		rc = snap_diff_begin_read(*db, "a", "b", err);
	if (rc) {
		sqlite3_close(*db);
		*db = NULL;
	}
	return rc;
}

/*
 * A table of one state only, into td: side 1, only in "a" (dropped: its
 * rows count as removed), or 2, only in "b" (created: added).  A virtual
 * table counts no rows.
 */
static int diff_only_in(sqlite3 *db, const diff_tab *t, int side,
			snap_table_diff *td, snap_err *err)
{
	snprintf(td->table, sizeof(td->table), "%s", t->name);
	td->only_in = side;
	if (t->virt)
		return 0;
	return diff_count(db, side == 1 ? "a" : "b", t->name,
			  side == 1 ? &td->removed : &td->added, err);
}

/* Walk both table lists (sorted alike) and compare table by table. */
static int diff_walk(sqlite3 *db, snap_diff *out, snap_err *err)
{
	diff_tab *ta = NULL, *tb = NULL;
	size_t na = 0, nb = 0, i = 0, j = 0;
	int rc;

	rc = diff_tables(db, "a", &ta, &na, err);
	if (!rc)
		rc = diff_tables(db, "b", &tb, &nb, err);
	while (!rc && (i < na || j < nb)) {
		int c = i >= na ? 1 : j >= nb ? -1 :
			sqlite3_stricmp(ta[i].name, tb[j].name);
		snap_table_diff td;
		int virt;

		memset(&td, 0, sizeof(td));
		if (c < 0) {                       /* dropped */
			virt = ta[i].virt;
			rc = diff_only_in(db, &ta[i++], 1, &td, err);
		} else if (c > 0) {                /* created */
			virt = tb[j].virt;
			rc = diff_only_in(db, &tb[j++], 2, &td, err);
		} else {
			snprintf(td.table, sizeof(td.table), "%s", tb[j].name);
			virt = ta[i].virt || tb[j].virt;
			if (!virt)
				rc = diff_table(db, tb[j].name, &td, err);
			i++;
			j++;
		}
		/* A virtual table counts no rows: only its schema shows. */
		if (!rc && !virt && (td.added || td.removed || td.changed ||
				     td.columns_changed || td.only_in))
			rc = diff_push(out, &td, err);
	}
	diff_tables_free(ta, na);
	diff_tables_free(tb, nb);
	return rc;
}

/* Compare the states attached as "a" and "b" on db, table by table. */
int snap_diff_attached(sqlite3 *db, snap_diff *out, snap_err *err)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = snap_diff_schema_changed(db, "a", "b", &out->schema_changed, err);
	if (!rc)
		rc = diff_walk(db, out, err);
	if (rc)
		snap_diff_free(out);
	return rc;
}

/* Compare state a with state b (snapshots or SNAP_DIFF_LIVE). */
int snap_diff_states(snap_store *s, int64_t a, int64_t b, snap_diff *out,
		     snap_err *err)
{
	char na[SNAP_NAME_MAX + 4096], nb[SNAP_NAME_MAX + 4096];
	sqlite3 *db = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = snap_diff_state_check(s, a, err);
	if (!rc)
		rc = snap_diff_state_check(s, b, err);
	if (rc || a == b)
		return rc;
	rc = diff_open_pair(s, a, b, &db, err);
	if (!rc)
		rc = snap_diff_attached(db, out, err);
	if (db) {
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
	}
	if (rc) {
		snap_diff_free(out);
		snap_diff_state_name(s, a, na, sizeof(na));
		snap_diff_state_name(s, b, nb, sizeof(nb));
		snap_err_prefix(err, "diff from %s to %s", na, nb);
	}
	return rc;
}

/* Free what a diff holds. */
void snap_diff_free(snap_diff *d)
{
	if (!d)
		return;
	free(d->tables);
	memset(d, 0, sizeof(*d));
}
