/*
 * engine/status.c — the status report: what `snapctl status`,
 * .snapfs/status.json and the Prometheus exposition show.
 *
 * Status.  snap_status_get reads the catalog, the store statistics, the
 * newest event of each kind and the scrub time.  "Last verify" is the
 * newest event of kind "verify" or "scrub".
 *
 * The JSON object (snap_status_json) — a contract for scripts:
 *   database         absolute path of the live database
 *   store            absolute path of the store directory
 *   snapshots        number of snapshots
 *   by_kind          {"manual":N,"auto":N,"pre-restore":N,"import":N,
 *                     "conflict":N,"recovery":N} (every kind, 0 included)
 *   newest           {"name":S,"kind":S,"created":ISO,"created_ns":N,
 *                     "age_seconds":N} or null when there is no snapshot
 *   store_bytes      bytes of stored data (compressed pages and page maps)
 *   logical_bytes    sum of the snapshots' image sizes
 *   file_bytes       size of store.db and its -wal on disk
 *   dedup_ratio      logical_bytes / store_bytes (a number, 0 when empty)
 *   last_restore,
 *   last_check,
 *   last_verify      {"time":ISO,"time_ns":N,"ok":BOOL,"detail":S} or null
 *                    when never
 *   last_full_scrub  ISO time of the last completed scrub pass, or null
 *                    (and last_full_scrub_ns, the same in ns, or null)
 *   next_snapshot    ISO time of the next scheduled snapshot, or null
 *                    (and next_snapshot_ns)
 *   interval_seconds the schedule's interval, or null without a schedule
 *   replica          null when the store was never replicated, else
 *                    {"url":S,"newest":S or null,"lag_seconds":N or null,
 *                     "last_replication":{"time":ISO,"time_ns":N,
 *                     "ok":BOOL,"detail":S} or null,"last_error":S or
 *                     null (that detail when the run failed),
 *                     "running_since":ISO or null,"running_since_ns":N or
 *                     null}: from the newest event of kind
 *                    "replicate" (no network): url is the replica it
 *                    named, newest the replica's newest snapshot after the
 *                    last successful replication to that url, lag_seconds
 *                    the store's newest snapshot's creation time minus
 *                    that one's (0 when the replica is up to date; null
 *                    when that snapshot is no longer in the store).  A
 *                    mount with -o replicate=URL (and snapctl -C on it)
 *                    reports that URL from its own events, even before
 *                    its first run (snap_status_replica; newest, lag and
 *                    last_replication null then); running_since is when
 *                    that mount's replication in progress began, null when
 *                    none runs (always null without a mount: only the
 *                    daemon knows)
 * ISO times are UTC, "2026-11-22T01:49:00.123Z"; age_seconds is whole
 * seconds, never negative.
 *
 * The Prometheus text (snap_status_prometheus), every sample labelled
 * db="<path>", all gauges:
 *   snapfs_snapshots{kind="..."}                 one sample per kind
 *   snapfs_newest_snapshot_timestamp_seconds     } absent without
 *   snapfs_newest_snapshot_age_seconds           } snapshots
 *   snapfs_store_bytes, snapfs_logical_bytes, snapfs_store_file_bytes
 *   snapfs_dedup_ratio
 *   snapfs_last_check_ok, snapfs_last_verify_ok, snapfs_last_restore_ok
 *                    1 or 0, and ..._timestamp_seconds; absent when never
 *   snapfs_last_full_scrub_timestamp_seconds     absent when never
 *   snapfs_next_snapshot_timestamp_seconds       absent without schedule
 *   snapfs_replica_last_ok                       1 or 0; absent when the
 *   snapfs_replica_last_timestamp_seconds        } replica was never
 *   snapfs_replica_lag_seconds                   } replicated to (lag also
 *                                                  absent when unknown)
 *   snapfs_replica_running_since_timestamp_seconds  absent when no
 *                    replication of a mount runs (as running_since)
 * Absent samples are the Prometheus convention for "unknown": alert with
 * absent() where that matters.  Numbers are formatted without printf's
 * %f, so a locale's decimal comma never reaches JSON or Prometheus.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"      /* snap_health_scrub_last */
