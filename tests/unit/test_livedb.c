/*
 * tests/unit/test_livedb.c — engine/livedb.h, the one opener of the live
 * database: read-only and read-write connections; a missing file is never
 * created (the error names the path); a symlink is refused unless the
 * caller opens a file it was named (SNAP_LIVEDB_FOLLOW); the busy policy
 * waits for a writer that holds the lock and then succeeds, the watch
 * policy gives up sooner than the work policy, and no-wait does not wait;
 * data_version notices another connection's commit (and only that); page
 * 1 normalized as every image has it; a directory of the live file
 * renamed away and replaced (by a symlink or another directory) by
 * whoever may write its parent redirects no open, SQLite's later opens of
 * the journal included.
 *
 * The busy handler's sleep is usleep(), wrapped here (-Wl,--wrap=usleep,
 * tests/unit/meson.build): every call is counted, the first one of a test
 * posts a semaphore a releasing thread waits on (the signal that the
 * opener is waiting, no sleep for readiness), and with `fast` set the
 * wrapper returns at once, so a policy's whole patience is counted in
 * tries, never measured in time.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "livedb.h"

/* ---- the wrapped usleep ------------------------------------------------ */

int __real_usleep(useconds_t us);
int __wrap_usleep(useconds_t us);

static struct {
	unsigned long calls;   /* atomic */
	int fast;              /* return at once */
	sem_t waiting;         /* posted on the first call */
} W;

int __wrap_usleep(useconds_t us)
{
	if (__atomic_fetch_add(&W.calls, 1, __ATOMIC_SEQ_CST) == 0)
		sem_post(&W.waiting);
	if (__atomic_load_n(&W.fast, __ATOMIC_SEQ_CST))
		return 0;
	return __real_usleep(us);
}

/* Forget the counts of an earlier test. */
static void wait_reset(int fast)
{
	__atomic_store_n(&W.calls, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&W.fast, fast, __ATOMIC_SEQ_CST);
	sem_destroy(&W.waiting);
	assert_int_equal(sem_init(&W.waiting, 0, 0), 0);
}

static unsigned long wait_calls(void)
{
	return __atomic_load_n(&W.calls, __ATOMIC_SEQ_CST);
}

/* ---- helpers ----------------------------------------------------------- */

/* A connection holding the live database's exclusive lock (rollback
 * mode) with row `id` inserted, uncommitted. */
static sqlite3 *hold_write_lock(const char *path, int id)
{
	sqlite3 *w = tu_open(path);

	tu_exec(w, "BEGIN EXCLUSIVE");
	tu_exec(w, "INSERT INTO t(id, v) VALUES (%d, 'held')", id);
	return w;
}

/* The releasing thread: once the opener waits, commit. */
static void *release_when_waiting(void *arg)
{
	sqlite3 *w = arg;

	while (sem_wait(&W.waiting) != 0 && errno == EINTR)
		;
	tu_exec(w, "COMMIT");
	return NULL;
}

/* ---- tests ------------------------------------------------------------- */

static void test_opens_read_only_and_read_write(void **state)
{
	tu_env *env = *state;
	sqlite3 *db = NULL;
	snap_err e;

	tu_db_create(env->db, "delete", 4096, 3);
	snap_err_clear(&e);
	assert_int_equal(snap_livedb_open(env->db, SNAP_LIVEDB_RO, NULL, &db,
					  &e), 0);
	assert_int_equal(sqlite3_db_readonly(db, "main"), 1);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM t", NULL, NULL, NULL)
			 & 0xff, SQLITE_READONLY);
	sqlite3_close(db);
	assert_int_equal(tu_db_rows(env->db), 3);

	assert_int_equal(snap_livedb_open(env->db, SNAP_LIVEDB_RW, NULL, &db,
					  &e), 0);
	assert_int_equal(sqlite3_db_readonly(db, "main"), 0);
	tu_exec(db, "DELETE FROM t WHERE id = 1");
	sqlite3_close(db);
	assert_int_equal(tu_db_rows(env->db), 2);

	/* The daemon's form: read-write when the file allows it. */
	assert_int_equal(snap_livedb_open(env->db, SNAP_LIVEDB_DAEMON, NULL,
					  &db, &e), 0);
	assert_int_equal(sqlite3_db_readonly(db, "main"), 0);
	sqlite3_close(db);
}

