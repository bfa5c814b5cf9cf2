/*
 * tests/unit/fault.h — fault injection for the engine's unit tests, in the
 * manner of SQLite's test VFS (src/test_vfs.c) and its malloc failures.
 *
 * One counter per kind of call (engine/sys.h: read, write, fsync, open,
 * rename, alloc).  Armed with (kind, errno, N), the Nth call of that kind
 * from then on fails with that errno (a one-shot fault; `persist` makes
 * every call from the Nth on fail), wherever the call is made:
 *
 *   engine's own calls   the engine/sys.h table (snap_sys), whose entries
 *                        are replaced: open/openat/opendir/fdopendir/
 *                        mkostemp/stat/lstat/fstat/fstatat/access/mkdir/
 *                        mkdirat/flock count as open, read/pread as read,
 *                        write/pwrite/ftruncate/fchmod as write, fsync as
 *                        fsync, rename/renameat/link/unlink/unlinkat/rmdir
 *                        as rename; snap_sys.point as its own kind.  The
 *                        engine retries EINTR itself.
 *   SQLite's calls       the unix VFS's system-call table (xSetSystemCall):
 *                        open as open, read/pread64 as read, write/
 *                        pwrite64/ftruncate as write, unlink (a rollback
 *                        journal's deletion is a commit) as rename.  They
 *                        carry real errno values: SQLite retries EINTR on
 *                        open, read, write and ftruncate, maps ENOSPC to
 *                        SQLITE_FULL, the rest to SQLITE_IOERR_*.
 *                        fsync and fdatasync are not in that table: a shim
 *                        VFS ("fault", made the default, over "unix")
 *                        wraps every file and fails xSync with
 *                        SQLITE_IOERR_FSYNC, as unixSync does for any
 *                        errno (it does not retry EINTR).  SQLite's stat,
 *                        access and fcntl (locks) are left alone: SQLite
 *                        reads a failed stat() of a journal as "no hot
 *                        journal", a SQLite property, not the engine's.
 *   allocations          SQLite's through SQLITE_CONFIG_MALLOC (xMalloc
 *                        and xRealloc return NULL); the engine's own
 *                        malloc/calloc/realloc/strdup through the linker's
 *                        --wrap on the test executable (meson.build), so
 *                        only calls from statically linked code (engine,
 *                        tests) are counted, never libc's, zstd's or
 *                        OpenSSL's internal ones.  Works under ASan: the
 *                        real functions are ASan's interceptors.
 *
 * fault_install() must run first in main(), before anything initializes
 * SQLite.  Unarmed, every wrapper passes straight through.
 *
 * Thread-safety: counters are atomic, so calls from the engine's worker
 * threads count too; arming and disarming happen between engine calls.
 */
#ifndef TESTS_UNIT_FAULT_H
#define TESTS_UNIT_FAULT_H

#include "sys.h"

/* Install every wrapper; call once, first thing in main(). */
void fault_install(void);

/* Fail the nth call of `kind` from now with errno e (alloc: NULL), once,
 * or with persist on every call from the nth on. */
void fault_arm(snap_sys_kind kind, int e, unsigned long n, int persist);
/* Count the calls of every kind from now, failing none. */
void fault_count(void);
/* Stop counting and failing. */
void fault_disarm(void);

/* Calls of `kind` seen since the last fault_arm/fault_count. */
unsigned long fault_calls(snap_sys_kind kind);
/* How many calls the armed fault failed. */
unsigned long fault_fired(void);
/* The first call it failed ("sqlite pwrite64", "engine rename", ...),
 * "" if none, and whether that call was the engine's own (not SQLite's). */
const char *fault_where(void);
int fault_fired_engine(void);

/* "read", "write", "fsync", "open", "rename", "alloc". */
const char *fault_kind_name(snap_sys_kind kind);

#endif /* TESTS_UNIT_FAULT_H */
