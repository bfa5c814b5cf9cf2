/*
 * tools/snapctl_catalog.c — the catalog commands: list, show, create,
 * import, delete, rename, pin, unpin, export (an image), log, and the
 * hidden __names for the bash completion.  Each is one engine call and its
 * output, for people or (--json) for programs: the objects of
 * engine/jsonrec.h, whose field names snapctl(1) lists under JSON OUTPUT.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_cmds.h"

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
int cmd_list(snap_store *s, ctl_args *a)
{
	snap_info *v = NULL;
	size_t n = 0;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_store_list(s, &v, &n, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, "listing snapshots");
	rc = ctl_list_print(v, n, a);
	free(v);
	return rc;
}

/* Print snapshots as "list" does. */
int ctl_list_print(const snap_info *v, size_t n, const ctl_args *a)
{
	char where[SNAP_TRASH_NAME_MAX + 48];
	size_t i;
	int w = 4, tw = 5;

	if (a->json) {
		snap_json j;

		snap_json_init(&j);
		snap_json_arr_begin(&j);
		for (i = 0; i < n; i++)
			snap_json_info(&j, &v[i]);
		snap_json_arr_end(&j);
		return ctl_json_print(&j);
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
		/* The comment and the trash's name are others' text. */
		char c[sizeof(v[i].comment)], wh[sizeof(where)];

		printf("%-*s  %-11s  %-20s  %10s  %-6s  %-*s  %s%s%s\n", w,
		       v[i].name, snap_kind_name(v[i].kind), t, sz,
		       v[i].pinned ? "yes" : "no", tw,
		       snap_text_safe(where, wh, sizeof(wh)), v[i].label,
		       v[i].comment[0] ? ": " : "",
		       snap_text_safe(v[i].comment, c, sizeof(c)));
	}
	return CTL_EXIT_OK;
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
int cmd_show(snap_store *s, ctl_args *a)
{
	snap_info si;
	snap_err err;
	char *tables = NULL;
	int rc;

	rc = ctl_find(s, a->pos[0], &si);
	if (rc)
		return rc;
	snap_err_clear(&err);
	rc = snap_store_tables_json(s, si.id, &tables, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, si.name);
	return ctl_show_print(&si, tables, a);
}

/* Print one snapshot as "show" does, and free tables. */
int ctl_show_print(const snap_info *sip, char *tables, const ctl_args *a)
{
	snap_info si = *sip;
	char t[40], hex[65], sz[32];
	int rc;

	if (a->json) {
		snap_json j, info;

		snap_json_init(&info);
		snap_json_info(&info, &si);
		ctl_json_object(&j);
		snap_json_fields(&j, &info);
		snap_json_key(&j, "change_counter");
		snap_json_int(&j, si.change_counter);
		snap_json_key(&j, "tables");
		snap_json_raw(&j, tables && tables[0] ? tables : "{}");
		snap_json_obj_end(&j);
		rc = ctl_json_print(&j);
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

		char wh[sizeof(where)];

		ctl_trash_where(&si, where, sizeof(where));
		snap_time_iso(si.trashed_ns, since);
		printf("in the trash:   %s (since %s)\n",
		       snap_text_safe(where, wh, sizeof(wh)), since);
	}
	{
		char c[sizeof(si.comment)];

		printf("comment:        %s\n",
		       snap_text_safe(si.comment, c, sizeof(c)));
	}
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
	return rc;
}

/* "create": take a manual snapshot of the live database now. */
int cmd_create(snap_store *s, ctl_args *a)
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
int cmd_import(snap_store *s, ctl_args *a)
{
	const char *path = a->pos[0], *base = strrchr(path, '/');
	snap_create_opts o = { .kind = SNAP_KIND_IMPORT,
			       .comment = a->comment };
	snap_info si;
	snap_err err;
	int rc;

	o.label = a->label ? a->label : (base ? base + 1 : path);
	ctl_bar_ctx bar = { "importing", NULL, 0, 0, 0 };

	snap_err_clear(&err);
	/* integrity_check first (the ticker), then the pages (the bar). */
	ctl_busy_begin("importing %s: checking it", path);
	rc = snap_snapshot_import_progress(s, path, &o, ctl_bar_progress, &bar,
					   &si, &err);
	ctl_busy_end();
	if (rc < 0)
		return ctl_fail(&err, rc, path);
	return ctl_print_new(a, &si);
}

/* ---- delete, pin, unpin, export ---------------------------------------- */

/* Print what a one-snapshot action did: a sentence or a small object. */
int ctl_print_done(const ctl_args *a, const char *action, const char *name,
		   const char *extra)
{
	snap_json j;
	int rc;

	if (!a->json) {
		printf("%s %s%s\n", action, name, extra ? extra : "");
		return CTL_EXIT_OK;
	}
	ctl_json_object(&j);
	snap_json_key(&j, "action"); snap_json_str(&j, action);
	snap_json_key(&j, "snapshot"); snap_json_str(&j, name);
	snap_json_obj_end(&j);
	rc = ctl_json_print(&j);
	return rc;
}

/* "delete NAME": the snapshot, and the pages no other snapshot uses. */
int cmd_delete(snap_store *s, ctl_args *a)
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
int cmd_rename(snap_store *s, ctl_args *a)
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
int cmd_pin(snap_store *s, ctl_args *a)
{
	return ctl_set_pin(s, a, 1);
}

/* "unpin NAME". */
int cmd_unpin(snap_store *s, ctl_args *a)
{
	return ctl_set_pin(s, a, 0);
}


/*
 * "export NAME FILE": write the snapshot's image to FILE (the engine writes
 * a temporary file and renames it).  Refuses FILE being the live database or
 * the store: a rename behind SQLite's back is not a restore (use "restore").
 * With --sql, a SQL dump instead (snapctl_diff.c).
 */
int cmd_export(snap_store *s, ctl_args *a)
{
	const char *path = a->pos[1];
	ctl_bar_ctx bar = { "exporting", NULL, 0, 0, 0 };
	snap_info si;
	snap_err err;
	char sz[32], extra[64 + PATH_MAX];
	int rc;

	if (a->sql)
		return ctl_export_sql(s, a);
	rc = ctl_find(s, a->pos[0], &si);
	if (rc && (!strcmp(a->pos[0], "live") || !strcmp(a->pos[0], "current")))
		fprintf(stderr, "snapctl: (the live database is exported as SQL "
			"with 'export %s FILE --sql'; for an image of it, take "
			"a snapshot with 'snapctl create' and export that)\n",
			a->pos[0]);
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
	rc = snap_image_export_progress(s, si.id, path, ctl_bar_progress, &bar,
					&err);
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
int cmd_log(snap_store *s, ctl_args *a)
{
	snap_event *ev = NULL;
	size_t n = 0;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_event_list(s, 0, 0, &ev, &n, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, "reading the event history");
	rc = ctl_log_print(ev, n, a);
	free(ev);
	return rc;
}

/* Events as "log" prints them (a store's or a replica's), the last
 * --limit N only. */
int ctl_log_print(const snap_event *ev, size_t n, const ctl_args *a)
{
	size_t i, first = 0;
	int rc;

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
		return rc;
	}
	for (i = first; i < n; i++) {
		/* The detail names files others chose (restore/): made safe
		 * for the terminal, as the snapshot's name is. */
		char t[40], d[sizeof(ev[i].detail)], sn[sizeof(ev[i].snapshot)];

		ctl_time_short(ev[i].time_ns, t);
		printf("%s %-10s %s %s %s\n", t, ev[i].kind,
		       ev[i].snapshot[0] ? snap_text_safe(ev[i].snapshot, sn,
						     sizeof(sn)) : "-",
		       ev[i].ok ? "ok" : "FAILED",
		       snap_text_safe(ev[i].detail, d, sizeof(d)));
	}
	return CTL_EXIT_OK;
}

/*
 * "__names": every snapshot name, one a line, for the bash completion.
 * Hidden from --help; quiet and exit 0 on a missing store (ctl_open
 * already said why on stderr, which the completion discards).
 */
int cmd_names(snap_store *s, ctl_args *a)
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
