/*
 * tests/unit/fault.c — the fault seam's test side; see fault.h.
 *
 * Four sets of wrappers, all calling fault_hit() with their kind:
 *   - the engine's table (engine/sys.h): each entry replaced by a wrapper
 *     that fails or calls snap_sys_libc's entry;
 *   - SQLite's unix VFS: its system calls replaced with xSetSystemCall,
 *     the originals kept from xGetSystemCall;
 *   - the "fault" VFS shim, registered as the default over "unix": a file
 *     is the shim's header followed by unix's own file, every method
 *     passes through, xSync may fail;
 *   - allocations: SQLite's allocator through SQLITE_CONFIG_MALLOC, and
 *     __wrap_malloc & co. for the code linked with -Wl,--wrap.
 *
 * fault_hit() counts a call of its kind while counting or armed and
 * returns the errno to fail it with (0: let it through).  It allocates
 * nothing and takes no lock: atomics only, since the engine's worker
 * threads may call wrapped functions too.
 */
#include "fault.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>

enum { MODE_OFF = 0, MODE_COUNT, MODE_ARMED };

static struct {
	int mode;                             /* MODE_*, atomic */
	snap_sys_kind kind;                   /* armed kind */
	int err;                              /* errno to fail with */
	unsigned long n;                      /* fail the nth call */
	int persist;                          /* and every one after it */
	unsigned long calls[SNAP_SYS_KIND_COUNT]; /* atomic */
	unsigned long fired;                  /* atomic */
	const char *where;                    /* first failed call */
	int engine;                           /* ... was the engine's */
} F;

/* Count one call of `kind`; the errno to fail it with, or 0. */
static int fault_hit(snap_sys_kind kind, const char *where, int engine)
{
	int mode = __atomic_load_n(&F.mode, __ATOMIC_ACQUIRE);
	unsigned long c;

	if (mode == MODE_OFF)
		return 0;
	c = __atomic_add_fetch(&F.calls[kind], 1, __ATOMIC_RELAXED);
	if (mode != MODE_ARMED || kind != F.kind)
		return 0;
	if (c != F.n && !(F.persist && c > F.n))
		return 0;
	if (__atomic_fetch_add(&F.fired, 1, __ATOMIC_RELAXED) == 0) {
		F.where = where;
		F.engine = engine;
	}
	return F.err;
}

void fault_arm(snap_sys_kind kind, int e, unsigned long n, int persist)
{
	fault_disarm();
	memset(F.calls, 0, sizeof(F.calls));
	F.fired = 0;
	F.where = "";
	F.engine = 0;
	F.kind = kind;
	F.err = kind == SNAP_SYS_ALLOC ? ENOMEM : e;
	F.n = n;
	/* A persistent EINTR would be retried for ever. */
	F.persist = persist && e != EINTR;
	__atomic_store_n(&F.mode, MODE_ARMED, __ATOMIC_RELEASE);
}

void fault_count(void)
{
	fault_disarm();
	memset(F.calls, 0, sizeof(F.calls));
	F.fired = 0;
	F.where = "";
	__atomic_store_n(&F.mode, MODE_COUNT, __ATOMIC_RELEASE);
}

void fault_disarm(void)
{
	__atomic_store_n(&F.mode, MODE_OFF, __ATOMIC_RELEASE);
}

unsigned long fault_calls(snap_sys_kind kind)
{
	return __atomic_load_n(&F.calls[kind], __ATOMIC_RELAXED);
}

unsigned long fault_fired(void)
{
	return __atomic_load_n(&F.fired, __ATOMIC_RELAXED);
}

const char *fault_where(void)
{
	return F.where ? F.where : "";
}

int fault_fired_engine(void)
{
	return F.engine;
}

const char *fault_kind_name(snap_sys_kind kind)
{
	static const char *const names[SNAP_SYS_KIND_COUNT] = {
		"read", "write", "fsync", "open", "rename", "alloc",
	};

	return (unsigned)kind < SNAP_SYS_KIND_COUNT ? names[kind] : "?";
}

/* --- the engine's table ---------------------------------------------- */

/* Fail with -1/errno (or `bad`) when the fault says so. */
#define ENGINE_FAULT(kind, name, bad) \
	do { \
		int e_ = fault_hit(kind, "engine " name, 1); \
		if (e_) { \
			errno = e_; \
			return bad; \
		} \
	} while (0)

static int en_open(const char *p, int f, mode_t m)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "open", -1);
	return snap_sys_libc.open(p, f, m);
}

