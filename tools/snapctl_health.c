/*
 * tools/snapctl_health.c — "check" (the live database's health, on demand)
 * and "status" (a summary for people, JSON and Prometheus for machines, and
 * a Nagios-style freshness check).
 *
 * check is snap_health_check: PRAGMA quick_check of the live database; on
 * corruption the engine keeps the corrupt state as a snapshot of kind
 * recovery and, with --recover, restores the newest snapshot that passes
 * full verification, skipping damaged ones.  Exit 0 healthy or recovered,
 * 1 corrupt (not recovered) or the check could not run.  Which damaged
 * snapshots were skipped is only in the engine's "check" event, so that
 * event's detail is shown (and given in JSON) after a recovery.
 *
 * status is snap_status_get, formatted three ways: text, snap_status_json
 * (the contract for scripts) or snap_status_prometheus.  The next scheduled
 * snapshot belongs to the daemon; snapctl knows it only with -C, from the
 * mount's status file.
 *
 * With --warn-age and/or --crit-age, status is a monitoring plugin, and
 * its exit status follows the Nagios plugin convention rather than
 * snapctl's: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.  CRITICAL when there
 * is no snapshot (no store counts as none) or the newest is at least
 * crit-age old; WARNING when at least warn-age old.  "At least" (>=) makes
 * a threshold of 0s always fire, which is what a test or a "must never be
 * quiet" monitor wants.  The text output's first line is the plugin line,
 *   OK - newest snapshot NAME is AGE old | age=303s;3600;86400;0 snapshots=5
 * with performance data after "|" as plugins write it; --json adds a
 * "freshness" object; --prometheus output is left untouched (its exit
 * status still says the state).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_cmds.h"

#define NS ((int64_t)1000000000)

static const char *const health_state_name[] = {
	"OK", "WARNING", "CRITICAL", "UNKNOWN",
};

/* ---- check -------------------------------------------------------------- */

/* The detail of the newest event if it is a "check" event, else "". */
static void health_last_check_detail(snap_store *s, char *out, size_t cap)
{
	snap_event *ev = NULL;
	size_t n = 0;

	out[0] = '\0';
	if (snap_event_list(s, 0, 1, &ev, &n, NULL) == 0 && n == 1 &&
	    !strcmp(ev[0].kind, "check"))
		snprintf(out, cap, "%s", ev[0].detail);
	free(ev);
}

/* "check" as one JSON object. */
static int health_check_json(snap_store *s, const ctl_args *a, int rc,
			     const snap_check_result *r, const char *detail)
{
	snap_json j;
	int out;

	ctl_json_object(&j);
	snap_json_key(&j, "database");
	snap_json_str(&j, snap_store_db_path(s));
	snap_json_key(&j, "ok"); snap_json_bool(&j, rc == 0);
	snap_json_key(&j, "healthy"); snap_json_bool(&j, !r->corrupt);
	snap_json_key(&j, "corrupt"); snap_json_bool(&j, r->corrupt);
	snap_json_key(&j, "problem");
	snap_json_str_or_null(&j, r->corrupt ? r->problem : NULL);
	snap_json_key(&j, "recovery_snapshot");
	snap_json_str_or_null(&j, r->have_recovery ? r->recovery.name :
			      NULL);
	snap_json_key(&j, "recover"); snap_json_bool(&j, a->recover);
	snap_json_key(&j, "recovered"); snap_json_bool(&j, r->restored);
	snap_json_key(&j, "restored_from");
	snap_json_str_or_null(&j, r->restored ? r->restored_from.name :
			      NULL);
	snap_json_key(&j, "skipped_damaged");
	snap_json_int(&j, r->skipped_bad);
	snap_json_key(&j, "detail"); snap_json_str(&j, detail);
	snap_json_obj_end(&j);
	out = ctl_json_print(&j);
	return out;
}

