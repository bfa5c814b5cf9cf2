/*
 * tools/snapctl.c — the snapfs command-line tool: argument parsing, the
 * command table, and the catalog commands.
 *
 * snapctl works on a snapshot store directly, with or without a mount: it
 * lists, shows, takes, imports, restores, verifies, deletes, pins and exports
 * snapshots, prints the event history, compares states (diff), restores one
 * table, writes SQL dumps, prunes by retention rules, checks the live
 * database's health and reports status for people and monitors.  It links
 * only the engine and holds no storage logic of its own; every operation is
 * one engine call, and the tool is argument parsing, output formatting and
 * exit codes.  This file has main(), the option and command tables and the
 * catalog commands; the others are in snapctl_*.c (see snapctl.h).
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
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapctl.h"

/* getopt_long codes for options without a short form. */
enum {
	CTL_LO_DB = 256,
	CTL_LO_STORE,
	CTL_LO_JSON,
	CTL_LO_VERSION,
	CTL_LO_LABEL,
	CTL_LO_COMMENT,
	CTL_LO_FULL,
	CTL_LO_LIMIT,
	CTL_LO_KEEP,
	CTL_LO_MAX_SIZE,
	CTL_LO_DRY_RUN,
	CTL_LO_RECOVER,
	CTL_LO_PROMETHEUS,
	CTL_LO_WARN_AGE,
	CTL_LO_CRIT_AGE,
	CTL_LO_TABLE,
	CTL_LO_SQL,
};

/* ---- messages and progress -------------------------------------------- */

/*
 * The progress line.  Drawn only when stderr is a terminal, and only once
 * the operation has run CTL_PROGRESS_DELAY_NS (a small database finishes
 * before that and never draws anything).  ctl_out_lock protects the fields
 * below and every write of the progress line, since the busy ticker draws
 * from its own thread; nothing else is ever held while it is.
 */
#define CTL_PROGRESS_DELAY_NS 300000000LL   /* 0.3 s */
#define CTL_TICK_NS 250000000LL             /* ticker redraw, 0.25 s */

static pthread_mutex_t ctl_out_lock = PTHREAD_MUTEX_INITIALIZER;
/* 1 when stderr is a terminal and a progress line may be drawn there. */
static int ctl_progress_tty;
/* 1 while a progress line is on the screen and must be erased. */
static int ctl_progress_shown;
/* CLOCK_MONOTONIC ns when the measured operation began. */
static int64_t ctl_progress_start;

/* The busy ticker: a thread that redraws "<what> ... 12s". */
static struct {
	pthread_t thread;
	pthread_cond_t wake;    /* signalled to stop; monotonic clock */
	int running;            /* the thread exists (main thread only) */
	int stop;               /* ctl_out_lock: asks the thread to end */
	char what[512];         /* ctl_out_lock: the text before "..." */
} ctl_busy;

/* Monotonic time in ns, for the progress delay and the ticker. */
static int64_t ctl_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Columns of the terminal on stderr (80 when it will not say). */
static int ctl_term_cols(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
		return ws.ws_col;
	return 80;
}

/* Draw line (cut to the terminal's width, so "\r" can erase it); the
 * caller holds ctl_out_lock. */
static void ctl_progress_draw_locked(const char *line)
{
	int cols = ctl_term_cols() - 1;

	fprintf(stderr, "\r\033[K%.*s", cols, line);
	fflush(stderr);
	ctl_progress_shown = 1;
}

/* Erase the progress line, if any; the caller holds ctl_out_lock. */
static void ctl_progress_clear_locked(void)
{
	if (ctl_progress_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
		ctl_progress_shown = 0;
	}
}

void ctl_progress_clear(void)
{
	pthread_mutex_lock(&ctl_out_lock);
	ctl_progress_clear_locked();
	pthread_mutex_unlock(&ctl_out_lock);
}

void ctl_bar_begin(void)
{
	ctl_progress_start = ctl_mono_ns();
}

/* "<what> [#####.....]  45% <detail>" into line. */
static void ctl_bar_format(char *line, size_t cap, const char *what,
			   uint64_t done, uint64_t total, const char *detail)
{
	enum { W = 30 };
	char bar[W + 1];
	int pct, fill, i;

	if (done > total)
		done = total;
	pct = total ? (int)(done * 100 / total) : 100;
	fill = total ? (int)(done * W / total) : W;
	for (i = 0; i < W; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[W] = '\0';
	snprintf(line, cap, "%s [%s] %3d%%%s%s", what, bar, pct,
		 detail && detail[0] ? " " : "", detail ? detail : "");
}

void ctl_bar(const char *what, uint64_t done, uint64_t total,
	     const char *detail)
{
	char line[1024];

	if (!ctl_progress_tty ||
	    ctl_mono_ns() - ctl_progress_start < CTL_PROGRESS_DELAY_NS)
		return;
	ctl_bar_format(line, sizeof(line), what, done, total, detail);
	pthread_mutex_lock(&ctl_out_lock);
	ctl_progress_draw_locked(line);
	pthread_mutex_unlock(&ctl_out_lock);
}

/* The ticker thread: redraw the busy line every CTL_TICK_NS. */
static void *ctl_busy_main(void *arg)
{
	static const char spin[] = "|/-\\";
	int64_t start = ctl_progress_start;
	unsigned n = 0;

	(void)arg;
	pthread_mutex_lock(&ctl_out_lock);
	while (!ctl_busy.stop) {
		struct timespec ts;
		int64_t now = ctl_mono_ns(), at = now + CTL_TICK_NS;

		if (now - start >= CTL_PROGRESS_DELAY_NS) {
			char line[640], tail[48];
			int room;

			/* The text is cut, never the spinner and the time. */
			snprintf(tail, sizeof(tail), " ... %c %llds",
				 spin[n++ % 4],
				 (long long)((now - start) / 1000000000LL));
			room = ctl_term_cols() - 1 - (int)strlen(tail);
			snprintf(line, sizeof(line), "%.*s%s", room > 0 ? room : 0,
				 ctl_busy.what, tail);
			ctl_progress_draw_locked(line);
		}
		ts.tv_sec = at / 1000000000LL;
		ts.tv_nsec = at % 1000000000LL;
		while (!ctl_busy.stop &&
		       pthread_cond_timedwait(&ctl_busy.wake, &ctl_out_lock,
					      &ts) == 0)
			;
	}
	ctl_progress_clear_locked();
	pthread_mutex_unlock(&ctl_out_lock);
	return NULL;
}

void ctl_busy_begin(const char *fmt, ...)
{
	pthread_condattr_t ca;
	va_list ap;

	ctl_bar_begin();
	if (!ctl_progress_tty || ctl_busy.running)
		return;
	va_start(ap, fmt);
	vsnprintf(ctl_busy.what, sizeof(ctl_busy.what), fmt, ap);
	va_end(ap);
	ctl_busy.stop = 0;
	if (pthread_condattr_init(&ca) != 0)
		return;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&ctl_busy.wake, &ca) == 0) {
		/* No ticker is only a missing nicety: go on without one. */
		if (pthread_create(&ctl_busy.thread, NULL, ctl_busy_main,
				   NULL) == 0)
			ctl_busy.running = 1;
		else
			pthread_cond_destroy(&ctl_busy.wake);
	}
	pthread_condattr_destroy(&ca);
}

