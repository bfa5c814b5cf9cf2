/*
 * engine/restore_newfile.c — a restore into a live file that is missing
 * or not a database (restore.h, step 3).
 *
 * The image is copied into "<db>.snapfs-restore-XXXXXX" beside the live
 * path with one backup, checked there (restore_check.c: nobody else has
 * it open), and renamed into place; the directory is synced.
 *
 * That directory may be writable by others, and the daemon runs as root:
 * the new file is created under a name nobody can guess, O_EXCL, 0600,
 * root's.  SQLite opens it by name, so before anything is written
 * SQLite's own handle must read back a random nonce written through ours
 * (while the file is still 0600: nobody else can read the nonce): a file
 * renamed onto the name in between is refused, and gets nothing.  Only
 * once written and checked is it given the owner and mode of the file it
 * replaces (its directory's owner and 0600 when there was none), so the
 * restored database is never readable by more users than the old file
 * was, and stays the application's; and it takes the live name only if
 * the name is still our descriptor's file.  A file
 * that was not a database is kept as "<db>.snapfs-replaced-<time>", and
 * stale -journal and -wal files are moved aside the same way (SQLite
 * would apply them to the new file).  The restore lock is held, so
 * "<db>.snapfs-restore-*" files left by killed restores are removed
 * first.  The caller waited for the source's verification: the copy
 * starts from a proven source.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

/* name (live, or a file beside it, "/proc/self/fd/N/...") as the user
 * knows it: with db_path's directory (messages, the kept file's name). */
static const char *shown(const char *name, const char *live,
			 const char *db_path, char *buf, size_t cap)
{
	const char *ls = strrchr(live, '/'), *ds = strrchr(db_path, '/');
	size_t ln = ls ? (size_t)(ls - live) : 0;

	if (!ls || !ds || strncmp(name, live, ln) != 0 || name[ln] != '/')
		return name;
	snprintf(buf, cap, "%.*s%s", (int)(ds - db_path), db_path, name + ln);
	return buf;
}

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

/* Move a side file (-journal, -wal) of live (anchored; db_path as the
 * user named it) out of the way, keeping its bytes. */
