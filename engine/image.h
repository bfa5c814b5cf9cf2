/*
 * engine/image.h — reading a snapshot's image out of the store.
 *
 * snap_image gives any byte range of a snapshot's image without
 * materializing it: the page map is decoded once at open, each page is
 * fetched by id and decompressed into the caller's buffer.  The bytes are
 * the image that was captured (sha256 equal to the catalog's) unless the
 * store was damaged since: snap_image_prove() makes every read prove its
 * pages; verification, restores and exports prove the image their way.
 *
 * A snap_image owns its own read-only SQLite connection to the store, so
 * several images can be read by several threads at once; one snap_image
 * must not be used by two threads at the same time.
 *
 * snap_image_sqlite_open() opens a snapshot as a read-only SQLite database
 * through a VFS over the store (no temporary copy), for verification, diff
 * and as the source of a restore.
 */
#ifndef ENGINE_IMAGE_H
#define ENGINE_IMAGE_H

#include <sys/types.h>
#include "store.h"

typedef struct snap_image snap_image;

/*
 * A snapshot's catalog row and decoded page map, loaded once and lent to
 * every reader of that snapshot a caller opens with it (a restore's
 * verification, copy and quick_check).  A snapshot's row and map never
 * change while it exists.  While lent to the store VFS (token != 0) it is
 * linked into the store's list under the store's lock; it must outlive
 * every image and connection opened with it.
 */
typedef struct snap_image_src {
	snap_info info;
	int64_t *map;                 /* page ids by pgno-1 */
	uint64_t token;               /* lent to the VFS as this, 0: not */
	struct snap_image_src *next;  /* the store's list of lent sources */
} snap_image_src;

/* Load snapshot snap_id's row and map into src (checked as snap_image_open
 * does): 0, -ENOENT, -EBADMSG or another negative errno. */
int snap_image_src_load(snap_store *s, int64_t snap_id, snap_image_src *src,
			snap_err *err);
/* Take src back from the VFS and free its map (a zeroed src is fine). */
void snap_image_src_free(snap_store *s, snap_image_src *src);
/* snap_image_open without loading: the image borrows src's row and map. */
int snap_image_open_src(snap_store *s, const snap_image_src *src,
			snap_image **out, snap_err *err);

/* Open snapshot snap_id's image for reading (its page map decoded, its
 * own read-only store connection): 0, -ENOENT or another negative errno. */
int snap_image_open(snap_store *s, int64_t snap_id, snap_image **out,
		    snap_err *err);
/* Close an image (NULL is fine). */
void snap_image_close(snap_image *im);
/* The image's size in bytes, page size and number of pages. */
uint64_t snap_image_size(const snap_image *im);
uint32_t snap_image_page_size(const snap_image *im);
uint32_t snap_image_page_count(const snap_image *im);

/*
 * Read up to len bytes at off.  Returns the number of bytes read (short only
 * at the end of the image, 0 at or past it) or a negative errno (-EIO with
 * a message naming the snapshot and page when a page is missing or cannot
 * be decoded).
 */
ssize_t snap_image_read(snap_image *im, void *buf, size_t len, uint64_t off,
			snap_err *err);

/*
 * Read page `pgno` (1-based) raw into buf (page_size bytes) and, when
 * sha_out is not NULL, give the stored hash of that page.
 */
int snap_image_read_page(snap_image *im, uint32_t pgno, void *buf,
			 uint8_t sha_out[32], snap_err *err);
/*
 * Prove every page a read returns against the SHA-256 the store records
 * for it (on), as verification does: a page that does not match fails
 * the read with -EIO naming it, never gives wrong bytes.  For readers
 * that nothing else proves (a snapshot read through the mount: cp, rsync,
 * sqlite3 in place, a copy onto current.db).  A read-ahead proves the
 * pages it decodes on its own thread.  Off by default: a restore proves
 * its source by the hash pass, an export by the image's SHA-256.
 */
void snap_image_prove(snap_image *im, int on);
/* Keep the read transaction of reads open across calls, renewed every
 * `reads` reads (0: one per call, the default): a caller reading page
 * after page pays one lock instead of one per page. */
void snap_image_hold(snap_image *im, unsigned reads);
/* Page id of page pgno in the store (for verification reports). */
int64_t snap_image_page_id(const snap_image *im, uint32_t pgno);

/* Write the image to `path` (a new temporary file of mode 0600, fsync,
 * rename: a symlink at path is replaced, never followed). */
/* 0 when an export may write path: it does not exist, or is a regular
 * file (replaced).  A symbolic link, a device (/dev/stdout, /dev/null), a
 * directory or a pipe: -EEXIST with a sentence, never replaced: the
 * export renames a new file over path, and as root that would replace
 * /dev/null itself.  Nor a regular file that is the live database of a
 * store ("PATH.snapfs/store.db" exists: a rename behind SQLite's and its
 * daemon's back is no restore) or a store itself (application_id 'SNAP'):
 * -EEXIST too. */
