/*
 * engine/store.c — the store directory, its schema and its catalog.
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
 *
 * Page rows and their bytes live in separate tables so that reference-count
 * updates rewrite a few dozen bytes, never a page image.
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
 *
 * Schema versions.  A store is migrated in the transaction that opens it
 * for writing (store_migrate): version 1 gains the table trash.  That
 * state is a table of its own rather than columns of snapshots because
 * ALTER TABLE ADD COLUMN puts a column after pagemap, and reading it would
 * walk every map's overflow pages on each listing.  A version-1 store
 * opened read-only is left as it is: its connections get an empty TEMP
 * table trash instead (store_ro_compat), so the same queries read it.
 *
 * The catalog connection s->db is shared by threads under s->mu (a recursive
 * mutex, so engine calls may nest).  WAL mode lets snapctl read and write
 * beside a running daemon; busy_timeout makes them wait for each other.
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

#define STORE_BUSY_MS 30000
/* Every store connection: durable commits (a safety snapshot must be on
 * disk before a restore overwrites anything); with 64 KiB pages, checkpoint
 * every 1 MB of WAL instead of SQLite's 1000 pages (64 MB), and shrink the
 * WAL back to 1 MB after a big snapshot instead of keeping its size. */
#define STORE_PRAGMAS \
	"PRAGMA synchronous=FULL;" \
	"PRAGMA temp_store=MEMORY;" \
	"PRAGMA wal_autocheckpoint=16;" \
	"PRAGMA journal_size_limit=1048576;"
#define SNAP_STORE_APPID 1397637456   /* 'SNAP', PRAGMA application_id */
/* A store read-only for want of room tries to write again once this much
 * is free. */
#define STORE_ROOM_MIN (1 << 20)
/* What a snapshot adds beside its pages: catalog row, map, index pages. */
#define STORE_SPACE_SLACK (1ull << 20)
/* Free pages of store.db handed back to the filesystem after a deletion
 * once they are at least this many and a quarter of the file. */
#define STORE_VACUUM_MIN_PAGES 16

static const char *const kind_names[SNAP_KIND_COUNT] = {
	"manual", "auto", "pre-restore", "import", "conflict", "recovery",
};

const char *snap_kind_name(snap_kind k)
{
	return (unsigned)k < SNAP_KIND_COUNT ? kind_names[k] : "unknown";
}

int snap_kind_parse(const char *s, snap_kind *out)
{
	int k;

	for (k = 0; k < SNAP_KIND_COUNT; k++)
		if (strcmp(s, kind_names[k]) == 0) {
			*out = (snap_kind)k;
			return 0;
		}
	return -EINVAL;
}

int64_t snap_time_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void snap_time_iso(int64_t ns, char out[40])
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	char b[32];

	gmtime_r(&t, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%03dZ", b, (int)((ns / 1000000) % 1000));
}

void snap_hex(const uint8_t sha[32], char out[65])
{
	static const char d[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = d[sha[i] >> 4];
		out[2 * i + 1] = d[sha[i] & 15];
	}
	out[64] = '\0';
}

void snap_label_sanitize(const char *in, const char *fallback,
			 char out[SNAP_LABEL_MAX + 1])
{
	size_t n = 0, len = in ? strlen(in) : 0;
	const char *p;

	/* "before-migration.db" labels "before-migration". */
	if (len >= 3 && strcmp(in + len - 3, ".db") == 0)
		len -= 3;
	for (p = in; p && p < in + len && n < SNAP_LABEL_MAX; p++) {
		char c = *p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '_' ||
			 c == '-';
		out[n++] = ok ? c : '-';
	}
	/* Nor a trailing ".db" the mapping or the cut made ("x\xff.db.db"
	 * gives "x-.db"): the name adds ".db", and a label sanitized again
	 * must stay as it is. */
	while (n >= 3 && memcmp(out + n - 3, ".db", 3) == 0)
		n -= 3;
	/* No leading dots: a label never makes a hidden name. */
	while (n && out[0] == '.') {
		memmove(out, out + 1, --n);
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, SNAP_LABEL_MAX + 1, "%s", fallback);
}

void snap_store_lock(snap_store *s)
{
	pthread_mutex_lock(&s->mu);
}

void snap_store_unlock(snap_store *s)
{
	pthread_mutex_unlock(&s->mu);
}

int snap_store_exec(sqlite3 *db, const char *sql, snap_err *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, db, rc, "store: %.60s", sql);
	return 0;
}

/* Version 2's table: where trashed snapshots are (engine/trash.h).  dir is
 * a snap_trash_dir; tname is unique within one directory of one trash. */
#define STORE_TRASH_TABLE(temp) \
	"CREATE " temp "TABLE IF NOT EXISTS trash(" \
	"  id INTEGER PRIMARY KEY," \
	"  uid INTEGER NOT NULL, dir INTEGER NOT NULL, tname TEXT NOT NULL," \
	"  trashed_ns INTEGER NOT NULL, info TEXT NOT NULL DEFAULT ''," \
	"  UNIQUE(uid, dir, tname));"
#define STORE_TRASH_SQL STORE_TRASH_TABLE("")

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
	"PRAGMA user_version = 2;";

/* Make `path` absolute without requiring it to exist (its directory must). */
static char *abs_path(const char *path)
{
	char *dup, *dir, *base, real[PATH_MAX], *out;
	size_t n;

	if (realpath(path, real))
		return strdup(real);
	dup = strdup(path);
	if (!dup)
		return NULL;
	dir = dirname(dup);
	if (!realpath(dir, real)) {
		free(dup);
		return NULL;
	}
	free(dup);
	dup = strdup(path);
	if (!dup)
		return NULL;
	base = basename(dup);
	n = strlen(real) + strlen(base) + 2;
	out = malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", strcmp(real, "/") ? real : "", base);
	free(dup);
	return out;
}

/*
 * The store directory named by the user, made absolute: its parent
 * resolved, its own name kept, so that a symlink there is seen (and
 * refused) rather than resolved away.
 */
