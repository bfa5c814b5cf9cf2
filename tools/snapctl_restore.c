/*
 * tools/snapctl_restore.c — restore (verified, whole database; --dry-run
 * and --table are in snapctl_diff.c) and verify (pages and hashes, with
 * --full SQLite's integrity_check too), with progress on a terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl_cmds.h"

/* ---- restore ------------------------------------------------------------ */

/* A restore's progress on the busy line: which of its three passes over
 * the image runs (restore.h), as a bar, redrawn when the percentage moves. */
static void ctl_restore_progress(void *ctx, uint64_t done, uint64_t total)
{
	static const char *const pass[] = { "verifying the snapshot",
					     "copying", "checking the result" };
	int *last = ctx;
	int pct = total ? (int)(done * 100 / total) : 100;
	uint64_t k = total ? done * 3 / total : 2;

	if (pct == *last)
		return;
	*last = pct;
	ctl_busy_bar("restoring", done, total, pass[k > 2 ? 2 : k]);
}

/* 1 when path is current.db of a snapfs mount serving s's database (the
 * engine refuses the live file itself; this is the same database read
 * through the mount). */
static int ctl_is_mounted_current(snap_store *s, const char *path)
{
	char mnt[PATH_MAX], cur[PATH_MAX + 16];

	if (!ctl_mount_of_db(snap_store_db_path(s), mnt, sizeof(mnt)))
		return 0;
	snprintf(cur, sizeof(cur), "%s/current.db", mnt);
	return ctl_same_file(path, cur);
}

/*
 * "restore NAME": a verified restore into the live database (the engine
 * verifies the source, takes a safety snapshot, copies, checks and rolls
 * back on failure).  A failure names what happened to the live database.
 * With --dry-run or --table the work is snapctl_diff.c's; both need a
 * snapshot, not a file (import the file first).
 */
int cmd_restore(snap_store *s, ctl_args *a)
{
	snap_restore_opts ro = { 0 };
	snap_restore_result res;
	int last = -1;
	snap_info si;
	snap_err err;
	const char *safety;
	int rc;

	struct stat st;
	const char *what;

	/* NAME is a snapshot, or else a database file to restore from (it is
	 * verified and imported first). */
	snap_err_clear(&err);
	if (snap_store_find(s, a->pos[0], &si, &err) == 0) {
		what = si.name;
	} else if (stat(a->pos[0], &st) == 0 && !S_ISDIR(st.st_mode)) {
		if (a->dry_run || a->table)
			return ctl_usage_error("restore %s takes a snapshot "
					       "NAME, not a file; import %s "
					       "first ('snapctl import %s')",
					       a->dry_run ? "--dry-run" :
					       "--table", a->pos[0], a->pos[0]);
		what = a->pos[0];
	} else {
		rc = ctl_find(s, a->pos[0], &si);
		if (rc)
			return rc;
		what = si.name;
	}
	if (what == a->pos[0] && ctl_is_mounted_current(s, what))
		return ctl_error("restore refused, %s is unchanged: %s is the "
				 "live database itself, as a snapfs mount shows "
				 "it; restored onto itself it would only undo "
				 "the commits made since it was read",
				 snap_store_db_path(s), what);
	if (a->dry_run)
		return ctl_restore_dry_run(s, a, &si);
	if (a->table)
		return ctl_restore_table(s, a, &si);
	memset(&res, 0, sizeof(res));
	snap_err_clear(&err);
	/* On a terminal, without --json: a ticker while a file is imported,
	 * then a bar of the restore's passes. */
	if (!a->json) {
		ro.progress = ctl_restore_progress;
		ro.progress_ctx = &last;
		ctl_busy_begin("restoring %s into %s", what,
			       snap_store_db_path(s));
	}
	if (what == a->pos[0])
		rc = snap_restore_file_ex(s, what, NULL, &ro, &res, &err);
	else
		rc = snap_restore_ex(s, si.id, &ro, &res, &err);
	if (!a->json)
		ctl_busy_end();
	if (rc < 0) {
		ctl_fail(&err, rc, what);
		if (res.rolled_back && res.have_safety)
			ctl_error("the live database %s was rolled back to "
				  "safety snapshot %s", snap_store_db_path(s),
				  res.safety.name);
		return CTL_EXIT_FAIL;
	}
	safety = res.have_safety ? res.safety.name : "none";
	/* A file is restored as a snapshot (imported, or the one whose
	 * image it is): "restored" names that snapshot, as snapctl(1) says,
	 * and "file" the file. */
	if (a->json && what == a->pos[0] && res.source.name[0])
		return ctl_restored_json(res.source.name, snap_store_db_path(s),
					 &res, res.verified_pages, NULL, what);
	if (a->json)
		return ctl_restored_json(what, snap_store_db_path(s), &res,
					 res.verified_pages, NULL, NULL);
	if (res.kept[0])
		printf("the file that was at %s is kept as %s\n",
		       snap_store_db_path(s), res.kept);
	if (what == a->pos[0] && res.source.name[0])
		printf("restored %s (snapshot %s) into %s (safety snapshot: "
		       "%s)\n", what, res.source.name, snap_store_db_path(s),
		       safety);
	else
		printf("restored %s into %s (safety snapshot: %s)\n", what,
		       snap_store_db_path(s), safety);
	return CTL_EXIT_OK;
}

