/*
 * engine/replica.h — an offsite copy of a store's snapshots in an object
 * store (objstore.h): deduplicated by page, packed, encrypted on the client
 * by default, readable with the URL and the passphrase alone.
 *
 * The format is written down in engine/DESIGN.md §6 ("The replica").  In
 * short: "config" (plain JSON: format, version, encryption, Argon2id
 * parameters, the wrapped master key, the replica's id); "packs/<seq>"
 * (pages, compressed, sealed); "index/<seq>" (for each page of a pack: its
 * SHA-256, keyed identity, size, where it is); "maps/<id>" (a snapshot's
 * page map as runs of page sequence numbers); "snapshots/<id>" (its
 * catalog row, written last: a snapshot is in the replica once this
 * object is).
 */
#ifndef ENGINE_REPLICA_H
#define ENGINE_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "events.h"
#include "retention.h"
#include "store.h"

typedef struct snap_replica snap_replica;

enum {
	SNAP_REPLICA_CREATE = 1 << 0,        /* create config if missing */
	SNAP_REPLICA_NO_ENCRYPTION = 1 << 1, /* with CREATE: a plain replica;
						when opening: accept a plain
						one although a passphrase was
						given */
};

/* Open the replica at url.  pass may be NULL (then only a replica made
 * with --no-encryption opens).  0; -ENOENT "no replica at URL" (without
 * CREATE); -EACCES for a wrong or missing passphrase (nothing written);
 * -EINVAL for a format this snapfs cannot read; -EPERM when CREATE would
 * make an unencrypted replica without SNAP_REPLICA_NO_ENCRYPTION, or when a
 * passphrase was given for a replica whose config says it is plain. */
int snap_replica_open(const char *url, const char *pass, size_t passlen,
		      unsigned flags, snap_replica **out, snap_err *err);
void snap_replica_close(snap_replica *r);

/* Make r's requests fail at once from now on, one in flight included
 * (snap_objstore_cancel): for another thread to stop a long replication
 * before it closes r.  Nothing is written after it. */
void snap_replica_cancel(snap_replica *r);

/* snap_replica_cancel for every replica of the process, one being opened
 * included (snap_objstore_cancel_all): for a daemon about to exit.  Not
 * undone. */
void snap_replica_cancel_all(void);

/* While on, the requests of r's user (not its prefetches) fail at once
 * with -EINTR (snap_objstore_interrupt): for a reader whose caller gave
 * up (a FUSE INTERRUPT).  Any thread may turn it on; r's user turns it
 * off before its next call on r.  Nothing r caches is changed by it. */
void snap_replica_interrupt(snap_replica *r, int on);

/* The longest passphrase read (bytes, with its terminating NUL). */
#define SNAP_PASS_MAX 1024

/* A replica's passphrase, for snapctl, the daemon's replicate= and the
 * replica mount alike: the first line of file when file is given (opt
 * names the option in messages: "passphrase_file=" or "--passphrase-file
 * "), else the environment variable env, else none (buf = "").  buf has
 * SNAP_PASS_MAX bytes; the caller wipes it.  The file is opened without
 * following a symbolic link or waiting on a FIFO, and must be a regular
 * file of the effective user with one name, that neither its group nor
 * others may write (they could choose the key of a replica about to be
 * created, or lock the daemon out; another user's file, or a hard link
 * they made, is a passphrase they chose or know).  0; 1 when
 * its group or others may read it (err holds a warning to show: it is
 * used all the same); a negative errno, err naming the file and what to
 * do. */
int snap_replica_pass_read(const char *file, const char *opt,
			   const char *env, char *buf, snap_err *err);

/* Wrap the master key under a new passphrase (a new salt) and replace
 * config: no other object is rewritten, the old passphrase stops
 * working.  -EINVAL for a replica without encryption. */
int snap_replica_passphrase(snap_replica *r, const char *pass,
			    size_t passlen, snap_err *err);

