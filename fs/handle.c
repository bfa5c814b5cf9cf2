/*
 * fs/handle.c — the table of open handles: a handle is made at open, found
 * by the number the kernel holds (fi->fh) and pinned while a handler uses
 * it, and freed only when no handler does (handle.h says why: the kernel
 * can send RELEASE while a READ of the same file is still served).  What a
 * handle means and what it holds is file.c's.
 *
 * Thread-safety: the list, the pins and the numbers are under fs->lock;
 * unpinned is signalled when a handle's pins drop to 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <unistd.h>

#include "fs.h"

/* A new handle of kind, on the list the shutdown walks. */
struct snap_handle *snap_handle_new(enum snap_handle_kind kind)
{
	struct snap_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	h->fd = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_lock(&snap_fs.lock);
	h->id = ++snap_fs.handle_ids;
	h->next = snap_fs.handles;
	if (h->next)
		h->next->prev = h;
	snap_fs.handles = h;
	pthread_mutex_unlock(&snap_fs.lock);
	return h;
}

/* Give the kernel the number of h as fi->fh. */
void snap_handle_set(struct fuse_file_info *fi, struct snap_handle *h)
{
	fi->fh = h->id;
}

/* The open handle fi names, pinned; NULL when there is none (released). */
struct snap_handle *snap_handle_get(struct fuse_file_info *fi)
{
	struct snap_handle *h;

	if (!fi)
		return NULL;
	pthread_mutex_lock(&snap_fs.lock);
	for (h = snap_fs.handles; h; h = h->next)
		if (h->id == fi->fh && !h->gone)
			break;
	if (h)
		h->pins++;
	pthread_mutex_unlock(&snap_fs.lock);
	return h;
}

/* Drop the pin snap_handle_get took; wake a RELEASE waiting for it. */
void snap_handle_put(struct snap_handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&snap_fs.lock);
	if (--h->pins == 0)
		pthread_cond_broadcast(&snap_fs.unpinned);
	pthread_mutex_unlock(&snap_fs.lock);
}

/* RELEASE: the handle fi names, once no handler uses it any more; no
 * handler can pin it after this.  NULL when there is none. */
struct snap_handle *snap_handle_take(struct fuse_file_info *fi)
{
	struct snap_handle *h;

	pthread_mutex_lock(&snap_fs.lock);
	for (h = snap_fs.handles; h; h = h->next)
		if (h->id == fi->fh && !h->gone)
			break;
	if (h) {
		h->gone = 1;
		while (h->pins > 0)
			pthread_cond_wait(&snap_fs.unpinned, &snap_fs.lock);
	}
	pthread_mutex_unlock(&snap_fs.lock);
	return h;
}

/* Free the handle itself (what it holds: snap_handle_release). */
void snap_handle_free(struct snap_handle *h)
{
	size_t i;

	if (!h)
		return;
	pthread_mutex_lock(&snap_fs.lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		snap_fs.handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	snap_attr_current_closed_locked(h);
	/* A getattr of its process may still be reading its size. */
	while (h->pins > 0)
		pthread_cond_wait(&snap_fs.unpinned, &snap_fs.lock);
	pthread_mutex_unlock(&snap_fs.lock);
	if (h->fd >= 0)
		close(h->fd);
	for (i = 0; i < h->nents; i++)
		if (h->ents[i].node)
			snap_node_close(h->ents[i].node);
	free(h->ents);
	free(h->text);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* May uid's write of size bytes at off into fd take new space: 0 or
 * -ENOSPC (see handle.h). */
int snap_handle_room(int fd, uid_t uid, size_t size, off_t off)
{
	struct statvfs v;
	struct stat st;

	if (geteuid() != 0 || uid == 0 || size == 0)
		return 0;
	if (fstat(fd, &st) == 0 && off >= 0 &&
	    (uint64_t)off + size <= (uint64_t)st.st_size)
		return 0;      /* bytes it has: no new space (but holes) */
	if (fstatvfs(fd, &v) != 0)
		return 0;
	return (uint64_t)v.f_bavail * v.f_frsize < size ? -ENOSPC : 0;
}
