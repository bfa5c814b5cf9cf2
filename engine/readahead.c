/*
 * engine/readahead.c — pages fetched ahead of a sequential reader; what
 * and why in readahead.h.
 *
 * The window is `w` slots; page p lives in slot p % w.  Under mu: `base`
 * is the first page the reader may still take (0: no window yet) and
 * `claim` the first page no one has claimed: every page in [base, claim)
 * is the thread's (its slot names it: being fetched, fetched or failed)
 * or the reader's (its slot names another page).  The thread claims a
 * batch [claim, claim + b) only when it ends within base + reach (at most
 * w), so it never writes a slot the reader may still take; when the reader
 * had to wait for it, it leaves the next batch to the reader instead (the
 * reader is the faster).  Moving the window (`gen`) forgets every slot; a
 * fetch under way when it moved is thrown away.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "readahead.h"

/* Read-aheads running in the process (SNAP_READAHEAD_MAX). */
static atomic_uint ra_count;

enum { SLOT_FETCHING, SLOT_READY, SLOT_FAILED };

struct snap_readahead {
	uint32_t ps, n, w, b;    /* page size, pages, window, batch */
	snap_ra_prepare_fn prepare;
	snap_ra_fetch_fn fetch;
	snap_ra_release_fn release;
	void *ctx;

	pthread_mutex_t mu;
	pthread_cond_t work;     /* the thread: room for a batch, or stop */
	pthread_cond_t done;     /* the reader: a fetch ended */
	uint8_t *bufs;           /* w pages */
	uint32_t *pgno;          /* mu: the thread's page in each slot */
	uint8_t *state;          /* mu: SLOT_* of each slot */
	uint32_t base, claim;    /* mu */
	uint32_t reach;          /* mu: how far past base the thread may
				    claim: half the reader's run, at most w */
	unsigned gen;            /* mu: moves with the window */
	int stop;                /* mu */
	int thread_waits;        /* mu: the thread waits on work */
	int reader_waits;        /* mu: the reader waits on done */
	int reader_waited;       /* mu: it waited since the last claim */
	uint64_t fetched, taken; /* mu */

	int running;             /* reader: the thread exists */
	int off;                 /* reader: it could not start; never again */
	pthread_t thread;
	uint32_t last;           /* reader: the page asked for last */
	unsigned run;            /* reader: pages asked for in a row */
};

snap_readahead *snap_readahead_new(uint32_t page_size, uint32_t page_count,
				   uint32_t window, snap_ra_prepare_fn prepare,
				   snap_ra_fetch_fn fetch,
				   snap_ra_release_fn release, void *ctx)
{
	snap_readahead *ra = calloc(1, sizeof(*ra));

	if (!ra)
		return NULL;
	ra->ps = page_size;
	ra->n = page_count;
	ra->w = window < 8 ? 8 : window;
	ra->b = ra->w / 4;
	ra->prepare = prepare;
	ra->fetch = fetch;
	ra->release = release;
	ra->ctx = ctx;
	pthread_mutex_init(&ra->mu, NULL);
	pthread_cond_init(&ra->work, NULL);
	pthread_cond_init(&ra->done, NULL);
	return ra;
}

/* 1 when the thread may claim the batch at `claim` (mu held). */
static int ra_room(const snap_readahead *ra)
{
	return ra->base && ra->claim <= ra->n &&
	       ra->claim + ra->b <= ra->base + ra->reach;
}

/* The end of the batch that starts at page p (past the last page: n + 1). */
static uint32_t ra_batch_end(const snap_readahead *ra, uint32_t p)
{
	return p + ra->b > ra->n + 1 ? ra->n + 1 : p + ra->b;
}

/* The batch from p is the reader's (mu held). */
static void ra_reader_claims(snap_readahead *ra, uint32_t p)
{
	ra->claim = ra_batch_end(ra, p);
}

/* Fetch pages [p, end) of generation gen (mu held; released meanwhile). */
static void ra_fetch_batch(snap_readahead *ra, uint32_t p, uint32_t end,
			   unsigned gen)
{
	for (; p < end && gen == ra->gen && !ra->stop; p++) {
		uint32_t i = p % ra->w;
		int rc;

		pthread_mutex_unlock(&ra->mu);
		rc = ra->fetch(ra->ctx, p, ra->bufs + (size_t)i * ra->ps);
		pthread_mutex_lock(&ra->mu);
		ra->fetched++;
		if (gen == ra->gen && ra->pgno[i] == p)
			ra->state[i] = rc ? SLOT_FAILED : SLOT_READY;
		if (ra->reader_waits)
			pthread_cond_broadcast(&ra->done);
	}
}

static void *ra_main(void *arg)
{
	snap_readahead *ra = arg;
	int idle = 0;

	pthread_mutex_lock(&ra->mu);
	while (!ra->stop) {
		uint32_t p, end;

		if (!ra_room(ra)) {
			if (!idle) {
				/* Let go of what a wait must not hold. */
				idle = 1;
				pthread_mutex_unlock(&ra->mu);
				ra->fetch(ra->ctx, 0, NULL);
				pthread_mutex_lock(&ra->mu);
				continue;
			}
			ra->thread_waits = 1;
			pthread_cond_wait(&ra->work, &ra->mu);
			ra->thread_waits = 0;
			continue;
		}
		idle = 0;
		if (ra->reader_waited) {
			/* The reader is the faster: the next batch is its
			 * own, and both cores fetch. */
			ra->reader_waited = 0;
			ra_reader_claims(ra, ra->claim);
			continue;
		}
		p = ra->claim;
		end = ra_batch_end(ra, p);
		ra->claim = end;
		for (uint32_t q = p; q < end; q++) {
			ra->pgno[q % ra->w] = q;
			ra->state[q % ra->w] = SLOT_FETCHING;
		}
		ra_fetch_batch(ra, p, end, ra->gen);
	}
	pthread_mutex_unlock(&ra->mu);
	ra->fetch(ra->ctx, 0, NULL);
	return NULL;
}

