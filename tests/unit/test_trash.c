/*
 * tests/unit/test_trash.c — engine/trash.h: a snapshot put into the trash,
 * moved within it, restored unchanged, emptied; names unique per trash
 * directory; the .trashinfo text kept or made; the state in the catalog
 * (survives a reopen, seen by list and find, never by "latest").
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What GLib's g_file_trash() writes for snapshots/NAME on a mount. */
static void glib_info(const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "[Trash Info]\nPath=snapshots/%s\n"
		 "DeletionDate=2026-12-03T21:45:07\n", name);
}

/* Events of a kind whose snapshot is name; the last one's detail. */
static int events_of(snap_store *st, const char *kind, const char *name,
		     char *detail, size_t cap)
{
	snap_event *ev = NULL;
	size_t n = 0;
	int hits = 0;
	snap_err e;

	snap_err_clear(&e);
	assert_int_equal(snap_event_list(st, 0, 0, &ev, &n, &e), 0);
	for (size_t i = 0; i < n; i++)
		if (strcmp(ev[i].kind, kind) == 0 &&
		    strcmp(ev[i].snapshot, name) == 0 && ev[i].ok) {
			hits++;
			if (detail)
				snprintf(detail, cap, "%s", ev[i].detail);
		}
	free(ev);
	return hits;
}

/* The catalog row of id as list() shows it; fails when absent. */
static snap_info listed(snap_store *st, int64_t id)
{
	snap_info *v = NULL, out;
	size_t n = 0, i;
	snap_err e;

	snap_err_clear(&e);
	assert_int_equal(snap_store_list(st, &v, &n, &e), 0);
	for (i = 0; i < n && v[i].id != id; i++)
		;
	if (i == n)
		fail_msg("snapshot %lld is not listed", (long long)id);
	out = v[i];
	free(v);
	return out;
}

/* A store with three snapshots a, b, c of a small database. */
static snap_store *three(tu_env *env, snap_info *a, snap_info *b,
			 snap_info *c)
{
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	*a = tu_snap(st, "a");
	*b = tu_snap(st, "b");
	*c = tu_snap(st, "c");
	return st;
}

static void test_trash_put_then_restore_gives_it_back_unchanged(void **s)
{
	tu_env *env = *s;
	char info[256], detail[SNAP_ERR_MSG], *text = NULL;
	snap_info a, b, out, found;
	snap_err e;

	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 30);
	a = tu_snap(st, "first");
	b = tu_snap(st, "second");
	uint8_t *bytes0;
	size_t len0, len1;
	bytes0 = tu_image_bytes(st, b.id, &len0);

	glib_info(b.name, info, sizeof(info));
	assert_int_equal(snap_trash_put(st, b.id, 1000, b.name, info,
					strlen(info), &out, &e), 0);
	assert_int_equal(out.trash, SNAP_TRASH_FILES);
	assert_int_equal(out.trash_uid, 1000);
	assert_string_equal(out.trash_name, b.name);
	assert_true(out.trashed_ns > 0);

	/* Listed with where it is; found by name; never "latest". */
	found = listed(st, b.id);
	assert_int_equal(found.trash, SNAP_TRASH_FILES);
	assert_int_equal(found.trash_uid, 1000);
	assert_int_equal(listed(st, a.id).trash, SNAP_TRASH_NONE);
	assert_string_equal(listed(st, a.id).trash_name, "");
	assert_int_equal(snap_store_find(st, b.name, &found, &e), 0);
	assert_int_equal(found.trash, SNAP_TRASH_FILES);
	assert_int_equal(snap_store_find(st, "latest", &found, &e), 0);
	assert_int_equal(found.id, a.id);
	assert_int_equal(snap_trash_find(st, 1000, SNAP_TRASH_FILES, b.name,
					 &found, &e), 0);
	assert_int_equal(found.id, b.id);
	assert_int_equal(snap_trash_find(st, 0, SNAP_TRASH_FILES, b.name,
					 &found, &e), -ENOENT);
	assert_int_equal(snap_trash_info(st, b.id, &text, &e), 0);
	assert_string_equal(text, info);          /* what GLib wrote */
	free(text);
	assert_int_equal(events_of(st, "trash", b.name, detail,
				   sizeof(detail)), 1);
	assert_non_null(strstr(detail, ".Trash-1000/files/"));

	/* The trashed state is the catalog's: it survives a reopen. */
	snap_store_close(st);
	env->st = NULL;
	st = tu_store(env);
	assert_int_equal(listed(st, b.id).trash, SNAP_TRASH_FILES);

	/* Back, exactly as it was. */
	assert_int_equal(snap_trash_restore(st, b.id, &out, &e), 0);
	assert_int_equal(out.trash, SNAP_TRASH_NONE);
	assert_int_equal(out.id, b.id);
	assert_string_equal(out.name, b.name);
	assert_int_equal(out.kind, b.kind);
	assert_int_equal(out.created_ns, b.created_ns);
	assert_memory_equal(out.sha256, b.sha256, 32);
	uint8_t *bytes1 = tu_image_bytes(st, b.id, &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(bytes0, bytes1, len0);
	free(bytes0);
	free(bytes1);
	assert_int_equal(snap_store_find(st, "latest", &found, &e), 0);
	assert_int_equal(found.id, b.id);
	assert_int_equal(snap_trash_info(st, b.id, &text, &e), -ENOENT);
	assert_int_equal(events_of(st, "untrash", b.name, NULL, 0), 1);
	/* Not in the trash any more: nothing to restore. */
	assert_int_equal(snap_trash_restore(st, b.id, &out, &e), -ENOENT);
}

