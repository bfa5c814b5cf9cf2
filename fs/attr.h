/*
 * fs/attr.h — attributes and names (attr.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_ATTR_H
#define FS_ATTR_H

#include "handle.h"

/* ---- attributes (attr.c; snap_attr_of, snap_attr_current*: getattr.c) */

/* t (ns since the epoch) as a timespec. */
void snap_attr_ts(struct timespec *ts, int64_t ns);
/* A fixed directory's attributes (owned like the live database). */
void snap_attr_dir(fuse_ino_t ino, struct stat *st);
/* current.db as an open would see it now: the live file's stat() with the
 * size of the image a read-only open would get; -ENOENT without a live
 * file. */
int snap_attr_current(struct stat *st);
/* current.db as handle h sees it (h may be NULL: as above). */
int snap_attr_current_fh(struct snap_handle *h, struct stat *st);
/* current.db as the caller of a request sees it: through handle h when
 * given, else through the newest current.db handle its process (pid is
 * the requesting thread) has open, else as snap_attr_current. */
int snap_attr_current_req(pid_t pid, struct snap_handle *h,
			  struct stat *st);
/* Record that h, a current.db handle, was opened by thread pid's process
 * (before the open is replied to), cs the content's times taken before
 * the open (an image keeps them: NULL when unknown); and that it is going
 * away (fs->lock held). */
void snap_attr_current_opened(struct snap_handle *h, pid_t pid,
			      const struct stat *cs);
void snap_attr_current_closed_locked(struct snap_handle *h);
/* 1 when a FLUSH of h sent by thread pid is a copy of the descriptor that
 * another process inherited being closed (a forked child's exec or exit)
 * while the process that opened h still runs; 0 for the opener's own
 * close, and whenever that cannot be told. */
int snap_attr_inherited_close(const struct snap_handle *h, pid_t pid);
/* 1 when thread pid's process writes current.db: it has an upload or an
 * edit session open, or closed one a moment ago. */
int snap_attr_current_writer(pid_t pid);
/* A snapshot under inode ino; live may be NULL (mode 0444 then). */
void snap_attr_snapshot(const snap_info *si, fuse_ino_t ino,
			const struct stat *live, struct stat *st);
void snap_attr_symlink(const char *target, struct stat *st);
/* Any inode; *ttl gets how long the kernel may keep the attributes. */
int snap_attr_of(fuse_ino_t ino, struct stat *st, double *ttl);
/* The catalog row of snapshot id. */
int snap_attr_info(int64_t id, snap_info *si);
/* The snapshot a snapshot request (pending node) became, or 0. */
int64_t snap_attr_pending_id(fuse_ino_t ino);
/* The snapshot listed exactly as name; 0 or -ENOENT. */
int snap_attr_by_name(const char *name, snap_info *si);
/* 1 when current.db is hidden from process pid (it just unlinked it). */
int snap_attr_current_hidden(pid_t pid);
void snap_attr_entry(struct fuse_entry_param *e, const struct stat *st,
		     double attr_ttl, double entry_ttl);
/* parent/name (restore/ or snapshots/) left at a close by process tgid
 * (restored, imported): for a few seconds it resolves for that process to
 * SNAP_INO_LEFT. */
void snap_attr_left(fuse_ino_t parent, const char *name, pid_t tgid);
/* 1 when parent/name left a moment ago at process tgid's close. */
int snap_attr_left_is(fuse_ino_t parent, const char *name, pid_t tgid);
/* Process tgid set the mode of what left (the last thing those tools
 * do): its names resolve no more, so its next copy under the same name
 * creates a new file. */
void snap_attr_left_done(pid_t tgid);
/* The attributes of SNAP_INO_LEFT: an empty file, never wider
 * than 0600, owned like the live database. */
void snap_attr_left_stat(struct stat *st);
/* The process (thread group) of thread tid; tid when /proc cannot say. */
pid_t snap_attr_tgid(pid_t tid);

#endif /* FS_ATTR_H */
