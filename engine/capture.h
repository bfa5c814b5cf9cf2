/*
 * engine/capture.h — capture of a backup's pages into the store (internal;
 * the VFS that receives them is capture_vfs.h).
 *
 * A capture is the destination of one sqlite3_backup.  SQLite believes it
 * writes a database file; every page that arrives is normalized (page 1:
 * header bytes 18-19 = 1), hashed, and either recognized as the previous
 * snapshot's page at its pgno by its SHA-256 (the fast path,
 * capture_find.c "Page hashes") or looked up by hash, and when new
 * compressed and inserted into the store through the capture's own store
 * connection, which the caller holds inside a write transaction.  Nothing
 * is written twice and no image is held in memory.  The hashes a capture
 * keeps for the next one are meta rows of SNAP_HASHES_PIECE hashes each,
 * written and read a piece at a time: the memory they take is the array
 * of 32 bytes a page and one piece (16 KB), not a second copy of all.
 *
 * engine/PITFALLS.md 8: with the destination in journal_mode=OFF,
 * locking_mode=EXCLUSIVE, synchronous=OFF, the backup sends one page-sized,
 * page-aligned write per page in ascending order -- except page 1, which
 * the destination btree keeps until its commit and so arrives last (seen on
 * 3.40.1).  See snap_capture_begin() for how the image hash still streams;
 * a repeated or out-of-order write makes it fall back to re-reading the
 * pages it stored.
 */
#ifndef ENGINE_CAPTURE_H
#define ENGINE_CAPTURE_H

#include <openssl/evp.h>
#include <pthread.h>
#include <sqlite3.h>

#include "codec.h"
#include "err.h"
#include "store.h"

/* The page hashes a capture keeps for the next one are cut in pieces of
 * this many (16 KB of SHA-256s), one meta row each (capture_find.c,
 * "Page hashes"): SQLite builds the record of a value whole, so a piece,
 * not every hash, is what it copies; and a piece's record stays within
 * one cell of the store's 64 KiB pages (under 16,384 bytes), because a
 * seek in meta (WITHOUT ROWID) that compares a key with a cell spilling
 * onto overflow pages reads that whole record first. */
#define SNAP_HASHES_PIECE 500

