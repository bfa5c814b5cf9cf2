/*
 * tests/unit/testutil.h — shared helpers for the engine's cmocka unit tests.
 *
 * Every test runs in its own mkdtemp() directory under /tmp (tu_setup /
 * tu_teardown), builds its own databases with the sqlite3 C API and removes
 * everything at the end.  Helpers that can fail call cmocka's fail_msg(), so
 * a test never continues on a broken fixture.
 *
 * A watchdog (tu_watchdog) gives every test function its own timeout on top
 * of meson's per-executable one: a hung test prints "Bail out!" naming
 * itself and the process exits, instead of meson killing an anonymous binary.
 *
 * Nothing here sleeps for readiness and nothing asserts on wall-clock time.
 */
#ifndef TESTS_UNIT_TESTUTIL_H
#define TESTS_UNIT_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <limits.h>
#include <sys/types.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "snapfs.h"

/* One test's world: a private directory and the live database path. */
typedef struct tu_env {
	char dir[64];         /* mkdtemp() directory, removed at teardown */
	char db[128];         /* <dir>/live.db (not created by tu_setup) */
	snap_store *st;       /* open store or NULL; closed at teardown */
} tu_env;

/* cmocka setup/teardown: tu_env in *state. */
int tu_setup(void **state);
int tu_teardown(void **state);

/* Seconds each test function may run before the watchdog ends the run. */
#define TU_TEST_TIMEOUT 60

/* cmocka_unit_test_setup_teardown with the tu fixture. */
#define tu_test(f) cmocka_unit_test_setup_teardown(f, tu_setup, tu_teardown)

/* "<env->dir>/<name>" into out (PATH_MAX). Returns out. */
char *tu_path(const tu_env *env, char *out, const char *name);

/* Open the store of env->db (default dir) with SNAP_OPEN_CREATE. */
snap_store *tu_store(tu_env *env);

/* Create the live database env->db (tu_db_create) and open its store
 * (tu_store): the start of most tests. */
snap_store *tu_live_store(tu_env *env, const char *journal_mode,
			  int page_size, int nrows);

/* Remove a directory tree (best effort, never fails the test). */
void tu_rmrf(const char *path);

/* ---- SQLite helpers (fail the test on error) ---- */

