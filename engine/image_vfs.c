/*
 * engine/image_vfs.c — the read-only VFS that lets SQLite open a snapshot
 * in place (image.h: snap_image_sqlite_open).
 *
 * The VFS ("snapfs-ro-<store address>", one per store) opens names of the
 * form "snapfs-snapshot-<id>" as an iVersion-1 file over a snap_image.  It
 * is always used with immutable=1: SQLite then never looks for a journal or
 * WAL and takes no locks (engine/PITFALLS.md 13-14).  A name with the URI
 * parameter "snapfs_src=<token>" is opened over the snap_image_src lent
 * under that token (snap_image_sqlite_open_src): its row and page map are
 * borrowed, not loaded again.  A token not lent (any more) is refused.
 * With "snapfs_prove=1" every page read is proven against its stored hash
 * (snap_image_prove): for the readers nothing else proves (diff, export
 * --sql, a table restore's ATTACH); a restore's copy and verify's checks
 * go without, their hash pass proves the image.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "store_int.h"
#include "vfs.h"

typedef struct ro_file {
	sqlite3_file base;
	snap_image *im;
	snap_err read_err;      /* the first read that failed, code 0 if none */
} ro_file;

#define RO_PREFIX "snapfs-snapshot-"

/* Close the image under the file. */
static int ro_close(sqlite3_file *f)
{
	snap_image_close(((ro_file *)f)->im);
	((ro_file *)f)->im = NULL;
	return SQLITE_OK;
}

/* A failed read is kept (snap_image_sqlite_error): SQLite only passes an
 * rc on, and integrity_check turns some into "failed to get page N". */
static int ro_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	ro_file *rf = (ro_file *)f;
	snap_err e;
	ssize_t n;

	snap_err_clear(&e);
	n = snap_image_read(rf->im, buf, (size_t)amt, (uint64_t)off, &e);
	if (n < 0 && !rf->read_err.code)
		snap_err_set(&rf->read_err, (int)n, "%s", e.msg[0] ? e.msg :
			     strerror((int)-n));
	if (n < 0)
		return n == -ENOMEM ? SQLITE_IOERR_NOMEM : SQLITE_IOERR_READ;
	if (n < amt) {
		/* SQLite requires the rest zeroed (engine/PITFALLS.md 13). */
		memset((char *)buf + n, 0, (size_t)(amt - n));
		return SQLITE_IOERR_SHORT_READ;
	}
	return SQLITE_OK;
}

/* A snapshot never changes: writes, truncation and deletes are refused. */
static int ro_write(sqlite3_file *f, const void *b, int a, sqlite3_int64 o)
{
	(void)f; (void)b; (void)a; (void)o;
	return SQLITE_READONLY;
}

/* (See ro_write.) */
static int ro_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	(void)f; (void)size;
	return SQLITE_READONLY;
}

/* The image's size. */
static int ro_size(sqlite3_file *f, sqlite3_int64 *size)
{
	*size = (sqlite3_int64)snap_image_size(((ro_file *)f)->im);
	return SQLITE_OK;
}

/* Immutable: SQLite takes no locks and looks for no journal. */
static int ro_devchar(sqlite3_file *f)
{
	(void)f;
	return SQLITE_IOCAP_IMMUTABLE;
}

static const sqlite3_io_methods ro_methods = {
	.iVersion = 1,
	.xClose = ro_close,
	.xRead = ro_read,
	.xWrite = ro_write,
	.xTruncate = ro_truncate,
	.xSync = snap_vfs_sync,
	.xFileSize = ro_size,
	.xLock = snap_vfs_lock,
	.xUnlock = snap_vfs_lock,
	.xCheckReservedLock = snap_vfs_check_reserved,
	.xFileControl = snap_vfs_fcntl,
	.xSectorSize = snap_vfs_sector,
	.xDeviceCharacteristics = ro_devchar,
};

/* The source lent under the token in name's "snapfs_src" parameter:
 * NULL in *src when there is no such parameter; -1 when there is one but
 * nothing is lent under it. */
static int lent_src(snap_store *s, const char *name,
		    const snap_image_src **src)
{
	const char *t = sqlite3_uri_parameter(name, "snapfs_src");
	const snap_image_src *p;
	uint64_t token;

	*src = NULL;
	if (!t)
		return 0;
	token = strtoull(t, NULL, 10);
	snap_store_lock(s);
	for (p = s->lent; p && p->token != token; p = p->next)
		;
	snap_store_unlock(s);
	*src = p;
	return p ? 0 : -1;
}

/* Open "snapfs-snapshot-<id>" as an image of this store (pAppData), over
 * the lent source its URI names if any; anything else is refused. */
static int rovfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		      int flags, int *outflags)
{
	ro_file *rf = (ro_file *)f;
	const snap_image_src *src = NULL;
	long long id;
	int rc;

	memset(rf, 0, sizeof(*rf));
	if (!(flags & SQLITE_OPEN_MAIN_DB) || !name ||
	    strncmp(name, RO_PREFIX, strlen(RO_PREFIX)) != 0 ||
	    sscanf(name + strlen(RO_PREFIX), "%lld", &id) != 1 ||
	    lent_src(vfs->pAppData, name, &src) || (src && src->info.id != id))
		return SQLITE_CANTOPEN;
	rc = src ? snap_image_open_src(vfs->pAppData, src, &rf->im, NULL) :
		   snap_image_open(vfs->pAppData, id, &rf->im, NULL);
	if (rc)
		return SQLITE_CANTOPEN;
	snap_image_hold(rf->im, 4096);
	if (sqlite3_uri_boolean(name, "snapfs_prove", 0))
		snap_image_prove(rf->im, 1);
	rf->base.pMethods = &ro_methods;
	if (outflags)
		*outflags = SQLITE_OPEN_READONLY | SQLITE_OPEN_MAIN_DB;
	return SQLITE_OK;
}

