/*
 * tests/unit/test_codec.c — page packing, page maps, the in-memory tables
 * (engine/codec.c; the prefix index also through a capture) and the
 * hashing/compression pipeline (engine/pagepipe.c).
 */
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "codec.h"
#include "pagepipe.h"

/* A page that compresses (text-like) or not (pseudo-random). */
static void fill_page(uint8_t *p, size_t n, unsigned seed, int compressible)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = compressible ? (uint8_t)("snapfs page "[i % 12] + seed % 3)
				    : (uint8_t)(x >> 24);
	}
}

static void test_pack_round_trips_compressible_and_random_pages(void **state)
{
	(void)state;
	snap_codec c;
	uint8_t page[4096], back[4096], z[ZSTD_COMPRESSBOUND(4096)];

	assert_int_equal(snap_codec_init(&c), 0);
	for (int kind = 0; kind < 2; kind++) {
		fill_page(page, sizeof(page), 7, kind == 0);
		size_t zl = snap_codec_pack(&c, page, sizeof(page), z, sizeof(z));
		if (kind == 0)
			assert_true(zl < sizeof(page));
		else
			assert_int_equal(zl, sizeof(page));   /* stored raw */
		memset(back, 0, sizeof(back));
		assert_int_equal(snap_codec_unpack(&c, z, zl, back,
						   sizeof(back)), 0);
		assert_memory_equal(page, back, sizeof(page));
	}
	snap_codec_free(&c);
}

static void test_a_damaged_compressed_page_fails_to_decode(void **state)
{
	(void)state;
	snap_codec c;
	uint8_t page[4096], back[4096], z[ZSTD_COMPRESSBOUND(4096)];
	int failures = 0;

	assert_int_equal(snap_codec_init(&c), 0);
	fill_page(page, sizeof(page), 3, 1);
	size_t zl = snap_codec_pack(&c, page, sizeof(page), z, sizeof(z));
	assert_true(zl < sizeof(page));
	/* Flip each byte after the frame header in turn: the frame checksum
	 * must reject every one that would otherwise decode to other bytes. */
	for (size_t i = 6; i < zl; i++) {
		z[i] ^= 0x40;
		int rc = snap_codec_unpack(&c, z, zl, back, sizeof(back));
		if (rc == 0 && memcmp(back, page, sizeof(page)) != 0)
			fail_msg("flip at %zu decoded to different bytes", i);
		failures += rc != 0;
		z[i] ^= 0x40;
	}
	assert_true(failures > 0);
	snap_codec_free(&c);
}

static void test_page_map_round_trips_and_rejects_damage(void **state)
{
	(void)state;
	enum { N = 5000 };
	int64_t ids[N], *back = NULL;
	void *blob = NULL;
	size_t len = 0;

	for (int i = 0; i < N; i++)
		ids[i] = i % 7 == 0 ? 1 : 1000 + i * 3 - (i % 5);
	assert_int_equal(snap_map_encode(ids, N, &blob, &len), 0);
	assert_int_equal(snap_map_decode(blob, len, N, &back), 0);
	assert_memory_equal(ids, back, sizeof(ids));
	free(back);
	back = NULL;
	/* The wrong length or a damaged blob is an error, never a map. */
	assert_int_not_equal(snap_map_decode(blob, len, N + 1, &back), 0);
	((uint8_t *)blob)[len / 2] ^= 0xff;
	assert_int_not_equal(snap_map_decode(blob, len, N, &back), 0);
	free(blob);
}

/*
 * The map is encoded a chunk of 8,192 ids at a time into an output that
 * grows: every count around a chunk's length, none, and random ids that
 * do not compress (the output outgrows its first 64 KB many times) come
 * back whole.
 */
