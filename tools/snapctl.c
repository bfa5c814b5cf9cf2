/*
 * tools/snapctl.c — the snapfs command-line tool: main, the command
 * table, usage, and dispatch to the commands.
 *
 * snapctl works on a snapshot store directly, with or without a mount: it
 * lists, shows, takes, imports, restores, verifies, deletes, pins and exports
 * snapshots, prints the event history, compares states (diff), restores one
 * table, writes SQL dumps, prunes by retention rules, checks the live
 * database's health and reports status for people and monitors, and
 * replicates to, and works from, an offsite replica.  It links
 * only the engine and holds no storage logic of its own; every operation is
 * one engine call, and the tool is argument parsing, output formatting and
 * exit codes.  This file has main(), the command table and the opening
 * of the store; the options are in snapctl_opts.c, the commands in
 * snapctl_*.c, the helpers they share in ctl*.c (see ctl.h).
 *
 *   snapctl [--db FILE] [--store DIR] [-C MOUNTPOINT] [--json] COMMAND [ARGS]
 *
 * Options may come before or after the command ("snapctl list --db x.db" and
 * "snapctl --db x.db list" are the same): getopt_long permutes argv, so every
 * option of every command is in one table and each command declares which of
 * the command-specific ones it accepts.  What remains after the options is
 * the command name and its positional arguments.  Option values are parsed
 * here (durations, sizes, the keep policy), so a bad value is a usage error
 * before anything is opened.
 *
 * Which store: --db FILE alone means FILE.snapfs/; --store DIR alone means a
 * store that already exists and records its database; both together must
 * agree (the engine checks); -C MOUNTPOINT reads both from a mount's
 * .snapfs/status.json.  Only "create" and "import" create a store; any
 * other command on a missing store fails with a sentence that says how to
 * start one, rather than leaving an empty store behind.
 *
 * Output contract (scripts and tests rely on it):
 *   - results go to stdout; with --json, stdout is exactly one JSON value
 *     followed by a newline (objects from snap_json_info/snap_json_event
 *     and snap_status_json, whose field names are the engine's contract);
 *   - every error is one line on stderr, "snapctl: <what failed, on which
 *     snapshot or file, and why>", normally the engine's own message;
 *   - exit status 0 success, 1 a problem found or the operation failed or
 *     was refused, 2 usage error; except "status" with --warn-age or
 *     --crit-age, which exits as a Nagios plugin does (0 OK, 1 WARNING,
 *     2 CRITICAL, 3 UNKNOWN).
 * Progress is drawn on stderr only when stderr is a terminal, only for an
 * operation that has run long enough to be worth watching, and is erased
 * before anything else is printed, so pipes and logs never see it.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ctl_cmds.h"
#include "ctl_opts.h"

/* Allocations from this size up are mapped on their own (main). */
#define CTL_MMAP_THRESHOLD (256 * 1024)

/* ---- store access ------------------------------------------------------ */

/* 1 when path exists (any type). */
static int ctl_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* 1 when path is an empty (0-byte) regular file: SQLite would read it
 * as an empty database, but there is nothing to snapshot. */
static int ctl_empty_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0;
}

/* 1 when path is known not to exist: a path that cannot be looked up (a
 * store directory this user may not enter) is not a missing one. */
static int ctl_absent(const char *path)
{
	struct stat st;

	return stat(path, &st) != 0 && (errno == ENOENT || errno == ENOTDIR);
}

/*
 * Open the store the options name, with the command's open flags.  Refuses,
 * before the engine creates anything, the cases that would leave an empty or
 * wrong store behind: any command but create/import on a missing store, a
 * store to create without a database path, a first snapshot of a database
 * that does not exist or is empty (and the engine, with SNAP_OPEN_LIVE_DB,
 * of one that is not a database).  The default store is found from the database's real
 * path, as the engine finds it, so "--db LINK" names the store of the
 * database LINK points to for every command.  *missing says whether store.db
 * was absent (for "status" as a monitor).  Returns 0 or an exit status.
 */
