/*
 * engine/snapshot.c — taking snapshots of the live database, and the
 * capture pipeline that imports (snapshot_import.c) share.
 *
 * Both run the same pipeline: a source connection opens a read transaction,
 * the row count of every table is read inside it, and one
 * sqlite3_backup_step(-1) copies that same committed state into a capture
 * (capture.c), which writes new pages into the store inside one write
 * transaction on the store.  Only when the backup completed is the snapshot
 * row inserted and the transaction committed: a crash at any point leaves
 * the store as it was.
 *
 * The source is opened through SQLite only, never with open()/close() of
 * our own (engine/PITFALLS.md 2: that would drop the locks SQLite holds for
 * other connections in this process).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "capture_vfs.h"
#include "codec.h"
#include "events.h"
#include "json.h"
#include "snapshot_int.h"
#include "store_int.h"
#include "sys.h"

/* Quote an identifier for SQL: "a""b". */
static void quote_ident(const char *in, char *out, size_t cap)
{
	size_t n = 0;

	out[n++] = '"';
	for (; *in && n + 3 < cap; in++) {
		if (*in == '"')
			out[n++] = '"';
		out[n++] = *in;
	}
	out[n++] = '"';
	out[n] = '\0';
}

/* Row count per table, as JSON, inside the source's read transaction. */
static int count_tables(sqlite3 *src, char **json, snap_err *err)
{
	sqlite3_stmt *st = NULL, *cnt = NULL;
	snap_json j;
	char q[600], sql[700];
	int rc;

	snap_json_init(&j);
	snap_json_obj_begin(&j);
	rc = sqlite3_prepare_v2(src, "SELECT name FROM sqlite_schema WHERE "
				"type='table' AND name NOT LIKE 'sqlite\\_%' "
				"ESCAPE '\\' AND "
				"sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
				-1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		quote_ident(name, q, sizeof(q));
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", q);
		rc = sqlite3_prepare_v2(src, sql, -1, &cnt, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(cnt)) == SQLITE_ROW) {
			snap_json_key(&j, name);
			snap_json_int(&j, sqlite3_column_int64(cnt, 0));
			rc = SQLITE_OK;
		}
		sqlite3_finalize(cnt);
		cnt = NULL;
	}
	sqlite3_finalize(st);
	snap_json_obj_end(&j);
	if (rc != SQLITE_DONE) {
		snap_json_free(&j);
		return snap_err_sqlite(err, src, rc, "cannot count rows");
	}
	if (j.oom) {
		snap_json_free(&j);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	*json = j.buf;
	return 0;
}

/* qsort order of page ids. */
static int id_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* 1 when id is among the n sorted ids. */
static int id_in(const int64_t *v, size_t n, int64_t id)
{
	return n && bsearch(&id, v, n, sizeof(*v), id_cmp) != NULL;
}

/* Sort the n ids and drop repeats; gives the new count. */
static size_t ids_sort_unique(int64_t *v, size_t n)
{
	size_t i, m = 0;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), id_cmp);
	for (i = 0; i < n; i++)
		if (!m || v[m - 1] != v[i])
			v[m++] = v[i];
	return m;
}

/*
 * publish_runs when the capture took the fast path from the newest
 * snapshot (c->prev_snap is the head): every pgno that kept the head's id
 * holds a page the head has, so only the ids at the other pgnos (changed,
 * or past the head's end) can start a run.  Those few are sorted, the
 * head's map is scanned once to mark the ones it has, and no set of the
 * whole map is built: work and memory follow what changed.
 */
