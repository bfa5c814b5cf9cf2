/*
 * tests/fuzz/fuzz_options.c — option values: durations, sizes, keep rules,
 * and the retention plan that applies them.
 *
 * These are the engine's parsers behind the daemon's -o every=, check=,
 * verify=, keep=, max_size= and snapctl's --keep, --max-size, --warn-age,
 * --crit-age.  The input is the option value up to the first newline (or
 * the whole input); each parser must accept it or answer -EINVAL (keep:
 * with a message), and what one accepts must survive its own formatter:
 *   duration:  parse(format(d)) == d
 *   size:      the max_size= part of snap_keep_format reads back the same
 *   keep:      parse(format(p)) == p, p untouched on failure
 * The bytes after the newline describe up to 64 snapshots (time, id, kind,
 * pinned) for snap_retention_plan() under the policy parsed from the value
 * (or from the next bytes when the value is no keep spec).  The plan must
 * answer every snapshot once, newest first, with a reason; keep every
 * non-candidate; keep exactly min(last, candidates) by last:N; and not
 * depend on the order of its input.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "fuzzutil.h"

#define MAX_SNAPS 64

/* Policies equal in what the parser sets. */
static int policy_same(const snap_keep_policy *a, const snap_keep_policy *b)
{
	return a->last == b->last && a->hourly == b->hourly &&
	       a->daily == b->daily && a->weekly == b->weekly &&
	       a->monthly == b->monthly && a->yearly == b->yearly &&
	       a->within_ns == b->within_ns && a->max_size == b->max_size;
}

static void check_duration(const char *v)
{
	char text[48];
	int64_t ns = -1, back = -1;
	int rc = snap_duration_parse(v, &ns);

	FZ_CHECK(rc == 0 || rc == -EINVAL, "duration \"%s\": %d", v, rc);
	if (rc)
		return;
	FZ_CHECK(ns >= 0, "duration \"%s\" is %" PRId64, v, ns);
	snap_duration_format(ns, text, sizeof(text));
	/* A sub-second rest formats as ms/ns, which only the formatter
	 * writes; the parser's units are whole seconds. */
	if (ns % 1000000000)
		return;
	rc = snap_duration_parse(text, &back);
	FZ_CHECK(rc == 0 && back == ns, "duration \"%s\" = %" PRId64 " ns "
		 "formats as \"%s\", which reads %d/%" PRId64, v, ns, text, rc,
		 back);
}

static void check_size(const char *v)
{
	snap_keep_policy p = { 0 };
	char text[160];
	const char *eq;
	uint64_t bytes = 0, back = 0;
	int rc = snap_size_parse(v, &bytes);

	FZ_CHECK(rc == 0 || rc == -EINVAL, "size \"%s\": %d", v, rc);
	if (rc || bytes == 0)
		return;
	p.max_size = bytes;
	snap_keep_format(&p, text, sizeof(text));
	eq = strstr(text, "max_size=");
	FZ_CHECK(eq != NULL, "size %" PRIu64 " formats as \"%s\"", bytes,
		 text);
	rc = snap_size_parse(eq + 9, &back);
	FZ_CHECK(rc == 0 && back == bytes, "size \"%s\" = %" PRIu64 " formats "
		 "as \"%s\", which reads %d/%" PRIu64, v, bytes, eq + 9, rc,
		 back);
}

/* Parse a keep spec into p (zeroed first); on success check the round
 * trip.  1 when it parsed. */
static int check_keep(const char *v, snap_keep_policy *p)
{
	snap_keep_policy q, before, back;
	char text[512], *sp;
	snap_err err;
	int rc;

	/* Fields the spec does not name, and everything on failure, stay. */
	memset(&q, 0x5a, sizeof(q));
	before = q;
	snap_err_clear(&err);
	rc = snap_keep_parse(v, &q, &err);
	FZ_CHECK(rc == 0 || rc == -EINVAL, "keep \"%s\": %d", v, rc);
	FZ_CHECK_RC(rc, err);
	FZ_CHECK(rc == 0 || memcmp(&q, &before, sizeof(q)) == 0,
		 "keep \"%s\" failed but changed the policy", v);
	FZ_CHECK(q.max_size == before.max_size, "keep \"%s\" set max_size",
		 v);
	if (rc)
		return 0;
	memset(p, 0, sizeof(*p));
	rc = snap_keep_parse(v, p, &err);
	FZ_CHECK(rc == 0, "keep \"%s\" parsed once, not twice", v);
	snap_keep_format(p, text, sizeof(text));
	memset(&back, 0, sizeof(back));
	if (strcmp(text, "none") != 0) {
		sp = strchr(text, ' ');
		if (sp)
			*sp = '\0';
		rc = snap_keep_parse(text, &back, &err);
		FZ_CHECK(rc == 0, "keep \"%s\" formats as \"%s\", which does "
			 "not parse: %s", v, text, err.msg);
	}
	FZ_CHECK(policy_same(p, &back), "keep \"%s\" formats as \"%s\", "
		 "which reads another policy", v, text);
	return 1;
}