/* A FIFO at the live name (planted by whoever may write its directory)
 * is refused at once in every mode, never opened or read (a read would
 * block for good). */
static void test_a_fifo_is_refused_not_waited_on(void **state)
{
	tu_env *env = *state;
	static const int modes[] = { SNAP_LIVEDB_RO, SNAP_LIVEDB_RW,
				     SNAP_LIVEDB_DAEMON };
	sqlite3 *db = NULL;
	snap_err e;
	size_t i;

	assert_int_equal(mkfifo(env->db, 0666), 0);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snap_err_clear(&e);
		int rc = snap_livedb_open(env->db, modes[i], NULL, &db, &e);
		if (rc == 0) {
			sqlite3_close(db);
			fail_msg("mode %d opened a FIFO", modes[i]);
		}
		assert_null(db);
		assert_true(e.msg[0] != '\0');
	}
}

static void test_never_creates_a_missing_database(void **state)
{
	tu_env *env = *state;
	static const int modes[] = { SNAP_LIVEDB_RO, SNAP_LIVEDB_RW,
				     SNAP_LIVEDB_DAEMON };
	static int not_a_db;
	size_t i;

	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		sqlite3 *db = (sqlite3 *)(void *)&not_a_db;
		snap_err e;

		snap_err_clear(&e);
		assert_int_equal(snap_livedb_open(env->db, modes[i], NULL, &db,
						  &e), -ENOENT);
		assert_null(db);
		assert_non_null(strstr(e.msg, env->db));
		assert_non_null(strstr(e.msg, "no such file"));
		assert_false(tu_exists(env->db));
	}
}

static void test_refuses_a_symlink(void **state)
{
	tu_env *env = *state;
	char link[PATH_MAX], dirlink[PATH_MAX], via[PATH_MAX + 16];
	uint8_t before[32], after[32];
	sqlite3 *db = NULL;
	snap_err e;

	tu_db_create(env->db, "delete", 4096, 3);
	tu_sha256_file(env->db, before);
	tu_path(env, link, "link.db");
	assert_int_equal(symlink(env->db, link), 0);
	snap_err_clear(&e);
	assert_int_equal(snap_livedb_open(link, SNAP_LIVEDB_RW, NULL, &db, &e),
			 -ELOOP);
	assert_null(db);
	assert_non_null(strstr(e.msg, link));
	assert_non_null(strstr(e.msg, "symbolic link"));
	/* Read-write-or-read-only does not fall back to following it. */
	assert_int_equal(snap_livedb_open(link, SNAP_LIVEDB_DAEMON, NULL, &db,
					  &e), -ELOOP);
	assert_null(db);

	/* A symlink higher up the path counts as well. */
	tu_path(env, dirlink, "dirlink");
	assert_int_equal(symlink(env->dir, dirlink), 0);
	snprintf(via, sizeof(via), "%s/live.db", dirlink);
	assert_int_equal(snap_livedb_open(via, SNAP_LIVEDB_RO, NULL, &db, &e),
			 -ELOOP);
	assert_null(db);
	tu_sha256_file(env->db, after);
	assert_memory_equal(before, after, 32);

	/* A file a user named for an import may be a link. */
	assert_int_equal(snap_livedb_open(link, SNAP_LIVEDB_RO |
					  SNAP_LIVEDB_FOLLOW, NULL, &db, &e), 0);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM t"), 3);
	sqlite3_close(db);
}

static void test_busy_policy_waits_for_a_writer_then_succeeds(void **state)
{
	tu_env *env = *state;
	static const int modes[] = { SNAP_LIVEDB_RO, SNAP_LIVEDB_RW,
				     SNAP_LIVEDB_RW | SNAP_LIVEDB_SHORT };
	size_t i;

	tu_db_create(env->db, "delete", 4096, 3);
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		sqlite3 *db = NULL, *w;
		pthread_t th;
		snap_err e;
		int id = 100 + (int)i;

		snap_err_clear(&e);
		assert_int_equal(snap_livedb_open(env->db, modes[i], NULL, &db,
						  &e), 0);
		wait_reset(0);
		w = hold_write_lock(env->db, id);
		assert_int_equal(pthread_create(&th, NULL,
						release_when_waiting, w), 0);
		/* Refused at first (the exclusive lock), waited in the
		 * handler, and read after the writer's commit. */
		assert_int_equal(tu_query_int(db, "SELECT count(*) FROM t "
					      "WHERE id = %d", id), 1);
		assert_int_equal(pthread_join(th, NULL), 0);
		assert_true(wait_calls() >= 1);
		sqlite3_close(w);
		sqlite3_close(db);
	}
}

