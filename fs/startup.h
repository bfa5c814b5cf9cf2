/*
 * fs/startup.h — the checks before mounting and daemonizing (startup.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_STARTUP_H
#define FS_STARTUP_H

/* An absolute version of path (which need not exist); malloc()ed. */
char *snap_startup_absolute(const char *path);
/* The database must exist and be a regular file; 0 or 1 (printed why). */
int snap_startup_check_db(const char *db);
/* The mount point must be a live directory; 0 or 1 (printed why). */
int snap_startup_check_mountpoint(const char *mnt);
/* The mount point must not hide the database (db, a real path) or the
 * store (NULL: the default beside the database), nor lie inside the
 * store; 0 or 1 (printed why). */
int snap_startup_check_overlap(const char *mnt, const char *db,
			       const char *store);
/* Fork; the parent waits for the child's status byte and exits with it.
 * Returns, in the child, the fd to hand to snap_startup_ready. */
int snap_startup_fork(void);
/* Tell the parent how start-up went (0 ok, 1 failed) and, when it went
 * well, let go of the terminal; nothing when fd < 0.  0, or -1 when it
 * went well but the parent could not be told: it is gone (the command
 * was interrupted while it waited; logged), and the caller is to unmount
 * and exit rather than serve a mount its user gave up on. */
int snap_startup_ready(int fd, char status);

#endif /* FS_STARTUP_H */
