/*
 * fs/liveconn.c — SQLite on the live database: a connection with the
 * engine's busy policy, the value of a PRAGMA, and page 1 as every image
 * has it.  Below live.c, liveimage.c and peek.c, which all use them.
 *
 * The connections are read-write only so that SQLite itself can roll back
 * a hot journal (it is never written through); the live file is never
 * open()ed here: all access goes through SQLite, whose
 * per-process inode table keeps POSIX locks intact across our
 * connections and the engine's (engine/PITFALLS.md 2).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "live_int.h"

/* The first column of the one row of sql on conn (a PRAGMA); a SQLite
 * result code. */
int snap_live_pragma_int(sqlite3 *conn, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Open a connection on the live path with a busy timeout.  Read-write (never
 * create) when the file allows it, because only a read-write connection can
 * roll back a hot journal an application or a killed restore left behind
 * (a read-only one gets SQLITE_READONLY_ROLLBACK); the daemon never writes
 * through it.  Read-only otherwise.
 */
int snap_live_connect(const char *path, const char *vfs, sqlite3 **out,
		      snap_err *err)
{
	sqlite3 *db = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, vfs);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL;
		rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, vfs);
	}
	if (rc != SQLITE_OK) {
		rc = snap_err_sqlite(err, db, rc, "opening %s", path);
		sqlite3_close(db);
		return rc;
	}
	/* The engine's busy policy: SQLite's own backs off to 100 ms, and an
	 * application committing in a tight loop starved image builds for
	 * seconds. */
	snap_restore_busy_set(db);
	*out = db;
	return 0;
}

/* v big-endian at p (a database header field). */
static void live_put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/*
 * Every image's page 1 (the database header), as sqlite3_backup leaves a
 * fresh copy, written out so that an image built whole and the head of a
 * peek agree byte for byte, whatever SQLite version made them: rollback
 * journal mode (bytes 18-19 = 1: a copy never looks for -wal and -shm),
 * change counter, schema cookie and version-valid-for 1 (the copy's first
 * commit), the page count, and the library's version number.
 */
void snap_live_page1_normalize(unsigned char *hdr, uint64_t pages)
{
	hdr[18] = hdr[19] = 1;
	live_put32(hdr + 24, 1);
	live_put32(hdr + 28, (uint32_t)pages);
	live_put32(hdr + 40, 1);
	live_put32(hdr + 92, 1);
	live_put32(hdr + 96, (uint32_t)sqlite3_libversion_number());
}

/*
 * PRAGMA data_version on conn; with size, also the size an image taken now
 * would have (page_count * page_size), read in the same read transaction
 * as the data version (PRAGMA page_count starts it, COMMIT ends it), so
 * the size belongs to exactly that version.  0 or a negative errno.
 */
int snap_live_data_version(sqlite3 *conn, int64_t *out, uint64_t *size)
{
	int64_t pages = 0, page_size = 0;
	int rc;

	if (!size)
		return snap_err_sqlite_errno(snap_live_pragma_int(conn,
				"PRAGMA data_version", out));
	rc = sqlite3_exec(conn, "BEGIN", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = snap_live_pragma_int(conn, "PRAGMA page_count", &pages);
	if (rc == SQLITE_OK)
		rc = snap_live_pragma_int(conn, "PRAGMA page_size", &page_size);
	if (rc == SQLITE_OK)
		rc = snap_live_pragma_int(conn, "PRAGMA data_version", out);
	if (!sqlite3_get_autocommit(conn))
		sqlite3_exec(conn, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return snap_err_sqlite_errno(rc);
	if (pages < 0 || page_size <= 0)
		return -EIO;
	*size = (uint64_t)pages * (uint64_t)page_size;
	return 0;
}
