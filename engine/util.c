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

int snap_mountinfo_line(char *line, char **point, char **type, char **src,
			char **opts)
{
	char *sep = strstr(line, " - "), *save;

	if (!sep)
		return -1;
	*sep = '\0';
	*type = strtok_r(sep + 3, " \n", &save);
	*src = strtok_r(NULL, " \n", &save);
	*opts = strtok_r(NULL, " \n", &save);
	strtok_r(line, " ", &save);             /* ID */
	strtok_r(NULL, " ", &save);             /* PARENT */
	strtok_r(NULL, " ", &save);             /* MAJ:MIN */
	strtok_r(NULL, " ", &save);             /* ROOT */
	*point = strtok_r(NULL, " ", &save);
	if (!*type || !*src || !*point)
		return -1;
	snap_octal_unescape(*src);
	snap_octal_unescape(*point);
	return 0;
}

const char *snap_file_kind(mode_t mode)
{
	return S_ISREG(mode) ? "regular file" : S_ISDIR(mode) ? "directory" :
	       S_ISFIFO(mode) ? "pipe" : S_ISSOCK(mode) ? "socket" :
	       S_ISLNK(mode) ? "symbolic link" : "device";
}

/* Text another user may have chosen (an event's detail naming a file
 * copied into restore/, a conflict snapshot's comment quoting a row)
 * made safe to print on a terminal: every control character (C0, DEL,
 * C1 such as U+009B, the 8-bit CSI) and every byte that is not UTF-8
 * becomes '?', so nothing in it can move the cursor, rewrite what the
 * screen shows or talk to the terminal.  out gets at most cap - 1 bytes. */
const char *snap_text_safe(const char *s, char *out, size_t cap)
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
