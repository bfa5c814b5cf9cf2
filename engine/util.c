/*
 * engine/util.c — small helpers every floor uses: the time now and as ISO
 * 8601 text, and a SHA-256 as hex.  No state, no SQLite.
 */
#include <stdio.h>
#include <time.h>

#include "util.h"

int64_t snap_time_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void snap_time_iso(int64_t ns, char out[40])
{
	time_t t = (time_t)(ns / 1000000000);
	struct tm tm;
	char b[32];

	gmtime_r(&t, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, 40, "%s.%03dZ", b, (int)((ns / 1000000) % 1000));
}

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
