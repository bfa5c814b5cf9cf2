/*
 * tests/unit/test_storetxn.c — the catalog's transaction helper
 * (snap_store_txn_begin / snap_store_txn_end in engine/store_int.h): a
 * change commits when it succeeds, rolls back when it fails, and a begin
 * that fails (a read-only store, another writer past busy_timeout) leaves
 * the store's mutex free.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "store_int.h"

/* 1 when another thread can take the store's mutex now (nobody holds it). */
static void *try_lock(void *arg)
{
	snap_store *st = arg;
	int free_now = pthread_mutex_trylock(&st->mu) == 0;

	if (free_now)
		pthread_mutex_unlock(&st->mu);
	return (void *)(intptr_t)free_now;
}

/* Whether s->mu is free, asked from another thread (it is recursive). */
static int mutex_free(snap_store *st)
{
	pthread_t t;
	void *ret = NULL;

	assert_int_equal(pthread_create(&t, NULL, try_lock, st), 0);
	assert_int_equal(pthread_join(t, &ret), 0);
	return (int)(intptr_t)ret;
}

/* Rows of meta with key `key`, read through a connection of its own. */
static int64_t meta_rows(snap_store *st, const char *key)
{
	sqlite3 *db = tu_open(snap_store_file(st));
	int64_t n = tu_query_int(db, "SELECT count(*) FROM meta WHERE key='%s'",
				 key);

	sqlite3_close(db);
	return n;
}

/* A store whose catalog transaction has begun and inserted meta row
 * 'txn_test' (s->mu held). */
static snap_store *store_in_txn(tu_env *env, snap_err *e)
{
	tu_db_create(env->db, "wal", 4096, 4);
	snap_store *st = tu_store(env);
	snap_err_clear(e);
	assert_int_equal(snap_store_txn_begin(st, e), 0);
	assert_false(mutex_free(st));
	assert_int_equal(snap_store_exec(st->db, "INSERT INTO meta VALUES("
					 "'txn_test', 1)", e), 0);
	return st;
}

static void test_txn_commits_a_change_that_succeeds(void **state)
{
	snap_err e;
	snap_store *st = store_in_txn(*state, &e);

	assert_int_equal(snap_store_txn_end(st->db, 0, &e), 0);
	assert_false(mutex_free(st));   /* the caller records its event */
	snap_store_unlock(st);
	assert_true(mutex_free(st));
	assert_int_equal(meta_rows(st, "txn_test"), 1);
	assert_true(sqlite3_get_autocommit(st->db));
}

static void test_txn_rolls_back_a_change_that_failed(void **state)
{
	snap_err e;
	snap_store *st = store_in_txn(*state, &e);

	assert_int_equal(snap_store_txn_end(st->db, -EIO, &e), -EIO);
	snap_store_unlock(st);
	assert_int_equal(meta_rows(st, "txn_test"), 0);
	assert_true(sqlite3_get_autocommit(st->db));
	/* The next change starts clean. */
	assert_int_equal(snap_store_txn_begin(st, &e), 0);
	assert_int_equal(snap_store_txn_end(st->db, 0, &e), 0);
	snap_store_unlock(st);
}

static void test_txn_on_a_read_only_store_is_erofs_unlocked(void **state)
{
	tu_env *env = *state;
	snap_store *ro = NULL;
	snap_err e;

	tu_db_create(env->db, "wal", 4096, 4);
	tu_store(env);
	snap_err_clear(&e);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_READONLY,
					 &ro, &e), 0);
	assert_int_equal(snap_store_txn_begin(ro, &e), -EROFS);
	assert_non_null(strstr(e.msg, "only for reading"));
	assert_true(mutex_free(ro));
	snap_store_close(ro);
}

static void test_txn_behind_another_writer_is_ebusy_unlocked(void **state)
{
	tu_env *env = *state;
	snap_err e;

	tu_db_create(env->db, "wal", 4096, 4);
	snap_store *st = tu_store(env);
	sqlite3 *other = tu_open(snap_store_file(st));

	tu_exec(other, "BEGIN IMMEDIATE");
	sqlite3_busy_timeout(st->db, 1);   /* not the store's 30 s */
	snap_err_clear(&e);
	assert_int_equal(snap_store_txn_begin(st, &e), -EBUSY);
	assert_true(mutex_free(st));
	assert_true(sqlite3_get_autocommit(st->db));
	tu_exec(other, "ROLLBACK");
	sqlite3_close(other);
	assert_int_equal(snap_store_txn_begin(st, &e), 0);
	assert_int_equal(snap_store_txn_end(st->db, 0, &e), 0);
	snap_store_unlock(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_txn_commits_a_change_that_succeeds),
		tu_test(test_txn_rolls_back_a_change_that_failed),
		tu_test(test_txn_on_a_read_only_store_is_erofs_unlocked),
		tu_test(test_txn_behind_another_writer_is_ebusy_unlocked),
	};
	return cmocka_run_group_tests_name("storetxn", tests, NULL, NULL);
}
