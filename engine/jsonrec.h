/*
 * engine/jsonrec.h — the JSON objects of the catalog's records: a
 * snapshot (snapctl list/show --json, status.json) and an event (snapctl
 * log --json).  Their field names are the contract scripts rely on, listed
 * in snapctl(1) under JSON OUTPUT.  Written with the writer of json.h.
 */
#ifndef ENGINE_JSONREC_H
#define ENGINE_JSONREC_H

#include "json.h"
#include "store.h"
#include "events.h"

/* A snapshot's record as one object. */
void snap_json_info(snap_json *j, const snap_info *si);
/* An event of the history as one object. */
void snap_json_event(snap_json *j, const snap_event *ev);

#endif /* ENGINE_JSONREC_H */
