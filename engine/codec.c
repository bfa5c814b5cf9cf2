/*
 * engine/codec.c — SHA-256 (libcrypto), zstd page packing, page maps, and
 * three small open-addressing hash tables: by full hash (a replica's
 * pack), by the hash's first 8 bytes (a capture's pages), by page id.
 *
 * The tables exist because a snapshot of a 1 GB database looks up 262,144
 * page hashes: an in-memory probe costs nanoseconds where an index lookup in
 * the store costs microseconds.  They are loaded from the store inside the
 * capture's write transaction, so no other writer can invalidate them.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#define ZDICT_STATIC_LINKING_ONLY   /* the fastCover trainer's parameters */
#include <zdict.h>

#include "codec.h"

/* SHA-256 of data into out; 0 or -ENOMEM. */
int snap_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) && n == 32 ?
	       0 : -ENOMEM;
}

/* Make the zstd contexts; 0 or -ENOMEM. */
int snap_codec_init(snap_codec *c)
{
	c->cctx = ZSTD_createCCtx();
	c->dctx = ZSTD_createDCtx();
	if (!c->cctx || !c->dctx) {
		snap_codec_free(c);
		return -ENOMEM;
	}
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel,
			       SNAP_ZSTD_LEVEL);
	/* 4 bytes a page buy a check of every decompression: a damaged
	 * compressed page fails to decode instead of reading as other bytes. */
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1);
	return 0;
}

/* Free the zstd contexts. */
void snap_codec_free(snap_codec *c)
{
	ZSTD_freeCCtx(c->cctx);
	ZSTD_freeDCtx(c->dctx);
	c->cctx = NULL;
	c->dctx = NULL;
	c->dicts = NULL;
	c->cdict = NULL;
}

/* Use ds's dictionaries from now on (the compression one, if any, is
 * referenced by the context: its level replaces SNAP_ZSTD_LEVEL). */
void snap_codec_use(snap_codec *c, const snap_dicts *ds)
{
	const ZSTD_CDict *cd = ds ? ds->cdict : NULL;

	c->dicts = ds;
	if (cd == c->cdict)
		return;
	ZSTD_CCtx_refCDict(c->cctx, cd);
	c->cdict = cd;
}

/* Compress a page into dst; its stored length (== len: stored raw). */
size_t snap_codec_pack(snap_codec *c, const void *src, size_t len,
		       void *dst, size_t cap)
{
	size_t z = ZSTD_compress2(c->cctx, dst, cap, src, len);

	if (ZSTD_isError(z) || z >= len) {
		memcpy(dst, src, len);
		return len;
	}
	return z;
}

/* Decode a stored page into exactly len bytes; -EIO when it does not. */
int snap_codec_unpack(snap_codec *c, const void *z, size_t zlen, void *dst,
		      size_t len)
{
	size_t n;

	const ZSTD_DDict *dd = NULL;
	unsigned id;
	size_t i;

	if (zlen == len) {
		memcpy(dst, z, len);
		return 0;
	}
	id = ZSTD_getDictID_fromFrame(z, zlen);
	if (id) {
		for (i = 0; c->dicts && i < c->dicts->n; i++)
			if (c->dicts->d[i].id == id)
				dd = c->dicts->d[i].dd;
		if (!dd)
			return -ENOKEY;
		n = ZSTD_decompress_usingDDict(c->dctx, dst, len, z, zlen, dd);
	} else {
		n = ZSTD_decompressDCtx(c->dctx, dst, len, z, zlen);
	}
	if (ZSTD_isError(n) || n != len)
		return -EIO;
	return 0;
}

const char *snap_codec_unpack_why(int rc)
{
	return rc == -ENOKEY ? "cannot be decoded: the zstd dictionary it "
		"was compressed with is missing or damaged" :
		"cannot be decoded";
}

/* Add a decoding dictionary: 0, -EINVAL or -ENOMEM. */
int snap_dicts_add(snap_dicts *ds, const void *dict, size_t len)
{
	unsigned id = ZSTD_getDictID_fromDict(dict, len);
	snap_dict *d;

	if (!id)
		return -EINVAL;
	d = realloc(ds->d, (ds->n + 1) * sizeof(*d));
	if (!d)
		return -ENOMEM;
	ds->d = d;
	d[ds->n].id = id;
	d[ds->n].dd = ZSTD_createDDict(dict, len);
	if (!d[ds->n].dd)
		return -ENOMEM;
	ds->n++;
	return 0;
}

/* Compress with dict at `level` from now on: 0 or -ENOMEM. */
int snap_dicts_compress_with(snap_dicts *ds, const void *dict, size_t len,
			     int level)
{
	ZSTD_CDict *cd = ZSTD_createCDict(dict, len, level);

	if (!cd)
		return -ENOMEM;
	ZSTD_freeCDict(ds->cdict);
	ds->cdict = cd;
	return 0;
}

