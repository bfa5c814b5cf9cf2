/*
 * tools/snapctl_diff.c — the commands about content rather than pages:
 * "diff A B", "restore NAME --dry-run", "restore NAME --table T" and
 * "export NAME FILE --sql".
 *
 * A state is a snapshot name (".db" optional, "latest") or "live" /
 * "current" for the live database (SNAP_DIFF_LIVE).  No snapshot is called
 * live.db or current.db (taken names begin with a time, and a rename to
 * either is refused: snap_store_name_check), so neither word can name a
 * snapshot.
 *
 * diff prints one line per table that differs, by name:
 *   orders      3 added, 1 removed, 2 changed
 *   log         2 added, 1 removed (by whole-row comparison)
 *   archive     created: 5 rows added
 *   tmp         dropped: 4 rows removed
 * then "schema changed" when any table, index, view or trigger differs,
 * or "no differences".  Exit 0 either way (unlike diff(1), a difference is
 * a result, not a problem).  "restore --dry-run" is the diff from the live
 * database to the snapshot, worded as what the restore would change; with
 * --table only that table's line, or why the restore of that table would
 * be refused (the table missing on one side, or its columns differing).
 *
 * export --sql writes to a temporary file beside FILE and renames it into
 * place only when the whole dump was written and synced, so FILE is never
 * a partial dump; "-" writes to standard output instead.
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

/* A resolved state: its id and how to call it. */
typedef struct diff_state {
	int64_t id;                    /* SNAP_DIFF_LIVE or a snapshot id */
	char name[SNAP_NAME_MAX];      /* "live" or the snapshot's name */
} diff_state;

/* 1 when word names the live database. */
static int diff_is_live(const char *word)
{
	return !strcmp(word, "live") || !strcmp(word, "current");
}

/* Resolve a state; 0 or CTL_EXIT_FAIL (message printed). */
static int diff_resolve(snap_store *s, const char *word, diff_state *st)
{
	snap_info si;
	int rc;

	if (diff_is_live(word)) {
		st->id = SNAP_DIFF_LIVE;
		snprintf(st->name, sizeof(st->name), "live");
		return CTL_EXIT_OK;
	}
	rc = ctl_find(s, word, &si);
	if (rc)
		return rc;
	st->id = si.id;
	snprintf(st->name, sizeof(st->name), "%s", si.name);
	return CTL_EXIT_OK;
}

/* The differences from a to b; 0 or CTL_EXIT_FAIL. */
static int diff_run(snap_store *s, const diff_state *a, const diff_state *b,
		    snap_diff *d)
{
	snap_err err;
	int rc;

	memset(d, 0, sizeof(*d));
	snap_err_clear(&err);
	ctl_busy_begin("comparing %s with %s", a->name, b->name);
	rc = snap_diff_states(s, a->id, b->id, d, &err);
	ctl_busy_end();
	if (rc < 0)
		return ctl_fail(&err, rc, "comparing");
	return CTL_EXIT_OK;
}

/* One table's line (indented, the name padded to w). */
static void diff_print_table(const snap_table_diff *t, int w)
{
	if (t->only_in == 2)
		printf("  %-*s  created: %" PRId64 " row%s added\n", w,
		       t->table, t->added, t->added == 1 ? "" : "s");
	else if (t->only_in == 1)
		printf("  %-*s  dropped: %" PRId64 " row%s removed\n", w,
		       t->table, t->removed, t->removed == 1 ? "" : "s");
	else if (t->by_key)
		printf("  %-*s  %" PRId64 " added, %" PRId64 " removed, %"
		       PRId64 " changed%s\n", w, t->table, t->added,
		       t->removed, t->changed, t->columns_changed ?
		       " (columns changed: compared on the columns in "
		       "common)" : "");
	else
		printf("  %-*s  %" PRId64 " added, %" PRId64 " removed (by "
		       "whole-row comparison)%s\n", w, t->table, t->added,
		       t->removed, t->columns_changed ? " (columns changed: "
		       "compared on the columns in common)" : "");
}

