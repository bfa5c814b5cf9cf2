/*
 * tools/ctl_opts.h — snapctl's command line: a command's row in main's
 * table (ctl_cmd), parsing argv into ctl_args, and checking the result
 * against the command (snapctl_opts.c).
 */
#ifndef TOOLS_CTL_OPTS_H
#define TOOLS_CTL_OPTS_H

#include "ctl.h"

/* One command: the table in snapctl.c replaces an if-chain in main(). */
typedef struct ctl_cmd {
	const char *name;
	int (*run)(snap_store *s, ctl_args *a);  /* NULL: needs no store */
	const char *args;       /* usage of its arguments and options */
	const char *summary;    /* one line for --help; NULL: hidden */
	const char *details;    /* "snapctl help CMD": options, output, exit
				   status; NULL: the summary says it all */
	int min_args;           /* positional arguments required */
	int max_args;           /* and allowed */
	unsigned open_flags;    /* SNAP_OPEN_* for snap_store_open: CREATE
				   for create and import, READONLY for
				   the commands that only read */
} ctl_cmd;

/* Parse argv into a (options anywhere; the first operand is the command,
 * the rest its arguments); 0 or CTL_EXIT_USAGE. */
int ctl_parse(int argc, char **argv, ctl_args *a);
/* The global options for --help, one a line, from the option table. */
void ctl_usage_options(FILE *f);
/* Check the command's arguments and options against its table row, and
 * that a store was named; 0 or CTL_EXIT_USAGE. */
int ctl_check(const ctl_cmd *c, const ctl_args *a);

#endif /* TOOLS_CTL_OPTS_H */
