/*
 * engine/replica_push.c — writing a store's snapshots into a replica: new
 * pages packed and sealed, each pack's index after it, a snapshot's map and
 * then its catalog row; and the writer's cache in store.db that makes an
 * unchanged page cost one lookup (engine/DESIGN.md §6).
 *
 * One pack is in flight while the next is built: a full pack's buffers are
 * handed to an upload thread (pack, then its index, then the cache rows,
 * in that order, as before) and the calling thread goes on reading,
 * hashing and compressing pages into a second set of buffers.  Before it
 * hands over the next pack, and before a snapshot's map is written, it
 * waits for the one in flight: a map is still written only after every
 * pack it needs is durable, and at most two packs are in memory.  Only the
 * upload thread talks to the object store while it runs.
 */
#include "replica_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "json.h"
#include "store_int.h"

/* ---- writing: the writer's cache in the store ---------------------------- */

#define CACHE_SQL \
	"CREATE TABLE IF NOT EXISTS replica_pages(replica TEXT NOT NULL," \
	"  hash BLOB NOT NULL, seq INTEGER NOT NULL," \
	"  PRIMARY KEY(replica, hash)) WITHOUT ROWID;" \
	"CREATE TABLE IF NOT EXISTS replica_packs(replica TEXT NOT NULL," \
	"  first INTEGER NOT NULL, count INTEGER NOT NULL," \
	"  PRIMARY KEY(replica, first)) WITHOUT ROWID;" \
	"CREATE TABLE IF NOT EXISTS replica_snaps(replica TEXT NOT NULL," \
	"  obj TEXT NOT NULL, name TEXT NOT NULL, sha256 BLOB NOT NULL," \
	"  PRIMARY KEY(replica, obj)) WITHOUT ROWID;"

/* Run one statement of the writer's cache with the replica's id as ?1, a
 * as ?2 and a 32-byte blob as ?3 (each where the statement names it);
 * *out gets the first column of the first row (when out is given;
 * -ENOENT when there is none). */
static int cache_q(snap_store *s, snap_replica *r, const char *sql,
		   int64_t a, const void *blob, int64_t *out, snap_err *err)
{
	sqlite3_stmt *st;
	snap_store_lock(s);
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, s->db, rc, "replica cache");
		snap_store_unlock(s);
		return rc;
	}
	sqlite3_bind_text(st, 1, r->cache_key, -1, SQLITE_STATIC);
	/* Parameters a statement does not name are SQLITE_RANGE: harmless. */
	sqlite3_bind_int64(st, 2, a);
	if (blob)
		sqlite3_bind_blob(st, 3, blob, 32, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (out)
			*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = out ? -ENOENT : 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "replica cache");
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

/* Record one pack's pages in the cache (one transaction). */
static int cache_add_pack(snap_store *s, snap_replica *r, uint64_t first,
			  uint32_t count, const uint8_t *entries,
			  snap_err *err)
{
	snap_store_lock(s);
	int rc = snap_store_exec(s->db, "BEGIN IMMEDIATE", err);
	sqlite3_stmt *st = NULL;
	if (rc < 0)
		goto out;
	int src = sqlite3_prepare_v2(s->db,
		"INSERT OR REPLACE INTO replica_pages(replica, hash, seq) "
		"VALUES (?1, ?2, ?3)", -1, &st, NULL);
	for (uint32_t i = 0; src == SQLITE_OK && i < count; i++) {
		sqlite3_bind_text(st, 1, r->cache_key, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, entries + (size_t)i * INDEX_ENTRY, 32,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (int64_t)(first + i));
		src = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK :
			sqlite3_errcode(s->db);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (src == SQLITE_OK)
		src = sqlite3_prepare_v2(s->db,
			"INSERT OR REPLACE INTO replica_packs(replica, first, "
			"count) VALUES (?1, ?2, ?3)", -1, &st, NULL);
	if (src == SQLITE_OK) {
		sqlite3_bind_text(st, 1, r->cache_key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)first);
		sqlite3_bind_int64(st, 3, count);
		src = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK :
			sqlite3_errcode(s->db);
	}
	sqlite3_finalize(st);
	if (src != SQLITE_OK) {
		rc = snap_err_sqlite(err, s->db, src, "replica cache");
		snap_store_exec(s->db, "ROLLBACK", NULL);
	} else {
		rc = snap_store_exec(s->db, "COMMIT", err);
	}
out:
	snap_store_unlock(s);
	return rc;
}

