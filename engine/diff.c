/*
 * engine/diff.c — differences between two states of the database, one
 * table restored from a snapshot, and a state written as SQL text.
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
 *
 * snap_restore_table copies one table with DELETE + INSERT ... SELECT in
 * one BEGIN IMMEDIATE transaction on a read-write connection to the live
 * database, with the snapshot attached.  It takes the store's restore lock
 * first (full restores and table restores exclude each other), verifies
 * the snapshot, checks the table before taking the safety snapshot (a
 * refused request leaves no trace but the event), and checks it again
 * inside the transaction, since the schema may have moved meanwhile.
 * Foreign keys are off for the copy: a cascade would change other tables.
 * Violations that appear are counted (foreign_key_check of the table and of
 * the tables whose keys point at it, before and after) and reported, not
 * refused: restoring two related tables one after the other must be
 * possible, and the safety snapshot undoes it.  Triggers fire, as for any
 * DELETE and INSERT (documented in diff.h).  Rows keep their INTEGER
 * PRIMARY KEY; a table without one gets fresh rowids, as after VACUUM.
 *
 * snap_export_sql writes what sqlite3's .dump writes, in the same order, so
 * the sqlite3 shell re-imports it: values through quote() (exact for reals
 * since it falls back to %!.20e; its "Inf" is written as 1e999 as .dump
 * does), virtual tables through PRAGMA writable_schema with their shadow
 * tables as ordinary tables.  Rows of a table without an INTEGER PRIMARY
 * KEY are written without their rowid, as .dump does by default.
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

#include "diff.h"
#include "events.h"
#include "image.h"
#include "snapshot.h"
#include "store_int.h"
#include "sys.h"
#include "verify.h"

/* How long a connection to the live database waits for a lock. */
#define DIFF_BUSY_MS 30000

/* A table as listed in one state's sqlite_schema. */
typedef struct diff_tab {
	char *name;      /* sqlite3_malloc'd */
	int virt;        /* 1: CREATE VIRTUAL TABLE */
} diff_tab;

/* One column of PRAGMA table_xinfo. */
typedef struct diff_col {
	char *name;      /* sqlite3_malloc'd */
	char *type;      /* declared type, "" if none; sqlite3_malloc'd */
	int pk;          /* position in the primary key, 0 if not in it */
	int hidden;      /* 0 ordinary, 2/3 generated (1 virtual-table) */
} diff_col;

typedef struct diff_cols {
	diff_col *c;
	int n;
} diff_cols;

/* --- small helpers ------------------------------------------------------ */

/* A readable name of a state for messages. */
static void diff_state_name(snap_store *s, int64_t id, char *out, size_t cap)
{
	snap_info si;

	if (id == SNAP_DIFF_LIVE)
		snprintf(out, cap, "the live database %s", s->db_path);
	else if (snap_store_get(s, id, &si, NULL) == 0)
		snprintf(out, cap, "snapshot %s", si.name);
	else
		snprintf(out, cap, "snapshot #%" PRId64, id);
}

/* 0 when state id exists: a snapshot in the catalog, or the live file. */
static int diff_state_check(snap_store *s, int64_t id, snap_err *err)
{
	struct stat st;
	snap_info si;

	if (id != SNAP_DIFF_LIVE)
		return snap_store_get(s, id, &si, err);
	/* stat() only: the file is never opened outside SQLite. */
	if (snap_sys_stat(s->db_path, &st) < 0)
		return snap_err_set(err, -errno, "the live database %s cannot "
				    "be read: %s", s->db_path, strerror(errno));
	return 0;
}

char *snap_diff_file_uri(const char *path, const char *query)
{
	sqlite3_str *u = sqlite3_str_new(NULL);
	const unsigned char *p;

	sqlite3_str_appendall(u, "file:");
	for (p = (const unsigned char *)path; *p; p++) {
		if (isalnum(*p) || strchr("/-._~", *p))
			sqlite3_str_appendchar(u, 1, (char)*p);
		else
			sqlite3_str_appendf(u, "%%%02X", *p);
	}
	sqlite3_str_appendf(u, "?%s", query);
	return sqlite3_str_finish(u);
}

/* One integer from a query with an optional text parameter ?1. */
static int diff_query_int(sqlite3 *db, const char *sql, const char *p1,
			  int64_t *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK) {
		if (p1)
			sqlite3_bind_text(st, 1, p1, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "query failed (%.80s)", sql);
	sqlite3_finalize(st);
	return rc;
}

