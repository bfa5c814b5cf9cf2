/*
 * tests/unit/test_readahead.c — pages fetched ahead of a sequential reader
 * (engine/readahead.c) over a fake source whose page p is filled with a
 * pattern of p: a page the read-ahead gives is exactly the page asked
 * for, whatever the order of the reads; it never fetches past the last
 * page; a failed fetch leaves the page to the reader; a random reader
 * costs at most one window of fetches; the thread does fetch for a
 * sequential reader that works on each page.
 */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "readahead.h"

#define PS 512u
#define WINDOW 32u

typedef struct fake {
	uint32_t n;
	uint32_t fail_every;     /* fetches of multiples of this fail; 0 */
	int prepare_fails;
	int bad;                 /* a fetch out of 1..n (not 0) */
	unsigned prepared, fetched, released, ended;
} fake;

static void fill(uint32_t pgno, uint8_t *buf)
{
	for (uint32_t i = 0; i < PS; i += 4) {
		uint32_t v = pgno * 2654435761u + i;

		memcpy(buf + i, &v, 4);
	}
}

static int fake_prepare(void *ctx)
{
	fake *f = ctx;

	f->prepared++;
	return f->prepare_fails ? -1 : 0;
}

static void fake_release(void *ctx)
{
	fake *f = ctx;

	f->ended++;
}

/* Runs on the read-ahead's thread only; the counters are read after
 * snap_readahead_free joined it. */
static int fake_fetch(void *ctx, uint32_t pgno, void *buf)
{
	fake *f = ctx;

	if (pgno == 0) {
		f->released++;
		return 0;
	}
	if (pgno > f->n || !buf)
		f->bad = 1;
	f->fetched++;
	if (f->fail_every && pgno % f->fail_every == 0)
		return -EIO;
	fill(pgno, buf);
	/* Fetches of uneven cost, so the window moves with some under way. */
	for (uint32_t i = 0; i < pgno % 5; i++) {
		uint8_t md[32];

		EVP_Digest(buf, PS, md, NULL, EVP_sha256(), NULL);
	}
	return 0;
}

/* Read pages in the given order; every page the read-ahead gives must be
 * that page.  Returns the pages it gave. */
static unsigned read_pages(snap_readahead *ra, const uint32_t *order,
			   size_t count, int work)
{
	uint8_t got[PS], want[PS], md[32];
	unsigned hits = 0;

	for (size_t k = 0; k < count; k++) {
		memset(got, 0xee, PS);
		if (snap_readahead_take(ra, order[k], got)) {
			fill(order[k], want);
			if (memcmp(got, want, PS) != 0)
				fail_msg("page %u: the read-ahead gave another "
					 "page's bytes", order[k]);
			hits++;
		}
		/* Work of the reader's own per page (a copy's, a check's). */
		for (int i = 0; i < work; i++)
			EVP_Digest(got, PS, md, NULL, EVP_sha256(), NULL);
	}
	return hits;
}

static void test_a_sequential_reader_gets_its_pages_from_the_thread(
	void **state)
{
	fake f = { .n = 20000 };
	uint32_t *order = malloc(f.n * sizeof(*order));
	snap_readahead *ra;
	uint64_t fetched, taken;
	unsigned hits;

	(void)state;
	for (uint32_t p = 1; p <= f.n; p++)
		order[p - 1] = p;
	ra = snap_readahead_new(PS, f.n, WINDOW, fake_prepare, fake_fetch,
				fake_release, &f);
	assert_non_null(ra);
	hits = read_pages(ra, order, f.n, 8);
	snap_readahead_counts(ra, &fetched, &taken);
	/* The last page taken, it stopped and gave back what it made. */
	assert_int_equal(f.ended, 1);
	snap_readahead_free(ra);
	assert_int_equal(f.bad, 0);
	assert_int_equal(f.prepared, 1);
	assert_int_equal(taken, hits);
	/* The reader hashes each page 8 times: the thread, fetching only,
	 * keeps ahead of it (how far depends on the machine's load: that
	 * it gave pages at all is what is certain). */
	assert_true(hits > 0);
	assert_true(fetched <= f.n);
	assert_true(f.released >= 1);
	free(order);
}

static void test_pages_come_right_in_any_order(void **state)
{
	fake f = { .n = 3000 };
	uint32_t *order = malloc(4 * f.n * sizeof(*order));
	size_t k = 0;
	snap_readahead *ra;

	(void)state;
	srand(7);
	/* Runs with a page from elsewhere between them (a b-tree's interior
	 * page between its leaves), runs elsewhere, backwards, to the end. */
	for (uint32_t p = 1; p <= 1500; p++) {
		order[k++] = p;
		if (p % 100 == 0)
			order[k++] = 2000 + p / 100;
	}
	for (uint32_t p = 2500; p <= f.n; p++)
		order[k++] = p;
	for (uint32_t p = 600; p >= 500; p--)
		order[k++] = p;
	for (uint32_t p = 1400; p <= 1700; p++)
		order[k++] = p;
	for (int i = 0; i < 2000; i++)
		order[k++] = 1 + (uint32_t)rand() % f.n;
	ra = snap_readahead_new(PS, f.n, WINDOW, fake_prepare, fake_fetch,
				fake_release, &f);
	assert_non_null(ra);
	read_pages(ra, order, k, 1);
	snap_readahead_free(ra);
	assert_int_equal(f.bad, 0);
	free(order);
}

