/*
 * tests/unit/replica_util.h — helpers the replica unit tests share
 * (replica_util.c) and the tests of test_replica_frames.c that
 * test_replica.c's main runs.
 */
#ifndef TESTS_REPLICA_UTIL_H
#define TESTS_REPLICA_UTIL_H

#include "testutil.h"

#include "objstore.h"
#include "replica.h"

#define PASS "correct horse battery staple"
#define MARKER "replica-plaintext-marker"

/* A store with two snapshots (a, then b after a small change) of a
 * database whose rows hold MARKER. */
snap_store *two_snapshots(tu_env *env, int page_size, snap_info *a,
			  snap_info *b);
/* verify --full of every snapshot of r finds nothing wrong. */
void assert_verify_clean(const tu_env *env, snap_replica *r);
/* two_snapshots (env->st), pushed into a new replica "replica" at url
 * (PATH_MAX + 8 bytes; path: PATH_MAX), the replica left open; or
 * closed again. */
snap_replica *replica_pair(tu_env *env, char *url, char *path, snap_info *a,
			   snap_info *b);
snap_store *replicated_pair(tu_env *env, char *url, char *path, snap_info *a,
			    snap_info *b);
/* The replica URL of a test: a directory of the test, or a fresh prefix
 * under SNAPFS_TEST_REPLICA_BASE (url: PATH_MAX + 8 bytes). */
void url_of(const tu_env *env, const char *name, char *url, char *path);
/* List dir of the replica at url into g_names (sorted); the object store
 * stays open for the caller (snap_objstore_close). */
extern char **g_names;
extern size_t g_nnames;
snap_objstore *objs_list(const char *url, const char *dir);
/* Flip one byte of object name (xor, in its middle), or delete it. */
void obj_flip(const char *url, const char *name, int del);
/* Open a replica with the test passphrase; fail the test on error. */
snap_replica *ropen(const char *url, unsigned flags);
/* Push every snapshot of st; fail the test on error. */
snap_replicate_stats push(snap_replica *r, snap_store *st);
/* Export si from the replica and compare with the local image. */
void assert_export_equals(const tu_env *env, snap_replica *r,
			  snap_store *st, const snap_info *si);
/* A store whose one snapshot (*a) is of a table of rows blobs of 3000
 * bytes, each the SQL expression blob of the row's id i. */
snap_store *big_snapshot(tu_env *env, int rows, const char *blob,
			 snap_info *a);
/* A verify callback: counts problems, keeps the last snapshot named. */
extern int g_nprob;
extern char g_prob_snap[SNAP_NAME_MAX];
extern uint32_t g_prob_page;           /* the last problem's page (0: none) */
extern char g_prob_text[1024];         /* and its sentence */
void prob_cb(void *ctx, const char *snap, uint32_t page, const char *problem);

/* A second database beside env->db (other.db into db, PATH_MAX), its
 * own store, one snapshot labelled "other". */
snap_store *other_database(tu_env *env, char *db);
/* Push st expecting the refusal of another database's replica, naming
 * snapshot first. */
void push_refused(snap_replica *r, snap_store *st, const char *first);
/* Rewrite every catalog row as a snapfs before store ids wrote it. */
/* Put the catalog row from, its JSON passed through the SQL expression
 * sql (the row as ?1), as object to (to may be from). */
void row_rewrite(snap_replica *r, const char *from, const char *to,
		 const char *sql);
void rows_without_store(snap_replica *r, const char *url);

/* test_replica_frames.c */
void test_page_size_change_and_shrink(void **state);
void test_image_read_in_place(void **state);
void test_damaged_pack_fails_only_the_reads_that_need_it(void **state);
void test_version_1_replica_is_read_and_pushed_to(void **state);
void test_pages_of_one_frame_read_singly_in_any_order(void **state);
void test_damaged_frame_names_the_snapshot(void **state);
void test_frame_ending_a_pack(void **state);
void test_cache_row_of_other_content_is_not_trusted(void **state);
void test_cache_of_older_layout_is_rebuilt(void **state);
void test_pack_gone_from_the_replica_is_forgotten(void **state);
void test_pack_forgotten_with_its_pages_or_not_at_all(void **state);
void test_pack_lost_without_its_index_is_sent_again(void **state);
void test_changed_page_in_raw_frame_is_named(void **state);
void test_writer_reads_rows_it_has_seen_from_its_cache(void **state);
void test_snapshots_of_one_run_share_packs(void **state);

/* test_replica_owner.c */
void test_restored_database_continues_its_replica(void **state);
void test_store_with_an_id_of_its_own_keeps_it(void **state);
void test_replica_from_before_store_ids_gives_no_id(void **state);

/* test_replica_faults.c */
void test_damaged_pruned_set_is_named_by_verify(void **state);
void test_full_verify_without_room_judges_nothing(void **state);
void test_full_verify_ignores_a_planted_journal(void **state);
void test_long_run_keeps_its_lock_alive(void **state);
void test_unreadable_lock_of_another_writer_blocks(void **state);

#endif
