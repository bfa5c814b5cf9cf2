/*
 * engine/replica_cache.c — the writer's cache of a replica in the local
 * store.db (engine/DESIGN.md §6, "The writer's cache"): which store page
 * (its id, and its SHA-256 to prove the id still names that content) has
 * which seq in the replica, which packs it knows; reconciled
 * with the replica's index and pack listings at the start of every run
 * (snap_replica_cache_sync), a pack's pages recorded once its index is
 * durable (snap_replica_cache_add), and the per-page lookups of a run
 * (snap_replica_lookup_*): statements prepared once, LOOKUP_BATCH lookups
 * to one read transaction.
 *
 * And whose the replica is (snap_replica_owner_check): a store has an id
 * of its own (meta "store_id", made on its first replicate) that every
 * catalog row it writes names; a replica holding another store's
 * snapshots is refused before anything is written.  A row from before
 * rows named their store is this store's when the store has that
 * snapshot (name and SHA-256) or its replica_snaps recorded writing it,
 * under this replica's id at any URL, or when a row of the replica
 * names this store (its writer checked, before that row, that every
 * older row was its own).  A store made for a database restored from the
 * replica takes the id of the store that wrote the snapshot
 * (snap_replica_adopt) and so continues its replica.
 */
#include "replica_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* Keyed by the store's page id, not by hash: a pack's new pages have
 * ids that grow as the snapshot's new pages were stored, so recording a
 * pack appends to the table's last leaves.  A hash key sent each pack's
 * rows to random leaves: every pack rewrote nearly every leaf of a table
 * larger than the store's page cache (16 GB written through the WAL for
 * one 1 GB first replicate).  The hash is kept beside the id: an id
 * whose page was deleted and later reused names other content, and the
 * lookup then misses.  A row names its replica by a number
 * (replica_keys), not by the id and URL: about 50 bytes a page instead of
 * 104 (28 MB for a 1 GB database). */
#define CACHE_SQL \
	"CREATE TABLE IF NOT EXISTS replica_keys(n INTEGER PRIMARY KEY," \
	"  key TEXT NOT NULL UNIQUE);" \
	"CREATE TABLE IF NOT EXISTS replica_pageids(replica INTEGER NOT NULL," \
	"  id INTEGER NOT NULL, hash BLOB NOT NULL, seq INTEGER NOT NULL," \
	"  PRIMARY KEY(replica, id)) WITHOUT ROWID;" \
	"CREATE TABLE IF NOT EXISTS replica_packs(replica TEXT NOT NULL," \
	"  first INTEGER NOT NULL, count INTEGER NOT NULL," \
	"  PRIMARY KEY(replica, first)) WITHOUT ROWID;" \
	"CREATE TABLE IF NOT EXISTS replica_snaps(replica TEXT NOT NULL," \
	"  obj TEXT NOT NULL, name TEXT NOT NULL, sha256 BLOB NOT NULL," \
	"  PRIMARY KEY(replica, obj)) WITHOUT ROWID;" \
	"CREATE TABLE IF NOT EXISTS replica_rows(replica INTEGER NOT NULL," \
	"  obj TEXT NOT NULL, doc BLOB NOT NULL," \
	"  PRIMARY KEY(replica, obj)) WITHOUT ROWID;"

/* A cache from before replica_pageids (keyed by hash): its pages are
 * forgotten with the packs it knew, and the next sync reads every index
 * again into the new table (one GET per pack, once).  replica_pageids is
 * emptied too: an older snapfs run in between may have pruned and reused
 * seqs that rows of it name. */
#define CACHE_UPGRADE_SQL \
	"DELETE FROM replica_packs;" \
	"DELETE FROM replica_pageids;" \
	"DROP TABLE replica_pages;"

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

/* 1 when an old row (no "store") is s's: s has its snapshot (name and
 * SHA-256), or its replica_snaps (byobj: NULL when s never replicated)
 * records writing it into a replica of r's id. */
