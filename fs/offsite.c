/*
 * fs/offsite.c — the daemon's offsite replica: -o replicate=URL uploads
 * every snapshot the replica lacks (engine/replica.h, snap_replica_push)
 * after each change of the catalog, or with -o replicate_every=DURATION
 * at most once per DURATION.
 *
 * Start-up: the passphrase (-o passphrase_file=FILE, else
 * SNAPFS_PASSPHRASE) is read once, and the replica is opened once before
 * anything is mounted (created when missing, encrypted; creating one
 * without a passphrase is refused like `snapctl replicate` without
 * --no-encryption).  A wrong passphrase, a missing bucket, missing
 * credentials: a clear error, exit 1, nothing mounted.  The passphrase is
 * wiped once the replica is open (the replica holds the unwrapped key);
 * the file is opened without following a link and refused when it is not
 * a regular file or when its group or others may read it.
 *
 * The work happens on this file's own thread, never on a FUSE thread: the
 * catalog watcher (watch.c) tells it of every change of the listing, by
 * any process (snapshots/ touched, the schedule, snapctl), and a
 * replication runs once when the daemon starts.  A replication holds no
 * filesystem lock; it takes the store's lock only for its short catalog
 * and cache statements, as snapctl replicate would.
 *
 * Outcome: every run records an event of kind "replicate" in the store
 * (snap_replica_push_recorded; events.h, SNAP_REPLICATE_EVENT: the detail
 * starts with the URL and ": ", the snapshot column names the replica's
 * newest snapshot on success), which is what status.json, `snapctl status` and Prometheus
 * report — no network in status.  A failure logs one line, and the event
 * runs on_failure (the engine's failure hook, timer.c); it is retried at
 * the next change of the catalog, or, with replicate_every=, at the next
 * period.  Nothing local changes on a failure but the event.
 *
 * A replica that does not answer at start (-ETIMEDOUT, -EHOSTUNREACH:
 * the network not up yet at boot, the server down; -EAGAIN: it answers
 * 5xx, starting up or failing; s3http.c gives a
 * certificate not trusted or a bad URL -EPROTO, which stops it as a
 * mistake in the configuration does) does not stop the start: a warning, and the thread opens it at its first run, then at
 * each run until it opens, each failure an event like a failed
 * replication.  The passphrase is kept until then, in a page locked in
 * memory and left out of core dumps.
 *
 * Stopping: snap_offsite_stop cancels every request of the process
 * (snap_replica_cancel_all: an open in flight too) before it joins the
 * thread, so a replication to
 * a server that stopped answering ends at once instead of after its
 * timeouts and retries (the daemon unmounts only after this).
 *
 * Thread-safety: off.lock protects stop, pending and the retry state;
 * the replica handle is used by the thread alone once it runs (but for
 * snap_replica_cancel, which any thread may call).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"
#include "replica.h"

struct snap_offsite {
	struct snap_offsite_opts o;
	snap_store *store;
	snap_replica *replica;
	pthread_t thread;
	int running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;
	int pending;          /* the catalog changed since the last run */
	int failed;           /* the last run failed: retry each period */
	int deferred;         /* the replica did not answer at start: opened
				 by the thread (off_run) */
	size_t passlen;
	int64_t since_ns;     /* the run in progress began (realtime), or 0 */
};

/* The passphrase, until the replica opens: a page of its own, locked in
 * memory and left out of core dumps. */
static char off_pass[4096] __attribute__((aligned(4096)));

static struct snap_offsite off = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/* Wipe the passphrase kept for an open that has not happened yet. */
static void off_pass_wipe(void)
{
	memset(off_pass, 0, sizeof(off_pass));
	__asm__ __volatile__("" : : "r"(off_pass) : "memory");
	off.passlen = 0;
}

/* Open (or create) the replica with the passphrase kept in off_pass;
 * 0 (off.replica set, under off.lock) or a negative errno. */
static int off_open(snap_err *err)
{
	const char *url = off.o.url;
	size_t len = off.passlen;
	snap_replica *r = NULL;
	int rc;

	rc = snap_replica_open(url, len ? off_pass : NULL, len,
			       SNAP_REPLICA_CREATE, &r, err);
	if (rc == -EPERM && !len)
		rc = snap_err_set(err, rc, "replica %s: no passphrase to create "
				  "it with (give -o passphrase_file=FILE or "
				  "SNAPFS_PASSPHRASE; an unencrypted replica "
				  "is made with snapctl replicate URL "
				  "--no-encryption)", url);
	else if (rc == -EPERM)   /* a plain replica, and a passphrase given */
		rc = snap_err_set(err, rc, "replica %s is not encrypted, but a "
				  "passphrase was given: refused (its config "
				  "may have been replaced); to replicate to it "
				  "unencrypted, start snapfs without -o "
				  "passphrase_file= and SNAPFS_PASSPHRASE",
				  url);
	if (rc != 0)
		return rc;
	pthread_mutex_lock(&off.lock);
	off.replica = r;
	pthread_mutex_unlock(&off.lock);
	off_pass_wipe();
	return 0;
}

/* Whether a failed open means only that the server did not answer (a
 * network not up yet at boot, the server down): not a mistake in the
 * configuration, which stops the start. */
static int off_unreachable(int rc)
{
	return rc == -ETIMEDOUT || rc == -EHOSTUNREACH || rc == -EAGAIN;
}

