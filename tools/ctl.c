/*
 * tools/ctl.c — snapctl's shared helpers (ctl.h): messages on stderr in
 * one shape ("snapctl: <what failed, on which snapshot or file, and
 * why>"), the JSON document on stdout, JSON read through SQLite, a
 * snapshot found by name.  Calls no command; only the progress line
 * (erased before a message) is below it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"

/* The common tail of ctl_error and ctl_warn. */
static void ctl_message(const char *prefix, const char *fmt, va_list ap)
{
	ctl_busy_end();
	ctl_progress_clear();
	fflush(stdout);
	fputs(prefix, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/* "snapctl: <message>" on stderr; CTL_EXIT_FAIL. */
int ctl_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_message("snapctl: ", fmt, ap);
	va_end(ap);
	return CTL_EXIT_FAIL;
}

/* "snapctl: warning: <message>" on stderr. */
void ctl_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_message("snapctl: warning: ", fmt, ap);
	va_end(ap);
}

/* A usage error and the pointer to --help; CTL_EXIT_USAGE. */
int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("snapctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'snapctl --help' for more information.\n", stderr);
	return CTL_EXIT_USAGE;
}

/*
 * Report a failed engine call.  The engine's message already names what
 * failed, on which snapshot or path, and why; `what` is only a fallback for
 * an engine call that left the message empty.  Returns CTL_EXIT_FAIL.
 */
int ctl_fail(const snap_err *e, int rc, const char *what)
{
	if (e->msg[0])
		return ctl_error("%s", e->msg);
	return ctl_error("%s: %s", what, strerror(rc < 0 ? -rc : EIO));
}

/* Init j and open its one object. */
void ctl_json_object(snap_json *j)
{
	snap_json_init(j);
	snap_json_obj_begin(j);
}

/* Print a whole document and free the writer (ctl.h). */
int ctl_json_print(snap_json *j)
{
	int done = snap_json_done(j);

	if (done)
		puts(j->buf);
	snap_json_free(j);
	return done ? CTL_EXIT_OK : ctl_error("out of memory while writing "
					      "JSON");
}

/* Run sql over the JSON text on an in-memory SQLite connection (ctl.h). */
int ctl_json_query(const char *json, size_t len, const char *sql,
		   int (*row)(sqlite3_stmt *st, void *arg), void *arg)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, json, (int)len, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rc = row(st, arg) ? SQLITE_ABORT : SQLITE_OK;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The snapshots not in the trash whose label is name: how many, and the
 * newest of them in *si.  -1 when the catalog cannot be listed. */
static long ctl_find_label(snap_store *s, const char *name, snap_info *si)
{
	snap_info *v = NULL;
	size_t n = 0;
	long hits = 0;
	snap_err err;

	if (snap_store_list(s, &v, &n, &err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i].trash != SNAP_TRASH_NONE || strcmp(v[i].label, name))
			continue;
		if (!hits++ || v[i].created_ns >= si->created_ns)
			*si = v[i];
	}
	free(v);
	return hits;
}

/* Find a snapshot by name, or by its label when exactly one snapshot
 * carries it (`create --label drill`, then `restore drill`); a missing
 * one is a sentence naming the store. */
int ctl_find(snap_store *s, const char *name, snap_info *si)
{
	snap_err err;
	snap_info hit;
	long hits = 0;
	int rc;

	snap_err_clear(&err);
	rc = snap_store_find(s, name, si, &err);
	if (rc == -ENOENT && (hits = ctl_find_label(s, name, &hit)) == 1) {
		*si = hit;
		return CTL_EXIT_OK;
	}
	if (rc == -ENOENT && hits > 1)
		return ctl_error("no snapshot named '%s' in %s, and %ld "
				 "snapshots are labelled %s (the newest is %s): "
				 "give the full name", name, snap_store_dir(s),
				 hits, name, hit.name);
	if (rc < 0) {
		if (rc == -ENOENT && !err.msg[0])
			return ctl_error("no snapshot named '%s' in %s", name,
					 snap_store_dir(s));
		return ctl_fail(&err, rc, name);
	}
	return CTL_EXIT_OK;
}

/* 1 when both paths exist and are the same file (device and inode). */
int ctl_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}