static char *store_dir_path(const char *dir)
{
	char *dup = strdup(dir), *slash, *base, *out = NULL;
	char real[PATH_MAX];
	const char *parent;
	size_t n;

	if (!dup)
		return NULL;
	n = strlen(dup);
	while (n > 1 && dup[n - 1] == '/')
		dup[--n] = '\0';
	slash = strrchr(dup, '/');
	if (!slash) {
		parent = ".";
		base = dup;
	} else if (slash == dup) {
		parent = "/";
		base = dup + 1;
	} else {
		*slash = '\0';
		parent = dup;
		base = slash + 1;
	}
	if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
		free(dup);
		return abs_path(dir);
	}
	if (realpath(parent, real) &&
	    asprintf(&out, "%s/%s", strcmp(real, "/") ? real : "", base) < 0)
		out = NULL;
	free(dup);
	return out;
}

char *snap_store_default_dir(const char *db_path)
{
	char *abs = db_path ? abs_path(db_path) : NULL, *out = NULL;

	if (abs && asprintf(&out, "%s.snapfs", abs) < 0)
		out = NULL;
	free(abs);
	return out;
}

/* Read a meta value into out (empty if absent). */
static int meta_get(sqlite3 *db, const char *key, char *out, size_t cap)
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

/* "file:<path>?<query>" with the characters URIs reserve escaped. */
static char *file_uri(const char *path, const char *query)
{
	size_t n = strlen(path) * 3 + strlen(query) + 8, k = 0;
	char *u = malloc(n);
	const char *p;

	if (!u)
		return NULL;
	k += (size_t)sprintf(u, "file:");
	for (p = path; *p; p++) {
		if (*p == '?' || *p == '#' || *p == '%')
			k += (size_t)sprintf(u + k, "%%%02X", (unsigned char)*p);
		else
			u[k++] = *p;
	}
	sprintf(u + k, "?%s", query);
	return u;
}

/* A read-only store: only check that it is ours and not too new. */
static int store_check_schema(snap_store *s, sqlite3 *db, snap_err *err)
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
 * 1 -> 2: the table trash; nothing is trashed yet.
 */