/* Run SQL built with sqlite3_mprintf, then free it. */
static int diff_exec(sqlite3 *db, char *sql, snap_err *err)
{
	int rc;

	if (!sql)
		return snap_err_set(err, -ENOMEM, "out of memory");
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "%.120s", sql);
	sqlite3_free(sql);
	return rc;
}

/* --- opening states ----------------------------------------------------- */

/* Open the live database as "main": read-only, or read-write for a table
 * restore.  URIs are allowed so that states can be attached. */
static int diff_open_live(snap_store *s, int rw, sqlite3 **db, snap_err *err)
{
	int rc = diff_state_check(s, SNAP_DIFF_LIVE, err);

	*db = NULL;
	if (rc)
		return rc;
	rc = sqlite3_open_v2(s->db_path, db, (rw ? SQLITE_OPEN_READWRITE :
			     SQLITE_OPEN_READONLY) | SQLITE_OPEN_URI |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, *db, rc, "cannot open the live "
				     "database %s", s->db_path);
		sqlite3_close(*db);
		*db = NULL;
		return rc;
	}
	sqlite3_busy_timeout(*db, DIFF_BUSY_MS);
	sqlite3_extended_result_codes(*db, 1);
	return 0;
}

/* Open state id as "main" of a new read-only connection (the export). */
static int diff_open_state(snap_store *s, int64_t id, sqlite3 **db,
			   snap_err *err)
{
	if (id == SNAP_DIFF_LIVE)
		return diff_open_live(s, 0, db, err);
	return snap_image_sqlite_open(s, id, db, err);
}

/* ATTACH state id to db under schema name `as`, read-only; a snapshot
 * gets the page cache snap_image_sqlite_open gives (each page read costs
 * a decompression). */
static int diff_attach(snap_store *s, sqlite3 *db, int64_t id, const char *as,
		       snap_err *err)
{
	sqlite3_stmt *st = NULL;
	const char *vfs = NULL;
	char *uri = NULL, *sql = NULL;
	char what[SNAP_NAME_MAX + 64];
	int rc = 0;

	diff_state_name(s, id, what, sizeof(what));
	if (id == SNAP_DIFF_LIVE) {
		char q[128];

		snprintf(q, sizeof(q), "mode=ro&vfs=%s",
			 sqlite3_vfs_find(NULL)->zName);
		uri = snap_diff_file_uri(s->db_path, q);
	} else {
		rc = snap_image_vfs_name(s, &vfs, err);
		if (rc)
			return rc;
		uri = sqlite3_mprintf("file:snapfs-snapshot-%lld?immutable=1&"
				      "mode=ro&vfs=%s", (long long)id, vfs);
	}
	sql = sqlite3_mprintf("ATTACH ?1 AS \"%w\"", as);
	if (!uri || !sql) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "cannot attach %s", what);
	else if (id != SNAP_DIFF_LIVE)
		rc = diff_exec(db, sqlite3_mprintf("PRAGMA \"%w\".cache_size="
						   "-16384", as), err);
out:
	sqlite3_finalize(st);
	sqlite3_free(sql);
	sqlite3_free(uri);
	return rc;
}

/* Start the read transaction that pins schema x and, if not NULL, y
 * (and so the live file's state) for the rest of the work. */
static int diff_begin_read(sqlite3 *db, const char *x, const char *y,
			   snap_err *err)
{
	char *sql = sqlite3_mprintf("BEGIN; SELECT count(*) FROM \"%w\"."
				    "sqlite_schema; SELECT count(*) FROM "
				    "\"%w\".sqlite_schema", x, y ? y : x);

	return diff_exec(db, sql, err);
}

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
		if (*n == cap) {
			diff_tab *nv;

			cap = cap ? 2 * cap : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
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

static void diff_tables_free(diff_tab *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		sqlite3_free(v[i].name);
	free(v);
}

static void diff_cols_free(diff_cols *c);

/* Columns of schema.table from PRAGMA table_xinfo, in order. */
static int diff_cols_load(sqlite3 *db, const char *schema, const char *table,
			  diff_cols *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, cap = 0;

	memset(out, 0, sizeof(*out));
	rc = sqlite3_prepare_v2(db, "SELECT name, ifnull(type,''), pk, hidden "
				"FROM pragma_table_xinfo(?1, ?2) ORDER BY cid",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, schema, -1, SQLITE_STATIC);
	}
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		diff_col *c;

		if (out->n == cap) {
			diff_col *nc;

			cap = cap ? 2 * cap : 8;
			nc = realloc(out->c, (size_t)cap * sizeof(*nc));
			if (!nc) {
				rc = SQLITE_NOMEM;
				break;
			}
			out->c = nc;
		}
		c = &out->c[out->n++];
		c->name = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
		c->type = sqlite3_mprintf("%s", sqlite3_column_text(st, 1));
		c->pk = sqlite3_column_int(st, 2);
		c->hidden = sqlite3_column_int(st, 3);
		rc = c->name && c->type ? SQLITE_OK : SQLITE_NOMEM;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		diff_cols_free(out);
		return snap_err_sqlite(err, db, rc, "cannot read the columns of "
				       "table %s", table);
	}
	return 0;
}

