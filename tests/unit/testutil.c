/*
 * tests/unit/testutil.c — fixtures and helpers shared by the unit tests.
 *
 * Design: the helpers fail the running test (cmocka fail_msg) on any error
 * of their own, so a test body reads as the contract it checks.  Nothing
 * here knows the engine's internals except tu_corrupt_page() and
 * tu_swap_page_data(), which edit store.db directly to simulate bit rot;
 * they find the page-data table and its columns by introspection so that
 * a schema rename breaks them loudly (fail_msg naming what was missing)
 * instead of silently corrupting nothing; and tu_assert_runs(), which
 * recomputes the reference counts with the engine's own id sets.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "codec.h"
#include "store_int.h"

/* ------------------------------------------------------------------ */
/* fixture                                                             */

int tu_setup(void **state)
{
	tu_env *env = calloc(1, sizeof(*env));
	if (env == NULL)
		return -1;
	snprintf(env->dir, sizeof(env->dir), "/tmp/snapfs-unit-XXXXXX");
	if (mkdtemp(env->dir) == NULL) {
		free(env);
		return -1;
	}
	snprintf(env->db, sizeof(env->db), "%s/live.db", env->dir);
	umask(022);
	tu_watchdog(TU_TEST_TIMEOUT, NULL);
	*state = env;
	return 0;
}

/* nftw callback: make directories writable again (a test may chmod). */
static int tu_chmod_cb(const char *p, const struct stat *sb, int flag,
		       struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_D || flag == FTW_DNR || S_ISDIR(sb->st_mode))
		chmod(p, 0700);
	return 0;
}