static void test_page_map_round_trips_across_chunks(void **state)
{
	static const uint32_t counts[] = { 0, 1, 8191, 8192, 8193,
					   3 * 8192 + 5, 100000 };
	uint64_t x = 0x9e3779b97f4a7c15u;

	(void)state;
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		uint32_t n = counts[k];
		int64_t *ids = malloc((n ? n : 1) * sizeof(*ids)), *back = NULL;
		void *blob = NULL;
		size_t len = 0;

		assert_non_null(ids);
		for (uint32_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			ids[i] = n == 100000 ? (int64_t)(x >> 1) : 1 + i;
		}
		assert_int_equal(snap_map_encode(ids, n, &blob, &len), 0);
		if (n == 100000)
			assert_true(len > 64 * 1024);
		assert_int_equal(snap_map_decode(blob, len, n, &back), 0);
		if (n)
			assert_memory_equal(ids, back, n * sizeof(*ids));
		assert_int_not_equal(snap_map_decode(blob, len, n + 1, &back),
				     0);
		free(back);
		free(blob);
		free(ids);
	}
}

/*
 * A page count is catalog data: one the frame does not hold is refused
 * before anything is allocated for it (found by tests/fuzz/fuzz_codec.c:
 * a count of 0x2b000000 allocated 5.7 GB first).  The child runs with its
 * address space limited to what it uses plus 256 MB, where allocating for
 * 2^32-1 ids (32 GB) fails: the answer would be -ENOMEM, or under
 * AddressSanitizer a fatal report, instead of -EIO for a damaged map.
 */
