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

#include "diff_int.h"
#include "events.h"
#include "merge_int.h"
#include "restore.h"
#include "snapshot.h"
#include "store_int.h"

/* --- small helpers ------------------------------------------------------ */

/* Free what a plan holds; safe on a zeroed one. */
void snap_merge_plan_free(merge_plan *p)
{
	size_t i;

	sqlite3_free(p->cs);
	for (i = 0; i < p->nseqs; i++)
		sqlite3_free(p->seqs[i].name);
	free(p->seqs);
	memset(p, 0, sizeof(*p));
}

/* Column names of main.table, in order; -EIO on failure. */
int snap_merge_cols(sqlite3 *db, const char *table, char ***out, int *n)
{
	sqlite3_stmt *st = NULL;
	char **v = NULL;
	size_t cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1, "
				"'main') ORDER BY cid", -1, &st, NULL);
	if (rc == SQLITE_OK)
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (snap_array_grow(&v, &cap, (size_t)*n, sizeof(*v), 8)) {
			rc = SQLITE_NOMEM;
			break;
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

/* Free n column names and their array. */
void snap_merge_cols_free(char **cols, int n)
{
	while (n > 0)
		sqlite3_free(cols[--n]);
	free(cols);
}

/* "id=51, k='x'": the key of the iterator's row (new values for an
 * INSERT, old ones otherwise), named from main.table when it can be. */
void snap_merge_key_text(sqlite3 *db, sqlite3_changeset_iter *it,
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
	if (snap_merge_cols(db, table, &cols, &nnames) == 0 && nnames != ncol) {
		snap_merge_cols_free(cols, nnames);
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
	snap_merge_cols_free(cols, nnames);
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

/* Header fields an application sets (PRAGMA name = header offset) that a
 * changeset cannot carry: they are not rows.  The page size, the
 * auto_vacuum mode or a VACUUM are layout, not content, and stay the live
 * database's. */
static const struct {
	const char *pragma;
	int offset;
} merge_header_fields[] = {
	{ "user_version", 60 },
	{ "application_id", 68 },
};

/* Refuse an edit that changed one of merge_header_fields. */
static int merge_header_carriable(sqlite3 *db, snap_err *err)
{
	size_t i;
	int rc = 0, k;

	for (i = 0; !rc && i < sizeof(merge_header_fields) /
		    sizeof(merge_header_fields[0]); i++) {
		const char *name = merge_header_fields[i].pragma;
		int64_t v[2] = { 0, 0 };

		for (k = 0; !rc && k < 2; k++) {
			char *sql = sqlite3_mprintf("PRAGMA %s.%s",
						    k ? "b" : "a", name);

			if (!sql)
				return snap_err_set(err, -ENOMEM,
						    "out of memory");
			rc = snap_diff_query_int(db, sql, NULL, &v[k], err);
			sqlite3_free(sql);
		}
		if (!rc && v[0] != v[1])
			rc = snap_err_set(err, -EOPNOTSUPP, "the edit changed "
					  "PRAGMA %s (from %" PRId64 " to %"
					  PRId64 ", the database header at "
					  "offset %d), which a changeset "
					  "cannot carry into a database that "
					  "changed meanwhile", name, v[0], v[1],
					  merge_header_fields[i].offset);
	}
	return rc;
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

	rc = snap_diff_session(db, "b", NULL, &ses);
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
		if (snap_array_grow(&p->seqs, &cap, p->nseqs,
				    sizeof(*p->seqs), 4)) {
			rc = SQLITE_NOMEM;
			break;
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
int snap_merge_make_plan(const char *base, const char *edited,
			 merge_plan *p, snap_merge_result *res, snap_err *err)
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
	if (!rc)
		rc = merge_header_carriable(db, err);
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


/* Free what a result holds; safe on a zeroed one. */
void snap_merge_result_free(snap_merge_result *res)
{
	if (!res)
		return;
	free(res->rekeyed);
	res->rekeyed = NULL;
	res->nrekeyed = 0;
}
