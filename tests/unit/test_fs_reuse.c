/*
 * tests/unit/test_fs_reuse.c — the proof that a snapshot the daemon took is
 * the live database (fs/livereuse.c), without a mount: when it is made,
 * when it holds, and every way it must stop holding (a commit, a change
 * back to the older content, a database that shrank, grew or changed its
 * page size, a commit during the capture, a restore's
 * quiet, the file replaced, a write that is not SQLite's), in rollback and
 * WAL mode; and the fallback image a reader gets when its snapshot goes.
 * A proof that held where it must not would serve a stale current.db.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attr.h"
#include "fs.h"
#include "fsutil.h"

/* A live database of 200 rows in mode, its store, the staging directory
 * and the daemon's view of the live database, as main.c opens them. */
static void open_live(tu_env *env, const char *mode)
{
	snap_err err;

	snap_err_clear(&err);
	tu_db_create(env->db, mode, 4096, 200);
	if (snap_store_open(env->db, NULL, SNAP_OPEN_CREATE |
			    SNAP_OPEN_DAEMON, &snap_fs.store, &err) != 0 ||
	    snap_staging_init(snap_fs.store, snap_fs.staging_dir,
			      sizeof(snap_fs.staging_dir), &err) != 0 ||
	    snap_live_open(env->db, snap_fs.staging_dir, &snap_fs.live,
			   &err) != 0)
		fail_msg("setup: %s", err.msg);
	snap_fs.db_path = snap_store_db_path(snap_fs.store);
}

/* A snapshot taken as the daemon takes one (pending.c): bracketed. */
static snap_info take(const char *label, void (*during)(tu_env *),
		      tu_env *env)
{
	struct snap_live_mark m;
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = label };
	snap_info info;
	snap_err err;

	snap_err_clear(&err);
	snap_live_capture_begin(snap_fs.live, &m);
	if (during)
		during(env);
	assert_int_equal(snap_snapshot_take(snap_fs.store, &o, &info, &err),
			 0);
	snap_live_capture_end(snap_fs.live, &m, info.id, info.sha256,
			      info.image_size);
	return info;
}

/* The proof that holds now, if any: its snapshot id, 0 for none. */
static int64_t reusable(void)
{
	struct snap_live_proof p;

	return snap_live_reuse_find(snap_fs.live, &p) ? p.snap_id : 0;
}

static void commit_row(tu_env *env)
{
	sqlite3 *db = tu_open(env->db);

	tu_exec(db, "INSERT INTO t(id, v) VALUES(100000, 'new')");
	sqlite3_close(db);
}

/* Unchanged since the snapshot: its image is served; any commit ends it,
 * also one that brings the content back to the snapshot's. */
static void unchanged_then_changed(void **state, const char *mode)
{
	tu_env *env = *state;
	snap_info a, b;
	sqlite3 *db;

	open_live(env, mode);
	a = take("a", NULL, env);
	assert_int_equal(reusable(), a.id);
	assert_int_equal(reusable(), a.id);       /* reads change nothing */

	commit_row(env);
	assert_int_equal(reusable(), 0);

	b = take("b", NULL, env);
	assert_int_equal(reusable(), b.id);
	db = tu_open(env->db);
	tu_exec(db, "DELETE FROM t WHERE id = 100000");   /* back to a's */
	sqlite3_close(db);
	assert_int_equal(reusable(), 0);
	/* Not a's either: no proof says a is this state. */
}

static void test_unchanged_rollback(void **state)
{
	unchanged_then_changed(state, "delete");
}

static void test_unchanged_wal(void **state)
{
	unchanged_then_changed(state, "wal");
}

/* The database shrinks (rows deleted, VACUUM), grows, and in rollback
 * mode changes its page size (VACUUM): each ends the proof, and a
 * snapshot taken after it proves the new shape.  In WAL mode the main
 * file's size and mtime stay as they were until a checkpoint, so only the
 * generation can tell. */