static void test_page_map_count_is_checked_before_allocating(void **state)
{
	(void)state;
	int64_t ids[3] = { 7, 8, 9 };
	void *blob = NULL;
	size_t len = 0;
	int status = 0;
	pid_t pid;

	assert_int_equal(snap_map_encode(ids, 3, &blob, &len), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		unsigned long vm = 0;
		FILE *f = fopen("/proc/self/statm", "r");
		struct rlimit rl;
		int64_t *back = NULL;
		int rc;

		if (!f || fscanf(f, "%lu", &vm) != 1)
			_exit(2);
		fclose(f);
		rl.rlim_cur = rl.rlim_max = (rlim_t)vm *
			(rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)256 << 20);
		if (setrlimit(RLIMIT_AS, &rl) != 0)
			_exit(2);
		rc = snap_map_decode(blob, len, UINT32_MAX, &back);
		_exit(rc == -EIO && back == NULL ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(blob);
}

static void test_page_index_finds_every_hash_through_growth(void **state)
{
	(void)state;
	snap_pageidx ix;
	uint8_t sha[32];

	assert_int_equal(snap_pageidx_init(&ix, 4), 0);
	for (int i = 1; i <= 20000; i++) {
		snap_sha256(&i, sizeof(i), sha);
		assert_int_equal(snap_pageidx_put(&ix, sha, i), 0);
	}
	for (int i = 1; i <= 20000; i++) {
		snap_sha256(&i, sizeof(i), sha);
		assert_int_equal(snap_pageidx_get(&ix, sha), i);
	}
	int missing = 0;
	snap_sha256(&missing, sizeof(missing), sha);
	assert_int_equal(snap_pageidx_get(&ix, sha), 0);
	snap_pageidx_free(&ix);
}

static void test_prefix_index_keeps_every_candidate_of_a_prefix(void **state)
{
	(void)state;
	snap_pfxidx ix;
	uint8_t a[32], b[32], c[32], sha[32];
	size_t pos;
	int64_t id, seen;

	/* a, b and c share their first 8 bytes and differ after. */
	memset(a, 0x5a, sizeof(a));
	memcpy(b, a, sizeof(b));
	b[31] ^= 1;
	memcpy(c, a, sizeof(c));
	c[8] ^= 0x80;
	assert_int_equal(snap_pfxidx_init(&ix, 4), 0);
	assert_false(snap_pfxidx_has(&ix, a));
	assert_int_equal(snap_pfxidx_add(&ix, a, 7), 0);
	assert_int_equal(snap_pfxidx_add(&ix, b, 9), 0);
	assert_int_equal(snap_pfxidx_add(&ix, a, 7), 0);   /* kept once */
	/* Growth (20,000 more) keeps them apart and findable. */
	for (int i = 1; i <= 20000; i++) {
		snap_sha256(&i, sizeof(i), sha);
		assert_int_equal(snap_pfxidx_add(&ix, sha, 100 + i), 0);
	}
	assert_int_equal(ix.used, 20002);
	for (int i = 1; i <= 20000; i += 97) {
		snap_sha256(&i, sizeof(i), sha);
		pos = 0;
		assert_int_equal(snap_pfxidx_next(&ix, sha, &pos), 100 + i);
		assert_int_equal(snap_pfxidx_next(&ix, sha, &pos), 0);
	}
	/* c was never added: its prefix gives a's and b's ids, each once,
	 * as candidates only (the caller confirms on the full hash). */
	assert_true(snap_pfxidx_has(&ix, c));
	pos = 0;
	seen = 0;
	while ((id = snap_pfxidx_next(&ix, c, &pos)) != 0)
		seen += id == 7 ? 1 : id == 9 ? 10 : 100;
	assert_int_equal(seen, 11);
	assert_int_equal(snap_pfxidx_next(&ix, c, &pos), 0);
	sha[0] = (uint8_t)~a[0];
	memset(sha + 1, 0, 31);
	pos = 0;
	assert_int_equal(snap_pfxidx_next(&ix, sha, &pos), 0);
	snap_pfxidx_free(&ix);
	pos = 0;
	assert_int_equal(snap_pfxidx_next(&ix, a, &pos), 0);   /* empty */
}

/*
 * A capture's index keeps only a prefix of each hash: a candidate that
 * shares the prefix of a new page but not its full hash must not be taken
 * for it.  The store is made to hold such a page (an old page's recorded
 * hash rewritten to the new page's prefix and another tail), and the
 * whole-store index is forced (no kept page hashes): the new page must be
 * stored as itself, the others still found in the store.
 */
static void test_capture_prefix_collision_is_not_a_hit(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 4096, 2000);
	snap_info a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db), *sd;
	size_t n0 = 0, n1 = 0, ilen = 0, ps = 4096, off;
	uint8_t *before = tu_read_file(env->db, &n0), *now, *img, sha[32];
	char hex[65], p[PATH_MAX];
	uint32_t pg = 0, other;
	int64_t x, pages;
	snap_err e;

	tu_exec(db, "UPDATE t SET pad='collide' WHERE id=900");
	sqlite3_close(db);
	now = tu_read_file(env->db, &n1);
	assert_int_equal(n0, n1);
	for (off = ps; !pg && off < n1; off += ps)
		if (memcmp(before + off, now + off, ps))
			pg = (uint32_t)(off / ps) + 1;
	assert_true(pg > 1);
	tu_sha256(now + (pg - 1) * ps, ps, sha);
	x = tu_page_id(st, a.id, pg);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x",
			 i < 8 ? sha[i] : (uint8_t)~sha[i]);
	snprintf(p, sizeof(p), "%s.snapfs/store.db", env->db);
	sd = tu_open(p);
	tu_exec(sd, "UPDATE pages SET hash=X'%s' WHERE id=%lld", hex,
		(long long)x);
	tu_exec(sd, "DELETE FROM meta WHERE key GLOB 'capture_hashes*'");
	sqlite3_close(sd);
	pages = tu_pages(st);

	snap_info b = tu_snap(st, "b");
	assert_true(tu_page_id(st, b.id, pg) != x);
	other = pg == 2 ? 3 : 2;
	assert_int_equal(tu_page_id(st, b.id, other),
			 tu_page_id(st, a.id, other));
	img = tu_image_bytes(st, b.id, &ilen);
	assert_int_equal(ilen, n1);
	assert_memory_equal(img + (pg - 1) * ps, now + (pg - 1) * ps, ps);
	assert_memory_equal(img + 100, now + 100, n1 - 100);
	/* One new page for pg; page 1 may be new too, nothing else. */
	assert_true(tu_pages(st) - pages >= 1 && tu_pages(st) - pages <= 2);
	snap_err_clear(&e);
	if (snap_verify_snapshot(st, b.id, 0, NULL, NULL, &e) != 0)
		fail_msg("verify b: %s", e.msg);
	tu_assert_runs(st);
	free(img);
	free(before);
	free(now);
}

