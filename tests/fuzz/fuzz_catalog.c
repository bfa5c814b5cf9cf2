/*
 * tests/fuzz/fuzz_catalog.c — the store reader over a damaged or hostile
 * store.db: catalog rows, page maps, page rows and stored pages.
 *
 * A real store with three snapshots of a small database is built once
 * (page size 1024, pages shared between the snapshots) and kept as a
 * pristine copy.  Each input starts from a fresh copy and is a list of
 * edits made with plain SQL, as bit rot, a bad disk or a careless hand
 * would make them:
 *   - any catalog column of one snapshot set to any value, of any SQLite
 *     type (page_size 0 or 2^32, page_count against the map, image_size
 *     past page_size * page_count, a sha256 of 7 bytes, an unknown kind, a
 *     name with a slash, created_ns at INT64_MIN, ...), or moved by a
 *     small delta;
 *   - the page map replaced by raw bytes, by a well-formed map of other
 *     ids, or one bit flipped;
 *   - a stored page replaced by raw bytes, by a zstd frame of other bytes,
 *     or one bit flipped; a page row's size, zlen, hash or runs changed; a
 *     page row or its data deleted.
 * Then the engine reads the store the ways snapctl and the mount do: list
 * (as JSON, and planned for retention), get, find by name, the tables
 * JSON, statistics, an image opened and read (first pages, last page, page
 * by page with hashes), the snapshot opened as a SQLite database and
 * queried, quick and full verification, export, delete; when the first
 * byte says so, a diff against another snapshot and a restore of it into
 * the live database.  Every call must
 * answer 0 or a negative errno with a message, never read or write out of
 * bounds, never allocate for sizes the store cannot hold.  Invariants:
 *   - a snapshot that passes full verification exports, and the exported
 *     file is an image of the catalog's size;
 *   - a restore succeeds only from a snapshot that passed verification; a
 *     refused one (-EBADMSG) leaves the live file as it was, byte for
 *     byte, any other failure leaves its rows as they were;
 *   - a snapshot left untouched by the edits passes verification, before
 *     and after another snapshot (damaged or not) is deleted, unless the
 *     edits forged a map or changed page rows (a forged map can name pages
 *     of others: deleting it then rightly drops them by the run counts).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "fuzzutil.h"

#define NSNAP 3
#define MAX_EDITS 12
#define READ_MAX (256 * 1024)

static char pristine[PATH_MAX], workdir[PATH_MAX], workfile[PATH_MAX];
static char exported[PATH_MAX], live_path[PATH_MAX], live_orig[PATH_MAX];

/* Build the store once: three snapshots, the live database growing. */
static void setup(void)
{
	char db[PATH_MAX], dir[PATH_MAX];
	snap_store *s = NULL;
	sqlite3 *live = NULL;
	snap_err err;
	int i;

	fz_make_db(fz_path(db, "live.db"), 1024, 30);
	fz_path(dir, "store.orig");
	mkdir(dir, 0700);
	snap_err_clear(&err);
	if (snap_store_open(db, dir, SNAP_OPEN_CREATE, &s, &err))
		goto fail;
	for (i = 0; i < NSNAP; i++) {
		snap_create_opts o = { .kind = SNAP_KIND_AUTO };
		char sql[128];

		o.kind = i == 1 ? SNAP_KIND_MANUAL : SNAP_KIND_AUTO;
		if (snap_snapshot_take(s, &o, NULL, &err))
			goto fail;
		sqlite3_open(db, &live);
		snprintf(sql, sizeof(sql), "INSERT INTO t(v) SELECT v || %d "
			 "FROM t WHERE id %% 7 = %d", i, i);
		fz_exec(live, sql);
		sqlite3_close(live);
	}
	snap_store_close(s);
	snprintf(live_path, sizeof(live_path), "%s", db);
	fz_copy_file(live_path, fz_path(live_orig, "live.orig"));
	snprintf(pristine, sizeof(pristine), "%s/store.db", dir);
	fz_path(workdir, "store");
	mkdir(workdir, 0700);
	snprintf(workfile, sizeof(workfile), "%s/store.db", workdir);
	fz_path(exported, "exported.db");
	return;
fail:
	fprintf(stderr, "fuzz setup: %s\n", err.msg);
	abort();
}

