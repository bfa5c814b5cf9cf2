/*
 * tests/unit/test_fs_inode.c — the daemon's table of dynamic nodes
 * (fs/inode.c) without a mount: numbers, names, the three references that
 * keep a node (its name, the kernel's lookups, open handles), renames that
 * replace, and the backing files that go with the nodes.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "fsutil.h"

/* A staging node in the root; fails the test when it cannot be made. */
static struct snap_node *mk(fuse_ino_t parent, const char *name)
{
	struct snap_node *n = snap_node_create(SNAP_NODE_STAGING, parent,
					       name, 0644, 1000, 1000);

	assert_non_null(n);
	return n;
}

/* mk, also giving its number and its backing file's path (PATH_MAX). */
static struct snap_node *mk_keep(fuse_ino_t parent, const char *name,
				 fuse_ino_t *ino, char *path)
{
	struct snap_node *n = mk(parent, name);

	*ino = n->ino;
	snprintf(path, PATH_MAX, "%s", n->path);
	return n;
}

/* Drop the kernel's references and the name of n (it may be freed). */
static void drop(struct snap_node *n)
{
	fuse_ino_t ino = n->ino;

	pthread_mutex_lock(&snap_fs.lock);
	snap_node_unlink_locked(n);
	pthread_mutex_unlock(&snap_fs.lock);
	snap_node_forget(ino, 1);
}

/* 1 when a node with number ino is in the table. */
static int in_table(fuse_ino_t ino)
{
	int found;

	pthread_mutex_lock(&snap_fs.lock);
	found = snap_node_get_locked(ino) != NULL;
	pthread_mutex_unlock(&snap_fs.lock);
	return found;
}

static void test_create_find(void **state)
{
	struct snap_node *a, *b;

	(void)state;
	a = mk(SNAP_INO_ROOT, ".current.db.XyZ");
	b = mk(SNAP_INO_RESTORE, ".current.db.XyZ");
	assert_true(a->ino > SNAP_INO_NODE_BASE);
	assert_true(b->ino > SNAP_INO_NODE_BASE);
	assert_true(a->ino != b->ino);
	assert_false(snap_ino_is_snapshot(a->ino));
	assert_int_equal(a->nlookup, 1);
	assert_int_equal(a->linked, 1);
	assert_true(tu_exists(a->path));
	assert_true(tu_exists(b->path));
	assert_string_not_equal(a->path, b->path);
	/* found by parent and name; a lookup reference when asked */
	assert_ptr_equal(snap_node_find(SNAP_INO_ROOT, ".current.db.XyZ", 0),
			 a);
	assert_int_equal(a->nlookup, 1);
	assert_ptr_equal(snap_node_find(SNAP_INO_ROOT, ".current.db.XyZ", 1),
			 a);
	assert_int_equal(a->nlookup, 2);
	assert_ptr_equal(snap_node_find(SNAP_INO_RESTORE, ".current.db.XyZ",
					0), b);
	assert_null(snap_node_find(SNAP_INO_SNAPDIR, ".current.db.XyZ", 0));
	assert_null(snap_node_find(SNAP_INO_ROOT, ".current.db", 0));
}