static void diff_cols_free(diff_cols *c)
{
	int i;

	for (i = 0; i < c->n; i++) {
		sqlite3_free(c->c[i].name);
		sqlite3_free(c->c[i].type);
	}
	free(c->c);
	memset(c, 0, sizeof(*c));
}

/* 1 when both lists have the same columns in the same order: names, key
 * positions and generated-ness; with `types`, declared types too. */
static int diff_cols_same(const diff_cols *x, const diff_cols *y, int types)
{
	int i;

	if (x->n != y->n)
		return 0;
	for (i = 0; i < x->n; i++) {
		if (sqlite3_stricmp(x->c[i].name, y->c[i].name) != 0 ||
		    x->c[i].pk != y->c[i].pk ||
		    x->c[i].hidden != y->c[i].hidden ||
		    (types && sqlite3_stricmp(x->c[i].type, y->c[i].type)))
			return 0;
	}
	return 1;
}

/* Index of the stored (not generated) column `name` in c, or -1. */
static int diff_cols_find(const diff_cols *c, const char *name)
{
	int i;

	for (i = 0; i < c->n; i++)
		if (c->c[i].hidden == 0 &&
		    sqlite3_stricmp(c->c[i].name, name) == 0)
			return i;
	return -1;
}

/* "a","b",... of the stored columns of c, or of those also stored in
 * `also` when it is not NULL; with `alias`, each named k1, k2, ...  NULL
 * on OOM; *n gets the count. */
static char *diff_col_list(const diff_cols *c, const diff_cols *also,
			   int alias, int *n)
{
	sqlite3_str *q = sqlite3_str_new(NULL);
	int i;

	*n = 0;
	for (i = 0; i < c->n; i++) {
		if (c->c[i].hidden != 0 ||
		    (also && diff_cols_find(also, c->c[i].name) < 0))
			continue;
		sqlite3_str_appendf(q, "%s\"%w\"", *n ? "," : "",
				    c->c[i].name);
		(*n)++;
		if (alias)
			sqlite3_str_appendf(q, " AS k%d", *n);
	}
	return sqlite3_str_finish(q);
}

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
	rc = diff_query_int(db, sql, NULL, &v, err);
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
	rc = diff_query_int(db, sql, NULL, n, err);
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
		rc = diff_query_int(db, sql, NULL, &v, err);
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
	rc = sqlite3session_create(db, "b", &ses);
	if (rc == SQLITE_OK)
		rc = sqlite3session_attach(ses, table);
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
	cols = diff_col_list(cb, ca, 0, &n);
	kcols = diff_col_list(cb, ca, 1, &n);
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

	rc = diff_cols_load(db, "b", table, &cb, err);
	if (rc)
		return rc;
	rc = diff_cols_load(db, "a", table, &ca, err);
	if (rc) {
		diff_cols_free(&cb);
		return rc;
	}
	td->columns_changed = !diff_cols_same(&cb, &ca, 0);
	for (i = 0; i < cb.n; i++)
		npk += cb.c[i].pk != 0;
	if (!td->columns_changed && npk > 0) {
		rc = diff_null_keys(db, table, &cb, &nulls, err);
		if (!rc && !nulls)
			rc = diff_by_key(db, table, td, &schema_err, err);
	}
	if (!rc && schema_err)
		rc = diff_by_row(db, table, &cb, &ca, td, err);
	diff_cols_free(&cb);
	diff_cols_free(&ca);
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
		sqlite3_busy_timeout(*db, DIFF_BUSY_MS);
		sqlite3_extended_result_codes(*db, 1);
		rc = diff_attach(s, *db, a, "a", err);
	}
	if (!rc)
		rc = diff_attach(s, *db, b, "b", err);
	if (!rc)
		rc = diff_begin_read(*db, "a", "b", err);
	if (rc) {
		sqlite3_close(*db);
		*db = NULL;
	}
	return rc;
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
			snprintf(td.table, sizeof(td.table), "%s", ta[i].name);
			td.only_in = 1;
			virt = ta[i].virt;
			if (!virt)
				rc = diff_count(db, "a", ta[i].name,
						&td.removed, err);
			i++;
		} else if (c > 0) {                /* created */
			snprintf(td.table, sizeof(td.table), "%s", tb[j].name);
			td.only_in = 2;
			virt = tb[j].virt;
			if (!virt)
				rc = diff_count(db, "b", tb[j].name,
						&td.added, err);
			j++;
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

int snap_diff_states(snap_store *s, int64_t a, int64_t b, snap_diff *out,
		     snap_err *err)
{
	char na[SNAP_NAME_MAX + 4096], nb[SNAP_NAME_MAX + 4096];
	sqlite3 *db = NULL;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = diff_state_check(s, a, err);
	if (!rc)
		rc = diff_state_check(s, b, err);
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
		diff_state_name(s, a, na, sizeof(na));
		diff_state_name(s, b, nb, sizeof(nb));
		snap_err_prefix(err, "diff from %s to %s", na, nb);
	}
	return rc;
}

