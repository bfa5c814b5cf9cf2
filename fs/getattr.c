/*
 * fs/getattr.c — the attributes a getattr answers, for any inode
 * (snap_attr_of: the fixed files, snapshots, the trash, dynamic nodes),
 * and current.db as the asking process sees it.  attr.c makes the
 * attributes of each kind of file.
 *
 * current.db's size.  A WAL database's consistent image (what a read
 * returns) is larger than the main file while committed pages sit in the
 * WAL, and rsync, tar, gio, Python's shutil and SQLite itself read as many
 * bytes as fstat() says (gio and shutil splice, which the kernel stops at
 * its cached size even on a direct_io file).  The kernel keeps one size per
 * inode and sends GETATTR without a file handle for stat() and fstat()
 * alike, so the answer goes by the requesting process (the request's
 * thread id mapped to its thread group: GIO opens and fstats from
 * different threads):
 *   - a process with current.db open sees what its newest handle reads:
 *     its image, its edit session's copy, its upload;
 *   - any other process sees the size of the image an open would get now
 *     (live.c: page_count * page_size in one read transaction, or the
 *     built image of the current generation).
 * The kernel never answers a stat of current.db from its cache: with an
 * attribute timeout of 0 it stores an expiry of 0 (fs/fuse/dir.c,
 * fuse_time_to_jiffies), and every stat and fstat arrives here (counted:
 * 200 fstat() calls, 200 GETATTRs).  So an open needs no attribute
 * invalidation: the opener's next fstat() is answered with its image, and
 * that reply also sets the kernel's size, which an invalidation would not
 * (it only marks the attributes stale).
 * Limit: the kernel keeps one size and one page cache per inode, shared
 * by every process, and splice (gio, shutil's sendfile) reads through that
 * page cache even on a direct_io file.  Two splice readers copying
 * *different* images at the same moment can read each other's pages (seen:
 * a sendfile after another process copied a newer image returned that
 * image), and a stat by a third process moves the size under them.  One
 * copy at a time is whole; read() (cp, cat, rsync, tar, SQLite) is never
 * affected: direct_io reads bypass both.
 *
 * Thread-safety: no state of its own; snap_fs fields under snap_fs.lock.
 * A handle found for a process is pinned (h->pins, fs->lock) while its
 * size is read without fs->lock; snap_handle_free waits for the pins.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"

/* current.db: the live file's stat() with its content's times (a WAL
 * commit moves the mtime), its size untouched. */
static int attr_current_live(struct stat *st)
{
	struct stat live, own;
	int rc = snap_live_stat_content(snap_fs.live, &live);

	if (rc != 0)
		return rc;
	*st = live;
	/* Owner and mode as the other files of the mount have them: the
	 * live file's only while it is its owner's (a file put at the name
	 * by whoever may write its directory never widens current.db). */
	if (snap_live_stat_owner(snap_fs.live, &own) == 0) {
		st->st_uid = own.st_uid;
		st->st_gid = own.st_gid;
		live.st_mode = own.st_mode;
	}
	st->st_ino = SNAP_INO_CURRENT;
	st->st_nlink = 1;
	st->st_mode = S_IFREG | (live.st_mode & 07777);
	return 0;
}

/* Set the size of st and the blocks it takes. */
static void attr_set_size(struct stat *st, uint64_t size)
{
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
}

/* current.db as a read-only open would see it now: the live file's
 * attributes, the size of the image the open would get (the file's own
 * size only when the database cannot be asked). */
int snap_attr_current(struct stat *st)
{
	uint64_t size;
	int rc = attr_current_live(st);

	if (rc == 0 && snap_live_size(snap_fs.live, &size) == 0)
		attr_set_size(st, size);
	return rc;
}

/* A .snapfs/ text file: its size is the text made now; readable by whom
 * may read the database (it names the database, its snapshots and their
 * comments), as the snapshots are. */
