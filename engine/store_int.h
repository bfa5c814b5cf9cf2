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

/* Why a store is read-only (snap_store.readonly). */
enum {
	SNAP_STORE_RW = 0,       /* writable */
	SNAP_STORE_RO_ASKED,     /* opened with SNAP_OPEN_READONLY */
	SNAP_STORE_RO_MEDIA,     /* its filesystem or directory is read-only */
	SNAP_STORE_RO_FULL,      /* its filesystem was full at open: becomes
				    writable again once there is room */
};

struct snap_store {
	char *db_path;           /* absolute path of the live database */
	char *dir;               /* absolute path of the store directory (for
				    messages: files are reached by dirfd) */
	char *file;              /* dir + "/store.db", for messages */
	int dirfd;               /* the store directory, opened once without
				    following a link and checked; every store
				    file is reached relative to it */
	char *sqlfile;           /* what SQLite opens: store.db anchored to
				    dirfd ("/proc/self/fd/N/store.db"), or
				    `file` without /proc */
	sqlite3 *db;             /* catalog connection; protected by mu */
	pthread_mutex_t mu;      /* recursive; guards db and its statements */
	int daemon_fd;           /* flock()ed daemon.lock, or -1 */
	int readonly;            /* SNAP_STORE_*; protected by mu (RO_FULL
				    may turn RW) */
	int immutable;           /* read-only and opened immutable=1 (no -shm
				    could be made); protected by mu */
	char *uri;               /* "file:<sqlfile>?immutable=1" then */
	char vfs_name[64];       /* read-only store VFS (image.c), "" if none */
	sqlite3_vfs *ro_vfs;     /* registered lazily; protected by mu */
	struct snap_image_src *lent; /* sources lent to that VFS (image.h);
				    protected by mu */
	uint64_t lent_next;      /* the last token given; protected by mu */
	void (*failure_hook)(void *ctx, const struct snap_event *ev);
	void *failure_ctx;       /* hook and its context; protected by mu */
};

/* Columns snap_store_row_info() expects, in order, and the tables they
 * come from: a snapshot's row and its place in the trash, if any (a table
 * of its own, so that listing never reads past the pagemap, the last
 * column of snapshots; see storecat.c). */
#define SNAP_INFO_COLS \
	"id,name,label,kind,created_ns,comment,pinned,page_size,page_count," \
	"image_size,sha256,change_counter,trash.dir,trash.uid,trash.tname," \
	"trash.trashed_ns"
#define SNAP_INFO_FROM "snapshots LEFT JOIN trash USING(id)"

/* ---- opening (store.c), schema (storeschema.c), room (storespace.c) ---- */

/* Take daemon.lock for s->daemon_fd (storelock.c): at once when it is
 * free, after a bounded wait when its holder's mount is gone; -EBUSY with
 * a message naming the holder otherwise. */
int snap_store_daemon_lock(snap_store *s, snap_err *err);

/* A store read-only for want of room tries to write again once this much
 * is free. */
#define STORE_ROOM_MIN (1 << 20)
/* Bytes free for us on the store's filesystem (UINT64_MAX: unknown). */
uint64_t snap_store_room(snap_store *s);
/* The store's reserve (storespace.c): a 64th of its filesystem or a 16th
 * of store.db, the smaller, but from 2 MiB (a delete in a store of a few
 * MB needed more than 256 KiB) to 8 MiB, in the file "reserve", made while there is room
 * (keep), given back to the filesystem when a catalog change finds it
 * full (release: 1 when there was one) so that a full store can still
 * delete snapshots. */
#define STORE_RESERVE_MIN (2ull << 20)
#define STORE_RESERVE_MAX (8ull << 20)
uint64_t snap_store_reserve_size(snap_store *s);
void snap_store_reserve_keep(snap_store *s);
int snap_store_reserve_release(snap_store *s);
/* Size of the store's -wal (0 when there is none). */
int64_t snap_store_wal_size(snap_store *s);
/*
 * A read-write connection to store.db that is ready for the catalog: the
 * pragmas, the schema (created in an empty file, checked otherwise) and WAL
 * mode.  On failure *full says whether the store's filesystem ran out of
 * room (then the store can still be opened read-only).
 */
int snap_store_open_rw(snap_store *s, int mutex, sqlite3 **out, int *full,
		       snap_err *err);
