/*
 * fs/inode.c — inode numbers and the table of dynamic nodes.
 *
 * Most of what the mount shows needs no table: the fixed files have fixed
 * numbers, and a snapshot's inode number is derived from its store id
 * (never reused, contents immutable), so lookups and forgets of snapshots
 * are stateless.  The table holds only what exists in this daemon alone:
 *
 *   staging nodes  files created in the root — rsync's .current.db.XXXXXX,
 *                  GIO's .goutputstream-XXXXXX, the -journal/-wal/-shm of a
 *                  client editing current.db, anything else — and the files
 *                  being written in restore/ (restoredir.c), each backed by
 *                  a private file in the staging directory;
 *   pending nodes  a name just created in snapshots/ ("touch
 *                  snapshots/before-migration"), backed by a private file
 *                  that receives bytes when the creator imports a database.
 *
 * A node lives while it is linked (has its name), the kernel references it
 * (nlookup, counted as the kernel counts it: +1 per entry reply, -n per
 * FORGET) or a handle has it open.  When all three are gone it is freed and
 * its backing file deleted.  The deletion happens in snap_node_reap(),
 * after fs->lock is released, because fs->lock is a leaf lock.
 *
 * There are never many nodes (a handful of temporary files), so the table
 * is a list.
 *
 * Thread-safety: every field of every node is protected by snap_fs.lock,
 * except ino, kind, parent and path, which never change after creation,
 * and outcome_lock itself (staging.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"

/* Nodes unreferenced under the lock, freed by snap_node_reap (fs->lock). */
static struct snap_node *node_graveyard;

/* 1 when name ends in -journal, -wal or -shm. */
int snap_name_is_sidefile(const char *name)
{
	static const char *const sfx[] = { "-journal", "-wal", "-shm" };
	size_t n = strlen(name), i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		size_t k = strlen(sfx[i]);
		if (n > k && strcmp(name + n - k, sfx[i]) == 0)
			return 1;
	}
	return 0;
}

/* Move n to the graveyard when nothing keeps it any more. */
static void node_maybe_free_locked(struct snap_node *n)
{
	struct snap_node **pp;

	if (n->linked || n->nlookup > 0 || n->nopen > 0)
		return;
	for (pp = &snap_fs.nodes; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	}
	n->next = node_graveyard;
	node_graveyard = n;
}

/* Delete a node's backing file and free it (nothing references it). */
static void node_free(struct snap_node *n)
{
	unlink(n->path);
	pthread_mutex_destroy(&n->outcome_lock);
	free(n);
}

/* Free the nodes left unreferenced under the lock, deleting their files. */
void snap_node_reap(void)
{
	struct snap_node *n, *next;

	pthread_mutex_lock(&snap_fs.lock);
	n = node_graveyard;
	node_graveyard = NULL;
	pthread_mutex_unlock(&snap_fs.lock);
	for (; n; n = next) {
		next = n->next;
		node_free(n);
	}
}

/* Create and link a node with its backing file; NULL with errno set. */
struct snap_node *snap_node_create(enum snap_node_kind kind,
				   fuse_ino_t parent, const char *name,
				   mode_t mode, uid_t uid, gid_t gid)
{
	struct snap_node *n = calloc(1, sizeof(*n));
	uint64_t seq;
	int fd;

	if (!n) {
		errno = ENOMEM;
		return NULL;
	}
	if (strlen(name) > NAME_MAX) {
		free(n);
		errno = ENAMETOOLONG;
		return NULL;
	}
	pthread_mutex_lock(&snap_fs.lock);
	seq = ++snap_fs.node_seq;
	pthread_mutex_unlock(&snap_fs.lock);

	n->ino = SNAP_INO_NODE_BASE + seq;
	n->kind = kind;
	n->parent = parent;
	snprintf(n->name, sizeof(n->name), "%s", name);
	if (snprintf(n->path, sizeof(n->path), "%s/node-%llu",
		     snap_fs.staging_dir, (unsigned long long)seq) >=
	    (int)sizeof(n->path)) {
		free(n);
		errno = ENAMETOOLONG;
		return NULL;
	}
	n->mode = S_IFREG | (mode & 07777);
	n->uid = uid;
	n->gid = gid;
	fd = open(n->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		free(n);
		errno = e;
		return NULL;
	}
	close(fd);
	pthread_mutex_init(&n->outcome_lock, NULL);

	pthread_mutex_lock(&snap_fs.lock);
	n->linked = 1;
	n->nlookup = 1;             /* the entry the creator replies with */
	n->next = snap_fs.nodes;
	snap_fs.nodes = n;
	pthread_mutex_unlock(&snap_fs.lock);
	return n;
}

/* The linked node called name in parent, or NULL (fs->lock held). */
static struct snap_node *node_find_locked(fuse_ino_t parent, const char *name)
{
	struct snap_node *n;

	for (n = snap_fs.nodes; n; n = n->next)
		if (n->linked && n->parent == parent &&
		    strcmp(n->name, name) == 0)
			break;
	return n;
}

/* The linked node called name in parent (a lookup reference with ref). */
struct snap_node *snap_node_find(fuse_ino_t parent, const char *name, int ref)
{
	struct snap_node *n;

