/*
 * engine/replica_rows.c — a replica's catalog: the sealed catalog rows
 * ("snapshots/<id>", engine/DESIGN.md §6), their listing in snapshot
 * order, and finding one by name (latest, a name, or an id).  The format,
 * config and sealed objects are replica.c.
 */
#include "replica_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "objstore.h"
#include "store_int.h"

/* ---- catalog rows ("snapshots/<id>") ------------------------------------- */

/* Rows announced ahead of the one read (s3http.h's S3_PREFETCH slots
 * hold them, with the two fetch threads: three requests in flight). */
#define ROWS_AHEAD 3

/* Parse a catalog row object; -EIO when it is not one. */
static int row_parse(snap_replica *r, const char *obj, const uint8_t *doc,
		     size_t len, rrow *row, snap_err *err)
{
	const char *d = (const char *)doc;
	memset(row, 0, sizeof *row);
	snprintf(row->obj, sizeof row->obj, "%s", obj);
	char *name = snap_replica_json_text(r, d, len, "$.name");
	char *label = snap_replica_json_text(r, d, len, "$.label");
	char *kind = snap_replica_json_text(r, d, len, "$.kind");
	char *comment = snap_replica_json_text(r, d, len, "$.comment");
	char *sha = snap_replica_json_text(r, d, len, "$.sha256");
	char *map = snap_replica_json_text(r, d, len, "$.map");
	char *store = snap_replica_json_text(r, d, len, "$.store");
	int bad = !name || !label || !kind || !sha || !map ||
		  strlen(name) >= sizeof row->si.name ||
		  strlen(label) >= sizeof row->si.label ||
		  strlen(map) >= sizeof row->map ||
		  snap_kind_parse(kind, &row->si.kind) < 0 ||
		  snap_replica_unhex(sha, row->si.sha256, 32) < 0 ||
		  snap_objstore_name_check(map) < 0;
	if (!bad) {
		snprintf(row->si.name, sizeof row->si.name, "%s", name);
		snprintf(row->si.label, sizeof row->si.label, "%s", label);
		snprintf(row->si.comment, sizeof row->si.comment, "%s",
			 comment ? comment : "");
		snprintf(row->map, sizeof row->map, "%s", map);
		/* Any text: a store id that is no id is another store's. */
		if (store)
			snprintf(row->store, sizeof row->store, "%s",
				 store[0] ? store : "?");
		row->si.created_ns = snap_replica_json_int(r, d, len, "$.created_ns", 0);
		row->si.pinned = (int)snap_replica_json_int(r, d, len, "$.pinned", 0);
		row->si.page_size = (uint32_t)snap_replica_json_int(r, d, len,
						       "$.page_size", 0);
		row->si.page_count = (uint32_t)snap_replica_json_int(r, d, len,
							"$.page_count", 0);
		row->si.image_size = (uint64_t)snap_replica_json_int(r, d, len,
							"$.image_size", 0);
		row->si.change_counter = (uint32_t)snap_replica_json_int(
			r, d, len, "$.change_counter", 0);
		bad = row->si.page_size < 512 ||
		      row->si.page_size > SNAP_PAGE_MAX ||
		      (row->si.page_size & (row->si.page_size - 1)) ||
		      row->si.image_size != (uint64_t)row->si.page_size *
					    row->si.page_count;
	}
	free(name);
	free(label);
	free(kind);
	free(comment);
	free(sha);
	free(map);
	free(store);
	if (bad)
		return snap_err_set(err, -EIO, "%s/%s: not a valid snapshot "
				    "record", snap_objstore_url(r->os), obj);
	return 0;
}

/* Listing callback: collect object names. */
static int names_add(void *ctx, const char *name, uint64_t size)
{
	(void)size;
	snap_replica_names *ns = ctx;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? 2 * ns->cap : 64;
		char **v = realloc(ns->v, cap * sizeof *v);
		if (!v)
			return -ENOMEM;
		ns->v = v;
		ns->cap = cap;
	}
	if (!(ns->v[ns->n] = strdup(name)))
		return -ENOMEM;
	ns->n++;
	return 0;
}

int snap_replica_names_add(snap_replica_names *ns, const char *name)
{
	return names_add(ns, name, 0);
}

