/*
 * engine/json.h — the one JSON writer of snapfs: snapctl --json, the
 * mount's .snapfs/status.json, the per-table row counts of a snapshot.
 *
 * Output goes to a growing buffer; strings are escaped (control characters
 * as \uXXXX, other bytes, UTF-8 included, pass through).  Objects and
 * arrays nest; the writer counts the depth so a caller can ask whether the
 * text is one finished value (snap_json_done).  To put the members of one
 * object into another, write the first into its own snap_json and call
 * snap_json_fields() while the second is open: no caller ever edits the
 * text.  An allocation failure sets oom and every later call is a no-op,
 * so a caller checks once, at the end.
 *
 * The writer needs nothing of the store (layer L0); the objects for the
 * catalog's records are in jsonrec.h.
 */
#ifndef ENGINE_JSON_H
#define ENGINE_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct snap_json {
	char *buf;      /* NUL-terminated text, owned; free() */
	size_t len;
	size_t cap;
	int need_comma; /* a value was written at this nesting level */
	int depth;      /* objects and arrays open */
	int oom;        /* the text is not whole: an allocation failed, or
			   snap_json_fields() was given no finished object */
} snap_json;

void snap_json_init(snap_json *j);
void snap_json_free(snap_json *j);
void snap_json_obj_begin(snap_json *j);
void snap_json_obj_end(snap_json *j);
void snap_json_arr_begin(snap_json *j);
void snap_json_arr_end(snap_json *j);
void snap_json_key(snap_json *j, const char *k);
void snap_json_str(snap_json *j, const char *v);
void snap_json_int(snap_json *j, int64_t v);
void snap_json_bool(snap_json *j, int v);
void snap_json_null(snap_json *j);
/* v as a string, or null when v is NULL. */
void snap_json_str_or_null(snap_json *j, const char *v);
/* A value already in JSON (a number with a fraction, a document from
 * SQLite's json functions), inserted as it is. */
void snap_json_raw(snap_json *j, const char *json_text);
/* Write the members of obj, one finished object ({} included), into the
 * object open in j, after the members j has so far: merging two objects.
 * When obj is not a finished object (or j has no object open) j->oom is
 * set. */
void snap_json_fields(snap_json *j, const snap_json *obj);
/* 1 when j holds one whole value: something written, every object and
 * array closed, no allocation failed. */
int snap_json_done(const snap_json *j);

#endif /* ENGINE_JSON_H */
