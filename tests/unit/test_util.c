/*
 * tests/unit/test_util.c — engine/util.h's growable array and the pieces of
 * engine/units.h that retention's tests do not reach directly (digits, the
 * size formatter); engine/sys.h's write-behind writer.
 */
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "sys.h"
#include "units.h"
#include "util.h"

static void test_array_grows_from_first_then_doubles(void **state)
{
	(void)state;
	int64_t *v = NULL;
	size_t cap = 0, n;

	for (n = 0; n < 100; n++) {
		assert_int_equal(snap_array_grow(&v, &cap, n, sizeof(*v), 8), 0);
		assert_true(cap > n);
		v[n] = (int64_t)n * 3;
		if (n < 8)
			assert_int_equal(cap, 8);
	}
	assert_int_equal(cap, 128);
	for (n = 0; n < 100; n++)
		assert_int_equal(v[n], (int64_t)n * 3);
	free(v);
}

static void test_array_with_room_is_left_alone(void **state)
{
	(void)state;
	char *v = malloc(4), *before = v;
	size_t cap = 4;

	assert_int_equal(snap_array_grow(&v, &cap, 3, 1, 16), 0);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 4);
	free(v);
}

static void test_array_too_large_is_enomem_unchanged(void **state)
{
	(void)state;
	char *v = malloc(16), *before = v;
	size_t cap = SIZE_MAX / 32 + 1;    /* doubling overflows size * cap */

	assert_int_equal(snap_array_grow(&v, &cap, cap, 16, 8), -ENOMEM);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, SIZE_MAX / 32 + 1);
	free(v);
}

static void test_digits_stop_at_the_first_non_digit(void **state)
{
	(void)state;
	const char *s = "1234x", *p = s;
	uint64_t v = 0;

	assert_int_equal(snap_digits_parse(&p, &v), 0);
	assert_int_equal(v, 1234);
	assert_ptr_equal(p, s + 4);
	p = "x1";
	assert_int_equal(snap_digits_parse(&p, &v), -EINVAL);
	p = "18446744073709551616";        /* UINT64_MAX + 1 */
	assert_int_equal(snap_digits_parse(&p, &v), -EINVAL);
}

static void test_size_format_reads_back(void **state)
{
	(void)state;
	const uint64_t sizes[] = { 0, 1000, 1024, 1536 * 1024,
				   10ull << 20, 3ull << 40, 5ull << 50 };
	char out[48];
	uint64_t back;
	size_t i;

	snap_size_format(10ull << 20, out, sizeof(out));
	assert_string_equal(out, "10M");
	snap_size_format(1536 * 1024, out, sizeof(out));
	assert_string_equal(out, "1536K");
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snap_size_format(sizes[i], out, sizeof(out));
		assert_int_equal(snap_size_parse(out, &back), 0);
		assert_int_equal(back, sizes[i]);
	}
}

/* write_behind writes every byte, counts them, and hands them to the
 * writeback every SNAP_WRITE_BEHIND bytes (the hand-over point moves). */
static void test_write_behind_counts_and_hands_over(void **state)
{
	(void)state;
	char path[] = "/tmp/snapfs-wb-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t chunk = 1u << 20, n = 2 * SNAP_WRITE_BEHIND / chunk + 3;
	uint8_t *buf = malloc(chunk), *back = malloc(chunk);
	off_t written = 0, flushed = 0;
	for (size_t i = 0; i < n; i++) {
		memset(buf, (int)i, chunk);
		assert_int_equal(snap_sys_write_behind(fd, buf, chunk, &written,
						       &flushed), 0);
		assert_int_equal(written, (off_t)((i + 1) * chunk));
		assert_true(written - flushed < (off_t)SNAP_WRITE_BEHIND);
	}
	assert_int_equal(flushed, 2 * (off_t)SNAP_WRITE_BEHIND);
	for (size_t i = 0; i < n; i++) {
		memset(buf, (int)i, chunk);
		assert_int_equal(pread(fd, back, chunk, (off_t)(i * chunk)),
				 (ssize_t)chunk);
		assert_memory_equal(back, buf, chunk);
	}
	close(fd);
	unlink(path);
	free(buf);
	free(back);
}

/* mountinfo's octal escapes undone: a space, a tab, a newline, a
 * backslash; anything that is not three octal digits is left alone. */
static void test_octal_unescape(void **state)
{
	(void)state;
	char a[] = "/mnt/my\\040app\\011x\\012y\\134z";
	snap_octal_unescape(a);
	assert_string_equal(a, "/mnt/my app\tx\ny\\z");
	char b[] = "\\04 \\8aa \\400 end\\";
	snap_octal_unescape(b);
	assert_string_equal(b, "\\04 \\8aa \\400 end\\");
}

/* Text another user chose is printed without a control character: C0,
 * DEL, C1 (U+0080-U+009F, the 8-bit CSI), bytes that are not UTF-8 (a
 * lone 0x9b, an overlong or cut sequence) become '?'; UTF-8 stays. */
static void test_text_safe(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(snap_text_safe("plain é 日本 \xf0\x9f\x98\x80",
					   out, sizeof(out)),
			    "plain é 日本 \xf0\x9f\x98\x80");
	assert_string_equal(snap_text_safe("a\x1b[2Jb\x07" "c\x7f\td", out,
					   sizeof(out)), "a?[2Jb?c??d");
	assert_string_equal(snap_text_safe("\xc2\x9b" "31m|\x9b|\xc0\xaf|\xe6\x97",
					   out, sizeof(out)), "?31m|?|?|?");
	/* Cut at cap, never inside a character. */
	assert_string_equal(snap_text_safe("ab日", out, 4), "ab");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_array_grows_from_first_then_doubles),
		cmocka_unit_test(test_array_with_room_is_left_alone),
		cmocka_unit_test(test_array_too_large_is_enomem_unchanged),
		cmocka_unit_test(test_digits_stop_at_the_first_non_digit),
		cmocka_unit_test(test_size_format_reads_back),
		cmocka_unit_test(test_write_behind_counts_and_hands_over),
		cmocka_unit_test(test_octal_unescape),
		cmocka_unit_test(test_text_safe),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
