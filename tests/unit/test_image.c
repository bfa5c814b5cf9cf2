/*
 * tests/unit/test_image.c — engine/image.h: reading a snapshot's image out
 * of the store (ranges, pages, hashes), the SQLite view over the store,
 * exporting, and reading from several threads at once.
 */
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static snap_info make_snapshot(tu_env *env, int page_size, int rows)
{
	tu_db_create(env->db, "delete", page_size, rows);
	return tu_snap(tu_store(env), "img");
}

static snap_image *open_image(snap_store *st, int64_t id)
{
	snap_image *im = NULL;
	snap_err e;
	snap_err_clear(&e);
	int rc = snap_image_open(st, id, &im, &e);
	if (rc != 0)
		fail_msg("snap_image_open: %d %s", rc, e.msg);
	return im;
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */

static void test_image_equals_a_backup_copy_but_page1_counters(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 1024, 400);
	snap_store *st = env->st;
	char ref[PATH_MAX];
	tu_db_backup_copy(env->db, tu_path(env, ref, "ref.db"));
	size_t rl, il;
	uint8_t *r = tu_read_file(ref, &rl);
	uint8_t *img = tu_image_bytes(st, si.id, &il);
	r[18] = r[19] = 1;
	assert_int_equal(il, rl);
	assert_int_equal(il, si.image_size);
	size_t diffs = 0, first = 0;
	for (size_t i = 0; i < il; i++)
		if (img[i] != r[i] && !tu_header_counter_byte(i) && diffs++ == 0)
			first = i;
	if (diffs != 0)
		fail_msg("%zu bytes differ from a backup copy, first at %zu",
			 diffs, first);
	uint8_t sha[32];
	tu_sha256(img, il, sha);
	assert_memory_equal(sha, si.sha256, 32);
	free(r);
	free(img);
}

static void test_image_reads_arbitrary_ranges(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 1024, 400);
	snap_store *st = env->st;
	size_t size;
	uint8_t *whole = tu_image_bytes(st, si.id, &size);
	snap_image *im = open_image(st, si.id);
	assert_int_equal(snap_image_size(im), size);
	assert_int_equal(snap_image_page_size(im), 1024);
	assert_int_equal(snap_image_page_count(im), si.page_count);

	size_t cap = 4 * 1024 + 64;
	uint8_t *buf = malloc(cap);
	snap_err e;
	snap_err_clear(&e);
	struct { uint64_t off; size_t len; } fixed[] = {
		{ 0, 0 }, { 0, 1 }, { 0, 100 }, { 17, 3 }, { 1023, 2 },
		{ 1000, 3000 }, { 1024, 1024 }, { 2047, 1025 },
		{ size - 10, 100 }, { size - 1, 1 }, { size, 10 },
		{ size + 5000, 10 }, { size - 1024, 1024 },
	};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		uint64_t off = fixed[i].off;
		size_t len = fixed[i].len;
		size_t want = off >= size ? 0 : (size - off < len ? size - off : len);
		memset(buf, 0xee, cap);
		ssize_t r = snap_image_read(im, buf, len, off, &e);
		if (r != (ssize_t)want)
			fail_msg("read(off=%llu, len=%zu) = %zd, want %zu (%s)",
				 (unsigned long long)off, len, r, want, e.msg);
		if (want > 0)
			assert_memory_equal(buf, whole + off, want);
	}
	/* A deterministic scatter of ranges. */
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < 400; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		uint64_t off = (x >> 20) % (size + 2048);
		size_t len = (size_t)((x >> 8) % (4 * 1024 + 1));
		size_t want = off >= size ? 0 : (size - off < len ? size - off : len);
		ssize_t r = snap_image_read(im, buf, len, off, &e);
		if (r != (ssize_t)want)
			fail_msg("read(off=%llu, len=%zu) = %zd, want %zu (%s)",
				 (unsigned long long)off, len, r, want, e.msg);
		if (want > 0 && memcmp(buf, whole + off, want) != 0)
			fail_msg("read(off=%llu, len=%zu): wrong bytes",
				 (unsigned long long)off, len);
	}
	snap_image_close(im);
	free(buf);
	free(whole);
}