/* The tables' lines; only `table` when not NULL.  Returns how many. */
static size_t diff_print_tables(const snap_diff *d, const char *table)
{
	size_t i, shown = 0;
	int w = 8;

	for (i = 0; i < d->n; i++)
		if ((int)strlen(d->tables[i].table) > w)
			w = (int)strlen(d->tables[i].table);
	for (i = 0; i < d->n; i++) {
		if (table && strcmp(d->tables[i].table, table))
			continue;
		diff_print_table(&d->tables[i], w);
		shown++;
	}
	return shown;
}

/* The "tables" array (only `table` when not NULL). */
static void diff_json_tables(snap_json *j, const snap_diff *d,
			     const char *table)
{
	size_t i;

	snap_json_key(j, "tables");
	snap_json_arr_begin(j);
	for (i = 0; i < d->n; i++) {
		const snap_table_diff *t = &d->tables[i];

		if (table && strcmp(t->table, table))
			continue;
		snap_json_obj_begin(j);
		snap_json_key(j, "table"); snap_json_str(j, t->table);
		snap_json_key(j, "added"); snap_json_int(j, t->added);
		snap_json_key(j, "removed"); snap_json_int(j, t->removed);
		snap_json_key(j, "changed"); snap_json_int(j, t->changed);
		snap_json_key(j, "by_key"); snap_json_bool(j, t->by_key);
		snap_json_key(j, "created");
		snap_json_bool(j, t->only_in == 2);
		snap_json_key(j, "dropped");
		snap_json_bool(j, t->only_in == 1);
		snap_json_key(j, "columns_changed");
		snap_json_bool(j, t->columns_changed);
		snap_json_obj_end(j);
	}
	snap_json_arr_end(j);
}

/* "diff A B": rows added, removed, changed per table. */
int cmd_diff(snap_store *s, ctl_args *a)
{
	diff_state from, to;
	snap_diff d;
	int rc;

	rc = diff_resolve(s, a->pos[0], &from);
	if (!rc)
		rc = diff_resolve(s, a->pos[1], &to);
	if (!rc)
		rc = diff_run(s, &from, &to, &d);
	if (rc)
		return rc;
	if (a->json) {
		snap_json j;

		ctl_json_object(&j);
		snap_json_key(&j, "from"); snap_json_str(&j, from.name);
		snap_json_key(&j, "to"); snap_json_str(&j, to.name);
		snap_json_key(&j, "database");
		snap_json_str(&j, snap_store_db_path(s));
		snap_json_key(&j, "schema_changed");
		snap_json_bool(&j, d.schema_changed);
		diff_json_tables(&j, &d, NULL);
		snap_json_obj_end(&j);
		rc = ctl_json_print(&j);
		snap_diff_free(&d);
		return rc;
	}
	if (d.n == 0 && !d.schema_changed) {
		printf("no differences from %s to %s\n", from.name, to.name);
	} else {
		printf("from %s to %s:\n", from.name, to.name);
		diff_print_tables(&d, NULL);
		if (d.schema_changed)
			printf("schema changed (tables, indexes, views or "
			       "triggers)\n");
		printf("%zu table%s differ%s\n", d.n, d.n == 1 ? "" : "s",
		       d.n == 1 ? "s" : "");
	}
	snap_diff_free(&d);
	return CTL_EXIT_OK;
}

/* ---- restore --dry-run, --table ------------------------------------------ */

/*
 * 1 when the snapshot has table `table`, from the row counts kept in its
 * catalog row (no need to open the image); 0 when not; -1 when unknown.
 * SQLite's json_each reads the object, as "show" does.
 */
static int diff_snapshot_has_table(snap_store *s, int64_t id,
				   const char *table)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *json = NULL;
	int rc, has = -1;

	if (snap_store_tables_json(s, id, &json, NULL) < 0)
		return -1;
	rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM json_each(?1) "
					"WHERE key = ?2", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, table, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			has = sqlite3_column_int(st, 0) > 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(json);
	return has;
}

/* Why a restore of `table` from si would be refused (NULL: it would not
 * be), from the table's diff line and the snapshot's table list.  Tables
 * without a line are the same in both, so exist in both or in neither. */
static const char *diff_table_refusal(snap_store *s, const snap_diff *d,
				      const snap_info *si, const char *table)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const snap_table_diff *t = &d->tables[i];

		if (strcmp(t->table, table))
			continue;
		if (t->only_in == 1)
			return "it is not in the snapshot";
		if (t->only_in == 2)
			return "it is not in the live database";
		if (t->columns_changed)
			return "its columns differ between the snapshot and "
			       "the live database";
		return NULL;
	}
	if (diff_snapshot_has_table(s, si->id, table) == 0)
		return "there is no such table in the snapshot or the live "
		       "database";
	return NULL;
}

