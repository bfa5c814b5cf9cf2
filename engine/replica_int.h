/*
 * engine/replica_int.h — what the files of the replica module share:
 * replica.c (config, sealed objects, catalog rows), replica_read.c (pages
 * and whole images: export, verify), replica_push.c (the writer),
 * replica_cache.c (the writer's cache in store.db), replica_prune.c and
 * replica_log.c.  Internal to the engine.
 */
#ifndef ENGINE_REPLICA_INT_H
#define ENGINE_REPLICA_INT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "codec.h"
#include "objstore.h"
#include "replica.h"
#include "seal.h"

#define FORMAT_NAME "snapfs-replica"
#define FORMAT_VERSION 1           /* the layout (config, object names) */
#define PACK_VERSION 2             /* what new packs and indexes are */
#define PACK_TARGET (8u << 20)      /* plain bytes of pages per pack */
#define PACK_CACHE 3                /* packs a reader keeps in memory */
#define REPLICA_WINDOW (4u << 20)   /* image bytes a sequential reader of
					 an image in place gets at a time */
#define PACK_MAGIC "SFPK"
#define INDEX_MAGIC "SFIX"
/* Version 1: one zstd frame per page; per page of the index its SHA-256,
 * identity, size, compressed length and offset in the pack. */
#define INDEX_ENTRY (32 + 32 + 4 + 4 + 4)
/* Version 2: runs of consecutive pages of one size compressed together
 * (frames of FRAME_TARGET plain bytes, zstd level FRAME_LEVEL); the index
 * holds a frame table (offset, compressed length, pages, page size) and
 * the SHA-256 of every page (engine/DESIGN.md §6). */
#define FRAME_TARGET (1u << 20)
#define FRAME_LEVEL 2
#define INDEX_HEAD2 24              /* magic, version, first, count, frames */
#define FRAME_ENTRY 16
/* The most plain bytes one frame may hold (a reader's bound). */
#define FRAME_MAX (PACK_TARGET + SNAP_PAGE_MAX)

/* An index object taken apart (snap_replica_index_parse); the pointers
 * are into its bytes. */
typedef struct ridx {
	uint32_t version;      /* 1 or 2 */
	uint64_t first;
	uint32_t count;        /* pages */
	uint32_t nframes;      /* v2: frames (v1: count, one per page) */
	const uint8_t *frames; /* v2: nframes of FRAME_ENTRY bytes */
	const uint8_t *shas;   /* the SHA-256 of page i at shas + i * stride;
				  v1: identity, size, length, offset follow */
	size_t stride;
} ridx;

/* One frame of a pack as a reader finds it. */
struct rframe {
	uint32_t off, zlen;    /* in the pack */
	uint32_t page0, npages;   /* its pages (indexes in the pack) */
	uint32_t page_size;
};

typedef struct snap_replica_names {
	char **v;
	size_t n, cap;
} snap_replica_names;

