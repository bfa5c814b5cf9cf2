/*
 * tests/unit/fsutil.h — the daemon's state for the unit tests of fs/
 * (test_fs_*.c): its staging directory in the test's own directory, and
 * everything it opened undone at teardown.
 */
#ifndef TESTS_UNIT_FSUTIL_H
#define TESTS_UNIT_FSUTIL_H

/* cmocka setup: tu_setup, then snap_fs.staging_dir = the test's dir. */
int fsu_setup(void **state);
/* cmocka teardown: the sessions, nodes, live view and store the test left
 * (as main.c's shutdown), then tu_teardown. */
int fsu_teardown(void **state);

/* cmocka_unit_test_setup_teardown with the fsu fixture. */
#define fsu_test(f) cmocka_unit_test_setup_teardown(f, fsu_setup, fsu_teardown)

#endif /* TESTS_UNIT_FSUTIL_H */