void snap_replica_names_free(snap_replica_names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	memset(ns, 0, sizeof *ns);
}

/* List a directory of the replica into ns. */
int snap_replica_list_dir(snap_replica *r, const char *dir,
			  snap_replica_names *ns, snap_err *err)
{
	int rc = snap_objstore_list(r->os, dir, names_add, ns, err);
	if (rc == -ENOMEM)
		rc = snap_err_set(err, -ENOMEM, "out of memory");
	return rc;
}

/* Oldest first, then by name. */
static int row_cmp(const void *a, const void *b)
{
	const rrow *x = a, *y = b;
	if (x->si.created_ns != y->si.created_ns)
		return x->si.created_ns < y->si.created_ns ? -1 : 1;
	return strcmp(x->si.name, y->si.name);
}

/* Every catalog row of the replica, oldest first, or (name not NULL)
 * the one row of that name: -ENOENT with a message when there is none.
 * free(*out). */
int snap_replica_rows_load(snap_replica *r, const char *name, rrow **out,
		     size_t *n, snap_err *err)
{
	snap_replica_names ns = {0};
	rrow *rows = NULL;
	size_t k = 0, nget = 0, *get = NULL;
	int rc = snap_replica_list_dir(r, "snapshots", &ns, err);
	if (rc < 0)
		goto out;
	rows = calloc(ns.n ? ns.n : 1, sizeof *rows);
	get = calloc(ns.n ? ns.n : 1, sizeof *get);
	if (!rows || !get) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	snap_replica_names_free(&r->bad_rows);
	/* A writer's cached rows first (snap_replica_rowcache_get); the
	 * others, get[0..nget), from the replica. */
	for (size_t i = 0; i < ns.n; i++) {
		uint8_t *doc;
		size_t len;
		snap_err e;
		if (snap_replica_rowcache_get(r, ns.v[i], &doc, &len)) {
			int ok = row_parse(r, ns.v[i], doc, len, &rows[k],
					   &e) == 0;
			free(doc);
			if (ok) {
				if (!name || !strcmp(rows[k].si.name, name))
					k++;
				continue;
			}
		}
		get[nget++] = i;       /* not cached, or not a row there */
	}
	for (size_t g = 0; g < nget; g++) {
		const char *obj = ns.v[get[g]];
		uint8_t *doc;
		size_t len;
		snap_err e;
		/* The rows after it fetched meanwhile (on s3://): a row is a
		 * small object, one request's waiting each, and a replica
		 * holds hundreds. */
		for (size_t j = g + 1; j < nget && j <= g + ROWS_AHEAD; j++)
			snap_replica_obj_prefetch(r, ns.v[get[j]]);
		rc = snap_replica_obj_get(r, obj, &doc, &len, &e);
		if (rc == -ENOENT)   /* pruned while we listed */
			continue;
		if (rc == 0) {
			rc = row_parse(r, obj, doc, len, &rows[k], &e);
			if (rc == 0 &&
			    snap_replica_rowcache_note(r, obj, doc, len) < 0)
				rc = snap_err_set(&e, -ENOMEM,
						  "out of memory");
			free(doc);
		}
		if (rc == -EIO || rc == -EFBIG) {
			/* One damaged row must not hide every other
			 * snapshot: skip it; verify names it. */
			if (names_add(&r->bad_rows, obj, 0) < 0) {
				rc = snap_err_set(err, -ENOMEM,
						  "out of memory");
				goto out;
			}
			continue;
		}
		if (rc < 0) {
			*err = e;
			goto out;
		}
		if (!name || !strcmp(rows[k].si.name, name))
			k++;
	}
	rc = 0;
	if (name && k == 0) {
		rc = snap_err_set(err, -ENOENT, "%s: no snapshot %s in the "
				  "replica", snap_objstore_url(r->os), name);
		goto out;
	}
	qsort(rows, k, sizeof *rows, row_cmp);
	for (size_t i = 0; i < k; i++)
		rows[i].si.id = (int64_t)i + 1;
	*out = rows;
	*n = k;
	rows = NULL;
	if (r->rowstore) {      /* for snap_replica_rowcache_save */
		snap_replica_names_free(&r->listed);
		r->listed = ns;
		ns = (snap_replica_names){0};
	}
out:
	free(rows);
	free(get);
	snap_replica_names_free(&ns);
	return rc;
}