static int store_migrate(snap_store *s, sqlite3 *db, int from, snap_err *err)
{
	int rc = 0;

	if (from < 2)
		rc = snap_store_exec(db, STORE_TRASH_SQL
				     "UPDATE meta SET value=2 WHERE "
				     "key='schema_version';"
				     "PRAGMA user_version = 2;", err);
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
static int store_ro_compat(sqlite3 *db, snap_err *err)
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
static int store_init_schema(snap_store *s, sqlite3 *db, const char *db_path,
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
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return snap_err_set(err, -EINVAL, "%s is not a snapfs store "
				    "(its store.db is another database); "
				    "choose another --store directory",
				    s->dir);
	}
	if (version == 0) {
		rc = snap_store_exec(db, schema_sql, err);
		if (!rc) {
			rc = sqlite3_prepare_v2(db,
				"INSERT INTO meta VALUES('db_path',?),"
				"('created',?),('schema_version',2)", -1,
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
	if (rc) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return snap_store_exec(db, "COMMIT", err);
}

/* Bytes free for us on the store's filesystem (UINT64_MAX: unknown). */
static uint64_t store_room(snap_store *s)
{
	struct statvfs v;

	if (fstatvfs(s->dirfd, &v) < 0)
		return UINT64_MAX;
	return (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
}

/*
 * A read-write connection to store.db that is ready for the catalog: the
 * pragmas, the schema (created in an empty file, checked otherwise) and WAL
 * mode.  On failure *full says whether the store's filesystem ran out of
 * room (then the store can still be opened read-only).
 */
static int store_open_rw(snap_store *s, int mutex, sqlite3 **out, int *full,
			 snap_err *err)
{
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	*full = 0;
	rc = sqlite3_open_v2(s->sqlfile, &db, SQLITE_OPEN_READWRITE | mutex |
			     SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, db, rc, "cannot open store %s",
				     s->file);
	} else {
		sqlite3_busy_timeout(db, STORE_BUSY_MS);
		sqlite3_extended_result_codes(db, 1);
		rc = snap_store_exec(db, STORE_PRAGMAS, err);
		/* The schema check comes first: a foreign store.db is refused
		 * before anything (even the journal mode) is written into
		 * it. */
		if (!rc)
			rc = store_init_schema(s, db, s->db_path ? s->db_path :
					       "", err);
		if (!rc)
			rc = snap_store_exec(db, "PRAGMA journal_mode=WAL",
					     err);
	}
	if (rc) {
		*full = rc == -ENOSPC || sqlite3_system_errno(db) == ENOSPC ||
			(rc == -EIO && store_room(s) < STORE_ROOM_MIN);
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

/* Size of the store's -wal (0 when there is none). */
static int64_t store_wal_size(snap_store *s)
{
	struct stat st;

	if (snap_sys_fstatat(s->dirfd, "store.db-wal", &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return (int64_t)st.st_size;
}

/*
 * A read-only connection that writes nothing into the store.  A WAL
 * database needs its -shm: when SQLite cannot make one (a full or
 * read-only filesystem) and there is no -wal with content either, the
 * main file alone is the whole store and it is opened immutable (no -shm,
 * no locks) — `may_switch` lets this call make that choice for the store;
 * later connections follow it.
 */
static int store_open_ro(snap_store *s, int mutex, int may_switch,
			 sqlite3 **out, snap_err *err)
{
	sqlite3 *db = NULL;
	char why[256];
	int rc;

	*out = NULL;
	if (!s->immutable) {
		rc = sqlite3_open_v2(s->sqlfile, &db, SQLITE_OPEN_READONLY |
				     mutex | SQLITE_OPEN_NOFOLLOW, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_busy_timeout(db, STORE_BUSY_MS);
			sqlite3_extended_result_codes(db, 1);
			rc = sqlite3_exec(db, "SELECT count(*) FROM "
					  "sqlite_schema", NULL, NULL, NULL);
		}
		if (rc == SQLITE_OK) {
			rc = store_ro_compat(db, err);
			if (rc)
				sqlite3_close(db);
			else
				*out = db;
			return rc;
		}
		snprintf(why, sizeof(why), "%s", db ? sqlite3_errmsg(db) :
			 sqlite3_errstr(rc));
		sqlite3_close(db);
		db = NULL;
		if (!may_switch)
			return snap_err_set(err, snap_err_sqlite_errno(rc),
					    "cannot read store %s: %s", s->dir,
					    why);
		if (store_wal_size(s) > 0)
			return snap_err_set(err, -EIO, "cannot read store %s: "
					    "its write-ahead log (store.db-wal) "
					    "holds changes SQLite cannot read "
					    "without writing beside it (%s); "
					    "make room on its filesystem, or "
					    "make it writable", s->dir, why);
		if (!s->uri && !(s->uri = file_uri(s->sqlfile, "immutable=1")))
			return snap_err_set(err, -ENOMEM, "out of memory");
		s->immutable = 1;
	}
	rc = sqlite3_open_v2(s->uri, &db, SQLITE_OPEN_READONLY | mutex |
			     SQLITE_OPEN_URI | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, STORE_BUSY_MS);
		sqlite3_extended_result_codes(db, 1);
		rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema",
				  NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, db, rc, "cannot read store %s",
				     s->dir);
		sqlite3_close(db);
		return rc;
	}
	rc = store_ro_compat(db, err);
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

/*
 * A store read-only for want of room: writable again once there is room.
 * The new catalog connection is made without s->mu (it may wait for
 * another writer) and swapped in under it.  Returns the store's state.
 */
static int store_retry_rw(snap_store *s)
{
	sqlite3 *db = NULL;
	snap_err e;
	int full, ro;

	if (store_room(s) < STORE_ROOM_MIN ||
	    store_open_rw(s, SQLITE_OPEN_FULLMUTEX, &db, &full, &e) != 0)
		return SNAP_STORE_RO_FULL;
	snap_store_lock(s);
	if (s->readonly == SNAP_STORE_RO_FULL) {
		sqlite3 *old = s->db;

		s->db = db;
		db = old;
		s->readonly = SNAP_STORE_RW;
		s->immutable = 0;
	}
	ro = s->readonly;
	snap_store_unlock(s);
	sqlite3_close(db);
	return ro;
}

/* Size of a file, 0 when it does not exist. */
static uint64_t file_size(const char *path)
{
	struct stat st;

	return snap_sys_stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Measure (see snap_retention_make_room in retention.h for the formula). */
int snap_store_space(snap_store *s, snap_space *sp, snap_err *err)
{
	char path[PATH_MAX];
	struct statvfs vfs;
	struct stat wst;
	sqlite3_stmt *st = NULL;
	uint64_t live, unit;
	int64_t freelist = 0, page_size = 0;
	int rc;

	memset(sp, 0, sizeof(*sp));
	if (fstatvfs(s->dirfd, &vfs) < 0)
		return snap_err_set(err, -errno, "store %s: cannot measure its "
				    "free space: %s", s->dir, strerror(errno));
	sp->fs_free = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, "SELECT freelist_count, page_size "
				"FROM pragma_freelist_count, "
				"pragma_page_size", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		freelist = sqlite3_column_int64(st, 0);
		page_size = sqlite3_column_int64(st, 1);
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot read "
				     "its free pages", s->dir);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	if (rc)
		return rc;
	sp->reusable = (uint64_t)freelist * (uint64_t)page_size;
	if (snap_sys_fstatat(s->dirfd, "store.db-wal", &wst,
			     AT_SYMLINK_NOFOLLOW) == 0)
		sp->wal = (uint64_t)wst.st_size;
	snprintf(path, sizeof(path), "%s-wal", s->db_path);
	live = file_size(s->db_path) + file_size(path);
	unit = live + live / 16 + STORE_SPACE_SLACK;
	sp->unit = unit;
	sp->need = unit + (unit > sp->reusable ? unit - sp->reusable : 0);
	return 0;
}

int snap_store_writable(snap_store *s, snap_err *err)
{
	unsigned long long free_mb, need_mb;
	uint64_t room = 0, need = 0;
	snap_space sp;
	snap_err e;
	int ro;

	snap_store_lock(s);
	ro = s->readonly;
	snap_store_unlock(s);
	if (ro == SNAP_STORE_RO_FULL)
		ro = store_retry_rw(s);
	switch (ro) {
	case SNAP_STORE_RW:
		return 0;
	case SNAP_STORE_RO_FULL:
		snap_err_clear(&e);
		if (snap_store_space(s, &sp, &e) < 0) {
			room = store_room(s);
		} else {
			room = sp.fs_free;
			need = sp.need;
		}
		free_mb = room / (1 << 20);
		need_mb = (need + (1 << 20) - 1) / (1 << 20);
		return snap_err_set(err, -ENOSPC, "store %s: its filesystem is "
				    "full (%llu MB free): its snapshots can be "
				    "listed, read, verified and exported, but "
				    "nothing can be added or changed; a "
				    "snapshot of %s may need %llu MB: free "
				    "space, or move the store (-o store=)",
				    s->dir, free_mb, s->db_path, need_mb);
	case SNAP_STORE_RO_ASKED:
		return snap_err_set(err, -EROFS, "store %s was opened only for "
				    "reading", s->dir);
	default:
		return snap_err_set(err, -EROFS, "store %s is read-only (the "
				    "filesystem or the directory is not "
				    "writable): it can be listed, verified and "
				    "exported, not changed", s->dir);
	}
}

int snap_store_connect(snap_store *s, int readonly, sqlite3 **out,
		       snap_err *err)
{
	sqlite3 *db = NULL;
	int flags = readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
	int rc, ro;

	*out = NULL;
	if (!readonly && (rc = snap_store_writable(s, err)))
		return rc;
	snap_store_lock(s);
	ro = s->readonly;
	snap_store_unlock(s);
	if (ro) {
		rc = store_open_ro(s, SQLITE_OPEN_NOMUTEX, 0, &db, err);
		if (!rc)
			rc = snap_store_exec(db, "PRAGMA temp_store=MEMORY;"
					     "PRAGMA cache_size=-8192;", err);
		if (rc) {
			sqlite3_close(db);
			return rc;
		}
		*out = db;
		return 0;
	}
	rc = sqlite3_open_v2(s->sqlfile, &db, flags | SQLITE_OPEN_NOMUTEX |
			     SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, db, rc, "cannot open store %s",
				     s->file);
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_MS);
	sqlite3_extended_result_codes(db, 1);
	rc = snap_store_exec(db, STORE_PRAGMAS "PRAGMA cache_size=-8192;", err);
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

/* Take the daemon lock: one daemon per store. */
static int store_daemon_lock(snap_store *s, snap_err *err)
{
	char pid[32];
	int fd;

	fd = snap_store_file_open(s, "daemon.lock", O_RDWR | O_CREAT, err);
	if (fd < 0)
		return fd;
	if (snap_sys_flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;       /* flock's, not the pread's below */
		ssize_t n = snap_sys_pread(fd, pid, sizeof(pid) - 1, 0);

		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snap_sys_close(fd);
		if (e == EWOULDBLOCK)
			return snap_err_set(err, -EBUSY, "store %s is already "
					    "served by another snapfs daemon "
					    "(pid %s)", s->dir,
					    *pid ? pid : "?");
		return snap_err_set(err, -e, "cannot lock %s/daemon.lock: %s",
				    s->dir, strerror(e));
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (snap_sys_ftruncate(fd, 0) == 0 &&
	    snap_sys_write(fd, pid, strlen(pid)) < 0) {
		/* The pid is only a hint for the message above. */
	}
	s->daemon_fd = fd;
	return 0;
}

/*
 * Before a store is created for it (SNAP_OPEN_LIVE_DB): the database must
 * exist and be a SQLite database, or the store would be left behind by a
 * snapshot that cannot be taken.
 */
static int store_probe_db(const char *path, snap_err *err)
{
	sqlite3 *db = NULL;
	int rc;

	if (snap_sys_access(path, F_OK) < 0)
		return snap_err_set(err, -errno, "no database at %s: %s; "
				    "nothing to snapshot", path,
				    strerror(errno));
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema",
				  NULL, NULL, NULL);
	sqlite3_close(db);
	if ((rc & 0xff) == SQLITE_NOTADB)
		return snap_err_set(err, -EINVAL, "%s is not a SQLite "
				    "database: nothing to snapshot, and no "
				    "store was created for it", path);
	/* Other trouble (a lock, a permission) is the snapshot's to report. */
	return 0;
}

/*
 * The catalog file: check the one that is there, or create it 0600 for a
 * new store (*fresh).  A store directory that lost its store.db while other
 * store files remain is refused: an empty catalog would silently stand for
 * every snapshot the old one listed.
 */
static int store_catalog_file(snap_store *s, unsigned flags, int create,
			      int *fresh, snap_err *err)
{
	char remains[32];
	int fd, rc;

	*fresh = 0;
	if (snap_store_file_exists(s, "store.db"))
		return snap_storedir_private(s, err);
	if (snap_storedir_remains(s, remains, sizeof(remains)))
		return snap_err_set(err, -EUCLEAN, "the catalog store.db is "
				    "gone from %s (%s is still there): it "
				    "listed every snapshot and held their "
				    "pages; snapfs will not start an empty "
				    "store in its place.  Put store.db back "
				    "(from a backup), or move %s away to start "
				    "a new store", s->dir, remains, s->dir);
	if (!create)
		return snap_err_set(err, -ENOENT, "no store at %s (take a first "
				    "snapshot to create it)", s->dir);
	if (!s->db_path)
		return snap_err_set(err, -ENOENT, "no store at %s; name its "
				    "database (--db) to create one", s->dir);
	if ((flags & SNAP_OPEN_LIVE_DB) &&
	    (rc = store_probe_db(s->db_path, err)))
		return rc;
	if ((rc = snap_storedir_private(s, err)))
		return rc;
	/* Created here, 0600, so that SQLite (which gives -wal and -shm the
	 * main file's mode) never makes it wider. */
	fd = snap_store_file_open(s, "store.db", O_RDWR | O_CREAT | O_EXCL,
				  err);
	if (fd < 0) {
		if (fd == -EROFS || fd == -EACCES)
			snap_err_prefix(err, "store %s is not writable", s->dir);
		return fd == -EACCES ? -EROFS : fd;
	}
	snap_sys_close(fd);
	/* restore.lock from the start: a store.db removed alone later is
	 * then noticed (snap_storedir_remains), not replaced. */
	fd = snap_store_file_open(s, "restore.lock", O_RDWR | O_CREAT, err);
	if (fd >= 0)
		snap_sys_close(fd);
	snap_store_dir_sync(s);
	*fresh = 1;
	return fd < 0 ? fd : 0;
}

int snap_store_open(const char *db_path, const char *store_dir,
		    unsigned flags, snap_store **out, snap_err *err)
{
	snap_store *s;
	pthread_mutexattr_t ma;
	char recorded[PATH_MAX];
	int rc = 0, made = 0, fresh = 0, full = 0, e;
	int create = (flags & SNAP_OPEN_CREATE) &&
		     !(flags & SNAP_OPEN_READONLY);

	*out = NULL;
	if (!db_path && !store_dir)
		return snap_err_set(err, -EINVAL, "name a database (--db) or "
				    "a store (--store)");
	s = calloc(1, sizeof(*s));
	if (!s)
		return snap_err_set(err, -ENOMEM, "out of memory");
	s->daemon_fd = -1;
	s->dirfd = -1;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);

	rc = snap_anchor_register(err);
	if (rc)
		goto fail;
	if (db_path) {
		s->db_path = abs_path(db_path);
		if (!s->db_path) {
			rc = snap_err_set(err, -errno ? -errno : -ENOENT,
					  "database %s: its directory does "
					  "not exist", db_path);
			goto fail;
		}
	}
	s->dir = store_dir ? store_dir_path(store_dir) :
		 snap_store_default_dir(s->db_path);
	if (!s->dir || asprintf(&s->file, "%s/store.db", s->dir) < 0) {
		s->file = NULL;
		rc = s->dir ? snap_err_set(err, -ENOMEM, "out of memory") :
		     snap_err_set(err, -ENOENT, "no store at %s: its parent "
				  "directory does not exist", store_dir);
		goto fail;
	}
	rc = snap_storedir_open(s, create && s->db_path, &made, err);
	if (!rc)
		rc = store_catalog_file(s, flags, create, &fresh, err);
	if (!rc)
		rc = snap_storedir_files_check(s, err);
	if (rc)
		goto fail;

	/* Writable, or why not. */
	if (flags & SNAP_OPEN_READONLY) {
		s->readonly = SNAP_STORE_RO_ASKED;
	} else if (faccessat(s->dirfd, ".", W_OK, 0) < 0 ||
		   faccessat(s->dirfd, "store.db", W_OK, 0) < 0) {
		/* A store on read-only media can still be read. */
		e = errno;
		if (flags & (SNAP_OPEN_CREATE | SNAP_OPEN_DAEMON)) {
			rc = snap_err_set(err, -EROFS, "store %s is not "
					  "writable: %s", s->dir, strerror(e));
			goto fail;
		}
		s->readonly = SNAP_STORE_RO_MEDIA;
	}
	if (!s->readonly) {
		rc = store_open_rw(s, SQLITE_OPEN_FULLMUTEX, &s->db, &full, err);
		if (rc && full && !fresh) {
			/* What is stored can still be served. */
			snap_err_clear(err);
			s->readonly = SNAP_STORE_RO_FULL;
			rc = 0;
		} else if (rc == -EROFS) {
			snap_err_prefix(err, "store %s is not writable", s->dir);
		}
		if (rc)
			goto fail;
	}
	if (s->readonly) {
		rc = store_open_ro(s, SQLITE_OPEN_FULLMUTEX, 1, &s->db, err);
		if (!rc)
			rc = store_check_schema(s, s->db, err);
		if (rc)
			goto fail;
	}
	rc = meta_get(s->db, "db_path", recorded, sizeof(recorded));
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, s->db, rc, "store %s is not a snapfs "
				     "store", s->dir);
		goto fail;
	}
	if (!s->db_path) {
		s->db_path = strdup(recorded);
	} else if (*recorded && strcmp(recorded, s->db_path) != 0) {
		rc = snap_err_set(err, -EINVAL, "store %s belongs to %s, not "
				  "%s", s->dir, recorded, s->db_path);
		goto fail;
	}
	if (!s->db_path || !*s->db_path) {
		rc = snap_err_set(err, -EINVAL, "store %s records no database "
				  "path; give --db", s->dir);
		goto fail;
	}
	if (flags & SNAP_OPEN_DAEMON) {
		rc = store_daemon_lock(s, err);
		if (rc)
			goto fail;
	}
	*out = s;
	return 0;
fail:
	sqlite3_close(s->db);
	s->db = NULL;
	if ((fresh || made) && s->dirfd >= 0)
		snap_storedir_undo_create(s, made);
	snap_store_close(s);
	return rc;
}

void snap_store_close(snap_store *s)
{
	if (!s)
		return;
	if (s->ro_vfs) {
		sqlite3_vfs_unregister(s->ro_vfs);
		free(s->ro_vfs);
	}
	sqlite3_close(s->db);
	if (s->daemon_fd >= 0)
		snap_sys_close(s->daemon_fd);
	if (s->dirfd >= 0)
		snap_sys_close(s->dirfd);
	pthread_mutex_destroy(&s->mu);
	free(s->db_path);
	free(s->dir);
	free(s->file);
	free(s->sqlfile);
	free(s->uri);
	free(s);
}

const char *snap_store_db_path(const snap_store *s) { return s->db_path; }
const char *snap_store_dir(const snap_store *s) { return s->dir; }
const char *snap_store_file(const snap_store *s) { return s->file; }
int snap_store_dir_fd(const snap_store *s) { return s->dirfd; }

void snap_store_row_info(sqlite3_stmt *st, snap_info *si)
{
	const void *sha;
	const char *t;

	memset(si, 0, sizeof(*si));
	si->id = sqlite3_column_int64(st, 0);
	snprintf(si->name, sizeof(si->name), "%s",
		 (const char *)sqlite3_column_text(st, 1));
	snprintf(si->label, sizeof(si->label), "%s",
		 (const char *)sqlite3_column_text(st, 2));
	t = (const char *)sqlite3_column_text(st, 3);
	if (!t || snap_kind_parse(t, &si->kind))
		si->kind = SNAP_KIND_MANUAL;
	si->created_ns = sqlite3_column_int64(st, 4);
	t = (const char *)sqlite3_column_text(st, 5);
	snprintf(si->comment, sizeof(si->comment), "%s", t ? t : "");
	si->pinned = sqlite3_column_int(st, 6);
	si->page_size = (uint32_t)sqlite3_column_int64(st, 7);
	si->page_count = (uint32_t)sqlite3_column_int64(st, 8);
	si->image_size = (uint64_t)sqlite3_column_int64(st, 9);
	sha = sqlite3_column_blob(st, 10);
	if (sha && sqlite3_column_bytes(st, 10) == 32)
		memcpy(si->sha256, sha, 32);
	si->change_counter = (uint32_t)sqlite3_column_int64(st, 11);
	/* Columns of the trash table: NULL when the snapshot is not in the
	 * trash (a value this code does not know reads as in files/, where
	 * it can be restored or deleted). */
	if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
		si->trash = sqlite3_column_int(st, 12) == SNAP_TRASH_EXPUNGED ?
			    SNAP_TRASH_EXPUNGED : SNAP_TRASH_FILES;
		si->trash_uid = (uint32_t)sqlite3_column_int64(st, 13);
		t = (const char *)sqlite3_column_text(st, 14);
		snprintf(si->trash_name, sizeof(si->trash_name), "%s",
			 t ? t : "");
		si->trashed_ns = sqlite3_column_int64(st, 15);
	}
}

int snap_store_info_check(const snap_info *si, snap_err *err)
{
	uint32_t ps = si->page_size;

	/* What a capture can have written: a page size SQLite allows, at
	 * least one page, and the image size their product. */
	if (ps >= 512 && ps <= SNAP_PAGE_MAX && !(ps & (ps - 1)) &&
	    si->page_count > 0 &&
	    si->image_size == (uint64_t)ps * si->page_count)
		return 0;
	return snap_err_set(err, -EBADMSG, "snapshot %s: its catalog row is "
			    "damaged (page size %u, %u pages, image size %llu "
			    "bytes): it cannot be read; delete it (snapctl "
			    "delete %s)", si->name, ps, si->page_count,
			    (unsigned long long)si->image_size, si->name);
}

int snap_store_list(snap_store *s, snap_info **out, size_t *n, snap_err *err)
{
	return snap_store_list_sql(s, "ORDER BY created_ns, id", NULL, out, n,
				   "snapshots", err);
}

int snap_store_list_sql(snap_store *s, const char *tail, const int64_t *arg,
			snap_info **out, size_t *n, const char *what,
			snap_err *err)
{
	sqlite3_stmt *st = NULL;
	snap_info *v = NULL;
	size_t cnt = 0, cap = 0;
	char *sql;
	int rc;

	*out = NULL;
	*n = 0;
	sql = sqlite3_mprintf("SELECT " SNAP_INFO_COLS " FROM " SNAP_INFO_FROM
			      " %s", tail);
	if (!sql)
		return snap_err_set(err, -ENOMEM, "out of memory");
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && arg)
		rc = sqlite3_bind_int64(st, 1, *arg);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			snap_info *nv;
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		snap_store_row_info(st, &v[cnt++]);
		rc = SQLITE_OK;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot list "
				     "%s", s->dir, what);
	sqlite3_finalize(st);
	snap_store_unlock(s);
	sqlite3_free(sql);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * The events table's raw insert, here so that a catalog change (delete,
 * relabel, pin) and its event share the caller's transaction; the event
 * history above the store (events.c) writes through it too.
 */
