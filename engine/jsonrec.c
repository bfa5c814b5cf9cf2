/*
 * engine/jsonrec.c — the catalog's records as JSON objects (jsonrec.h).
 * Field names are part of the contract scripts rely on (snapctl --json,
 * .snapfs/status.json; snapctl(1) JSON OUTPUT): add fields, never rename.
 * Times are given twice: an ISO-8601 UTC string for people and an integer
 * (nanoseconds since the epoch, "_ns") for programs.
 */
#include <stdio.h>

#include "jsonrec.h"

/* A snapshot's record: the contract fields of snapctl(1) JSON OUTPUT. */
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
		snap_json_key(j, "since_ns"); snap_json_int(j, si->trashed_ns);
		snap_json_obj_end(j);
	}
	snap_json_obj_end(j);
}

/* An event of the history as one object. */
void snap_json_event(snap_json *j, const snap_event *ev)
{
	char t[40];

	snap_time_iso(ev->time_ns, t);
	snap_json_obj_begin(j);
	snap_json_key(j, "id"); snap_json_int(j, ev->id);
	snap_json_key(j, "time"); snap_json_str(j, t);
	snap_json_key(j, "time_ns"); snap_json_int(j, ev->time_ns);
	snap_json_key(j, "kind"); snap_json_str(j, ev->kind);
	snap_json_key(j, "snapshot"); snap_json_str(j, ev->snapshot);
	snap_json_key(j, "ok"); snap_json_bool(j, ev->ok);
	snap_json_key(j, "detail"); snap_json_str(j, ev->detail);
	snap_json_obj_end(j);
}
