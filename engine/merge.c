/*
 * engine/merge.c — an edit of a copy, applied onto the live database as a
 * changeset; the contract is in merge.h.
 *
 * Two connections, so that the live database is locked only while it must
 * be:
 *
 *   plan     an empty in-memory main with `base` attached as "a" and
 *            `edited` as "b" (immutable: private files nobody writes).
 *            snap_diff_attached (diff.c) says what differs, per table: by
 *            key (the session extension can carry it) or by whole rows (no
 *            PRIMARY KEY, a NULL key: it cannot), and whether the schema
 *            changed.  Then one session on "b" with every table attached
 *            (engine/PITFALLS.md 22) and sqlite3session_diff from "a" for each
 *            table that differs by key gives the changeset.  The live database
 *            is not touched.
 *
 *   live     a read-write connection to the live database (the restore's,
 *            with its busy handler) with `base` attached as "a", foreign
 *            keys off and triggers disabled.  BEGIN IMMEDIATE takes the
 *            write lock, then, under it:
 *              1. the live schema must still be base's;
 *              2. every row the changeset touches must be untouched in the
 *                 live database: an inserted key absent, an updated or
 *                 deleted row equal to base's in every column (value and
 *                 type, BINARY).  sqlite3changeset_apply alone would let an
 *                 UPDATE through when the live side changed only other
 *                 columns of the row (an UPDATE carries the old values of
 *                 the columns it changes only); the contract says a row
 *                 changed on both sides is a conflict.  An inserted key
 *                 the live side inserted too may be an automatic key both
 *                 sides were given: then the edit's rows of that table
 *                 take new keys, moved in the changeset (see "automatic
 *                 keys inserted on both sides" below);
 *              3. the safety snapshot, through a connection of its own
 *                 (readers are not blocked by the write lock in either
 *                 journal mode, and no commit can fall between it and the
 *                 apply);
 *              4. sqlite3changeset_apply, with a conflict handler that
 *                 aborts on anything (DATA, NOTFOUND, CONFLICT, CONSTRAINT)
 *                 — after step 2 only a constraint can still fire;
 *              5. sqlite_sequence: the larger of both sides' values;
 *              6. no foreign-key violation that was not there before
 *                 (foreign keys are off while applying, so a deleted parent
 *                 never cascades into rows the live side owns);
 *              7. quick_check of the result, then COMMIT.
 *            Any refusal or failure rolls the transaction back: the live
 *            database is as it was, and the safety snapshot, unused, goes.
 *
 * Triggers are off on the live connection (SQLITE_DBCONFIG_ENABLE_TRIGGER)
 * because what they did in the edit (an audit row, an FTS sync) is in the
 * changeset already; firing them again would do it twice.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"
#include "events.h"
#include "merge.h"
#include "restore.h"
#include "snapshot.h"
#include "store_int.h"

/* One sqlite_sequence row the edit moved. */
typedef struct merge_seq {
	char *name;              /* sqlite3_malloc'd */
	int64_t seq;
} merge_seq;

/* What applying the edit takes. */
typedef struct merge_plan {
	void *cs;                /* the changeset (sqlite3_free) */
	int ncs;
	merge_seq *seqs;         /* moved sequences (free) */
	size_t nseqs;
} merge_plan;

/* The columns of one table and the statements that check its rows. */
typedef struct merge_tab {
	char *name;              /* sqlite3_malloc'd, NULL before the first */
	char **cols;             /* column names, sqlite3_malloc'd each */
	int ncol;
	sqlite3_stmt *has_key;   /* a live row with this key exists */
	sqlite3_stmt *same_row;  /* the live row equals base's */
} merge_tab;

/* The first conflict the apply's handler saw. */
typedef struct merge_conflict {
	sqlite3 *db;             /* the live connection, for column names */
	int type;                /* SQLITE_CHANGESET_*, 0 none */
	char table[256];
	char key[256];
} merge_conflict;

/* --- small helpers ------------------------------------------------------ */

static void merge_plan_free(merge_plan *p)
{
	size_t i;

	sqlite3_free(p->cs);
	for (i = 0; i < p->nseqs; i++)
		sqlite3_free(p->seqs[i].name);
	free(p->seqs);
	memset(p, 0, sizeof(*p));
}

/* Column names of main.table, in order; -EIO on failure. */
static int merge_cols(sqlite3 *db, const char *table, char ***out, int *n)
{
	sqlite3_stmt *st = NULL;
	char **v = NULL;
	int cap = 0, rc;

	*out = NULL;
	*n = 0;
	rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1, "
				"'main') ORDER BY cid", -1, &st, NULL);
	if (rc == SQLITE_OK)
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			char **nv;

			cap = cap ? 2 * cap : 8;
			nv = realloc(v, (size_t)cap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		v[*n] = sqlite3_mprintf("%s", sqlite3_column_text(st, 0));
		rc = v[(*n)++] ? SQLITE_OK : SQLITE_NOMEM;
	}
	sqlite3_finalize(st);
	*out = v;
	if (rc != SQLITE_DONE) {
		while (*n > 0)
			sqlite3_free(v[--*n]);
		free(v);
		*out = NULL;
		return -EIO;
	}
	return 0;
}

static void merge_cols_free(char **cols, int n)
{
	while (n > 0)
		sqlite3_free(cols[--n]);
	free(cols);
}

/* "id=51, k='x'": the key of the iterator's row (new values for an
 * INSERT, old ones otherwise), named from main.table when it can be. */
static void merge_key_text(sqlite3 *db, sqlite3_changeset_iter *it,
			   const char *table, char *out, size_t cap)
{
	unsigned char *pk = NULL;
	char **cols = NULL;
	int ncol = 0, nnames = 0, op, indirect, i;
	const char *tab;
	size_t len = 0;

	out[0] = '\0';
	if (sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) != SQLITE_OK ||
	    sqlite3changeset_pk(it, &pk, &ncol) != SQLITE_OK)
		return;
	if (merge_cols(db, table, &cols, &nnames) == 0 && nnames != ncol) {
		merge_cols_free(cols, nnames);
		cols = NULL;
	}
	for (i = 0; i < ncol && len < cap; i++) {
		sqlite3_value *v = NULL;
		char *val;

		if (!pk[i])
			continue;
		if (op == SQLITE_INSERT)
			sqlite3changeset_new(it, i, &v);
		else
			sqlite3changeset_old(it, i, &v);
		if (v && sqlite3_value_type(v) == SQLITE_TEXT)
			val = sqlite3_mprintf("'%.40q'", sqlite3_value_text(v));
		else if (v && sqlite3_value_type(v) == SQLITE_BLOB)
			val = sqlite3_mprintf("(a blob)");
		else
			val = sqlite3_mprintf("%.40s", v ? (const char *)
					      sqlite3_value_text(v) : "?");
		if (cols)
			len += (size_t)snprintf(out + len, cap - len, "%s%s=%s",
						len ? ", " : "", cols[i],
						val ? val : "?");
		else
			len += (size_t)snprintf(out + len, cap - len,
						"%scolumn %d=%s", len ? ", " :
						"", i + 1, val ? val : "?");
		sqlite3_free(val);
	}
	merge_cols_free(cols, nnames);
}