/* Run data_version on db against a lock held forever; its result. */
static int busy_forever(sqlite3 *db, const char *path)
{
	sqlite3 *w = hold_write_lock(path, 500);
	int64_t dv;
	uint64_t size;
	int rc = snap_livedb_data_version(db, &dv, &size);

	tu_exec(w, "ROLLBACK");
	sqlite3_close(w);
	return rc;
}

static void test_wait_policies_give_up_in_order(void **state)
{
	tu_env *env = *state;
	sqlite3 *db = NULL;
	unsigned long work, watch;
	snap_err e;

	tu_db_create(env->db, "delete", 4096, 3);
	snap_err_clear(&e);

	/* The work policy, with the sleeps skipped: its tries counted. */
	assert_int_equal(snap_livedb_open(env->db, SNAP_LIVEDB_RW, NULL, &db,
					  &e), 0);
	wait_reset(1);
	assert_int_equal(busy_forever(db, env->db), -EBUSY);
	work = wait_calls();

	/* No wait: refused without one try of the handler. */
	snap_livedb_busy_set(db, SNAP_LIVEDB_NOWAIT);
	wait_reset(1);
	assert_int_equal(busy_forever(db, env->db), -EBUSY);
	assert_int_equal(wait_calls(), 0);
	sqlite3_close(db);

	/* The watch policy gives up well before the work policy. */
	assert_int_equal(snap_livedb_open(env->db, SNAP_LIVEDB_RW |
					  SNAP_LIVEDB_SHORT, NULL, &db, &e), 0);
	wait_reset(1);
	assert_int_equal(busy_forever(db, env->db), -EBUSY);
	watch = wait_calls();
	assert_true(watch > 0);
	assert_true(watch * 5 < work);

	/* And set back to the work policy, it waits as long again. */
	snap_livedb_busy_set(db, SNAP_LIVEDB_WAIT);
	wait_reset(1);
	assert_int_equal(busy_forever(db, env->db), -EBUSY);
	assert_int_equal(wait_calls(), work);
	sqlite3_close(db);
	wait_reset(0);
}

static void test_data_version_notices_another_commit(void **state)
{
	tu_env *env = *state;
	const char *modes[] = { "delete", "wal" };
	size_t i;

	for (i = 0; i < 2; i++) {
		sqlite3 *db = NULL, *w;
		int64_t dv0, dv1, dv2;
		uint64_t size;
		snap_err e;

		unlink(env->db);
		tu_db_create(env->db, modes[i], 4096, 3);
		snap_err_clear(&e);
		assert_int_equal(snap_livedb_open(env->db, SNAP_LIVEDB_RO,
						  NULL, &db, &e), 0);
		assert_int_equal(snap_livedb_data_version(db, &dv0, &size), 0);
		assert_int_equal(size, (uint64_t)tu_query_int(db,
				 "PRAGMA page_count") * 4096);
		assert_int_equal(snap_livedb_data_version(db, &dv1, NULL), 0);
		assert_true(dv1 == dv0);   /* nothing committed */

		w = tu_open(env->db);
		tu_db_insert(w, 10, 2000);
		assert_int_equal(snap_livedb_data_version(db, &dv2, &size), 0);
		assert_true(dv2 != dv1);
		assert_int_equal(size, (uint64_t)tu_query_int(w,
				 "PRAGMA page_count") * 4096);
		sqlite3_close(w);
		sqlite3_close(db);
	}
}