/* Reconcile the cache with the replica's index listing; *next gets the
 * first free seq. */
static int cache_sync(snap_store *s, snap_replica *r, uint64_t *next,
		      snap_err *err)
{
	int rc = snap_store_exec(s->db, CACHE_SQL, err);
	if (rc < 0)
		return rc;
	rc = snap_replica_firsts_load(r, err);
	if (rc < 0)
		return rc;
	*next = 1;
	/* Packs the cache knows that the replica no longer has (pruned). */
	int64_t first;
	for (;;) {
		rc = cache_q(s, r, "SELECT first FROM replica_packs WHERE "
			     "replica=?1 AND first > ?2 ORDER BY first LIMIT 1",
			     *next ? (int64_t)*next - 1 : 0, NULL, &first,
			     err);
		if (rc == -ENOENT)
			break;
		if (rc < 0)
			return rc;
		*next = (uint64_t)first + 1;
		if (bsearch(&(uint64_t){(uint64_t)first}, r->firsts,
			    r->nfirsts, sizeof *r->firsts, snap_replica_u64_cmp))
			continue;
		rc = cache_q(s, r, "DELETE FROM replica_pages WHERE replica=?1 "
			     "AND seq >= ?2 AND seq < ?2 + (SELECT count FROM "
			     "replica_packs WHERE replica=?1 AND first=?2)",
			     first, NULL, NULL, err);
		if (rc == 0)
			rc = cache_q(s, r, "DELETE FROM replica_packs WHERE "
				     "replica=?1 AND first=?2", first, NULL,
				     NULL, err);
		if (rc < 0)
			return rc;
	}
	/* Indexes the cache has not seen (another writer, a killed run). */
	*next = 1;
	for (size_t i = 0; i < r->nfirsts; i++) {
		int64_t count;
		rc = cache_q(s, r, "SELECT count FROM replica_packs WHERE "
			     "replica=?1 AND first=?2", (int64_t)r->firsts[i],
			     NULL, &count, err);
		if (rc == -ENOENT) {
			char name[64];
			uint8_t *p;
			size_t len;
			uint64_t f = 0;
			uint32_t c = 0;
			snprintf(name, sizeof name, "index/%016llx",
				 (unsigned long long)r->firsts[i]);
			snap_err e;
			rc = snap_replica_obj_get(r, name, &p, &len, &e);
			if (rc == -ENOENT)
				continue;
			if (rc == -ENOMEM) {
				*err = e;
				return rc;
			}
			if (rc < 0 ||
			    snap_replica_index_parse(p, len, &f, &c) < 0 ||
			    f != r->firsts[i]) {
				/* Junk or a damaged index: no page of it is
				 * reused, and new seqs go above its name,
				 * so nothing new can be shadowed by it. */
				if (rc == 0)
					free(p);
				if (r->firsts[i] < (1ull << 62) &&
				    r->firsts[i] + 1 > *next)
					*next = r->firsts[i] + 1;
				rc = 0;
				continue;
			}
			rc = cache_add_pack(s, r, f, c, p + 20, err);
			free(p);
			count = c;
		}
		if (rc < 0)
			return rc;
		if (r->firsts[i] + (uint64_t)count > *next)
			*next = r->firsts[i] + (uint64_t)count;
	}
	return 0;
}

/* ---- writing: one snapshot ------------------------------------------------ */

typedef struct pending {
	uint64_t first;        /* seq of the first page in the pack */
	uint32_t count;
	uint8_t *pack;         /* header (20 bytes) + compressed pages */
	size_t len, cap;
	uint8_t *index;        /* header (20 bytes) + INDEX_ENTRY per page */
	size_t ilen, icap;
	size_t plain;          /* uncompressed bytes of the pages in it */
	snap_pageidx seen;     /* sha -> seq + 1 of the pages in this pack */
	struct upload *up;     /* the pack in flight (NULL in the one there) */
} pending;

/* The pack on its way to the replica, on its own thread. */
typedef struct upload {
	pthread_t th;
	int busy;              /* th runs (or ran and is not joined yet) */
	snap_replica *r;
	snap_store *s;
	pending p;             /* its buffers (swapped with the filled one) */
	uint64_t bytes;        /* what it uploaded */
	int rc;
	snap_err err;
} upload;

/* Make room for n more bytes in a growing buffer. */
static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 65536;
	while (c < need)
		c *= 2;
	uint8_t *b = realloc(*buf, c);
	if (!b)
		return -ENOMEM;
	*buf = b;
	*cap = c;
	return 0;
}

