/*
 * tests/unit/test_store.c — engine/store.h: creating and opening stores,
 * the daemon lock, labels, kinds, the catalog (list, find, latest, relabel,
 * rename, pin, comment, delete) and page reclamation.
 */
#include "testutil.h"

#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The uid/gid tests drop to when they run as root (nobody/nogroup). */
#define TU_NOBODY 65534

/* Page ids of every page of snapshot id (malloc'd, n pages). */
static int64_t *page_ids(snap_store *st, int64_t id, uint32_t *n)
{
	snap_image *im = NULL;
	snap_err e;
	snap_err_clear(&e);
	if (snap_image_open(st, id, &im, &e) != 0)
		fail_msg("snap_image_open: %s", e.msg);
	*n = snap_image_page_count(im);
	int64_t *ids = calloc(*n + 1, sizeof(*ids));
	for (uint32_t p = 1; p <= *n; p++)
		ids[p - 1] = snap_image_page_id(im, p);
	snap_image_close(im);
	return ids;
}

/* Distinct ids in a that are not in b. */
static int64_t ids_only_in(const int64_t *a, uint32_t na, const int64_t *b,
			   uint32_t nb)
{
	int64_t count = 0;
	for (uint32_t i = 0; i < na; i++) {
		int dup = 0;
		for (uint32_t j = 0; j < i && !dup; j++)
			dup = a[j] == a[i];
		for (uint32_t j = 0; j < nb && !dup; j++)
			dup = b[j] == a[i];
		if (!dup)
			count++;
	}
	return count;
}

static snap_store_stats stats(snap_store *st)
{
	snap_store_stats ss;
	snap_err e;
	snap_err_clear(&e);
	memset(&ss, 0xff, sizeof(ss));
	int rc = snap_store_stats_get(st, &ss, &e);
	if (rc != 0)
		fail_msg("stats: %d %s", rc, e.msg);
	return ss;
}

/* ------------------------------------------------------------------ */

static void test_store_is_created_beside_the_db_with_mode_0700(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 10);
	umask(022);   /* a mkdir(0755) would show through */
	snap_store *st = tu_store(env);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s.snapfs", env->db);
	struct stat sb;
	assert_int_equal(stat(dir, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0700);
	assert_string_equal(snap_store_dir(st), dir);
	assert_string_equal(snap_store_db_path(st), env->db);
	char file[PATH_MAX + 16];
	snprintf(file, sizeof(file), "%s/store.db", dir);
	assert_string_equal(snap_store_file(st), file);
	assert_true(tu_exists(file));
}

static void test_store_paths_are_absolute_from_a_relative_db(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 1);
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(env->dir), 0);
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_store_open("live.db", NULL, SNAP_OPEN_CREATE, &env->st, &e);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rc, 0);
	char real[PATH_MAX];
	assert_non_null(realpath(env->db, real));
	assert_string_equal(snap_store_db_path(env->st), real);
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof(dir), "%s.snapfs", real);
	assert_string_equal(snap_store_dir(env->st), dir);
}

static void test_store_opened_by_dir_alone_reads_the_recorded_db(void **state)
{
	tu_env *env = *state;
	char parent[PATH_MAX], dir[PATH_MAX];
	tu_db_create(env->db, "delete", 4096, 5);
	assert_int_equal(mkdir(tu_path(env, parent, "elsewhere"), 0700), 0);
	tu_path(env, dir, "elsewhere/store");
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = NULL;
	umask(022);
	assert_int_equal(snap_store_open(env->db, dir, SNAP_OPEN_CREATE, &st, &e), 0);
	struct stat sb;
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0700);
	tu_snap(st, "one");
	snap_store_close(st);

	st = NULL;
	int rc = snap_store_open(NULL, dir, 0, &st, &e);
	assert_int_equal(rc, 0);
	assert_non_null(st);
	env->st = st;
	assert_string_equal(snap_store_db_path(st), env->db);
	assert_int_equal(tu_count(st), 1);
	/* Nothing was created beside the database. */
	char def[PATH_MAX];
	snprintf(def, sizeof(def), "%s.snapfs", env->db);
	assert_false(tu_exists(def));
}

static void test_store_recorded_for_another_db_is_refused(void **state)
{
	tu_env *env = *state;
	char dir[PATH_MAX], other[PATH_MAX];
	tu_db_create(env->db, "delete", 4096, 5);
	tu_db_create(tu_path(env, other, "other.db"), "delete", 4096, 5);
	tu_path(env, dir, "store");
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = NULL;
	assert_int_equal(snap_store_open(env->db, dir, SNAP_OPEN_CREATE, &st, &e), 0);
	snap_store_close(st);

	st = NULL;
	snap_err_clear(&e);
	assert_int_equal(snap_store_open(other, dir, 0, &st, &e), -EINVAL);
	assert_null(st);
	assert_non_null(strstr(e.msg, dir));
	snap_err_clear(&e);
	assert_int_equal(snap_store_open(other, dir, SNAP_OPEN_CREATE, &st, &e),
			 -EINVAL);
	assert_null(st);
	assert_true(e.msg[0] != '\0');
	/* The store still belongs to the first database. */
	assert_int_equal(snap_store_open(NULL, dir, 0, &st, &e), 0);
	env->st = st;
	assert_string_equal(snap_store_db_path(st), env->db);
}

static void test_store_refuses_a_foreign_store_db_untouched(void **state)
{
	/* A directory whose store.db is some other application's database
	 * is not a snapfs store: refuse, and do not write into it. */
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 5);
	char dir[PATH_MAX], file[PATH_MAX];
	assert_int_equal(mkdir(tu_path(env, dir, "notastore"), 0700), 0);
	sqlite3 *db = tu_open(tu_path(env, file, "notastore/store.db"));
	tu_exec(db, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
		    "INSERT INTO users(name) VALUES ('alice'), ('bob')");
	sqlite3_close(db);
	uint8_t before[32], after[32];
	tu_sha256_file(file, before);
	static const unsigned flags[] = { 0, SNAP_OPEN_CREATE };
	for (size_t i = 0; i < 2; i++) {
		snap_err e;
		snap_err_clear(&e);
		snap_store *st = NULL;
		int rc = snap_store_open(env->db, dir, flags[i], &st, &e);
		if (st)
			snap_store_close(st);
		if (rc >= 0)
			fail_msg("opened a foreign store.db as a store (flags %u)",
				 flags[i]);
		assert_non_null(strstr(e.msg, dir));
		tu_sha256_file(file, after);
		assert_memory_equal(before, after, 32);
	}
}