int snap_event_add_db(sqlite3 *db, const char *kind, const char *snapshot,
		      int ok, const char *detail)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "INSERT INTO events(time_ns, kind, "
				    "snapshot, ok, detail) VALUES(?,?,?,?,?)",
				    -1, &st, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, snap_time_now_ns());
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, snapshot ? snapshot : "", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int(st, 4, ok ? 1 : 0);
		sqlite3_bind_text(st, 5, detail ? detail : "", -1,
				  SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : snap_err_sqlite_errno(rc);
}

int snap_store_get_db(sqlite3 *db, int64_t id, snap_info *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT " SNAP_INFO_COLS
				    " FROM " SNAP_INFO_FROM " WHERE id=?", -1,
				    &st, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		snap_store_row_info(st, out);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = snap_err_set(err, -ENOENT, "no snapshot with id %lld",
				  (long long)id);
	} else {
		rc = snap_err_sqlite(err, db, rc, "cannot read snapshot %lld",
				     (long long)id);
	}
	sqlite3_finalize(st);
	return rc;
}

int snap_store_get(snap_store *s, int64_t id, snap_info *out, snap_err *err)
{
	int rc;

	snap_store_lock(s);
	rc = snap_store_get_db(s->db, id, out, err);
	snap_store_unlock(s);
	return rc;
}