static int tu_rm_cb(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

void tu_rmrf(const char *path)
{
	if (path == NULL || path[0] == '\0' || strcmp(path, "/") == 0)
		return;
	chmod(path, 0700);
	nftw(path, tu_chmod_cb, 16, FTW_PHYS);
	nftw(path, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_teardown(void **state)
{
	tu_env *env = *state;
	if (env == NULL)
		return 0;
	if (env->st != NULL)
		snap_store_close(env->st);
	tu_rmrf(env->dir);
	free(env);
	tu_watchdog(0, NULL);
	return 0;
}

char *tu_path(const tu_env *env, char *out, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", env->dir, name) >= PATH_MAX)
		fail_msg("path too long: %s", name);
	return out;
}

snap_store *tu_store(tu_env *env)
{
	snap_err e;
	snap_err_clear(&e);
	if (env->st != NULL)
		return env->st;
	int rc = snap_store_open(env->db, NULL, SNAP_OPEN_CREATE, &env->st, &e);
	if (rc != 0 || env->st == NULL)
		fail_msg("snap_store_open(%s): %d %s", env->db, rc, e.msg);
	return env->st;
}

snap_store *tu_live_store(tu_env *env, const char *journal_mode,
			  int page_size, int nrows)
{
	tu_db_create(env->db, journal_mode, page_size, nrows);
	return tu_store(env);
}

/* ------------------------------------------------------------------ */
/* watchdog                                                            */

static char tu_wd_name[128];
static unsigned tu_wd_secs;

static void tu_wd_fire(int sig)
{
	(void)sig;
	char msg[256];
	int n = snprintf(msg, sizeof(msg),
			 "Bail out! %s%stimed out after %u s\n",
			 tu_wd_name, tu_wd_name[0] ? " " : "a test ", tu_wd_secs);
	if (n > 0)
		(void)!write(STDOUT_FILENO, msg, (size_t)n);
	_exit(1);
}

void tu_watchdog(unsigned seconds, const char *name)
{
	if (seconds == 0) {
		alarm(0);
		return;
	}
	snprintf(tu_wd_name, sizeof(tu_wd_name), "%s", name ? name : "");
	tu_wd_secs = seconds;
	signal(SIGALRM, tu_wd_fire);
	alarm(seconds);
}

/* ------------------------------------------------------------------ */
/* SQLite                                                              */

sqlite3 *tu_open(const char *path)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
				 NULL);
	if (rc != SQLITE_OK) {
		const char *m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
		fail_msg("open %s: %s", path, m);
	}
	sqlite3_busy_timeout(db, 10000);
	return db;
}

void tu_exec(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		char buf[512];
		snprintf(buf, sizeof(buf), "%s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		fail_msg("SQL failed: %s: %s", sql, buf);
	}
	sqlite3_free(sql);
}

static sqlite3_stmt *tu_prepare_v(sqlite3 *db, const char *fmt, va_list ap)
{
	char *sql = sqlite3_vmprintf(fmt, ap);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
	sqlite3_free(sql);
	return st;
}

int64_t tu_query_int(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sqlite3_stmt *st = tu_prepare_v(db, fmt, ap);
	va_end(ap);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		fail_msg("query returned no row: %s", sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

char *tu_query_text(sqlite3 *db, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sqlite3_stmt *st = tu_prepare_v(db, fmt, ap);
	va_end(ap);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		fail_msg("query returned no row: %s", sqlite3_errmsg(db));
	const unsigned char *t = sqlite3_column_text(st, 0);
	char *v = strdup(t ? (const char *)t : "");
	sqlite3_finalize(st);
	return v;
}

void tu_db_insert(sqlite3 *db, int from, int to)
{
	tu_exec(db, "WITH RECURSIVE c(i) AS (SELECT %d UNION ALL "
		    "SELECT i+1 FROM c WHERE i < %d) "
		    "INSERT INTO t(id, v, pad) SELECT i, printf('row-%%06d', i), "
		    "printf('%%.*c-%%d', 60 + i %% 40, 'x', i) FROM c",
		from, to);
}

void tu_db_create(const char *path, const char *journal_mode, int page_size,
		  int nrows)
{
	sqlite3 *db = tu_open(path);
	tu_exec(db, "PRAGMA page_size=%d", page_size);
	tu_exec(db, "PRAGMA journal_mode=%s", journal_mode);
	tu_exec(db, "BEGIN");
	tu_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)");
	tu_exec(db, "CREATE INDEX t_v ON t(v)");
	if (nrows > 0)
		tu_db_insert(db, 1, nrows);
	tu_exec(db, "COMMIT");
	if (sqlite3_close(db) != SQLITE_OK)
		fail_msg("close %s", path);
}

int64_t tu_db_rows(const char *path)
{
	sqlite3 *db = tu_open(path);
	int64_t n = tu_query_int(db, "SELECT count(*) FROM t");
	sqlite3_close(db);
	return n;
}

void tu_db_digest_conn(sqlite3 *db, char hex[65])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	sqlite3_stmt *tabs = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT type, name, ifnull(sql,'') FROM sqlite_schema "
			       "ORDER BY type, name", -1, &tabs, NULL) != SQLITE_OK)
		fail_msg("digest: %s", sqlite3_errmsg(db));
	while (sqlite3_step(tabs) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(tabs, 0);
		const char *name = (const char *)sqlite3_column_text(tabs, 1);
		const char *sql = (const char *)sqlite3_column_text(tabs, 2);
		EVP_DigestUpdate(md, type, strlen(type) + 1);
		EVP_DigestUpdate(md, name, strlen(name) + 1);
		EVP_DigestUpdate(md, sql, strlen(sql) + 1);
		if (strcmp(type, "table") != 0 || strncmp(name, "sqlite_", 7) == 0)
			continue;
		char *q = sqlite3_mprintf("SELECT * FROM \"%w\" ORDER BY rowid", name);
		sqlite3_stmt *rows = NULL;
		if (sqlite3_prepare_v2(db, q, -1, &rows, NULL) != SQLITE_OK)
			fail_msg("digest %s: %s", q, sqlite3_errmsg(db));
		sqlite3_free(q);
		int nc = sqlite3_column_count(rows);
		int rc;
		while ((rc = sqlite3_step(rows)) == SQLITE_ROW) {
			for (int i = 0; i < nc; i++) {
				unsigned char t = (unsigned char)sqlite3_column_type(rows, i);
				const void *b = sqlite3_column_blob(rows, i);
				uint32_t len = (uint32_t)sqlite3_column_bytes(rows, i);
				EVP_DigestUpdate(md, &t, 1);
				EVP_DigestUpdate(md, &len, sizeof(len));
				if (b != NULL && len > 0)
					EVP_DigestUpdate(md, b, len);
			}
		}
		if (rc != SQLITE_DONE)
			fail_msg("digest rows of %s: %s", name, sqlite3_errmsg(db));
		sqlite3_finalize(rows);
	}
	sqlite3_finalize(tabs);
	uint8_t sha[32];
	unsigned int l = 0;
	EVP_DigestFinal_ex(md, sha, &l);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", sha[i]);
	hex[64] = '\0';
}

void tu_db_digest(const char *path, char hex[65])
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
		fail_msg("digest open %s: %s", path, db ? sqlite3_errmsg(db) : "?");
	sqlite3_busy_timeout(db, 10000);
	tu_db_digest_conn(db, hex);
	sqlite3_close(db);
}

int tu_db_integrity_ok(const char *path)
{
	sqlite3 *db = tu_open(path);
	char *r = tu_query_text(db, "PRAGMA integrity_check");
	int ok = strcmp(r, "ok") == 0;
	free(r);
	sqlite3_close(db);
	return ok;
}