static void test_store_missing_without_create_is_enoent(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 1);
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = NULL;
	char def[PATH_MAX];
	snprintf(def, sizeof(def), "%s.snapfs", env->db);
	assert_int_equal(snap_store_open(env->db, NULL, 0, &st, &e), -ENOENT);
	assert_null(st);
	assert_non_null(strstr(e.msg, def));
	assert_false(tu_exists(def));

	char dir[PATH_MAX];
	tu_path(env, dir, "nostore");
	snap_err_clear(&e);
	assert_int_equal(snap_store_open(NULL, dir, 0, &st, &e), -ENOENT);
	assert_null(st);
	assert_non_null(strstr(e.msg, dir));
	assert_false(tu_exists(dir));
}

static void test_store_open_without_db_or_dir_is_einval(void **state)
{
	(void)state;
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = NULL;
	assert_int_equal(snap_store_open(NULL, NULL, 0, &st, &e), -EINVAL);
	assert_null(st);
	assert_true(e.msg[0] != '\0');
}

/*
 * Run fn as an unprivileged user when we are root (permissions do not bite
 * root): fork, drop to nobody, run, report through the exit status.  fn
 * returns 0 for pass or writes why to stderr and returns non-zero.  No
 * cmocka assertion may run in the child.
 */
static void run_unprivileged(int (*fn)(void *), void *arg)
{
	if (geteuid() != 0) {
		assert_int_equal(fn(arg), 0);
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgroups(0, NULL) != 0 || setgid(TU_NOBODY) != 0 ||
		    setuid(TU_NOBODY) != 0) {
			perror("dropping privileges");
			_exit(90);
		}
		_exit(fn(arg));
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The owner chown_tree gives (nftw's callback takes no argument). */
static uid_t chown_to;

static int chown_cb(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return lchown(p, chown_to, chown_to) == 0 ? 0 : -1;
}

/* Give a tree to uid (as root; a no-op otherwise). */
static void chown_tree(const char *path, uid_t uid)
{
	if (geteuid() != 0)
		return;
	chown_to = uid;
	assert_int_equal(nftw(path, chown_cb, 16, FTW_PHYS), 0);
}

static void chown_tree_to_nobody(const char *path)
{
	chown_tree(path, TU_NOBODY);
}

static int ro_create_check(void *arg)
{
	const char *db = arg;
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = NULL;
	int rc = snap_store_open(db, NULL, SNAP_OPEN_CREATE, &st, &e);
	if (rc != -EACCES && rc != -EROFS) {
		fprintf(stderr, "# create in read-only dir: rc=%d %s\n", rc, e.msg);
		if (st)
			snap_store_close(st);
		return 1;
	}
	if (strstr(e.msg, db) == NULL) {
		fprintf(stderr, "# message does not name the store: %s\n", e.msg);
		return 2;
	}
	return 0;
}

static void test_store_cannot_be_created_in_a_read_only_dir(void **state)
{
	tu_env *env = *state;
	char ro[PATH_MAX], db[PATH_MAX];
	assert_int_equal(mkdir(tu_path(env, ro, "ro"), 0700), 0);
	tu_db_create(tu_path(env, db, "ro/app.db"), "delete", 4096, 3);
	chmod(env->dir, 0711);
	chown_tree_to_nobody(ro);
	assert_int_equal(chmod(ro, 0500), 0);
	run_unprivileged(ro_create_check, db);
	char sdir[PATH_MAX + 8];
	snprintf(sdir, sizeof(sdir), "%s.snapfs", db);
	assert_false(tu_exists(sdir));
}

static int ro_store_check(void *arg)
{
	const char *db = arg;
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = NULL;
	char dir[PATH_MAX + 8];
	snprintf(dir, sizeof(dir), "%s.snapfs", db);
	int rc = snap_store_open(db, NULL, 0, &st, &e);
	if (rc < 0) {
		/* Refusing is fine, with a reason naming the store. */
		if (strstr(e.msg, dir) == NULL || rc == -ENOENT) {
			fprintf(stderr, "# rc=%d, msg: %s\n", rc, e.msg);
			return 1;
		}
		return 0;
	}
	/* Opened read-only: a snapshot must fail, not pretend. */
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = "x" };
	rc = snap_snapshot_take(st, &o, NULL, &e);
	snap_store_close(st);
	if (rc >= 0 || e.msg[0] == '\0') {
		fprintf(stderr, "# snapshot into read-only store: %d\n", rc);
		return 2;
	}
	return 0;
}

static void test_store_in_a_read_only_dir_refuses_changes(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 3);
	tu_snap(st, "before");
	snap_store_close(st);
	env->st = NULL;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s.snapfs", env->db);
	chmod(env->dir, 0711);
	chmod(env->db, 0644);
	chown_tree_to_nobody(dir);
	assert_int_equal(chmod(dir, 0500), 0);
	run_unprivileged(ro_store_check, env->db);
	/* Nothing was added (the store is given back to us first: a store
	 * is only opened by its owner). */
	assert_int_equal(chmod(dir, 0700), 0);
	chown_tree(dir, geteuid());
	env->st = NULL;
	st = tu_store(env);
	assert_int_equal(tu_count(st), 1);
}

static void test_store_second_daemon_open_is_ebusy(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 3);
	snap_err e;
	snap_err_clear(&e);
	snap_store *d1 = NULL, *d2 = NULL, *plain = NULL;
	assert_int_equal(snap_store_open(env->db, NULL,
					 SNAP_OPEN_CREATE | SNAP_OPEN_DAEMON, &d1, &e), 0);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_DAEMON, &d2, &e),
			 -EBUSY);
	assert_null(d2);
	assert_true(e.msg[0] != '\0');
	/* snapctl beside a running daemon. */
	snap_err_clear(&e);
	assert_int_equal(snap_store_open(env->db, NULL, 0, &plain, &e), 0);
	tu_snap(plain, "beside-daemon");
	assert_int_equal(tu_count(d1), 1);
	snap_store_close(plain);
	/* The lock goes with the daemon. */
	snap_store_close(d1);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_DAEMON, &d2, &e), 0);
	env->st = d2;
}

