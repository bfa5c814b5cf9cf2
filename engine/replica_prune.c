/*
 * engine/replica_prune.c — one writer at a time, and retention of a
 * replica.
 *
 * Locks.  Object stores have no conditional write (Swift's s3api has none),
 * so a writer (replicate or prune) announces itself first and looks second:
 * it puts "locks/<random>" (sealed JSON: what, host, pid, time), then lists
 * "locks/"; any other lock that is alive makes it take its own back and
 * fail with -EBUSY.  Two writers that start together both see each other
 * and both back off (the next run goes through); a writer never proceeds
 * beside another.  A lock is dead when it is older than SNAP_REPLICA_LOCK_TTL
 * or when it names this host and a pid that no longer runs (a killed run on
 * this machine does not block the next one); a dead lock is deleted.
 *
 * Prune.  The same rules as a store's retention (snap_retention_plan: only
 * kinds auto and pre-restore, never pinned ones), applied to the replica's
 * catalog rows.  A pruned snapshot's row goes first (it leaves the
 * replica's listing at once), then its map.  Then every pack none of whose
 * pages a remaining map names goes, index before pack.  A pack that holds
 * one page still named stays whole (no repacking): the space of its other
 * pages comes back when its last user is pruned.  Under the lock, no
 * replicate runs: a page a replicate is about to name is never deleted.
 * Before any row goes, the pruned snapshots join the set "pruned/set"
 * (PRUNED_OBJ), which replicate reads: a snapshot pruned from the replica
 * is not sent again by a store that still has it (the daemon's next run
 * would otherwise undo the prune).
 */
#include "replica_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "retention.h"

#define SNAP_REPLICA_LOCK_TTL_S (6 * 3600)

/* This machine's name, for locks ("" when unknown). */
static void host_name(char *out, size_t cap)
{
	if (gethostname(out, cap) < 0)
		out[0] = '\0';
	out[cap - 1] = '\0';
}

/* 1 when the lock object doc belongs to a live writer (see the top). */
static int lock_alive(snap_replica *r, const uint8_t *doc, size_t len)
{
	char host[256];
	int64_t now = snap_time_now_ns() / 1000000000;
	int64_t t = snap_replica_json_int(r, (const char *)doc, len, "$.time",
					  0);
	int64_t pid = snap_replica_json_int(r, (const char *)doc, len,
					    "$.pid", 0);
	char *h = snap_replica_json_text(r, (const char *)doc, len, "$.host");
	int alive = t > now - SNAP_REPLICA_LOCK_TTL_S;
	host_name(host, sizeof host);
	if (alive && h && host[0] && !strcmp(h, host) && pid > 0 &&
	    kill((pid_t)pid, 0) < 0 && errno == ESRCH)
		alive = 0;
	free(h);
	return alive;
}

/* Put lock object name: what, this host and pid, the time now. */
static int lock_put(snap_replica *r, const char *name, const char *what,
		    snap_err *err)
{
	char host[256];
	host_name(host, sizeof host);
	snap_json j;
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "what"); snap_json_str(&j, what);
	snap_json_key(&j, "host"); snap_json_str(&j, host);
	snap_json_key(&j, "pid"); snap_json_int(&j, getpid());
	snap_json_key(&j, "time");
	snap_json_int(&j, snap_time_now_ns() / 1000000000);
	snap_json_obj_end(&j);
	if (j.oom) {
		snap_json_free(&j);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	int rc = snap_replica_obj_put(r, name, j.buf, j.len, NULL, err);
	snap_json_free(&j);
	if (rc == 0 && name != r->lock_name) {
		snprintf(r->lock_name, sizeof r->lock_name, "%s", name);
		snprintf(r->lock_what, sizeof r->lock_what, "%s", what);
	}
	if (rc == 0)
		r->lock_put_s = snap_time_now_ns() / 1000000000;
	return rc;
}

