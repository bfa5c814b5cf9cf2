/*
 * engine/storeopen.c — opening a store: its directory and catalog file
 * checked or created, the catalog connection (read-write, or read-only on
 * a full or read-only filesystem), the connections long operations open,
 * whether they may write now (a full store becomes writable again once
 * there is room), the daemon lock (taken through storelock.c), the start
 * of a catalog transaction.
 * The top of the store files: it uses the schema (storeschema.c), the
 * directory (storedir.c) and the bottom (store.c); none of them calls it.
 *
 * The catalog connection s->db is shared by threads under s->mu (a recursive
 * mutex, so engine calls may nest).  WAL mode lets snapctl read and write
 * beside a running daemon; busy_timeout makes them wait for each other.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "anchor.h"
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

/* The pragmas every store connection runs (STORE_PRAGMAS, and sql after
 * them): the first statement that reads store.db, so a file that is not
 * a store (or a disk error) is said of the store, not of the pragma text
 * ("store: PRAGMA synchronous=FULL;PRAGMA temp_...: file is not a
 * database" was what snapfs and a writing snapctl said). */
static int store_pragmas(const snap_store *s, sqlite3 *db, const char *sql,
			 snap_err *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, db, rc, "cannot read store %s",
				       s->dir);
	return 0;
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

/*
 * A read-write connection to store.db that is ready for the catalog: the
 * pragmas, the schema (created in an empty file, checked otherwise) and WAL
 * mode.  On failure *full says whether the store's filesystem ran out of
 * room (then the store can still be opened read-only).
 */
int snap_store_open_rw(snap_store *s, int mutex, sqlite3 **out, int *full,
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
		rc = store_pragmas(s, db, STORE_PRAGMAS, err);
		/* The schema check comes first: a foreign store.db is refused
		 * before anything (even the journal mode) is written into
		 * it. */
		if (!rc)
			rc = snap_store_schema_init(s, db, s->db_path ? s->db_path :
						    "", err);
		if (!rc)
			rc = snap_store_exec(db, "PRAGMA journal_mode=WAL",
					     err);
	}
	if (rc) {
		*full = rc == -ENOSPC || sqlite3_system_errno(db) == ENOSPC ||
			(rc == -EIO && snap_store_room(s) < STORE_ROOM_MIN);
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
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
			rc = snap_store_ro_compat(db, err);
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
		if (snap_store_wal_size(s) > 0)
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
	rc = snap_store_ro_compat(db, err);
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

/* A new connection to store.db with the store's pragmas, read-only when
 * asked or when the store is. */
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
	rc = store_pragmas(s, db, STORE_PRAGMAS "PRAGMA cache_size=-8192;",
			   err);
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
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
	struct stat st;
	int rc;

	if (snap_sys_stat(path, &st) < 0) {
		int e = errno;
		char to[PATH_MAX];
		ssize_t n = snap_sys_lstat(path, &st) == 0 &&
			    S_ISLNK(st.st_mode) ?
			    readlink(path, to, sizeof(to) - 1) : -1;

		if (n > 0 && e == ENOENT) {
			to[n] = '\0';
			return snap_err_set(err, -ENOENT, "%s is a symbolic "
					    "link to %s, which does not exist: "
					    "no database there; give the path "
					    "of the database itself", path,
					    to);
		}
		return snap_err_set(err, -e, "no database at %s: %s; "
				    "nothing to snapshot", path, strerror(e));
	}
	/* A directory (SQLite cannot open it, which is not "not a
	 * database"), a pipe (an open would wait for a writer), a device. */
	if (!S_ISREG(st.st_mode))
		return snap_err_set(err, -EINVAL, "%s is not a regular file "
				    "(a %s), so not a SQLite database: nothing "
				    "to snapshot, and no store was created for "
				    "it", path, snap_file_kind(st.st_mode));
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

/* Open (or create) the store of db_path; see store.h for the flags and
 * checks. */
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
		s->db_path = snap_store_abs_path(db_path);
		if (!s->db_path) {
			rc = snap_err_set(err, -errno ? -errno : -ENOENT,
					  "database %s: its directory does "
					  "not exist", db_path);
			goto fail;
		}
	}
	s->dir = store_dir ? snap_store_dir_path(store_dir) :
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
		rc = snap_store_open_rw(s, SQLITE_OPEN_FULLMUTEX, &s->db, &full, err);
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
			rc = snap_store_schema_check(s, s->db, err);
		if (rc)
			goto fail;
	}
	rc = snap_store_meta_get(s->db, "db_path", recorded, sizeof(recorded));
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
		rc = snap_store_daemon_lock(s, err);
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

	if (snap_store_room(s) < STORE_ROOM_MIN ||
	    snap_store_open_rw(s, SQLITE_OPEN_FULLMUTEX, &db, &full, &e) != 0)
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

/* 0 when the store takes changes now; otherwise why not (-EROFS, -ENOSPC). */
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
			room = snap_store_room(s);
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

/*
 * The transaction of every catalog change (delete, relabel, rename, the
 * trash): the store must be writable, s->mu is taken, then BEGIN IMMEDIATE
 * takes SQLite's write lock up front (waiting busy_timeout for another
 * writer) so that nothing read inside can be changed by a commit elsewhere
 * before ours.
 */
int snap_store_txn_begin(snap_store *s, snap_err *err)
{
	int rc;

	/* A filesystem filled since the store was opened: the change gets
	 * the reserve's room before SQLite needs it (storespace.c). */
	if (snap_store_room(s) < STORE_ROOM_MIN)
		snap_store_reserve_release(s);
	rc = snap_store_writable(s, err);

	/* A full store gives its reserve back for a catalog change: a
	 * delete must stay possible to make room (storespace.c). */
	if (rc == -ENOSPC && snap_store_reserve_release(s)) {
		snap_err_clear(err);
		rc = snap_store_writable(s, err);
	}

	if (rc)
		return rc;
	snap_store_lock(s);
	rc = snap_store_exec(s->db, "BEGIN IMMEDIATE", err);
	if (rc)
		snap_store_unlock(s);
	return rc;
}
