/*
 * tests/unit/test_util.c — engine/util.h's growable array and the pieces of
 * engine/units.h that retention's tests do not reach directly (digits, the
 * size formatter).
 */
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_array_grows_from_first_then_doubles),
		cmocka_unit_test(test_array_with_room_is_left_alone),
		cmocka_unit_test(test_array_too_large_is_enomem_unchanged),
		cmocka_unit_test(test_digits_stop_at_the_first_non_digit),
		cmocka_unit_test(test_size_format_reads_back),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