static int owner_old_row_ours(snap_replica *r, const rrow *row,
			      const snap_info *local, size_t nlocal,
			      sqlite3_stmt *byobj)
{
	for (size_t i = 0; i < nlocal; i++)
		if (!strcmp(local[i].name, row->si.name) &&
		    !memcmp(local[i].sha256, row->si.sha256, 32))
			return 1;
	if (!byobj)
		return 0;
	sqlite3_bind_text(byobj, 1, r->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(byobj, 2, row->obj, -1, SQLITE_STATIC);
	int ours = sqlite3_step(byobj) == SQLITE_ROW;
	sqlite3_reset(byobj);
	return ours;
}

int snap_replica_owner_check(snap_store *s, snap_replica *r, const rrow *rows,
			     size_t n, const snap_info *local, size_t nlocal,
			     char id[33], snap_err *err)
{
	sqlite3_stmt *byobj = NULL;
	size_t foreign = 0, first = 0;
	int rc = 0;

	snap_store_lock(s);
	rc = snap_store_meta_get(s->db, "store_id", id, 33);
	/* No table: a store that never replicated knows no old rows. */
	if (rc == SQLITE_OK &&
	    sqlite3_prepare_v2(s->db, "SELECT 1 FROM replica_snaps WHERE "
			       "substr(replica, 1, 33) = ?1 || ' ' AND obj=?2",
			       -1, &byobj, NULL) != SQLITE_OK)
		byobj = NULL;
	/* A row naming this store: its writer (this store, or the store
	 * whose id this one adopted) found every older row its own; older
	 * by the snapshot's time, so that a row an old snapfs of another
	 * database wrote later is not taken with them. */
	int named = 0;
	int64_t since = INT64_MAX;
	for (size_t i = 0; rc == SQLITE_OK && id[0] && i < n; i++)
		if (!strcmp(rows[i].store, id)) {
			named = 1;
			if (rows[i].si.created_ns < since)
				since = rows[i].si.created_ns;
		}
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		int ours = rows[i].store[0] ?
			id[0] && !strcmp(rows[i].store, id) :
			(named && rows[i].si.created_ns <= since) ||
			owner_old_row_ours(r, &rows[i], local, nlocal,
					   byobj);
		if (!ours && foreign++ == 0)
			first = i;
	}
	sqlite3_finalize(byobj);
	if (rc == SQLITE_OK && !foreign && !id[0]) {
		rc = sqlite3_exec(s->db, "INSERT OR IGNORE INTO meta(key, "
				  "value) VALUES('store_id', "
				  "lower(hex(randomblob(16))))", NULL, NULL,
				  NULL);
		if (rc == SQLITE_OK)
			rc = snap_store_meta_get(s->db, "store_id", id, 33);
	}
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, s->db, rc, "store %s: its id", s->dir);
	snap_store_unlock(s);
	if (rc == 0 && foreign) {
		/* The advice: a sibling named after this database. */
		const char *url = snap_objstore_url(r->os);
		const char *db = snap_store_db_path(s);
		const char *base = strrchr(db, '/') ? strrchr(db, '/') + 1 : db;
		int ulen = (int)strlen(url), blen = (int)strlen(base);
		while (ulen > 0 && url[ulen - 1] == '/')
			ulen--;
		if (blen > 3 && !strcmp(base + blen - 3, ".db"))
			blen -= 3;
		rc = snap_err_set(err, -EEXIST, "%s holds %zu snapshot%s of "
				  "another database (%s%s); nothing was "
				  "replicated: give each database a replica "
				  "of its own (another URL or prefix, such as "
				  "%.*s-%.*s); a database restored from this "
				  "replica continues it only when restored "
				  "with 'snapctl --replica %.*s restore'",
				  url, foreign, foreign == 1 ? "" : "s",
				  rows[first].si.name, foreign > 1 ? ", ..." :
				  "", ulen, url, blen, base, ulen, url);
	}
	return rc;
}