/* "check [--recover]": the live database's health, for people or JSON. */
int cmd_check(snap_store *s, ctl_args *a)
{
	const char *db = snap_store_db_path(s), *skipped;
	snap_check_result r;
	snap_err err;
	char detail[SNAP_ERR_MSG];
	int rc, out;

	memset(&r, 0, sizeof(r));
	snap_err_clear(&err);
	ctl_busy_begin("checking %s", db);
	rc = snap_health_check(s, a->recover, &r, &err);
	ctl_busy_end();
	if (rc < 0 && rc != -EBADMSG)
		return ctl_fail(&err, rc, "checking the live database");
	health_last_check_detail(s, detail, sizeof(detail));
	if (a->json) {
		out = health_check_json(s, a, rc, &r, detail);
	} else if (!r.corrupt) {
		printf("healthy: %s passed PRAGMA quick_check\n", db);
		out = CTL_EXIT_OK;
	} else {
		printf("corrupt: %s: %s\n", db, r.problem);
		if (r.have_recovery)
			printf("the corrupt state is kept as snapshot %s\n",
			       r.recovery.name);
		else
			printf("the corrupt state could not be kept as a "
			       "snapshot (see 'snapctl log')\n");
		if (r.restored) {
			printf("recovered: restored snapshot %s (full "
			       "verification passed)\n",
			       r.restored_from.name);
			skipped = strstr(detail, "; skipped ");
			if (skipped && r.skipped_bad)
				printf("skipped %s\n", skipped + 10);
			else
				printf("skipped %u damaged snapshot%s\n",
				       r.skipped_bad,
				       r.skipped_bad == 1 ? "" : "s");
		} else if (a->recover) {
			printf("not recovered: no intact snapshot could be "
			       "restored (%u damaged skipped)\n",
			       r.skipped_bad);
		}
		out = CTL_EXIT_OK;
	}
	if (rc == -EBADMSG) {
		ctl_fail(&err, rc, db);
		return CTL_EXIT_FAIL;
	}
	return out;
}

/* ---- status --------------------------------------------------------------- */

/* The freshness state and its plugin line (without perfdata). */
static int health_freshness(const ctl_args *a, const snap_status *st,
			    char *line, size_t cap)
{
	char age[48];
	int state = CTL_NAGIOS_OK;

	if (!st->have_newest) {
		snprintf(line, cap, "CRITICAL - no snapshot of %s (store %s)",
			 st->db_path, st->store_dir);
		return CTL_NAGIOS_CRITICAL;
	}
	if (a->crit_age &&
	    st->newest_age_ns >= a->crit_age_ns)
		state = CTL_NAGIOS_CRITICAL;
	else if (a->warn_age &&
		 st->newest_age_ns >= a->warn_age_ns)
		state = CTL_NAGIOS_WARNING;
	ctl_age_human(st->newest_age_ns, age);
	snprintf(line, cap, "%s - newest snapshot %s is %s old",
		 health_state_name[state], st->newest.name, age);
	return state;
}

/* " | age=303s;3600;86400;0 snapshots=5": Nagios performance data. */
static void health_perfdata(const ctl_args *a, const snap_status *st,
			    char *out, size_t cap)
{
	char warn[32] = "", crit[32] = "";

	if (a->warn_age)
		snprintf(warn, sizeof(warn), "%" PRId64, a->warn_age_ns / NS);
	if (a->crit_age)
		snprintf(crit, sizeof(crit), "%" PRId64, a->crit_age_ns / NS);
	if (st->have_newest)
		snprintf(out, cap, " | age=%" PRId64 "s;%s;%s;0 snapshots=%"
			 PRId64, st->newest_age_ns / NS, warn, crit,
			 st->count);
	else
		snprintf(out, cap, " | snapshots=%" PRId64, st->count);
}

/* "freshness": {"state": ..., "message": ..., thresholds in seconds}. */
static void health_json_freshness(snap_json *j, const ctl_args *a,
				  int state, const char *line)
{
	snap_json_key(j, "freshness");
	snap_json_obj_begin(j);
	snap_json_key(j, "state"); snap_json_str(j, health_state_name[state]);
	snap_json_key(j, "exit_status"); snap_json_int(j, state);
	snap_json_key(j, "message"); snap_json_str(j, line);
	snap_json_key(j, "warn_age_seconds");
	if (a->warn_age)
		snap_json_int(j, a->warn_age_ns / NS);
	else
		snap_json_null(j);
	snap_json_key(j, "crit_age_seconds");
	if (a->crit_age)
		snap_json_int(j, a->crit_age_ns / NS);
	else
		snap_json_null(j);
	snap_json_obj_end(j);
}