/* The catalog columns an edit may change. */
static const char *const snap_cols[] = {
	"page_size", "page_count", "image_size", "sha256", "kind", "name",
	"label", "created_ns", "pinned", "comment", "tables",
	"change_counter", "pagemap",
};
#define NCOLS (sizeof(snap_cols) / sizeof(snap_cols[0]))
static const char *const page_cols[] = { "size", "zlen", "hash", "runs" };

/* Bind a value of any type and size the input chooses. */
static void bind_any(sqlite3_stmt *st, int i, fz_in *in)
{
	static const int64_t special[] = {
		0, 1, -1, 2, 511, 512, 1000, 1024, 4096, 65536, 65537,
		131072, INT32_MAX, (int64_t)INT32_MAX + 1, UINT32_MAX,
		(int64_t)UINT32_MAX + 1, (int64_t)1 << 40, INT64_MAX,
		INT64_MIN,
	};
	char text[300];
	const uint8_t *b;
	size_t len;
	uint64_t bits;
	double d;

	switch (fz_u8(in) % 7) {
	case 0:
		sqlite3_bind_int64(st, i, special[fz_u8(in) % (sizeof(special) /
							sizeof(special[0]))]);
		break;
	case 1:
		sqlite3_bind_int64(st, i, fz_u8(in));
		break;
	case 2:
		sqlite3_bind_int64(st, i, (int32_t)fz_u32(in));
		break;
	case 3:
		sqlite3_bind_int64(st, i, (int64_t)fz_u64(in));
		break;
	case 4:
		fz_str(in, text, sizeof(text));
		sqlite3_bind_text(st, i, text, -1, SQLITE_TRANSIENT);
		break;
	case 5:
		b = fz_bytes(in, 4096, &len);
		sqlite3_bind_blob(st, i, b ? (const void *)b : "", (int)len,
				  SQLITE_TRANSIENT);
		break;
	default:
		bits = fz_u64(in);
		memcpy(&d, &bits, sizeof(d));
		sqlite3_bind_double(st, i, d);
		break;
	}
}

/* Run one statement with ?1 bound by fn and ?2 = id; a failure (a
 * constraint, a NaN) just means the edit did not happen. */
static void edit(sqlite3 *db, const char *sql, fz_in *in, int64_t id,
		 void (*fn)(sqlite3_stmt *, int, fz_in *))
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "fuzz: %s: %s\n", sql, sqlite3_errmsg(db));
		abort();
	}
	fn(st, 1, in);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

static void bind_delta(sqlite3_stmt *st, int i, fz_in *in)
{
	sqlite3_bind_int64(st, i, (int8_t)fz_u8(in));
}

static void bind_raw(sqlite3_stmt *st, int i, fz_in *in)
{
	size_t len;
	const uint8_t *b = fz_bytes(in, 8192, &len);

	sqlite3_bind_blob(st, i, b ? (const void *)b : "", (int)len,
			  SQLITE_TRANSIENT);
}

/* A well-formed map of ids from the input. */
static void bind_forged_map(sqlite3_stmt *st, int i, fz_in *in)
{
	int64_t ids[64];
	uint32_t n = fz_u8(in) % 64, k;
	void *blob = NULL;
	size_t len = 0;

	for (k = 0; k < n; k++)
		ids[k] = fz_u8(in) & 0x80 ? (int64_t)fz_u64(in) : fz_u8(in) % 40;
	if (snap_map_encode(ids, n, &blob, &len))
		abort();
	sqlite3_bind_blob(st, i, blob, (int)len, free);
}

/* A zstd frame of input bytes: decodes, but maybe not to a page. */
static void bind_frame(sqlite3_stmt *st, int i, fz_in *in)
{
	size_t len, cap, z;
	const uint8_t *b = fz_bytes(in, 2048, &len);
	uint8_t src[4096], *dst;

	/* Sometimes exactly a page: the raw bytes repeated. */
	if (b && fz_u8(in) & 1) {
		for (z = 0; z < 1024; z++)
			src[z] = b[z % len];
		b = src;
		len = 1024;
	}
	cap = ZSTD_compressBound(len);
	dst = malloc(cap);
	z = ZSTD_compress(dst, cap, b ? (const void *)b : "", len, 1);
	if (!dst || ZSTD_isError(z))
		abort();
	sqlite3_bind_blob(st, i, dst, (int)z, free);
}

