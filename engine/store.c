/*
 * engine/store.c — opening and closing a store: its directory and catalog
 * file, the catalog connection and the connections long operations open,
 * the daemon and restore locks.
 *
 * The store's layout, its catalog and its reference counting are described
 * where they live: the schema and its migration in storeschema.c, catalog
 * rows in storecat.c, page maps and runs in storemap.c, snapshot names in
 * storename.c, room and writability in storespace.c, the directory in
 * storedir.c (engine/DESIGN.md §2 has the whole picture).  All share
 * store_int.h.
 *
 * A store whose filesystem is read-only, or full when it opens, is opened
 * read-only (s->readonly says why); a full one becomes writable again once
 * there is room (storespace.c).
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

/* Take the catalog connection's (recursive) mutex s->mu. */
void snap_store_lock(snap_store *s)
{
	pthread_mutex_lock(&s->mu);
}

/* Release s->mu. */
void snap_store_unlock(snap_store *s)
{
	pthread_mutex_unlock(&s->mu);
}

/* Run SQL that returns no rows; 0, or an error naming the statement. */
int snap_store_exec(sqlite3 *db, const char *sql, snap_err *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, db, rc, "store: %.60s", sql);
	return 0;
}

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

/* The default store directory of db_path: "<absolute db path>.snapfs"
 * (malloc()ed). */
char *snap_store_default_dir(const char *db_path)
{
	char *abs = db_path ? abs_path(db_path) : NULL, *out = NULL;

	if (abs && asprintf(&out, "%s.snapfs", abs) < 0)
		out = NULL;
	free(abs);
	return out;
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


/* Bytes free for us on the store's filesystem (UINT64_MAX: unknown). */
uint64_t snap_store_room(snap_store *s)
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
		rc = snap_store_exec(db, STORE_PRAGMAS, err);
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

/* Size of the store's -wal (0 when there is none). */
int64_t snap_store_wal_size(snap_store *s)
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

/* Close the catalog connection, the locks and the directory fd, and free s. */
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

/* Take restore.lock exclusively without waiting: 0 and *fd, or -EBUSY. */
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

/* Release the restore lock (fd < 0: nothing held). */
void snap_store_restore_unlock(int fd)
{
	if (fd >= 0)
		snap_sys_close(fd);
}