char *tu_db_journal_mode(const char *path)
{
	sqlite3 *db = tu_open(path);
	char *r = tu_query_text(db, "PRAGMA journal_mode");
	sqlite3_close(db);
	return r;
}

int64_t tu_db_page_size(const char *path)
{
	sqlite3 *db = tu_open(path);
	int64_t r = tu_query_int(db, "PRAGMA page_size");
	sqlite3_close(db);
	return r;
}

void tu_db_backup_copy(const char *src, const char *dst)
{
	sqlite3 *s = tu_open(src), *d = tu_open(dst);
	sqlite3_backup *b = sqlite3_backup_init(d, "main", s, "main");
	if (b == NULL)
		fail_msg("backup_init: %s", sqlite3_errmsg(d));
	int rc = sqlite3_backup_step(b, -1);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE)
		fail_msg("backup_step: %s", sqlite3_errstr(rc));
	sqlite3_close(s);
	sqlite3_close(d);
}

/*
 * 1 when some process other than a fresh child holds a read lock on the
 * SHARED range of a rollback-mode database (what a SQLite reader in a
 * transaction holds).  Asked from a forked child with F_GETLK, because
 * POSIX locks never conflict within one process; the child's own open and
 * close of the file cannot drop the parent's locks.
 */
int tu_reader_lock_held(const char *path)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct flock fl = {
			.l_type = F_WRLCK, .l_whence = SEEK_SET,
			.l_start = 0x40000002, .l_len = 510,
		};
		if (fd < 0 || fcntl(fd, F_GETLK, &fl) < 0)
			_exit(2);
		_exit(fl.l_type != F_UNLCK ? 0 : 1);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_not_equal(WEXITSTATUS(status), 2);
	return WEXITSTATUS(status) == 0;
}

/* ------------------------------------------------------------------ */
/* files                                                               */

uint8_t *tu_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("open %s: %s", path, strerror(errno));
	struct stat sb;
	fstat(fd, &sb);
	uint8_t *buf = malloc((size_t)sb.st_size + 1);
	size_t got = 0;
	while (got < (size_t)sb.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
		if (r <= 0)
			fail_msg("read %s: %s", path, strerror(errno));
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
}

void tu_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_msg("create %s: %s", path, strerror(errno));
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, (const uint8_t *)buf + done, len - done);
		if (w <= 0)
			fail_msg("write %s: %s", path, strerror(errno));
		done += (size_t)w;
	}
	close(fd);
}

int tu_exists(const char *path)
{
	struct stat sb;
	return lstat(path, &sb) == 0;
}

void tu_sha256(const void *buf, size_t len, uint8_t out[32])
{
	unsigned int l = 0;
	EVP_Digest(buf, len, out, &l, EVP_sha256(), NULL);
}

void tu_sha256_file(const char *path, uint8_t out[32])
{
	size_t len;
	uint8_t *b = tu_read_file(path, &len);
	tu_sha256(b, len, out);
	free(b);
}

static const uint8_t *tu_ff_sha;
static char *tu_ff_hit;

static int tu_ff_cb(const char *p, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)ftw;
	if (flag != FTW_F || !S_ISREG(sb->st_mode) || tu_ff_hit != NULL)
		return 0;
	size_t len;
	uint8_t *b = tu_read_file(p, &len);
	uint8_t sha[32];
	tu_sha256(b, len, sha);
	free(b);
	if (memcmp(sha, tu_ff_sha, 32) == 0)
		tu_ff_hit = strdup(p);
	return 0;
}

char *tu_find_file_with_sha(const char *root, const uint8_t sha[32])
{
	tu_ff_sha = sha;
	tu_ff_hit = NULL;
	nftw(root, tu_ff_cb, 16, FTW_PHYS);
	return tu_ff_hit;
}

/* ------------------------------------------------------------------ */
/* store                                                               */

snap_info tu_snap(snap_store *st, const char *label)
{
	return tu_snap_kind(st, SNAP_KIND_MANUAL, label);
}

snap_info tu_snap_kind(snap_store *st, snap_kind kind, const char *label)
{
	snap_create_opts o = { .kind = kind, .label = label };
	return tu_snap_opts(st, &o);
}

snap_info tu_snap_opts(snap_store *st, const snap_create_opts *o)
{
	snap_info si;
	snap_err e;
	snap_err_clear(&e);
	memset(&si, 0, sizeof(si));
	int rc = snap_snapshot_take(st, o, &si, &e);
	if (rc != 0)
		fail_msg("snap_snapshot_take(%s): %d %s",
			 o->label ? o->label : "-", rc, e.msg);
	return si;
}