/* "2026-11-22T01:49:00Z ok: detail", or "never". */
static void health_print_last(const char *what, int64_t ns, int ok,
			      const char *detail)
{
	char t[40];

	if (!ns) {
		printf("%-16s never\n", what);
		return;
	}
	ctl_time_short(ns, t);
	printf("%-16s %s %s%s%s\n", what, t, ok ? "ok" : "FAILED",
	       detail[0] ? ": " : "", detail);
}

/* The summary for people. */
static void health_print_status(const snap_status *st)
{
	char a[32], b[32], t[40], age[48];
	int k, first = 1;

	printf("%-16s %s\n", "database:", st->db_path);
	printf("%-16s %s\n", "store:", st->store_dir);
	printf("%-16s %" PRId64, "snapshots:", st->count);
	for (k = 0; k < SNAP_KIND_COUNT; k++) {
		if (!st->count_by_kind[k])
			continue;
		printf("%s%s %" PRId64, first ? " (" : ", ",
		       snap_kind_name((snap_kind)k), st->count_by_kind[k]);
		first = 0;
	}
	printf("%s\n", first ? "" : ")");
	if (st->have_newest) {
		ctl_time_short(st->newest.created_ns, t);
		ctl_age_human(st->newest_age_ns, age);
		printf("%-16s %s (%s, %s), %s old\n", "newest:",
		       st->newest.name, snap_kind_name(st->newest.kind), t,
		       age);
	} else {
		printf("%-16s none\n", "newest:");
	}
	ctl_size_human(st->stats.stored_bytes, a);
	ctl_size_human(st->stats.file_bytes, b);
	printf("%-16s %s of data, %s on disk\n", "store size:", a, b);
	ctl_size_human(st->stats.logical_bytes, a);
	printf("%-16s %s (the snapshots' images together)\n",
	       "logical size:", a);
	if (st->dedup_ratio > 0)
		printf("%-16s %.2f\n", "dedup ratio:", st->dedup_ratio);
	else
		printf("%-16s -\n", "dedup ratio:");
	health_print_last("last restore:", st->last_restore_ns,
			  st->last_restore_ok, st->last_restore);
	health_print_last("last check:", st->last_check_ns,
			  st->last_check_ok, st->last_check);
	health_print_last("last verify:", st->last_verify_ns,
			  st->last_verify_ok, st->last_verify);
	if (st->last_full_scrub_ns) {
		ctl_time_short(st->last_full_scrub_ns, t);
		printf("%-16s %s\n", "last full scrub:", t);
	} else {
		printf("%-16s never\n", "last full scrub:");
	}
	if (st->next_snapshot_ns) {
		ctl_time_short(st->next_snapshot_ns, t);
		if (st->interval_ns > 0) {
			ctl_age_human(st->interval_ns, age);
			printf("%-16s %s (every %s)\n", "next snapshot:", t,
			       age);
		} else {
			printf("%-16s %s\n", "next snapshot:", t);
		}
	}
	if (st->have_replica) {
		if (st->have_replica_lag) {
			ctl_age_human(st->replica_lag_ns, age);
			printf("%-16s %s, newest %s (%s behind)\n", "replica:",
			       st->replica_url, st->replica_newest, age);
		} else {
			printf("%-16s %s, newest %s\n", "replica:",
			       st->replica_url, st->replica_newest[0] ?
			       st->replica_newest : "unknown");
		}
		health_print_last("last replicate:", st->last_replicate_ns,
				  st->last_replicate_ok, st->last_replicate);
		if (st->replica_running_ns) {
			ctl_time_short(st->replica_running_ns, t);
			printf("%-16s since %s\n", "replicating:", t);
		}
	}
}

