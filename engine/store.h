/*
 * engine/store.h — the snapshot store: one directory per live database.
 *
 * The directory (default "<db>.snapfs/", mode 0700) holds:
 *   store.db     one SQLite database (WAL mode) with the tables
 *                meta, pages, page_data, snapshots, events, trash;
 *   daemon.lock  flock()ed exclusively by the one daemon serving the store;
 *                its text names that daemon's pid and mount point
 *                (storelock.c);
 *   restore.lock flock()ed exclusively for the duration of one restore;
 *   staging/     the daemon's private files (fs/staging.c), while it runs.
 *
 * The daemon runs as root over directories other users may write, so the
 * store is handled by rules (engine/storedir.c): its directory is opened
 * once without following a link and must belong to the user who opens it;
 * it is made private (0700) or refused; every file in it is reached
 * relative to that directory's fd, never through a link, and is 0600.
 *
 * Pages are content-addressed: each distinct page image is stored once,
 * keyed by its SHA-256, zstd-compressed (or raw when that is not smaller),
 * with a reference count: the number of runs of consecutive snapshots whose
 * page maps name it (storemap.c; engine/DESIGN.md §2).  Taking or deleting a
 * snapshot therefore costs what differs from its neighbours, independent of
 * how many snapshots the store keeps.
 *
 * Every change to the store is one SQLite transaction: after a crash the
 * store is as it was before or after, never holding a partial snapshot.
 *
 * Thread-safety: a snap_store may be shared by threads.  Catalog calls
 * serialize on an internal mutex; long operations (taking a snapshot,
 * reading an image, verifying) use their own SQLite connections.
 */
#ifndef ENGINE_STORE_H
#define ENGINE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "util.h"

typedef struct snap_store snap_store;

/* Progress callback of a long operation (snapshot, verify, restore):
 * done and total in pages; may be NULL. */
