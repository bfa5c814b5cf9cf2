/*
 * engine/replica_read.c — reading a replica's pages: a page by its seq
 * (the pack found from the index listing, a few packs cached, the last
 * decoded frame of each kept), proven against the SHA-256 its index
 * gives.  Whole images and images read in place are replica_image.c.
 *
 * While a whole image is read, each pack fetched announces the next one
 * (snap_objstore_prefetch): on s3:// it is downloaded while this one's
 * pages are opened, decoded and proven.
 */
#include "replica_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse "index/%016llx" and "packs/%016llx" names' seq. */
static int seq_of(const char *name, const char *dir, uint64_t *seq)
{
	size_t dl = strlen(dir);
	if (strncmp(name, dir, dl) || name[dl] != '/' ||
	    strlen(name + dl + 1) != 16)
		return -EINVAL;
	char *end;
	*seq = strtoull(name + dl + 1, &end, 16);
	return *end ? -EINVAL : 0;
}

int snap_replica_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The pack (its place in r->firsts) that holds seq; SIZE_MAX: none. */
size_t snap_replica_pack_of(const snap_replica *r, uint64_t seq)
{
	size_t lo = 0, hi = r->nfirsts;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->firsts[mid] <= seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? lo - 1 : SIZE_MAX;
}

/* 1 when the pack at r->firsts[k] is in the cache, fetched. */
int snap_replica_pack_cached(const snap_replica *r, size_t k)
{
	for (int i = 0; k < r->nfirsts && i < PACK_CACHE; i++)
		if (r->cache[i].pack && r->cache[i].first == r->firsts[k])
			return 1;
	return 0;
}

/* Forget every cached pack (and its index and frame). */
void snap_replica_slots_clear(snap_replica *r)
{
	for (int i = 0; i < PACK_CACHE; i++) {
		free(r->cache[i].index);
		free(r->cache[i].frames);
		free(r->cache[i].pack);
		free(r->cache[i].fplain);
		memset(&r->cache[i], 0, sizeof r->cache[i]);
		r->cache[i].fno = -1;
	}
}

/* The sorted first seqs of every indexed pack (r->firsts). */
int snap_replica_firsts_load(snap_replica *r, snap_err *err)
{
	snap_replica_names ns = {0};
	int rc = snap_replica_list_dir(r, "index", &ns, err);
	if (rc < 0)
		return rc;
	/* A fresh listing is a fresh view: forget what was read before. */
	snap_replica_slots_clear(r);
	free(r->firsts);
	r->firsts = calloc(ns.n ? ns.n : 1, sizeof *r->firsts);
	r->nfirsts = 0;
	if (!r->firsts) {
		snap_replica_names_free(&ns);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < ns.n; i++)
		if (seq_of(ns.v[i], "index", &r->firsts[r->nfirsts]) == 0)
			r->nfirsts++;
	snap_replica_names_free(&ns);
	qsort(r->firsts, r->nfirsts, sizeof *r->firsts, snap_replica_u64_cmp);
	return 0;
}

int snap_replica_firsts_packed(snap_replica *r, uint64_t *above,
			       snap_err *err)
{
	snap_replica_names ns = {0};
	*above = 0;
	int rc = snap_replica_list_dir(r, "packs", &ns, err);
	if (rc < 0)
		return rc;
	uint64_t *packs = calloc(ns.n ? ns.n : 1, sizeof *packs);
	size_t np = 0, k = 0;
	if (!packs) {
		snap_replica_names_free(&ns);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < ns.n; i++)
		if (seq_of(ns.v[i], "packs", &packs[np]) == 0)
			np++;
	snap_replica_names_free(&ns);
	qsort(packs, np, sizeof *packs, snap_replica_u64_cmp);
	for (size_t i = 0; i < r->nfirsts; i++) {
		uint64_t f = r->firsts[i], end = f + 1;
		if (bsearch(&f, packs, np, sizeof *packs,
			    snap_replica_u64_cmp)) {
			r->firsts[k++] = f;
			continue;
		}
		/* Its index's range, when it opens: new seqs go above it. */
		char name[64];
		uint8_t *p;
		size_t len;
		ridx ix;
		snap_err e;
		snprintf(name, sizeof name, "index/%016llx",
			 (unsigned long long)f);
		if (snap_replica_obj_get(r, name, &p, &len, &e) == 0) {
			if (snap_replica_index_parse(p, len, &ix) == 0 &&
			    ix.first == f && ix.count > 1)
				end = f + ix.count;
			free(p);
		}
		if (f < (1ull << 62) && end > *above)
			*above = end;
	}
	r->nfirsts = k;
	free(packs);
	return 0;
}

