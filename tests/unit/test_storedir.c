/*
 * tests/unit/test_storedir.c — engine/storedir.c and engine/anchor.c: the
 * store's directory and files are never redirected, read or planted by
 * another user; the store is private; it is read without writing on a
 * read-only or full filesystem; a lost catalog is refused; deleting
 * snapshots gives space back.
 *
 * Tests that need root (chown to another user, mounting a tmpfs) skip
 * themselves otherwise.  A tmpfs is always unmounted in the teardown, even
 * when the test failed.
 */
#include "testutil.h"
#include "store_int.h"   /* snap_store_restore_lock */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define TU_NOBODY 65534

/* Entries in a directory, "." and ".." not counted (-1: cannot read). */
static int entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		fail_msg("lstat %s: %s", path, strerror(errno));
	return st.st_mode & 07777;
}

static int is_link(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static off_t size_of(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		fail_msg("stat %s: %s", path, strerror(errno));
	return st.st_size;
}

/* Open with flags; the rc, the store in *st (or NULL), the message. */
static int open_store(const char *db, const char *dir, unsigned flags,
		      snap_store **st, snap_err *e)
{
	snap_err_clear(e);
	*st = NULL;
	return snap_store_open(db, dir, flags, st, e);
}

/* A store for env->db with one snapshot, closed again. */
static void make_store(tu_env *env, const char *dir)
{
	snap_store *st = NULL;
	snap_err e;

	tu_db_create(env->db, "delete", 4096, 50);
	if (open_store(env->db, dir, SNAP_OPEN_CREATE, &st, &e) != 0)
		fail_msg("create store: %s", e.msg);
	tu_snap(st, "first");
	snap_store_close(st);
}

static int skip_unless_root(void)
{
	if (geteuid() == 0)
		return 0;
	print_message("# needs root; skipped\n");
	skip();
	return 1;
}

/* ---- the directory ------------------------------------------------------ */

static void test_a_symlinked_store_dir_is_refused_and_its_target_untouched(
	void **state)
{
	tu_env *env = *state;
	char real[PATH_MAX], def[PATH_MAX], link[PATH_MAX];
	snap_store *st;
	snap_err e;

	tu_db_create(env->db, "delete", 4096, 10);
	assert_int_equal(mkdir(tu_path(env, real, "theirs"), 0777), 0);
	snprintf(def, sizeof(def), "%s.snapfs", env->db);
	assert_int_equal(symlink(real, def), 0);
	assert_int_equal(open_store(env->db, NULL, SNAP_OPEN_CREATE, &st, &e),
			 -ELOOP);
	assert_null(st);
	assert_non_null(strstr(e.msg, "symbolic link"));
	assert_non_null(strstr(e.msg, def));
	/* -o store=LINK as well. */
	assert_int_equal(symlink(real, tu_path(env, link, "link")), 0);
	assert_int_equal(open_store(env->db, link, SNAP_OPEN_CREATE |
				    SNAP_OPEN_DAEMON, &st, &e), -ELOOP);
	assert_int_equal(entries(real), 0);
	assert_int_equal(mode_of(real), 0777 & ~022);
}

static void test_a_store_dir_of_another_user_is_refused(void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX];
	snap_store *st;
	snap_err e;

	if (skip_unless_root())
		return;
	tu_db_create(env->db, "delete", 4096, 10);
	assert_int_equal(mkdir(tu_path(env, dir, "store"), 0700), 0);
	assert_int_equal(chown(dir, TU_NOBODY, TU_NOBODY), 0);
	assert_int_equal(open_store(env->db, dir, SNAP_OPEN_CREATE |
				    SNAP_OPEN_DAEMON, &st, &e), -EPERM);
	assert_null(st);
	assert_non_null(strstr(e.msg, "65534"));
	assert_non_null(strstr(e.msg, dir));
	assert_int_equal(entries(dir), 0);
	/* Reading it is refused as well. */
	assert_int_equal(open_store(env->db, dir, SNAP_OPEN_READONLY, &st, &e),
			 -EPERM);
}