void ctl_busy_end(void)
{
	if (!ctl_busy.running)
		return;
	pthread_mutex_lock(&ctl_out_lock);
	ctl_busy.stop = 1;
	pthread_cond_signal(&ctl_busy.wake);
	pthread_mutex_unlock(&ctl_out_lock);
	pthread_join(ctl_busy.thread, NULL);
	pthread_cond_destroy(&ctl_busy.wake);
	ctl_busy.running = 0;
}

/* Change the busy line's text (a bar between engine calls); drawn at the
 * next tick. */
static void ctl_busy_set(const char *text)
{
	if (!ctl_busy.running)
		return;
	pthread_mutex_lock(&ctl_out_lock);
	snprintf(ctl_busy.what, sizeof(ctl_busy.what), "%s", text);
	pthread_mutex_unlock(&ctl_out_lock);
}

/* The common tail of ctl_error and ctl_warn. */
static void ctl_message(const char *prefix, const char *fmt, va_list ap)
{
	ctl_busy_end();
	ctl_progress_clear();
	fflush(stdout);
	fputs(prefix, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int ctl_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_message("snapctl: ", fmt, ap);
	va_end(ap);
	return CTL_EXIT_FAIL;
}

void ctl_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ctl_message("snapctl: warning: ", fmt, ap);
	va_end(ap);
}

int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("snapctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'snapctl --help' for more information.\n", stderr);
	return CTL_EXIT_USAGE;
}

/*
 * Report a failed engine call.  The engine's message already names what
 * failed, on which snapshot or path, and why; `what` is only a fallback for
 * an engine call that left the message empty.  Returns CTL_EXIT_FAIL.
 */
int ctl_fail(const snap_err *e, int rc, const char *what)
{
	if (e->msg[0])
		return ctl_error("%s", e->msg);
	return ctl_error("%s: %s", what, strerror(rc < 0 ? -rc : EIO));
}

int ctl_json_print(snap_json *j)
{
	if (!snap_json_done(j))
		return ctl_error("out of memory while writing JSON");
	puts(j->buf);
	return CTL_EXIT_OK;
}

void ctl_size_human(uint64_t n, char out[32])
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	int u = -1;

	if (n < 1024) {
		snprintf(out, 32, "%" PRIu64 " B", n);
		return;
	}
	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	snprintf(out, 32, "%.1f %s", v, unit[u]);
}

void ctl_time_short(int64_t ns, char out[40])
{
	char *dot;

	snap_time_iso(ns, out);
	dot = strchr(out, '.');
	if (dot) {
		dot[0] = 'Z';
		dot[1] = '\0';
	}
}

/* Precision that reads well: milliseconds under a second, seconds under
 * an hour, minutes beyond. */
void ctl_age_human(int64_t ns, char out[48])
{
	const int64_t s = 1000000000LL;

	if (ns < 0)
		ns = 0;
	if (ns < s)
		ns -= ns % 1000000;
	else if (ns < 3600 * s)
		ns -= ns % s;
	else
		ns -= ns % (60 * s);
	if (ns > 0 && ns < 1000000)
		ns = 0;
	snap_duration_format(ns, out, 48);
}

/* ---- store access ------------------------------------------------------ */

/* 1 when path exists (any type). */
static int ctl_exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/*
 * Open the store the options name, with the command's open flags.  Refuses,
 * before the engine creates anything, the cases that would leave an empty or
 * wrong store behind: any command but create/import on a missing store, a
 * store to create without a database path, a first snapshot of a database
 * that does not exist (and the engine, with SNAP_OPEN_LIVE_DB, of one that
 * is not a database).  The default store is found from the database's real
 * path, as the engine finds it, so "--db LINK" names the store of the
 * database LINK points to for every command.  *missing says whether store.db
 * was absent (for "status" as a monitor).  Returns 0 or an exit status.
 */