/* Check and take apart an index object's plain bytes: version 1 (an entry
 * of INDEX_ENTRY bytes per page) or 2 (a frame table, then a SHA-256 per
 * page; the frames cover the pages in order, each within FRAME_MAX). */
int snap_replica_index_parse(const uint8_t *p, size_t len, ridx *ix)
{
	memset(ix, 0, sizeof *ix);
	if (len < 20 || memcmp(p, INDEX_MAGIC, 4))
		return -EIO;
	ix->version = get32(p + 4);
	ix->first = get64(p + 8);
	ix->count = get32(p + 16);
	if (ix->version == 1) {
		if (len != 20 + (size_t)ix->count * INDEX_ENTRY)
			return -EIO;
		ix->nframes = ix->count;
		ix->shas = p + 20;
		ix->stride = INDEX_ENTRY;
		return 0;
	}
	if (ix->version != 2 || len < INDEX_HEAD2)
		return -EIO;
	ix->nframes = get32(p + 20);
	if (ix->nframes > ix->count ||
	    len != INDEX_HEAD2 + (size_t)ix->nframes * FRAME_ENTRY +
		   (size_t)ix->count * 32)
		return -EIO;
	ix->frames = p + INDEX_HEAD2;
	ix->shas = ix->frames + (size_t)ix->nframes * FRAME_ENTRY;
	ix->stride = 32;
	uint64_t pages = 0;
	for (uint32_t f = 0; f < ix->nframes; f++) {
		const uint8_t *e = ix->frames + (size_t)f * FRAME_ENTRY;
		uint32_t np = get32(e + 8), ps = get32(e + 12);
		if (!np || ps < 512 || ps > SNAP_PAGE_MAX || (ps & (ps - 1)) ||
		    (uint64_t)np * ps > FRAME_MAX)
			return -EIO;
		pages += np;
	}
	return pages == ix->count ? 0 : -EIO;
}

/* The frames of a parsed index, as a reader finds pages (free()); a
 * version 1 index has one frame per page. */
static struct rframe *frames_of(const ridx *ix)
{
	struct rframe *v = calloc(ix->nframes ? ix->nframes : 1, sizeof *v);
	if (!v)
		return NULL;
	uint32_t page = 0;
	for (uint32_t f = 0; f < ix->nframes; f++) {
		if (ix->version == 1) {
			const uint8_t *e = ix->shas + (size_t)f * INDEX_ENTRY;
			v[f] = (struct rframe){get32(e + 72), get32(e + 68), f,
					       1, get32(e + 64)};
			continue;
		}
		const uint8_t *e = ix->frames + (size_t)f * FRAME_ENTRY;
		v[f] = (struct rframe){get32(e), get32(e + 4), page,
				       get32(e + 8), get32(e + 12)};
		page += v[f].npages;
	}
	return v;
}

/* The cache slot holding the index of the pack that starts at first,
 * loaded when it is not there (the least recently used slot goes). */