static void test_store_files_are_private_on_an_existing_0755_dir(
	void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX], f[PATH_MAX + 32];
	snap_store *st;
	snap_err e;

	umask(022);
	tu_db_create(env->db, "delete", 4096, 100);
	assert_int_equal(mkdir(tu_path(env, dir, "store"), 0755), 0);
	assert_int_equal(mode_of(dir), 0755);
	assert_int_equal(open_store(env->db, dir, SNAP_OPEN_CREATE, &st, &e),
			 0);
	tu_snap(st, "one");
	/* While it is open, SQLite's side files exist too. */
	assert_int_equal(mode_of(dir), 0700);
	static const char *const names[] = { "store.db", "store.db-wal",
		"store.db-shm", "restore.lock" };
	for (size_t i = 0; i < 4; i++) {
		snprintf(f, sizeof(f), "%s/%s", dir, names[i]);
		if (tu_exists(f) && mode_of(f) != 0600)
			fail_msg("%s has mode %04o", f, (unsigned)mode_of(f));
	}
	snap_store_close(st);

	/* A store someone widened is tightened at the next open. */
	snprintf(f, sizeof(f), "%s/store.db", dir);
	assert_int_equal(chmod(f, 0644), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(open_store(env->db, dir, SNAP_OPEN_READONLY, &st, &e),
			 0);
	assert_int_equal(mode_of(dir), 0700);
	assert_int_equal(mode_of(f), 0600);
	snap_store_close(st);
}

static void test_a_shared_dir_is_refused_not_tightened(void **state)
{
	/* --store pointing at a directory with other people's files (a home
	 * directory, /tmp) is refused, never chmod'ed. */
	tu_env *env = *state;
	char dir[PATH_MAX], notes[PATH_MAX], tmp[PATH_MAX];
	snap_store *st;
	snap_err e;

	tu_db_create(env->db, "delete", 4096, 10);
	assert_int_equal(mkdir(tu_path(env, dir, "home"), 0755), 0);
	tu_write_file(tu_path(env, notes, "home/notes.txt"), "hi\n", 3);
	assert_int_equal(open_store(env->db, dir, SNAP_OPEN_CREATE, &st, &e),
			 -EPERM);
	assert_non_null(strstr(e.msg, "not the store's"));
	assert_int_equal(mode_of(dir), 0755);
	assert_int_equal(entries(dir), 1);

	assert_int_equal(mkdir(tu_path(env, tmp, "tmp"), 0700), 0);
	assert_int_equal(chmod(tmp, 01777), 0);
	tu_write_file(tu_path(env, notes, "tmp/x"), "x", 1);
	assert_int_equal(open_store(env->db, tmp, SNAP_OPEN_CREATE, &st, &e),
			 -EPERM);
	assert_non_null(strstr(e.msg, "every user"));
	assert_int_equal(mode_of(tmp), 01777);
}

/* ---- files in it -------------------------------------------------------- */

