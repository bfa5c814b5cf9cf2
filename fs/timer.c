/*
 * fs/timer.c — the daemon's one timer thread: automatic snapshots
 * (-o every=, with keep= and max_size= applied by the engine after each),
 * health checks of the live database (-o check=, auto_recover) and the
 * background scrub of the store (-o verify=, a slice per period), and the
 * failure hook (-o on_failure=CMD).
 *
 * The thread sleeps on a condition variable bound to CLOCK_MONOTONIC until
 * the earliest due time; snap_timer_stop() wakes it and joins it (before
 * the store is closed).  A task in progress finishes first.
 *
 * Due times of the schedule are the engine's (UTC ns, snap_sched_next);
 * check and verify are due every period after the previous run, measured
 * on the monotonic clock (a wall-clock jump neither skips nor repeats them).
 *
 * After an automatic snapshot (or pruning, or a recovery) the catalog
 * watcher is told (watch.c: snapshots/' time, its names and latest.db
 * follow), and the kernel to forget current.db after a recovery.
 *
 * on_failure: the engine calls the hook for every failed snapshot, check,
 * verify or restore event, from whichever thread recorded it.  The command
 * runs as /bin/sh -c CMD in a grandchild (double fork: nothing waits for it,
 * no zombie is left) with SNAPFS_EVENT, SNAPFS_SNAPSHOT, SNAPFS_DETAIL,
 * SNAPFS_DB, SNAPFS_STORE and SNAPFS_TIME in its environment.  The
 * environment is built before fork(): the children only call
 * async-signal-safe functions.
 *
 * Thread-safety: t->lock protects stop and the published next/interval
 * values; the schedule itself is touched only by the timer thread (and by
 * open/close before/after it runs).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"

extern char **environ;

struct snap_timer {
	struct snap_timer_opts o;
	snap_sched *sched;
	pthread_t thread;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	int64_t next_snapshot_ns;     /* published for status (lock) */
};

static struct snap_timer timer = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/* Now on the monotonic clock, in nanoseconds (timer.h). */
int64_t snap_timer_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wait on cond (lock held) until signalled or until wake on the
 * monotonic clock (INT64_MAX: no deadline) (timer.h). */
void snap_timer_wait(pthread_cond_t *cond, pthread_mutex_t *lock,
		     int64_t wake)
{
	struct timespec ts;

	if (wake == INT64_MAX) {
		pthread_cond_wait(cond, lock);
		return;
	}
	ts.tv_sec = (time_t)(wake / 1000000000LL);
	ts.tv_nsec = (long)(wake % 1000000000LL);
	pthread_cond_timedwait(cond, lock, &ts);
}

/* Initialize cond on the monotonic clock and start fn on a thread; 0 or a
 * negative errno (cond destroyed again) (timer.h). */
int snap_timer_thread_start(pthread_cond_t *cond, pthread_t *thread,
			    void *(*fn)(void *))
{
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		return -rc;
	rc = pthread_create(thread, NULL, fn, NULL);
	if (rc != 0) {
		pthread_cond_destroy(cond);
		return -rc;
	}
	return 0;
}

/* Set *stop under lock, wake the thread, join it, destroy cond
 * (timer.h). */
void snap_timer_thread_stop(pthread_mutex_t *lock, pthread_cond_t *cond,
			    int *stop, pthread_t thread)
{
	pthread_mutex_lock(lock);
	*stop = 1;
	pthread_cond_signal(cond);
	pthread_mutex_unlock(lock);
	pthread_join(thread, NULL);
	pthread_cond_destroy(cond);
}

/* ---- on_failure --------------------------------------------------------- */

/* The engine failed (an event): run on_failure with the event in its
 * environment. */