/* The JSON object of a restore (ctl_cmds.h). */
int ctl_restored_json(const char *name, const char *db,
		      const snap_restore_result *res, int verified,
		      const char *replica, const char *file)
{
	snap_json j;

	ctl_json_object(&j);
	snap_json_key(&j, "restored"); snap_json_str(&j, name);
	snap_json_key(&j, "database"); snap_json_str(&j, db);
	snap_json_key(&j, "safety");
	snap_json_str_or_null(&j, res && res->have_safety ? res->safety.name
			      : NULL);
	snap_json_key(&j, "verified_pages"); snap_json_bool(&j, verified);
	if (replica) {
		snap_json_key(&j, "replica"); snap_json_str(&j, replica);
	}
	if (file) {
		snap_json_key(&j, "file"); snap_json_str(&j, file);
	}
	snap_json_obj_end(&j);
	return ctl_json_print(&j);
}

/* ---- verify ------------------------------------------------------------- */

/* Record one problem: a line on stdout, or an element of the JSON array. */
void ctl_verify_problem(void *ctx, const snap_info *si, uint32_t pgno,
			       const char *problem)
{
	ctl_verify *v = ctx;

	v->found++;
	if (v->a->json) {
		snap_json_obj_begin(&v->problems);
		snap_json_key(&v->problems, "snapshot");
		snap_json_str(&v->problems, si->name);
		snap_json_key(&v->problems, "page");
		snap_json_int(&v->problems, pgno);
		snap_json_key(&v->problems, "problem");
		snap_json_str(&v->problems, problem);
		snap_json_obj_end(&v->problems);
		return;
	}
	if (pgno)
		ctl_progress_printf("%s: page %" PRIu32 ": %s\n", si->name,
				    pgno, problem);
	else
		ctl_progress_printf("%s: %s\n", si->name, problem);
}

/*
 * "verify [--full] [NAME]": one snapshot, or each snapshot of the store in
 * turn (one engine call per snapshot, so progress and the count checked are
 * exact).  A snapshot whose verification could not even run counts as bad,
 * with the engine's message as its problem; one deleted meanwhile is
 * skipped.  Exit 1 when anything is bad.
 */
int cmd_verify(snap_store *s, ctl_args *a)
{
	ctl_verify v = { .a = a };
	snap_info one, *list = NULL;
	snap_err err;
	size_t n = 0, i;
	uint64_t total = 0, done = 0;
	unsigned checked = 0, bad = 0;
	int rc;

	snap_err_clear(&err);
	if (a->npos == 1) {
		rc = ctl_find(s, a->pos[0], &one);
		if (rc)
			return rc;
		n = 1;
	} else {
		rc = snap_store_list(s, &list, &n, &err);
		if (rc < 0)
			return ctl_fail(&err, rc, "listing snapshots");
	}
	snap_json_init(&v.problems);
	snap_json_arr_begin(&v.problems);
	/* Progress: a bar of image bytes over the snapshots, moved by the
	 * engine's page count within each and redrawn by the ticker (a full
	 * verification's integrity_check reports none: the ticker ticks). */
	for (i = 0; i < n; i++)
		total += (list ? &list[i] : &one)->image_size;
	ctl_busy_begin("verifying");
	for (i = 0; i < n; i++) {
		const snap_info *si = list ? &list[i] : &one;
		char detail[200];
		ctl_bar_ctx bar = { "verifying", detail, si->page_size, done,
				    total };

		snprintf(detail, sizeof(detail), "%zu/%zu %s", i + 1, n,
			 si->name);
		ctl_busy_bar("verifying", done, total, detail);
		done += si->image_size;
		v.found = 0;
		snap_err_clear(&err);
		rc = snap_verify_snapshot_progress(s, si->id, a->full,
						   ctl_verify_problem, &v,
						   ctl_bar_progress, &bar,
						   &err);
		if (rc == -ENOENT && list)
			continue;
		checked++;
		if (rc == 0)
			continue;
		bad++;
		if (v.found == 0)
			ctl_verify_problem(&v, si, 0, err.msg[0] ? err.msg :
					   strerror(-rc));
	}
	ctl_busy_end();
	free(list);
	return ctl_verify_report(&v, checked, bad);
}

/* The end of a verify run: the summary (or the JSON document), exit 1 when
 * anything was bad; frees v->problems. */
int ctl_verify_report(ctl_verify *v, unsigned checked, unsigned bad)
{
	const ctl_args *a = v->a;
	int rc;

	snap_json_arr_end(&v->problems);
	if (a->json) {
		snap_json j;

		ctl_json_object(&j);
		snap_json_key(&j, "ok");
		snap_json_bool(&j, bad == 0 && v->other == 0);
		snap_json_key(&j, "full"); snap_json_bool(&j, a->full);
		snap_json_key(&j, "checked"); snap_json_int(&j, checked);
		snap_json_key(&j, "bad"); snap_json_int(&j, bad);
		snap_json_key(&j, "other"); snap_json_int(&j, v->other);
		snap_json_key(&j, "problems");
		snap_json_raw(&j, v->problems.oom ? "[]" : v->problems.buf);
		snap_json_obj_end(&j);
		rc = v->problems.oom ? ctl_error("out of memory") :
			ctl_json_print(&j);
	} else {
		printf("%u snapshot%s verified, %u bad", checked,
		       checked == 1 ? "" : "s", bad);
		if (v->other)
			printf("; %u other object%s damaged", v->other,
			       v->other == 1 ? "" : "s");
		printf("\n");
		rc = CTL_EXIT_OK;
	}
	snap_json_free(&v->problems);
	if (rc == CTL_EXIT_OK && bad)
		rc = ctl_error("verification found problems in %u of %u "
			       "snapshot%s", bad, checked,
			       checked == 1 ? "" : "s");
	else if (rc == CTL_EXIT_OK && v->other)
		rc = ctl_error("verification found %u damaged object%s of the "
			       "replica that belong%s to no snapshot (above)",
			       v->other, v->other == 1 ? "" : "s",
			       v->other == 1 ? "s" : "");
	return rc;
}