/* --- the plan ------------------------------------------------------------ */

/* An empty in-memory main with base as "a" and edited as "b". */
static int merge_open_plan(const char *base, const char *edited, sqlite3 **db,
			   snap_err *err)
{
	static const char *const as[] = { "a", "b" };
	const char *paths[] = { base, edited };
	int rc, k;

	rc = sqlite3_open_v2(":memory:", db, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, *db, rc, "cannot open a connection");
	sqlite3_extended_result_codes(*db, 1);
	for (k = 0; k < 2; k++) {
		char *uri = snap_diff_file_uri(paths[k], "mode=ro&immutable=1");
		sqlite3_stmt *st = NULL;

		if (!uri)
			return snap_err_set(err, -ENOMEM, "out of memory");
		rc = sqlite3_prepare_v2(*db, k ? "ATTACH ?1 AS b" :
					"ATTACH ?1 AS a", -1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
			rc = sqlite3_step(st);
		}
		sqlite3_finalize(st);
		sqlite3_free(uri);
		if (rc != SQLITE_DONE)
			return snap_err_sqlite(err, *db, rc, "cannot open %s as "
					       "\"%s\"", paths[k], as[k]);
	}
	return 0;
}

/* Refuse what a changeset cannot carry (see merge.h). */
static int merge_carriable(const snap_diff *d, snap_err *err)
{
	size_t i;

	if (d->schema_changed)
		return snap_err_set(err, -EOPNOTSUPP, "the edit changed the "
				    "schema (a CREATE, ALTER or DROP), which "
				    "cannot be merged into a database that "
				    "changed meanwhile");
	for (i = 0; i < d->n; i++)
		if (!d->tables[i].by_key)
			return snap_err_set(err, -EOPNOTSUPP, "the edit changed "
					    "rows of table %s, which has no "
					    "PRIMARY KEY (or a NULL in a key "
					    "column), so they cannot be told "
					    "apart from rows the live database "
					    "changed meanwhile",
					    d->tables[i].table);
	return 0;
}

/* The changeset from a to b of the tables d says differ (all by key). */
static int merge_changeset(sqlite3 *db, const snap_diff *d, merge_plan *p,
			   snap_err *err)
{
	sqlite3_session *ses = NULL;
	const char *table = NULL;
	char *zerr = NULL;
	size_t i;
	int rc;

	rc = sqlite3session_create(db, "b", &ses);
	if (rc == SQLITE_OK)
		rc = sqlite3session_attach(ses, NULL);
	for (i = 0; rc == SQLITE_OK && i < d->n; i++) {
		table = d->tables[i].table;
		rc = sqlite3session_diff(ses, "a", table, &zerr);
	}
	if (rc == SQLITE_OK) {
		table = NULL;
		rc = sqlite3session_changeset(ses, &p->ncs, &p->cs);
	}
	if (rc != SQLITE_OK)
		snap_err_set(err, snap_err_sqlite_errno(rc), "the edit cannot "
			     "be turned into a changeset%s%s: %s", table ?
			     " at table " : "", table ? table : "", zerr ?
			     zerr : sqlite3_errstr(rc));
	sqlite3_free(zerr);
	sqlite3session_delete(ses);
	return rc == SQLITE_OK ? 0 : snap_err_sqlite_errno(rc);
}

/* Count the changeset's rows by operation into res. */
static int merge_count(const merge_plan *p, snap_merge_result *res)
{
	sqlite3_changeset_iter *it = NULL;
	int rc = sqlite3changeset_start(&it, p->ncs, p->cs);

	while (rc == SQLITE_OK && sqlite3changeset_next(it) == SQLITE_ROW) {
		const char *tab;
		int ncol, op, indirect;

		sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
		if (op == SQLITE_INSERT)
			res->inserted++;
		else if (op == SQLITE_UPDATE)
			res->updated++;
		else
			res->deleted++;
	}
	if (it)
		rc = sqlite3changeset_finalize(it);
	return rc == SQLITE_OK ? 0 : -EIO;
}

/* sqlite_sequence rows whose value the edit moved (b's differs from
 * a's, or is new). */
static int merge_seqs(sqlite3 *db, merge_plan *p, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT y.name, y.seq FROM "
				"b.sqlite_sequence y WHERE y.seq IS NOT (SELECT "
				"x.seq FROM a.sqlite_sequence x WHERE x.name = "
				"y.name)", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		/* No AUTOINCREMENT table on one side: nothing to carry. */
		sqlite3_finalize(st);
		return 0;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (p->nseqs == cap) {
			merge_seq *nv;

			cap = cap ? 2 * cap : 4;
			nv = realloc(p->seqs, cap * sizeof(*nv));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			p->seqs = nv;
		}
		p->seqs[p->nseqs].name = sqlite3_mprintf("%s",
			sqlite3_column_text(st, 0));
		p->seqs[p->nseqs].seq = sqlite3_column_int64(st, 1);
		if (!p->seqs[p->nseqs++].name) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, db, rc, "reading sqlite_sequence "
				       "of the edit");
	return 0;
}

/* Everything that needs only base and edited; the live database is not
 * touched. */
static int merge_make_plan(const char *base, const char *edited,
			   merge_plan *p, snap_merge_result *res,
			   snap_err *err)
{
	sqlite3 *db = NULL;
	snap_diff d;
	int rc;

	memset(&d, 0, sizeof(d));
	rc = merge_open_plan(base, edited, &db, err);
	if (!rc)
		rc = snap_diff_attached(db, &d, err);
	if (!rc)
		rc = merge_carriable(&d, err);
	if (!rc && d.n)
		rc = merge_changeset(db, &d, p, err);
	if (!rc && p->ncs && merge_count(p, res))
		rc = snap_err_set(err, -EIO, "cannot read the changeset back");
	if (!rc && p->ncs)
		rc = merge_seqs(db, p, err);
	snap_diff_free(&d);
	sqlite3_close(db);
	return rc;
}

/* --- checks under the live write lock ------------------------------------ */

static void merge_tab_reset(merge_tab *t)
{
	sqlite3_free(t->name);
	merge_cols_free(t->cols, t->ncol);
	sqlite3_finalize(t->has_key);
	sqlite3_finalize(t->same_row);
	memset(t, 0, sizeof(*t));
}