static int ctl_open(const ctl_args *a, const ctl_cmd *c, snap_store **out,
		    int *missing)
{
	snap_err err;
	char *dir = NULL, *file = NULL, mnt[PATH_MAX];
	int rc = 0, have, erc;

	snap_err_clear(&err);
	if (a->store_dir)
		dir = strdup(a->store_dir);
	else if (!(dir = snap_store_default_dir(a->db)) && errno != ENOMEM)
		return ctl_error("database %s: its directory does not exist",
				 a->db);
	if (!dir || asprintf(&file, "%s/store.db", dir) < 0) {
		free(dir);
		return ctl_error("out of memory");
	}
	/* A store.db that cannot be looked up (EACCES) is there as far as
	 * we know: the open below says why it cannot be read, instead of
	 * "no store" (and status as a monitor says UNKNOWN, not CRITICAL). */
	have = !ctl_absent(file);
	*missing = !have;
	if (!have && a->db && !a->store_dir &&
	    ctl_mount_of_db(a->db, mnt, sizeof(mnt)))
		/* Served with -o store=DIR elsewhere: a store made here
		 * would be a second one the mount never shows. */
		rc = ctl_error("no store at %s, but %s is served by the "
			       "snapfs mount at %s, whose store is elsewhere: "
			       "use 'snapctl -C %s %s' (or --store DIR)", dir,
			       a->db, mnt, mnt, c->name);
	else if (!have && !a->db && (c->open_flags & SNAP_OPEN_CREATE))
		rc = ctl_error("no store at %s; give --db FILE to create one "
			       "for a database", dir);
	else if (!have && !strcmp(c->name, "create") && !ctl_exists(a->db))
		rc = ctl_error("no database at %s: nothing to snapshot",
			       a->db);
	else if (!have && !strcmp(c->name, "create") && ctl_empty_file(a->db))
		rc = ctl_error("%s is empty (0 bytes), not a SQLite database: "
			       "nothing to snapshot, and no store was created "
			       "for it", a->db);
	if (rc == 0) {
		erc = snap_store_open(a->db, a->store_dir, c->open_flags, out,
				      &err);
		/* The engine's word for a store that is not there at all
		 * is generic; say how to start one.  A catalog that is gone
		 * from an existing store (-EUCLEAN) is the engine's to say. */
		if (erc == -ENOENT && !have)
			rc = ctl_error("no store at %s; take a first snapshot "
				       "with 'snapctl --db %s create'", dir,
				       a->db ? a->db : "FILE");
		else if (erc < 0)
			rc = ctl_fail(&err, erc, "opening the store");
		else
			snap_restore_recover(*out); /* an interrupted restore */
	}
	free(file);
	free(dir);
	return rc;
}

/* ---- the command table, usage ------------------------------------------ */