/* The kinds "latest" chooses from, as SQL (snap_kind_is_latest). */
#define STORE_LATEST_KINDS "kind IN ('manual','auto','import')"

int snap_kind_is_latest(snap_kind k)
{
	/* Keep in step with STORE_LATEST_KINDS. */
	return k == SNAP_KIND_MANUAL || k == SNAP_KIND_AUTO ||
	       k == SNAP_KIND_IMPORT;
}

/*
 * One catalog row by a query whose only parameter (if any) is text: the
 * row for snap_store_find and snap_store_newest.  -ENOENT, naming `what`,
 * when there is none.
 */
static int store_find_sql(snap_store *s, const char *sql, const char *arg,
			  const char *what, snap_info *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		if (arg)
			sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		snap_store_row_info(st, out);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = snap_err_set(err, -ENOENT, "no %s in %s", what, s->dir);
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "cannot look up %s", what);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

int snap_store_find(snap_store *s, const char *name, snap_info *out,
		    snap_err *err)
{
	char full[SNAP_NAME_MAX + 4], what[SNAP_NAME_MAX + 40];
	size_t len = strlen(name);

	if (len >= SNAP_NAME_MAX)
		return snap_err_set(err, -ENOENT, "no snapshot named %s", name);
	if (len > 3 && strcmp(name + len - 3, ".db") == 0)
		snprintf(full, sizeof(full), "%s", name);
	else
		snprintf(full, sizeof(full), "%s.db", name);
	/* latest.db is never a snapshot's own name (snap_store_name_check),
	 * so this reading of it hides nothing. */
	if (strcmp(full, "latest.db") == 0)
		return store_find_sql(s, "SELECT " SNAP_INFO_COLS " FROM "
				      SNAP_INFO_FROM " WHERE trash.id IS NULL"
				      " AND " STORE_LATEST_KINDS " ORDER BY "
				      "created_ns DESC, id DESC LIMIT 1", NULL, "manual, automatic or "
				      "imported snapshot (\"latest\")", out,
				      err);
	snprintf(what, sizeof(what), "snapshot named %s", name);
	return store_find_sql(s, "SELECT " SNAP_INFO_COLS " FROM "
			      SNAP_INFO_FROM " WHERE name=?", full, what, out,
			      err);
}

