/*
 * engine/events.c — the event history.
 *
 * Events are written on the catalog connection.  When that connection is
 * inside a transaction (an operation in progress), the event joins it;
 * otherwise it commits alone.  Failures are recorded after the failed
 * operation rolled back, so they survive it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "store_int.h"

/* Failures of these operations reach the failure hook (on_failure=). */
static int hooked_kind(const char *kind)
{
	static const char *const kinds[] = {
		"snapshot", "check", "verify", "restore", "scrub", "import",
		"replicate",
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i]) == 0)
			return 1;
	return 0;
}

/* 1 when the store is writable after giving its reserve back: only when
 * its filesystem is what stood in the way (rc -ENOSPC, or the store was
 * opened read-only because it was full), and only for the events the
 * history must not lose on a full disk: a failure, a snapshot taken. */
static int event_room(snap_store *s, int rc, const char *kind, int ok)
{
	snap_err e;
	int ro;

	if (ok && strcmp(kind, "snapshot"))
		return 0;
	snap_store_lock(s);
	ro = s->readonly;
	snap_store_unlock(s);
	if (rc != -ENOSPC && !(rc == -EROFS && ro == SNAP_STORE_RO_FULL))
		return 0;
	return snap_store_reserve_release(s) && snap_store_writable(s, &e) == 0;
}

/* Record an event under s->mu; calls the failure hook for a failure. */
int snap_event_add(snap_store *s, const char *kind, const char *snapshot,
		   int ok, const char *fmt, ...)
{
	void (*hook)(void *, const struct snap_event *);
	void *hook_ctx;
	snap_event ev;
	va_list ap;
	int rc;

	memset(&ev, 0, sizeof(ev));
	va_start(ap, fmt);
	vsnprintf(ev.detail, sizeof(ev.detail), fmt, ap);
	va_end(ap);
	snap_store_lock(s);
	rc = snap_event_add_db(s->db, kind, snapshot, ok, ev.detail);
	ev.id = sqlite3_last_insert_rowid(s->db);
	snap_store_unlock(s);
	/* The history must not lose what happened because the store's
	 * filesystem is full (or the store was opened read-only for that
	 * reason): the store's reserve is given back for it (storespace.c). */
	if (rc && event_room(s, rc, kind, ok)) {
		snap_store_lock(s);
		rc = snap_event_add_db(s->db, kind, snapshot, ok, ev.detail);
		ev.id = sqlite3_last_insert_rowid(s->db);
		snap_store_unlock(s);
	}
	snap_store_lock(s);
	hook = s->failure_hook;
	hook_ctx = s->failure_ctx;
	snap_store_unlock(s);
	/* The hook runs outside the store lock: it may call the engine. */
	if (!ok && hook && hooked_kind(kind)) {
		ev.time_ns = snap_time_now_ns();
		snprintf(ev.kind, sizeof(ev.kind), "%s", kind);
		snprintf(ev.snapshot, sizeof(ev.snapshot), "%s",
			 snapshot ? snapshot : "");
		hook(hook_ctx, &ev);
	}
	return rc;
}

/* Set (or with NULL remove) the store's failure hook. */
void snap_store_set_failure_hook(snap_store *s,
				 void (*fn)(void *, const struct snap_event *),
				 void *ctx)
{
	snap_store_lock(s);
	s->failure_hook = fn;
	s->failure_ctx = ctx;
	snap_store_unlock(s);
}

/* Events after after_id, oldest first (only the newest `limit`). */
int snap_event_list(snap_store *s, int64_t after_id, size_t limit,
		    snap_event **out, size_t *n, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	snap_event *v = NULL;
	size_t cnt = 0, cap = 0;
	int rc;

	*out = NULL;
	*n = 0;
	snap_store_lock(s);
	/* The newest `limit` events, returned oldest first. */
	rc = sqlite3_prepare_v2(s->db, "SELECT * FROM (SELECT id, time_ns, "
				"kind, snapshot, ok, detail FROM events WHERE "
				"id>? ORDER BY id DESC LIMIT ?) ORDER BY id",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, after_id);
		sqlite3_bind_int64(st, 2, limit ? (int64_t)limit : -1);
	}
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		snap_event *e;
		if (snap_array_grow(&v, &cap, cnt, sizeof(*v), 32)) {
			rc = SQLITE_NOMEM;
			break;
		}
		e = &v[cnt++];
		e->id = sqlite3_column_int64(st, 0);
		e->time_ns = sqlite3_column_int64(st, 1);
		snprintf(e->kind, sizeof(e->kind), "%s",
			 (const char *)sqlite3_column_text(st, 2));
		snprintf(e->snapshot, sizeof(e->snapshot), "%s",
			 (const char *)sqlite3_column_text(st, 3));
		e->ok = sqlite3_column_int(st, 4);
		snprintf(e->detail, sizeof(e->detail), "%s",
			 (const char *)sqlite3_column_text(st, 5));
		rc = SQLITE_OK;
	}
	rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, s->db, rc,
		"store %s: cannot read the event history", s->dir);
	sqlite3_finalize(st);
	snap_store_unlock(s);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}
