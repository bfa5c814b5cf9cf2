/*
 * tools/snapctl_opts.c — snapctl's options: one table, one row per option
 * (its name, its argument, its help, the commands that accept it, how its
 * value is stored), from which getopt_long's table, the short options,
 * the "does not apply" check and the options part of --help are made.
 *
 * Options may come before or after the command ("snapctl list --db x.db"
 * and "snapctl --db x.db list" are the same): getopt_long permutes argv.
 * Option values are parsed here (durations, sizes, the keep policy), so a
 * bad value is a usage error before anything is opened.  getopt's own
 * messages are off so that every message starts with "snapctl:".  The
 * bash completion (snapctl.bash-completion) lists the same options per
 * command; keep it in step with the table.
 */
#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_opts.h"

/* How an option's value is stored in ctl_args. */
typedef enum ctl_set {
	CTL_SET_FLAG,    /* an int field becomes 1 */
	CTL_SET_STR,     /* a const char * field points at the argument */
	CTL_SET_PARSE,   /* parse(): the value needs parsing or checking */
} ctl_set;

/* One option. */
typedef struct ctl_opt {
	const char *name;     /* the long name without "--", or NULL */
	char letter;          /* the short form ('h' for -h), or 0 */
	const char *arg;      /* its argument in usage ("FILE"); NULL: none */
	const char *help;     /* for --help (global options; a command's
				 details explain its own options) */
	const char *cmds;     /* " create import ": the commands that accept
				 it; NULL: every command (a global option) */
	ctl_set set;
	size_t field;         /* offsetof(ctl_args, ...) for FLAG and STR */
	int (*parse)(const char *arg, ctl_args *a);  /* for PARSE */
} ctl_opt;

#define CTL_FLAG(f) CTL_SET_FLAG, offsetof(ctl_args, f), NULL
#define CTL_STR(f) CTL_SET_STR, offsetof(ctl_args, f), NULL
#define CTL_PARSE(fn) CTL_SET_PARSE, 0, fn

/* "--limit N": a positive count. */
static int ctl_parse_limit(const char *arg, ctl_args *a)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || end == arg || *end || v == 0 || arg[0] == '-')
		return ctl_usage_error("--limit needs a positive number, not "
				       "'%s'", arg);
	a->limit = (size_t)v;
	return CTL_EXIT_OK;
}

/* "--keep SPEC": a retention policy. */
static int ctl_parse_keep(const char *arg, ctl_args *a)
{
	snap_err err;

	snap_err_clear(&err);
	if (snap_keep_parse(arg, &a->policy, &err) < 0)
		return ctl_usage_error("%s", err.msg[0] ? err.msg :
				       "--keep: not a keep policy");
	a->keep_spec = arg;
	return CTL_EXIT_OK;
}

/* "--max-size SIZE". */
static int ctl_parse_max_size(const char *arg, ctl_args *a)
{
	if (snap_size_parse(arg, &a->policy.max_size) < 0)
		return ctl_usage_error("--max-size needs a size such as 500M, "
				       "2G or 1T (binary units), not '%s'",
				       arg);
	return CTL_EXIT_OK;
}

/* --warn-age/--crit-age D into *ns; 0 or CTL_EXIT_USAGE. */
static int ctl_parse_age(const char *opt, const char *arg, int64_t *ns)
{
	if (snap_duration_parse(arg, ns) < 0)
		return ctl_usage_error("%s needs a duration such as 30m, 1h, 2d "
				       "or 1h30m (units w d h m s), not '%s'",
				       opt, arg);
	return CTL_EXIT_OK;
}

/* "--warn-age D". */
static int ctl_parse_warn_age(const char *arg, ctl_args *a)
{
	a->warn_age = 1;
	return ctl_parse_age("--warn-age", arg, &a->warn_age_ns);
}

/* "--crit-age D". */
static int ctl_parse_crit_age(const char *arg, ctl_args *a)
{
	a->crit_age = 1;
	return ctl_parse_age("--crit-age", arg, &a->crit_age_ns);
}

/* "--table T": a name, not empty. */
static int ctl_parse_table(const char *arg, ctl_args *a)
{
	if (!arg[0])
		return ctl_usage_error("--table needs a table name");
	a->table = arg;
	return CTL_EXIT_OK;
}