static void test_label_sanitize_follows_the_rules(void **state)
{
	(void)state;
	char out[SNAP_LABEL_MAX + 1];
	snap_label_sanitize("before migration!", "manual", out);
	assert_string_equal(out, "before-migration-");
	snap_label_sanitize("backup.db", "manual", out);
	assert_string_equal(out, "backup");
	snap_label_sanitize("Keep_Me-1.2", "manual", out);
	assert_string_equal(out, "Keep_Me-1.2");
	snap_label_sanitize("a/b\\c:d", "manual", out);
	assert_string_equal(out, "a-b-c-d");
	/* Whether leading dots survive is the engine's choice (it strips
	 * them); what matters is that no path separator does. */
	snap_label_sanitize("../../etc/passwd", "manual", out);
	assert_null(strchr(out, '/'));
	assert_int_equal(strlen(out) >= 11, 1);
	assert_string_equal(out + strlen(out) - 11, "-etc-passwd");
	snap_label_sanitize("", "manual", out);
	assert_string_equal(out, "manual");
}

static void test_label_of_only_a_db_suffix_becomes_the_fallback(void **state)
{
	(void)state;
	/* store.h: a trailing ".db" is dropped; empty becomes `fallback`. */
	char out[SNAP_LABEL_MAX + 1];
	snap_label_sanitize(".db", "import", out);
	assert_string_equal(out, "import");
}

/*
 * Sizes in a damaged catalog (a negative image_size or zlen, or one past
 * any uint64_t) sum to totals a plain cast from double cannot take: the
 * statistics read them as 0 and UINT64_MAX (found by
 * tests/fuzz/fuzz_catalog.c: -2.8e14 cast to uint64_t).
 */
static void test_stats_of_damaged_sizes_are_clamped(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 20);
	snap_info si = tu_snap(st, "a");
	sqlite3 *db = tu_open(snap_store_file(st));

	tu_exec(db, "UPDATE snapshots SET image_size=-281436000000000 "
		"WHERE id=%lld", (long long)si.id);
	tu_exec(db, "UPDATE pages SET zlen=-1000000000000");
	snap_store_stats ss = stats(st);
	assert_int_equal(ss.logical_bytes, 0);
	assert_int_equal(ss.stored_bytes, 0);
	tu_exec(db, "UPDATE snapshots SET image_size=9e30 WHERE id=%lld",
		(long long)si.id);
	tu_exec(db, "UPDATE pages SET zlen=9e30");
	ss = stats(st);
	assert_true(ss.logical_bytes == UINT64_MAX);
	assert_true(ss.stored_bytes == UINT64_MAX);
	sqlite3_close(db);
}

/*
 * A snapshot whose page map is damaged can still be deleted (found by
 * tests/fuzz/fuzz_catalog.c: delete and prune failed on it for good).  What
 * its pages' counts should become cannot be computed, so they stay: the
 * neighbours keep every page they use and still verify.
 */
static void test_delete_of_a_snapshot_with_a_damaged_map(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 20);
	snap_info a = tu_snap(st, "a");
	sqlite3 *live = tu_open(env->db);
	tu_db_insert(live, 1000, 1100);
	snap_info b = tu_snap(st, "b");
	tu_db_insert(live, 2000, 2100);
	sqlite3_close(live);
	snap_info c = tu_snap(st, "c");
	snap_err e;

	tu_store_exec(st, "UPDATE snapshots SET pagemap=x'00112233' "
		      "WHERE id=%lld", (long long)b.id);
	snap_err_clear(&e);
	assert_int_equal(snap_store_delete(st, b.id, &e), 0);
	assert_int_equal(tu_count(st), 2);
	snap_err_clear(&e);
	assert_int_equal(snap_verify_snapshot(st, a.id, SNAP_VERIFY_FULL, NULL,
					      NULL, &e), 0);
	assert_int_equal(snap_verify_snapshot(st, c.id, SNAP_VERIFY_FULL, NULL,
					      NULL, &e), 0);
	/* And the neighbours delete as usual afterwards. */
	assert_int_equal(snap_store_delete(st, a.id, &e), 0);
	assert_int_equal(snap_verify_snapshot(st, c.id, SNAP_VERIFY_FULL, NULL,
					      NULL, &e), 0);
}

static void test_label_sanitize_is_idempotent(void **state)
{
	(void)state;
	/* Found by tests/fuzz/fuzz_label.c: a ".db" that only the mapping
	 * or the cut at SNAP_LABEL_MAX bytes leaves at the end. */
	static const char *const in[] = {
		"\xb6.db.db", "a.db.db", "x\xff.db",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		".dbzz",
	};
	static const char *const want[] = {
		"-", "a", "x-",
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	};
	char out[SNAP_LABEL_MAX + 1], again[SNAP_LABEL_MAX + 1];

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		snap_label_sanitize(in[i], "manual", out);
		assert_string_equal(out, want[i]);
		snap_label_sanitize(out, "manual", again);
		assert_string_equal(again, out);
	}
}

static void test_label_sanitize_caps_length_and_bytes(void **state)
{
	(void)state;
	char in[300], out[SNAP_LABEL_MAX + 1 + 16];
	memset(out, 0x5a, sizeof(out));
	memset(in, 'x', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	snap_label_sanitize(in, "manual", out);
	assert_int_equal(strlen(out), SNAP_LABEL_MAX);
	for (size_t i = SNAP_LABEL_MAX + 1; i < sizeof(out); i++)
		assert_int_equal((unsigned char)out[i], 0x5a);

	snap_label_sanitize("caf\xc3\xa9 \x01\x7f\xff!", "manual", out);
	assert_memory_equal(out, "caf", 3);
	assert_true(strlen(out) > 3);
	for (const char *p = out; *p; p++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				       "abcdefghijklmnopqrstuvwxyz0123456789._-", *p));
}

static void test_kind_names_round_trip(void **state)
{
	(void)state;
	static const char *want[SNAP_KIND_COUNT] = {
		"manual", "auto", "pre-restore", "import", "conflict", "recovery",
	};
	for (int k = 0; k < SNAP_KIND_COUNT; k++) {
		assert_string_equal(snap_kind_name((snap_kind)k), want[k]);
		snap_kind back = SNAP_KIND_COUNT;
		assert_int_equal(snap_kind_parse(want[k], &back), 0);
		assert_int_equal(back, k);
	}
	snap_kind back = SNAP_KIND_MANUAL;
	assert_int_equal(snap_kind_parse("bogus", &back), -EINVAL);
	assert_int_equal(snap_kind_parse("", &back), -EINVAL);
	assert_int_equal(snap_kind_parse("Manual ", &back), -EINVAL);
}

