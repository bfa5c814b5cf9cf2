/*
 * engine/diffstate.c — what diff.c, tablerestore.c and export.c share:
 * naming and checking a state, opening the live database or a snapshot on
 * a connection of its own, attaching a state to one, and reading a table's
 * columns (diff_int.h).  A snapshot is opened through the store's VFS as
 * "file:snapfs-snapshot-<id>?immutable=1"; the live file only ever through
 * SQLite (engine/PITFALLS.md 2).
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
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


/* A readable name of a state for messages. */
void snap_diff_state_name(snap_store *s, int64_t id, char *out, size_t cap)
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
int snap_diff_state_check(snap_store *s, int64_t id, snap_err *err)
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

/* "file:<path, percent-encoded>?<query>" (sqlite3_free it). */
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
int snap_diff_query_int(sqlite3 *db, const char *sql, const char *p1,
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
int snap_diff_exec(sqlite3 *db, char *sql, snap_err *err)
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
int snap_diff_open_live(snap_store *s, int rw, sqlite3 **db, snap_err *err)
{
	int rc = snap_diff_state_check(s, SNAP_DIFF_LIVE, err);

	*db = NULL;
	if (rc)
		return rc;
	return snap_livedb_open(s->db_path, (rw ? SNAP_LIVEDB_RW :
				SNAP_LIVEDB_RO) | SNAP_LIVEDB_URI, NULL, db,
				err);
}

/* Open state id as "main" of a new read-only connection (the export). */
int snap_diff_open_state(snap_store *s, int64_t id, sqlite3 **db,
			 snap_err *err)
{
	if (id == SNAP_DIFF_LIVE)
		return snap_diff_open_live(s, 0, db, err);
	return snap_image_sqlite_open_proven(s, id, db, err);
}

/* ATTACH state id to db under schema name `as`, read-only; a snapshot
 * gets the page cache snap_image_sqlite_open gives (each page read costs
 * a decompression). */
int snap_diff_attach(snap_store *s, sqlite3 *db, int64_t id, const char *as,
		     snap_err *err)
{
	sqlite3_stmt *st = NULL;
	const char *vfs = NULL;
	char *uri = NULL, *sql = NULL;
	char what[SNAP_NAME_MAX + 64];
	int rc = 0;

	snap_diff_state_name(s, id, what, sizeof(what));
	if (id == SNAP_DIFF_LIVE) {
		char q[128], live[PATH_MAX + 32];

		/* Through its kept directory, as snap_livedb_open opens it. */
		rc = snap_livedb_path(s->db_path, live, sizeof(live), err);
		if (rc)
			return rc;
		snprintf(q, sizeof(q), "mode=ro&vfs=%s",
			 sqlite3_vfs_find(NULL)->zName);
		uri = snap_diff_file_uri(live, q);
	} else {
		rc = snap_image_vfs_name(s, &vfs, err);
		if (rc)
			return rc;
		uri = sqlite3_mprintf("file:snapfs-snapshot-%lld?immutable=1&"
				      "mode=ro&snapfs_prove=1&vfs=%s",
				      (long long)id, vfs);
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
		rc = snap_diff_exec(db, sqlite3_mprintf("PRAGMA \"%w\".cache_size="
							"-16384", as), err);
out:
	sqlite3_finalize(st);
	sqlite3_free(sql);
	sqlite3_free(uri);
	return rc;
}

/* Start the read transaction that pins schema x and, if not NULL, y
 * (and so the live file's state) for the rest of the work. */
int snap_diff_begin_read(sqlite3 *db, const char *x, const char *y,
			 snap_err *err)
{
	char *sql = sqlite3_mprintf("BEGIN; SELECT count(*) FROM \"%w\"."
				    "sqlite_schema; SELECT count(*) FROM "
				    "\"%w\".sqlite_schema", x, y ? y : x);

	return snap_diff_exec(db, sql, err);
}



/* Columns of schema.table from PRAGMA table_xinfo, in order. */
int snap_diff_cols_load(sqlite3 *db, const char *schema, const char *table,
			diff_cols *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc;

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

		if (snap_array_grow(&out->c, &cap, (size_t)out->n, sizeof(*out->c), 8)) {
			rc = SQLITE_NOMEM;
			break;
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
		snap_diff_cols_free(out);
		return snap_err_sqlite(err, db, rc, "cannot read the columns of "
				       "table %s", table);
	}
	return 0;
}

/* Free the columns c holds (not c itself). */
void snap_diff_cols_free(diff_cols *c)
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
int snap_diff_cols_same(const diff_cols *x, const diff_cols *y, int types)
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
char *snap_diff_col_list(const diff_cols *c, const diff_cols *also,
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

/* A session on schema of db with `table` attached (NULL: every table). */
int snap_diff_session(sqlite3 *db, const char *schema, const char *table,
		      sqlite3_session **ses)
{
	int rc = sqlite3session_create(db, schema, ses);

	if (rc == SQLITE_OK)
		rc = sqlite3session_attach(*ses, table);
	return rc;
}