/* Prepare the two checks for table `name` whose changeset rows have ncol
 * columns with key flags pk. */
static int merge_tab_load(sqlite3 *db, merge_tab *t, const char *name,
			  int ncol, const unsigned char *pk, snap_err *err)
{
	sqlite3_str *k = sqlite3_str_new(NULL), *r = sqlite3_str_new(NULL);
	char *ks, *rs;
	int i, rc;

	merge_tab_reset(t);
	t->name = sqlite3_mprintf("%s", name);
	if (!t->name || merge_cols(db, name, &t->cols, &t->ncol) != 0) {
		sqlite3_free(sqlite3_str_finish(k));
		sqlite3_free(sqlite3_str_finish(r));
		return snap_err_set(err, -EIO, "cannot read the columns of "
				    "table %s in the live database", name);
	}
	if (t->ncol != ncol) {
		sqlite3_free(sqlite3_str_finish(k));
		sqlite3_free(sqlite3_str_finish(r));
		return snap_err_set(err, -EOPNOTSUPP, "table %s has %d columns "
				    "but the edit's changes have %d (generated "
				    "columns?); it cannot be merged", name,
				    t->ncol, ncol);
	}
	sqlite3_str_appendf(k, "SELECT 1 FROM main.\"%w\" WHERE 1", name);
	sqlite3_str_appendf(r, "SELECT 1 FROM main.\"%w\" AS m, a.\"%w\" AS x "
			    "WHERE 1", name, name);
	for (i = 0; i < ncol; i++) {
		const char *c = t->cols[i];

		if (pk[i]) {
			sqlite3_str_appendf(k, " AND \"%w\" = ?%d", c, i + 1);
			sqlite3_str_appendf(r, " AND m.\"%w\" = ?%d AND x.\"%w\" "
					    "= ?%d", c, i + 1, c, i + 1);
		}
		sqlite3_str_appendf(r, " AND m.\"%w\" IS x.\"%w\" COLLATE "
				    "BINARY AND typeof(m.\"%w\") = "
				    "typeof(x.\"%w\")", c, c, c, c);
	}
	ks = sqlite3_str_finish(k);
	rs = sqlite3_str_finish(r);
	rc = ks && rs ? SQLITE_OK : SQLITE_NOMEM;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, ks, -1, &t->has_key, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, rs, -1, &t->same_row, NULL);
	sqlite3_free(ks);
	sqlite3_free(rs);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, db, rc, "checking table %s", name);
	return 0;
}

/* Run one check with the iterator's key bound: 1 when it finds a row,
 * 0 when not, -1 on error. */
