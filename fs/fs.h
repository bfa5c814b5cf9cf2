/*
 * fs/fs.h — the snapfs daemon: what its modules share.
 *
 * The daemon maps FUSE low-level operations onto the engine (engine/snapfs.h)
 * and holds no storage logic.  Its modules:
 *
 *   main.c     options, start-up checks, daemonizing, the session loop;
 *   log.c      one logging function (stderr with -f, syslog otherwise);
 *   ops.c      the one fuse_lowlevel_ops table; lookup, attributes,
 *              xattrs, statfs, init;
 *   file.c     open files: open, create, read, write, flush, release;
 *   dir.c      names: listings, unlink, rename, and what is refused;
 *   attr.c     attributes and entries of every kind of file, name rules;
 *   inode.c    inode numbers, the table of dynamic nodes (staging files in
 *              the root and restore/, snapshot requests being created in
 *              snapshots/);
 *   live.c     the live database as the daemon sees it: a change
 *              generation and consistent images for read-only opens;
 *   peek.c     an image's first pages and the read transaction that can
 *              still copy the rest (a file manager's peek copies nothing);
 *   staging.c  the private staging directory, staged replaces (uploads),
 *              edit sessions and restores through the mount;
 *   trash.c    the freedesktop trash at the root (.Trash-UID/);
 *   status.c   the text of .snapfs/status.json and .snapfs/log;
 *   notify.c   the notifier thread that invalidates kernel caches;
 *   watch.c    the catalog watcher: snapshots/' time and the kernel's
 *              view follow every change of the catalog, by any process;
 *   restoredir.c  restore/, the drop folder: a file copied or moved into
 *              it is restored onto the live database.
 *
 * Inode numbers (stable across remounts where they name stable things):
 *   1..8                       the fixed files and directories below;
 *   SNAP_INO_SNAP_BASE + id    a snapshot (store ids are never reused, and a
 *                              snapshot's bytes never change, so the kernel
 *                              may cache it for as long as it likes);
 *   SNAP_INO_NODE_BASE + seq   a dynamic node (seq never reused in a run);
 *   SNAP_INO_TRASH_INFO_BASE + id
 *                              info/NAME.trashinfo of trashed snapshot id;
 *   SNAP_INO_TRASH_DIR_BASE + 4 * uid + part
 *                              .Trash-UID and its files/, info/, expunged/
 *                              (trash.c; a trashed snapshot keeps its own
 *                              number).
 *
 * Lock order (a thread may take a lock only after those above it):
 *   handle->lock     one open file's state and I/O; held across the apply
 *                    of that file's bytes (flush, release), so it comes
 *                    first;
 *   node->outcome_lock  a snapshot request's outcome (staging.c): held
 *                    across the engine's snapshot or import, so that a
 *                    request becomes one snapshot whichever of its
 *                    handles closes;
 *   fs->apply_lock   serializes every restore the mount performs and the
 *                    start and apply of an edit session; held across engine
 *                    calls on purpose (it orders restores, it guards no
 *                    data that a getattr or readdir needs);
 *   live->quiesce_lock  taken shared by peeks and image builds, and
 *                    exclusively across a restore, from quiesce to resume;
 *   live->build_lock serializes image builds (held across a backup);
 *   live->lock       the watch connection, the generation, the images'
 *                    state;
 *   fs->lock         the node table, the handle list, the root's names, the
 *                    session's counters.  A leaf: nothing is called under
 *                    it that takes a lock, sleeps, or talks to SQLite or the
 *                    kernel.
 * No lock is held while a notification is sent (the notifier thread holds
 * none at all).
 */
#ifndef FS_FS_H
#define FS_FS_H

#define FUSE_USE_VERSION 312

#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "snapfs.h"

/* ---- inode numbers ---------------------------------------------------- */

enum {
	SNAP_INO_ROOT = FUSE_ROOT_ID, /* the mount root */
	SNAP_INO_CURRENT = 2,         /* current.db */
	SNAP_INO_SNAPDIR = 3,         /* snapshots/ */
	SNAP_INO_META = 4,            /* .snapfs/ */
	SNAP_INO_STATUS = 5,          /* .snapfs/status.json */
	SNAP_INO_LOG = 6,             /* .snapfs/log */
	SNAP_INO_LATEST = 7,          /* snapshots/latest.db */
	SNAP_INO_RESTORE = 8,         /* restore/ */
};

