/*
 * tests/unit/test_retention.c — engine/retention.h: which snapshots the
 * rules keep and why, max_size, pruning a real store, and the free-space
 * guard on a real, small filesystem.
 *
 * The plan tests are a table: each case is a keep spec and a set of
 * synthetic snapshots (ids, UTC times written as text, kinds, pins), each
 * with the fate and the exact reason the plan must give it.  Every case is
 * planned twice, from the rows in the table's order and reversed, and both
 * plans must be identical and newest first: a plan never depends on the
 * order its input came in.  The cases pin down restic's bucket semantics
 * (the newest snapshot of each of the N newest periods that have one;
 * empty periods cost nothing), ties (the higher id is the newer), ISO weeks
 * across Sunday/Monday and year boundaries (weeks 1, 52 and 53), `within`
 * (strictly newer than the newest candidate minus D), combinations, and
 * that manual, import, conflict, recovery and pinned snapshots are never
 * pruned while auto and pre-restore ones are.
 *
 * The store tests take real snapshots: a dry run changes nothing (not even
 * the event history) and reports the plan a real run then carries out;
 * max_size takes the oldest automatic snapshots first and never the newest,
 * and its accounting equals what deleting really reclaims (checked against
 * a copy of the store where the deletion is done for real).
 *
 * The free-space tests mount a tmpfs of a few MiB with mount(2) as the
 * store's filesystem (the tests run as root; as another user they pass
 * with a note, since they cannot mount), always unmounted at teardown.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000LL

/* "2026-11-20T14:30:00Z" (UTC) in nanoseconds; fails the test if bad. */
static int64_t utc_ns(const char *iso)
{
	struct tm tm;
	int y, mo, d, h, mi, s;

	if (sscanf(iso, "%d-%d-%dT%d:%d:%dZ", &y, &mo, &d, &h, &mi, &s) != 6)
		fail_msg("bad test time \"%s\"", iso);
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm) * NS;
}

/* ------------------------------------------------------------------ */
/* the plan table                                                      */

/* One synthetic snapshot and what the plan must decide for it. */
typedef struct row {
	int64_t id;
	const char *time;     /* UTC, "YYYY-MM-DDTHH:MM:SSZ" */
	int64_t plus_ns;      /* added to time (sub-second cases) */
	const char *kind;     /* "auto", "manual", ... */
	int pinned;
	int keep;             /* expected */
	const char *reason;   /* expected, exactly */
} row;

#define MAXROWS 16

typedef struct plan_case {
	const char *name;
	const char *keep;     /* keep spec; NULL = empty policy */
	row rows[MAXROWS];    /* terminated by id 0 */
} plan_case;

#define NO "no rule keeps it"

