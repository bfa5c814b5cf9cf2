/*
 * fs/main.c — `snapfs [options] DBFILE MOUNTPOINT`: options, start-up
 * checks, daemonizing, the session loop, shutdown.
 *
 * Options are FUSE-style so the same words work on the command line and in
 * /etc/fstab (type fuse.snapfs, through mount.fuse3): -f, -d, -s, -h, -V,
 * -o store=DIR, and libfuse's own (allow_other, default_permissions, ...).
 * Words only mount(8) cares about (_netdev, noauto, nofail, user, users,
 * auto, defaults, rw, x-*) are accepted and dropped.  allow_other implies
 * default_permissions: the daemon checks no permission itself.
 *
 * Start-up refuses clearly, with a non-zero exit and nothing mounted, when
 * the database is missing or not a database, the mount point is unusable,
 * or another daemon serves the store (the engine's daemon lock: -EBUSY).
 *
 * Daemonizing: without -f the process forks *before* opening anything —
 * SQLite connections and POSIX locks must not cross a fork — and the parent
 * waits on a pipe until the child has mounted (exit 0) or failed (exit 1,
 * after the child printed why).  So `snapfs db mnt && ls mnt` is race-free:
 * the parent's exit is the readiness signal.
 *
 * Shutdown (SIGTERM, SIGINT, SIGHUP, fusermount3 -u): the loop returns once
 * in-flight requests finished — libfuse cancels workers only while they
 * wait for a request, so a snapshot or restore in progress completes —
 * then the notifier stops, the mount goes, and the staging directory is
 * removed.  After SIGKILL, the next start empties the staging directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

struct snap_fs snap_fs = {
	.apply_lock = PTHREAD_MUTEX_INITIALIZER,
	.lock = PTHREAD_MUTEX_INITIALIZER,
};

/* Parsed by fuse_opt_parse; what libfuse parses lives in its own struct. */
struct snap_opts {
	char *store;        /* -o store=DIR */
	char *db;           /* first non-option argument */
	char *mountpoint;   /* second (also handed to fuse_parse_cmdline) */
	int nonopts;        /* how many non-option arguments were seen */
	int help;
	int version;
	int allow_other;    /* -o allow_other (kept for libfuse too) */
	int default_permissions;
};

enum { KEY_HELP, KEY_VERSION, KEY_ALLOW_OTHER, KEY_DEFAULT_PERMISSIONS };

static const struct fuse_opt snap_opt_spec[] = {
	{ "store=%s", offsetof(struct snap_opts, store), 0 },
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("default_permissions", KEY_DEFAULT_PERMISSIONS),
	/* mount(8) words: accepted, meaningless to the daemon. */
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_KEY("rw", FUSE_OPT_KEY_DISCARD),
	FUSE_OPT_END
};

static void usage(FILE *to, const char *prog)
{
	fprintf(to,
"usage: %s [options] DBFILE MOUNTPOINT\n"
"\n"
"Mount ZFS-style snapshots of the SQLite database DBFILE at MOUNTPOINT:\n"
"  MOUNTPOINT/current.db    the live database (reads are consistent images;\n"
"                           copying or moving a database onto it restores)\n"
"  MOUNTPOINT/snapshots/    one read-only file per snapshot; touch NAME takes\n"
"                           one, rm deletes, mv renames\n"
"  MOUNTPOINT/.snapfs/      status.json and the event log\n"
"\n"
"snapfs options:\n"
"    -o store=DIR           snapshot store directory (default DBFILE.snapfs)\n"
"    -h, --help             this text, then libfuse's options\n"
"    -V, --version          versions of snapfs, SQLite and libfuse\n"
"    -f                     stay in the foreground, log to stderr\n"
"    -d                     debug: -f plus every FUSE request\n"
"    -s                     single-threaded\n"
"  mount(8) words (_netdev, noauto, nofail, user, users, auto, defaults,\n"
"  rw, x-*) are accepted and ignored, for /etc/fstab:\n"
"    /srv/app/app.db  /mnt/app  fuse.snapfs  store=/backup/app,nofail  0 0\n"
"\n", prog);
}