static int merge_probe(sqlite3_stmt *st, sqlite3_changeset_iter *it,
		       int ncol, const unsigned char *pk, int use_new)
{
	int i, rc;

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (i = 0; i < ncol; i++) {
		sqlite3_value *v = NULL;

		if (!pk[i])
			continue;
		if (use_new)
			sqlite3changeset_new(it, i, &v);
		else
			sqlite3changeset_old(it, i, &v);
		if (v)
			sqlite3_bind_value(st, i + 1, v);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* --- automatic keys inserted on both sides -------------------------------- */

/*
 * An application appending to a table while a person inserts into the same
 * table through the mount: both sides' rows got the same automatic keys
 * (SQLite hands out max(rowid) + 1, or the sqlite_sequence value + 1), but
 * nobody chose them.  Such rows are not a conflict: the edit's rows take new
 * keys past everything the live database holds.  The rule, per table:
 *
 *   - the table is an ordinary rowid table whose PRIMARY KEY is the rowid
 *     alias (one column declared INTEGER PRIMARY KEY, with or without
 *     AUTOINCREMENT): not WITHOUT ROWID, not a virtual table's shadow
 *     table, not SQLite's own;
 *   - no declared foreign key of any table refers to it;
 *   - every inserted key of the edit that met a live row is past base's
 *     end: greater than the largest key base had (and than base's
 *     sqlite_sequence value for the table), which is where SQLite assigns
 *     keys.  A key at or below the end filled a gap, so somebody chose it:
 *     a conflict.  A key a person chose past the end cannot be told from
 *     an assigned one and is treated as assigned;
 *   - then every row the edit inserted past base's end in that table (not
 *     only the ones that met a live row, so their order is kept) takes a
 *     new key, in the order of the old ones, from one past the largest of
 *     the live database's largest key, its sqlite_sequence value and
 *     base's end;
 *   - and none of those old keys may be referred to by what the edit
 *     changed: no value of any row in the changeset (new and old values,
 *     any column, as an integer, a real or a decimal text) other than the
 *     re-keyed row's own key may equal one.  A reference hidden inside a
 *     longer text or a blob is not seen.
 * Anything else stays a conflict.
 *
 * The new keys go into the changeset itself: the edit's INSERTs of the old
 * keys are cancelled by DELETEs and INSERTs of the new keys are added, both
 * recorded by sessions on a scratch in-memory table of the same columns and
 * key, and combined with sqlite3changegroup (an INSERT followed by a DELETE
 * of the same key leaves nothing).  Applying it inserts with explicit keys,
 * which moves sqlite_sequence for an AUTOINCREMENT table as any insert
 * does.
 */

/* One table whose inserted rows take new keys. */
typedef struct merge_rk_tab {
	char *name;              /* sqlite3_malloc'd */
	char **cols;             /* its columns (merge_cols) */
	int ncol;
	int pkcol;               /* the rowid alias */
	int64_t base_end;        /* the largest key base had, or base's
				    sqlite_sequence value if larger */
	int64_t *keys;           /* the edit's inserted keys past base_end,
				    ascending (malloc'd) */
	size_t nkeys, cap;
	int64_t first_new;       /* keys[i] becomes first_new + i */
} merge_rk_tab;

/* The tables whose inserted rows take new keys. */
typedef struct merge_rekey {
	merge_rk_tab *tabs;      /* malloc'd */
	size_t n;
} merge_rekey;

static void merge_rekey_free(merge_rekey *rk)
{
	size_t i;

	for (i = 0; i < rk->n; i++) {
		sqlite3_free(rk->tabs[i].name);
		merge_cols_free(rk->tabs[i].cols, rk->tabs[i].ncol);
		free(rk->tabs[i].keys);
	}
	free(rk->tabs);
	memset(rk, 0, sizeof(*rk));
}

/* One integer from a query with ?1 bound to text a; dflt when there is no
 * row, a NULL, or the query cannot be prepared (a missing
 * sqlite_sequence). */
static int64_t merge_int_query(sqlite3 *db, const char *sql, const char *a,
			       int64_t dflt)
{
	sqlite3_stmt *st = NULL;
	int64_t v = dflt;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (a && sqlite3_bind_parameter_count(st) >= 1)
			sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_type(st, 0) != SQLITE_NULL)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}

/* 1 when a query with ?1 bound to a finds a row; -1 when it fails. */
static int merge_exists(sqlite3 *db, const char *sql, const char *a)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* The largest key of table name in schema ("main" or "a"), or its
 * sqlite_sequence value if larger; 0 for an empty table. */
static int64_t merge_key_end(sqlite3 *db, const char *schema,
			     const merge_rk_tab *r)
{
	char *sql = sqlite3_mprintf("SELECT max(\"%w\") FROM \"%w\".\"%w\"",
				    r->cols[r->pkcol], schema, r->name);
	char *seq = sqlite3_mprintf("SELECT seq FROM \"%w\".sqlite_sequence "
				    "WHERE name = ?1", schema);
	int64_t end = 0, s;

	if (sql)
		end = merge_int_query(db, sql, NULL, 0);
	if (seq && (s = merge_int_query(db, seq, r->name, 0)) > end)
		end = s;
	sqlite3_free(sql);
	sqlite3_free(seq);
	return end;
}

/*
 * Can rows of table name (its changeset rows have ncol columns, key flags
 * pk) take new keys?  Fills r (name, columns, key column, base's end) and
 * returns 0, or returns 1 with *why saying why not, or a negative errno.
 */
static int merge_rekey_table(sqlite3 *db, const char *name, int ncol,
			     const unsigned char *pk, merge_rk_tab *r,
			     const char **why)
{
	int i, npk = 0, hit;

	memset(r, 0, sizeof(*r));
	r->pkcol = -1;
	for (i = 0; i < ncol; i++)
		if (pk[i]) {
			npk++;
			r->pkcol = i;
		}
	*why = "the table's key is not an automatic INTEGER PRIMARY KEY, so "
	       "the same key on both sides is the same row";
	if (npk != 1 || sqlite3_strnicmp(name, "sqlite_", 7) == 0)
		return 1;
	r->name = sqlite3_mprintf("%s", name);
	if (!r->name || merge_cols(db, name, &r->cols, &r->ncol) != 0)
		return -ENOMEM;
	if (r->ncol != ncol)
		return 1;
	/* The rowid alias: the only key column, declared INTEGER, and no
	 * index behind the key (WITHOUT ROWID, "INTEGER PRIMARY KEY DESC"
	 * and every other key have one). */
	hit = merge_exists(db, "SELECT 1 FROM pragma_table_info(?1, 'main') "
			   "WHERE pk = 1 AND upper(type) = 'INTEGER'", name);
	if (hit == 1)
		hit = !merge_exists(db, "SELECT 1 FROM pragma_index_list(?1, "
				    "'main') WHERE origin = 'pk'", name);
	if (hit != 1)
		return hit < 0 ? -EIO : 1;
	hit = merge_exists(db, "SELECT 1 FROM pragma_table_list(?1) WHERE "
			   "schema = 'main' AND (type <> 'table' OR wr)", name);
	if (hit == 0)
		hit = merge_exists(db, "SELECT 1 FROM main.sqlite_schema WHERE "
				   "type = 'table' AND sql LIKE 'CREATE "
				   "VIRTUAL TABLE%' AND lower(substr(?1, 1, "
				   "length(name) + 1)) = lower(name) || '_'",
				   name);
	if (hit != 0) {
		*why = "the table belongs to a virtual table, whose index "
		       "refers to its keys";
		return hit < 0 ? -EIO : 1;
	}
	hit = merge_exists(db, "SELECT 1 FROM main.sqlite_schema m, "
			   "pragma_foreign_key_list(m.name, 'main') f WHERE "
			   "m.type = 'table' AND f.\"table\" = ?1 COLLATE "
			   "NOCASE", name);
	if (hit != 0) {
		*why = "a foreign key refers to the table, so another row "
		       "may refer to the key";
		return hit < 0 ? -EIO : 1;
	}
	r->base_end = merge_key_end(db, "a", r);
	return 0;
}

static void merge_rk_tab_free(merge_rk_tab *r)
{
	sqlite3_free(r->name);
	merge_cols_free(r->cols, r->ncol);
	free(r->keys);
	memset(r, 0, sizeof(*r));
}

/* The noted table called name, or NULL. */
static merge_rk_tab *merge_rekey_find(const merge_rekey *rk, const char *name)
{
	size_t i;

	for (i = 0; i < rk->n; i++)
		if (strcmp(rk->tabs[i].name, name) == 0)
			return &rk->tabs[i];
	return NULL;
}

/* The key of the iterator's INSERT in table r when it is one of the
 * edit's keys past base's end; 0 when it is not. */
static int merge_rekey_key(const merge_rk_tab *r, sqlite3_changeset_iter *it,
			   int64_t *key)
{
	sqlite3_value *v = NULL;

	if (sqlite3changeset_new(it, r->pkcol, &v) != SQLITE_OK || !v ||
	    sqlite3_value_type(v) != SQLITE_INTEGER)
		return 0;
	*key = sqlite3_value_int64(v);
	return *key > r->base_end;
}

/*
 * Step 2, for an INSERT of the edit whose key the live database has too:
 * note its table for new keys.  0 when noted, 1 when it stays a conflict
 * (why says why), or a negative errno.
 */
static int merge_rekey_note(sqlite3 *db, merge_rekey *rk, const char *tab,
			    sqlite3_changeset_iter *it, int ncol,
			    const unsigned char *pk, char *why, size_t cap)
{
	merge_rk_tab *r = merge_rekey_find(rk, tab), nt;
	const char *because = NULL;
	int64_t key;
	int rc;

	if (!r) {
		rc = merge_rekey_table(db, tab, ncol, pk, &nt, &because);
		if (rc == 0) {
			r = realloc(rk->tabs, (rk->n + 1) * sizeof(*r));
			if (r) {
				rk->tabs = r;
				rk->tabs[rk->n] = nt;
				r = &rk->tabs[rk->n++];
			} else
				rc = -ENOMEM;
		}
		if (rc != 0) {
			merge_rk_tab_free(&nt);
			if (rc == 1)
				snprintf(why, cap, "%s", because);
			return rc;
		}
	}
	if (!merge_rekey_key(r, it, &key)) {
		snprintf(why, cap, "the edit's key is not past the end the "
			 "table had when the edit began (%s %" PRId64 "), so "
			 "it was chosen, not assigned by SQLite",
			 r->cols[r->pkcol], r->base_end);
		return 1;
	}
	return 0;
}

static int merge_cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return a < b ? -1 : a > b;
}

/* 1 when key is one of r's old keys. */
static int merge_rekey_has(const merge_rk_tab *r, int64_t key)
{
	return r->nkeys && bsearch(&key, r->keys, r->nkeys, sizeof(key),
				   merge_cmp_i64) != NULL;
}