/* Free the dictionaries and zero ds. */
void snap_dicts_free(snap_dicts *ds)
{
	size_t i;

	for (i = 0; i < ds->n; i++)
		ZSTD_freeDDict(ds->d[i].dd);
	free(ds->d);
	ZSTD_freeCDict(ds->cdict);
	memset(ds, 0, sizeof(*ds));
}

/* Train a dictionary on the samples; its length or 0.  fastCover with
 * fixed parameters instead of its parameter search: on the benchmark's
 * pages (tests/bench/README.md) k=200, d=8, f=18, accel=4 over 8 MB
 * trains in about 0.4 s and packs within 1% of the searched ones. */
size_t snap_dict_train(const void *samples, const size_t *sizes, unsigned n,
		       void *out, size_t cap)
{
	ZDICT_fastCover_params_t p;
	size_t len;

	memset(&p, 0, sizeof(p));
	p.k = 200;
	p.d = 8;
	p.f = 18;
	p.accel = 4;
	p.steps = 1;
	p.nbThreads = 1;
	p.splitPoint = 1.0;
	p.zParams.compressionLevel = SNAP_ZSTD_LEVEL;
	len = ZDICT_trainFromBuffer_fastCover(out, cap, samples, sizes, n, p);
	return ZDICT_isError(len) ? 0 : len;
}

/* Capacity for `expect` entries at a load factor of at most 3/4 (linear
 * probing stays short; the page index of a 1 GB database fits in 21 MB). */
static size_t pow2_cap(size_t expect)
{
	size_t cap = 1024;

	while (cap * 3 < expect * 4)
		cap <<= 1;
	return cap;
}

/* 1 when one more entry would fill a table of cap slots past 3/4. */
static int table_full(size_t used, size_t cap)
{
	return (used + 1) * 4 > cap * 3;
}

/* The two zeroed arrays (asz and bsz bytes an entry) of an empty
 * open-addressing table sized for `expect` entries, its capacity in *cap
 * (0 on failure) and *used zeroed: 0, or -ENOMEM with neither allocated. */
static int table_init(size_t expect, size_t *cap, size_t *used, void **a,
		      size_t asz, void **b, size_t bsz)
{
	*cap = pow2_cap(expect);
	*used = 0;
	*a = calloc(*cap, asz);
	*b = calloc(*cap, bsz);
	if (*a && *b)
		return 0;
	free(*a);
	free(*b);
	*a = *b = NULL;
	*cap = 0;
	return -ENOMEM;
}

/* The slot holding sha, or the empty slot where it goes. */
static size_t pageidx_slot(const snap_pageidx *ix, const uint8_t sha[32])
{
	size_t mask = ix->cap - 1;
	uint64_t h;
	size_t i;

	memcpy(&h, sha, sizeof(h));
	i = h & mask;
	while (ix->ids[i] && memcmp(ix->keys[i], sha, 32) != 0)
		i = (i + 1) & mask;
	return i;
}

/* An empty page index sized for `expect` entries; 0 or -ENOMEM. */
int snap_pageidx_init(snap_pageidx *ix, size_t expect)
{
	void *keys, *ids;
	int rc = table_init(expect, &ix->cap, &ix->used, &keys,
			    sizeof(*ix->keys), &ids, sizeof(*ix->ids));

	ix->keys = keys;
	ix->ids = ids;
	return rc;
}

/* Free the index's arrays and zero it. */
void snap_pageidx_free(snap_pageidx *ix)
{
	free(ix->keys);
	free(ix->ids);
	memset(ix, 0, sizeof(*ix));
}

/* The page id stored for sha, 0 when absent. */
int64_t snap_pageidx_get(const snap_pageidx *ix, const uint8_t sha[32])
{
	return ix->ids[pageidx_slot(ix, sha)];
}

/* Double the table; entries are re-inserted. */
static int pageidx_grow(snap_pageidx *ix)
{
	snap_pageidx n;
	size_t i;
	int rc = snap_pageidx_init(&n, ix->cap);

	if (rc)
		return rc;
	for (i = 0; i < ix->cap; i++)
		if (ix->ids[i])
			snap_pageidx_put(&n, ix->keys[i], ix->ids[i]);
	snap_pageidx_free(ix);
	*ix = n;
	return 0;
}

/* Map sha to id (replacing an earlier id), growing when needed. */
int snap_pageidx_put(snap_pageidx *ix, const uint8_t sha[32], int64_t id)
{
	size_t i;
	int rc;

	if (table_full(ix->used, ix->cap) && (rc = pageidx_grow(ix)))
		return rc;
	i = pageidx_slot(ix, sha);
	if (!ix->ids[i]) {
		memcpy(ix->keys[i], sha, 32);
		ix->used++;
	}
	ix->ids[i] = id;
	return 0;
}