static void test_time_and_hex_formatting(void **state)
{
	(void)state;
	char iso[40];
	snap_time_iso(0, iso);
	assert_string_equal(iso, "1970-01-01T00:00:00.000Z");
	snap_time_iso(1795312140123456789LL, iso);
	assert_string_equal(iso, "2026-11-22T01:49:00.123Z");

	uint8_t sha[32];
	for (int i = 0; i < 32; i++)
		sha[i] = (uint8_t)(i * 8 + 7);
	char hex[65];
	snap_hex(sha, hex);
	assert_string_equal(hex, "070f171f272f373f474f575f676f777f"
				 "878f979fa7afb7bfc7cfd7dfe7eff7ff");

	struct timespec a, b;
	clock_gettime(CLOCK_REALTIME, &a);
	int64_t now = snap_time_now_ns();
	clock_gettime(CLOCK_REALTIME, &b);
	assert_true(now >= (int64_t)a.tv_sec * 1000000000LL + a.tv_nsec);
	assert_true(now <= (int64_t)b.tv_sec * 1000000000LL + b.tv_nsec);
}

static void test_list_is_oldest_first(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 20);
	snap_info a = tu_snap(st, "a");
	snap_info b = tu_snap(st, "b");
	snap_info c = tu_snap(st, "c");
	snap_info *list = NULL;
	size_t n = 0;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_list(st, &list, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_int_equal(list[0].id, a.id);
	assert_int_equal(list[1].id, b.id);
	assert_int_equal(list[2].id, c.id);
	assert_string_equal(list[0].label, "a");
	assert_string_equal(list[2].name, c.name);
	for (size_t i = 1; i < n; i++)
		assert_true(list[i].created_ns >= list[i - 1].created_ns);
	free(list);
}

static void test_list_of_an_empty_store_is_empty(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 1);
	snap_info *list = NULL;
	size_t n = 99;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_list(st, &list, &n, &e), 0);
	assert_int_equal(n, 0);
	free(list);
	snap_store_stats ss = stats(st);
	assert_int_equal(ss.snapshots, 0);
	assert_int_equal(ss.pages, 0);
	assert_int_equal(ss.logical_bytes, 0);
}

static void test_find_accepts_name_with_or_without_db_and_latest(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 20);
	snap_err e;
	snap_err_clear(&e);
	snap_info out;
	assert_int_equal(snap_store_find(st, "latest", &out, &e), -ENOENT);

	snap_info a = tu_snap(st, "first");
	snap_info b = tu_snap(st, "second");
	assert_int_equal(snap_store_find(st, a.name, &out, &e), 0);
	assert_int_equal(out.id, a.id);
	assert_string_equal(out.name, a.name);

	char stem[SNAP_NAME_MAX];
	snprintf(stem, sizeof(stem), "%s", a.name);
	size_t l = strlen(stem);
	assert_true(l > 3 && strcmp(stem + l - 3, ".db") == 0);
	stem[l - 3] = '\0';
	assert_int_equal(snap_store_find(st, stem, &out, &e), 0);
	assert_int_equal(out.id, a.id);

	assert_int_equal(snap_store_find(st, "latest", &out, &e), 0);
	assert_int_equal(out.id, b.id);
	assert_int_equal(snap_store_find(st, "latest.db", &out, &e), 0);
	assert_int_equal(out.id, b.id);

	snap_err_clear(&e);
	assert_int_equal(snap_store_find(st, "no-such-snapshot.db", &out, &e),
			 -ENOENT);
	assert_non_null(strstr(e.msg, "no-such-snapshot"));

	snap_info g;
	assert_int_equal(snap_store_get(st, b.id, &g, &e), 0);
	assert_string_equal(g.name, b.name);
	assert_memory_equal(g.sha256, b.sha256, 32);
	assert_int_equal(snap_store_get(st, b.id + 1000, &g, &e), -ENOENT);
}

static void test_relabel_keeps_time_prefix_and_stays_unique(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 20);
	snap_err e;
	snap_err_clear(&e);
	/* Two snapshots with the same time prefix (a snapshot takes ms;
	 * retry a few times in case a second boundary fell between them). */
	snap_info x, y;
	int same = 0;
	for (int i = 0; i < 5 && !same; i++) {
		x = tu_snap(st, "one");
		y = tu_snap(st, "two");
		same = strncmp(x.name, y.name, strcspn(x.name, "_") + 1) == 0;
	}
	assert_true(same);
	size_t plen = strcspn(y.name, "_") + 1;

	snap_info r;
	assert_int_equal(snap_store_relabel(st, y.id, "new label!", &r, &e), 0);
	assert_int_equal(r.id, y.id);
	assert_int_equal(r.created_ns, y.created_ns);
	assert_string_equal(r.label, "new-label-");
	assert_memory_equal(r.name, y.name, plen);
	assert_string_equal(r.name + plen, "new-label-.db");
	assert_int_equal(snap_store_find(st, y.name, &r, &e), -ENOENT);

	/* Taking the other snapshot's label must not take its name. */
	snap_info r2;
	assert_int_equal(snap_store_relabel(st, y.id, "one.db", &r2, &e), 0);
	assert_string_equal(r2.label, "one");
	assert_string_not_equal(r2.name, x.name);
	assert_memory_equal(r2.name, x.name, plen);
	snap_info fx, fy;
	assert_int_equal(snap_store_find(st, x.name, &fx, &e), 0);
	assert_int_equal(fx.id, x.id);
	assert_int_equal(snap_store_find(st, r2.name, &fy, &e), 0);
	assert_int_equal(fy.id, y.id);

	/* Relabelling to its own label keeps its name. */
	snap_info r3;
	assert_int_equal(snap_store_relabel(st, x.id, "one", &r3, &e), 0);
	assert_string_equal(r3.name, x.name);

	assert_int_equal(snap_store_relabel(st, y.id + 1000, "z", &r, &e), -ENOENT);
}

