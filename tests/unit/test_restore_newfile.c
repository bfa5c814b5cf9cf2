/*
 * tests/unit/test_restore_newfile.c — engine/restore_newfile.c as an
 * attacker who may write the live database's directory sees it: the file
 * a restore creates there is never wider than the one it replaces, keeps
 * that file's owner, and a file renamed onto its name before SQLite
 * opens it is refused and gets none of the restored bytes, and one
 * renamed onto it after the restore wrote it never takes the live name;
 * with no live file, the new one is its directory's; the live file's
 * directory renamed and replaced by another gets nothing, and neither
 * does another user's file put at its name in a directory anyone may
 * write.  And a restore
 * from a FIFO (restore_file.c) is refused at once, not waited on.
 */
#include "testutil.h"
#include "store_int.h"
#include "sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A snapshot of a small database, then env->db made a non-database file
 * of mode 0600 (owned by uid 65534 when we are root). */
static snap_info junk_over_snapshot(tu_env *env)
{
	static const char junk[] = "not a database at all";
	snap_info a;

	tu_live_store(env, "delete", 4096, 50);
	a = tu_snap(env->st, "a");
	tu_write_file(env->db, junk, sizeof(junk));
	assert_int_equal(chmod(env->db, 0600), 0);
	if (geteuid() == 0)
		assert_int_equal(chown(env->db, 65534, 65534), 0);
	return a;
}

/* Restore snapshot a (under umask 022) into a new file: it is 0600. */
static void restore_is_private(tu_env *env, const snap_info *a,
			       struct stat *st)
{
	snap_restore_result res;
	snap_err e;
	mode_t old = umask(022);

	snap_err_clear(&e);
	int rc = snap_restore(env->st, a->id, &res, &e);
	umask(old);
	if (rc != 0)
		fail_msg("restore into a new file: %d %s", rc, e.msg);
	assert_int_equal(stat(env->db, st), 0);
	if ((st->st_mode & 07777) != 0600)
		fail_msg("the restored file is %04o, not 0600 as the file it "
			 "replaced (or none)", (unsigned)(st->st_mode & 07777));
}

static void test_new_file_keeps_the_old_files_mode_and_owner(void **state)
{
	tu_env *env = *state;
	snap_info a = junk_over_snapshot(env);
	struct stat st;

	restore_is_private(env, &a, &st);
	if (geteuid() == 0 && (st.st_uid != 65534 || st.st_gid != 65534))
		fail_msg("the restored file belongs to %u:%u, the file it "
			 "replaced to 65534:65534", (unsigned)st.st_uid,
			 (unsigned)st.st_gid);
	assert_true(tu_db_integrity_ok(env->db));
}

static void test_new_file_for_a_missing_one_is_private(void **state)
{
	tu_env *env = *state;
	snap_info a;
	struct stat st;

	tu_live_store(env, "delete", 4096, 50);
	a = tu_snap(env->st, "a");
	assert_int_equal(unlink(env->db), 0);
	restore_is_private(env, &a, &st);
}

/* No live file, in a directory of another user (65534, when we are
 * root): the restored database is that user's, 0600, not root's. */
static void test_new_file_for_a_missing_one_is_its_directorys(void **state)
{
	tu_env *env = *state;
	snap_info a;
	struct stat st;

	if (geteuid() != 0)
		skip();
	tu_live_store(env, "delete", 4096, 50);
	a = tu_snap(env->st, "a");
	assert_int_equal(unlink(env->db), 0);
	assert_int_equal(chown(env->dir, 65534, 65534), 0);
	restore_is_private(env, &a, &st);
	assert_int_equal(chown(env->dir, 0, 0), 0);
	if (st.st_uid != 65534 || st.st_gid != 65534)
		fail_msg("the restored file belongs to %u:%u, its directory to "
			 "65534:65534", (unsigned)st.st_uid,
			 (unsigned)st.st_gid);
	assert_true(tu_db_integrity_ok(env->db));
}

/* The attacker: right after the nonce is written into the new file, a
 * file of theirs ("planted", also linked as "kept") is renamed onto its
 * name, before SQLite opens it. */
static char swap_dir[PATH_MAX];
static int swapped;

static ssize_t swap_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	char planted[PATH_MAX], kept[PATH_MAX], victim[PATH_MAX];
	ssize_t r = snap_sys_libc.pwrite(fd, buf, n, off);
	struct dirent *de;
	DIR *d;

	if (swapped || n != 16 || off != 0 || !(d = opendir(swap_dir)))
		return r;
	victim[0] = '\0';
	while ((de = readdir(d)))
		if (strstr(de->d_name, ".snapfs-restore-"))
			snprintf(victim, sizeof(victim), "%s/%s", swap_dir,
				 de->d_name);
	closedir(d);
	if (!victim[0])
		return r;
	snprintf(planted, sizeof(planted), "%s/planted", swap_dir);
	snprintf(kept, sizeof(kept), "%s/kept", swap_dir);
	tu_write_file(planted, "x", 1);
	assert_int_equal(chmod(planted, 0666), 0);
	assert_int_equal(link(planted, kept), 0);
	assert_int_equal(rename(planted, victim), 0);
	swapped = 1;
	return r;
}