/* The prefix index's key for sha: its first 8 bytes. */
static uint64_t pfx_key(const uint8_t sha[32])
{
	uint64_t k;

	memcpy(&k, sha, sizeof(k));
	return k;
}

/* An empty prefix index sized for `expect` entries; 0 or -ENOMEM. */
int snap_pfxidx_init(snap_pfxidx *ix, size_t expect)
{
	void *keys, *ids;
	int rc = table_init(expect, &ix->cap, &ix->used, &keys,
			    sizeof(*ix->keys), &ids, sizeof(*ix->ids));

	ix->keys = keys;
	ix->ids = ids;
	return rc;
}

/* Free the prefix index's arrays and zero it. */
void snap_pfxidx_free(snap_pfxidx *ix)
{
	free(ix->keys);
	free(ix->ids);
	memset(ix, 0, sizeof(*ix));
}

/* Walk the probe sequence of key from *pos (0: its home slot, else one
 * past the slot last returned): the next slot holding key, or the empty
 * slot ending the sequence (ids[slot] == 0).  A table with no slots has
 * none: returns SIZE_MAX. */
static size_t pfx_walk(const snap_pfxidx *ix, uint64_t key, size_t *pos)
{
	size_t mask = ix->cap - 1, i;

	if (!ix->cap)
		return SIZE_MAX;
	/* The key is hash output: its low bits are as good as any. */
	i = *pos ? *pos & mask : (size_t)key & mask;
	while (ix->ids[i] && ix->keys[i] != key)
		i = (i + 1) & mask;
	*pos = ((i + 1) & mask) | (mask + 1);   /* never 0 again */
	return i;
}

int64_t snap_pfxidx_next(const snap_pfxidx *ix, const uint8_t sha[32],
			 size_t *pos)
{
	size_t i;

	if (*pos == SIZE_MAX)
		return 0;
	i = pfx_walk(ix, pfx_key(sha), pos);
	if (i == SIZE_MAX || !ix->ids[i]) {
		*pos = SIZE_MAX;
		return 0;
	}
	return ix->ids[i];
}

int snap_pfxidx_has(const snap_pfxidx *ix, const uint8_t sha[32])
{
	size_t pos = 0;

	return snap_pfxidx_next(ix, sha, &pos) != 0;
}

/* Double the table; entries are re-inserted. */
static int pfxidx_grow(snap_pfxidx *ix)
{
	snap_pfxidx n;
	size_t i, pos, at;
	int rc = snap_pfxidx_init(&n, ix->cap);

	if (rc)
		return rc;
	for (i = 0; i < ix->cap; i++) {
		if (!ix->ids[i])
			continue;
		pos = 0;
		while (n.ids[at = pfx_walk(&n, ix->keys[i], &pos)])
			;
		n.keys[at] = ix->keys[i];
		n.ids[at] = ix->ids[i];
		n.used++;
	}
	snap_pfxidx_free(ix);
	*ix = n;
	return 0;
}

int snap_pfxidx_add(snap_pfxidx *ix, const uint8_t sha[32], int64_t id)
{
	uint64_t key = pfx_key(sha);
	size_t pos = 0, i;
	int rc;

	if (table_full(ix->used, ix->cap) && (rc = pfxidx_grow(ix)))
		return rc;
	while (ix->ids[i = pfx_walk(ix, key, &pos)])
		if (ix->ids[i] == id)
			return 0;
	ix->keys[i] = key;
	ix->ids[i] = id;
	ix->used++;
	return 0;
}

/* An empty id counter sized for `expect` ids; 0 or -ENOMEM. */
int snap_idcount_init(snap_idcount *m, size_t expect)
{
	void *ids, *counts;
	int rc = table_init(expect, &m->cap, &m->used, &ids,
			    sizeof(*m->ids), &counts, sizeof(*m->counts));

	m->ids = ids;
	m->counts = counts;
	return rc;
}

/* Free the counter's arrays and zero it. */
void snap_idcount_free(snap_idcount *m)
{
	free(m->ids);
	free(m->counts);
	memset(m, 0, sizeof(*m));
}

/* The slot holding id, or the empty slot where it goes (cap > 0). */
static size_t idcount_slot(const snap_idcount *m, int64_t id)
{
	size_t mask = m->cap - 1;
	uint64_t x = (uint64_t)id * 0x9E3779B97F4A7C15ull;
	size_t i = (size_t)(x >> 17) & mask;

	while (m->ids[i] && m->ids[i] != id)
		i = (i + 1) & mask;
	return i;
}

