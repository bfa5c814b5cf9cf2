/*
 * engine/retention.c — applying a retention policy to a store: pruning
 * what the keep rules (keep.c) do not keep, the max_size cap and the
 * free-space guard; see retention.h for the contract.
 *
 * max_size needs to know what deleting would reclaim, and deletion changes
 * reference counts (see storemap.c), so a dry run cannot simply delete.  The
 * model here loads, in one read transaction of its own connection, every
 * page's stored length and every snapshot's page map, counts for each page
 * the map entries naming it, and then "deletes" victims in memory: a page
 * whose count reaches zero frees its stored length, each snapshot frees its
 * map.  That is exactly the store's stored_bytes accounting (a page row
 * exists iff some snapshot uses it), so a dry run and a real run choose the
 * same victims.  The model costs one pass over the maps; it is built only
 * when the store is over its cap, or when the guard is short of space.
 *
 * The free-space guard measures, in this order: the filesystem's free space
 * (statvfs on the store directory), the free pages inside store.db (space a
 * deleted snapshot left behind: deleting never shrinks the file, but the
 * next snapshot reuses those pages), and the worst case a snapshot may
 * write (see retention.h: its WAL frames plus the growth of store.db).
 * Deletions go through snap_store_delete(), each its own transaction, so a
 * crash or an error between two of them leaves a valid store; the guard
 * deletes nothing unless deleting every candidate could make room.
 *
 * Thread-safety: everything here goes through the store's locked catalog
 * calls or a private connection; no lock is held across a model build.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "events.h"
#include "retention.h"
#include "store_int.h"
#include "sys.h"

#define NS_PER_SEC 1000000000LL
#define MIB (1024ull * 1024ull)
#define RET_CHECKPOINT_MS 1000      /* wait this long for WAL readers */

/* ------------------------------------------------------------------ */
/* the page model: what deleting snapshots would reclaim               */

/* One stored page: its stored length and how often maps name it. */
typedef struct ret_page {
	int64_t id;          /* pages.id, 0 = empty slot */
	int64_t zlen;        /* stored bytes */
	uint64_t refs;       /* map entries naming it, over all snapshots */
} ret_page;

/* One snapshot in the model. */
typedef struct ret_snap {
	int64_t id;
	int64_t maplen;      /* length(pagemap) */
	int gone;            /* removed from the model */
} ret_snap;

/* The store as seen by one read transaction on a private connection. */
typedef struct ret_model {
	sqlite3 *db;         /* private, read-only, inside BEGIN */
	ret_page *pages;     /* open addressing, linear probing */
	size_t cap;          /* power of two */
	ret_snap *snaps;     /* every snapshot, any order */
	size_t nsnaps;
	uint64_t stored;     /* what stats' stored_bytes would say now */
} ret_model;

/* The slot of page id (empty slot where it would go). */
static ret_page *model_slot(ret_model *m, int64_t id)
{
	size_t mask = m->cap - 1;
	size_t i = (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 17) &
		   mask;

	while (m->pages[i].id && m->pages[i].id != id)
		i = (i + 1) & mask;
	return &m->pages[i];
}

