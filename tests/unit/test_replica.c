/*
 * tests/unit/test_replica.c — engine/replica.h over file:// (objstore.h):
 * a replica rebuilt with the URL and the passphrase alone gives images
 * byte-identical to the local snapshots; a second run uploads nothing; a
 * changed page costs a page, not a snapshot; a wrong or missing passphrase
 * writes nothing; sealed objects hide the data, plain ones do not; a
 * flipped byte or a deleted pack is found and names the snapshot; a run
 * cut short (no catalog row, no cache) is finished without re-uploading
 * pages; a symlink planted in the replica is refused; a snapshot of
 * several packs (one uploaded while the next is built, the next fetched
 * ahead while one is read) round-trips, and an object announced with
 * snap_objstore_prefetch reads exactly as a plain get would, also after
 * it changed or went away; a snapshot whose pages interleave more packs
 * than a reader keeps fetches each once (read in place as cp reads it:
 * once per window); a replica holding another database's
 * snapshots is refused, one from before rows named their store stays
 * its writer's.  Images read in place, page sizes, frames and
 * version 1 replicas: test_replica_frames.c; a database restored from a
 * replica continuing it: test_replica_owner.c; faults its commands must
 * name rightly (pruned/set, no room, long runs' locks):
 * test_replica_faults.c (all run from main here); shared helpers:
 * replica_util.c.
 *
 * With SNAPFS_TEST_REPLICA_BASE set (s3://BUCKET/PREFIX: the test 'replica
 * on S3' starts a real server and sets it), every test but the symlink
 * one runs against that instead of a directory: the tests change objects
 * only through objstore.h, so they mean the same on both.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replica_int.h"     /* snap_replica_obj_get/put */
#include "replica_util.h"

/* 1 when some object of the replica at url contains needle. */
static int objects_contain(const char *url, const char *needle)
{
	static const char *dirs[] = {"packs", "index", "maps", "snapshots"};
	int found = 0;
	for (size_t k = 0; k < sizeof dirs / sizeof *dirs; k++) {
		snap_objstore *o = objs_list(url, dirs[k]);
		for (size_t i = 0; i < g_nnames; i++) {
			uint8_t *d;
			size_t n;
			snap_err err;
			assert_int_equal(snap_objstore_get(o, g_names[i], &d,
							   &n, &err), 0);
			found |= memmem(d, n, needle, strlen(needle)) != NULL;
			free(d);
		}
		snap_objstore_close(o);
	}
	return found;
}

static void test_round_trip_from_url_and_passphrase_alone(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.snapshots, 2);
	assert_true(s.pages > 0);
	assert_true(s.bytes > 0);
	snap_replica_close(r);
	/* The "fresh machine": no store, only the URL and the passphrase. */
	snap_store_close(env->st);
	env->st = NULL;
	r = ropen(url, 0);
	snap_info *v;
	size_t n;
	snap_err err;
	assert_int_equal(snap_replica_list(r, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, a.name);
	assert_string_equal(v[1].name, b.name);
	assert_memory_equal(v[1].sha256, b.sha256, 32);
	assert_int_equal(v[1].page_count, b.page_count);
	free(v);
	env->st = st = tu_store(env);
	assert_export_equals(env, r, st, &a);
	assert_export_equals(env, r, st, &b);
	assert_verify_clean(env, r);
	snap_replica_close(r);
	/* Sealed: the provider sees no row text, no snapshot name. */
	assert_false(objects_contain(url, MARKER));
	assert_false(objects_contain(url, a.name));
}

static void test_second_run_uploads_nothing_and_a_change_costs_a_page(
	void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	snap_replicate_stats first = push(r, st);
	snap_replicate_stats again = push(r, st);
	assert_int_equal(again.snapshots, 0);
	assert_int_equal(again.pages, 0);
	assert_int_equal(again.bytes, 0);
	assert_int_equal(again.present, 2);
	/* Every distinct page once: exactly what the store holds. */
	assert_int_equal(first.pages, tu_pages(st));
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = 'again' WHERE id = 900");
	sqlite3_close(db);
	snap_info c = tu_snap(st, "c");
	snap_replicate_stats third = push(r, st);
	assert_int_equal(third.snapshots, 1);
	assert_true(third.pages >= 1 && third.pages <= 6);
	assert_int_equal(first.pages + third.pages, tu_pages(st));
	assert_export_equals(env, r, st, &c);
	/* A page that changes back to older content is found, not re-sent. */
	db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = (SELECT v FROM t WHERE id = 901) "
		"WHERE id = 900");
	sqlite3_close(db);
	snap_info d = tu_snap(st, "d");
	push(r, st);
	assert_export_equals(env, r, st, &d);
	snap_replica_close(r);
}