	pthread_mutex_lock(&snap_fs.lock);
	n = node_find_locked(parent, name);
	if (n && ref)
		n->nlookup++;
	pthread_mutex_unlock(&snap_fs.lock);
	return n;
}

/* The linked node called name in parent, with an open reference. */
struct snap_node *snap_node_find_open(fuse_ino_t parent, const char *name)
{
	struct snap_node *n;

	pthread_mutex_lock(&snap_fs.lock);
	n = node_find_locked(parent, name);
	if (n)
		n->nopen++;
	pthread_mutex_unlock(&snap_fs.lock);
	return n;
}

/* The node numbered ino, or NULL (fs->lock held, no reference). */
struct snap_node *snap_node_get_locked(fuse_ino_t ino)
{
	struct snap_node *n;

	for (n = snap_fs.nodes; n; n = n->next)
		if (n->ino == ino)
			return n;
	return NULL;
}

/* Add count lookup references (the kernel got entries). */
void snap_node_lookup_locked(struct snap_node *n, uint64_t count)
{
	n->nlookup += count;
}

/* FORGET: drop nlookup of the kernel's references; free what is unused. */
void snap_node_forget(fuse_ino_t ino, uint64_t nlookup)
{
	struct snap_node *n;

	pthread_mutex_lock(&snap_fs.lock);
	n = snap_node_get_locked(ino);
	if (n) {
		n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
		node_maybe_free_locked(n);
	}
	pthread_mutex_unlock(&snap_fs.lock);
	snap_node_reap();
}

/* Add an open reference (fs->lock held). */
void snap_node_open_locked(struct snap_node *n)
{
	n->nopen++;
}

/* Drop an open reference; free the node when nothing keeps it. */
void snap_node_close(struct snap_node *n)
{
	pthread_mutex_lock(&snap_fs.lock);
	if (n->nopen > 0)
		n->nopen--;
	node_maybe_free_locked(n);
	pthread_mutex_unlock(&snap_fs.lock);
	snap_node_reap();
}

/* Drop an open reference; with leave (a rename's source, an unlink), the
 * node first leaves its directory if it still has name. */
void snap_node_close_leaving(struct snap_node *n, const char *name,
			     int leave)
{
	if (leave) {
		pthread_mutex_lock(&snap_fs.lock);
		if (n->linked && strcmp(n->name, name) == 0)
			snap_node_unlink_locked(n);
		pthread_mutex_unlock(&snap_fs.lock);
	}
	snap_node_close(n);
}

/* Take the node out of its directory (fs->lock held). */
void snap_node_unlink_locked(struct snap_node *n)
{
	n->linked = 0;
	node_maybe_free_locked(n);
}

/* Rename within its directory, unlinking a node already called newname. */
void snap_node_rename_locked(struct snap_node *n, const char *newname)
{
	struct snap_node *o, *next;

	for (o = snap_fs.nodes; o; o = next) {
		next = o->next;
		if (o != n && o->linked && o->parent == n->parent &&
		    strcmp(o->name, newname) == 0)
			snap_node_unlink_locked(o);
	}
	snprintf(n->name, sizeof(n->name), "%s", newname);
}

/* Rename the node called name in parent; 0 or -ENOENT. */
int snap_node_rename(fuse_ino_t parent, const char *name,
		     const char *newname)
{
	struct snap_node *n = snap_node_find_open(parent, name);
	int rc = -ENOENT;

	if (!n)
		return rc;
	pthread_mutex_lock(&snap_fs.lock);
	if (n->linked) {
		snap_node_rename_locked(n, newname);
		rc = 0;
	}
	pthread_mutex_unlock(&snap_fs.lock);
	snap_node_close(n);
	return rc;
}

/* Call fn on every linked node of parent (fs->lock held). */
void snap_node_foreach_locked(fuse_ino_t parent,
			      void (*fn)(struct snap_node *, void *),
			      void *ctx)
{
	struct snap_node *n;

	for (n = snap_fs.nodes; n; n = n->next)
		if (n->linked && n->parent == parent)
			fn(n, ctx);
}

/* Free every node and delete every backing file (shutdown). */
void snap_node_free_all(void)
{
	struct snap_node *n, *next;

	pthread_mutex_lock(&snap_fs.lock);
	n = snap_fs.nodes;
	snap_fs.nodes = NULL;
	pthread_mutex_unlock(&snap_fs.lock);
	for (; n; n = next) {
		next = n->next;
		node_free(n);
	}
	snap_node_reap();
}

/* A staging node's attributes: its backing file's size and times. */
int snap_node_stat(struct snap_node *n, struct stat *st)
{
	struct stat b;

	if (stat(n->path, &b) != 0)
		return -errno;
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_size = b.st_size;
	st->st_blocks = b.st_blocks;
	st->st_blksize = b.st_blksize;
	st->st_atim = b.st_atim;
	st->st_mtim = b.st_mtim;
	st->st_ctim = b.st_ctim;
	pthread_mutex_lock(&snap_fs.lock);
	st->st_mode = n->mode;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_nlink = n->linked ? 1 : 0;
	pthread_mutex_unlock(&snap_fs.lock);
	return 0;
}
