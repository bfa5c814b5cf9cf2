/*
 * fs/replica.c — `snapfs [options] URL MOUNTPOINT` with a replica URL
 * (s3://BUCKET/PREFIX or file:///ABS/PATH): the replica mounted read-only.
 *
 * main.c hands argv here when its first non-option argument is such a URL;
 * the daemon's own code (store, live database, timer, watcher) is not used.
 * In order: the command line (-f, -d, -s, -o passphrase_file=FILE, -o
 * endpoint=URL (AWS_ENDPOINT_URL for this mount), libfuse's options; -o
 * ro is implied; the daemon's options are refused, they need a database;
 * -h and -V stay the daemon's), the session, the fork (unless -f), the
 * replica opened with the passphrase (SNAPFS_PASSPHRASE or the
 * passphrase file's first line) and its
 * catalog listed, then the mount.  Every refusal before the mount (no
 * replica, wrong passphrase, no credentials, an unreadable passphrase
 * file, one its group or others may read: the daemon's check of
 * passphrase_file=) is one line on stderr and exit 1, with nothing
 * mounted.
 * Credentials for s3:// come from AWS_* in the environment only
 * (engine/objstore_s3.c).
 *
 * The tree and its operations: replica_ops.c.  Several threads serve
 * (libfuse's multi-threaded loop unless -s); replica_ops.c holds one lock
 * around the replica.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"
#include "rmount.h"


/* What the command line of a replica mount says. */
struct rm_opts {
	char *url;
	char *pass_file;
	char *endpoint;     /* -o endpoint=URL: AWS_ENDPOINT_URL for s3:// */
	int nonopts;
	int refused;        /* a daemon-only option was given */
};

enum { RM_KEY_DAEMON };