#define SNAP_INO_SNAP_BASE ((fuse_ino_t)1 << 32)
#define SNAP_INO_NODE_BASE ((fuse_ino_t)1 << 56)
#define SNAP_INO_TRASH_INFO_BASE ((fuse_ino_t)1 << 60)
#define SNAP_INO_TRASH_DIR_BASE ((fuse_ino_t)1 << 61)

#define SNAP_NAME_CURRENT "current.db"
#define SNAP_NAME_SNAPDIR "snapshots"
#define SNAP_NAME_META ".snapfs"
#define SNAP_NAME_STATUS "status.json"
#define SNAP_NAME_LOG "log"
#define SNAP_NAME_LATEST "latest.db"
#define SNAP_NAME_RESTORE "restore"

/* Kernel cache lifetimes, seconds. */
#define SNAP_TTL_DIR 1.0          /* the fixed directories */
#define SNAP_TTL_SNAP_ENTRY 1.0   /* a snapshot's name (snapctl may delete) */
#define SNAP_TTL_SNAP_ATTR 3600.0 /* a snapshot's attributes (immutable) */
#define SNAP_TTL_NEGATIVE 3600.0  /* -journal/-wal/-shm next to a snapshot */

static inline int snap_ino_is_snapshot(fuse_ino_t ino)
{
	return ino >= SNAP_INO_SNAP_BASE && ino < SNAP_INO_NODE_BASE;
}

static inline int64_t snap_ino_snapshot_id(fuse_ino_t ino)
{
	return (int64_t)(ino - SNAP_INO_SNAP_BASE);
}

static inline fuse_ino_t snap_ino_of_snapshot(int64_t id)
{
	return SNAP_INO_SNAP_BASE + (fuse_ino_t)id;
}

/* 1 for the trash's own inodes (its directories, stored .trashinfo). */
static inline int snap_ino_is_trash(fuse_ino_t ino)
{
	return ino >= SNAP_INO_TRASH_INFO_BASE;
}

/* 1 when name ends in -journal, -wal or -shm (SQLite's side files). */
int snap_name_is_sidefile(const char *name);

/*
 * The fixed directories of the root (attr.c), in listing order: one table,
 * so a new one is a row there and every handler (lookup, listing, open,
 * create, unlink, rename) treats it as a directory.
 * snap_rootdir_ino: the inode of the root directory called name, 0 when
 * there is none; snap_rootdir_at: the i-th one's name and inode, NULL past
 * the end; snap_ino_is_dir: 1 for the root and the fixed directories.
 */
fuse_ino_t snap_rootdir_ino(const char *name);
const char *snap_rootdir_at(size_t i, fuse_ino_t *ino);
int snap_ino_is_dir(fuse_ino_t ino);

/* ---- logging (log.c) ---------------------------------------------------- */

/* Log once: stderr ("snapfs: ...") when foreground, syslog otherwise.
 * LOG_DEBUG lines appear only with -d. */