static int set_aside(const char *live, const char *db_path,
		     const char *suffix, const char *stamp, snap_err *err)
{
	char from[PATH_MAX], to[PATH_MAX], b[PATH_MAX];
	struct stat st;

	snprintf(from, sizeof(from), "%s%s", live, suffix);
	if (snap_sys_lstat(from, &st) < 0)
		return 0;
	aside_name(live, stamp, suffix, to, sizeof(to));
	if (snap_sys_rename(from, to) < 0 && errno != ENOENT)
		return snap_err_set(err, -errno, "cannot move %s aside: %s",
				    shown(from, live, db_path, b, sizeof(b)),
				    strerror(errno));
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
 * Create the new file beside db_path (tmp gets its name; *fd our
 * descriptor of it) and open it with SQLite as dst, proven to be the file
 * we created (see the top).  It is root's and 0600 until new_file_place.
 */
static int new_file_open(const char *live, const char *db_path, char *tmp,
			 size_t cap, int *fd, sqlite3 **dst, snap_err *err)
{
	unsigned char nonce[16], seen[16];
	sqlite3_file *f = NULL;
	char b[PATH_MAX];
	int rc = 0;

	*dst = NULL;
	if (snprintf(tmp, cap, "%s.snapfs-restore-XXXXXX", live) >=
	    (int)cap) {
		tmp[0] = '\0';
		return snap_err_set(err, -ENAMETOOLONG, "%s: path too long",
				    db_path);
	}
	*fd = snap_sys_mkostemp(tmp, O_CLOEXEC);
	if (*fd < 0) {
		rc = snap_err_set(err, -errno, "cannot create a file beside "
				  "%s: %s", db_path, strerror(errno));
		tmp[0] = '\0';
		return rc;
	}
	sqlite3_randomness(sizeof(nonce), nonce);
	if (snap_sys_pwrite(*fd, nonce, sizeof(nonce), 0) !=
	    (ssize_t)sizeof(nonce))
		rc = snap_err_set(err, -errno, "cannot write %s: %s",
				  shown(tmp, live, db_path, b, sizeof(b)),
				  strerror(errno));
	if (!rc) {
		rc = sqlite3_open_v2(tmp, dst, SQLITE_OPEN_READWRITE |
				     SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_NOFOLLOW, NULL);
		if (rc != SQLITE_OK)
			rc = snap_err_sqlite(err, *dst, rc, "cannot open %s",
					     shown(tmp, live, db_path, b,
						   sizeof(b)));
	}
	if (!rc && (sqlite3_file_control(*dst, "main",
					 SQLITE_FCNTL_FILE_POINTER, &f) !=
		    SQLITE_OK || !f || !f->pMethods ||
		    f->pMethods->xRead(f, seen, sizeof(seen), 0) != SQLITE_OK ||
		    memcmp(seen, nonce, sizeof(nonce)) != 0))
		rc = snap_err_set(err, -EPERM, "restore refused: %s was "
				  "replaced by another file while the restore "
				  "created it (somebody who may write the "
				  "directory of %s); nothing was written to "
				  "it", shown(tmp, live, db_path, b, sizeof(b)),
				  db_path);
	if (!rc && snap_sys_ftruncate(*fd, 0) < 0)
		rc = snap_err_set(err, -errno, "cannot write %s: %s",
				  shown(tmp, live, db_path, b, sizeof(b)),
				  strerror(errno));
	return rc;
}

/*
 * The restored file (fd, called tmp), checked and closed by SQLite: give
 * it the owner and mode of the file it replaces (a regular file), or,
 * when there was none, the owner of its directory and 0600; keep 0600
 * when the owner cannot be given (a group it was not meant for would
 * read it).  Then make sure tmp is still that file before it takes the
 * live name.
 */
static int new_file_place(const char *live, const char *db_path,
			  const char *tmp, int fd, snap_err *err)
{
	struct stat old, mine, now;
	char *dup = strdup(live), b[PATH_MAX];
	int have = snap_sys_lstat(live, &old) == 0 && S_ISREG(old.st_mode);
	mode_t mode = 0600;

	/* The directory: live's is the anchor's magic link (or a name the
	 * anchor's walk found no symlink in), so stat, not lstat. */
	if (!have && dup && snap_sys_stat(dirname(dup), &old) == 0 &&
	    S_ISDIR(old.st_mode))
		have = 1;       /* the directory's owner, mode 0600 */
	else if (have)
		mode = old.st_mode & 0666;
	free(dup);
	if (have && (old.st_uid != geteuid() || old.st_gid != getegid()) &&
	    snap_sys_fchown(fd, old.st_uid, old.st_gid) < 0)
		mode = 0600;
	if (mode != 0600 && snap_sys_fchmod(fd, mode) < 0)
		return snap_err_set(err, -errno, "cannot set the mode of %s: "
				    "%s", shown(tmp, live, db_path, b,
						sizeof(b)), strerror(errno));
	if (fstat(fd, &mine) < 0 || snap_sys_lstat(tmp, &now) < 0 ||
	    mine.st_dev != now.st_dev || mine.st_ino != now.st_ino)
		return snap_err_set(err, -EPERM, "restore refused: %s was "
				    "replaced by another file after the "
				    "restore wrote it (somebody who may write "
				    "the directory of %s); the live file is "
				    "unchanged", shown(tmp, live, db_path, b,
						       sizeof(b)), db_path);
	return 0;
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
	char tmp[PATH_MAX], stamp[32], live[PATH_MAX], b[PATH_MAX];
	sqlite3 *src = NULL, *dst = NULL;
	snap_livedb_steps how;
	int fd = -1;
	time_t now = time(NULL);
	struct tm tm;
	int rc;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	kept[0] = '\0';
	tmp[0] = '\0';
	/* Every name below is in the live file's kept directory: a rename
	 * or symlink of a directory never moves the new file elsewhere. */
	rc = snap_livedb_path(s->db_path, live, sizeof(live), err);
	if (!rc)        /* a file given its owner: not one anybody put */
		rc = snap_livedb_owned(live, s->db_path, err);
	if (rc)
		return rc;
	remove_stale_restores(live);
	rc = snap_restore_point(SNAP_SYS_WRITE, "restore: copy", err);
	if (!rc)
		rc = snap_restore_source_open(s, rs, &src, err);
	if (!rc)
		rc = new_file_open(live, s->db_path, tmp, sizeof(tmp), &fd,
				   &dst, err);
	if (!rc)
		rc = snap_store_exec(dst, "PRAGMA synchronous=FULL", err);
	if (!rc)
		rc = snap_livedb_backup_all(dst, src, shown(tmp, live,
				s->db_path, b, sizeof(b)),
				snap_restore_progress_at(prog, 1, &how), err);
	sqlite3_close(src);
	/* Verified before it takes the live name: nobody else has it open. */
	if (!rc)
		rc = snap_restore_point(SNAP_SYS_READ, "restore: check", err);
	if (!rc)
		rc = snap_restore_check(s, rs, dst, shown(tmp, live,
				s->db_path, b, sizeof(b)), proven,
				snap_restore_progress_at(prog, 2, &how), err);
	sqlite3_close(dst);
	if (!rc)
		rc = new_file_place(live, s->db_path, tmp, fd, err);
	if (!rc)
		rc = set_aside(live, s->db_path, "-journal", stamp, err);
	if (!rc)
		rc = set_aside(live, s->db_path, "-wal", stamp, err);
	if (!rc && state == SNAP_LIVE_NOT_DB) {
		char at[PATH_MAX];

		aside_name(live, stamp, "", at, sizeof(at));
		snprintf(kept, keptcap, "%s", shown(at, live, s->db_path, b,
						    sizeof(b)));
		if (snap_sys_link(live, at) < 0)
			rc = snap_err_set(err, -errno, "cannot keep the old "
					  "file %s as %s: %s", s->db_path,
					  kept, strerror(errno));
	}
	if (!rc) {
		char shm[PATH_MAX];
		snprintf(shm, sizeof(shm), "%s-shm", live);
		snap_sys_unlink(shm);
		if (snap_sys_rename(tmp, live) < 0)
			rc = snap_err_set(err, -errno, "cannot move the restored "
					  "file into place at %s: %s",
					  s->db_path, strerror(errno));
		else if (snap_sys_sync_dir(live) < 0)
			rc = snap_err_set(err, -errno, "%s is restored, but its "
					  "directory could not be synced (%s): "
					  "a crash may undo the restore; run "
					  "it again", s->db_path,
					  strerror(errno));
	}
	if (fd >= 0)
		snap_sys_close(fd);
	if (rc && tmp[0])
		snap_sys_unlink(tmp);
	return rc;
}
