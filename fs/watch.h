/*
 * fs/watch.h — the catalog watcher (watch.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_WATCH_H
#define FS_WATCH_H

#include "notify.h"

/* ---- the catalog watcher (watch.c) -------------------------------------- */

/* After the notifier started: read the listing and the catalog's change
 * time (started_ns for a store that never changed), watch the store
 * directory, start the thread; 0 or a negative errno.  Stop before the
 * notifier and the store (safe when never started). */
int snap_watch_start(snap_store *store, struct snap_notify *notify,
		     int64_t started_ns);
void snap_watch_stop(void);
/* The daemon changed the catalog itself (call after replying): compare
 * the listing now, even though no other process committed. */
void snap_watch_changed(void);
/* fn is called on the watcher's thread after each change of the listing
 * it noticed (the offsite replication's wake-up; it must not block);
 * NULL removes it. */
void snap_watch_set_hook(void (*fn)(void));
/* snapshots/' mtime and ctime: when its listing last changed (ns). */
int64_t snap_watch_dir_ns(void);

#endif /* FS_WATCH_H */