#include "json.h"
#include "status.h"
#include "store_int.h"

#define NS 1000000000LL

/* The newest event of a kind (or of either of two kinds); with url, the
 * newest one whose detail starts with "url: ", only a successful one
 * when ok_only.  snap (when given) gets its snapshot column. */
static int status_url_event(snap_store *s, const char *kind,
			    const char *kind2, const char *url, int ok_only,
			    int64_t *time_ns, int *ok, char *detail,
			    size_t cap, char *snap, size_t scap,
			    snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*time_ns = 0;
	*ok = 0;
	detail[0] = '\0';
	if (snap)
		snap[0] = '\0';
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, "SELECT time_ns, ok, detail, snapshot "
				"FROM events WHERE kind IN (?1, ?2) AND "
				"(?3 IS NULL OR ((?4 = 0 OR ok = 1) AND "
				"substr(detail, 1, length(?3) + 2) = ?3 || "
				"': ')) ORDER BY id DESC LIMIT 1", -1, &st,
				NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, kind2 ? kind2 : kind, -1,
				  SQLITE_STATIC);
		if (url)
			sqlite3_bind_text(st, 3, url, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 4, ok_only);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 2);
		const char *n = (const char *)sqlite3_column_text(st, 3);

		*time_ns = sqlite3_column_int64(st, 0);
		*ok = sqlite3_column_int(st, 1) != 0;
		snprintf(detail, cap, "%s", d ? d : "");
		if (snap)
			snprintf(snap, scap, "%s", n ? n : "");
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot read "
				     "the event history", s->dir);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

/*
 * The replica part of st: the newest "replicate" event (url, outcome), the
 * newest successful one to that url (the replica's newest snapshot), and
 * the lag between the store's newest snapshot and that one.  With url
 * (snap_status_replica: a daemon's replicate=URL), the events of that url
 * only, and that url named even before its first replication.
 */
static int status_replica(snap_store *s, snap_status *st, const char *url,
			  snap_err *err)
{
	const char *colon;
	char detail[SNAP_ERR_MSG];
	int64_t t;
	snap_info in;
	int ok, rc;

	st->have_replica = 0;
	st->replica_url[0] = st->replica_newest[0] = '\0';
	st->have_replica_lag = 0;
	st->replica_lag_ns = 0;
	rc = status_url_event(s, SNAP_REPLICATE_EVENT, NULL, url, 0,
			      &st->last_replicate_ns, &st->last_replicate_ok,
			      st->last_replicate, sizeof(st->last_replicate),
			      NULL, 0, err);
	if (rc || (!url && !st->last_replicate_ns))
		return rc;
	st->have_replica = 1;
	colon = strstr(st->last_replicate, ": ");
	if (url)
		snprintf(st->replica_url, sizeof(st->replica_url), "%s", url);
	else
		snprintf(st->replica_url, sizeof(st->replica_url), "%.*s",
			 colon ? (int)(colon - st->last_replicate) :
			 (int)strlen(st->last_replicate), st->last_replicate);
	if (!st->last_replicate_ns)
		return 0;
	rc = status_url_event(s, SNAP_REPLICATE_EVENT, NULL, st->replica_url, 1,
			      &t, &ok, detail, sizeof(detail),
			      st->replica_newest, sizeof(st->replica_newest),
			      err);
	if (rc || !st->replica_newest[0] || !st->have_newest)
		return rc;
	if (snap_store_find(s, st->replica_newest, &in, err) == 0) {
		st->have_replica_lag = 1;
		st->replica_lag_ns = st->newest.created_ns - in.created_ns;
		if (st->replica_lag_ns < 0)
			st->replica_lag_ns = 0;
	} else {
		snap_err_clear(err);   /* pruned here since: lag unknown */
	}
	return 0;
}

