/*
 * engine/codec.h — page hashing and compression, and the in-memory page
 * index used while a snapshot is captured.
 *
 * Internal to the engine (not part of snapfs.h).  A page is identified by
 * the SHA-256 of its bytes; stored compressed with zstd when that is
 * smaller, raw otherwise (stored length == page size means raw), and
 * compressed with the store's dictionary when it has one (snap_dicts: the
 * frame names it).
 */
#ifndef ENGINE_CODEC_H
#define ENGINE_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#define SNAP_ZSTD_LEVEL 1
#define SNAP_PAGE_MAX 65536

/* SHA-256 of data; 0, or -ENOMEM when OpenSSL could not allocate its
 * context (out is then unusable: never store or compare it). */
int snap_sha256(const void *data, size_t len, uint8_t out[32]);

/* zstd level of pages compressed with a dictionary in a capture that has
 * a previous snapshot to go by (about 1% of the pages are new: the
 * slower level costs little and packs 2.2x instead of 2.0x). */
#define SNAP_ZSTD_LEVEL_INCR 3

/*
 * A store's zstd dictionaries (engine/DESIGN.md §2, "Dictionary"): one
 * decoding dictionary per dictID, and the one dictionary pages are
 * compressed with (cdict, NULL: none).  Built once, then shared read-only
 * by any number of codecs on any threads.  A frame names its dictionary
 * in its header (dictID 0: none), so a reader needs no other record.
 */
typedef struct snap_dict {
	uint32_t id;             /* the dictID its frames carry */
	ZSTD_DDict *dd;
} snap_dict;

typedef struct snap_dicts {
	snap_dict *d;
	size_t n;
	ZSTD_CDict *cdict;       /* compress with this one; may be NULL */
} snap_dicts;

/* Bytes of page samples a dictionary is trained on, and its size. */
#define SNAP_DICT_SAMPLES (8u << 20)
#define SNAP_DICT_MAX 112640

/* Add the dictionary dict (len bytes, a zstd dictionary with a dictID) for
 * decoding: 0, -EINVAL (no dictID: not a zstd dictionary) or -ENOMEM. */
int snap_dicts_add(snap_dicts *ds, const void *dict, size_t len);
/* Compress with dict from now on, at zstd level `level`: 0 or -ENOMEM. */
int snap_dicts_compress_with(snap_dicts *ds, const void *dict, size_t len,
			     int level);
void snap_dicts_free(snap_dicts *ds);
/* Train a dictionary of at most cap bytes on n samples laid end to end
 * in samples (sizes[i] bytes each), with fixed parameters (about 0.4 s
 * for 8 MB here).  Its length, or 0 when training failed. */
size_t snap_dict_train(const void *samples, const size_t *sizes, unsigned n,
		       void *out, size_t cap);

/* Per-thread codec state: reuse contexts, never allocate per page. */
typedef struct snap_codec {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	const snap_dicts *dicts;   /* shared, may be NULL (snap_codec_use) */
	const ZSTD_CDict *cdict;   /* what cctx refers to now */
} snap_codec;

int snap_codec_init(snap_codec *c);
void snap_codec_free(snap_codec *c);
/* Use the dictionaries ds (NULL: none) from now on: decode the pages
 * that name one, compress with ds->cdict when there is one. */
void snap_codec_use(snap_codec *c, const snap_dicts *ds);
/* Compress src (len bytes) into dst (cap >= ZSTD_compressBound(len)).
 * Returns the stored length: < len compressed, == len raw copy. */
size_t snap_codec_pack(snap_codec *c, const void *src, size_t len,
		       void *dst, size_t cap);
/* Decode a stored page of zlen bytes into dst of exactly len bytes.
 * 0 or -EIO when the data does not decode to len bytes; -ENOKEY when it
 * names a dictionary the codec does not have. */
int snap_codec_unpack(snap_codec *c, const void *z, size_t zlen, void *dst,
		      size_t len);
/* What a stored page snap_codec_unpack refused with rc is, for every
 * message that names one ("page N (stored page ID) %s"): "cannot be
 * decoded", and with -ENOKEY that its dictionary is missing or damaged
 * (what the user can do differs: verify, replica, a new store). */
const char *snap_codec_unpack_why(int rc);

/* Open-addressing map sha256 -> page id (ids > 0). */
typedef struct snap_pageidx {
	uint8_t (*keys)[32];
	int64_t *ids;
	size_t cap;     /* power of two */
	size_t used;
} snap_pageidx;

int snap_pageidx_init(snap_pageidx *ix, size_t expect);
void snap_pageidx_free(snap_pageidx *ix);
/* 0 when absent. */
int64_t snap_pageidx_get(const snap_pageidx *ix, const uint8_t sha[32]);
int snap_pageidx_put(snap_pageidx *ix, const uint8_t sha[32], int64_t id);

/*
 * Open-addressing multimap: the first 8 bytes of a SHA-256 -> page ids
 * (ids > 0), 16 bytes a slot where snap_pageidx takes 40.  A prefix is
 * not an identity: two different pages may share one, so every id it
 * gives is only a candidate, to be confirmed against the page's full
 * hash (the capture reads it back from the store: capture_find.c).
 * Different pages with one prefix each keep their own slot.
 */
typedef struct snap_pfxidx {
	uint64_t *keys;         /* prefix, host order of the hash's bytes */
	int64_t *ids;           /* 0 = empty slot */
	size_t cap;             /* power of two */
	size_t used;
} snap_pfxidx;

int snap_pfxidx_init(snap_pfxidx *ix, size_t expect);
void snap_pfxidx_free(snap_pfxidx *ix);
/* Add (prefix of sha, id) unless that very pair is there; grows.  0 or
 * -ENOMEM. */
int snap_pfxidx_add(snap_pfxidx *ix, const uint8_t sha[32], int64_t id);
/* 1 when some id is kept under sha's prefix (a candidate, not a hit). */
int snap_pfxidx_has(const snap_pfxidx *ix, const uint8_t sha[32]);
/* The candidates under sha's prefix, one a call: *pos starts at 0 and
 * moves past each; 0 when there are no more. */
int64_t snap_pfxidx_next(const snap_pfxidx *ix, const uint8_t sha[32],
			 size_t *pos);

/* Open-addressing map page id -> int64 counter (sets of ids, run deltas). */
typedef struct snap_idcount {
	int64_t *ids;
	int64_t *counts;
	size_t cap;
	size_t used;
} snap_idcount;

int snap_idcount_init(snap_idcount *m, size_t expect);
void snap_idcount_free(snap_idcount *m);
int snap_idcount_add(snap_idcount *m, int64_t id, int64_t delta);
/* 1 when id is in the table. */
int snap_idcount_has(const snap_idcount *m, int64_t id);

/* Page maps: an array of int64 page ids (index pgno-1), stored as a zstd
 * frame with its content size and a checksum of the little-endian array.
 * Decoding n ids from a frame that does not hold exactly n is -EIO, found
 * before anything is allocated. */
int snap_map_encode(const int64_t *ids, uint32_t n, void **out,
		    size_t *outlen);
int snap_map_decode(const void *blob, size_t len, uint32_t n,
		    int64_t **out);

#endif /* ENGINE_CODEC_H */
