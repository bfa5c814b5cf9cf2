/*
 * engine/pagepipe.h — hashing and compressing pages on worker threads while
 * the caller's thread keeps SQLite busy (internal).
 *
 * A capture receives pages from sqlite3_backup on the backup's own thread.
 * Per page it must hash (SHA-256), decide whether the store already has the
 * page, compress it if not, store it, and feed the image hash in order.
 * Hashing and compression are most of the CPU time and need no shared
 * state, so they run on workers; everything that touches SQLite or ordered
 * state runs on the caller's thread, in the order the pages were pushed.
 *
 *   push(page) ──> ring slot ──> worker: sha256, lookup, compress if new
 *                                  │
 *   caller's thread <── commit(page, sha, known id, compressed bytes), FIFO
 *
 * Thread-safety: push/drain/stop from one thread (the producer), which is
 * also the thread commit callbacks run on.  lookup runs on workers,
 * concurrently with commit; the callbacks synchronize their own state.
 */
#ifndef ENGINE_PAGEPIPE_H
#define ENGINE_PAGEPIPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct snap_pagepipe snap_pagepipe;

/* One processed page, handed to the commit callback. */
typedef struct snap_pipe_page {
	uint32_t pgno;
	const uint8_t *page;    /* page_size bytes */
	const uint8_t *sha;     /* SHA-256 of page */
	int64_t known_id;       /* the store's id when lookup found it, else 0 */
	const uint8_t *z;       /* stored form when known_id == 0 */
	size_t zlen;            /* == page_size: raw */
} snap_pipe_page;

/* Worker side: the store's page id for sha, or 0. */
typedef int64_t (*snap_pipe_lookup_fn)(void *ctx, const uint8_t sha[32]);
/* Producer side, in push order: 0 or a negative errno (stops the pipe). */
typedef int (*snap_pipe_commit_fn)(void *ctx, const snap_pipe_page *p);

int snap_pagepipe_start(snap_pagepipe **out, uint32_t page_size,
			snap_pipe_lookup_fn lookup, snap_pipe_commit_fn commit,
			void *ctx);
/* Queue one page (copied).  Returns the first commit error, if any. */
int snap_pagepipe_push(snap_pagepipe *p, uint32_t pgno, const void *page);
/* Commit everything queued.  Returns the first commit error, if any. */
int snap_pagepipe_drain(snap_pagepipe *p);
/* Stop the workers and free (drain first to keep the pages). */
void snap_pagepipe_stop(snap_pagepipe *p);

#endif /* ENGINE_PAGEPIPE_H */