static void test_image_read_page_gives_page_and_its_hash(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 4096, 300);
	snap_store *st = env->st;
	size_t size;
	uint8_t *whole = tu_image_bytes(st, si.id, &size);
	snap_image *im = open_image(st, si.id);
	uint8_t *page = malloc(4096);
	snap_err e;
	snap_err_clear(&e);
	for (uint32_t p = 1; p <= si.page_count; p++) {
		uint8_t sha[32], want[32];
		assert_int_equal(snap_image_read_page(im, p, page, sha, &e), 0);
		assert_memory_equal(page, whole + (size_t)(p - 1) * 4096, 4096);
		tu_sha256(page, 4096, want);
		assert_memory_equal(sha, want, 32);
		assert_true(snap_image_page_id(im, p) > 0);
		assert_int_equal(snap_image_read_page(im, p, page, NULL, &e), 0);
	}
	assert_true(snap_image_read_page(im, 0, page, NULL, &e) < 0);
	assert_true(snap_image_read_page(im, si.page_count + 1, page, NULL, &e) < 0);
	snap_image_close(im);
	free(page);
	free(whole);
}

static void test_image_pages_unchanged_between_snapshots_share_ids(void **state)
{
	tu_env *env = *state;
	snap_info a = make_snapshot(env, 1024, 400);
	snap_store *st = env->st;
	snap_info b = tu_snap(st, "again");
	snap_image *ia = open_image(st, a.id), *ib = open_image(st, b.id);
	assert_int_equal(snap_image_page_count(ia), snap_image_page_count(ib));
	for (uint32_t p = 2; p <= a.page_count; p++)
		assert_int_equal(snap_image_page_id(ia, p), snap_image_page_id(ib, p));
	snap_image_close(ia);
	snap_image_close(ib);
}

static void test_image_sqlite_open_queries_rows_read_only(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 4096, 250);
	snap_store *st = env->st;
	/* Change the live database: the snapshot must not follow. */
	sqlite3 *live = tu_open(env->db);
	tu_exec(live, "DELETE FROM t WHERE id > 100");
	sqlite3_close(live);

	sqlite3 *db = NULL;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_image_sqlite_open(st, si.id, &db, &e), 0);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM t"), 250);
	char *v = tu_query_text(db, "SELECT v FROM t WHERE id = 200");
	assert_string_equal(v, "row-000200");
	free(v);
	char *ic = tu_query_text(db, "PRAGMA integrity_check");
	assert_string_equal(ic, "ok");
	free(ic);
	int rc = sqlite3_exec(db, "INSERT INTO t(id, v) VALUES (9999, 'x')",
			      NULL, NULL, NULL);
	assert_int_not_equal(rc, SQLITE_OK);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM t"), 250);
	sqlite3_close(db);

	/* Two connections to two snapshots at once. */
	snap_info s2 = tu_snap(st, "after-delete");
	sqlite3 *d1 = NULL, *d2 = NULL;
	assert_int_equal(snap_image_sqlite_open(st, si.id, &d1, &e), 0);
	assert_int_equal(snap_image_sqlite_open(st, s2.id, &d2, &e), 0);
	assert_int_equal(tu_query_int(d1, "SELECT count(*) FROM t"), 250);
	assert_int_equal(tu_query_int(d2, "SELECT count(*) FROM t"), 100);
	sqlite3_close(d1);
	sqlite3_close(d2);
}

static void test_image_export_is_a_standalone_database(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 4096, 300);
	snap_store *st = env->st;
	char outdir[PATH_MAX], out[PATH_MAX];
	assert_int_equal(mkdir(tu_path(env, outdir, "out"), 0700), 0);
	tu_path(env, out, "out/copy.db");
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_image_export(st, si.id, out, &e), 0);
	uint8_t sha[32];
	tu_sha256_file(out, sha);
	assert_memory_equal(sha, si.sha256, 32);
	assert_int_equal(count_entries(outdir), 1);   /* no temp file left */
	char live[65], exp[65];
	tu_db_digest(env->db, live);
	tu_db_digest(out, exp);
	assert_string_equal(exp, live);
	assert_true(tu_db_integrity_ok(out));
	char *jm = tu_db_journal_mode(out);
	assert_string_equal(jm, "delete");
	free(jm);

	/* Exporting over an existing file replaces it. */
	tu_write_file(out, "old junk", 8);
	assert_int_equal(snap_image_export(st, si.id, out, &e), 0);
	tu_sha256_file(out, sha);
	assert_memory_equal(sha, si.sha256, 32);
	assert_int_equal(count_entries(outdir), 1);
}