static void test_planted_links_in_the_store_are_never_followed(void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX], victim[PATH_MAX], vdir[PATH_MAX], keep[PATH_MAX];
	char lock[PATH_MAX + 32], fresh[PATH_MAX], other[PATH_MAX];
	char path[PATH_MAX];
	snap_store *st;
	snap_err e;
	int fd;

	make_store(env, NULL);
	snprintf(dir, sizeof(dir), "%s.snapfs", env->db);
	tu_write_file(tu_path(env, victim, "victim"), "precious\n", 9);
	assert_int_equal(mkdir(tu_path(env, vdir, "victimdir"), 0755), 0);
	tu_write_file(tu_path(env, keep, "victimdir/keep"), "keep\n", 5);

	/* daemon.lock -> victim: the daemon would truncate it and write its
	 * pid there. */
	snprintf(lock, sizeof(lock), "%s/daemon.lock", dir);
	assert_int_equal(symlink(victim, lock), 0);
	assert_int_equal(open_store(env->db, NULL, SNAP_OPEN_CREATE |
				    SNAP_OPEN_DAEMON, &st, &e), -ELOOP);
	assert_non_null(strstr(e.msg, "daemon.lock"));
	assert_true(is_link(lock));
	size_t len;
	uint8_t *b = tu_read_file(victim, &len);
	assert_int_equal(len, 9);
	assert_memory_equal(b, "precious\n", 9);
	free(b);
	assert_int_equal(unlink(lock), 0);

	/* restore.lock -> a file that does not exist yet: never created. */
	snprintf(lock, sizeof(lock), "%s/restore.lock", dir);
	unlink(lock);
	assert_int_equal(symlink(tu_path(env, fresh, "created"), lock), 0);
	assert_int_equal(open_store(env->db, NULL, 0, &st, &e), 0);
	env->st = st;
	snap_err_clear(&e);
	fd = -1;
	assert_int_equal(snap_store_restore_lock(st, &fd, &e), -ELOOP);
	assert_false(tu_exists(fresh));

	/* staging -> a directory of someone else's: not emptied, not
	 * chmod'ed, refused. */
	snprintf(lock, sizeof(lock), "%s/staging", dir);
	assert_int_equal(symlink(vdir, lock), 0);
	snap_err_clear(&e);
	assert_int_equal(snap_storedir_sub_open(st, "staging", path,
						sizeof(path), &e), -ELOOP);
	assert_non_null(strstr(e.msg, "staging"));
	assert_true(tu_exists(keep));
	assert_int_equal(mode_of(vdir), 0755);
	snap_store_close(st);
	env->st = NULL;
	assert_int_equal(unlink(lock), 0);

	/* store.db -> another store: never opened through the link. */
	snprintf(lock, sizeof(lock), "%s/store.db", dir);
	tu_path(env, other, "other");
	{
		snap_store *o = NULL;
		assert_int_equal(open_store(env->db, other, SNAP_OPEN_CREATE,
					    &o, &e), 0);
		snap_store_close(o);
	}
	assert_int_equal(rename(lock, tu_path(env, path, "kept.db")), 0);
	snprintf(path, sizeof(path), "%s/store.db", other);
	assert_int_equal(symlink(path, lock), 0);
	assert_int_equal(open_store(env->db, NULL, 0, &st, &e), -ELOOP);
	assert_non_null(strstr(e.msg, "store.db"));
	assert_int_equal(unlink(lock), 0);

	/* And SQLite's side files. */
	assert_int_equal(rename(tu_path(env, path, "kept.db"), lock), 0);
	snprintf(lock, sizeof(lock), "%s/store.db-wal", dir);
	assert_int_equal(symlink(victim, lock), 0);
	assert_int_equal(open_store(env->db, NULL, SNAP_OPEN_READONLY, &st,
				    &e), -ELOOP);
	b = tu_read_file(victim, &len);
	assert_int_equal(len, 9);
	free(b);
}

/* A hard link planted under a store file's name (while the directory was
 * writable by others) to a file of the same owner: never written through,
 * never chmod'ed. */
static void test_planted_hard_links_in_the_store_are_refused(void **state)
{
	tu_env *env = *state;
	static const char *const names[] = { "daemon.lock", "store.db-wal" };
	char victim[PATH_MAX], lock[PATH_MAX + 32];
	snap_store *st;
	snap_err e;
	size_t len, i;

	make_store(env, NULL);
	tu_write_file(tu_path(env, victim, "victim"), "precious\n", 9);
	assert_int_equal(chmod(victim, 0644), 0);
	for (i = 0; i < 2; i++) {
		snprintf(lock, sizeof(lock), "%s.snapfs/%s", env->db, names[i]);
		unlink(lock);
		assert_int_equal(link(victim, lock), 0);
		snap_err_clear(&e);
		st = NULL;
		int rc = open_store(env->db, NULL, SNAP_OPEN_CREATE |
				    SNAP_OPEN_DAEMON, &st, &e);
		snap_store_close(st);
		if (rc != -EPERM)
			fail_msg("a hard link at %s: %d %s", names[i], rc,
				 e.msg);
		assert_non_null(strstr(e.msg, names[i]));
		uint8_t *b = tu_read_file(victim, &len);
		assert_int_equal(len, 9);
		assert_memory_equal(b, "precious\n", 9);
		free(b);
		assert_int_equal(mode_of(victim), 0644);
		assert_int_equal(unlink(lock), 0);
	}
	/* Nor emptied by an open that truncates (the live-was-wal marker),
	 * nor is another user's file planted there. */
	assert_int_equal(open_store(env->db, NULL, 0, &st, &e), 0);
	env->st = st;
	snprintf(lock, sizeof(lock), "%s.snapfs/live-was-wal", env->db);
	assert_int_equal(link(victim, lock), 0);
	snap_err_clear(&e);
	assert_int_equal(snap_store_file_open(st, "live-was-wal", O_WRONLY |
					      O_CREAT | O_TRUNC, &e), -EPERM);
	assert_int_equal(unlink(lock), 0);
	if (geteuid() == 0) {
		tu_write_file(lock, "theirs\n", 7);
		assert_int_equal(chown(lock, TU_NOBODY, TU_NOBODY), 0);
		assert_int_equal(snap_store_file_open(st, "live-was-wal",
						      O_WRONLY | O_CREAT |
						      O_TRUNC, &e), -EPERM);
		uint8_t *b = tu_read_file(lock, &len);
		assert_int_equal(len, 7);
		free(b);
	}
	uint8_t *b = tu_read_file(victim, &len);
	assert_int_equal(len, 9);
	free(b);
}

