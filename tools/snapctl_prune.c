/*
 * tools/snapctl_prune.c — "prune": retention rules applied on demand.
 *
 * One engine call (snap_retention_prune) plans the rules and max_size and,
 * unless --dry-run, deletes what the plan prunes; this file prints every
 * decision it returns, newest first, with the engine's reason:
 *
 *   keep        2026-11-22T120000Z_auto.db   last 1/3, daily 2026-11-22
 *   would prune 2026-11-20T080000Z_auto.db   no rule keeps it
 *   keep        2026-11-19T090000Z_manual.db manual: never pruned
 *                                            automatically
 *
 * then a summary line.  The policy itself (--keep, --max-size) was parsed
 * with the engine's parsers when the command line was read, so a bad spec
 * is a usage error before the store is opened; an empty policy is refused
 * there too, since it would keep everything and is almost certainly a
 * mistake.  Exit 0 whatever was decided; 1 when the engine failed (the
 * snapshots deleted before the failure stay deleted, each delete being
 * complete on its own).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_cmds.h"

/* The decisions as a JSON array of {name, kind, created, keep, reason}. */
static int prune_json(const snap_keep_decision *d, size_t n)
{
	snap_json j;
	size_t i;
	int rc;

	snap_json_init(&j);
	snap_json_arr_begin(&j);
	for (i = 0; i < n; i++) {
		char t[40];

		snap_time_iso(d[i].info.created_ns, t);
		snap_json_obj_begin(&j);
		snap_json_key(&j, "name"); snap_json_str(&j, d[i].info.name);
		snap_json_key(&j, "kind");
		snap_json_str(&j, snap_kind_name(d[i].info.kind));
		snap_json_key(&j, "created"); snap_json_str(&j, t);
		snap_json_key(&j, "keep"); snap_json_bool(&j, d[i].keep);
		snap_json_key(&j, "reason"); snap_json_str(&j, d[i].reason);
		snap_json_obj_end(&j);
	}
	snap_json_arr_end(&j);
	rc = ctl_json_print(&j);
	return rc;
}

/* "prune": apply the retention policy (or, --dry-run, only print it). */
int cmd_prune(snap_store *s, ctl_args *a)
{
	snap_keep_decision *d = NULL;
	size_t n = 0, pruned = 0;
	snap_err err;
	char policy[256];
	int rc;

	snap_keep_format(&a->policy, policy, sizeof(policy));
	snap_err_clear(&err);
	ctl_busy_begin("%s (%s)", a->dry_run ? "planning" : "pruning",
		       policy);
	rc = snap_retention_prune(s, &a->policy, a->dry_run, &d, &n, &pruned,
				  &err);
	ctl_busy_end();
	if (rc < 0)
		return ctl_fail(&err, rc, "pruning");
	rc = ctl_prune_print(d, n, pruned, a);
	free(d);
	return rc;
}

/* What prune decided, as "prune" prints it (a store's or a replica's). */
int ctl_prune_print(const snap_keep_decision *d, size_t n, size_t pruned,
		    const ctl_args *a)
{
	size_t kept = 0, i;
	const char *go = a->dry_run ? "would prune" : "prune";
	char policy[256];
	int w = 4, aw = a->dry_run ? 11 : 5;

	snap_keep_format(&a->policy, policy, sizeof(policy));
	if (a->json)
		return prune_json(d, n);
	for (i = 0; i < n; i++) {
		if ((int)strlen(d[i].info.name) > w)
			w = (int)strlen(d[i].info.name);
		kept += d[i].keep != 0;
	}
	for (i = 0; i < n; i++)
		printf("%-*s %-*s  %s\n", aw, d[i].keep ? "keep" : go, w,
		       d[i].info.name, d[i].reason);
	if (a->dry_run)
		printf("would prune %zu of %zu snapshot%s and keep %zu "
		       "(policy %s); dry run, nothing was deleted\n", pruned,
		       n, n == 1 ? "" : "s", kept, policy);
	else
		printf("pruned %zu of %zu snapshot%s, kept %zu (policy %s)\n",
		       pruned, n, n == 1 ? "" : "s", kept, policy);
	return CTL_EXIT_OK;
}