struct snap_replica {
	snap_objstore *os;
	int enc;
	snap_keys keys;
	char id[33];           /* the replica's id (hex), from its config */
	snap_replica_names bad_rows;  /* catalog rows the last listing
					 skipped as damaged (verify names
					 them) */
	char *cache_key;       /* id and URL: what the writer's cache in
				  store.db is keyed by (a copied replica has
				  the same id at another URL) */
	int64_t cache_n;       /* ... and its number there (replica_keys),
				  which the page rows name */
	snap_store *rowstore;  /* a push's store: catalog rows it has seen
				  come from its replica_rows, not a GET */
	int rowcache_tried;    /* cache_n looked up for rowstore */
	struct rowdoc {        /* rows this run read from the replica */
		char obj[64];
		uint8_t *doc;
		size_t len;
	} *fresh;
	size_t nfresh, fresh_cap;
	snap_replica_names listed;  /* the last listing of snapshots/ */
	char lock_name[64];    /* this writer's lock ("": none) ... */
	char lock_what[16];    /* ... what it announces ... */
	int64_t lock_put_s;    /* ... and when it was last written */
	int werr;              /* the last image walk failed writing the
				  caller's file (a local error, not the
				  replica's: verify --full stops on it) */
	int64_t created;       /* config's "created" (epoch seconds) */
	uint8_t master[SNAP_KEY_BYTES];  /* encrypted: the master key (for a
					    passphrase change); wiped at
					    close */
	sqlite3 *mem;          /* for json_extract */
	/* reader state */
	uint64_t *firsts;      /* sorted first seqs of indexed packs */
	size_t nfirsts;
	struct rpack {
		uint64_t first;
		uint32_t count;
		uint8_t *index;    /* the index object's plain bytes */
		ridx ix;         /* ... taken apart (points into index) */
		struct rframe *frames;  /* ix.nframes (v1: one per page) */
		uint8_t *pack;     /* the pack's plain bytes, or NULL */
		size_t packlen;
		uint8_t *fplain;   /* the last frame decoded, or NULL */
		size_t fcap;
		int64_t fno;       /* its number, -1: none */
		uint64_t used;     /* LRU clock */
	} cache[PACK_CACHE];
	uint64_t clock;
	int pack_version;      /* what a push writes: PACK_VERSION (tests
				  may set 1, the old format) */
	int readahead;         /* a whole image is read: announce the next
				  pack (replica_read.c) */
	int whole;             /* ... and proven by its SHA-256 as a whole:
				  a page read needs no proof of its own */
	uint64_t pack_gets;    /* packs fetched by this handle's reads */
	snap_codec codec;
	int codec_ok;
};

/* Little-endian fields of packs and indexes. */
static inline void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* One catalog row as the replica keeps it. */
typedef struct rrow {
	snap_info si;
	char obj[64];          /* "snapshots/<id>" */
	char map[64];          /* "maps/<id>" */
	char store[33];        /* "store": the id of the store that wrote
				  it; "" in a row written before rows
				  named their store */
} rrow;


/* Hex digits of n bytes into out (2n + 1 chars). */
void snap_replica_hex(const uint8_t *b, size_t n, char *out);
/* Decode 2n hex digits into out; 0 or -EINVAL. */
int snap_replica_unhex(const char *s, uint8_t *out, size_t n);

/* Put plain bytes as object name (sealed when the replica is encrypted);
 * adds the bytes written to *bytes when bytes is not NULL. */
int snap_replica_obj_put(snap_replica *r, const char *name, const void *plain,
			 size_t len, uint64_t *bytes, snap_err *err);

/* The same through another connection to the replica (an upload
 * thread's own, snap_objstore_open of the same URL). */
int snap_replica_obj_put_to(snap_replica *r, snap_objstore *os,
			    const char *name, const void *plain, size_t len,
			    uint64_t *bytes, snap_err *err);

/* Get object name's plain bytes (free()); -ENOENT when absent, -EIO when
 * it does not open. */
int snap_replica_obj_get(snap_replica *r, const char *name, uint8_t **plain,
			 size_t *len, snap_err *err);

/* Announce object name (snap_objstore_prefetch) with the limit its get
 * will have: a prefetch never takes more than the get would. */
void snap_replica_obj_prefetch(snap_replica *r, const char *name);

/* Every object name under dir; free with snap_replica_names_free. */
int snap_replica_list_dir(snap_replica *r, const char *dir,
			  snap_replica_names *ns, snap_err *err);
int snap_replica_names_add(snap_replica_names *ns, const char *name);
void snap_replica_names_free(snap_replica_names *ns);

/* Write si's page map (seqs: the seq of each page) and then its catalog
 * row, the commit point, naming store_id; every pack the map needs must
 * be durable already (replica_push.c).  Counts the bytes and the
 * snapshot in *st; caches the row (replica_rows, replica_snaps). */
int snap_replica_row_write(snap_replica *r, snap_store *s,
			   const char *store_id, const snap_info *si,
			   const int64_t *seqs, snap_replicate_stats *st,
			   snap_err *err);
/* Catalog rows, oldest first, or the one row called name (-ENOENT). */
int snap_replica_rows_load(snap_replica *r, const char *name, rrow **out,
			   size_t *n, snap_err *err);
int snap_replica_row_find(snap_replica *r, const char *name, rrow *out,
			  snap_err *err);

/* The sorted first seqs of every indexed pack into r->firsts (and a
 * fresh view: cached packs are forgotten). */
int snap_replica_firsts_load(snap_replica *r, snap_err *err);