/* Snapshots per kind. */
static int status_count_kinds(snap_store *s, snap_status *st, snap_err *err)
{
	sqlite3_stmt *q = NULL;
	int rc;

	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, "SELECT kind, count(*) FROM snapshots "
				"GROUP BY kind", -1, &q, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(q, 0);
		int64_t c = sqlite3_column_int64(q, 1);
		snap_kind kind;

		st->count += c;
		if (k && snap_kind_parse(k, &kind) == 0)
			st->count_by_kind[kind] += c;
		rc = SQLITE_OK;
	}
	rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, s->db, rc, "store "
		"%s: cannot count snapshots", s->dir);
	sqlite3_finalize(q);
	snap_store_unlock(s);
	return rc;
}

int snap_status_get(snap_store *s, int64_t now_ns, snap_status *st,
		    snap_err *err)
{
	int rc;

	memset(st, 0, sizeof(*st));
	snprintf(st->db_path, sizeof(st->db_path), "%s", s->db_path);
	snprintf(st->store_dir, sizeof(st->store_dir), "%s", s->dir);
	rc = status_count_kinds(s, st, err);
	if (!rc) {
		rc = snap_store_newest(s, &st->newest, err);
		if (rc == 0) {
			st->have_newest = 1;
			st->newest_age_ns = now_ns - st->newest.created_ns;
			if (st->newest_age_ns < 0)
				st->newest_age_ns = 0;   /* clock stepped back */
		} else if (rc == -ENOENT) {
			snap_err_clear(err);
			rc = 0;
		}
	}
	if (!rc)
		rc = snap_store_stats_get(s, &st->stats, err);
	if (!rc && st->stats.stored_bytes)
		st->dedup_ratio = (double)st->stats.logical_bytes /
				  (double)st->stats.stored_bytes;
	if (!rc)
		rc = status_url_event(s, "restore", NULL, NULL, 0,
				      &st->last_restore_ns,
				      &st->last_restore_ok, st->last_restore,
				      sizeof(st->last_restore), NULL, 0, err);
	if (!rc)
		rc = status_url_event(s, "check", NULL, NULL, 0,
				      &st->last_check_ns, &st->last_check_ok,
				      st->last_check, sizeof(st->last_check),
				      NULL, 0, err);
	if (!rc)
		rc = status_url_event(s, "verify", "scrub", NULL, 0,
				      &st->last_verify_ns, &st->last_verify_ok,
				      st->last_verify, sizeof(st->last_verify),
				      NULL, 0, err);
	if (!rc)
		rc = snap_health_scrub_last(s, &st->last_full_scrub_ns, err);
	if (!rc)
		rc = status_replica(s, st, NULL, err);
	return rc;
}

int snap_status_replica(snap_store *s, snap_status *st, const char *url,
			snap_err *err)
{
	return status_replica(s, st, url, err);
}

/* "12.345" for a non-negative ratio, three decimals, locale-free. */
static void status_fmt_ratio(double v, char out[32])
{
	int64_t milli;

	if (!(v > 0))
		v = 0;
	milli = (int64_t)(v * 1000.0 + 0.5);
	snprintf(out, 32, "%" PRId64 ".%03" PRId64, milli / 1000, milli % 1000);
}

/* "1700000000.123" seconds from nanoseconds, locale-free. */
static void status_fmt_seconds(int64_t ns, char out[32])
{
	int64_t ms = ns / 1000000;

	snprintf(out, 32, "%s%" PRId64 ".%03" PRId64, ms < 0 ? "-" : "",
		 (ms < 0 ? -ms : ms) / 1000, (ms < 0 ? -ms : ms) % 1000);
}

/* The key, then: null and 0 when ns is 0 (never), else 1 with the ISO
 * time in t for the caller to write. */