static const plan_case cases[] = {
{ "last:N keeps the N newest", "last:3", {
	{ 2, "2026-11-20T10:00:00Z", 0, "auto", 0, 0, NO },
	{ 5, "2026-11-20T13:00:00Z", 0, "auto", 0, 1, "last 1/3" },
	{ 1, "2026-11-20T09:00:00Z", 0, "auto", 0, 0, NO },
	{ 4, "2026-11-20T12:00:00Z", 0, "auto", 0, 1, "last 2/3" },
	{ 3, "2026-11-20T11:00:00Z", 0, "auto", 0, 1, "last 3/3" },
} },
{ "last:N with fewer snapshots keeps them all", "last:10", {
	{ 1, "2026-11-20T09:00:00Z", 0, "auto", 0, 1, "last 2/10" },
	{ 2, "2026-11-20T10:00:00Z", 0, "auto", 0, 1, "last 1/10" },
} },
{ "daily: the newest snapshot of each day wins", "daily:2", {
	{ 1, "2026-11-19T12:00:00Z", 0, "auto", 0, 0, NO },
	{ 2, "2026-11-20T00:00:00Z", 0, "auto", 0, 0, NO },
	{ 3, "2026-11-20T15:00:00Z", 0, "auto", 0, 0, NO },
	{ 4, "2026-11-20T23:59:59Z", 0, "auto", 0, 1, "daily 2026-11-20" },
	{ 5, "2026-11-21T00:00:00Z", 0, "auto", 0, 0, NO },
	{ 6, "2026-11-21T12:00:00Z", 0, "auto", 0, 1, "daily 2026-11-21" },
} },
{ "daily: days without snapshots do not use up the count", "daily:3", {
	{ 1, "2026-11-01T08:00:00Z", 0, "auto", 0, 0, NO },
	{ 2, "2026-11-05T08:00:00Z", 0, "auto", 0, 1, "daily 2026-11-05" },
	{ 3, "2026-11-20T08:00:00Z", 0, "auto", 0, 1, "daily 2026-11-20" },
	{ 4, "2026-11-21T08:00:00Z", 0, "auto", 0, 0, NO },
	{ 5, "2026-11-21T09:00:00Z", 0, "auto", 0, 1, "daily 2026-11-21" },
} },
{ "hourly: newest of each hour, the gap hour skipped", "hourly:3", {
	{ 1, "2026-11-20T12:30:00Z", 0, "auto", 0, 0, NO },
	{ 2, "2026-11-20T13:10:00Z", 0, "auto", 0, 0, NO },
	{ 3, "2026-11-20T13:50:00Z", 0, "auto", 0, 1,
	  "hourly 2026-11-20-13" },
	{ 4, "2026-11-20T14:05:00Z", 0, "auto", 0, 0, NO },
	{ 5, "2026-11-20T14:59:59Z", 999999999, "auto", 0, 1,
	  "hourly 2026-11-20-14" },
	{ 6, "2026-11-20T16:00:00Z", 0, "auto", 0, 1,
	  "hourly 2026-11-20-16" },
} },
{ "weekly: ISO weeks run Monday to Sunday", "weekly:3", {
	{ 1, "2026-11-09T10:00:00Z", 0, "auto", 0, 0, NO },      /* Mon W46 */
	{ 2, "2026-11-15T23:00:00Z", 0, "auto", 0, 1,            /* Sun W46 */
	  "weekly 2026-W46" },
	{ 3, "2026-11-16T00:00:00Z", 0, "auto", 0, 0, NO },      /* Mon W47 */
	{ 4, "2026-11-20T10:00:00Z", 0, "auto", 0, 0, NO },      /* Fri W47 */
	{ 5, "2026-11-22T23:59:59Z", 0, "auto", 0, 1,            /* Sun W47 */
	  "weekly 2026-W47" },
	{ 6, "2026-11-23T00:00:00Z", 0, "auto", 0, 1,            /* Mon W48 */
	  "weekly 2026-W48" },
} },
{ "weekly: 2020 has a week 53 that ends on 2021-01-03", "weekly:4", {
	{ 1, "2020-12-21T10:00:00Z", 0, "auto", 0, 0, NO },      /* W52 */
	{ 2, "2020-12-27T10:00:00Z", 0, "auto", 0, 1,            /* Sun W52 */
	  "weekly 2020-W52" },
	{ 3, "2020-12-28T10:00:00Z", 0, "auto", 0, 0, NO },      /* Mon W53 */
	{ 4, "2020-12-31T10:00:00Z", 0, "auto", 0, 0, NO },      /* Thu W53 */
	{ 5, "2021-01-03T23:00:00Z", 0, "auto", 0, 1,            /* Sun W53 */
	  "weekly 2020-W53" },
	{ 6, "2021-01-04T01:00:00Z", 0, "auto", 0, 1,            /* Mon W01 */
	  "weekly 2021-W01" },
} },
{ "weekly: a week starting in December can be week 1", "weekly:2", {
	{ 1, "2024-12-29T10:00:00Z", 0, "auto", 0, 1,            /* Sun */
	  "weekly 2024-W52" },
	{ 2, "2024-12-30T10:00:00Z", 0, "auto", 0, 0, NO },      /* Mon */
	{ 3, "2025-01-05T10:00:00Z", 0, "auto", 0, 1,            /* Sun */
	  "weekly 2025-W01" },
} },
{ "monthly and yearly", "monthly:2,yearly:2", {
	{ 1, "2024-01-01T00:00:00Z", 0, "auto", 0, 0, NO },
	{ 2, "2025-06-01T00:00:00Z", 0, "auto", 0, 0, NO },
	{ 3, "2025-12-31T23:59:59Z", 0, "auto", 0, 1, "yearly 2025" },
	{ 4, "2026-09-01T00:00:00Z", 0, "auto", 0, 0, NO },
	{ 5, "2026-10-15T00:00:00Z", 0, "auto", 0, 1, "monthly 2026-10" },
	{ 6, "2026-11-01T00:00:00Z", 0, "auto", 0, 0, NO },
	{ 7, "2026-11-30T00:00:00Z", 0, "auto", 0, 1,
	  "monthly 2026-11, yearly 2026" },
} },
{ "ties: the same timestamp, the higher id counts as newer",
  "last:1,daily:2", {
	{ 8, "2026-11-20T12:00:00Z", 0, "auto", 0, 1,
	  "last 1/1, daily 2026-11-20" },
	{ 6, "2026-11-19T12:00:00Z", 0, "auto", 0, 1, "daily 2026-11-19" },
	{ 7, "2026-11-20T12:00:00Z", 0, "auto", 0, 0, NO },
} },
{ "within: strictly newer than the newest candidate minus D",
  "within:2d", {
	{ 1, "2026-11-18T12:00:00Z", 0, "auto", 0, 0, NO },      /* = 2d */
	{ 2, "2026-11-18T12:00:00Z", 1, "auto", 0, 1, "within 2d" },
	{ 3, "2026-11-19T00:00:00Z", 0, "auto", 0, 1, "within 2d" },
	{ 4, "2026-11-20T12:00:00Z", 0, "auto", 0, 1, "within 2d" },
	/* A newer manual snapshot is no candidate: not the anchor. */
	{ 5, "2026-11-30T12:00:00Z", 0, "manual", 0, 1,
	  "manual: never pruned automatically" },
} },
{ "within with hours and minutes", "within:1h30m", {
	{ 1, "2026-11-20T10:29:59Z", 0, "auto", 0, 0, NO },
	{ 2, "2026-11-20T10:30:01Z", 0, "auto", 0, 1, "within 1h30m" },
	{ 3, "2026-11-20T12:00:00Z", 0, "auto", 0, 1, "within 1h30m" },
} },
{ "combinations: every rule that keeps a snapshot is named",
  "last:2,hourly:3,daily:2,weekly:1,monthly:1,yearly:1,within:1h", {
	{ 10, "2026-11-20T14:30:00Z", 0, "auto", 0, 1,
	  "last 1/2, hourly 2026-11-20-14, daily 2026-11-20, "
	  "weekly 2026-W47, monthly 2026-11, yearly 2026, within 1h" },
	{ 9, "2026-11-20T14:00:00Z", 0, "auto", 0, 1, "last 2/2, within 1h" },
	{ 8, "2026-11-20T13:29:59Z", 0, "auto", 0, 1,
	  "hourly 2026-11-20-13" },
	{ 7, "2026-11-20T12:00:00Z", 0, "auto", 0, 1,
	  "hourly 2026-11-20-12" },
	{ 6, "2026-11-19T23:00:00Z", 0, "auto", 0, 1, "daily 2026-11-19" },
	{ 5, "2026-11-18T23:00:00Z", 0, "auto", 0, 0, NO },
} },
{ "manual, import, conflict, recovery and pinned are never pruned",
  "last:1", {
	{ 1, "2026-11-01T00:00:00Z", 0, "manual", 0, 1,
	  "manual: never pruned automatically" },
	{ 2, "2026-11-02T00:00:00Z", 0, "import", 0, 1,
	  "import: never pruned automatically" },
	{ 3, "2026-11-03T00:00:00Z", 0, "conflict", 0, 1,
	  "conflict: never pruned automatically" },
	{ 4, "2026-11-04T00:00:00Z", 0, "recovery", 0, 1,
	  "recovery: never pruned automatically" },
	{ 5, "2026-11-05T00:00:00Z", 0, "auto", 1, 1, "pinned" },
	{ 6, "2026-11-06T00:00:00Z", 0, "manual", 1, 1, "pinned" },
	{ 7, "2026-11-07T00:00:00Z", 0, "pre-restore", 0, 0, NO },
	{ 8, "2026-11-08T00:00:00Z", 0, "auto", 0, 0, NO },
	{ 9, "2026-11-09T00:00:00Z", 0, "auto", 0, 1, "last 1/1" },
	/* Newer non-candidates do not use up the count. */
	{ 10, "2026-11-10T00:00:00Z", 0, "manual", 0, 1,
	  "manual: never pruned automatically" },
	{ 11, "2026-11-11T00:00:00Z", 0, "auto", 1, 1, "pinned" },
} },
{ "pre-restore snapshots are candidates like auto ones", "last:2", {
	{ 1, "2026-11-01T00:00:00Z", 0, "pre-restore", 0, 0, NO },
	{ 2, "2026-11-02T00:00:00Z", 0, "auto", 0, 1, "last 2/2" },
	{ 3, "2026-11-03T00:00:00Z", 0, "pre-restore", 0, 1, "last 1/2" },
} },
{ "an empty policy keeps everything", NULL, {
	{ 1, "2026-11-01T00:00:00Z", 0, "auto", 0, 1, "no retention policy" },
	{ 2, "2026-11-02T00:00:00Z", 0, "pre-restore", 0, 1,
	  "no retention policy" },
	{ 3, "2026-11-03T00:00:00Z", 0, "manual", 0, 1,
	  "manual: never pruned automatically" },
	{ 4, "2026-11-04T00:00:00Z", 0, "auto", 1, 1, "pinned" },
} },
{ "rules set to 0 are off: an empty policy", "last:0,daily:0,within:0s", {
	{ 1, "2026-11-01T00:00:00Z", 0, "auto", 0, 1, "no retention policy" },
} },
{ "buckets before 1970 use floor division", "daily:2,hourly:1", {
	{ 1, "1969-12-31T23:59:59Z", 500000000, "auto", 0, 1,
	  "daily 1969-12-31" },
	{ 2, "1970-01-01T00:00:00Z", 0, "auto", 0, 1,
	  "hourly 1970-01-01-00, daily 1970-01-01" },
} },
};