static int attr_text(fuse_ino_t ino, struct stat *st)
{
	struct stat live;
	char *text;
	size_t len;
	int rc = snap_status_text(ino, &text, &len);

	if (rc != 0)
		return rc;
	free(text);
	snap_attr_dir(ino, st);
	st->st_mode = S_IFREG | (snap_live_stat_owner(snap_fs.live, &live) == 0 ?
				 live.st_mode & 0444 : 0400);
	st->st_nlink = 1;
	st->st_size = (off_t)len;
	snap_attr_ts(&st->st_mtim, snap_time_now_ns());
	return 0;
}

/* Attributes of a dynamic node (a pending node that became a snapshot
 * shows the snapshot). */
static int attr_node(fuse_ino_t ino, struct stat *st, double *ttl)
{
	struct snap_node *n;
	int64_t id;
	struct stat live;
	snap_info si;
	int rc;

	*ttl = 0;
	id = snap_attr_pending_id(ino);
	if (id > 0 && snap_attr_info(id, &si) == 0) {
		rc = snap_live_stat_owner(snap_fs.live, &live);
		snap_attr_snapshot(&si, ino, rc == 0 ? &live : NULL, st);
		return 0;
	}
	pthread_mutex_lock(&snap_fs.lock);
	n = snap_node_get_locked(ino);
	if (n)
		snap_node_open_locked(n);   /* keep it while we stat */
	pthread_mutex_unlock(&snap_fs.lock);
	if (!n)
		return -ENOENT;
	rc = snap_node_stat(n, st);
	snap_node_close(n);
	return rc;
}

/* Attributes of any inode; ttl gets its lifetime. */
int snap_attr_of(fuse_ino_t ino, struct stat *st, double *ttl)
{
	struct stat live;
	snap_info si;
	int rc;

	*ttl = 0;
	if (snap_ino_is_dir(ino)) {
		snap_attr_dir(ino, st);
		*ttl = SNAP_TTL_DIR;
		return 0;
	}
	switch (ino) {
	case SNAP_INO_CURRENT:
		return snap_attr_current(st);
	case SNAP_INO_STATUS:
	case SNAP_INO_LOG:
		return attr_text(ino, st);
	case SNAP_INO_LATEST:
		rc = snap_store_find(snap_fs.store, "latest", &si, NULL);
		if (rc != 0)
			return -ENOENT;
		snap_attr_symlink(si.name, st);
		return 0;
	case SNAP_INO_LEFT:
		snap_attr_left_stat(st);
		return 0;
	}
	if (snap_ino_is_trash(ino))
		return snap_trashdir_attr(ino, st, ttl);
	if (snap_ino_is_snapshot(ino)) {
		rc = snap_attr_info(snap_ino_snapshot_id(ino), &si);
		if (rc != 0)
			return rc;
		rc = snap_live_stat_owner(snap_fs.live, &live);
		snap_attr_snapshot(&si, ino, rc == 0 ? &live : NULL, st);
		*ttl = SNAP_TTL_SNAP_ATTR;
		return 0;
	}
	return attr_node(ino, st, ttl);
}

/* The number of bytes handle h reads, or -1 when it has none of its own
 * (an edit session before its copy is made reads what an open would get
 * now). */
static int64_t attr_handle_size(struct snap_handle *h)
{
	struct stat b;
	int64_t size = -1;

	pthread_mutex_lock(&h->lock);
	if (h->kind == SNAP_H_IMAGE && h->simg)
		size = (int64_t)snap_image_size(h->simg);
	else if (h->kind == SNAP_H_IMAGE && h->img)
		size = (int64_t)h->img->size;
	else if ((h->kind == SNAP_H_UPLOAD || h->kind == SNAP_H_SESSION) &&
		 h->fd >= 0 && fstat(h->fd, &b) == 0)
		size = b.st_size;
	pthread_mutex_unlock(&h->lock);
	return size;
}

/* current.db's attributes as this handle sees them (fstat on an image
 * gives the image's size: that is what reading it yields). */
