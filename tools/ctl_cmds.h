/*
 * tools/ctl_cmds.h — the commands of snapctl, for main (snapctl.c) to put
 * in its command table and dispatch.  Each runs with the store open
 * (except where said) and returns the exit status.  Declared here, not in
 * ctl.h, because they sit above it: a command file uses ctl.h, and only a
 * command that builds on another's work (restore --dry-run on diff's)
 * calls across.
 */
#ifndef TOOLS_CTL_CMDS_H
#define TOOLS_CTL_CMDS_H

#include "ctl.h"

/* snapctl_catalog.c */
int cmd_list(snap_store *s, ctl_args *a);
int cmd_show(snap_store *s, ctl_args *a);
int cmd_create(snap_store *s, ctl_args *a);
int cmd_import(snap_store *s, ctl_args *a);
int cmd_delete(snap_store *s, ctl_args *a);
int cmd_rename(snap_store *s, ctl_args *a);
int cmd_pin(snap_store *s, ctl_args *a);
int cmd_unpin(snap_store *s, ctl_args *a);
int cmd_export(snap_store *s, ctl_args *a);
int cmd_log(snap_store *s, ctl_args *a);
int cmd_names(snap_store *s, ctl_args *a);
/* snapctl_restore.c */
int cmd_restore(snap_store *s, ctl_args *a);
int cmd_verify(snap_store *s, ctl_args *a);
/* snapctl_diff.c */
int cmd_diff(snap_store *s, ctl_args *a);
int ctl_restore_dry_run(snap_store *s, ctl_args *a, const snap_info *si);
int ctl_restore_table(snap_store *s, ctl_args *a, const snap_info *si);
int ctl_export_sql(snap_store *s, ctl_args *a);
/* snapctl_health.c */
int cmd_check(snap_store *s, ctl_args *a);
int cmd_status(snap_store *s, ctl_args *a);
/* "status" with thresholds when the store could not be opened: print the
 * Nagios line (CRITICAL when there is no store, so no snapshot; UNKNOWN
 * otherwise) and return the plugin status. */
int ctl_status_no_store(const ctl_args *a, int missing);
/* snapctl_prune.c */
int cmd_prune(snap_store *s, ctl_args *a);
int ctl_prune_print(const snap_keep_decision *d, size_t n, size_t pruned,
		    const ctl_args *a);
/* snapctl_mount.c: fill a->db and a->store_dir (and the schedule fields)
 * from MOUNTPOINT/.snapfs/status.json; 0 or CTL_EXIT_FAIL. */
int ctl_mount_resolve(ctl_args *a);
/* 1 when a snapfs mount (fuse.snapfs in /proc/self/mountinfo) serves the
 * database db (the same file, by real path): its mount point in mnt. */
int ctl_mount_of_db(const char *db, char *mnt, size_t cap);
int cmd_replicate(snap_store *s, ctl_args *a);
int cmd_passphrase(snap_store *s, ctl_args *a);
int ctl_replica_run(const char *cmd, ctl_args *a);

/* What "list" and "show" print, for a store's snapshots or a replica's
 * (ctl_show_print frees tables). */
int ctl_list_print(const snap_info *v, size_t n, const ctl_args *a);
int ctl_show_print(const snap_info *si, char *tables, const ctl_args *a);
int ctl_log_print(const snap_event *ev, size_t n, const ctl_args *a);
/* What a one-snapshot action did (delete, export, ...): "ACTION NAME
 * EXTRA", or {"action", "snapshot"} with --json (snapctl_catalog.c). */
int ctl_print_done(const ctl_args *a, const char *action, const char *name,
		   const char *extra);

/* One "verify" run: the engine's problems collected, then reported. */
typedef struct ctl_verify {
	const ctl_args *a;
	snap_json problems;   /* --json: the "problems" array being built */
	unsigned found;       /* problems reported for the current snapshot */
	unsigned other;       /* damaged objects of no snapshot (a replica's
				 log records, its pruned/set) */
} ctl_verify;
/* A restore's JSON object on stdout: restored, database, safety (null
 * without one; res may be NULL), verified_pages, replica when the image
 * came from one, and file when a file was restored (as snapshot name).
 * The exit code. */
int ctl_restored_json(const char *name, const char *db,
		      const snap_restore_result *res, int verified,
		      const char *replica, const char *file);
void ctl_verify_problem(void *ctx, const snap_info *si, uint32_t pgno,
			const char *problem);
int ctl_verify_report(ctl_verify *v, unsigned checked, unsigned bad);

#endif /* TOOLS_CTL_CMDS_H */