/* 1 when id is in the table. */
int snap_idcount_has(const snap_idcount *m, int64_t id)
{
	size_t i;

	if (!m->cap)
		return 0;
	i = idcount_slot(m, id);
	return m->ids[i] != 0 && m->ids[i] == id;
}

/* Double the table; entries are re-inserted. */
static int idcount_grow(snap_idcount *m)
{
	snap_idcount n;
	size_t i;
	int rc = snap_idcount_init(&n, m->cap);

	if (rc)
		return rc;
	for (i = 0; i < m->cap; i++)
		if (m->ids[i])
			snap_idcount_add(&n, m->ids[i], m->counts[i]);
	snap_idcount_free(m);
	*m = n;
	return 0;
}

/* Add delta to id's count (adding id at 0 first), growing when needed. */
int snap_idcount_add(snap_idcount *m, int64_t id, int64_t delta)
{
	size_t i;
	int rc;

	if (table_full(m->used, m->cap) && (rc = idcount_grow(m)))
		return rc;
	i = idcount_slot(m, id);
	if (!m->ids[i]) {
		m->ids[i] = id;
		m->used++;
	}
	m->counts[i] += delta;
	return 0;
}

/* Ids converted and fed to the map's compressor at a time. */
#define MAP_CHUNK 8192

/*
 * Page ids as a zstd frame of little-endian deltas (malloc()ed), streamed
 * a chunk of ids at a time into an output that grows as it fills: a
 * capture's map is encoded while it holds everything else it keeps (the
 * page hashes, SQLite's caches), and a copy of the ids and an output
 * buffer of the worst case beside them cost 16 bytes a page at that peak
 * (16.8 MB for 4 GB of 4 KiB pages); the deltas of a capture's map
 * compress to a few bytes a page.  The frame records the content size
 * (pledged), which snap_map_decode checks before it allocates.
 */
int snap_map_encode(const int64_t *ids, uint32_t n, void **out,
		    size_t *outlen)
{
	uint64_t *le = malloc(MAP_CHUNK * sizeof(*le));
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t cap = 64 * 1024, left;
	ZSTD_outBuffer ob = { malloc(cap), cap, 0 };
	uint32_t at = 0, k;
	int rc = 0;

	if (!le || !ob.dst || !cc) {
		rc = -ENOMEM;
		goto out;
	}
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 3);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	ZSTD_CCtx_setPledgedSrcSize(cc, (unsigned long long)n * 8);
	do {
		uint32_t m = n - at < MAP_CHUNK ? n - at : MAP_CHUNK;
		ZSTD_EndDirective end = at + m == n ? ZSTD_e_end
						    : ZSTD_e_continue;
		ZSTD_inBuffer ib = { le, (size_t)m * 8, 0 };

		/* Page ids grow together with page numbers more often
		 * than not; store deltas so long runs of new pages compress
		 * to little. */
		for (k = 0; k < m; k++)
			le[k] = htole64((uint64_t)ids[at + k] - (at + k ?
					(uint64_t)ids[at + k - 1] : 0));
		do {
			if (ob.pos == ob.size) {
				void *g = realloc(ob.dst, ob.size * 2);

				if (!g) {
					rc = -ENOMEM;
					goto out;
				}
				ob.dst = g;
				ob.size *= 2;
			}
			left = ZSTD_compressStream2(cc, &ob, &ib, end);
			if (ZSTD_isError(left)) {
				rc = -EIO;
				goto out;
			}
		} while (end == ZSTD_e_end ? left != 0 : ib.pos < ib.size);
		at += m;
	} while (at < n);
	*out = ob.dst;
	*outlen = ob.pos;
	ob.dst = NULL;
out:
	ZSTD_freeCCtx(cc);
	free(ob.dst);
	free(le);
	return rc;
}

/* The n page ids of a frame snap_map_encode wrote; -EIO when not n. */
int snap_map_decode(const void *blob, size_t len, uint32_t n, int64_t **out)
{
	size_t raw = (size_t)n * 8, got;
	uint64_t *le;
	uint32_t i;
	uint64_t acc = 0;

	/* The frame records its size (snap_map_encode always writes it): a
	 * count that disagrees, from a damaged catalog row, is refused before
	 * anything is allocated for it (2^32 pages would be 32 GB). */
	if (ZSTD_getFrameContentSize(blob, len) != raw)
		return -EIO;
	le = malloc(raw ? raw : 1);
	if (!le)
		return -ENOMEM;
	got = ZSTD_decompress(le, raw, blob, len);
	if (ZSTD_isError(got) || got != raw) {
		free(le);
		return -EIO;
	}
	for (i = 0; i < n; i++) {
		acc += le64toh(le[i]);
		le[i] = acc;
	}
	*out = (int64_t *)le;
	return 0;
}