int snap_attr_current_fh(struct snap_handle *h, struct stat *st)
{
	int64_t size = h ? attr_handle_size(h) : -1;
	int rc = size < 0 ? snap_attr_current(st) : attr_current_live(st);

	if (rc != 0 && h) {
		/* No live file (yet): describe the handle alone. */
		memset(st, 0, sizeof(*st));
		st->st_ino = SNAP_INO_CURRENT;
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		rc = 0;
	}
	if (rc == 0 && size >= 0)
		attr_set_size(st, (uint64_t)size);
	if (rc == 0 && size >= 0 && h->has_times) {
		/* An image's times are those of its state (fixed at open):
		 * tar's check that a file did not change while it read it
		 * holds, and rsync records what it copied. */
		st->st_mtim = h->mtim;
		st->st_ctim = h->ctim;
	}
	return rc;
}

/* /proc/PID/WHAT's first size - 1 bytes into buf, terminated; 1 when
 * there were any, 0 when it cannot be read (no /proc, or pid is gone). */
static int attr_proc_read(pid_t pid, const char *what, char *buf,
			  size_t size)
{
	char path[48];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, what);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, size - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n > 0;
}

/* The process (thread group) of thread tid, from /proc; 0 when it cannot
 * be read (no /proc, or the thread is gone). */
static pid_t attr_proc_tgid(pid_t tid)
{
	char buf[512], *p;

	if (!attr_proc_read(tid, "status", buf, sizeof(buf)))
		return 0;
	p = strstr(buf, "\nTgid:");
	return p ? (pid_t)strtol(p + 6, NULL, 10) : 0;
}

/* The process of thread tid; tid itself when /proc cannot say. */
pid_t snap_attr_tgid(pid_t tid)
{
	pid_t tgid = attr_proc_tgid(tid);

	return tgid > 0 ? tgid : tid;
}

/* 1 when process tgid still runs (its /proc entry is there and it is not
 * a zombie): it may still hold what it opened. */
static int attr_proc_running(pid_t tgid)
{
	char buf[256], *p;

	if (!attr_proc_read(tgid, "stat", buf, sizeof(buf)))
		return 0;
	p = strrchr(buf, ')');     /* the name may hold anything */
	return p && p[1] == ' ' && p[2] != '\0' && p[2] != 'Z' &&
	       p[2] != 'X';
}

/* Record that h, a current.db handle, was opened by thread pid's process;
 * cs (NULL: unknown) the content's times before the open. */
void snap_attr_current_opened(struct snap_handle *h, pid_t pid,
			      const struct stat *cs)
{
	pid_t opener = pid > 0 ? attr_proc_tgid(pid) : 0;
	int writes = h->kind == SNAP_H_UPLOAD || h->kind == SNAP_H_SESSION;

	pthread_mutex_lock(&snap_fs.lock);
	if (cs && h->kind == SNAP_H_IMAGE) {
		h->has_times = 1;
		h->mtim = cs->st_mtim;
		h->ctim = cs->st_ctim;
	}
	h->tgid = opener > 0 ? opener : pid > 0 ? pid : 0;
	h->opener = opener;
	h->writes = writes;
	h->seq = ++snap_fs.handle_seq;
	pthread_mutex_unlock(&snap_fs.lock);
}

/*
 * A descriptor is inherited by a child at fork, and the child's close of
 * its copy — at exec when it is O_CLOEXEC (SQLite's are), at exit, or by
 * hand — sends a FLUSH for the same handle as the opener's own close.
 * Such a close while the opener still runs is not the end of the handle's
 * use: the opener may write on.  Any thread of the opener is the opener;
 * an unknown sender (pid 0, /proc unreadable at open or now) is taken as
 * the opener, as before this check existed.  A sender that is gone by
 * now is a child that exited (a thread of the opener cannot close a
 * descriptor its running process holds and vanish meanwhile).
 */
int snap_attr_inherited_close(const struct snap_handle *h, pid_t pid)
{
	pid_t opener, sender;

	pthread_mutex_lock(&snap_fs.lock);
	opener = h->opener;
	pthread_mutex_unlock(&snap_fs.lock);
	if (pid <= 0 || opener <= 0 || pid == opener)
		return 0;
	sender = attr_proc_tgid(pid);
	if (sender == opener)
		return 0;
	if (sender <= 0 && access("/proc/self/stat", R_OK) != 0)
		return 0;               /* no /proc at all: cannot tell */
	return attr_proc_running(opener);
}