/* Build snap_info values from a case's rows (in order, or reversed). */
static size_t case_infos(const plan_case *c, int reversed, snap_info *v)
{
	size_t n = 0, i;

	while (n < MAXROWS && c->rows[n].id != 0)
		n++;
	for (i = 0; i < n; i++) {
		const row *r = &c->rows[reversed ? n - 1 - i : i];
		snap_info *si = &v[i];
		memset(si, 0, sizeof(*si));
		si->id = r->id;
		si->created_ns = utc_ns(r->time) + r->plus_ns;
		if (snap_kind_parse(r->kind, &si->kind) != 0)
			fail_msg("%s: bad kind %s", c->name, r->kind);
		si->pinned = r->pinned;
		snprintf(si->name, sizeof(si->name), "s%lld.db",
			 (long long)r->id);
	}
	return n;
}

/* Print a plan (for failures). */
static void print_plan(const snap_keep_decision *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		print_message("#   id %lld %s %s\n", (long long)d[i].info.id,
			      d[i].keep ? "keep " : "prune", d[i].reason);
}

/* Plan one case both ways and compare with the table. */
static void run_case(const plan_case *c)
{
	snap_info v[MAXROWS];
	snap_keep_decision a[MAXROWS], b[MAXROWS];
	snap_keep_policy p;
	snap_err e;
	size_t n, i, j;

	memset(&p, 0, sizeof(p));
	snap_err_clear(&e);
	if (c->keep && snap_keep_parse(c->keep, &p, &e) != 0)
		fail_msg("%s: keep spec %s: %s", c->name, c->keep, e.msg);
	n = case_infos(c, 0, v);
	snap_retention_plan(v, n, &p, a);
	case_infos(c, 1, v);
	snap_retention_plan(v, n, &p, b);
	for (i = 0; i < n; i++) {
		const row *r = NULL;
		if (a[i].info.id != b[i].info.id || a[i].keep != b[i].keep ||
		    strcmp(a[i].reason, b[i].reason) != 0) {
			print_plan(a, n);
			print_plan(b, n);
			fail_msg("%s: the plan depends on the input order",
				 c->name);
		}
		if (i > 0 && (a[i].info.created_ns > a[i - 1].info.created_ns ||
			      (a[i].info.created_ns ==
			       a[i - 1].info.created_ns &&
			       a[i].info.id > a[i - 1].info.id))) {
			print_plan(a, n);
			fail_msg("%s: the plan is not newest first", c->name);
		}
		for (j = 0; j < n; j++)
			if (c->rows[j].id == a[i].info.id)
				r = &c->rows[j];
		assert_non_null(r);
		if (a[i].keep != r->keep || strcmp(a[i].reason, r->reason)) {
			print_plan(a, n);
			fail_msg("%s: snapshot %lld: got %s \"%s\", want %s "
				 "\"%s\"", c->name, (long long)r->id,
				 a[i].keep ? "keep" : "prune", a[i].reason,
				 r->keep ? "keep" : "prune", r->reason);
		}
	}
}

static void test_plan_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		print_message("# plan: %s\n", cases[i].name);
		run_case(&cases[i]);
	}
}

static void test_plan_of_nothing_is_nothing(void **state)
{
	snap_keep_policy p = { .last = 3 };
	snap_keep_decision d[1];
	(void)state;
	snap_retention_plan(NULL, 0, &p, d);
}

/* A long daily history: a snapshot every 6 hours for 400 days; daily:30
 * keeps exactly the last one of each of the newest 30 days, weekly:8 the
 * last of each of 8 ISO weeks, and nothing else. */
static void test_plan_long_history_counts_exactly(void **state)
{
	enum { N = 1600 };
	snap_info *v = calloc(N, sizeof(*v));
	snap_keep_decision *d = calloc(N, sizeof(*d));
	snap_keep_policy p = { .daily = 30, .weekly = 8 };
	int64_t t0 = utc_ns("2025-10-01T03:00:00Z");
	size_t i, kept = 0, daily = 0, weekly = 0;
	(void)state;
	assert_non_null(v);
	assert_non_null(d);
	for (i = 0; i < N; i++) {
		v[i].id = (int64_t)i + 1;
		v[i].kind = SNAP_KIND_AUTO;
		v[i].created_ns = t0 + (int64_t)i * 6 * 3600 * NS;
	}
	snap_retention_plan(v, N, &p, d);
	for (i = 0; i < N; i++) {
		kept += d[i].keep;
		daily += strstr(d[i].reason, "daily ") != NULL;
		weekly += strstr(d[i].reason, "weekly ") != NULL;
		/* Each kept one is the last of its day: 21:00 UTC. */
		if (d[i].keep) {
			time_t t = (time_t)(d[i].info.created_ns / NS);
			struct tm tm;
			gmtime_r(&t, &tm);
			assert_int_equal(tm.tm_hour, 21);
		}
	}
	assert_int_equal(daily, 30);
	assert_int_equal(weekly, 8);
	/* The newest 30 days cover 4+ ISO weeks: their Sundays are kept by
	 * both rules, so fewer than 38 distinct snapshots. */
	assert_true(kept < 38 && kept > 30);
	free(v);
	free(d);
}

/* ------------------------------------------------------------------ */
/* parsing                                                             */

