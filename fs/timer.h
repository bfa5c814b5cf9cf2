/*
 * fs/timer.h — the timer thread: schedules and health (timer.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_TIMER_H
#define FS_TIMER_H

#include "ino.h"

/* ---- the timer thread (timer.c) ----------------------------------------- */

struct snap_timer_opts {
	int64_t every_ns;           /* -o every=, 0 = no automatic snapshots */
	snap_keep_policy keep;      /* -o keep=, max_size= */
	int64_t check_ns;           /* -o check=, 0 = none */
	int auto_recover;           /* -o auto_recover */
	int64_t verify_ns;          /* -o verify=, 0 = none */
	unsigned verify_slice;      /* snapshots verified per verify run */
	char *on_failure;           /* -o on_failure=CMD, or NULL */
};

/* Before mounting: open the schedule and set the failure hook (0 or a
 * negative errno, err says why).  After the notifier started: start the
 * thread.  At shutdown, before the store closes: stop it (and close the
 * schedule; safe when never opened or started). */
int snap_timer_open(const struct snap_timer_opts *o, snap_err *err);
int snap_timer_start(void);
void snap_timer_stop(void);
/* For status.json: the next automatic snapshot and the interval (0, 0
 * without a schedule). */
void snap_timer_schedule(int64_t *next_ns, int64_t *interval_ns);

/* The thread plumbing the timer and the replication thread (offsite.c)
 * share: now on the monotonic clock (ns); wait on cond with lock held
 * until signalled or until wake (monotonic ns, INT64_MAX: no deadline);
 * start fn on *thread with cond bound to the monotonic clock (0 or a
 * negative errno); set *stop under lock, signal, join, destroy cond. */
int64_t snap_timer_mono_ns(void);
void snap_timer_wait(pthread_cond_t *cond, pthread_mutex_t *lock,
		     int64_t wake);
int snap_timer_thread_start(pthread_cond_t *cond, pthread_t *thread,
			    void *(*fn)(void *));
void snap_timer_thread_stop(pthread_mutex_t *lock, pthread_cond_t *cond,
			    int *stop, pthread_t thread);

#endif /* FS_TIMER_H */
