/*
 * fs/status.c — the text of .snapfs/status.json and .snapfs/log.
 *
 * Both are generated from the engine on demand (at open, and at getattr so
 * the size is right) and never cached by the kernel: their handles are
 * direct_io and their attribute timeout is 0.
 *
 * status.json: the engine's status object — the same fields as `snapctl
 * status --json` (where the database and the store are, counts by kind,
 * sizes and the dedup ratio, the newest snapshot, the last restore, check
 * and verification, the schedule) — plus "mount": the mount point, the
 * daemon's pid, the live file, the edit session, and the restores this
 * mount performed, and how read-only opens of current.db were served
 * (peeks, whole images copied).
 *
 * log: the event history, oldest first, one line per event:
 *   <UTC time>  <kind>  <snapshot or ->  ok|FAILED  <detail>
 *
 * Thread-safety: no shared state; the engine serializes its catalog.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <syslog.h>

#include "fs.h"

/* Append a formatted line to a growing buffer; -ENOMEM on failure. */
static int text_add(char **buf, size_t *len, size_t *cap, const char *fmt,
		    ...) __attribute__((format(printf, 4, 5)));
static int text_add(char **buf, size_t *len, size_t *cap, const char *fmt,
		    ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf ? *buf + *len : NULL,
			      *buf ? *cap - *len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if (*buf && *len + (size_t)n < *cap) {
			*len += (size_t)n;
			return 0;
		}
		size_t ncap = (*cap ? *cap * 2 : 4096) + (size_t)n;
		char *nb = realloc(*buf, ncap);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
}

/* The text of .snapfs/log: the event history, one line per event. */
static int status_log(char **text, size_t *len)
{
	snap_event *ev = NULL;
	size_t n = 0, i, cap = 0;
	char *buf = NULL;
	snap_err err;
	int rc;

	*len = 0;
	snap_err_clear(&err);
	rc = snap_event_list(snap_fs.store, 0, 0, &ev, &n, &err);
	if (rc != 0)
		return rc;
	rc = text_add(&buf, len, &cap, "%s", "");
	for (i = 0; rc == 0 && i < n; i++) {
		char when[40];
		snap_time_iso(ev[i].time_ns, when);
		rc = text_add(&buf, len, &cap, "%s  %-10s  %s  %s  %s\n", when,
			      ev[i].kind,
			      ev[i].snapshot[0] ? ev[i].snapshot : "-",
			      ev[i].ok ? "ok" : "FAILED", ev[i].detail);
	}
	free(ev);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*text = buf;
	return 0;
}

/* "key": an ISO time for people, "key_ns": the same in ns since the epoch
 * for programs. */
static void status_time(snap_json *j, const char *key, int64_t ns)
{
	char when[40], key_ns[64];

	snap_json_key(j, key);
	snap_time_iso(ns, when);
	snap_json_str(j, when);
	snprintf(key_ns, sizeof(key_ns), "%s_ns", key);
	snap_json_key(j, key_ns);
	snap_json_int(j, ns);
}

/* "key": {"name0": value0, ...}: n counters as one object. */
static void status_counts(snap_json *j, const char *key,
			  const char *const names[], const uint64_t values[],
			  int n)
{
	int i;

	snap_json_key(j, key);
	snap_json_obj_begin(j);
	for (i = 0; i < n; i++) {
		snap_json_key(j, names[i]);
		snap_json_int(j, (int64_t)values[i]);
	}
	snap_json_obj_end(j);
}

/* The mount's own part: where, who, the live file, the edit session and
 * the restores this mount performed. */
