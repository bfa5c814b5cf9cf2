/*
 * engine/replica_inplace.c — a replica's snapshot image read in place, a
 * byte range at a time (snap_replica_image_*, which the read-only replica
 * mount serves): each page fetched through the replica's cache of
 * PACK_CACHE packs and proven against its SHA-256 (replica_read.c).
 *
 * A reader that reads on from where it stopped (cp, rsync, a file
 * manager's copy) gets the image a window at a time: the window's pages
 * are read in the order of their packs, the packs already cached first,
 * so each pack is fetched at most once per window; a read of several
 * pages reads them the same way.  Read in page order, a
 * snapshot whose pages came in several runs (scattered rows changed
 * between snapshots, each replicated on its own) interleaves more packs
 * than the cache keeps, and almost every page fetched a pack again: 78 MB
 * of four runs took 29 s to copy out of a file:// replica, against 0.7 s
 * for an export.  Every read fetches only the pages it covers but for
 * those: a reader that reads on gets the rest of the window.
 */
#include "replica_int.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct wslot {
	size_t pack;           /* its place in r->firsts */
	int cold;              /* 1: not cached when the window was planned */
	uint64_t seq;
	uint32_t at;           /* the page's place in the window */
};

struct snap_replica_image {
	snap_replica *r;
	rrow row;
	int64_t *seqs;         /* the page map: seqs of pages 1..N */
	uint8_t *page;         /* the last page read alone (page_size bytes) */
	int64_t cur;           /* its index (0-based), -1: none */
	uint8_t *win;          /* a sequential reader's window of pages */
	struct wslot *plan;    /* ... and the order it is read in */
	uint32_t win_cap;      /* pages it holds */
	uint32_t win_first;    /* index (0-based) of its first page */
	uint32_t win_n;        /* pages in it, 0: none */
	uint64_t next_off;     /* where the last read ended */
	uint32_t bad_first;    /* pages a window failed to read: read alone */
	uint32_t bad_n;
	int borrowed;          /* row and seqs are the caller's */
};

