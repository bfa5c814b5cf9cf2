/*
 * tests/unit/test_err.c — engine/err.h: the one SQLite-to-errno mapping,
 * message formatting, prefixing, and that messages never overflow.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_sqlite_busy_maps_to_ebusy(void **state)
{
	(void)state;
	assert_int_equal(snap_err_sqlite_errno(SQLITE_BUSY), -EBUSY);
	/* Extended codes map like their primary code. */
	assert_int_equal(snap_err_sqlite_errno(SQLITE_BUSY_SNAPSHOT), -EBUSY);
	assert_int_equal(snap_err_sqlite_errno(SQLITE_BUSY_RECOVERY), -EBUSY);
}

static void test_sqlite_full_maps_to_enospc(void **state)
{
	(void)state;
	assert_int_equal(snap_err_sqlite_errno(SQLITE_FULL), -ENOSPC);
}

static void test_sqlite_notadb_maps_to_einval(void **state)
{
	(void)state;
	assert_int_equal(snap_err_sqlite_errno(SQLITE_NOTADB), -EINVAL);
}

static void test_sqlite_corrupt_maps_to_eio_or_ebadmsg(void **state)
{
	(void)state;
	int rc = snap_err_sqlite_errno(SQLITE_CORRUPT);
	assert_true(rc == -EIO || rc == -EBADMSG);
	int rc2 = snap_err_sqlite_errno(SQLITE_CORRUPT_INDEX);
	assert_int_equal(rc2, rc);
}

static void test_sqlite_ioerr_maps_to_eio(void **state)
{
	(void)state;
	assert_int_equal(snap_err_sqlite_errno(SQLITE_IOERR), -EIO);
	assert_int_equal(snap_err_sqlite_errno(SQLITE_IOERR_WRITE), -EIO);
	assert_int_equal(snap_err_sqlite_errno(SQLITE_IOERR_FSYNC), -EIO);
}

static void test_sqlite_nomem_maps_to_enomem(void **state)
{
	(void)state;
	assert_int_equal(snap_err_sqlite_errno(SQLITE_NOMEM), -ENOMEM);
}

static void test_every_sqlite_error_maps_to_a_negative_errno(void **state)
{
	(void)state;
	/* Every primary error code from SQLITE_ERROR to SQLITE_NOTADB. */
	for (int rc = SQLITE_ERROR; rc <= SQLITE_NOTADB; rc++) {
		int e = snap_err_sqlite_errno(rc);
		if (e >= 0)
			fail_msg("SQLite code %d (%s) mapped to %d", rc,
				 sqlite3_errstr(rc), e);
		assert_true(e > -4096);
	}
}

static void test_err_set_returns_code_and_formats_message(void **state)
{
	(void)state;
	snap_err e;
	snap_err_clear(&e);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.msg, "");
	int rc = snap_err_set(&e, -ENOENT, "no snapshot %s (%d)", "x.db", 42);
	assert_int_equal(rc, -ENOENT);
	assert_int_equal(e.code, -ENOENT);
	assert_string_equal(e.msg, "no snapshot x.db (42)");
}

static void test_err_set_replaces_the_previous_message(void **state)
{
	(void)state;
	snap_err e;
	snap_err_clear(&e);
	snap_err_set(&e, -EIO, "first failure with a long text");
	snap_err_set(&e, -EBUSY, "second");
	assert_int_equal(e.code, -EBUSY);
	assert_string_equal(e.msg, "second");
}

static void test_err_set_accepts_null_record(void **state)
{
	(void)state;
	assert_int_equal(snap_err_set(NULL, -EINVAL, "nobody listens %d", 1),
			 -EINVAL);
	snap_err_clear(NULL);
	snap_err_prefix(NULL, "ctx");
	assert_int_equal(snap_err_sqlite(NULL, NULL, SQLITE_BUSY, "x"), -EBUSY);
}

static void test_err_clear_empties_a_record(void **state)
{
	(void)state;
	snap_err e;
	snap_err_set(&e, -EIO, "something");
	snap_err_clear(&e);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.msg, "");
}

static void test_err_long_message_is_truncated_not_overflowed(void **state)
{
	(void)state;
	struct {
		snap_err e;
		char guard[64];
	} g;
	memset(g.guard, 0x5a, sizeof(g.guard));
	char big[4 * SNAP_ERR_MSG];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snap_err_set(&g.e, -EIO, "%s", big);
	assert_int_equal(strlen(g.e.msg), SNAP_ERR_MSG - 1);
	for (size_t i = 0; i < sizeof(g.guard); i++)
		assert_int_equal((unsigned char)g.guard[i], 0x5a);
}

