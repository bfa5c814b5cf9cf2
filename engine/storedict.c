/*
 * engine/storedict.c — the store's zstd dictionaries: recording one, and
 * loading them checked (engine/DESIGN.md §2, "Dictionary").
 *
 *   dicts(id, created_ns, sha256, data, data2)   since schema version 3
 *
 * id is the dictID the dictionary's frames carry in their header; data
 * and data2 are two copies of the same bytes, sha256 their SHA-256.  Every
 * page compressed with a dictionary depends on it, so one flipped bit must
 * neither make the pages unreadable nor stay: a copy is used only when it
 * matches the hash and names its own id, and the other serves while the
 * next capture rewrites the damaged one.  When both copies differ from
 * the hash but agree with each other, the hash is what was damaged: the
 * copies serve, and the capture rewrites the hash.  With no intact copy,
 * the pages that need it fail verification and a capture is refused.
 * Rows are never deleted (retention and deletion leave the table alone):
 * a dictionary is small (at most SNAP_DICT_MAX bytes) and a store
 * usually trains one.
 *
 * A store older than version 3 opened read-only has no table: it has no
 * dictionary either, and loading gives none.  A reader (level 0) that
 * finds the table itself unreadable (a damaged page of it, or a table
 * of another shape) goes on with the dictionaries read before the error,
 * none at worst, and reports the table through the problem callback as
 * unusable: pages compressed without a dictionary must stay readable,
 * and those that need one then fail with -ENOKEY, saying so.  Out of
 * memory, a lock or an I/O error still fails the load (the pages would
 * not read either; a retry may), and so does any error in a capture,
 * which would record a dictionary there.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "store_int.h"
#include "util.h"

/* 1 when copy z (n bytes) is dictionary `id` with SHA-256 sha. */
static int dict_copy_ok(const void *z, size_t n, int64_t id,
			const void *sha, size_t shalen)
{
	uint8_t h[32];

	if (!z || !n || shalen != 32 || snap_sha256(z, n, h) ||
	    memcmp(h, sha, 32) != 0)
		return 0;
	return (int64_t)ZSTD_getDictID_fromDict(z, n) == id;
}

/* Report a problem with dictionary id through fn (when not NULL);
 * usable: an intact copy still serves. */
static void dict_problem(snap_dict_problem_fn fn, void *ctx, int64_t id,
			 const char *what, int usable)
{
	char msg[256];

	if (!fn)
		return;
	snprintf(msg, sizeof(msg), "zstd dictionary %lld of the store: %s",
		 (long long)id, what);
	fn(ctx, msg, usable);
}

/* In a capture's write transaction: rewrite dictionary id's hash and both
 * copies from the intact bytes (use, n), so that one damaged copy does
 * not stay the only one. */
