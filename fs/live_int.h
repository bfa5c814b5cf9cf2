/*
 * fs/live_int.h — what live.c and liveimage.c share: the state of the
 * live database as the daemon sees it, and the steps each asks of the
 * other.  Private to the two.
 */
#ifndef FS_LIVE_INT_H
#define FS_LIVE_INT_H

#include "fs.h"

#define LIVE_PEEK_BYTES (128 * 1024)  /* a peek's head: one FUSE read */
#define LIVE_HOLD_ROLLBACK_MS 500     /* see "How long" above */
#define LIVE_HOLD_WAL_MS 5000


struct snap_live {
	char path[PATH_MAX];           /* the live database (absolute) */
	char wal_path[PATH_MAX + 4];   /* and its -wal file */
	char tmpdir[PATH_MAX];         /* where images are built */
	pthread_rwlock_t quiesce_lock; /* shared: peeks, builds; exclusive:
					  from quiesce to resume */
	pthread_mutex_t build_lock;    /* serializes builds */
	pthread_mutex_t lock;          /* protects the fields below */
	pthread_cond_t reap_cond;      /* a held peek was added; stop */
	sqlite3 *conn;                 /* watch connection, or NULL */
	dev_t dev;                     /* identity of conn's file */
	ino_t ino;
	int64_t dv;                    /* last data_version seen on conn */
	uint64_t gen;                  /* moves on every observed change */
	struct snap_live_image *cur;   /* newest image (one reference) */
	uint64_t size;                 /* image size at generation size_gen */
	uint64_t size_gen;             /* 0: size unknown */
	unsigned seq;                  /* image file numbers */
	int quiet;                     /* 1 during a restore: no connection */
	struct snap_live_image *held;  /* images holding a read transaction */
	pthread_t reaper;              /* builds held images past their time */
	int reaper_started;
	int reaper_stop;
	int no_peeks;                  /* a peek could not see its pages:
					  copy whole images from then on */
	uint64_t peeks;                /* opens served by a peek (status) */
	uint64_t builds;               /* images copied into staging */
	uint64_t reused;               /* opens served by a snapshot's image */
	struct snap_live_proof proof;  /* newest proven snapshot (livereuse.c)
					  snap_id 0: none */
	pthread_mutex_t owner_lock;    /* protects the three below */
	uid_t owner;                   /* the live file's owner at open */
	struct stat owned;             /* its last lstat as a regular file
					  of that owner (snap_live_stat_owner) */
	int have_owned;
};

/* Check the live database and move the generation when it changed (how:
 * LIVE_SIZE, LIVE_NOWAIT of live.c; *busy set when it could not ask);
 * returns the generation.  l->lock held. */
uint64_t snap_live_refresh_locked(struct snap_live *l, int how, int *busy);
/* Close the watch connection (l->lock held, or no other thread). */
void snap_live_disconnect_locked(struct snap_live *l);
/* Take im off the list of held images, if it is on it (l->lock held). */
void snap_live_unhold_locked(struct snap_live *l, struct snap_live_image *im);
/* Free an image nobody references (and no list holds); no lock held. */
void snap_live_image_free(struct snap_live_image *im);
/* Copy the rest of a held image into staging (from its transaction). */
int snap_live_materialize(struct snap_live *l, struct snap_live_image *im,
			  snap_err *err);
/* The reaper thread: builds held images past their time. */
void *snap_live_reaper(void *arg);

#endif /* FS_LIVE_INT_H */