static const struct fuse_opt rm_opt_spec[] = {
	{ "passphrase_file=%s", offsetof(struct rm_opts, pass_file), 0 },
	{ "endpoint=%s", offsetof(struct rm_opts, endpoint), 0 },
	FUSE_OPT_KEY("store=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("every=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("keep=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("max_size=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("check=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("auto_recover", RM_KEY_DAEMON),
	FUSE_OPT_KEY("verify=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("on_failure=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("replicate=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("replicate_every=", RM_KEY_DAEMON),
	FUSE_OPT_KEY("ro", FUSE_OPT_KEY_DISCARD),      /* implied */
	SNAP_OPT_MOUNT_WORDS,                         /* rw too: ro anyway */
	FUSE_OPT_END
};

/* 1 when s is a URL ("scheme://..."): a replica's, or one the replica
 * code refuses by name ("not a replica URL"), rather than a database
 * path that does not exist.  (A database at such a relative path is
 * still reachable as ./scheme://...) */
static int rm_is_url(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
			  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
	return n > 0 && !strncmp(s + n, "://", 3);
}

int snap_rmount_wanted(int argc, char *argv[])
{
	/* -h and -V are the daemon's (options.c), whatever follows. */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") ||
		    !strcmp(argv[i], "-V") || !strcmp(argv[i], "--version"))
			return 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o")) {
			i++;                 /* its value */
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		return rm_is_url(argv[i]);
	}
	return 0;
}

/* fuse_opt_parse's callback: the URL, the mount point, refusals. */
static int rm_opt_proc(void *data, const char *arg, int key,
		       struct fuse_args *outargs)
{
	struct rm_opts *o = data;

	(void)outargs;
	switch (key) {
	case RM_KEY_DAEMON:
		fprintf(stderr, "snapfs: -o %s: a replica is mounted "
			"read-only, without a store or schedule\n", arg);
		o->refused = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (o->nonopts++ == 0) {
			o->url = strdup(arg);
			return 0;
		}
		if (o->nonopts == 2)
			return 1;            /* the mount point */
		fprintf(stderr, "snapfs: unexpected argument \"%s\"\n", arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		return strncmp(arg, "x-", 2) ? 1 : 0;
	}
	return 1;
}

/* The passphrase: the first line of file, else SNAPFS_PASSPHRASE, else
 * none (*pass NULL), as the daemon's replicate= reads it
 * (snap_replica_pass_read).  0, or 1 after saying what is wrong. */
static int rm_passphrase(const char *file, char *buf, const char **pass)
{
	snap_err err;
	int rc = snap_replica_pass_read(file, "passphrase_file=",
					"SNAPFS_PASSPHRASE", buf, &err);

	*pass = buf[0] ? buf : NULL;
	if (rc < 0 || rc == 1)
		fprintf(stderr, "snapfs: %s%s\n", rc == 1 ? "warning: " : "",
			err.msg);
	return rc < 0;
}

/* Stopping (SIGTERM, SIGINT, SIGHUP) cancels the replica's requests
 * (snap_replica_cancel: an atomic store, safe in a handler) before
 * libfuse's handler ends the loop: the loop waits for the requests in
 * flight, and a read waiting on a server that stopped answering would
 * otherwise hold the exit (and the unmount) for a minute or more, as the
 * daemon's offsite thread is cancelled too (offsite.c). */
static const int rm_stop_signals[] = {SIGHUP, SIGINT, SIGTERM};
static struct sigaction rm_fuse_sa[3];    /* libfuse's handlers */
static snap_replica *rm_cancel_r;

static void rm_stop_handler(int sig)
{
	for (size_t i = 0; i < 3; i++) {
		if (rm_stop_signals[i] != sig)
			continue;
		snap_replica_cancel(rm_cancel_r);
		if (rm_fuse_sa[i].sa_handler != SIG_DFL &&
		    rm_fuse_sa[i].sa_handler != SIG_IGN)
			rm_fuse_sa[i].sa_handler(sig);
	}
}

/* Put rm_stop_handler before libfuse's handlers (installed by
 * fuse_set_signal_handlers); 0 or -1. */
static int rm_stop_handlers_set(snap_replica *r)
{
	struct sigaction sa;

	rm_cancel_r = r;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = rm_stop_handler;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < 3; i++)
		if (sigaction(rm_stop_signals[i], &sa, &rm_fuse_sa[i]) != 0)
			return -1;
	return 0;
}

/* libfuse's handlers back, for fuse_remove_signal_handlers. */
static void rm_stop_handlers_remove(void)
{
	for (size_t i = 0; i < 3; i++)
		sigaction(rm_stop_signals[i], &rm_fuse_sa[i], NULL);
	rm_cancel_r = NULL;
}

/* .snapfs/status.json's text (malloc()ed, NULL: out of memory). */
static char *rm_status_text(const struct snap_rmount *m)
{
	snap_json j;
	char iso[40];

	snap_time_iso(m->started_ns, iso);
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "replica");
	snap_json_str(&j, m->url);
	snap_json_key(&j, "read_only");
	snap_json_bool(&j, 1);
	snap_json_key(&j, "encrypted");
	snap_json_bool(&j, snap_replica_encrypted(m->r));
	snap_json_key(&j, "snapshots");
	snap_json_int(&j, (int64_t)m->nsnaps);
	snap_json_key(&j, "mounted");
	snap_json_str(&j, iso);
	snap_json_key(&j, "mounted_ns");
	snap_json_int(&j, m->started_ns);
	snap_json_obj_end(&j);
	if (!snap_json_done(&j)) {
		snap_json_free(&j);
		return NULL;
	}
	char *out = NULL;
	if (asprintf(&out, "%s\n", j.buf) < 0)
		out = NULL;
	snap_json_free(&j);
	return out;
}

int snap_rmount_main(int argc, char *argv[])
{
	struct rm_opts o;
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts fopts;
	struct fuse_loop_config *cfg = NULL;
	struct fuse_session *se = NULL;
	struct snap_rmount m;
	char pbuf[SNAP_PASS_MAX], *fsname = NULL, *fsname_opt = NULL;
	const char *pass = NULL;
	int ready_fd = -1, ret = 1, mounted = 0, signals = 0, rc;
	snap_err err;

	/* Packs (~4 MB each) are allocated by whichever worker thread
	 * reads; with an arena per thread, one freed in one arena does not
	 * serve the next in another and the peak grows with the threads
	 * (75 MB instead of 52 reading a 62 MB image).  The replica is
	 * used under one lock anyway: one arena costs nothing. */
	mallopt(M_ARENA_MAX, 1);
	memset(&o, 0, sizeof(o));
	memset(&fopts, 0, sizeof(fopts));
	memset(&m, 0, sizeof(m));
	snap_err_clear(&err);
	if (fuse_opt_parse(&args, &o, rm_opt_spec, rm_opt_proc) != 0 ||
	    o.refused)
		goto out;
	if (fuse_parse_cmdline(&args, &fopts) != 0)
		goto out;
	if (o.nonopts < 2 || !fopts.mountpoint) {
		fprintf(stderr, "usage: %s [options] URL MOUNTPOINT\n"
			"snapfs: a replica URL and a mount point are needed\n",
			argv[0]);
		goto out;
	}
	if (snap_startup_check_mountpoint(fopts.mountpoint) ||
	    rm_passphrase(o.pass_file, pbuf, &pass))
		goto out;
	if (o.endpoint && setenv("AWS_ENDPOINT_URL", o.endpoint, 1) != 0) {
		fprintf(stderr, "snapfs: endpoint=%s: %s\n", o.endpoint,
			strerror(errno));
		goto out;
	}
	m.url = o.url;
	/* Read-only for the kernel too: every write is EROFS. */
	if (asprintf(&fsname, "fsname=snapfs:%s", o.url) < 0 ||
	    fuse_opt_add_opt_escaped(&fsname_opt, fsname) != 0 ||
	    fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, fsname_opt) != 0 ||
	    fuse_opt_add_arg(&args, "-oro") != 0 ||
	    /* The modes (private to whoever mounted) hold for other users
	     * too (allow_other): the kernel checks them. */
	    fuse_opt_add_arg(&args, "-odefault_permissions") != 0) {
		fprintf(stderr, "snapfs: out of memory\n");
		goto out;
	}
	se = fuse_session_new(&args, snap_rmount_ops(&m),
			      sizeof(struct fuse_lowlevel_ops), NULL);
	if (!se)
		goto out;                   /* libfuse said why */
	if (!fopts.foreground)
		ready_fd = snap_startup_fork();
	snap_log_setup(1, fopts.debug);     /* stderr until ready */
	m.started_ns = snap_time_now_ns();
	m.uid = getuid();
	m.gid = getgid();

	rc = snap_replica_open(o.url, pass, pass ? strlen(pass) : 0, 0, &m.r,
			       &err);
	if (pass)
		explicit_bzero(pbuf, sizeof(pbuf));
	if (rc == 0)
		rc = snap_replica_list(m.r, &m.snaps, &m.nsnaps, &err);
	/* One file per name, the row a read of that name opens (a replica
	 * can hold two rows of one name): never a listed entry whose size
	 * and xattrs are one row's and whose bytes are another's. */
	if (rc == 0 && snap_replica_names_unique(m.snaps, &m.nsnaps) < 0)
		rc = snap_err_set(&err, -ENOMEM, "out of memory");
	if (rc == -EPERM && pass)
		/* A plain replica, and a passphrase given: the engine's advice
		 * (--no-encryption) is snapctl's; snapfs has no such option. */
		fprintf(stderr, "snapfs: cannot open the replica %s: it is not "
			"encrypted, but a passphrase was given: refused (its "
			"config may have been replaced); to mount it as a plain "
			"replica, mount it without -o passphrase_file= and with "
			"SNAPFS_PASSPHRASE unset\n", o.url);
	else if (rc < 0)
		fprintf(stderr, "snapfs: cannot open the replica %s: %s\n",
			o.url, snap_err_after(err.msg, o.url));
	if (rc < 0)
		goto out;
	m.status = rm_status_text(&m);
	if (!m.status) {
		fprintf(stderr, "snapfs: out of memory\n");
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	signals = 1;
	if (rm_stop_handlers_set(m.r) != 0)
		goto out;
	if (fuse_session_mount(se, fopts.mountpoint) != 0)
		goto out;                   /* libfuse said why */
	mounted = 1;
	snap_log_setup(fopts.foreground, fopts.debug);
	snap_log(LOG_INFO, "serving %s at %s (a replica, read-only, %zu "
		 "snapshots)", o.url, fopts.mountpoint, m.nsnaps);
	rc = snap_startup_ready(ready_fd, 0);
	ready_fd = -1;
	if (rc < 0)
		goto out;            /* logged */

	if (fopts.singlethread) {
		rc = fuse_session_loop(se);
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
		rc = fuse_session_loop_mt(se, cfg);
	}
	ret = rc < 0 ? 1 : 0;
	snap_log(LOG_INFO, "unmounting %s", fopts.mountpoint);
out:
	snap_startup_ready(ready_fd, 1);
	if (mounted)
		fuse_session_unmount(se);
	if (signals) {
		rm_stop_handlers_remove();
		fuse_remove_signal_handlers(se);
	}
	if (se)
		fuse_session_destroy(se);
	fuse_loop_cfg_destroy(cfg);
	snap_rmount_ops_end();
	snap_replica_close(m.r);
	free(m.snaps);
	free(m.status);
	free(fsname);
	free(fsname_opt);
	free(fopts.mountpoint);
	free(o.url);
	free(o.pass_file);
	free(o.endpoint);
	fuse_opt_free_args(&args);
	return ret;
}
