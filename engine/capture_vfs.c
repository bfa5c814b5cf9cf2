/*
 * engine/capture_vfs.c — the write-capturing VFS: the file a backup
 * writes into is a capture (capture.c), not a file.
 *
 * One VFS, "snapfs-capture", is registered once per process, the first
 * time a destination is opened.  The file name given to sqlite3_open_v2
 * carries the address of the snap_capture that receives the pages
 * ("snapfs-capture:<hex>"); only this file constructs such names.  Any
 * other file SQLite might want (journal, temp) is refused: the destination
 * runs with journal_mode=OFF and temp_store=MEMORY, so a request for one
 * would be a bug we want to see, not hide.  Writes go to
 * snap_capture_write; reads serve page 1 as SQLite wrote it (it checks
 * the header) and nothing else.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "capture_vfs.h"
#include "store_int.h"
#include "vfs.h"

typedef struct capture_file {
	sqlite3_file base;
	snap_capture *c;
} capture_file;

/* An sqlite rc for a failure code, so the backup reports disk-full as such. */
static int cap_rc(int code)
{
	return code == -ENOSPC ? SQLITE_FULL : SQLITE_IOERR_WRITE;
}

/* Nothing to close: the capture belongs to the caller. */
static int cap_close(sqlite3_file *f)
{
	(void)f;
	return SQLITE_OK;
}

/* Reads see page 1 once SQLite wrote it (it checks the header); the rest
 * of the file reads as not there yet, which is what SQLite expects of a new
 * destination.  A read of any other written page is a bug we report. */
static int cap_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	snap_capture *c = ((capture_file *)f)->c;
	int have = 0;

	if (c->sqlite_page1 && off < c->page_size) {
		have = (int)(c->page_size - off) < amt ?
		       (int)(c->page_size - off) : amt;
		memcpy(buf, c->page1 + off, (size_t)have);
	}
	if (have == amt)
		return SQLITE_OK;
	if (have == 0 && (uint64_t)off < c->file_end) {
		snap_capture_fail(c, -EIO, "capture: SQLite read back page "
				  "at offset %lld, which a capture cannot "
				  "serve", (long long)off);
		return SQLITE_IOERR_READ;
	}
	memset((char *)buf + have, 0, (size_t)(amt - have));
	return SQLITE_IOERR_SHORT_READ;
}

/* A page from the backup: into the capture, tracking the file's size. */
static int cap_write(sqlite3_file *f, const void *buf, int amt,
		     sqlite3_int64 off)
{
	snap_capture *c = ((capture_file *)f)->c;
	int rc = snap_capture_write(c, buf, amt, off);

	if (rc)
		return cap_rc(rc);
	if (off == 0)
		c->sqlite_page1 = 1;
	if ((uint64_t)(off + amt) > c->file_end)
		c->file_end = (uint64_t)(off + amt);
	return SQLITE_OK;
}


/* SQLite shrinks the destination to the source's size: fewer pages, and
 * the streamed image hash no longer holds. */
static int cap_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	snap_capture *c = ((capture_file *)f)->c;

	if ((uint64_t)size < c->file_end)
		c->file_end = (uint64_t)size;
	if (c->page_size && size % c->page_size == 0 &&
	    (uint64_t)size / c->page_size < c->npages) {
		c->npages = (uint32_t)(size / c->page_size);
		c->rehash = 1;
	}
	return SQLITE_OK;
}

/* The file's size as SQLite wrote it. */
static int cap_size(sqlite3_file *f, sqlite3_int64 *size)
{
	snap_capture *c = ((capture_file *)f)->c;

	*size = (sqlite3_int64)c->file_end;
	return SQLITE_OK;
}

/* Appends are safe, writes sequential, no torn sectors: a capture has no
 * disk under it. */
