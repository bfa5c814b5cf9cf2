/*
 * engine/export.c — a state of the database written as SQL text.
 *
 * snap_export_sql writes what sqlite3's .dump writes, in the same order, so
 * the sqlite3 shell re-imports it: values through quote() (exact for reals
 * since it falls back to %!.20e; its "Inf" is written as 1e999 as .dump
 * does), virtual tables through PRAGMA writable_schema with their shadow
 * tables as ordinary tables.  Rows of a table without an INTEGER PRIMARY
 * KEY are written without their rowid, as .dump does by default.
 */
#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "diff_int.h"
#include "events.h"
#include "image.h"
#include "snapshot.h"
#include "store_int.h"
#include "sys.h"
#include "verify.h"

/* INSERT statements for every row of main.table. */
static int ex_rows(sqlite3 *db, FILE *f, const char *table, snap_err *err)
{
	diff_cols c;
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	char *sql, *prefix;
	int gen = 0, n = 0, i, rc;

	rc = snap_diff_cols_load(db, "main", table, &c, err);
	if (rc)
		return rc;
	q = sqlite3_str_new(NULL);
	sqlite3_str_appendall(q, "SELECT ");
	for (i = 0; i < c.n; i++) {
		if (c.c[i].hidden) {
			gen = 1;
			continue;
		}
		sqlite3_str_appendf(q, "%squote(\"%w\")", n++ ? "," : "",
				    c.c[i].name);
	}
	sqlite3_str_appendf(q, " FROM main.\"%w\"", table);
	sql = sqlite3_str_finish(q);
	/* Generated columns are computed again on import: name the others. */
	if (gen) {
		char *cols = snap_diff_col_list(&c, NULL, 0, &i);

		prefix = cols ? sqlite3_mprintf("INSERT INTO \"%w\"(%s) VALUES(",
						table, cols) : NULL;
		sqlite3_free(cols);
	} else {
		prefix = sqlite3_mprintf("INSERT INTO \"%w\" VALUES(", table);
	}
	snap_diff_cols_free(&c);
	if (!sql || !prefix) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		fputs(prefix, f);
		for (i = 0; i < n; i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);

			if (i)
				fputc(',', f);
			/* quote() writes infinities as Inf, which SQL reads
			 * as a column name. */
			if (!v)
				v = "NULL";
			else if (strcmp(v, "Inf") == 0)
				v = "1e999";
			else if (strcmp(v, "-Inf") == 0)
				v = "-1e999";
			fputs(v, f);
		}
		fputs(");\n", f);
		rc = ferror(f) ? SQLITE_IOERR : SQLITE_OK;
	}
	if (rc == SQLITE_IOERR)
		rc = snap_err_set(err, -EIO, "cannot write the rows of table "
				  "%s: %s", table, strerror(errno));
	else if (rc != SQLITE_DONE)
		rc = snap_err_sqlite(err, db, rc, "cannot read the rows of "
				     "table %s", table);
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	sqlite3_free(sql);
	sqlite3_free(prefix);
	return rc;
}

/* Tables in creation order, sqlite_sequence last, each with its rows. */
static int ex_tables(sqlite3 *db, FILE *f, int *writable, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT name, sql FROM main.sqlite_schema "
				"WHERE sql NOT NULL AND type = 'table' ORDER BY "
				"name = 'sqlite_sequence', rowid", -1, &st,
				NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *sql = (const char *)sqlite3_column_text(st, 1);

		rc = SQLITE_OK;
		if (strcmp(name, "sqlite_sequence") == 0) {
			/* Created by the AUTOINCREMENT tables above. */
			fputs("DELETE FROM sqlite_sequence;\n", f);
		} else if (sqlite3_stricmp(name, "sqlite_stat1") == 0) {
			fputs("ANALYZE sqlite_schema;\n", f);
		} else if (sqlite3_strnicmp(name, "sqlite_", 7) == 0) {
			fprintf(f, "-- %s (SQLite's own) is not exported\n",
				name);
			continue;
		} else if (sqlite3_strnicmp(sql, "CREATE VIRTUAL TABLE",
					    20) == 0) {
			/* As .dump: no xCreate on import (it would create
			 * the shadow tables the dump creates itself). */
			char *ins = sqlite3_mprintf(
				"INSERT INTO sqlite_schema(type,name,tbl_name,"
				"rootpage,sql)VALUES('table','%q','%q',0,"
				"'%q');\n", name, name, sql);

			if (!ins) {
				rc = SQLITE_NOMEM;
				break;
			}
			if (!*writable)
				fputs("PRAGMA writable_schema=ON;\n", f);
			*writable = 1;
			fputs(ins, f);
			sqlite3_free(ins);
			continue;
		} else {
			fprintf(f, "%s;\n", sql);
		}
		if (ex_rows(db, f, name, err)) {
			sqlite3_finalize(st);
			return err ? err->code : -EIO;
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, db, rc, "cannot list the tables");
	return 0;
}

/* Indexes, triggers and views in creation order. */
static int ex_others(sqlite3 *db, FILE *f, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT sql FROM main.sqlite_schema WHERE "
				"sql NOT NULL AND type IN ('index', 'trigger', "
				"'view') ORDER BY rowid", -1, &st, NULL);
	while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		fprintf(f, "%s;\n", (const char *)sqlite3_column_text(st, 0));
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, db, rc, "cannot list the indexes, "
				       "triggers and views");
	return 0;
}

/* State id as SQL text on f, as sqlite3's .dump writes it. */
int snap_export_sql(snap_store *s, int64_t id, FILE *f, snap_err *err)
{
	char what[SNAP_NAME_MAX + 4096], when[40];
	snap_err local;
	sqlite3 *db = NULL;
	snap_info si;
	int writable = 0, rc;

	if (!err) {
		snap_err_clear(&local);
		err = &local;
	}
	rc = snap_diff_state_check(s, id, err);
	if (!rc)
		rc = snap_diff_open_state(s, id, &db, err);
	if (!rc)
		rc = snap_diff_begin_read(db, "main", NULL, err);
	snap_diff_state_name(s, id, what, sizeof(what));
	if (!rc) {
		if (id != SNAP_DIFF_LIVE && snap_store_get(s, id, &si, NULL) ==
		    0) {
			snap_time_iso(si.created_ns, when);
			fprintf(f, "-- snapfs: %s, taken %s\n", what, when);
		} else {
			fprintf(f, "-- snapfs: %s\n", what);
		}
		fputs("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n", f);
		rc = ex_tables(db, f, &writable, err);
	}
	if (!rc)
		rc = ex_others(db, f, err);
	if (!rc) {
		if (writable)
			fputs("PRAGMA writable_schema=OFF;\n", f);
		fputs("COMMIT;\n", f);
		if (fflush(f) != 0 || ferror(f))
			rc = snap_err_set(err, -EIO, "cannot write the SQL "
					  "text: %s", strerror(errno));
	}
	/* A page the store VFS could not read or prove: say which, not
	 * SQLite's "disk I/O error". */
	if (rc && db)
		snap_image_sqlite_error(db, err);
	if (db) {
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
	}
	if (rc)
		snap_err_prefix(err, "export of %s as SQL failed", what);
	return rc;
}