static int en_openat(int d, const char *p, int f, mode_t m)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "openat", -1);
	return snap_sys_libc.openat(d, p, f, m);
}

static ssize_t en_read(int fd, void *b, size_t n)
{
	ENGINE_FAULT(SNAP_SYS_READ, "read", -1);
	return snap_sys_libc.read(fd, b, n);
}

static ssize_t en_pread(int fd, void *b, size_t n, off_t o)
{
	ENGINE_FAULT(SNAP_SYS_READ, "pread", -1);
	return snap_sys_libc.pread(fd, b, n, o);
}

static ssize_t en_write(int fd, const void *b, size_t n)
{
	ENGINE_FAULT(SNAP_SYS_WRITE, "write", -1);
	return snap_sys_libc.write(fd, b, n);
}

static ssize_t en_pwrite(int fd, const void *b, size_t n, off_t o)
{
	ENGINE_FAULT(SNAP_SYS_WRITE, "pwrite", -1);
	return snap_sys_libc.pwrite(fd, b, n, o);
}

static int en_fsync(int fd)
{
	ENGINE_FAULT(SNAP_SYS_FSYNC, "fsync", -1);
	return snap_sys_libc.fsync(fd);
}

static int en_ftruncate(int fd, off_t len)
{
	ENGINE_FAULT(SNAP_SYS_WRITE, "ftruncate", -1);
	return snap_sys_libc.ftruncate(fd, len);
}

static int en_flock(int fd, int op)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "flock", -1);
	return snap_sys_libc.flock(fd, op);
}

static int en_fstat(int fd, struct stat *st)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "fstat", -1);
	return snap_sys_libc.fstat(fd, st);
}

static int en_stat(const char *p, struct stat *st)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "stat", -1);
	return snap_sys_libc.stat(p, st);
}

static int en_lstat(const char *p, struct stat *st)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "lstat", -1);
	return snap_sys_libc.lstat(p, st);
}

static int en_fstatat(int d, const char *p, struct stat *st, int f)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "fstatat", -1);
	return snap_sys_libc.fstatat(d, p, st, f);
}

static int en_access(const char *p, int m)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "access", -1);
	return snap_sys_libc.access(p, m);
}

static int en_mkdir(const char *p, mode_t m)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "mkdir", -1);
	return snap_sys_libc.mkdir(p, m);
}

static int en_mkdirat(int d, const char *p, mode_t m)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "mkdirat", -1);
	return snap_sys_libc.mkdirat(d, p, m);
}

static int en_rmdir(const char *p)
{
	ENGINE_FAULT(SNAP_SYS_RENAME, "rmdir", -1);
	return snap_sys_libc.rmdir(p);
}

static int en_fchmod(int fd, mode_t m)
{
	ENGINE_FAULT(SNAP_SYS_WRITE, "fchmod", -1);
	return snap_sys_libc.fchmod(fd, m);
}

static int en_fchown(int fd, uid_t u, gid_t g)
{
	ENGINE_FAULT(SNAP_SYS_WRITE, "fchown", -1);
	return snap_sys_libc.fchown(fd, u, g);
}

static int en_rename(const char *a, const char *b)
{
	ENGINE_FAULT(SNAP_SYS_RENAME, "rename", -1);
	return snap_sys_libc.rename(a, b);
}

static int en_renameat(int da, const char *a, int db, const char *b)
{
	ENGINE_FAULT(SNAP_SYS_RENAME, "renameat", -1);
	return snap_sys_libc.renameat(da, a, db, b);
}

static int en_link(const char *a, const char *b)
{
	ENGINE_FAULT(SNAP_SYS_RENAME, "link", -1);
	return snap_sys_libc.link(a, b);
}

static int en_unlink(const char *p)
{
	ENGINE_FAULT(SNAP_SYS_RENAME, "unlink", -1);
	return snap_sys_libc.unlink(p);
}

static int en_unlinkat(int d, const char *p, int f)
{
	ENGINE_FAULT(SNAP_SYS_RENAME, "unlinkat", -1);
	return snap_sys_libc.unlinkat(d, p, f);
}

static DIR *en_opendir(const char *p)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "opendir", NULL);
	return snap_sys_libc.opendir(p);
}

static DIR *en_fdopendir(int fd)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "fdopendir", NULL);
	return snap_sys_libc.fdopendir(fd);
}

static int en_mkostemp(char *t, int f)
{
	ENGINE_FAULT(SNAP_SYS_OPEN, "mkostemp", -1);
	return snap_sys_libc.mkostemp(t, f);
}

