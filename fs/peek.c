/*
 * fs/peek.c — the first pages of the live database, and a read
 * transaction that can still give the rest.
 *
 * A file manager opens current.db read-only and reads its first bytes to
 * show its type; building the whole consistent image for that (live.c)
 * cost a 294 MB database 0.5 s and 294 MB of staging disk.  A peek instead
 * opens a connection of its own on the live database, begins a read
 * transaction, learns the size (page_count * page_size) and records the
 * first pages, all in that one transaction: one committed state
 * (engine/PITFALLS.md 1, 6), a few milliseconds whatever the size.  When the
 * database is no larger than the head the transaction ends at once and the
 * head is the whole image.  Otherwise the transaction stays open (live.c
 * bounds for how long), so that the rest of the image, when a read goes beyond
 * the head, is copied by sqlite3_backup from the same connection inside the
 * same transaction: the same state as the head, whatever applications
 * committed meanwhile.
 *
 * How the first pages are recorded.  The backup API writes page 1 into
 * its destination only when it commits, after the last page (the
 * destination btree holds page 1 for its whole write transaction, and
 * sqlite3_db_cacheflush() skips it too), and Debian's SQLite has no
 * sqlite_dbpage table.  So the peek's connection is opened through a
 * small VFS shim over the default VFS ("snapfs-peek", in the style of
 * SQLite's ext/misc/cksumvfs.c) that forwards every call unchanged and,
 * while a recording is on, keeps a copy of every page-sized read of the
 * first bytes: a read of the database file at a page-aligned offset is
 * that page; a read of a page's data in the WAL is the page its frame
 * header names (read from SQLite's own WAL descriptor, never our own
 * open(): engine/PITFALLS.md 2).  A sqlite3_backup_step() of the first K pages
 * into a throw-away in-memory database then makes the source's pager
 * fetch exactly those pages, within the transaction.  The pager reads a
 * page only on a cache miss, and it empties its cache whenever it sees
 * that another connection committed (change counter, WAL index), so the
 * last recorded read of each page is that page as this transaction sees
 * it.  Memory-mapped I/O is off on this connection (xFetch maps nothing),
 * so every page comes through xRead.  Should a page of the head not have
 * been seen (a future SQLite reading differently), the peek fails and
 * the caller builds the whole image as before: slower, never wrong.
 *
 * Page 1 of the head is normalized as every image's page 1 is
 * (snap_livedb_page1_normalize), and the image built later for the same
 * handle gets the head's page 1 written over its own, so a reader never
 * sees two versions of page 1.
 *
 * The connection is read-write only so that SQLite can roll back a hot
 * journal, as live.c's are; nothing is written through it.
 *
 * Thread-safety: a peek is used by one thread at a time (the caller's
 * lock); the VFS itself has no shared state besides its registration
 * (pthread_once).  A recording belongs to one connection.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anchor.h"
#include "fs.h"

#define PEEK_VFS "snapfs-peek"
#define PEEK_UNIT 512            /* smallest page size: recording grain */

/* The first bytes being recorded for one connection. */
struct peek_rec {
	unsigned char *buf;      /* len bytes: byte i of the database */
	size_t len;
	uint32_t *amt;           /* per PEEK_UNIT: size of the read that last
				    filled it (its page size), 0 = never */
};

/* One open file of the shim: the real file follows it in memory. */
struct peek_file {
	sqlite3_file base;
	sqlite3_file *real;      /* the default VFS's file object */
	struct peek_file *main;  /* WAL: the database file's shim, or NULL */
	struct peek_rec *rec;    /* database file: the recording, or NULL */
	int wal;                 /* 1: this is a -wal file */
};

/* Where the real file starts after the shim's header (16-aligned). */
#define PEEK_HDR ((sizeof(struct peek_file) + 15) & ~(size_t)15)
#define REAL(f) (((struct peek_file *)(f))->real)

static sqlite3_vfs *peek_orig;       /* the default VFS, set once */
static sqlite3_vfs peek_vfs;
static pthread_once_t peek_once = PTHREAD_ONCE_INIT;
static int peek_registered;          /* SQLITE_OK once registered */

/* 1 when a read of amt bytes is a whole page (a power of two, 512..65536). */
static int peek_is_page(int amt)
{
	return amt >= PEEK_UNIT && amt <= 65536 && (amt & (amt - 1)) == 0;
}