int64_t tu_count_kind(snap_store *st, snap_kind kind)
{
	snap_info *v = NULL;
	size_t n = 0;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_store_list(st, &v, &n, &e);
	if (rc != 0)
		fail_msg("snap_store_list: %d %s", rc, e.msg);
	int64_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += v[i].kind == kind;
	free(v);
	return c;
}

void tu_image_digest(snap_store *st, int64_t id, char hex[65])
{
	sqlite3 *db = NULL;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_image_sqlite_open(st, id, &db, &e);
	if (rc != 0)
		fail_msg("snap_image_sqlite_open: %d %s", rc, e.msg);
	tu_db_digest_conn(db, hex);
	sqlite3_close(db);
}

int tu_header_counter_byte(size_t off)
{
	return (off >= 24 && off < 28) || (off >= 40 && off < 44) ||
	       (off >= 92 && off < 96);
}

/* ---- the event log ---- */

size_t tu_events(snap_store *st, int64_t after, snap_event **ev)
{
	size_t n = 0;
	snap_err e;
	snap_err_clear(&e);
	*ev = NULL;
	int rc = snap_event_list(st, after, 0, ev, &n, &e);
	if (rc != 0)
		fail_msg("snap_event_list: %d %s", rc, e.msg);
	return n;
}

int64_t tu_last_event_id(snap_store *st)
{
	snap_event *ev;
	size_t n = tu_events(st, 0, &ev);
	int64_t id = n ? ev[n - 1].id : 0;
	free(ev);
	return id;
}

snap_event tu_newest_event(snap_store *st, int64_t after, const char *kind,
			   const char *snapshot)
{
	snap_event *ev;
	size_t n = tu_events(st, 0, &ev);
	snap_event found;
	int hit = 0;
	for (size_t i = 0; i < n; i++) {
		if (ev[i].id <= after || strcmp(ev[i].kind, kind) != 0)
			continue;
		if (snapshot && strcmp(ev[i].snapshot, snapshot) != 0)
			continue;
		found = ev[i];
		hit = 1;
	}
	if (!hit) {
		for (size_t i = 0; i < n; i++)
			print_message("# event %lld %s '%s' ok=%d %s\n",
				      (long long)ev[i].id, ev[i].kind,
				      ev[i].snapshot, ev[i].ok, ev[i].detail);
		free(ev);
		fail_msg("no '%s' event for '%s' after %lld", kind,
			 snapshot ? snapshot : "*", (long long)after);
	}
	free(ev);
	return found;
}

int tu_count_events(snap_store *st, int64_t after, const char *kind, int ok,
		    const char *text)
{
	return tu_count_events_detail(st, after, kind, ok, text, NULL, 0);
}

int tu_count_events_detail(snap_store *st, int64_t after, const char *kind,
			   int ok, const char *text, char *detail, size_t cap)
{
	snap_event *ev;
	size_t n = tu_events(st, after, &ev);
	int c = 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(ev[i].kind, kind) == 0 &&
		    (ok < 0 || ev[i].ok == ok) &&
		    (!text || strstr(ev[i].detail, text))) {
			c++;
			if (detail)
				snprintf(detail, cap, "%s", ev[i].detail);
		}
	free(ev);
	return c;
}

uint8_t *tu_image_bytes(snap_store *st, int64_t id, size_t *len)
{
	snap_image *im = NULL;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_image_open(st, id, &im, &e);
	if (rc != 0)
		fail_msg("snap_image_open(%lld): %d %s", (long long)id, rc, e.msg);
	uint64_t size = snap_image_size(im);
	uint8_t *buf = malloc(size ? size : 1);
	uint64_t off = 0;
	while (off < size) {
		size_t want = size - off > 65536 ? 65536 : (size_t)(size - off);
		ssize_t r = snap_image_read(im, buf + off, want, off, &e);
		if (r <= 0)
			fail_msg("snap_image_read at %llu: %zd %s",
				 (unsigned long long)off, r, e.msg);
		off += (uint64_t)r;
	}
	snap_image_close(im);
	*len = (size_t)size;
	return buf;
}

int64_t tu_image_rows(snap_store *st, int64_t id)
{
	sqlite3 *db = NULL;
	snap_err e;
	snap_err_clear(&e);
	if (snap_image_sqlite_open(st, id, &db, &e) != 0)
		fail_msg("snap_image_sqlite_open: %s", e.msg);
	int64_t n = tu_query_int(db, "SELECT count(*) FROM t");
	sqlite3_close(db);
	return n;
}

int64_t tu_count(snap_store *st)
{
	int64_t n = -1;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_store_count(st, &n, &e);
	if (rc != 0)
		fail_msg("snap_store_count: %d %s", rc, e.msg);
	return n;
}