static void test_latest_is_the_newest_manual_auto_or_import(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 20);
	snap_info out;
	snap_err e;
	snap_err_clear(&e);

	assert_true(snap_kind_is_latest(SNAP_KIND_MANUAL));
	assert_true(snap_kind_is_latest(SNAP_KIND_AUTO));
	assert_true(snap_kind_is_latest(SNAP_KIND_IMPORT));
	assert_false(snap_kind_is_latest(SNAP_KIND_PRE_RESTORE));
	assert_false(snap_kind_is_latest(SNAP_KIND_CONFLICT));
	assert_false(snap_kind_is_latest(SNAP_KIND_RECOVERY));

	/* Safety snapshots alone: no latest, but a newest. */
	snap_info p = tu_snap_kind(st, SNAP_KIND_PRE_RESTORE, "p");
	assert_int_equal(snap_store_find(st, "latest", &out, &e), -ENOENT);
	assert_int_equal(snap_store_newest(st, &out, &e), 0);
	assert_int_equal(out.id, p.id);

	snap_info m = tu_snap_kind(st, SNAP_KIND_MANUAL, "m");
	tu_snap_kind(st, SNAP_KIND_PRE_RESTORE, "p2");
	tu_snap_kind(st, SNAP_KIND_CONFLICT, "c");
	snap_info r = tu_snap_kind(st, SNAP_KIND_RECOVERY, "r");
	assert_int_equal(snap_store_find(st, "latest", &out, &e), 0);
	assert_int_equal(out.id, m.id);
	assert_int_equal(snap_store_find(st, "latest.db", &out, &e), 0);
	assert_int_equal(out.id, m.id);
	assert_int_equal(snap_store_newest(st, &out, &e), 0);
	assert_int_equal(out.id, r.id);

	snap_info a = tu_snap_kind(st, SNAP_KIND_AUTO, "a");
	assert_int_equal(snap_store_find(st, "latest", &out, &e), 0);
	assert_int_equal(out.id, a.id);
	snap_info i = tu_snap_kind(st, SNAP_KIND_IMPORT, "i");
	tu_snap_kind(st, SNAP_KIND_PRE_RESTORE, "p3");
	assert_int_equal(snap_store_find(st, "latest", &out, &e), 0);
	assert_int_equal(out.id, i.id);
}

/* The event of the given kind recorded last, or fail. */
static snap_event last_event(snap_store *st, const char *kind)
{
	snap_event *ev = NULL, found;
	size_t n = 0, i;
	snap_err e;
	snap_err_clear(&e);
	memset(&found, 0, sizeof(found));
	assert_int_equal(snap_event_list(st, 0, 0, &ev, &n, &e), 0);
	for (i = n; i > 0 && strcmp(ev[i - 1].kind, kind) != 0; i--)
		;
	if (i == 0)
		fail_msg("no %s event", kind);
	found = ev[i - 1];
	free(ev);
	return found;
}

static void test_rename_gives_exactly_the_name(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 20);
	snap_info x = tu_snap(st, "x");
	snap_info y = tu_snap(st, "y");
	snap_info r, f;
	snap_err e;
	snap_err_clear(&e);

	assert_int_equal(snap_store_rename(st, x.id, "pre-upgrade-KEEP.db", &r,
					   &e), 0);
	assert_string_equal(r.name, "pre-upgrade-KEEP.db");
	assert_string_equal(r.label, "pre-upgrade-KEEP");
	assert_int_equal(r.id, x.id);
	assert_int_equal(r.created_ns, x.created_ns);
	assert_int_equal(r.kind, x.kind);
	assert_memory_equal(r.sha256, x.sha256, 32);
	assert_int_equal(snap_store_find(st, x.name, &f, &e), -ENOENT);
	assert_int_equal(snap_store_find(st, "pre-upgrade-KEEP", &f, &e), 0);
	assert_int_equal(f.id, x.id);
	snap_event ev = last_event(st, "rename");
	assert_string_equal(ev.snapshot, "pre-upgrade-KEEP.db");
	assert_non_null(strstr(ev.detail, x.name));

	/* Any printable UTF-8 name ending in .db; a name with the
	 * snapshot's own time prefix labels it with what follows. */
	assert_int_equal(snap_store_rename(st, x.id, "Vor dem Update \xc3\xa4.db",
					   &r, &e), 0);
	assert_string_equal(r.name, "Vor dem Update \xc3\xa4.db");
	char own[SNAP_NAME_MAX];
	snprintf(own, sizeof(own), "%.*sagain.db",
		 (int)strcspn(x.name, "_") + 1, x.name);
	assert_int_equal(snap_store_rename(st, x.id, own, &r, &e), 0);
	assert_string_equal(r.name, own);
	assert_string_equal(r.label, "again");

	/* Never another snapshot's name: EEXIST, nothing changed. */
	snap_err_clear(&e);
	assert_int_equal(snap_store_rename(st, x.id, y.name, &r, &e), -EEXIST);
	assert_non_null(strstr(e.msg, y.name));
	assert_int_equal(snap_store_get(st, x.id, &f, &e), 0);
	assert_string_equal(f.name, own);
	assert_int_equal(snap_store_get(st, y.id, &f, &e), 0);
	assert_string_equal(f.name, y.name);

	/* Names the lookup or the listing would confuse. */
	static const char *const bad[] = {
		"no-extension", ".db", "latest.db", "live.db", "current.db",
		".hidden.db", "twice.db.db", "tab\there.db", "del\x7f.db",
		"bad-utf8-\xff.db", "overlong-\xc0\xaf.db", "a/b.db",
		"surrogate-\xed\xa0\x80.db",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snap_err_clear(&e);
		assert_int_equal(snap_store_rename(st, x.id, bad[i], &r, &e),
				 -EINVAL);
		assert_non_null(strstr(e.msg, "cannot be a snapshot's name"));
	}
	char longname[SNAP_NAME_MAX + 8];
	memset(longname, 'n', sizeof(longname));
	strcpy(longname + SNAP_NAME_MAX - 3, ".db");
	snap_err_clear(&e);
	assert_int_equal(snap_store_rename(st, x.id, longname, &r, &e),
			 -ENAMETOOLONG);
	strcpy(longname + SNAP_NAME_MAX - 4, ".db");
	assert_int_equal(snap_store_rename(st, x.id, longname, &r, &e), 0);
	assert_int_equal(snap_store_rename(st, y.id + 1000, "z.db", &r, &e),
			 -ENOENT);

	/* A relabel names it by its time again. */
	assert_int_equal(snap_store_relabel(st, x.id, "back", &r, &e), 0);
	assert_memory_equal(r.name, x.name, strcspn(x.name, "_") + 1);
	assert_string_equal(r.name + strcspn(x.name, "_") + 1, "back.db");
}

