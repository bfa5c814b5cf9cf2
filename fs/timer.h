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

#endif /* FS_TIMER_H */