static const ctl_cmd ctl_cmds[] = {
	{ "list", cmd_list, "", "list snapshots, oldest first", NULL,
	  0, 0, SNAP_OPEN_READONLY },
	{ "show", cmd_show, "NAME", "every field of a snapshot, row counts per "
	  "table", NULL, 1, 1, SNAP_OPEN_READONLY },
	{ "create", cmd_create, "[--label L] [--comment C]",
	  "take a manual snapshot; prints its name",
	  "  --label L     the label in the snapshot's name (default: manual)\n"
	  "  --comment C   a comment kept with the snapshot\n"
	  "Creates the store when it does not exist yet.  A progress bar is\n"
	  "drawn on a terminal for a large database.\n",
	  0, 0, SNAP_OPEN_CREATE | SNAP_OPEN_LIVE_DB },
	{ "import", cmd_import, "FILE [--label L] [--comment C]",
	  "store a database file as a snapshot; prints its name",
	  "FILE must be a complete, intact SQLite database; the label\n"
	  "defaults to its file name.  The live database is not touched.\n"
	  "A progress bar is drawn on a terminal for a large file.\n",
	  1, 1, SNAP_OPEN_CREATE },
	{ "restore", cmd_restore, "NAME|FILE [--dry-run] [--table T]",
	  "verified restore into the live database",
	  "  (none)        verify NAME, take a safety snapshot (pre-restore),\n"
	  "                copy it in, prove the result; roll back on failure.\n"
	  "                FILE: a database file, imported first\n"
	  "  --dry-run     print what the restore would change (as 'diff live\n"
	  "                NAME'); change nothing\n"
	  "  --table T     restore only table T, in one transaction, after a\n"
	  "                safety snapshot; other tables are not touched.\n"
	  "                Warns about new foreign-key violations\n"
	  "Exit 1 when the restore is refused or fails (the engine's reason\n"
	  "on stderr); the live database is then unchanged.\n",
	  1, 1, 0 },
	{ "verify", cmd_verify, "[--full] [NAME]", "check pages and hashes "
	  "(--full: integrity_check too)",
	  "Verifies NAME, or every snapshot.  Exit 1 when anything is bad.\n"
	  "A progress bar is drawn on a terminal for large snapshots.\n",
	  0, 1, 0 },
	{ "delete", cmd_delete, "NAME", "delete a snapshot and reclaim its "
	  "unshared pages", NULL, 1, 1, 0 },
	{ "rename", cmd_rename, "NAME NEW", "give a snapshot exactly the name "
	  "NEW",
	  "NEW ends in .db (added when left out).  Refused, exit 1, when\n"
	  "another snapshot has that name, or when it cannot be a snapshot's:\n"
	  "latest.db, live.db, current.db, a hidden name, a name ending in\n"
	  ".db.db, control characters or bytes that are not UTF-8.  The\n"
	  "creation time, kind and bytes stay; the label follows the name.\n",
	  2, 2, 0 },
	{ "pin", cmd_pin, "NAME", "never prune a snapshot automatically",
	  NULL, 1, 1, 0 },
	{ "unpin", cmd_unpin, "NAME", "let retention prune it again",
	  NULL, 1, 1, 0 },
	{ "export", cmd_export, "NAME FILE [--sql]", "write a snapshot's "
	  "image, or a SQL dump, to a file",
	  "  (none)        FILE gets the snapshot's image, a standalone\n"
	  "                database\n"
	  "  --sql         FILE gets SQL text like sqlite3's .dump, which\n"
	  "                'sqlite3 NEW.db < FILE' re-imports; FILE '-' is\n"
	  "                standard output; NAME may be 'live'\n"
	  "A progress bar is drawn on a terminal for a large image.\n",
	  2, 2, SNAP_OPEN_READONLY },
	{ "diff", cmd_diff, "A B", "rows added, removed, changed per table, "
	  "A to B",
	  "A and B are snapshot names, or 'live' (or 'current') for the live\n"
	  "database.  Tables with a primary key are compared by key (changed\n"
	  "rows are counted); tables without one by whole rows (a changed row\n"
	  "is one removed and one added).  Created and dropped tables and a\n"
	  "changed schema are reported.  Exit 0 whether or not there are\n"
	  "differences (unlike diff(1)).\n",
	  2, 2, SNAP_OPEN_READONLY },
	{ "prune", cmd_prune, "[--keep SPEC] [--max-size SIZE] [--dry-run]",
	  "delete automatic snapshots no retention rule keeps",
	  "  --keep SPEC     last:N,hourly:N,daily:N,weekly:N,monthly:N,\n"
	  "                  yearly:N,within:DURATION (any subset; restic's\n"
	  "                  forget semantics, buckets in UTC)\n"
	  "  --max-size SIZE then delete the oldest automatic snapshots until\n"
	  "                  the store's data fits (500M, 2G, ...)\n"
	  "  --dry-run       print the decisions, delete nothing\n"
	  "One line per snapshot, newest first: keep/prune NAME and the rule\n"
	  "that keeps it or why it goes.  Only kinds auto and pre-restore are\n"
	  "ever pruned; manual, import, conflict, recovery and pinned\n"
	  "snapshots are kept.  A policy is required (exit 2 without one).\n",
	  0, 0, 0 },
	{ "check", cmd_check, "[--recover]", "check the live database for "
	  "corruption; --recover",
	  "On corruption the corrupt state is kept as a snapshot of kind\n"
	  "recovery.  --recover then restores the newest snapshot that passes\n"
	  "full verification, skipping damaged ones.\n"
	  "Exit 0 healthy or recovered; 1 corrupt (not recovered), or the\n"
	  "check could not run.\n",
	  0, 0, 0 },
	{ "status", cmd_status, "[--json|--prometheus] [--warn-age D] "
	  "[--crit-age D]", "summary for people and monitors; a freshness "
	  "check",
	  "  --json          the status as one JSON object\n"
	  "  --prometheus    the status as Prometheus text (snapfs_* gauges)\n"
	  "  --warn-age D    freshness check: WARNING when the newest snapshot\n"
	  "                  is D old or older (D: 30s, 15m, 1h, 2d, 1w)\n"
	  "  --crit-age D    CRITICAL when it is D old or older, or when there\n"
	  "                  is no snapshot\n"
	  "With a threshold the first line is 'OK|WARNING|CRITICAL - newest\n"
	  "snapshot NAME is AGE old' and the exit status is Nagios's:\n"
	  "0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (status unreadable).\n"
	  "Without a threshold: exit 0, or 1 when the status cannot be read.\n",
	  0, 0, SNAP_OPEN_READONLY },
	{ "log", cmd_log, "[--limit N]", "the event history (--limit: only the "
	  "last N)", NULL, 0, 0, SNAP_OPEN_READONLY },
	{ "replicate", cmd_replicate, "URL [--no-encryption]",
	  "upload the snapshots a replica lacks (s3:// or file://)",
	  "URL is s3://BUCKET/PREFIX (endpoint from --endpoint or\n"
	  "AWS_ENDPOINT_URL, region from AWS_REGION, credentials from\n"
	  "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or file:///PATH.\n"
	  "The first run creates the replica, encrypted with the passphrase\n"
	  "from --passphrase-file FILE or SNAPFS_PASSPHRASE; without one it\n"
	  "is refused unless --no-encryption is given.  Only pages the\n"
	  "replica lacks are sent; a snapshot shows there once all of its\n"
	  "pages are.  Run again after a failure or a kill: it resumes.\n"
	  "Snapshots pruned from the replica are not sent again.\n"
	  "--json: {\"replica\", \"snapshots\", \"pages\", \"bytes\",\n"
	  "\"present\", \"pruned\"}.  Exit 1 when anything failed; the\n"
	  "database and its snapshots are never changed (the store records\n"
	  "what the replica holds, and the run as an event).\n",
	  1, 1, 0 },
	{ "passphrase", cmd_passphrase, "change",
	  "with --replica URL: a new passphrase for the replica",
	  "The new one from --new-passphrase-file FILE or\n"
	  "SNAPFS_NEW_PASSPHRASE, the old from --passphrase-file or\n"
	  "SNAPFS_PASSPHRASE.  Only the wrapped key is rewritten.\n",
	  1, 1, SNAP_OPEN_READONLY },
	{ "help", NULL, "[COMMAND]", "show this help, or one command's", NULL,
	  0, 1, 0 },
	{ "__names", cmd_names, "", NULL, NULL, 0, 0, SNAP_OPEN_READONLY },
	{ NULL, NULL, NULL, NULL, NULL, 0, 0, 0 },
};

