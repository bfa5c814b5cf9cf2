/*
 * fs/fs.h — the snapfs daemon: what its modules share.
 *
 * The daemon maps FUSE low-level operations onto the engine (engine/snapfs.h)
 * and holds no storage logic.  Everything but main.c is the static library
 * libsnapfs_fs (the unit tests link it).  Its modules, from the top floor
 * down (a file calls only files below it; the command line, the start-up
 * checks and the shared state, driven by main.c, last; fs/DESIGN.md lists
 * them too):
 *
 *   main.c        main(): the daemon's life in order;
 *   replica.c     snapfs URL MNT: a replica mounted read-only, its life;
 *   replica_ops.c its tree and operations (rmount.h), apart from the
 *                 daemon's;
 *   ops.c         the one fuse_lowlevel_ops table; lookup, getattr,
 *                 xattrs, statfs, init;
 *   create.c      CREATE: what a new name means where it is made;
 *   setattr.c     SETATTR of every kind of file;
 *   file.c        open files: open, read, write, flush, release;
 *   status.c      the text of .snapfs/status.json and .snapfs/log;
 *   session.c     edit sessions of current.db: join, flush, leave;
 *   restoredir.c  restore/, the drop folder: a file copied or moved into
 *                 it is restored onto the live database;
 *   restorewal.c  restore/'s pairs: a database and its -wal, in either
 *                 order;
 *   pending.c     snapshot requests: names created in snapshots/;
 *   sessionapply.c  an edit applied: restored, merged, or kept as a
 *                 conflict snapshot;
 *   dir.c         names: listings, unlink, rename, and what is refused;
 *   staging.c     the private staging directory, restores through the
 *                 mount, staged replaces (uploads);
 *   handle.c      the table of open handles and their pins;
 *   offsite.c     the replication thread: -o replicate=URL, after each
 *                 change of the catalog or every replicate_every=;
 *   timer.c       the timer thread: schedules, checks, verifies (and the
 *                 thread plumbing offsite.c shares);
 *   getattr.c     any inode's attributes, current.db per process;
 *   trashfiles.c  the trash's info files and the renames that trash,
 *                 restore and empty;
 *   livectl.c     the live view opened, closed, quiesced for a restore;
 *   trash.c       the freedesktop trash at the root (.Trash-UID/): names,
 *                 attributes, listings, directories;
 *   liveimage.c   consistent images of the live database for read-only
 *                 opens (peeks, held transactions, built copies);
 *   live.c        the live database's change generation and size;
 *   peek.c        an image's first pages and the read transaction that
 *                 can still copy the rest (a file manager's peek copies
 *                 nothing);
 *   inode.c       the table of dynamic nodes (staging files in the root
 *                 and restore/, snapshot requests in snapshots/);
 *   attr.c        attributes and entries of each kind of file, the root's
 *                 fixed directories;
 *   watch.c       the catalog watcher: snapshots/' time and the kernel's
 *                 view follow every change of the catalog, by any process;
 *   notify.c      the notifier thread that invalidates kernel caches;
 *   xattr.c       a snapshot's user.snapfs.* attributes, for both mounts;
 *   log.c         one logging function (stderr with -f, syslog otherwise);
 *   options.c     the command line, parsed without mounting;
 *   startup.c     the checks before mounting, daemonizing;
 *   state.c       the one shared state (struct snap_fs).
 * Each has its header (ino.h: inode numbers and fixed names; state.h:
 * struct snap_fs; node.h, handle.h, live.h, ...); this file includes them
 * all.  session.h, live_int.h and trash_int.h are private to their pairs.
 *
 * Inode numbers (stable across remounts where they name stable things):
 *   1..8                       the fixed files and directories below;
 *   SNAP_INO_SNAP_BASE + id    a snapshot (store ids are never reused, and a
 *                              snapshot's bytes never change, so the kernel
 *                              may cache it for as long as it likes);
 *   SNAP_INO_NODE_BASE + seq   a dynamic node (seq never reused in a run);
 *   SNAP_INO_TRASH_INFO_BASE + id
 *                              info/NAME.trashinfo of trashed snapshot id;
 *   SNAP_INO_TRASH_DIR_BASE + 4 * uid + part
 *                              .Trash-UID and its files/, info/, expunged/
 *                              (trash.c; a trashed snapshot keeps its own
 *                              number).
 *
 * Lock order (a thread may take a lock only after those above it):
 *   handle->lock     one open file's state and I/O; held across the apply
 *                    of that file's bytes (flush, release), so it comes
 *                    first;
 *   node->outcome_lock  a snapshot request's outcome (staging.c): held
 *                    across the engine's snapshot or import, so that a
 *                    request becomes one snapshot whichever of its
 *                    handles closes;
 *   fs->apply_lock   serializes every restore the mount performs and the
 *                    start and apply of an edit session; held across engine
 *                    calls on purpose (it orders restores, it guards no
 *                    data that a getattr or readdir needs);
 *   live->quiesce_lock  taken shared by peeks and image builds, and
 *                    exclusively across a restore, from quiesce to resume;
 *   live->build_lock serializes image builds (held across a backup);
 *   live->lock       the watch connection, the generation, the images'
 *                    state;
 *   fs->lock         the node table, the handle list, the root's names, the
 *                    session's counters.  A leaf: nothing is called under
 *                    it that takes a lock, sleeps, or talks to SQLite or the
 *                    kernel.
 *   restore/'s pair_lock (restorewal.c) a leaf too, never held with
 *                    fs->lock.
 * No lock is held while a notification is sent (the notifier thread holds
 * none at all).
 */
#ifndef FS_FS_H
#define FS_FS_H

#include "ino.h"
#include "log.h"
#include "notify.h"
#include "watch.h"
#include "live.h"
#include "peek.h"
#include "node.h"
#include "handle.h"
#include "state.h"
#include "staging.h"
#include "restoredir.h"
#include "trash.h"
#include "status.h"
#include "attr.h"
#include "ops.h"
#include "timer.h"
#include "offsite.h"
#include "options.h"
#include "startup.h"

#endif /* FS_FS_H */