static void test_id_counts_add_and_answer_membership(void **state)
{
	(void)state;
	snap_idcount m;

	assert_int_equal(snap_idcount_init(&m, 2), 0);
	for (int64_t id = 1; id <= 10000; id++)
		assert_int_equal(snap_idcount_add(&m, id * 7, id % 3 - 1), 0);
	assert_int_equal(snap_idcount_add(&m, 7, 5), 0);
	for (int64_t id = 1; id <= 10000; id++)
		assert_true(snap_idcount_has(&m, id * 7));
	assert_false(snap_idcount_has(&m, 6));
	int64_t c7 = 0;
	for (size_t i = 0; i < m.cap; i++)
		if (m.ids[i] == 7)
			c7 = m.counts[i];
	assert_int_equal(c7, 1 % 3 - 1 + 5);
	snap_idcount_free(&m);
}

/* --- the pipeline ---------------------------------------------------- */

typedef struct pipe_ctx {
	uint32_t next;        /* pgno expected at the next commit */
	int known;            /* commits whose page lookup said known */
	int packed;           /* commits that carried stored bytes */
	int fail_at;          /* pgno whose commit fails, 0 = none */
	snap_codec codec;
} pipe_ctx;

/* Work as a capture does: hash; odd hashes are "already stored", the
 * others are compressed. */
static void pipe_work(void *ctx, snap_pipe_slot *s, snap_codec *codec)
{
	(void)ctx;
	snap_sha256(s->in, s->inlen, s->sha);
	s->id = s->sha[31] & 1 ? 42 : 0;
	if (!s->id)
		s->outlen = snap_codec_pack(codec, s->in, s->inlen, s->out,
					    snap_pagepipe_bufsize(4096));
}

static int pipe_commit(void *ctx, const snap_pipe_slot *p)
{
	pipe_ctx *c = ctx;
	uint8_t sha[32], back[4096];

	if (p->pgno != c->next)
		fail_msg("commit of page %u, expected %u", p->pgno, c->next);
	c->next++;
	snap_sha256(p->in, 4096, sha);
	assert_memory_equal(sha, p->sha, 32);
	/* The producer's expectation travels with the page. */
	assert_int_equal(p->want[0], (uint8_t)p->pgno);
	if (p->id) {
		assert_int_equal(p->id, 42);
		c->known++;
	} else {
		assert_int_equal(snap_codec_unpack(&c->codec, p->out, p->outlen,
						   back, sizeof(back)), 0);
		assert_memory_equal(back, p->in, sizeof(back));
		c->packed++;
	}
	return (int)p->pgno == c->fail_at ? -ENOSPC : 0;
}

/* Push page i with want[0] = i. */
static int push(snap_pagepipe *p, uint32_t i, const uint8_t *page)
{
	uint8_t want[32] = { (uint8_t)i };

	return snap_pagepipe_push(p, i, 0, page, 4096, want);
}

static void test_pipeline_commits_every_page_in_order(void **state)
{
	(void)state;
	pipe_ctx c = { .next = 1 };
	snap_pagepipe *p = NULL;
	uint8_t page[4096];

	assert_int_equal(snap_codec_init(&c.codec), 0);
	assert_int_equal(snap_pagepipe_start(&p, 4096, pipe_work,
					     pipe_commit, &c), 0);
	for (uint32_t i = 1; i <= 3000; i++) {
		fill_page(page, sizeof(page), i, i % 4 != 0);
		assert_int_equal(push(p, i, page), 0);
	}
	assert_int_equal(snap_pagepipe_drain(p), 0);
	snap_pagepipe_stop(p);
	assert_int_equal(c.next, 3001);
	assert_int_equal(c.known + c.packed, 3000);
	assert_true(c.known > 0 && c.packed > 0);
	snap_codec_free(&c.codec);
}