int snap_replica_adopt(snap_replica *r, const char *name, snap_store *s,
		       snap_err *err)
{
	rrow row;
	uint8_t raw[16];
	char id[33];
	int rc = snap_replica_row_find(r, name, &row, err);
	if (rc < 0)
		return rc;
	/* A row from before store ids names none; text that is no id (the
	 * row parser's "?") is no store to continue. */
	if (strlen(row.store) != 32 || snap_replica_unhex(row.store, raw,
							  sizeof raw) < 0)
		return 0;
	sqlite3_stmt *st = NULL;
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO meta(key, value) "
				"VALUES('store_id', ?1)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, row.store, -1, SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK :
			sqlite3_errcode(s->db);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = snap_store_meta_get(s->db, "store_id", id, sizeof id);
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, s->db, rc, "store %s: its id",
				     s->dir);
	snap_store_unlock(s);
	return rc < 0 ? rc : !strcmp(id, row.store);
}

int snap_replica_written_by(snap_replica *r, const char *name, snap_store *s,
			    snap_err *err)
{
	rrow row;
	char id[33] = "";
	int rc = snap_replica_row_find(r, name, &row, err);
	if (rc < 0)
		return rc;
	snap_store_lock(s);
	rc = snap_store_meta_get(s->db, "store_id", id, sizeof id);
	snap_store_unlock(s);
	return rc == SQLITE_OK && strlen(row.store) == 32 &&
	       !strcmp(id, row.store);
}

/* Record one pack's pages in the cache (one transaction): page i's
 * SHA-256 at shas + i * stride and its store page id ids[i]; with ids
 * NULL (pages another run wrote, read from an index), the id of the
 * store's page of that hash, and nothing for a page the store lacks. */
