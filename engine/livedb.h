/*
 * engine/livedb.h — connections to the live database and backups into it
 * (internal, except the three calls fs/ uses: snap_restore_open_live,
 * snap_restore_busy_set, snap_live_token_get).
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

/* The token of the live database now (through a SQLite connection). */
int snap_live_token_get(const char *db_path, snap_live_token *tok,
			snap_err *err);

/*
 * A read-write connection (never creating) to the live database at path,
 * with the busy handler every writer of the engine uses there: it polls
 * often, so an application committing in a tight loop cannot starve it
 * (SQLite's own handler backs off to 100 ms), for about 30 s in all.
 */
int snap_restore_open_live(const char *path, sqlite3 **db, snap_err *err);

/* Give db (a connection on the live database) that same busy policy. */
void snap_restore_busy_set(sqlite3 *db);

/* What the live file is before a restore. */
enum snap_live_state { SNAP_LIVE_DB, SNAP_LIVE_MISSING, SNAP_LIVE_NOT_DB };

/* One integer from a query on db: an SQLite result code. */
int snap_livedb_int(sqlite3 *db, const char *sql, int64_t *out);

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