static int ctl_open(const ctl_args *a, const ctl_cmd *c, snap_store **out,
		    int *missing)
{
	snap_err err;
	char *dir = NULL, *file = NULL;
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
	have = ctl_exists(file);
	*missing = !have;
	if (!have && !a->db && (c->open_flags & SNAP_OPEN_CREATE))
		rc = ctl_error("no store at %s; give --db FILE to create one "
			       "for a database", dir);
	else if (!have && !strcmp(c->name, "create") && !ctl_exists(a->db))
		rc = ctl_error("no database at %s: nothing to snapshot",
			       a->db);
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

int ctl_find(snap_store *s, const char *name, snap_info *si)
{
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_store_find(s, name, si, &err);
	if (rc < 0) {
		if (rc == -ENOENT && !err.msg[0])
			return ctl_error("no snapshot named '%s' in %s", name,
					 snap_store_dir(s));
		return ctl_fail(&err, rc, name);
	}
	return CTL_EXIT_OK;
}

/* ---- list, show -------------------------------------------------------- */

/* Where a snapshot is in the mount's trash: ".Trash-UID/files/NAME"
 * (under the mount point), "-" when it is in snapshots/. */
static void ctl_trash_where(const snap_info *si, char *out, size_t cap)
{
	if (si->trash == SNAP_TRASH_NONE)
		snprintf(out, cap, "-");
	else
		snprintf(out, cap, ".Trash-%u/%s/%s", si->trash_uid,
			 si->trash == SNAP_TRASH_EXPUNGED ? "expunged" :
			 "files", si->trash_name);
}

/* "list": the catalog, oldest first, as a table or a JSON array;
 * snapshots in the trash are listed with where they wait. */
static int cmd_list(snap_store *s, ctl_args *a)
{
	char where[SNAP_TRASH_NAME_MAX + 48];
	snap_info *v = NULL;
	size_t n = 0, i;
	snap_err err;
	int rc, w = 4, tw = 5;

	snap_err_clear(&err);
	rc = snap_store_list(s, &v, &n, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, "listing snapshots");
	if (a->json) {
		snap_json j;

		snap_json_init(&j);
		snap_json_arr_begin(&j);
		for (i = 0; i < n; i++)
			snap_json_info(&j, &v[i]);
		snap_json_arr_end(&j);
		rc = ctl_json_print(&j);
		snap_json_free(&j);
		free(v);
		return rc;
	}
	for (i = 0; i < n; i++) {
		if ((int)strlen(v[i].name) > w)
			w = (int)strlen(v[i].name);
		ctl_trash_where(&v[i], where, sizeof(where));
		if ((int)strlen(where) > tw)
			tw = (int)strlen(where);
	}
	printf("%-*s  %-11s  %-20s  %10s  %-6s  %-*s  %s\n", w, "NAME",
	       "KIND", "CREATED", "SIZE", "PINNED", tw, "TRASH",
	       "LABEL/COMMENT");
	for (i = 0; i < n; i++) {
		char t[40], sz[32];

		ctl_time_short(v[i].created_ns, t);
		ctl_size_human(v[i].image_size, sz);
		ctl_trash_where(&v[i], where, sizeof(where));
		printf("%-*s  %-11s  %-20s  %10s  %-6s  %-*s  %s%s%s\n", w,
		       v[i].name, snap_kind_name(v[i].kind), t, sz,
		       v[i].pinned ? "yes" : "no", tw, where, v[i].label,
		       v[i].comment[0] ? ": " : "", v[i].comment);
	}
	free(v);
	return CTL_EXIT_OK;
}

int ctl_json_query(const char *json, size_t len, const char *sql,
		   int (*row)(sqlite3_stmt *st, void *arg), void *arg)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, json, (int)len, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		rc = row(st, arg) ? SQLITE_ABORT : SQLITE_OK;
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* One "table  rows" line of ctl_print_tables. */
static int ctl_print_table(sqlite3_stmt *st, void *arg)
{
	int *n = arg;

	printf("  %-30s %s\n", (const char *)sqlite3_column_text(st, 0),
	       (const char *)sqlite3_column_text(st, 1));
	(*n)++;
	return 0;
}

/*
 * Print the per-table row counts (the engine's JSON object text) as aligned
 * "table  rows" lines.  SQLite's own json_each() reads the text, rather
 * than a parser of our own; text it cannot read is printed as it is rather
 * than hidden.
 */
static void ctl_print_tables(const char *json)
{
	int rc, n = 0;

	rc = ctl_json_query(json, strlen(json), "SELECT key, value FROM "
			    "json_each(?1)", ctl_print_table, &n);
	if (rc == SQLITE_OK && n == 0)
		puts("  (none)");
	else if (rc != SQLITE_OK && n == 0)
		printf("  %s\n", json);
}

/* "show NAME": every catalog field and the row count of each table. */
static int cmd_show(snap_store *s, ctl_args *a)
{
	snap_info si;
	snap_err err;
	char *tables = NULL, t[40], hex[65], sz[32];
	int rc;

	rc = ctl_find(s, a->pos[0], &si);
	if (rc)
		return rc;
	snap_err_clear(&err);
	rc = snap_store_tables_json(s, si.id, &tables, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, si.name);
	if (a->json) {
		snap_json j, info;

		snap_json_init(&info);
		snap_json_info(&info, &si);
		snap_json_init(&j);
		snap_json_obj_begin(&j);
		snap_json_fields(&j, &info);
		snap_json_key(&j, "change_counter");
		snap_json_int(&j, si.change_counter);
		snap_json_key(&j, "tables");
		snap_json_raw(&j, tables && tables[0] ? tables : "{}");
		snap_json_obj_end(&j);
		rc = ctl_json_print(&j);
		snap_json_free(&j);
		snap_json_free(&info);
		free(tables);
		return rc;
	}
	snap_time_iso(si.created_ns, t);
	snap_hex(si.sha256, hex);
	ctl_size_human(si.image_size, sz);
	printf("name:           %s\n", si.name);
	printf("label:          %s\n", si.label);
	printf("kind:           %s\n", snap_kind_name(si.kind));
	printf("created:        %s\n", t);
	printf("size:           %" PRIu64 " bytes (%s; %" PRIu32
	       " pages of %" PRIu32 ")\n", si.image_size, sz, si.page_count,
	       si.page_size);
	printf("sha256:         %s\n", hex);
	printf("pinned:         %s\n", si.pinned ? "yes" : "no");
	if (si.trash != SNAP_TRASH_NONE) {
		char where[SNAP_TRASH_NAME_MAX + 48], since[40];

		ctl_trash_where(&si, where, sizeof(where));
		snap_time_iso(si.trashed_ns, since);
		printf("in the trash:   %s (since %s)\n", where, since);
	}
	printf("comment:        %s\n", si.comment);
	printf("change counter: %" PRIu32 "\n", si.change_counter);
	printf("tables:\n");
	ctl_print_tables(tables ? tables : "{}");
	free(tables);
	return CTL_EXIT_OK;
}

/* ---- create, import ----------------------------------------------------- */

/* Progress of a snapshot being taken, redrawn when the percentage moves. */
static void ctl_take_progress(void *ctx, uint64_t done, uint64_t total)
{
	int *last = ctx;
	int pct = total ? (int)(done * 100 / total) : 100;

	if (pct == *last)
		return;
	char detail[64];

	*last = pct;
	snprintf(detail, sizeof(detail), "%" PRIu64 "/%" PRIu64 " pages",
		 done, total);
	ctl_bar("taking snapshot", done, total, detail);
}

/* Print a new snapshot: its name, or its JSON object with --json. */
static int ctl_print_new(const ctl_args *a, const snap_info *si)
{
	snap_json j;
	int rc;

	if (!a->json) {
		puts(si->name);
		return CTL_EXIT_OK;
	}
	snap_json_init(&j);
	snap_json_info(&j, si);
	rc = ctl_json_print(&j);
	snap_json_free(&j);
	return rc;
}

/* "create": take a manual snapshot of the live database now. */
static int cmd_create(snap_store *s, ctl_args *a)
{
	snap_create_opts o = { .kind = SNAP_KIND_MANUAL, .label = a->label,
			       .comment = a->comment };
	snap_info si;
	snap_err err;
	int rc, last = -1;

	snap_err_clear(&err);
	ctl_bar_begin();
	rc = snap_snapshot_take_progress(s, &o, ctl_take_progress, &last,
					 &si, &err);
	ctl_progress_clear();
	if (rc < 0)
		return ctl_fail(&err, rc, "taking a snapshot");
	return ctl_print_new(a, &si);
}

/*
 * "import FILE": store a database file as a snapshot of kind import, after
 * the engine has checked it is a complete, intact database.  The label
 * defaults to the file's name, as a restore from a file does.
 */
static int cmd_import(snap_store *s, ctl_args *a)
{
	const char *path = a->pos[0], *base = strrchr(path, '/');
	snap_create_opts o = { .kind = SNAP_KIND_IMPORT,
			       .comment = a->comment };
	snap_info si;
	snap_err err;
	int rc;

	o.label = a->label ? a->label : (base ? base + 1 : path);
	snap_err_clear(&err);
	ctl_busy_begin("importing %s", path);
	rc = snap_snapshot_import(s, path, &o, &si, &err);
	ctl_busy_end();
	if (rc < 0)
		return ctl_fail(&err, rc, path);
	return ctl_print_new(a, &si);
}

/* ---- restore ------------------------------------------------------------ */

/*
 * "restore NAME": a verified restore into the live database (the engine
 * verifies the source, takes a safety snapshot, copies, checks and rolls
 * back on failure).  A failure names what happened to the live database.
 * With --dry-run or --table the work is snapctl_diff.c's; both need a
 * snapshot, not a file (import the file first).
 */
static int cmd_restore(snap_store *s, ctl_args *a)
{
	snap_restore_result res;
	snap_info si;
	snap_err err;
	const char *safety;
	int rc;

	struct stat st;
	const char *what;

	/* NAME is a snapshot, or else a database file to restore from (it is
	 * verified and imported first). */
	snap_err_clear(&err);
	if (snap_store_find(s, a->pos[0], &si, &err) == 0) {
		what = si.name;
	} else if (stat(a->pos[0], &st) == 0 && !S_ISDIR(st.st_mode)) {
		if (a->dry_run || a->table)
			return ctl_usage_error("restore %s takes a snapshot "
					       "NAME, not a file; import %s "
					       "first ('snapctl import %s')",
					       a->dry_run ? "--dry-run" :
					       "--table", a->pos[0], a->pos[0]);
		what = a->pos[0];
	} else {
		rc = ctl_find(s, a->pos[0], &si);
		if (rc)
			return rc;
		what = si.name;
	}
	if (a->dry_run)
		return ctl_restore_dry_run(s, a, &si);
	if (a->table)
		return ctl_restore_table(s, a, &si);
	memset(&res, 0, sizeof(res));
	snap_err_clear(&err);
	/* The engine reports no progress of a restore: a ticker shows that
	 * it is working and for how long. */
	ctl_busy_begin("restoring %s into %s", what, snap_store_db_path(s));
	if (what == a->pos[0])
		rc = snap_restore_file(s, what, NULL, &res, &err);
	else
		rc = snap_restore(s, si.id, &res, &err);
	ctl_busy_end();
	if (rc < 0) {
		ctl_fail(&err, rc, what);
		if (res.rolled_back && res.have_safety)
			ctl_error("the live database %s was rolled back to "
				  "safety snapshot %s", snap_store_db_path(s),
				  res.safety.name);
		return CTL_EXIT_FAIL;
	}
	safety = res.have_safety ? res.safety.name : "none";
	if (a->json) {
		snap_json j;

		snap_json_init(&j);
		snap_json_obj_begin(&j);
		snap_json_key(&j, "restored"); snap_json_str(&j, what);
		snap_json_key(&j, "database");
		snap_json_str(&j, snap_store_db_path(s));
		snap_json_key(&j, "safety");
		if (res.have_safety)
			snap_json_str(&j, res.safety.name);
		else
			snap_json_null(&j);
		snap_json_key(&j, "verified_pages");
		snap_json_bool(&j, res.verified_pages);
		snap_json_obj_end(&j);
		rc = ctl_json_print(&j);
		snap_json_free(&j);
		return rc;
	}
	if (res.kept[0])
		printf("the file that was at %s is kept as %s\n",
		       snap_store_db_path(s), res.kept);
	printf("restored %s into %s (safety snapshot: %s)\n", what,
	       snap_store_db_path(s), safety);
	return CTL_EXIT_OK;
}

/* ---- verify ------------------------------------------------------------- */

/* State of one "verify" run, handed to the engine's problem callback. */
typedef struct ctl_verify {
	const ctl_args *a;
	snap_json problems;   /* --json: the "problems" array being built */
	unsigned found;       /* problems reported for the current snapshot */
} ctl_verify;

/* Record one problem: a line on stdout, or an element of the JSON array. */
static void ctl_verify_problem(void *ctx, const snap_info *si, uint32_t pgno,
			       const char *problem)
{
	ctl_verify *v = ctx;

	v->found++;
	if (v->a->json) {
		snap_json_obj_begin(&v->problems);
		snap_json_key(&v->problems, "snapshot");
		snap_json_str(&v->problems, si->name);
		snap_json_key(&v->problems, "page");
		snap_json_int(&v->problems, pgno);
		snap_json_key(&v->problems, "problem");
		snap_json_str(&v->problems, problem);
		snap_json_obj_end(&v->problems);
		return;
	}
	/* Under the output lock, so the ticker cannot draw mid-line. */
	pthread_mutex_lock(&ctl_out_lock);
	ctl_progress_clear_locked();
	if (pgno)
		printf("%s: page %" PRIu32 ": %s\n", si->name, pgno, problem);
	else
		printf("%s: %s\n", si->name, problem);
	fflush(stdout);
	pthread_mutex_unlock(&ctl_out_lock);
}

/*
 * "verify [--full] [NAME]": one snapshot, or each snapshot of the store in
 * turn (one engine call per snapshot, so progress and the count checked are
 * exact).  A snapshot whose verification could not even run counts as bad,
 * with the engine's message as its problem; one deleted meanwhile is
 * skipped.  Exit 1 when anything is bad.
 */
static int cmd_verify(snap_store *s, ctl_args *a)
{
	ctl_verify v = { .a = a };
	snap_info one, *list = NULL;
	snap_err err;
	size_t n = 0, i;
	uint64_t total = 0, done = 0;
	unsigned checked = 0, bad = 0;
	int rc;

	snap_err_clear(&err);
	if (a->npos == 1) {
		rc = ctl_find(s, a->pos[0], &one);
		if (rc)
			return rc;
		n = 1;
	} else {
		rc = snap_store_list(s, &list, &n, &err);
		if (rc < 0)
			return ctl_fail(&err, rc, "listing snapshots");
	}
	snap_json_init(&v.problems);
	snap_json_arr_begin(&v.problems);
	/* Progress: a bar of image bytes over the snapshots (the engine
	 * reports none within one), redrawn by the ticker. */
	for (i = 0; i < n; i++)
		total += (list ? &list[i] : &one)->image_size;
	ctl_busy_begin("verifying");
	for (i = 0; i < n; i++) {
		const snap_info *si = list ? &list[i] : &one;
		char line[512], detail[200];

		snprintf(detail, sizeof(detail), "%zu/%zu %s", i + 1, n,
			 si->name);
		ctl_bar_format(line, sizeof(line), "verifying", done, total,
			       detail);
		ctl_busy_set(line);
		done += si->image_size;
		v.found = 0;
		snap_err_clear(&err);
		rc = snap_verify_snapshot(s, si->id, a->full,
					  ctl_verify_problem, &v, &err);
		if (rc == -ENOENT && list)
			continue;
		checked++;
		if (rc == 0)
			continue;
		bad++;
		if (v.found == 0)
			ctl_verify_problem(&v, si, 0, err.msg[0] ? err.msg :
					   strerror(-rc));
	}
	ctl_busy_end();
	snap_json_arr_end(&v.problems);
	free(list);
	if (a->json) {
		snap_json j;

		snap_json_init(&j);
		snap_json_obj_begin(&j);
		snap_json_key(&j, "ok"); snap_json_bool(&j, bad == 0);
		snap_json_key(&j, "full"); snap_json_bool(&j, a->full);
		snap_json_key(&j, "checked"); snap_json_int(&j, checked);
		snap_json_key(&j, "bad"); snap_json_int(&j, bad);
		snap_json_key(&j, "problems");
		snap_json_raw(&j, v.problems.oom ? "[]" : v.problems.buf);
		snap_json_obj_end(&j);
		rc = v.problems.oom ? ctl_error("out of memory") :
			ctl_json_print(&j);
		snap_json_free(&j);
	} else {
		printf("%u snapshot%s verified, %u bad\n", checked,
		       checked == 1 ? "" : "s", bad);
		rc = CTL_EXIT_OK;
	}
	snap_json_free(&v.problems);
	if (rc == CTL_EXIT_OK && bad)
		rc = ctl_error("verification found problems in %u of %u "
			       "snapshot%s", bad, checked,
			       checked == 1 ? "" : "s");
	return rc;
}

/* ---- delete, pin, unpin, export ---------------------------------------- */

/* Print what a one-snapshot action did: a sentence or a small object. */
static int ctl_print_done(const ctl_args *a, const char *action,
			  const char *name, const char *extra)
{
	snap_json j;
	int rc;

	if (!a->json) {
		printf("%s %s%s\n", action, name, extra ? extra : "");
		return CTL_EXIT_OK;
	}
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "action"); snap_json_str(&j, action);
	snap_json_key(&j, "snapshot"); snap_json_str(&j, name);
	snap_json_obj_end(&j);
	rc = ctl_json_print(&j);
	snap_json_free(&j);
	return rc;
}