/* Flip one bit of a blob column in one row. */
static void flip_bit(sqlite3 *db, const char *table, const char *col,
		     int64_t id, fz_in *in)
{
	char sql[160];
	sqlite3_stmt *st = NULL;
	uint8_t *copy = NULL;
	int len = 0;
	uint32_t bit = fz_u32(in);

	snprintf(sql, sizeof(sql), "SELECT %s FROM %s WHERE id=?", col, table);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    (len = sqlite3_column_bytes(st, 0)) > 0) {
			copy = malloc((size_t)len);
			memcpy(copy, sqlite3_column_blob(st, 0), (size_t)len);
			copy[(bit / 8) % (uint32_t)len] ^= (uint8_t)(1u << (bit % 8));
		}
	}
	sqlite3_finalize(st);
	if (!copy)
		return;
	snprintf(sql, sizeof(sql), "UPDATE %s SET %s=? WHERE id=?", table, col);
	sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	sqlite3_bind_blob(st, 1, copy, len, free);
	sqlite3_bind_int64(st, 2, id);
	sqlite3_step(st);
	sqlite3_finalize(st);
}

/* The id of the k-th stored page (k from the input). */
static int64_t some_page(sqlite3 *db, fz_in *in)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;

	sqlite3_prepare_v2(db, "SELECT id FROM pages ORDER BY id LIMIT 1 "
			   "OFFSET ?", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, fz_u8(in) % 48);
	if (sqlite3_step(st) == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return id;
}

/*
 * Apply the input's edits to the work copy.  Returns a mask of snapshot
 * ids touched (bit id); *shared is set when an edit can rightly damage
 * other snapshots (a forged map, page rows).
 */
static unsigned apply_edits(fz_in *in, int *shared)
{
	sqlite3 *db = NULL;
	char sql[160];
	unsigned touched = 0;
	int k;

	if (sqlite3_open(workfile, &db) != SQLITE_OK)
		abort();
	for (k = 0; k < MAX_EDITS && in->left; k++) {
		uint8_t op = fz_u8(in);
		int64_t id = 1 + fz_u8(in) % NSNAP, page;
		const char *col = snap_cols[fz_u8(in) % NCOLS];

		switch (op % 10) {
		case 0:
			snprintf(sql, sizeof(sql), "UPDATE snapshots SET %s=? "
				 "WHERE id=?", col);
			edit(db, sql, in, id, bind_any);
			touched |= 1u << id;
			break;
		case 1:
			snprintf(sql, sizeof(sql), "UPDATE snapshots SET %s=%s+? "
				 "WHERE id=?", col, col);
			edit(db, sql, in, id, bind_delta);
			touched |= 1u << id;
			break;
		case 2:
			edit(db, "UPDATE snapshots SET pagemap=? WHERE id=?", in,
			     id, bind_raw);
			touched |= 1u << id;
			break;
		case 3:
			edit(db, "UPDATE snapshots SET pagemap=? WHERE id=?", in,
			     id, bind_forged_map);
			touched |= 1u << id;
			*shared = 1;
			break;
		case 4:
			flip_bit(db, "snapshots", "pagemap", id, in);
			touched |= 1u << id;
			break;
		case 5:
			page = some_page(db, in);
			edit(db, "UPDATE page_data SET zdata=? WHERE id=?", in,
			     page, fz_u8(in) & 1 ? bind_frame : bind_raw);
			*shared = 1;
			break;
		case 6:
			page = some_page(db, in);
			flip_bit(db, "page_data", "zdata", page, in);
			*shared = 1;
			break;
		case 7:
			page = some_page(db, in);
			snprintf(sql, sizeof(sql), "UPDATE pages SET %s=? WHERE "
				 "id=?", page_cols[fz_u8(in) % 4]);
			edit(db, sql, in, page, bind_any);
			*shared = 1;
			break;
		case 8:
			page = some_page(db, in);
			snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE id=%lld",
				 fz_u8(in) & 1 ? "pages" : "page_data",
				 (long long)page);
			sqlite3_exec(db, sql, NULL, NULL, NULL);
			*shared = 1;
			break;
		default:
			flip_bit(db, "snapshots", "sha256", id, in);
			touched |= 1u << id;
			break;
		}
	}
	sqlite3_close(db);
	return touched;
}

