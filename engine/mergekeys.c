/*
 * engine/mergekeys.c — automatic keys inserted on both sides: which
 * tables' inserted rows may take new keys, and which new keys.  Moving
 * them in the changeset is mergemove.c.
 *
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
#include "merge_int.h"
#include "restore.h"
#include "snapshot.h"
#include "store_int.h"

/* Free the tables rk holds (not rk itself). */
void snap_merge_rekey_free(merge_rekey *rk)
{
	size_t i;

	for (i = 0; i < rk->n; i++) {
		sqlite3_free(rk->tabs[i].name);
		snap_merge_cols_free(rk->tabs[i].cols, rk->tabs[i].ncol);
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
	if (!r->name || snap_merge_cols(db, name, &r->cols, &r->ncol) != 0)
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

/* Free what one re-keyed table holds. */
static void merge_rk_tab_free(merge_rk_tab *r)
{
	sqlite3_free(r->name);
	snap_merge_cols_free(r->cols, r->ncol);
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
int snap_merge_rekey_key(const merge_rk_tab *r, sqlite3_changeset_iter *it,
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
int snap_merge_rekey_note(sqlite3 *db, merge_rekey *rk, const char *tab,
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
	if (!snap_merge_rekey_key(r, it, &key)) {
		snprintf(why, cap, "the edit's key is not past the end the "
			 "table had when the edit began (%s %" PRId64 "), so "
			 "it was chosen, not assigned by SQLite",
			 r->cols[r->pkcol], r->base_end);
		return 1;
	}
	return 0;
}

/* qsort order of int64_t values, ascending. */
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
int snap_merge_rekey_collect(sqlite3 *db, const merge_plan *p,
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
		    !snap_merge_rekey_key(r, it, &key))
			continue;
		if (snap_array_grow(&r->keys, &r->cap, r->nkeys,
				    sizeof(*r->keys), 16)) {
			rc = -ENOMEM;
			break;
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

	snap_merge_key_text(db, it, tab, who, sizeof(who));
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
int snap_merge_rekey_refs(sqlite3 *db, const merge_plan *p,
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

