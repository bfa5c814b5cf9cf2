/*
 * engine/mergeapply.c — snap_merge_apply, the whole merge of an edit into
 * the live database (merge.h): the restore lock, the edited copy checked,
 * the plan (merge.c), the changeset applied after a safety snapshot
 * (mergelive.c), the safety dropped again on a rollback, the event.  The
 * top of the merge files: nothing of merge calls it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "merge_int.h"
#include "snapshot.h"
#include "store_int.h"

/* "; 2 rows took new keys ...: events id 51 -> 61, ..." for the event, or
 * "" when no row did. */
static void merge_rekeyed_text(const snap_merge_result *res, char *out,
			       size_t cap)
{
	size_t i, len;

	out[0] = '\0';
	if (!res->nrekeyed)
		return;
	len = (size_t)snprintf(out, cap, "; %zu of the inserted row%s took "
			       "new keys (the live database had inserted rows "
			       "with the same automatic keys meanwhile):",
			       res->nrekeyed, res->nrekeyed == 1 ? "" : "s");
	for (i = 0; i < res->nrekeyed && len < cap; i++) {
		const snap_merge_rekey *m = &res->rekeyed[i];

		if (len + 64 >= cap) {
			snprintf(out + len, cap - len, " and %zu more",
				 res->nrekeyed - i);
			return;
		}
		len += (size_t)snprintf(out + len, cap - len, "%s %s %s %"
					PRId64 " -> %" PRId64, i ? "," : "",
					m->table, m->column, m->old_key,
					m->new_key);
	}
}

/* Apply the edit from base to edited onto the live database (see merge.h). */
int snap_merge_apply(snap_store *s, const char *base, const char *edited,
		     const snap_merge_opts *o, snap_merge_result *res,
		     snap_err *err)
{
	const char *what = o && o->what ? o->what : "an edit";
	snap_merge_result tmp;
	merge_plan p;
	int lockfd = -1, rc;

	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	memset(&p, 0, sizeof(p));
	rc = snap_store_restore_lock(s, &lockfd, err);
	if (!rc)
		rc = snap_snapshot_check_file(edited, err);
	if (!rc)
		rc = snap_merge_make_plan(base, edited, &p, res, err);
	if (!rc && p.ncs)
		rc = snap_merge_into_live(s, base, &p, res, err);
	if (rc && res->have_safety) {
		snap_err ignore;

		/* Rolled back: the live database is what the safety holds
		 * and the snapshots before it already cover. */
		if (snap_store_delete(s, res->safety.id, &ignore) == 0)
			res->have_safety = 0;
	}
	snap_store_restore_unlock(lockfd);
	snap_merge_plan_free(&p);
	if (rc) {
		snap_merge_result_free(res);
		snap_err_prefix(err, "%s was not merged into %s, which is "
				"unchanged", what, s->db_path);
		return rc;
	}
	if (res->inserted || res->updated || res->deleted) {
		char moved[SNAP_ERR_MSG / 2];

		merge_rekeyed_text(res, moved, sizeof(moved));
		snap_event_add(s, "restore", "", 1, "%s merged into %s as a "
			       "changeset: %" PRId64 " row%s inserted, %" PRId64
			       " updated, %" PRId64 " deleted%s; safety "
			       "snapshot %s", what, s->db_path, res->inserted,
			       res->inserted == 1 ? "" : "s", res->updated,
			       res->deleted, moved, res->safety.name);
	}
	if (res == &tmp)
		snap_merge_result_free(res);
	return 0;
}

