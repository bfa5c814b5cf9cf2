/*
 * engine/keep.c — the keep rules of a retention policy (restic's forget,
 * sanoid): the policy as text, read and written back, and the plan of which
 * snapshots the rules keep; see retention.h for the contract.  Pure: no
 * store, no I/O.  Applying a plan (pruning, max_size, the free-space
 * guard) is retention.c.
 *
 * Planning is pure.  snap_retention_plan() sorts a copy of the snapshots
 * newest first (created_ns, then id, descending: equal timestamps are
 * ordered by id so the plan never depends on the caller's order), marks the
 * non-candidates (manual, import, conflict, recovery, pinned, and any kind
 * this code does not know) as kept, and walks the candidates once.  Each
 * bucket rule keeps a candidate when it still has count left and the
 * candidate's bucket differs from the bucket of the rule's previous keep;
 * since the walk goes newest first, that keeps the newest snapshot of each
 * of the N newest buckets that hold candidates, and empty periods cost
 * nothing (restic's semantics).  Buckets are UTC calendar periods computed
 * from created_ns with floor division, so times before 1970 work too; the
 * ISO week is the week of the Thursday of the snapshot's Monday-to-Sunday
 * week, which gives ISO 8601's week-numbering year at the boundaries
 * (2021-01-03 is 2020-W53, 2024-12-30 is 2025-W01).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "retention.h"
#include "units.h"

#define NS_PER_SEC 1000000000LL

/* The count rules, in reason order; field offsets into the policy. */
enum { R_LAST, R_HOURLY, R_DAILY, R_WEEKLY, R_MONTHLY, R_YEARLY, R_COUNT };
static const char *const rule_names[R_COUNT] = {
	"last", "hourly", "daily", "weekly", "monthly", "yearly",
};

/* The policy's count for rule r. */
static int *rule_count(snap_keep_policy *p, int r)
{
	switch (r) {
	case R_LAST:    return &p->last;
	case R_HOURLY:  return &p->hourly;
	case R_DAILY:   return &p->daily;
	case R_WEEKLY:  return &p->weekly;
	case R_MONTHLY: return &p->monthly;
	default:        return &p->yearly;
	}
}

/* The policy's count for rule r, read-only. */
static int rule_get(const snap_keep_policy *p, int r)
{
	return *rule_count((snap_keep_policy *)p, r);
}

/*
 * One "name:value" part of a keep spec (part, len bytes) into q; seen
 * flags rules already given.  -EINVAL with a message quoting the part.
 */
static int keep_parse_part(const char *part, size_t len, snap_keep_policy *q,
			   unsigned *seen, snap_err *err)
{
	char buf[128], *val;
	const char *name;
	uint64_t v;
	const char *d;
	int r;

	if (len == 0)
		return snap_err_set(err, -EINVAL, "keep: an empty rule (two "
				    "commas, or one at an end); write rules "
				    "as last:N,daily:N,within:7d");
	if (len >= sizeof(buf))
		return snap_err_set(err, -EINVAL, "keep: rule \"%.40s...\" is "
				    "too long", part);
	memcpy(buf, part, len);
	buf[len] = '\0';
	val = strchr(buf, ':');
	if (val == NULL)
		return snap_err_set(err, -EINVAL, "keep: \"%s\" is not "
				    "RULE:VALUE (e.g. daily:7 or within:2d)",
				    buf);
	*val++ = '\0';
	/* restic's and the first design's spelling: keep-last:N, ...,
	 * keep-within:D name the same rules (messages quote the part as
	 * written: buf). */
	name = strncmp(buf, "keep-", 5) == 0 ? buf + 5 : buf;
	for (r = 0; r < R_COUNT && strcmp(name, rule_names[r]) != 0; r++)
		;
	if (r == R_COUNT && strcmp(name, "within") != 0)
		return snap_err_set(err, -EINVAL, "keep: unknown rule \"%s\" "
				    "(rules: last, hourly, daily, weekly, "
				    "monthly, yearly, within)", buf);
	if (*seen & (1u << r))
		return snap_err_set(err, -EINVAL, "keep: rule \"%s\" is given "
				    "twice", buf);
	*seen |= 1u << r;
	if (r == R_COUNT) {
		if (snap_duration_parse(val, &q->within_ns))
			return snap_err_set(err, -EINVAL, "keep: \"%s:%s\": "
					    "\"%s\" is not a duration (e.g. "
					    "within:36h, within:1w, within:"
					    "1h30m; units w d h m s)", buf,
					    val, val);
		return 0;
	}
	d = val;
	if (snap_digits_parse(&d, &v) || *d != '\0' || v > INT_MAX)
		return snap_err_set(err, -EINVAL, "keep: \"%s:%s\": \"%s\" is "
				    "not a count (a whole number from 0 to "
				    "%d, e.g. %s:7)", buf, val, val, INT_MAX,
				    buf);
	*rule_count(q, r) = (int)v;
	return 0;
}