/* "delete NAME": the snapshot, and the pages no other snapshot uses. */
static int cmd_delete(snap_store *s, ctl_args *a)
{
	snap_info si;
	snap_err err;
	int rc;

	rc = ctl_find(s, a->pos[0], &si);
	if (rc)
		return rc;
	snap_err_clear(&err);
	rc = snap_store_delete(s, si.id, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, si.name);
	return ctl_print_done(a, "deleted", si.name, NULL);
}

/* "rename NAME NEW": the snapshot is called exactly NEW (".db" added when
 * left out, as everywhere in snapctl) from now on. */
static int cmd_rename(snap_store *s, ctl_args *a)
{
	char name[SNAP_NAME_MAX + 4], extra[SNAP_NAME_MAX + 16];
	const char *to = a->pos[1];
	size_t len = strlen(to);
	snap_info si, out;
	snap_err err;
	int rc;

	rc = ctl_find(s, a->pos[0], &si);
	if (rc)
		return rc;
	snprintf(name, sizeof(name), "%s%s", to,
		 len > 3 && !strcmp(to + len - 3, ".db") ? "" : ".db");
	snap_err_clear(&err);
	rc = snap_store_rename(s, si.id, name, &out, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, si.name);
	snprintf(extra, sizeof(extra), " (was %s)", si.name);
	return ctl_print_done(a, "renamed", out.name, extra);
}