void snap_log(int prio, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void snap_log_setup(int foreground, int debug);

/* ---- the notifier (notify.c) -------------------------------------------- */

struct snap_notify;

/* Start the thread; 0 or -errno. */
int snap_notify_start(struct fuse_session *se, struct snap_notify **out);
/* Stop and join it, dropping what is still queued. */
void snap_notify_stop(struct snap_notify *n);
/* Queue "forget the kernel's dentry parent/name" (never blocks on FUSE). */
void snap_notify_entry(struct snap_notify *n, fuse_ino_t parent,
		       const char *name);
/* Queue "forget the kernel's attributes and cached data of ino". */
void snap_notify_inode(struct snap_notify *n, fuse_ino_t ino);
/* Both, for current.db after a restore or an upload
 * (engine/PITFALLS.md 16). */
void snap_notify_current(struct snap_notify *n);
/* Around the handler of an operation the kernel sends with directory dir
 * locked (lookup, readdir, create, unlink, rename, ...; ops.c): no name in
 * dir is invalidated meanwhile (see notify.c).  Never blocks. */
void snap_notify_dir_begin(struct snap_notify *n, fuse_ino_t dir);
void snap_notify_dir_end(struct snap_notify *n, fuse_ino_t dir);
/* Queue "the name parent/name, which named child, is deleted": the kernel
 * drops the dentry and the inode's link (an inotify watch on the file
 * hears IN_DELETE_SELF). */
void snap_notify_delete(struct snap_notify *n, fuse_ino_t parent,
			fuse_ino_t child, const char *name);

/* ---- the catalog watcher (watch.c) -------------------------------------- */

/* After the notifier started: read the listing and the catalog's change
 * time (started_ns for a store that never changed), watch the store
 * directory, start the thread; 0 or a negative errno.  Stop before the
 * notifier and the store (safe when never started). */
int snap_watch_start(snap_store *store, struct snap_notify *notify,
		     int64_t started_ns);
void snap_watch_stop(void);
/* The daemon changed the catalog itself (call after replying): compare
 * the listing now, even though no other process committed. */
void snap_watch_changed(void);
/* snapshots/' mtime and ctime: when its listing last changed (ns). */
int64_t snap_watch_dir_ns(void);

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
/* stat() of the live file (never open()ed). */
int snap_live_stat(struct snap_live *l, struct stat *st);
/* The size in bytes of the image a read-only open would get now (for a
 * WAL database it counts committed pages still in the WAL); 0, or -EAGAIN
 * when the database cannot be asked. */
int snap_live_size(struct snap_live *l, uint64_t *size);
/* "wal", "delete", ... of the live database, for status; "" if unknown. */
void snap_live_journal_mode(struct snap_live *l, char *out, size_t len);

/* ---- peeks (peek.c) ------------------------------------------------------ */

/* What a peek saw, all in one read transaction. */
struct snap_peek_head {
	unsigned char *bytes;  /* the first len bytes (malloc), page 1
				  normalized */
	size_t len;            /* whole pages, at most max_head bytes */
	uint64_t size;         /* page_count * page_size */
	uint32_t page_size;
	int wal;               /* the database is in WAL mode */
};

/* Begin a read transaction on the live database at path and read its
 * size and first pages.  When they are the whole database the
 * transaction ends and *held is NULL; otherwise *held keeps it for
 * snap_peek_db.  0 or a negative errno; -EPROTO when SQLite did not show
 * the pages (the caller copies the whole image instead). */
int snap_peek_begin(const char *path, size_t max_head,
		    struct snap_peek **held, struct snap_peek_head *h,
		    snap_err *err);
/* The connection, inside the peek's read transaction. */
sqlite3 *snap_peek_db(struct snap_peek *p);
/* End the transaction, close, free (NULL is fine). */
void snap_peek_end(struct snap_peek *p);

/* ---- dynamic nodes (inode.c) --------------------------------------------- */

enum snap_node_kind {
	SNAP_NODE_STAGING,  /* a file in the root or restore/: upload, temp
			       file, side file */
	SNAP_NODE_PENDING,  /* a name being created in snapshots/ */
};

struct snap_node {
	fuse_ino_t ino;
	enum snap_node_kind kind;
	fuse_ino_t parent;            /* SNAP_INO_ROOT, SNAP_INO_SNAPDIR or
					 SNAP_INO_RESTORE */
	char name[NAME_MAX + 1];      /* its name while linked */
	int linked;                   /* 1 while the name is in its directory */
	uint64_t nlookup;             /* the kernel's references */
	unsigned nopen;               /* open handles */
	char path[PATH_MAX];          /* backing file in the staging directory,
				       * deleted when the node is freed */
	mode_t mode;                  /* S_IFREG | permission bits */
	uid_t uid;
	gid_t gid;
	/* PENDING only, protected by fs->lock (staging.c says how a
	 * request's outcome is reached, once): */
	int64_t snap_id;              /* the snapshot it became, 0 = not yet */
	unsigned writers;             /* write handles not flushed since their
				       * last write */
	int dirty;                    /* written since the outcome */
	int decided;                  /* an outcome was reached (snap_id, or
				       * 0 when it was refused) */
	int last_rc;                  /* its verdict, for flushes that bring
				       * nothing new */
	pthread_mutex_t outcome_lock; /* held while the outcome is reached
				       * (see the lock order above) */
	struct snap_node *next;       /* table chain */
};

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
	/* SNAP_H_SESSION */
	struct snap_session *sess;
	int closing;                   /* flushed, no write since (fs->lock;
				        * also SNAP_H_PENDING writers) */
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
	/* SNAP_H_SNAPSHOT */
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
	int writes;                    /* an upload or an edit session */
	uint64_t seq;                  /* open order (newest wins) */
	unsigned pins;                 /* handlers using it now (see
				        * snap_handle_get) */
	uint64_t id;                   /* fi->fh; never reused in a run */
	int gone;                      /* released: no new pins */
	/* every open handle, for the shutdown (fs->lock) */
	struct snap_handle *prev;
	struct snap_handle *next;
};

