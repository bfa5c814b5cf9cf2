/*
 * engine/recover.c — crash recovery of a restore: the marker a restore
 * leaves while it has taken a WAL database out of WAL mode, and the
 * switch back that finishes an interrupted restore.
 *
 * A WAL database whose page size differs from the image's cannot be a
 * backup destination (engine/PITFALLS.md 10): restore.c switches it to
 * rollback mode for the copy (snap_recover_leave_wal) and back afterwards
 * (snap_recover_return_to_wal).  SQLite allows the switch only with no
 * other connection open, so the first happens before anything is written
 * and refuses otherwise.  The marker "live-was-wal" is made durable in
 * the store (file and directory synced) before the mode changes, and
 * removed only once WAL mode is back.  A restore killed in between leaves
 * the database intact but in rollback mode, with the marker: whoever
 * opens the store for work next (snapctl, the daemon at mount) calls
 * snap_restore_recover(), which switches it back under the restore lock.
 *
 * What else a killed restore leaves is handled where it is made: a hot
 * journal SQLite rolls back itself, a half-written "<db>.snapfs-restore-*"
 * file is removed by the next restore into a new file (restore.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "events.h"
#include "livedb.h"
#include "recover.h"
#include "store_int.h"
#include "sys.h"

/* The marker that says a restore took the live database out of WAL mode
 * (engine/PITFALLS.md 10) and has not put it back yet: a store file (reached
 * through the store's directory fd), named by wal_marker() in messages. */
#define WAL_MARKER "live-was-wal"

/* The marker's path, for messages. */
static void wal_marker(snap_store *s, char *out, size_t cap)
{
	snprintf(out, cap, "%s/" WAL_MARKER, s->dir);
}

/* Set the live database's journal mode; 0 when it took effect. */
static int set_journal_mode(const char *path, const char *mode)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char sql[64];
	int ok = 0;

	if (snap_livedb_open(path, SNAP_LIVEDB_RW, NULL, &db, NULL))
		return -EIO;
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", mode);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		ok = strcmp((const char *)sqlite3_column_text(st, 0), mode) == 0;
	/* The row names the new mode before the change is committed: the
	 * commit (of the header's version bytes) can still fail. */
	if (sqlite3_finalize(st) != SQLITE_OK)
		ok = 0;
	sqlite3_close(db);
	return ok ? 0 : -EBUSY;
}

/*
 * A WAL database cannot take an image of another page size (engine/PITFALLS.md
 * 10): switch it to rollback mode for the copy.  SQLite allows that only when
 * no other connection has the database open, so this runs before anything is
 * written and refuses otherwise.  The switch is recorded in the store
 * first, so that a restore killed before switching back is finished by the
 * next snapfs command (snap_restore_recover).
 */
int snap_recover_leave_wal(snap_store *s, const snap_info *si, int64_t live_ps,
			   snap_err *err)
{
	char marker[PATH_MAX];
	int fd, e;

	wal_marker(s, marker, sizeof(marker));
	fd = snap_store_file_open(s, WAL_MARKER, O_WRONLY | O_CREAT | O_TRUNC,
				  err);
	if (fd < 0) {
		snap_err_prefix(err, "restore refused, %s is unchanged",
				s->db_path);
		return fd;
	}
	if (snap_sys_fsync(fd) < 0) {
		e = errno;
		snap_sys_close(fd);
		snap_store_file_remove(s, WAL_MARKER);
		return snap_err_set(err, -e, "restore refused, %s is unchanged: "
				    "cannot write %s: %s", s->db_path, marker,
				    strerror(e));
	}
	snap_sys_close(fd);
	/* The marker must survive a crash before the mode changes. */
	e = snap_store_dir_sync(s);
	if (e) {
		snap_store_file_remove(s, WAL_MARKER);
		return snap_err_set(err, e, "restore refused, %s is unchanged: "
				    "cannot sync the store directory %s: %s",
				    s->db_path, s->dir, strerror(-e));
	}
	if (set_journal_mode(s->db_path, "delete") == 0)
		return 0;
	snap_store_file_remove(s, WAL_MARKER);
	return snap_err_set(err, -EBUSY, "restore refused, %s is unchanged: it "
			    "is in WAL mode with %lld-byte pages and snapshot "
			    "%s has %u-byte pages; SQLite can only restore "
			    "across page sizes in WAL mode when no other "
			    "connection has the database open: close the "
			    "applications using it and retry", s->db_path,
			    (long long)live_ps, si->name, si->page_size);
}

/* Put the live database back into WAL mode and clear the marker. */
int snap_recover_return_to_wal(snap_store *s, snap_err *err)
{
	if (set_journal_mode(s->db_path, "wal"))
		return snap_err_set(err, -EBUSY, "%s could not be switched back "
				    "to WAL mode; the next snapfs command will "
				    "try again", s->db_path);
	snap_store_file_remove(s, WAL_MARKER);
	return 0;
}

int snap_restore_recover(snap_store *s)
{
	int fd = -1, rc, ro;

	snap_store_lock(s);
	ro = s->readonly;
	snap_store_unlock(s);
	if (ro != SNAP_STORE_RW || !snap_store_file_exists(s, WAL_MARKER))
		return 0;
	/* A restore in progress owns the marker. */
	if (snap_store_restore_lock(s, &fd, NULL))
		return 0;
	rc = snap_recover_return_to_wal(s, NULL);
	snap_store_restore_unlock(fd);
	snap_event_add(s, "recover", "", rc == 0, rc == 0 ?
		       "%s: switched back to WAL mode after an interrupted "
		       "restore" : "%s: still not back in WAL mode after an "
		       "interrupted restore (another connection has it open)",
		       s->db_path);
	return rc;
}
