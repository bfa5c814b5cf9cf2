/*
 * engine/integrity.c — SQLite's checks, damage told from failure; see
 * integrity.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "integrity.h"

/* The SQLite result code in a row "... error code=N", or 0. */
static int row_error_code(const char *row)
{
	const char *p = strstr(row, "error code=");

	return p ? atoi(p + strlen("error code=")) : 0;
}

/* 1 when a result code says nothing about the bytes of the database. */
static int not_damage(int rc)
{
	if (rc == SQLITE_IOERR_CORRUPTFS)
		return 0;
	return (rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_NOMEM ||
	       (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED ||
	       (rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_CANTOPEN;
}

int snap_integrity_run(sqlite3 *db, const char *pragma, const char *what,
		       snap_integrity_fn fn, void *ctx, unsigned *problems,
		       snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc, failed = 0;

	*problems = 0;
	rc = sqlite3_prepare_v2(db, pragma, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		rc = SQLITE_OK;
		if (!t) {           /* the text could not be made */
			rc = SQLITE_NOMEM;
			break;
		}
		if (strcmp(t, "ok") == 0)
			continue;
		if (not_damage(row_error_code(t))) {
			failed = row_error_code(t);
			continue;
		}
		(*problems)++;
		if (fn)
			fn(ctx, t);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE && failed)
		return snap_err_set(err, snap_err_sqlite_errno(failed),
				    "%s could not be checked: a page could not "
				    "be read (%s)", what,
				    sqlite3_errstr(failed));
	if (rc == SQLITE_DONE)
		return 0;
	if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) {
		(*problems)++;
		if (fn)
			fn(ctx, sqlite3_errmsg(db));
		return 0;
	}
	return snap_err_sqlite(err, db, rc, "%s could not be checked", what);
}
