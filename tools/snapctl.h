/*
 * tools/snapctl.h — what the files of snapctl share: the parsed command
 * line, the command table's row, exit statuses, and the output helpers
 * (messages, JSON, progress, sizes and times).
 *
 * snapctl is split by concern: snapctl.c parses, dispatches and holds the
 * catalog commands (list, show, create, import, restore, verify, delete,
 * pin, export, log); snapctl_diff.c the content commands (diff, restore
 * --dry-run and --table, export --sql); snapctl_health.c check and status;
 * snapctl_prune.c prune; snapctl_mount.c finding a mount's store (-C).
 * Names are internal to the program (ctl_*, cmd_*); only the engine is
 * linked.
 *
 * Threads: snapctl is single-threaded except for the progress ticker
 * (ctl_busy_begin), which only draws on stderr; every drawing of the
 * progress line takes ctl_out_lock, which nothing else is held under.
 */
#ifndef TOOLS_SNAPCTL_H
#define TOOLS_SNAPCTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sqlite3.h>

#include "snapfs.h"

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

/* Command-specific options, as bits in ctl_cmd.opts and ctl_args.given. */
enum {
	CTL_OPT_LABEL = 1 << 0,
	CTL_OPT_COMMENT = 1 << 1,
	CTL_OPT_FULL = 1 << 2,
	CTL_OPT_LIMIT = 1 << 3,
	CTL_OPT_KEEP = 1 << 4,
	CTL_OPT_MAX_SIZE = 1 << 5,
	CTL_OPT_DRY_RUN = 1 << 6,
	CTL_OPT_RECOVER = 1 << 7,
	CTL_OPT_PROMETHEUS = 1 << 8,
	CTL_OPT_WARN_AGE = 1 << 9,
	CTL_OPT_CRIT_AGE = 1 << 10,
	CTL_OPT_TABLE = 1 << 11,
	CTL_OPT_SQL = 1 << 12,
	CTL_OPT_LAST = CTL_OPT_SQL,
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
	int dry_run;            /* --dry-run (prune, restore) */
	int recover;            /* --recover (check) */
	int prometheus;         /* --prometheus (status) */
	int64_t warn_age_ns;    /* --warn-age D (status) */
	int64_t crit_age_ns;    /* --crit-age D (status) */
	const char *table;      /* --table T (restore) */
	int sql;                /* --sql (export) */
	unsigned given;         /* CTL_OPT_* bits that appeared */
	char **pos;             /* positional arguments after the command */
	int npos;               /* how many */
	/* From the mount's .snapfs/status.json (-C), when it says: */
	int64_t mount_next_ns;  /* next scheduled snapshot, 0 = unknown */
	int64_t mount_interval_ns;  /* schedule interval, 0 = unknown */
} ctl_args;

/* One command: the table in snapctl.c replaces an if-chain in main(). */
typedef struct ctl_cmd {
	const char *name;
	int (*run)(snap_store *s, ctl_args *a);  /* NULL: needs no store */
	const char *args;       /* usage of its arguments and options */
	const char *summary;    /* one line for --help; NULL: hidden */
	const char *details;    /* "snapctl help CMD": options, output, exit
				   status; NULL: the summary says it all */
	int min_args;           /* positional arguments required */
	int max_args;           /* and allowed */
	unsigned opts;          /* CTL_OPT_* it accepts */
	unsigned open_flags;    /* SNAP_OPEN_* for snap_store_open: CREATE
				   for create and import, READONLY for
				   the commands that only read */
} ctl_cmd;

/* ---- output (snapctl.c) ------------------------------------------------ */

/* "snapctl: <message>" on stderr; return CTL_EXIT_FAIL. */
int ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "snapctl: warning: <message>" on stderr. */
void ctl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error and a pointer to --help; return CTL_EXIT_USAGE. */
int ctl_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* A failed engine call: its message (or `what` and strerror). */
int ctl_fail(const snap_err *e, int rc, const char *what);
/* Print a finished JSON document on stdout; 0 or CTL_EXIT_FAIL. */
int ctl_json_print(snap_json *j);
/* Run sql (one statement, ?1 bound to the JSON text json of len bytes)
 * on an in-memory SQLite connection and call row() for each row; nonzero
 * from row() stops.  SQLite's json functions read JSON for snapctl: there
 * is no parser of our own.  SQLITE_OK or the SQLite error code. */
int ctl_json_query(const char *json, size_t len, const char *sql,
		   int (*row)(sqlite3_stmt *st, void *arg), void *arg);
/* "8192 B", "4.0 KiB", "1.5 GiB". */
void ctl_size_human(uint64_t n, char out[32]);
/* ISO-8601 UTC to the second ("2026-11-22T01:49:00Z"). */
void ctl_time_short(int64_t ns, char out[40]);
/* An age or duration for people: "3d4h", "5m12s", "40s", "250ms". */
void ctl_age_human(int64_t ns, char out[48]);
/* Find snapshot NAME (".db" optional, "latest"); 0 or CTL_EXIT_FAIL. */
int ctl_find(snap_store *s, const char *name, snap_info *si);
/* 1 when paths a and b name the same existing file. */
int ctl_same_file(const char *a, const char *b);

/* Progress on stderr, drawn only when stderr is a terminal and only once
 * an operation has run long enough to be worth watching (so small
 * databases never flicker); erased before anything else is printed. */
void ctl_progress_clear(void);
/* A bar: "<what> [#####.....]  45% <detail>". */
void ctl_bar(const char *what, uint64_t done, uint64_t total,
	     const char *detail);
/* Start an operation the bar measures (resets the "worth it" clock). */
void ctl_bar_begin(void);
/* For an engine call that reports no progress: a line "<what> ... 12s"
 * redrawn by a ticker thread until ctl_busy_end(), which erases it. */
void ctl_busy_begin(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
void ctl_busy_end(void);

/* ---- commands in the other files --------------------------------------- */

/* snapctl_diff.c */
int cmd_diff(snap_store *s, ctl_args *a);
int ctl_restore_dry_run(snap_store *s, ctl_args *a, const snap_info *si);
int ctl_restore_table(snap_store *s, ctl_args *a, const snap_info *si);
int ctl_export_sql(snap_store *s, ctl_args *a);
/* snapctl_health.c */
int cmd_check(snap_store *s, ctl_args *a);
int cmd_status(snap_store *s, ctl_args *a);
/* "status" with thresholds when the store could not be opened: print the
 * Nagios line (CRITICAL when there is no store, so no snapshot; UNKNOWN
 * otherwise) and return the plugin status. */
int ctl_status_no_store(const ctl_args *a, int missing);
/* snapctl_prune.c */
int cmd_prune(snap_store *s, ctl_args *a);
/* snapctl_mount.c: fill a->db and a->store_dir (and the schedule fields)
 * from MOUNTPOINT/.snapfs/status.json; 0 or CTL_EXIT_FAIL. */
int ctl_mount_resolve(ctl_args *a);

#endif /* TOOLS_SNAPCTL_H */
