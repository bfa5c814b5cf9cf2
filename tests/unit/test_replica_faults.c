/*
 * tests/unit/test_replica_faults.c — faults of a replica that its
 * commands must take for what they are (run by test_replica.c's main,
 * also on S3): a damaged pruned/set is a problem verify names; verify
 * --full with no room for its temporary image judges no snapshot, nor
 * does a hot journal planted beside that image judge a good one bad; a
 * writer's lock stays alive through a run longer than its lifetime.
 * (A pack lost alone: test_replica_frames.c, pack_gone.)
 */
#include "replica_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "replica_int.h"
#include "sys.h"

/* A damaged set of pruned snapshots (which replicate and prune refuse
 * to go past) is a problem verify names; an intact one is none. */
void test_damaged_pruned_set_is_named_by_verify(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_err err;
	unsigned nbad;
	uint8_t set[8 + 16];
	replicated_pair(env, url, path, &a, &b);
	snap_replica *r = ropen(url, 0);
	memcpy(set, "SFPR0001", 8);
	memset(set + 8, 0x5a, 16);
	assert_int_equal(snap_replica_obj_put(r, "pruned/set", set, sizeof set,
					      NULL, &err), 0);
	assert_int_equal(snap_replica_verify(r, NULL, 0, NULL, prob_cb, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 0);
	snap_replica_close(r);
	obj_flip(url, "pruned/set", 0);
	r = ropen(url, 0);
	g_nprob = 0;
	assert_int_equal(snap_replica_verify(r, NULL, 0, NULL, prob_cb, NULL,
					     &nbad, &err), 0);
	assert_int_equal(nbad, 1);
	assert_int_equal(g_nprob, 1);
	assert_string_equal(g_prob_snap, "pruned/set");
	assert_non_null(strstr(g_prob_text, "replicate and prune refuse"));
	/* One snapshot named: the set is not its problem. */
	assert_int_equal(snap_replica_verify(r, a.name, 0, NULL, prob_cb,
					     NULL, &nbad, &err), 0);
	assert_int_equal(nbad, 0);
	snap_replica_close(r);
}

/* verify --full whose temporary image cannot be written (a full TMPDIR,
 * here a file size limit) is an error of its own, not a verdict: no
 * snapshot is called bad for a local disk's lack of room. */
void test_full_verify_without_room_judges_nothing(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_err err;
	unsigned nbad = 0;
	struct rlimit old, lim;
	snap_replica *r = replica_pair(env, url, path, &a, &b);
	assert_true(a.image_size > 4096);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4096;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	g_nprob = 0;
	int rc = snap_replica_verify(r, NULL, 1, env->dir, prob_cb, NULL,
				     &nbad, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_true(rc < 0);
	assert_int_equal(g_nprob, 0);
	assert_int_equal(nbad, 0);
	assert_non_null(strstr(err.msg, "TMPDIR"));
	assert_non_null(strstr(err.msg, "could not run"));
	/* With room: clean. */
	assert_int_equal(snap_replica_verify(r, NULL, 1, env->dir, prob_cb,
					     NULL, &nbad, &err), 0);
	assert_int_equal(nbad, 0);
	snap_replica_close(r);
}

/* mkostemp that, for verify --full's temporary image, plants a -journal
 * beside it as another user could in /tmp (its name is in the listing):
 * any first byte but 0 makes it a hot journal to SQLite. */
static char planted[PATH_MAX];
static int mkostemp_planting(char *tmpl, int flags)
{
	int fd = snap_sys_libc.mkostemp(tmpl, flags);
	if (fd >= 0 && strstr(tmpl, ".snapfs-verify-")) {
		snprintf(planted, sizeof planted, "%s-journal", tmpl);
		tu_write_file(planted, "planted hot journal", 19);
	}
	return fd;
}

/* verify --full reads its temporary image without looking beside it: a
 * hot journal planted at its name's -journal (by whoever may write
 * TMPDIR) does not make a good snapshot bad (by name, integrity_check
 * "could not run": SQLITE_READONLY_ROLLBACK, the snapshot counted bad). */
void test_full_verify_ignores_a_planted_journal(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX];
	snap_err err;
	unsigned nbad = 0;
	snap_replica *r = replica_pair(env, url, path, &a, &b);
	planted[0] = '\0';
	g_nprob = 0;
	snap_sys.mkostemp = mkostemp_planting;
	int rc = snap_replica_verify(r, NULL, 1, env->dir, prob_cb, NULL,
				     &nbad, &err);
	snap_sys.mkostemp = snap_sys_libc.mkostemp;
	assert_true(planted[0] != '\0');
	unlink(planted);
	if (rc != 0 || nbad != 0)
		fail_msg("a planted journal made verify --full fail: rc %d, "
			 "%u bad: %s", rc, nbad, g_nprob ? g_prob_text :
			 err.msg);
	snap_replica_close(r);
}

/* A writer's lock outlives six hours when its run does: the lock of a
 * run that started seven hours ago is dead to another writer (a prune
 * takes over, and would delete the packs the run has sent but no map
 * names yet), unless the run wrote it again as it went
 * (snap_replica_lock_keep, called per pack and every 4096 pages); a run
 * whose lock was taken over so is told, and never writes it back. */
void test_long_run_keeps_its_lock_alive(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX], name[64], other[64], doc[160];
	snap_err err;
	snap_replica *r = replica_pair(env, url, path, &a, &b);
	snap_replica *r2 = ropen(url, 0);
	long long t = (long long)(snap_time_now_ns() / 1000000000) -
		7 * 3600;
	int n = snprintf(doc, sizeof doc, "{\"what\":\"replicate\",\"host\":"
			 "\"elsewhere\",\"pid\":1,\"time\":%lld}", t);
	assert_int_equal(snap_replica_lock(r, "replicate", name, sizeof name,
					   &err), 0);
	for (int keep = 0; keep < 2; keep++) {
		assert_int_equal(snap_replica_obj_put(r, name, doc, (size_t)n,
						      NULL, &err), 0);
		r->lock_put_s = t;
		if (keep)
			assert_int_equal(snap_replica_lock_keep(r, &err), 0);
		int rc = snap_replica_lock(r2, "prune", other, sizeof other,
					   &err);
		assert_int_equal(rc, keep ? -EBUSY : 0);
		if (rc == 0)
			snap_replica_unlock(r2, other);
		if (keep)
			continue;
		/* Taken over (r2 removed it as dead): r's run learns it at
		 * its next renewal and before it writes a map, and never
		 * writes the lock back. */
		r->lock_put_s = t;
		assert_int_equal(snap_replica_lock_keep(r, &err), -EBUSY);
		assert_non_null(strstr(err.msg, "lost its lock"));
		assert_int_equal(snap_replica_lock_held(r, &err), -EBUSY);
		uint8_t *gone;
		size_t glen;
		assert_int_equal(snap_replica_obj_get(r, name, &gone, &glen,
						      &err), -ENOENT);
	}
	snap_replica_unlock(r, name);
	snap_replica_close(r2);
	snap_replica_close(r);
}