typedef void (*snap_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* What a snapshot is; the string forms are the contract's words. */
typedef enum snap_kind {
	SNAP_KIND_MANUAL = 0,
	SNAP_KIND_AUTO,
	SNAP_KIND_PRE_RESTORE,
	SNAP_KIND_IMPORT,
	SNAP_KIND_CONFLICT,
	SNAP_KIND_RECOVERY,
	SNAP_KIND_COUNT
} snap_kind;

/* "manual", "auto", "pre-restore", "import", "conflict", "recovery". */
const char *snap_kind_name(snap_kind k);
/* Parse a kind name; 0 or -EINVAL. */
int snap_kind_parse(const char *s, snap_kind *out);
/* 1 for the kinds "latest" chooses from: manual, auto and import.  The
 * others are kept for safety (pre-restore, conflict, recovery) and are
 * not the state a user means by "the latest snapshot": after a restore,
 * the pre-restore snapshot holds the state just thrown away. */
int snap_kind_is_latest(snap_kind k);

#define SNAP_NAME_MAX 128
#define SNAP_LABEL_MAX 64
#define SNAP_COMMENT_MAX 1024
#define SNAP_TRASH_NAME_MAX 255    /* a name in .Trash-UID/files/ */

/* Where a snapshot is, seen through the freedesktop trash (engine/trash.h):
 * whatever its kind, a trashed snapshot is out of snapshots/ and out of
 * retention's reach until the trash is emptied. */
typedef enum snap_trash_dir {
	SNAP_TRASH_NONE = 0,       /* not trashed: listed in snapshots/ */
	SNAP_TRASH_FILES = 1,      /* .Trash-UID/files/NAME: restorable */
	SNAP_TRASH_EXPUNGED = 2,   /* .Trash-UID/expunged/NAME: being emptied */
} snap_trash_dir;

/* One catalog row (everything but the page map and table counts). */
typedef struct snap_info {
	int64_t id;                        /* store-internal, never reused */
	char name[SNAP_NAME_MAX];          /* "2026-11-22T014900Z_label.db" */
	char label[SNAP_LABEL_MAX + 1];    /* sanitized label */
	snap_kind kind;
	int64_t created_ns;                /* UTC, nanoseconds since the epoch */
	char comment[SNAP_COMMENT_MAX + 1];
	int pinned;                        /* 1 = never pruned automatically */
	uint32_t page_size;
	uint32_t page_count;
	uint64_t image_size;               /* page_size * page_count */
	uint8_t sha256[32];                /* of the whole image */
	uint32_t change_counter;           /* live header bytes 24-27 when taken */
	snap_trash_dir trash;              /* SNAP_TRASH_NONE unless trashed */
	uint32_t trash_uid;                /* whose trash: .Trash-<trash_uid> */
	char trash_name[SNAP_TRASH_NAME_MAX + 1]; /* its name in files/ or
					      expunged/ ("" when not trashed) */
	int64_t trashed_ns;                /* when it went to the trash */
} snap_info;

/* Flags for snap_store_open(). */
enum {
	SNAP_OPEN_CREATE = 1 << 0,   /* create the store if it does not exist */
	SNAP_OPEN_DAEMON = 1 << 1,   /* take the exclusive serve lock (-EBUSY;
					a holder whose mount is gone is
					waited for: see
					snap_store_daemon_mounted) */
	SNAP_OPEN_READONLY = 1 << 2, /* only read: no write, no recovery
					(snap_restore_recover) either;
					works on a full or read-only
					filesystem */
	SNAP_OPEN_LIVE_DB = 1 << 3,  /* with CREATE: create a store only for
					an existing SQLite database */
};

/* 1: the first; 2: the table trash (engine/trash.h).  An older store is
 * migrated when it is opened for writing; read-only, it is read as it is. */
#define SNAP_STORE_SCHEMA_VERSION 3

/*
 * Open (and with SNAP_OPEN_CREATE, create) the store for `db_path`.
 * store_dir NULL means snap_store_default_dir(db_path).  db_path NULL
 * means: use the database path recorded in the store (store_dir must then
 * be given).  When both are given and the store records another database,
 * -EINVAL.  Refusals, each with a message: no store (-ENOENT); a store
 * directory whose catalog store.db is gone while other store files remain
 * (-EUCLEAN: never replaced by an empty store); a store directory or file
 * that is a symlink (-ELOOP), belongs to another user or cannot be made
 * private (-EPERM).
 *
 * Without SNAP_OPEN_READONLY a store on a read-only filesystem, or on a
 * full one, opens read-only (list, read, verify, export); changes then
 * fail with -EROFS, or -ENOSPC saying how much room a snapshot needs (see
 * snap_store_writable).  With SNAP_OPEN_CREATE or SNAP_OPEN_DAEMON a
 * read-only filesystem is refused (-EROFS).  A store this call created is
 * removed again when it fails.
 */
int snap_store_open(const char *db_path, const char *store_dir,
		    unsigned flags, snap_store **out, snap_err *err);
void snap_store_close(snap_store *s);

/* How long snap_store_open(SNAP_OPEN_DAEMON) waits for a daemon whose
 * mount is gone to finish closing the store. */
#define SNAP_DAEMON_LOCK_WAIT_MS 30000

/*
 * The daemon that holds the store's daemon lock (SNAP_OPEN_DAEMON) has
 * mounted it at `mountpoint` (absolute, as /proc/self/mountinfo shows it):
 * recorded in daemon.lock.  While that mount point is a snapfs mount,
 * another daemon is refused at once (-EBUSY, naming the pid and the mount
 * point); once it is not (`fusermount3 -u` returned while this daemon
 * still closes the store), another daemon waits for the lock, at most
 * SNAP_DAEMON_LOCK_WAIT_MS.  Without this call a holder is always
 * refused at once.  0, or a negative errno with a message (then nothing
 * changed: the lock is still held).
 */
int snap_store_daemon_mounted(snap_store *s, const char *mountpoint,
			      snap_err *err);

/* "<db_path made absolute>.snapfs", the default store directory, resolved
 * as snap_store_open resolves it (symlinks to the database followed);
 * malloc()ed, NULL when the database's directory does not exist. */
char *snap_store_default_dir(const char *db_path);

/*
 * 0 when the store takes changes; otherwise -EROFS, or -ENOSPC when its
 * filesystem was full at open, with the reason and what a snapshot needs.
 * A store read-only for want of space becomes writable here once there is
 * room again.
 */
int snap_store_writable(snap_store *s, snap_err *err);

/*
 * The store's private subdirectory `name` (the daemon's "staging"):
 * created 0700 if missing, opened without following a link, checked (a
 * directory of ours, made 0700) and emptied of what a killed process left.
 * Returns its fd (kept open while it is used) and, in path, the path to use
 * for files in it: anchored to the fd ("/proc/self/fd/N"), so renaming the
 * store away cannot redirect them.  A negative errno with the reason.
 */
int snap_storedir_sub_open(snap_store *s, const char *name, char *path,
			   size_t cap, snap_err *err);
/* Empty and remove it, and close fd (-1: nothing to do). */
void snap_storedir_sub_remove(snap_store *s, const char *name, int fd);

const char *snap_store_db_path(const snap_store *s);   /* absolute */
const char *snap_store_dir(const snap_store *s);       /* absolute */
/* Path of store.db inside the store, by name (for messages and tests; the
 * engine's own connections use a path anchored to the store's fd). */
const char *snap_store_file(const snap_store *s);
/* The store directory's descriptor, opened without following a link
 * (storedir.c); valid while the store is open, never to be closed by the
 * caller (the daemon watches the directory through it). */
int snap_store_dir_fd(const snap_store *s);

/* Catalog. snap_store_list returns oldest first, trashed snapshots
 * included (snap_info.trash says where they are); free(*out) after. */
int snap_store_list(snap_store *s, snap_info **out, size_t *n, snap_err *err);
/* Find by name, trashed snapshots included; the ".db" suffix is optional;
 * "latest" names the newest snapshot not in the trash of a kind
 * snap_kind_is_latest() accepts (what latest.db links to).  -ENOENT when
 * there is none. */
int snap_store_find(snap_store *s, const char *name, snap_info *out,
		    snap_err *err);
/* The newest snapshot of any kind (for status: how old the newest copy of
 * the database is); -ENOENT when the store holds none. */
int snap_store_newest(snap_store *s, snap_info *out, snap_err *err);
int snap_store_get(snap_store *s, int64_t id, snap_info *out, snap_err *err);
/* 1 when snapshot id is in the catalog with image hash sha256, 0 when not,
 * a negative errno when the catalog cannot be read (cheap: one row). */
int snap_store_has(snap_store *s, int64_t id, const uint8_t sha256[32]);
/* Row counts per table at snapshot time as a JSON object text; free(). */
int snap_store_tables_json(snap_store *s, int64_t id, char **json,
			   snap_err *err);
/* Number of snapshots, and an opaque counter that moves on every change. */
int snap_store_count(snap_store *s, int64_t *count, snap_err *err);

/*
 * For a watcher of the catalog (the daemon's snapshots/ directory):
 * snap_store_data_version gives PRAGMA data_version of the catalog
 * connection, which moves when another connection or process committed to
 * the store (not for commits through the catalog connection itself: the
 * caller knows about those); snap_store_changed_ns gives when the list of
 * snapshots last changed as the store records it (the newest creation, or
 * successful delete, relabel, rename, prune, trash or untrash), 0 for a store that never held a
 * snapshot.
 */
int snap_store_data_version(snap_store *s, int64_t *out, snap_err *err);
int snap_store_changed_ns(snap_store *s, int64_t *out, snap_err *err);

/* Delete a snapshot (trashed or not) and reclaim the pages no other
 * snapshot uses. */
int snap_store_delete(snap_store *s, int64_t id, snap_err *err);
/* Relabel: the name keeps its time prefix, takes the new label. */
int snap_store_relabel(snap_store *s, int64_t id, const char *label,
		       snap_info *out, snap_err *err);
/*
 * Rename: the snapshot is called exactly `name` from now on; its creation
 * time (created_ns), kind and image stay, its label becomes the name
 * without ".db" and without the snapshot's own time prefix, sanitized.
 * Refused, with the reason in err and nothing changed: -EEXIST when
 * another snapshot has the name; what snap_store_name_check refuses.
 * Records a "rename" event.
 */
int snap_store_rename(snap_store *s, int64_t id, const char *name,
		      snap_info *out, snap_err *err);
/*
 * 0 when `name` can be a snapshot's exact name: it ends in ".db" (which
 * snap_store_find lets users leave out) but not in ".db.db" (then the name
 * without ".db" would find another snapshot), does not begin with a dot
 * (hidden), is not latest.db (the newest snapshot), live.db or current.db
 * (snapctl's words for the live database), and is UTF-8 without control
 * characters or slashes, shorter than SNAP_NAME_MAX.  Otherwise -EINVAL
 * (-ENAMETOOLONG when too long) with a message that begins: "NAME" cannot
 * be a snapshot's name.  The names snapshots get when taken pass.
 */
int snap_store_name_check(const char *name, snap_err *err);
int snap_store_set_pinned(snap_store *s, int64_t id, int pinned,
			  snap_err *err);
int snap_store_set_comment(snap_store *s, int64_t id, const char *comment,
			   snap_err *err);

/* Sizes for status: stored bytes (compressed pages + maps) and logical
 * bytes (sum of image sizes); pages = distinct stored pages. */
typedef struct snap_store_stats {
	int64_t snapshots;
	int64_t pages;
	uint64_t stored_bytes;
	uint64_t logical_bytes;
	uint64_t file_bytes;      /* size of store.db (+ -wal) on disk */
} snap_store_stats;
int snap_store_stats_get(snap_store *s, snap_store_stats *st, snap_err *err);

/* Sanitize a label in place rules: [A-Za-z0-9._-], others become '-',
 * a trailing ".db" dropped, at most SNAP_LABEL_MAX bytes, no leading dot,
 * never ending in ".db", never empty (empty becomes `fallback`).
 * Idempotent: a sanitized label sanitizes to itself. */
void snap_label_sanitize(const char *in, const char *fallback,
			 char out[SNAP_LABEL_MAX + 1]);

#endif /* ENGINE_STORE_H */
