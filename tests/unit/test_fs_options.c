/*
 * tests/unit/test_fs_options.c — the daemon's command line (fs/options.c),
 * parsed as `snapfs` parses it before it checks or mounts anything: valid
 * options and what they become, the words mount(8) adds, the joined keep
 * rules, every refusal with the message the daemon prints, and which
 * command lines mount a replica instead (fs/replica.c); and the log line
 * the daemon writes keeps users' control characters out.
 */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"
#include "rmount.h"

#define NS_S 1000000000LL

/* The outcome of one parse: its verdict, what it printed, the parse. */
struct parsed {
	int rc;
	char out[16384];    /* stdout */
	char err[16384];    /* stderr */
	struct snap_cmdline c;
};

/* Read what was written to fd (a temporary file) into buf. */
static void slurp(int fd, char *buf, size_t len)
{
	ssize_t n = pread(fd, buf, len - 1, 0);

	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

/* Run snap_options_parse on "snapfs" + the NULL-terminated words, with
 * stdout and stderr captured; the mount point word "@" is env->dir (libfuse
 * wants an existing one). */
static void parse(const tu_env *env, struct parsed *p, ...)
{
	char *argv[32];
	int argc = 0, saved_out, saved_err, fo, fe;
	char tmpl_o[] = "/tmp/fsopt-out-XXXXXX", tmpl_e[] = "/tmp/fsopt-err-XXXXXX";
	const char *w;
	va_list ap;

	argv[argc++] = (char *)"snapfs";
	va_start(ap, p);
	while ((w = va_arg(ap, const char *)) != NULL) {
		assert_true(argc < 31);
		argv[argc++] = (char *)(strcmp(w, "@") == 0 ? env->dir : w);
	}
	va_end(ap);
	argv[argc] = NULL;

	fo = mkstemp(tmpl_o);
	fe = mkstemp(tmpl_e);
	assert_true(fo >= 0 && fe >= 0);
	unlink(tmpl_o);
	unlink(tmpl_e);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(1);
	saved_err = dup(2);
	dup2(fo, 1);
	dup2(fe, 2);
	p->rc = snap_options_parse(argc, argv, &p->c);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	slurp(fo, p->out, sizeof(p->out));
	slurp(fe, p->err, sizeof(p->err));
}

/* 1 when the arguments left for libfuse hold word (a whole -o string
 * containing it counts). */
static int args_have(const struct snap_cmdline *c, const char *word)
{
	int i;

	for (i = 0; i < c->args.argc; i++)
		if (strstr(c->args.argv[i], word))
			return 1;
	return 0;
}

/* Expect a refusal whose message contains what. */
static void expect_fail(struct parsed *p, const char *what)
{
	assert_int_equal(p->rc, SNAP_OPTIONS_FAIL);
	if (!strstr(p->err, what))
		fail_msg("expected \"%s\" in stderr, got: %s", what, p->err);
	snap_options_free(&p->c);
}

static void test_plain(void **state)
{
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));

	parse(env, p, "live.db", "@", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_string_equal(p->c.o.db, "live.db");
	assert_non_null(p->c.fopts.mountpoint);
	assert_null(p->c.o.store);
	assert_int_equal(p->c.topts.every_ns, 0);
	assert_int_equal(p->c.topts.check_ns, 0);
	assert_int_equal(p->c.topts.verify_ns, 0);
	assert_int_equal(p->c.topts.verify_slice, 10);
	assert_null(p->c.topts.on_failure);
	assert_int_equal(p->c.fopts.foreground, 0);
	assert_string_equal(p->err, "");
	snap_options_free(&p->c);
	free(p);
}

static void test_all_valid(void **state)
{
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));

	parse(env, p, "-f", "-o", "store=/srv/backup,every=1h30m,"
	      "keep=last:5,daily:7,max_size=10M,check=15m,auto_recover,"
	      "verify=1d,on_failure=logger -t snapfs", "live.db", "@", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_string_equal(p->c.o.store, "/srv/backup");
	assert_int_equal(p->c.topts.every_ns, 5400 * NS_S);
	assert_int_equal(p->c.topts.keep.last, 5);
	assert_int_equal(p->c.topts.keep.daily, 7);
	assert_int_equal(p->c.topts.keep.hourly, 0);
	assert_int_equal(p->c.topts.keep.max_size, 10 * 1024 * 1024);
	assert_int_equal(p->c.topts.check_ns, 900 * NS_S);
	assert_int_equal(p->c.topts.auto_recover, 1);
	assert_int_equal(p->c.topts.verify_ns, 86400 * NS_S);
	assert_string_equal(p->c.topts.on_failure, "logger -t snapfs");
	assert_int_equal(p->c.fopts.foreground, 1);
	/* snapfs's own options are not libfuse's */
	assert_false(args_have(&p->c, "every="));
	assert_false(args_have(&p->c, "store="));
	assert_string_equal(p->err, "");
	snap_options_free(&p->c);
	free(p);
}