/* "pin NAME" / "unpin NAME": protect from automatic pruning, or not. */
static int ctl_set_pin(snap_store *s, ctl_args *a, int pinned)
{
	snap_info si;
	snap_err err;
	int rc, was;

	rc = ctl_find(s, a->pos[0], &si);
	if (rc)
		return rc;
	was = si.pinned;
	snap_err_clear(&err);
	rc = snap_store_set_pinned(s, si.id, pinned, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, si.name);
	return ctl_print_done(a, pinned ? "pinned" : "unpinned", si.name,
			      !was == !pinned ? " (it already was)" : NULL);
}

/* "pin NAME". */
static int cmd_pin(snap_store *s, ctl_args *a)
{
	return ctl_set_pin(s, a, 1);
}

/* "unpin NAME". */
static int cmd_unpin(snap_store *s, ctl_args *a)
{
	return ctl_set_pin(s, a, 0);
}

int ctl_same_file(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 &&
	       sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/*
 * "export NAME FILE": write the snapshot's image to FILE (the engine writes
 * a temporary file and renames it).  Refuses FILE being the live database or
 * the store: a rename behind SQLite's back is not a restore (use "restore").
 * With --sql, a SQL dump instead (snapctl_diff.c).
 */
static int cmd_export(snap_store *s, ctl_args *a)
{
	const char *path = a->pos[1];
	snap_info si;
	snap_err err;
	char sz[32], extra[64 + PATH_MAX];
	int rc;

	if (a->sql)
		return ctl_export_sql(s, a);
	rc = ctl_find(s, a->pos[0], &si);
	if (rc)
		return rc;
	if (ctl_same_file(path, snap_store_db_path(s)))
		return ctl_error("export of %s: %s is the live database; use "
				 "'snapctl restore %s' to restore it", si.name,
				 path, si.name);
	if (ctl_same_file(path, snap_store_file(s)))
		return ctl_error("export of %s: %s is the store itself",
				 si.name, path);
	snap_err_clear(&err);
	ctl_busy_begin("exporting %s to %s", si.name, path);
	rc = snap_image_export(s, si.id, path, &err);
	ctl_busy_end();
	if (rc < 0)
		return ctl_fail(&err, rc, path);
	ctl_size_human(si.image_size, sz);
	snprintf(extra, sizeof(extra), " to %s (%s)", path, sz);
	return ctl_print_done(a, "exported", si.name, extra);
}

/* ---- log ---------------------------------------------------------------- */

/*
 * "log [--limit N]": the event history, oldest first; --limit keeps the N
 * most recent.  snap_event_list's limit counts from the oldest, so the whole
 * history is read and the tail printed.
 */
static int cmd_log(snap_store *s, ctl_args *a)
{
	snap_event *ev = NULL;
	size_t n = 0, i, first = 0;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_event_list(s, 0, 0, &ev, &n, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, "reading the event history");
	if (a->limit && n > a->limit)
		first = n - a->limit;
	if (a->json) {
		snap_json j;

		snap_json_init(&j);
		snap_json_arr_begin(&j);
		for (i = first; i < n; i++)
			snap_json_event(&j, &ev[i]);
		snap_json_arr_end(&j);
		rc = ctl_json_print(&j);
		snap_json_free(&j);
		free(ev);
		return rc;
	}
	for (i = first; i < n; i++) {
		char t[40];

		ctl_time_short(ev[i].time_ns, t);
		printf("%s %-10s %s %s %s\n", t, ev[i].kind,
		       ev[i].snapshot[0] ? ev[i].snapshot : "-",
		       ev[i].ok ? "ok" : "FAILED", ev[i].detail);
	}
	free(ev);
	return CTL_EXIT_OK;
}

/*
 * "__names": every snapshot name, one a line, for the bash completion.
 * Hidden from --help; quiet and exit 0 on a missing store (ctl_open
 * already said why on stderr, which the completion discards).
 */
static int cmd_names(snap_store *s, ctl_args *a)
{
	snap_info *v = NULL;
	size_t n = 0, i;

	(void)a;
	if (snap_store_list(s, &v, &n, NULL) < 0)
		return CTL_EXIT_FAIL;
	for (i = 0; i < n; i++)
		puts(v[i].name);
	free(v);
	return CTL_EXIT_OK;
}

/* ---- the command table, usage ------------------------------------------ */

static const ctl_cmd ctl_cmds[] = {
	{ "list", cmd_list, "", "list snapshots, oldest first", NULL,
	  0, 0, 0, SNAP_OPEN_READONLY },
	{ "show", cmd_show, "NAME", "every field of a snapshot, row counts per "
	  "table", NULL, 1, 1, 0, SNAP_OPEN_READONLY },
	{ "create", cmd_create, "[--label L] [--comment C]",
	  "take a manual snapshot; prints its name",
	  "  --label L     the label in the snapshot's name (default: manual)\n"
	  "  --comment C   a comment kept with the snapshot\n"
	  "Creates the store when it does not exist yet.  A progress bar is\n"
	  "drawn on a terminal for a large database.\n",
	  0, 0, CTL_OPT_LABEL | CTL_OPT_COMMENT,
	  SNAP_OPEN_CREATE | SNAP_OPEN_LIVE_DB },
	{ "import", cmd_import, "FILE [--label L] [--comment C]",
	  "store a database file as a snapshot; prints its name",
	  "FILE must be a complete, intact SQLite database; the label\n"
	  "defaults to its file name.  The live database is not touched.\n",
	  1, 1, CTL_OPT_LABEL | CTL_OPT_COMMENT, SNAP_OPEN_CREATE },
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
	  1, 1, CTL_OPT_DRY_RUN | CTL_OPT_TABLE, 0 },
	{ "verify", cmd_verify, "[--full] [NAME]", "check pages and hashes "
	  "(--full: integrity_check too)",
	  "Verifies NAME, or every snapshot.  Exit 1 when anything is bad.\n",
	  0, 1, CTL_OPT_FULL, 0 },
	{ "delete", cmd_delete, "NAME", "delete a snapshot and reclaim its "
	  "unshared pages", NULL, 1, 1, 0, 0 },
	{ "rename", cmd_rename, "NAME NEW", "give a snapshot exactly the name "
	  "NEW",
	  "NEW ends in .db (added when left out).  Refused, exit 1, when\n"
	  "another snapshot has that name, or when it cannot be a snapshot's:\n"
	  "latest.db, live.db, current.db, a hidden name, a name ending in\n"
	  ".db.db, control characters or bytes that are not UTF-8.  The\n"
	  "creation time, kind and bytes stay; the label follows the name.\n",
	  2, 2, 0, 0 },
	{ "pin", cmd_pin, "NAME", "never prune a snapshot automatically",
	  NULL, 1, 1, 0, 0 },
	{ "unpin", cmd_unpin, "NAME", "let retention prune it again",
	  NULL, 1, 1, 0, 0 },
	{ "export", cmd_export, "NAME FILE [--sql]", "write a snapshot's "
	  "image, or a SQL dump, to a file",
	  "  (none)        FILE gets the snapshot's image, a standalone\n"
	  "                database\n"
	  "  --sql         FILE gets SQL text like sqlite3's .dump, which\n"
	  "                'sqlite3 NEW.db < FILE' re-imports; FILE '-' is\n"
	  "                standard output; NAME may be 'live'\n",
	  2, 2, CTL_OPT_SQL, SNAP_OPEN_READONLY },
	{ "diff", cmd_diff, "A B", "rows added, removed, changed per table, "
	  "A to B",
	  "A and B are snapshot names, or 'live' (or 'current') for the live\n"
	  "database.  Tables with a primary key are compared by key (changed\n"
	  "rows are counted); tables without one by whole rows (a changed row\n"
	  "is one removed and one added).  Created and dropped tables and a\n"
	  "changed schema are reported.  Exit 0 whether or not there are\n"
	  "differences (unlike diff(1)).\n",
	  2, 2, 0, SNAP_OPEN_READONLY },
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
	  0, 0, CTL_OPT_KEEP | CTL_OPT_MAX_SIZE | CTL_OPT_DRY_RUN, 0 },
	{ "check", cmd_check, "[--recover]", "check the live database for "
	  "corruption; --recover",
	  "On corruption the corrupt state is kept as a snapshot of kind\n"
	  "recovery.  --recover then restores the newest snapshot that passes\n"
	  "full verification, skipping damaged ones.\n"
	  "Exit 0 healthy or recovered; 1 corrupt (not recovered), or the\n"
	  "check could not run.\n",
	  0, 0, CTL_OPT_RECOVER, 0 },
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
	  0, 0, CTL_OPT_PROMETHEUS | CTL_OPT_WARN_AGE | CTL_OPT_CRIT_AGE,
	  SNAP_OPEN_READONLY },
	{ "log", cmd_log, "[--limit N]", "the event history (--limit: only the "
	  "last N)", NULL, 0, 0, CTL_OPT_LIMIT, SNAP_OPEN_READONLY },
	{ "help", NULL, "[COMMAND]", "show this help, or one command's", NULL,
	  0, 1, 0, 0 },
	{ "__names", cmd_names, "", NULL, NULL, 0, 0, 0, SNAP_OPEN_READONLY },
	{ NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0 },
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
	      "Options (before or after the command):\n"
	      "  --db FILE        the live database; its store is FILE.snapfs/\n"
	      "  --store DIR      the store directory; alone, an existing "
	      "store,\n"
	      "                   which records its database's path\n"
	      "  -C MOUNTPOINT    the database and store of a snapfs mount\n"
	      "  --json           machine-readable output on stdout\n"
	      "  -h, --help       show this help (or a command's) and exit\n"
	      "  --version        show the version and exit\n\n"
	      "Commands:\n", f);
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

