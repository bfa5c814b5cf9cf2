/*
 * engine/capture_dict.c — the store's zstd dictionary, as a capture meets
 * it: the dictionaries it compresses with (the store's, loaded in its
 * transaction), or, in a store that has none, the first 8 MB of pages it
 * commits kept as samples and the dictionary trained on them, recorded in
 * the capture's transaction and used from the next page on.  The format
 * and why: engine/DESIGN.md §2, "Dictionary"; the rest of the capture is
 * capture.c and capture_find.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "capture.h"
#include "pagepipe.h"
#include "store_int.h"

/* The zstd level of this capture's pages: a first snapshot's at level 1
 * for speed, an incremental one's few changed pages at level 3. */
static int cap_level(const snap_capture *c)
{
	return c->prev ? SNAP_ZSTD_LEVEL_INCR : SNAP_ZSTD_LEVEL;
}

/* The dictionaries the capture compresses and decodes with now. */
const snap_dicts *snap_capture_dicts(const snap_capture *c)
{
	return c->trained.n ? &c->trained : &c->dicts;
}

/* Once the page size is known and the previous snapshot kept or not:
 * load the store's dictionaries (in the capture's transaction) and pick
 * the level, or get ready to train one.  0 or the failure kept in c. */
int snap_capture_dicts_ready(snap_capture *c)
{
	snap_err err;
	int rc;

	if (c->dicts_ready || !c->store)
		return 0;
	c->dicts_ready = 1;
	rc = snap_store_dicts_load(c->store, &c->dicts, cap_level(c), NULL,
				   NULL, &err);
	if (rc) {
		snap_capture_fail(c, rc, "%s", err.msg);
		return rc;
	}
	if (c->dicts.n == 0) {
		/* Unmapped once trained (a first snapshot's peak is later);
		 * mapped, not malloc()ed: freeing an 8 MB malloc() block
		 * raises glibc's mmap threshold, and the capture's growing
		 * arrays then leave holes in the heap (peak RSS of a 1 GB
		 * first snapshot 88.1 MB instead of 86.2). */
		void *m = mmap(NULL, SNAP_DICT_SAMPLES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		c->samples = m == MAP_FAILED ? NULL : m;
		return 0;     /* no samples, no dictionary: not an error */
	}
	snap_codec_use(&c->codec, &c->dicts);
	return 0;
}

/* Unmap the samples. */
void snap_capture_samples_free(snap_capture *c)
{
	if (c->samples)
		munmap(c->samples, SNAP_DICT_SAMPLES);
	c->samples = NULL;
}

/* Train the store's dictionary on the samples collected, record it in
 * the capture's transaction, and compress the pages from here on with
 * it.  A training that fails leaves the capture without one (the next
 * capture tries again); a dictionary that cannot be recorded fails the
 * capture, as a page that cannot be would. */
static int cap_train(snap_capture *c)
{
	size_t n = c->nsamples, i, len, *sizes = malloc(n * sizeof(*sizes));
	uint8_t *dict = malloc(SNAP_DICT_MAX);
	snap_err err;
	int rc = 0;

	if (sizes && dict) {
		for (i = 0; i < n; i++)
			sizes[i] = c->page_size;
		len = snap_dict_train(c->samples, sizes, (unsigned)n, dict,
				      SNAP_DICT_MAX);
		if (len && snap_dicts_add(&c->trained, dict, len) == 0 &&
		    snap_dicts_compress_with(&c->trained, dict, len,
					     cap_level(c)) == 0) {
			rc = snap_store_dict_insert(c->store, dict, len, &err);
			if (rc)
				snap_capture_fail(c, rc, "%s", err.msg);
		} else {
			snap_dicts_free(&c->trained);
		}
	}
	free(sizes);
	free(dict);
	snap_capture_samples_free(c);
	if (!rc && c->trained.n) {
		snap_codec_use(&c->codec, &c->trained);
		if (c->pipe)
			snap_pagepipe_use_dicts(c->pipe, &c->trained);
	}
	return rc;
}

/* Keep one committed page as a sample (the backup's thread, in page
 * order); when the samples are full, train the dictionary. */
int snap_capture_dict_sample(snap_capture *c, const uint8_t *page)
{
	memcpy(c->samples + c->nsamples++ * c->page_size, page, c->page_size);
	if ((c->nsamples + 1) * c->page_size > SNAP_DICT_SAMPLES)
		return cap_train(c);
	return 0;
}