typedef struct snap_capture {
	sqlite3 *store;            /* store connection, in a write txn */
	sqlite3_stmt *ins_page;    /* INSERT INTO pages */
	sqlite3_stmt *ins_data;    /* INSERT INTO page_data */
	snap_pfxidx idx;           /* sha256 prefix -> candidate page ids:
				      the whole store, or with `prev` the
				      pages this capture met that were not
				      at their pgno in prev; written by the
				      backup's thread only, under idx_lock;
				      read by workers (as a hint) */
	pthread_rwlock_t idx_lock;
	int have_idx_lock;
	struct snap_pagepipe *pipe; /* hashing/compression workers */
	/* The incremental fast path (capture_find.c, "Page hashes"): the
	 * hash of every page of the snapshot the store's page hashes
	 * (meta 'capture_hashes:K', pieces of SNAP_HASHES_PIECE) name, by
	 * pgno-1.  A page whose SHA-256 equals the one at its pgno there
	 * (when its piece loaded whole: snap_capture_prev_has) takes that
	 * page's id: no lookup, no compression, no write.  Other pages are
	 * looked up in idx, then by SQL. */
	int prev;                  /* prev_* are loaded and usable */
	int settled;               /* page size known: prev kept or not */
	int full_idx;              /* idx holds every stored page */
	uint32_t prev_n, prev_page_size;
	int64_t prev_snap;         /* the snapshot prev_* describe */
	int64_t *prev_ids;         /* ids by pgno-1 (prev_n) */
	uint32_t prev_piece;       /* hashes a piece in the store's pieces */
	uint8_t *prev_ok;          /* by piece number: 1 when that piece
				      loaded whole into sha; its pages
				      take no fast path otherwise */
	uint8_t (*sha)[32];        /* hashes by pgno-1: prev's until a
				      page's first commit, then this
				      capture's; sha_cap entries, never
				      moved while the pipe runs */
	uint32_t sha_cap;
	uint8_t (*sha_more)[32];   /* hashes of pgno > sha_cap */
	uint32_t sha_more_cap;
	uint8_t *pushed;           /* bitmap of pgnos pushed (producer's) */
	uint32_t pushed_cap;       /* in bytes */
	uint32_t sql_lookups;      /* by hash, before the full index loads */
	sqlite3_stmt *find_page;   /* SELECT id FROM pages WHERE hash=? */
	sqlite3_stmt *page_hash;   /* SELECT hash FROM pages WHERE id=?:
				      confirms an index candidate */
	uint32_t fast_pages;       /* pages that took the fast path */

	snap_codec codec;
	/* Dictionaries (engine/DESIGN.md §2): the store's, loaded once the
	 * page size is known (cap_dicts_ready), compressing at level 1 for a
	 * first snapshot and SNAP_ZSTD_LEVEL_INCR with a previous one; or,
	 * in a store without one, the one this capture trains on the first
	 * SNAP_DICT_SAMPLES bytes of pages it commits (kept in `trained`, a
	 * struct of its own that the workers switch to). */
	snap_dicts dicts;
	snap_dicts trained;
	int dicts_ready;
	uint8_t *samples;          /* pages collected for training, or NULL */
	size_t nsamples;
	uint8_t *zbuf;             /* compression output buffer */
	size_t zcap;

	uint32_t page_size;        /* from the first write, 0 before */
	int64_t *map;              /* page ids by pgno-1; 0 = not written */
	uint32_t map_cap;
	uint32_t npages;           /* highest pgno written (or truncated to) */
	uint8_t page1[SNAP_PAGE_MAX]; /* normalized page 1, served to xRead */
	int have_page1;
	int sqlite_page1;          /* SQLite itself wrote page 1 */
	uint64_t file_end;         /* file size as SQLite made it */
	uint32_t header_pages;     /* page count in the page-1 header */
	uint32_t change_counter;   /* header bytes 24-27 as captured */

	EVP_MD_CTX *image_sha;     /* streamed SHA-256 of the image; with
				      hashed and in_order, the page pipe's
				      order thread's while it runs */
	uint32_t hashed;           /* pages fed to image_sha so far */
	int in_order;              /* 0 once streaming is no longer valid */
	int rehash;                /* the backup's thread saw a page written
				      twice or a truncation: hash the stored
				      pages again at the end */

	int64_t *new_ids;          /* pages this capture inserted, with
				      runs = 1: a new page starts a run */
	size_t n_new, cap_new;
	uint64_t new_bytes;        /* stored bytes those pages take */

	snap_progress_fn progress; /* may be NULL */
	void *progress_ctx;

	/* Compare mode (verifying a restore): when expect is set, pages are
	 * compared with these hashes instead of being stored. */
	const uint8_t (*expect)[32]; /* expected hash by pgno-1 */
	const uint8_t *expect_page1; /* expected page 1 bytes */
	uint32_t expect_pages;
	uint32_t mismatches;        /* pages that differ */
	uint32_t first_mismatch;    /* pgno of the first, 0 if none */

	int err_code;              /* first failure inside the VFS, -errno */
	char err_msg[SNAP_ERR_MSG];
} snap_capture;

/* Prepare a compare-mode capture (no store): see the expect fields. */
int snap_capture_init_compare(snap_capture *c, const uint8_t (*expect)[32],
			      const uint8_t *page1, uint32_t npages,
			      snap_err *err);
/* Compare two page-1 images ignoring the bytes SQLite maintains itself
 * (18-19 journal mode, 24-27, 40-43, 92-95 counters). */
