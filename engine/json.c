/*
 * engine/json.c — a minimal JSON writer.  Enough for arrays and objects of
 * strings, integers and booleans, with correct escaping; nothing parses.
 * Field names of snap_json_info/snap_json_event are part of the contract
 * scripts rely on (snapctl --json, .snapfs/status.json).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

void snap_json_init(snap_json *j)
{
	memset(j, 0, sizeof(*j));
}

void snap_json_free(snap_json *j)
{
	free(j->buf);
	snap_json_init(j);
}

/* Append n bytes, growing the buffer; sets oom on failure. */
static void put(snap_json *j, const char *s, size_t n)
{
	if (j->oom)
		return;
	if (j->len + n + 1 > j->cap) {
		size_t cap = j->cap ? j->cap : 256;
		char *b;

		while (cap < j->len + n + 1)
			cap *= 2;
		b = realloc(j->buf, cap);
		if (!b) {
			j->oom = 1;
			return;
		}
		j->buf = b;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, s, n);
	j->len += n;
	j->buf[j->len] = '\0';
}

static void puts_(snap_json *j, const char *s)
{
	put(j, s, strlen(s));
}

/* Before a value: a comma when one came before at this level. */
static void sep(snap_json *j)
{
	if (j->need_comma)
		put(j, ",", 1);
	j->need_comma = 1;
}

void snap_json_obj_begin(snap_json *j)
{
	sep(j);
	put(j, "{", 1);
	j->need_comma = 0;
}

void snap_json_obj_end(snap_json *j)
{
	put(j, "}", 1);
	j->need_comma = 1;
}

void snap_json_arr_begin(snap_json *j)
{
	sep(j);
	put(j, "[", 1);
	j->need_comma = 0;
}

void snap_json_arr_end(snap_json *j)
{
	put(j, "]", 1);
	j->need_comma = 1;
}

/* Write s as a quoted, escaped JSON string. */
static void quoted(snap_json *j, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char u[8];

	put(j, "\"", 1);
	for (; *p; p++) {
		switch (*p) {
		case '"': puts_(j, "\\\""); break;
		case '\\': puts_(j, "\\\\"); break;
		case '\n': puts_(j, "\\n"); break;
		case '\r': puts_(j, "\\r"); break;
		case '\t': puts_(j, "\\t"); break;
		default:
			if (*p < 0x20) {
				snprintf(u, sizeof(u), "\\u%04x", *p);
				puts_(j, u);
			} else {
				put(j, (const char *)p, 1);
			}
		}
	}
	put(j, "\"", 1);
}

void snap_json_key(snap_json *j, const char *k)
{
	sep(j);
	quoted(j, k);
	put(j, ":", 1);
	j->need_comma = 0;
}

void snap_json_str(snap_json *j, const char *v)
{
	sep(j);
	quoted(j, v ? v : "");
}

void snap_json_int(snap_json *j, int64_t v)
{
	char b[32];

	sep(j);
	snprintf(b, sizeof(b), "%" PRId64, v);
	puts_(j, b);
}

void snap_json_bool(snap_json *j, int v)
{
	sep(j);
	puts_(j, v ? "true" : "false");
}

void snap_json_null(snap_json *j)
{
	sep(j);
	puts_(j, "null");
}

void snap_json_raw(snap_json *j, const char *json_text)
{
	sep(j);
	puts_(j, json_text);
}

void snap_json_info(snap_json *j, const snap_info *si)
{
	char t[40], hex[65];

	snap_time_iso(si->created_ns, t);
	snap_hex(si->sha256, hex);
	snap_json_obj_begin(j);
	snap_json_key(j, "name"); snap_json_str(j, si->name);
	snap_json_key(j, "label"); snap_json_str(j, si->label);
	snap_json_key(j, "kind"); snap_json_str(j, snap_kind_name(si->kind));
	snap_json_key(j, "created"); snap_json_str(j, t);
	snap_json_key(j, "created_ns"); snap_json_int(j, si->created_ns);
	snap_json_key(j, "size"); snap_json_int(j, (int64_t)si->image_size);
	snap_json_key(j, "page_size"); snap_json_int(j, si->page_size);
	snap_json_key(j, "page_count"); snap_json_int(j, si->page_count);
	snap_json_key(j, "sha256"); snap_json_str(j, hex);
	snap_json_key(j, "pinned"); snap_json_bool(j, si->pinned);
	snap_json_key(j, "comment"); snap_json_str(j, si->comment);
	/* null, or where it waits: {"path": ".Trash-UID/files/NAME" (under
	 * the mount point), "uid", "since"}. */
	snap_json_key(j, "trash");
	if (si->trash == SNAP_TRASH_NONE) {
		snap_json_null(j);
	} else {
		char path[SNAP_TRASH_NAME_MAX + 48];

		snprintf(path, sizeof(path), ".Trash-%u/%s/%s", si->trash_uid,
			 si->trash == SNAP_TRASH_EXPUNGED ? "expunged" :
			 "files", si->trash_name);
		snap_time_iso(si->trashed_ns, t);
		snap_json_obj_begin(j);
		snap_json_key(j, "path"); snap_json_str(j, path);
		snap_json_key(j, "uid"); snap_json_int(j, si->trash_uid);
		snap_json_key(j, "since"); snap_json_str(j, t);
		snap_json_obj_end(j);
	}
	snap_json_obj_end(j);
}

void snap_json_event(snap_json *j, const snap_event *ev)
{
	char t[40];

	snap_time_iso(ev->time_ns, t);
	snap_json_obj_begin(j);
	snap_json_key(j, "id"); snap_json_int(j, ev->id);
	snap_json_key(j, "time"); snap_json_str(j, t);
	snap_json_key(j, "kind"); snap_json_str(j, ev->kind);
	snap_json_key(j, "snapshot"); snap_json_str(j, ev->snapshot);
	snap_json_key(j, "ok"); snap_json_bool(j, ev->ok);
	snap_json_key(j, "detail"); snap_json_str(j, ev->detail);
	snap_json_obj_end(j);
}
