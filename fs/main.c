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
 * the database is missing or not a database, the mount point is unusable
 * (missing, not a directory, a dead mount, or one that would hide the
 * database or the store, or lies inside the store), another daemon serves
 * the store (the engine's daemon lock: -EBUSY), or the engine refuses the
 * store (a symlink, another user's, a link planted in it, a lost catalog:
 * engine/storedir.c).  A store on a full filesystem is served read-only,
 * with a warning.
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
 * then the timer, the catalog watcher and the notifier stop, the mount
 * goes, and the staging directory is removed.  After SIGKILL, the next start empties the staging directory.
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
	.unpinned = PTHREAD_COND_INITIALIZER,
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
	/* schedules and health (timer.c) */
	char *every;        /* -o every=DURATION */
	char *keep;         /* -o keep=RULES */
	char *max_size;     /* -o max_size=SIZE */
	char *check;        /* -o check=DURATION */
	int auto_recover;   /* -o auto_recover */
	char *verify;       /* -o verify=DURATION */
	char *on_failure;   /* -o on_failure=CMD */
};

enum { KEY_HELP, KEY_VERSION, KEY_ALLOW_OTHER, KEY_DEFAULT_PERMISSIONS };

static const struct fuse_opt snap_opt_spec[] = {
	{ "store=%s", offsetof(struct snap_opts, store), 0 },
	{ "every=%s", offsetof(struct snap_opts, every), 0 },
	{ "keep=%s", offsetof(struct snap_opts, keep), 0 },
	{ "max_size=%s", offsetof(struct snap_opts, max_size), 0 },
	{ "check=%s", offsetof(struct snap_opts, check), 0 },
	{ "auto_recover", offsetof(struct snap_opts, auto_recover), 1 },
	{ "verify=%s", offsetof(struct snap_opts, verify), 0 },
	{ "on_failure=%s", offsetof(struct snap_opts, on_failure), 0 },
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
"  MOUNTPOINT/restore/      a snapshot or database copied or moved here is\n"
"                           restored onto current.db\n"
"  MOUNTPOINT/.snapfs/      status.json and the event log\n"
"\n"
"snapfs options:\n"
"    -o store=DIR           snapshot store directory (default DBFILE.snapfs)\n"
"    -o every=DURATION      automatic snapshot (kind auto) every DURATION\n"
"                           (30s, 15m, 1h, 1h30m) when the database changed\n"
"    -o keep=RULES          retention after each automatic snapshot:\n"
"                           last:N,hourly:N,daily:N,weekly:N,monthly:N,\n"
"                           yearly:N,within:DURATION; rules may also be\n"
"                           joined by '+' or '/' (keep=last:5+daily:7)\n"
"    -o max_size=SIZE       prune automatic snapshots beyond SIZE (10M, 2G)\n"
"    -o check=DURATION      PRAGMA quick_check of the live database\n"
"    -o auto_recover        on corruption, restore the newest valid snapshot\n"
"    -o verify=DURATION     verify a slice of stored snapshots each period\n"
"    -o on_failure=CMD      run /bin/sh -c CMD when a snapshot, check, verify\n"
"                           or restore fails (environment: SNAPFS_EVENT,\n"
"                           SNAPFS_SNAPSHOT, SNAPFS_DETAIL, SNAPFS_DB,\n"
"                           SNAPFS_STORE, SNAPFS_TIME); write a comma in\n"
"                           CMD as \\,\n"
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
static int check_mount_overlap(const char *mnt, const char *db,
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

/* 1 when tok (up to a comma) is a keep rule "last:N", "daily:N", ... */
static int keep_rule_word(const char *tok)
{
	static const char *const rules[] = { "last:", "hourly:", "daily:",
		"weekly:", "monthly:", "yearly:", "within:" };
	size_t i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (strncmp(tok, rules[i], strlen(rules[i])) == 0)
			return 1;
	return 0;
}

/*
 * libfuse splits -o values on commas, so "-o keep=last:5,daily:7" would
 * reach us as keep=last:5 and an unknown option daily:7.  Rewrite each -o
 * string first: the keep rules following keep= are joined with '+'.
 * Returns the malloc()ed option string (or NULL: out of memory).
 */
static char *join_keep_rules(const char *in)
{
	size_t n = strlen(in), i = 0, o = 0;
	char *out = malloc(n + 1);
	int in_keep = 0;

	if (!out)
		return NULL;
	while (i <= n) {
		/* at the start of a token */
		int rule = keep_rule_word(in + i);
		if (in_keep && rule && o > 0)
			out[o - 1] = '+';   /* the comma before it */
		else
			in_keep = strncmp(in + i, "keep=", 5) == 0;
		while (i < n && in[i] != ',') {
			if (in[i] == '\\' && i + 1 < n)
				out[o++] = in[i++];
			out[o++] = in[i++];
		}
		out[o++] = i < n ? ',' : '\0';
		i++;
	}
	return out;
}

/* A copy of argv with the keep rules of every -o joined (see above). */
static char **prescan_args(int argc, char *argv[])
{
	char **nv = calloc((size_t)argc + 1, sizeof(*nv));
	int i;

	if (!nv)
		return NULL;
	for (i = 0; i < argc; i++) {
		int opt = i > 0 && strcmp(argv[i - 1], "-o") == 0;
		int glued = strncmp(argv[i], "-o", 2) == 0 && argv[i][2];

		if (opt || glued) {
			char *j = join_keep_rules(argv[i] + (glued ? 2 : 0));
			if (!j)
				goto oom;
			if (glued) {
				char *g;
				if (asprintf(&g, "-o%s", j) < 0) {
					free(j);
					goto oom;
				}
				free(j);
				j = g;
			}
			nv[i] = j;
		} else {
			nv[i] = strdup(argv[i]);
			if (!nv[i])
				goto oom;
		}
	}
	return nv;
oom:
	while (i-- > 0)
		free(nv[i]);
	free(nv);
	return NULL;
}

static void free_args(char **nv)
{
	size_t i;

	for (i = 0; nv && nv[i]; i++)
		free(nv[i]);
	free(nv);
}

/* Parse the schedule and health options into t; 0, or 1 after printing
 * what is wrong. */
static int parse_timer_opts(const struct snap_opts *o,
			    struct snap_timer_opts *t)
{
	snap_err err;

	memset(t, 0, sizeof(*t));
	snap_err_clear(&err);
	t->verify_slice = 10;
	if (o->every && (snap_duration_parse(o->every, &t->every_ns) != 0 ||
			 t->every_ns <= 0)) {
		fprintf(stderr, "snapfs: every=%s: not a positive duration "
			"(examples: 30s, 15m, 1h, 1h30m)\n", o->every);
		return 1;
	}
	if (o->keep) {
		char *k = strdup(o->keep), *p;
		int rc;
		if (!k) {
			fprintf(stderr, "snapfs: out of memory\n");
			return 1;
		}
		for (p = k; *p; p++)
			if (*p == '+' || *p == '/')
				*p = ',';
		rc = snap_keep_parse(k, &t->keep, &err);
		free(k);
		if (rc != 0) {
			fprintf(stderr, "snapfs: keep=%s: %s\n", o->keep,
				err.msg);
			return 1;
		}
	}
	if (o->max_size && (snap_size_parse(o->max_size, &t->keep.max_size)
			    != 0 || t->keep.max_size == 0)) {
		fprintf(stderr, "snapfs: max_size=%s: not a size (examples: "
			"512K, 10M, 2G)\n", o->max_size);
		return 1;
	}
	if ((o->keep || o->max_size) && !o->every) {
		fprintf(stderr, "snapfs: keep= and max_size= apply after "
			"automatic snapshots: they need every=DURATION\n");
		return 1;
	}
	if (o->check && (snap_duration_parse(o->check, &t->check_ns) != 0 ||
			 t->check_ns <= 0)) {
		fprintf(stderr, "snapfs: check=%s: not a positive duration "
			"(examples: 30s, 15m, 1h)\n", o->check);
		return 1;
	}
	if (o->auto_recover && !o->check) {
		fprintf(stderr, "snapfs: auto_recover needs check=DURATION\n");
		return 1;
	}
	t->auto_recover = o->auto_recover;
	if (o->verify && (snap_duration_parse(o->verify, &t->verify_ns) != 0
			  || t->verify_ns <= 0)) {
		fprintf(stderr, "snapfs: verify=%s: not a positive duration "
			"(examples: 10m, 1h, 1d)\n", o->verify);
		return 1;
	}
	if (o->on_failure && !o->on_failure[0]) {
		fprintf(stderr, "snapfs: on_failure= needs a command\n");
		return 1;
	}
	t->on_failure = o->on_failure;
	return 0;
}

int main(int argc, char *argv[])
{
	char **nargv = prescan_args(argc, argv);
	struct fuse_args args = FUSE_ARGS_INIT(argc, nargv);
	struct fuse_cmdline_opts fopts;
	struct snap_timer_opts topts;
	struct fuse_loop_config *cfg = NULL;
	struct snap_opts o;
	snap_err err, full;
	char *db = NULL, *store = NULL, *fsname_opt = NULL, *fsname = NULL;
	int ready_fd = -1, rc, ret = 1, mounted = 0;
	int signals = 0;

	memset(&o, 0, sizeof(o));
	memset(&fopts, 0, sizeof(fopts));
	snap_err_clear(&err);
	snap_err_clear(&full);
	if (!nargv) {
		fprintf(stderr, "snapfs: out of memory\n");
		return 1;
	}
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
	if (parse_timer_opts(&o, &topts))
		goto out;
	if (check_db(o.db) || check_mountpoint(fopts.mountpoint))
		goto out;
	db = realpath(o.db, NULL);
	store = o.store ? absolute(o.store) : NULL;
	if (!db || (o.store && !store)) {
		fprintf(stderr, "snapfs: %s: %s\n", o.db, strerror(errno));
		goto out;
	}
	if (check_mount_overlap(fopts.mountpoint, db, store))
		goto out;
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
	/* Finish a restore a crash interrupted before serving anything. */
	snap_restore_recover(snap_fs.store);
	snap_fs.db_path = snap_store_db_path(snap_fs.store);
	/* A store on a full filesystem is served read-only: say so. */
	snap_err_clear(&full);
	if (snap_store_writable(snap_fs.store, &full) == 0)
		snap_err_clear(&full);
	rc = snap_staging_init(snap_fs.store, snap_fs.staging_dir,
			       sizeof(snap_fs.staging_dir), &err);
	if (rc != 0) {
		fprintf(stderr, "snapfs: cannot set up the staging directory "
			"of the store %s: %s\n", snap_store_dir(snap_fs.store),
			err.msg);
		goto out;
	}
	snap_live_close(snap_fs.live);
	rc = snap_live_open(db, snap_fs.staging_dir, &snap_fs.live, &err);
	if (rc != 0) {
		fprintf(stderr, "snapfs: %s: %s\n", db, err.msg);
		goto out;
	}

	rc = snap_timer_open(&topts, &err);
	if (rc != 0) {
		fprintf(stderr, "snapfs: cannot start the schedule for %s: "
			"%s\n", db, err.msg);
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
	rc = snap_watch_start(snap_fs.store, snap_fs.notify,
			      snap_fs.started_ns);
	if (rc != 0) {
		fprintf(stderr, "snapfs: starting the catalog watcher: %s\n",
			strerror(-rc));
		goto out;
	}
	rc = snap_timer_start();
	if (rc != 0) {
		fprintf(stderr, "snapfs: starting the timer thread: %s\n",
			strerror(-rc));
		goto out;
	}
	snap_log_setup(fopts.foreground, fopts.debug);
	if (full.msg[0]) {
		if (!fopts.foreground)   /* the terminal, not only syslog */
			fprintf(stderr, "snapfs: warning: serving the "
				"snapshots read-only: %s\n", full.msg);
		snap_log(LOG_WARNING, "warning: serving the snapshots "
			 "read-only: %s", full.msg);
	}
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
	/* The timer uses the store, the live database, the watcher and the
	 * notifier; the watcher the store and the notifier. */
	snap_timer_stop();
	snap_watch_stop();
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
	if (snap_fs.store) {
		snap_staging_cleanup(snap_fs.store);
		snap_store_close(snap_fs.store);
	}
	fuse_opt_free_args(&args);
	free(fopts.mountpoint);
	free(fsname_opt);
	free(fsname);
	free(o.store);
	free(o.every);
	free(o.keep);
	free(o.max_size);
	free(o.check);
	free(o.verify);
	free(o.on_failure);
	free_args(nargv);
	free(o.db);
	free(o.mountpoint);
	free(store);
	free(db);
	return ret;
}