/* The integer a changeset value stands for: an integer, a real with an
 * integral value, or a text that is a decimal integer.  1 when it is one. */
static int merge_int_of(sqlite3_value *v, int64_t *out)
{
	const char *t;
	char *end;
	double d;

	if (!v)
		return 0;
	switch (sqlite3_value_type(v)) {
	case SQLITE_INTEGER:
		*out = sqlite3_value_int64(v);
		return 1;
	case SQLITE_FLOAT:
		d = sqlite3_value_double(v);
		if (!(d >= -9.2e18 && d <= 9.2e18) || d != (double)(int64_t)d)
			return 0;
		*out = (int64_t)d;
		return 1;
	case SQLITE_TEXT:
		t = (const char *)sqlite3_value_text(v);
		if (!t)
			return 0;
		errno = 0;
		*out = strtoll(t, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\n')
			end++;
		return errno == 0 && end != t && *end == '\0';
	default:
		return 0;
	}
}

/* Pass 1 of the plan: every INSERT of a noted table past base's end,
 * sorted, and where its new keys start. */
static int merge_rekey_collect(sqlite3 *db, const merge_plan *p,
			       merge_rekey *rk, snap_err *err)
{
	sqlite3_changeset_iter *it = NULL;
	size_t i;
	int rc = sqlite3changeset_start(&it, p->ncs, p->cs) == SQLITE_OK ? 0 :
		 -EIO;

	while (!rc && sqlite3changeset_next(it) == SQLITE_ROW) {
		const char *tab;
		int ncol, op, indirect;
		merge_rk_tab *r;
		int64_t key;

		sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
		if (op != SQLITE_INSERT || !(r = merge_rekey_find(rk, tab)) ||
		    !merge_rekey_key(r, it, &key))
			continue;
		if (r->nkeys == r->cap) {
			size_t cap = r->cap ? 2 * r->cap : 16;
			int64_t *nv = realloc(r->keys, cap * sizeof(*nv));

			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			r->keys = nv;
			r->cap = cap;
		}
		r->keys[r->nkeys++] = key;
	}
	if (it)
		sqlite3changeset_finalize(it);
	if (rc)
		return snap_err_set(err, rc, "cannot read the changeset");
	for (i = 0; i < rk->n; i++) {
		merge_rk_tab *r = &rk->tabs[i];
		int64_t end = merge_key_end(db, "main", r);

		if (r->nkeys > 1)
			qsort(r->keys, r->nkeys, sizeof(*r->keys),
			      merge_cmp_i64);
		if (end < r->base_end)
			end = r->base_end;
		if (end > INT64_MAX - 1 - (int64_t)r->nkeys)
			return snap_err_set(err, -ESTALE, "conflict in table "
					    "%s: rows inserted on both sides "
					    "with the same keys, and no room "
					    "for new keys past %" PRId64,
					    r->name, end);
		r->first_new = end + 1;
	}
	return 0;
}

/* The conflict of pass 2: row `it` of table tab holds x, an old key of
 * table r.  -ESTALE. */
static int merge_rekey_refused(sqlite3 *db, sqlite3_changeset_iter *it,
			       const char *tab, const merge_rk_tab *r,
			       int64_t x, snap_merge_result *res,
			       snap_err *err)
{
	char who[256];

	merge_key_text(db, it, tab, who, sizeof(who));
	res->conflict = 1;
	snprintf(res->table, sizeof(res->table), "%s", r->name);
	snprintf(res->key, sizeof(res->key), "%s=%" PRId64, r->cols[r->pkcol],
		 x);
	return snap_err_set(err, -ESTALE, "conflict in table %s, row %s: "
			    "inserted by the edit, and a row with the same key "
			    "was inserted in the live database meanwhile; the "
			    "edit's row cannot take a new key, because row %s "
			    "of table %s, changed by the edit, holds the value "
			    "%" PRId64 " in a column (it may refer to it)",
			    r->name, res->key, who, tab, x);
}

/* Column i's value of the iterator's row, new (k 0) or old (k 1), when
 * the row has one; NULL otherwise. */
static sqlite3_value *merge_value(sqlite3_changeset_iter *it, int op, int i,
				  int k)
{
	sqlite3_value *v = NULL;

	if (k == 0 && op != SQLITE_DELETE)
		sqlite3changeset_new(it, i, &v);
	else if (k == 1 && op != SQLITE_INSERT)
		sqlite3changeset_old(it, i, &v);
	return v;
}

/*
 * Pass 2 of the plan: no value of any row the edit changed may be one of
 * the old keys, except the re-keyed row's own key.  0, or -ESTALE with
 * res naming the re-keyed row (a conflict).
 */
static int merge_rekey_refs(sqlite3 *db, const merge_plan *p,
			    const merge_rekey *rk, snap_merge_result *res,
			    snap_err *err)
{
	sqlite3_changeset_iter *it = NULL;
	int rc = sqlite3changeset_start(&it, p->ncs, p->cs) == SQLITE_OK ? 0 :
		 snap_err_set(err, -EIO, "cannot read the changeset");

	while (!rc && sqlite3changeset_next(it) == SQLITE_ROW) {
		const char *tab;
		int ncol, op, indirect, i, k;
		const merge_rk_tab *own;
		size_t j;
		int64_t x;

		sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
		own = op == SQLITE_INSERT ? merge_rekey_find(rk, tab) : NULL;
		for (i = 0; !rc && i < ncol; i++)
			for (k = 0; !rc && k < 2; k++) {
				sqlite3_value *v = merge_value(it, op, i, k);

				if (!merge_int_of(v, &x))
					continue;
				for (j = 0; !rc && j < rk->n; j++)
					if (merge_rekey_has(&rk->tabs[j], x) &&
					    !(&rk->tabs[j] == own &&
					      i == own->pkcol))
						rc = merge_rekey_refused(db, it,
							tab, &rk->tabs[j], x,
							res, err);
			}
	}
	if (it)
		sqlite3changeset_finalize(it);
	return rc;
}

/* Run sql on the scratch connection; SQLite's code. */
static int merge_scratch_exec(sqlite3 *db, char *sql)
{
	int rc = sql ? sqlite3_exec(db, sql, NULL, NULL, NULL) : SQLITE_NOMEM;

	sqlite3_free(sql);
	return rc;
}

/* The changeset of statement sql run on the scratch connection's table
 * name, added to g. */
static int merge_scratch_record(sqlite3 *db, const char *name, char *sql,
				sqlite3_changegroup *g)
{
	sqlite3_session *ses = NULL;
	void *cs = NULL;
	int ncs = 0, rc;

	rc = sqlite3session_create(db, "main", &ses);
	if (rc == SQLITE_OK)
		rc = sqlite3session_attach(ses, name);
	if (rc == SQLITE_OK)
		rc = merge_scratch_exec(db, sql);
	else
		sqlite3_free(sql);
	if (rc == SQLITE_OK)
		rc = sqlite3session_changeset(ses, &ncs, &cs);
	if (rc == SQLITE_OK)
		rc = sqlite3changegroup_add(g, ncs, cs);
	sqlite3_free(cs);
	sqlite3session_delete(ses);
	return rc;
}

/*
 * Add to g the moves of table r's rows: the edit's rows go into a scratch
 * table of the same columns and key at their old keys, one session records
 * their DELETE, another their INSERT at the new keys (in the order of the
 * old ones).  SQLite's code.
 */
static int merge_rekey_moves(sqlite3 *db, const merge_plan *p,
			     const merge_rk_tab *r, sqlite3_changegroup *g)
{
	sqlite3_str *def = sqlite3_str_new(NULL), *sel = sqlite3_str_new(NULL);
	sqlite3_str *par = sqlite3_str_new(NULL);
	sqlite3_changeset_iter *it = NULL;
	sqlite3_stmt *ins = NULL;
	char *ds, *ss, *ps, *q;
	int i, rc;

	for (i = 0; i < r->ncol; i++) {
		const char *sep = i ? ", " : "";

		sqlite3_str_appendf(def, "%s\"%w\"%s", sep, r->cols[i],
				    i == r->pkcol ? " INTEGER PRIMARY KEY" :
				    "");
		sqlite3_str_appendf(par, "%s?", sep);
		if (i == r->pkcol)
			sqlite3_str_appendf(sel, "%s%" PRId64 " - 1 + "
					    "row_number() OVER (ORDER BY "
					    "\"%w\")", sep, r->first_new,
					    r->cols[i]);
		else
			sqlite3_str_appendf(sel, "%s\"%w\"", sep, r->cols[i]);
	}
	ds = sqlite3_str_finish(def);
	ss = sqlite3_str_finish(sel);
	ps = sqlite3_str_finish(par);
	rc = ds && ss && ps ? SQLITE_OK : SQLITE_NOMEM;
	if (rc == SQLITE_OK)
		rc = merge_scratch_exec(db, sqlite3_mprintf("CREATE TABLE "
					"main.\"%w\"(%s)", r->name, ds));
	if (rc == SQLITE_OK) {
		q = sqlite3_mprintf("INSERT INTO main.\"%w\" VALUES(%s)",
				    r->name, ps);
		rc = q ? sqlite3_prepare_v2(db, q, -1, &ins, NULL) :
		     SQLITE_NOMEM;
		sqlite3_free(q);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3changeset_start(&it, p->ncs, p->cs);
	while (rc == SQLITE_OK && sqlite3changeset_next(it) == SQLITE_ROW) {
		const char *tab;
		int ncol, op, indirect;
		int64_t key;

		sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
		if (op != SQLITE_INSERT || strcmp(tab, r->name) != 0 ||
		    !merge_rekey_key(r, it, &key))
			continue;
		for (i = 0; i < r->ncol; i++) {
			sqlite3_value *v = NULL;

			sqlite3changeset_new(it, i, &v);
			if (v)
				sqlite3_bind_value(ins, i + 1, v);
			else
				sqlite3_bind_null(ins, i + 1);
		}
		rc = sqlite3_step(ins);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
		sqlite3_reset(ins);
	}
	if (it)
		sqlite3changeset_finalize(it);
	sqlite3_finalize(ins);
	if (rc == SQLITE_OK)
		rc = merge_scratch_record(db, r->name, sqlite3_mprintf(
			"CREATE TEMP TABLE moved AS SELECT * FROM main.\"%w\"; "
			"DELETE FROM main.\"%w\"", r->name, r->name), g);
	if (rc == SQLITE_OK)
		rc = merge_scratch_record(db, r->name, sqlite3_mprintf(
			"INSERT INTO main.\"%w\" SELECT %s FROM temp.moved",
			r->name, ss), g);
	if (rc == SQLITE_OK)
		rc = merge_scratch_exec(db, sqlite3_mprintf("DROP TABLE "
					"temp.moved; DROP TABLE main.\"%w\"",
					r->name));
	sqlite3_free(ds);
	sqlite3_free(ss);
	sqlite3_free(ps);
	return rc;
}

/* p's changeset with the rows of rk moved to their new keys, in *out
 * (sqlite3_free). */
static int merge_rekey_changeset(const merge_plan *p, const merge_rekey *rk,
				 int *nout, void **out, snap_err *err)
{
	sqlite3_changegroup *g = NULL;
	const char *at = NULL;
	sqlite3 *db = NULL;
	size_t i;
	int rc;

	rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3changegroup_new(&g);
	if (rc == SQLITE_OK)
		rc = sqlite3changegroup_add(g, p->ncs, p->cs);
	for (i = 0; rc == SQLITE_OK && i < rk->n; i++) {
		at = rk->tabs[i].name;
		rc = merge_rekey_moves(db, p, &rk->tabs[i], g);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3changegroup_output(g, nout, out);
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "cannot give the edit's "
				     "rows in table %s new keys", at ? at :
				     "(none)");
	sqlite3changegroup_delete(g);
	sqlite3_close(db);
	return rc;
}

/* The re-keyed rows into res (malloc'd list). */
static int merge_rekey_result(const merge_rekey *rk, snap_merge_result *res,
			      snap_err *err)
{
	size_t i, k, n = 0;

	for (i = 0; i < rk->n; i++)
		n += rk->tabs[i].nkeys;
	if (!n)
		return 0;
	res->rekeyed = calloc(n, sizeof(*res->rekeyed));
	if (!res->rekeyed)
		return snap_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < rk->n; i++) {
		const merge_rk_tab *r = &rk->tabs[i];

		for (k = 0; k < r->nkeys; k++) {
			snap_merge_rekey *m = &res->rekeyed[res->nrekeyed++];

			snprintf(m->table, sizeof(m->table), "%s", r->name);
			snprintf(m->column, sizeof(m->column), "%s",
				 r->cols[r->pkcol]);
			m->old_key = r->keys[k];
			m->new_key = r->first_new + (int64_t)k;
		}
	}
	return 0;
}

/*
 * Step 2: every row the changeset touches is as base had it in the live
 * database (an inserted key: absent, or an automatic key both sides
 * inserted, noted in rk for a new key).  The first row that is not makes a
 * conflict naming it.
 */
static int merge_check_rows(sqlite3 *db, const merge_plan *p,
			    merge_rekey *rk, snap_merge_result *res,
			    snap_err *err)
{
	sqlite3_changeset_iter *it = NULL;
	merge_tab t;
	int rc;

	memset(&t, 0, sizeof(t));
	rc = sqlite3changeset_start(&it, p->ncs, p->cs) == SQLITE_OK ? 0 :
	     snap_err_set(err, -EIO, "cannot read the changeset");
	while (!rc && sqlite3changeset_next(it) == SQLITE_ROW) {
		const char *tab, *why = NULL;
		char because[384] = "";
		unsigned char *pk;
		int ncol, op, indirect, hit, rk_rc = 0;

		sqlite3changeset_op(it, &tab, &ncol, &op, &indirect);
		sqlite3changeset_pk(it, &pk, &ncol);
		if (!t.name || strcmp(t.name, tab) != 0)
			rc = merge_tab_load(db, &t, tab, ncol, pk, err);
		if (rc)
			break;
		if (op == SQLITE_INSERT) {
			hit = merge_probe(t.has_key, it, ncol, pk, 1);
			if (hit == 1)
				rk_rc = merge_rekey_note(db, rk, tab, it, ncol,
							 pk, because,
							 sizeof(because));
			if (rk_rc < 0) {
				rc = snap_err_set(err, rk_rc, "checking the "
						  "keys of table %s", tab);
				break;
			}
			if (hit == 1 && rk_rc == 1)
				why = "inserted by the edit, and a row with "
				      "the same key was inserted in the live "
				      "database meanwhile";
		} else {
			hit = merge_probe(t.same_row, it, ncol, pk, 0);
			if (hit == 0)
				why = merge_probe(t.has_key, it, ncol, pk, 0) ?
				      "changed by the edit and changed in the "
				      "live database meanwhile" :
				      "changed by the edit and deleted in the "
				      "live database meanwhile";
		}
		if (hit < 0) {
			rc = snap_err_sqlite(err, db, sqlite3_errcode(db),
					     "checking a row of table %s", tab);
		} else if (why) {
			res->conflict = 1;
			snprintf(res->table, sizeof(res->table), "%s", tab);
			merge_key_text(db, it, tab, res->key,
				       sizeof(res->key));
			rc = snap_err_set(err, -ESTALE, "conflict in table %s, "
					  "row %s: %s%s%s", tab, res->key, why,
					  because[0] ? "; it cannot take a new "
					  "key: " : "", because);
		}
	}
	if (it)
		sqlite3changeset_finalize(it);
	merge_tab_reset(&t);
	return rc;
}

/* --- applying ------------------------------------------------------------ */

/* Conflict handler: remember the first conflict, abort the apply. */
static int merge_on_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
	merge_conflict *c = ctx;

	if (!c->type) {
		const char *tab = "";
		int ncol, op, indirect;

		c->type = type;
		if (type != SQLITE_CHANGESET_FOREIGN_KEY &&
		    sqlite3changeset_op(it, &tab, &ncol, &op, &indirect) ==
		    SQLITE_OK) {
			snprintf(c->table, sizeof(c->table), "%s", tab);
			merge_key_text(c->db, it, tab, c->key, sizeof(c->key));
		}
	}
	return SQLITE_CHANGESET_ABORT;
}

