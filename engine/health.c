/*
 * engine/health.c — the health check of the live database, the scrub of
 * the store, and the status report.
 *
 * Check.  PRAGMA quick_check runs on a connection of our own to the live
 * database (SQLite only, never open()/close() of ours: engine/PITFALLS.md 2).
 * quick_check is O(N) like integrity_check but skips the index-to-table
 * cross checks, which is what a periodic check can afford
 * (engine/PITFALLS.md 15).  SQLITE_CORRUPT or SQLITE_NOTADB while checking
 * counts as corruption too, and so does an empty (0-byte) file, which SQLite
 * reads as a healthy empty database although the live one lost everything;
 * any other failure (busy, I/O, permissions) means the check could not run,
 * which is recorded and returned, but is not called corruption.
 *
 * On corruption, in this order, each step recorded as an event:
 *   1. the corrupt state is kept as a snapshot of kind recovery, label
 *      "corrupt" (for analysis; never pruned automatically).  A file too
 *      damaged to be read as a database cannot be snapshotted: the event
 *      says why, and a restore keeps such a file beside the database
 *      (restore.h) so its bytes are not lost either;
 *   2. a "check" event with ok=0 names the first problem (this is the
 *      event the failure hook, on_failure=, reports);
 *   3. with auto_recover, the snapshots are walked newest first, skipping
 *      kind recovery; each gets full verification (pages, hashes,
 *      integrity_check); damaged ones are skipped, counted and named; the
 *      first intact one is restored with snap_restore (which verifies it
 *      again, takes a pre-restore safety snapshot and proves the result);
 *   4. a last "check" event says how it ended: ok=1 "recovered ..." naming
 *      the snapshot restored and the ones skipped, or ok=0 when no intact
 *      snapshot was found or the restore failed.
 * The walk costs one integrity_check per damaged snapshot; recovery is
 * rare and correctness matters more there than time.
 *
 * Every check records exactly one event when healthy, so the history grows
 * by one row per check (a check every minute adds about half a million rows
 * a year; the status queries below read the newest rows first).
 *
 * Scrub.  The store's meta table keeps 'scrub_cursor' (the id of the last
 * snapshot a scrub verified) and 'scrub_full_pass_ns' (when the last pass
 * over the whole store ended).  Each call verifies up to `max` snapshots
 * with ids above the cursor, in id order, saving the cursor after each; when
 * no snapshot is left above it, the pass is complete: the time is recorded,
 * the cursor goes back to 0, and the slice goes on from the oldest
 * snapshot, but never past where it started (no snapshot is verified twice
 * in one call).  An empty store completes a pass trivially.  Snapshots made
 * during a pass are reached by it since ids only grow.  snap_verify_snapshot
 * records a "verify" event per snapshot; the slice adds one "scrub" event
 * (ok=0 when it found damage, naming the damaged snapshots).  A snapshot
 * whose verification could not run (I/O) ends the slice with the cursor
 * before it, so the next slice retries it.
 *
 * Status.  snap_status_get reads the catalog, the store statistics, the
 * newest event of each kind and the scrub time.  "Last verify" is the
 * newest event of kind "verify" or "scrub".
 *
 * The JSON object (snap_status_json) — a contract for scripts:
 *   db               absolute path of the live database
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
 *   next_snapshot    ISO time of the next scheduled snapshot, or null
 *   interval_seconds the schedule's interval, or null without a schedule
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
#include <sys/stat.h>

#include "events.h"
#include "health.h"
#include "json.h"
#include "restore.h"
#include "snapshot.h"
#include "store_int.h"
#include "sys.h"
#include "verify.h"

#define HEALTH_BUSY_MS 30000      /* wait this long for an application */
#define HEALTH_NAMES 400          /* bytes of snapshot names in a detail */
#define NS 1000000000LL

/* ---- check ------------------------------------------------------------ */

/* Add one quick_check result row: lines of problems, the first one of the
 * first row possibly "*** in database main ***". */
static void health_note_problems(const char *text, char *first, size_t cap,
				 unsigned *n)
{
	const char *p = text;

	while (*p) {
		size_t len = strcspn(p, "\n");

		if (len && strncmp(p, "*** in database", 15) != 0) {
			if (!*first)
				snprintf(first, cap, "%.*s", (int)len, p);
			(*n)++;
		}
		p += len;
		if (*p == '\n')
			p++;
	}
}

/*
 * PRAGMA quick_check on the live database.  0 when it says ok; 1 when it
 * found corruption, or the file is empty (the first problem in `first`,
 * their number in *n); a negative errno when the check could not run.
 */
