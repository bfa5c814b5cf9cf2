/*
 * engine/storecat.c — the catalog's rows: snapshot kinds, reading catalog
 * rows into snap_info (one, by name, the newest, lists), the events table's
 * raw insert, counters, pinning and comments, and the store's statistics.
 *
 * Catalog reads go through s->db under s->mu; a change is one statement
 * (or one transaction with its event).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "anchor.h"
#include "codec.h"
#include "store_int.h"
#include "sys.h"

static const char *const kind_names[SNAP_KIND_COUNT] = {
	"manual", "auto", "pre-restore", "import", "conflict", "recovery",
};

/* The name of kind k ("unknown" out of range). */
const char *snap_kind_name(snap_kind k)
{
	return (unsigned)k < SNAP_KIND_COUNT ? kind_names[k] : "unknown";
}

/* The kind called s: 0, or -EINVAL. */
int snap_kind_parse(const char *s, snap_kind *out)
{
	int k;

	for (k = 0; k < SNAP_KIND_COUNT; k++)
		if (strcmp(s, kind_names[k]) == 0) {
			*out = (snap_kind)k;
			return 0;
		}
	return -EINVAL;
}

/* Fill si from a row whose first columns are SNAP_INFO_COLS. */
void snap_store_row_info(sqlite3_stmt *st, snap_info *si)
{
	const void *sha;
	const char *t;

	memset(si, 0, sizeof(*si));
	si->id = sqlite3_column_int64(st, 0);
	snprintf(si->name, sizeof(si->name), "%s",
		 (const char *)sqlite3_column_text(st, 1));
	snprintf(si->label, sizeof(si->label), "%s",
		 (const char *)sqlite3_column_text(st, 2));
	t = (const char *)sqlite3_column_text(st, 3);
	if (!t || snap_kind_parse(t, &si->kind))
		si->kind = SNAP_KIND_MANUAL;
	si->created_ns = sqlite3_column_int64(st, 4);
	t = (const char *)sqlite3_column_text(st, 5);
	snprintf(si->comment, sizeof(si->comment), "%s", t ? t : "");
	si->pinned = sqlite3_column_int(st, 6);
	si->page_size = (uint32_t)sqlite3_column_int64(st, 7);
	si->page_count = (uint32_t)sqlite3_column_int64(st, 8);
	si->image_size = (uint64_t)sqlite3_column_int64(st, 9);
	sha = sqlite3_column_blob(st, 10);
	if (sha && sqlite3_column_bytes(st, 10) == 32)
		memcpy(si->sha256, sha, 32);
	si->change_counter = (uint32_t)sqlite3_column_int64(st, 11);
	/* Columns of the trash table: NULL when the snapshot is not in the
	 * trash (a value this code does not know reads as in files/, where
	 * it can be restored or deleted). */
	if (sqlite3_column_type(st, 12) != SQLITE_NULL) {
		si->trash = sqlite3_column_int(st, 12) == SNAP_TRASH_EXPUNGED ?
			    SNAP_TRASH_EXPUNGED : SNAP_TRASH_FILES;
		si->trash_uid = (uint32_t)sqlite3_column_int64(st, 13);
		t = (const char *)sqlite3_column_text(st, 14);
		snprintf(si->trash_name, sizeof(si->trash_name), "%s",
			 t ? t : "");
		si->trashed_ns = sqlite3_column_int64(st, 15);
	}
}

/* 0 when si's shape is one a capture writes; -EBADMSG otherwise. */
int snap_store_info_check(const snap_info *si, snap_err *err)
{
	uint32_t ps = si->page_size;

	/* What a capture can have written: a page size SQLite allows, at
	 * least one page, and the image size their product. */
	if (ps >= 512 && ps <= SNAP_PAGE_MAX && !(ps & (ps - 1)) &&
	    si->page_count > 0 &&
	    si->image_size == (uint64_t)ps * si->page_count)
		return 0;
	return snap_err_set(err, -EBADMSG, "snapshot %s: its catalog row is "
			    "damaged (page size %u, %u pages, image size %llu "
			    "bytes): it cannot be read; delete it (snapctl "
			    "delete %s)", si->name, ps, si->page_count,
			    (unsigned long long)si->image_size, si->name);
}

/* Every snapshot, oldest first (trashed ones included). */
int snap_store_list(snap_store *s, snap_info **out, size_t *n, snap_err *err)
{
	return snap_store_list_sql(s, "ORDER BY created_ns, id", NULL, out, n,
				   "snapshots", err);
}