/* Every option of every command; getopt_long permutes, so order is free,
 * and --help lists the global ones in this order. */
static const ctl_opt ctl_opts[] = {
	{ "db", 0, "FILE", "the live database; its store is FILE.snapfs/",
	  NULL, CTL_STR(db) },
	{ "store", 0, "DIR", "the store directory; alone, an existing store,\n"
	  "                   which records its database's path",
	  NULL, CTL_STR(store_dir) },
	{ NULL, 'C', "MOUNTPOINT", "the database and store of a snapfs mount",
	  NULL, CTL_STR(mount) },
	{ "json", 0, NULL, "machine-readable output on stdout",
	  NULL, CTL_FLAG(json) },
	{ "help", 'h', NULL, "show this help (or a command's) and exit",
	  NULL, CTL_FLAG(help) },
	{ "version", 'V', NULL, "show the version and exit",
	  NULL, CTL_FLAG(version) },
	{ "label", 0, "L", "the label in the snapshot's name",
	  " create import ", CTL_STR(label) },
	{ "comment", 0, "C", "a comment kept with the snapshot",
	  " create import ", CTL_STR(comment) },
	{ "full", 0, NULL, "SQLite's integrity_check too",
	  " verify ", CTL_FLAG(full) },
	{ "limit", 0, "N", "only the last N events",
	  " log ", CTL_PARSE(ctl_parse_limit) },
	{ "keep", 0, "SPEC", "the retention rules",
	  " prune ", CTL_PARSE(ctl_parse_keep) },
	{ "max-size", 0, "SIZE", "the most the store's data may take",
	  " prune ", CTL_PARSE(ctl_parse_max_size) },
	{ "dry-run", 0, NULL, "say what would be done, do nothing",
	  " prune restore ", CTL_FLAG(dry_run) },
	{ "recover", 0, NULL, "restore the newest sound snapshot",
	  " check ", CTL_FLAG(recover) },
	{ "prometheus", 0, NULL, "the status as Prometheus text",
	  " status ", CTL_FLAG(prometheus) },
	{ "warn-age", 0, "D", "WARNING when the newest snapshot is D old",
	  " status ", CTL_PARSE(ctl_parse_warn_age) },
	{ "crit-age", 0, "D", "CRITICAL when it is D old, or there is none",
	  " status ", CTL_PARSE(ctl_parse_crit_age) },
	{ "table", 0, "T", "restore only table T",
	  " restore ", CTL_PARSE(ctl_parse_table) },
	{ "sql", 0, NULL, "a SQL dump instead of an image",
	  " export ", CTL_FLAG(sql) },
	{ "replica", 0, "URL", "work on the replica at URL (s3://BUCKET/PREFIX\n"
	  "                   or file:///PATH) instead of a store",
	  " list show verify export restore prune log passphrase ",
	  CTL_STR(replica) },
	{ "endpoint", 0, "URL", "the S3 service (default: AWS_ENDPOINT_URL)",
	  " replicate list show verify export restore prune log passphrase ",
	  CTL_STR(endpoint) },
	{ "passphrase-file", 0, "FILE", "the replica's passphrase (default: "
	  "SNAPFS_PASSPHRASE)",
	  " replicate list show verify export restore prune log passphrase ",
	  CTL_STR(pass_file) },
	{ "new-passphrase-file", 0, "FILE", "the new passphrase (default: "
	  "SNAPFS_NEW_PASSPHRASE)", " passphrase ", CTL_STR(new_pass_file) },
	{ "no-encryption", 0, NULL, "a replica without encryption (to create,\n"
	  "                   or to accept despite a passphrase)",
	  " replicate list show verify export restore prune log ",
	  CTL_FLAG(no_encryption) },
};

#define CTL_NOPTS (sizeof(ctl_opts) / sizeof(ctl_opts[0]))
_Static_assert(CTL_NOPTS <= 32, "ctl_args.given has a bit per option");
/* getopt_long's code for row i of a long-only option (past any char). */
#define CTL_OPT_CODE 256

