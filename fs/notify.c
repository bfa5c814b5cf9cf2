/*
 * fs/notify.c — the notifier thread: tells the kernel to forget what it has
 * cached when the truth changed underneath it.
 *
 * Why a thread: fuse_lowlevel_notify_inval_entry() takes the kernel's lock
 * on the parent directory.  Called from the handler of an operation that
 * holds that lock (a RENAME, a CREATE), or under a daemon lock such an
 * operation waits for, it deadlocks (fuse_lowlevel.h; engine/PITFALLS.md 18).
 * So handlers only queue requests here, after they replied, and this thread —
 * holding no filesystem lock — sends them in order.  A request that arrives
 * before the kernel finished the operation would wait for the directory
 * lock in the kernel, uninterruptibly: if the daemon is killed then (kill
 * -9 in the middle of a restore by rename, which holds the directory
 * locks for seconds), its notifier never returns, the process never ends,
 * /dev/fuse is never closed, and the rename waits for ever — a hung mount
 * (seen, with the catalog watcher reporting a restore's safety snapshot
 * while the rename ran).  So the handlers of operations the kernel sends
 * with a directory locked (lookup, readdir, create, unlink, rename, ...)
 * mark that directory busy while they run (snap_notify_dir_begin/end,
 * ops.c), and the thread sends no invalidation of a name in a busy
 * directory: it waits here, in user space, where a kill ends it, until the
 * operation replied and the kernel can finish it without the daemon.  The
 * invalidation still lands after the operation.
 *
 * What gets invalidated (engine/PITFALLS.md 16, and its O_TRUNC note):
 *   - after a restore: current.db's attributes and cached data, the dentry
 *     "current.db" (the kernel moved the rename source's dentry onto it)
 *     and the source's name;
 *   - after a staged replace: current.db's attributes (O_TRUNC zeroed the
 *     kernel's size);
 *   - after a snapshot request became a snapshot: the request's name (the
 *     snapshot is listed under its real, time-stamped name);
 *   - after the catalog changed, by whatever process (watch.c): snapshots/'
 *     attributes, latest.db, new and renamed names, and deleted names by
 *     notify_delete (the kernel drops the name and the inode's link, so
 *     an inotify watch on the file hears IN_DELETE_SELF);
 *   - after a file in restore/ was restored (restoredir.c): its name, by
 *     notify_delete too.
 *
 * Errors: -ENOENT means the kernel had nothing cached, which is fine; other
 * failures (the mount going away) are logged at debug level and dropped.
 *
 * Thread-safety: the queue and the busy counts are protected by n->lock;
 * the thread takes it only to pop and to wait for a directory, never while
 * talking to the kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "fs.h"

enum notify_type { NOTIFY_ENTRY, NOTIFY_INODE, NOTIFY_DELETE };

struct notify_item {
	enum notify_type type;
	fuse_ino_t ino;               /* the inode, or the parent for ENTRY
					 and DELETE */
	fuse_ino_t child;             /* DELETE: the inode the name named */
	char name[NAME_MAX + 1];      /* ENTRY and DELETE */
	struct notify_item *next;
};

/* Directories whose operations are counted: the fixed ones (fs.h). */
#define NOTIFY_DIRS 16

struct snap_notify {
	struct fuse_session *se;
	pthread_t thread;
	pthread_mutex_t lock;         /* protects the fields below */
	pthread_cond_t cond;          /* signalled on push and on stop */
	pthread_cond_t idle;          /* a directory's count fell to 0; stop */
	struct notify_item *head;     /* oldest first */
	struct notify_item *tail;
	unsigned busy[NOTIFY_DIRS];   /* operations in flight per directory */
	int stop;                     /* 1: finish now */
};

/* 1 when sending it takes the lock of a directory that is busy. */
static int notify_blocked(const struct snap_notify *n,
			  const struct notify_item *it)
{
	return it->type != NOTIFY_INODE && it->ino < NOTIFY_DIRS &&
	       n->busy[it->ino] > 0;
}

/* Send one request to the kernel; no lock is held here. */
static void notify_send(struct snap_notify *n, const struct notify_item *it)
{
	int rc;

	if (it->type == NOTIFY_ENTRY)
		rc = fuse_lowlevel_notify_inval_entry(n->se, it->ino, it->name,
						      strlen(it->name));
	else if (it->type == NOTIFY_DELETE)
		rc = fuse_lowlevel_notify_delete(n->se, it->ino, it->child,
						 it->name, strlen(it->name));
	else
		rc = fuse_lowlevel_notify_inval_inode(n->se, it->ino, 0, 0);
	if (rc != 0 && rc != -ENOENT)
		snap_log(LOG_DEBUG, "invalidating %s%s%s (inode %llu): %s",
			 it->type != NOTIFY_INODE ? "name \"" : "inode",
			 it->type != NOTIFY_INODE ? it->name : "",
			 it->type != NOTIFY_INODE ? "\"" : "",
			 (unsigned long long)it->ino, strerror(-rc));
}

