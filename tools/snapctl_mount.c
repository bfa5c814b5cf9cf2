/*
 * tools/snapctl_mount.c — "-C MOUNTPOINT": the database and the store a
 * snapfs mount serves, read from the daemon's MOUNTPOINT/.snapfs/status.json.
 *
 * The daemon writes the two paths as top-level string fields: "store", and
 * "database" (fs/status.c) or "db" (snap_status_json's name, which the
 * status file may adopt); both spellings are read.  When the daemon
 * schedules snapshots the file may also say "next_snapshot" (an ISO time)
 * and "interval_seconds", which "status" shows; absent or null is fine.
 *
 * Only those few fields are needed, so this is a minimal reader and not a
 * JSON library: it walks the members of the top-level object, skips any
 * other value (nested objects and arrays by depth, strings with their
 * escapes, so a brace inside a string is not counted) and decodes the
 * wanted strings (the escapes json.c writes: \" \\ \n \r \t \uXXXX, plus
 * \/ \b \f, and \uXXXX as UTF-8).  Anything malformed is "not a snapfs
 * status file", never a guess.
 *
 * The strings found stay allocated for the life of the process (the
 * command line points at them), in file-scope variables so a leak checker
 * sees them as reachable.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "snapctl.h"

#define MNT_STATUS_MAX (1 << 20)   /* a status file is a few KiB */

static char *mnt_db;       /* the database path from the status file */
static char *mnt_store;    /* the store directory from it */

/* A cursor over the status text. */
typedef struct mnt_scan {
	const char *p;
	const char *end;
} mnt_scan;

static void mnt_ws(mnt_scan *sc)
{
	while (sc->p < sc->end && isspace((unsigned char)*sc->p))
		sc->p++;
}