int64_t tu_pages(snap_store *st)
{
	snap_store_stats ss;
	snap_err e;
	snap_err_clear(&e);
	memset(&ss, 0, sizeof(ss));
	int rc = snap_store_stats_get(st, &ss, &e);
	if (rc != 0)
		fail_msg("snap_store_stats_get: %d %s", rc, e.msg);
	return ss.pages;
}

int64_t tu_page_id(snap_store *st, int64_t id, uint32_t pgno)
{
	snap_image *im = NULL;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_image_open(st, id, &im, &e);
	if (rc != 0)
		fail_msg("snap_image_open(%lld): %d %s", (long long)id, rc, e.msg);
	int64_t pid = snap_image_page_id(im, pgno);
	snap_image_close(im);
	if (pid <= 0)
		fail_msg("snap_image_page_id(%u) = %lld", pgno, (long long)pid);
	return pid;
}

uint32_t tu_unique_page(snap_store *st, int64_t a, int64_t b)
{
	snap_image *ia = NULL, *ib = NULL;
	snap_err e;
	snap_err_clear(&e);
	if (a >= 0 && snap_image_open(st, a, &ia, &e) != 0)
		fail_msg("snap_image_open(a): %s", e.msg);
	if (snap_image_open(st, b, &ib, &e) != 0)
		fail_msg("snap_image_open(b): %s", e.msg);
	uint32_t na = ia ? snap_image_page_count(ia) : 0;
	uint32_t nb = snap_image_page_count(ib);
	uint32_t found = 0;
	/* Prefer an ordinary page (the highest numbered) over page 1. */
	for (uint32_t p = nb; p >= 1 && found == 0; p--) {
		int64_t pid = snap_image_page_id(ib, p);
		if (pid <= 0)
			continue;
		if (ia == NULL && p != 1) {
			found = p;
			break;
		}
		int shared = 0;
		for (uint32_t q = 1; q <= na && !shared; q++)
			shared = snap_image_page_id(ia, q) == pid;
		/* Also not used twice inside b itself. */
		for (uint32_t q = 1; q <= nb && !shared; q++)
			shared = q != p && snap_image_page_id(ib, q) == pid;
		if (!shared)
			found = p;
	}
	if (ia)
		snap_image_close(ia);
	snap_image_close(ib);
	if (found == 0)
		fail_msg("no page of snapshot %lld is unique", (long long)b);
	return found;
}

/*
 * Find the table holding page bytes and its key and data columns.  The
 * store documents tables "pages" and "page_data"; the data column is the
 * one declared BLOB that is not a hash.
 */
static void tu_page_data_cols(sqlite3 *db, char *table, char *key, char *data)
{
	static const char *cands[] = { "page_data", "pages" };
	for (size_t c = 0; c < sizeof(cands) / sizeof(cands[0]); c++) {
		sqlite3_stmt *st = NULL;
		char *q = sqlite3_mprintf("PRAGMA table_info(\"%w\")", cands[c]);
		if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
			fail_msg("%s: %s", q, sqlite3_errmsg(db));
		sqlite3_free(q);
		key[0] = data[0] = '\0';
		char first_int[64] = "";
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 1);
			const char *type = (const char *)sqlite3_column_text(st, 2);
			int pk = sqlite3_column_int(st, 5);
			if (pk == 1)
				snprintf(key, 64, "%s", name);
			if (first_int[0] == '\0' && type &&
			    strcasestr(type, "INT") != NULL)
				snprintf(first_int, sizeof(first_int), "%s", name);
			if (data[0] == '\0' && type && strcasecmp(type, "BLOB") == 0 &&
			    strcasestr(name, "hash") == NULL &&
			    strcasestr(name, "sha") == NULL)
				snprintf(data, 64, "%s", name);
		}
		sqlite3_finalize(st);
		if (key[0] == '\0')
			snprintf(key, 64, "%s", first_int);
		if (key[0] != '\0' && data[0] != '\0') {
			snprintf(table, 64, "%s", cands[c]);
			return;
		}
	}
	fail_msg("store.db: no table with a page key and a BLOB data column");
}

static uint8_t *tu_page_blob(sqlite3 *db, const char *table, const char *key,
			     const char *data, int64_t page_id, size_t *len)
{
	char *q = sqlite3_mprintf("SELECT \"%w\" FROM \"%w\" WHERE \"%w\" = ?",
				  data, table, key);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(db));
	sqlite3_free(q);
	sqlite3_bind_int64(st, 1, page_id);
	if (sqlite3_step(st) != SQLITE_ROW)
		fail_msg("page %lld not in %s", (long long)page_id, table);
	*len = (size_t)sqlite3_column_bytes(st, 0);
	uint8_t *b = malloc(*len + 1);
	memcpy(b, sqlite3_column_blob(st, 0), *len);
	sqlite3_finalize(st);
	return b;
}