static void shrink_grow(void **state, const char *mode)
{
	tu_env *env = *state;
	snap_info a, b, c;
	sqlite3 *db;

	open_live(env, mode);
	db = tu_open(env->db);
	if (!strcmp(mode, "wal"))
		tu_exec(db, "PRAGMA wal_autocheckpoint=0");
	tu_db_insert(db, 1000, 3000);
	a = take("a", NULL, env);
	assert_int_equal(reusable(), a.id);

	tu_exec(db, "DELETE FROM t WHERE id >= 1000");
	tu_exec(db, "VACUUM");
	assert_int_equal(reusable(), 0);
	b = take("b", NULL, env);
	assert_true(b.page_count < a.page_count);
	assert_int_equal(reusable(), b.id);

	tu_db_insert(db, 5000, 9000);
	assert_int_equal(reusable(), 0);
	c = take("c", NULL, env);
	assert_true(c.page_count > a.page_count);
	assert_int_equal(reusable(), c.id);

	if (strcmp(mode, "wal")) {
		tu_exec(db, "PRAGMA page_size=8192");
		tu_exec(db, "VACUUM");
		assert_int_equal(tu_db_page_size(env->db), 8192);
		assert_int_equal(reusable(), 0);
		b = take("d", NULL, env);
		assert_int_equal(b.page_size, 8192);
		assert_int_equal(reusable(), b.id);
	}
	sqlite3_close(db);
}

static void test_shrink_grow_rollback(void **state)
{
	shrink_grow(state, "delete");
}

static void test_shrink_grow_wal(void **state)
{
	shrink_grow(state, "wal");
}

/* A commit between the two ends of the capture: no proof, and the older
 * one does not come back. */
static void during_capture(void **state, const char *mode)
{
	tu_env *env = *state;
	snap_info a;

	open_live(env, mode);
	a = take("a", NULL, env);
	assert_int_equal(reusable(), a.id);
	take("b", commit_row, env);
	assert_int_equal(reusable(), 0);
}

static void test_during_capture_rollback(void **state)
{
	during_capture(state, "delete");
}

static void test_during_capture_wal(void **state)
{
	during_capture(state, "wal");
}

/* A restore's quiet (snap_live_quiesce .. resume): the generation is not
 * checked meanwhile, so a capture inside it proves nothing, and a proof
 * made before does not survive it. */
static void test_quiet(void **state)
{
	tu_env *env = *state;
	struct snap_live_mark m;
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "q" };
	snap_info a, info;
	snap_err err;

	open_live(env, "delete");
	a = take("a", NULL, env);
	assert_int_equal(reusable(), a.id);
	snap_live_quiesce(snap_fs.live);
	snap_live_resume(snap_fs.live);
	assert_int_equal(reusable(), 0);

	snap_err_clear(&err);
	snap_live_capture_begin(snap_fs.live, &m);
	snap_live_quiesce(snap_fs.live);
	assert_int_equal(snap_snapshot_take(snap_fs.store, &o, &info, &err),
			 0);
	snap_live_capture_end(snap_fs.live, &m, info.id, info.sha256,
			      info.image_size);
	snap_live_resume(snap_fs.live);
	assert_int_equal(reusable(), 0);
}

/* The file replaced by one with the same content (a rename over it): a
 * new file, no proof. */
static void test_replaced(void **state)
{
	tu_env *env = *state;
	char copy[PATH_MAX];
	snap_info a;

	open_live(env, "delete");
	a = take("a", NULL, env);
	assert_int_equal(reusable(), a.id);
	tu_path(env, copy, "copy.db");
	tu_db_backup_copy(env->db, copy);
	assert_int_equal(rename(copy, env->db), 0);
	assert_int_equal(reusable(), 0);
}

/* A write that is not SQLite's (no change counter moved, same size): the
 * file's mtime ends the proof.  The test moves the mtime itself, since a
 * write within the clock's tick of the capture keeps it. */
