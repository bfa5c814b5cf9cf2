/*
 * engine/util.c — small helpers every floor uses: the time now and as ISO
 * 8601 text, a SHA-256 as hex, growing an array, mountinfo's escapes and
 * a file's kind in words.  No state, no SQLite.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "util.h"

/* The current UTC time in nanoseconds. */
int64_t snap_time_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ns as "2026-11-22T01:49:00.123Z" (ISO 8601, UTC). */
void snap_time_iso(int64_t ns, char out[40])
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	char b[32];

	gmtime_r(&t, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%03dZ", b, (int)((ns / 1000000) % 1000));
}

/* Lowercase hex of a SHA-256. */
void snap_hex(const uint8_t sha[32], char out[65])
{
	static const char d[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 32; i++) {
		out[2 * i] = d[sha[i] >> 4];
		out[2 * i + 1] = d[sha[i] & 15];
	}
	out[64] = '\0';
}

/* Room for one more element in a growable array (see util.h). */
int snap_array_grow(void *array, size_t *cap, size_t n, size_t size,
		    size_t first)
{
	void *v, *nv;
	size_t c;

	if (n < *cap)
		return 0;
	c = *cap ? 2 * *cap : first;
	if (c < *cap || c > SIZE_MAX / size)
		return -ENOMEM;
	memcpy(&v, array, sizeof(v));
	nv = realloc(v, c * size);
	if (!nv)
		return -ENOMEM;
	memcpy(array, &nv, sizeof(nv));
	*cap = c;
	return 0;
}

void snap_octal_unescape(char *s)
{
	char *w = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

const char *snap_file_kind(mode_t mode)
{
	return S_ISREG(mode) ? "regular file" : S_ISDIR(mode) ? "directory" :
	       S_ISFIFO(mode) ? "pipe" : S_ISSOCK(mode) ? "socket" :
	       S_ISLNK(mode) ? "symbolic link" : "device";
}
