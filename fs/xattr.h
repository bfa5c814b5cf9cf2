/*
 * fs/xattr.h — a snapshot's user.snapfs.* extended attributes, one
 * definition for both mounts: the daemon's (ops.c) and a replica's
 * (replica_ops.c).  Names, formats and the replies to GETXATTR and
 * LISTXATTR (size 0: the length; too small: ERANGE).
 */
#ifndef FS_XATTR_H
#define FS_XATTR_H

#include "ino.h"

#define SNAP_XATTR_PREFIX "user.snapfs."

/* The per-table row counts of si as JSON text (malloc()ed); 0 or a
 * negative errno.  Each mount asks its own catalog. */
typedef int (*snap_xattr_tables_fn)(void *ctx, const snap_info *si,
				    char **out);

/* The value of attribute name (with its prefix) of si, malloc()ed:
 * kind, label, created (ISO 8601), sha256 (hex), comment, tables (from
 * tables(ctx, ...)).  -ENODATA for any other name. */
int snap_xattr_value(const snap_info *si, const char *name,
		     snap_xattr_tables_fn tables, void *ctx, char **out);

/* Reply to GETXATTR with value (size: the caller's buffer). */
void snap_xattr_reply(fuse_req_t req, const char *value, size_t size);

/* Reply to LISTXATTR: every attribute name when snapshot, none
 * otherwise. */
void snap_xattr_list_reply(fuse_req_t req, int snapshot, size_t size);

#endif /* FS_XATTR_H */
