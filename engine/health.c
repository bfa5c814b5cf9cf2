/*
 * engine/health.c — the health check of the live database and the scrub
 * of the store (the status report is status.c).
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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "events.h"
#include "health.h"
#include "livedb.h"
#include "restore.h"
#include "snapshot.h"
#include "store_int.h"
#include "sys.h"
#include "verify.h"

#define HEALTH_NAMES 400          /* bytes of snapshot names in a detail */

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
	rc = snap_livedb_open(path, SNAP_LIVEDB_RW, NULL, &db, err);
	if (rc)
		return rc;
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

/*
 * Run one statement on the store's connection under the store's lock,
 * with ?1 bound to the text `key` (to `num` when key is NULL) and ?2, if
 * there is one, to `num`; the first row's first column goes to *out (left
 * alone without a row, or when out is NULL).  0, or a negative errno with
 * "store DIR: cannot WHAT".
 */
static int health_query(snap_store *s, const char *sql, const char *key,
			int64_t num, int64_t *out, const char *what,
			snap_err *err)
{
	sqlite3_stmt *st;
	int rc = snap_store_step1(s, sql, key, num, &st);

	if (rc == SQLITE_ROW && out)
		*out = sqlite3_column_int64(st, 0);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = 0;
	else
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot %s",
				     s->dir, what);
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

/* An integer meta value of the store; `dflt` when absent. */
static int health_meta_get(snap_store *s, const char *key, int64_t dflt,
			   int64_t *out, snap_err *err)
{
	char what[64];

	*out = dflt;
	snprintf(what, sizeof(what), "read %s", key);
	return health_query(s, "SELECT value FROM meta WHERE key=?1", key, 0,
			    out, what, err);
}

/* Set an integer meta value of the store. */
static int health_meta_set(snap_store *s, const char *key, int64_t value,
			   snap_err *err)
{
	char what[64];

	snprintf(what, sizeof(what), "record %s", key);
	return health_query(s, "INSERT INTO meta(key, value) VALUES(?1, ?2) "
			    "ON CONFLICT(key) DO UPDATE SET value=?2", key,
			    value, NULL, what, err);
}

/* The id of the first snapshot with id > after; 0 when none. */
static int health_next_id(snap_store *s, int64_t after, int64_t *id,
			  snap_err *err)
{
	*id = 0;
	return health_query(s, "SELECT min(id) FROM snapshots WHERE id>?1",
			    NULL, after, id, "list snapshots to scrub", err);
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

int snap_health_scrub_last(snap_store *s, int64_t *ns, snap_err *err)
{
	return health_meta_get(s, "scrub_full_pass_ns", 0, ns, err);
}