/* Start an empty pack at seq first. */
static int pending_reset(pending *p, uint64_t first)
{
	p->first = first;
	p->count = 0;
	p->len = 20;
	p->ilen = 20;
	p->plain = 0;
	snap_pageidx_free(&p->seen);
	if (grow(&p->pack, &p->cap, 20) < 0 ||
	    grow(&p->index, &p->icap, 20) < 0 ||
	    snap_pageidx_init(&p->seen, 2048) < 0)
		return -ENOMEM;
	return 0;
}

/* Write a full pack, then its index, then record both in the cache. */
static int pack_upload(snap_replica *r, snap_store *s, pending *p,
		       uint64_t *bytes, snap_err *err)
{
	char name[64];
	snprintf(name, sizeof name, "packs/%016llx",
		 (unsigned long long)p->first);
	int rc = snap_replica_obj_put(r, name, p->pack, p->len, bytes, err);
	if (rc < 0)
		return rc;
	snprintf(name, sizeof name, "index/%016llx",
		 (unsigned long long)p->first);
	rc = snap_replica_obj_put(r, name, p->index, p->ilen, bytes, err);
	if (rc < 0)
		return rc;
	return cache_add_pack(s, r, p->first, p->count, p->index + 20, err);
}

/* The upload thread's body: one pack_upload. */
static void *upload_main(void *arg)
{
	upload *u = arg;
	u->rc = pack_upload(u->r, u->s, &u->p, &u->bytes, &u->err);
	return NULL;
}

/* Wait for the pack in flight (if any) and account for it; its error, if
 * it failed, becomes err (unless err already holds one: rc_now < 0). */
static int upload_wait(upload *u, snap_replicate_stats *st, int rc_now,
		       snap_err *err)
{
	if (!u || !u->busy)
		return 0;
	pthread_join(u->th, NULL);
	u->busy = 0;
	st->bytes += u->bytes;
	if (u->rc < 0) {
		if (rc_now >= 0)
			*err = u->err;
		return u->rc;
	}
	st->pages += u->p.count;
	return 0;
}

/* Send the pending pack on its way: wait for the one in flight, hand this
 * one's buffers to the upload thread (its own call when no thread starts)
 * and start an empty pack after it. */
static int pending_flush(snap_replica *r, snap_store *s, pending *p,
			 snap_replicate_stats *st, snap_err *err)
{
	upload *u = p->up;
	int rc = upload_wait(u, st, 0, err);
	if (rc < 0 || p->count == 0)
		return rc;
	memcpy(p->pack, PACK_MAGIC, 4);
	put32(p->pack + 4, 1);
	put64(p->pack + 8, p->first);
	put32(p->pack + 16, p->count);
	memcpy(p->index, INDEX_MAGIC, 4);
	put32(p->index + 4, 1);
	put64(p->index + 8, p->first);
	put32(p->index + 16, p->count);
	pending full = *p;
	*p = u->p;
	p->up = u;
	u->p = full;
	u->p.up = NULL;
	u->r = r;
	u->s = s;
	u->bytes = 0;
	u->rc = 0;
	memset(&u->err, 0, sizeof u->err);
	if (pthread_create(&u->th, NULL, upload_main, u) == 0)
		u->busy = 1;
	else if ((rc = pack_upload(r, s, &u->p, &st->bytes, err)) < 0)
		return rc;
	else
		st->pages += u->p.count;
	return pending_reset(p, u->p.first + u->p.count);
}

/* Add one new page to the pending pack; *seq gets its number. */
static int pending_add(snap_replica *r, pending *p, const uint8_t *page,
		       uint32_t size, const uint8_t sha[32], uint64_t *seq)
{
	if (grow(&p->pack, &p->cap, p->len + ZSTD_compressBound(size)) < 0 ||
	    grow(&p->index, &p->icap, p->ilen + INDEX_ENTRY) < 0)
		return -ENOMEM;
	size_t z = snap_codec_pack(&r->codec, page, size, p->pack + p->len,
				   p->cap - p->len);
	uint8_t *e = p->index + p->ilen;
	memcpy(e, sha, 32);
	if (r->enc)
		snap_pageid(&r->keys, page, size, e + 32);
	else
		memcpy(e + 32, sha, 32);
	put32(e + 64, size);
	put32(e + 68, (uint32_t)z);
	put32(e + 72, (uint32_t)p->len);
	p->len += z;
	p->ilen += INDEX_ENTRY;
	p->plain += size;
	*seq = p->first + p->count++;
	if (snap_pageidx_put(&p->seen, sha, (int64_t)*seq + 1) < 0)
		return -ENOMEM;
	return 0;
}

