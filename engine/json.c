/*
 * engine/json.c — the JSON writer (json.h): arrays and objects of strings,
 * integers, booleans and null, nested to any depth, with correct escaping,
 * and the merge of one object's members into another.  Nothing parses:
 * whoever reads JSON uses SQLite's json_extract/json_each.
 *
 * The writer's state is the text, the depth and one flag per level folded
 * into need_comma: after a begin no value came yet at the new level, after
 * an end or a value one did.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* An empty writer. */
void snap_json_init(snap_json *j)
{
	memset(j, 0, sizeof(*j));
}

/* Free the text; the writer is empty again. */
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

/* Append a NUL-terminated string. */
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

/* Open an object or an array ("{" or "["): one level deeper. */
static void open_(snap_json *j, const char *bracket)
{
	sep(j);
	put(j, bracket, 1);
	j->need_comma = 0;
	j->depth++;
}

/* Close the innermost object or array: a value was written at the level
 * it belongs to. */
static void close_(snap_json *j, const char *bracket)
{
	put(j, bracket, 1);
	j->need_comma = 1;
	j->depth--;
}

/* "{": a new object as the next value. */
void snap_json_obj_begin(snap_json *j)
{
	open_(j, "{");
}

/* "}": close the innermost object. */
void snap_json_obj_end(snap_json *j)
{
	close_(j, "}");
}

/* "[": a new array as the next value. */
void snap_json_arr_begin(snap_json *j)
{
	open_(j, "[");
}

/* "]": close the innermost array. */
void snap_json_arr_end(snap_json *j)
{
	close_(j, "]");
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

/* A member's name; its value comes next. */
void snap_json_key(snap_json *j, const char *k)
{
	sep(j);
	quoted(j, k);
	put(j, ":", 1);
	j->need_comma = 0;
}

/* A string value (NULL as ""). */
void snap_json_str(snap_json *j, const char *v)
{
	sep(j);
	quoted(j, v ? v : "");
}

/* An integer value, exact. */
void snap_json_int(snap_json *j, int64_t v)
{
	char b[32];

	sep(j);
	snprintf(b, sizeof(b), "%" PRId64, v);
	puts_(j, b);
}

/* true or false. */
void snap_json_bool(snap_json *j, int v)
{
	sep(j);
	puts_(j, v ? "true" : "false");
}

/* null. */
void snap_json_null(snap_json *j)
{
	sep(j);
	puts_(j, "null");
}

/* A string, or null for NULL. */
void snap_json_str_or_null(snap_json *j, const char *v)
{
	if (v)
		snap_json_str(j, v);
	else
		snap_json_null(j);
}

/* A value already in JSON, as it is. */
void snap_json_raw(snap_json *j, const char *json_text)
{
	sep(j);
	puts_(j, json_text);
}

/* Merge: obj's members into the object open in j (json.h). */
void snap_json_fields(snap_json *j, const snap_json *obj)
{
	if (j->oom)
		return;
	if (obj->oom || !snap_json_done(obj) || obj->buf[0] != '{' ||
	    j->depth < 1) {
		j->oom = 1;
		return;
	}
	/* Members of a finished object are the text between its braces. */
	if (obj->len > 2) {
		sep(j);
		put(j, obj->buf + 1, obj->len - 2);
	}
}

/* 1 when j holds one whole value (json.h). */
int snap_json_done(const snap_json *j)
{
	return !j->oom && j->len > 0 && j->depth == 0;
}