/* Every name a snapshot gets when taken can be typed back as its name. */
static void test_names_snapshots_get_pass_the_name_check(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 5);
	char label[SNAP_LABEL_MAX + 8];
	snap_err e;
	memset(label, 'L', sizeof(label));
	label[sizeof(label) - 1] = '\0';
	const char *labels[] = { "x", ".hidden", "a.db.db", "\xff\x01", label,
				 "latest", "live", NULL };
	for (size_t i = 0; labels[i]; i++) {
		snap_info si = tu_snap(st, labels[i]);
		snap_err_clear(&e);
		if (snap_store_name_check(si.name, &e) != 0)
			fail_msg("%s: %s", si.name, e.msg);
		/* The same label twice in a second gets a suffix. */
		si = tu_snap(st, labels[i]);
		if (snap_store_name_check(si.name, &e) != 0)
			fail_msg("%s: %s", si.name, e.msg);
	}
}

static void test_pin_and_unpin_are_stored(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 5);
	snap_info a = tu_snap(st, "a");
	assert_int_equal(a.pinned, 0);
	snap_err e;
	snap_err_clear(&e);
	snap_info g;
	assert_int_equal(snap_store_set_pinned(st, a.id, 1, &e), 0);
	assert_int_equal(snap_store_get(st, a.id, &g, &e), 0);
	assert_int_equal(g.pinned, 1);
	assert_int_equal(snap_store_set_pinned(st, a.id, 0, &e), 0);
	assert_int_equal(snap_store_get(st, a.id, &g, &e), 0);
	assert_int_equal(g.pinned, 0);
	assert_int_equal(snap_store_set_pinned(st, a.id + 1000, 1, &e), -ENOENT);
}

static void test_comment_is_stored_verbatim(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 5);
	snap_info a = tu_snap(st, "a");
	assert_string_equal(a.comment, "");
	snap_err e;
	snap_err_clear(&e);
	const char *c = "it's \"before\" the migration\nsecond line; DROP TABLE x";
	assert_int_equal(snap_store_set_comment(st, a.id, c, &e), 0);
	snap_info g;
	assert_int_equal(snap_store_get(st, a.id, &g, &e), 0);
	assert_string_equal(g.comment, c);
	assert_int_equal(snap_store_set_comment(st, a.id, "", &e), 0);
	assert_int_equal(snap_store_get(st, a.id, &g, &e), 0);
	assert_string_equal(g.comment, "");
	assert_int_equal(snap_store_set_comment(st, a.id + 1000, "x", &e), -ENOENT);
}

static void test_count_and_stats_follow_the_catalog(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 300);
	assert_int_equal(tu_count(st), 0);
	snap_info a = tu_snap(st, "a");
	snap_info b = tu_snap(st, "b");
	assert_int_equal(tu_count(st), 2);
	snap_store_stats ss = stats(st);
	assert_int_equal(ss.snapshots, 2);
	assert_int_equal(ss.logical_bytes, a.image_size + b.image_size);
	assert_true(ss.pages >= a.page_count);
	assert_true(ss.stored_bytes > 0);
	assert_true(ss.file_bytes > 0);
}

/* Time of the newest event of kind (successful), 0 when none. */
static int64_t newest_event_ns(snap_store *st, const char *kind)
{
	snap_event *ev = NULL;
	int64_t t = 0;
	size_t n = 0, i;
	snap_err e;

	snap_err_clear(&e);
	if (snap_event_list(st, 0, 0, &ev, &n, &e) != 0)
		fail_msg("snap_event_list: %s", e.msg);
	for (i = 0; i < n; i++)
		if (ev[i].ok && strcmp(ev[i].kind, kind) == 0)
			t = ev[i].time_ns;
	free(ev);
	return t;
}

/* What a store getter of one integer answers; an error fails the test. */
static int64_t store_int(snap_store *st,
			 int (*get)(snap_store *, int64_t *, snap_err *))
{
	int64_t v = -1;
	snap_err e;

	snap_err_clear(&e);
	assert_int_equal(get(st, &v, &e), 0);
	return v;
}

#define data_version(st) store_int(st, snap_store_data_version)
#define changed_ns(st) store_int(st, snap_store_changed_ns)

/* A watcher of the catalog learns of other connections' commits from the
 * data version, and the catalog's change time follows creations,
 * deletions and relabels, not other events. */
static void test_catalog_change_time_and_data_version(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 20);
	snap_err e;
	snap_err_clear(&e);

	assert_int_equal(changed_ns(st), 0);
	int64_t v0 = data_version(st);
	snap_info a = tu_snap(st, "a");
	snap_info b = tu_snap(st, "b");
	assert_int_equal(changed_ns(st), b.created_ns);

	/* Another connection's commit moves the data version; an event
	 * that changes no name leaves the change time alone. */
	int64_t v1 = data_version(st);
	tu_store_exec(st, "INSERT INTO events(time_ns, kind, snapshot, ok, "
		      "detail) VALUES(%lld, 'verify', '%s', 1, 'x')",
		      (long long)b.created_ns + 1000000000LL, b.name);
	int64_t v2 = data_version(st);
	assert_true(v1 != v2);
	assert_int_equal(data_version(st), v2);
	assert_true(v0 != v2);
	assert_int_equal(changed_ns(st), b.created_ns);

	snap_info r;
	assert_int_equal(snap_store_relabel(st, a.id, "renamed", &r, &e), 0);
	assert_int_equal(changed_ns(st), newest_event_ns(st, "relabel"));
	assert_int_equal(snap_store_delete(st, b.id, &e), 0);
	assert_int_equal(changed_ns(st), newest_event_ns(st, "delete"));
	/* A failed deletion is no change. */
	int64_t before = changed_ns(st);
	assert_int_equal(snap_store_delete(st, b.id, &e), -ENOENT);
	assert_int_equal(changed_ns(st), before);
}