static void test_a_renamed_store_keeps_serving_its_own_files(void **state)
{
	/* After the checks, whoever can write the store's parent renames
	 * the store away and puts their own directory at its name: every
	 * later file of the store (SQLite's included) must still land in the
	 * real store, never in theirs. */
	tu_env *env = *state;
	char dir[PATH_MAX], moved[PATH_MAX], staged[PATH_MAX + 16];
	char path[PATH_MAX];
	snap_store *st;
	snap_err e;

	make_store(env, NULL);
	snprintf(dir, sizeof(dir), "%s.snapfs", env->db);
	assert_int_equal(open_store(env->db, NULL, SNAP_OPEN_DAEMON, &st, &e),
			 0);
	env->st = st;
	int fd = snap_storedir_sub_open(st, "staging", path, sizeof(path), &e);
	if (fd < 0)
		fail_msg("staging: %s", e.msg);
	assert_int_equal(rename(dir, tu_path(env, moved, "moved")), 0);
	assert_int_equal(mkdir(dir, 0777), 0);

	tu_snap(st, "after-the-swap");
	assert_int_equal(tu_count(st), 2);
	snprintf(staged, sizeof(staged), "%s/upload-1", path);
	tu_write_file(staged, "staged", 6);
	assert_int_equal(entries(dir), 0);
	snprintf(staged, sizeof(staged), "%s/staging/upload-1", moved);
	assert_true(tu_exists(staged));
	snap_storedir_sub_remove(st, "staging", fd);
	snap_store_close(st);
	env->st = NULL;

	assert_int_equal(rmdir(dir), 0);
	assert_int_equal(open_store(env->db, moved, 0, &st, &e), 0);
	env->st = st;
	assert_int_equal(tu_count(st), 2);
}

/* ---- the catalog -------------------------------------------------------- */

static void test_a_lost_catalog_is_refused_not_replaced(void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX], f[PATH_MAX + 16];
	snap_store *st;
	snap_err e;

	make_store(env, NULL);
	snprintf(dir, sizeof(dir), "%s.snapfs", env->db);
	/* The daemon has served it once: daemon.lock is there. */
	assert_int_equal(open_store(env->db, NULL, SNAP_OPEN_DAEMON, &st, &e),
			 0);
	snap_store_close(st);
	snprintf(f, sizeof(f), "%s/store.db", dir);
	assert_int_equal(unlink(f), 0);
	static const unsigned flags[] = { SNAP_OPEN_CREATE | SNAP_OPEN_DAEMON,
		SNAP_OPEN_CREATE, 0, SNAP_OPEN_READONLY };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(open_store(env->db, NULL, flags[i], &st, &e),
				 -EUCLEAN);
		assert_null(st);
		assert_non_null(strstr(e.msg, "store.db is gone"));
		assert_non_null(strstr(e.msg, dir));
		assert_false(tu_exists(f));
	}
	/* A new, empty directory is a new store, as always. */
	char fresh[PATH_MAX];
	assert_int_equal(mkdir(tu_path(env, fresh, "fresh"), 0700), 0);
	assert_int_equal(open_store(env->db, fresh, SNAP_OPEN_CREATE, &st, &e),
			 0);
	snap_store_close(st);
}