static int en_point(snap_sys_kind kind, const char *what)
{
	(void)what;
	return fault_hit(kind, "engine fault point", 1);
}

/* --- SQLite's unix VFS system calls ------------------------------------ */

/* The originals, from xGetSystemCall. */
static struct {
	int (*open)(const char *, int, int);
	ssize_t (*read)(int, void *, size_t);
	ssize_t (*pread64)(int, void *, size_t, off_t);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pwrite64)(int, const void *, size_t, off_t);
	int (*ftruncate)(int, off_t);
	int (*unlink)(const char *);
} sq;

#define SQLITE_FAULT(kind, name) \
	do { \
		int e_ = fault_hit(kind, "sqlite " name, 0); \
		if (e_) { \
			errno = e_; \
			return -1; \
		} \
	} while (0)

static int sq_open(const char *p, int f, int m)
{
	SQLITE_FAULT(SNAP_SYS_OPEN, "open");
	return sq.open(p, f, m);
}

static ssize_t sq_read(int fd, void *b, size_t n)
{
	SQLITE_FAULT(SNAP_SYS_READ, "read");
	return sq.read(fd, b, n);
}

static ssize_t sq_pread64(int fd, void *b, size_t n, off_t o)
{
	SQLITE_FAULT(SNAP_SYS_READ, "pread64");
	return sq.pread64(fd, b, n, o);
}

static ssize_t sq_write(int fd, const void *b, size_t n)
{
	SQLITE_FAULT(SNAP_SYS_WRITE, "write");
	return sq.write(fd, b, n);
}

static ssize_t sq_pwrite64(int fd, const void *b, size_t n, off_t o)
{
	SQLITE_FAULT(SNAP_SYS_WRITE, "pwrite64");
	return sq.pwrite64(fd, b, n, o);
}

static int sq_ftruncate(int fd, off_t len)
{
	SQLITE_FAULT(SNAP_SYS_WRITE, "ftruncate");
	return sq.ftruncate(fd, len);
}

static int sq_unlink(const char *p)
{
	SQLITE_FAULT(SNAP_SYS_RENAME, "unlink");
	return sq.unlink(p);
}

/* Replace unix's call `name` by fn; the original. */
static sqlite3_syscall_ptr sq_replace(sqlite3_vfs *unix_vfs, const char *name,
				      sqlite3_syscall_ptr fn)
{
	sqlite3_syscall_ptr orig = unix_vfs->xGetSystemCall(unix_vfs, name);

	if (!orig || unix_vfs->xSetSystemCall(unix_vfs, name, fn) !=
	    SQLITE_OK) {
		fprintf(stderr, "fault: SQLite has no system call %s\n", name);
		abort();
	}
	return orig;
}

/* --- the VFS shim: xSync may fail ------------------------------------- */

typedef struct shim_file {
	sqlite3_file base;
	sqlite3_file *real;     /* unix's file, right after this header */
} shim_file;

#define REAL(f) (((shim_file *)(f))->real)

static int sh_close(sqlite3_file *f)
{
	return REAL(f)->pMethods->xClose(REAL(f));
}

static int sh_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}

static int sh_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
	return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}

static int sh_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

/* unixSync answers SQLITE_IOERR_FSYNC for any errno, EINTR included. */
static int sh_sync(sqlite3_file *f, int flags)
{
	int e = fault_hit(SNAP_SYS_FSYNC, "sqlite fsync", 0);

	if (e) {
		errno = e;
		return SQLITE_IOERR_FSYNC;
	}
	return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int sh_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int sh_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}

static int sh_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}

static int sh_check_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int sh_fcntl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int sh_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int sh_devchar(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int sh_shm_map(sqlite3_file *f, int pg, int sz, int ext,
		      void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, pp);
}

static int sh_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void sh_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int sh_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int sh_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), o, n, pp);
}

static int sh_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods sh_methods = {
	.iVersion = 3,
	.xClose = sh_close,
	.xRead = sh_read,
	.xWrite = sh_write,
	.xTruncate = sh_truncate,
	.xSync = sh_sync,
	.xFileSize = sh_size,
	.xLock = sh_lock,
	.xUnlock = sh_unlock,
	.xCheckReservedLock = sh_check_reserved,
	.xFileControl = sh_fcntl,
	.xSectorSize = sh_sector,
	.xDeviceCharacteristics = sh_devchar,
	.xShmMap = sh_shm_map,
	.xShmLock = sh_shm_lock,
	.xShmBarrier = sh_shm_barrier,
	.xShmUnmap = sh_shm_unmap,
	.xFetch = sh_fetch,
	.xUnfetch = sh_unfetch,
};