static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct snap_opts *o = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	case KEY_ALLOW_OTHER:
		o->allow_other = 1;
		return 1;
	case KEY_DEFAULT_PERMISSIONS:
		o->default_permissions = 1;
		return 1;
	case FUSE_OPT_KEY_NONOPT:
		if (o->nonopts == 0) {
			o->nonopts++;
			o->db = strdup(arg);
			return 0;            /* libfuse must not see it */
		}
		if (o->nonopts == 1) {
			o->nonopts++;
			o->mountpoint = strdup(arg);
			return 1;            /* the mount point, for libfuse */
		}
		fprintf(stderr, "snapfs: unexpected argument \"%s\"\n", arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		if (strncmp(arg, "x-", 2) == 0)
			return 0;            /* x-systemd.*, x-gvfs-*, ... */
		return 1;
	}
	return 1;
}

/* An absolute version of path (which need not exist); malloc()ed. */
static char *absolute(const char *path)
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
static int check_db(const char *db)
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

static int check_mountpoint(const char *mnt)
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
 * Fork; the parent waits for one status byte from the child and exits with
 * it (1 when the child dies first).  Returns the pipe's write end in the
 * child.
 */
static int daemon_fork(void)
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
static void daemon_ready(int fd, char status)
{
	int null;

	if (fd < 0)
		return;
	if (status == 0) {
		if (chdir("/") != 0)
			status = 1;
		null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
	}
	if (write(fd, &status, 1) != 1)
		status = 1;
	close(fd);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts fopts;
	struct fuse_loop_config *cfg = NULL;
	struct snap_opts o;
	snap_err err;
	char *db = NULL, *store = NULL, *fsname_opt = NULL, *fsname = NULL;
	int ready_fd = -1, rc, ret = 1, mounted = 0;
	int signals = 0;

	memset(&o, 0, sizeof(o));
	memset(&fopts, 0, sizeof(fopts));
	snap_err_clear(&err);
	if (fuse_opt_parse(&args, &o, snap_opt_spec, opt_proc) != 0)
		goto out;
	if (o.help) {
		usage(stdout, argv[0]);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out;
	}
	if (o.version) {
		printf("snapfs version %s\n", SNAPFS_VERSION);
		printf("SQLite version %s\n", sqlite3_libversion());
		printf("libfuse version %s\n", fuse_pkgversion());
		fflush(stdout);
		fuse_lowlevel_version();
		ret = 0;
		goto out;
	}
	if (fuse_parse_cmdline(&args, &fopts) != 0)
		goto out;
	if (o.nonopts < 2 || !fopts.mountpoint) {
		usage(stderr, argv[0]);
		fprintf(stderr, "snapfs: a database and a mount point are "
			"needed\n");
		goto out;
	}
	if (check_db(o.db) || check_mountpoint(fopts.mountpoint))
		goto out;
	db = realpath(o.db, NULL);
	store = o.store ? absolute(o.store) : NULL;
	if (!db || (o.store && !store)) {
		fprintf(stderr, "snapfs: %s: %s\n", o.db, strerror(errno));
		goto out;
	}
	snprintf(snap_fs.mountpoint, sizeof(snap_fs.mountpoint), "%s",
		 fopts.mountpoint);
	snap_fs.debug = fopts.debug;
	snap_fs.foreground = fopts.foreground;

	/* Other users see the files' modes enforced by the kernel: the
	 * daemon checks no permission itself, and a snapshot of a 0600
	 * database must stay unreadable to them. */
	if (o.allow_other && !o.default_permissions &&
	    fuse_opt_add_arg(&args, "-odefault_permissions") != 0) {
		fprintf(stderr, "snapfs: out of memory\n");
		goto out;
	}
	/* The mount shows which database it serves. */
	if (asprintf(&fsname, "fsname=snapfs:%s", db) < 0 ||
	    fuse_opt_add_opt_escaped(&fsname_opt, fsname) != 0 ||
	    fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, fsname_opt) != 0) {
		fprintf(stderr, "snapfs: out of memory\n");
		goto out;
	}
	snap_fs.se = fuse_session_new(&args, &snap_ll_ops, sizeof(snap_ll_ops),
				      NULL);
	if (!snap_fs.se)
		goto out;                   /* libfuse said why (options) */
	/* Nothing SQLite may exist yet: fork now. */
	if (!fopts.foreground)
		ready_fd = daemon_fork();
	snap_log_setup(1, fopts.debug);     /* stderr until ready */
	snap_fs.started_ns = snap_time_now_ns();

	/* Is it a database?  Asked before a store is created for it. */
	rc = snap_live_open(db, NULL, &snap_fs.live, &err);
	if (rc != 0) {
		fprintf(stderr, "snapfs: %s is not a usable SQLite database: "
			"%s\n", db, err.msg);
		goto out;
	}
	rc = snap_store_open(db, store, SNAP_OPEN_CREATE | SNAP_OPEN_DAEMON,
			     &snap_fs.store, &err);
	if (rc == -EBUSY) {
		fprintf(stderr, "snapfs: the snapshot store %s is already "
			"served by another snapfs daemon (%s)\n",
			store ? store : "beside the database", err.msg);
		goto out;
	}
	if (rc != 0) {
		fprintf(stderr, "snapfs: cannot open the snapshot store for "
			"%s: %s\n", db, err.msg);
		goto out;
	}
	snap_fs.db_path = snap_store_db_path(snap_fs.store);
	rc = snap_staging_init(snap_store_dir(snap_fs.store),
			       snap_fs.staging_dir,
			       sizeof(snap_fs.staging_dir));
	if (rc != 0) {
		fprintf(stderr, "snapfs: cannot create the staging directory "
			"in %s: %s\n", snap_store_dir(snap_fs.store),
			strerror(-rc));
		goto out;
	}
	snap_live_close(snap_fs.live);
	rc = snap_live_open(db, snap_fs.staging_dir, &snap_fs.live, &err);
	if (rc != 0) {
		fprintf(stderr, "snapfs: %s: %s\n", db, err.msg);
		goto out;
	}

	if (fuse_set_signal_handlers(snap_fs.se) != 0)
		goto out;
	signals = 1;
	if (fuse_session_mount(snap_fs.se, fopts.mountpoint) != 0)
		goto out;                   /* libfuse said why */
	mounted = 1;
	rc = snap_notify_start(snap_fs.se, &snap_fs.notify);
	if (rc != 0) {
		fprintf(stderr, "snapfs: starting the notifier: %s\n",
			strerror(-rc));
		goto out;
	}
	snap_log_setup(fopts.foreground, fopts.debug);
	snap_log(LOG_INFO, "serving %s at %s (store %s)", db,
		 snap_fs.mountpoint, snap_store_dir(snap_fs.store));
	daemon_ready(ready_fd, 0);
	ready_fd = -1;

	if (fopts.singlethread) {
		rc = fuse_session_loop(snap_fs.se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg) {
			snap_log(LOG_ERR, "out of memory");
			goto out;
		}
		fuse_loop_cfg_set_clone_fd(cfg, fopts.clone_fd);
		if (fopts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(cfg,
						       fopts.max_idle_threads);
		fuse_loop_cfg_set_max_threads(cfg, fopts.max_threads);
		rc = fuse_session_loop_mt(snap_fs.se, cfg);
	}
	/* A signal ends the loop with its number: a clean shutdown. */
	ret = rc < 0 ? 1 : 0;
	snap_log(LOG_INFO, "unmounting %s", snap_fs.mountpoint);

out:
	daemon_ready(ready_fd, 1);
	snap_notify_stop(snap_fs.notify);
	snap_fs.notify = NULL;
	if (mounted)
		fuse_session_unmount(snap_fs.se);
	if (signals)
		fuse_remove_signal_handlers(snap_fs.se);
	if (snap_fs.se)
		fuse_session_destroy(snap_fs.se);
	fuse_loop_cfg_destroy(cfg);
	snap_handle_free_all();
	snap_session_shutdown();
	snap_node_free_all();
	if (snap_fs.live)
		snap_live_close(snap_fs.live);
	snap_staging_cleanup(snap_fs.staging_dir);
	if (snap_fs.store)
		snap_store_close(snap_fs.store);
	fuse_opt_free_args(&args);
	free(fopts.mountpoint);
	free(fsname_opt);
	free(fsname);
	free(o.store);
	free(o.db);
	free(o.mountpoint);
	free(store);
	free(db);
	return ret;
}