int snap_replica_cache_add(snap_store *s, snap_replica *r, uint64_t first,
			  uint32_t count, const uint8_t *shas, size_t stride,
			  const int64_t *ids, snap_err *err)
{
	snap_store_lock(s);
	int rc = snap_store_exec(s->db, "BEGIN IMMEDIATE", err);
	sqlite3_stmt *st = NULL;
	if (rc < 0)
		goto out;
	int src = sqlite3_prepare_v2(s->db, ids ?
		"INSERT OR REPLACE INTO replica_pageids(replica, id, hash, seq) "
		"VALUES (?1, ?4, ?2, ?3)" :
		"INSERT OR REPLACE INTO replica_pageids(replica, id, hash, seq) "
		"SELECT ?1, id, hash, ?3 FROM pages WHERE hash=?2",
		-1, &st, NULL);
	for (uint32_t i = 0; src == SQLITE_OK && i < count; i++) {
		sqlite3_bind_int64(st, 1, r->cache_n);
		sqlite3_bind_blob(st, 2, shas + (size_t)i * stride, 32,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (int64_t)(first + i));
		if (ids)
			sqlite3_bind_int64(st, 4, ids[i]);
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

/* The local part of a sync, in one transaction under the store's lock
 * (the daemon's FUSE threads share the connection): the tables, an
 * upgrade from replica_pages, the replica's number, and the packs the
 * cache knows that the listing no longer has (pruned) with their pages.
 * One transaction: a pack forgotten without its pages would leave rows
 * naming seqs that are gone, and no later run would see the pack to
 * clean them. */
static int cache_sync_local(snap_store *s, snap_replica *r, snap_err *err)
{
	snap_store_lock(s);
	int rc = snap_store_exec(s->db, CACHE_SQL "BEGIN IMMEDIATE", err);
	if (rc < 0)
		goto out;
	int64_t v, first = 0;
	rc = cache_q(s, r, "SELECT 1 FROM sqlite_master WHERE type='table' "
		     "AND name='replica_pages'", 0, NULL, &v, err);
	if (rc == 0)
		rc = snap_store_exec(s->db, CACHE_UPGRADE_SQL, err);
	if (rc == -ENOENT)
		rc = 0;
	if (rc == 0)
		rc = cache_q(s, r, "INSERT OR IGNORE INTO replica_keys(key) "
			     "VALUES (?1)", 0, NULL, NULL, err);
	if (rc == 0)
		rc = cache_q(s, r, "SELECT n FROM replica_keys WHERE key=?1",
			     0, NULL, &r->cache_n, err);
	int gone = 0;
	while (rc == 0) {
		rc = cache_q(s, r, "SELECT first FROM replica_packs WHERE "
			     "replica=?1 AND first > ?2 ORDER BY first LIMIT 1",
			     first, NULL, &first, err);
		if (rc == -ENOENT) {
			rc = 0;
			break;
		}
		if (rc < 0 || bsearch(&(uint64_t){(uint64_t)first}, r->firsts,
				      r->nfirsts, sizeof *r->firsts,
				      snap_replica_u64_cmp))
			continue;
		rc = cache_q(s, r, "DELETE FROM replica_packs WHERE "
			     "replica=?1 AND first=?2", first, NULL, NULL,
			     err);
		gone = 1;
	}
	/* ... and their pages: those whose seq no known pack holds (one
	 * pass over the replica's rows, not one per pack gone). */
	if (rc == 0 && gone)
		rc = cache_q(s, r, "DELETE FROM replica_pageids WHERE "
			     "replica=(SELECT n FROM replica_keys WHERE "
			     "key=?1) AND NOT EXISTS (SELECT 1 FROM "
			     "replica_packs k WHERE k.replica=?1 AND "
			     "k.first <= seq AND seq < k.first + k.count "
			     "AND k.first = (SELECT max(first) FROM "
			     "replica_packs WHERE replica=?1 AND first <= "
			     "seq))", 0, NULL, NULL, err);
	if (rc == 0)
		rc = snap_store_exec(s->db, "COMMIT", err);
	if (rc < 0 && !sqlite3_get_autocommit(s->db))
		snap_store_exec(s->db, "ROLLBACK", NULL);
out:
	snap_store_unlock(s);
	return rc;
}

/* Reconcile the cache with the replica's index listing; *next gets the
 * first free seq. */
int snap_replica_cache_sync(snap_store *s, snap_replica *r, uint64_t *next,
		      snap_err *err)
{
	uint64_t above = 0;
	int rc = snap_replica_firsts_load(r, err);
	if (rc == 0)
		rc = snap_replica_firsts_packed(r, &above, err);
	if (rc < 0)
		return rc;
	rc = cache_sync_local(s, r, err);
	if (rc < 0)
		return rc;
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
			ridx ix;
			snprintf(name, sizeof name, "index/%016llx",
				 (unsigned long long)r->firsts[i]);
			snap_err e;
			rc = snap_replica_obj_get(r, name, &p, &len, &e);
			if (rc == -ENOENT)
				continue;
			/* Unread but not junk (the server answering 5xx,
			 * out of reach, a timeout): its range is unknown,
			 * and new seqs above its name alone would reuse
			 * the seqs of its pages. */
			if (rc < 0 && rc != -EIO && rc != -EFBIG) {
				*err = e;
				return rc;
			}
			if (rc < 0 ||
			    snap_replica_index_parse(p, len, &ix) < 0 ||
			    ix.first != r->firsts[i]) {
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
			rc = snap_replica_cache_add(s, r, ix.first, ix.count,
						    ix.shas, ix.stride, NULL,
						    err);
			free(p);
			count = ix.count;
		}
		if (rc < 0)
			return rc;
		if (r->firsts[i] + (uint64_t)count > *next)
			*next = r->firsts[i] + (uint64_t)count;
	}
	if (above > *next)
		*next = above;
	return 0;
}

/* Prepare the lookups (the cache's tables exist: cache_sync). */
int snap_replica_lookup_init(snap_replica_lookup *lk, snap_store *s, snap_replica *r,
		       snap_err *err)
{
	memset(lk, 0, sizeof *lk);
	lk->s = s;
	lk->r = r;
	snap_store_lock(s);
	/* The page's hash by its rowid, not through the hash index: as a
	 * join, SQLite proved the hash with a lookup in pages' hash index,
	 * one random leaf of it per page (227,000 reads of 64 KiB for one
	 * next replicate of a 1 GB database); by rowid the lookups of a
	 * snapshot walk both tables in order. */
	int rc = sqlite3_prepare_v3(s->db, "SELECT seq FROM replica_pageids "
		"WHERE replica=?1 AND id=?2 AND hash=(SELECT hash FROM pages "
		"WHERE id=?2)", -1, SQLITE_PREPARE_PERSISTENT, &lk->by_id,
		NULL);
	if (rc != SQLITE_OK)
		rc = snap_err_sqlite(err, s->db, rc, "replica cache");
	snap_store_unlock(s);
	return rc;
}

/* End the open batch (if any): its read transaction and the lock. */
void snap_replica_lookup_end(snap_replica_lookup *lk)
{
	if (!lk->open)
		return;
	if (!sqlite3_get_autocommit(lk->s->db))
		snap_store_exec(lk->s->db, "COMMIT", NULL);
	if (!sqlite3_get_autocommit(lk->s->db))
		snap_store_exec(lk->s->db, "ROLLBACK", NULL);
	snap_store_unlock(lk->s);
	lk->open = 0;
}

void snap_replica_lookup_free(snap_replica_lookup *lk)
{
	snap_replica_lookup_end(lk);
	sqlite3_finalize(lk->by_id);
	lk->by_id = NULL;
}

/* The seq the cache knows for store page id; -ENOENT when it knows
 * none. */
int snap_replica_lookup_seq(snap_replica_lookup *lk, int64_t id,
			    int64_t *seq, snap_err *err)
{
	sqlite3 *db = lk->s->db;
	if (!lk->open) {
		snap_store_lock(lk->s);
		lk->open = 1;
		lk->n = 0;
		int rc = snap_store_exec(db, "BEGIN", err);
		if (rc < 0) {
			snap_replica_lookup_end(lk);
			return rc;
		}
	}
	sqlite3_stmt *st = lk->by_id;
	sqlite3_bind_int64(st, 1, lk->r->cache_n);
	sqlite3_bind_int64(st, 2, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		rc = snap_err_sqlite(err, db, rc, "replica cache");
	}
	sqlite3_reset(st);
	if (++lk->n >= LOOKUP_BATCH || (rc < 0 && rc != -ENOENT))
		snap_replica_lookup_end(lk);
	return rc;
}

/* ---- the catalog rows a writer has seen (replica_rows) -------------------- */

/* A row object is written once under a random name and never changed:
 * its opened bytes, kept here, stand for a GET at every later run.  A
 * replicate run of a replica of 300 snapshots made 300 GETs, one after
 * another, to find the one it lacked (1.8 s on the local test server;
 * about 25 ms each on a distant S3). */

/* The replica's number in replica_keys, read only: 0 when this store
 * never cached it (or has no cache tables: nothing is created here). */
static int64_t rowcache_n(snap_replica *r)
{
	if (r->cache_n || r->rowcache_tried)
		return r->cache_n;
	r->rowcache_tried = 1;
	snap_err e;
	int64_t n;
	if (cache_q(r->rowstore, r, "SELECT n FROM replica_keys WHERE key=?1",
		    0, NULL, &n, &e) == 0)
		r->cache_n = n;
	return r->cache_n;
}

int snap_replica_rowcache_get(snap_replica *r, const char *obj,
			      uint8_t **doc, size_t *len)
{
	snap_store *s = r->rowstore;
	if (!s || !rowcache_n(r))
		return 0;
	sqlite3_stmt *st;
	int got = 0;
	snap_store_lock(s);
	if (sqlite3_prepare_v2(s->db, "SELECT doc FROM replica_rows WHERE "
			       "replica=?1 AND obj=?2", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_int64(st, 1, r->cache_n);
		sqlite3_bind_text(st, 2, obj, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW) {
			size_t n = (size_t)sqlite3_column_bytes(st, 0);
			uint8_t *d = malloc(n ? n : 1);
			if (d) {
				memcpy(d, sqlite3_column_blob(st, 0), n);
				*doc = d;
				*len = n;
				got = 1;
			}
		}
		sqlite3_finalize(st);
	}
	snap_store_unlock(s);
	return got;
}

/* Remember one row read from the replica, for snap_replica_rowcache_save
 * (nothing is written before the run knows the replica is its own). */
int snap_replica_rowcache_note(snap_replica *r, const char *obj,
			       const uint8_t *doc, size_t len)
{
	if (!r->rowstore)
		return 0;
	if (r->nfresh == r->fresh_cap) {
		size_t c = r->fresh_cap ? 2 * r->fresh_cap : 16;
		struct rowdoc *v = realloc(r->fresh, c * sizeof *v);
		if (!v)
			return -ENOMEM;
		r->fresh = v;
		r->fresh_cap = c;
	}
	struct rowdoc *f = &r->fresh[r->nfresh];
	f->doc = malloc(len ? len : 1);
	if (!f->doc)
		return -ENOMEM;
	memcpy(f->doc, doc, len);
	f->len = len;
	snprintf(f->obj, sizeof f->obj, "%s", obj);
	r->nfresh++;
	return 0;
}

void snap_replica_rowcache_forget(snap_replica *r)
{
	for (size_t i = 0; i < r->nfresh; i++)
		free(r->fresh[i].doc);
	free(r->fresh);
	r->fresh = NULL;
	r->nfresh = r->fresh_cap = 0;
	snap_replica_names_free(&r->listed);
}

static int names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Cache one row (best effort: a row not cached costs a GET next run). */
void snap_replica_rowcache_put(snap_store *s, snap_replica *r,
			       const char *obj, const void *doc, size_t len)
{
	sqlite3_stmt *st;
	snap_store_lock(s);
	if (r->cache_n && sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO "
			"replica_rows(replica, obj, doc) VALUES (?1, ?2, ?3)",
			-1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, r->cache_n);
		sqlite3_bind_text(st, 2, obj, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, doc, (int)len, SQLITE_STATIC);
		sqlite3_step(st);
		sqlite3_finalize(st);
	}
	snap_store_unlock(s);
}

/* After the owner check and cache_sync: cache the rows this run read
 * from the replica, and forget the cached rows its listing no longer
 * holds (pruned, here or by another machine).  Best effort. */
void snap_replica_rowcache_save(snap_store *s, snap_replica *r)
{
	snap_replica_names stale = {0};
	sqlite3_stmt *q;
	snap_err e;
	if (!r->rowstore || !r->cache_n)
		goto out;
	snap_store_lock(s);
	if (snap_store_exec(s->db, "SAVEPOINT rowcache", &e) < 0) {
		snap_store_unlock(s);
		goto out;
	}
	for (size_t i = 0; i < r->nfresh; i++)
		snap_replica_rowcache_put(s, r, r->fresh[i].obj,
					  r->fresh[i].doc, r->fresh[i].len);
	if (r->listed.n)        /* v is NULL when nothing was listed */
		qsort(r->listed.v, r->listed.n, sizeof *r->listed.v,
		      names_cmp);
	if (sqlite3_prepare_v2(s->db, "SELECT obj FROM replica_rows WHERE "
			       "replica=?1", -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, r->cache_n);
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char *obj = (const char *)sqlite3_column_text(q, 0);
			if (obj && (!r->listed.n ||
				    !bsearch(&obj, r->listed.v, r->listed.n,
					     sizeof *r->listed.v,
					     names_cmp)) &&
			    snap_replica_names_add(&stale, obj) < 0)
				break;
		}
		sqlite3_finalize(q);
	}
	if (stale.n && sqlite3_prepare_v2(s->db, "DELETE FROM replica_rows "
			"WHERE replica=?1 AND obj=?2", -1, &q, NULL) ==
	    SQLITE_OK) {
		for (size_t i = 0; i < stale.n; i++) {
			sqlite3_bind_int64(q, 1, r->cache_n);
			sqlite3_bind_text(q, 2, stale.v[i], -1, SQLITE_STATIC);
			sqlite3_step(q);
			sqlite3_reset(q);
		}
		sqlite3_finalize(q);
	}
	snap_store_exec(s->db, "RELEASE rowcache", NULL);
	snap_store_unlock(s);
out:
	snap_replica_names_free(&stale);
	snap_replica_rowcache_forget(r);
}