static void test_a_random_reader_starts_nothing(void **state)
{
	fake f = { .n = 100000 };
	uint32_t order[5000];
	snap_readahead *ra;

	(void)state;
	srand(11);
	/* Four pages in a row start it; then no run of four again. */
	for (uint32_t p = 1; p <= 4; p++)
		order[p - 1] = p;
	for (size_t k = 4; k < 5000; k++)
		order[k] = 10 + (uint32_t)(k * 7919u % 99000u);
	ra = snap_readahead_new(PS, f.n, WINDOW, fake_prepare, fake_fetch,
				fake_release, &f);
	assert_non_null(ra);
	read_pages(ra, order, 5000, 0);
	snap_readahead_free(ra);
	assert_int_equal(f.bad, 0);
	assert_int_equal(f.prepared, 0);
	assert_int_equal(f.fetched, 0);
}

static void test_a_failed_fetch_leaves_the_page_to_the_reader(void **state)
{
	fake f = { .n = 4000, .fail_every = 7 };
	uint8_t buf[PS];
	snap_readahead *ra;

	(void)state;
	ra = snap_readahead_new(PS, f.n, WINDOW, fake_prepare, fake_fetch,
				fake_release, &f);
	assert_non_null(ra);
	for (uint32_t p = 1; p <= f.n; p++) {
		uint8_t md[32];

		if (snap_readahead_take(ra, p, buf) && p % 7 == 0)
			fail_msg("page %u: a failed fetch was given", p);
		for (int i = 0; i < 4; i++)
			EVP_Digest(buf, PS, md, NULL, EVP_sha256(), NULL);
	}
	snap_readahead_free(ra);
	assert_int_equal(f.bad, 0);
}

static void test_a_short_image_and_no_thread(void **state)
{
	fake f = { .n = WINDOW - 1 }, g = { .n = 1000, .prepare_fails = 1 };
	uint32_t order[1000];
	snap_readahead *ra;

	(void)state;
	for (uint32_t p = 1; p <= 1000; p++)
		order[p - 1] = p;
	/* Fewer pages than the window: never started. */
	ra = snap_readahead_new(PS, f.n, WINDOW, fake_prepare, fake_fetch,
				fake_release, &f);
	assert_non_null(ra);
	read_pages(ra, order, f.n, 0);
	snap_readahead_free(ra);
	assert_int_equal(f.prepared, 0);
	/* What the thread needs cannot be made: the reader reads alone. */
	ra = snap_readahead_new(PS, g.n, WINDOW, fake_prepare, fake_fetch,
				fake_release, &g);
	assert_non_null(ra);
	assert_int_equal(read_pages(ra, order, g.n, 0), 0);
	snap_readahead_free(ra);
	assert_int_equal(g.prepared, 1);
	assert_int_equal(g.fetched, 0);
	/* Never started: freed without a thread. */
	snap_readahead_free(snap_readahead_new(PS, 10, WINDOW, fake_prepare,
					       fake_fetch, fake_release, &g));
}

static void test_at_most_max_run_at_once(void **state)
{
	enum { N = SNAP_READAHEAD_MAX + 2 };
	fake f[N];
	snap_readahead *ra[N];
	uint32_t order[400];
	unsigned started = 0;

	(void)state;
	for (uint32_t p = 1; p <= 400; p++)
		order[p - 1] = p;
	for (int i = 0; i < N; i++) {
		memset(&f[i], 0, sizeof(f[i]));
		f[i].n = 1000;
		ra[i] = snap_readahead_new(PS, f[i].n, WINDOW, fake_prepare,
					   fake_fetch, fake_release, &f[i]);
		assert_non_null(ra[i]);
		read_pages(ra[i], order, 400, 0);
		started += f[i].prepared;
	}
	assert_int_equal(started, SNAP_READAHEAD_MAX);
	/* One ends (its last page): the next long run may start one. */
	uint32_t last = f[0].n;
	read_pages(ra[0], &last, 1, 0);
	assert_int_equal(f[0].ended, 1);
	assert_int_equal(f[N - 1].prepared, 0);
	read_pages(ra[N - 1], order + 200, 200, 0);   /* a run from 201 */
	assert_int_equal(f[N - 1].prepared, 1);
	for (int i = 0; i < N; i++) {
		snap_readahead_free(ra[i]);
		assert_int_equal(f[i].bad, 0);
		assert_int_equal(f[i].ended, f[i].prepared);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
			test_a_sequential_reader_gets_its_pages_from_the_thread),
		cmocka_unit_test(test_pages_come_right_in_any_order),
		cmocka_unit_test(test_a_random_reader_starts_nothing),
		cmocka_unit_test(test_a_failed_fetch_leaves_the_page_to_the_reader),
		cmocka_unit_test(test_a_short_image_and_no_thread),
		cmocka_unit_test(test_at_most_max_run_at_once),
	};
	return cmocka_run_group_tests_name("readahead", tests, NULL, NULL);
}
