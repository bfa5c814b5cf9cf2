/*
 * fs/live.h — the live database as the daemon sees it, and its images
 * (live.c, liveimage.c, livectl.c).  Connections to the live database,
 * its data_version and page 1 of an image: engine/livedb.h.
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_LIVE_H
#define FS_LIVE_H

#include "ino.h"
#include "livedb.h"

/* ---- the live database (live.c) ----------------------------------------- */

struct snap_live;

struct snap_peek;

/*
 * One consistent image of the live database: its first bytes in memory
 * (a peek), the whole in an unlinked private file, or both.  Shared by
 * every read-only handle opened while the database was unchanged.  head,
 * head_len, size, page_size and gen never change; the rest is protected
 * by live->lock (fd, once set, never changes either).
 */
struct snap_live_image {
	int fd;          /* the whole, on an unlinked file, or -1: not
			    copied (yet) */
	uint64_t size;   /* bytes */
	uint64_t gen;    /* the live generation the image was taken at */
	unsigned refs;
	unsigned char *head;  /* the first head_len bytes, or NULL */
	size_t head_len;      /* whole pages; = size: the head is all */
	uint32_t page_size;
	struct snap_peek *peek; /* the read transaction the rest will be
				   copied from, or NULL */
	int64_t hold_until_ns;  /* built by then (monotonic clock) */
	int build_rc;           /* the copy of the rest failed: why */
	struct snap_live_image *held_next; /* live's list of held images */
};

int snap_live_open(const char *db_path, const char *tmpdir,
		   struct snap_live **out, snap_err *err);
void snap_live_close(struct snap_live *l);
/* Check the live database; returns its generation (moves on any commit,
 * any replacement of the file).  Cheap: one small read transaction. */
uint64_t snap_live_gen(struct snap_live *l);
/* A consistent image of the live database as it is now, copied whole
 * (fd >= 0; reused while the generation is unchanged).  Release with
 * snap_live_image_put. */
int snap_live_image_get(struct snap_live *l, struct snap_live_image **out,
			snap_err *err);
/* The image a read-only open of current.db reads: the current one, or a
 * new peek (its size and first pages; the rest is copied from the same
 * read transaction by the first read beyond them).  No copy, no staging
 * file until then.  Release with snap_live_image_put. */
int snap_live_image_open(struct snap_live *l, struct snap_live_image **out,
			 snap_err *err);
/* Where the bytes of a read of size at off are: *len bytes (0 at the
 * end) at *buf, or, when *fd >= 0, at off in *fd.  0, or the negative
 * errno of a failed copy of the rest. */
int snap_live_image_read(struct snap_live *l, struct snap_live_image *im,
			 uint64_t off, size_t size, int *fd,
			 const void **buf, size_t *len, snap_err *err);
void snap_live_image_put(struct snap_live *l, struct snap_live_image *im);
/* How many opens were served by a peek, and how many images were copied
 * into staging (status.json). */
void snap_live_counts(struct snap_live *l, uint64_t *peeks,
		      uint64_t *builds);
/* Around a restore: no daemon connection on the live database (the
 * engine's WAL page-size switch needs that); image builds wait. */
void snap_live_quiesce(struct snap_live *l);
void snap_live_resume(struct snap_live *l);
/* stat() of the live file (never open()ed). */
int snap_live_stat(struct snap_live *l, struct stat *st);
/* The size in bytes of the image a read-only open would get now (for a
 * WAL database it counts committed pages still in the WAL); 0, or -EAGAIN
 * when the database cannot be asked. */
int snap_live_size(struct snap_live *l, uint64_t *size);
/* "wal", "delete", ... of the live database, for status; "" if unknown. */
void snap_live_journal_mode(struct snap_live *l, char *out, size_t len);

#endif /* FS_LIVE_H */
