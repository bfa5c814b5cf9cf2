/*
 * tools/snapctl_opts.c — snapctl's options: parsing argv with
 * getopt_long, and checking what was given against the command.
 *
 * Options may come before or after the command ("snapctl list --db x.db"
 * and "snapctl --db x.db list" are the same): getopt_long permutes argv.
 * Option values are parsed here (durations, sizes, the keep policy), so a
 * bad value is a usage error before anything is opened.  getopt's own
 * messages are off so that every message starts with "snapctl:".
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_opts.h"

/* getopt_long codes for options without a short form. */
enum {
	CTL_LO_DB = 256,
	CTL_LO_STORE,
	CTL_LO_JSON,
	CTL_LO_VERSION,
	CTL_LO_LABEL,
	CTL_LO_COMMENT,
	CTL_LO_FULL,
	CTL_LO_LIMIT,
	CTL_LO_KEEP,
	CTL_LO_MAX_SIZE,
	CTL_LO_DRY_RUN,
	CTL_LO_RECOVER,
	CTL_LO_PROMETHEUS,
	CTL_LO_WARN_AGE,
	CTL_LO_CRIT_AGE,
	CTL_LO_TABLE,
	CTL_LO_SQL,
};

/* Every option of every command; getopt_long permutes, so order is free. */
static const struct option ctl_long_opts[] = {
	{ "db", required_argument, NULL, CTL_LO_DB },
	{ "store", required_argument, NULL, CTL_LO_STORE },
	{ "json", no_argument, NULL, CTL_LO_JSON },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, CTL_LO_VERSION },
	{ "label", required_argument, NULL, CTL_LO_LABEL },
	{ "comment", required_argument, NULL, CTL_LO_COMMENT },
	{ "full", no_argument, NULL, CTL_LO_FULL },
	{ "limit", required_argument, NULL, CTL_LO_LIMIT },
	{ "keep", required_argument, NULL, CTL_LO_KEEP },
	{ "max-size", required_argument, NULL, CTL_LO_MAX_SIZE },
	{ "dry-run", no_argument, NULL, CTL_LO_DRY_RUN },
	{ "recover", no_argument, NULL, CTL_LO_RECOVER },
	{ "prometheus", no_argument, NULL, CTL_LO_PROMETHEUS },
	{ "warn-age", required_argument, NULL, CTL_LO_WARN_AGE },
	{ "crit-age", required_argument, NULL, CTL_LO_CRIT_AGE },
	{ "table", required_argument, NULL, CTL_LO_TABLE },
	{ "sql", no_argument, NULL, CTL_LO_SQL },
	{ NULL, 0, NULL, 0 },
};