static void tu_page_blob_set(sqlite3 *db, const char *table, const char *key,
			     const char *data, int64_t page_id,
			     const uint8_t *b, size_t len)
{
	char *q = sqlite3_mprintf("UPDATE \"%w\" SET \"%w\" = ? WHERE \"%w\" = ?",
				  table, data, key);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", q, sqlite3_errmsg(db));
	sqlite3_free(q);
	sqlite3_bind_blob(st, 1, b, (int)len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, page_id);
	if (sqlite3_step(st) != SQLITE_DONE || sqlite3_changes(db) != 1)
		fail_msg("corrupting page %lld: %s", (long long)page_id,
			 sqlite3_errmsg(db));
	sqlite3_finalize(st);
}

void tu_corrupt_page(snap_store *st, int64_t page_id)
{
	sqlite3 *db = tu_open(snap_store_file(st));
	char table[64], key[64], data[64];
	tu_page_data_cols(db, table, key, data);
	size_t len;
	uint8_t *b = tu_page_blob(db, table, key, data, page_id, &len);
	if (len == 0)
		fail_msg("page %lld has no stored bytes", (long long)page_id);
	b[len / 2] ^= 0xff;
	tu_page_blob_set(db, table, key, data, page_id, b, len);
	free(b);
	sqlite3_close(db);
}

void tu_swap_page_data(snap_store *st, int64_t victim, int64_t donor)
{
	sqlite3 *db = tu_open(snap_store_file(st));
	char table[64], key[64], data[64];
	tu_page_data_cols(db, table, key, data);
	size_t len;
	uint8_t *b = tu_page_blob(db, table, key, data, donor, &len);
	tu_page_blob_set(db, table, key, data, victim, b, len);
	free(b);
	sqlite3_close(db);
}

void tu_truncate_page_data(snap_store *st, int64_t page_id)
{
	sqlite3 *db = tu_open(snap_store_file(st));
	char table[64], key[64], data[64];
	tu_page_data_cols(db, table, key, data);
	size_t len;
	uint8_t *b = tu_page_blob(db, table, key, data, page_id, &len);
	tu_page_blob_set(db, table, key, data, page_id, b, len / 2);
	free(b);
	sqlite3_close(db);
}

int tu_runs_check(snap_store *st, char *why, size_t cap)
{
	snap_idcount want, prev = {0};
	snap_info *v = NULL;
	size_t n = 0, i, k, rows = 0, referenced = 0;
	sqlite3 *db = NULL;
	sqlite3_stmt *q = NULL;
	snap_err e;

	why[0] = '\0';
	assert_int_equal(snap_store_connect(st, 1, &db, &e), 0);
	assert_int_equal(snap_store_list(st, &v, &n, &e), 0);
	/* By id: the order runs are defined in. */
	for (i = 1; i < n; i++)
		for (k = i; k > 0 && v[k - 1].id > v[k].id; k--) {
			snap_info t = v[k];
			v[k] = v[k - 1];
			v[k - 1] = t;
		}
	assert_int_equal(snap_idcount_init(&want, 1024), 0);
	assert_int_equal(snap_idcount_init(&prev, 16), 0);
	for (i = 0; i < n; i++) {
		snap_idcount cur;

		assert_int_equal(snap_store_map_set(db, v[i].id, &cur, &e), 0);
		for (k = 0; k < cur.cap; k++)
			if (cur.ids[k] && !snap_idcount_has(&prev, cur.ids[k]))
				snap_idcount_add(&want, cur.ids[k], 1);
		snap_idcount_free(&prev);
		prev = cur;
	}
	snap_idcount_free(&prev);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT id, runs FROM pages",
					    -1, &q, NULL), SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0);
		int64_t runs = sqlite3_column_int64(q, 1), expect = 0;

		rows++;
		for (k = 0; k < want.cap; k++)
			if (want.ids[k] == id)
				expect = want.counts[k];
		if (runs != expect && !why[0])
			snprintf(why, cap, "page %lld has runs %lld, the maps "
				 "say %lld", (long long)id, (long long)runs,
				 (long long)expect);
	}
	for (k = 0; k < want.cap; k++)
		referenced += want.ids[k] != 0;
	if (rows != referenced && !why[0])
		snprintf(why, cap, "%zu page rows, %zu pages referenced by "
			 "snapshots", rows, referenced);
	sqlite3_finalize(q);
	sqlite3_close(db);
	snap_idcount_free(&want);
	free(v);
	return why[0] != 0;
}

void tu_assert_runs(snap_store *st)
{
	char why[256];

	if (tu_runs_check(st, why, sizeof(why)))
		fail_msg("%s", why);
}

