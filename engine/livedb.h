/*
 * engine/livedb.h — the one place that opens the live database: its busy
 * policy, data_version checks, consistent images (backups into or out of
 * it) and page-1 normalization.  The daemon (fs/) and every engine module
 * reach the live database through these calls only.
 *
 * Every call reaches the live database through SQLite only (a descriptor
 * of our own would drop SQLite's locks: engine/PITFALLS.md 2).  Errors are
 * 0 or a negative errno with err filled, naming the path.
 */
#ifndef ENGINE_LIVEDB_H
#define ENGINE_LIVEDB_H

#include <stdint.h>
#include <sqlite3.h>

#include "err.h"

/* What a precondition sees of the live database, read under its lock. */
typedef struct snap_live_token {
	int wal;                  /* the live database is in WAL mode */
	uint32_t change_counter;  /* header bytes 24-27 (rollback mode: moves
				     with every commit; WAL mode: does not) */
} snap_live_token;

/*
 * How a connection waits for a lock another connection holds on the live
 * database: the engine's one busy policy and its two documented shorter
 * forms.  Every wait polls often (0.1 ms, then 1 ms), so an application
 * committing in a tight loop cannot starve it (SQLite's own handler backs
 * off to 100 ms: engine/PITFALLS.md 11).
 */
enum snap_livedb_wait {
	SNAP_LIVEDB_WAIT = 0,   /* work on the database: SNAP_LIVEDB_WAIT_MS */
	SNAP_LIVEDB_WATCH = 1,  /* a look that may call the database changed
				   when it cannot ask (the scheduler's
				   data_version): SNAP_LIVEDB_WATCH_MS */
	SNAP_LIVEDB_NOWAIT = 2, /* a look that must not queue behind a writer
				   (the daemon's stat): SQLITE_BUSY at once */
};
#define SNAP_LIVEDB_WAIT_MS 30000
#define SNAP_LIVEDB_WATCH_MS 2000

/* How snap_livedb_open opens (or'ed; one of RO, RW, RW_OR_RO). */
enum {
	SNAP_LIVEDB_RO = 1,        /* read-only */
	SNAP_LIVEDB_RW = 2,        /* read-write (never creating) */
	SNAP_LIVEDB_RW_OR_RO = 3,  /* read-write when the file allows it (so
				      SQLite can roll back a hot journal),
				      else read-only */
	SNAP_LIVEDB_URI = 4,       /* URIs allowed (in ATTACH too) */
	SNAP_LIVEDB_FOLLOW = 8,    /* follow symlinks: only for a file a user
				      named that is not the live database
				      (an import); resolved at the open, then
				      its directory anchored like the live
				      file's (an anchor refused is refused,
				      as snap_livedb_path says) */
	SNAP_LIVEDB_SHORT = 16,    /* busy policy SNAP_LIVEDB_WATCH */
	SNAP_LIVEDB_SHARED = 32,   /* used by several threads in turn (the
				      daemon's): SQLite's own mutex kept;
				      otherwise SQLITE_OPEN_NOMUTEX */
};
/* How the daemon opens it: read-write when allowed, threads sharing. */
#define SNAP_LIVEDB_DAEMON (SNAP_LIVEDB_RW_OR_RO | SNAP_LIVEDB_SHARED)

/*
 * The one way the engine and the daemon open the live database at path:
 * never creating it (a missing file is -ENOENT naming the path), never
 * through a symlink (without SNAP_LIVEDB_FOLLOW: -ELOOP naming it),
 * extended result codes on, the busy policy SNAP_LIVEDB_WAIT (or WATCH
 * with SNAP_LIVEDB_SHORT).  vfs may be NULL (the default VFS).
 */
int snap_livedb_open(const char *path, int flags, const char *vfs,
		     sqlite3 **db, snap_err *err);

/*
 * The live file at path as the engine opens it, by name or through
 * SQLite: "/proc/self/fd/<dirfd>/<name>", its directory reached without
 * following a symlink and kept open for the process's life
 * (snap_anchor_path), so that a directory renamed or swapped by whoever
 * may write a parent never redirects a later open.  0, or a negative errno
 * with err saying why in words that name path (-EPERM: the directory at
 * that name is not the one first opened).  snap_livedb_open does this
 * itself.
 */
