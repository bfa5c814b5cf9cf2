/*
 * engine/image.c — reading a snapshot's image from the store.
 *
 * A snap_image decodes the page map once and keeps one prepared statement
 * on its own read-only store connection; a read fetches each page by id and
 * decompresses it straight into the caller's buffer (whole pages) or into a
 * one-page scratch buffer (partial pages).  The last decoded page is kept,
 * so SQLite's small reads of one page (header, then the rest) cost one
 * decompression.
 *
 * A reader that reads page after page gets them from a read-ahead
 * (readahead.h): a thread of the image's own, on a second image over the
 * same row and map (its own connection and codec), decodes the pages just
 * after the reader's.  An export (image_export.c) reads the whole image
 * another way, through the page pipeline.
 *
 * Each read runs in its own short read transaction of the store (WAL: never
 * blocks writers).  Pages of a snapshot never change while it exists; a
 * snapshot deleted while an image is open (by any process: rm in the
 * mount, snapctl delete, retention) makes later reads fail with -EIO: each
 * read transaction first finds the snapshot's catalog row
 * (image_txn_begin), because a page id the delete freed may be given to
 * another snapshot's page, which would read as wrong bytes.
 *
 * A snap_image_src (image.h) is a snapshot's row and map loaded once and
 * lent: an image opened over it borrows both instead of loading them.
 *
 * The read-only VFS that opens a snapshot as a SQLite database is in
 * image_vfs.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "image.h"
#include "image_int.h"
#include "store_int.h"

/*
 * Open the read transaction a read runs in, unless one is open.  Its first
 * read is the snapshot's catalog row: while the row is there, every page
 * its map names is the snapshot's for the whole transaction (a delete, by
 * any process, removes the row and the pages only it used in one
 * transaction, and a page id freed so may be given to another snapshot's
 * page: read by id after the delete, it would be another image's bytes,
 * matching its stored hash).
 */
int image_txn_begin(snap_image *im, snap_err *err)
{
	int rc;

	if (im->in_txn)
		return 0;
	sqlite3_step(im->begin);
	sqlite3_reset(im->begin);
	im->in_txn = 1;
	im->txn_reads = 0;
	sqlite3_bind_int64(im->alive, 1, im->info.id);
	rc = sqlite3_step(im->alive);
	sqlite3_reset(im->alive);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		rc = snap_err_set(err, -EIO, "snapshot %s was deleted while "
				  "it was being read", im->info.name);
	else
		rc = snap_err_sqlite(err, im->db, rc, "snapshot %s: cannot "
				     "read its catalog row", im->info.name);
	image_txn_end(im, 1);
	return rc;
}

/* End it, unless held; a held one ends every `hold` reads so the store's
 * WAL can still be checkpointed behind a long reader. */
void image_txn_end(snap_image *im, int force)
{
	if (!im->in_txn)
		return;
	if (!force && im->hold && ++im->txn_reads < im->hold)
		return;
	sqlite3_step(im->commit);
	sqlite3_reset(im->commit);
	im->in_txn = 0;
}

/* Check a loaded row and its map's length (n entries). */
static int image_info_check(const snap_info *si, uint32_t n, snap_err *err)
{
	int rc = snap_store_info_check(si, err);

	if (!rc && n != si->page_count)
		rc = snap_err_set(err, -EBADMSG, "snapshot %s: page map has %u "
				  "entries, catalog says %u", si->name, n,
				  si->page_count);
	return rc;
}

int snap_image_src_load(snap_store *s, int64_t snap_id, snap_image_src *src,
			snap_err *err)
{
	sqlite3 *db = NULL;
	uint32_t n = 0;
	int rc;

	memset(src, 0, sizeof(*src));
	rc = snap_store_connect(s, 1, &db, err);
	if (!rc)
		rc = snap_store_get_db(db, snap_id, &src->info, err);
	if (!rc)
		rc = snap_store_info_check(&src->info, err);
	if (!rc)
		rc = snap_store_load_map(db, snap_id, &n, &src->map, err);
	if (!rc)
		rc = image_info_check(&src->info, n, err);
	sqlite3_close(db);
	if (rc) {
		free(src->map);
		src->map = NULL;
	}
	return rc;
}

