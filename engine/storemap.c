/*
 * engine/storemap.c — page maps and the pages' reference counts (runs), and
 * deleting a snapshot, which is where runs change most.
 *
 * Reference counting by runs.  Order the snapshots by id (creation order).
 * A page's `runs` is the number of maximal runs of consecutive snapshots
 * whose maps contain it.  A page is referenced iff runs > 0, and runs only
 * change where maps differ from their neighbours:
 *   - a new snapshot N (always the newest) adds a run for each page it has
 *     and the previous newest lacks;
 *   - deleting S (neighbours P before, Q after) removes a run for each page
 *     in S and in neither P nor Q (its run was {S}), and for each page in P
 *     and Q but not S (two runs become one).
 * So creating or deleting a snapshot costs SQL work proportional to what
 * changed, and in-memory work proportional to one database's pages, never
 * to the number of snapshots kept (plain per-entry counts would rewrite
 * every page row for every snapshot).
 *
 * Invariants: every page row has runs equal to the definition above; a page
 * row exists iff runs > 0; every change is one transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "anchor.h"
#include "codec.h"
#include "store_int.h"
#include "sys.h"

/* Free pages of store.db handed back to the filesystem after a deletion
 * once they are at least this many and a quarter of the file. */
#define STORE_VACUUM_MIN_PAGES 16

/* Snapshot id's page map, decoded (free() it). */
int snap_store_load_map(sqlite3 *db, int64_t id, uint32_t *n, int64_t **ids,
			snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT page_count, pagemap, name "
				    "FROM snapshots WHERE id=?", -1, &st,
				    NULL);

	*ids = NULL;
	snap_store_count_load(id, 1);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		*n = (uint32_t)sqlite3_column_int64(st, 0);
		rc = snap_map_decode(sqlite3_column_blob(st, 1),
				     (size_t)sqlite3_column_bytes(st, 1), *n,
				     ids);
		if (rc)
			rc = snap_err_set(err, rc == -ENOMEM ? rc : -EBADMSG,
					  "snapshot %s: page map is damaged",
					  sqlite3_column_text(st, 2));
	} else if (rc == SQLITE_DONE) {
		rc = snap_err_set(err, -ENOENT, "no snapshot with id %lld",
				  (long long)id);
	} else {
		rc = snap_err_sqlite(err, db, rc, "cannot read page map");
	}
	sqlite3_finalize(st);
	return rc;
}

/* The unique page ids of snapshot id's map, as a set (counts unused). */
int snap_store_map_set(sqlite3 *db, int64_t id, snap_idcount *set,
		       snap_err *err)
{
	int64_t *ids = NULL;
	uint32_t n = 0, i;
	int rc;

	memset(set, 0, sizeof(*set));
	if (id <= 0)
		return snap_idcount_init(set, 16) ?
		       snap_err_set(err, -ENOMEM, "out of memory") : 0;
	rc = snap_store_load_map(db, id, &n, &ids, err);
	if (!rc && snap_idcount_init(set, n / 2 + 16))
		rc = snap_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; !rc && i < n; i++)
		if (snap_idcount_add(set, ids[i], 1))
			rc = snap_err_set(err, -ENOMEM, "out of memory");
	free(ids);
	return rc;
}

/* Add delta to the pages' runs; delete the pages whose runs reach 0. */
int snap_store_runs_apply(sqlite3 *db, const snap_idcount *delta,
			  snap_err *err)
{
	sqlite3_stmt *up = NULL, *dp = NULL, *dd = NULL;
	size_t i;
	int rc;

	rc = sqlite3_prepare_v2(db, "UPDATE pages SET runs=runs+?1 WHERE "
				"id=?2 RETURNING runs", -1, &up, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "DELETE FROM pages WHERE id=?", -1,
					&dp, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "DELETE FROM page_data WHERE id=?",
					-1, &dd, NULL);
	for (i = 0; rc == SQLITE_OK && i < delta->cap; i++) {
		int64_t runs = 1;

		if (!delta->ids[i])
			continue;
		if (!delta->counts[i])
			continue;
		sqlite3_bind_int64(up, 1, delta->counts[i]);
		sqlite3_bind_int64(up, 2, delta->ids[i]);
		rc = sqlite3_step(up);
		runs = rc == SQLITE_ROW ? sqlite3_column_int64(up, 0) : 1;
		if (rc == SQLITE_ROW || rc == SQLITE_DONE)
			rc = sqlite3_reset(up);
		if (rc == SQLITE_OK && runs <= 0) {
			sqlite3_bind_int64(dp, 1, delta->ids[i]);
			sqlite3_bind_int64(dd, 1, delta->ids[i]);
			rc = sqlite3_step(dp);
			if (rc == SQLITE_DONE)
				rc = sqlite3_step(dd);
			if (rc == SQLITE_DONE) {
				sqlite3_reset(dp);
				rc = sqlite3_reset(dd);
			}
		}
	}
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, db, rc, "cannot update page "
				     "references");
	sqlite3_finalize(up);
	sqlite3_finalize(dp);
	sqlite3_finalize(dd);
	return rc;
}

/* The id of the snapshot before (dir < 0) or after (dir > 0) id, or 0. */
static int neighbour(sqlite3 *db, int64_t id, int dir, int64_t *out,
		     snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, dir < 0 ?
				    "SELECT max(id) FROM snapshots WHERE id<?" :
				    "SELECT min(id) FROM snapshots WHERE id>?",
				    -1, &st, NULL);

	/* A failed query is an error, never "no neighbour": the runs a
	 * delete takes back depend on it (found by tests/unit/test_faults.c:
	 * a delete out of memory reclaimed pages its neighbour used). */
	*out = 0;
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, db, rc, "cannot find the snapshot "
				     "%s snapshot %lld", dir < 0 ? "before" :
				     "after", (long long)id);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Run-count changes for deleting snapshot id (see the top of this file). */