static void test_duration_parse_good_and_bad(void **state)
{
	static const struct { const char *s; int64_t ns; } good[] = {
		{ "30s", 30 * NS }, { "15m", 900 * NS }, { "1h", 3600 * NS },
		{ "2d", 2 * 86400 * NS }, { "1w", 7 * 86400 * NS },
		{ "1h30m", 5400 * NS }, { "90m", 5400 * NS }, { "0s", 0 },
		{ "1w2d3h4m5s", (9 * 86400 + 3 * 3600 + 4 * 60 + 5) * NS },
	};
	static const char *const bad[] = {
		"", "30", "h", "-1h", "+1h", "1x", "1h ", " 1h", "1.5h",
		"1H", "1hh", "9999999999999999999s", "300000w", "1h-",
	};
	int64_t ns;
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ns = -1;
		if (snap_duration_parse(good[i].s, &ns) != 0 ||
		    ns != good[i].ns)
			fail_msg("duration \"%s\": got %lld", good[i].s,
				 (long long)ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (snap_duration_parse(bad[i], &ns) != -EINVAL)
			fail_msg("duration \"%s\" was accepted", bad[i]);
	assert_int_equal(snap_duration_parse(NULL, &ns), -EINVAL);
}

static void test_duration_format_reads_back(void **state)
{
	static const struct { int64_t ns; const char *s; } v[] = {
		{ 0, "0s" }, { 5400 * NS, "1h30m" }, { 7 * 86400 * NS, "1w" },
		{ 9 * 86400 * NS, "1w2d" }, { 1500000000, "1s500ms" },
		{ 1, "1ns" }, { 36 * 3600 * NS, "1d12h" },
	};
	char buf[48];
	int64_t back;
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		snap_duration_format(v[i].ns, buf, sizeof(buf));
		assert_string_equal(buf, v[i].s);
		if (v[i].ns % 1000000000 == 0) {
			assert_int_equal(snap_duration_parse(buf, &back), 0);
			assert_int_equal(back, v[i].ns);
		}
	}
}

static void test_size_parse_good_and_bad(void **state)
{
	static const struct { const char *s; uint64_t b; } good[] = {
		{ "0", 0 }, { "512", 512 }, { "512B", 512 },
		{ "512K", 512 * 1024 }, { "10M", 10ull << 20 },
		{ "10m", 10ull << 20 }, { "10MB", 10ull << 20 },
		{ "10MiB", 10ull << 20 }, { "2G", 2ull << 30 },
		{ "1T", 1ull << 40 }, { "1P", 1ull << 50 }, { "1kib", 1024 },
		{ "16383P", 16383ull << 50 },
	};
	static const char *const bad[] = {
		"", "M", "10X", "10 M", " 10M", "-1", "1.5G", "10Mi", "10MBB",
		"99999999999999999999", "16384P", "10B5",
	};
	uint64_t b;
	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		b = 1;
		if (snap_size_parse(good[i].s, &b) != 0 || b != good[i].b)
			fail_msg("size \"%s\": got %llu", good[i].s,
				 (unsigned long long)b);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (snap_size_parse(bad[i], &b) != -EINVAL)
			fail_msg("size \"%s\" was accepted", bad[i]);
}

static void test_keep_parse_good(void **state)
{
	snap_keep_policy p = { .daily = 5, .max_size = 1234 };
	snap_err e;
	(void)state;
	snap_err_clear(&e);
	assert_int_equal(snap_keep_parse("within:2d,last:3,yearly:1", &p, &e),
			 0);
	assert_int_equal(p.last, 3);
	assert_int_equal(p.yearly, 1);
	assert_int_equal(p.within_ns, 2 * 86400 * NS);
	/* Other fields are left alone. */
	assert_int_equal(p.daily, 5);
	assert_int_equal(p.hourly, 0);
	assert_int_equal(p.max_size, 1234);
	assert_int_equal(snap_keep_parse("hourly:24,daily:7,weekly:4,"
					 "monthly:12,daily:0", &p, &e),
			 -EINVAL);   /* daily twice */
	assert_int_equal(snap_keep_parse("hourly:24,daily:0,weekly:4,"
					 "monthly:12", &p, &e), 0);
	assert_int_equal(p.hourly, 24);
	assert_int_equal(p.daily, 0);
	assert_int_equal(p.weekly, 4);
	assert_int_equal(p.monthly, 12);
	/* The first design's (and restic's) spelling: keep-last, ...,
	 * keep-within name the same rules, and count as them. */
	snap_keep_policy k = { 0 };
	assert_int_equal(snap_keep_parse("keep-last:2,keep-daily:7,"
					 "keep-within:1d", &k, &e), 0);
	assert_int_equal(k.last, 2);
	assert_int_equal(k.daily, 7);
	assert_int_equal(k.within_ns, 86400 * NS);
	assert_int_equal(snap_keep_parse("last:1,keep-last:2", &k, &e),
			 -EINVAL);   /* last twice */
}

static void test_keep_parse_bad_names_the_bad_part(void **state)
{
	static const struct { const char *spec; const char *msg; } bad[] = {
		{ "", "empty" },
		{ "daily", "\"daily\" is not RULE:VALUE" },
		{ "fortnightly:2", "unknown rule \"fortnightly\"" },
		{ "daily:x", "\"x\" is not a count" },
		{ "daily:-1", "\"-1\" is not a count" },
		{ "daily:7d", "\"7d\" is not a count" },
		{ "last:99999999999", "is not a count" },
		{ "daily:7,daily:8", "\"daily\" is given twice" },
		{ "within:7", "\"7\" is not a duration" },
		{ "within:", "is not a duration" },
		{ "last:3,,daily:2", "empty rule" },
		{ "last:3,", "empty rule" },
		{ ",last:3", "empty rule" },
		{ "last:3,bogus:1", "unknown rule \"bogus\"" },
		/* keep-RULE: the part quoted as written */
		{ "keep-bogus:1", "unknown rule \"keep-bogus\"" },
		{ "keep-daily:x", "\"keep-daily:x\": \"x\" is not a count" },
		{ "keep-within:7", "\"keep-within:7\": \"7\" is not a duration" },
		{ "daily:7,keep-daily:8", "\"keep-daily\" is given twice" },
	};
	snap_keep_policy before = { .last = 9, .within_ns = 7 };
	snap_err e;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snap_keep_policy p = before;
		snap_err_clear(&e);
		if (snap_keep_parse(bad[i].spec, &p, &e) != -EINVAL)
			fail_msg("keep \"%s\" was accepted", bad[i].spec);
		if (strstr(e.msg, bad[i].msg) == NULL)
			fail_msg("keep \"%s\": message \"%s\" lacks \"%s\"",
				 bad[i].spec, e.msg, bad[i].msg);
		/* Nothing partial: p is as before. */
		assert_memory_equal(&p, &before, sizeof(p));
	}
}

static void test_keep_format_reads_back(void **state)
{
	snap_keep_policy p = { .last = 3, .daily = 7, .monthly = 12,
			       .within_ns = 36 * 3600 * NS,
			       .max_size = 10ull << 20 };
	snap_keep_policy q;
	char buf[256];
	snap_err e;
	(void)state;
	snap_err_clear(&e);
	snap_keep_format(&p, buf, sizeof(buf));
	assert_string_equal(buf, "last:3,daily:7,monthly:12,within:1d12h "
			    "max_size=10M");
	memset(&q, 0, sizeof(q));
	*strchr(buf, ' ') = '\0';
	assert_int_equal(snap_keep_parse(buf, &q, &e), 0);
	q.max_size = p.max_size;
	assert_memory_equal(&p, &q, sizeof(p));
	memset(&q, 0, sizeof(q));
	snap_keep_format(&q, buf, sizeof(buf));
	assert_string_equal(buf, "none");
	q.max_size = 1536 * 1024;
	snap_keep_format(&q, buf, sizeof(buf));
	assert_string_equal(buf, "max_size=1536K");
}

