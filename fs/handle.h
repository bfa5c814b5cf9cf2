/*
 * fs/handle.h — open files: handles and the directory entries of a listing
 * (file.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_HANDLE_H
#define FS_HANDLE_H

#include "live.h"
#include "node.h"

/* ---- open files --------------------------------------------------------- */

enum snap_handle_kind {
	SNAP_H_IMAGE,     /* current.db read-only: a consistent image */
	SNAP_H_SESSION,   /* current.db read-write: the edit session */
	SNAP_H_UPLOAD,    /* current.db truncated/created: staged replace */
	SNAP_H_SNAPSHOT,  /* a snapshot, read-only */
	SNAP_H_PENDING,   /* a name being created in snapshots/ */
	SNAP_H_STAGING,   /* a staging file in the root */
	SNAP_H_TEXT,      /* .snapfs/status.json, .snapfs/log */
	SNAP_H_RESTORE,   /* a file written in restore/: an upload with a
			     name (restoredir.c) */
	SNAP_H_DIR,       /* a directory listing */
};

struct snap_session;

/* One directory entry captured at opendir. */
struct snap_dirent {
	char name[SNAP_NAME_MAX > NAME_MAX + 1 ? SNAP_NAME_MAX : NAME_MAX + 1];
	struct stat st;       /* st_ino and the attributes */
	double attr_ttl;
	double entry_ttl;
	struct snap_node *node; /* a dynamic node (holds a reference), or NULL */
};

struct snap_handle {
	enum snap_handle_kind kind;
	pthread_mutex_t lock;          /* this handle's state and I/O */
	int fd;                        /* backing descriptor or -1 */
	/* SNAP_H_IMAGE */
	struct snap_live_image *img;
	int reuse;                     /* reads simg, a snapshot's image
					  proven to be the live state
					  (livereuse.c); set at open */
	struct snap_live_proof proof;  /* that proof */
	unsigned char reuse_hdr[100];  /* the snapshot's database header,
					  laid over a fallback image's */
	/* SNAP_H_SESSION */
	struct snap_session *sess;
	int closing;                   /* flushed, no write since (fs->lock;
				        * also SNAP_H_PENDING writers) */
	int let_go;                    /* a close of it counted: the opener's
					  or, when that could not be told,
					  anyone's; an inheritor's closes
					  count from then on (h->lock) */
	/* SNAP_H_UPLOAD, SNAP_H_RESTORE and SNAP_H_PENDING */
	char path[PATH_MAX];           /* upload file */
	char target[NAME_MAX + 16];    /* what the upload is written to, for
					  messages: "" = current.db, or
					  "restore/NAME" */
	int dirty;                     /* bytes arrived since the last apply */
	int attempted;                 /* an apply was tried */
	int last_rc;                   /* its result */
	/* SNAP_H_PENDING */
	int writer;                    /* opened for writing: may decide the
				        * request's outcome (a reader never
				        * does) */
	/* SNAP_H_SNAPSHOT (and SNAP_H_IMAGE with reuse) */
	snap_image *simg;
	int64_t snap_id;
	/* SNAP_H_PENDING, SNAP_H_STAGING, SNAP_H_RESTORE */
	struct snap_node *node;        /* holds an open reference */
	/* SNAP_H_TEXT */
	char *text;
	size_t text_len;
	/* SNAP_H_DIR */
	struct snap_dirent *ents;
	size_t nents;
	/* current.db handles, for the attributes their process sees (all
	 * under fs->lock; see attr.c): */
	pid_t tgid;                    /* the opening process, 0 = none yet */
	pid_t opener;                  /* the same as /proc told it, 0 when
					  it could not (getattr.c) */
	int writes;                    /* an upload or an edit session */
	uint64_t seq;                  /* open order (newest wins) */
	int has_times;                 /* SNAP_H_IMAGE: mtim, ctim are the
					  content's times taken just before
					  its state was fixed at open */
	struct timespec mtim, ctim;
	unsigned pins;                 /* handlers using it now (see
				        * snap_handle_get) */
	uint64_t id;                   /* fi->fh; never reused in a run */
	int gone;                      /* released: no new pins */
	/* every open handle, for the shutdown (fs->lock) */
	struct snap_handle *prev;
	struct snap_handle *next;
};

/* ---- handles (handle.c; snap_handle_release, _free_all: file.c) --------- */

struct snap_handle *snap_handle_new(enum snap_handle_kind kind);
void snap_handle_free(struct snap_handle *h);
/* The daemon is root: a user's bytes written through the mount (uploads,
 * restore/, edit sessions, requests) land in its staging directory, where
 * the blocks a filesystem keeps for root would not stop them.  A write by
 * uid (not root) that needs more space than the filesystem leaves to
 * unprivileged users fails with -ENOSPC, as it would have for that user;
 * 0 otherwise.  (Quotas are not consulted: the files are root's.) */
int snap_handle_room(int fd, uid_t uid, size_t size, off_t off);
/* Give back what h holds and free it (apply: see file.c). */
void snap_handle_release(struct snap_handle *h, int apply);
/* At shutdown: release every handle the kernel never released. */
void snap_handle_free_all(void);

/*
 * The kernel names an open file by fi->fh, and it can send RELEASE while
 * another thread still serves a READ of the same file (an interrupted
 * read).  So fi->fh is a number, not a pointer: snap_handle_get() finds the
 * handle and pins it (NULL once it is released), snap_handle_put() unpins,
 * and snap_handle_take() (RELEASE) marks it gone and waits for the pins,
 * so a handle is never torn down under a handler that uses it.
 */
void snap_handle_set(struct fuse_file_info *fi, struct snap_handle *h);
struct snap_handle *snap_handle_get(struct fuse_file_info *fi);
void snap_handle_put(struct snap_handle *h);
struct snap_handle *snap_handle_take(struct fuse_file_info *fi);

#endif /* FS_HANDLE_H */