int snap_page1_same(const uint8_t *a, const uint8_t *b, size_t n);
/* Prepare a capture over `store` (which must be inside BEGIN IMMEDIATE). */
int snap_capture_init(snap_capture *c, sqlite3 *store, snap_err *err);
void snap_capture_free(snap_capture *c);
/*
 * Before the backup, inside the source's read transaction: learn the page
 * size and predict page 1 by reading it through the source connection's own
 * file handle (never our own open(): engine/PITFALLS.md 2).  The backup's
 * destination btree holds page 1 until its commit, so page 1 arrives last;
 * with the prediction hashed first, the image hash still streams, and page 1's
 * final write is accepted when it differs only in SQLite's counters.  When the
 * prediction cannot be made or turns out wrong, the hash is recomputed from
 * the stored pages at the end.  Sets c->page_size from the header, or
 * leaves it for the caller (PRAGMA page_size) when there is no prediction.
 */
int snap_capture_begin(snap_capture *c, sqlite3 *src, snap_err *err);
/* The same from a file handle SQLite holds (and has locked). */
int snap_capture_begin_file(snap_capture *c, sqlite3_file *f, snap_err *err);
/* Feed one page (page_size bytes at offset off) without SQLite: for an
 * image read raw from a file handle under an exclusive lock. */
int snap_capture_feed(snap_capture *c, const void *page, int64_t off);
/* One write of amt bytes at off, as the capture VFS receives it (one
 * whole page): 0 or a negative errno; the first failure stays in c. */
int snap_capture_write(snap_capture *c, const void *page, int amt,
		       int64_t off);
/* Record the first failure (later ones are dropped): for the VFS, whose
 * caller SQLite sees only an rc. */
void snap_capture_fail(snap_capture *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * After the backup finished: fill unwritten pages (the lock-byte page)
 * with the zero page, finish the image hash.  Gives the page count, the
 * image's SHA-256, and the map (owned by c).
 */
int snap_capture_finish(snap_capture *c, uint8_t sha[32], snap_err *err);
/* In the store transaction that records snapshot `id` from this finished
 * capture: keep its page hashes for the next capture's fast path, as
 * pieces replacing every piece (and the old single row) before.  Frees
 * the map (published by then): nothing may read it afterwards. */
/* After the capture's run counts, before its catalog row: give back what
 * the row and the kept hashes do not need (the previous snapshot's page
 * ids, the pages-pushed bitmap, the map's unused tail), so the row's
 * encoding does not sit on top of them (the peak of an incremental
 * capture's memory). */
void snap_capture_trim(snap_capture *c);
int snap_capture_keep_hashes(snap_capture *c, int64_t id, snap_err *err);

/* ---- between capture.c and capture_find.c only ---- */

/* Load the page hashes the store keeps, piece by piece, and their
 * snapshot's map for the fast path (none when they do not fit: the
 * capture then goes by the index). */
int snap_capture_prev_load(snap_capture *c, snap_err *err);
/* May the fast path compare pgno with the previous snapshot's hash (its
 * piece loaded whole)?  Read-only: any thread. */
int snap_capture_prev_has(const snap_capture *c, uint32_t pgno);
/* Once the page size is known: keep the previous hashes if they are of
 * that size, else index the whole store.  0 or the failure kept in c. */
int snap_capture_settle(snap_capture *c);
/* Record pgno's hash for the hashes this capture will keep. */
int snap_capture_sha_set(snap_capture *c, uint32_t pgno,
			 const uint8_t sha[32]);
/* The id of a stored page with this hash, 0 if none (the backup's
 * thread): the capture's index, then the store. */
int snap_capture_find(snap_capture *c, const uint8_t sha[32], int64_t *id);

/* ---- between capture.c and capture_dict.c only ---- */

/* The dictionaries the capture compresses and decodes with now. */
const snap_dicts *snap_capture_dicts(const snap_capture *c);
/* Once the page size is known: load the store's dictionaries and pick the
 * level, or map room for samples to train one.  0 or the failure kept in
 * c. */
int snap_capture_dicts_ready(snap_capture *c);
/* Keep a committed page as a sample; train when they are full. */
int snap_capture_dict_sample(snap_capture *c, const uint8_t *page);
/* Unmap the samples (trained, or the capture ends). */
void snap_capture_samples_free(snap_capture *c);

#endif /* ENGINE_CAPTURE_H */
