/*
 * engine/replica_log.c — a replica's own history: each replicate and prune
 * run leaves one sealed object "log/<time ns, 16 hex>-<random>" (JSON:
 * time_ns, kind, ok, detail), so `snapctl --replica URL log` answers "when
 * did this replica last receive anything, and did it work?" on a machine
 * with no store.  Writing one is best effort: a run's outcome never
 * depends on its log line.
 *
 * The store's side: snap_replica_push_recorded records each push as an
 * event of kind "replicate" in the store (what status reports, with no
 * network), for the daemon's replicate= and snapctl replicate alike.
 */
#include "replica_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void snap_replica_log_add(snap_replica *r, const char *kind, int ok,
			  const char *detail)
{
	uint8_t idb[4];
	char name[64], id[9];
	int64_t now = snap_time_now_ns();
	snap_err e;
	snap_json j;

	snap_random(idb, sizeof idb);
	snap_replica_hex(idb, sizeof idb, id);
	snprintf(name, sizeof name, "log/%016llx-%s", (unsigned long long)now,
		 id);
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "time_ns"); snap_json_int(&j, now);
	snap_json_key(&j, "kind"); snap_json_str(&j, kind);
	snap_json_key(&j, "ok"); snap_json_bool(&j, ok);
	snap_json_key(&j, "detail"); snap_json_str(&j, detail);
	snap_json_obj_end(&j);
	if (!j.oom)
		snap_replica_obj_put(r, name, j.buf, j.len, NULL, &e);
	snap_json_free(&j);
}

/* Oldest first. */
static int event_cmp(const void *a, const void *b)
{
	const snap_event *x = a, *y = b;
	return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

int snap_replica_log(snap_replica *r, snap_event **out, size_t *n,
		     snap_err *err)
{
	snap_replica_names ns = {0};
	snap_event *v = NULL;
	size_t k = 0;
	*out = NULL;
	*n = 0;
	int rc = snap_replica_list_dir(r, "log", &ns, err);
	if (rc < 0)
		return rc;
	v = calloc(ns.n ? ns.n : 1, sizeof *v);
	if (!v) {
		snap_replica_names_free(&ns);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	size_t unreadable = 0;
	for (size_t i = 0; i < ns.n; i++) {
		uint8_t *doc;
		size_t len;
		snap_err e;
		snap_err_clear(&e);
		rc = snap_replica_obj_get(r, ns.v[i], &doc, &len, &e);
		if (rc == -ENOENT)
			continue;
		if (rc == 0 && !snap_replica_json_valid(r, doc, len)) {
			free(doc);
			rc = snap_err_set(&e, -EIO, "%s/%s: not a history "
					  "record (damaged)",
					  snap_objstore_url(r->os), ns.v[i]);
		}
		if (rc == -ENOMEM) {
			*err = e;
			break;
		}
		if (rc < 0) {
			/* One record that cannot be read hides no other:
			 * it is listed as what it is (the caller says so). */
			v[k].id = (int64_t)k + 1;
			v[k].ok = 0;
			snprintf(v[k].kind, sizeof v[k].kind, "%s",
				 SNAP_REPLICA_UNREADABLE);
			snprintf(v[k].detail, sizeof v[k].detail, "%s", e.msg);
			k++;
			if (++unreadable == ns.n) {
				*err = e;     /* nothing read: say why */
				break;
			}
			rc = 0;
			continue;
		}
		const char *d = (const char *)doc;
		char *kind = snap_replica_json_text(r, d, len, "$.kind");
		char *detail = snap_replica_json_text(r, d, len, "$.detail");
		v[k].id = (int64_t)k + 1;
		v[k].time_ns = snap_replica_json_int(r, d, len, "$.time_ns", 0);
		v[k].ok = (int)snap_replica_json_int(r, d, len, "$.ok", 0);
		snprintf(v[k].kind, sizeof v[k].kind, "%s", kind ? kind : "?");
		snprintf(v[k].detail, sizeof v[k].detail, "%s",
			 detail ? detail : "");
		free(kind);
		free(detail);
		free(doc);
		k++;
	}
	snap_replica_names_free(&ns);
	if (rc < 0) {
		free(v);
		return rc;
	}
	qsort(v, k, sizeof *v, event_cmp);
	for (size_t i = 0; i < k; i++)
		v[i].id = (int64_t)i + 1;
	*out = v;
	*n = k;
	return 0;
}

int snap_replica_log_verify(snap_replica *r, snap_replica_problem_fn fn,
			    void *ctx, unsigned *nbad, snap_err *err)
{
	snap_event *ev = NULL;
	size_t n = 0;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_replica_log(r, &ev, &n, &e);
	if (rc == -ENOMEM) {
		*err = e;
		return rc;
	}
	if (rc < 0) {
		(*nbad)++;
		if (fn)
			fn(ctx, "log", 0, e.msg);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ev[i].kind, SNAP_REPLICA_UNREADABLE))
			continue;
		(*nbad)++;
		if (fn)
			fn(ctx, "log", 0, ev[i].detail);
	}
	free(ev);
	return 0;
}

void snap_replica_failure_record(snap_store *s, const char *url,
				 const snap_err *err)
{
	/* The detail starts with "URL: " (snapctl(1)); most messages do
	 * already: the URL once is enough. */
	snap_event_add(s, SNAP_REPLICATE_EVENT, "", 0, "%s: %s", url,
		       snap_err_after(err->msg, url));
}

int snap_replica_push_recorded(snap_replica *r, snap_store *s,
			       const char *url, snap_progress_fn progress,
			       void *pctx, snap_replicate_stats *st,
			       snap_err *err)
{
	snap_info *rows = NULL;
	size_t n = 0;
	int rc;

	rc = snap_replica_push(r, s, progress, pctx, st, err);
	if (rc == 0) {
		/* Every row there is in s's cache now (the push read or
		 * wrote it): a listing, not a GET a row. */
		r->rowstore = s;
		rc = snap_replica_list(r, &rows, &n, err);
		r->rowstore = NULL;
		snap_replica_rowcache_forget(r);
	}
	if (rc != 0) {
		snap_replica_failure_record(s, url, err);
		return rc;
	}
	snap_event_add(s, SNAP_REPLICATE_EVENT, n ? rows[n - 1].name : "", 1,
		       "%s: %" PRIu64 " snapshot%s uploaded (%" PRIu64
		       " new pages, %" PRIu64 " bytes); the replica holds %zu",
		       url, st->snapshots, st->snapshots == 1 ? "" : "s",
		       st->pages, st->bytes, n);
	free(rows);
	return 0;
}