static void test_keep_empty(void **state)
{
	snap_keep_policy p;
	(void)state;
	memset(&p, 0, sizeof(p));
	assert_true(snap_keep_empty(&p));
	p.max_size = 100;             /* not a keep rule */
	assert_true(snap_keep_empty(&p));
	p.within_ns = NS;
	assert_false(snap_keep_empty(&p));
	memset(&p, 0, sizeof(p));
	p.yearly = 1;
	assert_false(snap_keep_empty(&p));
}

/* ------------------------------------------------------------------ */
/* pruning a real store                                                */

/* Replace the live database's content with `kib` KiB of fresh random
 * data, so the next snapshot shares no data page with earlier ones. */
static void fresh_content(const char *db_path, int kib)
{
	sqlite3 *db = tu_open(db_path);
	tu_exec(db, "CREATE TABLE IF NOT EXISTS r(id INTEGER PRIMARY KEY, "
		"b BLOB)");
	tu_exec(db, "BEGIN; DELETE FROM r; INSERT INTO r(b) SELECT "
		"randomblob(1000) FROM (WITH RECURSIVE c(x) AS (SELECT 1 "
		"UNION ALL SELECT x+1 FROM c WHERE x < %d) SELECT x FROM c);"
		"COMMIT", kib);
	tu_exec(db, "VACUUM");      /* the file shrinks when the data does */
	sqlite3_close(db);
}

/* Take a snapshot of a kind; fail the test on error. */
static snap_info take(snap_store *st, snap_kind kind, int pinned,
		      const char *label)
{
	snap_create_opts o = { .kind = kind, .label = label,
			       .pinned = pinned };
	return tu_snap_opts(st, &o);
}

/* 1 when snapshot id is in the store. */
static int present(snap_store *st, int64_t id)
{
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	return snap_store_get(st, id, &si, &e) == 0;
}

static uint64_t stored_bytes(snap_store *st)
{
	snap_store_stats s;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_store_stats_get(st, &s, &e), 0);
	return s.stored_bytes;
}

static void verify_clean(snap_store *st)
{
	tu_problems pr;
	unsigned nbad = 0;
	snap_err e;
	memset(&pr, 0, sizeof(pr));
	snap_err_clear(&e);
	int rc = snap_verify_store(st, 1, tu_problem_cb, &pr, &nbad, &e);
	if (rc != 0)
		fail_msg("store does not verify: %d %s (%s)", rc, e.msg,
			 pr.text);
	assert_int_equal(nbad, 0);
}

/* The decision for id in a plan; fails the test when absent. */
static const snap_keep_decision *decision(const snap_keep_decision *d,
					  size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (d[i].info.id == id)
			return &d[i];
	fail_msg("snapshot %lld is not in the plan", (long long)id);
	return NULL;
}

static void test_prune_dry_run_changes_nothing_then_run_does_it(void **s)
{
	tu_env *env = *s;
	snap_info a[6], m = { 0 }, pin = { 0 };
	snap_keep_policy p = { .last = 2 };
	snap_keep_decision *dry = NULL, *real = NULL;
	size_t nd = 0, nr = 0, pruned = 9;
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 50);
	for (int i = 0; i < 6; i++) {
		fresh_content(env->db, 20 + i);
		if (i == 2)
			m = take(st, SNAP_KIND_MANUAL, 0, "manual");
		if (i == 3)
			pin = take(st, SNAP_KIND_AUTO, 1, "pinned");
		a[i] = take(st, SNAP_KIND_AUTO, 0, "auto");
	}
	int64_t count0 = tu_count(st), ev0 = tu_last_event_id(st);
	uint64_t bytes0 = stored_bytes(st);

	assert_int_equal(snap_retention_prune(st, &p, 1, &dry, &nd, &pruned,
					      &e), 0);
	assert_int_equal(nd, 8);
	assert_int_equal(pruned, 4);
	assert_int_equal(tu_count(st), count0);
	assert_int_equal(stored_bytes(st), bytes0);
	assert_int_equal(tu_last_event_id(st), ev0);   /* not even an event */
	assert_string_equal(decision(dry, nd, a[5].id)->reason, "last 1/2");
	assert_string_equal(decision(dry, nd, a[4].id)->reason, "last 2/2");
	for (int i = 0; i < 4; i++) {
		assert_int_equal(decision(dry, nd, a[i].id)->keep, 0);
		assert_string_equal(decision(dry, nd, a[i].id)->reason, NO);
	}
	assert_string_equal(decision(dry, nd, m.id)->reason,
			    "manual: never pruned automatically");
	assert_string_equal(decision(dry, nd, pin.id)->reason, "pinned");

	assert_int_equal(snap_retention_prune(st, &p, 0, &real, &nr, &pruned,
					      &e), 0);
	assert_int_equal(pruned, 4);
	assert_int_equal(nr, nd);
	for (size_t i = 0; i < nr; i++) {
		assert_int_equal(real[i].info.id, dry[i].info.id);
		assert_int_equal(real[i].keep, dry[i].keep);
		assert_string_equal(real[i].reason, dry[i].reason);
		/* Exactly the pruned ones are gone. */
		assert_int_equal(present(st, real[i].info.id), real[i].keep);
	}
	assert_int_equal(tu_count(st), count0 - 4);
	assert_int_equal(tu_count_events(st, ev0, "delete", 1, NULL), 4);
	char detail[SNAP_ERR_MSG];
	assert_int_equal(tu_count_events_detail(st, ev0, "prune", 1, NULL,
						 detail, sizeof(detail)), 1);
	assert_non_null(strstr(detail, "pruned 4 of 8"));
	assert_non_null(strstr(detail, "last:2"));
	assert_true(stored_bytes(st) < bytes0);
	verify_clean(st);

	/* Pruning again prunes nothing and records nothing. */
	free(real);
	ev0 = tu_last_event_id(st);
	assert_int_equal(snap_retention_prune(st, &p, 0, &real, &nr, &pruned,
					      &e), 0);
	assert_int_equal(pruned, 0);
	assert_int_equal(tu_last_event_id(st), ev0);
	free(real);
	free(dry);
}

static void test_prune_with_an_empty_policy_keeps_everything(void **s)
{
	tu_env *env = *s;
	snap_keep_policy p;
	snap_keep_decision *d = NULL;
	size_t n = 0, pruned = 1;
	snap_err e;
	snap_err_clear(&e);
	memset(&p, 0, sizeof(p));
	snap_store *st = tu_live_store(env, "delete", 4096, 50);
	for (int i = 0; i < 3; i++)
		take(st, SNAP_KIND_AUTO, 0, "auto");
	assert_int_equal(snap_retention_prune(st, &p, 0, &d, &n, &pruned, &e),
			 0);
	assert_int_equal(n, 3);
	assert_int_equal(pruned, 0);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(d[i].reason, "no retention policy");
	assert_int_equal(tu_count(st), 3);
	free(d);
}