static int dict_repair(sqlite3 *db, int64_t id, const void *use, size_t n)
{
	sqlite3_stmt *st = NULL;
	uint8_t sha[32];
	int rc;

	if (snap_sha256(use, n, sha))
		return SQLITE_NOMEM;
	rc = sqlite3_prepare_v2(db, "UPDATE dicts SET sha256=?1, data=?2, "
				"data2=?2 WHERE id=?3", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_blob(st, 1, sha, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, use, (int)n, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 3, id);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* For a reader (level 0): 1 when SQLite's error rc reading the table
 * says the table itself cannot be read (a damaged page of it:
 * SQLITE_CORRUPT; a table of another shape: SQLITE_ERROR at prepare,
 * SQLITE_MISMATCH), reported through fn as a problem no copy makes good.
 * 0 for what still fails the load: out of memory, a lock, an I/O error
 * (the store's pages would not read either; a retry may). */
static int dicts_unreadable(sqlite3 *db, int rc, snap_dict_problem_fn fn,
			    void *ctx)
{
	char msg[256];

	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_ERROR:
	case SQLITE_MISMATCH:
		break;
	default:
		return 0;
	}
	if (fn) {
		snprintf(msg, sizeof(msg), "the store's table of zstd "
			 "dictionaries cannot be read (%s): pages compressed "
			 "with a dictionary cannot be read",
			 sqlite3_errmsg(db));
		fn(ctx, msg, 0);
	}
	return 1;
}

int snap_store_dicts_load(sqlite3 *db, snap_dicts *ds, int level,
			  snap_dict_problem_fn fn, void *ctx, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	memset(ds, 0, sizeof(*ds));
	rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema WHERE "
				"type='table' AND name='dicts'", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rc = sqlite3_column_int(st, 0) ? SQLITE_OK : SQLITE_DONE;
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_DONE)
		return 0;            /* before version 3: none */
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT id, sha256, data, data2 "
					"FROM dicts ORDER BY created_ns, id", -1, &st,
					NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const void *sha = sqlite3_column_blob(st, 1);
		size_t shalen = (size_t)sqlite3_column_bytes(st, 1);
		const void *a = sqlite3_column_blob(st, 2);
		size_t alen = (size_t)sqlite3_column_bytes(st, 2);
		const void *b = sqlite3_column_blob(st, 3);
		size_t blen = (size_t)sqlite3_column_bytes(st, 3);
		int oka = dict_copy_ok(a, alen, id, sha, shalen);
		int okb = dict_copy_ok(b, blen, id, sha, shalen);
		const void *use = oka ? a : okb ? b : NULL;
		size_t ulen = oka ? alen : blen;
		int repair = 0;

		if (!use && a && alen && alen == blen && !memcmp(a, b, alen) &&
		    (int64_t)ZSTD_getDictID_fromDict(a, alen) == id) {
			use = a;
			ulen = alen;
			repair = 1;
			dict_problem(fn, ctx, id, "its SHA-256 is damaged (both "
				     "copies agree and are in use; the next "
				     "snapshot rewrites it)", 1);
		} else if (!use) {
			dict_problem(fn, ctx, id, "both copies are damaged: "
				     "pages compressed with it cannot be "
				     "read", 0);
			if (level > 0) {
				/* A capture would record snapshots that
				 * share those pages: refused. */
				sqlite3_finalize(st);
				snap_dicts_free(ds);
				return snap_err_set(err, -EBADMSG, "the store's "
					"zstd dictionary %lld is damaged in "
					"both copies, so the pages compressed "
					"with it cannot be read; no snapshot is "
					"taken into this store: run snapctl "
					"verify to see the snapshots affected, "
					"move the store aside and take a new "
					"first snapshot (or restore from a "
					"replica)", (long long)id);
			}
		} else if (!oka || !okb) {
			repair = 1;
			dict_problem(fn, ctx, id, oka ? "its second copy is "
				     "damaged (the first is intact and in use; "
				     "the next snapshot rewrites it)" :
				     "its first copy is damaged (the second "
				     "is intact and in use; the next snapshot "
				     "rewrites it)", 1);
		}
		/* Rows come oldest first: the last one compresses.  zstd
		 * copies the bytes, so the repair below may change the row
		 * under the column's pointer. */
		if (use && ((rc = snap_dicts_add(ds, use, ulen)) != 0 ||
			    (level > 0 && (rc = snap_dicts_compress_with(
					ds, use, ulen, level)) != 0))) {
			sqlite3_finalize(st);
			snap_dicts_free(ds);
			return snap_err_set(err, rc, "out of memory for the "
					    "store's zstd dictionary");
		}
		if (repair && level > 0 &&
		    (rc = dict_repair(db, id, use, ulen)) != SQLITE_OK) {
			sqlite3_finalize(st);
			snap_dicts_free(ds);
			return snap_err_sqlite(err, db, rc, "cannot rewrite the "
					       "store's zstd dictionary %lld",
					       (long long)id);
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_DONE && level == 0 &&
	    dicts_unreadable(db, rc, fn, ctx)) {
		sqlite3_finalize(st);
		return 0;        /* those read before the failure serve */
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE && level > 0 && dicts_unreadable(db, rc, NULL,
							       NULL)) {
		/* A capture would share pages that may need one. */
		rc = snap_err_sqlite(err, db, rc, "the store's table of zstd "
				     "dictionaries cannot be read, so pages "
				     "compressed with one cannot be read; no "
				     "snapshot is taken into this store: run "
				     "snapctl verify to see the snapshots "
				     "affected, move the store aside and take "
				     "a new first snapshot (or restore from a "
				     "replica)");
		snap_dicts_free(ds);
		return rc;
	}
	if (rc != SQLITE_DONE) {
		snap_dicts_free(ds);
		return snap_err_sqlite(err, db, rc, "cannot read the store's "
				       "zstd dictionaries");
	}
	return 0;
}

int snap_store_dict_insert(sqlite3 *db, const void *dict, size_t len,
			   snap_err *err)
{
	sqlite3_stmt *st = NULL;
	uint8_t sha[32];
	int rc;

	if (snap_sha256(dict, len, sha))
		return snap_err_set(err, -ENOMEM, "out of memory for SHA-256");
	rc = sqlite3_prepare_v2(db, "INSERT INTO dicts(id, created_ns, sha256, "
				"data, data2) VALUES(?1, ?2, ?3, ?4, ?4)", -1,
				&st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, ZSTD_getDictID_fromDict(dict, len));
		sqlite3_bind_int64(st, 2, snap_time_now_ns());
		sqlite3_bind_blob(st, 3, sha, 32, SQLITE_STATIC);
		sqlite3_bind_blob(st, 4, dict, (int)len, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, db, rc, "cannot record the store's "
				       "zstd dictionary");
	return 0;
}
