/*
 * tests/unit/test_fs_session.c — edit sessions of current.db
 * (fs/staging.c) without a mount: which open joins the session and which
 * begins a new one, and what the last writer's flush, a leave and a
 * discard do to the live database.  The handles are made as the open
 * handler makes them; the store, the staging directory and the live
 * database are real (in the test's directory), the kernel is not there.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "fsutil.h"
#include "session.h"

/* The live database's journal mode for setup_store. */
static const char *setup_mode = "delete";

/* A live database of 10 rows, its store, the staging directory and the
 * daemon's view of the live database, as main.c opens them. */
static int setup_store(void **state)
{
	snap_err err;
	tu_env *env;
	int rc = tu_setup(state);

	if (rc != 0)
		return rc;
	env = *state;
	snap_err_clear(&err);
	tu_db_create(env->db, setup_mode, 4096, 10);
	if (snap_store_open(env->db, NULL, SNAP_OPEN_CREATE |
			    SNAP_OPEN_DAEMON, &snap_fs.store, &err) != 0 ||
	    snap_staging_init(snap_fs.store, snap_fs.staging_dir,
			      sizeof(snap_fs.staging_dir), &err) != 0 ||
	    snap_live_open(env->db, snap_fs.staging_dir, &snap_fs.live,
			   &err) != 0) {
		fprintf(stderr, "setup: %s\n", err.msg);
		return -1;
	}
	snap_fs.db_path = snap_store_db_path(snap_fs.store);
	return 0;
}

#define bare_test(f) fsu_test(f)
#define store_test(f) \
	cmocka_unit_test_setup_teardown(f, setup_store, fsu_teardown)

/* A read-write open of current.db without O_TRUNC: joins the session. */
static struct snap_handle *join(void)
{
	struct snap_handle *h = snap_handle_new(SNAP_H_SESSION);

	assert_non_null(h);
	assert_int_equal(snap_session_join(h), 0);
	assert_non_null(h->sess);
	return h;
}

/* RELEASE of a session handle. */
static void leave(struct snap_handle *h)
{
	snap_session_leave(h);
	snap_handle_free(h);
}

/* Is a session open, with how many writers. */
static void expect_session(int open, unsigned writers)
{
	unsigned w;
	int o, dirty;

	snap_session_describe(&o, &w, &dirty);
	assert_int_equal(o, open);
	assert_int_equal(w, writers);
}

static void test_opens_share(void **state)
{
	struct snap_handle *a, *b;

	(void)state;
	expect_session(0, 0);
	a = join();
	b = join();
	assert_ptr_equal(a->sess, b->sess);
	expect_session(1, 2);
	leave(a);
	expect_session(1, 1);
	leave(b);
	expect_session(0, 0);
}

/* An open after every handle of a session flushed begins a new session,
 * although the old handles are not released yet. */
static void test_new_after_all_flushed(void **state)
{
	struct snap_handle *a, *b, *c, *d;

	(void)state;
	a = join();
	b = join();
	assert_int_equal(snap_session_flush(a, 0), 0);
	c = join();                           /* b still open: joins */
	assert_ptr_equal(c->sess, a->sess);
	assert_int_equal(snap_session_flush(b, 0), 0);
	assert_int_equal(snap_session_flush(c, 0), 0);
	d = join();                           /* all flushed: a new one */
	assert_ptr_not_equal(d->sess, a->sess);
	expect_session(1, 1);
	/* the old session's RELEASEs leave the new one alone */
	leave(a);
	leave(b);
	leave(c);
	expect_session(1, 1);
	leave(d);
	expect_session(0, 0);
}

/* A flush counts once; a write after it makes the handle active again. */
static void test_flush_once_write_again(void **state)
{
	struct snap_handle *a, *b, *c, *d;

	(void)state;
	a = join();
	b = join();
	assert_int_equal(snap_session_flush(a, 0), 0);
	assert_int_equal(snap_session_flush(a, 0), 0);   /* dup2 + close */
	c = join();
	assert_ptr_equal(c->sess, a->sess);           /* b is active */
	assert_int_equal(snap_session_flush(b, 0), 0);
	assert_int_equal(snap_session_flush(c, 0), 0);
	snap_session_wrote(a);                        /* written again */
	d = join();
	assert_ptr_equal(d->sess, a->sess);
	expect_session(1, 4);
	leave(a);
	leave(b);
	leave(c);
	leave(d);
	expect_session(0, 0);
}

/* A child process blocked until *wfd is closed, or one already reaped
 * (wfd NULL); its pid. */
static pid_t child(int *wfd)
{
	int p[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) < 0);
	}
	close(p[0]);
	if (wfd) {
		*wfd = p[1];
		return pid;
	}
	close(p[1]);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	return pid;
}

/* A handle this process opened (as snap_attr_current_opened records). */
static struct snap_handle *join_mine(void)
{
	struct snap_handle *h = join();

	h->opener = getpid();
	return h;
}

/* A FLUSH sent by a child that inherited the descriptor (its exec or
 * exit) while this process, the opener, runs is not the handle's close;
 * this process's own is, and after it the child's count too.  When the
 * opener is gone, or the sender unknown, every FLUSH counts. */
