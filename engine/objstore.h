/*
 * engine/objstore.h — where a replica's objects live: a flat namespace of
 * immutable, whole objects ("config", "packs/…", "index/…",
 * "snapshots/…", "locks/…") behind one small interface, so the replica
 * format (replica.c) does not know whether it talks to a directory or to
 * S3.
 *
 * The contract every backend keeps, and the replica relies on:
 *   - put is atomic: a reader sees the whole new object or none of it
 *     (file: a private temporary file, fsync, rename, fsync of the
 *     directory; S3: a single PUT);
 *   - put of an existing name replaces it (only "config" and "locks/…"
 *     are ever rewritten; packs, index objects and manifests are written
 *     once under fresh names);
 *   - no conditional writes, no versioning, no tagging (Swift's s3api has
 *     none of them);
 *   - a handle is used by one thread at a time (the s3:// backend's own
 *     prefetch threads are its business, see snap_objstore_prefetch);
 *   - names are "DIR/NAME" with one directory level at most, NAME of
 *     [A-Za-z0-9._:-] not starting with '.' (a file backend keeps its
 *     temporary files as dot names, which list never returns).
 *
 * URLs: file:///ABSOLUTE/PATH.  The directory is created by
 * snap_objstore_open with SNAP_OBJSTORE_CREATE (its parent must exist);
 * every object is reached relative to the directory's descriptor without
 * following a symlink, so a replica directory that others may write
 * cannot send the writer elsewhere.
 */
#ifndef ENGINE_OBJSTORE_H
#define ENGINE_OBJSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct snap_objstore snap_objstore;

enum {
	SNAP_OBJSTORE_CREATE = 1 << 0,  /* create the target if missing */
};

/* Called for every object under a listed directory; a non-zero return
 * stops the listing and is returned by snap_objstore_list. */
typedef int (*snap_objstore_list_fn)(void *ctx, const char *name,
				     uint64_t size);

/* Open the target of url.  0; -EINVAL for a URL snapfs does not speak
 * (the message names the forms it does); -ENOENT when it does not exist
 * and CREATE was not given; -ENOTDIR, -ELOOP, -EACCES as the system says. */
int snap_objstore_open(const char *url, unsigned flags, snap_objstore **out,
		       snap_err *err);
void snap_objstore_close(snap_objstore *o);

/* The URL as given (never holds credentials). */
const char *snap_objstore_url(const snap_objstore *o);

/* Store len bytes as name, atomically. */
int snap_objstore_put(snap_objstore *o, const char *name, const void *data,
		      size_t len, snap_err *err);

/* Read a whole object into a new buffer (*data, free() it).  -ENOENT when
 * there is no such object; -EFBIG, nothing kept, when it is larger than
 * max bytes (a hostile store must not make a reader take all memory). */
int snap_objstore_get_max(snap_objstore *o, const char *name, size_t max,
			  uint8_t **data, size_t *len, snap_err *err);
/* The same with the largest object any replica holds (SNAP_OBJSTORE_MAX). */
int snap_objstore_get(snap_objstore *o, const char *name, uint8_t **data,
		      size_t *len, snap_err *err);

#define SNAP_OBJSTORE_MAX ((size_t)256 << 20)
/* A hint that name will be read soon with the limit max: a backend where
 * a request costs a round trip (s3://) starts fetching it in the
 * background (stopping at max bytes, as the get would), so a later
 * snap_objstore_get_max of name takes the bytes already there; several such
 * requests are in flight at once.  At most a few objects are held (hints
 * beyond that are dropped), a failed fetch is simply done again by the
 * get, and nothing else changes: never an error.  A no-op for file://. */
void snap_objstore_prefetch(snap_objstore *o, const char *name,
			    size_t max);

/* Make every request of o fail at once with -ECANCELED from now on, a
 * transfer in flight included (within about a second): a daemon that
 * stops does not wait for a server that stopped answering.  Any thread
 * may call it while o is open; o is still closed by its user.  A no-op
 * for file://. */
void snap_objstore_cancel(snap_objstore *o);

/* snap_objstore_cancel for every store of the process, those opened
 * later and those being opened included: for a daemon about to exit
 * (one opening a replica that did not answer at start).  Not undone. */
void snap_objstore_cancel_all(void);

/* While on, the requests of o's own thread (not its prefetches) fail at
 * once with -EINTR, one in flight included (within about a second), and
 * a wait for a prefetch of the object asked is given up: a reader who
 * was interrupted (a FUSE INTERRUPT, its process killed) does not wait
 * for a server that stopped answering.  Any thread may call it while o
 * is open; its user turns it off again before the next request.  A
 * no-op for file://. */
void snap_objstore_interrupt(snap_objstore *o, int on);

/* Every object directly under dir ("packs", "snapshots", …), in no
 * particular order.  A missing directory lists nothing. */
int snap_objstore_list(snap_objstore *o, const char *dir,
		       snap_objstore_list_fn fn, void *ctx, snap_err *err);

/* Remove an object; a missing one is not an error. */
int snap_objstore_delete(snap_objstore *o, const char *name, snap_err *err);

/* 0 when name is a valid object name (see above), -EINVAL otherwise. */
int snap_objstore_name_check(const char *name);

#endif /* ENGINE_OBJSTORE_H */
