/*
 * engine/diff.h — what differs between two states of the database, one
 * table restored from a snapshot, and a snapshot as SQL text.
 *
 * A "state" is a snapshot (opened through the store VFS) or the live
 * database (SNAP_DIFF_LIVE), read in one read transaction so the live
 * database is seen consistently while others write.  Per table: rows
 * added, removed and changed.  Tables with a PRIMARY KEY (rowid or WITHOUT
 * ROWID) are compared by key with the session extension
 * (sqlite3session_diff, engine/PITFALLS.md 22: every table attached
 * explicitly): a row whose key is in both states but whose other columns
 * differ is one "changed" row.  Tables the session cannot compare — no
 * declared PRIMARY KEY, a NULL in a key column (the session skips such rows),
 * or columns that differ between the states — are compared as multisets of
 * whole rows (value and type, so 1, 1.0 and '1' differ; duplicates counted):
 * a changed row is then one removed and one added (by_key 0).  Tables only
 * in one state are reported as created or dropped with all their rows.
 * Virtual tables are not compared row by row: their shadow tables are
 * ordinary tables and are.  Internal tables (sqlite_sequence, sqlite_stat1)
 * are not compared.
 *
 * "restore --dry-run" of snapshot id is snap_diff_states(s, SNAP_DIFF_LIVE,
 * id): what the live database would become.
 *
 * Thread-safety: every call opens its own SQLite connections; calls may run
 * in parallel with each other and with snapshots.  snap_restore_table and
 * snap_restore exclude each other (the store's restore lock, -EBUSY).
 */
#ifndef ENGINE_DIFF_H
#define ENGINE_DIFF_H

#include <stdio.h>

#include "store.h"

#define SNAP_DIFF_LIVE 0   /* as a snapshot id: the live database */

typedef struct snap_table_diff {
	char table[256];        /* name as in state b (a when dropped); a
				   longer name is cut */
	int64_t added, removed, changed;
	int by_key;             /* 1: session extension; 0: whole-row compare
				   (changed is then always 0) */
	int only_in;            /* 0 both, 1 only in A (table dropped), 2 only
				   in B (table created) */
	int columns_changed;    /* 1: in both, but the column list differs;
				   rows compared on the columns in common */
} snap_table_diff;

typedef struct snap_diff {
	snap_table_diff *tables;   /* only tables with differences, by name */
	size_t n;
	int schema_changed;        /* any CREATE/DROP/ALTER of a table, index,
				      view or trigger between A and B */
} snap_diff;

/* Differences from state a to state b (ids; SNAP_DIFF_LIVE = live).
 * -ENOENT for an unknown snapshot or a missing live database.  Free the
 * result with snap_diff_free (also safe on a zeroed or failed result). */
int snap_diff_states(snap_store *s, int64_t a, int64_t b, snap_diff *out,
		     snap_err *err);
void snap_diff_free(snap_diff *d);

/*
 * The same comparison on a caller's connection that has the two states
 * attached as schemas "a" and "b" (inside a read transaction when either
 * can change): how the merge (merge.h) compares files that are not
 * snapshots.  Fills out as snap_diff_states does.
 */
int snap_diff_attached(sqlite3 *db, snap_diff *out, snap_err *err);

/* 1 in *changed when any (type, name, tbl_name, sql) row of sqlite_schema
 * (SQLite's own sqlite_% objects aside) is in only one of schemas x and y
 * of db. */
int snap_diff_schema_changed(sqlite3 *db, const char *x, const char *y,
			     int *changed, snap_err *err);

/* "file:<path, percent-encoded>?<query>" for ATTACH or sqlite3_open_v2
 * with SQLITE_OPEN_URI (sqlite3_free it); NULL when out of memory. */
char *snap_diff_file_uri(const char *path, const char *query);

/* What snap_restore_table did. */
typedef struct snap_table_restore {
	int have_safety;          /* 1 when the safety snapshot was taken */
	snap_info safety;         /* the pre-restore snapshot */
	int64_t rows_before;      /* rows of the table in the live database */
	int64_t rows_after;       /* rows restored from the snapshot */
	int64_t fk_violations;    /* foreign-key violations involving the
				     table after the restore that were not
				     there before (-1: could not be
				     counted); the restore does not refuse
				     them, the caller should warn */
} snap_table_restore;

/*
 * Restore one table from snapshot id into the live database, through the
 * restore skeleton (restore.h: snap_restore_run): verify the snapshot
 * (structure), take the live database's write lock (BEGIN IMMEDIATE,
 * waiting for writers), take a safety snapshot under it (kind
 * pre-restore, label "before-table-<table>"; no commit falls between it
 * and the copy), then in that transaction delete every row of the table
 * and insert the snapshot's rows.  Only this table's rows change: foreign keys
 * are not enforced during the copy (no cascades into other tables; new
 * violations are counted in res), but the table's own triggers fire as for
 * any DELETE and INSERT, so triggers that write elsewhere (audit logs,
 * FTS external-content sync) do their work.  sqlite_sequence keeps the
 * larger of the live and the restored ids (AUTOINCREMENT never reuses).
 * The table must exist in both as an ordinary table with the same columns
 * (-EINVAL otherwise, nothing changed and no safety snapshot taken).
 * Errors: -ENOENT (no such snapshot), -EBADMSG (snapshot failed
 * verification), -EBUSY (a restore is running, or the live database stayed
 * locked), -ENOENT also when the live file is not a database, -EIO (a
 * failure after the copy: the live database was rolled back to the safety
 * snapshot, as a whole restore's is); on any failure the live database is
 * as it was.
 * Recorded as a "restore" event naming the table.  res may be NULL.
 */
int snap_restore_table(snap_store *s, int64_t id, const char *table,
		       snap_table_restore *res, snap_err *err);

/*
 * Write state id (a snapshot, or SNAP_DIFF_LIVE) as SQL text to f, like
 * sqlite3's .dump: PRAGMA foreign_keys=OFF; BEGIN TRANSACTION; each table's
 * CREATE statement followed by its rows as INSERT statements (values by
 * quote(): blobs as X'..', reals exact, infinities as 1e999), the
 * sqlite_sequence and sqlite_stat1 rows, then indexes, triggers and views
 * in creation order; COMMIT.  Virtual tables are written as .dump does:
 * their schema row is inserted under PRAGMA writable_schema and their
 * shadow tables are dumped as ordinary tables, so an FTS index comes back
 * exactly (the sqlite3 shell accepts this; a connection in defensive mode
 * does not).  Re-importing it with `sqlite3 NEW.db < dump.sql` gives the
 * same schema and content.  -EIO when writing to f fails.
 */
int snap_export_sql(snap_store *s, int64_t id, FILE *f, snap_err *err);

#endif /* ENGINE_DIFF_H */
