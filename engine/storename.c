/*
 * engine/storename.c — snapshot names and labels: a name is
 * "<time>_<label>[-N].db", unique in the store; labels are sanitized so
 * that a name is always a safe file name in snapshots/; relabel and rename
 * change them, with their event, in one transaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "anchor.h"
#include "codec.h"
#include "store_int.h"
#include "sys.h"

/* The label `in` made safe for a name (rules in store.h); fallback when
 * empty. */
void snap_label_sanitize(const char *in, const char *fallback,
			 char out[SNAP_LABEL_MAX + 1])
{
	size_t n = 0, len = in ? strlen(in) : 0;
	const char *p;

	/* "before-migration.db" labels "before-migration". */
	if (len >= 3 && strcmp(in + len - 3, ".db") == 0)
		len -= 3;
	for (p = in; p && p < in + len && n < SNAP_LABEL_MAX; p++) {
		char c = *p;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '_' ||
			 c == '-';
		out[n++] = ok ? c : '-';
	}
	/* Nor a trailing ".db" the mapping or the cut made ("x\xff.db.db"
	 * gives "x-.db"): the name adds ".db", and a label sanitized again
	 * must stay as it is. */
	while (n >= 3 && memcmp(out + n - 3, ".db", 3) == 0)
		n -= 3;
	/* No leading dots: a label never makes a hidden name. */
	while (n && out[0] == '.') {
		memmove(out, out + 1, --n);
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, SNAP_LABEL_MAX + 1, "%s", fallback);
}

/* The time part of a snapshot's name: "2026-11-22T014900Z". */
static void store_stamp(int64_t created_ns, char out[32])
{
	time_t t = (time_t)(created_ns / 1000000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H%M%SZ", &tm);
}

/* 1 when another snapshot than id is called name; negative on error. */
static int store_name_taken(sqlite3 *db, const char *name, int64_t id,
			    snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM snapshots WHERE name=? "
				    "AND id<>?", -1, &st, NULL);

	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, id);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return snap_err_sqlite(err, db, rc, "cannot look up snapshot %s",
			       name);
}

/* A name "<time>_<label>[-N].db" that no other snapshot has, or want. */
int snap_store_unique_name(sqlite3 *db, int64_t created_ns, const char *label,
			   const char *want, int64_t exclude_id,
			   char out[SNAP_NAME_MAX], snap_err *err)
{
	char stamp[32];
	int rc = 0, k;

	if (want && snap_store_name_check(want, NULL) == 0) {
		rc = store_name_taken(db, want, exclude_id, err);
		if (rc <= 0) {
			snprintf(out, SNAP_NAME_MAX, "%s", want);
			return rc;
		}
	}
	store_stamp(created_ns, stamp);
	for (k = 1; k < 100000; k++) {
		if (k == 1)
			snprintf(out, SNAP_NAME_MAX, "%s_%s.db", stamp, label);
		else
			snprintf(out, SNAP_NAME_MAX, "%s_%s-%d.db", stamp,
				 label, k);
		rc = store_name_taken(db, out, exclude_id, err);
		if (rc <= 0)
			break;
	}
	return rc < 0 ? rc : 0;
}

/* The number of bytes of the valid UTF-8 sequence at p (1-4), or 0. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n, i;
	uint32_t c;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		c = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		c = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates, past U+10FFFF. */
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	return n;
}

/* 0 when name can be a snapshot's exact name; -EINVAL saying why not. */
int snap_store_name_check(const char *name, snap_err *err)
{
	static const char *const reserved[] = {
		"latest.db",    /* the newest snapshot (snap_store_find) */
		"live.db",      /* snapctl diff's words for the live database */
		"current.db",
	};
	const unsigned char *p;
	size_t len = strlen(name), i, n;

	if (len >= SNAP_NAME_MAX)
		return snap_err_set(err, -ENAMETOOLONG, "\"%.40s...\" cannot "
				    "be a snapshot's name: it is %zu bytes "
				    "long, at most %d are allowed", name, len,
				    SNAP_NAME_MAX - 1);
	if (len <= 3 || strcmp(name + len - 3, ".db") != 0)
		return snap_err_set(err, -EINVAL, "\"%s\" cannot be a "
				    "snapshot's name: a snapshot's name ends in "
				    ".db (try \"%s.db\")", name, name);
	if (len >= 6 && memcmp(name + len - 6, ".db.db", 6) == 0)
		return snap_err_set(err, -EINVAL, "\"%s\" cannot be a "
				    "snapshot's name: \"%.*s\" would then name "
				    "another snapshot (the .db of a name is "
				    "optional)", name, (int)len - 3, name);
	if (name[0] == '.')
		return snap_err_set(err, -EINVAL, "\"%s\" cannot be a "
				    "snapshot's name: a name beginning with a "
				    "dot is hidden from listings", name);
	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
		if (strcmp(name, reserved[i]) == 0)
			return snap_err_set(err, -EINVAL, "\"%s\" cannot be "
					    "a snapshot's name: \"%.*s\" "
					    "means %s", name, (int)len - 3,
					    name, i == 0 ? "the newest "
					    "snapshot" : "the live database");
	for (p = (const unsigned char *)name; *p; p += n) {
		n = *p < 0x20 || *p == 0x7f || *p == '/' ? 0 : utf8_len(p);
		if (n == 0)
			return snap_err_set(err, -EINVAL, "\"%s\" cannot be a "
					    "snapshot's name: byte %zu (0x%02x) "
					    "is a control character, a slash "
					    "or not UTF-8", name,
					    (size_t)(p - (const unsigned char *)
						     name), *p);
	}
	return 0;
}