/* How many packs this handle has fetched for reading so far (a whole
 * image fetches each pack it needs once). */
uint64_t snap_replica_pack_gets(const snap_replica *r);

/* 1 when the replica's objects are sealed. */
int snap_replica_encrypted(const snap_replica *r);

/* The snapshots the replica holds, oldest first (free(*out)).  Fields a
 * replica does not keep (trash) are zero; id is 1.. in that order. */
int snap_replica_list(snap_replica *r, snap_info **out, size_t *n,
		      snap_err *err);

/* Of the rows in v (as snap_replica_list gives them, oldest first) that
 * share a name, keep only the one that name finds (show, export, the
 * mount's reads): the newest.  A replica holds two when a store reused a
 * name (a snapshot deleted, another renamed to its name).  v keeps its
 * order; *n shrinks.  0, or -ENOMEM with v unchanged. */
int snap_replica_names_unique(snap_info *v, size_t *n);

/* How many catalog rows the last listing skipped as damaged (they do not
 * open with the key or are not snapshot records; verify names them). */
size_t snap_replica_damaged(const snap_replica *r);

/* The catalog row of one snapshot by name. -ENOENT when absent. */
int snap_replica_find(snap_replica *r, const char *name, snap_info *out,
		      snap_err *err);

/* 1 when store s wrote snapshot name's catalog row (its id is the row's
 * store id): the database restored is the replica's own; 0 when not;
 * -ENOENT when the replica has no snapshot name. */
int snap_replica_written_by(snap_replica *r, const char *name, snap_store *s,
			    snap_err *err);

/* A database restored from snapshot name goes on into this replica:
 * store s (the restored database's) takes as its id (meta "store_id")
 * the id of the store that wrote the snapshot's catalog row, when s has
 * none yet, so that replicate from s is not refused as another
 * database's.  A store with an id keeps it; a row from before rows named
 * their store gives none.  1 when s's id is now the row's, 0 when not;
 * -ENOENT when the replica has no snapshot name. */
int snap_replica_adopt(snap_replica *r, const char *name, snap_store *s,
		       snap_err *err);

/* The per-table row counts of snapshot name as a JSON object text
 * (free()). */
int snap_replica_tables(snap_replica *r, const char *name, char **json,
			snap_err *err);

typedef struct snap_replicate_stats {
	uint64_t snapshots;      /* uploaded by this run */
	uint64_t pages;          /* pages uploaded (new to the replica) */
	uint64_t bytes;          /* bytes of objects written */
	uint64_t present;        /* snapshots the replica already had */
	uint64_t pruned;         /* not sent: pruned from the replica before */
} snap_replicate_stats;

/* Upload every snapshot of s that the replica lacks (and only the pages
 * it lacks), oldest first; trashed snapshots stay local, and so do those
 * pruned from the replica before (snap_replica_prune; st->pruned).  A snapshot is
 * visible in the replica only after all of its pages are durable there;
 * a killed run leaves at most objects no snapshot names, which the next
 * run reuses. */
int snap_replica_push(snap_replica *r, snap_store *s,
		      snap_progress_fn progress, void *pctx,
		      snap_replicate_stats *st, snap_err *err);

/* A failed replication to url, recorded in s's event history as
 * snap_replica_push_recorded records one (the detail "URL: why", the URL
 * once); it reaches the store's failure hook.  For a replication that
 * failed before it had a replica to push to (the daemon's open). */
void snap_replica_failure_record(snap_store *s, const char *url,
				 const snap_err *err);

/* snap_replica_push, recorded in s's event history as an event of kind
 * SNAP_REPLICATE_EVENT (events.h: "URL: what happened", the replica's
 * newest snapshot on success), which the status report reads; a failure
 * reaches the store's failure hook.  Same return as snap_replica_push. */
int snap_replica_push_recorded(snap_replica *r, snap_store *s,
			       const char *url, snap_progress_fn progress,
			       void *pctx, snap_replicate_stats *st,
			       snap_err *err);