/* A keep spec ("last:3,daily:7") into p; -EINVAL naming the bad part. */
int snap_keep_parse(const char *spec, snap_keep_policy *p, snap_err *err)
{
	snap_keep_policy q = *p;
	unsigned seen = 0;
	const char *s, *comma;
	int rc = 0;

	if (spec == NULL || *spec == '\0')
		return snap_err_set(err, -EINVAL, "keep: empty rule list; "
				    "write rules as last:N,daily:N,within:7d");
	for (s = spec; !rc; s = comma + 1) {
		comma = strchr(s, ',');
		if (comma == NULL)
			comma = s + strlen(s);
		rc = keep_parse_part(s, (size_t)(comma - s), &q, &seen, err);
		if (*comma == '\0')
			break;
	}
	if (rc == 0)
		*p = q;
	return rc;
}

/* 1 when no keep rule is set (max_size is not one). */
int snap_keep_empty(const snap_keep_policy *p)
{
	int r;

	for (r = 0; r < R_COUNT; r++)
		if (rule_get(p, r) > 0)
			return 0;
	return p->within_ns <= 0;
}

/* p as the text snap_keep_parse reads back. */
void snap_keep_format(const snap_keep_policy *p, char *out, size_t cap)
{
	size_t len = 0;
	char tmp[48];
	int r;

	if (cap == 0)
		return;
	out[0] = '\0';
	for (r = 0; r < R_COUNT && len < cap; r++)
		if (rule_get(p, r) > 0)
			len += (size_t)snprintf(out + len, cap - len, "%s%s:%d",
						len ? "," : "", rule_names[r],
						rule_get(p, r));
	if (p->within_ns > 0 && len < cap) {
		snap_duration_format(p->within_ns, tmp, sizeof(tmp));
		len += (size_t)snprintf(out + len, cap - len, "%swithin:%s",
					len ? "," : "", tmp);
	}
	if (p->max_size && len < cap) {
		snap_size_format(p->max_size, tmp, sizeof(tmp));
		len += (size_t)snprintf(out + len, cap - len, "%smax_size=%s",
					len ? " " : "", tmp);
	}
	if (len == 0)
		snprintf(out, cap, "none");
}

/* ------------------------------------------------------------------ */
/* planning                                                            */

/* 1 when rules may prune the snapshot: auto or pre-restore, not pinned,
 * not in the trash (engine/trash.h: only emptying the trash removes it). */
int snap_keep_candidate(const snap_info *si)
{
	return !si->pinned && si->trash == SNAP_TRASH_NONE &&
	       (si->kind == SNAP_KIND_AUTO ||
		si->kind == SNAP_KIND_PRE_RESTORE);
}

/* Newest first: created_ns descending, then id descending. */
static int newest_first(const void *a, const void *b)
{
	const snap_info *x = &((const snap_keep_decision *)a)->info;
	const snap_info *y = &((const snap_keep_decision *)b)->info;

	if (x->created_ns != y->created_ns)
		return x->created_ns > y->created_ns ? -1 : 1;
	if (x->id != y->id)
		return x->id > y->id ? -1 : 1;
	return 0;
}

/* UTC broken-down time of ns (floor to the second, so negative works). */
static void utc_tm(int64_t ns, struct tm *tm)
{
	int64_t sec = ns / NS_PER_SEC;
	time_t t;

	if (ns % NS_PER_SEC < 0)
		sec--;
	t = (time_t)sec;
	memset(tm, 0, sizeof(*tm));
	gmtime_r(&t, tm);
}

/*
 * The bucket of ns for bucket rule r (R_HOURLY .. R_YEARLY) as a number
 * that grows with time, and its label ("2026-11-20-14", "2026-W47").
 */