static int slot_load(snap_replica *r, uint64_t first, struct rpack **out,
		     snap_err *err)
{
	const char *url = snap_objstore_url(r->os);
	struct rpack *victim = &r->cache[0];
	for (int i = 0; i < PACK_CACHE; i++) {
		struct rpack *c = &r->cache[i];
		if (c->index && c->first == first) {
			c->used = ++r->clock;
			*out = c;
			return 0;
		}
		if (!c->index || c->used < victim->used)
			victim = c;
	}
	free(victim->index);
	free(victim->frames);
	free(victim->pack);
	free(victim->fplain);
	memset(victim, 0, sizeof *victim);
	victim->fno = -1;
	char name[64];
	snprintf(name, sizeof name, "index/%016llx", (unsigned long long)first);
	uint8_t *p;
	size_t len;
	int rc = snap_replica_obj_get(r, name, &p, &len, err);
	if (rc == -ENOENT)
		return snap_err_set(err, -EIO, "%s/%s: missing", url, name);
	if (rc < 0)
		return rc;
	ridx ix;
	if (snap_replica_index_parse(p, len, &ix) < 0 || ix.first != first) {
		free(p);
		return snap_err_set(err, -EIO, "%s/%s: not a valid index",
				    url, name);
	}
	victim->frames = frames_of(&ix);
	if (!victim->frames) {
		free(p);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	victim->first = first;
	victim->count = ix.count;
	victim->index = p;
	victim->ix = ix;
	victim->used = ++r->clock;
	*out = victim;
	return 0;
}

/* The cache slot whose pack holds seq: the index with the greatest first
 * seq not above it; when that one does not open or does not cover seq (a
 * junk object under index/, a damaged index), the next lower ones (a few),
 * so one bad object cannot shadow an intact pack. */
static int slot_for(snap_replica *r, uint64_t seq, struct rpack **out,
		    snap_err *err)
{
	size_t at = snap_replica_pack_of(r, seq);
	size_t lo = at == SIZE_MAX ? 0 : at + 1;   /* the first > seq */
	snap_err first_err = {0};
	int first_rc = 0;
	for (size_t j = lo, tries = 0; j > 0 && tries < 8; j--, tries++) {
		struct rpack *c = NULL;
		snap_err e;
		int rc = slot_load(r, r->firsts[j - 1], &c, &e);
		if (rc == -ENOMEM) {
			*err = e;
			return rc;
		}
		if (rc == 0 && seq - c->first < c->count) {
			*out = c;
			return 0;
		}
		if (rc == 0)
			snap_err_set(&e, -EIO, "%s: page %llu is in no pack "
				     "(the index of %016llx ends before it)",
				     snap_objstore_url(r->os),
				     (unsigned long long)seq,
				     (unsigned long long)c->first);
		if (!first_rc) {
			first_rc = e.code ? e.code : -EIO;
			first_err = e;
		}
	}
	if (!first_rc)
		return snap_err_set(err, -EIO, "%s: page %llu is in no pack "
				    "(index missing)", snap_objstore_url(r->os),
				    (unsigned long long)seq);
	*err = first_err;
	return first_rc;
}

/* Announce the READ_AHEAD packs after c (and their indexes unless
 * cached): a whole image reads the packs mostly in order, and each fetch
 * is mostly waiting for the server. */
#define READ_AHEAD 2

static void announce_next(snap_replica *r, const struct rpack *c)
{
	const uint64_t *at = bsearch(&c->first, r->firsts, r->nfirsts,
				     sizeof *r->firsts, snap_replica_u64_cmp);
	if (!at)
		return;
	for (size_t k = 1; k <= READ_AHEAD &&
	     (size_t)(at - r->firsts) + k < r->nfirsts; k++) {
		uint64_t next = at[k];
		int have_index = 0, have_pack = 0;
		for (int i = 0; i < PACK_CACHE; i++)
			if (r->cache[i].index && r->cache[i].first == next) {
				have_pack = r->cache[i].pack != NULL;
				have_index = 1;
			}
		if (have_pack)
			continue;
		char name[64];
		if (!have_index) {
			snprintf(name, sizeof name, "index/%016llx",
				 (unsigned long long)next);
			snap_replica_obj_prefetch(r, name);
		}
		snprintf(name, sizeof name, "packs/%016llx",
			 (unsigned long long)next);
		snap_replica_obj_prefetch(r, name);
	}
}

/* Make sure c's frame f is the one decoded in c->fplain. */
static int frame_load(snap_replica *r, struct rpack *c, uint32_t f,
		      const char *name, snap_err *err)
{
	const struct rframe *fr = &c->frames[f];
	if (c->fno == (int64_t)f)
		return 0;
	c->fno = -1;
	size_t plain = (size_t)fr->npages * fr->page_size;
	if (plain > c->fcap) {
		uint8_t *b = realloc(c->fplain, plain);
		if (!b)
			return snap_err_set(err, -ENOMEM, "out of memory");
		c->fplain = b;
		c->fcap = plain;
	}
	if (fr->off < 20 || (uint64_t)fr->off + fr->zlen > c->packlen ||
	    snap_codec_unpack(&r->codec, c->pack + fr->off, fr->zlen,
			      c->fplain, plain) < 0)
		return snap_err_set(err, -EIO, "%s/%s: the frame of pages "
				    "%llu-%llu does not decode",
				    snap_objstore_url(r->os), name,
				    (unsigned long long)(c->first + fr->page0),
				    (unsigned long long)(c->first + fr->page0 +
							 fr->npages - 1));
	c->fno = f;
	return 0;
}

/* Read page seq (page_size bytes) into buf, proven against its SHA-256
 * (and, in a version 1 pack, its identity).  Its frame is decoded once
 * and kept: the next page of the same frame is a copy. */
int snap_replica_page_read(snap_replica *r, uint64_t seq,
			   uint32_t page_size, uint8_t *buf, snap_err *err)
{
	const char *url = snap_objstore_url(r->os);
	struct rpack *c = NULL;
	int rc = slot_for(r, seq, &c, err);
	if (rc < 0)
		return rc;
	uint32_t k = (uint32_t)(seq - c->first);
	uint32_t lo = 0, hi = c->ix.nframes;   /* the last frame at or
						   before page k */
	while (hi - lo > 1) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (c->frames[mid].page0 <= k)
			lo = mid;
		else
			hi = mid;
	}
	const struct rframe *fr = &c->frames[lo];
	const uint8_t *sha = c->ix.shas + (size_t)k * c->ix.stride;
	char name[64];
	snprintf(name, sizeof name, "packs/%016llx",
		 (unsigned long long)c->first);
	if (!c->pack) {
		/* Announced after this get: its slot is free again by then, so
		 * no announcement evicts the pack about to be read. */
		rc = snap_replica_obj_get(r, name, &c->pack, &c->packlen, err);
		r->pack_gets++;
		if (r->readahead && rc != -ENOMEM)
			announce_next(r, c);
		if (rc == -ENOENT)
			return snap_err_set(err, -EIO, "%s/%s: missing", url,
					    name);
		if (rc < 0)
			return rc;
		if (c->packlen < 20 || memcmp(c->pack, PACK_MAGIC, 4) ||
		    get32(c->pack + 4) != c->ix.version ||
		    get64(c->pack + 8) != c->first) {
			free(c->pack);
			c->pack = NULL;
			return snap_err_set(err, -EIO, "%s/%s: not a valid "
					    "pack", url, name);
		}
	}
	if (fr->page_size != page_size)
		return snap_err_set(err, -EIO, "%s/%s: page %llu does not "
				    "decode (its index says %u bytes, not %u)",
				    url, name, (unsigned long long)seq,
				    fr->page_size, page_size);
	rc = frame_load(r, c, lo, name, err);
	if (rc < 0)
		return rc;
	memcpy(buf, c->fplain + (size_t)(k - fr->page0) * page_size,
	       page_size);
	if (r->whole)          /* proven with its image (replica_image.c) */
		return 0;
	uint8_t h[32];
	if (snap_sha256(buf, page_size, h) < 0)
		return snap_err_set(err, -ENOMEM, "out of memory");
	if (memcmp(h, sha, 32))
		return snap_err_set(err, -EIO, "%s/%s: page %llu does not "
				    "match its SHA-256", url, name,
				    (unsigned long long)seq);
	if (c->ix.version != 1)
		return 0;
	if (r->enc)
		snap_pageid(&r->keys, buf, page_size, h);
	if (memcmp(h, sha + 32, 32))
		return snap_err_set(err, -EIO, "%s/%s: page %llu does not "
				    "match its identity", url, name,
				    (unsigned long long)seq);
	return 0;
}
