/*
 * engine/diff.h — what differs between two states of the database, one
 * table restored from a snapshot, and a snapshot as SQL text.
 *
 * A "state" is a snapshot (opened through the store VFS) or the live
 * database (SNAP_DIFF_LIVE).  Per table: rows added, removed and changed,
 * computed with the session extension (sqlite3session_diff, PITFALLS 22:
 * every table attached explicitly) for tables with a PRIMARY KEY; for
 * tables without one (and WITHOUT ROWID edge cases the session ignores)
 * by comparing whole rows (EXCEPT ALL counts), which reports a changed row
 * as one removed and one added.  Tables only in one state are reported as
 * added or removed with all their rows.  Schema changes are listed.
 */
#ifndef ENGINE_DIFF_H
#define ENGINE_DIFF_H

#include <stdio.h>

#include "store.h"

#define SNAP_DIFF_LIVE 0   /* as a snapshot id: the live database */

typedef struct snap_table_diff {
	char table[256];
	int64_t added, removed, changed;
	int by_key;             /* 1: session extension; 0: whole-row compare */
	int only_in;            /* 0 both, 1 only in A (table dropped), 2 only
				   in B (table created) */
} snap_table_diff;

typedef struct snap_diff {
	snap_table_diff *tables;   /* only tables with differences */
	size_t n;
	int schema_changed;        /* CREATE/DROP/ALTER between A and B */
} snap_diff;

/* Differences from state a to state b (ids; SNAP_DIFF_LIVE = live). */
int snap_diff_states(snap_store *s, int64_t a, int64_t b, snap_diff *out,
		     snap_err *err);
void snap_diff_free(snap_diff *d);

/*
 * Restore one table from snapshot id into the live database, in one
 * transaction on the live database, after a safety snapshot (kind
 * pre-restore).  The table must exist in both with the same columns
 * (-EINVAL otherwise, nothing changed).  *safety (may be NULL) gets the
 * safety snapshot.  Recorded as a "restore" event naming the table.
 */
int snap_restore_table(snap_store *s, int64_t id, const char *table,
		       snap_info *safety, snap_err *err);

/* Write snapshot id as SQL text (like sqlite3's .dump) to f: schema,
 * rows as INSERT statements, indexes, triggers, views; re-importing it
 * with sqlite3 gives the same content. */
int snap_export_sql(snap_store *s, int64_t id, FILE *f, snap_err *err);

#endif /* ENGINE_DIFF_H */
