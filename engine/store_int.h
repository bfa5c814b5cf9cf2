/*
 * engine/store_int.h — what engine modules share about a store; not part of
 * the public API.
 *
 * Lock order: s->mu (the catalog connection) may be taken while holding
 * nothing else.  Long operations open their own connection with
 * snap_store_connect() and never hold s->mu across SQLite work on it.
 */
#ifndef ENGINE_STORE_INT_H
#define ENGINE_STORE_INT_H

#include <pthread.h>
#include <sqlite3.h>

#include "store.h"

struct snap_event;

struct snap_store {
	char *db_path;           /* absolute path of the live database */
	char *dir;               /* absolute path of the store directory */
	char *file;              /* dir + "/store.db" */
	sqlite3 *db;             /* catalog connection; protected by mu */
	pthread_mutex_t mu;      /* recursive; guards db and its statements */
	int daemon_fd;           /* flock()ed daemon.lock, or -1 */
	int readonly;            /* on read-only media: opened immutable */
	char *uri;               /* "file:...store.db?immutable=1" then */
	char vfs_name[64];       /* read-only store VFS (image.c), "" if none */
	sqlite3_vfs *ro_vfs;     /* registered lazily; protected by mu */
	void (*failure_hook)(void *ctx, const struct snap_event *ev);
	void *failure_ctx;       /* hook and its context; protected by mu */
};

/* Columns snap_store_row_info() expects, in order. */
#define SNAP_INFO_COLS \
	"id,name,label,kind,created_ns,comment,pinned,page_size,page_count," \
	"image_size,sha256,change_counter"

/* A new connection to store.db with the store's pragmas. */
int snap_store_connect(snap_store *s, int readonly, sqlite3 **db,
		       snap_err *err);
/* Run SQL without results. */
int snap_store_exec(sqlite3 *db, const char *sql, snap_err *err);
/* Fill si from a row selected with SNAP_INFO_COLS first. */
void snap_store_row_info(sqlite3_stmt *st, snap_info *si);
/* 0 when si's shape (page size, page count, image size) is one a capture
 * writes; -EBADMSG naming the snapshot otherwise.  Readers check before
 * they divide by the page size or allocate for it. */
int snap_store_info_check(const snap_info *si, snap_err *err);
/* A name "<time>_<label>[-N].db" not used by another snapshot. */
int snap_store_unique_name(sqlite3 *db, int64_t created_ns, const char *label,
			   int64_t exclude_id, char out[SNAP_NAME_MAX],
			   snap_err *err);
/* Load and decode snapshot id's page map (free() it). */
int snap_store_load_map(sqlite3 *db, int64_t id, uint32_t *n, int64_t **ids,
			snap_err *err);
/* Like snap_store_get/find on a caller's connection. */
int snap_store_get_db(sqlite3 *db, int64_t id, snap_info *out, snap_err *err);
/* Record an event on a given connection (no locking). */
int snap_event_add_db(sqlite3 *db, const char *kind, const char *snapshot,
		      int ok, const char *detail);
/* The set of unique page ids in snapshot id's map (empty for id <= 0). */
struct snap_idcount;
int snap_store_map_set(sqlite3 *db, int64_t id, struct snap_idcount *set,
		       snap_err *err);
/* Add delta->counts[i] to the runs of page delta->ids[i]; delete pages
 * whose runs reach 0. */
int snap_store_runs_apply(sqlite3 *db, const struct snap_idcount *delta,
			  snap_err *err);
/* Take / release the exclusive restore lock: 0 or -EBUSY. */
int snap_store_restore_lock(snap_store *s, int *fd, snap_err *err);
void snap_store_restore_unlock(int fd);

/* Register the store's read-only VFS (image.c) if needed and give its
 * name, for URIs "file:snapfs-snapshot-<id>?immutable=1&vfs=<name>". */
int snap_image_vfs_name(snap_store *s, const char **name, snap_err *err);

/*
 * A snapshot of the live database through `live`, a connection whose
 * exclusive lock (rollback mode) a restore holds: its pages are read raw
 * through SQLite's own file handle, so the image is exactly the committed
 * state nobody can change meanwhile.  Table counts are left empty.
 */
struct snap_create_opts;
int snap_snapshot_take_locked(snap_store *s, sqlite3 *live,
			      const struct snap_create_opts *o, snap_info *out,
			      snap_err *err);

void snap_store_lock(snap_store *s);
void snap_store_unlock(snap_store *s);

#endif /* ENGINE_STORE_INT_H */