static void test_new_file_swapped_before_sqlite_opens_it_is_refused(
	void **state)
{
	tu_env *env = *state;
	snap_restore_result res;
	char kept[PATH_MAX];
	snap_info a;
	snap_err e;
	size_t len;

	a = junk_over_snapshot(env);
	snprintf(swap_dir, sizeof(swap_dir), "%s", env->dir);
	swapped = 0;
	snap_sys.pwrite = swap_pwrite;
	snap_err_clear(&e);
	int rc = snap_restore(env->st, a.id, &res, &e);
	snap_sys.pwrite = snap_sys_libc.pwrite;
	assert_int_equal(swapped, 1);
	if (rc != -EPERM)
		fail_msg("a swapped file was not refused: %d %s", rc, e.msg);
	assert_non_null(strstr(e.msg, "replaced"));
	uint8_t *bytes = tu_read_file(tu_path(env, kept, "kept"), &len);
	if (len != 1 || bytes[0] != 'x')
		fail_msg("the attacker's file got %zu bytes of the restore",
			 len);
	free(bytes);
	bytes = tu_read_file(env->db, &len);
	assert_int_equal(len, sizeof("not a database at all"));
	free(bytes);
}

/* The attacker again, later: after the restore wrote and checked the
 * new file, when it is given the old file's owner, their file is
 * renamed onto its name: it never takes the live name. */
static int swap_fchown(int fd, uid_t uid, gid_t gid)
{
	char planted[PATH_MAX], victim[PATH_MAX];
	struct dirent *de;
	DIR *d;

	struct stat st;

	victim[0] = '\0';
	if (!swapped && (d = opendir(swap_dir))) {
		while ((de = readdir(d)))
			if (strstr(de->d_name, ".snapfs-restore-"))
				snprintf(victim, sizeof(victim), "%s/%s",
					 swap_dir, de->d_name);
		closedir(d);
	}
	/* Only once the restore wrote it (a database, not the nonce). */
	if (victim[0] && (stat(victim, &st) < 0 || st.st_size < 4096))
		victim[0] = '\0';
	if (victim[0]) {
		snprintf(planted, sizeof(planted), "%s/planted", swap_dir);
		tu_write_file(planted, "x", 1);
		assert_int_equal(rename(planted, victim), 0);
		swapped = 1;
	}
	return snap_sys_libc.fchown(fd, uid, gid);
}

static void test_new_file_swapped_before_it_takes_the_name_is_refused(
	void **state)
{
	tu_env *env = *state;
	snap_restore_result res;
	snap_info a;
	snap_err e;
	size_t len;

	if (geteuid() != 0)
		skip();               /* the owner is given only as root */
	a = junk_over_snapshot(env);
	snprintf(swap_dir, sizeof(swap_dir), "%s", env->dir);
	swapped = 0;
	snap_sys.fchown = swap_fchown;
	snap_err_clear(&e);
	int rc = snap_restore(env->st, a.id, &res, &e);
	snap_sys.fchown = snap_sys_libc.fchown;
	assert_int_equal(swapped, 1);
	if (rc != -EPERM)
		fail_msg("a file swapped in after the restore was not refused: "
			 "%d %s", rc, e.msg);
	assert_non_null(strstr(e.msg, "replaced"));
	uint8_t *bytes = tu_read_file(env->db, &len);
	assert_int_equal(len, sizeof("not a database at all"));
	free(bytes);
}

/* A live database of 50 rows in <env->dir>/<sub>/ (tu_db_in_subdir), its
 * store (*st, beside it) and a snapshot of it. */
static snap_info subdir_snapshot(tu_env *env, const char *sub, char *dir,
				 char *db, snap_store **st)
{
	snap_err e;

	tu_db_in_subdir(env, sub, dir, db, 50);
	snap_err_clear(&e);
	*st = NULL;
	assert_int_equal(snap_store_open(db, NULL, SNAP_OPEN_CREATE, st, &e),
			 0);
	return tu_snap(*st, "a");
}

/*
 * The live database's directory renamed away (by whoever may write its
 * parent) and replaced by theirs, holding a file that is not a database
 * at the live name: the restore is refused (-EPERM), creates nothing in
 * their directory and writes none of the snapshot's bytes there (by name
 * it made a new file there, theirs, with the restored database in it).
 */