static int health_quick_check(const char *path, char *first, size_t cap,
			      unsigned *n, snap_err *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int rc;

	first[0] = '\0';
	*n = 0;
	if (snap_sys_stat(path, &sb) < 0)
		return snap_err_set(err, -errno, "cannot check %s: %s", path,
				    strerror(errno));
	/* SQLite reads a 0-byte file as an empty database and quick_check
	 * says "ok"; a live database that became empty lost everything. */
	if (sb.st_size == 0) {
		snprintf(first, cap, "the file is empty (0 bytes): no tables, "
			 "no rows");
		*n = 1;
		return 1;
	}
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, db, rc, "cannot open %s to check it",
				     path);
		sqlite3_close(db);
		return rc;
	}
	sqlite3_busy_timeout(db, HEALTH_BUSY_MS);
	sqlite3_extended_result_codes(db, 1);
	rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		if (t && strcmp(t, "ok") != 0)
			health_note_problems(t, first, cap, n);
		rc = SQLITE_OK;
	}
	if (rc == SQLITE_DONE) {
		rc = *n ? 1 : 0;
	} else if ((rc & 0xff) == SQLITE_CORRUPT ||
		   (rc & 0xff) == SQLITE_NOTADB) {
		/* SQLite gave up reading it: that is the problem. */
		if (!*first)
			snprintf(first, cap, "%s", sqlite3_errmsg(db));
		(*n)++;
		rc = 1;
	} else {
		rc = snap_err_sqlite(err, db, rc, "the check of %s could not "
				     "run", path);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* Append a snapshot name to a list for an event ("a, b, ..."). */
static void health_name_add(char *list, size_t cap, const char *name)
{
	size_t len = strlen(list);

	if (len + strlen(name) + 8 >= cap) {
		if (len + 5 < cap && (len < 3 || strcmp(list + len - 3, "...")))
			snprintf(list + len, cap - len, "%s...",
				 len ? ", " : "");
		return;
	}
	snprintf(list + len, cap - len, "%s%s", len ? ", " : "", name);
}

/*
 * A database that stays corrupt is found again by every periodic check:
 * keep one recovery snapshot per corrupt state.  When the new one's image
 * equals the newest older recovery snapshot's, the new one goes and r names
 * the one that already holds that state.
 */
static void health_dedup_recovery(snap_store *s, snap_check_result *r)
{
	snap_info *v = NULL, *prev = NULL;
	size_t n = 0, i;
	snap_err e;

	if (snap_store_list(s, &v, &n, &e))
		return;
	for (i = n; i-- > 0;)
		if (v[i].kind == SNAP_KIND_RECOVERY && v[i].id != r->recovery.id) {
			prev = &v[i];
			break;
		}
	if (prev && memcmp(prev->sha256, r->recovery.sha256, 32) == 0 &&
	    prev->page_size == r->recovery.page_size &&
	    prev->page_count == r->recovery.page_count &&
	    snap_store_delete(s, r->recovery.id, &e) == 0)
		r->recovery = *prev;
	free(v);
}

/* Step 1: keep the corrupt state as a recovery snapshot; on failure `why`
 * says why it could not be kept. */
static void health_keep_corrupt(snap_store *s, snap_check_result *r,
				char *why, size_t cap)
{
	char comment[SNAP_COMMENT_MAX + 1];
	snap_create_opts o = { .kind = SNAP_KIND_RECOVERY, .label = "corrupt", .comment = comment };
	snap_err e;

	snprintf(comment, sizeof(comment), "the corrupt state, kept by the "
		 "health check (quick_check: %s)", r->problem);
	snap_err_clear(&e);
	if (snap_snapshot_take(s, &o, &r->recovery, &e) != 0) {
		snprintf(why, cap, "%s", e.msg);
		return;
	}
	r->have_recovery = 1;
	health_dedup_recovery(s, r);
}

/*
 * Step 3: restore the newest snapshot that passes full verification.
 * Returns 0 when restored, -EBADMSG otherwise (err says why); records the
 * outcome.
 */
static int health_recover(snap_store *s, snap_check_result *r, snap_err *err)
{
	char skipped[HEALTH_NAMES] = "", detail[SNAP_ERR_MSG];
	snap_restore_result res;
	snap_info *v = NULL;
	size_t n = 0, i;
	unsigned unverified = 0;
	snap_err one;
	int rc;

	snap_err_clear(&one);
	rc = snap_store_list(s, &v, &n, &one);
	if (rc) {
		snap_event_add(s, "check", "", 0, "auto_recover of %s could "
			       "not list the snapshots: %s", s->db_path,
			       one.msg);
		return snap_err_set(err, -EBADMSG, "%s is corrupt and "
				    "auto_recover could not list the "
				    "snapshots: %s", s->db_path, one.msg);
	}
	for (i = n; i-- > 0 && !r->restored;) {
		int tried = 0;

		/* Not a corrupt state, and not what someone threw away. */
		if (v[i].kind == SNAP_KIND_RECOVERY ||
		    v[i].trash != SNAP_TRASH_NONE)
			continue;
		memset(&res, 0, sizeof(res));
		snap_err_clear(&one);
		rc = snap_verify_snapshot(s, v[i].id, 1, NULL, NULL, &one);
		if (rc == 0) {
			tried = 1;
			snap_err_clear(&one);
			rc = snap_restore(s, v[i].id, &res, &one);
		}
		if (rc == 0) {
			r->restored = 1;
			r->restored_from = v[i];
		} else if (rc == -EBADMSG) {
			/* Damaged (found by the verification, or by the
			 * restore's own when it broke in between). */
			r->skipped_bad++;
			health_name_add(skipped, sizeof(skipped), v[i].name);
		} else if (rc == -ENOENT) {
			continue;               /* deleted meanwhile */
		} else if (tried) {
			/* The restore itself failed (busy, space, I/O): an
			 * older snapshot would fail the same way. */
			snprintf(detail, sizeof(detail), "auto_recover could not "
				 "restore snapshot %s: %s", v[i].name, one.msg);
			snap_event_add(s, "check", v[i].name, 0, "%s", detail);
			free(v);
			return snap_err_set(err, -EBADMSG, "%s is corrupt; %s",
					    s->db_path, detail);
		} else {
			/* Its verification could not run (I/O on the store):
			 * not proven intact, so not restored. */
			unverified++;
			health_name_add(skipped, sizeof(skipped), v[i].name);
		}
	}
	free(v);
	if (!r->restored) {
		snprintf(detail, sizeof(detail), "auto_recover found no intact "
			 "snapshot of %s (%u damaged%s%s%s)", s->db_path,
			 r->skipped_bad, unverified ? ", some unverifiable" : "",
			 *skipped ? ": " : "", skipped);
		snap_event_add(s, "check", "", 0, "%s", detail);
		return snap_err_set(err, -EBADMSG, "%s is corrupt and %s; "
				    "restore an older copy by hand (snapctl "
				    "restore --file)", s->db_path, detail);
	}
	snap_event_add(s, "check", r->restored_from.name, 1, "recovered: %s "
		       "restored from snapshot %s (full verification passed)"
		       "%s%s; skipped %u damaged snapshot%s%s%s", s->db_path,
		       r->restored_from.name, *res.kept ? "; the corrupt file "
		       "is kept as " : "", res.kept, r->skipped_bad,
		       r->skipped_bad == 1 ? "" : "s", *skipped ? ": " : "",
		       skipped);
	return 0;
}

int snap_health_check(snap_store *s, int auto_recover, snap_check_result *r,
		      snap_err *err)
{
	snap_check_result tmp;
	snap_err local;
	char why[SNAP_ERR_MSG] = "";
	unsigned nprob = 0;
	int rc;

	if (!r)
		r = &tmp;
	if (!err)
		err = &local;
	memset(r, 0, sizeof(*r));
	snap_err_clear(err);
	rc = health_quick_check(s->db_path, r->problem, sizeof(r->problem),
				&nprob, err);
	if (rc < 0) {
		snap_event_add(s, "check", "", 0, "the check could not run: %s",
			       err->msg);
		return rc;
	}
	if (rc == 0) {
		snap_event_add(s, "check", "", 1, "quick_check of %s: ok",
			       s->db_path);
		return 0;
	}
	r->corrupt = 1;
	health_keep_corrupt(s, r, why, sizeof(why));
	snap_event_add(s, "check", r->have_recovery ? r->recovery.name : "", 0,
		       "%s is corrupt: quick_check found %u problem%s, first: "
		       "%s; %s%s", s->db_path, nprob, nprob == 1 ? "" : "s",
		       r->problem, r->have_recovery ? "the corrupt state is "
		       "kept as snapshot " : "the corrupt state could not be "
		       "kept as a snapshot: ", r->have_recovery ?
		       r->recovery.name : why);
	if (auto_recover)
		return health_recover(s, r, err);
	return snap_err_set(err, -EBADMSG, "%s is corrupt (quick_check: %s); "
			    "%s%s; restore an intact snapshot (snapctl "
			    "restore, or snapctl check --recover)",
			    s->db_path, r->problem, r->have_recovery ?
			    "its state is kept as snapshot " : "its state "
			    "could not be kept: ", r->have_recovery ?
			    r->recovery.name : why);
}

/* ---- scrub -------------------------------------------------------------- */

/* An integer meta value of the store; `dflt` when absent. */
static int health_meta_get(snap_store *s, const char *key, int64_t dflt,
			   int64_t *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*out = dflt;
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key=?",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot read "
				     "%s", s->dir, key);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

static int health_meta_set(snap_store *s, const char *key, int64_t value,
			   snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, "INSERT INTO meta(key, value) "
				"VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE "
				"SET value=?2", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, value);
		rc = sqlite3_step(st);
	}
	rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, s->db, rc, "store "
		"%s: cannot record %s", s->dir, key);
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