/* Keep amt bytes that are the database's bytes at pos, if in the head. */
static void peek_keep(struct peek_rec *r, const void *buf, int amt,
		      sqlite3_int64 pos)
{
	size_t u;

	if (pos < 0 || (uint64_t)pos + (uint64_t)amt > r->len)
		return;
	memcpy(r->buf + pos, buf, (size_t)amt);
	for (u = (size_t)pos / PEEK_UNIT;
	     u < ((size_t)pos + (size_t)amt) / PEEK_UNIT; u++)
		r->amt[u] = (uint32_t)amt;
}

/*
 * xRead: forward, then record what the read was.  A WAL frame is a
 * 24-byte header (page number first) and the page; the WAL file starts
 * with a 32-byte header.  SQLite reads a frame's page at
 * 32 + n * (page_size + 24) + 24.
 */
static int peek_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct peek_file *p = (struct peek_file *)f;
	struct peek_rec *r;
	unsigned char h[4];
	uint32_t pgno;
	int rc;

	rc = REAL(f)->pMethods->xRead(REAL(f), buf, amt, off);
	if ((rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) ||
	    !peek_is_page(amt))
		return rc;
	if (!p->wal) {
		if (p->rec && off % amt == 0)
			peek_keep(p->rec, buf, amt, off);
		return rc;
	}
	r = p->main ? p->main->rec : NULL;
	if (!r || off < 56 || (off - 56) % (amt + 24) != 0)
		return rc;
	if (REAL(f)->pMethods->xRead(REAL(f), h, 4, off - 24) != SQLITE_OK)
		return rc;
	pgno = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
	       (uint32_t)h[2] << 8 | h[3];
	if (pgno > 0)
		peek_keep(r, buf, amt, (sqlite3_int64)(pgno - 1) * amt);
	return rc;
}

/* The other methods forward to the real file unchanged. */
static int peek_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

/* xWrite: forwarded. */
static int peek_write(sqlite3_file *f, const void *buf, int amt,
		      sqlite3_int64 off)
{
	return REAL(f)->pMethods->xWrite(REAL(f), buf, amt, off);
}

/* xTruncate: forwarded. */
static int peek_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

/* xSync: forwarded. */
static int peek_sync(sqlite3_file *f, int flags)
{
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

/* xFileSize: forwarded. */
static int peek_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

/* xLock: forwarded. */
static int peek_lock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xLock(REAL(f), level);
}

/* xUnlock: forwarded. */
static int peek_unlock(sqlite3_file *f, int level)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

/* xCheckReservedLock: forwarded. */
static int peek_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

/* xFileControl: forwarded. */
static int peek_file_control(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

/* xSectorSize: forwarded. */
static int peek_sector_size(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

/* xDeviceCharacteristics: forwarded. */
static int peek_device_chars(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

/* xShmMap: forwarded (an error for a file without shared memory). */
static int peek_shm_map(sqlite3_file *f, int pg, int pgsz, int extend,
			void volatile **pp)
{
	if (REAL(f)->pMethods->iVersion < 2)
		return SQLITE_IOERR;
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}

/* xShmLock: forwarded (an error for a file without shared memory). */
static int peek_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
	if (REAL(f)->pMethods->iVersion < 2)
		return SQLITE_IOERR;
	return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

/* xShmBarrier: forwarded. */
static void peek_shm_barrier(sqlite3_file *f)
{
	if (REAL(f)->pMethods->iVersion >= 2)
		REAL(f)->pMethods->xShmBarrier(REAL(f));
}

/* xShmUnmap: forwarded. */
static int peek_shm_unmap(sqlite3_file *f, int delete_flag)
{
	if (REAL(f)->pMethods->iVersion < 2)
		return SQLITE_OK;
	return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

/* No memory mapping: every page must come through xRead. */
static int peek_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
	(void)f;
	(void)off;
	(void)amt;
	*pp = NULL;
	return SQLITE_OK;
}

/* xUnfetch: nothing was mapped. */
static int peek_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	(void)f;
	(void)off;
	(void)p;
	return SQLITE_OK;
}

static const sqlite3_io_methods peek_io = {
	.iVersion = 3,
	.xClose = peek_close,
	.xRead = peek_read,
	.xWrite = peek_write,
	.xTruncate = peek_truncate,
	.xSync = peek_sync,
	.xFileSize = peek_file_size,
	.xLock = peek_lock,
	.xUnlock = peek_unlock,
	.xCheckReservedLock = peek_check_reserved,
	.xFileControl = peek_file_control,
	.xSectorSize = peek_sector_size,
	.xDeviceCharacteristics = peek_device_chars,
	.xShmMap = peek_shm_map,
	.xShmLock = peek_shm_lock,
	.xShmBarrier = peek_shm_barrier,
	.xShmUnmap = peek_shm_unmap,
	.xFetch = peek_fetch,
	.xUnfetch = peek_unfetch,
};

/*
 * xOpen: the database file and its WAL get the shim; every other file (a
 * hot journal being rolled back, temporary files) is the real VFS's own.
 * A WAL finds its database file's shim through SQLite
 * (sqlite3_database_file_object), for that file's recording.
 */
static int peek_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		     int flags, int *out_flags)
{
	struct peek_file *p = (struct peek_file *)f;
	sqlite3_file *db;
	int rc;

	(void)vfs;
	if (!(flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)))
		return peek_orig->xOpen(peek_orig, name, f, flags, out_flags);
	memset(p, 0, sizeof(*p));
	p->real = (sqlite3_file *)((char *)p + PEEK_HDR);
	rc = peek_orig->xOpen(peek_orig, name, p->real, flags, out_flags);
	if (rc != SQLITE_OK) {
		f->pMethods = NULL;
		return rc;
	}
	if (flags & SQLITE_OPEN_WAL) {
		p->wal = 1;
		db = name ? sqlite3_database_file_object(name) : NULL;
		if (db && db->pMethods == &peek_io)
			p->main = (struct peek_file *)db;
	}
	f->pMethods = &peek_io;
	return SQLITE_OK;
}