/* Read what an image gives: the first pages, the last, page by page. */
static void read_image(snap_store *s, const snap_info *si)
{
	static uint8_t buf[READ_MAX];
	snap_image *im = NULL;
	snap_err err;
	uint64_t size;
	uint32_t ps, pgno;
	uint8_t sha[32];
	ssize_t n;
	int rc;

	snap_err_clear(&err);
	rc = snap_image_open(s, si->id, &im, &err);
	FZ_CHECK_RC(rc, err);
	if (rc)
		return;
	size = snap_image_size(im);
	ps = snap_image_page_size(im);
	n = snap_image_read(im, buf, sizeof(buf), 0, &err);
	FZ_CHECK(n < 0 ? err.msg[0] != '\0' : (size_t)n <= sizeof(buf) &&
		 (uint64_t)n <= size, "read %zd of %s", n, si->name);
	/* The end, unaligned: a partial page through the scratch buffer. */
	if (size > 100) {
		n = snap_image_read(im, buf, 4096, size - 100, &err);
		FZ_CHECK(n < 0 ? err.msg[0] != '\0' : n <= 100, "read %zd at "
			 "the end of %s", n, si->name);
	}
	n = snap_image_read(im, buf, 1, size, &err);
	FZ_CHECK(n == 0, "read %zd past the end of %s", n, si->name);
	for (pgno = 0; ps <= sizeof(buf) && pgno <= 8; pgno++) {
		snap_err_clear(&err);
		rc = snap_image_read_page(im, pgno, buf, sha, &err);
		FZ_CHECK_RC(rc, err);
	}
	snap_image_close(im);
}

/* Open the snapshot as a database and ask it what SQLite asks first. */
static void query_image(snap_store *s, const snap_info *si)
{
	sqlite3 *db = NULL;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_image_sqlite_open(s, si->id, &db, &err);
	FZ_CHECK_RC(rc, err);
	if (rc)
		return;
	sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema; "
		     "SELECT count(*), max(length(v)) FROM t", NULL, NULL, NULL);
	sqlite3_close(db);
}

/* Verify: 0 intact, -EBADMSG damaged, another errno with a message. */
static int verify(snap_store *s, int64_t id, int full)
{
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_verify_snapshot(s, id, full, NULL, NULL, &err);
	FZ_CHECK_RC(rc, err);
	return rc;
}