/* Another writer's lock that cannot be read (the server out of reach for
 * that one GET) may be a live writer's: the lock is not taken (and this
 * writer's own is taken back).  Only one that does not open with the key
 * is forged and blocks nobody.  file:// only (the read fails by way of
 * the system-call table): test_replica.c's main leaves it out on S3. */
static int openat_unreachable(int dirfd, const char *path, int flags,
			      mode_t mode)
{
	if (strlen(path) == 32 && strspn(path, "0123456789abcdef") == 31 &&
	    path[31] == 'z') {
		errno = ETIMEDOUT;
		return -1;
	}
	return snap_sys_libc.openat(dirfd, path, flags, mode);
}

void test_unreadable_lock_of_another_writer_blocks(void **state)
{
	tu_env *env = *state;
	snap_info a, b;
	char url[PATH_MAX + 8], path[PATH_MAX], name[64];
	snap_err err;

	snap_replica *r = replica_pair(env, url, path, &a, &b);
	const char *other = "locks/0123456789abcdef0123456789abcdez";
	assert_int_equal(snap_replica_obj_put(r, other, "{}", 2, NULL,
					      &err), 0);
	snap_sys.openat = openat_unreachable;
	int rc = snap_replica_lock(r, "prune", name, sizeof name, &err);
	snap_sys.openat = snap_sys_libc.openat;
	if (rc != -ETIMEDOUT)
		fail_msg("an unreadable lock: %d %s", rc, err.msg);
	/* Our own lock was taken back. */
	snap_objstore_close(objs_list(url, "locks"));
	assert_int_equal(g_nnames, 1);
	snap_replica_close(r);
}