/* keep rules joined by ',' (split by libfuse), '+' or '/', glued -o too */
static void test_keep_joined(void **state)
{
	static const char *const forms[] = {
		"every=1h,keep=hourly:24,weekly:4,within:2d",
		"every=1h,keep=hourly:24+weekly:4+within:2d",
		"every=1h,keep=hourly:24/weekly:4/within:2d",
	};
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));
	size_t i;

	for (i = 0; i < 4; i++) {
		char glued[128];

		if (i < 3) {
			parse(env, p, "-o", forms[i], "live.db", "@", NULL);
		} else {
			snprintf(glued, sizeof(glued), "-o%s", forms[0]);
			parse(env, p, glued, "live.db", "@", NULL);
		}
		assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
		assert_int_equal(p->c.topts.keep.hourly, 24);
		assert_int_equal(p->c.topts.keep.weekly, 4);
		assert_int_equal(p->c.topts.keep.within_ns, 2 * 86400 * NS_S);
		assert_int_equal(p->c.topts.keep.last, 0);
		snap_options_free(&p->c);
	}
	/* a rule word after another option is not joined to keep=: it is
	 * left to libfuse, which refuses an unknown option at mount */
	parse(env, p, "-o", "keep=last:2,every=1h,daily:3", "live.db", "@",
	      NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_int_equal(p->c.topts.keep.last, 2);
	assert_int_equal(p->c.topts.keep.daily, 0);
	assert_true(args_have(&p->c, "daily:3"));
	snap_options_free(&p->c);
	free(p);
}

/* an escaped comma stays in on_failure's command */
static void test_escaped_comma(void **state)
{
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));

	parse(env, p, "-o", "on_failure=echo a\\,b,allow_other", "live.db",
	      "@", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_string_equal(p->c.topts.on_failure, "echo a,b");
	assert_int_equal(p->c.o.allow_other, 1);
	assert_true(args_have(&p->c, "allow_other"));
	snap_options_free(&p->c);
	free(p);
}

/* /etc/fstab words are accepted and never reach libfuse */
static void test_mount_words(void **state)
{
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));

	parse(env, p, "-o", "_netdev,noauto,auto,nofail,user,users,nouser,"
	      "defaults,rw,x-systemd.automount,x-gvfs-show,"
	      "default_permissions", "live.db", "@", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_false(args_have(&p->c, "_netdev"));
	assert_false(args_have(&p->c, "nofail"));
	assert_false(args_have(&p->c, "x-systemd"));
	assert_false(args_have(&p->c, "x-gvfs"));
	assert_false(args_have(&p->c, "defaults"));
	assert_int_equal(p->c.o.default_permissions, 1);
	assert_true(args_have(&p->c, "default_permissions"));
	assert_string_equal(p->err, "");
	snap_options_free(&p->c);
	free(p);
}

static void test_help_version(void **state)
{
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));

	parse(env, p, "-h", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_DONE);
	assert_non_null(strstr(p->out, "usage: snapfs [options] DBFILE "
			       "MOUNTPOINT"));
	assert_non_null(strstr(p->out, "-o on_failure=CMD"));
	/* snapfs(1): on_failure= runs for a failed replication too. */
	assert_non_null(strstr(p->out, "restore or replication (replicate=) "
			       "fails"));
	snap_options_free(&p->c);
	parse(env, p, "--version", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_DONE);
	assert_non_null(strstr(p->out, "snapfs version " SNAPFS_VERSION));
	assert_non_null(strstr(p->out, "SQLite version"));
	snap_options_free(&p->c);
	free(p);
}