/* More pages than three packs hold (random, so they do not compress):
 * every pack but the last is uploaded while the next is built; export
 * reads them with the next one announced ahead; a second snapshot with a
 * few pages changed reads the old packs out of order. */
static void test_snapshot_of_several_packs_round_trips(void **state)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_info a;
	snap_store *st = big_snapshot(env, 6500, "randomblob(3000)", &a);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.snapshots, 1);
	assert_int_equal(s.pages, tu_pages(st));
	snap_objstore_close(objs_list(url, "packs"));
	assert_true(g_nnames >= 3);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE big SET b = randomblob(3000) WHERE id %% 900 = 1");
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");
	s = push(r, st);
	assert_int_equal(s.snapshots, 1);
	assert_true(s.pages >= 5 && s.pages < 100);
	snap_replica_close(r);
	r = ropen(url, 0);
	assert_export_equals(env, r, st, &a);
	assert_export_equals(env, r, st, &b);
	assert_verify_clean(env, r);
	snap_replica_close(r);
}

/* A snapshot whose pages came in several runs (scattered rows changed
 * between snapshots, each snapshot replicated on its own) interleaves
 * their packs page by page, more packs than a reader keeps: a whole
 * image is read pack by pack, each pack fetched once, and is still
 * byte-identical (export, verify without and with --full).  Read in page
 * order, every page could fetch a pack again. */
static void test_interleaved_packs_are_fetched_once(void **state)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_info a, last;
	snap_store *st = big_snapshot(env, 4000, "randomblob(3000)", &a);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	for (int gen = 2; gen <= 6; gen++) {
		sqlite3 *db = tu_open(env->db);
		tu_exec(db, "UPDATE big SET b = randomblob(3000) WHERE id %% "
			"%d = 0", gen);
		sqlite3_close(db);
		char label[16];
		snprintf(label, sizeof label, "gen%d", gen);
		last = tu_snap(st, label);
		assert_int_equal(push(r, st).snapshots, 1);   /* its own run */
	}
	snap_replica_close(r);
	snap_objstore_close(objs_list(url, "packs"));
	size_t packs = g_nnames;
	assert_true(packs > PACK_CACHE + 2);
	r = ropen(url, 0);
	assert_export_equals(env, r, st, &last);
	uint64_t gets = snap_replica_pack_gets(r);
	print_message("# %zu packs in the replica, %llu fetched for the "
		      "newest image\n", packs, (unsigned long long)gets);
	assert_true(gets <= packs);
	assert_verify_clean(env, r);
	snap_replica_close(r);
	r = ropen(url, 0);
	unsigned nbad = 9;
	snap_err err;
	assert_int_equal(snap_replica_verify(r, last.name, 0, env->dir, NULL,
					     NULL, &nbad, &err), 0);
	assert_int_equal(nbad, 0);
	assert_true(snap_replica_pack_gets(r) <= packs);
	snap_replica_close(r);
	/* No temporary file can be made (the directory is missing): the
	 * image is read in page order instead, a window at a time (each
	 * pack fetched at most once a window), and is still found intact. */
	r = ropen(url, 0);
	char gone[PATH_MAX];
	tu_path(env, gone, "no-such-dir");
	nbad = 9;
	assert_int_equal(snap_replica_verify(r, last.name, 0, gone, NULL, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 0);
	size_t nwin = ((size_t)last.page_count * last.page_size +
		       REPLICA_WINDOW - 1) / REPLICA_WINDOW;
	print_message("# in page order, no temporary file: %llu pack "
		      "fetches\n", (unsigned long long)snap_replica_pack_gets(r));
	assert_true(snap_replica_pack_gets(r) <= nwin * packs);
	snap_replica_close(r);
	/* Read in place as cp reads it (128 KiB after 128 KiB, the replica
	 * mount): a window of REPLICA_WINDOW bytes at a time fetches each
	 * pack at most once per window, and the bytes are the image's. */
	r = ropen(url, 0);
	size_t len;
	uint8_t *want = tu_image_bytes(st, last.id, &len);
	uint8_t *buf = malloc(128 << 10);
	snap_replica_image *img;
	assert_non_null(buf);
	assert_int_equal(snap_replica_image_open(r, last.name, &img, &err), 0);
	for (size_t off = 0; off < len; off += 128 << 10) {
		long got = snap_replica_image_read(img, buf, 128 << 10, off,
						   &err);
		if (got < 0)
			fail_msg("%zu: %s", off, err.msg);
		assert_int_equal(got, len - off < (128 << 10) ? len - off :
				 128 << 10);
		assert_memory_equal(buf, want + off, (size_t)got);
	}
	snap_replica_image_close(img);
	size_t windows = (len + REPLICA_WINDOW - 1) / REPLICA_WINDOW;
	gets = snap_replica_pack_gets(r);
	print_message("# read in place: %llu pack fetches, %zu windows\n",
		      (unsigned long long)gets, windows);
	assert_true(gets <= windows * packs);
	snap_replica_close(r);
	free(buf);
	free(want);
}