/* A store.db that is not a SQLite database: every open says so of the
 * store, never quoting the pragmas it ran first. */
static void test_a_damaged_catalog_is_said_of_the_store(void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX], f[PATH_MAX + 16];
	snap_store *st;
	snap_err e;
	int fd;

	make_store(env, NULL);
	snprintf(dir, sizeof(dir), "%s.snapfs", env->db);
	snprintf(f, sizeof(f), "%s/store.db", dir);
	fd = open(f, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "garbage, not a SQLite header", 28, 0),
			 28);
	close(fd);
	static const unsigned flags[] = { SNAP_OPEN_CREATE | SNAP_OPEN_DAEMON,
		SNAP_OPEN_CREATE, 0, SNAP_OPEN_READONLY };
	for (size_t i = 0; i < 4; i++) {
		assert_true(open_store(env->db, NULL, flags[i], &st, &e) < 0);
		assert_null(st);
		if (!strstr(e.msg, "cannot read store") ||
		    !strstr(e.msg, dir) || strstr(e.msg, "PRAGMA"))
			fail_msg("open flags %#x: \"%s\"", flags[i], e.msg);
	}
}

static void test_no_store_is_left_for_a_non_database(void **state)
{
	tu_env *env = *state;
	char def[PATH_MAX], dir[PATH_MAX];
	snap_store *st;
	snap_err e;

	tu_write_file(env->db, "not a database\n", 15);
	snprintf(def, sizeof(def), "%s.snapfs", env->db);
	assert_int_equal(open_store(env->db, NULL, SNAP_OPEN_CREATE |
				    SNAP_OPEN_LIVE_DB, &st, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a SQLite database"));
	assert_false(tu_exists(def));
	/* An existing directory stays, empty. */
	assert_int_equal(mkdir(tu_path(env, dir, "store"), 0700), 0);
	assert_int_equal(open_store(env->db, dir, SNAP_OPEN_CREATE |
				    SNAP_OPEN_LIVE_DB, &st, &e), -EINVAL);
	assert_int_equal(entries(dir), 0);
	/* A directory given as the database (SQLite cannot open it: that
	 * was "other trouble", and a store was made beside it). */
	assert_int_equal(unlink(env->db), 0);
	assert_int_equal(mkdir(env->db, 0700), 0);
	snap_err_clear(&e);
	assert_int_equal(open_store(env->db, NULL, SNAP_OPEN_CREATE |
				    SNAP_OPEN_LIVE_DB, &st, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "not a regular file"));
	assert_false(tu_exists(def));
	/* A symbolic link to nothing: said so, naming where it points. */
	assert_int_equal(rmdir(env->db), 0);
	assert_int_equal(symlink("/nonexistent/app.db", env->db), 0);
	snap_err_clear(&e);
	assert_int_equal(open_store(env->db, NULL, SNAP_OPEN_CREATE |
				    SNAP_OPEN_LIVE_DB, &st, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "symbolic link to /nonexistent/app.db"));
	assert_false(tu_exists(def));
	assert_int_equal(unlink(env->db), 0);
}

static void test_deleting_most_snapshots_shrinks_the_store(void **state)
{
	tu_env *env = *state;
	snap_err e;

	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE r(id INTEGER PRIMARY KEY, b BLOB)");
	int64_t ids[8];
	for (int i = 0; i < 8; i++) {
		/* Incompressible and new each time: every snapshot adds
		 * about 1 MB of pages of its own. */
		tu_exec(db, "DELETE FROM r; WITH RECURSIVE c(x) AS (SELECT 1 "
			"UNION ALL SELECT x+1 FROM c WHERE x < 1000) INSERT "
			"INTO r(b) SELECT randomblob(1000) FROM c");
		ids[i] = tu_snap(st, "r").id;
	}
	sqlite3_close(db);
	off_t before = size_of(snap_store_file(st));
	for (int i = 0; i < 7; i++) {
		snap_err_clear(&e);
		assert_int_equal(snap_store_delete(st, ids[i], &e), 0);
	}
	off_t after = size_of(snap_store_file(st));
	if (after * 3 > before)
		fail_msg("store.db was %lld bytes, still %lld after deleting 7 "
			 "of 8 snapshots", (long long)before, (long long)after);
	assert_int_equal(snap_verify_snapshot(st, ids[7], 1, NULL, NULL, &e),
			 0);
}

/* ---- reading without writing ---------------------------------------- */

static int ro_read_check(void *arg)
{
	const char *db = arg;
	snap_store *st = NULL;
	snap_info *list = NULL;
	size_t n = 0;
	snap_err e;
	int rc;

	snap_err_clear(&e);
	rc = snap_store_open(db, NULL, SNAP_OPEN_READONLY, &st, &e);
	if (rc != 0) {
		fprintf(stderr, "# read-only open: %d %s\n", rc, e.msg);
		return 1;
	}
	rc = snap_store_list(st, &list, &n, &e);
	if (rc == 0 && n == 1)
		rc = snap_verify_snapshot(st, list[0].id, 1, NULL, NULL, &e);
	else if (rc == 0)
		rc = -1;
	if (rc != 0)
		fprintf(stderr, "# list/verify: %d %s\n", rc, e.msg);
	if (rc == 0 && snap_store_delete(st, list[0].id, &e) != -EROFS) {
		fprintf(stderr, "# a read-only store took a delete\n");
		rc = 2;
	}
	free(list);
	snap_store_close(st);
	return rc ? 3 : 0;
}

static void test_a_read_only_open_reads_a_store_it_cannot_write(void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX];

	make_store(env, NULL);
	snprintf(dir, sizeof(dir), "%s.snapfs", env->db);
	int before = entries(dir);
	assert_int_equal(chmod(dir, 0500), 0);
	if (geteuid() == 0) {
		/* As nobody, who owns it (root ignores modes). */
		assert_int_equal(chmod(env->dir, 0711), 0);
		assert_int_equal(chown(env->db, TU_NOBODY, TU_NOBODY), 0);
		assert_int_equal(chown(dir, TU_NOBODY, TU_NOBODY), 0);
		char f[PATH_MAX + 32];
		snprintf(f, sizeof(f), "%s/store.db", dir);
		assert_int_equal(chown(f, TU_NOBODY, TU_NOBODY), 0);
		snprintf(f, sizeof(f), "%s/restore.lock", dir);
		assert_int_equal(chown(f, TU_NOBODY, TU_NOBODY), 0);
		fflush(NULL);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			if (setgroups(0, NULL) || setgid(TU_NOBODY) ||
			    setuid(TU_NOBODY))
				_exit(90);
			_exit(ro_read_check(env->db));
		}
		int status = 0;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	} else {
		assert_int_equal(ro_read_check(env->db), 0);
	}
	assert_int_equal(entries(dir), before);
}