/* The shim over the default VFS: the engine's forwarding VFS
 * (engine/anchor.h) with peek_open as its xOpen and room for the shim's
 * header before every real file. */
static void peek_register(void)
{
	/* Over the anchored VFS, so the live file's anchored path
	 * (snap_livedb_open) keeps its anchor here too. */
	snap_anchor_register(NULL);
	peek_orig = sqlite3_vfs_find(NULL);
	if (!peek_orig) {
		peek_registered = SQLITE_ERROR;
		return;
	}
	snap_anchor_forward_init(&peek_vfs, peek_orig, PEEK_VFS);
	peek_vfs.szOsFile = (int)PEEK_HDR + peek_orig->szOsFile;
	peek_vfs.xOpen = peek_open;
	peek_registered = sqlite3_vfs_register(&peek_vfs, 0);
}

/* ---- peeks -------------------------------------------------------------- */

struct snap_peek {
	sqlite3 *db;             /* in a read transaction until snap_peek_end */
};

/* 1 when journal_mode is wal on db. */
static int peek_is_wal(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int wal = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_text(st, 0))
		wal = strcmp((const char *)sqlite3_column_text(st, 0),
			     "wal") == 0;
	sqlite3_finalize(st);
	return wal;
}

/*
 * Make the source's pager read pages 1..npages inside its transaction: a
 * backup of that many pages into an in-memory database, thrown away.
 */
static int peek_fetch_pages(sqlite3 *src, uint32_t page_size,
			    uint32_t npages, snap_err *err)
{
	char sql[48];
	sqlite3 *dst = NULL;
	sqlite3_backup *b;
	int rc;

	rc = sqlite3_open_v2(":memory:", &dst, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof(sql), "PRAGMA page_size=%u", page_size);
		rc = sqlite3_exec(dst, sql, NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, dst, rc, "peek: an in-memory "
				     "database");
		sqlite3_close(dst);
		return rc;
	}
	b = sqlite3_backup_init(dst, "main", src, "main");
	if (!b) {
		rc = snap_err_sqlite(err, dst, sqlite3_errcode(dst),
				     "peek: copying the first pages");
		sqlite3_close(dst);
		return rc;
	}
	rc = sqlite3_backup_step(b, (int)npages);
	sqlite3_backup_finish(b);
	sqlite3_close(dst);
	if (rc != SQLITE_OK && rc != SQLITE_DONE)
		return snap_err_sqlite(err, NULL, rc, "peek: reading the first "
				       "%u pages", npages);
	return 0;
}

/* End the read transaction and close the connection. */
static void peek_close_db(sqlite3 *db)
{
	if (!db)
		return;
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
}