static void test_tables_json_counts_rows_per_table(void **state)
{
	tu_env *env = *state;
	tu_db_create(env->db, "delete", 4096, 37);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE \"odd \"\"name\"(x); INSERT INTO \"odd \"\"name\" "
		    "VALUES (1),(2)");
	/* Only names starting "sqlite_" are SQLite's own. */
	tu_exec(db, "CREATE TABLE sqlitefoo(x); INSERT INTO sqlitefoo "
		    "VALUES (1),(2),(3)");
	sqlite3_close(db);
	snap_store *st = tu_store(env);
	snap_info a = tu_snap(st, "a");
	char *json = NULL;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_tables_json(st, a.id, &json, &e), 0);
	const char *why = NULL;
	tu_jv *v = tu_json_parse(json, &why);
	if (v == NULL)
		fail_msg("tables json %s: %s", json, why);
	const tu_jv *t = tu_json_get(v, "t");
	assert_non_null(t);
	assert_int_equal(t->type, TU_JNUM);
	assert_string_equal(t->num, "37");
	const tu_jv *o = tu_json_get(v, "odd \"name");
	assert_non_null(o);
	assert_string_equal(o->num, "2");
	const tu_jv *sf = tu_json_get(v, "sqlitefoo");
	if (sf == NULL)
		fail_msg("table sqlitefoo missing from %s", json);
	assert_string_equal(sf->num, "3");
	tu_json_free(v);
	free(json);
}

static void test_delete_of_newer_reclaims_its_pages(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	int64_t pa = tu_pages(st);
	size_t la;
	uint8_t *imga = tu_image_bytes(st, a.id, &la);

	sqlite3 *db = tu_open(env->db);
	tu_db_insert(db, 2001, 4000);
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");
	assert_true(tu_pages(st) > pa + 10);

	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_delete(st, b.id, &e), 0);
	assert_int_equal(tu_pages(st), pa);
	assert_int_equal(tu_count(st), 1);
	snap_info g;
	assert_int_equal(snap_store_find(st, b.name, &g, &e), -ENOENT);
	assert_int_equal(snap_store_get(st, b.id, &g, &e), -ENOENT);
	assert_int_equal(snap_store_delete(st, b.id, &e), -ENOENT);

	/* The survivor reads byte-identical and verifies. */
	size_t la2;
	uint8_t *imga2 = tu_image_bytes(st, a.id, &la2);
	assert_int_equal(la2, la);
	assert_memory_equal(imga2, imga, la);
	uint8_t sha[32];
	tu_sha256(imga2, la2, sha);
	assert_memory_equal(sha, a.sha256, 32);
	assert_int_equal(snap_verify_snapshot(st, a.id, 1, NULL, NULL, &e), 0);
	free(imga);
	free(imga2);
}

static void test_delete_of_older_keeps_shared_pages(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET v = v || '!' WHERE id BETWEEN 10 AND 20");
	tu_db_insert(db, 2001, 2500);
	sqlite3_close(db);
	snap_info b = tu_snap(st, "b");
	int64_t pb = tu_pages(st);
	size_t lb;
	uint8_t *imgb = tu_image_bytes(st, b.id, &lb);
	uint32_t na, nb;
	int64_t *ia = page_ids(st, a.id, &na);
	int64_t *ib = page_ids(st, b.id, &nb);
	int64_t only_a = ids_only_in(ia, na, ib, nb);
	assert_true(only_a >= 1);
	assert_true(only_a < na);   /* most pages are shared */

	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_delete(st, a.id, &e), 0);
	assert_int_equal(tu_pages(st), pb - only_a);

	size_t lb2;
	uint8_t *imgb2 = tu_image_bytes(st, b.id, &lb2);
	assert_int_equal(lb2, lb);
	assert_memory_equal(imgb2, imgb, lb);
	assert_int_equal(snap_verify_snapshot(st, b.id, 1, NULL, NULL, &e), 0);

	/* Deleting the last snapshot leaves no pages behind. */
	assert_int_equal(snap_store_delete(st, b.id, &e), 0);
	assert_int_equal(tu_pages(st), 0);
	snap_store_stats ss = stats(st);
	assert_int_equal(ss.snapshots, 0);
	assert_int_equal(ss.logical_bytes, 0);
	free(ia);
	free(ib);
	free(imgb);
	free(imgb2);
}

static void test_delete_of_a_page_shared_twice_in_one_image(void **state)
{
	/* An image whose pages repeat (same content twice): refcounts must
	 * count page-map entries, so deleting it leaves nothing behind. */
	tu_env *env = *state;
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "PRAGMA page_size=1024");
	tu_exec(db, "CREATE TABLE a(x BLOB); CREATE TABLE b(x BLOB)");
	tu_exec(db, "INSERT INTO a VALUES (zeroblob(20000))");
	tu_exec(db, "INSERT INTO b VALUES (zeroblob(20000))");
	sqlite3_close(db);
	snap_store *st = tu_store(env);
	snap_info s1 = tu_snap(st, "zeros");
	assert_true(tu_pages(st) < s1.page_count);   /* overflow pages dedup */
	snap_info s2 = tu_snap(st, "zeros2");
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_delete(st, s1.id, &e), 0);
	assert_int_equal(snap_verify_snapshot(st, s2.id, 0, NULL, NULL, &e), 0);
	assert_int_equal(snap_store_delete(st, s2.id, &e), 0);
	assert_int_equal(tu_pages(st), 0);
}

/* Distinct page ids over the snapshots still in the store. */
static int64_t distinct_pages_in_use(snap_store *st)
{
	snap_info *list = NULL;
	size_t n = 0;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_list(st, &list, &n, &e), 0);
	int64_t *all = NULL;
	size_t na = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t c;
		int64_t *ids = page_ids(st, list[i].id, &c);
		all = realloc(all, (na + c) * sizeof(*all));
		memcpy(all + na, ids, c * sizeof(*ids));
		na += c;
		free(ids);
	}
	int64_t distinct = ids_only_in(all, (uint32_t)na, NULL, 0);
	free(all);
	free(list);
	return distinct;
}

static void test_store_pages_match_snapshots_through_churn(void **state)
{
	/* After every snapshot and deletion, the stored pages are exactly
	 * the distinct pages the remaining snapshots use, and they verify. */
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 300);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "CREATE TABLE blobs(x BLOB)");
	int64_t ids[24];
	size_t nids = 0;
	uint64_t x = 12345;
	snap_err e;
	snap_err_clear(&e);
	for (int round = 0; round < 24; round++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		switch ((x >> 33) % 4) {
		case 0:
			tu_exec(db, "UPDATE t SET pad = 'r%d-' || id WHERE id %% 9 = %d",
				round, (int)((x >> 40) % 9));
			break;
		case 1:
			tu_exec(db, "INSERT INTO blobs VALUES (zeroblob(%d))",
				3000 + (int)((x >> 40) % 5000));
			break;
		case 2:
			tu_exec(db, "DELETE FROM t WHERE id %% 13 = %d",
				(int)((x >> 40) % 13));
			break;
		default:
			break;   /* unchanged: a snapshot of the same pages */
		}
		ids[nids++] = tu_snap(st, "churn").id;
		if ((x >> 20) % 3 == 0 && nids > 1) {
			size_t k = (size_t)((x >> 45) % nids);
			assert_int_equal(snap_store_delete(st, ids[k], &e), 0);
			ids[k] = ids[--nids];
		}
		int64_t want = distinct_pages_in_use(st);
		if (tu_pages(st) != want)
			fail_msg("round %d: store has %lld pages, snapshots use %lld",
				 round, (long long)tu_pages(st), (long long)want);
	}
	sqlite3_close(db);
	unsigned nbad = 99;
	assert_int_equal(snap_verify_store(st, 0, NULL, NULL, &nbad, &e), 0);
	assert_int_equal(nbad, 0);
	while (nids > 0)
		assert_int_equal(snap_store_delete(st, ids[--nids], &e), 0);
	assert_int_equal(tu_pages(st), 0);
}