/* A tool that copied a file onto current.db sets the source's mode (and
 * times) right after its close, which RELEASE may overtake: its process
 * still counts as the writer for this long. */
#define ATTR_WRITER_GRACE_NS (5LL * 1000000000LL)

/* Forget handle h for the per-process view (fs->lock held). */
void snap_attr_current_closed_locked(struct snap_handle *h)
{
	if (h->tgid && h->writes) {
		snap_fs.writer_tgid = h->tgid;
		snap_fs.writer_until_ns = snap_time_now_ns() +
					  ATTR_WRITER_GRACE_NS;
	}
}

/* 1 when thread pid's process writes current.db now or did a moment ago. */
int snap_attr_current_writer(pid_t pid)
{
	struct snap_handle *h;
	pid_t tgid;
	int w = 0;

	if (pid <= 0)
		return 0;
	tgid = snap_attr_tgid(pid);
	pthread_mutex_lock(&snap_fs.lock);
	for (h = snap_fs.handles; h && !w; h = h->next)
		w = h->tgid == tgid && h->writes;
	if (!w && snap_fs.writer_tgid == tgid &&
	    snap_time_now_ns() < snap_fs.writer_until_ns)
		w = 1;
	pthread_mutex_unlock(&snap_fs.lock);
	return w;
}

/* The newest current.db handle thread pid's process has open, pinned (the
 * release waits for attr_unpin), or NULL. */
static struct snap_handle *attr_pin(pid_t pid)
{
	struct snap_handle *h, *best = NULL;
	int any = 0;
	pid_t tgid;

	pthread_mutex_lock(&snap_fs.lock);
	for (h = snap_fs.handles; h && !any; h = h->next)
		any = h->tgid != 0;
	pthread_mutex_unlock(&snap_fs.lock);
	if (!any || pid <= 0)
		return NULL;             /* no /proc read while nobody reads */
	tgid = snap_attr_tgid(pid);
	pthread_mutex_lock(&snap_fs.lock);
	for (h = snap_fs.handles; h; h = h->next)
		if (h->tgid == tgid && !h->gone &&
		    (!best || h->seq > best->seq))
			best = h;
	if (best)
		best->pins++;
	pthread_mutex_unlock(&snap_fs.lock);
	return best;
}

/* Drop the pin attr_pin took; wake a release waiting for it. */
static void attr_unpin(struct snap_handle *h)
{
	pthread_mutex_lock(&snap_fs.lock);
	if (--h->pins == 0)
		pthread_cond_broadcast(&snap_fs.unpinned);
	pthread_mutex_unlock(&snap_fs.lock);
}

/*
 * current.db as the sender of a request sees it.  The kernel keeps one
 * size per inode and asks without a file handle for fstat() (only
 * lseek(SEEK_END) and reads past the cached size send one), so "which
 * image does this caller read" is answered by the process: a process with
 * current.db open sees what its newest handle reads — the image it is
 * copying, its edit session's copy, its upload — and any other process
 * sees what an open would read now.
 */
int snap_attr_current_req(pid_t pid, struct snap_handle *h, struct stat *st)
{
	int rc;

	if (h)
		return snap_attr_current_fh(h, st);
	h = attr_pin(pid);
	if (!h)
		return snap_attr_current(st);
	rc = snap_attr_current_fh(h, st);
	attr_unpin(h);
	return rc;
}

/* 1 when current.db is hidden from this process: it just unlinked it. */
int snap_attr_current_hidden(pid_t pid)
{
	int hidden = 0;

	pthread_mutex_lock(&snap_fs.lock);
	if (snap_fs.unlink_pid) {
		if (snap_time_now_ns() >= snap_fs.unlink_until_ns)
			snap_fs.unlink_pid = 0;
		else
			hidden = snap_fs.unlink_pid == pid;
	}
	pthread_mutex_unlock(&snap_fs.lock);
	return hidden;
}