/* Read a meta value into out (empty if absent): an SQLite result code. */
int snap_store_meta_get(sqlite3 *db, const char *key, char *out, size_t cap);
/* A read-only store: only check that it is ours and not too new. */
int snap_store_schema_check(snap_store *s, sqlite3 *db, snap_err *err);
/* Create the schema in an empty store, or check and migrate an old one. */
int snap_store_schema_init(snap_store *s, sqlite3 *db, const char *db_path,
			   snap_err *err);
/* A read-only connection to a version-1 store: an empty TEMP table trash. */
int snap_store_ro_compat(sqlite3 *db, snap_err *err);

/* ---- the zstd dictionaries (storedict.c) ---- */

struct snap_dicts;
/* One problem found with a dictionary (a damaged copy or hash) or with
 * the table of them (unreadable: usable 0); usable:
 * an intact copy still serves (pages decode). */
typedef void (*snap_dict_problem_fn)(void *ctx, const char *msg, int usable);
/*
 * Load the store's dictionaries on db into *ds for decoding (each copy
 * checked against its SHA-256; a damaged one reported through fn, which
 * may be NULL, and the intact one used), and with level > 0 compress with
 * the newest at that zstd level.  A store without the table has none.
 * With level > 0 (a capture, in its write transaction) a damaged copy or
 * hash is rewritten from the intact copy, and a dictionary with no intact
 * copy is -EBADMSG: a snapshot would share pages that cannot be read.
 * With level 0 a table that cannot be read (a damaged page of it, or a
 * table of another shape; not memory, a lock or I/O) is reported through
 * fn as not usable and gives the dictionaries read before the error.
 * 0, or a negative errno with *ds empty.
 */
int snap_store_dicts_load(sqlite3 *db, struct snap_dicts *ds, int level,
			  snap_dict_problem_fn fn, void *ctx, snap_err *err);
/* Record dictionary dict (len bytes; its id is its dictID) twice with its
 * SHA-256, in the caller's write transaction. */
int snap_store_dict_insert(sqlite3 *db, const void *dict, size_t len,
			   snap_err *err);

/* ---- the store directory (storedir.c) ---- */

/*
 * Open s->dir (creating it 0700 when `create`; *made then says so) without
 * following a link, check that it is a directory of the effective user,
 * keep it in s->dirfd and set s->sqlfile.
 */
int snap_storedir_open(snap_store *s, int create, int *made, snap_err *err);
/* Make the directory private (0700) or refuse it (see storedir.c). */
int snap_storedir_private(snap_store *s, snap_err *err);
/* 1 when a store file other than store.db is there (its name in found). */
int snap_storedir_remains(snap_store *s, char *found, size_t cap);
/* Check store.db and SQLite's side files that exist: no links, regular,
 * ours, 0600 (tightened). */
int snap_storedir_files_check(snap_store *s, snap_err *err);
/* Remove the files of a store this open created (and the directory when
 * `made`). */
void snap_storedir_undo_create(snap_store *s, int made);
/* Open the store file `name` relative to s->dirfd with open(2) flags
 * (O_CREAT creates it 0600), never following a link; checked like
 * snap_storedir_files_check.  An fd or a negative errno. */
int snap_store_file_open(snap_store *s, const char *name, int flags,
			 snap_err *err);
/* 1 when the store holds `name` (a link counts; it is not followed). */
int snap_store_file_exists(snap_store *s, const char *name);
/* Remove the store file `name`; 0 (also when absent) or -errno. */
int snap_store_file_remove(snap_store *s, const char *name);
/* fsync the store directory (after creating or removing a file): 0 or
 * -errno. */
int snap_store_dir_sync(snap_store *s);

/* A new connection to store.db with the store's pragmas. */
int snap_store_connect(snap_store *s, int readonly, sqlite3 **db,
		       snap_err *err);
/* Run SQL without results. */
int snap_store_exec(sqlite3 *db, const char *sql, snap_err *err);
/* The catalog rows SNAP_INFO_FROM gives with SQL `tail` ("WHERE ...
 * ORDER BY ..."), its parameter ?1 bound to *arg when arg is not NULL;
 * `what` names them in an error.  free(*out) after. */
int snap_store_list_sql(snap_store *s, const char *tail, const int64_t *arg,
			snap_info **out, size_t *n, const char *what,
			snap_err *err);