/* The notifier thread: send the queued invalidations, honouring busy
 * directories. */
static void *notify_main(void *arg)
{
	struct snap_notify *n = arg;
	struct notify_item *it;

	pthread_mutex_lock(&n->lock);
	while (!n->stop) {
		if (!n->head) {
			pthread_cond_wait(&n->cond, &n->lock);
			continue;
		}
		it = n->head;
		n->head = it->next;
		if (!n->head)
			n->tail = NULL;
		while (notify_blocked(n, it) && !n->stop)
			pthread_cond_wait(&n->idle, &n->lock);
		if (n->stop) {          /* stopping: dropped, like the rest */
			free(it);
			break;
		}
		pthread_mutex_unlock(&n->lock);
		notify_send(n, it);
		free(it);
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

/* Start the notifier thread; 0 or -errno. */
int snap_notify_start(struct fuse_session *se, struct snap_notify **out)
{
	struct snap_notify *n = calloc(1, sizeof(*n));
	int rc;

	if (!n)
		return -ENOMEM;
	n->se = se;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	pthread_cond_init(&n->idle, NULL);
	rc = pthread_create(&n->thread, NULL, notify_main, n);
	if (rc != 0) {
		pthread_cond_destroy(&n->idle);
		pthread_cond_destroy(&n->cond);
		pthread_mutex_destroy(&n->lock);
		free(n);
		return -rc;
	}
	*out = n;
	return 0;
}

/* Stop and join the notifier, dropping what is still queued. */
void snap_notify_stop(struct snap_notify *n)
{
	struct notify_item *it;

	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = 1;
	pthread_cond_signal(&n->cond);
	pthread_cond_broadcast(&n->idle);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	while ((it = n->head)) {
		n->head = it->next;
		free(it);
	}
	pthread_cond_destroy(&n->idle);
	pthread_cond_destroy(&n->cond);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

/* A handler runs with dir locked by the kernel: hold its invalidations. */
void snap_notify_dir_begin(struct snap_notify *n, fuse_ino_t dir)
{
	if (!n || dir >= NOTIFY_DIRS)
		return;
	pthread_mutex_lock(&n->lock);
	n->busy[dir]++;
	pthread_mutex_unlock(&n->lock);
}

/* The handler on dir replied: its held invalidations may go. */
void snap_notify_dir_end(struct snap_notify *n, fuse_ino_t dir)
{
	if (!n || dir >= NOTIFY_DIRS)
		return;
	pthread_mutex_lock(&n->lock);
	if (n->busy[dir] > 0 && --n->busy[dir] == 0)
		pthread_cond_broadcast(&n->idle);
	pthread_mutex_unlock(&n->lock);
}

/* Queue one item; on allocation failure the invalidation is lost, which
 * only makes the kernel wait for a timeout (never a wrong answer for
 * current.db, whose timeouts are 0). */
static void notify_push(struct snap_notify *n, enum notify_type type,
			fuse_ino_t ino, fuse_ino_t child, const char *name)
{
	struct notify_item *it;

	if (!n)
		return;
	it = calloc(1, sizeof(*it));
	if (!it)
		return;
	it->type = type;
	it->ino = ino;
	it->child = child;
	if (name)
		snprintf(it->name, sizeof(it->name), "%s", name);
	pthread_mutex_lock(&n->lock);
	if (n->tail)
		n->tail->next = it;
	else
		n->head = it;
	n->tail = it;
	pthread_cond_signal(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

/* Queue "forget the kernel's dentry parent/name". */
void snap_notify_entry(struct snap_notify *n, fuse_ino_t parent,
		       const char *name)
{
	notify_push(n, NOTIFY_ENTRY, parent, 0, name);
}

/* Queue "parent/name, which named child, is deleted". */
void snap_notify_delete(struct snap_notify *n, fuse_ino_t parent,
			fuse_ino_t child, const char *name)
{
	notify_push(n, NOTIFY_DELETE, parent, child, name);
}

/* Queue "forget the kernel's attributes and data of ino". */
void snap_notify_inode(struct snap_notify *n, fuse_ino_t ino)
{
	notify_push(n, NOTIFY_INODE, ino, 0, NULL);
}

/* Both, for current.db after a restore or an upload. */
void snap_notify_current(struct snap_notify *n)
{
	snap_notify_inode(n, SNAP_INO_CURRENT);
	snap_notify_entry(n, SNAP_INO_ROOT, SNAP_NAME_CURRENT);
}