/* (See ro_write.) */
static int rovfs_delete(sqlite3_vfs *vfs, const char *name, int sync)
{
	(void)vfs; (void)name; (void)sync;
	return SQLITE_READONLY;
}

/* Register this store's VFS once. */
static int rovfs_get(snap_store *s, snap_err *err)
{
	sqlite3_vfs *v;
	int rc = 0;

	snap_store_lock(s);
	if (s->ro_vfs)
		goto out;
	v = calloc(1, sizeof(*v));
	if (!v) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	snprintf(s->vfs_name, sizeof(s->vfs_name), "snapfs-ro-%p", (void *)s);
	v->iVersion = 1;
	v->szOsFile = sizeof(ro_file);
	v->mxPathname = 512;
	v->zName = s->vfs_name;
	v->pAppData = s;
	v->xOpen = rovfs_open;
	v->xDelete = rovfs_delete;
	v->xAccess = snap_vfs_access;
	v->xFullPathname = snap_vfs_fullpath;
	v->xRandomness = snap_vfs_random;
	v->xSleep = snap_vfs_sleep;
	v->xCurrentTime = snap_vfs_time;
	v->xGetLastError = snap_vfs_lasterr;
	rc = sqlite3_vfs_register(v, 0);
	if (rc != SQLITE_OK) {
		free(v);
		rc = snap_err_sqlite(err, NULL, rc, "cannot register the "
				     "store VFS");
		goto out;
	}
	s->ro_vfs = v;
out:
	snap_store_unlock(s);
	return rc;
}

int snap_image_sqlite_error(sqlite3 *db, snap_err *err)
{
	sqlite3_file *f = NULL;
	ro_file *rf;

	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) !=
	    SQLITE_OK || !f || f->pMethods != &ro_methods)
		return 0;
	rf = (ro_file *)f;
	if (!rf->read_err.code)
		return 0;
	return snap_err_set(err, rf->read_err.code, "%s", rf->read_err.msg);
}

/* The store VFS's name, registering it first: for ATTACHing a snapshot as
 * "file:snapfs-snapshot-<id>?immutable=1&vfs=<name>" (diff.c). */
int snap_image_vfs_name(snap_store *s, const char **name, snap_err *err)
{
	int rc = rovfs_get(s, err);

	*name = rc ? NULL : s->vfs_name;
	return rc;
}

/* Open "snapfs-snapshot-<id>?immutable=1<extra>" through the store VFS,
 * named `name` in messages. */
static int image_sqlite_open(snap_store *s, int64_t snap_id, const char *name,
			     const char *extra, sqlite3 **db, snap_err *err)
{
	char uri[160];
	int rc = rovfs_get(s, err);

	if (rc)
		return rc;
	snprintf(uri, sizeof(uri), "file:" RO_PREFIX "%lld?immutable=1%s",
		 (long long)snap_id, extra);
	rc = sqlite3_open_v2(uri, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
			     SQLITE_OPEN_NOMUTEX, s->vfs_name);
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, *db, rc, "cannot open snapshot %s",
				     name);
		sqlite3_close(*db);
		*db = NULL;
		return rc;
	}
	sqlite3_extended_result_codes(*db, 1);
	/* Every page read here costs a decompression: cache more than the
	 * default 2 MB, within the memory budget of snapctl (64 MB). */
	sqlite3_exec(*db, "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-16384",
		     NULL, NULL, NULL);
	return 0;
}

/* A connection that reads each page of its image once or twice: a small
 * page cache (image.h). */
void snap_image_sqlite_scan(sqlite3 *db)
{
	sqlite3_exec(db, "PRAGMA cache_size=-" SNAP_IMAGE_SCAN_CACHE_KIB, NULL,
		     NULL, NULL);
}

int snap_image_sqlite_open(snap_store *s, int64_t snap_id, sqlite3 **db,
			   snap_err *err)
{
	snap_info si;
	int rc;

	*db = NULL;
	rc = snap_store_get(s, snap_id, &si, err);
	if (rc)
		return rc;
	return image_sqlite_open(s, snap_id, si.name, "", db, err);
}

int snap_image_sqlite_open_proven(snap_store *s, int64_t snap_id,
				  sqlite3 **db, snap_err *err)
{
	snap_info si;
	int rc;

	*db = NULL;
	rc = snap_store_get(s, snap_id, &si, err);
	if (rc)
		return rc;
	return image_sqlite_open(s, snap_id, si.name, "&snapfs_prove=1", db,
				 err);
}

int snap_image_sqlite_open_src(snap_store *s, snap_image_src *src,
			       sqlite3 **db, snap_err *err)
{
	char extra[48];

	*db = NULL;
	snap_store_lock(s);
	if (!src->token) {
		src->token = ++s->lent_next;
		src->next = s->lent;
		s->lent = src;
	}
	snap_store_unlock(s);
	snprintf(extra, sizeof(extra), "&snapfs_src=%llu",
		 (unsigned long long)src->token);
	return image_sqlite_open(s, src->info.id, src->info.name, extra, db,
				 err);
}