/* Copy the store directory of st (closed and reopened around it) to
 * `to`; returns the reopened original. */
static snap_store *copy_store(tu_env *env, const char *to)
{
	char cmd[PATH_MAX * 2 + 32];
	snap_store_close(env->st);
	env->st = NULL;
	snprintf(cmd, sizeof(cmd), "cp -a '%s.snapfs' '%s'", env->db, to);
	assert_int_equal(system(cmd), 0);
	return tu_store(env);
}

static void test_max_size_takes_the_oldest_automatic_first(void **s)
{
	tu_env *env = *s;
	snap_info a1, m1, a2, a3, a4;
	snap_keep_decision *d = NULL;
	size_t n = 0, pruned = 0;
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	fresh_content(env->db, 200);
	a1 = take(st, SNAP_KIND_AUTO, 0, "a1");
	fresh_content(env->db, 200);
	m1 = take(st, SNAP_KIND_MANUAL, 0, "m1");
	fresh_content(env->db, 200);
	a2 = take(st, SNAP_KIND_AUTO, 0, "a2");
	fresh_content(env->db, 200);
	a3 = take(st, SNAP_KIND_AUTO, 0, "a3");
	fresh_content(env->db, 200);
	a4 = take(st, SNAP_KIND_AUTO, 0, "a4");

	/* What deleting a1, and a1 and a2, really leaves: measured on a
	 * copy of the store where the deletions are done. */
	char copy[PATH_MAX];
	tu_path(env, copy, "copy.snapfs");
	st = copy_store(env, copy);
	uint64_t all = stored_bytes(st);
	snap_store *cs = NULL;
	assert_int_equal(snap_store_open(env->db, copy, 0, &cs, &e), 0);
	assert_int_equal(snap_store_delete(cs, a1.id, &e), 0);
	uint64_t without_a1 = stored_bytes(cs);
	assert_int_equal(snap_store_delete(cs, a2.id, &e), 0);
	uint64_t without_a1_a2 = stored_bytes(cs);
	snap_store_close(cs);
	assert_true(without_a1 < all && without_a1_a2 < without_a1);

	/* A cap the store meets: nothing goes. */
	snap_keep_policy p = { .max_size = all };
	assert_int_equal(snap_retention_prune(st, &p, 1, &d, &n, &pruned, &e),
			 0);
	assert_int_equal(pruned, 0);
	free(d);
	/* Exactly the size without a1: only a1 goes. */
	p.max_size = without_a1;
	assert_int_equal(snap_retention_prune(st, &p, 1, &d, &n, &pruned, &e),
			 0);
	assert_int_equal(pruned, 1);
	assert_string_equal(decision(d, n, a1.id)->reason, "over max_size");
	free(d);
	/* One byte less: a2 goes too (the manual one between them stays). */
	p.max_size = without_a1 - 1;
	assert_int_equal(snap_retention_prune(st, &p, 1, &d, &n, &pruned, &e),
			 0);
	assert_int_equal(pruned, 2);
	assert_string_equal(decision(d, n, a1.id)->reason, "over max_size");
	assert_string_equal(decision(d, n, a2.id)->reason, "over max_size");
	assert_string_equal(decision(d, n, m1.id)->reason,
			    "manual: never pruned automatically");
	assert_int_equal(decision(d, n, a3.id)->keep, 1);
	free(d);
	/* The real run does the same and lands on the measured size. */
	assert_int_equal(snap_retention_prune(st, &p, 0, &d, &n, &pruned, &e),
			 0);
	assert_int_equal(pruned, 2);
	free(d);
	assert_false(present(st, a1.id));
	assert_false(present(st, a2.id));
	assert_true(present(st, m1.id));
	assert_int_equal(stored_bytes(st), without_a1_a2);
	verify_clean(st);

	/* An impossible cap: every candidate but the newest goes; the
	 * newest and the manual one stay. */
	p.max_size = 1;
	assert_int_equal(snap_retention_prune(st, &p, 0, &d, &n, &pruned, &e),
			 0);
	assert_int_equal(pruned, 1);
	assert_string_equal(decision(d, n, a3.id)->reason, "over max_size");
	assert_int_equal(decision(d, n, a4.id)->keep, 1);
	assert_true(present(st, a4.id));
	assert_true(present(st, m1.id));
	assert_false(present(st, a3.id));
	free(d);
	verify_clean(st);
}

static void test_max_size_combines_with_the_rules(void **s)
{
	tu_env *env = *s;
	snap_info a[4];
	snap_keep_decision *d = NULL;
	size_t n = 0, pruned = 0;
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	for (int i = 0; i < 4; i++) {
		fresh_content(env->db, 100);
		a[i] = take(st, SNAP_KIND_AUTO, 0, "a");
	}
	/* last:3 prunes a0; the cap then takes a1 (the oldest left). */
	snap_keep_policy p = { .last = 3, .max_size = stored_bytes(st) / 2 };
	assert_int_equal(snap_retention_prune(st, &p, 1, &d, &n, &pruned, &e),
			 0);
	assert_string_equal(decision(d, n, a[0].id)->reason, NO);
	assert_string_equal(decision(d, n, a[1].id)->reason, "over max_size");
	assert_string_equal(decision(d, n, a[3].id)->reason, "last 1/3");
	assert_int_equal(pruned, 2 + (decision(d, n, a[2].id)->keep == 0));
	free(d);
}

/* 1 when snapshot id has a decision in the plan. */
static int planned(const snap_keep_decision *d, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (d[i].info.id == id)
			return 1;
	return 0;
}

/* Snapshots in the trash are out of retention's reach: no rule and no cap
 * prunes them, and they are no kept snapshots either (they take no place
 * in a rule's count; a store's plan leaves them out). */