static int publish_runs_prev(snap_capture *c, snap_err *err)
{
	snap_idcount delta = {0};
	int64_t *cand;
	uint8_t *in_head;
	size_t n = 0, m = 0, i;
	uint32_t k;
	int rc = 0;

	for (k = 0; k < c->npages; k++)
		if (k >= c->prev_n || c->map[k] != c->prev_ids[k])
			n++;
	cand = malloc((n ? n : 1) * sizeof(*cand));
	in_head = calloc(n ? n : 1, 1);
	if (!cand || !in_head || snap_idcount_init(&delta, n + c->n_new + 16)) {
		free(cand);
		free(in_head);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	for (k = 0; k < c->npages; k++)
		if (k >= c->prev_n || c->map[k] != c->prev_ids[k])
			cand[m++] = c->map[k];
	n = ids_sort_unique(cand, m);
	for (k = 0; k < c->prev_n; k++) {
		int64_t *at = bsearch(&c->prev_ids[k], cand, n, sizeof(*cand),
				      id_cmp);

		if (at)
			in_head[at - cand] = 1;
	}
	/* A page this capture inserted already counts its run. */
	if (c->n_new)   /* new_ids may be NULL then: qsort's is nonnull */
		qsort(c->new_ids, c->n_new, sizeof(*c->new_ids), id_cmp);
	for (i = 0; !rc && i < n; i++)
		if (!in_head[i] && !id_in(c->new_ids, c->n_new, cand[i]))
			rc = snap_idcount_add(&delta, cand[i], 1);
	for (i = 0; !rc && i < c->n_new; i++)
		if (!id_in(cand, n, c->new_ids[i]))
			rc = snap_idcount_add(&delta, c->new_ids[i], -1);
	if (rc)
		rc = snap_err_set(err, rc, "out of memory");
	else
		rc = snap_store_runs_apply(c->store, &delta, err);
	free(cand);
	free(in_head);
	snap_idcount_free(&delta);
	return rc;
}

/* Run-count changes for a new newest snapshot (store.c explains runs):
 * a run starts for each page it has that the previous newest lacks.  The
 * pages this capture stored were inserted with that run already counted;
 * those it did not use in the end (a page rewritten during the backup) get
 * theirs taken back, which removes them.  The sets are sorted arrays of
 * ids (8 bytes an id, where a hash set of them took 32 at its load
 * factor): on a first snapshot of 1 GB this step was the capture's peak
 * of memory. */
static int publish_runs(snap_capture *c, snap_err *err)
{
	snap_idcount delta = {0};
	sqlite3_stmt *st = NULL;
	int64_t head_id = 0, *head = NULL, *mine = NULL;
	uint32_t hn = 0;
	size_t mn = 0, i;
	int rc;

	/* Which snapshot is the newest decides every run: a failed query
	 * must not read as "there is none". */
	rc = sqlite3_prepare_v2(c->store, "SELECT max(id) FROM snapshots", -1,
				&st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		head_id = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_OK)
		return snap_err_sqlite(err, c->store, rc, "cannot find the "
				       "newest snapshot");
	if (c->prev && head_id == c->prev_snap)
		return publish_runs_prev(c, err);
	if (head_id > 0)
		rc = snap_store_load_map(c->store, head_id, &hn, &head, err);
	if (rc)
		return rc;
	mine = malloc((c->npages ? c->npages : 1) * sizeof(*mine));
	if (!mine || snap_idcount_init(&delta, 1024)) {
		free(head);
		free(mine);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	memcpy(mine, c->map, (size_t)c->npages * sizeof(*mine));
	mn = ids_sort_unique(mine, c->npages);
	hn = (uint32_t)ids_sort_unique(head, hn);
	/* new_ids (each id once) is sorted in place: nothing reads it in
	 * its order. */
	if (c->n_new)
		qsort(c->new_ids, c->n_new, sizeof(*c->new_ids), id_cmp);
	for (i = 0; !rc && i < mn; i++)
		if (!id_in(c->new_ids, c->n_new, mine[i]) &&
		    !id_in(head, hn, mine[i]))
			rc = snap_idcount_add(&delta, mine[i], 1);
	for (i = 0; !rc && i < c->n_new; i++)
		if (!id_in(mine, mn, c->new_ids[i]))
			rc = snap_idcount_add(&delta, c->new_ids[i], -1);
	if (rc)
		rc = snap_err_set(err, rc, "out of memory");
	else
		rc = snap_store_runs_apply(c->store, &delta, err);
	free(head);
	free(mine);
	snap_idcount_free(&delta);
	return rc;
}

/* Insert the catalog row for a finished capture. */
static int publish_row(snap_capture *c, const snap_create_opts *o,
		       const char *tables, const uint8_t sha[32],
		       int64_t *id, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	char label[SNAP_LABEL_MAX + 1], name[SNAP_NAME_MAX];
	void *map = NULL;
	size_t maplen = 0;
	int64_t now = snap_time_now_ns();
	int rc;

	snap_label_sanitize(o->label, snap_kind_name(o->kind), label);
	rc = snap_store_unique_name(c->store, now, label, o->name, 0, name,
				    err);
	if (rc)
		return rc;
	rc = snap_map_encode(c->map, c->npages, &map, &maplen);
	if (rc)
		return snap_err_set(err, rc, "cannot encode the page map");
	rc = sqlite3_prepare_v2(c->store, "INSERT INTO snapshots(name, label, "
				"kind, created_ns, comment, pinned, page_size, "
				"page_count, image_size, sha256, "
				"change_counter, tables, pagemap) "
				"VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st,
				NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, label, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, snap_kind_name(o->kind), -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_text(st, 5, o->comment ? o->comment : "", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int(st, 6, o->pinned ? 1 : 0);
		sqlite3_bind_int64(st, 7, c->page_size);
		sqlite3_bind_int64(st, 8, c->npages);
		sqlite3_bind_int64(st, 9, (int64_t)c->page_size * c->npages);
		sqlite3_bind_blob(st, 10, sha, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 11, c->change_counter);
		sqlite3_bind_text(st, 12, tables, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 13, map, (int)maplen, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, c->store, rc,
		"cannot record snapshot %s", name);
	*id = sqlite3_last_insert_rowid(c->store);
	sqlite3_finalize(st);
	free(map);
	return rc;
}

/* SNAPFS_TIMING=1 prints how long each phase of a capture took (stderr);
 * the benchmarks use it to say where time goes. */
static void phase(const char *name)
{
	static int on = -1;
	static struct timespec last;
	struct timespec now;

	if (on < 0)
		on = getenv("SNAPFS_TIMING") != NULL;
	if (!on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (name)
		fprintf(stderr, "snapfs timing: %-14s %8.3f s\n", name,
			(double)(now.tv_sec - last.tv_sec) +
			(double)(now.tv_nsec - last.tv_nsec) / 1e9);
	last = now;
}

static int capture_any(snap_store *s, sqlite3 *src, sqlite3_file *raw,
		       int in_txn, const char *what, const snap_create_opts *o,
		       snap_progress_fn fn, void *ctx, snap_info *out,
		       snap_err *err);

/*
 * Backup src into a capture on the store.  The store's write transaction
 * (which may wait for another writer of the store) is taken first; only
 * then does the source's read transaction start (unless `in_txn`: the
 * caller holds one), and it ends as soon as the backup is done, so a live
 * database's writers are never held up by the store.
 */
int snap_snapshot_capture(snap_store *s, sqlite3 *src, int in_txn,
			  const char *what, const snap_create_opts *o,
			  snap_progress_fn fn, void *ctx, snap_info *out,
			  snap_err *err)
{
	return capture_any(s, src, NULL, in_txn, what, o, fn, ctx, out, err);
}

/*
 * Read every page of a file SQLite holds exclusively locked (rollback
 * mode: the file is the database) into the capture.  The database's size
 * is what SQLite itself would use: the header's page count when it is
 * valid (its version-valid-for equals its change counter), else the file's
 * whole pages.  The lock-byte page is skipped, as a backup skips it.
 */
static int capture_raw_pages(snap_capture *c, sqlite3_file *f,
			     const char *what, snap_err *err)
{
	sqlite3_int64 size = 0;
	uint32_t n, pgno, counter, valid, lockpg;
	uint8_t *page;
	int rc = 0;

	if (f->pMethods->xFileSize(f, &size) != SQLITE_OK || !c->page_size)
		return snap_err_set(err, -EIO, "cannot read the size of %s",
				    what);
	counter = be32toh(*(const uint32_t *)(c->page1 + 24));
	valid = be32toh(*(const uint32_t *)(c->page1 + 92));
	n = be32toh(*(const uint32_t *)(c->page1 + 28));
	if (!n || counter != valid)
		n = (uint32_t)(size / c->page_size);
	lockpg = (uint32_t)(0x40000000u / c->page_size) + 1;
	page = malloc(c->page_size);
	if (!page)
		return snap_err_set(err, -ENOMEM, "out of memory");
	for (pgno = 1; !rc && pgno <= n; pgno++) {
		sqlite3_int64 off = (sqlite3_int64)(pgno - 1) * c->page_size;
		int r;

		if (pgno == lockpg)
			continue;
		r = f->pMethods->xRead(f, page, (int)c->page_size, off);
		if (r != SQLITE_OK && r != SQLITE_IOERR_SHORT_READ)
			rc = snap_err_set(err, -EIO, "cannot read %s at offset "
					  "%lld", what, (long long)off);
		else if (snap_capture_feed(c, page, off))
			rc = snap_err_set(err, c->err_code, "snapshot of %s: %s",
					  what, c->err_msg);
	}
	free(page);
	return rc;
}

/*
 * Backup src into a capture on the store, or, with raw, read the pages of
 * that locked file directly (no table counts then: SQL cannot run on a
 * connection whose lock a backup holds).
 */
static int capture_any(snap_store *s, sqlite3 *src, sqlite3_file *raw,
		       int in_txn, const char *what, const snap_create_opts *o,
		       snap_progress_fn fn, void *ctx, snap_info *out,
		       snap_err *err)
{
	snap_capture c;
	sqlite3 *store = NULL, *dst = NULL;
	sqlite3_backup *bk;
	char *tables = NULL;
	uint8_t sha[32];
	int64_t id = 0;
	int rc, brc, reading = 0;

	phase(NULL);
	rc = snap_store_connect(s, 0, &store, err);
	if (rc)
		return rc;
	rc = snap_store_exec(store, "BEGIN IMMEDIATE", err);
	if (rc)
		goto out_store;
	rc = snap_capture_init(&c, store, err);
	c.progress = fn;
	c.progress_ctx = ctx;
	phase("page index");
	if (!rc && raw) {
		tables = strdup("{}");
		if (!tables)
			rc = snap_err_set(err, -ENOMEM, "out of memory");
		if (!rc)
			rc = snap_capture_begin_file(&c, raw, err);
		if (!rc && !c.page_size)
			rc = snap_err_set(err, -EINVAL, "%s is not a SQLite "
					  "database", what);
		if (!rc)
			rc = capture_raw_pages(&c, raw, what, err);
		phase("raw pages");
		if (rc)
			goto out_capture;
		goto captured;
	}
	if (!rc && !in_txn) {
		rc = snap_snapshot_begin_read(src, what, err);
		reading = rc == 0;
	}
	if (!rc) {
		rc = count_tables(src, &tables, err);
		/* A recovery or safety snapshot keeps what is there, even a
		 * database too damaged to count its rows (health.c,
		 * restore.c). */
		if (rc == -EBADMSG && (o->kind == SNAP_KIND_RECOVERY ||
				       o->kind == SNAP_KIND_PRE_RESTORE)) {
			tables = strdup("{}");
			rc = tables ? 0 : snap_err_set(err, -ENOMEM,
						       "out of memory");
		}
		phase("count rows");
	}
	if (!rc)
		rc = snap_capture_begin(&c, src, err);
	if (!rc && !c.page_size) {
		int64_t ps = 0;
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(src, "PRAGMA page_size", -1, &q, NULL) ==
		    SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
			ps = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		c.page_size = (uint32_t)ps;
	}
	if (!rc)
		rc = snap_capture_open_db(&c, &dst, err);
	if (rc)
		goto out_capture;
	bk = sqlite3_backup_init(dst, "main", src, "main");
	if (!bk) {
		rc = snap_err_sqlite(err, dst, sqlite3_errcode(dst), "cannot "
				     "start the backup of %s", what);
		goto out_capture;
	}
	brc = sqlite3_backup_step(bk, -1);
	sqlite3_backup_finish(bk);
	if (reading) {
		sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
		reading = 0;
	}
	phase("backup");
	if (brc != SQLITE_DONE) {
		if (c.err_code)
			rc = snap_err_set(err, c.err_code, "snapshot of %s: %s",
					  what, c.err_msg);
		else
			rc = snap_err_sqlite(err, NULL, brc, "backup of %s "
					     "failed", what);
		if (rc == -ENOSPC || brc == SQLITE_FULL)
			rc = snap_err_set(err, -ENOSPC, "snapshot of %s: no "
					  "space left in the store %s "
					  "(the snapshot needs about %llu MB "
					  "more); free space or prune",
					  what, s->dir,
					  (unsigned long long)
					  ((c.new_bytes >> 20) + 1));
		goto out_capture;
	}
	sqlite3_close(dst);
	dst = NULL;
captured:
	rc = snap_capture_finish(&c, sha, err);
	phase("finish");
	if (getenv("SNAPFS_TIMING"))
		fprintf(stderr, "snapfs timing: %u of %u pages unchanged "
			"(fast path), %u looked up by hash, %s index\n",
			c.fast_pages, c.npages, c.sql_lookups,
			c.full_idx ? "whole-store" : "no whole-store");
	if (!rc)
		rc = publish_runs(&c, err);
	phase("references");
	snap_capture_trim(&c);
	if (!rc)
		rc = publish_row(&c, o, tables, sha, &id, err);
	if (!rc)
		rc = snap_capture_keep_hashes(&c, id, err);
	phase("row, hashes");
	if (!rc) {
		rc = sqlite3_exec(store, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			rc = snap_err_sqlite(err, store, rc, "cannot commit "
					     "the snapshot of %s", what);
			if (rc == -ENOSPC)
				snap_err_set(err, -ENOSPC, "snapshot of %s: no "
					     "space left in the store %s",
					     what, s->dir);
		}
	}
	phase("commit");
	if (!rc && fn)
		fn(ctx, c.npages, c.npages);
out_capture:
	if (reading)
		sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
	if (rc)
		sqlite3_exec(store, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(dst);
	snap_capture_free(&c);
out_store:
	sqlite3_close(store);
	free(tables);
	if (!rc && out)
		rc = snap_store_get(s, id, out, err);
	return rc;
}

/* BEGIN a read transaction that really holds a snapshot of the source. */
int snap_snapshot_begin_read(sqlite3 *db, const char *path, snap_err *err)
{
	int rc = sqlite3_exec(db, "BEGIN; SELECT count(*) FROM sqlite_schema",
			      NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		return 0;
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if ((rc & 0xff) == SQLITE_NOTADB)
		return snap_err_set(err, -EINVAL, "%s is not a SQLite database",
				    path);
	return snap_livedb_read_error(db, rc, path, err);
}

/* A snapshot landed: its event, and the store's reserve made again if
 * it was given back and there is room now (storespace.c): after the
 * snapshot, which comes first. */
static void snapshot_done(snap_store *s, const snap_info *out)
{
	snap_event_add(s, "snapshot", out->name, 1, "%s snapshot, %u pages "
		       "of %u bytes", snap_kind_name(out->kind),
		       out->page_count, out->page_size);
	snap_store_reserve_keep(s);
}

int snap_snapshot_take_progress(snap_store *s, const snap_create_opts *o,
				snap_progress_fn fn, void *ctx,
				snap_info *out, snap_err *err)
{
	const char *path = s->db_path;
	snap_create_opts dflt = { .kind = SNAP_KIND_MANUAL };
	snap_info tmp;
	struct stat st;
	sqlite3 *src = NULL;
	int rc;

	if (!o)
		o = &dflt;
	if (!out)
		out = &tmp;
	if (snap_sys_stat(path, &st) < 0) {
		rc = snap_err_set(err, -ENOENT, "cannot snapshot %s: %s", path,
				  strerror(errno));
		goto done;
	}
	if (st.st_size == 0) {
		rc = snap_err_set(err, -EINVAL, "cannot snapshot %s: the file "
				  "is empty, not a database", path);
		goto done;
	}
	rc = snap_livedb_open(path, SNAP_LIVEDB_RW, NULL, &src, err);
	/* In WAL mode, move committed frames into the file first (passive:
	 * never waits), so page 1 read from the file is usually current and
	 * the image hash streams (capture.h). */
	if (!rc)
		sqlite3_wal_checkpoint_v2(src, "main", SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
	if (!rc)
		rc = snap_snapshot_capture(s, src, 0, path, o, fn, ctx, out,
					   err);
	sqlite3_close(src);
done:
	if (rc)
		snap_event_add(s, "snapshot", "", 0, "%s", err ? err->msg :
			       "snapshot failed");
	else
		snapshot_done(s, out);
	return rc;
}

int snap_snapshot_take_locked(snap_store *s, sqlite3 *live,
			      const snap_create_opts *o, snap_info *out,
			      snap_err *err)
{
	sqlite3_file *f = NULL;
	int rc;

	if (sqlite3_file_control(live, "main", SQLITE_FCNTL_FILE_POINTER, &f) !=
	    SQLITE_OK || !f || !f->pMethods)
		return snap_err_set(err, -EIO, "cannot reach the file of %s",
				    s->db_path);
	rc = capture_any(s, NULL, f, 1, s->db_path, o, NULL, NULL, out, err);
	if (rc)
		snap_event_add(s, "snapshot", "", 0, "%s", err ? err->msg :
			       "snapshot failed");
	else
		snap_event_add(s, "snapshot", out->name, 1, "%s snapshot, %u "
			       "pages of %u bytes (under the restore's lock)",
			       snap_kind_name(out->kind), out->page_count,
			       out->page_size);
	return rc;
}

int snap_snapshot_take(snap_store *s, const snap_create_opts *o,
		       snap_info *out, snap_err *err)
{
	return snap_snapshot_take_progress(s, o, NULL, NULL, out, err);
}
