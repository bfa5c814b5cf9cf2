/*
 * engine/store.c — the bottom of the store: the catalog connection's
 * mutex, running SQL on it (one statement, a row of integers, a text
 * column, the end of a transaction), the store's paths, room on its
 * filesystem, closing it, the restore lock.  It calls no other store
 * file.
 *
 * The store's layout, its catalog and its reference counting are described
 * where they live: opening a store and its connections, and whether they
 * may write, in storeopen.c; the schema and its migration in
 * storeschema.c; catalog rows in storecat.c; page maps and runs in
 * storemap.c; snapshot names in storename.c; the space measure in
 * storespace.c; the directory in storedir.c (engine/DESIGN.md §2 has the
 * whole picture).  All share store_int.h.
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
char *snap_store_abs_path(const char *path)
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
char *snap_store_dir_path(const char *dir)
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
		return snap_store_abs_path(dir);
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
	char *abs = db_path ? snap_store_abs_path(db_path) : NULL, *out = NULL;

	if (abs && asprintf(&out, "%s.snapfs", abs) < 0)
		out = NULL;
	free(abs);
	return out;
}

/* Bytes free for us on the store's filesystem (UINT64_MAX: unknown). */
uint64_t snap_store_room(snap_store *s)
{
	struct statvfs v;

	if (fstatvfs(s->dirfd, &v) < 0)
		return UINT64_MAX;
	return (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
}

/* Size of the store's -wal (0 when there is none). */
int64_t snap_store_wal_size(snap_store *s)
{
	struct stat st;

	if (snap_sys_fstatat(s->dirfd, "store.db-wal", &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return (int64_t)st.st_size;
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

/* COMMIT when rc is 0; ROLLBACK when it is not or when COMMIT fails. */
int snap_store_txn_end(sqlite3 *db, int rc, snap_err *err)
{
	if (!rc)
		rc = snap_store_exec(db, "COMMIT", err);
	if (rc)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

int snap_store_step1(snap_store *s, const char *sql, const char *key,
		     int64_t num, sqlite3_stmt **st)
{
	int rc;

	*st = NULL;
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	if (key)
		sqlite3_bind_text(*st, 1, key, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(*st, 1, num);
	if (sqlite3_bind_parameter_count(*st) >= 2)
		sqlite3_bind_int64(*st, 2, num);
	return sqlite3_step(*st);
}

/* The text column `sql` selects for id (dflt when NULL), malloc()ed. */
int snap_store_text(snap_store *s, const char *sql, int64_t id,
		    const char *dflt, const char *missing, char **out,
		    snap_err *err)
{
	sqlite3_stmt *st;
	int rc;

	*out = NULL;
	rc = snap_store_step1(s, sql, NULL, id, &st);
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

/* The first row of n integer columns of sql, under s->mu. */
int snap_store_query_ints(snap_store *s, const char *sql, int64_t *out,
			  int n, const char *what, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, i;

	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		for (i = 0; i < n; i++)
			out[i] = sqlite3_column_int64(st, i);
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot %s",
				     s->dir, what);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}