/* A store written before the trash existed (schema version 1, no table
 * trash): read as it is when opened read-only, upgraded in place when
 * opened for writing, its snapshots untouched. */
static void test_store_of_schema_version_1_is_upgraded(void **state)
{
	tu_env *env = *state;
	char file[PATH_MAX];
	snap_store *ro = NULL;
	snap_info *list = NULL, out;
	size_t n = 0;
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 20);
	snap_info a = tu_snap(st, "old");
	snprintf(file, sizeof(file), "%s", snap_store_file(st));
	snap_store_close(st);
	env->st = NULL;

	sqlite3 *db = tu_open(file);
	tu_exec(db, "DROP TABLE trash; DROP TABLE dicts; UPDATE meta SET "
		"value=1 WHERE key='schema_version'; PRAGMA user_version=1");
	sqlite3_close(db);

	/* Read-only: listed and found as before, nothing written. */
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_READONLY,
					 &ro, &e), 0);
	assert_int_equal(snap_store_list(ro, &list, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].id, a.id);
	assert_int_equal(list[0].trash, SNAP_TRASH_NONE);
	free(list);
	assert_int_equal(snap_store_find(ro, "latest", &out, &e), 0);
	assert_int_equal(out.id, a.id);
	snap_store_close(ro);
	db = tu_open(file);
	assert_int_equal(tu_query_int(db, "PRAGMA user_version"), 1);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM sqlite_schema "
				      "WHERE name='trash'"), 0);
	sqlite3_close(db);

	/* For writing: upgraded, the snapshot as it was, the trash usable. */
	st = tu_store(env);
	db = tu_open(file);
	assert_int_equal(tu_query_int(db, "PRAGMA user_version"),
			 SNAP_STORE_SCHEMA_VERSION);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM sqlite_schema "
				      "WHERE name IN ('trash', 'dicts')"), 2);
	assert_int_equal(tu_query_int(db, "SELECT value FROM meta WHERE "
				      "key='schema_version'"),
			 SNAP_STORE_SCHEMA_VERSION);
	sqlite3_close(db);
	assert_int_equal(snap_store_get(st, a.id, &out, &e), 0);
	assert_string_equal(out.name, a.name);
	assert_memory_equal(out.sha256, a.sha256, 32);
	assert_int_equal(out.trash, SNAP_TRASH_NONE);
	assert_int_equal(snap_trash_put(st, a.id, 0, a.name, NULL, 0, &out,
					&e), 0);
	assert_int_equal(out.trash, SNAP_TRASH_FILES);
	unsigned nbad = 9;
	assert_int_equal(snap_verify_store(st, 1, NULL, NULL, &nbad, &e), 0);
	assert_int_equal(nbad, 0);
	snap_store_close(st);
	env->st = NULL;

	/* A store newer than this code is refused, read-only or not. */
	db = tu_open(file);
	tu_exec(db, "PRAGMA user_version=%d", SNAP_STORE_SCHEMA_VERSION + 1);
	sqlite3_close(db);
	snap_err_clear(&e);
	assert_int_equal(snap_store_open(env->db, NULL, 0, &st, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "upgrade snapfs"));
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_READONLY,
					 &ro, &e), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_store_is_created_beside_the_db_with_mode_0700),
		tu_test(test_store_paths_are_absolute_from_a_relative_db),
		tu_test(test_store_opened_by_dir_alone_reads_the_recorded_db),
		tu_test(test_store_recorded_for_another_db_is_refused),
		tu_test(test_store_refuses_a_foreign_store_db_untouched),
		tu_test(test_store_missing_without_create_is_enoent),
		tu_test(test_store_open_without_db_or_dir_is_einval),
		tu_test(test_store_cannot_be_created_in_a_read_only_dir),
		tu_test(test_store_in_a_read_only_dir_refuses_changes),
		tu_test(test_store_second_daemon_open_is_ebusy),
		tu_test(test_store_of_schema_version_1_is_upgraded),
		tu_test(test_label_sanitize_follows_the_rules),
		tu_test(test_label_of_only_a_db_suffix_becomes_the_fallback),
		tu_test(test_label_sanitize_caps_length_and_bytes),
		tu_test(test_label_sanitize_is_idempotent),
		tu_test(test_stats_of_damaged_sizes_are_clamped),
		tu_test(test_delete_of_a_snapshot_with_a_damaged_map),
		tu_test(test_kind_names_round_trip),
		tu_test(test_time_and_hex_formatting),
		tu_test(test_list_is_oldest_first),
		tu_test(test_list_of_an_empty_store_is_empty),
		tu_test(test_find_accepts_name_with_or_without_db_and_latest),
		tu_test(test_relabel_keeps_time_prefix_and_stays_unique),
		tu_test(test_latest_is_the_newest_manual_auto_or_import),
		tu_test(test_rename_gives_exactly_the_name),
		tu_test(test_names_snapshots_get_pass_the_name_check),
		tu_test(test_pin_and_unpin_are_stored),
		tu_test(test_comment_is_stored_verbatim),
		tu_test(test_count_and_stats_follow_the_catalog),
		tu_test(test_catalog_change_time_and_data_version),
		tu_test(test_tables_json_counts_rows_per_table),
		tu_test(test_delete_of_newer_reclaims_its_pages),
		tu_test(test_delete_of_older_keeps_shared_pages),
		tu_test(test_delete_of_a_page_shared_twice_in_one_image),
		tu_test(test_store_pages_match_snapshots_through_churn),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