static void test_prune_skips_snapshots_in_the_trash(void **s)
{
	tu_env *env = *s;
	snap_info a[5], out;
	snap_keep_decision *d = NULL;
	size_t n = 0, pruned = 9;
	char detail[SNAP_ERR_MSG];
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	for (int i = 0; i < 5; i++) {
		fresh_content(env->db, 40);
		a[i] = take(st, SNAP_KIND_AUTO, 0, "a");
	}
	assert_int_equal(snap_trash_put(st, a[0].id, 0, a[0].name, NULL, 0,
					&out, &e), 0);
	assert_int_equal(snap_trash_put(st, a[4].id, 0, a[4].name, NULL, 0,
					&out, &e), 0);

	/* last:2 keeps a3 and a2 (the newest not in the trash). */
	snap_keep_policy p = { .last = 2 };
	assert_int_equal(snap_retention_prune(st, &p, 1, &d, &n, &pruned, &e),
			 0);
	assert_int_equal(n, 3);
	assert_int_equal(pruned, 1);
	assert_false(planned(d, n, a[0].id));
	assert_false(planned(d, n, a[4].id));
	assert_string_equal(decision(d, n, a[3].id)->reason, "last 1/2");
	assert_string_equal(decision(d, n, a[2].id)->reason, "last 2/2");
	assert_string_equal(decision(d, n, a[1].id)->reason, NO);
	free(d);
	int64_t ev0 = tu_last_event_id(st);
	assert_int_equal(snap_retention_prune(st, &p, 0, &d, &n, &pruned, &e),
			 0);
	free(d);
	assert_int_equal(pruned, 1);
	assert_false(present(st, a[1].id));
	assert_int_equal(tu_count_events_detail(st, ev0, "prune", 1, NULL,
						 detail, sizeof(detail)), 1);
	assert_non_null(strstr(detail, "pruned 1 of 3"));
	assert_non_null(strstr(detail, "2 kept"));

	/* An impossible cap takes every candidate but the newest (a3), and
	 * never what waits in the trash. */
	p.last = 0;
	p.max_size = 1;
	assert_int_equal(snap_retention_prune(st, &p, 0, &d, &n, &pruned, &e),
			 0);
	free(d);
	assert_int_equal(pruned, 1);
	assert_false(present(st, a[2].id));
	assert_true(present(st, a[3].id));
	assert_int_equal(snap_store_get(st, a[0].id, &out, &e), 0);
	assert_int_equal(out.trash, SNAP_TRASH_FILES);
	assert_int_equal(snap_store_get(st, a[4].id, &out, &e), 0);
	assert_int_equal(out.trash, SNAP_TRASH_FILES);
	verify_clean(st);

	/* The pure plan, given one: kept, said why, and not counted. */
	snap_info v[3];
	snap_keep_decision pd[3];
	snap_keep_policy one = { .last = 1 };
	memset(v, 0, sizeof(v));
	for (int i = 0; i < 3; i++) {
		v[i].id = i + 1;
		v[i].kind = SNAP_KIND_AUTO;
		v[i].created_ns = (int64_t)(i + 1) * NS;
	}
	v[2].trash = SNAP_TRASH_FILES;
	snap_retention_plan(v, 3, &one, pd);
	assert_int_equal(pd[0].info.id, 3);
	assert_int_equal(pd[0].keep, 1);
	assert_string_equal(pd[0].reason,
			    "in the trash: kept until the trash is emptied");
	assert_string_equal(pd[1].reason, "last 1/1");
	assert_int_equal(pd[2].keep, 0);
}

/* ------------------------------------------------------------------ */
/* the free-space guard on a small tmpfs                               */

/* The tmpfs mounted by the running test ("" when none). */
static char mounted[PATH_MAX];

static void unmount_small(void)
{
	if (mounted[0] && umount2(mounted, 0) != 0 &&
	    umount2(mounted, MNT_DETACH) != 0)
		print_message("# could not unmount %s: %s\n", mounted,
			      strerror(errno));
	mounted[0] = '\0';
}

/* Mount a tmpfs of `size` under the test's directory; 0, or 1 when this
 * process may not mount (not root: the test then passes with a note). */
static int mount_small(tu_env *env, const char *size, char *path)
{
	char opts[64];

	tu_path(env, path, "small");
	assert_int_equal(mkdir(path, 0700), 0);
	if (geteuid() != 0) {
		print_message("# not root: cannot mount a tmpfs; the "
			      "free-space test needs root\n");
		return 1;
	}
	snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
	if (mount("snapfs-test", path, "tmpfs", MS_NOSUID | MS_NODEV, opts))
		fail_msg("mount -t tmpfs -o %s %s: %s", opts, path,
			 strerror(errno));
	snprintf(mounted, sizeof(mounted), "%s", path);
	return 0;
}

/* Teardown: the store must be closed before its filesystem goes. */
static int space_teardown(void **state)
{
	tu_env *env = *state;
	if (env && env->st) {
		snap_store_close(env->st);
		env->st = NULL;
	}
	unmount_small();
	return tu_teardown(state);
}

static snap_store *open_store_at(tu_env *env, const char *dir)
{
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_store_open(env->db, dir, SNAP_OPEN_CREATE, &env->st, &e);
	if (rc != 0)
		fail_msg("snap_store_open(%s): %d %s", dir, rc, e.msg);
	return env->st;
}

/* A 12 MB tmpfs (small, PATH_MAX) and a store at small/store (store)
 * for the live database with 1 MiB of fresh content; NULL when this
 * process may not mount (mount_small). */
static snap_store *small_store(tu_env *env, char *small, char *store)
{
	if (mount_small(env, "12m", small))
		return NULL;
	snprintf(store, PATH_MAX, "%s/store", small);
	fresh_content(env->db, 1024);
	return open_store_at(env, store);
}

static uint64_t fs_free(const char *path)
{
	struct statvfs v;
	assert_int_equal(statvfs(path, &v), 0);
	return (uint64_t)v.f_bavail * v.f_frsize;
}

static void test_make_room_is_a_no_op_when_there_is_room(void **s)
{
	tu_env *env = *s;
	snap_keep_policy p = { .last = 1 };
	snap_err e;
	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 50);
	for (int i = 0; i < 3; i++)
		take(st, SNAP_KIND_AUTO, 0, "a");
	int64_t ev0 = tu_last_event_id(st);
	/* /tmp has room for a tiny database: even a policy that would
	 * prune is not applied by the guard. */
	assert_int_equal(snap_retention_make_room(st, &p, &e), 0);
	assert_int_equal(tu_count(st), 3);
	assert_int_equal(tu_last_event_id(st), ev0);
}

/*
 * The daemon's loop on a 10 MiB store filesystem: before each snapshot of
 * a 1 MiB incompressible database, make room; every snapshot succeeds,
 * the oldest automatic snapshots go, the manual one and the newest stay,
 * and the store verifies.
 */
