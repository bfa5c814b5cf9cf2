/*
 * engine/mergemove.c — the new keys of automatic keys inserted on both sides
 * (mergekeys.c) written into the changeset: the edit's INSERTs of the old
 * keys cancelled by DELETEs, INSERTs of the new keys added, both recorded
 * by sessions on a scratch in-memory table and combined with
 * sqlite3changegroup; and the result's list of moved keys.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff_int.h"
#include "events.h"
#include "merge_int.h"
#include "restore.h"
#include "snapshot.h"
#include "store_int.h"

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

	rc = snap_diff_session(db, "main", name, &ses);
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
		    !snap_merge_rekey_key(r, it, &key))
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
int snap_merge_rekey_changeset(const merge_plan *p, const merge_rekey *rk,
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
int snap_merge_rekey_result(const merge_rekey *rk, snap_merge_result *res,
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