void snap_diff_free(snap_diff *d)
{
	if (!d)
		return;
	free(d->tables);
	memset(d, 0, sizeof(*d));
}

/* --- restoring one table ------------------------------------------------ */

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
	rc = diff_query_int(db, sql, table, &v, err);
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
	rc = diff_cols_load(db, "main", table, &cl, err);
	if (rc)
		return rc;
	rc = diff_cols_load(db, "snap", table, &cs, err);
	if (!rc && !diff_cols_same(&cl, &cs, 1)) {
		char a[400], b[400];

		rt_col_names(&cs, a, sizeof(a));
		rt_col_names(&cl, b, sizeof(b));
		rc = snap_err_set(err, -EINVAL, "table %s has other columns "
				  "in snapshot %s (%s) than in the live "
				  "database (%s); restore the whole snapshot "
				  "instead", table, si->name, a, b);
	}
	diff_cols_free(&cl);
	diff_cols_free(&cs);
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

	if (diff_query_int(db, sql, table, &n, NULL))
		return -1;
	return n;
}

/* The copy itself, in one transaction; on failure nothing changed. */
static int rt_copy(sqlite3 *db, snap_store *s, const snap_info *si,
		   const char *table, snap_table_restore *res, snap_err *err)
{
	diff_cols cl;
	char *cols = NULL;
	int64_t fk0, fk1;
	int n = 0, rc;

	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, db, rc, "cannot start a write "
				       "transaction on %s (another writer "
				       "held it for %d s?)", s->db_path,
				       DIFF_BUSY_MS / 1000);
	/* The schema may have changed since the first check. */
	rc = rt_check(db, s, si, table, err);
	if (!rc)
		rc = diff_cols_load(db, "main", table, &cl, err);
	if (rc)
		goto out;
	cols = diff_col_list(&cl, NULL, 0, &n);
	diff_cols_free(&cl);
	if (!cols) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	fk0 = rt_fk_count(db, table);
	rc = diff_exec(db, sqlite3_mprintf("DELETE FROM main.\"%w\"", table),
		       err);
	if (rc)
		goto out;
	res->rows_before = sqlite3_changes64(db);
	rc = diff_exec(db, sqlite3_mprintf("INSERT INTO main.\"%w\"(%s) "
					   "SELECT %s FROM snap.\"%w\"", table,
					   cols, cols, table), err);
	if (rc)
		goto out;
	res->rows_after = sqlite3_changes64(db);
	fk1 = rt_fk_count(db, table);
	res->fk_violations = fk0 < 0 || fk1 < 0 ? -1 : fk1 > fk0 ? fk1 - fk0
			     : 0;
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "cannot commit the restored "
				     "table %s into %s", table, s->db_path);
