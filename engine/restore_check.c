/*
 * engine/restore_check.c — a restore's read-back check: the live database
 * read back through SQLite and compared with the image, page by page.
 *
 * The check reads the live database back on the connection that made the
 * copy (a backup into a compare-mode capture, capture.h) and compares
 * every page with the image's hashes, page 1 without the counters SQLite
 * maintains.  The hashes are those the restore's verification computed
 * and proved against the store (snap_verify_proof): the check compares
 * with exactly what was proved and reads nothing from the store.  A copy
 * of the safety snapshot (a rollback), which no verification proved,
 * compares with the store's hashes, loaded here.  The image itself passed
 * quick_check in the verification, so equal pages mean an intact
 * database; a separate integrity_check of the live file would only
 * repeat it.  When another process committed between the copy and the
 * read-back (the pager's data version moved), page equality cannot be
 * expected and those commits must not be rolled back: the database gets
 * an integrity_check instead, and the result says so (*proven = 0).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "capture_vfs.h"
#include "integrity.h"
#include "restore.h"
#include "restore_int.h"
#include "store_int.h"

/* Load the store's hash of every page of snapshot si, and its page 1 (the
 * row and map once, through a snap_image_src). */
static int load_expected(snap_store *s, const snap_info *si,
			 uint8_t (**hashes)[32], uint8_t **page1,
			 snap_err *err)
{
	snap_image_src src;
	snap_image *im = NULL;
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	uint32_t n = si->page_count, i;
	int rc;

	*hashes = NULL;
	*page1 = NULL;
	rc = snap_image_src_load(s, si->id, &src, err);
	if (!rc)
		rc = snap_image_open_src(s, &src, &im, err);
	if (!rc) {
		*page1 = malloc(si->page_size);
		rc = *page1 ? snap_image_read_page(im, 1, *page1, NULL, err)
			    : snap_err_set(err, -ENOMEM, "out of memory");
	}
	snap_image_close(im);
	if (!rc)
		rc = snap_store_connect(s, 1, &db, err);
	if (!rc) {
		*hashes = malloc((size_t)n * 32 + 1);
		if (!*hashes)
			rc = snap_err_set(err, -ENOMEM, "out of memory");
	}
	if (!rc)
		rc = sqlite3_prepare_v2(db, "SELECT hash FROM pages WHERE id=?",
					-1, &st, NULL) == SQLITE_OK ? 0 :
		     snap_err_sqlite(err, db, sqlite3_errcode(db), "store");
	if (!rc)
		sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (i = 0; !rc && i < n; i++) {
		sqlite3_bind_int64(st, 1, src.map[i]);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_bytes(st, 0) == 32)
			memcpy((*hashes)[i], sqlite3_column_blob(st, 0), 32);
		else
			rc = snap_err_set(err, -EIO, "snapshot %s: page %u "
					  "vanished from the store", si->name,
					  i + 1);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	snap_image_src_free(s, &src);
	if (rc) {
		free(*hashes);
		free(*page1);
		*hashes = NULL;
		*page1 = NULL;
	}
	return rc;
}

/* The pager's data version of db's main file: it moves with this
 * connection's own commits and when a transaction of this connection finds
 * that another connection committed.  Read without starting a transaction. */
static unsigned data_version(sqlite3 *db)
{
	unsigned v = 0;

	sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION, &v);
	return v;
}

/* Integrity check on a connection, as the fallback verification. */
static int conn_integrity(sqlite3 *db, const char *what, snap_err *err)
{
	unsigned bad = 0;
	int rc = snap_integrity_run(db, "PRAGMA integrity_check(5)", what,
				    NULL, NULL, &bad, err);

	if (!rc && bad)
		rc = snap_err_set(err, -EIO, "%s fails integrity_check after "
				  "the restore", what);
	return rc;
}

/* The check (restore_int.h; see the top comment).  The read-back proves
 * something only if no other connection committed since our commit; the
 * pager's data version, taken before and after, says so. */
int snap_restore_check(snap_store *s, const restore_source *rs, sqlite3 *db,
		       const char *what, int *proven, snap_livedb_steps *how,
		       snap_err *err)
{
	const snap_info *si = rs->si;
	uint8_t (*loaded)[32] = NULL;
	uint8_t *page1 = NULL;
	const uint8_t (*hashes)[32];
	snap_capture c;
	sqlite3 *cap = NULL;
	unsigned v0 = data_version(db), v1;
	int rc = 0;

	*proven = 0;
	memset(&c, 0, sizeof(c));
	if (rs->proof) {
		hashes = (const uint8_t (*)[32])rs->proof->sha;
		page1 = rs->proof->page1;
	} else {
		rc = load_expected(s, si, &loaded, &page1, err);
		hashes = (const uint8_t (*)[32])loaded;
	}
	if (!rc)
		rc = snap_capture_init_compare(&c, hashes, page1,
					       si->page_count, err);
	if (!rc) {
		c.page_size = si->page_size;
		rc = snap_capture_open_db(&c, &cap, err);
		/* One step: the read-back holds one read transaction of
		 * the live database throughout (a stepped backup of a
		 * source that changes restarts). */
		if (!rc)
			rc = snap_livedb_backup_all(cap, db,
						    "a verification copy",
						    NULL, err);
		if (!rc && how && how->fn)
			how->fn(how->ctx, si->page_count, si->page_count);
		sqlite3_close(cap);
		if (!rc && c.err_code)
			rc = snap_err_set(err, c.err_code, "%s", c.err_msg);
	}
	v1 = data_version(db);
	if (!rc && v0 != v1) {
		rc = conn_integrity(db, what, err);
	} else if (!rc) {
		if (c.page_size != si->page_size || c.npages != si->page_count)
			rc = snap_err_set(err, -EIO, "after the restore %s has "
					  "%u pages of %u bytes, the snapshot "
					  "%u of %u", what, c.npages,
					  c.page_size, si->page_count,
					  si->page_size);
		else if (c.mismatches)
			rc = snap_err_set(err, -EIO, "after the restore %u "
					  "page%s of %s differ from snapshot "
					  "%s (first: page %u)", c.mismatches,
					  c.mismatches > 1 ? "s" : "", what,
					  si->name, c.first_mismatch);
		else
			*proven = 1;
	}
	free(loaded);
	if (!rs->proof)
		free(page1);
	return rc;
}

/*
 * A failed copy that SQLite rolled back leaves the database equal to the
 * safety snapshot: then there is nothing to roll back, and saying "the
 * rollback failed" (it would, on a full disk) would be wrong.
 */
int snap_restore_live_equals(snap_store *s, const snap_info *si)
{
	restore_source rs = { si->id, si, NULL, NULL };
	sqlite3 *db = NULL;
	snap_err ignore;
	int64_t n;
	int proven = 0;

	snap_err_clear(&ignore);
	/* A first read settles the new connection's data version, which
	 * snap_restore_check compares before and after. */
	if (snap_livedb_open(s->db_path, SNAP_LIVEDB_RW, NULL, &db,
			     &ignore) == 0 &&
	    snap_livedb_int(db, "SELECT count(*) FROM sqlite_schema", &n) ==
	    SQLITE_OK &&
	    snap_restore_check(s, &rs, db, s->db_path, &proven, NULL,
			       &ignore) != 0)
		proven = 0;
	sqlite3_close(db);
	return proven;
}