static void test_trash_names_are_unique_per_trash_directory(void **s)
{
	tu_env *env = *s;
	snap_info a, b, c, out;
	snap_err e;

	snap_err_clear(&e);
	snap_store *st = three(env, &a, &b, &c);
	assert_int_equal(snap_trash_put(st, a.id, 0, "x.db", NULL, 0, &out,
					&e), 0);
	snap_err_clear(&e);
	assert_int_equal(snap_trash_put(st, b.id, 0, "x.db", NULL, 0, &out,
					&e), -EEXIST);
	assert_non_null(strstr(e.msg, "x.db"));
	assert_int_equal(listed(st, b.id).trash, SNAP_TRASH_NONE);
	/* Another user's trash has its own names. */
	assert_int_equal(snap_trash_put(st, b.id, 7, "x.db", NULL, 0, &out,
					&e), 0);
	/* Already in the trash: not again. */
	assert_int_equal(snap_trash_put(st, b.id, 7, "y.db", NULL, 0, &out,
					&e), -ENOENT);
	/* Names a directory cannot hold. */
	assert_int_equal(snap_trash_put(st, c.id, 0, "", NULL, 0, &out, &e),
			 -EINVAL);
	assert_int_equal(snap_trash_put(st, c.id, 0, "a/b", NULL, 0, &out,
					&e), -EINVAL);
	assert_int_equal(snap_trash_put(st, c.id, 0, "..", NULL, 0, &out,
					&e), -EINVAL);
	assert_int_equal(listed(st, c.id).trash, SNAP_TRASH_NONE);

	/* Emptying, the gvfs way: files/x.db -> expunged/123. */
	assert_int_equal(snap_trash_move(st, a.id, SNAP_TRASH_EXPUNGED, "123",
					 &out, &e), 0);
	assert_int_equal(out.trash, SNAP_TRASH_EXPUNGED);
	assert_string_equal(out.trash_name, "123");
	assert_int_equal(out.trash_uid, 0);
	assert_int_equal(snap_trash_find(st, 0, SNAP_TRASH_FILES, "x.db", &out,
					 &e), -ENOENT);
	assert_int_equal(snap_trash_find(st, 0, SNAP_TRASH_EXPUNGED, "123",
					 &out, &e), 0);
	/* The name is free again in files/. */
	assert_int_equal(snap_trash_put(st, c.id, 0, "x.db", NULL, 0, &out,
					&e), 0);
	assert_int_equal(snap_trash_move(st, c.id, SNAP_TRASH_EXPUNGED, "123",
					 &out, &e), -EEXIST);
	assert_int_equal(snap_trash_move(st, c.id, SNAP_TRASH_NONE, "z",
					 &out, &e), -EINVAL);

	snap_info *v = NULL;
	size_t n = 0;
	assert_int_equal(snap_trash_list(st, 0, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(v[0].id, c.id);       /* files/ before expunged/ */
	assert_int_equal(v[1].id, a.id);
	free(v);
	assert_int_equal(snap_trash_list(st, -1, &v, &n, &e), 0);
	assert_int_equal(n, 3);
	free(v);
	assert_int_equal(snap_trash_list(st, 8, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	free(v);
}

static void test_trash_info_is_made_when_none_usable_was_given(void **s)
{
	tu_env *env = *s;
	char *text = NULL, want[512], big[SNAP_TRASH_INFO_MAX + 2];
	snap_info a, b, c, out;
	snap_err e;

	snap_err_clear(&e);
	snap_store *st = three(env, &a, &b, &c);

	/* None given (mv into files/ by hand). */
	assert_int_equal(snap_trash_put(st, a.id, 0, a.name, NULL, 0, &out,
					&e), 0);
	assert_int_equal(snap_trash_info(st, a.id, &text, &e), 0);
	snprintf(want, sizeof(want), "[Trash Info]\nPath=snapshots/%s\n"
		 "DeletionDate=", a.name);
	assert_int_equal(strncmp(text, want, strlen(want)), 0);
	/* DeletionDate is YYYY-MM-DDThh:mm:ss, local time, when trashed. */
	struct tm tm;
	const char *date = text + strlen(want);
	assert_non_null(strptime(date, "%Y-%m-%dT%H:%M:%S\n", &tm));
	assert_int_equal(strlen(date), 20);
	free(text);

	/* Not a trash info, or text with a NUL in it: not kept. */
	assert_int_equal(snap_trash_put(st, b.id, 0, b.name, "Path=/etc\n",
					10, &out, &e), 0);
	assert_int_equal(snap_trash_info(st, b.id, &text, &e), 0);
	assert_int_equal(strncmp(text, "[Trash Info]\nPath=snapshots/", 28),
			 0);
	free(text);
	memset(big, 'x', sizeof(big));
	memcpy(big, "[Trash Info]\n", 13);
	assert_int_equal(snap_trash_put(st, c.id, 0, c.name, big, sizeof(big),
					&out, &e), 0);
	assert_int_equal(snap_trash_info(st, c.id, &text, &e), 0);
	assert_true(strlen(text) < 200);
	free(text);

	/* A name needing escapes (labels never have them; a hand-made
	 * catalog row might). */
	snap_info odd;
	memset(&odd, 0, sizeof(odd));
	snprintf(odd.name, sizeof(odd.name), "a b%%.db");
	assert_int_equal(snap_trash_info_make(&odd, 0, want, sizeof(want)), 0);
	assert_non_null(strstr(want, "Path=snapshots/a%20b%25.db\n"));
	assert_int_equal(snap_trash_info_make(&odd, 0, want, 20),
			 -ENAMETOOLONG);
}

static void test_emptying_the_trash_deletes_and_reclaims(void **s)
{
	tu_env *env = *s;
	snap_info a, b, out;
	snap_err e;

	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 30);
	a = tu_snap(st, "a");
	sqlite3 *db = tu_open(env->db);
	tu_db_insert(db, 100, 400);
	sqlite3_close(db);
	b = tu_snap(st, "b");
	int64_t pages_a = tu_pages(st);

	assert_int_equal(snap_trash_put(st, b.id, 0, b.name, NULL, 0, &out,
					&e), 0);
	/* In the trash it keeps its pages. */
	assert_int_equal(tu_pages(st), pages_a);
	assert_int_equal(snap_trash_move(st, b.id, SNAP_TRASH_EXPUNGED, "42",
					 &out, &e), 0);
	assert_int_equal(snap_store_delete(st, b.id, &e), 0);
	assert_int_equal(snap_store_get(st, b.id, &out, &e), -ENOENT);
	assert_int_equal(snap_trash_find(st, 0, SNAP_TRASH_EXPUNGED, "42",
					 &out, &e), -ENOENT);
	snap_info *v = NULL;
	size_t n = 9;
	assert_int_equal(snap_trash_list(st, -1, &v, &n, &e), 0);
	assert_int_equal(n, 0);
	free(v);
	tu_assert_runs(st);
	assert_true(tu_pages(st) < pages_a);
	unsigned nbad = 9;
	assert_int_equal(snap_verify_store(st, 1, NULL, NULL, &nbad, &e), 0);
	assert_int_equal(nbad, 0);
	assert_int_equal(snap_store_get(st, a.id, &out, &e), 0);
}

static void test_trash_of_a_read_only_store_is_refused(void **s)
{
	tu_env *env = *s;
	snap_store *ro = NULL;
	snap_info a, out;
	snap_err e;

	snap_err_clear(&e);
	snap_store *st = tu_live_store(env, "delete", 4096, 10);
	a = tu_snap(st, "a");
	assert_int_equal(snap_store_open(env->db, NULL, SNAP_OPEN_READONLY,
					 &ro, &e), 0);
	assert_int_equal(snap_trash_put(ro, a.id, 0, a.name, NULL, 0, &out,
					&e), -EROFS);
	snap_store_close(ro);
	assert_int_equal(listed(st, a.id).trash, SNAP_TRASH_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_trash_put_then_restore_gives_it_back_unchanged),
		tu_test(test_trash_names_are_unique_per_trash_directory),
		tu_test(test_trash_info_is_made_when_none_usable_was_given),
		tu_test(test_emptying_the_trash_deletes_and_reclaims),
		tu_test(test_trash_of_a_read_only_store_is_refused),
	};
	return cmocka_run_group_tests_name("trash", tests, NULL, NULL);
}
