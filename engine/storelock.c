/*
 * engine/storelock.c — the daemon lock: one daemon serves a store, and a
 * daemon whose mount is gone does not keep the next one out.
 *
 * daemon.lock is flock()ed exclusively by the daemon serving the store,
 * from snap_store_open(SNAP_OPEN_DAEMON) until snap_store_close(); the
 * kernel drops the lock when the daemon dies, SIGKILL included.  Its text
 * says who holds it:
 *
 *   "PID\n"        written when the lock is taken (before the mount);
 *   "PID\nMNT\n"   once the daemon has mounted (snap_store_daemon_mounted),
 *                  MNT escaped as /proc/self/mountinfo escapes a mount
 *                  point (space, tab, newline and backslash as \ooo), so
 *                  that a mount point holding a newline stays one line
 *                  and compares with mountinfo as it is.
 *
 * The second text is written over the first with one pwrite() at offset 0
 * that only extends it: a reader sees the one or the other, never a part.
 *
 * A new daemon that finds the lock taken reads the text and asks
 * /proc/self/mountinfo whether MNT is still a snapfs mount (a FUSE type,
 * source "snapfs:..."):
 *
 *   - it is: the store is served; refused at once (-EBUSY, "pid N,
 *     mounted at MNT");
 *   - no MNT yet (a daemon between taking the lock and mounting, or an
 *     older snapfs): refused at once (-EBUSY, "pid N");
 *   - MNT is not mounted any more: `fusermount3 -u` returned while that
 *     daemon is still closing the store (its threads, staging, the
 *     catalog).  The new daemon waits for the lock, blocked in flock()
 *     for at most SNAP_DAEMON_LOCK_WAIT_MS, then starts; when the time
 *     runs out, -EBUSY saying that the holder has not finished shutting
 *     down.
 *
 * What may race, and why it is harmless: the text is read after the failed
 * flock(), so its holder may have changed in between (the old daemon left,
 * a third one took the lock: its text is read, and judged, instead); a
 * pid written is never used to decide anything (the flock says whether
 * its holder lives, the mount whether it serves), only to name it; a
 * mountinfo that cannot be read counts as "still mounted" (refused at
 * once, as before the wait existed).  A daemon in another mount namespace
 * whose mount is not visible here looks exiting: the wait runs out and
 * says so.
 *
 * The bounded wait: flock(LOCK_EX) blocks; a POSIX timer sends SIGALRM to
 * this thread alone (SIGEV_THREAD_ID) at the deadline, through a handler
 * installed without SA_RESTART, so flock() returns EINTR.  The handler and
 * the signal mask are put back afterwards; the timer is deleted before
 * (a signal it raised is delivered to our handler while it is still
 * installed).  Waits in one process take turns (a mutex), since the
 * handler is the process's.  The daemon takes the lock before it starts
 * any thread or installs its own signal handlers.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "store_int.h"
#include "sys.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* Where mounts are read (a unit test points it at a file of its own). */
static const char *storelock_mountinfo = "/proc/self/mountinfo";
/* How long a new daemon waits for one whose mount is gone. */
static int storelock_wait_ms = SNAP_DAEMON_LOCK_WAIT_MS;

/* One wait at a time in a process: SIGALRM's handler is process-wide. */
static pthread_mutex_t storelock_wait_mu = PTHREAD_MUTEX_INITIALIZER;
/* Set by the handler of the wait's SIGALRM; under storelock_wait_mu. */
static volatile sig_atomic_t storelock_fired;

/* The wait's SIGALRM: only interrupts flock(). */
static void storelock_alarm(int sig)
{
	(void)sig;
	storelock_fired = 1;
}

/*
 * flock(fd, LOCK_EX), waiting at most ms milliseconds: 0, or -1 with
 * errno (ETIMEDOUT when the time ran out).  Other signals that interrupt
 * the wait do not end it (their handlers have run).  Called with
 * storelock_wait_mu held.
 */