/* ---- the filesystem ----------------------------------------------------- */

struct snap_fs {
	snap_store *store;
	const char *db_path;            /* absolute, from the store */
	char mountpoint[PATH_MAX];
	char staging_dir[PATH_MAX];     /* <store>/staging, mode 0700, as a
					   path anchored to its open fd
					   ("/proc/self/fd/N") */
	struct fuse_session *se;
	struct snap_notify *notify;
	struct snap_live *live;
	int debug;
	int foreground;

	pthread_mutex_t apply_lock;     /* see the lock order above */
	pthread_mutex_t lock;           /* leaf: the fields below */
	struct snap_node *nodes;        /* dynamic nodes */
	uint64_t node_seq;              /* last node number handed out */
	uint64_t file_seq;              /* last staging file number */
	struct snap_session *session;   /* the edit session, or NULL */
	struct snap_handle *handles;    /* every open handle */
	uint64_t handle_seq;            /* last current.db open number */
	uint64_t handle_ids;            /* last handle id handed out */
	pthread_cond_t unpinned;        /* a handle's pins dropped to 0 */
	pid_t unlink_pid;               /* who unlinked current.db, 0 = none */
	int64_t unlink_until_ns;        /* and until when the name is free */
	pid_t writer_tgid;              /* last process that wrote current.db */
	int64_t writer_until_ns;        /* and until when it counts as writing */
	/* counters for status.json (fs->lock) */
	uint64_t restores_ok;
	uint64_t restores_failed;
	uint64_t conflicts;
	int64_t started_ns;
};

extern struct snap_fs snap_fs;

/* ---- inode table (inode.c) ----------------------------------------------- */

/* Create and link a node (fs->lock taken inside).  Returns NULL with
 * errno set when the backing file cannot be created. */
struct snap_node *snap_node_create(enum snap_node_kind kind,
				   fuse_ino_t parent, const char *name,
				   mode_t mode, uid_t uid, gid_t gid);
/* The linked node called name in parent, with one more lookup reference
 * when ref is 1; NULL when none.  fs->lock taken inside. */
struct snap_node *snap_node_find(fuse_ino_t parent, const char *name,
				 int ref);
/* The same with an open reference instead (release: snap_node_close),
 * for callers that use the node after the lock is dropped. */
struct snap_node *snap_node_find_open(fuse_ino_t parent, const char *name);
/* The node with this inode number (no reference taken); fs->lock must be
 * held by the caller, since the node may otherwise be freed. */
struct snap_node *snap_node_get_locked(fuse_ino_t ino);
/* Reference changes; a node unlinked, unreferenced and closed is freed. */
void snap_node_lookup_locked(struct snap_node *n, uint64_t count);
void snap_node_forget(fuse_ino_t ino, uint64_t nlookup);
void snap_node_open_locked(struct snap_node *n);
void snap_node_close(struct snap_node *n);
/* Take a node out of its directory (its file goes when it is freed). */
void snap_node_unlink_locked(struct snap_node *n);
/* Free what the *_locked calls above left unreferenced; call after
 * dropping fs->lock (it deletes files). */
void snap_node_reap(void);
/* Rename a linked node within its directory, replacing (unlinking) a node
 * already called newname. */
void snap_node_rename_locked(struct snap_node *n, const char *newname);
/* The same for the node called name in parent, taking fs->lock: 0, or
 * -ENOENT when there is none. */
int snap_node_rename(fuse_ino_t parent, const char *name,
		     const char *newname);
/* Visit every linked node of a directory under fs->lock. */
void snap_node_foreach_locked(fuse_ino_t parent,
			      void (*fn)(struct snap_node *, void *),
			      void *ctx);
/* Free every node and delete every backing file (shutdown). */
void snap_node_free_all(void);
/* Attributes of a staging node (fstat of its backing file). */
int snap_node_stat(struct snap_node *n, struct stat *st);

/* ---- staging, uploads, sessions, restores (staging.c) --------------------- */

/* Create <store>/staging empty (removing what a crashed run left), keep it
 * open and put the path to use for files in it in out.  0 or a negative
 * errno with the reason in err (a symlink there is refused). */
