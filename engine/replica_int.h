/*
 * engine/replica_int.h — what the three files of the replica module share:
 * replica.c (config, sealed objects, catalog rows), replica_read.c (pages
 * and whole images: export, verify) and replica_push.c (the writer and its
 * cache).  Internal to the engine.
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
#define FORMAT_VERSION 1
#define PACK_TARGET (4u << 20)      /* plain bytes of pages per pack */
#define PACK_CACHE 6                /* packs a reader keeps in memory */
#define PACK_MAGIC "SFPK"
#define INDEX_MAGIC "SFIX"
#define INDEX_ENTRY (32 + 32 + 4 + 4 + 4)

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
		uint8_t *index;    /* count entries of INDEX_ENTRY bytes */
		uint8_t *pack;     /* the pack's plain bytes, or NULL */
		size_t packlen;
		uint64_t used;     /* LRU clock */
	} cache[PACK_CACHE];
	uint64_t clock;
	int readahead;         /* a whole image is read: announce the next
				  pack (replica_read.c) */
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
} rrow;


/* Hex digits of n bytes into out (2n + 1 chars). */
void snap_replica_hex(const uint8_t *b, size_t n, char *out);

/* Put plain bytes as object name (sealed when the replica is encrypted);
 * adds the bytes written to *bytes when bytes is not NULL. */
int snap_replica_obj_put(snap_replica *r, const char *name, const void *plain,
			 size_t len, uint64_t *bytes, snap_err *err);

/* Get object name's plain bytes (free()); -ENOENT when absent, -EIO when
 * it does not open. */
int snap_replica_obj_get(snap_replica *r, const char *name, uint8_t **plain,
			 size_t *len, snap_err *err);

/* Every object name under dir; free with snap_replica_names_free. */
int snap_replica_list_dir(snap_replica *r, const char *dir,
			  snap_replica_names *ns, snap_err *err);
void snap_replica_names_free(snap_replica_names *ns);

/* Catalog rows, oldest first, or the one row called name (-ENOENT). */
int snap_replica_rows_load(snap_replica *r, const char *name, rrow **out,
			   size_t *n, snap_err *err);
int snap_replica_row_find(snap_replica *r, const char *name, rrow *out,
			  snap_err *err);

/* The sorted first seqs of every indexed pack into r->firsts (and a
 * fresh view: cached packs are forgotten). */
int snap_replica_firsts_load(snap_replica *r, snap_err *err);

/* Check an index object's plain bytes; its first seq and page count. */
int snap_replica_index_parse(const uint8_t *p, size_t len, uint64_t *first,
			     uint32_t *count);

/* The text (free()) or integer of one JSON value of doc, by SQLite's
 * json_extract; NULL or def when absent. */
char *snap_replica_json_text(snap_replica *r, const char *doc, size_t len,
			     const char *path);
int64_t snap_replica_json_int(snap_replica *r, const char *doc, size_t len,
			      const char *path, int64_t def);

/* A snapshot's page map: the seqs of its pages 1..N (free()). */
int snap_replica_map_load(snap_replica *r, const rrow *row, int64_t **seqs,
			  snap_err *err);

/* Take the replica's writer lock (replica_prune.c): put locks/<random>
 * (name gets it), then list the others; -EBUSY, own lock taken back,
 * when another live writer holds one.  Dead locks are removed. */
int snap_replica_lock(snap_replica *r, const char *what, char *name,
		      size_t cap, snap_err *err);
/* Take a lock back (name "" or NULL: nothing). */
void snap_replica_unlock(snap_replica *r, const char *name);

/* Leave one event in the replica's history (replica_log.c); best
 * effort, never fails the run. */
void snap_replica_log_add(snap_replica *r, const char *kind, int ok,
			  const char *detail);

/* qsort/bsearch order of uint64_t. */
int snap_replica_u64_cmp(const void *a, const void *b);

#endif /* ENGINE_REPLICA_INT_H */