static int delete_runs(sqlite3 *db, int64_t id, snap_idcount *delta,
		       snap_err *err)
{
	snap_idcount ps = {0}, ss = {0}, qs = {0};
	int64_t before = 0, after = 0;
	size_t i;
	int rc;

	rc = neighbour(db, id, -1, &before, err);
	if (!rc)
		rc = neighbour(db, id, 1, &after, err);
	if (!rc)
		rc = snap_store_map_set(db, before, &ps, err);
	if (!rc)
		rc = snap_store_map_set(db, id, &ss, err);
	if (!rc)
		rc = snap_store_map_set(db, after, &qs, err);
	if (!rc && snap_idcount_init(delta, 1024))
		rc = snap_err_set(err, -ENOMEM, "out of memory");
	for (i = 0; !rc && i < ss.cap; i++)
		if (ss.ids[i] && !snap_idcount_has(&ps, ss.ids[i]) &&
		    !snap_idcount_has(&qs, ss.ids[i]))
			rc = snap_idcount_add(delta, ss.ids[i], -1);
	for (i = 0; !rc && i < ps.cap; i++)
		if (ps.ids[i] && snap_idcount_has(&qs, ps.ids[i]) &&
		    !snap_idcount_has(&ss, ps.ids[i]))
			rc = snap_idcount_add(delta, ps.ids[i], -1);
	if (rc == -ENOMEM)
		snap_err_set(err, rc, "out of memory");
	snap_idcount_free(&ps);
	snap_idcount_free(&ss);
	snap_idcount_free(&qs);
	if (rc == -EBADMSG) {
		/* A damaged map (this one or a neighbour's): what changes
		 * cannot be computed.  Leaving every count as it is can
		 * only keep pages too long, never drop one still used. */
		snap_idcount_free(delta);
		memset(delta, 0, sizeof(*delta));
		return 1;
	}
	return rc;
}

/*
 * Give free pages of store.db back to the filesystem once a deletion left
 * many (at least STORE_VACUUM_MIN_PAGES and a quarter of the file): PRAGMA
 * incremental_vacuum moves pages from the end of the file into the free
 * ones, and the checkpoint that copies the result out of the WAL truncates
 * the file.  Only stores made with auto_vacuum=INCREMENTAL can do this
 * (snap_store_schema_init); older ones keep their size and reuse their free
 * pages for later snapshots.  Best effort: a failure (a reader holding the
 * WAL, a full disk) leaves the pages free inside the file, as before.
 */
static void store_reclaim(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int64_t mode = 0, freelist = 0, pages = 0;

	if (sqlite3_prepare_v2(db, "SELECT auto_vacuum, freelist_count, "
			       "page_count FROM pragma_auto_vacuum, "
			       "pragma_freelist_count, pragma_page_count",
			       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		mode = sqlite3_column_int64(st, 0);
		freelist = sqlite3_column_int64(st, 1);
		pages = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (mode != 2 || freelist < STORE_VACUUM_MIN_PAGES ||
	    freelist * 4 < pages)
		return;
	if (sqlite3_exec(db, "PRAGMA incremental_vacuum", NULL, NULL,
			 NULL) == SQLITE_OK)
		sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
}

/* Delete snapshot id in one transaction and reclaim the pages only it used. */
int snap_store_delete(snap_store *s, int64_t id, snap_err *err)
{
	snap_info si;
	snap_idcount delta = {0};
	char sql[96];
	int rc, reclaimed = 1;

	memset(&si, 0, sizeof(si));
	if ((rc = snap_store_txn_begin(s, err)))
		return rc;
	rc = snap_store_get_db(s->db, id, &si, err);
	if (!rc)
		rc = delete_runs(s->db, id, &delta, err);
	if (rc == 1)
		rc = reclaimed = 0;
	else if (!rc)
		rc = snap_store_runs_apply(s->db, &delta, err);
	if (!rc) {
		/* A snapshot in the trash leaves it with its row (emptying the
		 * trash is this delete). */
		snprintf(sql, sizeof(sql), "DELETE FROM trash WHERE id=%lld;"
			 "DELETE FROM snapshots WHERE id=%lld", (long long)id,
			 (long long)id);
		rc = snap_store_exec(s->db, sql, err);
	}
	rc = snap_store_txn_end(s->db, rc, err);
	if (rc == -ENOSPC)
		/* SQLite's "database or disk is full" says nothing of what
		 * to do: the reserve (storespace.c) was given back and was
		 * not enough for what this delete rewrites. */
		snap_err_set(err, -ENOSPC, "cannot delete snapshot %s: the "
			     "filesystem of the store %s is full, and the room "
			     "the store keeps for deletes is too small for "
			     "this one (it rewrites every store page that "
			     "holds a page it frees); nothing was deleted: "
			     "free space on that filesystem, outside the "
			     "store, and try again", si.name, s->dir);
	if (rc) {
		snap_event_add_db(s->db, "delete", rc == -ENOENT ? "" : si.name,
				  0, err ? err->msg : "delete failed");
	} else {
		snap_event_add_db(s->db, "delete", si.name, 1, reclaimed ?
				  "deleted; unreferenced pages reclaimed" :
				  "deleted; a page map was damaged, so the "
				  "pages this snapshot used stay in the store");
		store_reclaim(s->db);
	}
	snap_store_unlock(s);
	snap_idcount_free(&delta);
	return rc;
}