int snap_replica_list(snap_replica *r, snap_info **out, size_t *n,
		      snap_err *err)
{
	rrow *rows;
	size_t k;
	int rc = snap_replica_rows_load(r, NULL, &rows, &k, err);
	if (rc < 0)
		return rc;
	snap_info *v = calloc(k ? k : 1, sizeof *v);
	if (!v) {
		free(rows);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < k; i++)
		v[i] = rows[i].si;
	free(rows);
	*out = v;
	*n = k;
	return 0;
}

struct name_at {
	const char *name;
	size_t i;
};

static int name_at_cmp(const void *a, const void *b)
{
	const struct name_at *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

int snap_replica_names_unique(snap_info *v, size_t *n)
{
	size_t k = *n, out = 0;
	if (k < 2)
		return 0;
	struct name_at *x = malloc(k * sizeof *x);
	uint8_t *shadowed = calloc(k, 1);
	if (!x || !shadowed) {
		free(x);
		free(shadowed);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k; i++)
		x[i] = (struct name_at){v[i].name, i};
	qsort(x, k, sizeof *x, name_at_cmp);
	/* A row followed (in v's order) by one of its name is not found. */
	for (size_t j = 0; j + 1 < k; j++)
		if (!strcmp(x[j].name, x[j + 1].name))
			shadowed[x[j].i] = 1;
	for (size_t i = 0; i < k; i++)
		if (!shadowed[i]) {
			if (out != i)
				v[out] = v[i];
			out++;
		}
	*n = out;
	free(x);
	free(shadowed);
	return 0;
}

/* The row of snapshot name; -ENOENT with a message when absent. */
int snap_replica_row_find(snap_replica *r, const char *name, rrow *out,
		    snap_err *err)
{
	rrow *rows;
	size_t k;
	int rc = snap_replica_rows_load(r, name, &rows, &k, err);
	if (rc == 0)
		*out = rows[k - 1];
	if (rc == 0)
		free(rows);
	return rc;
}

int snap_replica_tables(snap_replica *r, const char *name, char **json,
			snap_err *err)
{
	rrow row;
	uint8_t *doc;
	size_t len;
	int rc = snap_replica_row_find(r, name, &row, err);
	if (rc < 0)
		return rc;
	rc = snap_replica_obj_get(r, row.obj, &doc, &len, err);
	if (rc == -ENOENT)
		rc = snap_err_set(err, -ENOENT, "%s: no snapshot %s in the "
				  "replica", snap_objstore_url(r->os), name);
	if (rc < 0)
		return rc;
	sqlite3_stmt *st = NULL;
	*json = NULL;
	if (sqlite3_prepare_v2(r->mem, "SELECT json(json_extract(?1, "
			       "'$.tables'))", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, (const char *)doc, (int)len,
				  SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_type(st, 0) != SQLITE_NULL)
			*json = strdup((const char *)sqlite3_column_text(st, 0));
	}
	sqlite3_finalize(st);
	free(doc);
	if (!*json)
		*json = strdup("{}");
	return *json ? 0 : snap_err_set(err, -ENOMEM, "out of memory");
}

int snap_replica_find(snap_replica *r, const char *name, snap_info *out,
		      snap_err *err)
{
	rrow row;
	int rc = snap_replica_row_find(r, name, &row, err);
	if (rc == 0)
		*out = row.si;
	return rc;
}

/* ---- writing a snapshot's map and catalog row ----------------------------- */

int snap_replica_row_write(snap_replica *r, snap_store *s,
			   const char *store_id, const snap_info *si,
			   const int64_t *seqs, snap_replicate_stats *st,
			   snap_err *err)
{
	void *map = NULL;
	size_t maplen = 0;
	char *tables = NULL;
	snap_json j;
	snap_json_init(&j);
	int rc;
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
	snap_json_key(&j, "store"); snap_json_str(&j, store_id);
	snap_json_obj_end(&j);
	if (j.oom) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = snap_replica_obj_put(r, rowname, j.buf, j.len, &st->bytes, err);
	if (rc < 0)
		goto out;
	st->snapshots++;
	snap_replica_rowcache_put(s, r, rowname, j.buf, j.len);
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
	return rc;
}
