/*
 * engine/trash.h — the freedesktop trash of a store: snapshots a file
 * manager's Delete key moved to `.Trash-UID/files/` of the mount, waiting
 * there until the trash is emptied or they are moved back.
 *
 * The Trash specification (freedesktop.org, "Trash specification" 1.0)
 * gives every user of a mounted filesystem a directory `$topdir/.Trash-$uid`
 * with `files/` (the trashed files) and `info/` (one `NAME.trashinfo` per
 * file: its original Path and DeletionDate).  GLib's g_file_trash() writes
 * info/NAME.trashinfo, then renames the file into files/NAME; a restore
 * renames files/NAME back to the Path; gvfs empties the trash by renaming
 * files/NAME into `expunged/` and unlinking it there.  The daemon maps those
 * names onto this module (fs/trash.c); what a trashed snapshot *is* lives
 * here, in the catalog, so it survives a remount and snapctl sees it.
 *
 * A trashed snapshot keeps everything it had (id, name, kind, created time,
 * pages, pin, comment): only a row in the table `trash` says where it is.
 * While it is there, whatever its kind:
 *   - snapshots/ does not list it and latest.db never names it;
 *   - retention neither prunes it nor counts it as a kept snapshot (the
 *     free-space guard does not delete it either): only emptying the trash
 *     (unlinking it, snap_store_delete) or an explicit delete removes it;
 *   - its pages stay in the store, as a file in a desktop trash keeps its
 *     blocks, until the trash is emptied;
 *   - restoring it (snap_trash_restore) puts it back exactly as it was.
 *
 * Names: `name` is the file's name in files/ or expunged/ (any name a
 * directory may hold: 1..SNAP_TRASH_NAME_MAX bytes, no '/', not "." or
 * ".."); it is unique within one directory of one user's trash.  `info` is
 * the .trashinfo text stored with it (what GLib wrote, when it is a trash
 * info of at most SNAP_TRASH_INFO_MAX bytes; otherwise one is made from
 * the catalog: Path=snapshots/NAME, DeletionDate=now in local time).
 *
 * Errors are negative errnos with a message, like every catalog call:
 * -ENOENT (no such snapshot, or not where the call expects it), -EEXIST
 * (the name is taken in that trash directory), -EINVAL (a bad name),
 * -EROFS/-ENOSPC (the store cannot change).  Each change is one
 * transaction and records an event ("trash", "untrash").
 */
#ifndef ENGINE_TRASH_H
#define ENGINE_TRASH_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Bytes of a stored .trashinfo text (GLib writes about 100). */
#define SNAP_TRASH_INFO_MAX 4096

/*
 * Put snapshot id (not trashed) into the trash of `uid` as files/NAME.
 * info (len bytes, NULL for none) is the .trashinfo text to keep with it.
 * *out (may be NULL) gets the snapshot as it is now.
 */
int snap_trash_put(snap_store *s, int64_t id, uint32_t uid, const char *name,
		   const char *info, size_t len, snap_info *out,
		   snap_err *err);

/* Move trashed snapshot id to directory dir (SNAP_TRASH_FILES or
 * SNAP_TRASH_EXPUNGED) of the same trash, as `name`. */
int snap_trash_move(snap_store *s, int64_t id, snap_trash_dir dir,
		    const char *name, snap_info *out, snap_err *err);

/* Take snapshot id out of the trash: it is listed in snapshots/ again,
 * unchanged.  -ENOENT when it is not in the trash. */
int snap_trash_restore(snap_store *s, int64_t id, snap_info *out,
		       snap_err *err);

/* The snapshot called `name` in directory dir of uid's trash; -ENOENT. */
int snap_trash_find(snap_store *s, uint32_t uid, snap_trash_dir dir,
		    const char *name, snap_info *out, snap_err *err);

/* The trashed snapshots of uid's trash (uid < 0: of every trash), ordered
 * by uid, directory and name; free(*out) after. */
int snap_trash_list(snap_store *s, int64_t uid, snap_info **out, size_t *n,
		    snap_err *err);

/* The .trashinfo text kept with trashed snapshot id (malloc()ed). */
int snap_trash_info(snap_store *s, int64_t id, char **text, snap_err *err);

/* The .trashinfo text of snapshot si trashed at when_ns (local time), as
 * the specification writes it; 0, or -ENAMETOOLONG when cap is short. */
int snap_trash_info_make(const snap_info *si, int64_t when_ns, char *out,
			 size_t cap);

#endif /* ENGINE_TRASH_H */