/* ---- main ---------------------------------------------------------------- */

/* Every option of every command; getopt_long permutes, so order is free. */
static const struct option ctl_long_opts[] = {
	{ "db", required_argument, NULL, CTL_LO_DB },
	{ "store", required_argument, NULL, CTL_LO_STORE },
	{ "json", no_argument, NULL, CTL_LO_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, CTL_LO_VERSION },
	{ "label", required_argument, NULL, CTL_LO_LABEL },
	{ "comment", required_argument, NULL, CTL_LO_COMMENT },
	{ "full", no_argument, NULL, CTL_LO_FULL },
	{ "limit", required_argument, NULL, CTL_LO_LIMIT },
	{ "keep", required_argument, NULL, CTL_LO_KEEP },
	{ "max-size", required_argument, NULL, CTL_LO_MAX_SIZE },
	{ "dry-run", no_argument, NULL, CTL_LO_DRY_RUN },
	{ "recover", no_argument, NULL, CTL_LO_RECOVER },
	{ "prometheus", no_argument, NULL, CTL_LO_PROMETHEUS },
	{ "warn-age", required_argument, NULL, CTL_LO_WARN_AGE },
	{ "crit-age", required_argument, NULL, CTL_LO_CRIT_AGE },
	{ "table", required_argument, NULL, CTL_LO_TABLE },
	{ "sql", no_argument, NULL, CTL_LO_SQL },
	{ NULL, 0, NULL, 0 },
};