/* Open read-write (creating), busy timeout 10 s. */
sqlite3 *tu_open(const char *path);
/* Run SQL; fail the test on error. */
void tu_exec(sqlite3 *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Single integer result of a query. */
int64_t tu_query_int(sqlite3 *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Single text result (malloc'd). */
char *tu_query_text(sqlite3 *db, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Create a database at path: journal_mode ("delete" or "wal"), page_size,
 * table t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT) with an index on v,
 * rows 1..nrows.  The file is closed afterwards (a WAL database is
 * checkpointed by the close).
 */
void tu_db_create(const char *path, const char *journal_mode, int page_size,
		  int nrows);
/* <env->dir>/<sub>/live.db of nrows rows (rollback mode), its directory
 * made 0755 here: a live database in a directory of its own, for tests
 * that rename or replace that directory.  dir and db get the paths
 * (PATH_MAX). */
void tu_db_in_subdir(const tu_env *env, const char *sub, char *dir, char *db,
		     int nrows);
/* Insert rows [from, to] into t of an open connection. */
void tu_db_insert(sqlite3 *db, int from, int to);
/* Rows in t. */
int64_t tu_db_rows(const char *path);
/*
 * Content digest (hex SHA-256) of a database: the schema and every row of
 * every table in rowid order.  Independent of page layout and header
 * counters, so a restored database equals its snapshot's digest.
 */
void tu_db_digest(const char *path, char hex[65]);
void tu_db_digest_conn(sqlite3 *db, char hex[65]);
/* 1 when PRAGMA integrity_check says "ok". */
int tu_db_integrity_ok(const char *path);
/* PRAGMA journal_mode / page_size of a file. */
char *tu_db_journal_mode(const char *path);
int64_t tu_db_page_size(const char *path);
/*
 * 1 when another process's view shows a read lock on the database's SHARED
 * byte range, as a SQLite reader in a transaction (any journal mode) holds
 * it; asked from a forked child, since POSIX locks never conflict within
 * one process.  Proves this process's locks survived an engine call.
 */
int tu_reader_lock_held(const char *path);
/* Plain copy with the backup API into a normal file (rollback mode). */
void tu_db_backup_copy(const char *src, const char *dst);

/* ---- files ---- */
uint8_t *tu_read_file(const char *path, size_t *len);
void tu_write_file(const char *path, const void *buf, size_t len);
int tu_exists(const char *path);
void tu_sha256(const void *buf, size_t len, uint8_t out[32]);
void tu_sha256_file(const char *path, uint8_t out[32]);
/* Search the tree under root for a regular file whose SHA-256 is sha;
 * returns a malloc'd path or NULL. */
char *tu_find_file_with_sha(const char *root, const uint8_t sha[32]);

/* ---- store helpers ---- */

/* Take a snapshot (kind manual) with a label; fail the test on error. */
snap_info tu_snap(snap_store *st, const char *label);
/* The same, of another kind. */
snap_info tu_snap_kind(snap_store *st, snap_kind kind, const char *label);
/* The same, with every option (kind, label, pinned, ...). */
snap_info tu_snap_opts(snap_store *st, const snap_create_opts *o);
/* Number of snapshots of a kind. */
int64_t tu_count_kind(snap_store *st, snap_kind kind);
/* Content digest (tu_db_digest) of a snapshot, read through the store VFS. */
void tu_image_digest(snap_store *st, int64_t id, char hex[65]);
/* 1 for a byte of the page-1 header fields SQLite maintains itself
 * (change counter, schema cookie, version-valid-for: engine/PITFALLS.md 7). */
int tu_header_counter_byte(size_t off);
/* The whole image of a snapshot via snap_image_read (malloc'd). */
uint8_t *tu_image_bytes(snap_store *st, int64_t id, size_t *len);
/* Rows of table t in a snapshot, read through the store VFS. */
int64_t tu_image_rows(snap_store *st, int64_t id);
/* Number of snapshots. */
int64_t tu_count(snap_store *st);
/* Distinct stored pages. */
int64_t tu_pages(snap_store *st);
/*
 * A page number of snapshot b whose stored page is not used by snapshot a
 * (a < 0: any page but page 1); fails the test when there is none.
 */
uint32_t tu_unique_page(snap_store *st, int64_t a, int64_t b);
/* Store page id of page pgno of snapshot id. */
int64_t tu_page_id(snap_store *st, int64_t id, uint32_t pgno);
/*
 * Corrupt stored page `page_id` by flipping one byte of its stored
 * (compressed or raw) data, directly in store.db with sqlite3.
 */
void tu_corrupt_page(snap_store *st, int64_t page_id);
/*
 * Replace the stored data of page `victim` with the stored data of page
 * `donor`: the page still decodes, but to the wrong content.
 */
void tu_swap_page_data(snap_store *st, int64_t victim, int64_t donor);
/*
 * Cut the stored data of page `page_id` to half its length: it can no
 * longer be decoded.
 */
void tu_truncate_page_data(snap_store *st, int64_t page_id);
/*
 * Recompute every page's reference count (runs, engine/store.c) from the
 * snapshots' maps: 1 (and why) on the first page whose count differs, a
 * referenced page missing, or an unreferenced page kept; else 0.
 */
int tu_runs_check(snap_store *st, char *why, size_t cap);
/* The same, failing the test. */
void tu_assert_runs(snap_store *st);
/* ---- the event log ---- */
/* Events with id > after, oldest first, into *ev (free it); their number. */
size_t tu_events(snap_store *st, int64_t after, snap_event **ev);
/* Id of the newest event, 0 when there is none. */
int64_t tu_last_event_id(snap_store *st);
/* The newest event with id > after of kind (and this snapshot name when
 * snapshot is not NULL); fails the test, listing the log, when none. */
snap_event tu_newest_event(snap_store *st, int64_t after, const char *kind,
			   const char *snapshot);
/* Number of events with id > after of kind, with ok (ok < 0: either),
 * whose detail contains text (NULL: any). */
int tu_count_events(snap_store *st, int64_t after, const char *kind, int ok,
		    const char *text);
/* The same, and the detail of the last of them into detail (cap bytes). */
int tu_count_events_detail(snap_store *st, int64_t after, const char *kind,
			   int ok, const char *text, char *detail, size_t cap);

/* Run SQL on the store's store.db through a connection of our own. */
void tu_store_exec(snap_store *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Collect problems reported by verification. */
typedef struct tu_problems {
	int n;              /* problems reported */
	int64_t snap_id;    /* snapshot of the last problem */
	char snap_name[SNAP_NAME_MAX];
	uint32_t pgno;      /* page of the last page-specific problem */
	int npage;          /* problems naming a page */
	char text[512];     /* text of the last problem */
} tu_problems;
void tu_problem_cb(void *ctx, const snap_info *si, uint32_t pgno,
		   const char *problem);

/* ---- the watchdog ---- */
/* Arm (seconds > 0) or disarm (0) the per-test timeout for test `name`. */
void tu_watchdog(unsigned seconds, const char *name);

/* ---- a small JSON reader, to check the engine's JSON writer ---- */
typedef enum tu_jtype {
	TU_JNULL, TU_JBOOL, TU_JNUM, TU_JSTR, TU_JARR, TU_JOBJ
} tu_jtype;
typedef struct tu_jv {
	tu_jtype type;
	int b;                 /* TU_JBOOL */
	char *num;             /* TU_JNUM: the number's text */
	char *str;             /* TU_JSTR: decoded UTF-8 */
	size_t slen;           /* TU_JSTR: decoded length (may hold NULs) */
	size_t n;              /* TU_JARR/TU_JOBJ: members */
	char **keys;           /* TU_JOBJ: decoded keys */
	struct tu_jv **items;  /* TU_JARR/TU_JOBJ: values */
} tu_jv;
/* Parse a complete JSON text; NULL (and *why set) when it is not valid. */
tu_jv *tu_json_parse(const char *text, const char **why);
void tu_json_free(tu_jv *v);
/* Member of an object by key, or NULL. */
const tu_jv *tu_json_get(const tu_jv *obj, const char *key);

#endif /* TESTS_UNIT_TESTUTIL_H */