/* Announced objects read as a plain get would: the bytes there, also
 * after a put replaced them or a delete removed them; a missing one is
 * -ENOENT; more announcements than are held change nothing; closing with
 * fetches queued or done leaks nothing (ASan). */
static void test_prefetch_never_changes_what_a_get_reads(void **state)
{
	tu_env *env = *state;
	char url[PATH_MAX + 8], path[PATH_MAX], name[64], body[64];
	url_of(env, "objs", url, path);
	snap_objstore *o;
	snap_err err;
	uint8_t *d;
	size_t n;
	assert_int_equal(snap_objstore_open(url, SNAP_OBJSTORE_CREATE, &o,
					    &err), 0);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof name, "packs/%02d", i);
		snprintf(body, sizeof body, "object %d, first version", i);
		assert_int_equal(snap_objstore_put(o, name, body, strlen(body),
						   &err), 0);
	}
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof name, "packs/%02d", i);
		snap_objstore_prefetch(o, name, SNAP_OBJSTORE_MAX);
	}
	snap_objstore_prefetch(o, "packs/missing", SNAP_OBJSTORE_MAX);
	/* Changed and removed after the announcement. */
	assert_int_equal(snap_objstore_put(o, "packs/03", "new", 3, &err), 0);
	assert_int_equal(snap_objstore_delete(o, "packs/04", &err), 0);
	for (int i = 9; i >= 0; i--) {
		snprintf(name, sizeof name, "packs/%02d", i);
		int rc = snap_objstore_get(o, name, &d, &n, &err);
		if (i == 4) {
			assert_int_equal(rc, -ENOENT);
			continue;
		}
		assert_int_equal(rc, 0);
		if (i == 3) {
			assert_int_equal(n, 3);
			assert_memory_equal(d, "new", 3);
		} else {
			snprintf(body, sizeof body, "object %d, first version",
				 i);
			assert_int_equal(n, strlen(body));
			assert_memory_equal(d, body, n);
		}
		free(d);
	}
	assert_int_equal(snap_objstore_get(o, "packs/missing", &d, &n, &err),
			 -ENOENT);
	/* Announced, never read: dropped at close. */
	snap_objstore_prefetch(o, "packs/00", SNAP_OBJSTORE_MAX);
	snap_objstore_prefetch(o, "packs/01", SNAP_OBJSTORE_MAX);
	snap_objstore_close(o);
}

static void test_passphrase_rules(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_err err;
	snap_replica *r = NULL;
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	/* No passphrase, no --no-encryption: refused, nothing created. */
	assert_int_equal(snap_replica_open(url, NULL, 0, SNAP_REPLICA_CREATE,
					   &r, &err), -EPERM);
	assert_null(r);
	assert_non_null(strstr(err.msg, "SNAPFS_PASSPHRASE"));
	snap_objstore *probe;
	int prc = snap_objstore_open(url, 0, &probe, &err);
	if (prc == 0) {          /* s3: the bucket is there, no config */
		uint8_t *cfg;
		size_t cfglen;
		assert_int_equal(snap_objstore_get(probe, "config", &cfg,
						   &cfglen, &err), -ENOENT);
		snap_objstore_close(probe);
	} else {                 /* file: not even the directory */
		assert_int_equal(prc, -ENOENT);
	}
	r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	snap_replica_close(r);
	/* Wrong passphrase: -EACCES, a clear sentence, nothing written. */
	r = NULL;
	assert_int_equal(snap_replica_open(url, "nope", 4, 0, &r, &err),
			 -EACCES);
	assert_null(r);
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	assert_int_equal(snap_replica_open(url, NULL, 0, 0, &r, &err),
			 -EACCES);
	assert_non_null(strstr(err.msg, "passphrase"));
	/* No replica at all. */
	char none[PATH_MAX + 8], p2[PATH_MAX];
	url_of(env, "nothing-here", none, p2);
	assert_int_equal(snap_replica_open(none, PASS, strlen(PASS), 0, &r,
					   &err), -ENOENT);
	assert_int_equal(snap_replica_open("ftp://x/y", PASS, strlen(PASS), 0,
					   &r, &err), -EINVAL);
}