/* Give back the window (it is made again by the next start). */
static void ra_window_free(snap_readahead *ra)
{
	free(ra->bufs);
	free(ra->pgno);
	free(ra->state);
	ra->bufs = NULL;
	ra->pgno = NULL;
	ra->state = NULL;
}

/* Start the thread, its window and what prepare makes: 0, or -1 when it
 * cannot (too many running: a later run may; out of memory or no
 * thread: the reader reads alone from now on). */
static int ra_start(snap_readahead *ra)
{
	int prepared = 0;

	if (atomic_fetch_add(&ra_count, 1) >= SNAP_READAHEAD_MAX) {
		atomic_fetch_sub(&ra_count, 1);
		return -1;
	}
	ra->bufs = malloc((size_t)ra->w * ra->ps);
	ra->pgno = calloc(ra->w, sizeof(*ra->pgno));
	ra->state = calloc(ra->w, 1);
	if (ra->bufs && ra->pgno && ra->state &&
	    (!ra->prepare || !ra->prepare(ra->ctx))) {
		prepared = 1;
		ra->stop = 0;
		ra->base = ra->claim = 0;
		if (!pthread_create(&ra->thread, NULL, ra_main, ra)) {
			ra->running = 1;
			return 0;
		}
	}
	if (prepared && ra->release)
		ra->release(ra->ctx);
	ra_window_free(ra);
	atomic_fetch_sub(&ra_count, 1);
	ra->off = 1;
	return -1;
}

/* End the thread and give back the window and what prepare made (the
 * reader took the last page, or the read-ahead is freed). */
static void ra_stop(snap_readahead *ra)
{
	if (!ra->running)
		return;
	pthread_mutex_lock(&ra->mu);
	ra->stop = 1;
	ra->gen++;
	pthread_cond_signal(&ra->work);
	pthread_mutex_unlock(&ra->mu);
	pthread_join(ra->thread, NULL);
	ra->running = 0;
	if (ra->release)
		ra->release(ra->ctx);
	ra_window_free(ra);
	atomic_fetch_sub(&ra_count, 1);
}

int snap_readahead_take(snap_readahead *ra, uint32_t pgno, void *buf)
{
	int hit = 0;
	uint32_t i;

	ra->run = pgno == ra->last + 1 ? ra->run + 1 : 1;
	ra->last = pgno;
	/* A long run, with as much left to read. */
	if (ra->off || (!ra->running && (ra->run < 2 * ra->b ||
					 pgno + 2 * ra->b > ra->n)))
		return 0;
	if (!ra->running && ra_start(ra))
		return 0;
	pthread_mutex_lock(&ra->mu);
	ra->reach = ra->run / 2 < ra->w ? ra->run / 2 : ra->w;
	if (ra->base && pgno >= ra->base && pgno < ra->claim) {
		i = pgno % ra->w;
		/* The thread's: wait for its fetch rather than do it twice. */
		while (ra->pgno[i] == pgno && ra->state[i] == SLOT_FETCHING) {
			ra->reader_waits = 1;
			ra->reader_waited = 1;
			pthread_cond_wait(&ra->done, &ra->mu);
			ra->reader_waits = 0;
		}
		if (ra->pgno[i] == pgno && ra->state[i] == SLOT_READY) {
			memcpy(buf, ra->bufs + (size_t)i * ra->ps, ra->ps);
			ra->taken++;
			hit = 1;
		}
		ra->base = pgno + 1;
	} else if (ra->base && pgno == ra->claim) {
		/* Caught up: this batch is the reader's. */
		ra_reader_claims(ra, pgno);
		ra->base = pgno + 1;
	} else if (ra->run >= 2 * ra->b && pgno < ra->n) {
		/* A run of its own elsewhere: the window moves there. */
		ra->gen++;
		memset(ra->pgno, 0, ra->w * sizeof(*ra->pgno));
		ra_reader_claims(ra, pgno);
		ra->base = pgno + 1;
	}
	if (ra->thread_waits && ra_room(ra))
		pthread_cond_signal(&ra->work);
	pthread_mutex_unlock(&ra->mu);
	if (pgno == ra->n)
		ra_stop(ra);
	return hit;
}

void snap_readahead_counts(snap_readahead *ra, uint64_t *fetched,
			   uint64_t *taken)
{
	pthread_mutex_lock(&ra->mu);
	*fetched = ra->fetched;
	*taken = ra->taken;
	pthread_mutex_unlock(&ra->mu);
}

void snap_readahead_free(snap_readahead *ra)
{
	if (!ra)
		return;
	ra_stop(ra);
	pthread_cond_destroy(&ra->work);
	pthread_cond_destroy(&ra->done);
	pthread_mutex_destroy(&ra->mu);
	free(ra);
}
