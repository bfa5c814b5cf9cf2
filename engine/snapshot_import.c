/*
 * engine/snapshot_import.c — importing a database file as a snapshot, and
 * checking one without storing it (snapshot.h declares both).
 *
 * A file that is not a regular file, or is the live database itself, is
 * refused before anything opens it (snap_snapshot_file_usable).  Any other
 * file is refused before SQLite reads it
 * when its header says it cannot be whole: no SQLite magic, an invalid page
 * size, a length that is not a whole number of pages or shorter than the
 * header's page count (when that count is valid).  It is then opened
 * read-only (immutable when it is flagged WAL and no -wal is beside it,
 * engine/PITFALLS.md 14), must pass PRAGMA integrity_check, and is captured
 * inside the same read transaction by the pipeline of snapshot.c.  The
 * file is read through SQLite, and its header by one pread of our own
 * (it is not the live database, whose locks a descriptor of ours would
 * drop: engine/PITFALLS.md 2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events.h"
#include "integrity.h"
#include "snapshot_int.h"
#include "sys.h"

/* -EINVAL for a path that is not a regular file (mode), 0 for one. */
static int regular_file(const char *path, mode_t mode, snap_err *err)
{
	if (S_ISREG(mode))
		return 0;
	return snap_err_set(err, -EINVAL, "%s is not a regular file (a %s): "
			    "only a database file can be imported or "
			    "restored", path, snap_file_kind(mode));
}

int snap_snapshot_file_usable(snap_store *s, const char *path,
			      snap_err *err)
{
	struct stat st, live;

	if (snap_sys_stat(path, &st) < 0)
		return 0;    /* the open that follows says why */
	if (regular_file(path, st.st_mode, err))
		return -EINVAL;
	if (snap_sys_stat(snap_store_db_path(s), &live) == 0 &&
	    live.st_dev == st.st_dev && live.st_ino == st.st_ino)
		return snap_err_set(err, -EINVAL, "%s is the live database "
				    "itself: read as a file while "
				    "applications write it, it can be torn, "
				    "and restored it would undo their commits "
				    "made meanwhile; take a snapshot of it "
				    "instead", path);
	return 0;
}

/* Read the first n bytes of a file that is not the live database (never
 * blocking: a pipe or a device is refused, not waited on). */
static int read_head(const char *path, uint8_t *buf, size_t n, off_t *size,
		     snap_err *err)
{
	struct stat st;
	ssize_t got;
	/* O_NONBLOCK: a FIFO at the name must not hang the open before
	 * fstat says it is not a file (nor may SQLite open one after). */
	int fd = snap_sys_open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
			       O_NONBLOCK, 0);

	if (fd < 0)
		return snap_err_set(err, errno == ENOENT ? -ENOENT : -errno,
				    "cannot open %s: %s", path,
				    strerror(errno));
	if (snap_sys_fstat(fd, &st) < 0) {
		snap_sys_close(fd);
		return snap_err_set(err, -errno, "cannot stat %s", path);
	}
	if (regular_file(path, st.st_mode, err)) {
		snap_sys_close(fd);
		return -EINVAL;
	}
	*size = st.st_size;
	got = snap_sys_pread(fd, buf, n, 0);
	snap_sys_close(fd);
	if (got < 0)
		return snap_err_set(err, -EIO, "cannot read %s", path);
	if ((size_t)got < n)
		memset(buf + got, 0, n - (size_t)got);
	return 0;
}

/* The header-level checks: magic, page size, size against page count. */
static int check_header(const char *path, const uint8_t *h, off_t size,
			snap_err *err)
{
	uint32_t ps, count, counter, valid;

	if (size == 0)
		return snap_err_set(err, -EINVAL, "%s is empty, not a SQLite "
				    "database", path);
	if (size < 100 || memcmp(h, "SQLite format 3", 16) != 0)
		return snap_err_set(err, -EINVAL, "%s is not a SQLite database "
				    "(no SQLite header)", path);
	ps = ((uint32_t)h[16] << 8) | h[17];
	if (ps == 1)
		ps = 65536;
	if (ps < 512 || (ps & (ps - 1)))
		return snap_err_set(err, -EINVAL, "%s: invalid page size %u in "
				    "the header", path, ps);
	if (size % ps)
		return snap_err_set(err, -EINVAL, "%s is truncated or padded: "
				    "%lld bytes is not a whole number of %u-byte "
				    "pages", path, (long long)size, ps);
	count = ((uint32_t)h[28] << 24) | ((uint32_t)h[29] << 16) |
		((uint32_t)h[30] << 8) | h[31];
	counter = ((uint32_t)h[24] << 24) | ((uint32_t)h[25] << 16) |
		  ((uint32_t)h[26] << 8) | h[27];
	valid = ((uint32_t)h[92] << 24) | ((uint32_t)h[93] << 16) |
		((uint32_t)h[94] << 8) | h[95];
	if (count && counter == valid && (off_t)count * ps > size)
		return snap_err_set(err, -EINVAL, "%s is truncated: the header "
				    "says %u pages, the file has %lld", path,
				    count, (long long)(size / ps));
	return 0;
}