static void test_err_sqlite_appends_the_connection_message(void **state)
{
	(void)state;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "SELEC 1", -1, &st, NULL);
	assert_int_equal(rc, SQLITE_ERROR);
	char want[512];
	snprintf(want, sizeof(want), "preparing query 7: %s",
		 sqlite3_errmsg(db));
	snap_err e;
	snap_err_clear(&e);
	int r = snap_err_sqlite(&e, db, rc, "preparing query %d", 7);
	assert_int_equal(r, snap_err_sqlite_errno(rc));
	assert_int_equal(e.code, r);
	assert_string_equal(e.msg, want);
	sqlite3_close(db);
}

static void test_err_sqlite_without_connection_uses_errstr(void **state)
{
	(void)state;
	snap_err e;
	snap_err_clear(&e);
	int r = snap_err_sqlite(&e, NULL, SQLITE_BUSY, "opening %s", "a.db");
	assert_int_equal(r, -EBUSY);
	assert_int_equal(e.code, -EBUSY);
	char want[256];
	snprintf(want, sizeof(want), "opening a.db: %s",
		 sqlite3_errstr(SQLITE_BUSY));
	assert_string_equal(e.msg, want);
}

static void test_err_sqlite_maps_extended_code_of_connection(void **state)
{
	(void)state;
	/* A real SQLITE_NOTADB from a file that is not a database. */
	char path[] = "/tmp/snapfs-unit-notadb-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	char junk[4096];
	memset(junk, 'j', sizeof(junk));
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);
	sqlite3 *db = NULL;
	sqlite3_open(path, &db);
	int rc = sqlite3_exec(db, "SELECT * FROM sqlite_schema", NULL, NULL, NULL);
	snap_err e;
	snap_err_clear(&e);
	int r = snap_err_sqlite(&e, db, rc, "reading %s", path);
	sqlite3_close(db);
	unlink(path);
	assert_int_equal(rc, SQLITE_NOTADB);
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, sqlite3_errstr(SQLITE_NOTADB)));
}

static void test_err_prefix_adds_context_before_the_message(void **state)
{
	(void)state;
	snap_err e;
	snap_err_clear(&e);
	snap_err_set(&e, -EBADMSG, "page 3 hash mismatch");
	snap_err_prefix(&e, "restore of %s", "a.db");
	assert_string_equal(e.msg, "restore of a.db: page 3 hash mismatch");
	assert_int_equal(e.code, -EBADMSG);
	snap_err_prefix(&e, "mount");
	assert_string_equal(e.msg, "mount: restore of a.db: page 3 hash mismatch");
}

static void test_err_prefix_of_a_full_message_stays_terminated(void **state)
{
	(void)state;
	snap_err e;
	char big[SNAP_ERR_MSG];
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snap_err_set(&e, -EIO, "%s", big);
	snap_err_prefix(&e, "context %d", 12);
	assert_true(strlen(e.msg) <= SNAP_ERR_MSG - 1);
	assert_memory_equal(e.msg, "context 12: ", 12);
	assert_int_equal(e.code, -EIO);
}

static void test_err_suffix_adds_detail_after_the_message(void **state)
{
	(void)state;
	snap_err e;
	char big[SNAP_ERR_MSG];

	snap_err_set(&e, -ENOSPC, "disk full");
	snap_err_suffix(&e, " (needs %d MB)", 12);
	assert_string_equal(e.msg, "disk full (needs 12 MB)");
	assert_int_equal(e.code, -ENOSPC);
	snap_err_suffix(NULL, "x");
	memset(big, 'm', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snap_err_set(&e, -EIO, "%s", big);
	snap_err_suffix(&e, " more");
	assert_int_equal(strlen(e.msg), SNAP_ERR_MSG - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_sqlite_busy_maps_to_ebusy),
		tu_test(test_sqlite_full_maps_to_enospc),
		tu_test(test_sqlite_notadb_maps_to_einval),
		tu_test(test_sqlite_corrupt_maps_to_eio_or_ebadmsg),
		tu_test(test_sqlite_ioerr_maps_to_eio),
		tu_test(test_sqlite_nomem_maps_to_enomem),
		tu_test(test_every_sqlite_error_maps_to_a_negative_errno),
		tu_test(test_err_set_returns_code_and_formats_message),
		tu_test(test_err_set_replaces_the_previous_message),
		tu_test(test_err_set_accepts_null_record),
		tu_test(test_err_clear_empties_a_record),
		tu_test(test_err_long_message_is_truncated_not_overflowed),
		tu_test(test_err_sqlite_appends_the_connection_message),
		tu_test(test_err_sqlite_without_connection_uses_errstr),
		tu_test(test_err_sqlite_maps_extended_code_of_connection),
		tu_test(test_err_prefix_adds_context_before_the_message),
		tu_test(test_err_prefix_of_a_full_message_stays_terminated),
		tu_test(test_err_suffix_adds_detail_after_the_message),
	};
	return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