int snap_offsite_open(const struct snap_offsite_opts *o, snap_store *store,
		      snap_err *err)
{
	int rc;

	off.o = *o;
	off.store = store;
	if (!o->url)
		return 0;
	rc = snap_replica_pass_read(o->passphrase_file, "passphrase_file=",
				    "SNAPFS_PASSPHRASE", off_pass, err);
	if (rc < 0)
		goto out;
	if (rc == 1)
		fprintf(stderr, "snapfs: warning: %s\n", err->msg);
	off.passlen = strlen(off_pass);
	/* Kept in memory only until the replica opens: not swapped out. */
	(void)mlock(off_pass, sizeof(off_pass));
	(void)madvise(off_pass, sizeof(off_pass), MADV_DONTDUMP);
	rc = off_open(err);
	if (off_unreachable(rc)) {
		fprintf(stderr, "snapfs: warning: %s; starting without the "
			"replica: snapfs tries it again once mounted and then "
			"at each change of the snapshot list%s (each failure "
			"an event of kind replicate, running on_failure)\n",
			err->msg, o->every_ns > 0 ? " (at most once per "
			"replicate_every=)" : "");
		off.deferred = 1;
		snap_err_clear(err);
		return 0;
	}
out:
	off_pass_wipe();
	return rc;
}

/* The catalog watcher saw the listing change: replicate (soon). */
static void off_kick(void)
{
	pthread_mutex_lock(&off.lock);
	off.pending = 1;
	pthread_cond_signal(&off.cond);
	pthread_mutex_unlock(&off.lock);
}

/* One replication, recorded as an event (and on_failure by the engine's
 * failure hook); 0 or a negative errno. */
static int off_run(void)
{
	snap_replicate_stats st;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	if (!off.replica) {
		rc = off_open(&err);
		if (rc == -ECANCELED)
			return rc;
		if (rc != 0) {
			snap_log(LOG_ERR, "replicate to %s failed: %s",
				 off.o.url, snap_err_after(err.msg, off.o.url));
			snap_replica_failure_record(off.store, off.o.url,
						    &err);
			return rc;
		}
		snap_log(LOG_INFO, "replica %s opened", off.o.url);
	}
	rc = snap_replica_push_recorded(off.replica, off.store, off.o.url,
					NULL, NULL, &st, &err);
	if (rc == -ECANCELED) {
		snap_log(LOG_INFO, "replicate to %s stopped: snapfs is "
			 "stopping", off.o.url);
		return rc;
	}
	if (rc != 0) {
		snap_log(LOG_ERR, "replicate to %s failed: %s", off.o.url,
			 err.msg);
		return rc;
	}
	snap_log(LOG_INFO, "replicated %" PRIu64 " snapshot%s to %s (%" PRIu64
		 " new page%s, %" PRIu64 " bytes)", st.snapshots,
		 st.snapshots == 1 ? "" : "s", off.o.url, st.pages,
		 st.pages == 1 ? "" : "s", st.bytes);
	return 0;
}

/* The thread: waits for a change of the catalog (and, with
 * replicate_every=, for the period to end), then replicates. */
static void *off_main(void *arg)
{
	int64_t next = 0;     /* monotonic: earliest next run (every=) */

	(void)arg;
	pthread_mutex_lock(&off.lock);
	while (!off.stop) {
		int want = off.pending || (off.o.every_ns > 0 && off.failed);
		int64_t now = snap_timer_mono_ns();

		if (want && (off.o.every_ns <= 0 || now >= next)) {
			int rc;

			off.pending = 0;
			off.since_ns = snap_time_now_ns();
			pthread_mutex_unlock(&off.lock);
			rc = off_run();
			pthread_mutex_lock(&off.lock);
			off.since_ns = 0;
			off.failed = rc != 0;
			next = snap_timer_mono_ns() + off.o.every_ns;
			continue;
		}
		snap_timer_wait(&off.cond, &off.lock, want ? next : INT64_MAX);
	}
	pthread_mutex_unlock(&off.lock);
	return NULL;
}

int snap_offsite_start(void)
{
	int rc;

	if (!off.replica && !off.deferred)
		return 0;
	off.stop = 0;
	off.pending = 1;                 /* once at start */
	rc = snap_timer_thread_start(&off.cond, &off.thread, off_main);
	if (rc != 0)
		return rc;
	off.running = 1;
	snap_watch_set_hook(off_kick);
	return 0;
}

void snap_offsite_stop(void)
{
	if (off.running) {
		snap_watch_set_hook(NULL);
		/* A run in flight stops at once (its requests fail): the
		 * daemon does not wait minutes for a server that stopped
		 * answering before it unmounts. */
		snap_replica_cancel_all();
		/* Not snap_timer_thread_stop: off.cond is never destroyed.
		 * A watcher thread that loaded the hook just before it was
		 * cleared may still call off_kick, which signals it; a
		 * static condition variable can outlive us. */
		pthread_mutex_lock(&off.lock);
		off.stop = 1;
		pthread_cond_signal(&off.cond);
		pthread_mutex_unlock(&off.lock);
		pthread_join(off.thread, NULL);
		off.running = 0;
	}
	if (off.replica) {
		snap_replica_close(off.replica);
		off.replica = NULL;
	}
	off_pass_wipe();
	off.deferred = 0;
}

int64_t snap_offsite_running_since(void)
{
	int64_t ns;

	pthread_mutex_lock(&off.lock);
	ns = off.since_ns;
	pthread_mutex_unlock(&off.lock);
	return ns;
}

const char *snap_offsite_url(void)
{
	/* deferred first: when it is 0, off.replica was set before any thread
	 * started and does not change until the stop. */
	return off.deferred || off.replica ? off.o.url : NULL;
}
