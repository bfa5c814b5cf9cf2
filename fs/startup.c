/*
 * fs/startup.c — what the daemon checks before it mounts, and how it
 * leaves the terminal.
 *
 * Start-up refuses clearly, with a non-zero exit and nothing mounted, when
 * the database is missing or not a database, the mount point is unusable
 * (missing, not a directory, a dead mount, or one that would hide the
 * database or the store, or lies inside the store), another daemon serves
 * the store (the engine's daemon lock: -EBUSY at once while that daemon's
 * mount is there; one whose mount is gone is waited for, bounded: see
 * engine/storelock.c), or the engine refuses the
 * store (a symlink, another user's, a link planted in it, a lost catalog:
 * engine/storedir.c).  A store on a full filesystem is served read-only,
 * with a warning.  The checks of the paths are here; main.c opens.
 *
 * Daemonizing: without -f the process forks *before* opening anything —
 * SQLite connections and POSIX locks must not cross a fork — and the parent
 * waits on a pipe until the child has mounted (exit 0) or failed (exit 1,
 * after the child printed why).  So `snapfs db mnt && ls mnt` is race-free:
 * the parent's exit is the readiness signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

/* An absolute version of path (which need not exist); malloc()ed. */
char *snap_startup_absolute(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

/* The database must exist and be a regular file; 0 or 1 (printed why). */
int snap_startup_check_db(const char *db)
{
	struct stat st;

	if (stat(db, &st) != 0) {
		fprintf(stderr, "snapfs: %s: %s%s\n", db, strerror(errno),
			errno == ENOENT ? " (snapfs serves an existing "
			"SQLite database; create it first)" : "");
		return 1;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "snapfs: %s: not a regular file\n", db);
		return 1;
	}
	return 0;
}

/* The mount point must be a live directory; 0 or 1 (printed why). */
int snap_startup_check_mountpoint(const char *mnt)
{
	struct statvfs sv;
	struct stat st;

	/* statfs is never answered from the kernel's cache, so it finds a
	 * dead FUSE mount even while stat still would not. */
	if (stat(mnt, &st) != 0 || statvfs(mnt, &sv) != 0) {
		if (errno == ENOTCONN)
			fprintf(stderr, "snapfs: %s: a FUSE mount whose daemon "
				"is gone is still there; unmount it first with "
				"fusermount3 -uz %s\n", mnt, mnt);
		else
			fprintf(stderr, "snapfs: mount point %s: %s\n", mnt,
				strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "snapfs: mount point %s: not a directory\n",
			mnt);
		return 1;
	}
	return 0;
}

/*
 * The real path of path, which need not exist yet (a store that the start
 * will create): its longest existing prefix resolved, the rest appended.
 * malloc()ed; NULL when out of memory.
 */
static char *resolve_path(const char *path)
{
	char *r = realpath(path, NULL), *dir, *slash, *out;

	if (r || errno != ENOENT)
		return r ? r : strdup(path);
	dir = strdup(path);
	if (!dir)
		return NULL;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir || !slash[1]) {
		free(dir);
		return strdup(path);
	}
	*slash = '\0';
	r = resolve_path(dir);
	if (!r || asprintf(&out, "%s/%s", strcmp(r, "/") ? r : "",
			   slash + 1) < 0)
		out = NULL;
	free(r);
	free(dir);
	return out;
}

/* 1 when path is dir or lies below it (both real, absolute paths). */
static int path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return 1;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' ||
					      path[n] == '/');
}

/*
 * A mount on the database's directory (or above it) hides the database,
 * and one on the store's directory hides the store, from the daemon itself:
 * its first access to either goes through its own mount and waits for
 * itself (D state until umount -f), and applications lose the real path.
 * A mount point inside the store would be served from under the mount's
 * own files.  All are refused before anything is created; 0 or 1 (printed
 * why).  db is a real path; store is NULL for the default beside it.
 */
int snap_startup_check_overlap(const char *mnt, const char *db,
				 const char *store)
{
	char *m = realpath(mnt, NULL), *dbdir, *st = NULL, *def = NULL;
	char *slash;
	int bad = 1;

	if (!m) {
		fprintf(stderr, "snapfs: mount point %s: %s\n", mnt,
			strerror(errno));
		return 1;
	}
	dbdir = strdup(db);
	if (dbdir && (slash = strrchr(dbdir, '/')))
		slash[slash == dbdir ? 1 : 0] = '\0';   /* "/x.db": "/" */
	if (!store)
		def = snap_store_default_dir(db);
	if (store || def)
		st = resolve_path(store ? store : def);
	if (!dbdir || !st) {
		fprintf(stderr, "snapfs: out of memory\n");
	} else if (path_under(dbdir, m)) {
		fprintf(stderr, "snapfs: mount point %s contains the database "
			"%s: the mount would hide it from snapfs itself and "
			"from its applications; mount on an empty directory of "
			"its own (for example %s%smnt)\n", mnt, db, dbdir,
			strcmp(dbdir, "/") ? "/" : "");
	} else if (path_under(st, m)) {
		fprintf(stderr, "snapfs: mount point %s contains the snapshot "
			"store %s: the mount would hide it from snapfs itself; "
			"mount elsewhere, or put the store elsewhere with "
			"-o store=DIR\n", mnt, st);
	} else if (path_under(m, st)) {
		fprintf(stderr, "snapfs: mount point %s is inside the snapshot "
			"store %s; mount on a directory outside it\n", mnt, st);
	} else {
		bad = 0;
	}
	free(m);
	free(dbdir);
	free(def);
	free(st);
	return bad;
}

/*
 * Fork; the parent waits for one status byte from the child and exits with
 * it (1 when the child dies first).  Returns the pipe's write end in the
 * child.
 */
int snap_startup_fork(void)
{
	int p[2];
	pid_t pid;
	char status = 1;

	if (pipe2(p, O_CLOEXEC) != 0) {
		perror("snapfs: pipe");
		exit(1);
	}
	pid = fork();
	if (pid < 0) {
		perror("snapfs: fork");
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &status, 1) != 1) {
			waitpid(pid, NULL, 0);
			status = 1;
		}
		_exit(status);
	}
	close(p[0]);
	setsid();
	return p[1];
}

/* Tell the parent how start-up went, then let go of the terminal. */
int snap_startup_ready(int fd, char status)
{
	int null, told, failed = status != 0, cherr = 0;

	if (fd < 0)
		return 0;
	if (status == 0) {
		if (chdir("/") != 0) {
			cherr = errno;
			status = 1;
		}
		null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
	}
	/* SIGPIPE is ignored by now (fuse_set_signal_handlers). */
	told = write(fd, &status, 1) == 1;
	close(fd);
	if (status == 0 && !told) {
		snap_log(LOG_ERR, "the command that started snapfs is gone "
			 "(interrupted while it waited): unmounting");
		return -1;
	}
	if (status != 0 && !failed) {
		/* The command was told start-up failed: do not serve. */
		snap_log(LOG_ERR, "cannot change to /: %s; unmounting",
			 strerror(cherr));
		return -1;
	}
	return 0;
}

