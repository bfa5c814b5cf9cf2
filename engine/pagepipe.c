/*
 * engine/pagepipe.c — the ring of page slots behind pagepipe.h.
 *
 * Slots move FREE -> FILLED (producer) -> WORKING (a worker claimed it) ->
 * DONE (the work function ran) -> [ORDERED (the order thread ran the
 * order function, when there is one)] -> FREE (committed by the producer).
 * `head` counts pushed slots, `claim` claimed ones, `ord` ordered ones,
 * `tail` committed ones; head - tail <= PIPE_SLOTS.  Slots are claimed,
 * ordered and committed in push order, so the order function and commits
 * see pages in the order they were pushed.  One mutex guards the counters
 * and states; the slot contents belong to whoever moved the slot into its
 * current state.
 *
 * The order thread exists for work that must see pages in order but need
 * not hold up the producer: a capture's streamed SHA-256 of the whole
 * image, which on the producer's thread took as long as reading the pages.
 *
 * Wake-ups come in batches (a futex wake-up and the switch it causes cost
 * more than hashing a page, twice that in a virtual machine): the order
 * thread and a waiting producer are woken when a run of PIPE_BATCH slots
 * is ready for them, or every slot pushed so far (run_ready), not once a
 * slot; each then takes the whole run.  A waiter checks the same
 * condition before it sleeps, and whoever moves a slot into the state it
 * waits for checks it again, so no wake-up is lost: the condition can
 * only turn false again by a push, which is followed by more slots
 * moving.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "pagepipe.h"

#define PIPE_SLOTS 256
/* Wake a sleeping worker only when this many pages wait: one wake-up per
 * page costs more than hashing the page. */
#define PIPE_BATCH 32
#define PIPE_MAX_WORKERS 4

enum { SLOT_FREE, SLOT_FILLED, SLOT_WORKING, SLOT_DONE, SLOT_ORDERED };

typedef struct slot {
	int state;               /* guarded by mu */
	snap_pipe_slot s;        /* contents: see the top comment */
} slot;

struct snap_pagepipe {
	pthread_mutex_t mu;
	pthread_cond_t wake;     /* a slot was filled, or stopping */
	pthread_cond_t done;     /* a slot is ready to commit */
	pthread_cond_t ordwake;  /* a run at `ord` is done, or stopping */
	uint64_t head, claim, ord, tail;   /* guarded by mu */
	int order_waiting;            /* order thread waits on ordwake; mu */
	int ready;                    /* state a slot commits in */
	int stopping;                 /* guarded by mu */
	unsigned idle;                /* workers waiting on `wake`; mu */
	int producer_waiting;         /* producer waits on `done`; mu */
	int error;                    /* first commit error (producer only) */
	uint32_t page_size;
	size_t bufsize;
	slot slots[PIPE_SLOTS];
	uint8_t *mem;
	unsigned nworkers;
	pthread_t workers[PIPE_MAX_WORKERS];
	snap_pipe_work_fn work;
	snap_pipe_order_fn order;     /* may be NULL: no order thread */
	pthread_t order_thread;
	int have_order_thread;
	snap_pipe_commit_fn commit;
	void *ctx;
	const snap_dicts *dicts;      /* the workers' dictionaries; mu */
};

/* Slots in `state` in a row from the one pushed `from`-th on (at most
 * max).  Called with mu held. */
static unsigned run_of(const snap_pagepipe *p, uint64_t from, int state,
		       unsigned max)
{
	unsigned n = 0;

	while (n < max && from + n < p->head &&
	       p->slots[(from + n) % PIPE_SLOTS].state == state)
		n++;
	return n;
}

/* Is a run worth a wake-up: PIPE_BATCH slots in `state` from `from` on,
 * or every slot pushed after it?  Called with mu held. */
static int run_ready(const snap_pagepipe *p, uint64_t from, int state)
{
	uint64_t left = p->head - from;
	unsigned want = left < PIPE_BATCH ? (unsigned)left : PIPE_BATCH;

	return left && run_of(p, from, state, want) == want;
}