int snap_export_target_check(const char *path, snap_err *err);
/* The mkstemp template of an export's temporary file beside path:
 * "DIR/.BASE.TAG-XXXXXX", a dot-name, as rsync makes its own: in a snapfs
 * mount's snapshots/ a dot-name is a tool's temporary file whose rename
 * onto path imports it (a plain name would be imported at its close, under
 * its own name), and in its root a staging file whose rename onto
 * current.db restores it.  -ENAMETOOLONG when it does not fit in cap. */
int snap_export_tmp_name(const char *path, const char *tag, char *out,
			 size_t cap);
/* Begin an export to path: the target checked (snap_export_target_check),
 * then a new file of our own beside it (snap_export_tmp_name with tag,
 * into tmp of cap bytes; mkostemp: O_EXCL, so no link is followed, mode
 * 0600, never wider than a private database, open read-write).  Its
 * descriptor, or a negative errno with err set. */
int snap_export_open(const char *path, const char *tag, char *tmp,
		     size_t cap, snap_err *err);
/* End it: when rc is 0, fsync fd, rename tmp over path (a link at path is
 * replaced, not followed) and sync path's directory; fd is closed either
 * way, and tmp unlinked unless it was renamed.  rc, or the first failure
 * of these (err set). */
int snap_export_close(int fd, const char *tmp, const char *path, int rc,
		      snap_err *err);
int snap_image_export(snap_store *s, int64_t snap_id, const char *path,
		      snap_err *err);
/* The same, calling progress(pctx, pages written, pages in the image)
 * every 256 pages and at the last (progress may be NULL).  Pages are
 * decoded on worker threads (pagepipe.h); the image's SHA-256 is checked
 * before the file is renamed into place. */
int snap_image_export_progress(snap_store *s, int64_t snap_id,
			       const char *path, snap_progress_fn progress,
			       void *pctx, snap_err *err);

/*
 * Open snapshot snap_id as a read-only SQLite connection (immutable) over
 * the store.  Close with sqlite3_close().
 */
int snap_image_sqlite_open(snap_store *s, int64_t snap_id, sqlite3 **db,
			   snap_err *err);
/* The same, every page read proven against its stored hash (a damaged
 * one is an I/O error, snap_image_sqlite_error says which): for readers
 * that no hash pass proves, such as diff and export --sql. */
int snap_image_sqlite_open_proven(snap_store *s, int64_t snap_id,
				  sqlite3 **db, snap_err *err);
/* The same over a loaded source, lent to the VFS (nothing is loaded
 * again); src must outlive the connection. */
int snap_image_sqlite_open_src(snap_store *s, snap_image_src *src,
			       sqlite3 **db, snap_err *err);

/*
 * Memory of the connections that read an image.  A snap_image's own store
 * connection keeps SNAP_IMAGE_STORE_CACHE_KIB of store pages (it reads
 * each stored page about once, in page order).  A connection of
 * snap_image_sqlite_open* caches 16 MB of the image's pages (every miss
 * costs a decompression: diff's queries come back to pages); one that
 * reads each page once or twice whatever its cache (a restore's copy
 * source, quick_check: measured, the pages read are the same from 100 KB
 * to 16 MB) is made to keep SNAP_IMAGE_SCAN_CACHE_KIB instead with
 * snap_image_sqlite_scan.  The read-ahead of a snap_image (image.c) has a
 * store connection of its own that keeps as much (measured: 128 KB made a
 * whole image's read a third slower).
 */
#define SNAP_IMAGE_STORE_CACHE_KIB "2048"
#define SNAP_IMAGE_SCAN_CACHE_KIB "256"
void snap_image_sqlite_scan(sqlite3 *db);

/*
 * The first read of db's snapshot that failed (a page missing from the
 * store, an I/O error, out of memory): its errno and message in err, or 0
 * when every read succeeded.  SQLite passes only a result code on, and
 * integrity_check reports an unreadable page as a problem of the database
 * ("failed to get page N"); this tells what happened underneath.
 */
int snap_image_sqlite_error(sqlite3 *db, snap_err *err);

/* Internal (diff.c): register the store's read-only VFS if needed and
 * give its name, for URIs
 * "file:snapfs-snapshot-<id>?immutable=1&vfs=<name>" (with
 * "&snapfs_prove=1": pages proven, as snap_image_sqlite_open_proven). */
int snap_image_vfs_name(snap_store *s, const char **name, snap_err *err);

#endif /* ENGINE_IMAGE_H */