static int status_json_when(snap_json *j, const char *key, int64_t ns,
			    char t[40])
{
	snap_json_key(j, key);
	if (!ns) {
		snap_json_null(j);
		return 0;
	}
	snap_time_iso(ns, t);
	return 1;
}

/* {"time":..., "time_ns":..., "ok":..., "detail":...} or null. */
static void status_json_last(snap_json *j, const char *key, int64_t ns,
			     int ok, const char *detail)
{
	char t[40];

	if (!status_json_when(j, key, ns, t))
		return;
	snap_json_obj_begin(j);
	snap_json_key(j, "time"); snap_json_str(j, t);
	snap_json_key(j, "time_ns"); snap_json_int(j, ns);
	snap_json_key(j, "ok"); snap_json_bool(j, ok);
	snap_json_key(j, "detail"); snap_json_str(j, detail);
	snap_json_obj_end(j);
}

/* "key": an ISO time, and "key_ns": the same time in ns since the epoch
 * for programs; both null for 0. */
static void status_json_time(snap_json *j, const char *key, int64_t ns)
{
	char t[40], key_ns[64];

	snprintf(key_ns, sizeof(key_ns), "%s_ns", key);
	if (status_json_when(j, key, ns, t))
		snap_json_str(j, t);
	snap_json_key(j, key_ns);
	if (ns)
		snap_json_int(j, ns);
	else
		snap_json_null(j);
}

/* "replica": {...} or null (the fields in the header comment). */
static void status_json_replica(snap_json *j, const snap_status *st)
{
	snap_json_key(j, "replica");
	if (!st->have_replica) {
		snap_json_null(j);
		return;
	}
	snap_json_obj_begin(j);
	snap_json_key(j, "url"); snap_json_str(j, st->replica_url);
	snap_json_key(j, "newest");
	if (st->replica_newest[0])
		snap_json_str(j, st->replica_newest);
	else
		snap_json_null(j);
	snap_json_key(j, "lag_seconds");
	if (st->have_replica_lag)
		snap_json_int(j, st->replica_lag_ns / NS);
	else
		snap_json_null(j);
	status_json_last(j, "last_replication", st->last_replicate_ns,
			 st->last_replicate_ok, st->last_replicate);
	status_json_time(j, "running_since", st->replica_running_ns);
	/* Issue 11's "the last error": the last run's reason when it failed,
	 * null while the replica is kept up (or before its first run). */
	snap_json_key(j, "last_error");
	if (st->last_replicate_ns && !st->last_replicate_ok)
		snap_json_str(j, st->last_replicate);
	else
		snap_json_null(j);
	snap_json_obj_end(j);
}

void snap_status_json(struct snap_json *j, const snap_status *st)
{
	char num[32], t[40];
	int k;

	snap_json_obj_begin(j);
	snap_json_key(j, "database"); snap_json_str(j, st->db_path);
	snap_json_key(j, "store"); snap_json_str(j, st->store_dir);
	snap_json_key(j, "snapshots"); snap_json_int(j, st->count);
	snap_json_key(j, "by_kind");
	snap_json_obj_begin(j);
	for (k = 0; k < SNAP_KIND_COUNT; k++) {
		snap_json_key(j, snap_kind_name((snap_kind)k));
		snap_json_int(j, st->count_by_kind[k]);
	}
	snap_json_obj_end(j);
	snap_json_key(j, "newest");
	if (st->have_newest) {
		snap_time_iso(st->newest.created_ns, t);
		snap_json_obj_begin(j);
		snap_json_key(j, "name"); snap_json_str(j, st->newest.name);
		snap_json_key(j, "kind");
		snap_json_str(j, snap_kind_name(st->newest.kind));
		snap_json_key(j, "created"); snap_json_str(j, t);
		snap_json_key(j, "created_ns");
		snap_json_int(j, st->newest.created_ns);
		snap_json_key(j, "age_seconds");
		snap_json_int(j, st->newest_age_ns / NS);
		snap_json_obj_end(j);
	} else {
		snap_json_null(j);
	}
	snap_json_key(j, "store_bytes");
	snap_json_int(j, (int64_t)st->stats.stored_bytes);
	snap_json_key(j, "logical_bytes");
	snap_json_int(j, (int64_t)st->stats.logical_bytes);
	snap_json_key(j, "file_bytes");
	snap_json_int(j, (int64_t)st->stats.file_bytes);
	status_fmt_ratio(st->dedup_ratio, num);
	snap_json_key(j, "dedup_ratio"); snap_json_raw(j, num);
	status_json_last(j, "last_restore", st->last_restore_ns,
			 st->last_restore_ok, st->last_restore);
	status_json_last(j, "last_check", st->last_check_ns,
			 st->last_check_ok, st->last_check);
	status_json_last(j, "last_verify", st->last_verify_ns,
			 st->last_verify_ok, st->last_verify);
	status_json_time(j, "last_full_scrub", st->last_full_scrub_ns);
	status_json_time(j, "next_snapshot", st->next_snapshot_ns);
	snap_json_key(j, "interval_seconds");
	if (st->interval_ns > 0)
		snap_json_int(j, st->interval_ns / NS);
	else
		snap_json_null(j);
	status_json_replica(j, st);
	snap_json_obj_end(j);
}