/* Write snapshot name's image to path (a new file, 0600; an existing
 * file is refused with -EEXIST), proving every page against its SHA-256
 * and the whole image against the snapshot's.  -EIO names what failed. */
int snap_replica_export(snap_replica *r, const char *name, const char *path,
			snap_progress_fn progress, void *pctx, snap_err *err);

/* Called for each problem verify finds: the snapshot's name, the page
 * that could not be read or proven (1-based; 0 when the problem is not
 * about one page, such as the whole image's SHA-256), and a sentence. */
typedef void (*snap_replica_problem_fn)(void *ctx, const char *snapshot,
					uint32_t page, const char *problem);

/* Read every page of snapshot name (NULL: every snapshot) and prove it;
 * full: also PRAGMA integrity_check on the rebuilt image (in a temporary
 * file under tmpdir).  *nbad counts bad snapshots; 0 when the check ran
 * (whatever it found), a negative errno when it could not run (also a
 * read that failed for another cause than the bytes read: the server
 * answering 5xx, out of reach, a timeout; no snapshot counted bad). */
int snap_replica_verify(snap_replica *r, const char *name, int full,
			const char *tmpdir, snap_replica_problem_fn fn,
			void *ctx, unsigned *nbad, snap_err *err);

/* Retention of a replica: snap_retention_plan's rules on its catalog
 * rows (never manual, imported, pinned ones), the pruned rows and maps
 * deleted, then every pack no remaining snapshot uses.  dry_run: plan
 * only.  *out (free()) gets the decisions, newest first; *pruned the
 * snapshots pruned (or that would be), *packs the packs deleted.  Holds
 * the writer lock: -EBUSY while a replicate runs.  max_size: -EINVAL. */
int snap_replica_prune(snap_replica *r, const snap_keep_policy *p,
		       int dry_run, snap_keep_decision **out, size_t *n,
		       size_t *pruned, uint64_t *packs, snap_err *err);

/* The replica's history, oldest first (free(*out)): one event per
 * replicate and prune run (kind, time, ok, detail; no snapshot).  A
 * record that cannot be read (damaged, or a failed GET) is an event of
 * kind SNAP_REPLICA_UNREADABLE (not ok, time 0, detail: why), listed
 * first; the others are listed all the same.  An error only when no
 * record could be read at all. */
#define SNAP_REPLICA_UNREADABLE "unreadable"
int snap_replica_log(snap_replica *r, snap_event **out, size_t *n,
		     snap_err *err);

/* A snapshot's image read in place, a byte range at a time (the replica
 * mount, fs/replica_ops.c): open loads the snapshot's catalog row and page
 * map; read fetches only the pages the range covers, each proven against
 * its SHA-256 and identity (a damaged page is -EIO, never wrong bytes),
 * through the replica's cache of PACK_CACHE packs (bounded memory: three
 * packs of up to 8 MB of pages and their indexes).  The whole-image SHA-256 is not
 * checked (a range is not the whole); verify does that.  The image and
 * its replica share one cache: neither is thread-safe, so a caller with
 * several threads holds one lock around every call on r and its images.
 * The pack index listing is taken at the first open and kept (a snapshot
 * the replica gains later needs a new snap_replica). */
typedef struct snap_replica_image snap_replica_image;
int snap_replica_image_open(snap_replica *r, const char *name,
			    snap_replica_image **out, snap_err *err);
/* Up to len bytes at off into buf: the count read (0 at or past the
 * end), or a negative errno (-EIO naming the page and object). */
long snap_replica_image_read(snap_replica_image *img, void *buf, size_t len,
			     uint64_t off, snap_err *err);
/* The image's catalog row (name, sizes, times, sha256). */
const snap_info *snap_replica_image_info(const snap_replica_image *img);
void snap_replica_image_close(snap_replica_image *img);

#endif /* ENGINE_REPLICA_H */