int snap_staging_init(snap_store *store, char *out, size_t len,
		      snap_err *err);
/* Remove the staging directory and everything in it (before the store is
 * closed; nothing to do when init did not succeed). */
void snap_staging_cleanup(snap_store *store);
/* A fresh private file path in the staging directory ("upload-7"). */
void snap_staging_path(const char *what, char *out, size_t len);

/* Restore snapshot id onto the live database (rename snapshots/X).  0 or a
 * negative errno; the reason is logged. */
int snap_apply_snapshot(int64_t id, const char *shown_name);
/* Restore onto current.db from parent/name (dir.c): a snapshot (latest.db,
 * a request that became one) in snapshots/, or a staging file in the root
 * or restore/, which then leaves its directory.  shown: how messages name
 * a staging file ("the file <shown>"), NULL for its name.  0 or a negative
 * errno (the reason logged). */
int snap_dir_restore_from(fuse_ino_t parent, const char *name,
			  const char *shown);
/* Restore a staging file onto the live database (rename, upload flush).
 * wal: the staging file that was "<name>-wal" beside it in the root, whose
 * committed transactions belong to it (NULL: none). */
int snap_apply_file(const char *path, const char *wal, const char *shown_name,
		    const char *label);

/* Upload handles: open creates the file; flush applies it; end (at
 * RELEASE, apply 1; 0 for a handle the kernel never had) applies bytes
 * written after the last flush, logs an upload that never got a byte,
 * and removes the file. */
int snap_upload_begin(struct snap_handle *h);
int snap_upload_flush(struct snap_handle *h);
void snap_upload_end(struct snap_handle *h, int apply);

/* Session handles. */
int snap_session_join(struct snap_handle *h);
/* Make sure the session copy exists (first read/write); 0 or -errno. */
int snap_session_ready(struct snap_handle *h);
void snap_session_wrote(struct snap_handle *h);
int snap_session_flush(struct snap_handle *h);
void snap_session_leave(struct snap_handle *h);
/* Leave without applying anything (shutdown, interrupted open). */
void snap_session_discard(struct snap_handle *h);
/* ftruncate(0) on a session handle turns it into an upload. */
int snap_session_to_upload(struct snap_handle *h);
/* Size of the session copy, or -1 when it is not made yet. */
int64_t snap_session_size(struct snap_handle *h);
/* For status.json: is a session open, how many writers, dirty. */
void snap_session_describe(int *open, unsigned *writers, int *dirty);
/* Discard the session at shutdown. */
void snap_session_shutdown(void);

/* Snapshot requests in snapshots/ (pending nodes): a handle opened on
 * one (writable: it may write, and counts among the request's writers),
 * its bytes arriving (a write or a truncation through it), its FLUSH, at
 * which the last writer takes or imports, and its RELEASE (apply 0: a
 * handle the kernel never had, or the shutdown). */
void snap_pending_open(struct snap_handle *h, int writable);
void snap_pending_wrote(struct snap_handle *h);
int snap_pending_flush(struct snap_handle *h);
void snap_pending_release(struct snap_handle *h, int apply);

/* ---- restore/, the drop folder (restoredir.c) ---------------------------- */

/* The mode of a file created in restore/: what was asked, never wider
 * than the live database's. */
mode_t snap_restoredir_mode(mode_t asked);
/* restore/'s own mode: the owner's, and group's or others' when they may
 * write the live database. */
mode_t snap_restoredir_dirmode(const struct stat *live);
/* An open of a node in restore/ (h is a staging handle on it): a write
 * handle on a plain name becomes SNAP_H_RESTORE. */
void snap_restoredir_opened(struct snap_handle *h, int flags);
/* FLUSH of a SNAP_H_RESTORE handle: the restore's verdict (as an upload's);
 * when bytes were restored (or refused) the name leaves restore/, and
 * *gone gets the node to announce after the reply (0: none). */
int snap_restoredir_flush(struct snap_handle *h, fuse_ino_t *gone,
			  char *gone_name, size_t len);
/* RELEASE of a SNAP_H_RESTORE handle: late bytes are applied (apply 1),
 * the name leaves restore/. */
void snap_restoredir_release(struct snap_handle *h, int apply);
/* RENAME from or into restore/ (parent or newparent is SNAP_INO_RESTORE):
 * into a plain name restores the source, as a rename onto current.db
 * does; dot-names are staging files.  Replies and queues invalidations. */