int snap_store_newest(snap_store *s, snap_info *out, snap_err *err)
{
	return store_find_sql(s, "SELECT " SNAP_INFO_COLS " FROM "
			      SNAP_INFO_FROM " ORDER BY created_ns DESC, id DESC LIMIT 1", NULL,
			      "snapshot", out, err);
}

int snap_store_tables_json(snap_store *s, int64_t id, char **json,
			   snap_err *err)
{
	return snap_store_text(s, "SELECT tables FROM snapshots WHERE id=?",
			       id, "{}", "no snapshot with id", json, err);
}

int snap_store_text(snap_store *s, const char *sql, int64_t id,
		    const char *dflt, const char *missing, char **out,
		    snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = NULL;
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		*out = strdup(t ? t : dflt);
		rc = *out ? 0 : snap_err_set(err, -ENOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		rc = snap_err_set(err, -ENOENT, "%s %lld", missing,
				  (long long)id);
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "cannot read snapshot "
				     "%lld", (long long)id);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

/* The one integer sql (a single-row query) gives on the catalog
 * connection; on failure err says it could not `what`. */
static int store_query_int(snap_store *s, const char *sql, int64_t *out,
			   const char *what, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot %s",
				     s->dir, what);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

int snap_store_count(snap_store *s, int64_t *count, snap_err *err)
{
	return store_query_int(s, "SELECT count(*) FROM snapshots", count,
			       "count snapshots", err);
}

/*
 * PRAGMA data_version of the catalog connection: it moves when a commit by
 * any other connection (another process, or another connection of this
 * one, such as a snapshot's capture) reached store.db since the last time
 * it was asked; commits through the catalog connection itself do not move
 * it.  Cheap: no table is read.
 */
int snap_store_data_version(snap_store *s, int64_t *out, snap_err *err)
{
	return store_query_int(s, "PRAGMA data_version", out,
			       "read its data version", err);
}

/*
 * When the list of snapshots last changed, as the store records it: the
 * newest of the snapshots' creation times and the times of successful
 * deletions, relabels, renames, prunes, trashings and untrashings (the events that change the list without
 * creating a snapshot).  The same answer from every process and across
 * remounts, so a directory time built on it is stable.
 */
int snap_store_changed_ns(snap_store *s, int64_t *out, snap_err *err)
{
	*out = 0;
	return store_query_int(s, "SELECT max(coalesce((SELECT "
			       "max(created_ns) FROM snapshots), 0), "
			       "coalesce((SELECT max(time_ns) FROM events "
			       "WHERE ok=1 AND kind IN ('delete', 'relabel', 'trash', "
			       "'untrash', 'rename', 'prune')), 0))", out,
			       "read when its catalog changed", err);
}

int snap_store_load_map(sqlite3 *db, int64_t id, uint32_t *n, int64_t **ids,
			snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT page_count, pagemap, name "
				    "FROM snapshots WHERE id=?", -1, &st,
				    NULL);

	*ids = NULL;
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
 * (store_init_schema); older ones keep their size and reuse their free
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

int snap_store_delete(snap_store *s, int64_t id, snap_err *err)
{
	snap_info si;
	snap_idcount delta = {0};
	char sql[96];
	int rc, reclaimed = 1;

	if ((rc = snap_store_writable(s, err)))
		return rc;
	snap_store_lock(s);
	rc = snap_store_exec(s->db, "BEGIN IMMEDIATE", err);
	if (rc)
		goto out;
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
	if (!rc)
		rc = snap_store_exec(s->db, "COMMIT", err);
	if (rc) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		snap_event_add_db(s->db, "delete", rc == -ENOENT ? "" : si.name,
				  0, err ? err->msg : "delete failed");
	} else {
		snap_event_add_db(s->db, "delete", si.name, 1, reclaimed ?
				  "deleted; unreferenced pages reclaimed" :
				  "deleted; a page map was damaged, so the "
				  "pages this snapshot used stay in the store");
		store_reclaim(s->db);
	}
out:
	snap_store_unlock(s);
	snap_idcount_free(&delta);
	return rc;
}

