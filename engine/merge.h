/*
 * engine/merge.h — an edit made on a copy of the live database, applied
 * onto the live database as a changeset while others kept writing.
 *
 * The edit is the difference between two files: `base`, the copy as it was
 * when the edit began, and `edited`, the copy afterwards.  The session
 * extension turns that difference into a changeset (the rows inserted,
 * updated and deleted, by PRIMARY KEY), which is applied onto the live
 * database in one transaction.  Rows the live database changed on its own
 * since `base` are left alone; a row changed on both sides is a conflict
 * and nothing is applied.
 *
 * Rows inserted on both sides with the same automatic key are not the
 * same row: an application appending to a table while a person inserts
 * into it through the mount gets the keys SQLite assigns, max + 1, on both
 * sides.  The edit's rows then take new keys, past everything the live
 * database holds, in their own order, when all of this holds (otherwise it
 * is a conflict, as below):
 *   - the table's key is the rowid alias: one column declared INTEGER
 *     PRIMARY KEY, with or without AUTOINCREMENT (not WITHOUT ROWID, not a
 *     virtual table's shadow table);
 *   - the edit's key is past base's end: greater than base's largest key
 *     in that table and its sqlite_sequence value, which is where SQLite
 *     assigns keys.  A key at or below it fills a gap, so somebody chose
 *     it.  A key chosen past the end cannot be told from an assigned one
 *     and is treated as assigned;
 *   - nothing can refer to the old key: no declared foreign key refers to
 *     the table, and no other value of any row the edit changed (any
 *     column, as an integer, a real or a decimal text) equals it.  A
 *     reference inside a longer text or a blob is not seen.
 * Every row the edit inserted past base's end in such a table takes a new
 * key (not only the colliding ones, so their order is kept); they are
 * listed in res->rekeyed and in the event.  sqlite_sequence follows.
 *
 * A merge refuses, with nothing changed, when:
 *   - a row changed on both sides: updated or deleted in the edit and
 *     changed or deleted in the live database since base, or inserted in
 *     both with the same key (other than as above), or the edit's row
 *     breaks a constraint of the live database (a UNIQUE index, a CHECK)
 *     or leaves a foreign key dangling that was not dangling before
 *     (-ESTALE, res->conflict = 1, res->table and res->key name the first
 *     such row);
 *   - the live database's schema is no longer base's (-ESTALE);
 *   - the edit holds a change a changeset cannot carry: a schema change
 *     (CREATE, ALTER, DROP of a table, index, view or trigger), or changed
 *     rows in a table without a PRIMARY KEY (or with NULL in a key column),
 *     which the session extension ignores (engine/PITFALLS.md 22), or a
 *     changed header field an application sets (PRAGMA user_version,
 *     application_id) (-EOPNOTSUPP).  A VACUUM, a page size or an
 *     auto_vacuum change is layout, not content, and is not carried
 *     (alone, nothing is applied);
 *   - `edited` is not an intact database (-EINVAL), another restore runs
 *     or the live database stayed locked (-EBUSY).
 * Tables and rows the edit did not change never matter, whatever they are.
 * Changes to SQLite's own tables: sqlite_sequence takes the larger value of
 * both sides (AUTOINCREMENT never reuses a key); sqlite_stat1 (ANALYZE)
 * is not carried.  Virtual tables are carried through their shadow tables.
 *
 * When there is something to apply, a safety snapshot (kind pre-restore,
 * label before-merge) is taken under the live database's write lock before
 * anything changes, and the merged state must pass quick_check (and not
 * add foreign-key violations) before it commits; otherwise the transaction
 * rolls back (-EIO) and the unused safety snapshot is deleted.  Triggers do
 * not fire while the changeset is applied: their effects in the edit are
 * rows of the changeset already.
 *
 * Events: a merge that applied records one "restore" event saying so.  A
 * refused or failed merge records nothing: the caller records the event
 * together with what became of the edit (snapfs keeps it as a conflict
 * snapshot).  One merge or restore at a time per store (the restore lock).
 *
 * Thread-safety: every call opens its own connections.
 */
#ifndef ENGINE_MERGE_H
#define ENGINE_MERGE_H

#include "store.h"

typedef struct snap_merge_opts {
	const char *what;         /* the edit, for messages and the event
				     ("an edit through the mount"); NULL:
				     "an edit" */
} snap_merge_opts;

/* One row of the edit inserted under a new key. */
typedef struct snap_merge_rekey {
	char table[256];
	char column[128];         /* its INTEGER PRIMARY KEY */
	int64_t old_key;          /* the key it had in the edit */
	int64_t new_key;          /* the key it has in the live database */
} snap_merge_rekey;

typedef struct snap_merge_result {
	int64_t inserted;         /* rows the edit inserted, updated and */
	int64_t updated;          /* deleted (counted from the changeset, */
	int64_t deleted;          /* also when the merge was refused) */
	int conflict;             /* 1: refused for a row changed on both
				     sides */
	char table[256];          /* the table of that row ("" none) */
	char key[256];            /* its key, "id=51" */
	int have_safety;          /* 1 when the safety snapshot was kept */
	snap_info safety;         /* the pre-restore snapshot */
	snap_merge_rekey *rekeyed; /* rows that took new keys, by table and
				     old key (malloc'd; only when applied;
				     snap_merge_result_free) */
	size_t nrekeyed;
} snap_merge_result;

/*
 * Apply the edit from `base` to `edited` (database files nobody writes
 * meanwhile) onto the store's live database; o and res may be NULL.
 * 0 when applied (or when the edit changed no row: nothing is done), or a
 * negative errno with err saying why (see above).
 */
int snap_merge_apply(snap_store *s, const char *base, const char *edited,
		     const snap_merge_opts *o, snap_merge_result *res,
		     snap_err *err);

/* Free what a result holds (res->rekeyed); safe on a zeroed result.  The
 * next snap_merge_apply overwrites res without freeing it. */
void snap_merge_result_free(snap_merge_result *res);

#endif /* ENGINE_MERGE_H */
