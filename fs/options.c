/*
 * fs/options.c — the command line: `snapfs [options] DBFILE MOUNTPOINT`.
 *
 * Options are FUSE-style so the same words work on the command line and in
 * /etc/fstab (type fuse.snapfs, through mount.fuse3): -f, -d, -s, -h, -V,
 * -o store=DIR, the schedule and health options (every=, keep=, max_size=,
 * check=, auto_recover, verify=, on_failure=), the offsite replica
 * (replicate=URL, replicate_every=, passphrase_file=, endpoint=), and
 * libfuse's own
 * (allow_other, default_permissions, ...).  Words only mount(8) cares about
 * (_netdev, noauto, nofail, user, users, auto, defaults, rw, x-*) are
 * accepted and dropped.  Parsing opens, checks and mounts nothing (main.c
 * does that after), so the unit tests drive it without a mount.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

enum { KEY_HELP, KEY_VERSION, KEY_ALLOW_OTHER, KEY_DEFAULT_PERMISSIONS };

static const struct fuse_opt snap_opt_spec[] = {
	{ "store=%s", offsetof(struct snap_opts, store), 0 },
	{ "every=%s", offsetof(struct snap_opts, every), 0 },
	{ "keep=%s", offsetof(struct snap_opts, keep), 0 },
	{ "max_size=%s", offsetof(struct snap_opts, max_size), 0 },
	{ "check=%s", offsetof(struct snap_opts, check), 0 },
	{ "auto_recover", offsetof(struct snap_opts, auto_recover), 1 },
	{ "verify=%s", offsetof(struct snap_opts, verify), 0 },
	{ "on_failure=%s", offsetof(struct snap_opts, on_failure), 0 },
	{ "replicate=%s", offsetof(struct snap_opts, replicate), 0 },
	{ "replicate_every=%s", offsetof(struct snap_opts, replicate_every),
	  0 },
	{ "passphrase_file=%s", offsetof(struct snap_opts, passphrase_file),
	  0 },
	{ "endpoint=%s", offsetof(struct snap_opts, endpoint), 0 },
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("default_permissions", KEY_DEFAULT_PERMISSIONS),
	SNAP_OPT_MOUNT_WORDS,
	FUSE_OPT_END
};

/* The usage text (snapfs -h) on to. */
static void usage(FILE *to, const char *prog)
{
	fprintf(to,
"usage: %s [options] DBFILE MOUNTPOINT\n"
"       %s [options] REPLICA_URL MOUNTPOINT\n"
"\n"
"Mount ZFS-style snapshots of the SQLite database DBFILE at MOUNTPOINT:\n"
"  MOUNTPOINT/current.db    the live database (reads are consistent images;\n"
"                           copying or moving a database onto it restores)\n"
"  MOUNTPOINT/snapshots/    one read-only file per snapshot; touch NAME takes\n"
"                           one, rm deletes, mv renames\n"
"  MOUNTPOINT/restore/      a snapshot or database copied or moved here is\n"
"                           restored onto current.db\n"
"  MOUNTPOINT/.snapfs/      status.json and the event log\n"
"\n"
"snapfs options:\n"
"    -o store=DIR           snapshot store directory (default DBFILE.snapfs)\n"
"    -o every=DURATION      automatic snapshot (kind auto) every DURATION\n"
"                           (30s, 15m, 1h, 1h30m) when the database changed\n"
"    -o keep=RULES          retention after each automatic snapshot:\n"
"                           last:N,hourly:N,daily:N,weekly:N,monthly:N,\n"
"                           yearly:N,within:DURATION; rules may also be\n"
"                           joined by '+' or '/' (keep=last:5+daily:7)\n"
"    -o max_size=SIZE       prune auto and pre-restore snapshots beyond SIZE\n"
"                           (10M, 2G); keep= prunes those two kinds too\n"
"    -o check=DURATION      PRAGMA quick_check of the live database\n"
"    -o auto_recover        on corruption, restore the newest valid snapshot\n"
"    -o verify=DURATION     verify a slice of stored snapshots each period\n"
"    -o on_failure=CMD      run /bin/sh -c CMD when a snapshot, check, verify,\n"
"                           restore or replication (replicate=) fails\n"
"                           (environment: SNAPFS_EVENT,\n"
"                           SNAPFS_SNAPSHOT, SNAPFS_DETAIL, SNAPFS_DB,\n"
"                           SNAPFS_STORE, SNAPFS_TIME); write a comma in\n"
"                           CMD as \\,\n"
"    -o replicate=URL       after each snapshot, upload what the offsite\n"
"                           replica URL lacks (s3://BUCKET/PREFIX with\n"
"                           AWS_* from the environment, or file:///PATH);\n"
"                           created, encrypted, at the first start\n"
"    -o replicate_every=DURATION\n"
"                           replicate at most once per DURATION instead\n"
"    -o passphrase_file=FILE\n"
"                           the replica's passphrase: the first line of a\n"
"                           file only its owner may read (default\n"
"                           $SNAPFS_PASSPHRASE); read once at start\n"
"    -o endpoint=URL        the S3 service of replicate=s3://... or of a\n"
"                           replica mount (default $AWS_ENDPOINT_URL)\n"
"    -h, --help             this text, then libfuse's options\n"
"    -V, --version          versions of snapfs, SQLite and libfuse\n"
"    -f                     stay in the foreground, log to stderr\n"
"    -d                     debug: -f plus every FUSE request\n"
"    -s                     single-threaded\n"
"  mount(8) words (_netdev, noauto, nofail, user, users, auto, defaults,\n"
"  rw, x-*) are accepted and ignored, for /etc/fstab:\n"
"    /srv/app/app.db  /mnt/app  fuse.snapfs  store=/backup/app,nofail  0 0\n"
"\n"
"A replica URL (s3://BUCKET/PREFIX, file:///ABS/PATH; see snapctl replicate)\n"
"mounts that replica read-only: snapshots/ and .snapfs/status.json, no\n"
"current.db; pages are fetched when read.  Passphrase from SNAPFS_PASSPHRASE\n"
"or -o passphrase_file=FILE; S3 endpoint from -o endpoint=URL or\n"
"AWS_ENDPOINT_URL, credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY.\n"
"\n", prog, prog);
}