/* The time part of a snapshot's name: "2026-11-22T014900Z". */
static void store_stamp(int64_t created_ns, char out[32])
{
	time_t t = (time_t)(created_ns / 1000000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H%M%SZ", &tm);
}

/* 1 when another snapshot than id is called name; negative on error. */
static int store_name_taken(sqlite3 *db, const char *name, int64_t id,
			    snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM snapshots WHERE name=? "
				    "AND id<>?", -1, &st, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, id);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return snap_err_sqlite(err, db, rc, "cannot look up snapshot %s",
			       name);
}

int snap_store_unique_name(sqlite3 *db, int64_t created_ns, const char *label,
			   int64_t exclude_id, char out[SNAP_NAME_MAX],
			   snap_err *err)
{
	char stamp[32];
	int rc = 0, k;

	store_stamp(created_ns, stamp);
	for (k = 1; k < 100000; k++) {
		if (k == 1)
			snprintf(out, SNAP_NAME_MAX, "%s_%s.db", stamp, label);
		else
			snprintf(out, SNAP_NAME_MAX, "%s_%s-%d.db", stamp,
				 label, k);
		rc = store_name_taken(db, out, exclude_id, err);
		if (rc <= 0)
			break;
	}
	return rc < 0 ? rc : 0;
}

/* The number of bytes of the valid UTF-8 sequence at p (1-4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n, i;
	uint32_t c;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates, past U+10FFFF. */
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	return n;
}

int snap_store_name_check(const char *name, snap_err *err)
{
	static const char *const reserved[] = {
		"latest.db",    /* the newest snapshot (snap_store_find) */
		"live.db",      /* snapctl diff's words for the live database */
		"current.db",
	};
	const unsigned char *p;
	size_t len = strlen(name), i, n;

	if (len >= SNAP_NAME_MAX)
		return snap_err_set(err, -ENAMETOOLONG, "\"%.40s...\" cannot "
				    "be a snapshot's name: it is %zu bytes "
				    "long, at most %d are allowed", name, len,
				    SNAP_NAME_MAX - 1);
	if (len <= 3 || strcmp(name + len - 3, ".db") != 0)
		return snap_err_set(err, -EINVAL, "\"%s\" cannot be a "
				    "snapshot's name: a snapshot's name ends in "
				    ".db (try \"%s.db\")", name, name);
	if (len >= 6 && memcmp(name + len - 6, ".db.db", 6) == 0)
		return snap_err_set(err, -EINVAL, "\"%s\" cannot be a "
				    "snapshot's name: \"%.*s\" would then name "
				    "another snapshot (the .db of a name is "
				    "optional)", name, (int)len - 3, name);
	if (name[0] == '.')
		return snap_err_set(err, -EINVAL, "\"%s\" cannot be a "
				    "snapshot's name: a name beginning with a "
				    "dot is hidden from listings", name);
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(name, reserved[i]) == 0)
			return snap_err_set(err, -EINVAL, "\"%s\" cannot be "
					    "a snapshot's name: \"%.*s\" "
					    "means %s", name, (int)len - 3,
					    name, i == 0 ? "the newest "
					    "snapshot" : "the live database");
	for (p = (const unsigned char *)name; *p; p += n) {
		n = *p < 0x20 || *p == 0x7f || *p == '/' ? 0 : utf8_len(p);
		if (n == 0)
			return snap_err_set(err, -EINVAL, "\"%s\" cannot be a "
					    "snapshot's name: byte %zu (0x%02x) "
					    "is a control character, a slash "
					    "or not UTF-8", name,
					    (size_t)(p - (const unsigned char *)
						     name), *p);
	}
	return 0;
}

/* The label an exact name gives: the name without ".db" and without the
 * snapshot's own time prefix, sanitized. */
static void store_label_of_name(const snap_info *si, const char *name,
				char out[SNAP_LABEL_MAX + 1])
{
	char stem[SNAP_NAME_MAX], stamp[32];
	size_t plen;

	snprintf(stem, sizeof(stem), "%s", name);
	stem[strlen(stem) - 3] = '\0';             /* name ends in ".db" */
	store_stamp(si->created_ns, stamp);
	plen = strlen(stamp);
	if (strncmp(stem, stamp, plen) == 0 && stem[plen] == '_' &&
	    stem[plen + 1])
		memmove(stem, stem + plen + 1, strlen(stem + plen + 1) + 1);
	snap_label_sanitize(stem, snap_kind_name(si->kind), out);
}

/*
 * Give snapshot id a new name and label, in one transaction, and record
 * the event: relabel (exact NULL: "<its time>_<label>.db", made unique)
 * or rename (exact: that name, -EEXIST when another snapshot has it).
 */