static void test_page1_normalized_as_every_image_has_it(void **state)
{
	tu_env *env = *state;
	unsigned char hdr[100];
	uint32_t v = (uint32_t)sqlite3_libversion_number();
	sqlite3 *db;

	tu_db_create(env->db, "wal", 4096, 50);
	db = tu_open(env->db);
	tu_db_insert(db, 100, 200);   /* counters move */
	sqlite3_close(db);
	{
		size_t len;
		uint8_t *all = tu_read_file(env->db, &len);

		assert_true(len >= sizeof(hdr));
		memcpy(hdr, all, sizeof(hdr));
		free(all);
	}
	assert_int_equal(hdr[18], 2);
	snap_livedb_page1_normalize(hdr, 77);
	assert_int_equal(hdr[18], 1);
	assert_int_equal(hdr[19], 1);
	assert_memory_equal(hdr + 24, "\0\0\0\1", 4);   /* change counter */
	assert_memory_equal(hdr + 28, "\0\0\0\x4d", 4); /* 77 pages */
	assert_memory_equal(hdr + 40, "\0\0\0\1", 4);   /* schema cookie */
	assert_memory_equal(hdr + 92, "\0\0\0\1", 4);   /* valid-for */
	assert_int_equal(((uint32_t)hdr[96] << 24 | (uint32_t)hdr[97] << 16 |
			  (uint32_t)hdr[98] << 8 | hdr[99]), v);
}

/*
 * Whoever may write the parent of the live database's directory renames
 * that directory away and puts a symlink to their own directory, holding
 * another live.db, at its name.  A connection opened before writes on: its
 * journal (which SQLite opens by name at each write) stays in the real
 * directory, nothing is created in theirs, the commit lands in the real
 * file; a new open through the symlink is refused.  (By name, SQLite
 * notices the file at the name is not its own and refuses the write,
 * SQLITE_READONLY_DBMOVED; a swap between that check and the journal's
 * open would redirect the journal.)
 */
static void test_a_directory_swapped_for_a_symlink_redirects_nothing(
	void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX], db[PATH_MAX], real[PATH_MAX], other[PATH_MAX];
	char path[PATH_MAX];
	sqlite3 *c = NULL;
	snap_err e;

	tu_db_in_subdir(env, "app", dir, db, 3);
	tu_path(env, real, "app.real");
	tu_path(env, other, "theirs");
	assert_int_equal(mkdir(other, 0777), 0);
	snprintf(path, sizeof(path), "%s/live.db", other);
	tu_db_create(path, "delete", 4096, 7);

	snap_err_clear(&e);
	assert_int_equal(snap_livedb_open(db, SNAP_LIVEDB_RW, NULL, &c, &e), 0);
	tu_exec(c, "PRAGMA journal_mode=PERSIST");   /* the journal stays */
	assert_int_equal(rename(dir, real), 0);
	assert_int_equal(symlink(other, dir), 0);

	tu_exec(c, "DELETE FROM t WHERE id = 1");
	sqlite3_close(c);
	snprintf(path, sizeof(path), "%s/live.db-journal", other);
	if (tu_exists(path))
		fail_msg("the journal was created in the directory the "
			 "symlink leads to: %s", path);
	snprintf(path, sizeof(path), "%s/live.db-journal", real);
	assert_true(tu_exists(path));
	snprintf(path, sizeof(path), "%s/live.db", real);
	assert_int_equal(tu_db_rows(path), 2);
	snprintf(path, sizeof(path), "%s/live.db", other);
	assert_int_equal(tu_db_rows(path), 7);

	snap_err_clear(&e);
	assert_int_equal(snap_livedb_open(db, SNAP_LIVEDB_RW, NULL, &c, &e),
			 -ELOOP);
	assert_null(c);
	assert_non_null(strstr(e.msg, db));
}

/*
 * The same with another directory (theirs, holding another live.db) put
 * at the name instead of a symlink: no symlink anywhere, so only the
 * directory's identity tells it apart.  An open is refused (-EPERM,
 * saying why), never made on their file; once the real directory is back
 * at its name, opens work again.
 */
static void test_a_directory_replaced_by_another_is_refused(void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX], db[PATH_MAX], real[PATH_MAX], path[PATH_MAX];
	sqlite3 *c = NULL;
	snap_err e;

	tu_db_in_subdir(env, "app", dir, db, 3);
	tu_path(env, real, "app.real");
	snap_err_clear(&e);
	assert_int_equal(snap_livedb_open(db, SNAP_LIVEDB_RW, NULL, &c, &e), 0);
	sqlite3_close(c);

	assert_int_equal(rename(dir, real), 0);
	assert_int_equal(mkdir(dir, 0777), 0);
	tu_db_create(db, "delete", 4096, 7);
	for (int mode = SNAP_LIVEDB_RO; mode <= SNAP_LIVEDB_RW_OR_RO; mode++) {
		c = NULL;
		snap_err_clear(&e);
		int rc = snap_livedb_open(db, mode, NULL, &c, &e);
		if (rc == 0) {
			sqlite3_close(c);
			fail_msg("mode %d opened the file of the directory put "
				 "at the name", mode);
		}
		assert_int_equal(rc, -EPERM);
		assert_non_null(strstr(e.msg, db));
		assert_non_null(strstr(e.msg, "renamed or replaced"));
	}
	assert_int_equal(tu_db_rows(db), 7);

	/* Theirs moved away, the real one back: it opens again. */
	snprintf(path, sizeof(path), "%s.theirs", dir);
	assert_int_equal(rename(dir, path), 0);
	assert_int_equal(rename(real, dir), 0);
	snap_err_clear(&e);
	assert_int_equal(snap_livedb_open(db, SNAP_LIVEDB_RW, NULL, &c, &e), 0);
	sqlite3_close(c);
	assert_int_equal(tu_db_rows(db), 3);
}

