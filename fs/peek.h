/*
 * fs/peek.h — peeks: an image's first pages in one read transaction (peek.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_PEEK_H
#define FS_PEEK_H

#include "ino.h"

/* ---- peeks (peek.c) ----------------------------------------------------- */

/* What a peek saw, all in one read transaction. */
struct snap_peek_head {
	unsigned char *bytes;  /* the first len bytes (malloc), page 1
				  normalized */
	size_t len;            /* whole pages, at most max_head bytes */
	uint64_t size;         /* page_count * page_size */
	uint32_t page_size;
	int wal;               /* the database is in WAL mode */
};

/* Begin a read transaction on the live database at path and read its
 * size and first pages.  When they are the whole database the
 * transaction ends and *held is NULL; otherwise *held keeps it for
 * snap_peek_db.  0 or a negative errno; -EPROTO when SQLite did not show
 * the pages (the caller copies the whole image instead). */
int snap_peek_begin(const char *path, size_t max_head,
		    struct snap_peek **held, struct snap_peek_head *h,
		    snap_err *err);
/* The connection, inside the peek's read transaction. */
sqlite3 *snap_peek_db(struct snap_peek *p);
/* End the transaction, close, free (NULL is fine). */
void snap_peek_end(struct snap_peek *p);

#endif /* FS_PEEK_H */