static void test_inherited_close(void **state)
{
	struct snap_handle *a, *b;
	pid_t kid, dead;
	int wfd;

	(void)state;
	kid = child(&wfd);
	dead = child(NULL);
	a = join_mine();
	b = join();
	assert_int_equal(a->sess->active, 2);
	assert_int_equal(snap_session_flush(a, kid), 0);
	assert_int_equal(a->sess->active, 2);       /* the child's: no */
	assert_int_equal(snap_session_flush(b, 0), 0);
	assert_int_equal(a->sess->active, 1);       /* unknown sender: yes */
	assert_int_equal(snap_session_flush(a, getpid()), 0);
	assert_int_equal(a->sess->active, 0);       /* the opener's: yes */
	snap_session_wrote(a);         /* the child writes after the close */
	assert_int_equal(a->sess->active, 1);
	assert_int_equal(snap_session_flush(a, kid), 0);
	assert_int_equal(a->sess->active, 0);       /* and its close counts */
	leave(a);
	leave(b);

	a = join();                    /* opened by a process now gone */
	a->opener = dead;
	assert_int_equal(snap_session_flush(a, kid), 0);
	assert_int_equal(a->sess->active, 0);
	leave(a);

	close(wfd);
	assert_int_equal(waitpid(kid, NULL, 0), kid);
	expect_session(0, 0);
}

/* The last writer's flush applies a written edit; earlier flushes and a
 * flush of an unwritten session do not. */
static void edit_copy(tu_env *env, struct snap_handle *h, int rows)
{
	char other[PATH_MAX];
	uint8_t *bytes;
	size_t len;

	tu_path(env, other, "other.db");
	unlink(other);
	tu_db_create(other, "delete", 4096, rows);
	bytes = tu_read_file(other, &len);
	assert_int_equal(snap_session_ready(h), 0);
	assert_true(h->fd >= 0);
	assert_int_equal(ftruncate(h->fd, 0), 0);
	assert_int_equal(pwrite(h->fd, bytes, len, 0), (ssize_t)len);
	free(bytes);
	snap_session_wrote(h);
}

static void test_last_flush_applies(void **state)
{
	tu_env *env = *state;
	struct snap_handle *a, *b;

	a = join();
	b = join();
	edit_copy(env, a, 25);
	assert_int_equal(snap_session_flush(a, 0), 0);
	assert_int_equal(tu_db_rows(env->db), 10);    /* b still open */
	assert_int_equal(snap_session_flush(b, 0), 0);
	assert_int_equal(tu_db_rows(env->db), 25);
	assert_int_equal(snap_fs.restores_ok, 1);
	leave(a);
	leave(b);
	assert_int_equal(tu_db_rows(env->db), 25);
	assert_int_equal(snap_fs.restores_ok, 1);     /* applied once */
}

/* The last RELEASE applies what no flush did; a discard never does. */
static void test_leave_and_discard(void **state)
{
	tu_env *env = *state;
	struct snap_handle *a;

	a = join();
	edit_copy(env, a, 7);
	leave(a);
	assert_int_equal(tu_db_rows(env->db), 7);
	a = join();
	edit_copy(env, a, 3);
	snap_session_discard(a);
	snap_handle_free(a);
	assert_int_equal(tu_db_rows(env->db), 7);
	expect_session(0, 0);
}

/* A copy that is not a database is refused; the live one is unchanged. */
static void test_bad_edit_refused(void **state)
{
	tu_env *env = *state;
	struct snap_handle *a;

	a = join();
	assert_int_equal(snap_session_ready(a), 0);
	assert_int_equal(pwrite(a->fd, "garbage!", 8, 0), 8);
	snap_session_wrote(a);
	assert_int_not_equal(snap_session_flush(a, 0), 0);
	assert_int_equal(snap_fs.restores_failed, 1);
	assert_int_equal(tu_db_rows(env->db), 10);
	assert_true(tu_db_integrity_ok(env->db));
	leave(a);
}

static int setup_store_wal(void **state)
{
	setup_mode = "wal";
	int rc = setup_store(state);
	setup_mode = "delete";
	return rc;
}

/*
 * An edit applied to a WAL database keeps the locks this process's other
 * connections hold on it: the daemon reads the live page size through
 * SQLite, not with a descriptor of its own whose close() dropped every
 * lock of the process on the file (engine/PITFALLS.md 2; here a reader's
 * SHARED lock, as the session's watch connection holds one).
 */
static void test_apply_keeps_the_daemons_locks(void **state)
{
	tu_env *env = *state;
	struct snap_handle *a;
	sqlite3 *r = tu_open(env->db);

	tu_exec(r, "BEGIN");
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), 10);
	assert_true(tu_reader_lock_held(env->db));
	a = join();
	edit_copy(env, a, 25);
	assert_int_equal(snap_session_flush(a, 0), 0);
	assert_int_equal(snap_fs.restores_ok, 1);
	if (!tu_reader_lock_held(env->db))
		fail_msg("applying the edit dropped this process's read lock "
			 "on the live database");
	assert_int_equal(tu_query_int(r, "SELECT count(*) FROM t"), 10);
	tu_exec(r, "COMMIT");
	sqlite3_close(r);
	leave(a);
	assert_int_equal(tu_db_rows(env->db), 25);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		bare_test(test_opens_share),
		bare_test(test_new_after_all_flushed),
		bare_test(test_flush_once_write_again),
		bare_test(test_inherited_close),
		store_test(test_last_flush_applies),
		store_test(test_leave_and_discard),
		store_test(test_bad_edit_refused),
		cmocka_unit_test_setup_teardown(
			test_apply_keeps_the_daemons_locks, setup_store_wal,
			fsu_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
