/*
 * fs/node.h — dynamic nodes and the inode table (inode.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_NODE_H
#define FS_NODE_H

#include "ino.h"

/* ---- dynamic nodes (inode.c) -------------------------------------------- */

enum snap_node_kind {
	SNAP_NODE_STAGING,  /* a file in the root or restore/: upload, temp
			       file, side file */
	SNAP_NODE_PENDING,  /* a name being created in snapshots/ */
};

struct snap_node {
	fuse_ino_t ino;
	enum snap_node_kind kind;
	fuse_ino_t parent;            /* SNAP_INO_ROOT, SNAP_INO_SNAPDIR or
					 SNAP_INO_RESTORE */
	char name[NAME_MAX + 1];      /* its name while linked */
	int linked;                   /* 1 while the name is in its directory */
	uint64_t nlookup;             /* the kernel's references */
	unsigned nopen;               /* open handles */
	char path[PATH_MAX];          /* backing file in the staging directory,
				       * deleted when the node is freed */
	mode_t mode;                  /* S_IFREG | permission bits */
	uid_t uid;
	gid_t gid;
	/* PENDING only, protected by fs->lock (staging.c says how a
	 * request's outcome is reached, once): */
	int64_t snap_id;              /* the snapshot it became, 0 = not yet */
	unsigned writers;             /* write handles not flushed since their
				       * last write */
	int dirty;                    /* written since the outcome */
	int decided;                  /* an outcome was reached (snap_id, or
				       * 0 when it was refused) */
	int last_rc;                  /* its verdict, for flushes that bring
				       * nothing new */
	pthread_mutex_t outcome_lock; /* held while the outcome is reached
				       * (see the lock order above) */
	struct snap_node *next;       /* table chain */
};

/* ---- inode table (inode.c) ---------------------------------------------- */

/* Create and link a node (fs->lock taken inside).  Returns NULL with
 * errno set when the backing file cannot be created. */
struct snap_node *snap_node_create(enum snap_node_kind kind,
				   fuse_ino_t parent, const char *name,
				   mode_t mode, uid_t uid, gid_t gid);
/* The linked node called name in parent, with one more lookup reference
 * when ref is 1; NULL when none.  fs->lock taken inside. */
struct snap_node *snap_node_find(fuse_ino_t parent, const char *name,
				 int ref);
/* The same with an open reference instead (release: snap_node_close),
 * for callers that use the node after the lock is dropped. */
struct snap_node *snap_node_find_open(fuse_ino_t parent, const char *name);
/* The node with this inode number (no reference taken); fs->lock must be
 * held by the caller, since the node may otherwise be freed. */
struct snap_node *snap_node_get_locked(fuse_ino_t ino);
/* Reference changes; a node unlinked, unreferenced and closed is freed. */
void snap_node_lookup_locked(struct snap_node *n, uint64_t count);
void snap_node_forget(fuse_ino_t ino, uint64_t nlookup);
void snap_node_open_locked(struct snap_node *n);
void snap_node_close(struct snap_node *n);
/* Drop an open reference (snap_node_close); with leave (a rename's
 * source, an unlink), the node first leaves its directory if it still has
 * name. */
void snap_node_close_leaving(struct snap_node *n, const char *name,
			     int leave);
/* Take a node out of its directory (its file goes when it is freed). */
void snap_node_unlink_locked(struct snap_node *n);
/* Free what the *_locked calls above left unreferenced; call after
 * dropping fs->lock (it deletes files). */
void snap_node_reap(void);
/* Rename a linked node within its directory, replacing (unlinking) a node
 * already called newname. */
void snap_node_rename_locked(struct snap_node *n, const char *newname);
/* The same for the node called name in parent, taking fs->lock: 0, or
 * -ENOENT when there is none. */
int snap_node_rename(fuse_ino_t parent, const char *name,
		     const char *newname);
/* Visit every linked node of a directory under fs->lock. */
void snap_node_foreach_locked(fuse_ino_t parent,
			      void (*fn)(struct snap_node *, void *),
			      void *ctx);
/* Free every node and delete every backing file (shutdown). */
void snap_node_free_all(void);
/* Attributes of a staging node (fstat of its backing file). */
int snap_node_stat(struct snap_node *n, struct stat *st);

#endif /* FS_NODE_H */