/* fuse_opt_parse's callback: -h, -V, the two non-option arguments, and
 * the options libfuse keeps (1) or that are dropped (0). */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct snap_opts *o = data;

	(void)outargs;
	switch (key) {
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	case KEY_ALLOW_OTHER:
		o->allow_other = 1;
		return 1;
	case KEY_DEFAULT_PERMISSIONS:
		o->default_permissions = 1;
		return 1;
	case FUSE_OPT_KEY_NONOPT:
		if (o->nonopts == 0) {
			o->nonopts++;
			o->db = strdup(arg);
			return 0;            /* libfuse must not see it */
		}
		if (o->nonopts == 1) {
			o->nonopts++;
			o->mountpoint = strdup(arg);
			return 1;            /* the mount point, for libfuse */
		}
		fprintf(stderr, "snapfs: unexpected argument \"%s\"\n", arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		if (strncmp(arg, "x-", 2) == 0)
			return 0;            /* x-systemd.*, x-gvfs-*, ... */
		return 1;
	}
	return 1;
}

/* 1 when tok (up to a comma) is a keep rule "last:N", "daily:N", ... */
static int keep_rule_word(const char *tok)
{
	static const char *const rules[] = { "last:", "hourly:", "daily:",
		"weekly:", "monthly:", "yearly:", "within:" };
	size_t i;

	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
		if (strncmp(tok, rules[i], strlen(rules[i])) == 0)
			return 1;
	return 0;
}

/*
 * libfuse splits -o values on commas, so "-o keep=last:5,daily:7" would
 * reach us as keep=last:5 and an unknown option daily:7.  Rewrite each -o
 * string first: the keep rules following keep= are joined with '+'.
 * Returns the malloc()ed option string (or NULL: out of memory).
 */
static char *join_keep_rules(const char *in)
{
	size_t n = strlen(in), i = 0, o = 0;
	char *out = malloc(n + 1);
	int in_keep = 0;

	if (!out)
		return NULL;
	while (i <= n) {
		/* at the start of a token */
		int rule = keep_rule_word(in + i);
		if (in_keep && rule && o > 0)
			out[o - 1] = '+';   /* the comma before it */
		else
			in_keep = strncmp(in + i, "keep=", 5) == 0;
		while (i < n && in[i] != ',') {
			if (in[i] == '\\' && i + 1 < n)
				out[o++] = in[i++];
			out[o++] = in[i++];
		}
		out[o++] = i < n ? ',' : '\0';
		i++;
	}
	return out;
}