/* A relative name opens (its directory kept under its absolute name),
 * and a later chdir does not make it another directory's. */
static void test_a_relative_name_opens(void **state)
{
	tu_env *env = *state;
	char cwd[PATH_MAX], sub[PATH_MAX], db[PATH_MAX];
	sqlite3 *c = NULL;
	snap_err e;

	tu_db_create(env->db, "delete", 4096, 3);
	tu_path(env, sub, "sub");
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(db, sizeof(db), "%s/live.db", sub);
	tu_db_create(db, "delete", 4096, 5);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(env->dir), 0);
	snap_err_clear(&e);
	int rc = snap_livedb_open("live.db", SNAP_LIVEDB_RO, NULL, &c, &e);
	if (rc == 0) {
		assert_int_equal(tu_query_int(c, "SELECT count(*) FROM t"), 3);
		sqlite3_close(c);
	}
	assert_int_equal(chdir(sub), 0);
	if (rc == 0) {
		rc = snap_livedb_open("live.db", SNAP_LIVEDB_RO, NULL, &c, &e);
		if (rc == 0) {
			assert_int_equal(tu_query_int(c, "SELECT count(*) "
						      "FROM t"), 5);
			sqlite3_close(c);
		}
	}
	assert_int_equal(chdir(cwd), 0);
	if (rc != 0)
		fail_msg("a relative name: %d %s", rc, e.msg);
}

/* SQLite's open(): before the first -shm, the directory of the file
 * (swap.dir) is renamed away and a symlink to swap.other put at its
 * name, as whoever may write its parent could. */
static struct {
	int (*prev)(const char *, int, int);
	char dir[PATH_MAX], real[PATH_MAX], other[PATH_MAX];
	int done;
} swap;

static int swap_open(const char *path, int flags, int mode)
{
	size_t n = strlen(path);

	if (!swap.done && n > 4 && !strcmp(path + n - 4, "-shm")) {
		swap.done = 1;
		if (rename(swap.dir, swap.real) != 0 ||
		    symlink(swap.other, swap.dir) != 0)
			swap.done = -1;
	}
	return swap.prev(path, flags, mode);
}

/* A WAL database at db with rows left in its -wal and no -shm: a reader
 * must make one. */
static void wal_db_without_shm(const char *db)
{
	char path[PATH_MAX];
	sqlite3 *w;

	tu_db_create(db, "wal", 4096, 3);
	w = tu_open(db);
	assert_int_equal(sqlite3_db_config(w, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
					   1, NULL), SQLITE_OK);
	tu_exec(w, "INSERT INTO t(id, v) VALUES (100, 'in the wal')");
	sqlite3_close(w);
	snprintf(path, sizeof(path), "%s-shm", db);
	unlink(path);
}

/* count(*) of t on c, with swap_open as SQLite's open() meanwhile. */
static int64_t count_swapping(sqlite3 *c)
{
	sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
	int64_t rows;

	swap.done = 0;
	swap.prev = (int (*)(const char *, int, int))
		    unix_vfs->xGetSystemCall(unix_vfs, "open");
	assert_int_equal(unix_vfs->xSetSystemCall(unix_vfs, "open",
			 (sqlite3_syscall_ptr)swap_open), SQLITE_OK);
	rows = tu_query_int(c, "SELECT count(*) FROM t");
	unix_vfs->xSetSystemCall(unix_vfs, "open",
				 (sqlite3_syscall_ptr)swap.prev);
	return rows;
}