static void test_pipeline_reports_the_first_commit_error(void **state)
{
	(void)state;
	pipe_ctx c = { .next = 1, .fail_at = 100 };
	snap_pagepipe *p = NULL;
	uint8_t page[4096];

	assert_int_equal(snap_codec_init(&c.codec), 0);
	assert_int_equal(snap_pagepipe_start(&p, 4096, pipe_work,
					     pipe_commit, &c), 0);
	for (uint32_t i = 1; i <= 1000; i++) {
		fill_page(page, sizeof(page), i, 1);
		int rc = push(p, i, page);
		/* Pushes after the failure report it. */
		if (rc != 0)
			assert_int_equal(rc, -ENOSPC);
	}
	assert_int_equal(snap_pagepipe_drain(p), -ENOSPC);
	snap_pagepipe_stop(p);
	/* Nothing after the failed page was committed. */
	assert_int_equal(c.next, 101);
	snap_codec_free(&c.codec);
}

static void test_pipeline_stops_with_pages_still_queued(void **state)
{
	(void)state;
	pipe_ctx c = { .next = 1 };
	snap_pagepipe *p = NULL;
	uint8_t page[4096];

	assert_int_equal(snap_codec_init(&c.codec), 0);
	assert_int_equal(snap_pagepipe_start(&p, 4096, pipe_work,
					     pipe_commit, &c), 0);
	for (uint32_t i = 1; i <= 50; i++) {
		fill_page(page, sizeof(page), i, 1);
		assert_int_equal(push(p, i, page), 0);
	}
	snap_pagepipe_stop(p);   /* no drain: must not hang or leak */
	snap_codec_free(&c.codec);
}

/* The order thread: pages in push order, each after its work and before
 * its commit; it streams a hash of everything, as a capture's image hash. */
typedef struct order_ctx {
	pipe_ctx base;            /* first: pipe_commit's context */
	uint32_t ordered;         /* pages the order function saw */
	EVP_MD_CTX *md;
} order_ctx;

static void order_fn(void *ctx, const snap_pipe_slot *s)
{
	order_ctx *o = ctx;
	uint8_t sha[32];

	if (s->pgno != o->ordered + 1)
		fail_msg("order of page %u, expected %u", s->pgno,
			 o->ordered + 1);
	/* The work ran first. */
	snap_sha256(s->in, s->inlen, sha);
	assert_memory_equal(sha, s->sha, 32);
	EVP_DigestUpdate(o->md, s->in, s->inlen);
	o->ordered++;
}

static int order_commit(void *ctx, const snap_pipe_slot *p)
{
	order_ctx *o = ctx;

	/* Ordered before committed. */
	assert_true(o->ordered >= p->pgno);
	return pipe_commit(&o->base, p);
}

static void test_pipeline_order_thread_sees_pages_in_order(void **state)
{
	(void)state;
	order_ctx o = { .base = { .next = 1 } };
	EVP_MD_CTX *want = EVP_MD_CTX_new();
	snap_pagepipe *p = NULL;
	uint8_t page[4096], a[32], b[32];
	unsigned int n = 32;

	o.md = EVP_MD_CTX_new();
	assert_non_null(o.md);
	assert_non_null(want);
	EVP_DigestInit_ex(o.md, EVP_sha256(), NULL);
	EVP_DigestInit_ex(want, EVP_sha256(), NULL);
	assert_int_equal(snap_codec_init(&o.base.codec), 0);
	assert_int_equal(snap_pagepipe_start_ordered(&p, 4096, pipe_work,
						     order_fn, order_commit,
						     &o), 0);
	for (uint32_t i = 1; i <= 3000; i++) {
		fill_page(page, sizeof(page), i, i % 3 != 0);
		EVP_DigestUpdate(want, page, sizeof(page));
		assert_int_equal(push(p, i, page), 0);
	}
	assert_int_equal(snap_pagepipe_drain(p), 0);
	snap_pagepipe_stop(p);
	assert_int_equal(o.ordered, 3000);
	assert_int_equal(o.base.next, 3001);
	EVP_DigestFinal_ex(o.md, a, &n);
	EVP_DigestFinal_ex(want, b, &n);
	assert_memory_equal(a, b, 32);
	/* Stopping with pages queued neither hangs nor leaks. */
	assert_int_equal(snap_pagepipe_start_ordered(&p, 4096, pipe_work,
						     order_fn, order_commit,
						     &o), 0);
	o.ordered = 0;
	o.base.next = 1;
	for (uint32_t i = 1; i <= 50; i++) {
		fill_page(page, sizeof(page), i, 1);
		assert_int_equal(push(p, i, page), 0);
	}
	snap_pagepipe_stop(p);
	EVP_MD_CTX_free(o.md);
	EVP_MD_CTX_free(want);
	snap_codec_free(&o.base.codec);
}

