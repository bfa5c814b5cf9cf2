/*
 * tools/ctl.h — the bottom of snapctl: what every command file uses.  The
 * parsed command line (ctl_args), exit statuses, messages on stderr,
 * printing a JSON document and reading JSON through SQLite, finding a
 * snapshot by name; with ctl_progress.h (the progress line) and
 * ctl_format.h (sizes and times for people).
 *
 * snapctl is split by concern, and the files call downwards only:
 *   snapctl.c          main: the command table, usage, dispatch, opening
 *                      the store
 *   snapctl_opts.c     the option table and the parsing of argv
 *   snapctl_catalog.c  list, show, create, import, delete, rename, pin,
 *                      unpin, export, log, __names
 *   snapctl_restore.c  restore and verify
 *   snapctl_diff.c     diff, restore --dry-run and --table, export --sql
 *   snapctl_health.c   check and status
 *   snapctl_prune.c    prune
 *   snapctl_mount.c    finding a mount's store (-C)
 *   snapctl_replica.c  replicate, and the commands on a replica
 *                      (--replica URL)
 *   ctl.c, ctl_progress.c, ctl_format.c  the helpers below, which call no
 *                      command
 * The commands are declared in ctl_cmds.h for main.  Names are internal
 * to the program (ctl_*, cmd_*); only the engine is linked.
 *
 * Threads: snapctl is single-threaded except for the progress ticker
 * (ctl_progress.h).
 */
#ifndef TOOLS_CTL_H
#define TOOLS_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sqlite3.h>

#include "snapfs.h"
#include "ctl_format.h"
#include "ctl_progress.h"

/* Exit statuses (documented in --help and snapctl(1)). */
enum {
	CTL_EXIT_OK = 0,      /* success */
	CTL_EXIT_FAIL = 1,    /* a problem found, or the operation failed */
	CTL_EXIT_USAGE = 2,   /* unknown command/option, missing argument */
};

/* "status" with --warn-age/--crit-age: the Nagios plugin statuses. */
enum {
	CTL_NAGIOS_OK = 0,
	CTL_NAGIOS_WARNING = 1,
	CTL_NAGIOS_CRITICAL = 2,
	CTL_NAGIOS_UNKNOWN = 3,   /* the status could not be read */
};

/* Everything the command line said, after parsing. */
typedef struct ctl_args {
	const char *db;         /* --db FILE (or from -C), or NULL */
	const char *store_dir;  /* --store DIR (or from -C), or NULL */
	const char *mount;      /* -C MOUNTPOINT, or NULL */
	int json;               /* --json */
	int help;               /* -h / --help */
	int version;            /* --version */
	const char *label;      /* --label L (create, import) */
	const char *comment;    /* --comment C (create, import) */
	int full;               /* --full (verify) */
	size_t limit;           /* --limit N (log); 0 = all */
	snap_keep_policy policy;  /* --keep SPEC, --max-size SIZE (prune) */
	const char *keep_spec;    /* --keep's SPEC as given, NULL: none */
	int dry_run;            /* --dry-run (prune, restore) */
	int recover;            /* --recover (check) */
	int prometheus;         /* --prometheus (status) */
	int warn_age;           /* --warn-age given */
	int64_t warn_age_ns;    /* --warn-age D (status) */
	int crit_age;           /* --crit-age given */
	int64_t crit_age_ns;    /* --crit-age D (status) */
	const char *table;      /* --table T (restore) */
	int sql;                /* --sql (export) */
	const char *replica;    /* --replica URL: work on a replica */
	const char *endpoint;   /* --endpoint URL (S3) */
	const char *pass_file;  /* --passphrase-file FILE */
	const char *new_pass_file;  /* --new-passphrase-file FILE */
	int no_encryption;      /* --no-encryption (replicate) */
	unsigned given;         /* options given: bit i for row i of the
				   option table (snapctl_opts.c) */
	char **pos;             /* positional arguments after the command */
	int npos;               /* how many */
	/* From the mount's .snapfs/status.json (-C), when it says: */
	int64_t mount_next_ns;  /* next scheduled snapshot, 0 = unknown */
	int64_t mount_interval_ns;  /* schedule interval, 0 = unknown */
	const char *mount_replica;  /* the replica the mount reports, or NULL */
	int64_t mount_replica_running_ns; /* its replication running since,
					     0 = none */
} ctl_args;

/* "snapctl: <message>" on stderr; return CTL_EXIT_FAIL. */
int ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "snapctl: warning: <message>" on stderr. */
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error and a pointer to --help; return CTL_EXIT_USAGE. */
int ctl_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* A failed engine call: its message (or `what` and strerror). */
int ctl_fail(const snap_err *e, int rc, const char *what);
/* Print a finished JSON document on stdout and free the writer; 0, or
 * CTL_EXIT_FAIL when it is not whole (out of memory). */
int ctl_json_print(snap_json *j);
/* Start a JSON document that is one object: init j and open it. */
void ctl_json_object(snap_json *j);
/* Run sql (one statement, ?1 bound to the JSON text json of len bytes)
 * on an in-memory SQLite connection and call row() for each row; nonzero
 * from row() stops.  SQLite's json functions read JSON for snapctl: there
 * is no parser of our own.  SQLITE_OK or the SQLite error code. */
int ctl_json_query(const char *json, size_t len, const char *sql,
		   int (*row)(sqlite3_stmt *st, void *arg), void *arg);
/* Find snapshot NAME (".db" optional, "latest"); 0 or CTL_EXIT_FAIL. */
int ctl_find(snap_store *s, const char *name, snap_info *si);
/* 1 when paths a and b name the same existing file. */
int ctl_same_file(const char *a, const char *b);

#endif /* TOOLS_CTL_H */