/* "status": the summary, as text, JSON or Prometheus; with thresholds a
 * Nagios check. */
int cmd_status(snap_store *s, ctl_args *a)
{
	int monitor = a->warn_age || a->crit_age;
	snap_status *st;
	snap_err err;
	char line[8192 + 256], perf[160];
	int rc, state = CTL_NAGIOS_OK;

	/* snap_status holds two paths: keep it off the stack. */
	st = calloc(1, sizeof(*st));
	if (!st)
		return ctl_error("out of memory");
	snap_err_clear(&err);
	rc = snap_status_get(s, snap_time_now_ns(), st, &err);
	if (rc < 0) {
		free(st);
		ctl_fail(&err, rc, "reading the status");
		if (!monitor)
			return CTL_EXIT_FAIL;
		if (!a->json && !a->prometheus)
			printf("UNKNOWN - the status of %s could not be read: "
			       "%s\n", snap_store_db_path(s), err.msg[0] ?
			       err.msg : strerror(-rc));
		return CTL_NAGIOS_UNKNOWN;
	}
	if (a->mount_next_ns) {
		st->next_snapshot_ns = a->mount_next_ns;
		st->interval_ns = a->mount_interval_ns;
	}
	/* -C: the replica the mount reports (its replicate=URL), as its
	 * status.json does, not the newest event's, which may be another's. */
	if (a->mount_replica &&
	    (rc = snap_status_replica(s, st, a->mount_replica, &err)) < 0) {
		free(st);
		ctl_fail(&err, rc, "reading the status");
		return monitor ? CTL_NAGIOS_UNKNOWN : CTL_EXIT_FAIL;
	}
	if (a->mount_replica)
		st->replica_running_ns = a->mount_replica_running_ns;
	if (monitor)
		state = health_freshness(a, st, line, sizeof(line));
	if (a->json) {
		snap_json j, eng;

		snap_json_init(&eng);
		snap_status_json(&eng, st);
		ctl_json_object(&j);
		snap_json_fields(&j, &eng);
		if (monitor)
			health_json_freshness(&j, a, state, line);
		snap_json_obj_end(&j);
		rc = ctl_json_print(&j);
		snap_json_free(&eng);
	} else if (a->prometheus) {
		char *text = snap_status_prometheus(st);

		rc = text ? CTL_EXIT_OK : ctl_error("out of memory");
		if (text)
			fputs(text, stdout);
		free(text);
	} else {
		if (monitor) {
			health_perfdata(a, st, perf, sizeof(perf));
			printf("%s%s\n", line, perf);
		}
		health_print_status(st);
		rc = CTL_EXIT_OK;
	}
	free(st);
	if (rc)
		return monitor ? CTL_NAGIOS_UNKNOWN : rc;
	return monitor ? state : CTL_EXIT_OK;
}

/* "status" with thresholds and no store to read (ctl_cmds.h). */
int ctl_status_no_store(const ctl_args *a, int missing)
{
	char dir[4096 + 16], line[8192 + 256], *def = NULL;
	int state = missing ? CTL_NAGIOS_CRITICAL : CTL_NAGIOS_UNKNOWN;

	if (!a->store_dir && a->db)
		def = snap_store_default_dir(a->db);
	snprintf(dir, sizeof(dir), "%s", a->store_dir ? a->store_dir :
		 def ? def : "?");
	free(def);
	if (missing)
		snprintf(line, sizeof(line), "CRITICAL - no snapshot of %s: "
			 "no store at %s", a->db ? a->db : "the database",
			 dir);
	else
		snprintf(line, sizeof(line), "UNKNOWN - the store %s could "
			 "not be opened (see the error above)", dir);
	if (a->json) {
		snap_json j;

		ctl_json_object(&j);
		health_json_freshness(&j, a, state, line);
		snap_json_obj_end(&j);
		if (ctl_json_print(&j))
			state = CTL_NAGIOS_UNKNOWN;
	} else if (!a->prometheus) {
		printf("%s%s\n", line, missing ? " | snapshots=0" : "");
	}
	return state;
}