/* The catalog rows of SNAP_INFO_FROM that SQL `tail` selects, in *out. */
int snap_store_list_sql(snap_store *s, const char *tail, const int64_t *arg,
			snap_info **out, size_t *n, const char *what,
			snap_err *err)
{
	sqlite3_stmt *st = NULL;
	snap_info *v = NULL;
	size_t cnt = 0, cap = 0;
	char *sql;
	int rc;

	*out = NULL;
	*n = 0;
	sql = sqlite3_mprintf("SELECT " SNAP_INFO_COLS " FROM " SNAP_INFO_FROM
			      " %s", tail);
	if (!sql)
		return snap_err_set(err, -ENOMEM, "out of memory");
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && arg)
		rc = sqlite3_bind_int64(st, 1, *arg);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (snap_array_grow(&v, &cap, cnt, sizeof(*v), 64)) {
			rc = SQLITE_NOMEM;
			break;
		}
		snap_store_row_info(st, &v[cnt++]);
		rc = SQLITE_OK;
	}
	if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = snap_err_sqlite(err, s->db, rc, "store %s: cannot list "
				     "%s", s->dir, what);
	sqlite3_finalize(st);
	snap_store_unlock(s);
	sqlite3_free(sql);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	*n = cnt;
	return 0;
}

/*
 * The events table's raw insert, here so that a catalog change (delete,
 * relabel, pin) and its event share the caller's transaction; the event
 * history above the store (events.c) writes through it too.
 */
int snap_event_add_db(sqlite3 *db, const char *kind, const char *snapshot,
		      int ok, const char *detail)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "INSERT INTO events(time_ns, kind, "
				    "snapshot, ok, detail) VALUES(?,?,?,?,?)",
				    -1, &st, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, snap_time_now_ns());
		sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, snapshot ? snapshot : "", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int(st, 4, ok ? 1 : 0);
		sqlite3_bind_text(st, 5, detail ? detail : "", -1,
				  SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : snap_err_sqlite_errno(rc);
}

/* The snapshot whose loads are counted (0: none), and the counts
 * (snap_store_count_loads); atomic: a restore loads on two threads. */
static int64_t loads_id;
static unsigned loads_rows, loads_maps;

void snap_store_count_loads(int64_t id)
{
	__atomic_store_n(&loads_rows, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&loads_maps, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&loads_id, id, __ATOMIC_SEQ_CST);
}

void snap_store_loads(unsigned *rows, unsigned *maps)
{
	*rows = __atomic_load_n(&loads_rows, __ATOMIC_SEQ_CST);
	*maps = __atomic_load_n(&loads_maps, __ATOMIC_SEQ_CST);
}

/* Count one load of id's row (map 0) or page map (map 1). */
void snap_store_count_load(int64_t id, int map)
{
	if (id && id == __atomic_load_n(&loads_id, __ATOMIC_RELAXED))
		__atomic_add_fetch(map ? &loads_maps : &loads_rows, 1,
				   __ATOMIC_SEQ_CST);
}

/* Snapshot id's row on a caller's connection; -ENOENT when there is none. */
int snap_store_get_db(sqlite3 *db, int64_t id, snap_info *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT " SNAP_INFO_COLS
				    " FROM " SNAP_INFO_FROM " WHERE id=?", -1,
				    &st, NULL);

	snap_store_count_load(id, 0);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		snap_store_row_info(st, out);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = snap_err_set(err, -ENOENT, "no snapshot with id %lld",
				  (long long)id);
	} else {
		rc = snap_err_sqlite(err, db, rc, "cannot read snapshot %lld",
				     (long long)id);
	}
	sqlite3_finalize(st);
	return rc;
}

/* 1 when the catalog has snapshot id with image hash sha256, 0 when not
 * (gone, or another image), a negative errno when it cannot say.  One
 * small indexed read: for a reader that checks after every read that a
 * snapshot it reads is still there (fs/file.c). */
