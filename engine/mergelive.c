/*
 * engine/mergelive.c — the merge's work on the live database, under its
 * write lock: the checks of steps 1 and 2 (merge.c's design block), then
 * the safety snapshot, the apply with its conflict handler, the sequences,
 * the foreign-key and quick checks, and COMMIT or ROLLBACK (steps 3 to 7).
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

/* --- checks under the live write lock ------------------------------------ */

static void merge_tab_reset(merge_tab *t)
{
	sqlite3_free(t->name);
	snap_merge_cols_free(t->cols, t->ncol);
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
	if (!t->name || snap_merge_cols(db, name, &t->cols, &t->ncol) != 0) {
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
				rk_rc = snap_merge_rekey_note(db, rk, tab, it, ncol,
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
			snap_merge_key_text(db, it, tab, res->key,
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
			snap_merge_key_text(c->db, it, tab, c->key, sizeof(c->key));
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
	int rc = snap_livedb_open(s->db_path, SNAP_LIVEDB_RW, NULL, db,
				  err);

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
int snap_merge_into_live(snap_store *s, const char *base,
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
		rc = snap_merge_rekey_collect(db, p, &rk, err);
	if (!rc && rk.n)
		rc = snap_merge_rekey_refs(db, p, &rk, res, err);
	if (!rc && rk.n)
		rc = snap_merge_rekey_changeset(p, &rk, &ncs, &cs, err);
	if (!rc)
		rc = snap_merge_rekey_result(&rk, res, err);
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
	snap_merge_rekey_free(&rk);
	return rc;
}