static void test_foreign_write(void **state)
{
	tu_env *env = *state;
	struct timespec ts[2];
	struct stat st;
	snap_info a;
	char c;
	int fd;

	open_live(env, "delete");
	a = take("a", NULL, env);
	assert_int_equal(reusable(), a.id);
	fd = open(env->db, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(pread(fd, &c, 1, st.st_size - 1), 1);
	c ^= 0x55;
	assert_int_equal(pwrite(fd, &c, 1, st.st_size - 1), 1);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	ts[1].tv_sec += 1;
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	assert_int_equal(reusable(), 0);
}

/* A reader whose snapshot went away: the fallback image has the
 * snapshot's pages (all but the header's counters) while the database is
 * unchanged, and is refused once it changed. */
static void fallback(void **state, const char *mode)
{
	tu_env *env = *state;
	struct snap_live_proof p;
	struct snap_live_image *im = NULL;
	uint8_t *snap, *copy;
	size_t len;
	snap_info a;
	snap_err err;

	open_live(env, mode);
	a = take("a", NULL, env);
	assert_true(snap_live_reuse_find(snap_fs.live, &p));
	assert_int_equal(p.snap_id, a.id);
	snap = tu_image_bytes(snap_fs.store, a.id, &len);
	assert_int_equal(len, a.image_size);

	snap_err_clear(&err);
	assert_int_equal(snap_live_reuse_fallback(snap_fs.live, &p, &im, &err),
			 0);
	assert_int_equal(im->size, len);
	copy = malloc(len);
	assert_non_null(copy);
	assert_true(im->fd >= 0);
	assert_int_equal(pread(im->fd, copy, len, 0), (ssize_t)len);
	assert_memory_equal(copy + 100, snap + 100, len - 100);
	assert_memory_equal(copy, snap, 24);         /* up to the counter */
	snap_live_image_put(snap_fs.live, im);
	free(copy);
	free(snap);

	commit_row(env);
	im = NULL;
	assert_int_equal(snap_live_reuse_fallback(snap_fs.live, &p, &im, &err),
			 -ESTALE);
	assert_null(im);
}

static void test_fallback_rollback(void **state)
{
	fallback(state, "delete");
}

static void test_fallback_wal(void **state)
{
	fallback(state, "wal");
}

/* A snapshot that is gone: its proof is dropped, and the check a reader
 * makes after every read (snap_store_has) says so; another image under
 * the same id is not it either. */
static void test_drop(void **state)
{
	tu_env *env = *state;
	uint8_t other[32];
	snap_info a;
	snap_err err;

	open_live(env, "wal");
	a = take("a", NULL, env);
	assert_int_equal(reusable(), a.id);
	assert_int_equal(snap_store_has(snap_fs.store, a.id, a.sha256), 1);
	memcpy(other, a.sha256, sizeof(other));
	other[31] ^= 1;
	assert_int_equal(snap_store_has(snap_fs.store, a.id, other), 0);
	snap_live_reuse_drop(snap_fs.live, a.id + 1);
	assert_int_equal(reusable(), a.id);
	snap_err_clear(&err);
	assert_int_equal(snap_store_delete(snap_fs.store, a.id, &err), 0);
	assert_int_equal(snap_store_has(snap_fs.store, a.id, a.sha256), 0);
	snap_live_reuse_drop(snap_fs.live, a.id);
	assert_int_equal(reusable(), 0);
}

/* current.db's attributes while somebody who may write the live file's
 * directory put a symlink, to a file of theirs anyone may read and write,
 * at its name: not that file's owner, mode or size (the kernel checks
 * permissions against them: default_permissions); current.db is gone
 * for the while, and back as it was once the real file is. */
static void test_symlink_at_the_live_name(void **state)
{
	tu_env *env = *state;
	char theirs[PATH_MAX], moved[PATH_MAX];
	struct stat before, st;

	open_live(env, "delete");
	assert_int_equal(chmod(env->db, 0600), 0);
	assert_int_equal(snap_attr_current(&before), 0);
	tu_path(env, theirs, "theirs");
	tu_write_file(theirs, "x", 1);
	assert_int_equal(chmod(theirs, 0666), 0);
	if (geteuid() == 0)
		assert_int_equal(chown(theirs, 65534, 65534), 0);
	tu_path(env, moved, "moved.db");
	assert_int_equal(rename(env->db, moved), 0);
	assert_int_equal(symlink(theirs, env->db), 0);
	int rc = snap_attr_current(&st);
	if (rc == 0 && ((st.st_mode & 07777) == 0666 || st.st_size == 1 ||
			st.st_uid != before.st_uid))
		fail_msg("current.db took the symlink's target: mode %04o, "
			 "uid %u, size %lld", (unsigned)(st.st_mode & 07777),
			 (unsigned)st.st_uid, (long long)st.st_size);
	assert_int_equal(rc, -ENOENT);
	assert_int_equal(unlink(env->db), 0);
	assert_int_equal(rename(moved, env->db), 0);
	assert_int_equal(snap_attr_current(&st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, before.st_uid);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		fsu_test(test_unchanged_rollback),
		fsu_test(test_unchanged_wal),
		fsu_test(test_shrink_grow_rollback),
		fsu_test(test_shrink_grow_wal),
		fsu_test(test_during_capture_rollback),
		fsu_test(test_during_capture_wal),
		fsu_test(test_quiet),
		fsu_test(test_replaced),
		fsu_test(test_foreign_write),
		fsu_test(test_fallback_rollback),
		fsu_test(test_fallback_wal),
		fsu_test(test_drop),
		fsu_test(test_symlink_at_the_live_name),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