int snap_store_has(snap_store *s, int64_t id, const uint8_t sha256[32])
{
	sqlite3_stmt *st;
	int rc = snap_store_step1(s, "SELECT sha256 FROM snapshots WHERE id=?",
				  NULL, id, &st);

	if (rc == SQLITE_ROW)
		rc = sqlite3_column_bytes(st, 0) == 32 &&
		     memcmp(sqlite3_column_blob(st, 0), sha256, 32) == 0;
	else
		rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite_errno(rc);
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

/* Snapshot id's row on the catalog connection; -ENOENT when there is none. */
int snap_store_get(snap_store *s, int64_t id, snap_info *out, snap_err *err)
{
	int rc;

	snap_store_lock(s);
	rc = snap_store_get_db(s->db, id, out, err);
	snap_store_unlock(s);
	return rc;
}

/* The kinds "latest" chooses from, as SQL (snap_kind_is_latest). */
#define STORE_LATEST_KINDS "kind IN ('manual','auto','import')"

/* 1 for the kinds "latest" chooses from (manual, auto, import). */
int snap_kind_is_latest(snap_kind k)
{
	/* Keep in step with STORE_LATEST_KINDS. */
	return k == SNAP_KIND_MANUAL || k == SNAP_KIND_AUTO ||
	       k == SNAP_KIND_IMPORT;
}

/*
 * One catalog row by a query whose only parameter (if any) is text: the
 * row for snap_store_find and snap_store_newest.  -ENOENT, naming `what`,
 * when there is none.
 */
static int store_find_sql(snap_store *s, const char *sql, const char *arg,
			  const char *what, snap_info *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		if (arg)
			sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		snap_store_row_info(st, out);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = snap_err_set(err, -ENOENT, "no %s in %s", what, s->dir);
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "cannot look up %s", what);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return rc;
}

/* The snapshot called name (".db" optional; "latest" allowed). */
int snap_store_find(snap_store *s, const char *name, snap_info *out,
		    snap_err *err)
{
	char full[SNAP_NAME_MAX + 4], what[SNAP_NAME_MAX + 40];
	size_t len = strlen(name);

	if (len >= SNAP_NAME_MAX)
		return snap_err_set(err, -ENOENT, "no snapshot named %s", name);
	if (len > 3 && strcmp(name + len - 3, ".db") == 0)
		snprintf(full, sizeof(full), "%s", name);
	else
		snprintf(full, sizeof(full), "%s.db", name);
	/* latest.db is never a snapshot's own name (snap_store_name_check),
	 * so this reading of it hides nothing. */
	if (strcmp(full, "latest.db") == 0)
		return store_find_sql(s, "SELECT " SNAP_INFO_COLS " FROM "
				      SNAP_INFO_FROM " WHERE trash.id IS NULL"
				      " AND " STORE_LATEST_KINDS " ORDER BY "
				      "created_ns DESC, id DESC LIMIT 1", NULL, "manual, automatic or "
				      "imported snapshot (\"latest\")", out,
				      err);
	snprintf(what, sizeof(what), "snapshot named %s", name);
	return store_find_sql(s, "SELECT " SNAP_INFO_COLS " FROM "
			      SNAP_INFO_FROM " WHERE name=?", full, what, out,
			      err);
}

/* The newest snapshot of any kind; -ENOENT when there is none. */
int snap_store_newest(snap_store *s, snap_info *out, snap_err *err)
{
	return store_find_sql(s, "SELECT " SNAP_INFO_COLS " FROM "
			      SNAP_INFO_FROM " ORDER BY created_ns DESC, id DESC LIMIT 1", NULL,
			      "snapshot", out, err);
}

/* Snapshot id's row counts per table, as the JSON object text stored. */
int snap_store_tables_json(snap_store *s, int64_t id, char **json,
			   snap_err *err)
{
	return snap_store_text(s, "SELECT tables FROM snapshots WHERE id=?",
			       id, "{}", "no snapshot with id", json, err);
}

/* How many snapshots the catalog holds. */
int snap_store_count(snap_store *s, int64_t *count, snap_err *err)
{
	return snap_store_query_ints(s, "SELECT count(*) FROM snapshots",
				     count, 1, "count snapshots", err);
}

/*
 * PRAGMA data_version of the catalog connection: it moves when a commit by
 * any other connection (another process, or another connection of this
 * one, such as a snapshot's capture) reached store.db since the last time
 * it was asked; commits through the catalog connection itself do not move
 * it.  Cheap: no table is read.
 */
int snap_store_data_version(snap_store *s, int64_t *out, snap_err *err)
{
	return snap_store_query_ints(s, "PRAGMA data_version", out, 1,
				     "read its data version", err);
}