int snap_replica_lock_held(snap_replica *r, snap_err *err)
{
	uint8_t *doc;
	size_t len;
	if (!r->lock_name[0])
		return 0;
	int rc = snap_replica_obj_get(r, r->lock_name, &doc, &len, err);
	if (rc == 0) {
		free(doc);
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	return snap_err_set(err, -EBUSY, "%s: this %s lost its lock %s: "
			    "another writer found it older than %d hours "
			    "(this run was stopped that long) and removed "
			    "it; nothing more is written; run again",
			    snap_objstore_url(r->os), r->lock_what,
			    r->lock_name, SNAP_REPLICA_LOCK_TTL_S / 3600);
}

int snap_replica_lock_keep(snap_replica *r, snap_err *err)
{
	snap_err e;
	int64_t now = snap_time_now_ns() / 1000000000;
	if (!r->lock_name[0] || now - r->lock_put_s < SNAP_REPLICA_LOCK_KEEP_S)
		return 0;
	/* Never written back once gone: a writer that found it expired
	 * may have deleted what this run sent and no map names yet. */
	int rc = snap_replica_lock_held(r, err);
	if (rc == -EBUSY)
		return rc;
	if (rc < 0 || lock_put(r, r->lock_name, r->lock_what, &e) < 0)
		/* Best effort: tried again in a minute, not at every pack
		 * (each try may wait out the server's timeouts). */
		r->lock_put_s = now - SNAP_REPLICA_LOCK_KEEP_S + 60;
	return 0;
}

int snap_replica_lock(snap_replica *r, const char *what, char *name,
		      size_t cap, snap_err *err)
{
	uint8_t idb[16];
	char id[33];
	snap_random(idb, sizeof idb);
	snap_replica_hex(idb, sizeof idb, id);
	snprintf(name, cap, "locks/%s", id);
	int rc = lock_put(r, name, what, err);
	if (rc < 0)
		return rc;
	snap_replica_names ns = {0};
	rc = snap_replica_list_dir(r, "locks", &ns, err);
	for (size_t i = 0; rc == 0 && i < ns.n; i++) {
		uint8_t *doc;
		size_t len;
		if (!strcmp(ns.v[i], name))
			continue;
		snap_err e;
		int grc = snap_replica_obj_get(r, ns.v[i], &doc, &len, &e);
		if (grc == -ENOENT)
			continue;        /* gone meanwhile: its writer ended */
		if (grc == -EIO || grc == -EFBIG) {
			/* Not one of ours (does not open with the key): a
			 * forged lock blocks nobody; it is left alone. */
			continue;
		}
		if (grc < 0) {
			/* Unread (the server out of reach, or we are
			 * stopping): it may be a live writer's. */
			*err = e;
			rc = grc;
			break;
		}
		int alive = lock_alive(r, doc, len);
		char *who = snap_replica_json_text(r, (const char *)doc, len,
						   "$.what");
		char *on = snap_replica_json_text(r, (const char *)doc, len,
						  "$.host");
		int64_t pid = snap_replica_json_int(r, (const char *)doc, len,
						    "$.pid", 0);
		free(doc);
		if (!alive) {
			snap_objstore_delete(r->os, ns.v[i], err);
		} else {
			rc = snap_err_set(err, -EBUSY,
					  "%s: another %s is running on it "
					  "(host %s, pid %lld; its lock %s); "
					  "run again when it is done",
					  snap_objstore_url(r->os),
					  who ? who : "writer", on ? on : "?",
					  (long long)pid, ns.v[i]);
		}
		free(who);
		free(on);
	}
	snap_replica_names_free(&ns);
	if (rc < 0)
		snap_replica_unlock(r, name);
	return rc;
}

void snap_replica_unlock(snap_replica *r, const char *name)
{
	snap_err e;
	if (name && name[0] && !strcmp(name, r->lock_name))
		r->lock_name[0] = '\0';
	if (name && name[0])
		snap_objstore_delete(r->os, name, &e);
}

/* Mark every seq map names in the bit set used (size nbits). */
static int mark_map(snap_replica *r, const rrow *row, uint8_t *used,
		    uint64_t nbits, snap_err *err)
{
	int64_t *seqs;
	int rc = snap_replica_map_load(r, row, &seqs, err);
	if (rc < 0)
		return rc;
	for (uint32_t i = 0; i < row->si.page_count; i++) {
		uint64_t q = (uint64_t)seqs[i];
		if (q < nbits)
			used[q / 8] |= (uint8_t)(1u << (q % 8));
	}
	free(seqs);
	return 0;
}

/* ---- the pruned set ------------------------------------------------------ */

static void pruned_key(const char *name, const uint8_t sha[32],
		       uint8_t out[PRUNED_KEY])
{
	size_t n = strlen(name);
	uint8_t buf[SNAP_NAME_MAX + 1 + 32], h[32];
	if (n > SNAP_NAME_MAX)
		n = SNAP_NAME_MAX;
	memcpy(buf, name, n);
	buf[n] = 0;
	memcpy(buf + n + 1, sha, 32);
	snap_sha256(buf, n + 1 + 32, h);
	memcpy(out, h, PRUNED_KEY);
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, PRUNED_KEY);
}