static void test_name_too_long(void **state)
{
	char name[NAME_MAX + 2];

	(void)state;
	memset(name, 'x', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	errno = 0;
	assert_null(snap_node_create(SNAP_NODE_STAGING, SNAP_INO_ROOT, name,
				     0644, 0, 0));
	assert_int_equal(errno, ENAMETOOLONG);
	name[NAME_MAX] = '\0';      /* exactly NAME_MAX is fine */
	assert_non_null(mk(SNAP_INO_ROOT, name));
}

static void test_backing_file_fails(void **state)
{
	(void)state;
	snprintf(snap_fs.staging_dir, sizeof(snap_fs.staging_dir),
		 "/nonexistent/snapfs-unit");
	errno = 0;
	assert_null(snap_node_create(SNAP_NODE_PENDING, SNAP_INO_SNAPDIR,
				     "before", 0644, 0, 0));
	assert_int_equal(errno, ENOENT);
}

/* A node lives while linked, referenced by the kernel, or open. */
static void test_lifetime(void **state)
{
	struct snap_node *n;
	fuse_ino_t ino;
	char path[PATH_MAX];

	(void)state;
	n = mk_keep(SNAP_INO_ROOT, "x.db", &ino, path);

	/* forgotten by the kernel but linked: stays */
	snap_node_forget(ino, 1);
	assert_true(in_table(ino));
	assert_true(tu_exists(path));

	/* open, then unlinked: stays while open */
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_open_locked(n);
	snap_node_unlink_locked(n);
	pthread_mutex_unlock(&snap_fs.lock);
	snap_node_reap();
	assert_true(in_table(ino));
	assert_true(tu_exists(path));
	assert_null(snap_node_find(SNAP_INO_ROOT, "x.db", 0));

	/* closed: freed, its backing file deleted */
	snap_node_close(n);
	assert_false(in_table(ino));
	assert_false(tu_exists(path));
}

/* The kernel's lookups count as the kernel counts them; a FORGET beyond
 * them leaves 0, never wraps. */
static void test_forget_counts(void **state)
{
	struct snap_node *n;
	fuse_ino_t ino;
	char path[PATH_MAX];

	(void)state;
	n = mk_keep(SNAP_INO_ROOT, "y.db", &ino, path);
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_lookup_locked(n, 2);          /* 3 in all */
	snap_node_unlink_locked(n);
	pthread_mutex_unlock(&snap_fs.lock);
	snap_node_forget(ino, 2);
	assert_true(in_table(ino));
	assert_int_equal(n->nlookup, 1);
	snap_node_forget(ino, 5);
	assert_false(in_table(ino));
	assert_false(tu_exists(path));
	snap_node_forget(ino, 1);               /* a stale FORGET: nothing */
}

/* A rename onto an existing name replaces that node. */
static void test_rename_replaces(void **state)
{
	struct snap_node *a, *b;
	fuse_ino_t bino;
	char bpath[PATH_MAX];

	(void)state;
	a = mk(SNAP_INO_ROOT, "a");
	b = mk_keep(SNAP_INO_ROOT, "b", &bino, bpath);
	assert_int_equal(snap_node_rename(SNAP_INO_ROOT, "a", "b"), 0);
	assert_ptr_equal(snap_node_find(SNAP_INO_ROOT, "b", 0), a);
	assert_null(snap_node_find(SNAP_INO_ROOT, "a", 0));
	assert_int_equal(b->linked, 0);
	/* the replaced node goes with the kernel's last reference */
	assert_true(in_table(bino));
	snap_node_forget(bino, 1);
	assert_false(in_table(bino));
	assert_false(tu_exists(bpath));
	assert_int_equal(snap_node_rename(SNAP_INO_ROOT, "a", "c"), -ENOENT);
	assert_int_equal(snap_node_rename(SNAP_INO_RESTORE, "b", "c"),
			 -ENOENT);
	/* a rename within restore/ leaves the root's "b" alone */
	mk(SNAP_INO_RESTORE, "d");
	assert_int_equal(snap_node_rename(SNAP_INO_RESTORE, "d", "b"), 0);
	assert_ptr_equal(snap_node_find(SNAP_INO_ROOT, "b", 0), a);
	assert_int_equal(a->linked, 1);
}

/* Collects the names foreach visits. */
static void collect(struct snap_node *n, void *ctx)
{
	char *out = ctx;

	strcat(out, n->name);
	strcat(out, ";");
}

static void test_foreach(void **state)
{
	struct snap_node *open_gone;
	char seen[256] = "";

	(void)state;
	mk(SNAP_INO_ROOT, "r1");
	drop(mk(SNAP_INO_ROOT, "gone"));
	/* unlinked while open: in the table, not in the listing */
	open_gone = mk(SNAP_INO_ROOT, "open-gone");
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_open_locked(open_gone);
	pthread_mutex_unlock(&snap_fs.lock);
	drop(open_gone);
	mk(SNAP_INO_RESTORE, "elsewhere");
	mk(SNAP_INO_ROOT, "r2");
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_foreach_locked(SNAP_INO_ROOT, collect, seen);
	pthread_mutex_unlock(&snap_fs.lock);
	/* newest first; only linked nodes of the directory */
	assert_string_equal(seen, "r2;r1;");
	snap_node_close(open_gone);
}

static void test_stat(void **state)
{
	struct snap_node *n;
	struct stat st;

	(void)state;
	n = snap_node_create(SNAP_NODE_STAGING, SNAP_INO_ROOT, "s.db",
			     S_IFDIR | 04755, 12, 34);
	assert_non_null(n);
	tu_write_file(n->path, "hello", 5);
	assert_int_equal(snap_node_stat(n, &st), 0);
	assert_int_equal(st.st_ino, n->ino);
	assert_int_equal(st.st_size, 5);
	/* always a regular file, with the permission bits asked */
	assert_int_equal(st.st_mode, S_IFREG | 04755);
	assert_int_equal(st.st_uid, 12);
	assert_int_equal(st.st_gid, 34);
	assert_int_equal(st.st_nlink, 1);
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_open_locked(n);
	snap_node_unlink_locked(n);
	pthread_mutex_unlock(&snap_fs.lock);
	assert_int_equal(snap_node_stat(n, &st), 0);
	assert_int_equal(st.st_nlink, 0);
	snap_node_close(n);
}

static void test_free_all(void **state)
{
	char p1[PATH_MAX], p2[PATH_MAX];

	(void)state;
	snprintf(p1, sizeof(p1), "%s", mk(SNAP_INO_ROOT, "f1")->path);
	snprintf(p2, sizeof(p2), "%s", mk(SNAP_INO_RESTORE, "f2")->path);
	snap_node_free_all();
	assert_false(tu_exists(p1));
	assert_false(tu_exists(p2));
	assert_null(snap_node_find(SNAP_INO_ROOT, "f1", 0));
}

static void test_sidefile_names(void **state)
{
	(void)state;
	assert_true(snap_name_is_sidefile("current.db-journal"));
	assert_true(snap_name_is_sidefile("x-wal"));
	assert_true(snap_name_is_sidefile("x.db-shm"));
	assert_false(snap_name_is_sidefile("-wal"));
	assert_false(snap_name_is_sidefile("x.db"));
	assert_false(snap_name_is_sidefile("x-wal.db"));
	assert_false(snap_name_is_sidefile(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		fsu_test(test_create_find),
		fsu_test(test_name_too_long),
		fsu_test(test_backing_file_fails),
		fsu_test(test_lifetime),
		fsu_test(test_forget_counts),
		fsu_test(test_rename_replaces),
		fsu_test(test_foreach),
		fsu_test(test_stat),
		fsu_test(test_free_all),
		fsu_test(test_sidefile_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
