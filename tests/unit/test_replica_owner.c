/*
 * tests/unit/test_replica_owner.c — a database restored from a replica
 * goes on into it (run by test_replica.c's main, also on S3): the store
 * made for the restored file takes the id of the store that wrote the
 * snapshot (snap_replica_adopt), and its next snapshot is replicated
 * after the old ones while another database stays refused; a store with
 * an id of its own keeps it (and stays refused, told how a restored
 * database continues a replica); a row from before rows named their
 * store gives no id, and once a newer row of that replica names one, a
 * store that took it owns the older rows too.
 */
#include "replica_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replica_int.h"

/* The store's id (meta "store_id"; "" when it has none) into id. */
static void store_id_of(snap_store *st, char id[33])
{
	sqlite3 *db = tu_open(snap_store_file(st));
	char *v = tu_query_text(db, "SELECT coalesce((SELECT value FROM meta "
				"WHERE key='store_id'), '')");
	snprintf(id, 33, "%s", v);
	free(v);
	sqlite3_close(db);
}

/* Snapshot name restored from r into the new file <env dir>/file (db
 * gets its path) and the store made for it, as on a fresh machine. */
static snap_store *restored(tu_env *env, snap_replica *r, const char *name,
			    const char *file, char *db)
{
	snap_store *n = NULL;
	snap_err err;
	tu_path(env, db, file);
	assert_int_equal(snap_replica_export(r, name, db, NULL, NULL, &err), 0);
	assert_int_equal(snap_store_open(db, NULL, SNAP_OPEN_CREATE |
					 SNAP_OPEN_LIVE_DB, &n, &err), 0);
	return n;
}

/* env->st with two snapshots (a, b) replicated into a new replica (url:
 * PATH_MAX + 8 bytes). */
static snap_replica *replica_of_two(tu_env *env, snap_info *a, snap_info *b,
				    char *url)
{
	char path[PATH_MAX];
	env->st = two_snapshots(env, 4096, a, b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, env->st);
	return r;
}

/* One changed row in the database at path. */
static void change(const char *path, const char *v)
{
	sqlite3 *db = tu_open(path);
	tu_exec(db, "UPDATE t SET v = '%s' WHERE id = 1", v);
	sqlite3_close(db);
}

void test_restored_database_continues_its_replica(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], ndb[PATH_MAX], odb[PATH_MAX], ids[33], idn[33];
	snap_err err;
	snap_replica *r = replica_of_two(env, &a, &b, url);
	snap_store *st = env->st;
	snap_store *n = restored(env, r, b.name, "restored.db", ndb);
	assert_int_equal(snap_replica_adopt(r, b.name, n, &err), 1);
	store_id_of(st, ids);
	store_id_of(n, idn);
	assert_int_equal(strlen(ids), 32);
	assert_string_equal(idn, ids);
	/* Again, or from another of its snapshots: the same id. */
	assert_int_equal(snap_replica_adopt(r, a.name, n, &err), 1);
	assert_int_equal(snap_replica_adopt(r, "nosuch.db", n, &err), -ENOENT);
	/* It goes on: a change, a snapshot, replicated after the old
	 * ones, its pages proven on the way back. */
	change(ndb, "after the restore");
	snap_info c = tu_snap(n, "c");
	snap_replicate_stats s = push(r, n);
	assert_int_equal(s.snapshots, 1);
	snap_info *v;
	size_t nv;
	assert_int_equal(snap_replica_list(r, &v, &nv, &err), 0);
	assert_int_equal(nv, 3);
	assert_string_equal(v[0].name, a.name);
	assert_string_equal(v[1].name, b.name);
	assert_string_equal(v[2].name, c.name);
	free(v);
	assert_export_equals(env, r, n, &c);
	/* Another database is still refused. */
	snap_store *o = other_database(env, odb);
	push_refused(r, o, a.name);
	snap_store_close(o);
	snap_store_close(n);
	snap_replica_close(r);
}

void test_store_with_an_id_of_its_own_keeps_it(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], url2[PATH_MAX + 8], path2[PATH_MAX],
		odb[PATH_MAX], before[33], after[33];
	snap_err err;
	snap_replicate_stats s;
	snap_replica *r = replica_of_two(env, &a, &b, url);
	url_of(env, "replica-other", url2, path2);
	/* other.db has replicated into a replica of its own: it has an id. */
	snap_store *o = other_database(env, odb);
	snap_replica *r2 = ropen(url2, SNAP_REPLICA_CREATE);
	push(r2, o);
	snap_replica_close(r2);
	store_id_of(o, before);
	assert_int_equal(strlen(before), 32);
	assert_int_equal(snap_replica_adopt(r, a.name, o, &err), 0);
	store_id_of(o, after);
	assert_string_equal(after, before);
	push_refused(r, o, a.name);
	assert_int_equal(snap_replica_push(r, o, NULL, NULL, &s, &err),
			 -EEXIST);
	assert_non_null(strstr(err.msg, "restored with 'snapctl --replica"));
	snap_store_close(o);
	snap_replica_close(r);
}

/* As an old snapfs of another database would write into url after the
 * rows there: a row with no store id, an hour newer than the newest. */
static void late_old_row(snap_replica *r, const char *url)
{
	snap_objstore_close(objs_list(url, "snapshots"));
	row_rewrite(r, g_names[g_nnames - 1],
		    "snapshots/ffffffffffffffffffffffffffffffff",
		    "SELECT json_set(json_remove(?1, '$.store'), '$.name', "
		    "'late_other.db', '$.created_ns', json_extract(?1, "
		    "'$.created_ns') + 3600000000000)");
}

void test_replica_from_before_store_ids_gives_no_id(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], ndb[PATH_MAX], id[33], ids[33];
	snap_err err;
	snap_replica *r = replica_of_two(env, &a, &b, url);
	snap_store *st = env->st;
	rows_without_store(r, url);
	/* other.db: the name push_refused's advice expects. */
	snap_store *n = restored(env, r, a.name, "other.db", ndb);
	assert_int_equal(snap_replica_adopt(r, a.name, n, &err), 0);
	store_id_of(n, id);
	assert_string_equal(id, "");
	change(ndb, "after the restore");
	tu_snap(n, "d");
	push_refused(r, n, a.name);
	/* Its writer goes on (it has a and b): row c names it.  A store
	 * that takes c's id owns the older rows too: c's writer found them
	 * its own before it wrote c. */
	tu_snap(st, "c");
	assert_int_equal(push(r, st).snapshots, 1);
	snap_info *v;
	size_t nv;
	assert_int_equal(snap_replica_list(r, &v, &nv, &err), 0);
	assert_int_equal(nv, 3);
	assert_int_equal(snap_replica_adopt(r, v[2].name, n, &err), 1);
	free(v);
	store_id_of(st, ids);
	store_id_of(n, id);
	assert_string_equal(id, ids);
	assert_int_equal(push(r, n).snapshots, 1);
	/* A row with no id written after the rows naming n's id: not one
	 * of the older rows c's writer found its own. */
	late_old_row(r, url);
	snap_replicate_stats s;
	assert_int_equal(snap_replica_push(r, n, NULL, NULL, &s, &err),
			 -EEXIST);
	assert_non_null(strstr(err.msg, "late_other.db"));
	snap_store_close(n);
	snap_replica_close(r);
}
