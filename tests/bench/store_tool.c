/*
 * tests/bench/store_tool.c — build and time large stores for the benchmarks
 * through the engine API directly (no process per snapshot).
 *
 *   bench_store_tool fill --db FILE [--store DIR] N
 *       Take N snapshots of FILE, updating one row of table `users`
 *       (column `created`, see gen_db.py) between two snapshots so that
 *       consecutive snapshots differ in a page or two, like a real history.
 *       Prints the snapshots taken and the seconds spent.
 *
 *   bench_store_tool delete --db FILE [--store DIR] NAME...
 *       Delete each snapshot NAME with snap_store_delete on one open store
 *       and print "delete NAME seconds=S" for each: the engine's cost alone,
 *       without process start or store open.
 *
 *   bench_store_tool churn --db FILE [--store DIR] K
 *       K times: delete the snapshot in the middle of the list (timed, as
 *       above), then change a row and take a snapshot (not timed), so the
 *       store keeps its size; prints one "delete" line per round,
 *       "median seconds=S" and "min seconds=S".
 *
 * A benchmark helper, not a test.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "snapfs.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: bench_store_tool fill --db FILE [--store DIR] N\n"
		"       bench_store_tool delete --db FILE [--store DIR] NAME...\n"
		"       bench_store_tool churn --db FILE [--store DIR] K\n");
	return 2;
}

static double now(void);

/* Change one row of the live database (the i-th of a spread sequence). */
static int touch_row(const char *db, long i)
{
	sqlite3 *live = NULL;
	char sql[160];
	int rc;

	snprintf(sql, sizeof(sql), "UPDATE users SET created = created + 1 "
		 "WHERE id = 1 + (%ld * 7919) %% (SELECT max(id) FROM users)",
		 i);
	rc = sqlite3_open_v2(db, &live, SQLITE_OPEN_READWRITE, NULL);
	if (!rc)
		rc = sqlite3_busy_timeout(live, 5000);
	if (!rc)
		rc = sqlite3_exec(live, sql, NULL, NULL, NULL);
	if (rc)
		fprintf(stderr, "bench_store_tool: %s: %s\n", db,
			sqlite3_errmsg(live));
	sqlite3_close(live);
	return rc ? -1 : 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int churn(snap_store *s, const char *db, long k)
{
	snap_create_opts o = { .kind = SNAP_KIND_AUTO, .label = "churn" };
	double *t = calloc((size_t)(k > 0 ? k : 1), sizeof(double));
	snap_err err;
	long i;

	snap_err_clear(&err);
	if (!t)
		return 1;
	for (i = 0; i < k; i++) {
		snap_info *list = NULL, si;
		size_t n = 0;
		double t0;

		if (snap_store_list(s, &list, &n, &err) || n == 0) {
			fprintf(stderr, "bench_store_tool: %s\n",
				n ? err.msg : "empty store");
			free(list);
			free(t);
			return 1;
		}
		si = list[n / 2];
		free(list);
		t0 = now();
		if (snap_store_delete(s, si.id, &err)) {
			fprintf(stderr, "bench_store_tool: %s\n", err.msg);
			free(t);
			return 1;
		}
		t[i] = now() - t0;
		printf("delete %s seconds=%.6f\n", si.name, t[i]);
		if (touch_row(db, 100000 + i) ||
		    snap_snapshot_take(s, &o, NULL, &err)) {
			fprintf(stderr, "bench_store_tool: %s\n", err.msg);
			free(t);
			return 1;
		}
	}
	qsort(t, (size_t)k, sizeof(double), cmp_double);
	if (k > 0)
		printf("median seconds=%.6f\nmin seconds=%.6f\n",
		       t[(k - 1) / 2], t[0]);
	free(t);
	return 0;
}

static int fill(snap_store *s, const char *db, long n)
{
	sqlite3 *live = NULL;
	sqlite3_stmt *up = NULL;
	snap_create_opts o = { .kind = SNAP_KIND_AUTO, .label = "bench" };
	int64_t maxid = 1;
	snap_err err;
	double t0 = now();
	long i;

	snap_err_clear(&err);
	if (sqlite3_open_v2(db, &live, SQLITE_OPEN_READWRITE, NULL) ||
	    sqlite3_busy_timeout(live, 5000) ||
	    sqlite3_prepare_v2(live, "UPDATE users SET created = created + 1 "
			       "WHERE id = ?", -1, &up, NULL)) {
		fprintf(stderr, "bench_store_tool: %s: %s\n", db,
			sqlite3_errmsg(live));
		sqlite3_close(live);
		return 1;
	}
	{
		sqlite3_stmt *q = NULL;

		if (!sqlite3_prepare_v2(live, "SELECT max(id) FROM users", -1,
					&q, NULL) &&
		    sqlite3_step(q) == SQLITE_ROW)
			maxid = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
		if (maxid < 1)
			maxid = 1;
	}
	for (i = 0; i < n; i++) {
		if (i) {
			/* Spread the changes over the table's pages. */
			sqlite3_bind_int64(up, 1,
					   1 + (i * 7919) % maxid);
			if (sqlite3_step(up) != SQLITE_DONE) {
				fprintf(stderr, "bench_store_tool: update: "
					"%s\n", sqlite3_errmsg(live));
				break;
			}
			sqlite3_reset(up);
		}
		if (snap_snapshot_take(s, &o, NULL, &err)) {
			fprintf(stderr, "bench_store_tool: snapshot %ld: %s\n",
				i + 1, err.msg);
			break;
		}
	}
	sqlite3_finalize(up);
	sqlite3_close(live);
	printf("fill snapshots=%ld seconds=%.3f\n", i, now() - t0);
	return i == n ? 0 : 1;
}

static int del(snap_store *s, char **names, int n)
{
	snap_err err;
	int i, rc = 0;

	snap_err_clear(&err);
	for (i = 0; i < n; i++) {
		snap_info si;
		double t0;

		if (snap_store_find(s, names[i], &si, &err)) {
			fprintf(stderr, "bench_store_tool: %s\n", err.msg);
			rc = 1;
			continue;
		}
		t0 = now();
		if (snap_store_delete(s, si.id, &err)) {
			fprintf(stderr, "bench_store_tool: %s\n", err.msg);
			rc = 1;
			continue;
		}
		printf("delete %s seconds=%.6f\n", si.name, now() - t0);
	}
	return rc;
}

int main(int argc, char **argv)
{
	const char *db = NULL, *dir = NULL, *cmd;
	char *pos[argc > 0 ? argc : 1];
	int npos = 0, i, rc;
	snap_store *s = NULL;
	snap_err err;

	snap_err_clear(&err);
	if (argc < 2)
		return usage();
	cmd = argv[1];
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--db") && i + 1 < argc)
			db = argv[++i];
		else if (!strcmp(argv[i], "--store") && i + 1 < argc)
			dir = argv[++i];
		else
			pos[npos++] = argv[i];
	}
	if (!db || npos < 1)
		return usage();
	if (strcmp(cmd, "fill") && strcmp(cmd, "delete") &&
	    strcmp(cmd, "churn"))
		return usage();
	if (snap_store_open(db, dir, !strcmp(cmd, "fill") ? SNAP_OPEN_CREATE
			    : 0, &s, &err)) {
		fprintf(stderr, "bench_store_tool: %s\n", err.msg);
		return 1;
	}
	if (!strcmp(cmd, "fill"))
		rc = fill(s, db, strtol(pos[0], NULL, 10));
	else if (!strcmp(cmd, "churn"))
		rc = churn(s, db, strtol(pos[0], NULL, 10));
	else
		rc = del(s, pos, npos);
	snap_store_close(s);
	return rc;
}