/* The id of the first snapshot with id > after; 0 when none. */
static int health_next_id(snap_store *s, int64_t after, int64_t *id,
			  snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*id = 0;
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, "SELECT min(id) FROM snapshots WHERE "
				"id>?", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, after);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot list "
				     "snapshots to scrub", s->dir);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

int snap_health_scrub(snap_store *s, unsigned max, int full,
		      snap_scrub_result *r, snap_err *err)
{
	snap_scrub_result tmp;
	char bad[HEALTH_NAMES] = "";
	int64_t start = 0, cursor, id;
	int wrapped = 0, rc;

	if (!r)
		r = &tmp;
	memset(r, 0, sizeof(*r));
	rc = health_meta_get(s, "scrub_cursor", 0, &start, err);
	cursor = start;
	while (!rc && r->verified < max) {
		snap_err one;

		rc = health_next_id(s, cursor, &id, err);
		if (rc)
			break;
		if (!id || (wrapped && id > start)) {
			if (wrapped)
				break;          /* back where this slice began */
			/* Nothing above the cursor: the pass is complete. */
			r->full_pass_done = 1;
			wrapped = 1;
			cursor = 0;
			rc = health_meta_set(s, "scrub_full_pass_ns",
					     snap_time_now_ns(), err);
			if (!rc)
				rc = health_meta_set(s, "scrub_cursor", 0, err);
			continue;
		}
		snap_err_clear(&one);
		rc = snap_verify_snapshot(s, id, full, NULL, NULL, &one);
		if (rc == -EBADMSG) {
			snap_info si;

			r->bad++;
			if (snap_store_get(s, id, &si, NULL) == 0)
				health_name_add(bad, sizeof(bad), si.name);
			rc = 0;
			r->verified++;
		} else if (rc == -ENOENT) {
			rc = 0;                 /* deleted meanwhile */
		} else if (rc) {
			snap_err_set(err, rc, "scrub of %s stopped: %s", s->dir,
				     one.msg);
			break;
		} else {
			r->verified++;
		}
		cursor = id;
		rc = health_meta_set(s, "scrub_cursor", cursor, err);
	}
	/* A pass that ended with the last snapshot of this slice. */
	if (!rc && !r->full_pass_done && r->verified) {
		rc = health_next_id(s, cursor, &id, err);
		if (!rc && !id) {
			r->full_pass_done = 1;
			rc = health_meta_set(s, "scrub_full_pass_ns",
					     snap_time_now_ns(), err);
			if (!rc)
				rc = health_meta_set(s, "scrub_cursor", 0, err);
		}
	}
	if (r->verified || r->full_pass_done || rc)
		snap_event_add(s, "scrub", "", !rc && !r->bad, "%s scrub: %u "
			       "snapshot%s verified, %u damaged%s%s%s%s%s",
			       full ? "full" : "quick", r->verified,
			       r->verified == 1 ? "" : "s", r->bad,
			       *bad ? " (" : "", bad, *bad ? ")" : "",
			       r->full_pass_done ? "; full pass completed" : "",
			       rc ? "; stopped early" : "");
	if (!rc && r->bad)
		rc = snap_err_set(err, -EBADMSG, "scrub of %s: %u damaged "
				  "snapshot%s: %s; delete them or restore "
				  "from another copy", s->dir, r->bad,
				  r->bad == 1 ? "" : "s", bad);
	return rc;
}

