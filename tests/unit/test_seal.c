/*
 * tests/unit/test_seal.c — engine/seal.h: a passphrase opens the master key
 * and nothing else does; a sealed object opens only under its own name and
 * key and not after one flipped bit; a changed passphrase gives the same
 * keys; page identities depend on the key.  And the one reader of a
 * passphrase (engine/replica.h, snap_replica_pass_read) for snapctl and the
 * daemon: a file others may change or a link is refused, one they may read
 * is used with a warning.
 */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replica.h"
#include "seal.h"

/* Cheap Argon2id parameters: the tests check the scheme, not its cost. */
static void cheap_kdf(snap_kdf *kdf)
{
	snap_kdf_new(kdf);
	kdf->opslimit = 1;
	kdf->memlimit = 64 * 1024;
}

static void test_passphrase_opens_master_key(void **state)
{
	(void)state;
	snap_err err;
	snap_kdf kdf;
	uint8_t master[SNAP_KEY_BYTES], back[SNAP_KEY_BYTES];
	uint8_t wrapped[SNAP_WRAPPED_BYTES];
	assert_int_equal(snap_seal_init(&err), 0);
	cheap_kdf(&kdf);
	snap_key_new(master);
	assert_int_equal(snap_key_wrap(&kdf, "hunter2", 7, master, wrapped,
				       &err), 0);
	assert_int_equal(snap_key_unwrap(&kdf, "hunter2", 7, wrapped, back,
					 &err), 0);
	assert_memory_equal(master, back, sizeof master);
	/* The wrapped form does not contain the key in the clear. */
	assert_null(memmem(wrapped, sizeof wrapped, master, 8));
}

static void test_wrong_passphrase_is_eacces(void **state)
{
	(void)state;
	snap_err err;
	snap_kdf kdf;
	uint8_t master[SNAP_KEY_BYTES], back[SNAP_KEY_BYTES];
	uint8_t wrapped[SNAP_WRAPPED_BYTES];
	assert_int_equal(snap_seal_init(&err), 0);
	cheap_kdf(&kdf);
	snap_key_new(master);
	assert_int_equal(snap_key_wrap(&kdf, "right", 5, master, wrapped,
				       &err), 0);
	assert_int_equal(snap_key_unwrap(&kdf, "wrong", 5, wrapped, back,
					 &err), -EACCES);
	assert_non_null(strstr(err.msg, "wrong passphrase"));
	/* Another salt with the right passphrase fails the same way. */
	snap_kdf other = kdf;
	other.salt[0] ^= 1;
	assert_int_equal(snap_key_unwrap(&other, "right", 5, wrapped, back,
					 &err), -EACCES);
	/* A tampered wrapped key too. */
	wrapped[SNAP_SEAL_NONCE + 3] ^= 0x40;
	assert_int_equal(snap_key_unwrap(&kdf, "right", 5, wrapped, back,
					 &err), -EACCES);
}

static void test_kdf_parameters_out_of_range_are_einval(void **state)
{
	(void)state;
	snap_err err;
	snap_kdf kdf;
	uint8_t master[SNAP_KEY_BYTES], wrapped[SNAP_WRAPPED_BYTES];
	assert_int_equal(snap_seal_init(&err), 0);
	cheap_kdf(&kdf);
	kdf.opslimit = 0;
	snap_key_new(master);
	assert_int_equal(snap_key_wrap(&kdf, "p", 1, master, wrapped, &err),
			 -EINVAL);
}

static void test_rewrap_keeps_the_keys(void **state)
{
	(void)state;
	snap_err err;
	snap_kdf a, b;
	uint8_t master[SNAP_KEY_BYTES], back[SNAP_KEY_BYTES];
	uint8_t w1[SNAP_WRAPPED_BYTES], w2[SNAP_WRAPPED_BYTES];
	snap_keys k1, k2;
	assert_int_equal(snap_seal_init(&err), 0);
	cheap_kdf(&a);
	cheap_kdf(&b);
	snap_key_new(master);
	assert_int_equal(snap_key_wrap(&a, "old", 3, master, w1, &err), 0);
	/* Change the passphrase: unwrap with the old, wrap with the new. */
	assert_int_equal(snap_key_unwrap(&a, "old", 3, w1, back, &err), 0);
	assert_int_equal(snap_key_wrap(&b, "new", 3, back, w2, &err), 0);
	assert_int_equal(snap_key_unwrap(&b, "old", 3, w2, back, &err),
			 -EACCES);
	assert_int_equal(snap_key_unwrap(&b, "new", 3, w2, back, &err), 0);
	snap_keys_derive(master, &k1);
	snap_keys_derive(back, &k2);
	assert_memory_equal(&k1, &k2, sizeof k1);
	/* The two derived keys differ from each other and from the master. */
	assert_memory_not_equal(k1.object, k1.pageid, SNAP_KEY_BYTES);
	assert_memory_not_equal(k1.object, master, SNAP_KEY_BYTES);
}