/* A growing text buffer for the Prometheus exposition. */
typedef struct status_text {
	char *buf;      /* NUL-terminated, owned */
	size_t len;
	size_t cap;
	int oom;        /* an allocation failed: the text is lost */
} status_text;

static void status_text_add(status_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append printf-style text, growing the buffer (t->oom on failure). */
static void status_text_add(status_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL,
			      t->buf ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = 1;
			return;
		}
		if (t->buf && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		{
			size_t cap = t->cap ? t->cap : 1024;
			char *b;

			while (cap <= t->len + (size_t)n)
				cap *= 2;
			b = realloc(t->buf, cap);
			if (!b) {
				t->oom = 1;
				return;
			}
			t->buf = b;
			t->cap = cap;
		}
	}
}

/* A label value escaped for the exposition format (\\, \", \n). */
static char *status_label_escape(const char *in)
{
	size_t n = 0;
	const char *p;
	char *out, *o;

	for (p = in; *p; p++)
		n += (*p == '\\' || *p == '"' || *p == '\n') ? 2 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	for (o = out, p = in; *p; p++) {
		if (*p == '\\' || *p == '"') {
			*o++ = '\\';
			*o++ = *p;
		} else if (*p == '\n') {
			*o++ = '\\';
			*o++ = 'n';
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

/* # HELP and # TYPE lines of a gauge. */
static void status_prom_head(status_text *t, const char *name,
			     const char *help)
{
	status_text_add(t, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* One sample with the db label; value as text. */
static void status_prom(status_text *t, const char *db, const char *name,
			const char *help, const char *value)
{
	status_prom_head(t, name, help);
	if (value)
		status_text_add(t, "%s{db=\"%s\"} %s\n", name, db, value);
}

/* The ok and timestamp gauges of one "last_*" event. */
static void status_prom_last(status_text *t, const char *db, const char *what,
			     int64_t ns, int ok)
{
	char name[96], help[160], v[32];

	snprintf(name, sizeof(name), "snapfs_last_%s_ok", what);
	snprintf(help, sizeof(help), "1 when the last %s succeeded, 0 when "
		 "it failed; absent when there was none.", what);
	status_prom(t, db, name, help, ns ? (ok ? "1" : "0") : NULL);
	snprintf(name, sizeof(name), "snapfs_last_%s_timestamp_seconds", what);
	snprintf(help, sizeof(help), "When the last %s ran (Unix time).",
		 what);
	status_fmt_seconds(ns, v);
	status_prom(t, db, name, help, ns ? v : NULL);
}

char *snap_status_prometheus(const snap_status *st)
{
	status_text t = { NULL, 0, 0, 0 };
	char v[32];
	char *db = status_label_escape(st->db_path);
	int k;

	if (!db)
		return NULL;
	status_prom_head(&t, "snapfs_snapshots", "Snapshots in the store, "
			 "by kind.");
	for (k = 0; k < SNAP_KIND_COUNT; k++)
		status_text_add(&t, "snapfs_snapshots{db=\"%s\",kind=\"%s\"} "
				"%" PRId64 "\n", db,
				snap_kind_name((snap_kind)k),
				st->count_by_kind[k]);
	status_fmt_seconds(st->newest.created_ns, v);
	status_prom(&t, db, "snapfs_newest_snapshot_timestamp_seconds",
		    "When the newest snapshot was taken (Unix time).",
		    st->have_newest ? v : NULL);
	status_fmt_seconds(st->newest_age_ns, v);
	status_prom(&t, db, "snapfs_newest_snapshot_age_seconds",
		    "Age of the newest snapshot.", st->have_newest ? v : NULL);
	snprintf(v, sizeof(v), "%" PRIu64, st->stats.stored_bytes);
	status_prom(&t, db, "snapfs_store_bytes", "Bytes of stored data "
		    "(compressed pages and page maps).", v);
	snprintf(v, sizeof(v), "%" PRIu64, st->stats.logical_bytes);
	status_prom(&t, db, "snapfs_logical_bytes", "Sum of the snapshots' "
		    "image sizes.", v);
	snprintf(v, sizeof(v), "%" PRIu64, st->stats.file_bytes);
	status_prom(&t, db, "snapfs_store_file_bytes", "Size of the store's "
		    "files on disk.", v);
	status_fmt_ratio(st->dedup_ratio, v);
	status_prom(&t, db, "snapfs_dedup_ratio", "Logical bytes over stored "
		    "bytes (0 when the store is empty).", v);
	status_prom_last(&t, db, "check", st->last_check_ns,
			 st->last_check_ok);
	status_prom_last(&t, db, "verify", st->last_verify_ns,
			 st->last_verify_ok);
	status_prom_last(&t, db, "restore", st->last_restore_ns,
			 st->last_restore_ok);
	status_fmt_seconds(st->last_full_scrub_ns, v);
	status_prom(&t, db, "snapfs_last_full_scrub_timestamp_seconds",
		    "When the last complete scrub pass over the store ended "
		    "(Unix time).", st->last_full_scrub_ns ? v : NULL);
	status_fmt_seconds(st->next_snapshot_ns, v);
	status_prom(&t, db, "snapfs_next_snapshot_timestamp_seconds",
		    "When the next scheduled snapshot is due (Unix time).",
		    st->next_snapshot_ns ? v : NULL);
	status_prom(&t, db, "snapfs_replica_last_ok", "1 when the last "
		    "replication to the offsite replica succeeded, 0 when it "
		    "failed; absent when the store was never replicated.",
		    st->last_replicate_ns ? (st->last_replicate_ok ? "1" :
		    "0") : NULL);
	status_fmt_seconds(st->last_replicate_ns, v);
	status_prom(&t, db, "snapfs_replica_last_timestamp_seconds", "When "
		    "the last replication ran (Unix time).",
		    st->last_replicate_ns ? v : NULL);
	status_fmt_seconds(st->replica_lag_ns, v);
	status_prom(&t, db, "snapfs_replica_lag_seconds", "Creation time of "
		    "the store's newest snapshot minus that of the replica's "
		    "newest; absent when unknown.",
		    st->have_replica_lag ? v : NULL);
	status_fmt_seconds(st->replica_running_ns, v);
	status_prom(&t, db, "snapfs_replica_running_since_timestamp_seconds",
		    "When the mount's replication still running began (Unix "
		    "time); absent when none runs.",
		    st->replica_running_ns ? v : NULL);
	free(db);
	if (t.oom) {
		free(t.buf);
		return NULL;
	}
	return t.buf;
}