/* "--name" or "-C", for messages. */
static void ctl_opt_spelling(const ctl_opt *o, char *out, size_t cap)
{
	if (o->name)
		snprintf(out, cap, "--%s", o->name);
	else
		snprintf(out, cap, "-%c", o->letter);
}

/* Store option row i's value in a, and note it was given; 0 or
 * CTL_EXIT_USAGE. */
static int ctl_opt_store(size_t i, const char *arg, ctl_args *a)
{
	const ctl_opt *o = &ctl_opts[i];

	a->given |= 1u << i;
	switch (o->set) {
	case CTL_SET_FLAG:
		*(int *)(void *)((char *)a + o->field) = 1;
		return CTL_EXIT_OK;
	case CTL_SET_STR:
		*(const char **)(void *)((char *)a + o->field) = arg;
		return CTL_EXIT_OK;
	default:
		return o->parse(arg, a);
	}
}

/* The row getopt's code opt stands for, or -1. */
static int ctl_opt_row(int opt)
{
	size_t i;

	if (opt >= CTL_OPT_CODE && (size_t)(opt - CTL_OPT_CODE) < CTL_NOPTS)
		return opt - CTL_OPT_CODE;
	for (i = 0; i < CTL_NOPTS; i++)
		if (ctl_opts[i].letter && ctl_opts[i].letter == opt)
			return (int)i;
	return -1;
}

/* The global options for --help, from the table, in its order. */
void ctl_usage_options(FILE *f)
{
	size_t i;

	for (i = 0; i < CTL_NOPTS; i++) {
		const ctl_opt *o = &ctl_opts[i];
		char head[64];

		if (o->cmds)
			continue;
		if (o->name && o->letter)
			snprintf(head, sizeof(head), "-%c, --%s", o->letter,
				 o->name);
		else
			ctl_opt_spelling(o, head, sizeof(head));
		if (o->arg)
			snprintf(head + strlen(head), sizeof(head) -
				 strlen(head), " %s", o->arg);
		fprintf(f, "  %-16s %s\n", head, o->help);
	}
}

/*
 * Parse argv into a (options anywhere; the first operand is the command,
 * the rest its arguments).  getopt_long's table and the short options are
 * made from ctl_opts.  Returns 0 or CTL_EXIT_USAGE.
 */