/* Drop from r->firsts each pack whose index is listed but whose pack
 * is not (lost or deleted by hand: its pages are not there, and a
 * writer that counted them present would commit snapshots naming
 * them); *above gets the first seq above every dropped index's range
 * (0: none dropped).  The writer's view only: readers keep the index. */
int snap_replica_firsts_packed(snap_replica *r, uint64_t *above,
			       snap_err *err);

/* Forget every cached pack (and its index and frame). */
void snap_replica_slots_clear(snap_replica *r);

/* The pack (its place in r->firsts) that holds seq, SIZE_MAX: none; and
 * whether the pack at r->firsts[k] is cached, fetched. */
size_t snap_replica_pack_of(const snap_replica *r, uint64_t seq);
int snap_replica_pack_cached(const snap_replica *r, size_t k);

/* Check an index object's plain bytes (version 1 or 2) and take it
 * apart; -EIO when it is not a valid index. */
int snap_replica_index_parse(const uint8_t *p, size_t len, ridx *ix);

/* The text (free()) or integer of one JSON value of doc, by SQLite's
 * json_extract; NULL or def when absent. */
char *snap_replica_json_text(snap_replica *r, const char *doc, size_t len,
			     const char *path);
int64_t snap_replica_json_int(snap_replica *r, const char *doc, size_t len,
			      const char *path, int64_t def);
/* verify's part for the history (replica_log.c): each record that does
 * not open is a problem of "log" (a damaged object, though no snapshot's)
 * counted in *nbad; an error only for -ENOMEM. */
int snap_replica_log_verify(snap_replica *r, snap_replica_problem_fn fn,
			    void *ctx, unsigned *nbad, snap_err *err);
/* 1 when doc is one valid JSON object. */
int snap_replica_json_valid(snap_replica *r, const void *doc, size_t len);

/* Read page seq (page_size bytes) into buf, proven against its SHA-256
 * unless r->whole (its image's hash proves it; replica_read.c). */
int snap_replica_page_read(snap_replica *r, uint64_t seq, uint32_t page_size,
			   uint8_t *buf, snap_err *err);

/* An image read in place (replica_inplace.c) of row, whose page map
 * seqs (loaded already, still the caller's, as row is) it reads by: a
 * whole-image reader that cannot read pack by pack reads it in windows. */
int snap_replica_image_of(snap_replica *r, const rrow *row, int64_t *seqs,
			  snap_replica_image **out, snap_err *err);

/* A snapshot's page map: the seqs of its pages 1..N (free()). */
int snap_replica_map_load(snap_replica *r, const rrow *row, int64_t **seqs,
			  snap_err *err);

/* Take the replica's writer lock (replica_prune.c): put locks/<random>
 * (name gets it), then list the others; -EBUSY, own lock taken back,
 * when another live writer holds one.  Dead locks are removed. */
int snap_replica_lock(snap_replica *r, const char *what, char *name,
		      size_t cap, snap_err *err);
/* Write this writer's lock again with the current time when it is
 * older than SNAP_REPLICA_LOCK_KEEP_S: a run longer than the lock's
 * lifetime (six hours) stays alive to other writers, so a prune never
 * deletes the packs of a replicate still running.  The write is best
 * effort, but a lock found gone is never written back: -EBUSY (another
 * writer judged this one dead, when it was stopped longer than that, and
 * may have deleted what it sent).  0 without a lock.  The writer calls
 * it as it goes (per pack and every few thousand pages). */
#define SNAP_REPLICA_LOCK_KEEP_S (15 * 60)
int snap_replica_lock_keep(snap_replica *r, snap_err *err);
/* 0 while this writer's lock is still there (or it has none); -EBUSY
 * when it is gone; another error when it cannot be read.  A replicate
 * checks it before it writes maps and rows, a prune before it deletes
 * packs. */
int snap_replica_lock_held(snap_replica *r, snap_err *err);
/* Take a lock back (name "" or NULL: nothing). */
void snap_replica_unlock(snap_replica *r, const char *name);

/* The snapshots pruned from the replica (replica_prune.c), object
 * "pruned/set": PRUNED_MAGIC, then sorted keys of PRUNED_KEY bytes, the
 * first bytes of SHA-256(name, NUL, the snapshot's SHA-256).  Prune adds
 * to it before it deletes a row; replicate sends none of them again. */