static void failure_hook(void *ctx, const struct snap_event *ev)
{
	const char *cmd = ctx;
	char *vars[6] = { NULL };
	char **envp = NULL;
	char when[40];
	size_t n = 0, i;
	pid_t pid;
	int ok = 1;

	if (!cmd || !ev)
		return;
	snap_time_iso(ev->time_ns, when);
	if (asprintf(&vars[0], "SNAPFS_EVENT=%s", ev->kind) < 0)
		vars[0] = NULL, ok = 0;
	if (asprintf(&vars[1], "SNAPFS_SNAPSHOT=%s", ev->snapshot) < 0)
		vars[1] = NULL, ok = 0;
	if (asprintf(&vars[2], "SNAPFS_DETAIL=%s", ev->detail) < 0)
		vars[2] = NULL, ok = 0;
	if (asprintf(&vars[3], "SNAPFS_DB=%s", snap_fs.db_path ?
		     snap_fs.db_path : "") < 0)
		vars[3] = NULL, ok = 0;
	if (asprintf(&vars[4], "SNAPFS_STORE=%s", snap_fs.store ?
		     snap_store_dir(snap_fs.store) : "") < 0)
		vars[4] = NULL, ok = 0;
	if (asprintf(&vars[5], "SNAPFS_TIME=%s", when) < 0)
		vars[5] = NULL, ok = 0;
	while (environ && environ[n])
		n++;
	envp = ok ? calloc(n + 7, sizeof(*envp)) : NULL;
	if (!envp) {
		snap_log(LOG_ERR, "on_failure: out of memory");
		goto out;
	}
	{
		size_t k = 0;
		for (i = 0; i < n; i++)
			if (strncmp(environ[i], "SNAPFS_", 7) != 0)
				envp[k++] = environ[i];
		for (i = 0; i < 6; i++)
			envp[k++] = vars[i];
		envp[k] = NULL;
	}
	pid = fork();
	if (pid < 0) {
		snap_log(LOG_ERR, "on_failure: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		char *argv[] = { "sh", "-c", (char *)cmd, NULL };
		pid_t g = fork();
		if (g != 0)
			_exit(g < 0 ? 1 : 0);
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	snap_log(LOG_INFO, "on_failure: ran for %s event%s%s", ev->kind,
		 ev->snapshot[0] ? " of " : "", ev->snapshot);
out:
	free(envp);
	for (i = 0; i < 6; i++)
		free(vars[i]);
}

/* ---- the tasks ---------------------------------------------------------- */

/* The catalog changed: the watcher compares the listing now. */
static void invalidate_snapshots(void)
{
	snap_watch_changed();
}

/* Take the automatic snapshot when due, then prune by the keep rules. */
static void run_tick(void)
{
	struct snap_live_mark mark;
	snap_tick_result r;
	snap_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	snap_err_clear(&err);
	/* Around the capture: is the snapshot the live state (livereuse.c)? */
	snap_live_capture_begin(snap_fs.live, &mark);
	rc = snap_sched_tick(timer.sched, snap_time_now_ns(), &r, &err);
	snap_live_capture_end(snap_fs.live, &mark, rc == 0 && r.took ?
			      r.info.id : 0, r.info.sha256,
			      r.info.image_size);
	if (rc != 0)
		snap_log(LOG_ERR, "automatic snapshot failed: %s", err.msg);
	else if (r.took)
		snap_log(LOG_INFO, "automatic snapshot %s", r.info.name);
	if (r.pruned)
		snap_log(LOG_INFO, "retention removed %zu snapshot%s",
			 r.pruned, r.pruned == 1 ? "" : "s");
	if (r.took || r.pruned)
		invalidate_snapshots();
}

/* PRAGMA quick_check of the live database (and auto_recover). */
static void run_check(void)
{
	snap_check_result r;
	snap_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	snap_err_clear(&err);
	/* A recovery restores: no daemon connection on the live database,
	 * and no restore through the mount at the same time. */
	pthread_mutex_lock(&snap_fs.apply_lock);
	if (timer.o.auto_recover)
		snap_live_quiesce(snap_fs.live);
	rc = snap_health_check(snap_fs.store, timer.o.auto_recover, &r, &err);
	if (timer.o.auto_recover)
		snap_live_resume(snap_fs.live);
	pthread_mutex_unlock(&snap_fs.apply_lock);
	if (r.corrupt) {
		snap_log(LOG_ERR, "check: the live database is corrupt: %s%s%s",
			 r.problem, r.have_recovery ? "; kept as " : "",
			 r.have_recovery ? r.recovery.name : "");
		if (r.restored)
			snap_log(LOG_WARNING, "check: restored %s",
				 r.restored_from.name);
		invalidate_snapshots();
		if (r.restored)
			snap_notify_current(snap_fs.notify);
	} else if (rc != 0) {
		snap_log(LOG_ERR, "check could not run: %s", err.msg);
	}
}

/* Verify the next slice of stored snapshots. */
static void run_verify(void)
{
	snap_scrub_result r;
	snap_err err;
	int rc;

	memset(&r, 0, sizeof(r));
	snap_err_clear(&err);
	rc = snap_health_scrub(snap_fs.store, timer.o.verify_slice, 0, &r,
			       &err);
	if (rc != 0)
		snap_log(LOG_ERR, "verify: %s", err.msg);
}

/* A periodic job of the timer thread (timer.lock held): when *next
 * (monotonic ns, 0 = none) is due, run job with the lock dropped and set
 * the next run period later; else bring *wake forward to *next.  1 when
 * the job ran. */
static int run_due(int64_t now, int64_t *next, int64_t period,
		   void (*job)(void), int64_t *wake)
{
	if (!*next)
		return 0;
	if (now < *next) {
		if (*next < *wake)
			*wake = *next;
		return 0;
	}
	pthread_mutex_unlock(&timer.lock);
	job();
	pthread_mutex_lock(&timer.lock);
	*next = snap_timer_mono_ns() + period;
	return 1;
}

/* The timer thread: automatic snapshots, checks and verifies, each when due. */
static void *timer_main(void *arg)
{
	int64_t next_check = 0, next_verify = 0;

	(void)arg;
	if (timer.o.check_ns > 0)
		next_check = snap_timer_mono_ns() + timer.o.check_ns;
	if (timer.o.verify_ns > 0)
		next_verify = snap_timer_mono_ns() + timer.o.verify_ns;
	pthread_mutex_lock(&timer.lock);
	while (!timer.stop) {
		int64_t now = snap_timer_mono_ns(), wake = INT64_MAX, d;
		int did = 0;

		if (timer.sched) {
			int64_t due = snap_sched_next(timer.sched);
			if (due > 0) {
				d = due - snap_time_now_ns();
				if (d <= 0) {
					pthread_mutex_unlock(&timer.lock);
					run_tick();
					pthread_mutex_lock(&timer.lock);
					timer.next_snapshot_ns =
						snap_sched_next(timer.sched);
					did = 1;
				} else if (now + d < wake)
					wake = now + d;
			}
		}
		if (!did)
			did = run_due(now, &next_check, timer.o.check_ns,
				      run_check, &wake);
		if (!did)
			did = run_due(now, &next_verify, timer.o.verify_ns,
				      run_verify, &wake);
		if (did || timer.stop)
			continue;
		snap_timer_wait(&timer.cond, &timer.lock, wake);
	}
	pthread_mutex_unlock(&timer.lock);
	return NULL;
}

/* ---- start and stop ----------------------------------------------------- */

/* Open the schedule and set the failure hook before mounting. */
int snap_timer_open(const struct snap_timer_opts *o, snap_err *err)
{
	snap_sched_opts so;
	int rc;

	timer.o = *o;
	if (o->on_failure)
		snap_store_set_failure_hook(snap_fs.store, failure_hook,
					    timer.o.on_failure);
	if (o->every_ns > 0) {
		memset(&so, 0, sizeof(so));
		so.every_ns = o->every_ns;
		so.keep = o->keep;
		rc = snap_sched_open(snap_fs.store, &so, &timer.sched, err);
		if (rc != 0)
			return rc;
		timer.next_snapshot_ns = snap_sched_next(timer.sched);
	}
	return 0;
}

/* Start the timer thread (after the notifier). */
int snap_timer_start(void)
{
	int rc;

	if (!timer.sched && timer.o.check_ns <= 0 && timer.o.verify_ns <= 0)
		return 0;
	timer.stop = 0;
	rc = snap_timer_thread_start(&timer.cond, &timer.thread, timer_main);
	if (rc != 0)
		return rc;
	timer.running = 1;
	return 0;
}

/* Stop the thread and close the schedule (safe when never started). */
void snap_timer_stop(void)
{
	if (timer.running) {
		snap_timer_thread_stop(&timer.lock, &timer.cond, &timer.stop,
				       timer.thread);
		timer.running = 0;
	}
	if (timer.sched) {
		snap_sched_close(timer.sched);
		timer.sched = NULL;
	}
	if (snap_fs.store && timer.o.on_failure)
		snap_store_set_failure_hook(snap_fs.store, NULL, NULL);
}

/* For status.json: the next automatic snapshot and the interval. */
void snap_timer_schedule(int64_t *next_ns, int64_t *interval_ns)
{
	pthread_mutex_lock(&timer.lock);
	*next_ns = timer.sched ? timer.next_snapshot_ns : 0;
	*interval_ns = timer.sched ? timer.o.every_ns : 0;
	pthread_mutex_unlock(&timer.lock);
}