void tu_store_exec(snap_store *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	sqlite3 *db = tu_open(snap_store_file(st));
	tu_exec(db, "%s", sql);
	sqlite3_free(sql);
	sqlite3_close(db);
}

void tu_problem_cb(void *ctx, const snap_info *si, uint32_t pgno,
		   const char *problem)
{
	tu_problems *p = ctx;
	p->n++;
	if (si != NULL) {
		p->snap_id = si->id;
		snprintf(p->snap_name, sizeof(p->snap_name), "%s", si->name);
	}
	if (pgno != 0) {
		p->pgno = pgno;
		p->npage++;
	}
	snprintf(p->text, sizeof(p->text), "%s", problem ? problem : "");
}

/* ------------------------------------------------------------------ */
/* JSON reader (strict RFC 8259, enough to check the writer)           */

typedef struct tu_jp {
	const char *s;
	const char *why;
	int depth;
} tu_jp;

static void tu_jp_ws(tu_jp *p)
{
	while (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')
		p->s++;
}

static tu_jv *tu_jp_value(tu_jp *p);

static void tu_jp_put(char **out, size_t *len, size_t *cap, const char *b,
		      size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*out = realloc(*out, *cap);
	}
	memcpy(*out + *len, b, n);
	*len += n;
	(*out)[*len] = '\0';
}

