/*
 * tests/fuzz/fuzzutil.h — what the libFuzzer targets share.
 *
 * Each target (fuzz_<what>.c) defines LLVMFuzzerTestOneInput and feeds one
 * input to one part of the engine that reads bytes it did not write: a
 * database file offered for import, a store's catalog rows, page maps and
 * compressed pages, option values, snapshot labels and names.  The engine
 * must answer every input with 0 or a negative errno and a message; a
 * crash, a sanitizer report, a leak, a hang, or a broken invariant (checked
 * with FZ_CHECK, which aborts naming the invariant) is a bug in the engine.
 *
 * Files a target needs live in one scratch directory per process, made
 * under $SNAPFS_FUZZ_DIR, else /dev/shm when it exists (tmpfs: an fsync
 * costs nothing), removed at a normal exit (tools/fuzz.sh points
 * SNAPFS_FUZZ_DIR into its own directory, which it removes even after a
 * crash).  Nothing here sleeps or depends on the clock.
 *
 * The fz_in reader turns the fuzzer's bytes into structured values; it
 * never fails: past the end it gives zeros and empty strings, so every
 * input is a valid program for the target.
 */
#ifndef TESTS_FUZZ_FUZZUTIL_H
#define TESTS_FUZZ_FUZZUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "snapfs.h"

/* Abort (a crash libFuzzer records with its input) when cond is false. */
#define FZ_CHECK(cond, ...)                                              \
	do {                                                             \
		if (!(cond)) {                                           \
			fprintf(stderr, "fuzz invariant broken at %s:%d: " \
				"%s: ", __FILE__, __LINE__, #cond);      \
			fprintf(stderr, __VA_ARGS__);                    \
			fputc('\n', stderr);                             \
			abort();                                         \
		}                                                        \
	} while (0)

/* An engine call's result: 0, or a negative errno with a message. */
#define FZ_CHECK_RC(rc, err)                                             \
	FZ_CHECK((rc) == 0 || ((rc) < 0 && (rc) > -4096 &&               \
			       (err).msg[0] != '\0'),                    \
		 "rc %d without a message (\"%s\")", (int)(rc), (err).msg)

/* The process's scratch directory (made on first use, removed at exit). */
const char *fz_dir(void);
/* "<fz_dir()>/<name>" into out (PATH_MAX bytes); returns out. */
char *fz_path(char *out, const char *name);
/* Replace the file at path with exactly n bytes of data; aborts on error. */
void fz_write_file(const char *path, const void *data, size_t n);
/* Copy a file; aborts on error. */
void fz_copy_file(const char *from, const char *to);
/* Remove a directory tree (best effort). */
void fz_rmrf(const char *path);

/* Run SQL on an open connection; aborts on error (harness setup only). */
void fz_exec(sqlite3 *db, const char *sql);
/* Every 4096th call, empty the store's event history: a target that
 * records an event per input would otherwise grow the store forever. */
void fz_trim_events(snap_store *s);
/* A small live database at path: a table with an index, a few pages of
 * rows, page size ps (rollback journal mode). */
void fz_make_db(const char *path, int ps, int rows);

/* A reader over the fuzzer's bytes. */
typedef struct fz_in {
	const uint8_t *p;
	size_t left;
} fz_in;

static inline void fz_in_init(fz_in *in, const uint8_t *data, size_t n)
{
	in->p = data;
	in->left = n;
}

uint8_t fz_u8(fz_in *in);
uint32_t fz_u32(fz_in *in);
uint64_t fz_u64(fz_in *in);
/* Up to max bytes, length from the input; *len gets it; the pointer is
 * into the input (NULL when *len is 0). */
const uint8_t *fz_bytes(fz_in *in, size_t max, size_t *len);
/* A NUL-terminated string of at most cap-1 bytes (no NUL inside). */
void fz_str(fz_in *in, char *out, size_t cap);

#endif /* TESTS_FUZZ_FUZZUTIL_H */
