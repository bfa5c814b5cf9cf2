/*
 * tools/snapctl_mount.c — "-C MOUNTPOINT": the database and the store a
 * snapfs mount serves, read from the daemon's MOUNTPOINT/.snapfs/status.json.
 *
 * The daemon writes the two paths as top-level string fields "database"
 * and "store" (fs/status.c; a daemon before issue 10 wrote "db", which is
 * still read when "database" is absent).  When the daemon schedules
 * snapshots the file also says "next_snapshot_ns" (an integer, ns since
 * the epoch) and "interval_seconds", which "status" shows; absent or null
 * is fine.  A replica mount (snapfs URL MNT, fs/replica.c) writes the URL
 * as the string "replica" and no paths: -C says to use --replica URL.
 * A store's mount reports its replica as the object "replica" (with
 * -o replicate=URL, that URL's even before its first run): "status" then
 * reports the same one.
 *
 * SQLite reads the file (json_valid, json_type, json_extract on an
 * in-memory connection: ctl_json_query), not a parser of our own; times
 * come as integers, so nothing parses a date either.  Anything that is not
 * one valid JSON object is "not a snapfs status file", never a guess; a
 * path only inside a nested object does not count.
 *
 * Whoever could have written the status file must be trusted (mnt_open):
 * root's snapctl -C on a directory another user controls, or on a FUSE
 * filesystem another user mounted there, would otherwise work on the
 * database and store they name (prune, restore, create).
 *
 * The strings found stay allocated for the life of the process (the
 * command line points at them), in file-scope variables so a leak checker
 * sees them as reachable.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ctl_cmds.h"

#define MNT_STATUS_MAX (1 << 20)   /* a status file is a few KiB */

static char *mnt_db;       /* the database path from the status file */
static char *mnt_store;    /* the store directory from it */
static char *mnt_replica;  /* a replica mount's URL (a string "replica") */
static char *mnt_offsite;  /* the replica a store's mount reports */

/* One row, or none when the text is not one JSON object.  A path counts
 * only as a string; the numbers only as integers. */
static const char mnt_sql[] =
	"SELECT CASE json_type(j, '$.database') WHEN 'text' "
	"         THEN json_extract(j, '$.database') "
	"         ELSE CASE json_type(j, '$.db') WHEN 'text' "
	"              THEN json_extract(j, '$.db') END END, "
	"       CASE json_type(j, '$.store') WHEN 'text' "
	"         THEN json_extract(j, '$.store') END, "
	"       CASE json_type(j, '$.next_snapshot_ns') WHEN 'integer' "
	"         THEN json_extract(j, '$.next_snapshot_ns') END, "
	"       CASE json_type(j, '$.interval_seconds') WHEN 'integer' "
	"         THEN json_extract(j, '$.interval_seconds') END, "
	"       CASE json_type(j, '$.replica') WHEN 'text' "
	"         THEN json_extract(j, '$.replica') END, "
	"       CASE json_type(j, '$.replica.url') WHEN 'text' "
	"         THEN json_extract(j, '$.replica.url') END, "
	"       CASE json_type(j, '$.replica.running_since_ns') "
	"         WHEN 'integer' "
	"         THEN json_extract(j, '$.replica.running_since_ns') END "
	"FROM (SELECT ?1 AS j) "
	"WHERE CASE WHEN json_valid(j) THEN json_type(j) = 'object' END";

/* What the query found. */
typedef struct mnt_found {
	int rows;
	int oom;
	ctl_args *a;
} mnt_found;

/* A text column as a new string, or NULL (also when out of memory: oom). */
static char *mnt_text(sqlite3_stmt *st, int col, mnt_found *f)
{
	const char *v = (const char *)sqlite3_column_text(st, col);
	char *copy;

	if (sqlite3_column_type(st, col) != SQLITE_TEXT || !v)
		return NULL;
	copy = strdup(v);
	if (!copy)
		f->oom = 1;
	return copy;
}

