/*
 * fs/status.c — the text of .snapfs/status.json and .snapfs/log.
 *
 * Both are generated from the engine on demand (at open, and at getattr so
 * the size is right) and never cached by the kernel: their handles are
 * direct_io and their attribute timeout is 0.
 *
 * status.json: where the database and the store are, how many snapshots,
 * sizes and the dedup ratio (logical bytes over stored bytes), the newest
 * snapshot, the next scheduled one (null: this daemon schedules none), the
 * last verification recorded in the event history, the edit session, and
 * the restores this mount performed.
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

static void status_time(snap_json *j, const char *key, int64_t ns)
{
	char when[40];

	snap_json_key(j, key);
	snap_time_iso(ns, when);
	snap_json_str(j, when);
}

static int status_json(char **text, size_t *len)
{
	snap_store_stats st;
	snap_event *ev = NULL;
	size_t n = 0, i;
	snap_info last;
	struct stat lst;
	snap_json j;
	snap_err err;
	char ratio[64], mode[32];
	int open, dirty, rc;
	unsigned writers;

	snap_err_clear(&err);
	memset(&st, 0, sizeof(st));
	rc = snap_store_stats_get(snap_fs.store, &st, &err);
	if (rc != 0)
		return rc;
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "version");
	snap_json_str(&j, SNAPFS_VERSION);
	snap_json_key(&j, "database");
	snap_json_str(&j, snap_store_db_path(snap_fs.store));
	snap_json_key(&j, "store");
	snap_json_str(&j, snap_store_dir(snap_fs.store));
	snap_json_key(&j, "mountpoint");
	snap_json_str(&j, snap_fs.mountpoint);
	snap_json_key(&j, "pid");
	snap_json_int(&j, (int64_t)getpid());
	status_time(&j, "started", snap_fs.started_ns);

	snap_json_key(&j, "live");
	if (snap_live_stat(snap_fs.live, &lst) == 0) {
		snap_json_obj_begin(&j);
		snap_json_key(&j, "size");
		snap_json_int(&j, (int64_t)lst.st_size);
		status_time(&j, "mtime", (int64_t)lst.st_mtim.tv_sec *
			    1000000000 + lst.st_mtim.tv_nsec);
		snap_live_journal_mode(snap_fs.live, mode, sizeof(mode));
		snap_json_key(&j, "journal_mode");
		snap_json_str(&j, mode);
		snap_json_obj_end(&j);
	} else {
		snap_json_null(&j);
	}

	snap_json_key(&j, "snapshots");
	snap_json_int(&j, st.snapshots);
	snap_json_key(&j, "pages");
	snap_json_int(&j, st.pages);
	snap_json_key(&j, "stored_bytes");
	snap_json_int(&j, (int64_t)st.stored_bytes);
	snap_json_key(&j, "logical_bytes");
	snap_json_int(&j, (int64_t)st.logical_bytes);
	snap_json_key(&j, "store_file_bytes");
	snap_json_int(&j, (int64_t)st.file_bytes);
	snap_json_key(&j, "dedup_ratio");
	if (st.stored_bytes > 0) {
		snprintf(ratio, sizeof(ratio), "%.2f",
			 (double)st.logical_bytes / (double)st.stored_bytes);
		snap_json_raw(&j, ratio);
	} else {
		snap_json_null(&j);
	}

	snap_json_key(&j, "last_snapshot");
	if (snap_store_find(snap_fs.store, "latest", &last, NULL) == 0)
		snap_json_info(&j, &last);
	else
		snap_json_null(&j);
	snap_json_key(&j, "next_scheduled_snapshot");
	snap_json_null(&j);

	snap_json_key(&j, "last_verification");
	if (snap_event_list(snap_fs.store, 0, 0, &ev, &n, NULL) == 0) {
		for (i = n; i > 0; i--)
			if (strcmp(ev[i - 1].kind, "verify") == 0)
				break;
		if (i > 0)
			snap_json_event(&j, &ev[i - 1]);
		else
			snap_json_null(&j);
		free(ev);
	} else {
		snap_json_null(&j);
	}

	snap_session_describe(&open, &writers, &dirty);
	snap_json_key(&j, "edit_session");
	snap_json_obj_begin(&j);
	snap_json_key(&j, "open");
	snap_json_bool(&j, open);
	snap_json_key(&j, "writers");
	snap_json_int(&j, writers);
	snap_json_key(&j, "unapplied");
	snap_json_bool(&j, dirty);
	snap_json_obj_end(&j);

	pthread_mutex_lock(&snap_fs.lock);
	uint64_t ok = snap_fs.restores_ok, failed = snap_fs.restores_failed;
	uint64_t conflicts = snap_fs.conflicts;
	pthread_mutex_unlock(&snap_fs.lock);
	snap_json_key(&j, "restores_through_mount");
	snap_json_obj_begin(&j);
	snap_json_key(&j, "ok");
	snap_json_int(&j, (int64_t)ok);
	snap_json_key(&j, "failed");
	snap_json_int(&j, (int64_t)failed);
	snap_json_key(&j, "conflicts");
	snap_json_int(&j, (int64_t)conflicts);
	snap_json_obj_end(&j);
	snap_json_obj_end(&j);

	if (j.oom) {
		snap_json_free(&j);
		return -ENOMEM;
	}
	/* Hand the buffer over, with a final newline for cat. */
	char *buf = malloc(j.len + 2);
	if (!buf) {
		snap_json_free(&j);
		return -ENOMEM;
	}
	memcpy(buf, j.buf, j.len);
	buf[j.len] = '\n';
	buf[j.len + 1] = 0;
	*len = j.len + 1;
	*text = buf;
	snap_json_free(&j);
	return 0;
}

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