out:
	sqlite3_free(cols);
	if (rc && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int snap_restore_table(snap_store *s, int64_t id, const char *table,
		       snap_table_restore *res, snap_err *err)
{
	snap_create_opts o = { .kind = SNAP_KIND_PRE_RESTORE };
	snap_table_restore tmp;
	snap_err local;
	char label[SNAP_LABEL_MAX + 1], fkmsg[64] = "";
	snap_info si;
	sqlite3 *db = NULL;
	int lockfd = -1, rc;

	if (!res)
		res = &tmp;
	if (!err) {
		snap_err_clear(&local);
		err = &local;
	}
	memset(res, 0, sizeof(*res));
	if (!table || !*table)
		return snap_err_set(err, -EINVAL, "restore of a table: no "
				    "table named");
	rc = snap_store_get(s, id, &si, err);
	if (rc)
		return rc;
	rc = snap_store_restore_lock(s, &lockfd, err);
	if (rc)
		goto record;
	rc = snap_verify_snapshot(s, id, SNAP_VERIFY_STRUCTURE, NULL, NULL,
				  err);
	if (!rc)
		rc = diff_open_live(s, 1, &db, err);
	if (!rc)
		rc = diff_exec(db, sqlite3_mprintf("PRAGMA foreign_keys=OFF"),
			       err);
	if (!rc)
		rc = diff_attach(s, db, id, "snap", err);
	if (!rc)
		rc = rt_check(db, s, &si, table, err);
	if (rc) {
		snap_err_prefix(err, "restore of table %s refused, %s is "
				"unchanged", table, s->db_path);
		goto record;
	}
	snprintf(label, sizeof(label), "before-table-%s", table);
	o.label = label;
	rc = snap_snapshot_take(s, &o, &res->safety, err);
	if (rc) {
		snap_err_prefix(err, "restore of table %s refused: cannot take "
				"the safety snapshot of %s", table, s->db_path);
		goto record;
	}
	res->have_safety = 1;
	rc = rt_copy(db, s, &si, table, res, err);
	if (rc)
		snap_err_prefix(err, "restore of table %s from %s failed, %s is "
				"unchanged (safety snapshot %s)", table,
				si.name, s->db_path, res->safety.name);
record:
	sqlite3_close(db);
	snap_store_restore_unlock(lockfd);
	if (res->fk_violations > 0)
		snprintf(fkmsg, sizeof(fkmsg), "; new foreign-key violations: "
			 "%" PRId64, res->fk_violations);
	else if (res->fk_violations < 0)
		snprintf(fkmsg, sizeof(fkmsg), "; foreign keys not checked");
	if (rc)
		snap_event_add(s, "restore", si.name, 0, "%s", err->msg);
	else
		snap_event_add(s, "restore", si.name, 1, "table %s restored "
			       "into %s: %" PRId64 " rows (%" PRId64 " "
			       "before); safety snapshot %s%s", table,
			       s->db_path, res->rows_after, res->rows_before,
			       res->safety.name, fkmsg);
	return rc;
}

/* --- SQL export --------------------------------------------------------- */

/* INSERT statements for every row of main.table. */
static int ex_rows(sqlite3 *db, FILE *f, const char *table, snap_err *err)
{
	diff_cols c;
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	char *sql, *prefix;
	int gen = 0, n = 0, i, rc;

	rc = diff_cols_load(db, "main", table, &c, err);
	if (rc)
		return rc;
	q = sqlite3_str_new(NULL);
	sqlite3_str_appendall(q, "SELECT ");
	for (i = 0; i < c.n; i++) {
		if (c.c[i].hidden) {
			gen = 1;
			continue;
		}
		sqlite3_str_appendf(q, "%squote(\"%w\")", n++ ? "," : "",
				    c.c[i].name);
	}
	sqlite3_str_appendf(q, " FROM main.\"%w\"", table);
	sql = sqlite3_str_finish(q);
	/* Generated columns are computed again on import: name the others. */
	if (gen) {
		char *cols = diff_col_list(&c, NULL, 0, &i);

		prefix = cols ? sqlite3_mprintf("INSERT INTO \"%w\"(%s) VALUES(",
						table, cols) : NULL;
		sqlite3_free(cols);
	} else {
		prefix = sqlite3_mprintf("INSERT INTO \"%w\" VALUES(", table);
	}
	diff_cols_free(&c);
	if (!sql || !prefix) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		fputs(prefix, f);
		for (i = 0; i < n; i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);

			if (i)
				fputc(',', f);
			/* quote() writes infinities as Inf, which SQL reads
			 * as a column name. */
			if (!v)
				v = "NULL";
			else if (strcmp(v, "Inf") == 0)
				v = "1e999";
			else if (strcmp(v, "-Inf") == 0)
				v = "-1e999";
			fputs(v, f);
		}
		fputs(");\n", f);
		rc = ferror(f) ? SQLITE_IOERR : SQLITE_OK;
	}
	if (rc == SQLITE_IOERR)
		rc = snap_err_set(err, -EIO, "cannot write the rows of table "
				  "%s: %s", table, strerror(errno));
	else if (rc != SQLITE_DONE)
		rc = snap_err_sqlite(err, db, rc, "cannot read the rows of "
				     "table %s", table);
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_free(sql);
	sqlite3_free(prefix);
	return rc;
}