/* "restore --dry-run": what a restore would change, changing nothing. */
int ctl_restore_dry_run(snap_store *s, ctl_args *a, const snap_info *si)
{
	diff_state live = { SNAP_DIFF_LIVE, "live" }, snap;
	const char *db = snap_store_db_path(s), *refusal = NULL;
	snap_diff d;
	size_t shown;
	int rc;

	snap.id = si->id;
	snprintf(snap.name, sizeof(snap.name), "%s", si->name);
	rc = diff_run(s, &live, &snap, &d);
	if (rc)
		return rc;
	if (a->table)
		refusal = diff_table_refusal(s, &d, si, a->table);
	if (a->json) {
		snap_json j;

		ctl_json_object(&j);
		snap_json_key(&j, "dry_run"); snap_json_bool(&j, 1);
		snap_json_key(&j, "snapshot"); snap_json_str(&j, si->name);
		snap_json_key(&j, "database"); snap_json_str(&j, db);
		snap_json_key(&j, "table");
		snap_json_str_or_null(&j, a->table);
		snap_json_key(&j, "refused");
		snap_json_str_or_null(&j, refusal);
		snap_json_key(&j, "schema_changed");
		snap_json_bool(&j, !a->table && d.schema_changed);
		diff_json_tables(&j, &d, refusal ? "" : a->table);
		snap_json_obj_end(&j);
		rc = ctl_json_print(&j);
		snap_diff_free(&d);
		return rc;
	}
	if (refusal) {
		printf("restore of table %s from %s would be refused: %s\n",
		       a->table, si->name, refusal);
	} else {
		if (a->table)
			printf("restore of table %s from %s would change "
			       "%s:\n", a->table, si->name, db);
		else
			printf("restore of %s would change %s:\n", si->name,
			       db);
		shown = diff_print_tables(&d, a->table);
		if (!a->table && d.schema_changed)
			printf("schema changed (tables, indexes, views or "
			       "triggers)\n");
		if (shown == 0 && (a->table || !d.schema_changed))
			printf("  nothing: the content is the same\n");
	}
	printf("dry run: nothing was changed\n");
	snap_diff_free(&d);
	return CTL_EXIT_OK;
}

/* "restore --table T": one table back from a snapshot. */
int ctl_restore_table(snap_store *s, ctl_args *a, const snap_info *si)
{
	const char *db = snap_store_db_path(s);
	snap_table_restore res;
	snap_err err;
	int rc;

	memset(&res, 0, sizeof(res));
	snap_err_clear(&err);
	ctl_busy_begin("restoring table %s from %s", a->table, si->name);
	rc = snap_restore_table(s, si->id, a->table, &res, &err);
	ctl_busy_end();
	if (rc < 0)
		return ctl_fail(&err, rc, si->name);
	if (a->json) {
		snap_json j;

		ctl_json_object(&j);
		snap_json_key(&j, "restored"); snap_json_str(&j, si->name);
		snap_json_key(&j, "table"); snap_json_str(&j, a->table);
		snap_json_key(&j, "database"); snap_json_str(&j, db);
		snap_json_key(&j, "safety");
		snap_json_str_or_null(&j, res.have_safety ? res.safety.name :
				      NULL);
		snap_json_key(&j, "rows_before");
		snap_json_int(&j, res.rows_before);
		snap_json_key(&j, "rows_after");
		snap_json_int(&j, res.rows_after);
		snap_json_key(&j, "fk_violations");
		snap_json_int(&j, res.fk_violations);
		snap_json_obj_end(&j);
		rc = ctl_json_print(&j);
	} else {
		printf("restored table %s from %s into %s: %" PRId64 " row%s "
		       "(%" PRId64 " before)\n", a->table, si->name, db,
		       res.rows_after, res.rows_after == 1 ? "" : "s",
		       res.rows_before);
		printf("safety snapshot: %s\n", res.have_safety ?
		       res.safety.name : "none");
		rc = CTL_EXIT_OK;
	}
	fflush(stdout);
	if (res.fk_violations > 0)
		ctl_warn("%" PRId64 " new foreign-key violation%s involve "
			 "table %s after the restore; see 'PRAGMA "
			 "foreign_key_check' on %s, restore the related "
			 "tables too, or undo with 'snapctl restore %s'",
			 res.fk_violations, res.fk_violations == 1 ? "" :
			 "s", a->table, db, res.have_safety ?
			 res.safety.name : "SNAPSHOT");
	else if (res.fk_violations < 0)
		ctl_warn("foreign keys could not be checked after the restore "
			 "of table %s; run 'PRAGMA foreign_key_check' on %s",
			 a->table, db);
	return rc;
}