void snap_image_src_free(snap_store *s, snap_image_src *src)
{
	snap_image_src **p;

	if (src->token) {
		snap_store_lock(s);
		for (p = &s->lent; *p; p = &(*p)->next)
			if (*p == src) {
				*p = src->next;
				break;
			}
		snap_store_unlock(s);
		src->token = 0;
	}
	free(src->map);
	src->map = NULL;
}

/* The rest of an open, once im->info and im->map are set: statements on
 * the image's own connection, the codec, the scratch page. */
static int image_setup(snap_image *im, snap_err *err)
{
	snap_store *s = im->s;
	int rc = 0;

	if (sqlite3_prepare_v2(im->db, "SELECT zdata FROM page_data WHERE "
			       "id=?", -1, &im->get, NULL) ||
	    sqlite3_prepare_v2(im->db, "SELECT hash FROM pages WHERE id=?",
			       -1, &im->hash, NULL) ||
	    sqlite3_prepare_v2(im->db, "SELECT d.zdata, p.hash FROM "
			       "page_data d, pages p WHERE d.id=?1 AND "
			       "p.id=?1", -1, &im->getp, NULL) ||
	    sqlite3_prepare_v2(im->db, "SELECT 1 FROM snapshots WHERE id=?",
			       -1, &im->alive, NULL) ||
	    sqlite3_prepare_v2(im->db, "BEGIN", -1, &im->begin, NULL) ||
	    sqlite3_prepare_v2(im->db, "COMMIT", -1, &im->commit, NULL))
		rc = snap_err_sqlite(err, im->db, sqlite3_errcode(im->db),
				     "store %s", s->dir);
	if (!rc && snap_codec_init(&im->codec))
		rc = snap_err_set(err, -ENOMEM, "out of memory for zstd");
	if (!rc)
		rc = snap_store_dicts_load(im->db, &im->dicts, 0, NULL, NULL,
					   err);
	if (!rc)
		snap_codec_use(&im->codec, &im->dicts);
	if (!rc) {
		im->scratch = malloc(im->info.page_size ? im->info.page_size
				     : 1);
		if (!im->scratch)
			rc = snap_err_set(err, -ENOMEM, "out of memory");
	}
	return rc;
}

static int image_open(snap_store *s, int64_t snap_id,
		      const snap_image_src *src, int ra, snap_image **out,
		      snap_err *err);
static int image_page(snap_image *im, uint32_t pgno, void *buf,
		      snap_err *err);

/* The read-ahead's window: 1 MB of pages (readahead.c keeps at least 8). */
#define IMAGE_RA_BYTES (1024u << 10)
/* Reads of the read-ahead's image per read transaction. */
#define IMAGE_RA_HOLD 256u

/* Before the read-ahead's thread starts, on the reader's thread (which
 * may hold the store's lock, that opening takes): the read-ahead's own
 * image over im's row and map. */
static int image_ra_prepare(void *ctx)
{
	snap_image *im = ctx;
	snap_image_src src = { .info = im->info, .map = im->map };

	if (image_open(im->s, im->info.id, &src, 0, &im->ahead, NULL))
		return -1;
	im->ahead->prove = im->prove;
	snap_image_hold(im->ahead, IMAGE_RA_HOLD);
	return 0;
}

/* After the read-ahead's thread ended, on the reader's thread: its image
 * closes. */
static void image_ra_release(void *ctx)
{
	snap_image *im = ctx;

	snap_image_close(im->ahead);
	im->ahead = NULL;
}

/* The read-ahead's fetch (readahead.h), on its thread: page pgno through
 * its own image; pgno 0: end that image's read transaction. */
static int image_ra_fetch(void *ctx, uint32_t pgno, void *buf)
{
	snap_image *im = ctx;
	int rc;

	if (!pgno) {
		image_txn_end(im->ahead, 1);
		return 0;
	}
	rc = image_txn_begin(im->ahead, NULL);
	if (!rc)
		rc = image_page(im->ahead, pgno, buf, NULL);
	image_txn_end(im->ahead, 0);
	return rc;
}

/* Open an image of snapshot snap_id, over src when it is not NULL, with a
 * read-ahead when ra. */
