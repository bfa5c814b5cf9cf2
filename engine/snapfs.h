/*
 * engine/snapfs.h — the snapfs engine: a deduplicated, verified snapshot
 * store for a live SQLite database.  No FUSE here; the daemon (fs/), snapctl
 * (tools/) and the tests all link this library.
 *
 * The engine reads bottom-up.  A file uses (includes, calls) files of its
 * own layer or of a lower one, never of a higher one, and no two modules
 * use each other; tests/unit/check_layers.py ('layers' in suite unit) reads
 * the table below and fails the build's tests when a file breaks it.  A
 * module is a .c and its headers (store_int.h belongs to store,
 * snapshot_int.h to snapshot, diff_int.h to diff, merge_int.h to merge); a
 * header declares only functions of its own layer or a lower one.  Files
 * split from one concept by size share its _int.h and call each other
 * through it, calling downwards only: store.c (at the bottom) with
 * storeopen.c, storedir.c, storelock.c, storeschema.c, storespace.c,
 * storecat.c, storemap.c, storename.c and storedict.c; diff.c with diffstate.c, tablerestore.c and
 * export.c; merge.c with mergelive.c, mergekeys.c, mergemove.c and
 * mergeapply.c (on top).
 *
 *   L0  err sys util units codec pagepipe readahead integrity anchor livedb
 *   L0  vfs json
 *   L0  seal objstore s3http objstore_file objstore_s3 objstore_open
 *   L1  store storeopen storedir storelock storeschema storespace storecat
 *   L1  storemap storename storedict
 *   L2  events capture capture_dict capture_find capture_vfs image image_vfs
 *   L2  image_export jsonrec
 *   L3  snapshot snapshot_import verify
 *   L4  restore restore_check restore_newfile restore_file recover diff
 *   L4  diffstate tablerestore export merge mergelive mergekeys mergemove
 *   L4  mergeapply keep retention trash
 *   L5  health status schedule replica replica_read replica_push
 *   L5  replica_prune replica_rows replica_log replica_cache replica_image
 *   L5  replica_inplace
 *   L6  snapfs
 *
 * L0 is the toolbox: errors, system calls, time and hex, durations and
 * sizes (units), compression and the page index, hashing workers, integrity
 * checks, the anchor file, connections to the live database (livedb), what
 * the engine's VFSes share (vfs), the JSON writer, the replica's
 * cryptography (seal: libsodium) and object stores (objstore: file://,
 * objstore_s3: S3).  L1 is the store: its directory, the catalog, the events
 * table's raw insert (snap_event_add_db, so a catalog change and its event
 * share one transaction).  L2 reads and writes what the store holds: the
 * event history and the failure hook, capture of pages and its VFS, images,
 * the JSON objects of catalog records (jsonrec).  L3 takes, imports and
 * checks snapshots.  L4 changes the live database or the catalog's
 * membership (restore, restore from a file, crash recovery, diff, merge,
 * retention, trash).  L5 runs on its own: health checks, the status report
 * and the schedule, and the replica (its format, reading, pushing).  The
 * store does not finish an interrupted restore when it opens: whoever opens
 * a store for work (snapctl, the daemon) calls snap_restore_recover() next.
 */
#ifndef ENGINE_SNAPFS_H
#define ENGINE_SNAPFS_H

#include "err.h"
#include "store.h"
#include "snapshot.h"
#include "image.h"
#include "verify.h"
#include "restore.h"
#include "restore_file.h"
#include "recover.h"
#include "events.h"
#include "json.h"
#include "jsonrec.h"
#include "health.h"
#include "status.h"
#include "schedule.h"
#include "diff.h"
#include "merge.h"
#include "retention.h"
#include "trash.h"

#define SNAPFS_VERSION "0.1.0"

#endif /* ENGINE_SNAPFS_H */