static int64_t bucket_key(int r, int64_t ns, char *label, size_t cap)
{
	struct tm tm;
	int64_t y, mo, d, h;

	if (r == R_WEEKLY) {
		/* The Thursday of this Monday-to-Sunday week decides. */
		int64_t sec = ns / NS_PER_SEC - (ns % NS_PER_SEC < 0);
		int64_t days = sec / 86400 - (sec % 86400 < 0);
		int64_t mon0 = ((days + 3) % 7 + 7) % 7;  /* 1970-01-01: Thu */
		int64_t week;

		utc_tm((days - mon0 + 3) * 86400 * NS_PER_SEC, &tm);
		y = tm.tm_year + 1900;
		week = tm.tm_yday / 7 + 1;
		snprintf(label, cap, "%04" PRId64 "-W%02" PRId64, y, week);
		return y * 100 + week;
	}
	utc_tm(ns, &tm);
	y = tm.tm_year + 1900;
	mo = tm.tm_mon + 1;
	d = tm.tm_mday;
	h = tm.tm_hour;
	switch (r) {
	case R_HOURLY:
		snprintf(label, cap, "%04" PRId64 "-%02" PRId64 "-%02" PRId64
			 "-%02" PRId64, y, mo, d, h);
		return ((y * 100 + mo) * 100 + d) * 100 + h;
	case R_DAILY:
		snprintf(label, cap, "%04" PRId64 "-%02" PRId64 "-%02" PRId64,
			 y, mo, d);
		return (y * 100 + mo) * 100 + d;
	case R_MONTHLY:
		snprintf(label, cap, "%04" PRId64 "-%02" PRId64, y, mo);
		return y * 100 + mo;
	default:
		snprintf(label, cap, "%04" PRId64, y);
		return y;
	}
}

/* Append ", text" (or text when the reason is empty), truncating. */
void snap_keep_reason_add(snap_keep_decision *d, const char *fmt, ...)
{
	size_t len = strlen(d->reason);
	va_list ap;

	if (len && len + 2 < sizeof(d->reason)) {
		memcpy(d->reason + len, ", ", 3);
		len += 2;
	}
	if (len + 1 >= sizeof(d->reason))
		return;
	va_start(ap, fmt);
	vsnprintf(d->reason + len, sizeof(d->reason) - len, fmt, ap);
	va_end(ap);
}

/* Which of v the rules keep, and why, newest first; touches nothing. */
void snap_retention_plan(const snap_info *v, size_t n,
			 const snap_keep_policy *p, snap_keep_decision *out)
{
	int left[R_COUNT], have_last[R_COUNT] = { 0 };
	int64_t last_key[R_COUNT] = { 0 }, newest = 0;
	int empty = snap_keep_empty(p), have_newest = 0, r;
	char label[32], within[48];
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].info = v[i];
	}
	if (n > 1)
		qsort(out, n, sizeof(*out), newest_first);
	for (r = 0; r < R_COUNT; r++)
		left[r] = rule_get(p, r) > 0 ? rule_get(p, r) : 0;
	snap_duration_format(p->within_ns, within, sizeof(within));

	for (i = 0; i < n; i++) {
		snap_keep_decision *d = &out[i];
		const snap_info *si = &d->info;

		d->keep = 1;
		if (!snap_keep_candidate(si)) {
			if (si->trash != SNAP_TRASH_NONE)
				snap_keep_reason_add(d, "in the trash: kept until the "
						     "trash is emptied");
			else if (si->pinned)
				snap_keep_reason_add(d, "pinned");
			else
				snap_keep_reason_add(d, "%s: never pruned automatically",
						     snap_kind_name(si->kind));
			continue;
		}
		if (empty) {
			snap_keep_reason_add(d, "no retention policy");
			continue;
		}
		if (!have_newest) {
			newest = si->created_ns;   /* the newest candidate */
			have_newest = 1;
		}
		d->keep = 0;
		if (left[R_LAST] > 0) {
			left[R_LAST]--;
			d->keep = 1;
			snap_keep_reason_add(d, "last %d/%d", p->last - left[R_LAST],
					     p->last);
		}
		for (r = R_HOURLY; r < R_COUNT; r++) {
			int64_t key;
			if (left[r] <= 0)
				continue;
			key = bucket_key(r, si->created_ns, label,
					 sizeof(label));
			if (have_last[r] && key == last_key[r])
				continue;
			have_last[r] = 1;
			last_key[r] = key;
			left[r]--;
			d->keep = 1;
			snap_keep_reason_add(d, "%s %s", rule_names[r], label);
		}
		/* created <= newest here, so the unsigned difference is the
		 * true age even where a signed one would overflow. */
		if (p->within_ns > 0 && (uint64_t)newest -
		    (uint64_t)si->created_ns < (uint64_t)p->within_ns) {
			d->keep = 1;
			snap_keep_reason_add(d, "within %s", within);
		}
		if (!d->keep)
			snap_keep_reason_add(d, "no rule keeps it");
	}
}