/* ---- status ------------------------------------------------------------ */

/* The newest event of a kind (or of either of two kinds). */
static int health_last_event(snap_store *s, const char *kind,
			     const char *kind2, int64_t *time_ns, int *ok,
			     char *detail, size_t cap, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*time_ns = 0;
	*ok = 0;
	detail[0] = '\0';
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, "SELECT time_ns, ok, detail FROM events "
				"WHERE kind IN (?1, ?2) ORDER BY id DESC "
				"LIMIT 1", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, kind2 ? kind2 : kind, -1,
				  SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 2);

		*time_ns = sqlite3_column_int64(st, 0);
		*ok = sqlite3_column_int(st, 1) != 0;
		snprintf(detail, cap, "%s", d ? d : "");
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

/* Snapshots per kind. */
static int health_count_kinds(snap_store *s, snap_status *st, snap_err *err)
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
	rc = health_count_kinds(s, st, err);
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
		rc = health_last_event(s, "restore", NULL, &st->last_restore_ns,
				       &st->last_restore_ok, st->last_restore,
				       sizeof(st->last_restore), err);
	if (!rc)
		rc = health_last_event(s, "check", NULL, &st->last_check_ns,
				       &st->last_check_ok, st->last_check,
				       sizeof(st->last_check), err);
	if (!rc)
		rc = health_last_event(s, "verify", "scrub",
				       &st->last_verify_ns, &st->last_verify_ok,
				       st->last_verify, sizeof(st->last_verify),
				       err);
	if (!rc)
		rc = health_meta_get(s, "scrub_full_pass_ns", 0,
				     &st->last_full_scrub_ns, err);
	return rc;
}