int ctl_parse(int argc, char **argv, ctl_args *a)
{
	struct option lo[CTL_NOPTS + 1];
	char shorts[2 * CTL_NOPTS + 2] = ":";
	size_t i, n = 0, ns = 1;
	int opt, rc, row;

	for (i = 0; i < CTL_NOPTS; i++) {
		const ctl_opt *o = &ctl_opts[i];

		if (o->letter) {
			shorts[ns++] = o->letter;
			if (o->arg)
				shorts[ns++] = ':';
		}
		if (o->name) {
			lo[n].name = o->name;
			lo[n].has_arg = o->arg ? required_argument :
						 no_argument;
			lo[n].flag = NULL;
			lo[n].val = CTL_OPT_CODE + (int)i;
			n++;
		}
	}
	shorts[ns] = '\0';
	memset(&lo[n], 0, sizeof(lo[n]));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		switch (opt) {
		case ':':
			if (optopt > 0 && optopt < 256)
				return ctl_usage_error("option '-%c' needs an "
						       "argument", optopt);
			return ctl_usage_error("option '%s' needs an argument",
					       argv[optind - 1]);
		case '?':
			/* optopt: a short option's letter, a long option's
			 * code when it was given "=value" it does not take,
			 * 0 for an unknown long option. */
			if (optopt > 0 && optopt < 256)
				return ctl_usage_error("unknown option '-%c'",
						       optopt);
			if (optopt >= 256)
				return ctl_usage_error("option '%.*s' takes "
						       "no argument",
						       (int)strcspn(argv[optind - 1], "="),
						       argv[optind - 1]);
			return ctl_usage_error("unknown option '%s'",
					       argv[optind - 1]);
		default:
			row = ctl_opt_row(opt);
			rc = row < 0 ? ctl_usage_error("unknown option") :
			     ctl_opt_store((size_t)row, optarg, a);
			if (rc)
				return rc;
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	return CTL_EXIT_OK;
}

/* 1 when the option row o applies to the command called name. */
static int ctl_opt_applies(const ctl_opt *o, const char *name)
{
	char word[64];

	if (!o->cmds)
		return 1;
	snprintf(word, sizeof(word), " %s ", name);
	return strstr(o->cmds, word) != NULL;
}

/*
 * What one command's options must satisfy beyond being allowed: prune
 * needs a policy (on a replica --keep, never --max-size), status one
 * output format and ordered thresholds, export to standard output needs
 * --sql.  0 or CTL_EXIT_USAGE.
 */
static int ctl_check_combination(const ctl_cmd *c, const ctl_args *a)
{
	if (!strcmp(c->name, "prune") && a->replica && a->policy.max_size)
		return ctl_usage_error("prune: --max-size works on a store, "
				       "not a replica (give --keep SPEC)");
	if (!strcmp(c->name, "prune") && a->replica &&
	    snap_keep_empty(&a->policy))
		return ctl_usage_error("prune on a replica needs a retention "
				       "policy: --keep SPEC (e.g. --keep "
				       "last:10,daily:7,within:2d)");
	if (!strcmp(c->name, "prune") && snap_keep_empty(&a->policy) &&
	    !a->policy.max_size && a->keep_spec)
		return ctl_usage_error("prune --keep %s: every rule is 0 (off), "
				       "so nothing would be pruned; give a "
				       "count above 0 (e.g. last:1) or "
				       "--max-size SIZE; to remove one "
				       "snapshot: snapctl delete NAME",
				       a->keep_spec);
	if (!strcmp(c->name, "prune") && snap_keep_empty(&a->policy) &&
	    !a->policy.max_size)
		return ctl_usage_error("prune needs a retention policy: "
				       "--keep SPEC (e.g. --keep "
				       "last:10,daily:7,within:2d) and/or "
				       "--max-size SIZE; without one it "
				       "would keep everything");
	if (!strcmp(c->name, "status") && a->json && a->prometheus)
		return ctl_usage_error("status: --json and --prometheus "
				       "exclude each other");
	if (!strcmp(c->name, "status") &&
	    a->warn_age && a->crit_age &&
	    a->warn_age_ns > a->crit_age_ns)
		return ctl_usage_error("status: --warn-age must not be longer "
				       "than --crit-age");
	if (!strcmp(c->name, "export") && !a->sql && a->npos == 2 &&
	    !strcmp(a->pos[1], "-"))
		return ctl_usage_error("export to standard output ('-') needs "
				       "--sql: an image is written to a file");
	return CTL_EXIT_OK;
}

/*
 * Check the command's arguments and options against its table entry, and
 * that a store was named.  Returns 0 or CTL_EXIT_USAGE.
 */
int ctl_check(const ctl_cmd *c, const ctl_args *a)
{
	size_t i;

	for (i = 0; i < CTL_NOPTS; i++) {
		char spelled[32];

		if (!(a->given & (1u << i)) ||
		    ctl_opt_applies(&ctl_opts[i], c->name))
			continue;
		ctl_opt_spelling(&ctl_opts[i], spelled, sizeof(spelled));
		return ctl_usage_error("option %s does not apply to '%s'",
				       spelled, c->name);
	}
	if (a->npos < c->min_args)
		return ctl_usage_error("missing argument for '%s' (usage: "
				       "snapctl %s %s)", c->name, c->name,
				       c->args);
	if (a->npos > c->max_args)
		return ctl_usage_error("unexpected argument '%s' for '%s' "
				       "(usage: snapctl %s%s%s)",
				       a->pos[c->max_args], c->name, c->name,
				       c->args[0] ? " " : "", c->args);
	if (c->run && a->mount && (a->db || a->store_dir))
		return ctl_usage_error("-C MOUNTPOINT names the database and "
				       "the store itself; give it without "
				       "--db and --store");
	if (a->replica)
		return ctl_check_combination(c, a);
	if (c->run && !a->db && !a->store_dir && !a->mount)
		return ctl_usage_error("no database given; use --db FILE (or "
				       "--store DIR for an existing store, or "
				       "-C MOUNTPOINT for a mount)");
	return ctl_check_combination(c, a);
}