#define PRUNED_OBJ "pruned/set"
#define PRUNED_MAGIC "SFPR0001"
#define PRUNED_KEY 16
/* The set (*keys free(), NULL and 0 when there is none yet). */
int snap_replica_pruned_load(snap_replica *r, uint8_t **keys, size_t *n,
			     snap_err *err);
/* 1 when the snapshot (name, sha256) is in the set. */
int snap_replica_pruned_has(const uint8_t *keys, size_t n, const char *name,
			    const uint8_t sha[32]);

/* Leave one event in the replica's history (replica_log.c); best
 * effort, never fails the run. */
void snap_replica_log_add(snap_replica *r, const char *kind, int ok,
			  const char *detail);

/* ---- the writer's cache in store.db (replica_cache.c) ---- */

/* Create the cache's tables when missing and reconcile them with the
 * replica's index listing; *next gets the first free seq. */
int snap_replica_cache_sync(snap_store *s, snap_replica *r, uint64_t *next,
			    snap_err *err);
/* Refuse (-EEXIST, err says what to do) when rows holds a snapshot of
 * another store than s: a row naming another store, or an older row
 * naming none that s neither has (name and SHA-256) nor recorded in its
 * replica_snaps for this replica's id.  Else *id gets s's store id,
 * made (meta "store_id") on the first replicate from s; nothing local is
 * written on a refusal. */
int snap_replica_owner_check(snap_store *s, snap_replica *r, const rrow *rows,
			     size_t n, const snap_info *local, size_t nlocal,
			     char id[33], snap_err *err);
/* Record one pack's pages in one transaction: the SHA-256 of page i at
 * shas + i * stride, its store page id ids[i] (ids NULL: the id of the
 * store's page of that hash; a page the store lacks is not recorded). */
int snap_replica_cache_add(snap_store *s, snap_replica *r, uint64_t first,
			   uint32_t count, const uint8_t *shas, size_t stride,
			   const int64_t *ids, snap_err *err);

/* The writer's per-page cache lookups: statements prepared once for a
 * run, and a batch of LOOKUP_BATCH lookups in one read transaction with
 * the store's lock held (nothing else may take it meanwhile: lookup_end
 * before any other use of the store). */
#define LOOKUP_BATCH 256

typedef struct snap_replica_lookup {
	snap_store *s;
	snap_replica *r;
	sqlite3_stmt *by_id;   /* store page id -> seq */
	int open;              /* a batch is open (lock held) */
	unsigned n;            /* lookups in it */
} snap_replica_lookup;

/* Prepare the lookups (after snap_replica_cache_sync). */
int snap_replica_lookup_init(snap_replica_lookup *lk, snap_store *s,
			     snap_replica *r, snap_err *err);
/* The seq the cache knows for store page id; -ENOENT when it knows
 * none. */
int snap_replica_lookup_seq(snap_replica_lookup *lk, int64_t id,
			    int64_t *seq, snap_err *err);
/* End the open batch (its read transaction and the store's lock). */
void snap_replica_lookup_end(snap_replica_lookup *lk);
void snap_replica_lookup_free(snap_replica_lookup *lk);

/* The writer's copies of catalog rows (replica_cache.c), used while
 * r->rowstore is set: get (1 with *doc, free(); 0: not cached), note a
 * row read from the replica, put one row, save what a run noted and
 * forget rows no longer listed (after the owner check), forget. */
int snap_replica_rowcache_get(snap_replica *r, const char *obj,
			      uint8_t **doc, size_t *len);
int snap_replica_rowcache_note(snap_replica *r, const char *obj,
			       const uint8_t *doc, size_t len);
void snap_replica_rowcache_put(snap_store *s, snap_replica *r,
			       const char *obj, const void *doc, size_t len);
void snap_replica_rowcache_save(snap_store *s, snap_replica *r);
void snap_replica_rowcache_forget(snap_replica *r);

/* qsort/bsearch order of uint64_t. */
int snap_replica_u64_cmp(const void *a, const void *b);

#endif /* ENGINE_REPLICA_INT_H */