static int storelock_timed(int fd, int ms)
{
	struct sigaction sa, old_sa;
	struct sigevent sev;
	struct itimerspec its;
	sigset_t alrm, old_mask;
	timer_t timer;
	int rc, e;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = storelock_alarm;     /* no SA_RESTART: EINTR */
	sigemptyset(&sa.sa_mask);
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGALRM;
	sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	/* And again every 100 ms after: a fire that lands between the
	 * check below and the next flock() is not the last one. */
	its.it_interval.tv_nsec = 100L * 1000000L;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);

	if (sigaction(SIGALRM, &sa, &old_sa) < 0)
		return -1;
	if (timer_create(CLOCK_MONOTONIC, &sev, &timer) < 0) {
		e = errno;
		sigaction(SIGALRM, &old_sa, NULL);
		errno = e;
		return -1;
	}
	storelock_fired = 0;
	pthread_sigmask(SIG_UNBLOCK, &alrm, &old_mask);
	if (timer_settime(timer, 0, &its, NULL) < 0) {
		rc = -1;
		e = errno;
	} else {
		/* The table's flock: snap_sys_flock() would retry EINTR. */
		do {
			rc = snap_sys.flock(fd, LOCK_EX);
			e = errno;
		} while (rc < 0 && e == EINTR && !storelock_fired);
	}
	timer_delete(timer);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGALRM, &old_sa, NULL);
	if (rc < 0 && e == EINTR)
		e = ETIMEDOUT;
	errno = e;
	return rc;
}