/* Worker: claim the oldest filled slot, process it, repeat. */
static void *pipe_worker(void *arg)
{
	snap_pagepipe *p = arg;
	snap_codec codec;
	int have_codec = snap_codec_init(&codec) == 0;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		slot *s;

		while (!p->stopping && p->claim == p->head) {
			p->idle++;
			pthread_cond_wait(&p->wake, &p->mu);
			p->idle--;
		}
		if (p->claim == p->head)
			break;   /* stopping and nothing left */
		s = &p->slots[p->claim++ % PIPE_SLOTS];
		s->state = SLOT_WORKING;
		if (have_codec && codec.dicts != p->dicts)
			snap_codec_use(&codec, p->dicts);
		pthread_mutex_unlock(&p->mu);

		if (have_codec) {
			p->work(p->ctx, &s->s, &codec);
		} else {
			s->s.status = -ENOMEM;
		}

		pthread_mutex_lock(&p->mu);
		s->state = SLOT_DONE;
		if (p->order) {
			if (p->order_waiting &&
			    run_ready(p, p->ord, SLOT_DONE))
				pthread_cond_signal(&p->ordwake);
		} else if (p->producer_waiting &&
			   run_ready(p, p->tail, SLOT_DONE)) {
			pthread_cond_signal(&p->done);
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (have_codec)
		snap_codec_free(&codec);
	return NULL;
}

/* Order thread: run the order function on each done slot, in push
 * order, a run of them at a time. */
static void *pipe_orderer(void *arg)
{
	snap_pagepipe *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		unsigned n, i;

		while (!p->stopping && !run_ready(p, p->ord, SLOT_DONE)) {
			p->order_waiting = 1;
			pthread_cond_wait(&p->ordwake, &p->mu);
			p->order_waiting = 0;
		}
		n = run_of(p, p->ord, SLOT_DONE, PIPE_SLOTS);
		if (!n)
			break;   /* stopping: undrained pages are dropped */
		pthread_mutex_unlock(&p->mu);
		for (i = 0; i < n; i++)
			p->order(p->ctx,
				 &p->slots[(p->ord + i) % PIPE_SLOTS].s);
		pthread_mutex_lock(&p->mu);
		for (i = 0; i < n; i++)
			p->slots[(p->ord + i) % PIPE_SLOTS].state =
				SLOT_ORDERED;
		p->ord += n;
		if (p->producer_waiting && run_ready(p, p->tail, p->ready))
			pthread_cond_signal(&p->done);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Workers pick the dictionaries up when they claim their next slot. */
void snap_pagepipe_use_dicts(snap_pagepipe *p, const snap_dicts *ds)
{
	pthread_mutex_lock(&p->mu);
	p->dicts = ds;
	pthread_mutex_unlock(&p->mu);
}

size_t snap_pagepipe_bufsize(uint32_t page_size)
{
	size_t z = ZSTD_compressBound(page_size);

	return z > page_size ? z : page_size;
}

int snap_pagepipe_start(snap_pagepipe **out, uint32_t page_size,
			snap_pipe_work_fn work, snap_pipe_commit_fn commit,
			void *ctx)
{
	return snap_pagepipe_start_ordered(out, page_size, work, NULL, commit,
					   ctx);
}

int snap_pagepipe_start_ordered(snap_pagepipe **out, uint32_t page_size,
				snap_pipe_work_fn work,
				snap_pipe_order_fn order,
				snap_pipe_commit_fn commit, void *ctx)
{
	snap_pagepipe *p = calloc(1, sizeof(*p));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	size_t per;
	unsigned i;

	*out = NULL;
	if (!p)
		return -ENOMEM;
	p->page_size = page_size;
	p->bufsize = snap_pagepipe_bufsize(page_size);
	per = 2 * p->bufsize;
	p->mem = malloc(per * PIPE_SLOTS);
	if (!p->mem) {
		free(p);
		return -ENOMEM;
	}
	for (i = 0; i < PIPE_SLOTS; i++) {
		p->slots[i].s.in = p->mem + per * i;
		p->slots[i].s.out = p->slots[i].s.in + p->bufsize;
	}
	p->work = work;
	p->order = order;
	p->ready = order ? SLOT_ORDERED : SLOT_DONE;
	p->commit = commit;
	p->ctx = ctx;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->wake, NULL);
	pthread_cond_init(&p->done, NULL);
	pthread_cond_init(&p->ordwake, NULL);
	p->nworkers = ncpu < 1 ? 1 : ncpu > PIPE_MAX_WORKERS ?
		      PIPE_MAX_WORKERS : (unsigned)ncpu;
	for (i = 0; i < p->nworkers; i++) {
		if (pthread_create(&p->workers[i], NULL, pipe_worker, p)) {
			p->nworkers = i;
			break;
		}
	}
	if (order && !pthread_create(&p->order_thread, NULL, pipe_orderer,
				     p))
		p->have_order_thread = 1;
	if (p->nworkers == 0 || (order && !p->have_order_thread)) {
		snap_pagepipe_stop(p);
		return -EAGAIN;
	}
	*out = p;
	return 0;
}

/* Commit every done slot at the tail, in order.  Called with mu held;
 * drops it around each commit callback. */
static void pipe_commit_ready(snap_pagepipe *p)
{
	while (p->tail < p->head) {
		slot *s = &p->slots[p->tail % PIPE_SLOTS];

		if (s->state != p->ready)
			return;
		pthread_mutex_unlock(&p->mu);
		if (!p->error)
			p->error = p->commit(p->ctx, &s->s);
		pthread_mutex_lock(&p->mu);
		s->state = SLOT_FREE;
		p->tail++;
	}
}

/* Wait (mu held) until a run of slots at the tail is ready to commit
 * (run_ready); first make sure the workers are awake for whatever is
 * queued. */
static void pipe_wait_done(snap_pagepipe *p)
{
	if (p->claim < p->head)
		pthread_cond_broadcast(&p->wake);
	p->producer_waiting = 1;
	while (!run_ready(p, p->tail, p->ready))
		pthread_cond_wait(&p->done, &p->mu);
	p->producer_waiting = 0;
}

int snap_pagepipe_push(snap_pagepipe *p, uint32_t pgno, int64_t id,
		       const void *in, size_t inlen, const uint8_t *want)
{
	slot *s;

	pthread_mutex_lock(&p->mu);
	pipe_commit_ready(p);
	while (p->head - p->tail == PIPE_SLOTS) {
		pipe_wait_done(p);
		pipe_commit_ready(p);
	}
	s = &p->slots[p->head % PIPE_SLOTS];
	pthread_mutex_unlock(&p->mu);

	if (inlen > p->bufsize)
		inlen = p->bufsize;
	s->s.pgno = pgno;
	s->s.id = id;
	s->s.inlen = inlen;
	s->s.outlen = 0;
	s->s.status = 0;
	if (inlen)
		memcpy(s->s.in, in, inlen);
	if (want)
		memcpy(s->s.want, want, 32);

	pthread_mutex_lock(&p->mu);
	s->state = SLOT_FILLED;
	p->head++;
	if (p->idle && p->head - p->claim >= PIPE_BATCH)
		pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->mu);
	return p->error;
}

int snap_pagepipe_drain(snap_pagepipe *p)
{
	pthread_mutex_lock(&p->mu);
	pipe_commit_ready(p);
	while (p->tail < p->head) {
		pipe_wait_done(p);
		pipe_commit_ready(p);
	}
	pthread_mutex_unlock(&p->mu);
	return p->error;
}

void snap_pagepipe_stop(snap_pagepipe *p)
{
	unsigned i;

	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	/* Undrained pages are dropped: mark them committed. */
	pthread_cond_broadcast(&p->wake);
	pthread_cond_broadcast(&p->ordwake);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nworkers; i++)
		pthread_join(p->workers[i], NULL);
	if (p->have_order_thread)
		pthread_join(p->order_thread, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->wake);
	pthread_cond_destroy(&p->done);
	pthread_cond_destroy(&p->ordwake);
	free(p->mem);
	free(p);
}
