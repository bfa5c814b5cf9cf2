/*
 * engine/snapfs.h — the snapfs engine: a deduplicated, verified snapshot
 * store for a live SQLite database.  No FUSE here; the daemon (fs/), snapctl
 * (tools/) and the tests all link this library.
 */
#ifndef ENGINE_SNAPFS_H
#define ENGINE_SNAPFS_H

#include "err.h"
#include "store.h"
#include "snapshot.h"
#include "image.h"
#include "verify.h"
#include "restore.h"
#include "events.h"
#include "json.h"
#include "health.h"
#include "schedule.h"
#include "diff.h"
#include "merge.h"
#include "retention.h"
#include "trash.h"

#define SNAPFS_VERSION "0.1.0"

#endif /* ENGINE_SNAPFS_H */