static void test_restore_into_a_directory_swapped_under_it_is_refused(
	void **state)
{
	static const char junk[] = "their file";
	tu_env *env = *state;
	char dir[PATH_MAX], db[PATH_MAX], real[PATH_MAX];
	snap_restore_result res;
	snap_store *st = NULL;
	struct dirent *de;
	snap_info a;
	snap_err e;
	DIR *d;

	tu_path(env, real, "app.real");
	a = subdir_snapshot(env, "app", dir, db, &st);

	assert_int_equal(rename(dir, real), 0);
	assert_int_equal(mkdir(dir, 0777), 0);
	tu_write_file(db, junk, sizeof(junk));
	if (geteuid() == 0)
		assert_int_equal(chown(db, 65534, 65534), 0);

	snap_err_clear(&e);
	int rc = snap_restore(st, a.id, &res, &e);
	snap_store_close(st);
	if (rc != -EPERM)
		fail_msg("restore into a swapped directory: %d %s", rc, e.msg);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, "live.db"))
			fail_msg("the restore made %s in their directory",
				 de->d_name);
	closedir(d);
	{
		size_t len;
		uint8_t *now = tu_read_file(db, &len);

		assert_int_equal(len, sizeof(junk));
		assert_memory_equal(now, junk, len);
		free(now);
	}
}

/*
 * A directory anyone may write (1777, as /tmp), the live database gone
 * from it, and another user's file put at its name: a restore is refused
 * (EPERM) and writes nothing into it, whether it is a database (by name,
 * copied into in place) or empty (by name, replaced by a new file given
 * its owner and mode 0666).  A file of ours there is restored as ever.
 */
static void test_restore_into_a_file_anybody_put_is_refused(void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX], db[PATH_MAX], other[PATH_MAX];
	snap_restore_result res;
	snap_store *st = NULL;
	snap_info a;
	snap_err e;

	if (geteuid() != 0)
		return;         /* another user's file needs root */
	a = subdir_snapshot(env, "shared", dir, db, &st);
	assert_int_equal(chmod(dir, 01777), 0);

	/* Their database at the name. */
	assert_int_equal(unlink(db), 0);
	tu_path(env, other, "theirs.db");
	tu_db_create(other, "delete", 4096, 3);
	assert_int_equal(rename(other, db), 0);
	assert_int_equal(chown(db, 65534, 65534), 0);
	assert_int_equal(chmod(db, 0666), 0);
	snap_err_clear(&e);
	int rc = snap_restore(st, a.id, &res, &e);
	if (rc != -EPERM)
		fail_msg("restore into their database: %d %s", rc, e.msg);
	assert_non_null(strstr(e.msg, "anyone may write its directory"));
	assert_int_equal(tu_db_rows(db), 3);

	/* An empty file of theirs at the name. */
	assert_int_equal(unlink(db), 0);
	tu_write_file(db, "", 0);
	assert_int_equal(chown(db, 65534, 65534), 0);
	assert_int_equal(chmod(db, 0666), 0);
	snap_err_clear(&e);
	rc = snap_restore(st, a.id, &res, &e);
	if (rc != -EPERM)
		fail_msg("restore over their empty file: %d %s", rc, e.msg);
	{
		struct stat now;

		assert_int_equal(lstat(db, &now), 0);
		assert_int_equal(now.st_size, 0);
		assert_int_equal(now.st_uid, 65534);
	}

	/* Ours: restored. */
	assert_int_equal(chown(db, 0, 0), 0);
	snap_err_clear(&e);
	rc = snap_restore(st, a.id, &res, &e);
	if (rc != 0)
		fail_msg("restore over our own file: %d %s", rc, e.msg);
	assert_int_equal(tu_db_rows(db), 50);
	snap_store_close(st);
}

static void test_restore_from_a_fifo_is_refused(void **state)
{
	tu_env *env = *state;
	snap_restore_result res;
	char p[PATH_MAX];
	snap_err e;

	tu_live_store(env, "delete", 4096, 50);
	assert_int_equal(mkfifo(tu_path(env, p, "fifo.db"), 0600), 0);
	snap_err_clear(&e);
	int rc = snap_restore_file(env->st, p, NULL, &res, &e);
	if (rc != -EINVAL)
		fail_msg("restore from a FIFO: %d %s", rc, e.msg);
	assert_true(tu_db_integrity_ok(env->db));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_new_file_keeps_the_old_files_mode_and_owner),
		tu_test(test_new_file_for_a_missing_one_is_private),
		tu_test(test_new_file_for_a_missing_one_is_its_directorys),
		tu_test(test_new_file_swapped_before_it_takes_the_name_is_refused),
		tu_test(test_new_file_swapped_before_sqlite_opens_it_is_refused),
		tu_test(test_restore_into_a_directory_swapped_under_it_is_refused),
		tu_test(test_restore_into_a_file_anybody_put_is_refused),
		tu_test(test_restore_from_a_fifo_is_refused),
	};
	return cmocka_run_group_tests_name("restore_newfile", tests, NULL,
					   NULL);
}
