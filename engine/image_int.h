/*
 * engine/image_int.h — what the files of the image module share
 * (internal): image.c reads a snapshot's image, image_export.c writes
 * one to a file.
 */
#ifndef ENGINE_IMAGE_INT_H
#define ENGINE_IMAGE_INT_H

#include <sqlite3.h>

#include "codec.h"
#include "image.h"
#include "readahead.h"
#include "store_int.h"

struct snap_image {
	snap_store *s;
	sqlite3 *db;            /* own read-only store connection */
	sqlite3_stmt *get;      /* SELECT zdata FROM page_data WHERE id=? */
	sqlite3_stmt *hash;     /* SELECT hash FROM pages WHERE id=? */
	sqlite3_stmt *getp;     /* zdata and hash of page id=? (prove) */
	sqlite3_stmt *alive;    /* the snapshot's catalog row, checked first
				   in every read transaction */
	int prove;              /* prove every page read against its hash */
	snap_codec codec;
	snap_dicts dicts;       /* the store's zstd dictionaries */
	snap_info info;
	int64_t *map;           /* page ids by pgno-1 */
	int owns_map;           /* 0: borrowed from a snap_image_src */
	uint8_t *scratch;       /* one page */
	uint32_t scratch_pgno;  /* page held in scratch, 0 = none */
	sqlite3_stmt *begin;    /* BEGIN, prepared once */
	sqlite3_stmt *commit;   /* COMMIT, prepared once */
	int in_txn;             /* a read transaction is open */
	unsigned hold;          /* >0: keep it open across calls, renewed
				   every `hold` reads (the store VFS) */
	unsigned txn_reads;     /* reads in the current transaction */
	snap_readahead *ra;     /* pages decoded ahead of a sequential
				   reader; NULL in a read-ahead's own image */
	struct snap_image *ahead;   /* the read-ahead's own image: its
				       thread's only */
};

/* Open the read transaction a read runs in, unless one is open: 0, or
 * -EIO when the snapshot is no longer in the catalog (then no transaction
 * is open). */
int image_txn_begin(snap_image *im, snap_err *err);
/* End it, unless held (force: even then). */
void image_txn_end(snap_image *im, int force);

#endif /* ENGINE_IMAGE_INT_H */