/* Open an external database file read-only for checking or importing.
 * A WAL-flagged file without a -wal beside it opens immutable
 * (engine/PITFALLS.md 14); with one, normally, so its committed transactions
 * are included. */
static int open_external(const char *path, const uint8_t *h, sqlite3 **db,
			 snap_err *err)
{
	char wal[4096], uri[4200], *q;
	struct stat st;

	snprintf(wal, sizeof(wal), "%s-wal", path);
	/* Only a -wal known to be absent may be ignored: one that cannot be
	 * looked up may hold the file's newest transactions. */
	if (h[18] == 2 && snap_sys_stat(wal, &st) < 0) {
		if (errno != ENOENT)
			return snap_err_set(err, -errno, "cannot tell whether "
					    "%s has a WAL file: %s: %s", path,
					    wal, strerror(errno));
		q = sqlite3_mprintf("%q", path);
		if (!q)
			return snap_err_set(err, -ENOMEM, "out of memory");
		snprintf(uri, sizeof(uri), "file:%s?immutable=1", q);
		sqlite3_free(q);
		/* Percent-encode nothing fancy: paths with '?' or '#' use the
		 * plain open below. */
		if (!strpbrk(path, "?#%"))
			return snap_livedb_open(uri, SNAP_LIVEDB_RO |
						SNAP_LIVEDB_URI |
						SNAP_LIVEDB_FOLLOW, NULL, db,
						err);
	}
	return snap_livedb_open(path, SNAP_LIVEDB_RO | SNAP_LIVEDB_FOLLOW, NULL,
				db, err);
}

/* Keep the first problem integrity_check reports. */
static void first_problem(void *ctx, const char *problem)
{
	char *first = ctx;

	if (!*first)
		snprintf(first, 512, "%s", problem);
}

/* PRAGMA integrity_check on an open connection: 0 or -EINVAL naming the
 * first problems (another errno when the check could not run). */
static int integrity(sqlite3 *db, const char *path, snap_err *err)
{
	char first[512] = "";
	unsigned bad = 0;
	int rc = snap_integrity_run(db, "PRAGMA integrity_check(20)", path,
				    first_problem, first, &bad, err);

	if (!rc && bad)
		rc = snap_err_set(err, -EINVAL, "%s fails integrity_check "
				  "(%u problem%s; first: %s)", path, bad,
				  bad > 1 ? "s" : "", first);
	return rc;
}

/* Open an external database file after the header-level checks: 0 with
 * *db open, or a negative errno naming what is wrong with *db NULL. */
static int open_checked(const char *path, sqlite3 **db, snap_err *err)
{
	uint8_t h[100];
	off_t size = 0;
	int rc = read_head(path, h, sizeof(h), &size, err);

	*db = NULL;
	if (!rc)
		rc = check_header(path, h, size, err);
	if (!rc)
		rc = open_external(path, h, db, err);
	return rc;
}

int snap_snapshot_check_file(const char *path, snap_err *err)
{
	sqlite3 *db = NULL;
	int rc = open_checked(path, &db, err);

	if (!rc)
		rc = integrity(db, path, err);
	sqlite3_close(db);
	return rc;
}

/* Import path as a snapshot: the checks, then the capture pipeline
 * reporting progress through fn (may be NULL); a failure is recorded as
 * an event of kind `event`. */
static int import_file(snap_store *s, const char *path,
		       const snap_create_opts *o, const char *event,
		       snap_progress_fn fn, void *ctx, snap_info *out,
		       snap_err *err)
{
	snap_create_opts dflt = { .kind = SNAP_KIND_IMPORT };
	snap_info tmp;
	sqlite3 *db = NULL;
	int rc;

	if (!o)
		o = &dflt;
	if (!out)
		out = &tmp;
	rc = snap_snapshot_file_usable(s, path, err);
	if (!rc)
		rc = open_checked(path, &db, err);
	if (!rc)
		rc = snap_snapshot_begin_read(db, path, err);
	if (!rc) {
		rc = integrity(db, path, err);
		if (!rc)
			rc = snap_snapshot_capture(s, db, 1, path, o, fn, ctx,
						   out, err);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	sqlite3_close(db);
	if (rc && o->source_name)
		snap_err_rename(err, path, o->source_name);
	if (rc)
		snap_event_add(s, event, "", 0, "%s", err ? err->msg :
			       "import failed");
	else
		snap_event_add(s, "import", out->name, 1, "imported %s (kind "
			       "%s)", o->source_name ? o->source_name : path,
			       snap_kind_name(out->kind));
	return rc;
}

int snap_snapshot_import(snap_store *s, const char *path,
			 const snap_create_opts *o, snap_info *out,
			 snap_err *err)
{
	return import_file(s, path, o, "import", NULL, NULL, out, err);
}

int snap_snapshot_import_progress(snap_store *s, const char *path,
				  const snap_create_opts *o,
				  snap_progress_fn fn, void *ctx,
				  snap_info *out, snap_err *err)
{
	return import_file(s, path, o, "import", fn, ctx, out, err);
}

int snap_snapshot_import_for(snap_store *s, const char *path,
			     const snap_create_opts *o, const char *event,
			     snap_info *out, snap_err *err)
{
	return import_file(s, path, o, event, NULL, NULL, out, err);
}