static void test_arguments(void **state)
{
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));

	parse(env, p, "live.db", NULL);
	expect_fail(p, "snapfs: a database and a mount point are needed");
	assert_non_null(strstr(p->err, "usage: snapfs"));
	parse(env, p, NULL);
	expect_fail(p, "a database and a mount point are needed");
	parse(env, p, "live.db", "@", "third", NULL);
	expect_fail(p, "snapfs: unexpected argument \"third\"");
	parse(env, p, "live.db", "/nonexistent/snapfs-unit", NULL);
	expect_fail(p, "bad mount point");
	free(p);
}

static void test_invalid_values(void **state)
{
	static const struct {
		const char *opt;
		const char *msg;
	} bad[] = {
		{ "every=0", "snapfs: every=0: not a positive duration" },
		{ "every=0s", "every=0s: not a positive duration" },
		{ "every=15", "every=15: not a positive duration" },
		{ "every=-1h", "every=-1h: not a positive duration" },
		{ "every=", "every=: not a positive duration" },
		{ "every=1h,keep=last:x", "snapfs: keep=last:x: " },
		{ "every=1h,keep=hourly:1,hourly:2", "snapfs: keep=" },
		{ "every=1h,keep=", "snapfs: keep=: " },
		{ "every=1h,keep=last:0", "snapfs: keep=last:0: every rule "
		  "is 0 (off)" },
		{ "every=1h,keep=last:0,daily:0", "snapfs: keep=last:0+daily:0: "
		  "every rule is 0 (off)" },
		{ "keep=last:3", "keep= and max_size= apply after automatic "
		  "snapshots: they need every=DURATION" },
		{ "max_size=1G", "they need every=DURATION" },
		{ "every=1h,max_size=0", "max_size=0: not a size" },
		{ "every=1h,max_size=lots", "max_size=lots: not a size" },
		{ "check=0", "check=0: not a positive duration" },
		{ "auto_recover", "snapfs: auto_recover needs check=DURATION" },
		{ "verify=soon", "verify=soon: not a positive duration" },
		{ "on_failure=", "snapfs: on_failure= needs a command" },
		{ "replicate=http://x/y", "replicate=http://x/y: not a "
		  "replica URL" },
		{ "replicate=file://rel/path", "not a replica URL" },
		{ "replicate=file:///r,replicate_every=0s",
		  "replicate_every=0s: not a positive duration" },
		{ "replicate_every=1h", "they need replicate=URL" },
		{ "passphrase_file=/p", "they need replicate=URL" },
		{ "replicate=file:///r,passphrase_file=",
		  "passphrase_file= needs a file" },
		{ "endpoint=http://127.0.0.1:9000", "they need replicate=URL" },
		{ "replicate=s3://b/p,endpoint=", "endpoint= needs a URL" },
	};
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		parse(env, p, "-o", bad[i].opt, "live.db", "@", NULL);
		if (p->rc != SNAP_OPTIONS_FAIL)
			fail_msg("-o %s was accepted", bad[i].opt);
		expect_fail(p, bad[i].msg);
	}
	free(p);
}