/* Step 4: apply changeset cs inside the caller's transaction. */
static int merge_changeset_apply(sqlite3 *db, int ncs, void *cs,
				 snap_merge_result *res, snap_err *err)
{
	merge_conflict c;
	const char *why;
	int rc;

	memset(&c, 0, sizeof(c));
	c.db = db;
	rc = sqlite3changeset_apply(db, ncs, cs, NULL, merge_on_conflict, &c);
	if (rc == SQLITE_OK && !c.type)
		return 0;
	if (!c.type)
		return snap_err_sqlite(err, db, rc, "applying the changeset");
	switch (c.type) {
	case SQLITE_CHANGESET_CONSTRAINT:
		why = "the edit's row breaks a constraint (UNIQUE, NOT NULL, "
		      "CHECK) with rows of the live database";
		break;
	case SQLITE_CHANGESET_CONFLICT:
		why = "inserted on both sides";
		break;
	case SQLITE_CHANGESET_NOTFOUND:
		why = "deleted in the live database";
		break;
	default:
		why = "changed on both sides";
		break;
	}
	res->conflict = 1;
	snprintf(res->table, sizeof(res->table), "%s", c.table);
	snprintf(res->key, sizeof(res->key), "%s", c.key);
	return snap_err_set(err, -ESTALE, "conflict in table %s, row %s: %s",
			    c.table, c.key, why);
}