static void test_image_export_into_a_missing_dir_fails(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 4096, 10);
	char out[PATH_MAX];
	tu_path(env, out, "nodir/copy.db");
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_image_export(env->st, si.id, out, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "nodir"));
}

static void test_image_of_unknown_snapshot_is_enoent(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 4096, 10);
	snap_image *im = NULL;
	sqlite3 *db = NULL;
	snap_err e;
	snap_err_clear(&e);
	char out[PATH_MAX];
	assert_int_equal(snap_image_open(env->st, si.id + 100, &im, &e), -ENOENT);
	assert_null(im);
	assert_int_equal(snap_image_sqlite_open(env->st, si.id + 100, &db, &e),
			 -ENOENT);
	assert_int_equal(snap_image_export(env->st, si.id + 100,
					   tu_path(env, out, "x.db"), &e), -ENOENT);
	assert_false(tu_exists(out));
}

static void check_page_size(tu_env *env, int ps)
{
	snap_info si = make_snapshot(env, ps, 300);
	assert_int_equal(si.page_size, (uint32_t)ps);
	size_t len;
	uint8_t *img = tu_image_bytes(env->st, si.id, &len);
	assert_int_equal(len, (size_t)ps * si.page_count);
	uint8_t sha[32];
	tu_sha256(img, len, sha);
	assert_memory_equal(sha, si.sha256, 32);
	/* Header bytes 16-17: the page size, 1 meaning 65536. */
	uint32_t hp = (uint32_t)img[16] << 8 | img[17];
	assert_int_equal(hp == 1 ? 65536 : hp, (uint32_t)ps);
	free(img);
	sqlite3 *db = NULL;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(snap_image_sqlite_open(env->st, si.id, &db, &e), 0);
	assert_int_equal(tu_query_int(db, "SELECT count(*) FROM t"), 300);
	sqlite3_close(db);
}

static void test_image_of_512_byte_pages(void **state)
{
	check_page_size(*state, 512);
}

static void test_image_of_65536_byte_pages(void **state)
{
	check_page_size(*state, 65536);
}

typedef struct reader_job {
	snap_store *st;
	int64_t id;
	uint8_t sha[32];
	int rc;
} reader_job;

static void *reader_thread(void *arg)
{
	reader_job *j = arg;
	snap_image *im = NULL;
	snap_err e;
	snap_err_clear(&e);
	j->rc = snap_image_open(j->st, j->id, &im, &e);
	if (j->rc != 0)
		return NULL;
	uint64_t size = snap_image_size(im);
	uint8_t *buf = malloc(size);
	uint64_t off = 0;
	/* Odd-sized chunks so reads straddle pages. */
	while (off < size) {
		ssize_t r = snap_image_read(im, buf + off, 3001, off, &e);
		if (r <= 0) {
			j->rc = r < 0 ? (int)r : -EIO;
			break;
		}
		off += (uint64_t)r;
	}
	if (j->rc == 0)
		tu_sha256(buf, size, j->sha);
	free(buf);
	snap_image_close(im);
	return NULL;
}

/*
 * A catalog row is data on a disk: a page size of 0 or one SQLite never
 * uses, no pages, or an image size past the page map is refused when the
 * image is opened and reported by verification, never read (found by
 * tests/fuzz/fuzz_catalog.c: page_size 0 divided by zero in
 * snap_image_read).
 */