static int image_open(snap_store *s, int64_t snap_id,
		      const snap_image_src *src, int ra, snap_image **out,
		      snap_err *err)
{
	snap_image *im = calloc(1, sizeof(*im));
	uint32_t n = 0;
	int rc;

	*out = NULL;
	if (!im)
		return snap_err_set(err, -ENOMEM, "out of memory");
	im->s = s;
	im->owns_map = !src;
	rc = snap_store_connect(s, 1, &im->db, err);
	/* An image reads each stored page about once, in page order: the
	 * store's pages along one path of its b-trees are what it reuses
	 * (2 MB, not the connection's 8 MB: a restore has two images open
	 * beside a capture, within snapctl's 64 MB). */
	if (!rc)
		rc = snap_store_exec(im->db, "PRAGMA cache_size=-"
				     SNAP_IMAGE_STORE_CACHE_KIB, err);
	if (!rc && src) {
		im->info = src->info;
		im->map = src->map;
	} else if (!rc) {
		rc = snap_store_get_db(im->db, snap_id, &im->info, err);
		if (!rc)
			rc = snap_store_info_check(&im->info, err);
		if (!rc)
			rc = snap_store_load_map(im->db, snap_id, &n, &im->map,
						 err);
		if (!rc)
			rc = image_info_check(&im->info, n, err);
	}
	if (!rc)
		rc = image_setup(im, err);
	if (!rc && ra) {
		im->ra = snap_readahead_new(im->info.page_size,
					    im->info.page_count,
					    IMAGE_RA_BYTES / im->info.page_size,
					    image_ra_prepare, image_ra_fetch,
					    image_ra_release, im);
		if (!im->ra)
			rc = snap_err_set(err, -ENOMEM, "out of memory");
	}
	if (rc) {
		snap_image_close(im);
		return rc;
	}
	*out = im;
	return 0;
}

int snap_image_open(snap_store *s, int64_t snap_id, snap_image **out,
		    snap_err *err)
{
	return image_open(s, snap_id, NULL, 1, out, err);
}

int snap_image_open_src(snap_store *s, const snap_image_src *src,
			snap_image **out, snap_err *err)
{
	return image_open(s, src->info.id, src, 1, out, err);
}

void snap_image_close(snap_image *im)
{
	if (!im)
		return;
	/* The read-ahead's thread ends, then its image closes. */
	snap_readahead_free(im->ra);
	image_txn_end(im, 1);
	sqlite3_finalize(im->begin);
	sqlite3_finalize(im->commit);
	sqlite3_finalize(im->get);
	sqlite3_finalize(im->getp);
	sqlite3_finalize(im->alive);
	sqlite3_finalize(im->hash);
	sqlite3_close(im->db);
	snap_codec_free(&im->codec);
	snap_dicts_free(&im->dicts);
	if (im->owns_map)
		free(im->map);
	free(im->scratch);
	free(im);
}

uint64_t snap_image_size(const snap_image *im) { return im->info.image_size; }
uint32_t snap_image_page_size(const snap_image *im)
{
	return im->info.page_size;
}
uint32_t snap_image_page_count(const snap_image *im)
{
	return im->info.page_count;
}

int64_t snap_image_page_id(const snap_image *im, uint32_t pgno)
{
	if (pgno < 1 || pgno > im->info.page_count)
		return 0;
	return im->map[pgno - 1];
}

/* Check that the page just decoded into buf has the SHA-256 the store
 * records for it (column 1 of im->getp). */
static int image_page_proven(snap_image *im, uint32_t pgno, int64_t id,
			     const void *buf, snap_err *err)
{
	uint8_t sha[32];

	if (sqlite3_column_bytes(im->getp, 1) != 32)
		return snap_err_set(err, -EIO, "snapshot %s: page %u (stored "
				    "page %" PRId64 ") has no stored hash",
				    im->info.name, pgno, id);
	if (snap_sha256(buf, im->info.page_size, sha))
		return snap_err_set(err, -ENOMEM, "out of memory for "
				    "SHA-256");
	if (memcmp(sha, sqlite3_column_blob(im->getp, 1), 32))
		return snap_err_set(err, -EIO, "snapshot %s: page %u (stored "
				    "page %" PRId64 ") does not match its "
				    "hash", im->info.name, pgno, id);
	return 0;
}