/* Step 5: sqlite_sequence keeps the larger value. */
static int merge_apply_seqs(sqlite3 *db, const merge_plan *p, snap_err *err)
{
	sqlite3_stmt *up = NULL, *ins = NULL;
	size_t i;
	int rc;

	if (!p->nseqs)
		return 0;
	rc = sqlite3_prepare_v2(db, "UPDATE main.sqlite_sequence SET seq = ?2 "
				"WHERE name = ?1 AND seq < ?2", -1, &up, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "INSERT INTO main.sqlite_sequence("
					"name, seq) SELECT ?1, ?2 WHERE NOT "
					"EXISTS (SELECT 1 FROM main."
					"sqlite_sequence WHERE name = ?1)", -1,
					&ins, NULL);
	for (i = 0; rc == SQLITE_OK && i < p->nseqs; i++) {
		sqlite3_stmt *st[2] = { up, ins };
		int k;

		for (k = 0; k < 2 && rc == SQLITE_OK; k++) {
			sqlite3_bind_text(st[k], 1, p->seqs[i].name, -1,
					  SQLITE_STATIC);
			sqlite3_bind_int64(st[k], 2, p->seqs[i].seq);
			rc = sqlite3_step(st[k]);
			rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
			sqlite3_reset(st[k]);
		}
	}
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "updating sqlite_sequence");
	sqlite3_finalize(up);
	sqlite3_finalize(ins);
	return rc;
}

/* Foreign-key violations in main, -1 when they cannot be counted. */
static int64_t merge_fk_count(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int64_t n = 0;
	int rc = sqlite3_prepare_v2(db, "PRAGMA main.foreign_key_check", -1,
				    &st, NULL);

	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		n++;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? n : -1;
}

/* Step 7, before the commit: quick_check of the merged database. */
static int merge_quick_check(sqlite3 *db, const char *path, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "PRAGMA main.quick_check(1)", -1, &st,
				    NULL), ok = 0;

	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		ok = strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
	sqlite3_finalize(st);
	if (!ok)
		return snap_err_set(err, -EIO, "%s fails quick_check with the "
				    "edit merged", path);
	return 0;
}

/* The live connection: base attached as "a", foreign keys and triggers
 * off. */