static void test_make_room_prunes_the_oldest_automatic_snapshots(void **s)
{
	tu_env *env = *s;
	char small[PATH_MAX], store[PATH_MAX];
	snap_keep_policy p;
	snap_info m, autos[12];
	snap_err e;
	int pruned_any = 0, kept = 0;

	if (mount_small(env, "10m", small))
		return;
	snprintf(store, sizeof(store), "%s/store", small);
	memset(&p, 0, sizeof(p));
	snap_err_clear(&e);
	fresh_content(env->db, 1024);
	snap_store *st = open_store_at(env, store);
	assert_int_equal(snap_retention_make_room(st, &p, &e), 0);
	m = take(st, SNAP_KIND_MANUAL, 0, "keep-me");
	int64_t ev0 = tu_last_event_id(st);
	for (int i = 0; i < 12; i++) {
		int64_t before = tu_count(st);
		fresh_content(env->db, 1024);
		int rc = snap_retention_make_room(st, &p, &e);
		if (rc != 0)
			fail_msg("make room before snapshot %d: %d %s (%llu "
				 "bytes free)", i, rc, e.msg,
				 (unsigned long long)fs_free(small));
		pruned_any |= tu_count(st) < before;
		autos[i] = take(st, SNAP_KIND_AUTO, 0, "auto");
	}
	assert_true(pruned_any);
	assert_true(present(st, m.id));
	/* The oldest went first: what is left is the newest few. */
	for (int i = 0; i < 12; i++) {
		int here = present(st, autos[i].id);
		if (kept && !here)
			fail_msg("auto snapshot %d is gone but an older one "
				 "stayed", i);
		kept += here;
	}
	print_message("# 12 automatic snapshots of 1 MiB on 10 MiB: %d kept, "
		      "%llu bytes free\n", kept,
		      (unsigned long long)fs_free(small));
	assert_true(kept >= 1 && kept < 12);
	assert_true(tu_count_events(st, ev0, "prune", 1, NULL) > 0);
	assert_int_equal(tu_count_events(st, ev0, "snapshot", 0, NULL), 0);
	verify_clean(st);
}

/*
 * A database too big for the store's filesystem, whatever is pruned:
 * ENOSPC with the message naming the store and the space, nothing deleted
 * (the old automatic snapshot could not make enough room), the store and
 * its snapshots intact; once the database is small again it works.  (12
 * MB: the store's reserve, storespace.c, takes 2 MB of it.)
 */
static void test_make_room_refuses_when_pruning_cannot_help(void **s)
{
	tu_env *env = *s;
	char small[PATH_MAX], store[PATH_MAX], detail[SNAP_ERR_MSG];
	snap_keep_policy p = { .last = 1 };
	snap_info a0, m1, m2;
	snap_info *before = NULL, *after = NULL;
	size_t nb = 0, na = 0;
	snap_err e;

	snap_err_clear(&e);
	snap_store *st = small_store(env, small, store);
	if (!st)
		return;
	a0 = take(st, SNAP_KIND_AUTO, 0, "old-auto");
	fresh_content(env->db, 1024);
	m1 = take(st, SNAP_KIND_MANUAL, 0, "m1");
	fresh_content(env->db, 1024);
	m2 = take(st, SNAP_KIND_MANUAL, 0, "m2");
	assert_int_equal(snap_store_list(st, &before, &nb, &e), 0);

	fresh_content(env->db, 4096);   /* 4 MiB: could need 10 MiB */
	int64_t ev0 = tu_last_event_id(st);
	assert_int_equal(snap_retention_make_room(st, &p, &e), -ENOSPC);
	print_message("# %s\n", e.msg);
	assert_int_equal(e.code, -ENOSPC);
	assert_non_null(strstr(e.msg, store));
	assert_non_null(strstr(e.msg, env->db));
	assert_non_null(strstr(e.msg, " MB free, a snapshot of "));
	assert_non_null(strstr(e.msg, " may need "));
	assert_non_null(strstr(e.msg, "move the store (-o store=)"));
	assert_int_equal(tu_count_events_detail(st, ev0, "snapshot", 0, NULL,
						 detail, sizeof(detail)), 1);
	assert_non_null(strstr(detail, "MB free"));
	assert_int_equal(tu_count_events(st, ev0, "delete", 1, NULL), 0);

	/* Nothing partial: the same snapshots, all intact. */
	assert_int_equal(snap_store_list(st, &after, &na, &e), 0);
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++)
		assert_memory_equal(&after[i], &before[i], sizeof(after[i]));
	free(before);
	free(after);
	assert_true(present(st, a0.id));
	verify_clean(st);

	/* Small again: the guard makes room (by the policy, a0 may go) and
	 * the snapshot fits; the manual ones are untouched. */
	fresh_content(env->db, 1024);
	assert_int_equal(snap_retention_make_room(st, &p, &e), 0);
	take(st, SNAP_KIND_AUTO, 0, "fits");
	assert_true(present(st, m1.id));
	assert_true(present(st, m2.id));
	verify_clean(st);
}

/*
 * A store opened writable whose filesystem fills up afterwards (a
 * daemon's): a delete still works, by the store's reserve, which the
 * store made after its snapshots and gives back for the change.
 */
static void test_delete_on_a_store_that_filled_up(void **s)
{
	tu_env *env = *s;
	char small[PATH_MAX], store[PATH_MAX], fill[PATH_MAX], res[PATH_MAX];
	struct stat st;
	snap_err e;

	snap_err_clear(&e);
	snap_store *sto = small_store(env, small, store);
	if (!sto)
		return;
	snap_info a = take(sto, SNAP_KIND_MANUAL, 0, "a");
	fresh_content(env->db, 1024);
	take(sto, SNAP_KIND_MANUAL, 0, "b");
	snprintf(res, sizeof(res), "%s/reserve", store);
	assert_int_equal(stat(res, &st), 0);          /* made after them */
	/* Something else fills the filesystem. */
	snprintf(fill, sizeof(fill), "%s/fill", small);
	FILE *f = fopen(fill, "w");
	assert_non_null(f);
	static char block[65536];
	while (fwrite(block, 1, sizeof(block), f) == sizeof(block))
		;
	fclose(f);
	assert_true(fs_free(small) < 65536);
	assert_int_equal(snap_store_delete(sto, a.id, &e), 0);
	assert_false(present(sto, a.id));
	assert_int_not_equal(stat(res, &st), 0);      /* given back */
	verify_clean(sto);
	unlink(fill);
}

#define space_test(f) \
	cmocka_unit_test_setup_teardown(f, tu_setup, space_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_plan_table),
		tu_test(test_plan_of_nothing_is_nothing),
		tu_test(test_plan_long_history_counts_exactly),
		tu_test(test_duration_parse_good_and_bad),
		tu_test(test_duration_format_reads_back),
		tu_test(test_size_parse_good_and_bad),
		tu_test(test_keep_parse_good),
		tu_test(test_keep_parse_bad_names_the_bad_part),
		tu_test(test_keep_format_reads_back),
		tu_test(test_keep_empty),
		tu_test(test_prune_dry_run_changes_nothing_then_run_does_it),
		tu_test(test_prune_with_an_empty_policy_keeps_everything),
		tu_test(test_max_size_takes_the_oldest_automatic_first),
		tu_test(test_max_size_combines_with_the_rules),
		tu_test(test_prune_skips_snapshots_in_the_trash),
		tu_test(test_make_room_is_a_no_op_when_there_is_room),
		space_test(test_make_room_prunes_the_oldest_automatic_snapshots),
		space_test(test_make_room_refuses_when_pruning_cannot_help),
		space_test(test_delete_on_a_store_that_filled_up),
	};
	atexit(unmount_small);
	return cmocka_run_group_tests_name("retention", tests, NULL, NULL);
}
