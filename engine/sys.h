/*
 * engine/sys.h — the engine's own system calls, through one replaceable
 * table (internal).
 *
 * Every call the engine makes on a file outside SQLite goes through
 * `snap_sys`, a table of function pointers that default to libc's, the
 * way SQLite's os_unix.c routes its calls through aSyscall.  A test
 * replaces entries to make the Nth call fail with a real errno (EIO,
 * ENOSPC, EINTR) and proves that every path above it ends in a clean
 * error (tests/unit/fault.c).  Production pays one indirect call.
 * (realpath() and fstatvfs(), which only resolve names and read free
 * space, call libc directly.)
 *
 * Call sites use the snap_sys_<call>() functions below, never the table
 * directly: they retry a call that failed with EINTR (a signal arrived
 * before anything happened), as SQLite's robust_open() and seekAndRead()
 * do, so an interrupted call never becomes an error.  close() is the one
 * exception: Linux releases the descriptor even when close() says EINTR,
 * so it is never retried.
 *
 * snap_sys_point() is a fault point with no system call behind it, for
 * I/O this table cannot see (a replica's transfer through a network
 * library): the module calls it where the transfer happens, and it fails
 * only when a test armed `snap_sys.point`.
 *
 * The SQLite side of the engine's I/O (store.db, the live database, the
 * capture VFS writing into the store) is SQLite's own; tests reach it
 * through the unix VFS's system-call table and a VFS shim instead.
 *
 * Thread-safety: the table is written once, before any engine call (a
 * test's main()); afterwards it is only read.
 */
#ifndef ENGINE_SYS_H
#define ENGINE_SYS_H

#include <dirent.h>
#include <sys/stat.h>
#include <sys/types.h>

/* What a fault point does, for snap_sys_point() and the tests' faults. */
typedef enum snap_sys_kind {
	SNAP_SYS_READ = 0,   /* reading bytes */
	SNAP_SYS_WRITE,      /* writing bytes, changing a file's size */
	SNAP_SYS_FSYNC,      /* making bytes durable */
	SNAP_SYS_OPEN,       /* opening, looking up, locking a file */
	SNAP_SYS_RENAME,     /* changing a name: rename, link, unlink */
	SNAP_SYS_ALLOC,      /* allocating memory */
	SNAP_SYS_KIND_COUNT
} snap_sys_kind;

/* The table; every entry has libc's meaning (-1 and errno on failure). */
typedef struct snap_sys_table {
	int (*open)(const char *path, int flags, mode_t mode);
	int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*read)(int fd, void *buf, size_t n);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*write)(int fd, const void *buf, size_t n);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*flock)(int fd, int op);
	int (*fstat)(int fd, struct stat *st);
	int (*stat)(const char *path, struct stat *st);
	int (*lstat)(const char *path, struct stat *st);
	int (*fstatat)(int dirfd, const char *path, struct stat *st,
		       int flags);
	int (*access)(const char *path, int mode);
	int (*mkdir)(const char *path, mode_t mode);
	int (*mkdirat)(int dirfd, const char *path, mode_t mode);
	int (*rmdir)(const char *path);
	int (*fchmod)(int fd, mode_t mode);
	int (*fchown)(int fd, uid_t uid, gid_t gid);
	int (*rename)(const char *from, const char *to);
	int (*renameat)(int fromfd, const char *from, int tofd,
			const char *to);
	int (*link)(const char *from, const char *to);
	int (*unlink)(const char *path);
	int (*unlinkat)(int dirfd, const char *path, int flags);
	DIR *(*opendir)(const char *path);
	DIR *(*fdopendir)(int fd);
	int (*mkostemp)(char *tmpl, int flags);
	/* A fault point without a system call: 0, or a positive errno the
	 * caller reports as failure.  NULL (the default): never fails. */
	int (*point)(snap_sys_kind kind, const char *what);
} snap_sys_table;

/* The table the engine calls through; libc's functions by default. */
extern snap_sys_table snap_sys;
/* libc's functions, to restore an entry or call through from a test. */
extern const snap_sys_table snap_sys_libc;

/* The calls, each retried on EINTR (close excepted). */
int snap_sys_open(const char *path, int flags, mode_t mode);
int snap_sys_openat(int dirfd, const char *path, int flags, mode_t mode);
int snap_sys_close(int fd);
ssize_t snap_sys_read(int fd, void *buf, size_t n);
ssize_t snap_sys_pread(int fd, void *buf, size_t n, off_t off);
ssize_t snap_sys_write(int fd, const void *buf, size_t n);
ssize_t snap_sys_pwrite(int fd, const void *buf, size_t n, off_t off);
int snap_sys_fsync(int fd);
int snap_sys_ftruncate(int fd, off_t len);
int snap_sys_flock(int fd, int op);
int snap_sys_fstat(int fd, struct stat *st);
int snap_sys_stat(const char *path, struct stat *st);
int snap_sys_lstat(const char *path, struct stat *st);
int snap_sys_fstatat(int dirfd, const char *path, struct stat *st,
		     int flags);
int snap_sys_access(const char *path, int mode);
int snap_sys_mkdir(const char *path, mode_t mode);
int snap_sys_mkdirat(int dirfd, const char *path, mode_t mode);
int snap_sys_rmdir(const char *path);
int snap_sys_fchmod(int fd, mode_t mode);
int snap_sys_fchown(int fd, uid_t uid, gid_t gid);
int snap_sys_rename(const char *from, const char *to);
int snap_sys_renameat(int fromfd, const char *from, int tofd,
		      const char *to);
int snap_sys_link(const char *from, const char *to);
int snap_sys_unlink(const char *path);
int snap_sys_unlinkat(int dirfd, const char *path, int flags);
DIR *snap_sys_opendir(const char *path);
DIR *snap_sys_fdopendir(int fd);
/* A new file named after tmpl ("...XXXXXX", completed in place), 0600,
 * opened O_EXCL: a retry after EINTR starts from the same template. */
int snap_sys_mkostemp(char *tmpl, int flags);

/*
 * Write all n bytes at the file's offset (a short write continues where
 * it stopped).  0, or -1 with errno.
 */
int snap_sys_write_all(int fd, const void *buf, size_t n);

/*
 * snap_sys_write_all for a long file written front to back and fsynced at
 * the end (an export, a restore's image): *written counts the bytes, and
 * every SNAP_WRITE_BEHIND of them since *flushed are handed to the
 * kernel's writeback at once (sync_file_range, no wait), so the disk works
 * while the rest is still made and the final fsync waits for the last few
 * MB, not the whole file.  A hint: durability is still the fsync's.
 */
#define SNAP_WRITE_BEHIND (8u << 20)
int snap_sys_write_behind(int fd, const void *buf, size_t n, off_t *written,
			  off_t *flushed);

/*
 * fsync the directory that holds `path`, so that a rename or a new name in
 * it survives a crash.  0, or -1 with errno (from open or fsync).
 */
int snap_sys_sync_dir(const char *path);

/* A fault point (see the top): 0, or a negative errno. */
int snap_sys_point(snap_sys_kind kind, const char *what);

#endif /* ENGINE_SYS_H */