static int store_name_set(snap_store *s, int64_t id, const char *label,
			  const char *exact, snap_info *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	snap_info si;
	char clean[SNAP_LABEL_MAX + 1], name[SNAP_NAME_MAX], old[SNAP_NAME_MAX];
	char detail[SNAP_NAME_MAX * 2 + 16];
	int rc;

	if (exact && (rc = snap_store_name_check(exact, err)))
		return rc;
	if ((rc = snap_store_writable(s, err)))
		return rc;
	snap_store_lock(s);
	rc = snap_store_exec(s->db, "BEGIN IMMEDIATE", err);
	if (rc)
		goto out;
	rc = snap_store_get_db(s->db, id, &si, err);
	if (!rc) {
		snprintf(old, sizeof(old), "%s", si.name);
		if (!exact) {
			snap_label_sanitize(label, snap_kind_name(si.kind),
					    clean);
			rc = snap_store_unique_name(s->db, si.created_ns,
						    clean, id, name, err);
		} else {
			snprintf(name, sizeof(name), "%s", exact);
			store_label_of_name(&si, exact, clean);
			rc = store_name_taken(s->db, exact, id, err);
			if (rc > 0)
				rc = snap_err_set(err, -EEXIST, "cannot rename "
						  "snapshot %s to %s: another "
						  "snapshot has that name "
						  "(delete or rename it first)",
						  si.name, exact);
		}
	}
	if (!rc) {
		rc = sqlite3_prepare_v2(s->db, "UPDATE snapshots SET name=?, "
					"label=? WHERE id=?", -1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, clean, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, id);
			rc = sqlite3_step(st);
		}
		rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, s->db, rc,
			"cannot %s snapshot %s", exact ? "rename" : "relabel",
			si.name);
		sqlite3_finalize(st);
	}
	if (!rc)
		rc = snap_store_exec(s->db, "COMMIT", err);
	if (rc) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		goto out;
	}
	snprintf(detail, sizeof(detail), "renamed from %s", old);
	snap_event_add_db(s->db, exact ? "rename" : "relabel", name, 1,
			  detail);
	if (out)
		rc = snap_store_get_db(s->db, id, out, err);
out:
	snap_store_unlock(s);
	return rc;
}

int snap_store_relabel(snap_store *s, int64_t id, const char *label,
		       snap_info *out, snap_err *err)
{
	return store_name_set(s, id, label, NULL, out, err);
}

int snap_store_rename(snap_store *s, int64_t id, const char *name,
		      snap_info *out, snap_err *err)
{
	return store_name_set(s, id, NULL, name, out, err);
}

/* UPDATE one column of one snapshot; records an event. */
static int set_column(snap_store *s, int64_t id, const char *sql,
		      const char *text, int64_t num, const char *what,
		      snap_err *err)
{
	sqlite3_stmt *st = NULL;
	snap_info si;
	int rc;

	if ((rc = snap_store_writable(s, err)))
		return rc;
	snap_store_lock(s);
	rc = snap_store_get_db(s->db, id, &si, err);
	if (!rc) {
		rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
		if (rc == SQLITE_OK) {
			if (text)
				sqlite3_bind_text(st, 1, text, -1,
						  SQLITE_STATIC);
			else
				sqlite3_bind_int64(st, 1, num);
			sqlite3_bind_int64(st, 2, id);
			rc = sqlite3_step(st);
		}
		rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, s->db, rc,
			"cannot update snapshot %s", si.name);
		sqlite3_finalize(st);
		if (!rc)
			snap_event_add_db(s->db, what, si.name, 1, what);
	}
	snap_store_unlock(s);
	return rc;
}

int snap_store_set_pinned(snap_store *s, int64_t id, int pinned,
			  snap_err *err)
{
	return set_column(s, id, "UPDATE snapshots SET pinned=? WHERE id=?",
			  NULL, pinned ? 1 : 0, pinned ? "pin" : "unpin", err);
}

int snap_store_set_comment(snap_store *s, int64_t id, const char *comment,
			   snap_err *err)
{
	if (strlen(comment) > SNAP_COMMENT_MAX)
		return snap_err_set(err, -EINVAL, "comment longer than %d "
				    "bytes", SNAP_COMMENT_MAX);
	return set_column(s, id, "UPDATE snapshots SET comment=? WHERE id=?",
			  comment, 0, "comment", err);
}

/* A byte total (SQLite's total() is a double) as a count: a damaged row
 * can make it negative or larger than any uint64_t, where a plain cast is
 * undefined; those read as 0 and UINT64_MAX. */
static uint64_t bytes_of(double d)
{
	if (!(d > 0))
		return 0;
	if (d >= 18446744073709551616.0)
		return UINT64_MAX;
	return (uint64_t)d;
}

int snap_store_stats_get(snap_store *s, snap_store_stats *stt, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	struct stat fst;
	int rc;

	memset(stt, 0, sizeof(*stt));
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db,
		"SELECT (SELECT count(*) FROM snapshots),"
		" (SELECT count(*) FROM pages),"
		" (SELECT total(zlen) FROM pages),"
		" (SELECT total(length(pagemap)) FROM snapshots),"
		" (SELECT total(image_size) FROM snapshots)", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		stt->snapshots = sqlite3_column_int64(st, 0);
		stt->pages = sqlite3_column_int64(st, 1);
		stt->stored_bytes = bytes_of(sqlite3_column_double(st, 2) +
					     sqlite3_column_double(st, 3));
		stt->logical_bytes = bytes_of(sqlite3_column_double(st, 4));
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "cannot read store "
				     "statistics");
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	if (snap_sys_fstatat(s->dirfd, "store.db", &fst, AT_SYMLINK_NOFOLLOW) == 0)
		stt->file_bytes += (uint64_t)fst.st_size;
	stt->file_bytes += (uint64_t)store_wal_size(s);
	return rc;
}

int snap_store_restore_lock(snap_store *s, int *fd, snap_err *err)
{
	int f = snap_store_file_open(s, "restore.lock", O_RDWR | O_CREAT, err);

	if (f < 0)
		return f;
	if (snap_sys_flock(f, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		snap_sys_close(f);
		if (e != EWOULDBLOCK)
			return snap_err_set(err, -e, "cannot lock %s/"
					    "restore.lock: %s", s->dir,
					    strerror(e));
		return snap_err_set(err, -EBUSY, "another restore of %s is in "
				    "progress; try again when it finished",
				    s->db_path);
	}
	*fd = f;
	return 0;
}

void snap_store_restore_unlock(int fd)
{
	if (fd >= 0)
		snap_sys_close(fd);
}
