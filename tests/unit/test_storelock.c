/*
 * tests/unit/test_storelock.c — engine/storelock.c: the daemon lock, its
 * text (pid, mount point), who is refused at once and who is waited for.
 *
 * The file is included, so that a test can point storelock_mountinfo at a
 * mountinfo of its own (a snapfs mount a unit test cannot make) and
 * shorten storelock_wait_ms; the engine library's storelock.o is then not
 * linked (every symbol it defines is defined here first).  Real mounts:
 * tests/integration/mount/remount.py.
 */
#include "testutil.h"

#include <pthread.h>
#include <semaphore.h>

#include "../../engine/storelock.c"

/* A mountinfo in the test's directory with one line for escaped mount
 * point emnt, of filesystem type `type`; storelock reads it from now. */
static void fake_mountinfo(const tu_env *env, char *path, const char *emnt,
			   const char *type)
{
	char text[PATH_MAX * 2];
	int n;

	tu_path(env, path, "mountinfo");
	n = snprintf(text, sizeof(text),
		     "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
		     "48 22 0:43 / %s rw,nosuid,nodev,relatime shared:2 - %s "
		     "snapfs:/x/app.db rw,user_id=0,group_id=0\n", emnt, type);
	tu_write_file(path, text, (size_t)n);
	storelock_mountinfo = path;
}

/* The daemon lock's text. */
static char *lock_text(const tu_env *env)
{
	char path[PATH_MAX];
	size_t len;
	uint8_t *b;

	snprintf(path, sizeof(path), "%s/live.db.snapfs/daemon.lock",
		 env->dir);
	b = tu_read_file(path, &len);
	b = realloc(b, len + 1);
	b[len] = '\0';
	return (char *)b;
}

static void restore_globals(void)
{
	storelock_mountinfo = "/proc/self/mountinfo";
	storelock_wait_ms = SNAP_DAEMON_LOCK_WAIT_MS;
}

static void test_a_daemon_not_yet_mounted_is_refused_at_once(void **state)
{
	tu_env *env = *state;
	snap_store *d1 = NULL, *d2 = NULL;
	char want[128];
	snap_err e;

	snap_err_clear(&e);
	tu_db_create(env->db, "delete", 4096, 3);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_CREATE |
					 SNAP_OPEN_DAEMON, &d1, &e), 0);
	storelock_wait_ms = 60 * 60 * 1000;    /* a wait would hang */
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_DAEMON, &d2,
					 &e), -EBUSY);
	assert_null(d2);
	snprintf(want, sizeof(want), "is already served by another snapfs "
		 "daemon (pid %ld)", (long)getpid());
	assert_non_null(strstr(e.msg, want));
	assert_non_null(strstr(e.msg, "live.db.snapfs"));
	snap_store_close(d1);
	restore_globals();
}

static void test_a_mounted_daemon_is_refused_naming_its_mount(void **state)
{
	tu_env *env = *state;
	snap_store *d1 = NULL, *d2 = NULL;
	char want[PATH_MAX], mi[PATH_MAX], *text;
	const char *mnt = "/srv/my mnt\\x\nend";
	const char *emnt = "/srv/my\\040mnt\\134x\\012end";
	snap_err e;

	snap_err_clear(&e);
	tu_db_create(env->db, "delete", 4096, 3);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_CREATE |
					 SNAP_OPEN_DAEMON, &d1, &e), 0);
	assert_int_equal(snap_store_daemon_mounted(d1, mnt, &e), 0);
	text = lock_text(env);
	snprintf(want, sizeof(want), "%ld\n%s\n", (long)getpid(), emnt);
	assert_string_equal(text, want);
	free(text);

	fake_mountinfo(env, mi, emnt, "fuse.snapfs");
	storelock_wait_ms = 60 * 60 * 1000;    /* a wait would hang */
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_DAEMON, &d2,
					 &e), -EBUSY);
	snprintf(want, sizeof(want), "is already served by another snapfs "
		 "daemon (pid %ld, mounted at %s)", (long)getpid(), mnt);
	assert_non_null(strstr(e.msg, want));
	/* Said once. */
	assert_null(strstr(strstr(e.msg, "already served") + 1,
			   "already served"));
	snap_store_close(d1);
	restore_globals();
}

