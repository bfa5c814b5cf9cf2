/*
 * tools/ctl_format.c — sizes, times and ages for people (ctl_format.h).
 * The engine formats durations (snap_duration_format) and ISO times
 * (snap_time_iso); these choose the precision a person wants to read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "snapfs.h"
#include "ctl_format.h"

/* Bytes in binary units: "8192 B", "4.0 KiB". */
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

/* ISO-8601 UTC to the second: the engine's time with the fraction cut. */
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