/* ---- export --sql ----------------------------------------------------------- */

/* The SQL text of state id into a new file at path, atomically: the
 * image export's new file beside path and its end (image.h). */
static int diff_export_file(snap_store *s, const diff_state *st,
			    const char *path, off_t *size)
{
	snap_err err;
	char *tmp = malloc(PATH_MAX);
	struct stat sb;
	FILE *f = NULL;
	int fd, rc = 0, e;

	if (!tmp)
		return ctl_error("out of memory");
	snap_err_clear(&err);
	fd = snap_export_open(path, "snapctl", tmp, PATH_MAX, &err);
	if (fd < 0) {
		free(tmp);
		return ctl_fail(&err, fd, path);
	}
	/* A stream of its own descriptor: fd stays ours to sync and close. */
	e = dup(fd);
	if (e < 0 || !(f = fdopen(e, "w"))) {
		rc = ctl_error("export of %s to %s: %s", st->name, tmp,
			       strerror(errno));
		if (e >= 0)
			close(e);
	}
	if (!rc) {
		ctl_busy_begin("exporting %s as SQL to %s", st->name, path);
		e = snap_export_sql(s, st->id, f, &err);
		ctl_busy_end();
		if (e < 0)
			rc = ctl_fail(&err, e, path);
	}
	if (f && fclose(f) != 0 && !rc)
		rc = ctl_error("export of %s: writing %s: %s", st->name, tmp,
			       strerror(errno));
	if (!rc && fstat(fd, &sb) == 0)
		*size = sb.st_size;
	snap_err_clear(&err);
	e = snap_export_close(fd, tmp, path, rc ? -EIO : 0, &err);
	if (!rc && e < 0)
		rc = ctl_fail(&err, e, path);
	free(tmp);
	return rc;
}

/* "export --sql": a snapshot (or live) as SQL text, to a file or stdout. */
int ctl_export_sql(snap_store *s, ctl_args *a)
{
	const char *path = a->pos[1];
	diff_state st;
	snap_err err;
	off_t size = 0;
	char sz[32];
	int rc;

	rc = diff_resolve(s, a->pos[0], &st);
	if (rc)
		return rc;
	if (!strcmp(path, "-")) {
		snap_err_clear(&err);
		rc = snap_export_sql(s, st.id, stdout, &err);
		if (rc < 0)
			return ctl_fail(&err, rc, "writing the SQL dump to "
					"standard output");
		return CTL_EXIT_OK;
	}
	if (ctl_same_file(path, snap_store_db_path(s)))
		return ctl_error("export of %s: %s is the live database; "
				 "choose another file", st.name, path);
	if (ctl_same_file(path, snap_store_file(s)))
		return ctl_error("export of %s: %s is the store itself",
				 st.name, path);
	rc = diff_export_file(s, &st, path, &size);
	if (rc)
		return rc;
	if (a->json) {
		snap_json j;

		ctl_json_object(&j);
		snap_json_key(&j, "action"); snap_json_str(&j, "exported");
		snap_json_key(&j, "snapshot"); snap_json_str(&j, st.name);
		snap_json_key(&j, "file"); snap_json_str(&j, path);
		snap_json_key(&j, "format"); snap_json_str(&j, "sql");
		snap_json_key(&j, "bytes"); snap_json_int(&j, (int64_t)size);
		snap_json_obj_end(&j);
		rc = ctl_json_print(&j);
		return rc;
	}
	ctl_size_human((uint64_t)size, sz);
	printf("exported %s as SQL to %s (%s)\n", st.name, path, sz);
	return CTL_EXIT_OK;
}