static void test_a_gone_mount_is_waited_for_then_given_up(void **state)
{
	tu_env *env = *state;
	snap_store *d1 = NULL, *d2 = NULL;
	char mi[PATH_MAX], want[PATH_MAX];
	struct sigaction before, after;
	snap_err e;

	snap_err_clear(&e);
	tu_db_create(env->db, "delete", 4096, 3);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_CREATE |
					 SNAP_OPEN_DAEMON, &d1, &e), 0);
	assert_int_equal(snap_store_daemon_mounted(d1, "/srv/mnt", &e), 0);
	/* Something else is mounted there now: not a snapfs mount. */
	fake_mountinfo(env, mi, "/srv/mnt", "ext4");
	storelock_wait_ms = 50;
	assert_int_equal(sigaction(SIGALRM, NULL, &before), 0);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_DAEMON, &d2,
					 &e), -EBUSY);
	assert_null(d2);
	snprintf(want, sizeof(want), "is still held by snapfs daemon pid %ld, ",
		 (long)getpid());
	assert_non_null(strstr(e.msg, want));
	assert_non_null(strstr(e.msg, "whose mount at /srv/mnt is gone: it "
			       "has not finished shutting down"));
	/* The SIGALRM handler from before (the test watchdog's) is back. */
	assert_int_equal(sigaction(SIGALRM, NULL, &after), 0);
	assert_true(after.sa_handler == before.sa_handler);
	snap_store_close(d1);
	restore_globals();
}

/* The holder closes once the new daemon is about to block: the blocking
 * flock() of the table signals it first. */
static sem_t blocking;
static snap_store *holder;

static int flock_signals(int fd, int op)
{
	if (!(op & LOCK_NB))
		sem_post(&blocking);
	return flock(fd, op);
}

static void *close_holder(void *arg)
{
	(void)arg;
	while (sem_wait(&blocking) < 0)
		;
	snap_store_close(holder);
	return NULL;
}

static void test_a_gone_mount_is_waited_for_until_it_exits(void **state)
{
	tu_env *env = *state;
	snap_store *d2 = NULL;
	pthread_t t;
	char *text, want[64];
	snap_err e;

	snap_err_clear(&e);
	tu_db_create(env->db, "delete", 4096, 3);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_CREATE |
					 SNAP_OPEN_DAEMON, &holder, &e), 0);
	/* Recorded, and not a mount point in /proc/self/mountinfo. */
	assert_int_equal(snap_store_daemon_mounted(holder, env->dir, &e), 0);
	assert_int_equal(sem_init(&blocking, 0, 0), 0);
	snap_sys.flock = flock_signals;
	assert_int_equal(pthread_create(&t, NULL, close_holder, NULL), 0);
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_DAEMON, &d2,
					 &e), 0);
	pthread_join(t, NULL);
	snap_sys.flock = snap_sys_libc.flock;
	sem_destroy(&blocking);
	/* The new holder's text: its pid, no mount yet. */
	text = lock_text(env);
	snprintf(want, sizeof(want), "%ld\n", (long)getpid());
	assert_string_equal(text, want);
	free(text);
	env->st = d2;
}

/* The deadline fires after the wait's check and before flock() blocks
 * (the fake below spins until it has fired): a later fire still ends the
 * wait.  The fake blocks as flock() would, in nanosleep()s a fire
 * interrupts, and gives up after 5 s with EDEADLK, which is what a timer
 * that fired only once would come to. */
static int flock_after_the_fire(int fd, int op)
{
	while (!storelock_fired)
		;
	for (int i = 0; i < 500; i++) {
		struct timespec ts = {0, 10 * 1000000L};

		if (flock(fd, op | LOCK_NB) == 0)
			return 0;
		if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
			return -1;
	}
	errno = EDEADLK;
	return -1;
}

static void test_a_fire_before_flock_blocks_still_ends_the_wait(void **state)
{
	tu_env *env = *state;
	char path[PATH_MAX];
	int held, fd;

	tu_path(env, path, "lock");
	held = open(path, O_RDWR | O_CREAT, 0600);
	fd = open(path, O_RDWR);
	assert_true(held >= 0 && fd >= 0);
	assert_int_equal(flock(held, LOCK_EX), 0);
	snap_sys.flock = flock_after_the_fire;
	errno = 0;
	assert_int_equal(storelock_wait(fd, 20), -1);
	snap_sys.flock = snap_sys_libc.flock;
	assert_int_equal(errno, ETIMEDOUT);
	close(fd);
	close(held);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_a_daemon_not_yet_mounted_is_refused_at_once),
		tu_test(test_a_mounted_daemon_is_refused_naming_its_mount),
		tu_test(test_a_gone_mount_is_waited_for_then_given_up),
		tu_test(test_a_fire_before_flock_blocks_still_ends_the_wait),
		tu_test(test_a_gone_mount_is_waited_for_until_it_exits),
	};
	return cmocka_run_group_tests_name("storelock", tests, NULL, NULL);
}