int snap_replica_pruned_load(snap_replica *r, uint8_t **keys, size_t *n,
			     snap_err *err)
{
	uint8_t *doc;
	size_t len, m = strlen(PRUNED_MAGIC);
	*keys = NULL;
	*n = 0;
	int rc = snap_replica_obj_get(r, PRUNED_OBJ, &doc, &len, err);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (len < m || memcmp(doc, PRUNED_MAGIC, m) ||
	    (len - m) % PRUNED_KEY) {
		free(doc);
		return snap_err_set(err, -EIO, "%s/%s: not a set of pruned "
				    "snapshots (damaged)",
				    snap_objstore_url(r->os), PRUNED_OBJ);
	}
	memmove(doc, doc + m, len - m);
	*keys = doc;
	*n = (len - m) / PRUNED_KEY;
	return 0;
}

int snap_replica_pruned_has(const uint8_t *keys, size_t n, const char *name,
			    const uint8_t sha[32])
{
	uint8_t k[PRUNED_KEY];
	if (!n)
		return 0;
	pruned_key(name, sha, k);
	return bsearch(k, keys, n, PRUNED_KEY, key_cmp) != NULL;
}

/* Add the snapshots d (k decisions) prunes to the set, before any goes.
 * Each decision carries its snapshot's row (name, SHA-256). */
static int pruned_add(snap_replica *r, const snap_keep_decision *d,
		      size_t k, snap_err *err)
{
	uint8_t *keys;
	size_t n, m = strlen(PRUNED_MAGIC), add = 0;
	int rc = snap_replica_pruned_load(r, &keys, &n, err);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < k; i++)
		add += !d[i].keep;
	uint8_t *out = malloc(m + (n + add) * PRUNED_KEY);
	if (!out) {
		free(keys);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	uint8_t *v = out + m;
	if (n)
		memcpy(v, keys, n * PRUNED_KEY);
	free(keys);
	for (size_t i = 0; i < k; i++)
		if (!d[i].keep)
			pruned_key(d[i].info.name, d[i].info.sha256,
				   v + n++ * PRUNED_KEY);
	qsort(v, n, PRUNED_KEY, key_cmp);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (!u || memcmp(v + (u - 1) * PRUNED_KEY, v + i * PRUNED_KEY,
				 PRUNED_KEY))
			memmove(v + u++ * PRUNED_KEY, v + i * PRUNED_KEY,
				PRUNED_KEY);
	memcpy(out, PRUNED_MAGIC, m);
	rc = snap_replica_obj_put(r, PRUNED_OBJ, out, m + u * PRUNED_KEY, NULL,
				  err);
	free(out);
	return rc;
}

/* Delete every pack (and its index) none of whose pages rows still name. */
static int collect_packs(snap_replica *r, const rrow *rows, size_t n,
			 const snap_keep_decision *d, uint64_t *freed,
			 snap_err *err)
{
	int rc = snap_replica_firsts_load(r, err);
	if (rc < 0)
		return rc;
	/* The highest seq any index covers bounds the bit set. */
	uint64_t top = 1;
	uint32_t *counts = calloc(r->nfirsts ? r->nfirsts : 1,
				  sizeof *counts);
	if (!counts)
		return snap_err_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < r->nfirsts; i++) {
		char name[64];
		uint8_t *p;
		size_t len;
		uint64_t f = 0;
		snprintf(name, sizeof name, "index/%016llx",
			 (unsigned long long)r->firsts[i]);
		rc = snap_replica_obj_get(r, name, &p, &len, err);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			goto out;
		ridx ix;
		int bad = snap_replica_index_parse(p, len, &ix) < 0;
		f = ix.first;
		counts[i] = ix.count;
		if (bad || f != r->firsts[i]) {
			free(p);
			rc = snap_err_set(err, -EIO, "%s/%s: not a valid index; "
					  "nothing collected",
					  snap_objstore_url(r->os), name);
			goto out;
		}
		free(p);
		if (f + counts[i] > top)
			top = f + counts[i];
	}
	uint8_t *used = calloc(top / 8 + 1, 1);
	if (!used) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t k = 0; k < n && rc == 0; k++) {
		int kept = 1;
		for (size_t j = 0; j < n; j++)
			if (!strcmp(d[j].info.name, rows[k].si.name))
				kept = d[j].keep;
		if (kept)
			rc = mark_map(r, &rows[k], used, top, err);
		if (rc == 0)
			rc = snap_replica_lock_keep(r, err);
	}
	/* Still this prune's turn before anything is deleted. */
	if (rc == 0)
		rc = snap_replica_lock_held(r, err);
	for (size_t i = 0; rc == 0 && i < r->nfirsts; i++) {
		int named = 0;
		for (uint64_t q = r->firsts[i];
		     q < r->firsts[i] + counts[i] && !named; q++)
			named = (used[q / 8] >> (q % 8)) & 1;
		if (named || counts[i] == 0)
			continue;
		char name[64];
		snprintf(name, sizeof name, "index/%016llx",
			 (unsigned long long)r->firsts[i]);
		rc = snap_objstore_delete(r->os, name, err);
		snprintf(name, sizeof name, "packs/%016llx",
			 (unsigned long long)r->firsts[i]);
		if (rc == 0)
			rc = snap_objstore_delete(r->os, name, err);
		if (rc == 0)
			(*freed)++;
	}
	free(used);