/* The command called name, or NULL. */
static const ctl_cmd *ctl_cmd_find(const char *name)
{
	const ctl_cmd *c;

	for (c = ctl_cmds; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

/* Usage of one command, and its details. */
static void ctl_usage_cmd(FILE *f, const ctl_cmd *c)
{
	fprintf(f, "usage: snapctl [--db FILE] [--store DIR] [-C MOUNTPOINT] "
		"[--json] %s%s%s\n", c->name, c->args[0] ? " " : "",
		c->args);
	if (c->summary)
		fprintf(f, "%s\n", c->summary);
	if (c->details)
		fprintf(f, "\n%s", c->details);
}

/* The full usage text: options, commands from the table, exit status. */
static void ctl_usage(FILE *f)
{
	const ctl_cmd *c;

	fputs("usage: snapctl [--db FILE] [--store DIR] [-C MOUNTPOINT] "
	      "[--json] COMMAND [ARGS]\n\n"
	      "Manage the snapshots of a SQLite database kept by snapfs.\n\n"
	      "Options (before or after the command):\n", f);
	ctl_usage_options(f);
	fputs("\nCommands:\n", f);
	for (c = ctl_cmds; c->name; c++) {
		char head[96];

		if (!c->summary)
			continue;
		snprintf(head, sizeof(head), "%s %s", c->name, c->args);
		if (strlen(head) > 24)
			fprintf(f, "  %s\n  %-24s %s\n", head, "", c->summary);
		else
			fprintf(f, "  %-24s %s\n", head, c->summary);
	}
	fputs("\nReplicas (URL: s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH):\n"
	      "  snapctl --db FILE replicate URL [--no-encryption]\n"
	      "  snapctl --replica URL list|show NAME|verify [--full] [NAME]|\n"
	      "          export NAME FILE|restore NAME --db PATH|\n"
	      "          prune --keep RULES [--dry-run]|log|passphrase change\n"
	      "  --replica URL          work from the replica alone, no store\n"
	      "  --passphrase-file FILE the passphrase (default: "
	      "SNAPFS_PASSPHRASE)\n"
	      "  --new-passphrase-file FILE\n"
	      "                         passphrase change: the new one "
	      "(default:\n"
	      "                         SNAPFS_NEW_PASSPHRASE)\n"
	      "  --no-encryption        replicate: create a plain replica; "
	      "--replica:\n"
	      "                         accept one despite a passphrase\n"
	      "  --endpoint URL         the S3 service (default: "
	      "AWS_ENDPOINT_URL;\n"
	      "                         AWS_REGION, default us-east-1; "
	      "credentials from\n"
	      "                         AWS_ACCESS_KEY_ID, "
	      "AWS_SECRET_ACCESS_KEY)\n", f);
	fputs("\nNAME is a snapshot's name, with or without \".db\"; \"latest\" "
	      "names the newest\nmanual, automatic or imported snapshot.\n"
	      "Only create and import create a missing store.  "
	      "'snapctl help COMMAND'\nshows a command's options.\n\n"
	      "Exit status:\n"
	      "  0  success (diff: whether or not there are differences)\n"
	      "  1  a problem was found, or the operation failed or was refused\n"
	      "     (verification failed, restore refused, database corrupt,\n"
	      "     no such snapshot, I/O error)\n"
	      "  2  usage error (unknown command or option, missing argument)\n"
	      "status with --warn-age/--crit-age exits as a Nagios plugin:\n"
	      "  0 OK, 1 WARNING, 2 CRITICAL (no snapshot, or too old),\n"
	      "  3 UNKNOWN (the status could not be read)\n"
	      "\nSee snapctl(1).\n", f);
}

/* "help [COMMAND]": usage on stdout. */
static int ctl_help(const ctl_args *a)
{
	const ctl_cmd *c = a->npos ? ctl_cmd_find(a->pos[0]) : NULL;

	if (a->npos && !c)
		return ctl_usage_error("unknown command '%s'", a->pos[0]);
	if (c)
		ctl_usage_cmd(stdout, c);
	else
		ctl_usage(stdout);
	return CTL_EXIT_OK;
}

/* Flush stdout and report a write error (full disk, closed pipe). */
static int ctl_close_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		int e = errno;

		ctl_error("writing the output: %s", strerror(e ? e : EIO));
		return rc ? rc : CTL_EXIT_FAIL;
	}
	return rc;
}