/* A new image of row (copied), its page buffer allocated. */
static int image_new(snap_replica *r, const rrow *row,
		     snap_replica_image **out, snap_err *err)
{
	snap_replica_image *img = calloc(1, sizeof *img);
	*out = NULL;
	if (!img || !(img->page = malloc(row->si.page_size ?
					 row->si.page_size : 1))) {
		free(img);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	img->r = r;
	img->row = *row;
	img->cur = -1;
	*out = img;
	return 0;
}

int snap_replica_image_of(snap_replica *r, const rrow *row, int64_t *seqs,
			  snap_replica_image **out, snap_err *err)
{
	int rc = image_new(r, row, out, err);
	if (rc == 0) {
		(*out)->seqs = seqs;
		(*out)->borrowed = 1;
	}
	return rc;
}

int snap_replica_image_open(snap_replica *r, const char *name,
			    snap_replica_image **out, snap_err *err)
{
	snap_replica_image *img = NULL;
	rrow row;
	*out = NULL;
	int rc = snap_replica_row_find(r, name, &row, err);
	if (rc == 0 && !row.si.page_size)
		rc = snap_err_set(err, -EIO, "%s: page size 0 in its catalog "
				  "row", name);
	if (rc == 0)
		rc = image_new(r, &row, &img, err);
	if (rc == 0 && !r->firsts)
		rc = snap_replica_firsts_load(r, err);
	if (rc == 0)
		rc = snap_replica_map_load(r, &img->row, &img->seqs, err);
	if (rc < 0) {
		snap_replica_image_close(img);
		return rc;
	}
	*out = img;
	return 0;
}

/* Cached packs first, then by pack and seq: each pack once. */
static int wslot_cmp(const void *a, const void *b)
{
	const struct wslot *x = a, *y = b;
	if (x->cold != y->cold)
		return x->cold - y->cold;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

/* Fill the window with want pages (at most its size, at most to the
 * image's end) from index first on. */
static int window_fill(snap_replica_image *img, uint32_t first,
		       uint32_t want, snap_err *err)
{
	const snap_info *si = &img->row.si;
	snap_replica *r = img->r;
	if (!img->win) {
		uint32_t cap = REPLICA_WINDOW / si->page_size;
		cap = cap ? cap : 1;
		uint8_t *win = malloc((size_t)cap * si->page_size);
		struct wslot *plan = malloc((size_t)cap * sizeof *plan);
		if (!win || !plan) {
			free(win);
			free(plan);
			return snap_err_set(err, -ENOMEM, "out of memory");
		}
		img->win = win;
		img->plan = plan;
		img->win_cap = cap;
	}
	uint32_t n = si->page_count - first;
	if (n > want)
		n = want;
	if (n > img->win_cap)
		n = img->win_cap;
	img->win_n = 0;
	for (uint32_t j = 0; j < n; j++) {
		uint64_t seq = (uint64_t)img->seqs[first + j];
		size_t k = snap_replica_pack_of(r, seq);
		img->plan[j] = (struct wslot){k, !snap_replica_pack_cached(r, k),
					      seq, j};
	}
	qsort(img->plan, n, sizeof *img->plan, wslot_cmp);
	for (uint32_t j = 0; j < n; j++) {
		const struct wslot *w = &img->plan[j];
		int rc = snap_replica_page_read(r, w->seq, si->page_size,
						img->win + (size_t)w->at *
						si->page_size, err);
		if (rc < 0) {
			snap_err_prefix(err, "%s, page %lld", si->name,
					(long long)first + w->at + 1);
			return rc;
		}
	}
	img->win_first = first;
	img->win_n = n;
	return 0;
}

/* Page i (0-based) of the image, of a read that ends before page end:
 * from the window; else, when the read covers more pages than this one,
 * into the window (a whole window when the reader reads on: stream);
 * else read alone into img->page. */
static const uint8_t *page_at(snap_replica_image *img, uint32_t i,
			      uint32_t end, int stream, snap_err *err)
{
	const snap_info *si = &img->row.si;
	if (img->win_n && i - img->win_first < img->win_n)
		return img->win + (size_t)(i - img->win_first) * si->page_size;
	if ((stream || end - i > 1) && i - img->bad_first >= img->bad_n) {
		uint32_t want = stream ? UINT32_MAX : end - i;
		int rc = window_fill(img, i, want, err);
		if (rc == 0)
			return img->win;
		/* Out of memory, interrupted, stopping, the server out of
		 * reach: not the data, nothing to remember. */
		if (rc != -EIO && rc != -EFBIG)
			return NULL;
		/* A page of the window does not read: the pages it would
		 * have held are read alone, so only the reads that cover a
		 * damaged page fail (dd conv=noerror salvages the rest). */
		img->bad_first = i;
		img->bad_n = want < img->win_cap ? want : img->win_cap;
		snap_err_clear(err);
	}
	if (img->cur != i) {
		img->cur = -1;
		int rc = snap_replica_page_read(img->r, (uint64_t)img->seqs[i],
						si->page_size, img->page, err);
		if (rc < 0) {
			snap_err_prefix(err, "%s, page %lld", si->name,
					(long long)i + 1);
			return NULL;
		}
		img->cur = i;
	}
	return img->page;
}

long snap_replica_image_read(snap_replica_image *img, void *buf, size_t len,
			     uint64_t off, snap_err *err)
{
	const snap_info *si = &img->row.si;
	uint64_t size = (uint64_t)si->page_size * si->page_count;
	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	if (len > (size_t)LONG_MAX)
		len = (size_t)LONG_MAX;
	/* Reading on from the last read's end: a copy of the whole file. */
	int stream = off > 0 && off == img->next_off;
	uint32_t end = (uint32_t)((off + len + si->page_size - 1) /
				  si->page_size);
	size_t done = 0;
	while (done < len) {
		uint64_t at = off + done;
		size_t in = (size_t)(at % si->page_size);
		const uint8_t *p = page_at(img, (uint32_t)(at / si->page_size),
					   end, stream, err);
		if (!p)
			return err->code ? err->code : -EIO;
		size_t n = si->page_size - in;
		if (n > len - done)
			n = len - done;
		memcpy((uint8_t *)buf + done, p + in, n);
		done += n;
	}
	img->next_off = off + done;
	return (long)done;
}

const snap_info *snap_replica_image_info(const snap_replica_image *img)
{
	return &img->row.si;
}

void snap_replica_image_close(snap_replica_image *img)
{
	if (!img)
		return;
	if (!img->borrowed)
		free(img->seqs);
	free(img->page);
	free(img->win);
	free(img->plan);
	free(img);
}
