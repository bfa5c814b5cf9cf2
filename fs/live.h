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
/* How many opens were served by a peek, how many images were copied
 * into staging, and how many opens read a snapshot's image instead
 * (livereuse.c) (status.json). */
void snap_live_counts(struct snap_live *l, uint64_t *peeks,
		      uint64_t *builds, uint64_t *reused);

/* ---- a snapshot's image served as current.db (livereuse.c) -------------- */

/* What the watch connection saw as a daemon snapshot's capture began. */
struct snap_live_mark {
	uint64_t gen;
	int ok;          /* 0: no proof possible (restore under way, ...) */
};

/*
 * The proof that snapshot snap_id's image is the live database at
 * generation gen: the generation did not move across its capture.  The
 * file's identity when the capture ended is kept too, and must still be
 * the file's for the proof to hold.
 */
struct snap_live_proof {
	int64_t snap_id;              /* 0: none */
	uint8_t sha256[32];           /* its image's hash (the catalog's) */
	uint64_t size;                /* its image's size in bytes */
	uint64_t gen;
	dev_t dev;
	ino_t ino;
	off_t st_size;
	struct timespec mtime;
};

/* Around a snapshot of the live database the daemon takes: begin just
 * before, end just after with what was taken (NULL: nothing). */
void snap_live_capture_begin(struct snap_live *l, struct snap_live_mark *m);
void snap_live_capture_end(struct snap_live *l, const struct snap_live_mark *m,
			   int64_t snap_id, const uint8_t sha256[32],
			   uint64_t size);
/* 1 and *out when a proven snapshot's image is the live database now. */
int snap_live_reuse_find(struct snap_live *l, struct snap_live_proof *out);
/* 1 when p still holds (nothing changed since). */
int snap_live_reuse_holds(struct snap_live *l, const struct snap_live_proof *p);
/* Forget the proof of snapshot snap_id (it is gone); count a reuse. */
void snap_live_reuse_drop(struct snap_live *l, int64_t snap_id);
void snap_live_reuse_count(struct snap_live *l);
/* The whole image of the live database, built now, when p still holds
 * before and after the build (so its bytes are p's snapshot's): for a
 * reader whose snapshot went away under it.  -ESTALE otherwise. */
int snap_live_reuse_fallback(struct snap_live *l,
			     const struct snap_live_proof *p,
			     struct snap_live_image **out, snap_err *err);
/* A connection on the live database through vfs (NULL: the default),
 * read-write when allowed (to roll back a hot journal), with the
 * engine's busy policy. */
int snap_live_connect(const char *path, const char *vfs, sqlite3 **out,
		      snap_err *err);
/* The first column of the one row of sql (a PRAGMA) on conn; a SQLite
 * result code. */
int snap_live_pragma_int(sqlite3 *conn, const char *sql, int64_t *out);
/* Write the header of page 1 (its first 100 bytes) as every image has
 * it: rollback journal mode, the counters of a fresh copy, pages. */
void snap_live_page1_normalize(unsigned char *hdr, uint64_t pages);
/* Around a restore: no daemon connection on the live database (the
 * engine's WAL page-size switch needs that); image builds wait. */
void snap_live_quiesce(struct snap_live *l);
void snap_live_resume(struct snap_live *l);
/* lstat() of the live file (never open()ed); a symlink, FIFO or other
 * non-regular file at the name is -ENOENT (it says nothing of the live
 * database and SQLite refuses it). */
int snap_live_stat(struct snap_live *l, struct stat *st);
/*
 * The live file's owner and mode as far as who may see its history goes
 * (snapshots, the mount's directories, restore/, .snapfs/ files): the
 * lstat() of the live path while it is a regular file of the owner it had
 * when the daemon opened it, else the last such lstat.  A live file that
 * is missing for a moment, or that somebody who may write its directory
 * replaced with a file (or a symlink) of their own, never makes the
 * snapshots of a private database readable, nor the mount's directories
 * theirs.  -ENOENT only when the daemon never saw the file (no open).
 */
int snap_live_stat_owner(struct snap_live *l, struct stat *st);
/* The live file's attributes (as snap_live_stat) with the modification
 * and change times of its
 * content: the newer of the file's and its -wal's, so that a commit in
 * WAL mode (which writes only the -wal) moves current.db's mtime, as
 * rsync and make expect of a file whose bytes changed. */
int snap_live_stat_content(struct snap_live *l, struct stat *st);
/* The size in bytes of the image a read-only open would get now (for a
 * WAL database it counts committed pages still in the WAL); 0, or -EAGAIN
 * when the database cannot be asked. */
int snap_live_size(struct snap_live *l, uint64_t *size);
/* "wal", "delete", ... of the live database, for status; "" if unknown. */
void snap_live_journal_mode(struct snap_live *l, char *out, size_t len);

#endif /* FS_LIVE_H */