static void test_passphrase_change_rewrites_only_config(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_err err;
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	/* Every object but config, before. */
	snap_objstore_close(objs_list(url, "packs"));
	size_t npacks = g_nnames;
	uint8_t *before, *after;
	size_t nb, na;
	snap_objstore *o;
	assert_int_equal(snap_objstore_open(url, 0, &o, &err), 0);
	assert_int_equal(snap_objstore_get(o, g_names[0], &before, &nb, &err),
			 0);
	assert_int_equal(snap_replica_passphrase(r, "new pass", 8, &err), 0);
	snap_replica_close(r);
	assert_int_equal(snap_objstore_get(o, g_names[0], &after, &na, &err),
			 0);
	assert_int_equal(na, nb);
	assert_memory_equal(after, before, nb);   /* not rewritten */
	free(before);
	free(after);
	snap_objstore_close(o);
	/* The old passphrase no longer opens it; the new one does, and the
	 * data reads back. */
	r = NULL;
	assert_int_equal(snap_replica_open(url, PASS, strlen(PASS), 0, &r,
					   &err), -EACCES);
	assert_int_equal(snap_replica_open(url, "new pass", 8, 0, &r, &err), 0);
	assert_export_equals(env, r, st, &b);
	snap_replica_close(r);
	snap_objstore_close(objs_list(url, "packs"));
	assert_int_equal(g_nnames, npacks);
}

static void test_plain_replica(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_err err;
	snap_replica *r = NULL;
	snap_store *st = env->st = two_snapshots(env, 1024, &a, &b);
	url_of(env, "plain", url, path);
	assert_int_equal(snap_replica_open(url, NULL, 0, SNAP_REPLICA_CREATE |
					   SNAP_REPLICA_NO_ENCRYPTION, &r,
					   &err), 0);
	assert_false(snap_replica_encrypted(r));
	push(r, st);
	assert_export_equals(env, r, st, &b);
	snap_replica_close(r);
	/* Opens without a passphrase; its pages are readable (zstd of text
	 * keeps short literals: the marker is there, compressed or not). */
	assert_int_equal(snap_replica_open(url, NULL, 0, 0, &r, &err), 0);
	snap_replica_close(r);
	snap_objstore *o;
	size_t n;
	uint8_t *c;
	assert_int_equal(snap_objstore_open(url, 0, &o, &err), 0);
	assert_int_equal(snap_objstore_get(o, "config", &c, &n, &err), 0);
	snap_objstore_close(o);
	assert_non_null(memmem(c, n, "\"encryption\":\"none\"", 19));
	free(c);
	/* Not sealed: the snapshot's name is readable by the provider. */
	assert_true(objects_contain(url, b.name));
}

