/*
 * fs/options.h — the daemon's command line, parsed without mounting
 * anything (options.c).
 */
#ifndef FS_OPTIONS_H
#define FS_OPTIONS_H

#include "ino.h"
#include "timer.h"
#include "offsite.h"

/* mount(8) words: accepted and dropped, so the same options work in
 * /etc/fstab (the daemon's and a replica mount's option tables). */
#define SNAP_OPT_MOUNT_WORDS \
	FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD), \
	FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD), \
	FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD), \
	FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD), \
	FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD), \
	FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD), \
	FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD), \
	FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD), \
	FUSE_OPT_KEY("rw", FUSE_OPT_KEY_DISCARD)

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
	/* the offsite replica (offsite.c) */
	char *replicate;        /* -o replicate=URL */
	char *replicate_every;  /* -o replicate_every=DURATION */
	char *passphrase_file;  /* -o passphrase_file=FILE */
	char *endpoint;         /* -o endpoint=URL: AWS_ENDPOINT_URL for
				   replicate=s3://, set by main.c */
};

/* Everything the command line says: snapfs's own options (o), libfuse's
 * (fopts; args is what is left for fuse_session_new), and the schedule
 * and health options as the timer takes them (topts). */
struct snap_cmdline {
	char **nargv;                  /* argv with the keep rules joined */
	struct fuse_args args;
	struct fuse_cmdline_opts fopts;
	struct snap_opts o;
	struct snap_timer_opts topts;  /* on_failure points into o */
	struct snap_offsite_opts ropts; /* replicate=...: points into o */
};

/* What snap_options_parse decided. */
enum {
	SNAP_OPTIONS_MOUNT = 0,  /* go on: c has a database and a mount point */
	SNAP_OPTIONS_FAIL = 1,   /* exit 1: what is wrong was printed */
	SNAP_OPTIONS_DONE = 2,   /* exit 0: -h or -V printed what was asked */
};

/* Parse argv as the daemon does before it checks or opens anything;
 * prints what is wrong (stderr) or the help and versions (stdout).  c is
 * filled in every case; free it with snap_options_free. */
int snap_options_parse(int argc, char *argv[], struct snap_cmdline *c);
void snap_options_free(struct snap_cmdline *c);

#endif /* FS_OPTIONS_H */
