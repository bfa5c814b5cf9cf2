/*
 * tests/fuzz/fuzz_label.c — snapshot labels and names.
 *
 * The input is a label as a user types it (touch snapshots/LABEL, mv to a
 * new name, snapctl create --label L): every byte up to the first NUL.
 * snap_label_sanitize() must give a label that is safe as part of a file
 * name in snapshots/ and stable:
 *   - only [A-Za-z0-9._-], never empty, at most SNAP_LABEL_MAX bytes;
 *   - never "." or "..", never a leading dot (no hidden names);
 *   - idempotent: sanitizing a sanitized label changes nothing, so a
 *     snapshot renamed to its own name keeps its label;
 *   - no trailing ".db" (the name adds it).
 * Then the label goes through the store as a rename would: relabelling a
 * snapshot must give the name "<time>_<label>.db" (the label the sanitizer
 * gave), which is shorter than SNAP_NAME_MAX, never taken by the mount for
 * an SQLite side file (fs/inode.c: names ending in -journal, -wal, -shm)
 * and found again by snap_store_find(), with or without ".db", and passes
 * snap_store_name_check().  Looking up the raw input as a name must answer
 * 0 or -ENOENT with a message.  As an exact name (snap_store_rename), the
 * raw input is taken as it is and found again with or without ".db", or
 * refused with a message (-EINVAL, -ENAMETOOLONG) and nothing changed.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "fuzzutil.h"

static snap_store *store;
static int64_t snap_id;

/* One store with one snapshot, made once per process. */
static void setup(void)
{
	char db[PATH_MAX];
	snap_info si;
	snap_err err;

	fz_make_db(fz_path(db, "live.db"), 1024, 20);
	snap_err_clear(&err);
	if (snap_store_open(db, NULL, SNAP_OPEN_CREATE, &store, &err) ||
	    snap_snapshot_take(store, NULL, &si, &err)) {
		fprintf(stderr, "fuzz setup: %s\n", err.msg);
		abort();
	}
	snap_id = si.id;
}

/* The mount's rule for SQLite side files (fs/inode.c). */
static int is_sidefile(const char *name)
{
	static const char *const sfx[] = { "-journal", "-wal", "-shm" };
	size_t n = strlen(name), i;

	for (i = 0; i < 3; i++) {
		size_t k = strlen(sfx[i]);
		if (n > k && strcmp(name + n - k, sfx[i]) == 0)
			return 1;
	}
	return 0;
}

static void check_label(const char *in, const char *fallback,
			const char *out)
{
	char again[SNAP_LABEL_MAX + 1];
	size_t n = strlen(out), i;

	FZ_CHECK(n > 0, "empty label for \"%s\"", in);
	FZ_CHECK(n <= SNAP_LABEL_MAX, "label of %zu bytes", n);
	for (i = 0; i < n; i++) {
		char c = out[i];
		FZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '.' || c == '_' ||
			 c == '-', "byte 0x%02x in label \"%s\"",
			 (unsigned char)c, out);
	}
	FZ_CHECK(out[0] != '.', "hidden label \"%s\"", out);
	FZ_CHECK(n < 3 || strcmp(out + n - 3, ".db") != 0,
		 "label \"%s\" ends in .db", out);
	snap_label_sanitize(out, fallback, again);
	FZ_CHECK(strcmp(again, out) == 0, "not idempotent: \"%s\" -> \"%s\" "
		 "-> \"%s\"", in, out, again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const fallbacks[] = {
		"manual", "auto", "pre-restore", "import", "snapshot",
	};
	char in[1024], label[SNAP_LABEL_MAX + 1], bare[SNAP_NAME_MAX];
	const char *fallback = fallbacks[size % 5];
	snap_info si, found;
	snap_err err;
	size_t n;
	int rc;

	if (!store)
		setup();
	for (n = 0; n < size && n < sizeof(in) - 1 && data[n]; n++)
		in[n] = (char)data[n];
	in[n] = '\0';

	snap_label_sanitize(in, fallback, label);
	check_label(in, fallback, label);

	/* The raw input as a name to look up. */
	snap_err_clear(&err);
	rc = snap_store_find(store, in, &found, &err);
	FZ_CHECK(rc == 0 || rc == -ENOENT, "find \"%s\": %d %s", in, rc,
		 err.msg);
	FZ_CHECK_RC(rc, err);

	/* The label as a new name for the snapshot. */
	snap_err_clear(&err);
	rc = snap_store_relabel(store, snap_id, in, &si, &err);
	FZ_CHECK(rc == 0, "relabel to \"%s\": %d %s", in, rc, err.msg);
	snap_label_sanitize(in, snap_kind_name(si.kind), label);
	FZ_CHECK(strcmp(si.label, label) == 0, "stored label \"%s\", "
		 "sanitizer says \"%s\"", si.label, label);
	n = strlen(si.name);
	FZ_CHECK(n + 1 < SNAP_NAME_MAX, "name of %zu bytes", n);
	FZ_CHECK(n > strlen(label) + 4 && strcmp(si.name + n - 3, ".db") == 0 &&
		 si.name[n - 4 - strlen(label)] == '_' &&
		 strncmp(si.name + n - 3 - strlen(label), label,
			 strlen(label)) == 0,
		 "name \"%s\" is not <time>_%s.db", si.name, label);
	FZ_CHECK(!strchr(si.name, '/') && !is_sidefile(si.name),
		 "name \"%s\" is not a plain snapshot file name", si.name);
	rc = snap_store_find(store, si.name, &found, &err);
	FZ_CHECK(rc == 0 && found.id == snap_id, "\"%s\" not found: %s",
		 si.name, err.msg);
	snprintf(bare, sizeof(bare), "%.*s", (int)(n - 3), si.name);
	rc = snap_store_find(store, bare, &found, &err);
	FZ_CHECK(rc == 0 && found.id == snap_id, "\"%s\" not found: %s", bare,
		 err.msg);
	rc = snap_store_name_check(si.name, &err);
	FZ_CHECK(rc == 0, "taken name \"%s\" fails the name check: %s",
		 si.name, err.msg);

	/* The raw input as an exact name (mv, snapctl rename): taken
	 * exactly and found again with or without ".db", or refused with a
	 * message and nothing changed. */
	snap_err_clear(&err);
	rc = snap_store_rename(store, snap_id, in, &found, &err);
	FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENAMETOOLONG,
		 "rename to \"%s\": %d %s", in, rc, err.msg);
	FZ_CHECK_RC(rc, err);
	if (rc == 0) {
		n = strlen(in);
		FZ_CHECK(strcmp(found.name, in) == 0 && !strchr(in, '/') &&
			 !is_sidefile(in) && in[0] != '.',
			 "renamed to \"%s\" for \"%s\"", found.name, in);
		snprintf(bare, sizeof(bare), "%.*s", (int)(n - 3), in);
		rc = snap_store_find(store, bare, &found, &err);
		FZ_CHECK(rc == 0 && found.id == snap_id, "\"%s\" not found "
			 "after a rename to \"%s\": %s", bare, in, err.msg);
	} else {
		rc = snap_store_get(store, snap_id, &found, &err);
		FZ_CHECK(rc == 0 && strcmp(found.name, si.name) == 0,
			 "a refused rename changed \"%s\"", si.name);
	}

	/* Each relabel records an event; keep the store small. */
	fz_trim_events(store);
	return 0;
}
