/*
 * fs/staging.h — staging, uploads, edit sessions, snapshot requests,
 * restores (staging.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_STAGING_H
#define FS_STAGING_H

#include "handle.h"

/* ---- staging, uploads, sessions, restores (staging.c) ------------------- */

/* Create <store>/staging empty (removing what a crashed run left), keep it
 * open and put the path to use for files in it in out.  0 or a negative
 * errno with the reason in err (a symlink there is refused). */
int snap_staging_init(snap_store *store, char *out, size_t len,
		      snap_err *err);
/* Remove the staging directory and everything in it (before the store is
 * closed; nothing to do when init did not succeed). */
void snap_staging_cleanup(snap_store *store);
/* A fresh private file path in the staging directory ("upload-7"). */
void snap_staging_path(const char *what, char *out, size_t len);

/* Restore snapshot id onto the live database (rename snapshots/X).  0 or a
 * negative errno; the reason is logged. */
int snap_apply_snapshot(int64_t id, const char *shown_name);
/* Restore onto current.db from parent/name (a rename onto it): a
 * snapshot (latest.db, a request that became one) in snapshots/, or a
 * staging file in the root or restore/, which then leaves its directory.
 * shown: how messages name a staging file ("the file <shown>"), NULL for
 * its name.  0 or a negative errno (the reason logged). */
int snap_apply_from(fuse_ino_t parent, const char *name, const char *shown);
/* Restore a staging file onto the live database (rename, upload flush).
 * side: the staging file that was "<name><suffix>" beside it, suffix
 * "-wal" (its committed transactions belong to it) or "-journal" (a hot
 * rollback journal: the interrupted transaction in it is rolled back
 * first, as SQLite would); NULL: none. */
int snap_apply_file(const char *path, const char *side, const char *suffix,
		    const char *shown_name, const char *label);
/* 1 when the file at path begins as a rollback journal that holds a
 * transaction (SQLite's journal magic), 0 otherwise. */
int snap_staging_journal_hot(const char *path);

/* The errno a restore through the mount reports to the program that asked
 * (the engine's when its text says what happened, else -EIO). */
int snap_apply_errno(int rc);
/* Count a restore through the mount as done (rc 0) or failed. */
void snap_apply_count(int rc);
/* Restore the staging file path onto the live database, naming it
 * shown_name in messages; the caller holds fs->apply_lock.  The engine's
 * errno (-ESTALE: o's precondition failed, not reported here). */
int snap_apply_file_locked(const char *path, const char *shown_name,
			   const char *label, const snap_restore_opts *o);
/* "<path><suffix>" into out; 0 or -ENAMETOOLONG. */
int snap_staging_side_path(const char *path, const char *suffix, char *out,
			   size_t len);

/* Upload handles: open creates the file; flush applies it; end (at
 * RELEASE, apply 1; 0 for a handle the kernel never had) applies bytes
 * written after the last flush, logs an upload that never got a byte,
 * and removes the file. */
int snap_upload_begin(struct snap_handle *h);
int snap_upload_flush(struct snap_handle *h);
void snap_upload_end(struct snap_handle *h, int apply);

/* Session handles (session.c; applied by sessionapply.c). */
int snap_session_join(struct snap_handle *h);
/* Make sure the session copy exists (first read/write); 0 or -errno. */
int snap_session_ready(struct snap_handle *h);
void snap_session_wrote(struct snap_handle *h);
/* FLUSH sent by thread pid (an inheritor's close does not count). */
int snap_session_flush(struct snap_handle *h, pid_t pid);
void snap_session_leave(struct snap_handle *h);
/* Leave without applying anything (shutdown, interrupted open). */
void snap_session_discard(struct snap_handle *h);
/* ftruncate(0) on a session handle turns it into an upload. */
int snap_session_to_upload(struct snap_handle *h);
/* Size of the session copy, or -1 when it is not made yet. */
int64_t snap_session_size(struct snap_handle *h);
/* For status.json: is a session open, how many writers, dirty. */
void snap_session_describe(int *open, unsigned *writers, int *dirty);
/* Discard the session at shutdown. */
void snap_session_shutdown(void);

/* Snapshot requests in snapshots/ (pending nodes, pending.c): a handle
 * opened on one (writable: it may write, and counts among the request's writers),
 * its bytes arriving (a write or a truncation through it), its FLUSH, at
 * which the last writer takes or imports, and its RELEASE (apply 0: a
 * handle the kernel never had, or the shutdown). */
void snap_pending_open(struct snap_handle *h, int writable);
void snap_pending_wrote(struct snap_handle *h);
int snap_pending_flush(struct snap_handle *h);
/* A request renamed within snapshots/ from oldname (a dot-name: a tool's
 * temporary file) to a plain name: its outcome now, when nothing writes
 * it any more; 0 or the negative errno a rename returns. */
int snap_pending_renamed(struct snap_node *n, const char *oldname);
void snap_pending_release(struct snap_handle *h, int apply);

#endif /* FS_STAGING_H */
