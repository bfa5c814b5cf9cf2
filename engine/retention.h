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
 *   within:D    every snapshot strictly newer than (newest - D), where
 *               "newest" is the newest candidate (as restic: a snapshot
 *               exactly D older than the newest is not kept by this rule)
 *   max_size    after the rules, the oldest automatic snapshots go until the
 *               store's stored bytes fit (the newest snapshot always stays)
 * Only snapshots of kind auto and pre-restore that are not pinned are
 * candidates: manual, import, conflict, recovery and pinned snapshots are
 * never pruned automatically (only an explicit delete removes them).
 * Snapshots in the trash (engine/trash.h) are not candidates either, and a
 * store's plan leaves them out altogether: they count as neither kept nor
 * pruned, and only emptying the trash removes them.  The
 * rules are evaluated over the candidates only, newest first; snapshots
 * with the same created_ns are ordered by id (the higher id counts as the
 * newer), so every plan is deterministic.  An empty policy keeps everything.
 *
 * Bucket rules follow restic's forget: walking the candidates newest first,
 * a rule with count N keeps a snapshot when its bucket (UTC "YYYY-MM-DD-HH",
 * "YYYY-MM-DD", ISO "YYYY-Www", "YYYY-MM", "YYYY") differs from the bucket
 * of the last snapshot that rule kept, until it has kept N.  Unlike restic
 * since 0.16, a rule with count left over does not also keep the oldest
 * snapshot: each rule keeps exactly the newest snapshot of each bucket.
 */
#ifndef ENGINE_RETENTION_H
#define ENGINE_RETENTION_H

#include "store.h"
#include "units.h"

typedef struct snap_keep_policy {
	int last, hourly, daily, weekly, monthly, yearly;  /* 0 = rule off */
	int64_t within_ns;      /* 0 = rule off */
	uint64_t max_size;      /* bytes of stored data; 0 = no cap */
} snap_keep_policy;

/* "last:N,hourly:N,daily:N,weekly:N,monthly:N,yearly:N,within:DURATION"
 * (any subset, any order, each rule once; N = 0 or within:0s turns a rule
 * off) into p, leaving other fields alone.  -EINVAL with a message naming
 * the bad part; p is untouched on failure. */
int snap_keep_parse(const char *spec, snap_keep_policy *p, snap_err *err);
/* 1 when no keep rule (last .. within) is set.  max_size is not a keep
 * rule: a policy with only max_size is "empty" here and still prunes. */
int snap_keep_empty(const snap_keep_policy *p);
/* The policy as text snap_keep_parse reads back ("last:3,daily:7"), then
 * " max_size=10M" when set; "none" when nothing is set. */
void snap_keep_format(const snap_keep_policy *p, char *out, size_t cap);

/* One snapshot's fate and why: "last 2/5", "hourly 2026-11-20-14",
 * "daily 2026-11-20", "weekly 2026-W47", "monthly 2026-11", "yearly 2026",
 * "within 7d" (several joined by ", " in that order, as "last 1/3, daily
 * 2026-11-20"), "manual: never pruned automatically" (likewise import,
 * conflict, recovery), "pinned", "in the trash: kept until the trash is
 * emptied", "no retention policy", or for a pruned one
 * "no rule keeps it", "over max_size". */
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
 * Plan, apply max_size (from the store's page maps, exactly as deleting
 * would reclaim: pages no remaining snapshot uses, plus the maps), and
 * unless dry_run delete what the plan prunes, oldest first, each delete its
 * own transaction.  *out (free()) gets every snapshot's decision, newest
 * first; *pruned the number deleted (or that would be).  A dry run changes
 * nothing, the event history included; otherwise one "prune" event
 * summarizes a run that deleted something (ok=1) or failed (ok=0), beside
 * the "delete" event of each snapshot.  A snapshot deleted by someone else
 * meanwhile is skipped.  On failure *out is NULL and the snapshots deleted
 * before it stay deleted (each delete is complete on its own).
 */
int snap_retention_prune(snap_store *s, const snap_keep_policy *p,
			 int dry_run, snap_keep_decision **out, size_t *n,
			 size_t *pruned, snap_err *err);

/*
 * Before a snapshot: is there room on the store's filesystem for the pages
 * it may add?  The worst case is every page new and incompressible: the
 * snapshot's transaction writes about the live database's size (plus its
 * -wal, plus 1/16 for the store's rows and index, plus 1 MiB) into
 * store.db-wal, and the checkpoint then writes it into store.db, which
 * grows by whatever its free pages (left by deleted snapshots) cannot
 * take.  So: needed = U + max(0, U - free pages of store.db), U as above,
 * against statvfs f_bavail * f_frsize of the store's directory.  When
 * short, the store's WAL is checkpointed and truncated (best effort) and
 * the space measured again.  If still short, candidates are pruned by p
 * (the rules and max_size) and then the oldest candidates go (never the
 * newest snapshot), measuring again after each delete, until there is
 * room.  When even deleting every such candidate could not make room
 * (estimated from the page maps), nothing is deleted.  If still short,
 * -ENOSPC: "store DIR: N MB free, a snapshot of DB may need M MB; free
 * space, lower retention or move the store (-o store=)", recorded as a
 * failed "snapshot" event (it is one: callers must not record it again).
 * Deletions made to make room are summarized in a "prune" event.
 */
int snap_retention_make_room(snap_store *s, const snap_keep_policy *p,
			     snap_err *err);

/* 1 when rules may prune the snapshot: auto or pre-restore, not pinned,
 * not in the trash (keep.c; retention.c's max_size uses it too). */
int snap_keep_candidate(const snap_info *si);
/* Append ", text" (or text when the reason is empty) to d->reason,
 * truncating. */
void snap_keep_reason_add(snap_keep_decision *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* ENGINE_RETENTION_H */
