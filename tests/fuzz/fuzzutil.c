/*
 * tests/fuzz/fuzzutil.c — scratch files, fixtures and the input reader the
 * fuzz targets share; see fuzzutil.h.
 */
#include "fuzzutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char scratch[PATH_MAX];

static void scratch_remove(void)
{
	fz_rmrf(scratch);
}

const char *fz_dir(void)
{
	const char *base;

	if (scratch[0])
		return scratch;
	base = getenv("SNAPFS_FUZZ_DIR");
	if (!base || !*base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
		       getenv("TMPDIR");
	snprintf(scratch, sizeof(scratch), "%s/snapfs-fuzz-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(scratch)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	atexit(scratch_remove);
	return scratch;
}

char *fz_path(char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", fz_dir(), name);
	return out;
}

void fz_write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = data;

	if (fd < 0) {
		perror(path);
		abort();
	}
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			perror(path);
			abort();
		}
		p += w;
		n -= (size_t)w;
	}
	close(fd);
}

void fz_copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n;

	if (in < 0 || out < 0) {
		perror(in < 0 ? from : to);
		abort();
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			perror(to);
			abort();
		}
	close(in);
	close(out);
}

static int rm_cb(const char *p, const struct stat *sb, int flag,
		 struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(p);
	return 0;
}

void fz_rmrf(const char *path)
{
	if (path && path[0] && strcmp(path, "/") != 0)
		nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void fz_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "fuzz setup: %s: %s\n", sql, msg);
		abort();
	}
}

void fz_trim_events(snap_store *s)
{
	static unsigned calls;
	sqlite3 *db = NULL;

	if (++calls % 4096)
		return;
	if (sqlite3_open(snap_store_file(s), &db) == SQLITE_OK)
		sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL);
	sqlite3_close(db);
}

void fz_make_db(const char *path, int ps, int rows)
{
	sqlite3 *db = NULL;
	char sql[160];
	int i;

	if (sqlite3_open(path, &db) != SQLITE_OK) {
		fprintf(stderr, "fuzz setup: cannot create %s\n", path);
		abort();
	}
	snprintf(sql, sizeof(sql), "PRAGMA page_size=%d", ps);
	fz_exec(db, sql);
	fz_exec(db, "BEGIN; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
		"CREATE INDEX t_v ON t(v)");
	for (i = 1; i <= rows; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO t VALUES(%d, "
			 "printf('row %%d %%.*c', %d, %d, 'x'))", i, i, i % 90);
		fz_exec(db, sql);
	}
	fz_exec(db, "COMMIT");
	sqlite3_close(db);
}

uint8_t fz_u8(fz_in *in)
{
	uint8_t v = 0;

	if (in->left) {
		v = *in->p++;
		in->left--;
	}
	return v;
}

uint32_t fz_u32(fz_in *in)
{
	uint32_t v = 0;
	int i;

	for (i = 0; i < 4; i++)
		v = v << 8 | fz_u8(in);
	return v;
}

uint64_t fz_u64(fz_in *in)
{
	uint64_t hi = fz_u32(in);

	return hi << 32 | fz_u32(in);
}

const uint8_t *fz_bytes(fz_in *in, size_t max, size_t *len)
{
	size_t n = (size_t)fz_u8(in) << 8;
	const uint8_t *p;

	n |= fz_u8(in);
	p = in->p;
	if (n > max)
		n = max;
	if (n > in->left)
		n = in->left;
	in->p += n;
	in->left -= n;
	*len = n;
	return n ? p : NULL;
}

void fz_str(fz_in *in, char *out, size_t cap)
{
	size_t n = 0, len;
	const uint8_t *p = fz_bytes(in, cap - 1, &len);

	for (n = 0; n < len && p[n]; n++)
		out[n] = (char)p[n];
	out[n] = '\0';
}