static void test_damage_is_found_and_named(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX], pack[64], out[PATH_MAX];
	snap_err err;
	unsigned nbad;
	replicated_pair(env, url, path, &a, &b);
	snap_replica *r;
	/* One flipped byte in the middle of the first pack (a's pages; b's
	 * too: snapshots sent in one run share packs). */
	snap_objstore_close(objs_list(url, "packs"));
	assert_true(g_nnames >= 1);
	snprintf(pack, sizeof pack, "%s", g_names[0]);
	obj_flip(url, pack, 0);
	r = ropen(url, 0);
	g_nprob = 0;
	assert_int_equal(snap_replica_verify(r, NULL, 0, NULL, prob_cb, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 2);          /* both snapshots use that pack */
	assert_int_equal(g_nprob, 2);
	/* The problem names the page it is about, and the snapshot only once
	 * (snapctl prints "NAME: page N: problem"). */
	assert_true(g_prob_page >= 1);
	assert_null(strstr(g_prob_text, g_prob_snap));
	assert_non_null(strstr(g_prob_text, pack));
	tu_path(env, out, "out.db");
	assert_int_equal(snap_replica_export(r, a.name, out, NULL, NULL, &err),
			 -EIO);
	assert_false(tu_exists(out));       /* no half-written image left */
	assert_non_null(strstr(err.msg, ", page "));  /* export still says */
	snap_replica_close(r);
	/* The pack deleted instead. */
	obj_flip(url, pack, 0);
	r = ropen(url, 0);
	assert_int_equal(snap_replica_verify(r, NULL, 0, NULL, prob_cb, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 0);
	obj_flip(url, pack, 1);
	g_nprob = 0;
	assert_int_equal(snap_replica_verify(r, b.name, 0, NULL, prob_cb, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 1);
	assert_string_equal(g_prob_snap, b.name);
	assert_true(g_prob_page >= 1);      /* a page of the deleted pack */
	snap_replica_close(r);
}

static void test_cut_short_run_is_finished_without_resending(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	snap_replica_close(r);
	/* As if killed before any catalog row landed, and the local cache
	 * lost too: the packs and indexes are there, nothing names them. */
	snap_objstore_close(objs_list(url, "snapshots"));
	for (size_t i = 0; i < g_nnames; i++)
		obj_flip(url, g_names[i], 1);
	tu_store_exec(st, "DELETE FROM replica_pageids; DELETE FROM "
		      "replica_packs; DELETE FROM replica_snaps");
	r = ropen(url, 0);
	snap_info *v;
	size_t n;
	snap_err err;
	assert_int_equal(snap_replica_list(r, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	free(v);
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.snapshots, 2);
	assert_int_equal(s.pages, 0);
	assert_export_equals(env, r, st, &a);
	snap_replica_close(r);
}

static void test_replica_of_another_database_is_refused(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX], odb[PATH_MAX],
		ostore[PATH_MAX + 32];
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	snap_store *o = other_database(env, odb);
	push_refused(r, o, a.name);
	snap_store_close(o);
	/* Nothing written: no new row there, no id or cache here. */
	snap_info *v;
	size_t n;
	snap_err err;
	assert_int_equal(snap_replica_list(r, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	free(v);
	snprintf(ostore, sizeof ostore, "%s.snapfs/store.db", odb);
	sqlite3 *db = tu_open(ostore);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM meta WHERE "
				      "key='store_id'"), 0);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM sqlite_schema "
				      "WHERE name LIKE 'replica%%'"), 0);
	sqlite3_close(db);
	/* Its own database goes on. */
	assert_int_equal(push(r, st).present, 2);
	snap_replica_close(r);
}

static void test_replica_from_before_store_ids_stays_its_writers(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX], odb[PATH_MAX];
	snap_err err;
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	push(r, st);
	rows_without_store(r, url);
	/* ... as if that snapfs wrote them: no store id, no cached rows. */
	tu_store_exec(st, "DELETE FROM meta WHERE key='store_id'; "
		      "DELETE FROM replica_rows");
	/* Another database: its rows are not another store's by their
	 * word, but it has neither them nor a record of writing them. */
	snap_store *o = other_database(env, odb);
	push_refused(r, o, a.name);
	/* The writer: a (deleted here) by its record of writing it, b (that
	 * record gone) because it has b, name and SHA-256. */
	assert_int_equal(snap_store_delete(st, a.id, &err), 0);
	tu_store_exec(st, "DELETE FROM replica_snaps WHERE name='%s'", b.name);
	snap_replicate_stats s = push(r, st);
	assert_int_equal(s.snapshots, 0);
	assert_int_equal(s.present, 1);
	/* Its new rows name it: the other database stays refused. */
	tu_snap(st, "c");
	assert_int_equal(push(r, st).snapshots, 1);
	push_refused(r, o, a.name);
	snap_store_close(o);
	snap_replica_close(r);
}

static void test_symlink_in_replica_is_refused(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX], elsewhere[PATH_MAX],
		link[PATH_MAX + 8];
	snap_err err;
	snap_store *st = env->st = two_snapshots(env, 4096, &a, &b);
	url_of(env, "replica", url, path);
	tu_path(env, elsewhere, "elsewhere");
	assert_int_equal(mkdir(elsewhere, 0700), 0);
	snap_replica *r = ropen(url, SNAP_REPLICA_CREATE);
	snprintf(link, sizeof link, "%s/packs", path);
	assert_int_equal(symlink(elsewhere, link), 0);
	snap_replicate_stats s;
	int rc = snap_replica_push(r, st, NULL, NULL, &s, &err);
	assert_true(rc == -ELOOP || rc == -ENOTDIR);
	assert_non_null(strstr(err.msg, "symlink"));
	snap_replica_close(r);
	DIR *d = opendir(elsewhere);
	struct dirent *de;
	int entries = 0;
	while ((de = readdir(d)) != NULL)
		entries += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(entries, 0);
	/* A replica URL that is itself a symlink: refused. */
	char url2[PATH_MAX + 16], l2[PATH_MAX];
	tu_path(env, l2, "replica-link");
	assert_int_equal(symlink(path, l2), 0);
	snprintf(url2, sizeof url2, "file://%s", l2);
	r = NULL;
	rc = snap_replica_open(url2, PASS, strlen(PASS), 0, &r, &err);
	assert_true(rc == -ELOOP || rc == -ENOTDIR);
	assert_non_null(strstr(err.msg, "symlink"));
}

