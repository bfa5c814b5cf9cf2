/*
 * tests/fuzz/fuzz_import.c — a database file offered for import or restore.
 *
 * `snapctl import FILE`, `snapctl restore FILE`, `cp FILE
 * snapshots/` and `cp FILE current.db` all hand the engine a file anybody
 * may have written.  Before anything is stored it runs
 * snap_snapshot_check_file()'s checks (header magic, page size, size
 * against the header's page count, then SQLite opens it and runs
 * integrity_check); snap_snapshot_import() runs the same and captures the
 * file into the store.  The input is the file (at most 64 KiB, so
 * integrity_check stays fast).  Both must answer 0 or a negative errno
 * with a message, and agree on whether the file is acceptable; a refused
 * import adds nothing to the catalog, an accepted one one snapshot.  A file
 * they accept is a snapshot that must pass full verification (pages,
 * hashes, SHA-256, integrity_check through the store), read back as an
 * image of its catalog size, and delete cleanly.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "fuzzutil.h"

#define MAX_FILE 65536

static snap_store *store;
static char file[PATH_MAX];

static void setup(void)
{
	char db[PATH_MAX];
	snap_err err;

	fz_make_db(fz_path(db, "live.db"), 1024, 4);
	fz_path(file, "offered.db");
	snap_err_clear(&err);
	if (snap_store_open(db, NULL, SNAP_OPEN_CREATE, &store, &err)) {
		fprintf(stderr, "fuzz setup: %s\n", err.msg);
		abort();
	}
}

/* Read the whole image of an accepted snapshot back. */
static void read_back(const snap_info *si)
{
	snap_image *im = NULL;
	snap_err err;
	static uint8_t buf[MAX_FILE + 65536];
	ssize_t n;
	int rc;

	snap_err_clear(&err);
	rc = snap_image_open(store, si->id, &im, &err);
	FZ_CHECK(rc == 0, "image of %s: %s", si->name, err.msg);
	FZ_CHECK(snap_image_size(im) == si->image_size &&
		 si->image_size == (uint64_t)si->page_size * si->page_count,
		 "image of %s has an odd size", si->name);
	n = snap_image_read(im, buf, sizeof(buf), 0, &err);
	FZ_CHECK(n >= 0 && (uint64_t)n == (si->image_size < sizeof(buf) ?
					   si->image_size : sizeof(buf)),
		 "read %zd of %s: %s", n, si->name, err.msg);
	snap_image_close(im);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	snap_info si;
	snap_err err;
	int64_t before = 0, after = 0;
	int checked, imported, rc;

	if (size > MAX_FILE)
		return -1;      /* not added to the corpus */
	if (!store)
		setup();
	unlink(file);
	fz_write_file(file, data, size);

	snap_err_clear(&err);
	checked = snap_snapshot_check_file(file, &err);
	FZ_CHECK_RC(checked, err);

	FZ_CHECK(snap_store_count(store, &before, &err) == 0, "%s", err.msg);
	snap_err_clear(&err);
	imported = snap_snapshot_import(store, file, NULL, &si, &err);
	FZ_CHECK_RC(imported, err);
	FZ_CHECK(snap_store_count(store, &after, &err) == 0, "%s", err.msg);
	FZ_CHECK(after == before + (imported == 0), "import %s (%d) left %lld "
		 "snapshots, %lld before", imported ? "refused" : "accepted",
		 imported, (long long)after, (long long)before);
	FZ_CHECK((checked == 0) == (imported == 0), "check says %d (%s), "
		 "import says %d (%s)", checked, checked ? "refused" : "ok",
		 imported, err.msg);
	if (imported == 0) {
		FZ_CHECK(si.kind == SNAP_KIND_IMPORT && si.page_size >= 512 &&
			 si.page_size <= 65536 &&
			 !(si.page_size & (si.page_size - 1)),
			 "import of %zu bytes gave kind %d, page size %u",
			 size, si.kind, si.page_size);
		snap_err_clear(&err);
		rc = snap_verify_snapshot(store, si.id, SNAP_VERIFY_FULL, NULL,
					  NULL, &err);
		FZ_CHECK(rc == 0, "an accepted import fails verification: %s",
			 err.msg);
		read_back(&si);
		rc = snap_store_delete(store, si.id, &err);
		FZ_CHECK(rc == 0, "delete of an import: %s", err.msg);
	}
	/* Each import records an event; keep the store small. */
	fz_trim_events(store);
	return 0;
}