/* SHA-256 of a file, and the rows of t as SQLite reads them. */
static void live_state(uint8_t sha[32], int64_t *rows, int64_t *bytes)
{
	static uint8_t buf[1 << 20];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	FILE *f = fopen(live_path, "rb");
	size_t n = f ? fread(buf, 1, sizeof(buf), f) : 0;

	if (f)
		fclose(f);
	snap_sha256(buf, n, sha);
	*rows = *bytes = -1;
	if (sqlite3_open_v2(live_path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, "SELECT count(*), "
	    "total(length(v)) FROM t", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*rows = sqlite3_column_int64(st, 0);
		*bytes = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Restore the target into a fresh live database; see the invariants. */
static void restore(snap_store *s, const snap_info *si, int intact)
{
	snap_restore_result res;
	snap_err err;
	uint8_t sha0[32], sha1[32];
	int64_t rows0, bytes0, rows1, bytes1;
	int rc;

	fz_copy_file(live_orig, live_path);
	live_state(sha0, &rows0, &bytes0);
	snap_err_clear(&err);
	memset(&res, 0, sizeof(res));
	rc = snap_restore(s, si->id, &res, &err);
	FZ_CHECK_RC(rc, err);
	FZ_CHECK(rc || intact, "%s failed verification but was restored",
		 si->name);
	if (rc == 0)
		return;
	live_state(sha1, &rows1, &bytes1);
	FZ_CHECK(rc != -EBADMSG || memcmp(sha0, sha1, 32) == 0,
		 "a refused restore of %s changed the live file: %s",
		 si->name, err.msg);
	FZ_CHECK(rows0 == rows1 && bytes0 == bytes1, "a failed restore of %s "
		 "changed the live rows (%lld -> %lld): %s", si->name,
		 (long long)rows0, (long long)rows1, err.msg);
}

/* What differs between two snapshots, either of them damaged. */
static void diff(snap_store *s, int64_t a, int64_t b)
{
	snap_diff d;
	snap_err err;
	int rc;

	memset(&d, 0, sizeof(d));
	snap_err_clear(&err);
	rc = snap_diff_states(s, a, b, &d, &err);
	FZ_CHECK_RC(rc, err);
	snap_diff_free(&d);
}

static void check_list(snap_store *s)
{
	snap_info *v = NULL;
	snap_keep_decision *d;
	snap_keep_policy p = { .last = 1, .daily = 2, .weekly = 2 };
	snap_json j;
	snap_err err;
	size_t n = 0, i;
	int rc;

	snap_err_clear(&err);
	rc = snap_store_list(s, &v, &n, &err);
	FZ_CHECK_RC(rc, err);
	if (rc)
		return;
	snap_json_init(&j);
	snap_json_arr_begin(&j);
	for (i = 0; i < n; i++)
		snap_json_info(&j, &v[i]);
	snap_json_arr_end(&j);
	FZ_CHECK(j.oom || (j.buf && strlen(j.buf) == j.len), "json");
	snap_json_free(&j);
	d = calloc(n + 1, sizeof(*d));
	snap_retention_plan(v, n, &p, d);
	free(d);
	free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	snap_store *s = NULL;
	snap_store_stats st;
	snap_info si, other;
	snap_err err;
	char *tables = NULL, path[PATH_MAX + 8];
	int shared = 0, intact_before[NSNAP + 1] = { 0 }, rc, full_ok;
	unsigned touched;
	int64_t target, id;
	uint8_t mode;
	fz_in in;
	struct stat fst;

	if (!pristine[0])
		setup();
	snprintf(path, sizeof(path), "%s-wal", workfile);
	unlink(path);
	snprintf(path, sizeof(path), "%s-shm", workfile);
	unlink(path);
	fz_copy_file(pristine, workfile);

	fz_in_init(&in, data, size);
	mode = fz_u8(&in);
	target = 1 + (mode & 0x3f) % NSNAP;
	touched = apply_edits(&in, &shared);

	snap_err_clear(&err);
	rc = snap_store_open(NULL, workdir, 0, &s, &err);
	FZ_CHECK(rc == 0, "the store no longer opens: %s", err.msg);

	check_list(s);
	rc = snap_store_stats_get(s, &st, &err);
	FZ_CHECK_RC(rc, err);
	rc = snap_store_get(s, target, &si, &err);
	FZ_CHECK(rc == 0, "snapshot %lld is gone: %s", (long long)target,
		 err.msg);
	snap_err_clear(&err);
	rc = snap_store_find(s, si.name, &other, &err);
	FZ_CHECK_RC(rc, err);
	rc = snap_store_tables_json(s, target, &tables, &err);
	FZ_CHECK_RC(rc, err);
	free(tables);

	read_image(s, &si);
	query_image(s, &si);
	for (id = 1; id <= NSNAP; id++)
		intact_before[id] = verify(s, id, SNAP_VERIFY_QUICK) == 0;
	for (id = 1; id <= NSNAP; id++)
		FZ_CHECK(shared || (touched & (1u << id)) || intact_before[id],
			 "untouched snapshot %lld fails verification",
			 (long long)id);

	full_ok = verify(s, target, SNAP_VERIFY_FULL) == 0;
	unlink(exported);
	snap_err_clear(&err);
	rc = snap_image_export(s, target, exported, &err);
	FZ_CHECK_RC(rc, err);
	FZ_CHECK(!full_ok || rc == 0, "%s verifies but does not export: %s",
		 si.name, err.msg);
	FZ_CHECK(rc || (stat(exported, &fst) == 0 &&
			(uint64_t)fst.st_size == si.image_size),
		 "%s exported with another size", si.name);

	if (mode & 0x40)
		diff(s, target, 1 + target % NSNAP);
	if (mode & 0x80)
		restore(s, &si, intact_before[target]);

	snap_err_clear(&err);
	rc = snap_store_delete(s, target, &err);
	FZ_CHECK_RC(rc, err);
	FZ_CHECK(rc || snap_store_get(s, target, &other, &err) == -ENOENT,
		 "deleted snapshot %lld is still there", (long long)target);
	if (rc == 0 && !shared)
		for (id = 1; id <= NSNAP; id++)
			if (id != target && intact_before[id])
				FZ_CHECK(verify(s, id, SNAP_VERIFY_QUICK) == 0,
					 "deleting snapshot %lld damaged "
					 "snapshot %lld", (long long)target,
					 (long long)id);
	check_list(s);
	snap_store_close(s);
	return 0;
}