void snap_restoredir_rename(fuse_req_t req, fuse_ino_t parent,
			    const char *name, fuse_ino_t newparent,
			    const char *newname, unsigned int flags);
/* 1 when name in restore/ is a staging name (rsync's .x.db.XXXXXX, GIO's
 * .goutputstream-XXXXXX): a dot-name, restored only when renamed to a
 * plain name. */
int snap_restoredir_is_staging(const char *name);

/* ---- the freedesktop trash (trash.c) -------------------------------------- */

/* The parts of one user's trash: .Trash-UID itself and its directories. */
enum {
	SNAP_TRASH_TOP = 0,
	SNAP_TRASH_PART_FILES = 1,
	SNAP_TRASH_PART_INFO = 2,
	SNAP_TRASH_PART_EXPUNGED = 3,
};

/* What the kernel must forget after a trash operation; queued by
 * snap_trashdir_notify after the reply. */
struct snap_trash_inval {
	fuse_ino_t parent;             /* an info/ directory, 0 = nothing */
	char name[NAME_MAX + 1];       /* NAME.trashinfo in it */
	int latest;                    /* latest.db may name another */
};

/* Add an entry called name to a listing; the entry to fill, or NULL. */
typedef struct snap_dirent *(*snap_trash_add_fn)(void *ctx,
						 const char *name);

/* 1 when name is ".Trash-UID" (*uid set when uid is not NULL). */
int snap_trashdir_name(const char *name, uint32_t *uid);
/* 1 when ino is a trash directory that exists now. */
int snap_trashdir_is_dir(fuse_ino_t ino);
/* Attributes of a trash inode; -ENOENT when it does not exist now. */
int snap_trashdir_attr(fuse_ino_t ino, struct stat *st, double *ttl);
/* The entry name in parent (the root's .Trash-UID, or a trash directory;
 * nodes in info/ are inode.c's): 0 with its attributes and their lifetime
 * (the entry's is 0), or -errno. */
int snap_trashdir_lookup(fuse_ino_t parent, const char *name,
			 struct stat *st, double *attr_ttl);
/* The listing of a trash directory, or the .Trash-UID entries of the root
 * (ino SNAP_INO_ROOT), through add; 0 or -errno. */
int snap_trashdir_list(fuse_ino_t ino, snap_trash_add_fn add, void *ctx);
/* mkdir .Trash-UID (by UID alone) or one of its directories (EEXIST). */
int snap_trashdir_mkdir(fuse_ino_t parent, const char *name, uid_t who,
			struct stat *st);
/* rmdir .Trash-UID: 0 when it holds nothing, -ENOTEMPTY, -EPERM. */
int snap_trashdir_rmdir(fuse_ino_t parent, const char *name);
/* setattr of a trash inode: only what changes nothing (chmod 0700 of a
 * trash directory, times) succeeds; st gets the attributes. */
int snap_trashdir_setattr(fuse_ino_t ino, const struct stat *attr,
			  int to_set, struct stat *st, double *ttl);
/* 0 when a file called name may be created in trash directory parent (a
 * .trashinfo in info/), or -errno. */
int snap_trashdir_may_create(fuse_ino_t parent, const char *name);
/* Open a trash inode: the stored .trashinfo's text (malloc()ed), -EISDIR,
 * or -EPERM for a write. */
int snap_trashdir_open(fuse_ino_t ino, int flags, char **text, size_t *len);
/* unlink in a trash directory (but of a node): files/ and expunged/
 * delete the snapshot (emptying the trash). */
int snap_trashdir_unlink(fuse_ino_t parent, const char *name,
			 struct snap_trash_inval *inv);
/* rename with a trash directory on either side: snapshots/ -> files/
 * trashes, files/ (expunged/) -> snapshots/ restores (*restored gets the
 * snapshot, back under its own name), files/ <-> expunged/ moves, info/
 * -> info/ renames a node; anything else -EPERM. */
int snap_trashdir_rename(fuse_ino_t parent, const char *name,
			 fuse_ino_t newparent, const char *newname,
			 unsigned flags, snap_info *restored,
			 struct snap_trash_inval *inv);
/* Queue what inv says (after the reply). */
void snap_trashdir_notify(const struct snap_trash_inval *inv);

/* ---- status files (status.c) -------------------------------------------- */

/* The text of .snapfs/status.json or .snapfs/log; free() it. */
int snap_status_text(fuse_ino_t ino, char **text, size_t *len);

