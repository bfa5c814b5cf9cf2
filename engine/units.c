/*
 * engine/units.c — durations ("1h30m", "7d") and sizes ("10M", "2GiB") as
 * users write them in options and keep specs, read and written back: the
 * daemon's options, snapctl and the retention rules all parse through here.
 * Pure functions, no state.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "units.h"

#define NS_PER_SEC 1000000000LL

/* Duration units, largest first (the formatter's order). */
static const struct {
	char unit;
	int64_t ns;
} dur_units[] = {
	{ 'w', 7 * 86400 * NS_PER_SEC },
	{ 'd', 86400 * NS_PER_SEC },
	{ 'h', 3600 * NS_PER_SEC },
	{ 'm', 60 * NS_PER_SEC },
	{ 's', NS_PER_SEC },
};
#define NDUR (sizeof(dur_units) / sizeof(dur_units[0]))

/* Decimal digits at *p into *v, *p past them; -EINVAL on none or overflow. */
int snap_digits_parse(const char **p, uint64_t *v)
{
	const char *s = *p;
	uint64_t x = 0;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -EINVAL;
		x = x * 10 + d;
	}
	*p = s;
	*v = x;
	return 0;
}

/* "1h30m" and the like into nanoseconds; -EINVAL (see units.h). */
int snap_duration_parse(const char *s, int64_t *ns)
{
	uint64_t total = 0, v;
	size_t u;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	while (*s) {
		if (snap_digits_parse(&s, &v))
			return -EINVAL;
		for (u = 0; u < NDUR && dur_units[u].unit != *s; u++)
			;
		if (u == NDUR)
			return -EINVAL;     /* no unit, or an unknown one */
		s++;
		if (v > (uint64_t)INT64_MAX / (uint64_t)dur_units[u].ns)
			return -EINVAL;
		v *= (uint64_t)dur_units[u].ns;
		if (v > (uint64_t)INT64_MAX - total)
			return -EINVAL;
		total += v;
	}
	*ns = (int64_t)total;
	return 0;
}

/* ns as the shortest text snap_duration_parse reads back. */
void snap_duration_format(int64_t ns, char *out, size_t cap)
{
	size_t len = 0, u;
	uint64_t rest;

	if (cap == 0)
		return;
	out[0] = '\0';
	if (ns <= 0) {
		snprintf(out, cap, "0s");
		return;
	}
	rest = (uint64_t)ns;
	for (u = 0; u < NDUR && len < cap; u++) {
		uint64_t q = rest / (uint64_t)dur_units[u].ns;
		if (q == 0)
			continue;
		rest -= q * (uint64_t)dur_units[u].ns;
		len += (size_t)snprintf(out + len, cap - len, "%" PRIu64 "%c",
					q, dur_units[u].unit);
	}
	if (rest % 1000000 && len < cap)
		snprintf(out + len, cap - len, "%" PRIu64 "ns", rest);
	else if (rest && len < cap)
		snprintf(out + len, cap - len, "%" PRIu64 "ms", rest / 1000000);
}

/* "10M", "2GiB", plain bytes into bytes; -EINVAL (see units.h). */
int snap_size_parse(const char *s, uint64_t *bytes)
{
	static const char units[] = "KMGTP";
	uint64_t v, mul = 1;
	const char *u;

	if (s == NULL || snap_digits_parse(&s, &v))
		return -EINVAL;
	if (*s && (u = strchr(units, toupper((unsigned char)*s))) != NULL) {
		ptrdiff_t k;
		for (k = 0; k <= u - units; k++)
			mul *= 1024;
		s++;
		if (*s == 'i' || *s == 'I')
			s++;
		if (*s == 'B' || *s == 'b')
			s++;
		else if (s[-1] == 'i' || s[-1] == 'I')
			return -EINVAL;        /* "10Mi" */
	} else if (*s == 'B' || *s == 'b') {
		s++;
	}
	if (*s != '\0' || (mul > 1 && v > UINT64_MAX / mul))
		return -EINVAL;
	*bytes = v * mul;
	return 0;
}

/* Bytes as the largest binary unit that divides them. */
void snap_size_format(uint64_t b, char *out, size_t cap)
{
	static const char units[] = "KMGTP";
	int u = -1;

	while (b && u < 4 && b % 1024 == 0) {
		b /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(out, cap, "%" PRIu64, b);
	else
		snprintf(out, cap, "%" PRIu64 "%c", b, units[u]);
}
