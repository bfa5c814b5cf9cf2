/*
 * engine/err.h — how the engine reports failure.
 *
 * Every engine call returns 0 on success or a negative errno on failure and,
 * when given a snap_err, fills it with a sentence that names what failed, on
 * which snapshot or path, and why.  The caller logs that sentence once; the
 * FUSE layer replies with -rc.  SQLite result codes are converted to errno
 * values in exactly one place, snap_err_sqlite_errno().
 *
 * Conventions for the errno values the engine uses:
 *   -ENOENT   no such snapshot / file
 *   -EEXIST   a name is taken
 *   -EBUSY    another restore or daemon holds the lock
 *   -EBADMSG  verification found corruption (a problem found, not a crash)
 *   -EINVAL   the input is not a usable SQLite database, or a bad argument
 *   -ENOSPC   the store's or the database's filesystem is full
 *   -EIO      anything else that went wrong underneath
 */
#ifndef ENGINE_ERR_H
#define ENGINE_ERR_H

#include <sqlite3.h>

#define SNAP_ERR_MSG 1024

typedef struct snap_err {
	int code;                 /* the negative errno last set, 0 if none */
	char msg[SNAP_ERR_MSG];   /* human sentence; empty if none */
} snap_err;

/* Clear an error record (e may be NULL). */
void snap_err_clear(snap_err *e);

/*
 * Record failure `code` (a negative errno) with a printf-style message.
 * Returns `code` so callers can write `return snap_err_set(e, -EIO, ...)`.
 * e may be NULL.  An existing message is replaced.
 */
int snap_err_set(snap_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Convert a SQLite result code (primary or extended) to a negative errno.
 * The one place this mapping lives.
 */
int snap_err_sqlite_errno(int rc);

/*
 * Record a SQLite failure: the message is "<fmt>: <sqlite3_errmsg(db)>"
 * (or sqlite3_errstr(rc) when db is NULL).  Returns the converted errno.
 */
int snap_err_sqlite(snap_err *e, sqlite3 *db, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* msg past a leading "head: " (a message that names head first, as
 * most name the path or URL they are about), or msg itself: for a
 * caller that names head already and wants it said once. */
const char *snap_err_after(const char *msg, const char *head);

/* Prefix the existing message with more context ("restore of X: ..."). */
void snap_err_prefix(snap_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Replace every occurrence of path in the message by shown: a private
 * staging path ("/proc/self/fd/9/upload-2") means nothing to a user. */
void snap_err_rename(snap_err *e, const char *path, const char *shown);

/* Append more detail to the existing message (" (needs 12 MB)"). */
void snap_err_suffix(snap_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* ENGINE_ERR_H */