int snap_livedb_path(const char *path, char *out, size_t cap, snap_err *err);

/*
 * The live file at `at` (as snap_livedb_path gives it; path names it in
 * the message) may be written into by this process: unless it lies in a
 * directory anyone may write (mode o+w, as /tmp), or belongs to root,
 * this user or the directory's owner.  Otherwise anyone could have put
 * it there, to receive a restored snapshot or an edit: -EPERM saying so.
 * A missing file or one not regular passes (others refuse it).
 * snap_livedb_open checks every read-write open (SNAP_LIVEDB_RW, also
 * RW_OR_RO) of the live file once SQLite has it open.
 */
int snap_livedb_owned(const char *at, const char *path, snap_err *err);

/* Give db (a connection on the live database, or one with it attached)
 * the busy policy `wait`. */
void snap_livedb_busy_set(sqlite3 *db, enum snap_livedb_wait wait);

/* PRAGMA data_version on db (a commit by another connection moves it);
 * with size, also page_count * page_size read in the same read
 * transaction, so the size belongs to exactly that version.  0 or a
 * negative errno (-EBUSY when a writer held the lock past the policy). */
int snap_livedb_data_version(sqlite3 *db, int64_t *dv, uint64_t *size);

/* Write page 1 (the database header, hdr) as every image of a database of
 * `pages` pages has it, whatever SQLite version made the copy. */
void snap_livedb_page1_normalize(unsigned char *hdr, uint64_t pages);

/* The token of the live database now (through a SQLite connection). */
int snap_livedb_token_get(const char *db_path, snap_live_token *tok,
			  snap_err *err);

/* What the live file is before a restore. */
enum snap_live_state { SNAP_LIVE_DB, SNAP_LIVE_MISSING, SNAP_LIVE_NOT_DB };

/* One integer from a query on db (a PRAGMA): an SQLite result code. */
int snap_livedb_int(sqlite3 *db, const char *sql, int64_t *out);
/* The error for a read of the live database at path that failed with
 * SQLite's rc: "cannot read PATH: ..." in SQLite's words, or, when SQLite
 * could not open a -wal, -journal or -shm beside it because that is a
 * symbolic link (SQLITE_OPEN_NOFOLLOW), -ELOOP naming the link. */
int snap_livedb_read_error(sqlite3 *db, int rc, const char *path,
			   snap_err *err);

/* Classify the live file at path, and learn its journal mode (*wal) and
 * page size; a database too damaged to read its mode still counts as one. */
int snap_livedb_probe(const char *path, enum snap_live_state *state, int *wal,
		      int64_t *page_size, snap_err *err);

/* Start a backup of src into dst holding dst's write lock (*out, to be
 * finished by snap_livedb_backup_rest); `what` names dst in messages. */
int snap_livedb_backup_begin(sqlite3 *dst, sqlite3 *src, const char *what,
			     sqlite3_backup **out, snap_err *err);
/* How a backup runs in steps: fn (may be NULL) told the pages done so
 * far and the total after each step; gate (may be NULL) asked before the
 * step that commits, and a negative errno from it (err filled) ends the
 * backup with its transaction rolled back. */
typedef struct snap_livedb_steps {
	void (*fn)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
	int (*gate)(void *gate_ctx, snap_err *err);
	void *gate_ctx;
} snap_livedb_steps;
/* Copy the rest and commit; finishes bk either way. */
int snap_livedb_backup_rest(sqlite3_backup *bk, const char *what,
			    snap_err *err);
/* The same in steps (how NULL: one step). */
int snap_livedb_backup_steps(sqlite3_backup *bk, const char *what,
			     const snap_livedb_steps *how, snap_err *err);
/* Run one whole backup from src into dst (how as above, may be NULL). */
int snap_livedb_backup_all(sqlite3 *dst, sqlite3 *src, const char *what,
			   const snap_livedb_steps *how, snap_err *err);

/* The token of db's main file through its own file handle (which holds a
 * lock); wal as the caller knows it.  0 or -EIO. */
int snap_livedb_token(sqlite3 *db, int wal, snap_live_token *tok);

#endif /* ENGINE_LIVEDB_H */