static int tu_jp_hex4(const char *s, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static char *tu_jp_string(tu_jp *p, size_t *slen)
{
	if (*p->s != '"') {
		p->why = "expected a string";
		return NULL;
	}
	p->s++;
	char *out = NULL;
	size_t len = 0, cap = 0;
	tu_jp_put(&out, &len, &cap, "", 0);
	for (;;) {
		unsigned char c = (unsigned char)*p->s;
		if (c == '\0') {
			p->why = "unterminated string";
			free(out);
			return NULL;
		}
		if (c < 0x20) {
			p->why = "raw control character in a string";
			free(out);
			return NULL;
		}
		if (c == '"') {
			p->s++;
			break;
		}
		if (c != '\\') {
			tu_jp_put(&out, &len, &cap, p->s, 1);
			p->s++;
			continue;
		}
		p->s++;
		char e = *p->s++;
		char ch;
		switch (e) {
		case '"': ch = '"'; break;
		case '\\': ch = '\\'; break;
		case '/': ch = '/'; break;
		case 'b': ch = '\b'; break;
		case 'f': ch = '\f'; break;
		case 'n': ch = '\n'; break;
		case 'r': ch = '\r'; break;
		case 't': ch = '\t'; break;
		case 'u': {
			unsigned u;
			if (tu_jp_hex4(p->s, &u) != 0) {
				p->why = "bad \\u escape";
				free(out);
				return NULL;
			}
			p->s += 4;
			if (u >= 0xd800 && u <= 0xdbff) {
				unsigned lo;
				if (p->s[0] != '\\' || p->s[1] != 'u' ||
				    tu_jp_hex4(p->s + 2, &lo) != 0 ||
				    lo < 0xdc00 || lo > 0xdfff) {
					p->why = "lone surrogate";
					free(out);
					return NULL;
				}
				p->s += 6;
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			}
			char b[4];
			size_t n;
			if (u < 0x80) {
				b[0] = (char)u; n = 1;
			} else if (u < 0x800) {
				b[0] = (char)(0xc0 | (u >> 6));
				b[1] = (char)(0x80 | (u & 0x3f)); n = 2;
			} else if (u < 0x10000) {
				b[0] = (char)(0xe0 | (u >> 12));
				b[1] = (char)(0x80 | ((u >> 6) & 0x3f));
				b[2] = (char)(0x80 | (u & 0x3f)); n = 3;
			} else {
				b[0] = (char)(0xf0 | (u >> 18));
				b[1] = (char)(0x80 | ((u >> 12) & 0x3f));
				b[2] = (char)(0x80 | ((u >> 6) & 0x3f));
				b[3] = (char)(0x80 | (u & 0x3f)); n = 4;
			}
			tu_jp_put(&out, &len, &cap, b, n);
			continue;
		}
		default:
			p->why = "bad escape";
			free(out);
			return NULL;
		}
		tu_jp_put(&out, &len, &cap, &ch, 1);
	}
	*slen = len;
	return out;
}

static tu_jv *tu_jv_new(tu_jtype t)
{
	tu_jv *v = calloc(1, sizeof(*v));
	v->type = t;
	return v;
}

static void tu_jv_push(tu_jv *v, char *key, tu_jv *item)
{
	/* Grow at powers of two: n is the capacity's lower bound. */
	if ((v->n & (v->n - 1)) == 0) {
		size_t cap = v->n ? v->n * 2 : 1;
		v->items = realloc(v->items, cap * sizeof(*v->items));
		v->keys = realloc(v->keys, cap * sizeof(*v->keys));
	}
	v->items[v->n] = item;
	v->keys[v->n] = key;
	v->n++;
}

static tu_jv *tu_jp_compound(tu_jp *p, int obj)
{
	tu_jv *v = tu_jv_new(obj ? TU_JOBJ : TU_JARR);
	char close = obj ? '}' : ']';
	p->s++;
	if (++p->depth > 64) {
		p->why = "too deep";
		tu_json_free(v);
		return NULL;
	}
	tu_jp_ws(p);
	if (*p->s == close) {
		p->s++;
		p->depth--;
		return v;
	}
	for (;;) {
		char *key = NULL;
		tu_jp_ws(p);
		if (obj) {
			size_t kl;
			key = tu_jp_string(p, &kl);
			if (key == NULL) {
				tu_json_free(v);
				return NULL;
			}
			tu_jp_ws(p);
			if (*p->s != ':') {
				p->why = "expected ':'";
				free(key);
				tu_json_free(v);
				return NULL;
			}
			p->s++;
		}
		tu_jv *item = tu_jp_value(p);
		if (item == NULL) {
			free(key);
			tu_json_free(v);
			return NULL;
		}
		tu_jv_push(v, key, item);
		tu_jp_ws(p);
		if (*p->s == ',') {
			p->s++;
			continue;
		}
		if (*p->s == close) {
			p->s++;
			p->depth--;
			return v;
		}
		p->why = obj ? "expected ',' or '}'" : "expected ',' or ']'";
		tu_json_free(v);
		return NULL;
	}
}

static tu_jv *tu_jp_value(tu_jp *p)
{
	tu_jp_ws(p);
	const char *s = p->s;
	if (*s == '{' || *s == '[')
		return tu_jp_compound(p, *s == '{');
	if (*s == '"') {
		size_t l;
		char *str = tu_jp_string(p, &l);
		if (str == NULL)
			return NULL;
		tu_jv *v = tu_jv_new(TU_JSTR);
		v->str = str;
		v->slen = l;
		return v;
	}
	if (strncmp(s, "true", 4) == 0 || strncmp(s, "false", 5) == 0) {
		tu_jv *v = tu_jv_new(TU_JBOOL);
		v->b = s[0] == 't';
		p->s += v->b ? 4 : 5;
		return v;
	}
	if (strncmp(s, "null", 4) == 0) {
		p->s += 4;
		return tu_jv_new(TU_JNULL);
	}
	/* number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
	const char *q = s;
	if (*q == '-')
		q++;
	if (*q == '0')
		q++;
	else if (*q >= '1' && *q <= '9')
		while (*q >= '0' && *q <= '9')
			q++;
	else {
		p->why = "unexpected character";
		return NULL;
	}
	if (*q == '.') {
		q++;
		if (!(*q >= '0' && *q <= '9')) {
			p->why = "bad fraction";
			return NULL;
		}
		while (*q >= '0' && *q <= '9')
			q++;
	}
	if (*q == 'e' || *q == 'E') {
		q++;
		if (*q == '+' || *q == '-')
			q++;
		if (!(*q >= '0' && *q <= '9')) {
			p->why = "bad exponent";
			return NULL;
		}
		while (*q >= '0' && *q <= '9')
			q++;
	}
	tu_jv *v = tu_jv_new(TU_JNUM);
	v->num = strndup(s, (size_t)(q - s));
	p->s = q;
	return v;
}

tu_jv *tu_json_parse(const char *text, const char **why)
{
	tu_jp p = { .s = text, .why = NULL, .depth = 0 };
	if (text == NULL) {
		if (why)
			*why = "NULL text";
		return NULL;
	}
	tu_jv *v = tu_jp_value(&p);
	if (v != NULL) {
		tu_jp_ws(&p);
		if (*p.s != '\0') {
			p.why = "trailing characters";
			tu_json_free(v);
			v = NULL;
		}
	}
	if (why)
		*why = p.why;
	return v;
}

void tu_json_free(tu_jv *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->n; i++) {
		if (v->keys)
			free(v->keys[i]);
		tu_json_free(v->items[i]);
	}
	free(v->keys);
	free(v->items);
	free(v->num);
	free(v->str);
	free(v);
}

const tu_jv *tu_json_get(const tu_jv *obj, const char *key)
{
	if (obj == NULL || obj->type != TU_JOBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

void tu_db_in_subdir(const tu_env *env, const char *sub, char *dir, char *db,
		     int nrows)
{
	tu_path(env, dir, sub);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(db, PATH_MAX, "%s/live.db", dir);
	tu_db_create(db, "delete", 4096, nrows);
}