/* "12.345" for a non-negative ratio, three decimals, locale-free. */
static void health_fmt_ratio(double v, char out[32])
{
	int64_t milli;

	if (!(v > 0))
		v = 0;
	milli = (int64_t)(v * 1000.0 + 0.5);
	snprintf(out, 32, "%" PRId64 ".%03" PRId64, milli / 1000, milli % 1000);
}

/* "1700000000.123" seconds from nanoseconds, locale-free. */
static void health_fmt_seconds(int64_t ns, char out[32])
{
	int64_t ms = ns / 1000000;

	snprintf(out, 32, "%s%" PRId64 ".%03" PRId64, ms < 0 ? "-" : "",
		 (ms < 0 ? -ms : ms) / 1000, (ms < 0 ? -ms : ms) % 1000);
}

/* {"time":..., "time_ns":..., "ok":..., "detail":...} or null. */
static void health_json_last(snap_json *j, const char *key, int64_t ns,
			     int ok, const char *detail)
{
	char t[40];

	snap_json_key(j, key);
	if (!ns) {
		snap_json_null(j);
		return;
	}
	snap_time_iso(ns, t);
	snap_json_obj_begin(j);
	snap_json_key(j, "time"); snap_json_str(j, t);
	snap_json_key(j, "time_ns"); snap_json_int(j, ns);
	snap_json_key(j, "ok"); snap_json_bool(j, ok);
	snap_json_key(j, "detail"); snap_json_str(j, detail);
	snap_json_obj_end(j);
}

/* "key": an ISO time, and "key_ns": the same time in ns since the epoch
 * for programs; both null for 0. */
static void health_json_time(snap_json *j, const char *key, int64_t ns)
{
	char t[40], key_ns[64];

	snprintf(key_ns, sizeof(key_ns), "%s_ns", key);
	snap_json_key(j, key);
	if (!ns) {
		snap_json_null(j);
		snap_json_key(j, key_ns);
		snap_json_null(j);
		return;
	}
	snap_time_iso(ns, t);
	snap_json_str(j, t);
	snap_json_key(j, key_ns);
	snap_json_int(j, ns);
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
	health_fmt_ratio(st->dedup_ratio, num);
	snap_json_key(j, "dedup_ratio"); snap_json_raw(j, num);
	health_json_last(j, "last_restore", st->last_restore_ns,
			 st->last_restore_ok, st->last_restore);
	health_json_last(j, "last_check", st->last_check_ns,
			 st->last_check_ok, st->last_check);
	health_json_last(j, "last_verify", st->last_verify_ns,
			 st->last_verify_ok, st->last_verify);
	health_json_time(j, "last_full_scrub", st->last_full_scrub_ns);
	health_json_time(j, "next_snapshot", st->next_snapshot_ns);
	snap_json_key(j, "interval_seconds");
	if (st->interval_ns > 0)
		snap_json_int(j, st->interval_ns / NS);
	else
		snap_json_null(j);
	snap_json_obj_end(j);
}