/* Decode page pgno into buf (proven when im->prove), or take it from the
 * read-ahead (which proved it the same way). */
static int image_page(snap_image *im, uint32_t pgno, void *buf, snap_err *err)
{
	int64_t id = im->map[pgno - 1];
	sqlite3_stmt *get = im->prove ? im->getp : im->get;
	int rc;

	if (im->ra && snap_readahead_take(im->ra, pgno, buf))
		return 0;

	sqlite3_bind_int64(get, 1, id);
	rc = sqlite3_step(get);
	if (rc == SQLITE_ROW) {
		rc = snap_codec_unpack(&im->codec,
				       sqlite3_column_blob(get, 0),
				       (size_t)sqlite3_column_bytes(get, 0),
				       buf, im->info.page_size);
		if (rc)
			rc = snap_err_set(err, -EIO, "snapshot %s: page %u "
					  "(stored page %" PRId64 ") %s",
					  im->info.name, pgno, id,
					  snap_codec_unpack_why(rc));
		else if (im->prove)
			rc = image_page_proven(im, pgno, id, buf, err);
	} else if (rc == SQLITE_DONE) {
		rc = snap_err_set(err, -EIO, "snapshot %s: page %u (stored page "
				  "%" PRId64 ") is missing from the store",
				  im->info.name, pgno, id);
	} else {
		rc = snap_err_sqlite(err, im->db, rc, "snapshot %s: cannot "
				     "read page %u", im->info.name, pgno);
	}
	sqlite3_reset(get);
	return rc;
}

int snap_image_read_page(snap_image *im, uint32_t pgno, void *buf,
			 uint8_t sha_out[32], snap_err *err)
{
	int rc;

	if (pgno < 1 || pgno > im->info.page_count)
		return snap_err_set(err, -EINVAL, "snapshot %s has no page %u",
				    im->info.name, pgno);
	/* The page and its hash in one read transaction (held across
	 * calls after snap_image_hold). */
	rc = image_txn_begin(im, err);
	if (!rc)
		rc = image_page(im, pgno, buf, err);
	if (!rc && sha_out) {
		sqlite3_bind_int64(im->hash, 1, im->map[pgno - 1]);
		if (sqlite3_step(im->hash) == SQLITE_ROW &&
		    sqlite3_column_bytes(im->hash, 0) == 32)
			memcpy(sha_out, sqlite3_column_blob(im->hash, 0), 32);
		else
			rc = snap_err_set(err, -EIO, "snapshot %s: page %u has "
					  "no stored hash", im->info.name,
					  pgno);
		sqlite3_reset(im->hash);
	}
	image_txn_end(im, 0);
	return rc;
}

void snap_image_prove(snap_image *im, int on)
{
	im->prove = !!on;
	im->scratch_pgno = 0;
}

void snap_image_hold(snap_image *im, unsigned reads)
{
	im->hold = reads;
}

ssize_t snap_image_read(snap_image *im, void *buf, size_t len, uint64_t off,
			snap_err *err)
{
	uint32_t ps = im->info.page_size;
	uint64_t size = im->info.image_size;
	size_t done = 0;
	int rc = 0;

	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	/* One read transaction for the whole call. */
	rc = image_txn_begin(im, err);
	while (!rc && done < len) {
		uint64_t pos = off + done;
		uint32_t pgno = (uint32_t)(pos / ps) + 1;
		size_t in = (size_t)(pos % ps), n = ps - in;

		if (n > len - done)
			n = len - done;
		if (in == 0 && n == ps) {
			rc = image_page(im, pgno, (char *)buf + done, err);
		} else {
			if (im->scratch_pgno != pgno) {
				im->scratch_pgno = 0;
				rc = image_page(im, pgno, im->scratch, err);
				if (!rc)
					im->scratch_pgno = pgno;
			}
			if (!rc)
				memcpy((char *)buf + done, im->scratch + in, n);
		}
		if (rc)
			break;
		done += n;
	}
	image_txn_end(im, 0);
	return rc ? rc : (ssize_t)done;
}