#define UNIX(v) ((sqlite3_vfs *)(v)->pAppData)

static int shv_open(sqlite3_vfs *v, const char *name, sqlite3_file *f,
		    int flags, int *out)
{
	shim_file *sf = (shim_file *)f;
	int rc;

	sf->real = (sqlite3_file *)(sf + 1);
	rc = UNIX(v)->xOpen(UNIX(v), name, sf->real, flags, out);
	/* SQLite closes a file whose xOpen failed if pMethods is set. */
	sf->base.pMethods = sf->real->pMethods ? &sh_methods : NULL;
	return rc;
}

static int shv_delete(sqlite3_vfs *v, const char *name, int sync)
{
	return UNIX(v)->xDelete(UNIX(v), name, sync);
}

static int shv_access(sqlite3_vfs *v, const char *name, int flags, int *out)
{
	return UNIX(v)->xAccess(UNIX(v), name, flags, out);
}

static int shv_fullpath(sqlite3_vfs *v, const char *name, int n, char *out)
{
	return UNIX(v)->xFullPathname(UNIX(v), name, n, out);
}

static void *shv_dlopen(sqlite3_vfs *v, const char *name)
{
	return UNIX(v)->xDlOpen(UNIX(v), name);
}

static void shv_dlerror(sqlite3_vfs *v, int n, char *out)
{
	UNIX(v)->xDlError(UNIX(v), n, out);
}

static void (*shv_dlsym(sqlite3_vfs *v, void *h, const char *sym))(void)
{
	return UNIX(v)->xDlSym(UNIX(v), h, sym);
}

static void shv_dlclose(sqlite3_vfs *v, void *h)
{
	UNIX(v)->xDlClose(UNIX(v), h);
}

static int shv_random(sqlite3_vfs *v, int n, char *out)
{
	return UNIX(v)->xRandomness(UNIX(v), n, out);
}

static int shv_sleep(sqlite3_vfs *v, int us)
{
	return UNIX(v)->xSleep(UNIX(v), us);
}

static int shv_time(sqlite3_vfs *v, double *t)
{
	return UNIX(v)->xCurrentTime(UNIX(v), t);
}

static int shv_lasterr(sqlite3_vfs *v, int n, char *out)
{
	return UNIX(v)->xGetLastError(UNIX(v), n, out);
}

static int shv_time64(sqlite3_vfs *v, sqlite3_int64 *t)
{
	return UNIX(v)->xCurrentTimeInt64(UNIX(v), t);
}

static int shv_setsys(sqlite3_vfs *v, const char *name,
		      sqlite3_syscall_ptr fn)
{
	return UNIX(v)->xSetSystemCall(UNIX(v), name, fn);
}

static sqlite3_syscall_ptr shv_getsys(sqlite3_vfs *v, const char *name)
{
	return UNIX(v)->xGetSystemCall(UNIX(v), name);
}

static const char *shv_nextsys(sqlite3_vfs *v, const char *name)
{
	return UNIX(v)->xNextSystemCall(UNIX(v), name);
}

static sqlite3_vfs shim_vfs = {
	.iVersion = 3,
	.mxPathname = 512,
	.zName = "fault",
	.xOpen = shv_open,
	.xDelete = shv_delete,
	.xAccess = shv_access,
	.xFullPathname = shv_fullpath,
	.xDlOpen = shv_dlopen,
	.xDlError = shv_dlerror,
	.xDlSym = shv_dlsym,
	.xDlClose = shv_dlclose,
	.xRandomness = shv_random,
	.xSleep = shv_sleep,
	.xCurrentTime = shv_time,
	.xGetLastError = shv_lasterr,
	.xCurrentTimeInt64 = shv_time64,
	.xSetSystemCall = shv_setsys,
	.xGetSystemCall = shv_getsys,
	.xNextSystemCall = shv_nextsys,
};

/* --- allocations ------------------------------------------------------ */

static sqlite3_mem_methods mem_real;

static void *mem_malloc(int n)
{
	if (fault_hit(SNAP_SYS_ALLOC, "sqlite malloc", 0))
		return NULL;
	return mem_real.xMalloc(n);
}

static void *mem_realloc(void *p, int n)
{
	if (fault_hit(SNAP_SYS_ALLOC, "sqlite realloc", 0))
		return NULL;
	return mem_real.xRealloc(p, n);
}