out:
	free(counts);
	return rc;
}

int snap_replica_prune(snap_replica *r, const snap_keep_policy *p,
		       int dry_run, snap_keep_decision **out, size_t *n,
		       size_t *pruned, uint64_t *packs, snap_err *err)
{
	char lock[64] = "";
	rrow *rows = NULL;
	snap_info *v = NULL;
	snap_keep_decision *d = NULL;
	size_t k = 0;
	*out = NULL;
	*n = *pruned = 0;
	*packs = 0;
	if (p->max_size)
		return snap_err_set(err, -EINVAL, "%s: --max-size works on a "
				    "store, not a replica",
				    snap_objstore_url(r->os));
	int rc = dry_run ? 0 : snap_replica_lock(r, "prune", lock,
						 sizeof lock, err);
	if (rc < 0)
		return rc;
	rc = snap_replica_rows_load(r, NULL, &rows, &k, err);
	if (rc < 0)
		goto done;
	if (!dry_run && r->bad_rows.n) {
		/* A row that does not read hides its snapshot's page map:
		 * any pack may hold its pages, so none may be collected, and
		 * the plan would count without it. */
		rc = snap_err_set(err, -EIO, "%s: %zu catalog row%s of the "
				  "replica do%s not read (damaged; verify "
				  "names %s): nothing pruned, no pack deleted "
				  "(the pages of %s snapshot%s may be in any "
				  "of them); put %s back or delete %s, then "
				  "prune", snap_objstore_url(r->os),
				  r->bad_rows.n, r->bad_rows.n == 1 ? "" : "s",
				  r->bad_rows.n == 1 ? "es" : "",
				  r->bad_rows.n == 1 ? "it" : "them",
				  r->bad_rows.n == 1 ? "its" : "their",
				  r->bad_rows.n == 1 ? "" : "s",
				  r->bad_rows.n == 1 ? "it" : "them",
				  r->bad_rows.n == 1 ? "it" : "them");
		goto done;
	}
	v = calloc(k ? k : 1, sizeof *v);
	d = calloc(k ? k : 1, sizeof *d);
	if (!v || !d) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < k; i++)
		v[i] = rows[i].si;
	snap_retention_plan(v, k, p, d);
	for (size_t i = 0; i < k; i++)
		*pruned += !d[i].keep;
	if (!dry_run && *pruned)
		rc = pruned_add(r, d, k, err);
	if (!dry_run) {
		/* Rows first: a pruned snapshot leaves the listing at once. */
		for (size_t i = 0; rc == 0 && i < k; i++) {
			for (size_t j = 0; j < k; j++) {
				if (d[j].keep ||
				    strcmp(d[j].info.name, rows[i].si.name))
					continue;
				rc = snap_objstore_delete(r->os, rows[i].obj,
							  err);
				if (rc == 0)
					rc = snap_objstore_delete(
						r->os, rows[i].map, err);
			}
		}
		if (rc == 0)
			rc = collect_packs(r, rows, k, d, packs, err);
	}
	if (rc == 0) {
		*out = d;
		*n = k;
		d = NULL;
	}
done:
	if (!dry_run && rc != -EBUSY) {
		char what[SNAP_ERR_MSG];
		if (rc == 0)
			snprintf(what, sizeof what, "%zu of %zu snapshots "
				 "pruned, %llu packs deleted", *pruned, k,
				 (unsigned long long)*packs);
		else
			snprintf(what, sizeof what, "%s", err->msg);
		snap_replica_log_add(r, "prune", rc == 0, what);
	}
	snap_replica_unlock(r, lock);
	free(d);
	free(v);
	free(rows);
	return rc;
}
