/*
 * fs/main.c — `snapfs [options] DBFILE MOUNTPOINT`: the daemon's life in
 * order.  The command line is options.c's, the checks of the paths and
 * the fork startup.c's; here they run in order, then the database, the
 * store, the staging directory, the schedule and the offsite replica
 * open, the mount is made,
 * the threads start and the session loop serves.  allow_other implies
 * default_permissions: the daemon checks no permission itself.
 *
 * The store's daemon lock is taken when the store opens; once mounted,
 * the mount point is recorded beside it, so that a daemon started after
 * `fusermount3 -u` waits for this one to finish closing the store instead
 * of being refused (engine/storelock.c).
 *
 * Shutdown (SIGTERM, SIGINT, SIGHUP, fusermount3 -u): the loop returns once
 * in-flight requests finished — libfuse cancels workers only while they
 * wait for a request, so a snapshot or restore in progress completes —
 * then the timer, the catalog watcher and the notifier stop, the mount
 * goes, and the staging directory is removed.  After SIGKILL, the next
 * start empties the staging directory.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fs.h"
#include "rmount.h"

/* snapfs [options] DBFILE MOUNTPOINT: parse, check, open, mount, serve,
 * clean up. */
int main(int argc, char *argv[])
{
	struct snap_cmdline c;
	struct snap_opts *o = &c.o;
	struct fuse_cmdline_opts *fopts = &c.fopts;
	struct fuse_args *args = &c.args;
	struct fuse_loop_config *cfg = NULL;
	snap_err err, full;
	char *db = NULL, *store = NULL, *fsname_opt = NULL, *fsname = NULL;
	int ready_fd = -1, rc, ret = 1, mounted = 0;
	int signals = 0;

	/* snapfs URL MNT: a replica, read-only (replica.c). */
	if (snap_rmount_wanted(argc, argv))
		return snap_rmount_main(argc, argv);
	/* Big buffers (a read-ahead's window, a restore's proof, page maps,
	 * pipeline rings) are mapped on their own and go back to the system
	 * when freed, as in snapctl: glibc's default raises this threshold
	 * after the first such free, and the next ones then stay in the
	 * heaps of the threads that freed them. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	snap_err_clear(&err);
	snap_err_clear(&full);
	rc = snap_options_parse(argc, argv, &c);
	if (rc != SNAP_OPTIONS_MOUNT) {
		snap_options_free(&c);
		return rc == SNAP_OPTIONS_DONE ? 0 : 1;
	}
	if (snap_startup_check_db(o->db) ||
	    snap_startup_check_mountpoint(fopts->mountpoint))
		goto out;
	db = realpath(o->db, NULL);
	store = o->store ? snap_startup_absolute(o->store) : NULL;
	if (!db || (o->store && !store)) {
		fprintf(stderr, "snapfs: %s: %s\n", o->db, strerror(errno));
		goto out;
	}
	if (snap_startup_check_overlap(fopts->mountpoint, db, store))
		goto out;
	snprintf(snap_fs.mountpoint, sizeof(snap_fs.mountpoint), "%s",
		 fopts->mountpoint);
	snap_fs.debug = fopts->debug;
	snap_fs.foreground = fopts->foreground;

	/* Other users see the files' modes enforced by the kernel: the
	 * daemon checks no permission itself, and a snapshot of a 0600
	 * database must stay unreadable to them. */
	if (o->allow_other && !o->default_permissions &&
	    fuse_opt_add_arg(args, "-odefault_permissions") != 0) {
		fprintf(stderr, "snapfs: out of memory\n");
		goto out;
	}
	/* The mount shows which database it serves. */
	if (asprintf(&fsname, "fsname=snapfs:%s", db) < 0 ||
	    fuse_opt_add_opt_escaped(&fsname_opt, fsname) != 0 ||
	    fuse_opt_add_arg(args, "-o") != 0 ||
	    fuse_opt_add_arg(args, fsname_opt) != 0) {
		fprintf(stderr, "snapfs: out of memory\n");
		goto out;
	}
	snap_fs.se = fuse_session_new(args, &snap_ll_ops, sizeof(snap_ll_ops),
				      NULL);
	if (!snap_fs.se)
		goto out;                   /* libfuse said why (options) */
	/* Nothing SQLite may exist yet: fork now. */
	if (!fopts->foreground)
		ready_fd = snap_startup_fork();
	snap_log_setup(1, fopts->debug);     /* stderr until ready */
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
	if (rc == -EBUSY) {     /* the message names the store and holder */
		fprintf(stderr, "snapfs: %s\n", err.msg);
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

	rc = snap_timer_open(&c.topts, &err);
	if (rc != 0) {
		fprintf(stderr, "snapfs: cannot start the schedule for %s: "
			"%s\n", db, err.msg);
		goto out;
	}

	/* -o endpoint=URL: the S3 service of replicate=s3://..., as a
	 * replica mount (fs/replica.c) and snapctl --endpoint take it. */
	if (c.o.endpoint && setenv("AWS_ENDPOINT_URL", c.o.endpoint, 1) != 0) {
		fprintf(stderr, "snapfs: endpoint=%s: %s\n", c.o.endpoint,
			strerror(errno));
		rc = 1;
		goto out;
	}
	rc = snap_offsite_open(&c.ropts, snap_fs.store, &err);
	if (rc != 0) {
		fprintf(stderr, "snapfs: cannot open the offsite replica for "
			"%s: %s\n", db, err.msg);
		goto out;
	}

	if (fuse_set_signal_handlers(snap_fs.se) != 0)
		goto out;
	signals = 1;
	if (fuse_session_mount(snap_fs.se, fopts->mountpoint) != 0)
		goto out;                   /* libfuse said why */
	mounted = 1;
	/* Once this mount is gone, the next daemon waits for our exit
	 * instead of being refused (engine/storelock.c). */
	if (snap_store_daemon_mounted(snap_fs.store, fopts->mountpoint,
				      &err) != 0)
		fprintf(stderr, "snapfs: warning: %s (a daemon started "
			"right after this one unmounts may be refused)\n",
			err.msg);
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
	rc = snap_offsite_start();
	if (rc != 0) {
		fprintf(stderr, "snapfs: starting the replication thread: "
			"%s\n", strerror(-rc));
		goto out;
	}
	snap_log_setup(fopts->foreground, fopts->debug);
	if (full.msg[0]) {
		if (!fopts->foreground)   /* the terminal, not only syslog */
			fprintf(stderr, "snapfs: warning: serving the "
				"snapshots read-only: %s\n", full.msg);
		snap_log(LOG_WARNING, "warning: serving the snapshots "
			 "read-only: %s", full.msg);
	}
	snap_log(LOG_INFO, "serving %s at %s (store %s)", db,
		 snap_fs.mountpoint, snap_store_dir(snap_fs.store));
	rc = snap_startup_ready(ready_fd, 0);
	ready_fd = -1;
	if (rc < 0)
		goto out;            /* logged */

	if (fopts->singlethread) {
		rc = fuse_session_loop(snap_fs.se);
	} else {
		cfg = fuse_loop_cfg_create();
		if (!cfg) {
			snap_log(LOG_ERR, "out of memory");
			goto out;
		}
		fuse_loop_cfg_set_clone_fd(cfg, fopts->clone_fd);
		if (fopts->max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(cfg,
						       fopts->max_idle_threads);
		fuse_loop_cfg_set_max_threads(cfg, fopts->max_threads);
		rc = fuse_session_loop_mt(snap_fs.se, cfg);
	}
	/* A signal ends the loop with its number: a clean shutdown. */
	ret = rc < 0 ? 1 : 0;
	snap_log(LOG_INFO, "unmounting %s", snap_fs.mountpoint);

out:
	snap_startup_ready(ready_fd, 1);
	/* The timer uses the store, the live database, the watcher and the
	 * notifier; the watcher the store and the notifier; replication
	 * the store and the watcher's hook. */
	snap_offsite_stop();
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
	snap_restorewal_shutdown();
	snap_node_free_all();
	if (snap_fs.live)
		snap_live_close(snap_fs.live);
	if (snap_fs.store) {
		snap_staging_cleanup(snap_fs.store);
		snap_store_close(snap_fs.store);
	}
	snap_options_free(&c);
	free(fsname_opt);
	free(fsname);
	free(store);
	free(db);
	return ret;
}