/* A copy of argv with the keep rules of every -o joined (see above). */
static char **prescan_args(int argc, char *argv[])
{
	char **nv = calloc((size_t)argc + 1, sizeof(*nv));
	int i;

	if (!nv)
		return NULL;
	for (i = 0; i < argc; i++) {
		int opt = i > 0 && strcmp(argv[i - 1], "-o") == 0;
		int glued = strncmp(argv[i], "-o", 2) == 0 && argv[i][2];

		if (opt || glued) {
			char *j = join_keep_rules(argv[i] + (glued ? 2 : 0));
			if (!j)
				goto oom;
			if (glued) {
				char *g;
				if (asprintf(&g, "-o%s", j) < 0) {
					free(j);
					goto oom;
				}
				free(j);
				j = g;
			}
			nv[i] = j;
		} else {
			nv[i] = strdup(argv[i]);
			if (!nv[i])
				goto oom;
		}
	}
	return nv;
oom:
	while (i-- > 0)
		free(nv[i]);
	free(nv);
	return NULL;
}

/* Free a copy made by prescan_args (NULL is fine). */
static void free_args(char **nv)
{
	size_t i;

	for (i = 0; nv && nv[i]; i++)
		free(nv[i]);
	free(nv);
}

/* Parse the schedule and health options into t; 0, or 1 after printing
 * what is wrong. */
static int parse_timer_opts(const struct snap_opts *o,
			    struct snap_timer_opts *t)
{
	snap_err err;

	memset(t, 0, sizeof(*t));
	snap_err_clear(&err);
	t->verify_slice = 10;
	if (o->every && (snap_duration_parse(o->every, &t->every_ns) != 0 ||
			 t->every_ns <= 0)) {
		fprintf(stderr, "snapfs: every=%s: not a positive duration "
			"(examples: 30s, 15m, 1h, 1h30m)\n", o->every);
		return 1;
	}
	if (o->keep) {
		char *k = strdup(o->keep), *p;
		int rc;
		if (!k) {
			fprintf(stderr, "snapfs: out of memory\n");
			return 1;
		}
		for (p = k; *p; p++)
			if (*p == '+' || *p == '/')
				*p = ',';
		rc = snap_keep_parse(k, &t->keep, &err);
		free(k);
		if (rc != 0) {
			fprintf(stderr, "snapfs: keep=%s: %s\n", o->keep,
				err.msg);
			return 1;
		}
	}
	if (o->max_size && (snap_size_parse(o->max_size, &t->keep.max_size)
			    != 0 || t->keep.max_size == 0)) {
		fprintf(stderr, "snapfs: max_size=%s: not a size (examples: "
			"512K, 10M, 2G)\n", o->max_size);
		return 1;
	}
	/* As snapctl prune refuses it: rules that are all 0 keep every
	 * snapshot, which is no retention at all, silently. */
	if (o->keep && snap_keep_empty(&t->keep) && !t->keep.max_size) {
		fprintf(stderr, "snapfs: keep=%s: every rule is 0 (off), so "
			"nothing would be pruned; give a count above 0 (e.g. "
			"keep=last:1) or max_size=SIZE\n", o->keep);
		return 1;
	}
	if ((o->keep || o->max_size) && !o->every) {
		fprintf(stderr, "snapfs: keep= and max_size= apply after "
			"automatic snapshots: they need every=DURATION\n");
		return 1;
	}
	if (o->check && (snap_duration_parse(o->check, &t->check_ns) != 0 ||
			 t->check_ns <= 0)) {
		fprintf(stderr, "snapfs: check=%s: not a positive duration "
			"(examples: 30s, 15m, 1h)\n", o->check);
		return 1;
	}
	if (o->auto_recover && !o->check) {
		fprintf(stderr, "snapfs: auto_recover needs check=DURATION\n");
		return 1;
	}
	t->auto_recover = o->auto_recover;
	if (o->verify && (snap_duration_parse(o->verify, &t->verify_ns) != 0
			  || t->verify_ns <= 0)) {
		fprintf(stderr, "snapfs: verify=%s: not a positive duration "
			"(examples: 10m, 1h, 1d)\n", o->verify);
		return 1;
	}
	if (o->on_failure && !o->on_failure[0]) {
		fprintf(stderr, "snapfs: on_failure= needs a command\n");
		return 1;
	}
	t->on_failure = o->on_failure;
	return 0;
}