static void test_image_of_a_damaged_catalog_row_is_refused(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 1024, 50);
	static const char *const edits[] = {
		"page_size=0",
		"page_size=1000, image_size=1000*page_count",
		"page_size=131072, image_size=131072*page_count",
		"image_size=image_size+1024",
		"image_size=image_size-1",
		"page_count=0, image_size=0",
	};

	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		sqlite3 *db = tu_open(snap_store_file(env->st));
		snap_image *im = NULL;
		snap_err e;
		int rc;

		tu_exec(db, "UPDATE snapshots SET %s WHERE id=%lld", edits[i],
			(long long)si.id);
		snap_err_clear(&e);
		rc = snap_image_open(env->st, si.id, &im, &e);
		assert_int_equal(rc, -EBADMSG);
		assert_null(im);
		assert_non_null(strstr(e.msg, "catalog row is damaged"));
		snap_err_clear(&e);
		rc = snap_verify_snapshot(env->st, si.id, SNAP_VERIFY_QUICK,
					  NULL, NULL, &e);
		assert_int_equal(rc, -EBADMSG);
		assert_non_null(strstr(e.msg, "catalog row is damaged"));
		tu_exec(db, "UPDATE snapshots SET page_size=%u, page_count=%u, "
			"image_size=%llu WHERE id=%lld", si.page_size,
			si.page_count, (unsigned long long)si.image_size,
			(long long)si.id);
		sqlite3_close(db);
		assert_int_equal(snap_verify_snapshot(env->st, si.id,
						      SNAP_VERIFY_FULL, NULL,
						      NULL, &e), 0);
	}
}

static void test_images_are_read_by_several_threads_at_once(void **state)
{
	tu_env *env = *state;
	snap_info a = make_snapshot(env, 1024, 600);
	sqlite3 *db = tu_open(env->db);
	tu_exec(db, "UPDATE t SET pad = 'p' || id WHERE id %% 7 = 0");
	sqlite3_close(db);
	snap_info b = tu_snap(env->st, "b");
	reader_job jobs[6];
	pthread_t th[6];
	for (int i = 0; i < 6; i++) {
		jobs[i] = (reader_job){ .st = env->st, .id = i % 2 ? b.id : a.id };
		assert_int_equal(pthread_create(&th[i], NULL, reader_thread,
						&jobs[i]), 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(jobs[i].rc, 0);
		assert_memory_equal(jobs[i].sha, i % 2 ? b.sha256 : a.sha256, 32);
	}
}


/* Progress calls seen: the last, whether they ever went backwards. */
typedef struct progress_log {
	uint64_t done, total;
	unsigned calls;
	int backwards;
} progress_log;

static void log_progress(void *ctx, uint64_t done, uint64_t total)
{
	progress_log *p = ctx;

	if (done < p->done || (p->calls && total != p->total))
		p->backwards = 1;
	p->done = done;
	p->total = total;
	p->calls++;
}

/* Export si through the page pipeline and compare, byte for byte, with
 * the image read page by page through snap_image_read; progress ends at
 * the page count and never goes back. */
static void export_matches_image(tu_env *env, const snap_info *si)
{
	char out[PATH_MAX], name[64];
	progress_log p = { 0 };
	snap_err e;
	size_t fl, il;

	snprintf(name, sizeof(name), "export-%lld.db", (long long)si->id);
	tu_path(env, out, name);
	snap_err_clear(&e);
	if (snap_image_export_progress(env->st, si->id, out, log_progress, &p,
				       &e) != 0)
		fail_msg("export of %s: %s", si->name, e.msg);
	uint8_t *f = tu_read_file(out, &fl);
	uint8_t *img = tu_image_bytes(env->st, si->id, &il);
	assert_int_equal(fl, si->image_size);
	assert_int_equal(il, fl);
	assert_memory_equal(f, img, fl);
	assert_int_equal(p.done, si->page_count);
	assert_int_equal(p.total, si->page_count);
	assert_false(p.backwards);
	assert_true(p.calls >= si->page_count / 256);
	free(f);
	free(img);
}

/*
 * The export decodes pages on workers and writes them in order (more pages
 * than the pipe has slots): each snapshot of a database that grew, shrank,
 * changed page size and changed pages back to older contents is exported
 * exactly as it was captured.
 */
static void test_image_export_of_a_database_that_changed_shape(void **state)
{
	tu_env *env = *state;
	snap_info a = make_snapshot(env, 1024, 6000), b, c, d, f;
	sqlite3 *db;

	assert_true(a.page_count > 600);
	db = tu_open(env->db);
	tu_exec(db, "DELETE FROM t WHERE id > 400");
	tu_exec(db, "VACUUM");
	sqlite3_close(db);
	b = tu_snap(env->st, "shrank");
	assert_true(b.page_count < a.page_count / 2);
	db = tu_open(env->db);
	tu_db_insert(db, 401, 12000);
	sqlite3_close(db);
	c = tu_snap(env->st, "grew");
	assert_true(c.page_count > a.page_count);
	db = tu_open(env->db);
	tu_exec(db, "PRAGMA page_size=4096");
	tu_exec(db, "VACUUM");
	sqlite3_close(db);
	d = tu_snap(env->st, "4k pages");
	assert_int_equal(d.page_size, 4096);
	/* Back to a's rows and page size: pages with a's older contents. */
	db = tu_open(env->db);
	tu_exec(db, "DELETE FROM t WHERE id > 6000");
	tu_exec(db, "PRAGMA page_size=1024");
	tu_exec(db, "VACUUM");
	sqlite3_close(db);
	f = tu_snap(env->st, "back");
	assert_int_equal(f.page_size, 1024);
	export_matches_image(env, &a);
	export_matches_image(env, &b);
	export_matches_image(env, &c);
	export_matches_image(env, &d);
	export_matches_image(env, &f);
	export_matches_image(env, &a);
}

/* A damaged page far into the image (past the pipe's first round of
 * slots): the export fails naming it and leaves no file behind. */
static void test_image_export_of_a_damaged_page_leaves_nothing(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 1024, 6000);
	char outdir[PATH_MAX], out[PATH_MAX], want[32];
	snap_err e;
	uint32_t pg = si.page_count - 3;

	assert_true(pg > 512);
	assert_int_equal(mkdir(tu_path(env, outdir, "out"), 0700), 0);
	tu_path(env, out, "out/copy.db");
	tu_corrupt_page(env->st, tu_page_id(env->st, si.id, pg));
	snap_err_clear(&e);
	assert_true(snap_image_export(env->st, si.id, out, &e) < 0);
	snprintf(want, sizeof(want), "page %u ", pg);
	if (!strstr(e.msg, want) && !strstr(e.msg, "SHA-256"))
		fail_msg("export error does not name page %u: %s", pg, e.msg);
	assert_int_equal(count_entries(outdir), 0);
}