/* The text column `sql` (one ?, bound to id) selects, malloc()ed in *out
 * (dflt when NULL); -ENOENT "<missing> <id>" when there is no row. */
int snap_store_text(snap_store *s, const char *sql, int64_t id,
		    const char *dflt, const char *missing, char **out,
		    snap_err *err);
/* Fill si from a row selected with SNAP_INFO_COLS first. */
void snap_store_row_info(sqlite3_stmt *st, snap_info *si);
/* 0 when si's shape (page size, page count, image size) is one a capture
 * writes; -EBADMSG naming the snapshot otherwise.  Readers check before
 * they divide by the page size or allocate for it. */
int snap_store_info_check(const snap_info *si, snap_err *err);
/* A name "<time>_<label>[-N].db" not used by another snapshot; want
 * instead (may be NULL) when it can be a snapshot's name
 * (snap_store_name_check) and no other snapshot has it. */
int snap_store_unique_name(sqlite3 *db, int64_t created_ns, const char *label,
			   const char *want, int64_t exclude_id,
			   char out[SNAP_NAME_MAX], snap_err *err);
/* Load and decode snapshot id's page map (free() it). */
int snap_store_load_map(sqlite3 *db, int64_t id, uint32_t *n, int64_t **ids,
			snap_err *err);
/* Like snap_store_get/find on a caller's connection. */
int snap_store_get_db(sqlite3 *db, int64_t id, snap_info *out, snap_err *err);
/* Tests: from now on count the loads of snapshot id's catalog row
 * (snap_store_get_db) and of its page map (snap_store_load_map), on any
 * thread; snap_store_loads gives the counts so far.  A restore must load
 * each once (tests/unit/test_restore.c). */
void snap_store_count_loads(int64_t id);
void snap_store_loads(unsigned *rows, unsigned *maps);
/* Count one load of id's row (map 0) or page map (map 1). */
void snap_store_count_load(int64_t id, int map);
/* What the store's filesystem has and what a snapshot may take. */
typedef struct snap_space {
	uint64_t fs_free;    /* f_bavail * f_frsize of the store directory */
	uint64_t reusable;   /* free pages inside store.db, in bytes */
	uint64_t wal;        /* size of store.db-wal */
	uint64_t unit;       /* worst-case bytes a snapshot writes */
	uint64_t need;       /* filesystem bytes a worst-case snapshot takes */
} snap_space;

/*
 * Measure *sp: what the guard of snap_retention_make_room() (formula in
 * retention.h) and snap_store_writable() tell the user.  0 or -errno.
 */
int snap_store_space(snap_store *s, snap_space *sp, snap_err *err);
/*
 * Begin a catalog change: 0 when the store is writable, s->mu is held and
 * s->db is in a BEGIN IMMEDIATE transaction; a negative errno (-EROFS,
 * -ENOSPC, -EBUSY ...) with s->mu not held otherwise.
 */
int snap_store_txn_begin(snap_store *s, snap_err *err);
/*
 * End the transaction begun on db: COMMIT when rc is 0, ROLLBACK when rc is
 * not or when COMMIT fails.  Returns rc, or COMMIT's error.  s->mu stays
 * held: the caller records its event, then unlocks.
 */
int snap_store_txn_end(sqlite3 *db, int rc, snap_err *err);
/* Take s->mu, prepare sql on the catalog connection, bind ?1 to the text
 * key (the integer num when key is NULL) and ?2, where the statement has
 * one, to num, and step once: SQLITE_ROW, SQLITE_DONE or the error code.
 * The caller reads the row, finalizes *st and unlocks s->mu, whatever it
 * got. */
int snap_store_step1(snap_store *s, const char *sql, const char *key,
		     int64_t num, sqlite3_stmt **st);
/* The first row of n integer columns sql gives on the catalog connection
 * (under s->mu) into out[0..n-1]; on failure err says the store could not
 * `what`. */
int snap_store_query_ints(snap_store *s, const char *sql, int64_t *out,
			  int n, const char *what, snap_err *err);
/* Record an event on a given connection (no locking; storecat.c). */
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

/* An absolute path for path without requiring it to exist (its directory
 * must), and the same for a store directory (store.c). */
char *snap_store_abs_path(const char *path);
char *snap_store_dir_path(const char *dir);

void snap_store_lock(snap_store *s);
void snap_store_unlock(snap_store *s);

#endif /* ENGINE_STORE_INT_H */