/* The name of a CTL_OPT_* bit, for messages. */
static const char *ctl_opt_name(unsigned bit)
{
	switch (bit) {
	case CTL_OPT_LABEL: return "--label";
	case CTL_OPT_COMMENT: return "--comment";
	case CTL_OPT_FULL: return "--full";
	case CTL_OPT_LIMIT: return "--limit";
	case CTL_OPT_KEEP: return "--keep";
	case CTL_OPT_MAX_SIZE: return "--max-size";
	case CTL_OPT_DRY_RUN: return "--dry-run";
	case CTL_OPT_RECOVER: return "--recover";
	case CTL_OPT_PROMETHEUS: return "--prometheus";
	case CTL_OPT_WARN_AGE: return "--warn-age";
	case CTL_OPT_CRIT_AGE: return "--crit-age";
	case CTL_OPT_TABLE: return "--table";
	default: return "--sql";
	}
}

/* --warn-age/--crit-age D into *ns; 0 or CTL_EXIT_USAGE. */
static int ctl_parse_age(const char *opt, const char *arg, int64_t *ns)
{
	if (snap_duration_parse(arg, ns) < 0)
		return ctl_usage_error("%s needs a duration such as 30m, 1h, 2d "
				       "or 1h30m (units w d h m s), not '%s'",
				       opt, arg);
	return CTL_EXIT_OK;
}

