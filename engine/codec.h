/*
 * engine/codec.h — page hashing and compression, and the in-memory page
 * index used while a snapshot is captured.
 *
 * Internal to the engine (not part of snapfs.h).  A page is identified by
 * the SHA-256 of its bytes; stored compressed with zstd when that is
 * smaller, raw otherwise (stored length == page size means raw).
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

/* Per-thread codec state: reuse contexts, never allocate per page. */
typedef struct snap_codec {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
} snap_codec;

int snap_codec_init(snap_codec *c);
void snap_codec_free(snap_codec *c);
/* Compress src (len bytes) into dst (cap >= ZSTD_compressBound(len)).
 * Returns the stored length: < len compressed, == len raw copy. */
size_t snap_codec_pack(snap_codec *c, const void *src, size_t len,
		       void *dst, size_t cap);
/* Decode a stored page of zlen bytes into dst of exactly len bytes.
 * 0 or -EIO when the data does not decode to len bytes. */
int snap_codec_unpack(snap_codec *c, const void *z, size_t zlen, void *dst,
		      size_t len);

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