/*
 * When the list of snapshots last changed, as the store records it: the
 * newest of the snapshots' creation times and the times of successful
 * deletions, relabels, renames, prunes, trashings and untrashings (the
 * events that change the list without creating a snapshot).  The same
 * answer from every process and across remounts, so a directory time built
 * on it is stable.
 */
int snap_store_changed_ns(snap_store *s, int64_t *out, snap_err *err)
{
	*out = 0;
	return snap_store_query_ints(s, "SELECT max(coalesce((SELECT "
				     "max(created_ns) FROM snapshots), 0), "
				     "coalesce((SELECT max(time_ns) FROM "
				     "events WHERE ok=1 AND kind IN ('delete', "
				     "'relabel', 'trash', 'untrash', 'rename', "
				     "'prune')), 0))", out, 1,
				     "read when its catalog changed", err);
}

/* UPDATE one column of one snapshot; records an event. */
static int set_column(snap_store *s, int64_t id, const char *sql,
		      const char *text, int64_t num, const char *what,
		      snap_err *err)
{
	sqlite3_stmt *st = NULL;
	snap_info si;
	int rc;

	if ((rc = snap_store_writable(s, err)))
		return rc;
	snap_store_lock(s);
	rc = snap_store_get_db(s->db, id, &si, err);
	if (!rc) {
		rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
		if (rc == SQLITE_OK) {
			if (text)
				sqlite3_bind_text(st, 1, text, -1,
						  SQLITE_STATIC);
			else
				sqlite3_bind_int64(st, 1, num);
			sqlite3_bind_int64(st, 2, id);
			rc = sqlite3_step(st);
		}
		rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, s->db, rc,
			"cannot update snapshot %s", si.name);
		sqlite3_finalize(st);
		if (!rc)
			snap_event_add_db(s->db, what, si.name, 1, what);
	}
	snap_store_unlock(s);
	return rc;
}

/* Pin or unpin snapshot id (pinned ones are never pruned). */
int snap_store_set_pinned(snap_store *s, int64_t id, int pinned,
			  snap_err *err)
{
	return set_column(s, id, "UPDATE snapshots SET pinned=? WHERE id=?",
			  NULL, pinned ? 1 : 0, pinned ? "pin" : "unpin", err);
}

/* Set snapshot id's comment (at most SNAP_COMMENT_MAX bytes). */
int snap_store_set_comment(snap_store *s, int64_t id, const char *comment,
			   snap_err *err)
{
	if (strlen(comment) > SNAP_COMMENT_MAX)
		return snap_err_set(err, -EINVAL, "comment longer than %d "
				    "bytes", SNAP_COMMENT_MAX);
	return set_column(s, id, "UPDATE snapshots SET comment=? WHERE id=?",
			  comment, 0, "comment", err);
}

/* A byte total (SQLite's total() is a double) as a count: a damaged row
 * can make it negative or larger than any uint64_t, where a plain cast is
 * undefined; those read as 0 and UINT64_MAX. */
static uint64_t bytes_of(double d)
{
	if (!(d > 0))
		return 0;
	if (d >= 18446744073709551616.0)
		return UINT64_MAX;
	return (uint64_t)d;
}

/* Snapshots, pages, stored and logical bytes, and the file's size. */
int snap_store_stats_get(snap_store *s, snap_store_stats *stt, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	struct stat fst;
	int rc;

	memset(stt, 0, sizeof(*stt));
	snap_store_lock(s);
	rc = sqlite3_prepare_v2(s->db,
		"SELECT (SELECT count(*) FROM snapshots),"
		" (SELECT count(*) FROM pages),"
		" (SELECT total(zlen) FROM pages),"
		" (SELECT total(length(pagemap)) FROM snapshots),"
		" (SELECT total(image_size) FROM snapshots)", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		stt->snapshots = sqlite3_column_int64(st, 0);
		stt->pages = sqlite3_column_int64(st, 1);
		stt->stored_bytes = bytes_of(sqlite3_column_double(st, 2) +
					     sqlite3_column_double(st, 3));
		stt->logical_bytes = bytes_of(sqlite3_column_double(st, 4));
		rc = 0;
	} else {
		rc = snap_err_sqlite(err, s->db, rc, "cannot read store "
				     "statistics");
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	if (snap_sys_fstatat(s->dirfd, "store.db", &fst, AT_SYMLINK_NOFOLLOW) == 0)
		stt->file_bytes += (uint64_t)fst.st_size;
	stt->file_bytes += (uint64_t)snap_store_wal_size(s);
	return rc;
}