/* storelock_timed() for one thread at a time; ms <= 0 does not wait. */
static int storelock_wait(int fd, int ms)
{
	int rc, e;

	if (ms <= 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	pthread_mutex_lock(&storelock_wait_mu);
	rc = storelock_timed(fd, ms);
	e = errno;
	pthread_mutex_unlock(&storelock_wait_mu);
	errno = e;
	return rc;
}

/* mnt as mountinfo writes a mount point: space, tab, newline, backslash
 * as \ooo.  0, or -1 when it does not fit in cap. */
static int storelock_escape(const char *mnt, char *out, size_t cap)
{
	size_t k = 0;

	for (; *mnt; mnt++) {
		if (k + 5 > cap)
			return -1;
		if (strchr(" \t\n\\", *mnt))
			k += (size_t)sprintf(out + k, "\\%03o",
					     (unsigned char)*mnt);
		else
			out[k++] = *mnt;
	}
	out[k] = '\0';
	return 0;
}

/*
 * Is emnt (escaped) a snapfs mount point now?  1 yes, 0 no; 1 as well
 * when mountinfo cannot be read (then nothing may be waited for).  A line:
 * "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - TYPE SOURCE ...".
 */
static int storelock_mounted(const char *emnt)
{
	char *line = NULL, *point, *type, *src, *opts, *mnt = strdup(emnt);
	size_t cap = 0;
	int found = 0;
	FILE *mi = mnt ? fopen(storelock_mountinfo, "re") : NULL;

	if (!mi) {
		free(mnt);
		return 1;
	}
	snap_octal_unescape(mnt);
	while (!found && getline(&line, &cap, mi) > 0)
		found = snap_mountinfo_line(line, &point, &type, &src,
					    &opts) == 0 &&
			strcmp(point, mnt) == 0 &&
			strncmp(type, "fuse", 4) == 0 &&
			strncmp(src, "snapfs:", 7) == 0;
	free(line);
	free(mnt);
	fclose(mi);
	return found;
}

/* The holder's text: its pid ("?" when none) and its escaped mount point
 * ("" when it has not mounted). */
static void storelock_holder(int fd, char *pid, size_t pcap, char *emnt,
			     size_t mcap)
{
	char buf[PATH_MAX * 4 + 64], *nl, *nl2;
	ssize_t n = snap_sys_pread(fd, buf, sizeof(buf) - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	*emnt = '\0';
	nl = strchr(buf, '\n');
	if (nl) {
		*nl = '\0';
		nl2 = strchr(nl + 1, '\n');
		if (nl2) {           /* the mount point is whole */
			*nl2 = '\0';
			snprintf(emnt, mcap, "%s", nl + 1);
		}
	}
	snprintf(pid, pcap, "%s", *buf ? buf : "?");
}

/*
 * The lock is taken: refuse at once, or wait for a holder whose mount is
 * gone.  0 with the lock, or -EBUSY (or another -errno) with a message.
 */
static int storelock_busy(snap_store *s, int fd, snap_err *err)
{
	char pid[32], emnt[PATH_MAX * 4 + 1];
	int e;

	storelock_holder(fd, pid, sizeof(pid), emnt, sizeof(emnt));
	if (*emnt && !storelock_mounted(emnt)) {
		if (storelock_wait(fd, storelock_wait_ms) == 0)
			return 0;
		e = errno;
		if (e != ETIMEDOUT)
			return snap_err_set(err, -e, "cannot lock %s/daemon."
					    "lock: %s", s->dir, strerror(e));
		/* Who holds it now (it may be another daemon). */
		storelock_holder(fd, pid, sizeof(pid), emnt, sizeof(emnt));
		if (*emnt && !storelock_mounted(emnt)) {
			snap_octal_unescape(emnt);
			return snap_err_set(err, -EBUSY, "store %s is still "
					    "held by snapfs daemon pid %s, "
					    "whose mount at %s is gone: it has "
					    "not finished shutting down after "
					    "%d s of waiting; wait for it to "
					    "exit (or stop it: kill %s), then "
					    "start again", s->dir, pid, emnt,
					    storelock_wait_ms / 1000, pid);
		}
	}
	if (!*emnt)
		return snap_err_set(err, -EBUSY, "store %s is already served "
				    "by another snapfs daemon (pid %s)",
				    s->dir, pid);
	snap_octal_unescape(emnt);
	return snap_err_set(err, -EBUSY, "store %s is already served by "
			    "another snapfs daemon (pid %s, mounted at %s)",
			    s->dir, pid, emnt);
}

/* Take the daemon lock (store_int.h). */
int snap_store_daemon_lock(snap_store *s, snap_err *err)
{
	char pid[32];
	int fd, rc, e;

	fd = snap_store_file_open(s, "daemon.lock", O_RDWR | O_CREAT, err);
	if (fd < 0)
		return fd;
	if (snap_sys_flock(fd, LOCK_EX | LOCK_NB) < 0) {
		e = errno;
		rc = e == EWOULDBLOCK ? storelock_busy(s, fd, err) :
		     snap_err_set(err, -e, "cannot lock %s/daemon.lock: %s",
				  s->dir, strerror(e));
		if (rc) {
			snap_sys_close(fd);
			return rc;
		}
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (snap_sys_ftruncate(fd, 0) == 0 &&
	    snap_sys_write(fd, pid, strlen(pid)) < 0) {
		/* The text only names the holder and its mount: see above. */
	}
	s->daemon_fd = fd;
	return 0;
}

/* Record where the daemon mounted (store.h). */
int snap_store_daemon_mounted(snap_store *s, const char *mountpoint,
			      snap_err *err)
{
	char text[PATH_MAX * 4 + 64], emnt[PATH_MAX * 4 + 1];
	ssize_t w;
	int n, e;

	if (s->daemon_fd < 0)
		return snap_err_set(err, -EINVAL, "store %s: no daemon lock "
				    "held", s->dir);
	if (storelock_escape(mountpoint, emnt, sizeof(emnt)) < 0)
		return snap_err_set(err, -ENAMETOOLONG, "mount point %s: name "
				    "too long", mountpoint);
	n = snprintf(text, sizeof(text), "%ld\n%s\n", (long)getpid(), emnt);
	/* One write over "PID\n", only extending it (see the top). */
	w = snap_sys_pwrite(s->daemon_fd, text, (size_t)n, 0);
	if (w == n)
		return 0;
	e = w < 0 ? errno : EIO;
	return snap_err_set(err, -e, "cannot write %s/daemon.lock: %s",
			    s->dir, strerror(e));
}