/* The name of a CTL_OPT_* bit, for messages. */
static const char *ctl_opt_name(unsigned bit)
{
	switch (bit) {
	case CTL_OPT_LABEL: return "--label";
	case CTL_OPT_COMMENT: return "--comment";
	case CTL_OPT_FULL: return "--full";
	case CTL_OPT_LIMIT: return "--limit";
	case CTL_OPT_KEEP: return "--keep";
	case CTL_OPT_MAX_SIZE: return "--max-size";
	case CTL_OPT_DRY_RUN: return "--dry-run";
	case CTL_OPT_RECOVER: return "--recover";
	case CTL_OPT_PROMETHEUS: return "--prometheus";
	case CTL_OPT_WARN_AGE: return "--warn-age";
	case CTL_OPT_CRIT_AGE: return "--crit-age";
	case CTL_OPT_TABLE: return "--table";
	default: return "--sql";
	}
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

/* One option (getopt's code and argument) into a; 0 or CTL_EXIT_USAGE. */
static int ctl_parse_opt(int opt, const char *arg, ctl_args *a)
{
	snap_err err;

	switch (opt) {
	case CTL_LO_DB: a->db = arg; break;
	case CTL_LO_STORE: a->store_dir = arg; break;
	case 'C': a->mount = arg; break;
	case CTL_LO_JSON: a->json = 1; break;
	case 'h': a->help = 1; break;
	case CTL_LO_VERSION: a->version = 1; break;
	case CTL_LO_LABEL:
		a->label = arg;
		a->given |= CTL_OPT_LABEL;
		break;
	case CTL_LO_COMMENT:
		a->comment = arg;
		a->given |= CTL_OPT_COMMENT;
		break;
	case CTL_LO_FULL:
		a->full = 1;
		a->given |= CTL_OPT_FULL;
		break;
	case CTL_LO_LIMIT: {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(arg, &end, 10);
		if (errno || end == arg || *end || v == 0 || arg[0] == '-')
			return ctl_usage_error("--limit needs a positive "
					       "number, not '%s'", arg);
		a->limit = (size_t)v;
		a->given |= CTL_OPT_LIMIT;
		break;
	}
	case CTL_LO_KEEP:
		snap_err_clear(&err);
		if (snap_keep_parse(arg, &a->policy, &err) < 0)
			return ctl_usage_error("%s", err.msg[0] ? err.msg :
					       "--keep: not a keep policy");
		a->given |= CTL_OPT_KEEP;
		break;
	case CTL_LO_MAX_SIZE:
		if (snap_size_parse(arg, &a->policy.max_size) < 0)
			return ctl_usage_error("--max-size needs a size such "
					       "as 500M, 2G or 1T (binary "
					       "units), not '%s'", arg);
		a->given |= CTL_OPT_MAX_SIZE;
		break;
	case CTL_LO_DRY_RUN:
		a->dry_run = 1;
		a->given |= CTL_OPT_DRY_RUN;
		break;
	case CTL_LO_RECOVER:
		a->recover = 1;
		a->given |= CTL_OPT_RECOVER;
		break;
	case CTL_LO_PROMETHEUS:
		a->prometheus = 1;
		a->given |= CTL_OPT_PROMETHEUS;
		break;
	case CTL_LO_WARN_AGE:
		a->given |= CTL_OPT_WARN_AGE;
		return ctl_parse_age("--warn-age", arg, &a->warn_age_ns);
	case CTL_LO_CRIT_AGE:
		a->given |= CTL_OPT_CRIT_AGE;
		return ctl_parse_age("--crit-age", arg, &a->crit_age_ns);
	case CTL_LO_TABLE:
		if (!arg[0])
			return ctl_usage_error("--table needs a table name");
		a->table = arg;
		a->given |= CTL_OPT_TABLE;
		break;
	case CTL_LO_SQL:
		a->sql = 1;
		a->given |= CTL_OPT_SQL;
		break;
	}
	return CTL_EXIT_OK;
}

/*
 * Parse argv into a (options anywhere; the first operand is the command,
 * the rest its arguments).  getopt's own messages are off so that every
 * message starts with "snapctl:".  Returns 0 or CTL_EXIT_USAGE.
 */
int ctl_parse(int argc, char **argv, ctl_args *a)
{
	int opt, rc;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hC:", ctl_long_opts,
				  NULL)) != -1) {
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
			rc = ctl_parse_opt(opt, optarg, a);
			if (rc)
				return rc;
		}
	}
	a->pos = argv + optind;
	a->npos = argc - optind;
	return CTL_EXIT_OK;
}

/*
 * What one command's options must satisfy beyond being allowed: prune
 * needs a policy, status one output format and ordered thresholds, export
 * to standard output needs --sql.  0 or CTL_EXIT_USAGE.
 */
static int ctl_check_combination(const ctl_cmd *c, const ctl_args *a)
{
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
	    (a->given & CTL_OPT_WARN_AGE) && (a->given & CTL_OPT_CRIT_AGE) &&
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
	unsigned extra = a->given & ~c->opts, bit;

	for (bit = 1; extra; bit <<= 1)
		if (extra & bit)
			return ctl_usage_error("option %s does not apply to "
					       "'%s'", ctl_opt_name(bit),
					       c->name);
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
	if (c->run && !a->db && !a->store_dir && !a->mount)
		return ctl_usage_error("no database given; use --db FILE (or "
				       "--store DIR for an existing store, or "
				       "-C MOUNTPOINT for a mount)");
	return ctl_check_combination(c, a);
}
