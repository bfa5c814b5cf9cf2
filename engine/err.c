/*
 * engine/err.c — error records and the one SQLite-to-errno mapping.
 *
 * A snap_err carries a negative errno and a sentence.  Functions that fail
 * fill it once, at the place that knows what failed; callers higher up may
 * prefix context ("restore of X: ") but never overwrite the cause.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

void snap_err_clear(snap_err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}

int snap_err_set(snap_err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

int snap_err_sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
		return -EPERM;
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_NOTADB:
	case SQLITE_MISUSE:
	case SQLITE_RANGE:
	case SQLITE_MISMATCH:
	case SQLITE_FORMAT:
		return -EINVAL;
	case SQLITE_CORRUPT:
		return -EBADMSG;
	case SQLITE_TOOBIG:
		return -EFBIG;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_INTERRUPT:
	case SQLITE_ABORT:
		return -EINTR;
	case SQLITE_IOERR:
		if (rc == SQLITE_IOERR_NOMEM)
			return -ENOMEM;
		return -EIO;
	default:
		return -EIO;
	}
}

int snap_err_sqlite(snap_err *e, sqlite3 *db, int rc, const char *fmt, ...)
{
	int code = snap_err_sqlite_errno(rc);
	char head[SNAP_ERR_MSG / 2];
	const char *why;
	va_list ap;

	if (code == 0)
		code = -EIO;
	if (!e)
		return code;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	/* sqlite3_errmsg() may describe a later call; fall back to rc. */
	if (!why || !*why || strcmp(why, "not an error") == 0)
		why = sqlite3_errstr(rc);
	e->code = code;
	snprintf(e->msg, sizeof(e->msg), "%s: %s", head, why);
	return code;
}

const char *snap_err_after(const char *msg, const char *head)
{
	size_t n = strlen(head);

	if (n && !strncmp(msg, head, n) && !strncmp(msg + n, ": ", 2))
		return msg + n + 2;
	return msg;
}

void snap_err_prefix(snap_err *e, const char *fmt, ...)
{
	char head[SNAP_ERR_MSG];
	char old[SNAP_ERR_MSG];
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", head, old);
}

void snap_err_suffix(snap_err *e, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	if (!e)
		return;
	n = strnlen(e->msg, sizeof(e->msg));
	if (n >= sizeof(e->msg) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(e->msg + n, sizeof(e->msg) - n, fmt, ap);
	va_end(ap);
}

void snap_err_rename(snap_err *e, const char *path, const char *shown)
{
	char out[SNAP_ERR_MSG];
	size_t plen, o = 0;
	const char *p, *hit;

	if (!e || !path || !shown || !(plen = strlen(path)) ||
	    !strstr(e->msg, path))
		return;
	p = e->msg;
	out[0] = '\0';
	while ((hit = strstr(p, path)) && o < sizeof(out)) {
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%.*s%s",
				      (int)(hit - p), p, shown);
		p = hit + plen;
	}
	if (o < sizeof(out))
		snprintf(out + o, sizeof(out) - o, "%s", p);
	snprintf(e->msg, sizeof(e->msg), "%s", out);
}