/* Parse, check, resolve -C, open the store, run the command, flush stdout. */
int main(int argc, char **argv)
{
	ctl_args a;
	const ctl_cmd *c;
	snap_store *s = NULL;
	int rc, missing = 0;

	/* Big buffers (a page index, a restore's proof, page maps, pipeline
	 * rings) are mapped on their own and go back to the system when
	 * freed.  glibc's default raises this threshold after the first such
	 * free, and the next ones then stay in the heaps of the threads
	 * that freed them: measured on a 1 GB restore, peak RSS 72 -> 60
	 * MB (tests/bench/README.md). */
	mallopt(M_MMAP_THRESHOLD, CTL_MMAP_THRESHOLD);
	memset(&a, 0, sizeof(a));
	ctl_progress_init();
	rc = ctl_parse(argc, argv, &a);
	if (rc)
		return rc;
	if (a.json)
		ctl_progress_off();
	if (a.version) {
		printf("snapctl %s\nSQLite %s\n", SNAPFS_VERSION,
		       sqlite3_libversion());
		return ctl_close_stdout(CTL_EXIT_OK);
	}
	if (a.help && a.npos) {
		c = ctl_cmd_find(a.pos[0]);
		if (c) {
			ctl_usage_cmd(stdout, c);
			return ctl_close_stdout(CTL_EXIT_OK);
		}
	}
	if (a.help) {
		ctl_usage(stdout);
		return ctl_close_stdout(CTL_EXIT_OK);
	}
	if (a.npos == 0) {
		ctl_usage(stderr);
		return CTL_EXIT_USAGE;
	}
	c = ctl_cmd_find(a.pos[0]);
	if (!c)
		return ctl_usage_error("unknown command '%s'", a.pos[0]);
	a.pos++;
	a.npos--;
	rc = ctl_check(c, &a);
	if (rc)
		return rc;
	if (!c->run)
		return ctl_close_stdout(ctl_help(&a));
	if (a.replica) {
		/* A replica needs no store: URL and passphrase alone. */
		if (a.mount)
			return ctl_usage_error("--replica and -C exclude each "
					       "other");
		rc = ctl_replica_run(c->name, &a);
		ctl_busy_end();
		return ctl_close_stdout(rc);
	}
	if (a.mount) {
		rc = ctl_mount_resolve(&a);
		if (rc)
			return rc;
	}
	rc = ctl_open(&a, c, &s, &missing);
	if (rc == 0) {
		rc = c->run(s, &a);
		snap_store_close(s);
	} else if (c->run == cmd_status &&
		   (a.warn_age || a.crit_age)) {
		rc = ctl_status_no_store(&a, missing);
	}
	ctl_busy_end();
	return ctl_close_stdout(rc);
}
