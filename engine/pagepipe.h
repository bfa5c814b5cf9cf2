/*
 * engine/pagepipe.h — per-page CPU work (hashing, compressing,
 * decompressing) on worker threads while the caller's thread keeps SQLite
 * busy (internal).
 *
 * A capture receives pages from sqlite3_backup on the backup's own thread;
 * a verification or a large read fetches stored pages from the store on
 * the caller's thread.  Per page the CPU work (SHA-256, zstd) needs no
 * shared state, so it runs on workers; everything that touches SQLite or
 * ordered state (the store, the map, the image hash) runs on the caller's
 * thread, in the order the pages were pushed:
 *
 *   push(pgno, id, bytes, want) ──> slot ──> worker: work(slot)
 *                                              │
 *                        [order thread: order(slot), in push order]
 *                                              │
 *   caller's thread <── commit(slot), in push order
 *
 * Thread-safety: push/drain/stop from one thread (the producer), which is
 * also the thread commit callbacks run on.  work runs on the workers,
 * concurrently with commit; the callbacks synchronize their own state.
 */
#ifndef ENGINE_PAGEPIPE_H
#define ENGINE_PAGEPIPE_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"

typedef struct snap_pagepipe snap_pagepipe;

/* One page in flight.  `in` and `out` hold up to snap_pagepipe_bufsize()
 * bytes each. */
typedef struct snap_pipe_slot {
	uint32_t pgno;          /* producer's */
	int64_t id;             /* producer's, or the worker's answer */
	uint8_t want[32];       /* producer's expected hash (if any) */
	uint8_t sha[32];        /* worker's hash */
	uint8_t *in;            /* producer's bytes */
	size_t inlen;
	uint8_t *out;           /* worker's bytes */
	size_t outlen;
	int status;             /* worker's verdict: 0 or a negative errno */
} snap_pipe_slot;

/* Worker side: fill sha/id/out/outlen/status from the producer's fields,
 * with this worker's own zstd contexts. */
typedef void (*snap_pipe_work_fn)(void *ctx, snap_pipe_slot *s,
				  snap_codec *codec);
/* Order thread, in push order, after work and before commit: state of its
 * own that needs the pages in order (an image hash) but not the producer's
 * thread.  It must not touch what commit touches. */
typedef void (*snap_pipe_order_fn)(void *ctx, const snap_pipe_slot *s);
/* Producer side, in push order: 0 or a negative errno (stops the pipe). */
typedef int (*snap_pipe_commit_fn)(void *ctx, const snap_pipe_slot *s);

/* Start the pipe's workers for pages of page_size bytes: each page goes
 * through work on a worker, then through commit on the producer's thread
 * in push order.  0 or a negative errno. */
int snap_pagepipe_start(snap_pagepipe **out, uint32_t page_size,
			snap_pipe_work_fn work, snap_pipe_commit_fn commit,
			void *ctx);
/* The same with an order thread running order on each page between work
 * and commit. */
int snap_pagepipe_start_ordered(snap_pagepipe **out, uint32_t page_size,
				snap_pipe_work_fn work,
				snap_pipe_order_fn order,
				snap_pipe_commit_fn commit, void *ctx);
/* The store's dictionaries the workers' codecs use (snap_codec_use) for
 * the pages pushed from now on; NULL: none.  ds must outlive the pipe. */
void snap_pagepipe_use_dicts(snap_pagepipe *p, const snap_dicts *ds);
/* Size of each slot's in and out buffers (a page, or a compressed page). */
size_t snap_pagepipe_bufsize(uint32_t page_size);
/* Queue one page: in (inlen bytes, copied) and want (32 bytes, may be
 * NULL).  Returns the first commit error, if any. */
int snap_pagepipe_push(snap_pagepipe *p, uint32_t pgno, int64_t id,
		       const void *in, size_t inlen, const uint8_t *want);
/* Commit everything queued.  Returns the first commit error, if any. */
int snap_pagepipe_drain(snap_pagepipe *p);
/* Stop the workers and free (drain first to keep the pages). */
void snap_pagepipe_stop(snap_pagepipe *p);

#endif /* ENGINE_PAGEPIPE_H */
