/*
 * engine/storeschema.c — the store's schema: creating it in a new store.db,
 * checking an existing one is ours and not too new, migrating an old one.
 *
 * Layout of store.db (schema version SNAP_STORE_SCHEMA_VERSION, kept in
 * PRAGMA user_version; application_id 'SNAP'):
 *
 *   meta(key, value)            db_path, created
 *   pages(id, hash, size, zlen, runs)
 *                               one row per distinct page image; runs =
 *                               its reference count (see below)
 *   page_data(id, zdata)        the stored bytes (zstd, or raw if zlen==size)
 *   snapshots(...)              the catalog; pagemap (last column, so listing
 *                               never reads it) is a zstd frame of page ids
 *   trash(id, uid, dir, tname, trashed_ns, info)
 *                               since version 2: the snapshots in a
 *                               freedesktop trash (engine/trash.c), one row
 *                               each, deleted with the snapshot
 *   events(...)                 the history
 *   dicts(id, created_ns, sha256, data, data2)
 *                               since version 3: the zstd dictionaries
 *                               pages may be compressed with
 *                               (engine/storedict.c)
 *
 * Page rows and their bytes live in separate tables so that reference-count
 * updates rewrite a few dozen bytes, never a page image.
 *
 * Reference counting by runs (the column pages.runs): storemap.c.
 *
 * Schema versions.  A store is migrated in the transaction that opens it
 * for writing (snap_store_schema_init, store_migrate): version 1 gains
 * the table trash, version 2 the table dicts.  A version-2 snapfs refuses
 * a version-3 store (it could not decode pages compressed with a
 * dictionary).  That state is a table of its own rather than columns
 * of snapshots because
 * ALTER TABLE ADD COLUMN puts a column after pagemap, and reading it would
 * walk every map's overflow pages on each listing.  A version-1 store
 * opened read-only is left as it is: its connections get an empty TEMP
 * table trash instead (snap_store_ro_compat), so the same queries read it.
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

#define SNAP_STORE_APPID 1397637456   /* 'SNAP', PRAGMA application_id */

/* Version 2's table: where trashed snapshots are (engine/trash.h).  dir is
 * a snap_trash_dir; tname is unique within one directory of one trash. */
#define STORE_TRASH_TABLE(temp) \
	"CREATE " temp "TABLE IF NOT EXISTS trash(" \
	"  id INTEGER PRIMARY KEY," \
	"  uid INTEGER NOT NULL, dir INTEGER NOT NULL, tname TEXT NOT NULL," \
	"  trashed_ns INTEGER NOT NULL, info TEXT NOT NULL DEFAULT ''," \
	"  UNIQUE(uid, dir, tname));"
#define STORE_TRASH_SQL STORE_TRASH_TABLE("")

/* Version 3's table: the zstd dictionaries pages are compressed with
 * (engine/storedict.c), each twice with its SHA-256. */
#define STORE_DICTS_SQL \
	"CREATE TABLE IF NOT EXISTS dicts(id INTEGER PRIMARY KEY," \
	"  created_ns INTEGER NOT NULL, sha256 BLOB NOT NULL," \
	"  data BLOB NOT NULL, data2 BLOB NOT NULL);"

static const char schema_sql[] =
	"PRAGMA application_id = 1397637456;"
	"CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE pages(id INTEGER PRIMARY KEY, hash BLOB NOT NULL UNIQUE,"
	"  size INTEGER NOT NULL, zlen INTEGER NOT NULL, runs INTEGER NOT NULL);"
	"CREATE TABLE page_data(id INTEGER PRIMARY KEY, zdata BLOB NOT NULL);"
	"CREATE TABLE snapshots(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE, label TEXT NOT NULL, kind TEXT NOT NULL,"
	"  created_ns INTEGER NOT NULL, comment TEXT NOT NULL DEFAULT '',"
	"  pinned INTEGER NOT NULL DEFAULT 0, page_size INTEGER NOT NULL,"
	"  page_count INTEGER NOT NULL, image_size INTEGER NOT NULL,"
	"  sha256 BLOB NOT NULL, change_counter INTEGER NOT NULL DEFAULT 0,"
	"  tables TEXT NOT NULL DEFAULT '{}', pagemap BLOB NOT NULL);"
	"CREATE INDEX snapshots_created ON snapshots(created_ns);"
	"CREATE TABLE events(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time_ns INTEGER NOT NULL, kind TEXT NOT NULL,"
	"  snapshot TEXT NOT NULL DEFAULT '', ok INTEGER NOT NULL,"
	"  detail TEXT NOT NULL DEFAULT '');"
	STORE_TRASH_SQL
	STORE_DICTS_SQL
	"PRAGMA user_version = 3;";