/* A tmpfs of its own for the full-filesystem test, unmounted whatever
 * happens. */
typedef struct full_env {
	tu_env *env;
	char mnt[PATH_MAX];
	int mounted;
} full_env;

static int full_setup(void **state)
{
	full_env *f = calloc(1, sizeof(*f));
	void *inner = NULL;

	if (!f || tu_setup(&inner) != 0)
		return -1;
	f->env = inner;
	snprintf(f->mnt, sizeof(f->mnt), "%s/full", f->env->dir);
	*state = f;
	return 0;
}

static int full_teardown(void **state)
{
	full_env *f = *state;
	void *inner = f->env;

	if (f->env->st) {
		snap_store_close(f->env->st);
		f->env->st = NULL;
	}
	if (f->mounted && umount2(f->mnt, 0) != 0)
		umount2(f->mnt, MNT_DETACH);
	tu_teardown(&inner);
	free(f);
	return 0;
}

/* Fill the filesystem of dir until writing fails; returns the file. */
static void fill_up(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	memset(buf, 0x5a, sizeof(buf));
	while (write(fd, buf, sizeof(buf)) > 0)
		;
	while (write(fd, buf, 512) > 0)
		;
	close(fd);
}

static void test_a_full_store_is_read_and_served_without_writing(
	void **state)
{
	full_env *f = *state;
	tu_env *env = f->env;
	char store[PATH_MAX + 8], fill[PATH_MAX + 8], out[PATH_MAX];
	snap_store *st;
	snap_info *list = NULL;
	size_t n = 0;
	snap_err e;

	if (skip_unless_root())
		return;
	assert_int_equal(mkdir(f->mnt, 0700), 0);
	if (mount("snapfs-unit", f->mnt, "tmpfs", 0, "size=2m") != 0) {
		print_message("# cannot mount a tmpfs: %s; skipped\n",
			      strerror(errno));
		skip();
	}
	f->mounted = 1;
	snprintf(store, sizeof(store), "%s/st", f->mnt);
	make_store(env, store);
	assert_int_equal(open_store(env->db, store, 0, &st, &e), 0);
	tu_snap(st, "second");
	snap_store_close(st);
	snprintf(fill, sizeof(fill), "%s/fill", f->mnt);
	fill_up(fill);

	/* Reading: list, verify, export, all without room. */
	assert_int_equal(open_store(env->db, store, SNAP_OPEN_READONLY, &st,
				    &e), 0);
	assert_int_equal(snap_store_list(st, &list, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(snap_verify_snapshot(st, list[1].id, 1, NULL, NULL,
					      &e), 0);
	snap_err_clear(&e);
	if (snap_image_export(st, list[1].id, tu_path(env, out, "out.db"),
			      &e) != 0)
		fail_msg("export from a full store: %s", e.msg);
	assert_true(tu_db_integrity_ok(out));
	free(list);
	snap_store_close(st);

	/* Any command opens it, read-only, and says why it cannot write. */
	assert_int_equal(open_store(env->db, store, 0, &st, &e), 0);
	assert_int_equal(tu_count(st), 2);
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "x" };
	snap_err_clear(&e);
	assert_int_equal(snap_snapshot_take(st, &o, NULL, &e), -ENOSPC);
	assert_non_null(strstr(e.msg, "full"));
	assert_non_null(strstr(e.msg, "may need"));
	snap_store_close(st);

	/* The daemon starts, serves, and writes again once there is room. */
	assert_int_equal(open_store(env->db, store, SNAP_OPEN_DAEMON, &st, &e),
			 0);
	env->st = st;
	assert_int_equal(snap_store_writable(st, &e), -ENOSPC);
	assert_int_equal(tu_count(st), 2);
	snap_info latest;
	assert_int_equal(snap_store_find(st, "latest", &latest, &e), 0);
	size_t len;
	uint8_t *img = tu_image_bytes(st, latest.id, &len);
	assert_true(len > 0);
	free(img);
	assert_int_equal(unlink(fill), 0);
	snap_err_clear(&e);
	assert_int_equal(snap_store_writable(st, &e), 0);
	tu_snap(st, "room-again");
	assert_int_equal(tu_count(st), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_a_symlinked_store_dir_is_refused_and_its_target_untouched),
		tu_test(test_a_store_dir_of_another_user_is_refused),
		tu_test(test_store_files_are_private_on_an_existing_0755_dir),
		tu_test(test_a_shared_dir_is_refused_not_tightened),
		tu_test(test_planted_links_in_the_store_are_never_followed),
		tu_test(test_planted_hard_links_in_the_store_are_refused),
		tu_test(test_a_renamed_store_keeps_serving_its_own_files),
		tu_test(test_a_lost_catalog_is_refused_not_replaced),
		tu_test(test_a_damaged_catalog_is_said_of_the_store),
		tu_test(test_no_store_is_left_for_a_non_database),
		tu_test(test_deleting_most_snapshots_shrinks_the_store),
		tu_test(test_a_read_only_open_reads_a_store_it_cannot_write),
		cmocka_unit_test_setup_teardown(
			test_a_full_store_is_read_and_served_without_writing,
			full_setup, full_teardown),
	};
	return cmocka_run_group_tests_name("storedir", tests, NULL, NULL);
}
