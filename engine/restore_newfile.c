/*
 * engine/restore_newfile.c — a restore into a live file that is missing
 * or not a database (restore.h, step 3).
 *
 * The image is copied into "<db>.snapfs-restore-<pid>" beside the live
 * path with one backup, checked there (restore_check.c: nobody else has
 * it open), and renamed into place; the directory is synced.  A file
 * that was not a database is kept as "<db>.snapfs-replaced-<time>", and
 * stale -journal and -wal files are moved aside the same way (SQLite
 * would apply them to the new file).  The restore lock is held, so
 * "<db>.snapfs-restore-*" files left by killed restores are removed
 * first.  The caller waited for the source's verification: the copy
 * starts from a proven source.
 */
#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "restore_int.h"
#include "store_int.h"
#include "sys.h"

/* "<db>.snapfs-replaced-<stamp>[-N]<suffix>" that does not exist yet, so
 * two restores in the same second keep both files. */
static void aside_name(const char *path, const char *stamp, const char *suffix,
		       char *out, size_t cap)
{
	struct stat st;
	int k;

	for (k = 1; k < 1000; k++) {
		if (k == 1)
			snprintf(out, cap, "%s.snapfs-replaced-%s%s", path, stamp,
				 suffix);
		else
			snprintf(out, cap, "%s.snapfs-replaced-%s-%d%s", path,
				 stamp, k, suffix);
		if (snap_sys_lstat(out, &st) < 0 && errno == ENOENT)
			return;
	}
}

/* Move a side file (-journal, -wal) out of the way, keeping its bytes. */
static int set_aside(const char *path, const char *suffix, const char *stamp,
		     snap_err *err)
{
	char from[PATH_MAX], to[PATH_MAX];

	snprintf(from, sizeof(from), "%s%s", path, suffix);
	if (snap_sys_access(from, F_OK) < 0)
		return 0;
	aside_name(path, stamp, suffix, to, sizeof(to));
	if (snap_sys_rename(from, to) < 0 && errno != ENOENT)
		return snap_err_set(err, -errno, "cannot move %s aside: %s",
				    from, strerror(errno));
	return 0;
}

/*
 * Remove "<db>.snapfs-restore-*" files (and their -journal) left by
 * restores that were killed: the caller holds the restore lock, so no
 * running restore owns one.
 */
static void remove_stale_restores(const char *db_path)
{
	char *dup = strdup(db_path), *dir, *base, path[PATH_MAX];
	size_t blen;
	struct dirent *de;
	DIR *d;

	if (!dup)
		return;
	dir = dirname(dup);
	base = strrchr(db_path, '/');
	base = base ? base + 1 : (char *)db_path;
	blen = strlen(base);
	d = snap_sys_opendir(dir);
	while (d && (de = readdir(d))) {
		if (strncmp(de->d_name, base, blen) != 0 ||
		    strncmp(de->d_name + blen, ".snapfs-restore-", 16) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		snap_sys_unlink(path);
	}
	if (d)
		closedir(d);
	free(dup);
}

/*
 * The live file is missing or not a database: write the image into a new
 * file beside it and rename that into place.  A non-database file is kept
 * as "<db>.snapfs-replaced-<time>" so nothing is lost; stale -journal and
 * -wal files are moved aside too, since SQLite would otherwise apply them
 * to the new file.
 */
int snap_restore_new_file(snap_store *s, const restore_source *rs,
			  enum snap_live_state state, char *kept,
			  size_t keptcap, restore_progress *prog, int *proven,
			  snap_err *err)
{
	char tmp[PATH_MAX], stamp[32];
	sqlite3 *src = NULL, *dst = NULL;
	snap_livedb_steps how;
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	kept[0] = '\0';
	remove_stale_restores(s->db_path);
	snprintf(tmp, sizeof(tmp), "%s.snapfs-restore-%ld", s->db_path,
		 (long)getpid());
	snap_sys_unlink(tmp);
	rc = snap_restore_point(SNAP_SYS_WRITE, "restore: copy", err);
	if (!rc)
		rc = snap_restore_source_open(s, rs, &src, err);
	if (!rc) {
		rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE |
				     SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				     NULL);
		if (rc != SQLITE_OK)
			rc = snap_err_sqlite(err, dst, rc, "cannot create %s",
					     tmp);
	}
	if (!rc)
		rc = snap_store_exec(dst, "PRAGMA synchronous=FULL", err);
	if (!rc)
		rc = snap_livedb_backup_all(dst, src, tmp,
				snap_restore_progress_at(prog, 1, &how), err);
	sqlite3_close(src);
	/* Verified before it takes the live name: nobody else has it open. */
	if (!rc)
		rc = snap_restore_point(SNAP_SYS_READ, "restore: check", err);
	if (!rc)
		rc = snap_restore_check(s, rs, dst, tmp, proven,
				snap_restore_progress_at(prog, 2, &how), err);
	sqlite3_close(dst);
	if (!rc)
		rc = set_aside(s->db_path, "-journal", stamp, err);
	if (!rc)
		rc = set_aside(s->db_path, "-wal", stamp, err);
	if (!rc && state == SNAP_LIVE_NOT_DB) {
		aside_name(s->db_path, stamp, "", kept, keptcap);
		if (snap_sys_link(s->db_path, kept) < 0)
			rc = snap_err_set(err, -errno, "cannot keep the old "
					  "file %s as %s: %s", s->db_path,
					  kept, strerror(errno));
	}
	if (!rc) {
		char shm[PATH_MAX];
		snprintf(shm, sizeof(shm), "%s-shm", s->db_path);
		snap_sys_unlink(shm);
		if (snap_sys_rename(tmp, s->db_path) < 0)
			rc = snap_err_set(err, -errno, "cannot move the restored "
					  "file into place at %s: %s",
					  s->db_path, strerror(errno));
		else if (snap_sys_sync_dir(s->db_path) < 0)
			rc = snap_err_set(err, -errno, "%s is restored, but its "
					  "directory could not be synced (%s): "
					  "a crash may undo the restore; run "
					  "it again", s->db_path,
					  strerror(errno));
	}
	if (rc)
		snap_sys_unlink(tmp);
	return rc;
}
