/*
 * engine/integrity.h — running SQLite's own checks (PRAGMA integrity_check,
 * quick_check) and telling a damaged database from a check that could not
 * run (internal).
 *
 * Damage is a problem row, or a step that fails with SQLITE_CORRUPT or
 * SQLITE_NOTADB (SQLite gave up reading the file; it reports EIO from
 * read() that way too, SQLITE_IOERR_CORRUPTFS: bytes that cannot be read
 * are damage).  A check that runs out of memory, hits any other I/O error
 * or stays busy found nothing: that is a failure to check, never "the
 * database is damaged".  integrity_check reports a page it could not read
 * as a row ("unable to get the page. error code=N"); with N an I/O error
 * other than CORRUPTFS, or out of memory, the row is such a failure too.
 */
#ifndef ENGINE_INTEGRITY_H
#define ENGINE_INTEGRITY_H

#include <sqlite3.h>

#include "err.h"

/* One problem found (a row of the check, or SQLite's error message). */
typedef void (*snap_integrity_fn)(void *ctx, const char *problem);

/*
 * Run `pragma` ("PRAGMA integrity_check(20)") on db.  Each problem goes to
 * fn (may be NULL) and is counted in *problems.  Returns 0 when the check
 * ran, whatever it found; a negative errno (err names `what`) when it
 * could not.
 */
int snap_integrity_run(sqlite3 *db, const char *pragma, const char *what,
		       snap_integrity_fn fn, void *ctx, unsigned *problems,
		       snap_err *err);

#endif /* ENGINE_INTEGRITY_H */