/* The real functions, for the calls -Wl,--wrap sends here. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

/* errno as the C library sets it for a failed allocation. */
#define ALLOC_FAULT(name) \
	do { \
		if (fault_hit(SNAP_SYS_ALLOC, name, 1)) { \
			errno = ENOMEM; \
			return NULL; \
		} \
	} while (0)

void *__wrap_malloc(size_t n)
{
	ALLOC_FAULT("malloc");
	return __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
	ALLOC_FAULT("calloc");
	return __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
	ALLOC_FAULT("realloc");
	return __real_realloc(p, n);
}

char *__wrap_strdup(const char *s)
{
	ALLOC_FAULT("strdup");
	return __real_strdup(s);
}

/* --- installation ----------------------------------------------------- */

void fault_install(void)
{
	sqlite3_mem_methods mem;
	sqlite3_vfs *unix_vfs;

	/* SQLite's allocator can only change before it is initialized. */
	if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &mem_real) != SQLITE_OK) {
		fprintf(stderr, "fault: SQLite is already initialized\n");
		abort();
	}
	mem = mem_real;
	mem.xMalloc = mem_malloc;
	mem.xRealloc = mem_realloc;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &mem) != SQLITE_OK ||
	    sqlite3_initialize() != SQLITE_OK) {
		fprintf(stderr, "fault: cannot install SQLite's allocator\n");
		abort();
	}

	unix_vfs = sqlite3_vfs_find("unix");
	if (!unix_vfs || unix_vfs->iVersion < 3) {
		fprintf(stderr, "fault: no unix VFS with system calls\n");
		abort();
	}
	sq.open = (int (*)(const char *, int, int))
		sq_replace(unix_vfs, "open", (sqlite3_syscall_ptr)sq_open);
	sq.read = (ssize_t (*)(int, void *, size_t))
		sq_replace(unix_vfs, "read", (sqlite3_syscall_ptr)sq_read);
	sq.pread64 = (ssize_t (*)(int, void *, size_t, off_t))
		sq_replace(unix_vfs, "pread64",
			   (sqlite3_syscall_ptr)sq_pread64);
	sq.write = (ssize_t (*)(int, const void *, size_t))
		sq_replace(unix_vfs, "write", (sqlite3_syscall_ptr)sq_write);
	sq.pwrite64 = (ssize_t (*)(int, const void *, size_t, off_t))
		sq_replace(unix_vfs, "pwrite64",
			   (sqlite3_syscall_ptr)sq_pwrite64);
	sq.ftruncate = (int (*)(int, off_t))
		sq_replace(unix_vfs, "ftruncate",
			   (sqlite3_syscall_ptr)sq_ftruncate);
	sq.unlink = (int (*)(const char *))
		sq_replace(unix_vfs, "unlink", (sqlite3_syscall_ptr)sq_unlink);

	shim_vfs.pAppData = unix_vfs;
	shim_vfs.szOsFile = (int)sizeof(shim_file) + unix_vfs->szOsFile;
	if (sqlite3_vfs_register(&shim_vfs, 1) != SQLITE_OK) {
		fprintf(stderr, "fault: cannot register the VFS shim\n");
		abort();
	}

	snap_sys.open = en_open;
	snap_sys.openat = en_openat;
	snap_sys.read = en_read;
	snap_sys.pread = en_pread;
	snap_sys.write = en_write;
	snap_sys.pwrite = en_pwrite;
	snap_sys.fsync = en_fsync;
	snap_sys.ftruncate = en_ftruncate;
	snap_sys.flock = en_flock;
	snap_sys.fstat = en_fstat;
	snap_sys.stat = en_stat;
	snap_sys.lstat = en_lstat;
	snap_sys.fstatat = en_fstatat;
	snap_sys.access = en_access;
	snap_sys.mkdir = en_mkdir;
	snap_sys.mkdirat = en_mkdirat;
	snap_sys.rmdir = en_rmdir;
	snap_sys.fchmod = en_fchmod;
	snap_sys.fchown = en_fchown;
	snap_sys.rename = en_rename;
	snap_sys.renameat = en_renameat;
	snap_sys.link = en_link;
	snap_sys.unlink = en_unlink;
	snap_sys.unlinkat = en_unlinkat;
	snap_sys.opendir = en_opendir;
	snap_sys.fdopendir = en_fdopendir;
	snap_sys.mkostemp = en_mkostemp;
	snap_sys.point = en_point;
}