/* A growing text buffer for the Prometheus exposition. */
typedef struct health_text {
	char *buf;      /* NUL-terminated, owned */
	size_t len;
	size_t cap;
	int oom;        /* an allocation failed: the text is lost */
} health_text;

static void health_text_add(health_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void health_text_add(health_text *t, const char *fmt, ...)
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
static char *health_label_escape(const char *in)
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
static void health_prom_head(health_text *t, const char *name,
			     const char *help)
{
	health_text_add(t, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* One sample with the db label; value as text. */
static void health_prom(health_text *t, const char *db, const char *name,
			const char *help, const char *value)
{
	health_prom_head(t, name, help);
	if (value)
		health_text_add(t, "%s{db=\"%s\"} %s\n", name, db, value);
}

/* The ok and timestamp gauges of one "last_*" event. */
static void health_prom_last(health_text *t, const char *db, const char *what,
			     int64_t ns, int ok)
{
	char name[96], help[160], v[32];

	snprintf(name, sizeof(name), "snapfs_last_%s_ok", what);
	snprintf(help, sizeof(help), "1 when the last %s succeeded, 0 when "
		 "it failed; absent when there was none.", what);
	health_prom(t, db, name, help, ns ? (ok ? "1" : "0") : NULL);
	snprintf(name, sizeof(name), "snapfs_last_%s_timestamp_seconds", what);
	snprintf(help, sizeof(help), "When the last %s ran (Unix time).",
		 what);
	health_fmt_seconds(ns, v);
	health_prom(t, db, name, help, ns ? v : NULL);
}

char *snap_status_prometheus(const snap_status *st)
{
	health_text t = { NULL, 0, 0, 0 };
	char v[32];
	char *db = health_label_escape(st->db_path);
	int k;

	if (!db)
		return NULL;
	health_prom_head(&t, "snapfs_snapshots", "Snapshots in the store, "
			 "by kind.");
	for (k = 0; k < SNAP_KIND_COUNT; k++)
		health_text_add(&t, "snapfs_snapshots{db=\"%s\",kind=\"%s\"} "
				"%" PRId64 "\n", db,
				snap_kind_name((snap_kind)k),
				st->count_by_kind[k]);
	health_fmt_seconds(st->newest.created_ns, v);
	health_prom(&t, db, "snapfs_newest_snapshot_timestamp_seconds",
		    "When the newest snapshot was taken (Unix time).",
		    st->have_newest ? v : NULL);
	health_fmt_seconds(st->newest_age_ns, v);
	health_prom(&t, db, "snapfs_newest_snapshot_age_seconds",
		    "Age of the newest snapshot.", st->have_newest ? v : NULL);
	snprintf(v, sizeof(v), "%" PRIu64, st->stats.stored_bytes);
	health_prom(&t, db, "snapfs_store_bytes", "Bytes of stored data "
		    "(compressed pages and page maps).", v);
	snprintf(v, sizeof(v), "%" PRIu64, st->stats.logical_bytes);
	health_prom(&t, db, "snapfs_logical_bytes", "Sum of the snapshots' "
		    "image sizes.", v);
	snprintf(v, sizeof(v), "%" PRIu64, st->stats.file_bytes);
	health_prom(&t, db, "snapfs_store_file_bytes", "Size of the store's "
		    "files on disk.", v);
	health_fmt_ratio(st->dedup_ratio, v);
	health_prom(&t, db, "snapfs_dedup_ratio", "Logical bytes over stored "
		    "bytes (0 when the store is empty).", v);
	health_prom_last(&t, db, "check", st->last_check_ns,
			 st->last_check_ok);
	health_prom_last(&t, db, "verify", st->last_verify_ns,
			 st->last_verify_ok);
	health_prom_last(&t, db, "restore", st->last_restore_ns,
			 st->last_restore_ok);
	health_fmt_seconds(st->last_full_scrub_ns, v);
	health_prom(&t, db, "snapfs_last_full_scrub_timestamp_seconds",
		    "When the last complete scrub pass over the store ended "
		    "(Unix time).", st->last_full_scrub_ns ? v : NULL);
	health_fmt_seconds(st->next_snapshot_ns, v);
	health_prom(&t, db, "snapfs_next_snapshot_timestamp_seconds",
		    "When the next scheduled snapshot is due (Unix time).",
		    st->next_snapshot_ns ? v : NULL);
	free(db);
	if (t.oom) {
		free(t.buf);
		return NULL;
	}
	return t.buf;
}
