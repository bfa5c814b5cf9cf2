/*
 * tests/fuzz/fuzz_codec.c — page maps and compressed pages as the store
 * gives them back (engine/codec.c).
 *
 * A store file is data on a disk: a page map (a zstd frame of page-id
 * deltas) or a stored page (zstd, or raw when its length equals the page
 * size) may be damaged or hostile.  The first input byte picks what the
 * rest is:
 *   0  a page-map blob, after a 32-bit page count (the catalog's
 *      page_count, any value): snap_map_decode() must decode exactly that
 *      many ids or fail with -EIO/-ENOMEM, and never allocate for a count
 *      the blob cannot hold; what decodes must encode and decode the same.
 *   1  page ids: encode, then decode with the right count (the same ids)
 *      and with a wrong one (a failure).
 *   2  a stored page for a page size from the next byte: snap_codec_unpack()
 *      into a buffer of exactly that size gives 0, -EIO, or -ENOKEY (a
 *      frame naming a dictionary the codec does not have), and never
 *      writes past it.
 *   3  page bytes: pack, then unpack gives them back.
 */
#include <errno.h>
#include <string.h>

#include "codec.h"
#include "fuzzutil.h"

static snap_codec codec;
static int have_codec;

/* Page sizes SQLite allows, and a few it does not. */
static size_t page_size_of(uint8_t b)
{
	static const size_t odd[] = { 1, 100, 511, 4095, 65535 };

	if (b & 0x80)
		return odd[b % 5];
	return (size_t)512 << (b % 8);
}

static void map_decode(fz_in *in)
{
	uint32_t n = fz_u32(in);
	int64_t *ids = NULL, *back = NULL;
	void *blob = NULL;
	size_t bloblen = 0;
	int rc = snap_map_decode(in->p, in->left, n, &ids);

	FZ_CHECK(rc == 0 || rc == -EIO || rc == -ENOMEM, "decode: %d", rc);
	if (rc)
		return;
	rc = snap_map_encode(ids, n, &blob, &bloblen);
	FZ_CHECK(rc == 0, "encode of a decoded map: %d", rc);
	rc = snap_map_decode(blob, bloblen, n, &back);
	FZ_CHECK(rc == 0 && memcmp(ids, back, (size_t)n * 8) == 0,
		 "map of %u ids does not survive encode+decode", n);
	free(ids);
	free(back);
	free(blob);
}

static void map_roundtrip(fz_in *in)
{
	uint32_t n = (uint32_t)(in->left / 8), i;
	int64_t *ids = malloc(((size_t)n + 1) * 8), *back = NULL;
	void *blob = NULL;
	size_t bloblen = 0;
	int rc;

	FZ_CHECK(ids != NULL, "out of memory");
	for (i = 0; i < n; i++)
		ids[i] = (int64_t)fz_u64(in);
	rc = snap_map_encode(ids, n, &blob, &bloblen);
	FZ_CHECK(rc == 0, "encode of %u ids: %d", n, rc);
	rc = snap_map_decode(blob, bloblen, n, &back);
	FZ_CHECK(rc == 0 && memcmp(ids, back, (size_t)n * 8) == 0,
		 "%u ids do not survive encode+decode", n);
	free(back);
	back = NULL;
	rc = snap_map_decode(blob, bloblen, n + 1, &back);
	FZ_CHECK(rc != 0 && back == NULL, "a map of %u ids decodes as %u", n,
		 n + 1);
	if (n) {
		rc = snap_map_decode(blob, bloblen, n - 1, &back);
		FZ_CHECK(rc != 0 && back == NULL, "a map of %u ids decodes "
			 "as %u", n, n - 1);
	}
	free(ids);
	free(blob);
}

static void page_decode(fz_in *in)
{
	size_t len = page_size_of(fz_u8(in));
	uint8_t *dst = malloc(len);
	int rc;

	FZ_CHECK(dst != NULL, "out of memory");
	rc = snap_codec_unpack(&codec, in->p, in->left, dst, len);
	FZ_CHECK(rc == 0 || rc == -EIO || rc == -ENOKEY, "unpack: %d", rc);
	FZ_CHECK(rc || in->left != len || memcmp(dst, in->p, len) == 0,
		 "a raw page is not copied as it is");
	free(dst);
}

static void page_roundtrip(fz_in *in)
{
	size_t len = page_size_of(fz_u8(in)), cap = ZSTD_compressBound(len), z;
	uint8_t *page = calloc(1, len), *buf = malloc(cap), *back = malloc(len);
	int rc;

	FZ_CHECK(page && buf && back, "out of memory");
	/* The input, repeated: pages of real databases repeat a lot. */
	if (in->left)
		for (z = 0; z < len; z++)
			page[z] = in->p[z % in->left];
	z = snap_codec_pack(&codec, page, len, buf, cap);
	FZ_CHECK(z > 0 && z <= len, "packed %zu bytes into %zu", len, z);
	rc = snap_codec_unpack(&codec, buf, z, back, len);
	FZ_CHECK(rc == 0 && memcmp(page, back, len) == 0,
		 "a page of %zu bytes does not survive pack+unpack", len);
	free(page);
	free(buf);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in;

	if (!have_codec) {
		FZ_CHECK(snap_codec_init(&codec) == 0, "codec init");
		have_codec = 1;
	}
	fz_in_init(&in, data, size);
	switch (fz_u8(&in) % 4) {
	case 0: map_decode(&in); break;
	case 1: map_roundtrip(&in); break;
	case 2: page_decode(&in); break;
	default: page_roundtrip(&in); break;
	}
	return 0;
}