/*
 * Wake-ups come in runs of ready slots (pagepipe.c): every count of
 * pages around a run's length and the ring's, drained at the end or
 * after every push (the producer's wait for fewer slots than a run), with
 * and without an order thread, commits each page once, in order.  A lost
 * wake-up hangs here, and the test's timeout fails it.
 */
static void test_pipeline_commits_runs_of_every_length(void **state)
{
	static const uint32_t counts[] = { 1, 2, 31, 32, 33, 63, 255, 256,
					   257, 600 };
	uint8_t page[4096];

	(void)state;
	for (int ordered = 0; ordered <= 1; ordered++)
	for (int each = 0; each <= 1; each++)
	for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
		order_ctx o = { .base = { .next = 1 } };
		snap_pagepipe *p = NULL;

		o.md = EVP_MD_CTX_new();
		assert_non_null(o.md);
		EVP_DigestInit_ex(o.md, EVP_sha256(), NULL);
		assert_int_equal(snap_codec_init(&o.base.codec), 0);
		if (ordered)
			assert_int_equal(snap_pagepipe_start_ordered(&p, 4096,
					 pipe_work, order_fn, order_commit,
					 &o), 0);
		else
			assert_int_equal(snap_pagepipe_start(&p, 4096,
					 pipe_work, pipe_commit, &o.base), 0);
		for (uint32_t i = 1; i <= counts[k]; i++) {
			fill_page(page, sizeof(page), i, i % 5 != 0);
			assert_int_equal(push(p, i, page), 0);
			if (each)
				assert_int_equal(snap_pagepipe_drain(p), 0);
		}
		assert_int_equal(snap_pagepipe_drain(p), 0);
		assert_int_equal(o.base.next, counts[k] + 1);
		if (ordered)
			assert_int_equal(o.ordered, counts[k]);
		snap_pagepipe_stop(p);
		snap_codec_free(&o.base.codec);
		EVP_MD_CTX_free(o.md);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pack_round_trips_compressible_and_random_pages),
		cmocka_unit_test(test_a_damaged_compressed_page_fails_to_decode),
		cmocka_unit_test(test_page_map_round_trips_and_rejects_damage),
		cmocka_unit_test(test_page_map_round_trips_across_chunks),
		cmocka_unit_test(test_page_map_count_is_checked_before_allocating),
		cmocka_unit_test(test_page_index_finds_every_hash_through_growth),
		cmocka_unit_test(test_prefix_index_keeps_every_candidate_of_a_prefix),
		tu_test(test_capture_prefix_collision_is_not_a_hit),
		cmocka_unit_test(test_id_counts_add_and_answer_membership),
		cmocka_unit_test(test_pipeline_commits_every_page_in_order),
		cmocka_unit_test(test_pipeline_reports_the_first_commit_error),
		cmocka_unit_test(test_pipeline_stops_with_pages_still_queued),
		cmocka_unit_test(test_pipeline_order_thread_sees_pages_in_order),
		cmocka_unit_test(test_pipeline_commits_runs_of_every_length),
	};
	return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
