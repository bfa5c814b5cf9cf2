/*
 * tests/unit/replica_util.c — what the replica unit tests share
 * (test_replica.c, test_replica_frames.c; replica_util.h): a store with
 * two snapshots, a replica URL per test (file:// or under
 * SNAPFS_TEST_REPLICA_BASE), object listings, flipped or deleted objects,
 * opening, pushing and exporting with the test's passphrase; a second
 * database, a replicate refused as another database's, catalog rows
 * rewritten as a snapfs before store ids wrote them.
 */
#include "replica_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replica_int.h"     /* snap_replica_obj_get/put */

/* A store with two snapshots (a, then b after a small change) of a
 * database whose rows hold MARKER. */
snap_store *two_snapshots(tu_env *env, int page_size, snap_info *a,
				 snap_info *b)
{
	tu_db_create(env->db, "delete", page_size, 1500);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = '" MARKER "' || id WHERE id %% 7 = 0");
	sqlite3_close(db);
	snap_store *st = tu_store(env);
	*a = tu_snap(st, "a");
	db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = 'changed' WHERE id = 42");
	sqlite3_close(db);
	*b = tu_snap(st, "b");
	return st;
}

/* verify --full of every snapshot of r finds nothing wrong. */
void assert_verify_clean(const tu_env *env, snap_replica *r)
{
	unsigned nbad = 9;
	snap_err err;
	assert_int_equal(snap_replica_verify(r, NULL, 1, env->dir, NULL, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 0);
}

/* two_snapshots, pushed into a new replica at url, left open. */
snap_replica *replica_pair(tu_env *env, char *url, char *path, snap_info *a,
			   snap_info *b)
{
	snap_store *st = env->st = two_snapshots(env, 4096, a, b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	return r;
}

/* ... and closed again. */
snap_store *replicated_pair(tu_env *env, char *url, char *path, snap_info *a,
			    snap_info *b)
{
	snap_replica_close(replica_pair(env, url, path, a, b));
	return env->st;
}

/* The replica URL of a test: a directory of the test, or a fresh prefix
 * under SNAPFS_TEST_REPLICA_BASE. */
void url_of(const tu_env *env, const char *name, char *url,
		   char *path)
{
	const char *base = getenv("SNAPFS_TEST_REPLICA_BASE");
	tu_path(env, path, name);
	if (base && *base)
		snprintf(url, PATH_MAX + 8, "%s/%s/%s", base,
			 strrchr(env->dir, '/') + 1, name);
	else
		snprintf(url, PATH_MAX + 8, "file://%s", path);
}

/* The object names under dir of the replica at url, sorted. */
char **g_names;
size_t g_nnames;
static int collect(void *ctx, const char *name, uint64_t size)
{
	(void)ctx;
	(void)size;
	g_names = realloc(g_names, (g_nnames + 1) * sizeof *g_names);
	g_names[g_nnames++] = strdup(name);
	return 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

snap_objstore *objs_list(const char *url, const char *dir)
{
	snap_objstore *o;
	snap_err err;
	if (snap_objstore_open(url, 0, &o, &err) < 0)
		fail_msg("objstore %s: %s", url, err.msg);
	for (size_t i = 0; i < g_nnames; i++)
		free(g_names[i]);
	free(g_names);
	g_names = NULL;
	g_nnames = 0;
	if (snap_objstore_list(o, dir, collect, NULL, &err) < 0)
		fail_msg("list %s: %s", dir, err.msg);
	qsort(g_names, g_nnames, sizeof *g_names, str_cmp);
	return o;
}

/* Flip one byte of object name (xor), or delete it. */
void obj_flip(const char *url, const char *name, int del)
{
	snap_objstore *o;
	snap_err err;
	uint8_t *d;
	size_t n;
	assert_int_equal(snap_objstore_open(url, 0, &o, &err), 0);
	if (del) {
		assert_int_equal(snap_objstore_delete(o, name, &err), 0);
	} else {
		assert_int_equal(snap_objstore_get(o, name, &d, &n, &err), 0);
		d[n / 2] ^= 0x01;
		assert_int_equal(snap_objstore_put(o, name, d, n, &err), 0);
		free(d);
	}
	snap_objstore_close(o);
}

/* Open a replica with the test passphrase; fail the test on error. */
snap_replica *ropen(const char *url, unsigned flags)
{
	snap_err err;
	snap_replica *r = NULL;
	int rc = snap_replica_open(url, PASS, strlen(PASS), flags, &r, &err);
	if (rc < 0)
		fail_msg("replica open %s: %s", url, err.msg);
	return r;
}

/* Push every snapshot of st; fail the test on error. */
snap_replicate_stats push(snap_replica *r, snap_store *st)
{
	snap_err err;
	snap_replicate_stats s;
	if (snap_replica_push(r, st, NULL, NULL, &s, &err) < 0)
		fail_msg("push: %s", err.msg);
	return s;
}

/* Export name from the replica and compare with the local image. */
void assert_export_equals(const tu_env *env, snap_replica *r,
				 snap_store *st, const snap_info *si)
{
	char out[PATH_MAX];
	snap_err err;
	tu_path(env, out, "export.db");
	unlink(out);
	if (snap_replica_export(r, si->name, out, NULL, NULL, &err) < 0)
		fail_msg("export %s: %s", si->name, err.msg);
	size_t n, m;
	uint8_t *got = tu_read_file(out, &n);
	uint8_t *want = tu_image_bytes(st, si->id, &m);
	assert_int_equal(n, m);
	assert_memory_equal(got, want, n);
	uint8_t sha[32];
	tu_sha256(got, n, sha);
	assert_memory_equal(sha, si->sha256, 32);
	free(got);
	free(want);
	unlink(out);
}

/* Record verify's problems. */
int g_nprob;
char g_prob_snap[SNAP_NAME_MAX];
uint32_t g_prob_page;
char g_prob_text[1024];
void prob_cb(void *ctx, const char *snap, uint32_t page, const char *problem)
{
	(void)ctx;
	g_nprob++;
	snprintf(g_prob_snap, sizeof g_prob_snap, "%s", snap);
	g_prob_page = page;
	snprintf(g_prob_text, sizeof g_prob_text, "%s", problem);
}


/* A store whose one snapshot (*a) is of a database with a table of rows
 * rows, each a blob of 3000 bytes given by the SQL expression blob (of
 * the row's id i): one row per 4 KiB page. */
snap_store *big_snapshot(tu_env *env, int rows, const char *blob,
			 snap_info *a)
{
	char sql[512];
	tu_db_create(env->db, "delete", 4096, 10);
	sqlite3 *db = tu_open(env->db);
	snprintf(sql, sizeof sql, "CREATE TABLE big(id INTEGER PRIMARY KEY, "
		 "b BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT "
		 "i + 1 FROM n WHERE i < %d) INSERT INTO big SELECT i, %s "
		 "FROM n", rows, blob);
	tu_exec(db, "%s", sql);
	sqlite3_close(db);
	snap_store *st = env->st = tu_store(env);
	*a = tu_snap(st, "a");
	return st;
}

/* A second database beside env->db, its own store, one snapshot. */
snap_store *other_database(tu_env *env, char *db)
{
	snap_store *o = NULL;
	snap_err err;
	tu_path(env, db, "other.db");
	tu_db_create(db, "delete", 4096, 300);
	assert_int_equal(snap_store_open(db, NULL, SNAP_OPEN_CREATE, &o,
					 &err), 0);
	tu_snap(o, "other");
	return o;
}

/* Push st expecting the refusal of another database's replica. */
void push_refused(snap_replica *r, snap_store *st, const char *first)
{
	snap_replicate_stats s;
	snap_err err;
	assert_int_equal(snap_replica_push(r, st, NULL, NULL, &s, &err),
			 -EEXIST);
	assert_non_null(strstr(err.msg, "another database"));
	assert_non_null(strstr(err.msg, first));
	assert_non_null(strstr(err.msg, "-other)"));   /* the advice */
	assert_int_equal(s.snapshots, 0);
}

/* Put the catalog row from, its JSON passed through the SQL expression
 * sql (the row as ?1), as object to (to may be from). */
void row_rewrite(snap_replica *r, const char *from, const char *to,
		 const char *sql)
{
	sqlite3 *mem = tu_open(":memory:");
	uint8_t *doc;
	size_t len;
	snap_err err;
	sqlite3_stmt *q;
	assert_int_equal(snap_replica_obj_get(r, from, &doc, &len, &err), 0);
	assert_int_equal(sqlite3_prepare_v2(mem, sql, -1, &q, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(q, 1, (char *)doc, (int)len, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	const char *row = (const char *)sqlite3_column_text(q, 0);
	assert_int_equal(snap_replica_obj_put(r, to, row, strlen(row), NULL,
					      &err), 0);
	sqlite3_finalize(q);
	free(doc);
	sqlite3_close(mem);
}

/* Rewrite every catalog row as a snapfs before store ids wrote it. */
void rows_without_store(snap_replica *r, const char *url)
{
	snap_objstore_close(objs_list(url, "snapshots"));
	for (size_t i = 0; i < g_nnames; i++) {
		uint8_t *doc;
		size_t len;
		snap_err err;
		row_rewrite(r, g_names[i], g_names[i],
			    "SELECT json_remove(?1, '$.store')");
		assert_int_equal(snap_replica_obj_get(r, g_names[i], &doc,
						      &len, &err), 0);
		assert_null(memmem(doc, len, "\"store\"", 7));
		free(doc);
	}
}