/* A page whose stored bytes decode to another page's content (bit rot
 * the codec cannot see): a proving image fails the read of that page
 * with EIO naming it, read alone or page after page (through the
 * read-ahead), and pages before it still read; a reader that does not
 * prove gets the wrong bytes, which is why the mount proves. */
static void test_image_prove_refuses_a_page_with_wrong_content(void **state)
{
	tu_env *env = *state;
	snap_info si = make_snapshot(env, 1024, 6000);
	uint32_t ps = si.page_size, pg = si.page_count - 3;
	int64_t victim = tu_page_id(env->st, si.id, pg);
	int64_t donor = tu_page_id(env->st, si.id, 2);
	char want[32];
	uint8_t *buf = malloc((size_t)ps * 8);
	snap_image *im;
	snap_err e;
	ssize_t r = 0;
	uint64_t off;

	assert_non_null(buf);
	assert_true(pg > 64 && victim != donor);
	tu_swap_page_data(env->st, victim, donor);
	snprintf(want, sizeof(want), "page %u ", pg);

	/* Not proving: the damaged page reads, wrongly. */
	im = open_image(env->st, si.id);
	snap_err_clear(&e);
	assert_int_equal(snap_image_read(im, buf, ps, (uint64_t)(pg - 1) * ps,
					 &e), (ssize_t)ps);
	snap_image_close(im);

	/* Proving, the page alone. */
	im = open_image(env->st, si.id);
	snap_image_prove(im, 1);
	snap_err_clear(&e);
	assert_int_equal(snap_image_read(im, buf, 100,
					 (uint64_t)(pg - 1) * ps + 10, &e),
			 -EIO);
	assert_non_null(strstr(e.msg, want));
	assert_non_null(strstr(e.msg, "does not match its hash"));
	assert_int_equal(snap_image_read(im, buf, ps, 0, &e), (ssize_t)ps);
	snap_image_close(im);

	/* Proving, page after page as cp reads (the read-ahead decodes
	 * ahead): every read before the damaged page succeeds, the one
	 * that holds it fails. */
	im = open_image(env->st, si.id);
	snap_image_prove(im, 1);
	for (off = 0; off < si.image_size; off += (uint64_t)ps * 8) {
		snap_err_clear(&e);
		r = snap_image_read(im, buf, (size_t)ps * 8, off, &e);
		if (r < 0)
			break;
		assert_true(off + (uint64_t)r <= (uint64_t)(pg - 1) * ps);
	}
	assert_int_equal(r, -EIO);
	assert_true(off <= (uint64_t)(pg - 1) * ps &&
		    (uint64_t)(pg - 1) * ps < off + (uint64_t)ps * 8);
	assert_non_null(strstr(e.msg, want));
	snap_image_close(im);
	free(buf);
}

