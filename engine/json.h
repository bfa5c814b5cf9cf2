/*
 * engine/json.h — a tiny JSON writer for snapctl --json and the mount's
 * status file.  Output goes to a growing buffer; strings are escaped.
 */
#ifndef ENGINE_JSON_H
#define ENGINE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include "store.h"
#include "events.h"

typedef struct snap_json {
	char *buf;      /* NUL-terminated text, owned; free() */
	size_t len;
	size_t cap;
	int need_comma; /* a value was written at this nesting level */
	int oom;        /* set when an allocation failed */
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
void snap_json_raw(snap_json *j, const char *json_text);

/* Objects for the common records (field names are the contract). */
void snap_json_info(snap_json *j, const snap_info *si);
void snap_json_event(snap_json *j, const snap_event *ev);

#endif /* ENGINE_JSON_H */