/* Upload one local snapshot: its new pages, its map, its catalog row. */
static int push_one(snap_replica *r, snap_store *s, const snap_info *si,
		    pending *p, snap_progress_fn progress, void *pctx,
		    uint64_t *done, uint64_t total, snap_replicate_stats *st,
		    snap_err *err)
{
	snap_image *im = NULL;
	int64_t *seqs = calloc(si->page_count ? si->page_count : 1,
			       sizeof *seqs);
	uint8_t *page = malloc(si->page_size);
	void *map = NULL;
	size_t maplen = 0;
	char *tables = NULL;
	snap_json j;
	snap_json_init(&j);
	int rc;
	if (!seqs || !page) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = snap_image_open(s, si->id, &im, err);
	if (rc < 0)
		goto out;
	for (uint32_t i = 0; i < si->page_count; i++) {
		int64_t seq;
		rc = cache_q(s, r, "SELECT r.seq FROM pages p JOIN "
			     "replica_pages r ON r.replica=?1 AND r.hash=p.hash "
			     "WHERE p.id=?2", snap_image_page_id(im, i + 1),
			     NULL, &seq, err);
		if (rc == 0) {
			seqs[i] = seq;
			continue;
		}
		if (rc != -ENOENT)
			goto out;
		uint8_t stored[32], h[32];
		rc = snap_image_read_page(im, i + 1, page, stored, err);
		if (rc < 0)
			goto out;
		if (snap_sha256(page, si->page_size, h) < 0) {
			rc = snap_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		if (memcmp(h, stored, 32)) {
			rc = snap_err_set(err, -EIO,
					  "%s: page %u does not match its hash "
					  "in the local store; nothing of it "
					  "was replicated (run snapctl verify)",
					  si->name, i + 1);
			goto out;
		}
		int64_t known = snap_pageidx_get(&p->seen, h);
		if (known <= 0 && p->up->busy)   /* the pack in flight */
			known = snap_pageidx_get(&p->up->p.seen, h);
		if (known > 0) {
			seqs[i] = known - 1;
			continue;
		}
		rc = cache_q(s, r, "SELECT seq FROM replica_pages WHERE "
			     "replica=?1 AND hash=?3", 0, h, &seq,
			     err);
		if (rc == 0) {
			seqs[i] = seq;
			continue;
		}
		if (rc != -ENOENT)
			goto out;
		uint64_t nseq;
		if (pending_add(r, p, page, si->page_size, h, &nseq) < 0) {
			rc = snap_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		seqs[i] = (int64_t)nseq;
		if (p->plain >= PACK_TARGET) {
			rc = pending_flush(r, s, p, st, err);
			if (rc < 0)
				goto out;
		}
		if (progress && (++*done % 256 == 0))
			progress(pctx, *done, total);
	}
	rc = pending_flush(r, s, p, st, err);
	if (rc == 0)
		rc = upload_wait(p->up, st, rc, err);
	if (rc < 0)
		goto out;
	/* The map, then the row: the row is the commit point. */
	if (snap_map_encode(seqs, si->page_count, &map, &maplen) < 0) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	uint8_t idb[16];
	char id[33], mapname[64], rowname[64], hex[65];
	snap_random(idb, sizeof idb);
	snap_replica_hex(idb, sizeof idb, id);
	snprintf(mapname, sizeof mapname, "maps/%s", id);
	snprintf(rowname, sizeof rowname, "snapshots/%s", id);
	rc = snap_replica_obj_put(r, mapname, map, maplen, &st->bytes, err);
	if (rc < 0)
		goto out;
	rc = snap_store_tables_json(s, si->id, &tables, err);
	if (rc < 0)
		goto out;
	snap_json_obj_begin(&j);
	snap_json_key(&j, "name"); snap_json_str(&j, si->name);
	snap_json_key(&j, "label"); snap_json_str(&j, si->label);
	snap_json_key(&j, "kind"); snap_json_str(&j, snap_kind_name(si->kind));
	snap_json_key(&j, "created_ns"); snap_json_int(&j, si->created_ns);
	snap_json_key(&j, "comment"); snap_json_str(&j, si->comment);
	snap_json_key(&j, "pinned"); snap_json_int(&j, si->pinned);
	snap_json_key(&j, "page_size"); snap_json_int(&j, si->page_size);
	snap_json_key(&j, "page_count"); snap_json_int(&j, si->page_count);
	snap_json_key(&j, "image_size"); snap_json_int(&j,
		(int64_t)si->image_size);
	snap_replica_hex(si->sha256, 32, hex);
	snap_json_key(&j, "sha256"); snap_json_str(&j, hex);
	snap_json_key(&j, "change_counter"); snap_json_int(&j,
		si->change_counter);
	snap_json_key(&j, "tables"); snap_json_raw(&j, tables);
	snap_json_key(&j, "map"); snap_json_str(&j, mapname);
	snap_json_obj_end(&j);
	if (j.oom) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = snap_replica_obj_put(r, rowname, j.buf, j.len, &st->bytes, err);
	if (rc < 0)
		goto out;
	st->snapshots++;
	snap_store_lock(s);
	sqlite3_stmt *ins;
	if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO replica_snaps"
			       "(replica, obj, name, sha256) VALUES "
			       "(?1, ?2, ?3, ?4)", -1, &ins, NULL) == SQLITE_OK) {
		sqlite3_bind_text(ins, 1, r->cache_key, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, rowname, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 3, si->name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(ins, 4, si->sha256, 32, SQLITE_STATIC);
		sqlite3_step(ins);   /* a hint only: a failure costs a GET */
		sqlite3_finalize(ins);
	}
	snap_store_unlock(s);
out:
	snap_json_free(&j);
	free(tables);
	free(map);
	snap_image_close(im);
	free(page);
	free(seqs);
	return rc;
}

int snap_replica_push(snap_replica *r, snap_store *s,
		      snap_progress_fn progress, void *pctx,
		      snap_replicate_stats *st, snap_err *err)
{
	memset(st, 0, sizeof *st);
	upload up = {0};
	pending p = {.up = &up};
	snap_info *local = NULL;
	size_t nlocal = 0;
	rrow *rows = NULL;
	size_t nrows = 0;
	uint64_t next;
	char lock[64] = "";
	int rc = snap_replica_lock(r, "replicate", lock, sizeof lock, err);
	if (rc < 0)
		return rc;
	rc = cache_sync(s, r, &next, err);
	if (rc < 0)
		goto out;
	rc = snap_replica_rows_load(r, NULL, &rows, &nrows, err);
	if (rc < 0)
		goto out;
	rc = snap_store_list(s, &local, &nlocal, err);
	if (rc < 0)
		goto out;
	uint64_t total = 0, done = 0;
	for (size_t i = 0; i < nlocal; i++)
		total += local[i].page_count;
	if (pending_reset(&p, next) < 0) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nlocal; i++) {
		const snap_info *si = &local[i];
		int have = 0;
		for (size_t k = 0; k < nrows && !have; k++)
			have = !strcmp(rows[k].si.name, si->name) &&
			       !memcmp(rows[k].si.sha256, si->sha256, 32);
		if (si->trash != SNAP_TRASH_NONE)
			continue;
		if (have) {
			st->present++;
			continue;
		}
		rc = push_one(r, s, si, &p, progress, pctx, &done, total, st,
			      err);
		if (rc < 0) {
			snap_err_prefix(err, "replicate to %s",
					snap_objstore_url(r->os));
			goto out;
		}
	}
	if (progress)
		progress(pctx, total, total);
out:
	{
		/* A failure can leave a pack in flight: let it land first. */
		int urc = upload_wait(&up, st, rc, err);
		if (rc == 0)
			rc = urc;
	}
	if (rc == 0 && st->snapshots) {
		char what[160];
		snprintf(what, sizeof what, "%llu snapshots, %llu pages, %llu "
			 "bytes", (unsigned long long)st->snapshots,
			 (unsigned long long)st->pages,
			 (unsigned long long)st->bytes);
		snap_replica_log_add(r, "replicate", 1, what);
	} else if (rc < 0 && rc != -EBUSY) {
		snap_replica_log_add(r, "replicate", 0, err->msg);
	}
	snap_replica_unlock(r, lock);
	free(p.pack);
	free(p.index);
	snap_pageidx_free(&p.seen);
	free(up.p.pack);
	free(up.p.index);
	snap_pageidx_free(&up.p.seen);
	free(local);
	free(rows);
	return rc;
}