/* Snapshot b is deleted (by another process: nothing tells the reader)
 * while an image of it is open, and the page ids it alone used are given
 * to the pages of a new snapshot c.  Reads of b after that fail with EIO
 * saying it was deleted; they gave c's pages, which match their stored
 * hashes, so proving pages could not tell. */
static void test_image_of_a_snapshot_deleted_while_read_is_eio(void **state)
{
	tu_env *env = *state;
	snap_store *st = tu_live_store(env, "delete", 1024, 600);
	snap_info a = tu_snap(st, "a"), b, c;
	sqlite3 *db = tu_open(env->db);
	snap_image *im;
	snap_err e;
	uint8_t buf[1024];
	uint32_t pg, p;
	int64_t bid;
	int reused = 0;

	tu_db_insert(db, 601, 900);
	b = tu_snap(st, "b");
	pg = tu_unique_page(st, a.id, b.id);
	bid = tu_page_id(st, b.id, pg);
	im = open_image(st, b.id);
	snap_image_prove(im, 1);
	snap_err_clear(&e);
	assert_int_equal(snap_image_read(im, buf, sizeof(buf), 0, &e),
			 (ssize_t)sizeof(buf));
	assert_int_equal(snap_store_delete(st, b.id, &e), 0);
	tu_exec(db, "DELETE FROM t WHERE id > 600");
	tu_db_insert(db, 601, 900);
	tu_exec(db, "UPDATE t SET pad = 'other-' || id WHERE id > 600");
	c = tu_snap(st, "c");
	for (p = 1; p <= c.page_count; p++)
		reused |= tu_page_id(st, c.id, p) == bid;
	assert_true(reused);   /* else this test proves nothing */
	snap_err_clear(&e);
	assert_int_equal(snap_image_read(im, buf, sizeof(buf),
					 (uint64_t)(pg - 1) * 1024, &e), -EIO);
	assert_non_null(strstr(e.msg, "deleted while it was being read"));
	assert_non_null(strstr(e.msg, b.name));
	snap_image_close(im);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_image_equals_a_backup_copy_but_page1_counters),
		tu_test(test_image_reads_arbitrary_ranges),
		tu_test(test_image_read_page_gives_page_and_its_hash),
		tu_test(test_image_pages_unchanged_between_snapshots_share_ids),
		tu_test(test_image_sqlite_open_queries_rows_read_only),
		tu_test(test_image_export_is_a_standalone_database),
		tu_test(test_image_export_into_a_missing_dir_fails),
		tu_test(test_image_of_unknown_snapshot_is_enoent),
		tu_test(test_image_of_512_byte_pages),
		tu_test(test_image_of_65536_byte_pages),
		tu_test(test_images_are_read_by_several_threads_at_once),
		tu_test(test_image_of_a_damaged_catalog_row_is_refused),
		tu_test(test_image_export_of_a_database_that_changed_shape),
		tu_test(test_image_export_of_a_damaged_page_leaves_nothing),
		tu_test(test_image_prove_refuses_a_page_with_wrong_content),
		tu_test(test_image_of_a_snapshot_deleted_while_read_is_eio),
	};
	return cmocka_run_group_tests_name("image", tests, NULL, NULL);
}