static void status_mount(snap_json *j)
{
	struct stat lst;
	char mode[32];
	int open, dirty;
	unsigned writers;
	uint64_t ok, failed, conflicts, peeks, built, reused;

	snap_json_obj_begin(j);
	snap_json_key(j, "mountpoint");
	snap_json_str(j, snap_fs.mountpoint);
	snap_json_key(j, "pid");
	snap_json_int(j, (int64_t)getpid());
	snap_json_key(j, "version");
	snap_json_str(j, SNAPFS_VERSION);
	status_time(j, "started", snap_fs.started_ns);

	snap_json_key(j, "live");
	if (snap_live_stat(snap_fs.live, &lst) == 0) {
		snap_json_obj_begin(j);
		snap_json_key(j, "size");
		snap_json_int(j, (int64_t)lst.st_size);
		status_time(j, "mtime", (int64_t)lst.st_mtim.tv_sec *
			    1000000000 + lst.st_mtim.tv_nsec);
		snap_live_journal_mode(snap_fs.live, mode, sizeof(mode));
		snap_json_key(j, "journal_mode");
		snap_json_str(j, mode);
		snap_json_obj_end(j);
	} else {
		snap_json_null(j);
	}

	snap_session_describe(&open, &writers, &dirty);
	snap_json_key(j, "edit_session");
	snap_json_obj_begin(j);
	snap_json_key(j, "open");
	snap_json_bool(j, open);
	snap_json_key(j, "writers");
	snap_json_int(j, writers);
	snap_json_key(j, "unapplied");
	snap_json_bool(j, dirty);
	snap_json_obj_end(j);

	pthread_mutex_lock(&snap_fs.lock);
	ok = snap_fs.restores_ok;
	failed = snap_fs.restores_failed;
	conflicts = snap_fs.conflicts;
	pthread_mutex_unlock(&snap_fs.lock);
	status_counts(j, "restores", (const char *const[]){ "ok", "failed",
		      "conflicts" }, (const uint64_t[]){ ok, failed,
		      conflicts }, 3);

	/* Read-only opens of current.db: how many were served by a peek,
	 * how many whole images were copied into staging (live.c), how many
	 * read a snapshot's image instead (livereuse.c). */
	snap_live_counts(snap_fs.live, &peeks, &built, &reused);
	status_counts(j, "current_reads", (const char *const[]){ "peeks",
		      "images_built", "snapshots_reused" },
		      (const uint64_t[]){ peeks, built, reused }, 3);
	snap_json_obj_end(j);
}

/* With -o replicate=URL: "replica" is that URL's, from its own events,
 * and names it even before its first replication (the newest event may
 * be of another replica: an earlier mount's, or a snapctl replicate). */
static int status_offsite(snap_status *st, snap_err *err)
{
	const char *url = snap_offsite_url();
	int rc = url ? snap_status_replica(snap_fs.store, st, url, err) : 0;

	if (rc == 0 && url)
		st->replica_running_ns = snap_offsite_running_since();
	return rc;
}

/*
 * The engine's status object (the fields `snapctl status --json` shows, a
 * contract for scripts: engine/status.c), with one more member, "mount": the
 * engine's members are merged into the file's object (json.h), followed
 * by a newline.
 */
static int status_json(char **text, size_t *len)
{
	snap_status st;
	snap_json j, eng;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_status_get(snap_fs.store, snap_time_now_ns(), &st, &err);
	if (rc != 0) {
		snap_log(LOG_ERR, "status: %s", err.msg);
		return rc;
	}
	snap_timer_schedule(&st.next_snapshot_ns, &st.interval_ns);
	rc = status_offsite(&st, &err);
	if (rc != 0) {
		snap_log(LOG_ERR, "status: %s", err.msg);
		return rc;
	}
	snap_json_init(&eng);
	snap_status_json(&eng, &st);
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_fields(&j, &eng);
	snap_json_key(&j, "mount");
	status_mount(&j);
	snap_json_obj_end(&j);
	snap_json_free(&eng);
	rc = 0;
	if (!snap_json_done(&j) || asprintf(text, "%s\n", j.buf) < 0) {
		*text = NULL;
		rc = -ENOMEM;
	} else {
		*len = j.len + 1;
	}
	snap_json_free(&j);
	return rc;
}

/* The text of status.json or log, generated now (fs.h). */
int snap_status_text(fuse_ino_t ino, char **text, size_t *len)
{
	*text = NULL;
	*len = 0;
	if (ino == SNAP_INO_STATUS)
		return status_json(text, len);
	if (ino == SNAP_INO_LOG)
		return status_log(text, len);
	return -ENOENT;
}