/* The plan over snapshots described by the rest of the input. */
static void check_plan(fz_in *in, const snap_keep_policy *p)
{
	static snap_info v[MAX_SNAPS];
	static snap_keep_decision a[MAX_SNAPS], b[MAX_SNAPS];
	size_t n = fz_u8(in) % (MAX_SNAPS + 1), i, cand = 0, bylast = 0;
	int keepall = snap_keep_empty(p);

	for (i = 0; i < n; i++) {
		uint8_t f = fz_u8(in);

		memset(&v[i], 0, sizeof(v[i]));
		v[i].id = (int64_t)(i + 1);
		/* Mostly near each other (buckets), sometimes anywhere,
		 * the extremes included. */
		if (f & 0x80)
			v[i].created_ns = (int64_t)fz_u64(in);
		else
			v[i].created_ns = 1700000000000000000LL +
				(int64_t)fz_u32(in) * 1000000000LL;
		v[i].kind = (snap_kind)((f & 0x0f) % (SNAP_KIND_COUNT + 1));
		v[i].pinned = (f >> 4) & 1;
		snprintf(v[i].name, sizeof(v[i].name), "s%zu", i);
		if (!v[i].pinned && (v[i].kind == SNAP_KIND_AUTO ||
				     v[i].kind == SNAP_KIND_PRE_RESTORE))
			cand++;
	}
	snap_retention_plan(v, n, p, a);
	for (i = 0; i < n; i++) {
		const snap_keep_decision *d = &a[i];
		int c = !d->info.pinned && (d->info.kind == SNAP_KIND_AUTO ||
			d->info.kind == SNAP_KIND_PRE_RESTORE);

		FZ_CHECK(d->reason[0] != '\0', "snapshot %s has no reason",
			 d->info.name);
		FZ_CHECK(c || d->keep, "non-candidate %s pruned (%s)",
			 d->info.name, d->reason);
		FZ_CHECK(!keepall || d->keep, "empty policy prunes %s",
			 d->info.name);
		if (i)
			FZ_CHECK(a[i - 1].info.created_ns > d->info.created_ns ||
				 (a[i - 1].info.created_ns == d->info.created_ns &&
				  a[i - 1].info.id > d->info.id),
				 "plan not newest first at %zu", i);
		if (strncmp(d->reason, "last ", 5) == 0)
			bylast++;
	}
	if (!keepall && p->last > 0)
		FZ_CHECK(bylast == (cand < (size_t)p->last ? cand :
				    (size_t)p->last),
			 "last:%d kept %zu of %zu candidates", p->last, bylast,
			 cand);
	/* The same snapshots in reverse order: the same plan. */
	for (i = 0; i < n / 2; i++) {
		snap_info t = v[i];
		v[i] = v[n - 1 - i];
		v[n - 1 - i] = t;
	}
	snap_retention_plan(v, n, p, b);
	for (i = 0; i < n; i++)
		FZ_CHECK(a[i].info.id == b[i].info.id && a[i].keep == b[i].keep &&
			 strcmp(a[i].reason, b[i].reason) == 0,
			 "plan depends on input order at %zu", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char v[512];
	snap_keep_policy p;
	fz_in in;
	size_t n;

	for (n = 0; n < size && n < sizeof(v) - 1 && data[n] != '\n' &&
	     data[n]; n++)
		v[n] = (char)data[n];
	v[n] = '\0';
	while (n < size && data[n] != '\n')
		n++;
	fz_in_init(&in, data + n + (n < size), size - n - (n < size));

	check_duration(v);
	check_size(v);
	if (!check_keep(v, &p)) {
		memset(&p, 0, sizeof(p));
		p.last = fz_u8(&in) % 8;
		p.hourly = fz_u8(&in) % 8;
		p.daily = fz_u8(&in) % 8;
		p.weekly = fz_u8(&in) % 8;
		p.monthly = fz_u8(&in) % 8;
		p.yearly = fz_u8(&in) % 8;
		p.within_ns = (int64_t)(fz_u32(&in) % 1000) * 3600000000000LL;
	}
	check_plan(&in, &p);
	return 0;
}