/* One option (getopt's code and argument) into a; 0 or CTL_EXIT_USAGE. */
static int ctl_parse_opt(int opt, const char *arg, ctl_args *a)
{
	snap_err err;

	switch (opt) {
	case CTL_LO_DB: a->db = arg; break;
	case CTL_LO_STORE: a->store_dir = arg; break;
	case 'C': a->mount = arg; break;
	case CTL_LO_JSON: a->json = 1; break;
	case 'h': a->help = 1; break;
	case CTL_LO_VERSION: a->version = 1; break;
	case CTL_LO_LABEL:
		a->label = arg;
		a->given |= CTL_OPT_LABEL;
		break;
	case CTL_LO_COMMENT:
		a->comment = arg;
		a->given |= CTL_OPT_COMMENT;
		break;
	case CTL_LO_FULL:
		a->full = 1;
		a->given |= CTL_OPT_FULL;
		break;
	case CTL_LO_LIMIT: {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(arg, &end, 10);
		if (errno || end == arg || *end || v == 0 || arg[0] == '-')
			return ctl_usage_error("--limit needs a positive "
					       "number, not '%s'", arg);
		a->limit = (size_t)v;
		a->given |= CTL_OPT_LIMIT;
		break;
	}
	case CTL_LO_KEEP:
		snap_err_clear(&err);
		if (snap_keep_parse(arg, &a->policy, &err) < 0)
			return ctl_usage_error("%s", err.msg[0] ? err.msg :
					       "--keep: not a keep policy");
		a->given |= CTL_OPT_KEEP;
		break;
	case CTL_LO_MAX_SIZE:
		if (snap_size_parse(arg, &a->policy.max_size) < 0)
			return ctl_usage_error("--max-size needs a size such "
					       "as 500M, 2G or 1T (binary "
					       "units), not '%s'", arg);
		a->given |= CTL_OPT_MAX_SIZE;
		break;
	case CTL_LO_DRY_RUN:
		a->dry_run = 1;
		a->given |= CTL_OPT_DRY_RUN;
		break;
	case CTL_LO_RECOVER:
		a->recover = 1;
		a->given |= CTL_OPT_RECOVER;
		break;
	case CTL_LO_PROMETHEUS:
		a->prometheus = 1;
		a->given |= CTL_OPT_PROMETHEUS;
		break;
	case CTL_LO_WARN_AGE:
		a->given |= CTL_OPT_WARN_AGE;
		return ctl_parse_age("--warn-age", arg, &a->warn_age_ns);
	case CTL_LO_CRIT_AGE:
		a->given |= CTL_OPT_CRIT_AGE;
		return ctl_parse_age("--crit-age", arg, &a->crit_age_ns);
	case CTL_LO_TABLE:
		if (!arg[0])
			return ctl_usage_error("--table needs a table name");
		a->table = arg;
		a->given |= CTL_OPT_TABLE;
		break;
	case CTL_LO_SQL:
		a->sql = 1;
		a->given |= CTL_OPT_SQL;
		break;
	}
	return CTL_EXIT_OK;
}

/*
 * Parse argv into a (options anywhere; the first operand is the command,
 * the rest its arguments).  getopt's own messages are off so that every
 * message starts with "snapctl:".  Returns 0 or CTL_EXIT_USAGE.
 */
static int ctl_parse(int argc, char **argv, ctl_args *a)
{
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hC:", ctl_long_opts,
				  NULL)) != -1) {
		switch (opt) {
		case ':':
			if (optopt > 0 && optopt < 256)
				return ctl_usage_error("option '-%c' needs an "
						       "argument", optopt);
			return ctl_usage_error("option '%s' needs an argument",
					       argv[optind - 1]);
		case '?':
			/* optopt: a short option's letter, a long option's
			 * code when it was given "=value" it does not take,
			 * 0 for an unknown long option. */
			if (optopt > 0 && optopt < 256)
				return ctl_usage_error("unknown option '-%c'",
						       optopt);
			if (optopt >= 256)
				return ctl_usage_error("option '%.*s' takes "
						       "no argument",
						       (int)strcspn(argv[optind - 1], "="),
						       argv[optind - 1]);
			return ctl_usage_error("unknown option '%s'",
					       argv[optind - 1]);
		default:
			rc = ctl_parse_opt(opt, optarg, a);
			if (rc)
				return rc;
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	return CTL_EXIT_OK;
}

/*
 * What one command's options must satisfy beyond being allowed: prune
 * needs a policy, status one output format and ordered thresholds, export
 * to standard output needs --sql.  0 or CTL_EXIT_USAGE.
 */
static int ctl_check_combination(const ctl_cmd *c, const ctl_args *a)
{
	if (!strcmp(c->name, "prune") && snap_keep_empty(&a->policy) &&
	    !a->policy.max_size)
		return ctl_usage_error("prune needs a retention policy: "
				       "--keep SPEC (e.g. --keep "
				       "last:10,daily:7,within:2d) and/or "
				       "--max-size SIZE; without one it "
				       "would keep everything");
	if (!strcmp(c->name, "status") && a->json && a->prometheus)
		return ctl_usage_error("status: --json and --prometheus "
				       "exclude each other");
	if (!strcmp(c->name, "status") &&
	    (a->given & CTL_OPT_WARN_AGE) && (a->given & CTL_OPT_CRIT_AGE) &&
	    a->warn_age_ns > a->crit_age_ns)
		return ctl_usage_error("status: --warn-age must not be longer "
				       "than --crit-age");
	if (!strcmp(c->name, "export") && !a->sql && a->npos == 2 &&
	    !strcmp(a->pos[1], "-"))
		return ctl_usage_error("export to standard output ('-') needs "
				       "--sql: an image is written to a file");
	return CTL_EXIT_OK;
}

/*
 * Check the command's arguments and options against its table entry, and
 * that a store was named.  Returns 0 or CTL_EXIT_USAGE.
 */
static int ctl_check(const ctl_cmd *c, const ctl_args *a)
{
	unsigned extra = a->given & ~c->opts, bit;

	for (bit = 1; extra; bit <<= 1)
		if (extra & bit)
			return ctl_usage_error("option %s does not apply to "
					       "'%s'", ctl_opt_name(bit),
					       c->name);
	if (a->npos < c->min_args)
		return ctl_usage_error("missing argument for '%s' (usage: "
				       "snapctl %s %s)", c->name, c->name,
				       c->args);
	if (a->npos > c->max_args)
		return ctl_usage_error("unexpected argument '%s' for '%s' "
				       "(usage: snapctl %s%s%s)",
				       a->pos[c->max_args], c->name, c->name,
				       c->args[0] ? " " : "", c->args);
	if (c->run && a->mount && (a->db || a->store_dir))
		return ctl_usage_error("-C MOUNTPOINT names the database and "
				       "the store itself; give it without "
				       "--db and --store");
	if (c->run && !a->db && !a->store_dir && !a->mount)
		return ctl_usage_error("no database given; use --db FILE (or "
				       "--store DIR for an existing store, or "
				       "-C MOUNTPOINT for a mount)");
	return ctl_check_combination(c, a);
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

int main(int argc, char **argv)
{
	ctl_args a;
	const ctl_cmd *c;
	snap_store *s = NULL;
	int rc, missing = 0;

	memset(&a, 0, sizeof(a));
	ctl_progress_tty = isatty(STDERR_FILENO);
	rc = ctl_parse(argc, argv, &a);
	if (rc)
		return rc;
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
		   (a.given & (CTL_OPT_WARN_AGE | CTL_OPT_CRIT_AGE))) {
		rc = ctl_status_no_store(&a, missing);
	}
	ctl_busy_end();
	return ctl_close_stdout(rc);
}