/* The label an exact name gives: the name without ".db" and without the
 * snapshot's own time prefix, sanitized. */
static void store_label_of_name(const snap_info *si, const char *name,
				char out[SNAP_LABEL_MAX + 1])
{
	char stem[SNAP_NAME_MAX], stamp[32];
	size_t plen;

	snprintf(stem, sizeof(stem), "%s", name);
	stem[strlen(stem) - 3] = '\0';             /* name ends in ".db" */
	store_stamp(si->created_ns, stamp);
	plen = strlen(stamp);
	if (strncmp(stem, stamp, plen) == 0 && stem[plen] == '_' &&
	    stem[plen + 1])
		memmove(stem, stem + plen + 1, strlen(stem + plen + 1) + 1);
	snap_label_sanitize(stem, snap_kind_name(si->kind), out);
}

/*
 * Give snapshot id a new name and label, in one transaction, and record
 * the event: relabel (exact NULL: "<its time>_<label>.db", made unique)
 * or rename (exact: that name, -EEXIST when another snapshot has it).
 */
static int store_name_set(snap_store *s, int64_t id, const char *label,
			  const char *exact, snap_info *out, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	snap_info si;
	char clean[SNAP_LABEL_MAX + 1], name[SNAP_NAME_MAX], old[SNAP_NAME_MAX];
	char detail[SNAP_NAME_MAX * 2 + 16];
	int rc;

	if (exact && (rc = snap_store_name_check(exact, err)))
		return rc;
	if ((rc = snap_store_txn_begin(s, err)))
		return rc;
	rc = snap_store_get_db(s->db, id, &si, err);
	if (!rc) {
		snprintf(old, sizeof(old), "%s", si.name);
		if (!exact) {
			snap_label_sanitize(label, snap_kind_name(si.kind),
					    clean);
			rc = snap_store_unique_name(s->db, si.created_ns,
						    clean, NULL, id, name,
						    err);
		} else {
			snprintf(name, sizeof(name), "%s", exact);
			store_label_of_name(&si, exact, clean);
			rc = store_name_taken(s->db, exact, id, err);
			if (rc > 0)
				rc = snap_err_set(err, -EEXIST, "cannot rename "
						  "snapshot %s to %s: another "
						  "snapshot has that name "
						  "(delete or rename it first)",
						  si.name, exact);
		}
	}
	if (!rc) {
		rc = sqlite3_prepare_v2(s->db, "UPDATE snapshots SET name=?, "
					"label=? WHERE id=?", -1, &st, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, clean, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 3, id);
			rc = sqlite3_step(st);
		}
		rc = rc == SQLITE_DONE ? 0 : snap_err_sqlite(err, s->db, rc,
			"cannot %s snapshot %s", exact ? "rename" : "relabel",
			si.name);
		sqlite3_finalize(st);
	}
	if ((rc = snap_store_txn_end(s->db, rc, err)))
		goto out;
	snprintf(detail, sizeof(detail), "renamed from %s", old);
	snap_event_add_db(s->db, exact ? "rename" : "relabel", name, 1,
			  detail);
	if (out)
		rc = snap_store_get_db(s->db, id, out, err);
out:
	snap_store_unlock(s);
	return rc;
}

/* New label; the name keeps its time prefix and stays unique. */
int snap_store_relabel(snap_store *s, int64_t id, const char *label,
		       snap_info *out, snap_err *err)
{
	return store_name_set(s, id, label, NULL, out, err);
}

/* The exact name `name`; -EEXIST when another snapshot has it. */
int snap_store_rename(snap_store *s, int64_t id, const char *name,
		      snap_info *out, snap_err *err)
{
	return store_name_set(s, id, NULL, name, out, err);
}
