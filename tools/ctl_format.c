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

/* Text another user may have chosen (an event's detail naming a file
 * copied into restore/, a conflict snapshot's comment quoting a row)
 * made safe to print on a terminal: every control character (C0, DEL,
 * C1 such as U+009B, the 8-bit CSI) and every byte that is not UTF-8
 * becomes '?', so nothing in it can move the cursor, rewrite what the
 * screen shows or talk to the terminal.  out gets at most cap - 1 bytes. */
const char *ctl_text(const char *s, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	while (*p && o + 1 < cap) {
		unsigned c = *p;
		size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 :
			   (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f :
			      n == 3 ? c & 0x0f : c & 0x07;
		size_t k;

		for (k = 1; k < n && (p[k] & 0xc0) == 0x80; k++)
			cp = (cp << 6) | (p[k] & 0x3f);
		if (n == 0 || k < n || cp < 0x20 || cp == 0x7f ||
		    (cp >= 0x80 && cp < 0xa0) ||
		    (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
		    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp < 0xe000)) {
			out[o++] = '?';
			p += k ? k : 1;
			continue;
		}
		if (o + n >= cap)
			break;
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = '\0';
	return out;
}