/* The row of mnt_sql: keep the paths, set the schedule fields. */
static int mnt_row(sqlite3_stmt *st, void *arg)
{
	mnt_found *f = arg;

	f->rows++;
	mnt_db = mnt_text(st, 0, f);
	mnt_store = mnt_text(st, 1, f);
	mnt_replica = mnt_text(st, 4, f);
	mnt_offsite = mnt_text(st, 5, f);
	if (sqlite3_column_type(st, 2) == SQLITE_INTEGER)
		f->a->mount_next_ns = sqlite3_column_int64(st, 2);
	if (sqlite3_column_type(st, 3) == SQLITE_INTEGER)
		f->a->mount_interval_ns = sqlite3_column_int64(st, 3) *
					  1000000000LL;
	if (sqlite3_column_type(st, 6) == SQLITE_INTEGER)
		f->a->mount_replica_running_ns = sqlite3_column_int64(st, 6);
	return 0;
}

/* The user a FUSE filesystem mounted at real (a resolved path) was
 * mounted by (its user_id= in /proc/self/mountinfo; the last mount there
 * wins, as it hides those below), -1 when real is no FUSE mount point. */
static long mnt_fuse_uid(const char *real)
{
	char line[3 * PATH_MAX], *point, *type, *src, *opts, *save;
	long uid = -1;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	while (f && fgets(line, sizeof(line), f)) {
		if (snap_mountinfo_line(line, &point, &type, &src, &opts) ||
		    strcmp(point, real))
			continue;
		uid = -1;                               /* another on top */
		if (strncmp(type, "fuse", 4) || !opts)
			continue;
		for (char *o = strtok_r(opts, ",", &save); o;
		     o = strtok_r(NULL, ",", &save))
			if (!strncmp(o, "user_id=", 8))
				uid = strtol(o + 8, NULL, 10);
	}
	if (f)
		fclose(f);
	return uid;
}

/* A file or directory (fd, called what) another user could have written:
 * not root's or ours, or writable by its group or others. */
static int mnt_untrusted(int fd, const char *m, const char *what)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return ctl_error("-C %s: cannot stat %s: %s", m, what,
				 strerror(errno));
	if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)))
		return ctl_error("-C %s: %s belongs to uid %u (mode %04o): "
				 "another user could have written it, and "
				 "the status file names the database and the "
				 "store snapctl works on; refused (it is no "
				 "mount of a snapfs daemon of yours or root's)",
				 m, what, (unsigned)st.st_uid,
				 (unsigned)(st.st_mode & 07777));
	return 0;
}

/*
 * MOUNTPOINT/.snapfs/status.json opened (*fd) only when whoever could
 * have written it is trusted: it names the database and store snapctl
 * then works on, as root too.  A FUSE mount must be root's or the
 * caller's (user_id= in mountinfo: any user may mount a FUSE filesystem
 * that serves a status file of their choosing); anything else (a
 * directory left where a mount was) must be, with its .snapfs and the
 * file, root's or the caller's, writable by neither group nor others, and
 * is reached without following a symlink.  0, -ENOENT (no status file:
 * said by the caller), or 1 after saying why.
 */