static int cap_devchar(sqlite3_file *f)
{
	(void)f;
	return SQLITE_IOCAP_SAFE_APPEND | SQLITE_IOCAP_SEQUENTIAL |
	       SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static const sqlite3_io_methods cap_methods = {
	.iVersion = 1,
	.xClose = cap_close,
	.xRead = cap_read,
	.xWrite = cap_write,
	.xTruncate = cap_truncate,
	.xSync = snap_vfs_sync,
	.xFileSize = cap_size,
	.xLock = snap_vfs_lock,
	.xUnlock = snap_vfs_lock,
	.xCheckReservedLock = snap_vfs_check_reserved,
	.xFileControl = snap_vfs_fcntl,
	.xSectorSize = snap_vfs_sector,
	.xDeviceCharacteristics = cap_devchar,
};

#define CAP_PREFIX "snapfs-capture:"

/* Open "snapfs-capture:<address>" as that capture; anything else (a
 * journal, a temp file) is refused. */
static int capvfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		       int flags, int *outflags)
{
	capture_file *cf = (capture_file *)f;
	void *p = NULL;

	(void)vfs;
	memset(cf, 0, sizeof(*cf));
	if (!(flags & SQLITE_OPEN_MAIN_DB) || !name ||
	    strncmp(name, CAP_PREFIX, strlen(CAP_PREFIX)) != 0 ||
	    sscanf(name + strlen(CAP_PREFIX), "%p", &p) != 1 || !p)
		return SQLITE_CANTOPEN;
	cf->c = p;
	cf->base.pMethods = &cap_methods;
	if (outflags)
		*outflags = flags;
	return SQLITE_OK;
}

/* No side file exists, so deleting one succeeds. */
static int capvfs_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	(void)vfs;
	(void)name;
	(void)sync;
	return SQLITE_OK;
}

/* The VFS: what it shares with image.c's is vfs.c's. */
static sqlite3_vfs capvfs = {
	.iVersion = 1,
	.szOsFile = sizeof(capture_file),
	.mxPathname = 512,
	.zName = "snapfs-capture",
	.xOpen = capvfs_open,
	.xDelete = capvfs_delete,
	.xAccess = snap_vfs_access,
	.xFullPathname = snap_vfs_fullpath,
	.xRandomness = snap_vfs_random,
	.xSleep = snap_vfs_sleep,
	.xCurrentTime = snap_vfs_time,
	.xGetLastError = snap_vfs_lasterr,
};

static pthread_once_t capvfs_once = PTHREAD_ONCE_INIT;
static int capvfs_rc;

/* Register the VFS (once: pthread_once), keeping the result. */
static void capvfs_register(void)
{
	capvfs_rc = sqlite3_vfs_register(&capvfs, 0);
}

int snap_capture_open_db(snap_capture *c, sqlite3 **dst, snap_err *err)
{
	char name[64];
	int rc;

	*dst = NULL;
	pthread_once(&capvfs_once, capvfs_register);
	if (capvfs_rc != SQLITE_OK)
		return snap_err_sqlite(err, NULL, capvfs_rc, "cannot register "
				       "the capture VFS");
	snprintf(name, sizeof(name), CAP_PREFIX "%p", (void *)c);
	rc = sqlite3_open_v2(name, dst, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     "snapfs-capture");
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, *dst, rc, "cannot open a capture");
		sqlite3_close(*dst);
		*dst = NULL;
		return rc;
	}
	/* One write per page, ascending, no journal (engine/PITFALLS.md 8); a
	 * small cache so pages flow to the store instead of piling up in
	 * memory. */
	rc = snap_store_exec(*dst, "PRAGMA journal_mode=OFF;"
			     "PRAGMA locking_mode=EXCLUSIVE;"
			     "PRAGMA synchronous=OFF;"
			     "PRAGMA temp_store=MEMORY;"
			     "PRAGMA cache_size=-2048;", err);
	if (rc) {
		sqlite3_close(*dst);
		*dst = NULL;
	}
	return rc;
}