static void test_sealed_object_opens_only_as_itself(void **state)
{
	(void)state;
	snap_err err;
	uint8_t master[SNAP_KEY_BYTES], other[SNAP_KEY_BYTES];
	snap_keys k, ko;
	const char plain[] = "a page map, a catalog row, a pack";
	uint8_t sealed[sizeof plain + SNAP_SEAL_OVERHEAD];
	uint8_t out[sizeof plain];
	size_t outlen = 0;
	assert_int_equal(snap_seal_init(&err), 0);
	snap_key_new(master);
	snap_key_new(other);
	snap_keys_derive(master, &k);
	snap_keys_derive(other, &ko);
	size_t n = snap_seal(&k, "packs/0a", plain, sizeof plain, sealed);
	assert_int_equal(n, sizeof sealed);
	assert_null(memmem(sealed, n, "catalog", 7));
	assert_int_equal(snap_unseal(&k, "packs/0a", sealed, n, out, &outlen),
			 0);
	assert_int_equal(outlen, sizeof plain);
	assert_memory_equal(out, plain, sizeof plain);
	/* Served under another name: refused. */
	assert_int_equal(snap_unseal(&k, "packs/0b", sealed, n, out, &outlen),
			 -EBADMSG);
	/* Another key: refused. */
	assert_int_equal(snap_unseal(&ko, "packs/0a", sealed, n, out, &outlen),
			 -EBADMSG);
	/* Too short to be an object: refused, not read out of bounds. */
	assert_int_equal(snap_unseal(&k, "packs/0a", sealed,
				     SNAP_SEAL_OVERHEAD - 1, out, &outlen),
			 -EBADMSG);
	/* Every single flipped bit anywhere: refused. */
	for (size_t i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			sealed[i] ^= (uint8_t)(1u << bit);
			if (snap_unseal(&k, "packs/0a", sealed, n, out,
					&outlen) != -EBADMSG)
				fail_msg("flip of bit %d of byte %zu opened",
					 bit, i);
			sealed[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Two seals of the same text differ (random nonce). */
	uint8_t again[sizeof sealed];
	snap_seal(&k, "packs/0a", plain, sizeof plain, again);
	assert_memory_not_equal(again, sealed, n);
}

static void test_page_identity_is_keyed(void **state)
{
	(void)state;
	snap_err err;
	uint8_t m1[SNAP_KEY_BYTES], m2[SNAP_KEY_BYTES];
	snap_keys k1, k2;
	uint8_t page[4096], a[32], b[32], c[32];
	assert_int_equal(snap_seal_init(&err), 0);
	memset(page, 0x5a, sizeof page);
	snap_key_new(m1);
	snap_key_new(m2);
	snap_keys_derive(m1, &k1);
	snap_keys_derive(m2, &k2);
	snap_pageid(&k1, page, sizeof page, a);
	snap_pageid(&k1, page, sizeof page, b);
	snap_pageid(&k2, page, sizeof page, c);
	assert_memory_equal(a, b, 32);
	assert_memory_not_equal(a, c, 32);
	page[4095] ^= 1;
	snap_pageid(&k1, page, sizeof page, b);
	assert_memory_not_equal(a, b, 32);
	snap_keys_wipe(&k1, sizeof k1);
	uint8_t zero[sizeof k1];
	memset(zero, 0, sizeof zero);
	assert_memory_equal(&k1, zero, sizeof k1);
}

/* A file of text with mode, under the test's directory. */
static char *pass_file(const tu_env *env, char *out, const char *name,
		       const char *text, mode_t mode)
{
	tu_path(env, out, name);
	FILE *f = fopen(out, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(out, mode), 0);
	return out;
}

static void test_passphrase_file_checks(void **state)
{
	tu_env *env = *state;
	char path[PATH_MAX], link[PATH_MAX], buf[SNAP_PASS_MAX], want[600];
	snap_err err;

	/* A private file: its first line, no warning. */
	pass_file(env, path, "p", "first line\nsecond\n", 0600);
	assert_int_equal(snap_replica_pass_read(path, "--passphrase-file ",
						NULL, buf, &err), 0);
	assert_string_equal(buf, "first line");
	/* Others may read it (umask 022): used, with a warning. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(snap_replica_pass_read(path, "passphrase_file=",
						NULL, buf, &err), 1);
	assert_string_equal(buf, "first line");
	snprintf(want, sizeof want, "passphrase_file=%s: its group or others "
		 "may read it (mode 0644); chmod 600 %s keeps the passphrase "
		 "private", path, path);
	assert_string_equal(err.msg, want);
	/* Its group or others may change it: refused, buf wiped. */
	static const mode_t open_modes[] = { 0620, 0602, 0666 };
	for (size_t i = 0; i < sizeof open_modes / sizeof *open_modes; i++) {
		assert_int_equal(chmod(path, open_modes[i]), 0);
		assert_int_equal(snap_replica_pass_read(path, "opt=", NULL,
							buf, &err), -EPERM);
		assert_string_equal(buf, "");
		assert_non_null(strstr(err.msg, "may change it"));
		assert_non_null(strstr(err.msg, "chmod 600"));
	}
	/* A symbolic link, even to a private file: refused. */
	assert_int_equal(chmod(path, 0600), 0);
	tu_path(env, link, "link");
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(snap_replica_pass_read(link, "opt=", NULL, buf,
						&err), -ELOOP);
	assert_non_null(strstr(err.msg, "symbolic link"));
	/* Another user's file, even private: refused (root reads only
	 * root's), buf wiped; so is one with a second name. */
	if (geteuid() == 0) {
		assert_int_equal(chown(path, 65534, 65534), 0);
		assert_int_equal(snap_replica_pass_read(path, "opt=", NULL,
							buf, &err), -EPERM);
		assert_string_equal(buf, "");
		assert_non_null(strstr(err.msg, "owned by uid 65534"));
		assert_non_null(strstr(err.msg, "refused"));
		assert_int_equal(chown(path, 0, 0), 0);
	}
	{
		char second[PATH_MAX];

		tu_path(env, second, "second");
		assert_int_equal(linkat(AT_FDCWD, path, AT_FDCWD, second, 0),
				 0);
		assert_int_equal(snap_replica_pass_read(path, "opt=", NULL,
							buf, &err), -EPERM);
		assert_string_equal(buf, "");
		assert_non_null(strstr(err.msg, "2 names"));
		assert_int_equal(unlink(second), 0);
	}
	assert_int_equal(snap_replica_pass_read(path, "opt=", NULL, buf,
						&err), 0);
	/* A FIFO: refused at once, never waited on. */
	tu_path(env, link, "fifo");
	assert_int_equal(mkfifo(link, 0600), 0);
	assert_int_equal(snap_replica_pass_read(link, "opt=", NULL, buf,
						&err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a regular file"));
	/* Empty, or an empty first line: refused. */
	pass_file(env, path, "empty", "\nsecond\n", 0600);
	assert_int_equal(snap_replica_pass_read(path, "opt=", NULL, buf,
						&err), -EINVAL);
	assert_non_null(strstr(err.msg, "empty"));
	/* Missing: ENOENT, named. */
	tu_path(env, path, "missing");
	assert_int_equal(snap_replica_pass_read(path, "opt=", NULL, buf,
						&err), -ENOENT);
	assert_non_null(strstr(err.msg, path));
	/* No file: the environment variable, else nothing. */
	assert_int_equal(setenv("TEST_SNAPFS_PASS", "from env", 1), 0);
	assert_int_equal(snap_replica_pass_read(NULL, "opt=",
						"TEST_SNAPFS_PASS", buf, &err),
			 0);
	assert_string_equal(buf, "from env");
	assert_int_equal(unsetenv("TEST_SNAPFS_PASS"), 0);
	assert_int_equal(snap_replica_pass_read(NULL, "opt=",
						"TEST_SNAPFS_PASS", buf, &err),
			 0);
	assert_string_equal(buf, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_passphrase_opens_master_key),
		tu_test(test_wrong_passphrase_is_eacces),
		tu_test(test_kdf_parameters_out_of_range_are_einval),
		tu_test(test_rewrap_keeps_the_keys),
		tu_test(test_sealed_object_opens_only_as_itself),
		tu_test(test_page_identity_is_keyed),
		tu_test(test_passphrase_file_checks),
	};
	return cmocka_run_group_tests_name("seal", tests, NULL, NULL);
}