/* Read a meta value into out (empty if absent). */
int snap_store_meta_get(sqlite3 *db, const char *key, char *out, size_t cap)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key=?",
				    -1, &st, NULL);

	out[0] = '\0';
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		snprintf(out, cap, "%s", v ? v : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* A read-only store: only check that it is ours and not too new. */
int snap_store_schema_check(snap_store *s, sqlite3 *db, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t appid = 0;
	int version = 0, rc;

	rc = sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM "
				"pragma_user_version), (SELECT application_id "
				"FROM pragma_application_id)", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		version = sqlite3_column_int(st, 0);
		appid = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return snap_err_sqlite(err, db, rc, "cannot read store %s",
				       s->dir);
	if (appid != SNAP_STORE_APPID)
		return snap_err_set(err, -EINVAL, "%s is not a snapfs store",
				    s->dir);
	if (version > SNAP_STORE_SCHEMA_VERSION)
		return snap_err_set(err, -EPROTO, "store %s has schema version "
				    "%d; this snapfs understands up to %d: "
				    "upgrade snapfs", s->dir, version,
				    SNAP_STORE_SCHEMA_VERSION);
	return 0;
}

/*
 * Bring a store of schema version `from` up to SNAP_STORE_SCHEMA_VERSION,
 * inside the caller's transaction (a crash leaves the old version whole).
 * 1 -> 2: the table trash; nothing is trashed yet.  2 -> 3: the table
 * dicts, empty (the next capture with enough pages trains a dictionary).
 */
static int store_migrate(snap_store *s, sqlite3 *db, int from, snap_err *err)
{
	int rc = 0;

	if (from < 2)
		rc = snap_store_exec(db, STORE_TRASH_SQL, err);
	if (!rc && from < 3)
		rc = snap_store_exec(db, STORE_DICTS_SQL
				     "UPDATE meta SET value=3 WHERE "
				     "key='schema_version';"
				     "PRAGMA user_version = 3;", err);
	if (rc)
		snap_err_prefix(err, "store %s: upgrading its catalog from "
				"schema version %d to %d", s->dir, from,
				SNAP_STORE_SCHEMA_VERSION);
	return rc;
}

/*
 * A read-only connection to a store older than version 2 (nothing may be
 * written into it): an empty TEMP table trash, which the catalog's queries
 * then read (a TEMP table lives in the connection's own memory).
 */
int snap_store_ro_compat(sqlite3 *db, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int version = SNAP_STORE_SCHEMA_VERSION, rc;

	rc = sqlite3_prepare_v2(db, "SELECT user_version FROM "
				"pragma_user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		version = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, db, rc, "cannot read the store's "
				       "schema version");
	if (version >= 2)
		return 0;
	return snap_store_exec(db, STORE_TRASH_TABLE("TEMP "), err);
}

/* Create the schema in an empty store, or check the version of an old one. */
int snap_store_schema_init(snap_store *s, sqlite3 *db, const char *db_path,
			   snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t appid = 0, objects = 0;
	int rc, version = 0;

	/* 64 KiB store pages: a compressed 4 KiB page (about 2.5 KB) would
	 * otherwise fill a 4 KiB store page alone, making the store 1.5x the
	 * database and every snapshot write it twice over (WAL, checkpoint)
	 * in small writes.  Incremental auto-vacuum, so that the file can
	 * shrink after deletions (store_reclaim).  Both only take effect on a
	 * new, empty file: a store made before keeps auto_vacuum=NONE. */
	rc = snap_store_exec(db, "PRAGMA page_size=65536;"
			     "PRAGMA auto_vacuum=INCREMENTAL", err);
	if (rc)
		return rc;
	rc = snap_store_exec(db, "BEGIN IMMEDIATE", err);
	if (rc)
		return rc;
	if (sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM "
			       "pragma_user_version), (SELECT application_id "
			       "FROM pragma_application_id), (SELECT count(*) "
			       "FROM sqlite_schema)", -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		version = sqlite3_column_int(st, 0);
		appid = sqlite3_column_int64(st, 1);
		objects = sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (objects > 0 && appid != SNAP_STORE_APPID) {
		/* Somebody else's database: never write into it. */
		rc = snap_err_set(err, -EINVAL, "%s is not a snapfs store "
				  "(its store.db is another database); "
				  "choose another --store directory", s->dir);
	} else if (version == 0) {
		rc = snap_store_exec(db, schema_sql, err);
		if (!rc) {
			rc = sqlite3_prepare_v2(db,
				"INSERT INTO meta VALUES('db_path',?),"
				"('created',?),('schema_version',3)", -1,
				&st, NULL);
			if (rc == SQLITE_OK) {
				sqlite3_bind_text(st, 1, db_path, -1,
						  SQLITE_STATIC);
				sqlite3_bind_int64(st, 2, snap_time_now_ns());
				rc = sqlite3_step(st);
				rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(
					err, db, rc, "store %s: cannot record "
					"the database path", s->dir);
				sqlite3_finalize(st);
			} else {
				rc = snap_err_sqlite(err, db, rc, "store %s",
						     s->dir);
			}
		}
	} else if (version > SNAP_STORE_SCHEMA_VERSION) {
		rc = snap_err_set(err, -EPROTO, "store %s has schema version "
				  "%d; this snapfs understands up to %d: "
				  "upgrade snapfs", s->dir, version,
				  SNAP_STORE_SCHEMA_VERSION);
	} else if (version < SNAP_STORE_SCHEMA_VERSION) {
		rc = store_migrate(s, db, version, err);
	}
	return snap_store_txn_end(db, rc, err);
}