/* the offsite replica's options: parsed, none of them libfuse's */
static void test_replicate(void **state)
{
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));

	parse(env, p, "-o", "replicate=s3://bucket/app,replicate_every=15m,"
	      "passphrase_file=/etc/snapfs/app.pass", "live.db", "@", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_string_equal(p->c.ropts.url, "s3://bucket/app");
	assert_int_equal(p->c.ropts.every_ns, 900 * NS_S);
	assert_string_equal(p->c.ropts.passphrase_file,
			    "/etc/snapfs/app.pass");
	assert_false(args_have(&p->c, "replicate"));
	assert_false(args_have(&p->c, "passphrase_file"));
	assert_string_equal(p->err, "");
	snap_options_free(&p->c);
	/* endpoint=: the S3 service of replicate=s3://, as of a replica
	 * mount (snapfs -h); snapfs's, not libfuse's */
	parse(env, p, "-o", "replicate=s3://bucket/app,"
	      "endpoint=http://127.0.0.1:9000", "live.db", "@", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_string_equal(p->c.o.endpoint, "http://127.0.0.1:9000");
	assert_false(args_have(&p->c, "endpoint"));
	snap_options_free(&p->c);
	/* default: after each change, the passphrase from the environment */
	parse(env, p, "-o", "replicate=file:///srv/replica", "live.db", "@",
	      NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_string_equal(p->c.ropts.url, "file:///srv/replica");
	assert_int_equal(p->c.ropts.every_ns, 0);
	assert_null(p->c.ropts.passphrase_file);
	snap_options_free(&p->c);
	parse(env, p, "live.db", "@", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_null(p->c.ropts.url);
	snap_options_free(&p->c);
	parse(env, p, "-h", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_DONE);
	assert_non_null(strstr(p->out, "replicate=URL"));
	assert_non_null(strstr(p->out, "replicate_every=DURATION"));
	assert_non_null(strstr(p->out, "passphrase_file=FILE"));
	snap_options_free(&p->c);
	free(p);
}

/* edge values that are valid */
static void test_edge_values(void **state)
{
	tu_env *env = *state;
	struct parsed *p = calloc(1, sizeof(*p));

	parse(env, p, "-o", "every=1s,keep=last:0,max_size=1,check=1s,"
	      "verify=1s", "live.db", "@", NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_int_equal(p->c.topts.every_ns, NS_S);
	assert_int_equal(p->c.topts.keep.last, 0);
	assert_int_equal(p->c.topts.keep.max_size, 1);
	assert_int_equal(p->c.topts.check_ns, NS_S);
	assert_int_equal(p->c.topts.verify_ns, NS_S);
	snap_options_free(&p->c);
	/* the last of a repeated option wins, as libfuse's %s does */
	parse(env, p, "-o", "store=/a", "-o", "store=/b", "live.db", "@",
	      NULL);
	assert_int_equal(p->rc, SNAP_OPTIONS_MOUNT);
	assert_string_equal(p->c.o.store, "/b");
	snap_options_free(&p->c);
	free(p);
}

/* Which command lines are a replica mount (fs/replica.c): the first
 * non-option argument is s3:// or file://; an -o value is never taken
 * for it; -h and -V stay the daemon's. */
static void test_replica_url_chosen(void **state)
{
	char *a[] = { "snapfs", "-f", "-o", "passphrase_file=/p",
		      "s3://bucket/app", "/mnt", NULL };
	char *b[] = { "snapfs", "file:///srv/replica", "/mnt", NULL };
	char *c[] = { "snapfs", "-o", "file:///x", "app.db", "/mnt", NULL };
	char *d[] = { "snapfs", "/srv/app.db", "/mnt", NULL };
	char *e[] = { "snapfs", "-h", "s3://bucket/app", "/mnt", NULL };
	char *f[] = { "snapfs", "s3:/bucket", "/mnt", NULL };

	(void)state;
	assert_int_equal(snap_rmount_wanted(6, a), 1);
	assert_int_equal(snap_rmount_wanted(3, b), 1);
	assert_int_equal(snap_rmount_wanted(5, c), 0);
	assert_int_equal(snap_rmount_wanted(3, d), 0);
	assert_int_equal(snap_rmount_wanted(4, e), 0);
	assert_int_equal(snap_rmount_wanted(3, f), 0);
}

/* The daemon's log in the foreground (stderr, a terminal): a name a user
 * chose (a file copied into restore/) with escape sequences in it is
 * written with '?' for each control character, never as it is. */
static void test_log_keeps_control_characters_out(void **state)
{
	char tmpl[] = "/tmp/fslog-XXXXXX", buf[4096];
	int fd = mkstemp(tmpl), saved;

	(void)state;
	assert_true(fd >= 0);
	unlink(tmpl);
	snap_log_setup(1, 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	snap_log(LOG_ERR, "restore of current.db from %s refused",
		 "restore/\x1b]0;owned\x07\x1b[2J\xc2\x9bx.db");
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	slurp(fd, buf, sizeof(buf));
	assert_null(strchr(buf, '\x1b'));
	assert_null(strchr(buf, '\x07'));
	assert_null(strstr(buf, "\xc2\x9b"));
	assert_string_equal(buf, "snapfs: restore of current.db from "
			    "restore/?]0;owned??[2J?x.db refused\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		tu_test(test_plain),
		tu_test(test_all_valid),
		tu_test(test_keep_joined),
		tu_test(test_escaped_comma),
		tu_test(test_mount_words),
		tu_test(test_help_version),
		tu_test(test_arguments),
		tu_test(test_invalid_values),
		tu_test(test_edge_values),
		tu_test(test_replica_url_chosen),
		tu_test(test_replicate),
		tu_test(test_log_keeps_control_characters_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