/* Append code point cp as UTF-8 to out (cap bytes, *n used). */
static void mnt_utf8(char *out, size_t cap, size_t *n, unsigned cp)
{
	unsigned char b[4];
	size_t k = 0, i;

	if (cp < 0x80) {
		b[k++] = (unsigned char)cp;
	} else if (cp < 0x800) {
		b[k++] = (unsigned char)(0xc0 | cp >> 6);
		b[k++] = (unsigned char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		b[k++] = (unsigned char)(0xe0 | cp >> 12);
		b[k++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[k++] = (unsigned char)(0x80 | (cp & 0x3f));
	} else {
		b[k++] = (unsigned char)(0xf0 | cp >> 18);
		b[k++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		b[k++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		b[k++] = (unsigned char)(0x80 | (cp & 0x3f));
	}
	for (i = 0; i < k && *n + 1 < cap; i++)
		out[(*n)++] = (char)b[i];
}

/* Four hex digits at p into *v; 0 or -1. */
static int mnt_hex4(const char *p, const char *end, unsigned *v)
{
	int i;

	*v = 0;
	if (end - p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		int c = (unsigned char)p[i];

		if (!isxdigit(c))
			return -1;
		*v = *v * 16 + (unsigned)(isdigit(c) ? c - '0' :
					  tolower(c) - 'a' + 10);
	}
	return 0;
}

/*
 * A string at the cursor (which is on its opening quote).  With out, its
 * decoded value goes there (cut at cap - 1 bytes, NUL-terminated); without,
 * it is only skipped.  0 or -1 when malformed.
 */
static int mnt_string(mnt_scan *sc, char *out, size_t cap)
{
	size_t n = 0;

	if (sc->p >= sc->end || *sc->p != '"')
		return -1;
	sc->p++;
	while (sc->p < sc->end && *sc->p != '"') {
		unsigned cp = (unsigned char)*sc->p++;

		if (cp < 0x20)
			return -1;
		if (cp == '\\') {
			if (sc->p >= sc->end)
				return -1;
			switch (*sc->p++) {
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case '/': cp = '/'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'n': cp = '\n'; break;
			case 'r': cp = '\r'; break;
			case 't': cp = '\t'; break;
			case 'u': {
				unsigned lo;

				if (mnt_hex4(sc->p, sc->end, &cp) < 0)
					return -1;
				sc->p += 4;
				if (cp >= 0xd800 && cp < 0xdc00 &&
				    sc->end - sc->p >= 6 && sc->p[0] == '\\' &&
				    sc->p[1] == 'u' &&
				    mnt_hex4(sc->p + 2, sc->end, &lo) == 0 &&
				    lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					     (lo - 0xdc00);
					sc->p += 6;
				}
				if (out)
					mnt_utf8(out, cap, &n, cp);
				continue;
			}
			default:
				return -1;
			}
		}
		if (out && n + 1 < cap)
			out[n++] = (char)cp;
	}
	if (sc->p >= sc->end)
		return -1;
	sc->p++;
	if (out)
		out[n] = '\0';
	return 0;
}

/* Skip one value of any type; 0 or -1 when malformed. */
static int mnt_skip(mnt_scan *sc)
{
	int depth = 0;

	mnt_ws(sc);
	do {
		if (sc->p >= sc->end)
			return -1;
		if (*sc->p == '"') {
			if (mnt_string(sc, NULL, 0) < 0)
				return -1;
		} else if (*sc->p == '{' || *sc->p == '[') {
			depth++;
			sc->p++;
		} else if (*sc->p == '}' || *sc->p == ']') {
			if (depth == 0)
				return -1;
			depth--;
			sc->p++;
		} else if (depth == 0) {
			/* A number or a literal: up to the next delimiter. */
			const char *start = sc->p;

			while (sc->p < sc->end && !strchr(",}] \t\r\n", *sc->p))
				sc->p++;
			return sc->p > start ? 0 : -1;
		} else {
			sc->p++;
		}
	} while (depth > 0);
	return 0;
}

/* "2026-11-22T01:49:00.123Z" to ns since the epoch; 0 when unreadable. */
static int64_t mnt_iso_ns(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0;
	int64_t frac = 0, scale = 100000000;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
		   &n) != 6)
		return 0;
	p = s + n;
	if (*p == '.')
		for (p++; isdigit((unsigned char)*p); p++, scale /= 10)
			frac += (*p - '0') * scale;
	if (*p != 'Z')
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	return (int64_t)timegm(&tm) * 1000000000LL + frac;
}

/*
 * The fields snapctl needs from the status text.  0, or -1 when it is not
 * a JSON object.  Fields absent stay as they were.
 */
static int mnt_parse(const char *text, size_t len, char *db, char *store,
		     size_t cap, ctl_args *a)
{
	mnt_scan sc = { text, text + len };
	char key[64], iso[64];

	mnt_ws(&sc);
	if (sc.p >= sc.end || *sc.p++ != '{')
		return -1;
	mnt_ws(&sc);
	if (sc.p < sc.end && *sc.p == '}')
		return 0;
	for (;;) {
		mnt_ws(&sc);
		if (mnt_string(&sc, key, sizeof(key)) < 0)
			return -1;
		mnt_ws(&sc);
		if (sc.p >= sc.end || *sc.p++ != ':')
			return -1;
		mnt_ws(&sc);
		if (sc.p < sc.end && *sc.p == '"' &&
		    (!strcmp(key, "db") || !strcmp(key, "database"))) {
			if (mnt_string(&sc, db, cap) < 0)
				return -1;
		} else if (sc.p < sc.end && *sc.p == '"' &&
			   !strcmp(key, "store")) {
			if (mnt_string(&sc, store, cap) < 0)
				return -1;
		} else if (sc.p < sc.end && *sc.p == '"' &&
			   !strcmp(key, "next_snapshot")) {
			if (mnt_string(&sc, iso, sizeof(iso)) < 0)
				return -1;
			a->mount_next_ns = mnt_iso_ns(iso);
		} else if (sc.p < sc.end && isdigit((unsigned char)*sc.p) &&
			   !strcmp(key, "interval_seconds")) {
			a->mount_interval_ns = strtoll(sc.p, NULL, 10) *
					       1000000000LL;
			if (mnt_skip(&sc) < 0)
				return -1;
		} else if (mnt_skip(&sc) < 0) {
			return -1;
		}
		mnt_ws(&sc);
		if (sc.p >= sc.end)
			return -1;
		if (*sc.p == '}')
			return 0;
		if (*sc.p++ != ',')
			return -1;
	}
}

/* Read the whole file at path into a NUL-terminated buffer (free()). */
static int mnt_read(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n = 0;
	int e;

	if (!f)
		return -errno;
	buf = malloc(MNT_STATUS_MAX + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, MNT_STATUS_MAX, f);
	e = ferror(f) ? (errno ? errno : EIO) : 0;
	fclose(f);
	if (e) {
		free(buf);
		return -e;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

int ctl_mount_resolve(ctl_args *a)
{
	const char *m = a->mount;
	char *path = NULL, *text = NULL;
	size_t len = 0;
	struct stat st;
	int rc;

	if (stat(m, &st) < 0)
		return ctl_error("-C %s: %s%s", m, strerror(errno),
				 errno == ENOTCONN ? " (the snapfs daemon is "
				 "gone; unmount it with 'fusermount3 -u')" :
				 "");
	if (!S_ISDIR(st.st_mode))
		return ctl_error("-C %s: not a directory, so not a snapfs "
				 "mount point", m);
	if (asprintf(&path, "%s/.snapfs/status.json", m) < 0)
		return ctl_error("out of memory");
	rc = mnt_read(path, &text, &len);
	if (rc == -ENOENT || rc == -ENOTDIR)
		rc = ctl_error("-C %s: not a snapfs mount (no "
			       ".snapfs/status.json there); mount the "
			       "database with snapfs, or use --db FILE", m);
	else if (rc < 0)
		rc = ctl_error("-C %s: cannot read %s: %s", m, path,
			       strerror(-rc));
	if (rc) {
		free(path);
		return rc;
	}
	mnt_db = calloc(1, PATH_MAX);
	mnt_store = calloc(1, PATH_MAX);
	if (!mnt_db || !mnt_store) {
		rc = ctl_error("out of memory");
	} else if (mnt_parse(text, len, mnt_db, mnt_store, PATH_MAX, a) < 0) {
		rc = ctl_error("-C %s: %s is not a snapfs status file (not a "
			       "JSON object); is this a snapfs mount?", m,
			       path);
	} else if (!mnt_db[0] || !mnt_store[0]) {
		rc = ctl_error("-C %s: %s does not name the database and the "
			       "store (no \"db\"/\"database\" or \"store\" "
			       "field); is this a snapfs mount?", m, path);
	} else {
		a->db = mnt_db;
		a->store_dir = mnt_store;
	}
	free(text);
	free(path);
	return rc;
}