static int mnt_open(const char *m, const char *path, int *fd)
{
	char *real = realpath(m, NULL);
	long uid = real ? mnt_fuse_uid(real) : -1;
	int d = -1, s = -1, rc;

	*fd = -1;
	if (!real)
		return ctl_error("-C %s: %s", m, strerror(errno));
	if (uid >= 0) {
		free(real);
		if (uid != 0 && uid != (long)geteuid())
			return ctl_error("-C %s: a FUSE filesystem mounted by "
					 "uid %ld, not by you or root: its "
					 "status file could name any database "
					 "and store; refused", m, uid);
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		return *fd < 0 ? -errno : 0;
	}
	d = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	free(real);
	if (d < 0)
		return -errno;
	rc = mnt_untrusted(d, m, m);
	if (!rc && (s = openat(d, ".snapfs", O_RDONLY | O_DIRECTORY |
			       O_NOFOLLOW | O_CLOEXEC)) < 0)
		rc = -errno;
	if (!rc)
		rc = mnt_untrusted(s, m, ".snapfs");
	if (!rc && (*fd = openat(s, "status.json", O_RDONLY | O_NOFOLLOW |
				 O_NONBLOCK | O_CLOEXEC)) < 0)
		rc = -errno;
	if (!rc)
		rc = mnt_untrusted(*fd, m, path);
	if (rc && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
	if (s >= 0)
		close(s);
	close(d);
	return rc;
}

/* Read the whole file fd into a NUL-terminated buffer (free()); closes
 * fd. */
static int mnt_read(int fd, char **out, size_t *len)
{
	FILE *f = fdopen(fd, "r");
	char *buf;
	size_t n = 0;
	int e;

	if (!f) {
		e = errno;
		close(fd);
		return -e;
	}
	buf = malloc(MNT_STATUS_MAX + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, MNT_STATUS_MAX, f);
	e = ferror(f) ? (errno ? errno : EIO) : 0;
	fclose(f);
	if (e) {
		free(buf);
		return -e;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/* -C MOUNTPOINT: fill a->db, a->store_dir and the schedule from status.json. */
int ctl_mount_resolve(ctl_args *a)
{
	const char *m = a->mount;
	char *path = NULL, *text = NULL;
	size_t len = 0;
	mnt_found f = { 0, 0, a };
	struct stat st;
	int rc, fd = -1;

	if (stat(m, &st) < 0)
		return ctl_error("-C %s: %s%s", m, strerror(errno),
				 errno == ENOTCONN ? " (the snapfs daemon is "
				 "gone; unmount it with 'fusermount3 -u')" :
				 "");
	if (!S_ISDIR(st.st_mode))
		return ctl_error("-C %s: not a directory, so not a snapfs "
				 "mount point", m);
	if (asprintf(&path, "%s/.snapfs/status.json", m) < 0)
		return ctl_error("out of memory");
	rc = mnt_open(m, path, &fd);
	if (rc == 0)
		rc = mnt_read(fd, &text, &len);
	if (rc == 1) {
		free(path);
		return 1;
	}
	if (rc == -ENOENT || rc == -ENOTDIR)
		rc = ctl_error("-C %s: not a snapfs mount (no "
			       ".snapfs/status.json there); mount the "
			       "database with snapfs, or use --db FILE", m);
	else if (rc < 0)
		rc = ctl_error("-C %s: cannot read %s: %s", m, path,
			       strerror(-rc));
	if (rc) {
		free(path);
		return rc;
	}
	rc = ctl_json_query(text, len, mnt_sql, mnt_row, &f);
	if (rc || f.oom) {
		rc = ctl_error("-C %s: cannot read %s: %s", m, path,
			       f.oom ? "out of memory" : sqlite3_errstr(rc));
	} else if (f.rows == 0) {
		rc = ctl_error("-C %s: %s is not a snapfs status file (not a "
			       "JSON object); is this a snapfs mount?", m,
			       path);
	} else if (mnt_replica && (!mnt_db || !mnt_store)) {
		/* snapfs URL MNT: a replica read in place, no store. */
		rc = ctl_error("-C %s: a replica mounted read-only (%s), with "
			       "no database or store; use snapctl --replica "
			       "%s COMMAND", m, mnt_replica, mnt_replica);
	} else if (!mnt_db || !mnt_db[0] || !mnt_store || !mnt_store[0]) {
		rc = ctl_error("-C %s: %s does not name the database and the "
			       "store (no \"database\" or \"store\" field); "
			       "is this a snapfs mount?", m, path);
	} else {
		a->db = mnt_db;
		a->store_dir = mnt_store;
		a->mount_replica = mnt_offsite;
	}
	free(text);
	free(path);
	return rc;
}

int ctl_mount_of_db(const char *db, char *mnt, size_t cap)
{
	char line[3 * PATH_MAX], *real, *src_real;
	FILE *f;
	int found = 0;

	if (!db || !(real = realpath(db, NULL)))
		return 0;
	f = fopen("/proc/self/mountinfo", "re");
	while (f && !found && fgets(line, sizeof(line), f)) {
		char *point, *type, *src, *opts;

		if (snap_mountinfo_line(line, &point, &type, &src, &opts) ||
		    strcmp(type, "fuse.snapfs") || strncmp(src, "snapfs:", 7))
			continue;
		src_real = realpath(src + 7, NULL);
		if (src_real && !strcmp(src_real, real) &&
		    strlen(point) < cap) {
			snprintf(mnt, cap, "%s", point);
			found = 1;
		}
		free(src_real);
	}
	if (f)
		fclose(f);
	free(real);
	return found;
}