/* Begin a read transaction on path and record its size and first pages. */
int snap_peek_begin(const char *path, size_t max_head,
		    struct snap_peek **held, struct snap_peek_head *h,
		    snap_err *err)
{
	struct peek_rec rec = { NULL, 0, NULL };
	struct peek_file *mainf = NULL;
	sqlite3_file *f = NULL;
	sqlite3 *db = NULL;
	int64_t pages = 0, page_size = 0;
	uint32_t k = 0, u;
	int rc;

	*held = NULL;
	memset(h, 0, sizeof(*h));
	pthread_once(&peek_once, peek_register);
	if (peek_registered != SQLITE_OK)
		return snap_err_set(err, -ENOSYS, "peek: cannot register the "
				    "%s VFS", PEEK_VFS);
	max_head -= max_head % 65536;
	if (max_head == 0)
		max_head = 65536;
	rec.len = max_head;
	rec.buf = malloc(rec.len);
	rec.amt = calloc(rec.len / PEEK_UNIT, sizeof(*rec.amt));
	if (!rec.buf || !rec.amt) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = snap_livedb_open(path, SNAP_LIVEDB_DAEMON, PEEK_VFS, &db, err);
	if (rc != 0)
		goto out;
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) !=
	    SQLITE_OK || !f || f->pMethods != &peek_io) {
		rc = snap_err_set(err, -ENOSYS, "peek: %s is not opened "
				  "through the %s VFS", path, PEEK_VFS);
		goto out;
	}
	mainf = (struct peek_file *)f;
	mainf->rec = &rec;
	rc = sqlite3_exec(db, "PRAGMA mmap_size=0; BEGIN", NULL, NULL, NULL);
	/* PRAGMA page_count starts the read transaction; COMMIT ends it. */
	if (rc == SQLITE_OK)
		rc = snap_livedb_int(db, "PRAGMA page_count", &pages);
	if (rc == SQLITE_OK)
		rc = snap_livedb_int(db, "PRAGMA page_size", &page_size);
	if (rc != SQLITE_OK) {
		rc = snap_livedb_read_error(db, rc, path, err);
		goto out;
	}
	if (pages < 0 || page_size < PEEK_UNIT || page_size > 65536) {
		rc = snap_err_set(err, -EIO, "%s: page size %lld, %lld pages",
				  path, (long long)page_size,
				  (long long)pages);
		goto out;
	}
	h->page_size = (uint32_t)page_size;
	h->size = (uint64_t)pages * (uint64_t)page_size;
	h->wal = peek_is_wal(db);
	k = (uint32_t)(max_head / (size_t)page_size);
	if ((int64_t)k > pages)
		k = (uint32_t)pages;
	if (k > 0) {
		rc = peek_fetch_pages(db, h->page_size, k, err);
		if (rc != 0)
			goto out;
	}
	mainf->rec = NULL;          /* the file goes with the connection */
	mainf = NULL;
	for (u = 0; u < k * (h->page_size / PEEK_UNIT); u++)
		if (rec.amt[u] != h->page_size)
			break;
	if (u < k * (h->page_size / PEEK_UNIT)) {
		rc = snap_err_set(err, -EPROTO, "peek: SQLite did not read "
				  "page %u of %s through the %s VFS",
				  u / (h->page_size / PEEK_UNIT) + 1, path,
				  PEEK_VFS);
		goto out;
	}
	h->len = (size_t)k * h->page_size;
	h->bytes = rec.buf;
	rec.buf = NULL;
	if (k > 0)
		snap_livedb_page1_normalize(h->bytes, (uint64_t)pages);
	if ((int64_t)k == pages) {
		/* The head is the whole image: nothing to hold. */
		peek_close_db(db);
		db = NULL;
	} else {
		*held = calloc(1, sizeof(**held));
		if (!*held) {
			rc = snap_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		(*held)->db = db;
		db = NULL;
	}
	rc = 0;
out:
	if (mainf)
		mainf->rec = NULL;
	if (rc != 0) {
		free(h->bytes);
		memset(h, 0, sizeof(*h));
	}
	peek_close_db(db);
	free(rec.buf);
	free(rec.amt);
	return rc;
}

/* The peek's connection, inside its read transaction. */
sqlite3 *snap_peek_db(struct snap_peek *p)
{
	return p->db;
}

/* End the transaction, close the connection, free the peek (NULL is fine). */
void snap_peek_end(struct snap_peek *p)
{
	if (!p)
		return;
	peek_close_db(p->db);
	free(p);
}
