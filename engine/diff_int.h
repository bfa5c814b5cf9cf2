/*
 * engine/diff_int.h — what diff.c, tablerestore.c and export.c share
 * (diffstate.c); not part of the public API.
 */
#ifndef ENGINE_DIFF_INT_H
#define ENGINE_DIFF_INT_H

#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

#include "diff.h"
#include "livedb.h"
#include "store_int.h"


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

/* A readable name of a state for messages. */
void snap_diff_state_name(snap_store *s, int64_t id, char *out, size_t cap);

/* 0 when state id exists: a snapshot in the catalog, or the live file. */
int snap_diff_state_check(snap_store *s, int64_t id, snap_err *err);

/* One integer from a query with an optional text parameter ?1. */
int snap_diff_query_int(sqlite3 *db, const char *sql, const char *p1,
			int64_t *out, snap_err *err);

/* Run SQL built with sqlite3_mprintf, then free it. */
int snap_diff_exec(sqlite3 *db, char *sql, snap_err *err);

/* Open the live database as "main": read-only, or read-write for a table
 * restore.  URIs are allowed so that states can be attached. */
int snap_diff_open_live(snap_store *s, int rw, sqlite3 **db, snap_err *err);

/* Open state id as "main" of a new read-only connection (the export). */
int snap_diff_open_state(snap_store *s, int64_t id, sqlite3 **db,
			 snap_err *err);

/* ATTACH state id to db under schema name `as`, read-only; a snapshot
 * gets the page cache snap_image_sqlite_open gives (each page read costs
 * a decompression). */
int snap_diff_attach(snap_store *s, sqlite3 *db, int64_t id, const char *as,
		     snap_err *err);

/* Start the read transaction that pins schema x and, if not NULL, y
 * (and so the live file's state) for the rest of the work. */
int snap_diff_begin_read(sqlite3 *db, const char *x, const char *y,
			 snap_err *err);

/* Columns of schema.table from PRAGMA table_xinfo, in order. */
int snap_diff_cols_load(sqlite3 *db, const char *schema, const char *table,
			diff_cols *out, snap_err *err);
/* Free the columns c holds (not c itself). */
void snap_diff_cols_free(diff_cols *c);

/* 1 when both lists have the same columns in the same order: names, key
 * positions and generated-ness; with `types`, declared types too. */
int snap_diff_cols_same(const diff_cols *x, const diff_cols *y, int types);

/* "a","b",... of the stored columns of c, or of those also stored in
 * `also` when it is not NULL; with `alias`, each named k1, k2, ...  NULL
 * on OOM; *n gets the count. */
char *snap_diff_col_list(const diff_cols *c, const diff_cols *also,
			 int alias, int *n);
/*
 * A session recording changes to `table` of schema `schema` of db (every
 * table when table is NULL): SQLite's code.  sqlite3session_delete(*ses)
 * after, also on failure.
 */
int snap_diff_session(sqlite3 *db, const char *schema, const char *table,
		      sqlite3_session **ses);

#endif /* ENGINE_DIFF_INT_H */
