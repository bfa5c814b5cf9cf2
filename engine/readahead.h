/*
 * engine/readahead.h — pages fetched ahead of a sequential reader on a
 * thread of its own (internal).
 *
 * A reader that asks for pages one after the other (a restore's copy
 * reading its source, quick_check's walk, `cp` of a snapshot, a replica's
 * upload) spends most of its time decompressing them.  A read-ahead
 * fetches pages ahead of the reader on a thread of its own, in batches,
 * into a window of a fixed number of pages:
 *
 *   reader: take(p) ── fetched by the thread: copied out (waiting for
 *                   │  it if under way), 1
 *                   └─ otherwise: 0, the reader fetches p itself; at the
 *                      first page no one has claimed it claims a batch
 *   thread: claims the next batch within the window and fetches it
 *
 * A reader slower than the thread (one with work of its own per page)
 * finds every page fetched; a faster one fetches every other batch itself,
 * the thread the others: two cores share the work, and the two threads
 * meet about once a batch, not once a page.  It runs ahead only of a
 * long sequential reader: it starts after two batches of pages read in a
 * row, with two batches left to read, and runs at most half the reader's
 * run ahead; it moves to where the reader went only after as long a run
 * there.  A page read elsewhere in between (an interior page of a b-tree
 * between its leaves) leaves the window where it is.  A short or random
 * reader, and an image of fewer pages than the window, never start it.
 * A fetch that fails is not an error here: the reader fetches that page
 * itself and reports what is wrong.  Memory: the window, `window` pages
 * of page_size bytes, and whatever prepare makes, while it runs: it stops
 * (release) when the reader took the last page, and at most
 * SNAP_READAHEAD_MAX run in a process at once (a daemon with many
 * snapshot files open reads the others alone).
 *
 * Thread-safety: take and free from one reader at a time (the caller
 * serializes them); fetch runs on the read-ahead's thread, never at the
 * same time as another fetch; prepare and release on the reader's.
 */
#ifndef ENGINE_READAHEAD_H
#define ENGINE_READAHEAD_H

#include <stdint.h>

typedef struct snap_readahead snap_readahead;

/* Fetch page pgno (1-based) into buf: 0 or a negative errno.  Called with
 * pgno 0 before the thread waits for the reader (buf NULL): let go of
 * what a long wait must not hold, such as a read transaction. */
typedef int (*snap_ra_fetch_fn)(void *ctx, uint32_t pgno, void *buf);

/* Called on the reader's thread just before the read-ahead's thread
 * starts, to make what fetch needs where the reader may hold locks a
 * fetch must not wait for: 0, or nonzero to read alone from then on.
 * release undoes it after the thread ended. */
typedef int (*snap_ra_prepare_fn)(void *ctx);
typedef void (*snap_ra_release_fn)(void *ctx);

/* Read-aheads running at once in a process. */
#define SNAP_READAHEAD_MAX 4

/* A read-ahead over pages 1..page_count of page_size bytes; its thread
 * starts with the first sequential run.  NULL when out of memory. */
snap_readahead *snap_readahead_new(uint32_t page_size, uint32_t page_count,
				   uint32_t window, snap_ra_prepare_fn prepare,
				   snap_ra_fetch_fn fetch,
				   snap_ra_release_fn release, void *ctx);
/* Page pgno into buf when the read-ahead has it (1), else 0. */
int snap_readahead_take(snap_readahead *ra, uint32_t pgno, void *buf);
/* Pages the thread fetched and the reader took, so far (for tests). */
void snap_readahead_counts(snap_readahead *ra, uint64_t *fetched,
			   uint64_t *taken);
/* Stop the thread and free (NULL is fine). */
void snap_readahead_free(snap_readahead *ra);

#endif /* ENGINE_READAHEAD_H */
