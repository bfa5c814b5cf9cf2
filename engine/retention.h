/*
 * engine/retention.h — which snapshots to keep: retention rules in the
 * style of restic's `forget` and sanoid, previewable, and the free-space
 * guard that runs before a snapshot.
 *
 * Rules (any combination; a snapshot is kept when any rule keeps it):
 *   last:N      the N newest
 *   hourly:N    the newest snapshot of each of the N newest hours that have
 *   daily:N     one (likewise days, ISO weeks, months, years); buckets are
 *   weekly:N    UTC calendar periods, counted back from the newest snapshot,
 *   monthly:N   skipping periods without snapshots (restic semantics)
 *   yearly:N
 *   within:D    every snapshot newer than (newest - D)
 *   max_size    after the rules, the oldest automatic snapshots go until the
 *               store's stored bytes fit (the newest snapshot always stays)
 * Only snapshots of kind auto and pre-restore that are not pinned are
 * candidates: manual, import, conflict, recovery and pinned snapshots are
 * never pruned automatically (only an explicit delete removes them).  The
 * rules are evaluated over the candidates only.  An empty policy keeps
 * everything.
 */
#ifndef ENGINE_RETENTION_H
#define ENGINE_RETENTION_H

#include "store.h"

typedef struct snap_keep_policy {
	int last, hourly, daily, weekly, monthly, yearly;  /* 0 = rule off */
	int64_t within_ns;      /* 0 = rule off */
	uint64_t max_size;      /* bytes of stored data; 0 = no cap */
} snap_keep_policy;

/* "30s", "15m", "1h", "2d", "1w", "1h30m": 0 or -EINVAL. */
int snap_duration_parse(const char *s, int64_t *ns);
/* "512K", "10M", "2G", "1T", plain bytes: 0 or -EINVAL. */
int snap_size_parse(const char *s, uint64_t *bytes);
/* "last:N,hourly:N,daily:N,weekly:N,monthly:N,yearly:N,within:DURATION"
 * (any subset, any order) into p, leaving other fields alone.  -EINVAL
 * with a message naming the bad part. */
int snap_keep_parse(const char *spec, snap_keep_policy *p, snap_err *err);
/* 1 when no rule is set. */
int snap_keep_empty(const snap_keep_policy *p);

/* One snapshot's fate and why: "last 2/5", "daily 2026-11-20",
 * "within 7d", "manual: never pruned automatically", "pinned", or for a
 * pruned one "no rule keeps it", "over max_size". */
typedef struct snap_keep_decision {
	snap_info info;
	int keep;
	char reason[160];
} snap_keep_decision;

/*
 * Decide, without touching anything: v (n snapshots, any order) against p.
 * out must hold n decisions; they come back newest first.  Pure: the same
 * input gives the same output; max_size is not applied here (it needs the
 * store).
 */
void snap_retention_plan(const snap_info *v, size_t n,
			 const snap_keep_policy *p, snap_keep_decision *out);

/*
 * Plan and (unless dry_run) delete what the plan prunes, then apply
 * max_size.  *out (free()) gets every snapshot's decision, newest first;
 * *pruned the number deleted (or that would be).  Records a "prune" event.
 */
int snap_retention_prune(snap_store *s, const snap_keep_policy *p,
			 int dry_run, snap_keep_decision **out, size_t *n,
			 size_t *pruned, snap_err *err);

/*
 * Before a snapshot: is there room on the store's filesystem for the pages
 * it may add (at most the live database's size, plus slack for the store's
 * own journal)?  If not, prune automatic snapshots by p (max_size rule and
 * then oldest automatic first, never the newest snapshot) until there is;
 * if still short, -ENOSPC naming the store and the space needed.
 */
int snap_retention_make_room(snap_store *s, const snap_keep_policy *p,
			     snap_err *err);

#endif /* ENGINE_RETENTION_H */