/* Parse the offsite replica's options into r; 0, or 1 after printing
 * what is wrong.  The replica itself is opened later (offsite.c). */
static int parse_offsite_opts(const struct snap_opts *o,
			      struct snap_offsite_opts *r)
{
	memset(r, 0, sizeof(*r));
	if (o->replicate && strncmp(o->replicate, "s3://", 5) != 0 &&
	    strncmp(o->replicate, "file:///", 8) != 0) {
		fprintf(stderr, "snapfs: replicate=%s: not a replica URL "
			"(s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH)\n",
			o->replicate);
		return 1;
	}
	if (o->replicate_every &&
	    (snap_duration_parse(o->replicate_every, &r->every_ns) != 0 ||
	     r->every_ns <= 0)) {
		fprintf(stderr, "snapfs: replicate_every=%s: not a positive "
			"duration (examples: 30s, 15m, 1h)\n",
			o->replicate_every);
		return 1;
	}
	if ((o->replicate_every || o->passphrase_file || o->endpoint) &&
	    !o->replicate) {
		fprintf(stderr, "snapfs: replicate_every=, passphrase_file= "
			"and endpoint= apply to an offsite replica: they need "
			"replicate=URL\n");
		return 1;
	}
	if (o->endpoint && !o->endpoint[0]) {
		fprintf(stderr, "snapfs: endpoint= needs a URL\n");
		return 1;
	}
	if (o->passphrase_file && !o->passphrase_file[0]) {
		fprintf(stderr, "snapfs: passphrase_file= needs a file\n");
		return 1;
	}
	r->url = o->replicate;
	r->passphrase_file = o->passphrase_file;
	return 0;
}

/* Parse argv as the daemon does, before anything is checked or opened. */
int snap_options_parse(int argc, char *argv[], struct snap_cmdline *c)
{
	memset(c, 0, sizeof(*c));
	c->nargv = prescan_args(argc, argv);
	if (!c->nargv) {
		fprintf(stderr, "snapfs: out of memory\n");
		return SNAP_OPTIONS_FAIL;
	}
	c->args = (struct fuse_args)FUSE_ARGS_INIT(argc, c->nargv);
	if (fuse_opt_parse(&c->args, &c->o, snap_opt_spec, opt_proc) != 0)
		return SNAP_OPTIONS_FAIL;
	if (c->o.help) {
		usage(stdout, argv[0]);
		printf("FUSE options:\n");
		fuse_cmdline_help();
		fuse_lowlevel_help();
		return SNAP_OPTIONS_DONE;
	}
	if (c->o.version) {
		printf("snapfs version %s\n", SNAPFS_VERSION);
		printf("SQLite version %s\n", sqlite3_libversion());
		printf("libfuse version %s\n", fuse_pkgversion());
		fflush(stdout);
		fuse_lowlevel_version();
		return SNAP_OPTIONS_DONE;
	}
	if (fuse_parse_cmdline(&c->args, &c->fopts) != 0)
		return SNAP_OPTIONS_FAIL;
	if (c->o.nonopts < 2 || !c->fopts.mountpoint) {
		usage(stderr, argv[0]);
		fprintf(stderr, "snapfs: a database and a mount point are "
			"needed\n");
		return SNAP_OPTIONS_FAIL;
	}
	if (parse_timer_opts(&c->o, &c->topts) ||
	    parse_offsite_opts(&c->o, &c->ropts))
		return SNAP_OPTIONS_FAIL;
	return SNAP_OPTIONS_MOUNT;
}

/* Free what snap_options_parse filled in. */
void snap_options_free(struct snap_cmdline *c)
{
	fuse_opt_free_args(&c->args);
	free(c->fopts.mountpoint);
	free(c->o.store);
	free(c->o.every);
	free(c->o.keep);
	free(c->o.max_size);
	free(c->o.check);
	free(c->o.verify);
	free(c->o.on_failure);
	free(c->o.replicate);
	free(c->o.replicate_every);
	free(c->o.passphrase_file);
	free(c->o.endpoint);
	free(c->o.db);
	free(c->o.mountpoint);
	free_args(c->nargv);
	memset(c, 0, sizeof(*c));
}