/*
 * A WAL database a user named (an import: SNAP_LIVEDB_FOLLOW) whose
 * directory is swapped for a symlink between the open and SQLite's open
 * of its -shm (created as root and given the file's owner): the -shm is
 * made beside the file, nothing in the directory the link leads to.
 */
static void test_an_import_makes_its_shm_beside_it(void **state)
{
	tu_env *env = *state;
	char db[PATH_MAX], path[PATH_MAX];
	sqlite3 *c = NULL;
	snap_err e;

	tu_path(env, swap.dir, "theirs-parent");
	tu_path(env, swap.real, "moved");
	tu_path(env, swap.other, "elsewhere");
	assert_int_equal(mkdir(swap.dir, 0755), 0);
	assert_int_equal(mkdir(swap.other, 0777), 0);
	snprintf(db, sizeof(db), "%s/w.db", swap.dir);
	wal_db_without_shm(db);

	snap_err_clear(&e);
	assert_int_equal(snap_livedb_open(db, SNAP_LIVEDB_RO |
					  SNAP_LIVEDB_FOLLOW, NULL, &c, &e), 0);
	int64_t rows = count_swapping(c);
	sqlite3_close(c);
	assert_int_equal(swap.done, 1);
	snprintf(path, sizeof(path), "%s/w.db-shm", swap.other);
	if (tu_exists(path))
		fail_msg("the -shm was made where the link leads: %s", path);
	assert_int_equal(rows, 4);
}

/*
 * The same import when this process already keeps the file's directory
 * and that one was renamed away and another put at its name: the anchor
 * is refused (ESTALE), and the open must not go on by name, where the
 * swap before the first -shm makes root create it where the link leads.
 */
static void test_an_import_whose_anchor_is_refused_is_refused(void **state)
{
	tu_env *env = *state;
	char db[PATH_MAX], path[PATH_MAX], kept[PATH_MAX], out[PATH_MAX + 32];
	sqlite3 *c = NULL;
	snap_err e;
	int rc;

	tu_path(env, swap.dir, "stale-parent");
	tu_path(env, swap.real, "stale-moved");
	tu_path(env, swap.other, "stale-elsewhere");
	tu_path(env, kept, "stale-first");
	assert_int_equal(mkdir(swap.dir, 0755), 0);
	assert_int_equal(mkdir(swap.other, 0777), 0);
	/* This process keeps swap.dir; it is then renamed away (alive). */
	snprintf(db, sizeof(db), "%s/w.db", swap.dir);
	snap_err_clear(&e);
	assert_int_equal(snap_livedb_path(db, out, sizeof(out), &e), 0);
	assert_int_equal(rename(swap.dir, kept), 0);
	assert_int_equal(mkdir(swap.dir, 0755), 0);
	wal_db_without_shm(db);

	snap_err_clear(&e);
	rc = snap_livedb_open(db, SNAP_LIVEDB_RO | SNAP_LIVEDB_FOLLOW, NULL,
			      &c, &e);
	if (rc == 0) {
		count_swapping(c);
		sqlite3_close(c);
		snprintf(path, sizeof(path), "%s/w.db-shm", swap.other);
		if (tu_exists(path))
			fail_msg("the -shm was made where the link leads: %s",
				 path);
		fail_msg("opened by name in a directory its anchor refused");
	}
	assert_int_equal(rc, -EPERM);
	assert_non_null(strstr(e.msg, "not the one this process first"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_opens_read_only_and_read_write),
		tu_test(test_never_creates_a_missing_database),
		tu_test(test_refuses_a_symlink),
		tu_test(test_busy_policy_waits_for_a_writer_then_succeeds),
		tu_test(test_wait_policies_give_up_in_order),
		tu_test(test_data_version_notices_another_commit),
		tu_test(test_page1_normalized_as_every_image_has_it),
		tu_test(test_a_fifo_is_refused_not_waited_on),
		tu_test(test_a_directory_swapped_for_a_symlink_redirects_nothing),
		tu_test(test_a_directory_replaced_by_another_is_refused),
		tu_test(test_a_relative_name_opens),
		tu_test(test_an_import_makes_its_shm_beside_it),
		tu_test(test_an_import_whose_anchor_is_refused_is_refused),
	};

	if (sem_init(&W.waiting, 0, 0) != 0)
		return 1;
	return cmocka_run_group_tests_name("livedb", tests, NULL, NULL);
}