static int merge_open_live(snap_store *s, const char *base, sqlite3 **db,
			   snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = snap_restore_open_live(s->db_path, db, err);

	if (rc)
		return rc;
	rc = sqlite3_exec(*db, "PRAGMA foreign_keys=OFF", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_db_config(*db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0,
				       (int *)NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(*db, "ATTACH ?1 AS a", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, base, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, *db, rc, "preparing the merge into "
				       "%s", s->db_path);
	return 0;
}

/* Steps 1 to 7 in one transaction on the live database. */
static int merge_into_live(snap_store *s, const char *base,
			   const merge_plan *p, snap_merge_result *res,
			   snap_err *err)
{
	snap_create_opts safety = { .kind = SNAP_KIND_PRE_RESTORE,
				    .label = "before-merge" };
	sqlite3 *db = NULL;
	merge_rekey rk;
	void *cs = p->cs;
	int64_t fk0 = 0, fk1 = 0;
	int changed = 0, ncs = p->ncs, rc;

	memset(&rk, 0, sizeof(rk));

	rc = merge_open_live(s, base, &db, err);
	if (!rc && (rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL,
				      NULL)) != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "cannot take the write lock "
				     "of %s", s->db_path);
	/* 1 */
	if (!rc)
		rc = snap_diff_schema_changed(db, "main", "a", &changed, err);
	if (!rc && changed)
		rc = snap_err_set(err, -ESTALE, "the schema of %s changed "
				  "since the edit began", s->db_path);
	/* 2, and the edit's rows that take new keys */
	if (!rc)
		rc = merge_check_rows(db, p, &rk, res, err);
	if (!rc && rk.n)
		rc = merge_rekey_collect(db, p, &rk, err);
	if (!rc && rk.n)
		rc = merge_rekey_refs(db, p, &rk, res, err);
	if (!rc && rk.n)
		rc = merge_rekey_changeset(p, &rk, &ncs, &cs, err);
	if (!rc)
		rc = merge_rekey_result(&rk, res, err);
	if (!rc && (fk0 = merge_fk_count(db)) < 0)
		rc = snap_err_sqlite(err, db, sqlite3_errcode(db), "cannot "
				     "check the foreign keys of %s", s->db_path);
	/* 3 */
	if (!rc) {
		rc = snap_snapshot_take(s, &safety, &res->safety, err);
		if (rc)
			snap_err_prefix(err, "cannot take the safety snapshot");
		else
			res->have_safety = 1;
	}
	/* 4, 5, 6, 7 */
	if (!rc)
		rc = merge_changeset_apply(db, ncs, cs, res, err);
	if (!rc)
		rc = merge_apply_seqs(db, p, err);
	if (!rc && (fk1 = merge_fk_count(db)) < 0)
		rc = snap_err_sqlite(err, db, sqlite3_errcode(db), "cannot "
				     "check the foreign keys of %s", s->db_path);
	if (!rc && fk1 > fk0) {
		res->conflict = 1;
		rc = snap_err_set(err, -ESTALE, "conflict: merged, %s would "
				  "have %" PRId64 " foreign-key violation%s "
				  "more than now (rows the edit refers to were "
				  "deleted meanwhile, or the other way round)",
				  s->db_path, fk1 - fk0, fk1 - fk0 > 1 ? "s" :
				  "");
	}
	if (!rc)
		rc = merge_quick_check(db, s->db_path, err);
	if (!rc && (rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL)) !=
	    SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "cannot commit the merge into "
				     "%s", s->db_path);
	if (rc && db && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	if (cs != p->cs)
		sqlite3_free(cs);
	merge_rekey_free(&rk);
	return rc;
}

/* --- the whole merge ----------------------------------------------------- */

/* "; 2 rows took new keys ...: events id 51 -> 61, ..." for the event, or
 * "" when no row did. */
static void merge_rekeyed_text(const snap_merge_result *res, char *out,
			       size_t cap)
{
	size_t i, len;

	out[0] = '\0';
	if (!res->nrekeyed)
		return;
	len = (size_t)snprintf(out, cap, "; %zu of the inserted row%s took "
			       "new keys (the live database had inserted rows "
			       "with the same automatic keys meanwhile):",
			       res->nrekeyed, res->nrekeyed == 1 ? "" : "s");
	for (i = 0; i < res->nrekeyed && len < cap; i++) {
		const snap_merge_rekey *m = &res->rekeyed[i];

		if (len + 64 >= cap) {
			snprintf(out + len, cap - len, " and %zu more",
				 res->nrekeyed - i);
			return;
		}
		len += (size_t)snprintf(out + len, cap - len, "%s %s %s %"
					PRId64 " -> %" PRId64, i ? "," : "",
					m->table, m->column, m->old_key,
					m->new_key);
	}
}

int snap_merge_apply(snap_store *s, const char *base, const char *edited,
		     const snap_merge_opts *o, snap_merge_result *res,
		     snap_err *err)
{
	const char *what = o && o->what ? o->what : "an edit";
	snap_merge_result tmp;
	merge_plan p;
	int lockfd = -1, rc;

	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	memset(&p, 0, sizeof(p));
	rc = snap_store_restore_lock(s, &lockfd, err);
	if (!rc)
		rc = snap_snapshot_check_file(edited, err);
	if (!rc)
		rc = merge_make_plan(base, edited, &p, res, err);
	if (!rc && p.ncs)
		rc = merge_into_live(s, base, &p, res, err);
	if (rc && res->have_safety) {
		snap_err ignore;

		/* Rolled back: the live database is what the safety holds
		 * and the snapshots before it already cover. */
		if (snap_store_delete(s, res->safety.id, &ignore) == 0)
			res->have_safety = 0;
	}
	snap_store_restore_unlock(lockfd);
	merge_plan_free(&p);
	if (rc) {
		snap_merge_result_free(res);
		snap_err_prefix(err, "%s was not merged into %s, which is "
				"unchanged", what, s->db_path);
		return rc;
	}
	if (res->inserted || res->updated || res->deleted) {
		char moved[SNAP_ERR_MSG / 2];

		merge_rekeyed_text(res, moved, sizeof(moved));
		snap_event_add(s, "restore", "", 1, "%s merged into %s as a "
			       "changeset: %" PRId64 " row%s inserted, %" PRId64
			       " updated, %" PRId64 " deleted%s; safety "
			       "snapshot %s", what, s->db_path, res->inserted,
			       res->inserted == 1 ? "" : "s", res->updated,
			       res->deleted, moved, res->safety.name);
	}
	if (res == &tmp)
		snap_merge_result_free(res);
	return 0;
}

void snap_merge_result_free(snap_merge_result *res)
{
	if (!res)
		return;
	free(res->rekeyed);
	res->rekeyed = NULL;
	res->nrekeyed = 0;
}