/* Rows sharing a name (a store reused one): only the newest of each name
 * stays, in the listing's order (the replica mount's snapshots/). */
static void test_rows_sharing_a_name_keep_the_newest(void **state)
{
	(void)state;
	static const char *const in[] = {"a.db", "b.db", "a.db", "c.db",
					 "b.db", "a.db"};
	snap_info v[6];
	size_t n = 6;
	memset(v, 0, sizeof v);
	for (size_t i = 0; i < n; i++) {
		snprintf(v[i].name, sizeof v[i].name, "%s", in[i]);
		v[i].created_ns = (int64_t)i;
	}
	assert_int_equal(snap_replica_names_unique(v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "c.db");
	assert_int_equal(v[0].created_ns, 3);
	assert_string_equal(v[1].name, "b.db");
	assert_int_equal(v[1].created_ns, 4);
	assert_string_equal(v[2].name, "a.db");
	assert_int_equal(v[2].created_ns, 5);
	n = 1;
	assert_int_equal(snap_replica_names_unique(v, &n), 0);
	assert_int_equal(n, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_round_trip_from_url_and_passphrase_alone),
		tu_test(test_second_run_uploads_nothing_and_a_change_costs_a_page),
		tu_test(test_passphrase_rules),
		tu_test(test_passphrase_change_rewrites_only_config),
		tu_test(test_plain_replica),
		tu_test(test_damage_is_found_and_named),
		tu_test(test_damaged_pruned_set_is_named_by_verify),
		tu_test(test_full_verify_without_room_judges_nothing),
		tu_test(test_full_verify_ignores_a_planted_journal),
		tu_test(test_long_run_keeps_its_lock_alive),
		tu_test(test_cut_short_run_is_finished_without_resending),
		tu_test(test_replica_of_another_database_is_refused),
		tu_test(test_replica_from_before_store_ids_stays_its_writers),
		tu_test(test_restored_database_continues_its_replica),
		tu_test(test_store_with_an_id_of_its_own_keeps_it),
		tu_test(test_replica_from_before_store_ids_gives_no_id),
		tu_test(test_cache_row_of_other_content_is_not_trusted),
		tu_test(test_cache_of_older_layout_is_rebuilt),
		tu_test(test_pack_gone_from_the_replica_is_forgotten),
		tu_test(test_pack_forgotten_with_its_pages_or_not_at_all),
		tu_test(test_pack_lost_without_its_index_is_sent_again),
		tu_test(test_changed_page_in_raw_frame_is_named),
		tu_test(test_writer_reads_rows_it_has_seen_from_its_cache),
		tu_test(test_snapshots_of_one_run_share_packs),
		tu_test(test_page_size_change_and_shrink),
		tu_test(test_image_read_in_place),
		tu_test(test_damaged_pack_fails_only_the_reads_that_need_it),
		tu_test(test_snapshot_of_several_packs_round_trips),
		tu_test(test_interleaved_packs_are_fetched_once),
		tu_test(test_prefetch_never_changes_what_a_get_reads),
		tu_test(test_version_1_replica_is_read_and_pushed_to),
		tu_test(test_pages_of_one_frame_read_singly_in_any_order),
		tu_test(test_damaged_frame_names_the_snapshot),
		tu_test(test_frame_ending_a_pack),
		tu_test(test_rows_sharing_a_name_keep_the_newest),
		/* file:// only, these two (last): */
		tu_test(test_symlink_in_replica_is_refused),
		tu_test(test_unreadable_lock_of_another_writer_blocks),
	};
	size_t n = sizeof tests / sizeof *tests;
	if (getenv("SNAPFS_TEST_REPLICA_BASE"))
		n -= 2;
	return _cmocka_run_group_tests("replica", tests, n, NULL, NULL);
}