/* ---- attributes and names (attr.c) ----------------------------------------- */

void snap_attr_dir(fuse_ino_t ino, struct stat *st);
/* current.db as an open would see it now: the live file's stat() with the
 * size of the image a read-only open would get; -ENOENT without a live
 * file. */
int snap_attr_current(struct stat *st);
/* current.db as handle h sees it (h may be NULL: as above). */
int snap_attr_current_fh(struct snap_handle *h, struct stat *st);
/* current.db as the caller of a request sees it: through handle h when
 * given, else through the newest current.db handle its process (pid is
 * the requesting thread) has open, else as snap_attr_current. */
int snap_attr_current_req(pid_t pid, struct snap_handle *h,
			  struct stat *st);
/* Record that h, a current.db handle, was opened by thread pid's process
 * (before the open is replied to); and that it is going away (fs->lock
 * held). */
void snap_attr_current_opened(struct snap_handle *h, pid_t pid);
void snap_attr_current_closed_locked(struct snap_handle *h);
/* 1 when thread pid's process writes current.db: it has an upload or an
 * edit session open, or closed one a moment ago. */
int snap_attr_current_writer(pid_t pid);
/* A snapshot under inode ino; live may be NULL (mode 0444 then). */
void snap_attr_snapshot(const snap_info *si, fuse_ino_t ino,
			const struct stat *live, struct stat *st);
void snap_attr_symlink(const char *target, struct stat *st);
/* Any inode; *ttl gets how long the kernel may keep the attributes. */
int snap_attr_of(fuse_ino_t ino, struct stat *st, double *ttl);
/* The catalog row of snapshot id. */
int snap_attr_info(int64_t id, snap_info *si);
/* The snapshot a snapshot request (pending node) became, or 0. */
int64_t snap_attr_pending_id(fuse_ino_t ino);
/* The snapshot listed exactly as name; 0 or -ENOENT. */
int snap_attr_by_name(const char *name, snap_info *si);
/* 1 when current.db is hidden from process pid (it just unlinked it). */
int snap_attr_current_hidden(pid_t pid);
void snap_attr_entry(struct fuse_entry_param *e, const struct stat *st,
		     double attr_ttl, double entry_ttl);

/* ---- handles (file.c) ------------------------------------------------------ */

struct snap_handle *snap_handle_new(enum snap_handle_kind kind);
void snap_handle_free(struct snap_handle *h);
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

/* ---- the handlers (file.c, dir.c; the table in ops.c) ----------------------- */

void snap_ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void snap_ll_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		    mode_t mode, struct fuse_file_info *fi);
void snap_ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void snap_ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		   size_t size, off_t off, struct fuse_file_info *fi);
void snap_ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void snap_ll_release(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
void snap_ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		   struct fuse_file_info *fi);
void snap_ll_opendir(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
void snap_ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void snap_ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi);
void snap_ll_releasedir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi);
void snap_ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi);
void snap_ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void snap_ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		    fuse_ino_t newparent, const char *newname,
		    unsigned int flags);
void snap_ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode);
void snap_ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode, dev_t rdev);
void snap_ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void snap_ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		     const char *name);
void snap_ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		  const char *newname);

/* ---- the timer thread (timer.c) ------------------------------------------ */

struct snap_timer_opts {
	int64_t every_ns;           /* -o every=, 0 = no automatic snapshots */
	snap_keep_policy keep;      /* -o keep=, max_size= */
	int64_t check_ns;           /* -o check=, 0 = none */
	int auto_recover;           /* -o auto_recover */
	int64_t verify_ns;          /* -o verify=, 0 = none */
	unsigned verify_slice;      /* snapshots verified per verify run */
	char *on_failure;           /* -o on_failure=CMD, or NULL */
};

/* Before mounting: open the schedule and set the failure hook (0 or a
 * negative errno, err says why).  After the notifier started: start the
 * thread.  At shutdown, before the store closes: stop it (and close the
 * schedule; safe when never opened or started). */
int snap_timer_open(const struct snap_timer_opts *o, snap_err *err);
int snap_timer_start(void);
void snap_timer_stop(void);
/* For status.json: the next automatic snapshot and the interval (0, 0
 * without a schedule). */
void snap_timer_schedule(int64_t *next_ns, int64_t *interval_ns);

extern const struct fuse_lowlevel_ops snap_ll_ops;

#endif /* FS_FS_H */