/* Tables in creation order, sqlite_sequence last, each with its rows. */
static int ex_tables(sqlite3 *db, FILE *f, int *writable, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT name, sql FROM main.sqlite_schema "
				"WHERE sql NOT NULL AND type = 'table' ORDER BY "
				"name = 'sqlite_sequence', rowid", -1, &st,
				NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *sql = (const char *)sqlite3_column_text(st, 1);

		rc = SQLITE_OK;
		if (strcmp(name, "sqlite_sequence") == 0) {
			/* Created by the AUTOINCREMENT tables above. */
			fputs("DELETE FROM sqlite_sequence;\n", f);
		} else if (sqlite3_stricmp(name, "sqlite_stat1") == 0) {
			fputs("ANALYZE sqlite_schema;\n", f);
		} else if (sqlite3_strnicmp(name, "sqlite_", 7) == 0) {
			fprintf(f, "-- %s (SQLite's own) is not exported\n",
				name);
			continue;
		} else if (sqlite3_strnicmp(sql, "CREATE VIRTUAL TABLE",
					    20) == 0) {
			/* As .dump: no xCreate on import (it would create
			 * the shadow tables the dump creates itself). */
			char *ins = sqlite3_mprintf(
				"INSERT INTO sqlite_schema(type,name,tbl_name,"
				"rootpage,sql)VALUES('table','%q','%q',0,"
				"'%q');\n", name, name, sql);

			if (!ins) {
				rc = SQLITE_NOMEM;
				break;
			}
			if (!*writable)
				fputs("PRAGMA writable_schema=ON;\n", f);
			*writable = 1;
			fputs(ins, f);
			sqlite3_free(ins);
			continue;
		} else {
			fprintf(f, "%s;\n", sql);
		}
		if (ex_rows(db, f, name, err)) {
			sqlite3_finalize(st);
			return err ? err->code : -EIO;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, db, rc, "cannot list the tables");
	return 0;
}

/* Indexes, triggers and views in creation order. */
static int ex_others(sqlite3 *db, FILE *f, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT sql FROM main.sqlite_schema WHERE "
				"sql NOT NULL AND type IN ('index', 'trigger', "
				"'view') ORDER BY rowid", -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		fprintf(f, "%s;\n", (const char *)sqlite3_column_text(st, 0));
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, db, rc, "cannot list the indexes, "
				       "triggers and views");
	return 0;
}

int snap_export_sql(snap_store *s, int64_t id, FILE *f, snap_err *err)
{
	char what[SNAP_NAME_MAX + 4096], when[40];
	snap_err local;
	sqlite3 *db = NULL;
	snap_info si;
	int writable = 0, rc;

	if (!err) {
		snap_err_clear(&local);
		err = &local;
	}
	rc = diff_state_check(s, id, err);
	if (!rc)
		rc = diff_open_state(s, id, &db, err);
	if (!rc)
		rc = diff_begin_read(db, "main", NULL, err);
	diff_state_name(s, id, what, sizeof(what));
	if (!rc) {
		if (id != SNAP_DIFF_LIVE && snap_store_get(s, id, &si, NULL) ==
		    0) {
			snap_time_iso(si.created_ns, when);
			fprintf(f, "-- snapfs: %s, taken %s\n", what, when);
		} else {
			fprintf(f, "-- snapfs: %s\n", what);
		}
		fputs("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n", f);
		rc = ex_tables(db, f, &writable, err);
	}
	if (!rc)
		rc = ex_others(db, f, err);
	if (!rc) {
		if (writable)
			fputs("PRAGMA writable_schema=OFF;\n", f);
		fputs("COMMIT;\n", f);
		if (fflush(f) != 0 || ferror(f))
			rc = snap_err_set(err, -EIO, "cannot write the SQL "
					  "text: %s", strerror(errno));
	}
	if (db) {
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
	}
	if (rc)
		snap_err_prefix(err, "export of %s as SQL failed", what);
	return rc;
}
