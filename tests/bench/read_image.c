/*
 * tests/bench/read_image.c — read a whole snapshot image through the
 * engine's read call (snap_image_read) and report the throughput.
 *
 *   bench_read_image [--db FILE] [--store DIR] NAME [CHUNK_KiB...]
 *
 * For each chunk size (default 1024 and 128 KiB: the FUSE read size) the
 * image is opened, read from offset 0 to the end in chunks of that size into
 * one buffer (nothing is written anywhere) and closed; one line per chunk:
 *
 *   chunk=1024KiB bytes=1073741824 seconds=1.234 MBps=870.1 sha256=...
 *
 * sha256 is printed only with --sha (it costs as much as the read), so the
 * default measures the read call alone.  A benchmark helper, not a test.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "snapfs.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(void)
{
	fprintf(stderr, "usage: bench_read_image [--db FILE] [--store DIR] "
		"[--sha] NAME [CHUNK_KiB...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *db = NULL, *dir = NULL, *name = NULL;
	size_t chunks[16];
	int nchunks = 0, sha = 0, i;
	snap_store *s = NULL;
	snap_info si;
	snap_err err;

	snap_err_clear(&err);
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--db") && i + 1 < argc)
			db = argv[++i];
		else if (!strcmp(argv[i], "--store") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--sha"))
			sha = 1;
		else if (argv[i][0] == '-')
			return usage();
		else if (!name)
			name = argv[i];
		else if (nchunks < 16)
			chunks[nchunks++] = (size_t)strtoul(argv[i], NULL, 10)
					    * 1024;
	}
	if (!name || (!db && !dir))
		return usage();
	if (!nchunks) {
		chunks[nchunks++] = 1024 * 1024;
		chunks[nchunks++] = 128 * 1024;
	}
	if (snap_store_open(db, dir, 0, &s, &err) ||
	    snap_store_find(s, name, &si, &err)) {
		fprintf(stderr, "bench_read_image: %s\n", err.msg);
		snap_store_close(s);
		return 1;
	}
	for (i = 0; i < nchunks; i++) {
		size_t chunk = chunks[i];
		char *buf = malloc(chunk ? chunk : 1);
		snap_image *im = NULL;
		uint64_t off = 0;
		EVP_MD_CTX *md = sha ? EVP_MD_CTX_new() : NULL;
		unsigned char h[32];
		char hex[65];
		double t0, t;

		if (!buf || !chunk) {
			fprintf(stderr, "bench_read_image: bad chunk size\n");
			return 2;
		}
		if (md)
			EVP_DigestInit_ex(md, EVP_sha256(), NULL);
		t0 = now();
		if (snap_image_open(s, si.id, &im, &err)) {
			fprintf(stderr, "bench_read_image: %s\n", err.msg);
			return 1;
		}
		for (;;) {
			ssize_t n = snap_image_read(im, buf, chunk, off, &err);

			if (n < 0) {
				fprintf(stderr, "bench_read_image: %s\n",
					err.msg);
				return 1;
			}
			if (n == 0)
				break;
			if (md)
				EVP_DigestUpdate(md, buf, (size_t)n);
			off += (uint64_t)n;
		}
		snap_image_close(im);
		t = now() - t0;
		printf("chunk=%zuKiB bytes=%" PRIu64 " seconds=%.3f MBps=%.1f",
		       chunk / 1024, off, t, (double)off / 1e6 / t);
		if (md) {
			EVP_DigestFinal_ex(md, h, NULL);
			EVP_MD_CTX_free(md);
			snap_hex(h, hex);
			printf(" sha256=%s", hex);
		}
		printf("\n");
		fflush(stdout);
		free(buf);
	}
	snap_store_close(s);
	return 0;
}