/* End the model's read transaction, close its connection, free it. */
static void model_close(ret_model *m)
{
	if (m->db) {
		sqlite3_exec(m->db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(m->db);
	}
	free(m->pages);
	free(m->snaps);
	memset(m, 0, sizeof(*m));
}

/*
 * Walk snapshot id's map, adding delta (+1 or -1) to the refs of the page
 * each entry names; with delta -1 add to *freed the stored bytes of pages
 * that no map names any more.  A page named twice by one map is counted
 * twice going in and twice going out, so refs reach 0 exactly when no
 * remaining snapshot uses the page.
 */
static int model_walk(ret_model *m, int64_t id, int delta, uint64_t *freed,
		      snap_err *err)
{
	int64_t *ids = NULL;
	uint32_t n = 0, i;
	int rc = snap_store_load_map(m->db, id, &n, &ids, err);

	if (rc)
		return rc;
	for (i = 0; i < n; i++) {
		ret_page *pg;
		if (ids[i] <= 0)
			continue;
		pg = model_slot(m, ids[i]);
		if (!pg->id)
			continue;      /* not a stored page: nothing to free */
		if (delta > 0) {
			pg->refs++;
		} else if (pg->refs > 0 && --pg->refs == 0) {
			*freed += (uint64_t)pg->zlen;
		}
	}
	free(ids);
	return 0;
}

/* Load every page's stored length into the (empty) hash. */
static int model_load_pages(snap_store *s, ret_model *m, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t npages = 0;
	int rc;

	rc = sqlite3_prepare_v2(m->db, "SELECT count(*) FROM pages", -1, &st,
				NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		npages = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_ROW)
		return snap_err_sqlite(err, m->db, rc, "store %s: cannot count "
				       "its pages", s->dir);
	/* At most half full: probing always ends at an empty slot. */
	m->cap = 16;
	while (m->cap < (size_t)npages * 2)
		m->cap *= 2;
	m->pages = calloc(m->cap, sizeof(*m->pages));
	if (!m->pages)
		return snap_err_set(err, -ENOMEM, "out of memory for a model "
				    "of %lld pages", (long long)npages);
	rc = sqlite3_prepare_v2(m->db, "SELECT id, zlen FROM pages", -1, &st,
				NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret_page *pg = model_slot(m, sqlite3_column_int64(st, 0));
		pg->id = sqlite3_column_int64(st, 0);
		pg->zlen = sqlite3_column_int64(st, 1);
		m->stored += (uint64_t)pg->zlen;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, m->db, rc, "store %s: cannot read "
				       "its pages", s->dir);
	return 0;
}

/* Load the catalog (ids, map lengths) and count every map's pages. */
static int model_load_snaps(snap_store *s, ret_model *m, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0, i;
	int rc;

	rc = sqlite3_prepare_v2(m->db, "SELECT id, length(pagemap) FROM "
				"snapshots", -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		ret_snap *sn;
		if (snap_array_grow(&m->snaps, &cap, m->nsnaps, sizeof(*m->snaps), 64)) {
			rc = SQLITE_NOMEM;
			break;
		}
		sn = &m->snaps[m->nsnaps++];
		sn->id = sqlite3_column_int64(st, 0);
		sn->maplen = sqlite3_column_int64(st, 1);
		sn->gone = 0;
		m->stored += (uint64_t)sn->maplen;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, m->db, rc, "store %s: cannot read "
				       "its catalog", s->dir);
	for (i = 0; i < m->nsnaps; i++) {
		rc = model_walk(m, m->snaps[i].id, 1, NULL, err);
		if (rc)
			return rc;
	}
	return 0;
}

/* Build the model of the store's current state (see the top). */
static int model_open(snap_store *s, ret_model *m, snap_err *err)
{
	int rc;

	memset(m, 0, sizeof(*m));
	rc = snap_store_connect(s, 1, &m->db, err);
	if (!rc)
		rc = snap_store_exec(m->db, "BEGIN", err);
	if (!rc)
		rc = model_load_pages(s, m, err);
	if (!rc)
		rc = model_load_snaps(s, m, err);
	if (rc) {
		snap_err_prefix(err, "store %s: sizing what pruning would "
				"reclaim", s->dir);
		model_close(m);
	}
	return rc;
}

/* Remove snapshot id from the model; *freed gets what that reclaims (0
 * when the snapshot is not in the store any more). */
static int model_remove(ret_model *m, int64_t id, uint64_t *freed,
			snap_err *err)
{
	size_t i;
	int rc;

	*freed = 0;
	for (i = 0; i < m->nsnaps && m->snaps[i].id != id; i++)
		;
	if (i == m->nsnaps || m->snaps[i].gone)
		return 0;
	rc = model_walk(m, id, -1, freed, err);
	if (rc)
		return rc;
	m->snaps[i].gone = 1;
	*freed += (uint64_t)m->snaps[i].maplen;
	m->stored -= *freed < m->stored ? *freed : m->stored;
	return 0;
}

/*
 * max_size on a plan (d, n newest first): take what the rules prune out of
 * the model, then the oldest kept candidates (never d[0], the newest
 * snapshot) until the stored bytes fit, marking them "over max_size".
 */
static int apply_max_size(snap_store *s, uint64_t max,
			  snap_keep_decision *d, size_t n, snap_err *err)
{
	ret_model m;
	uint64_t freed;
	size_t i;
	int rc;

	if (n == 0)
		return 0;
	rc = model_open(s, &m, err);
	for (i = 0; !rc && i < n; i++)
		if (!d[i].keep)
			rc = model_remove(&m, d[i].info.id, &freed, err);
	for (i = n - 1; !rc && i > 0 && m.stored > max; i--) {
		if (!d[i].keep || !snap_keep_candidate(&d[i].info))
			continue;
		rc = model_remove(&m, d[i].info.id, &freed, err);
		d[i].keep = 0;
		d[i].reason[0] = '\0';
		snap_keep_reason_add(&d[i], "over max_size");
	}
	model_close(&m);
	return rc;
}

/* A plan for the store's current snapshots: rules, then max_size. */
static int plan_store(snap_store *s, const snap_keep_policy *p,
		      snap_keep_decision **out, size_t *n, snap_err *err)
{
	snap_info *v = NULL;
	snap_keep_decision *d;
	uint64_t stored;
	size_t i, kept = 0;
	int rc;

	*out = NULL;
	*n = 0;
	rc = snap_store_list(s, &v, n, err);
	if (rc)
		return rc;
	/* Snapshots in the trash are out of retention's reach: neither
	 * pruned nor counted as kept (engine/trash.h). */
	for (i = 0; i < *n; i++)
		if (v[i].trash == SNAP_TRASH_NONE)
			v[kept++] = v[i];
	*n = kept;
	d = calloc(*n ? *n : 1, sizeof(*d));
	if (!d) {
		free(v);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	snap_retention_plan(v, *n, p, d);
	free(v);
	if (p->max_size) {
		snap_store_stats st;
		rc = snap_store_stats_get(s, &st, err);
		stored = st.stored_bytes;
		/* Build the model only when the store may be over its cap. */
		if (!rc && stored > p->max_size)
			rc = apply_max_size(s, p->max_size, d, *n, err);
	}
	if (rc) {
		free(d);
		*n = 0;
		return rc;
	}
	*out = d;
	return 0;
}

/* ------------------------------------------------------------------ */
/* pruning                                                             */

int snap_retention_prune(snap_store *s, const snap_keep_policy *p,
			 int dry_run, snap_keep_decision **out, size_t *n,
			 size_t *pruned, snap_err *err)
{
	snap_keep_decision *d = NULL;
	snap_err local;
	char pol[256];
	size_t cnt = 0, i, want = 0, done = 0;
	int rc;

	*out = NULL;
	*n = 0;
	*pruned = 0;
	if (err == NULL)
		err = &local;          /* the event detail needs a message */
	snap_err_clear(err);
	snap_keep_format(p, pol, sizeof(pol));
	rc = plan_store(s, p, &d, &cnt, err);
	if (rc) {
		snap_err_prefix(err, "prune (keep %s)", pol);
		if (!dry_run)
			snap_event_add(s, "prune", "", 0, "%s", err->msg);
		return rc;
	}
	for (i = 0; i < cnt; i++)
		want += !d[i].keep;
	/* Oldest first, so an interrupted prune has taken the oldest. */
	for (i = cnt; !dry_run && !rc && i-- > 0;) {
		snap_err e;
		if (d[i].keep)
			continue;
		snap_err_clear(&e);
		rc = snap_store_delete(s, d[i].info.id, &e);
		if (rc == -ENOENT) {
			rc = 0;        /* deleted meanwhile: what we wanted */
		} else if (rc) {
			snap_err_set(err, rc, "prune (keep %s): deleted %zu of "
				     "%zu, then %s: %s", pol, done, want,
				     d[i].info.name, e.msg);
		} else {
			done++;
		}
	}
	if (dry_run) {
		done = want;
	} else if (rc) {
		snap_event_add(s, "prune", "", 0, "%s", err->msg);
		free(d);
		return rc;
	} else if (done) {
		snap_event_add(s, "prune", "", 1, "pruned %zu of %zu snapshots "
			       "(keep %s); %zu kept", done, cnt, pol,
			       cnt - want);
	}
	*out = d;
	*n = cnt;
	*pruned = done;
	return 0;
}

/* ------------------------------------------------------------------ */
/* the free-space guard                                                */

/*
 * Checkpoint the store's WAL and truncate it to zero bytes, so its space
 * counts as free; best effort (readers may hold it: then nothing changes).
 */
static void wal_truncate(snap_store *s)
{
	sqlite3 *db = NULL;

	if (snap_store_connect(s, 0, &db, NULL) == 0) {
		sqlite3_busy_timeout(db, RET_CHECKPOINT_MS);
		sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
					  NULL, NULL);
	}
	sqlite3_close(db);
}

/* Measure; when short and the WAL holds space, truncate it and measure
 * again.  *fits tells the outcome. */
static int space_check(snap_store *s, snap_space *sp, int *fits,
		       snap_err *err)
{
	int rc = snap_store_space(s, sp, err);

	if (!rc && sp->fs_free < sp->need && sp->wal > 0) {
		wal_truncate(s);
		rc = snap_store_space(s, sp, err);
	}
	*fits = !rc && sp->fs_free >= sp->need;
	return rc;
}

/*
 * The order the guard deletes in: first what the policy prunes (oldest
 * first), then the remaining candidates, oldest first, never d[0].
 * Fills ids (n entries) and returns how many.
 */
static size_t guard_victims(const snap_keep_decision *d, size_t n,
			    int64_t *ids)
{
	size_t k = 0, i;

	for (i = n; i-- > 0;)
		if (!d[i].keep)
			ids[k++] = d[i].info.id;
	for (i = n; i-- > 1;)
		if (d[i].keep && snap_keep_candidate(&d[i].info))
			ids[k++] = d[i].info.id;
	return k;
}

/* Name of snapshot id in the plan ("" when absent). */
static const char *plan_name(const snap_keep_decision *d, size_t n,
			     int64_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (d[i].info.id == id)
			return d[i].info.name;
	return "";
}

/* Could deleting all k victims make room?  An optimistic estimate from
 * the page model (freed stored bytes plus 1/16 for their rows). */
static int guard_feasible(snap_store *s, const snap_space *sp,
			  const int64_t *ids, size_t k, snap_err *err)
{
	ret_model m;
	uint64_t freed, total = 0, reusable, need;
	size_t i;
	int rc;

	if (k == 0)
		return 0;
	rc = model_open(s, &m, err);
	for (i = 0; !rc && i < k; i++) {
		rc = model_remove(&m, ids[i], &freed, err);
		total += freed;
	}
	model_close(&m);
	if (rc)
		return rc;
	reusable = sp->reusable + total + total / 16;
	need = sp->unit + (sp->unit > reusable ? sp->unit - reusable : 0);
	return sp->fs_free >= need;
}

/* The guard's refusal: -ENOSPC with the contract's sentence, recorded. */
static int guard_refuse(snap_store *s, const snap_space *sp, size_t deleted,
			snap_err *err)
{
	unsigned long long free_mb = sp->fs_free / MIB;
	unsigned long long need_mb = (sp->need + MIB - 1) / MIB;

	snap_err_set(err, -ENOSPC, "store %s: %llu MB free, a snapshot of %s "
		     "may need %llu MB; free space, lower retention or move "
		     "the store (-o store=)", s->dir, free_mb, s->db_path,
		     need_mb);
	snap_event_add(s, "snapshot", "", 0, "%s (%zu automatic snapshots "
		       "pruned to make room)", err->msg, deleted);
	return -ENOSPC;
}

/* Prune what the policy allows until a snapshot fits (see retention.h). */
int snap_retention_make_room(snap_store *s, const snap_keep_policy *p,
			     snap_err *err)
{
	snap_keep_decision *d = NULL;
	int64_t *ids = NULL;
	snap_space sp;
	char names[512] = "";
	size_t n = 0, k, i, deleted = 0, len = 0;
	snap_err local;
	int fits = 0, rc;

	if (err == NULL)
		err = &local;          /* the event detail needs a message */
	snap_err_clear(err);
	rc = space_check(s, &sp, &fits, err);
	if (rc || fits)
		return rc;
	rc = plan_store(s, p, &d, &n, err);
	if (!rc && (ids = calloc(2 * n + 1, sizeof(*ids))) == NULL)
		rc = snap_err_set(err, -ENOMEM, "out of memory");
	if (rc)
		goto out;
	k = guard_victims(d, n, ids);
	rc = guard_feasible(s, &sp, ids, k, err);
	if (rc < 0)
		goto out;
	if (rc == 0) {
		rc = guard_refuse(s, &sp, 0, err);
		goto out;
	}
	rc = 0;
	for (i = 0; i < k && !fits; i++) {
		snap_err e;
		snap_err_clear(&e);
		rc = snap_store_delete(s, ids[i], &e);
		if (rc == -ENOENT) {
			rc = 0;
		} else if (rc) {
			snap_err_set(err, rc, "store %s: making room for a "
				     "snapshot of %s: deleting %s: %s", s->dir,
				     s->db_path, plan_name(d, n, ids[i]),
				     e.msg);
			break;
		} else {
			deleted++;
			if (len < sizeof(names))
				len += (size_t)snprintf(names + len,
					sizeof(names) - len, "%s%s",
					len ? ", " : "",
					plan_name(d, n, ids[i]));
		}
		if (!rc)
			rc = space_check(s, &sp, &fits, err);
	}
	if (deleted)
		snap_event_add(s, "prune", "", rc == 0, "made room for a "
			       "snapshot of %s: pruned %zu automatic "
			       "snapshots (%s)%s%s", s->db_path, deleted, names,
			       rc ? ": " : "", rc ? err->msg : "");
	if (!rc && !fits)
		rc = guard_refuse(s, &sp, deleted, err);
out:
	free(ids);
	free(d);
	return rc;
}
