/*
 * fs/xattr.c — a snapshot's user.snapfs.* extended attributes (xattr.h):
 * what each one says and how GETXATTR and LISTXATTR are answered, shared
 * by the daemon's mount (ops.c) and a replica's (replica_ops.c).
 *
 * Thread-safety: no state; tables() is the caller's (it takes its lock).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xattr.h"

static const char *const snap_xattrs[] = {
	"kind", "label", "created", "sha256", "comment", "tables",
};

int snap_xattr_value(const snap_info *si, const char *name,
		     snap_xattr_tables_fn tables, void *ctx, char **out)
{
	char buf[SNAP_COMMENT_MAX + 80];
	const char *key = name + strlen(SNAP_XATTR_PREFIX);

	*out = NULL;
	if (strncmp(name, SNAP_XATTR_PREFIX, strlen(SNAP_XATTR_PREFIX)))
		return -ENODATA;
	if (strcmp(key, "kind") == 0)
		snprintf(buf, sizeof(buf), "%s", snap_kind_name(si->kind));
	else if (strcmp(key, "label") == 0)
		snprintf(buf, sizeof(buf), "%s", si->label);
	else if (strcmp(key, "created") == 0)
		snap_time_iso(si->created_ns, buf);
	else if (strcmp(key, "sha256") == 0)
		snap_hex(si->sha256, buf);
	else if (strcmp(key, "comment") == 0)
		snprintf(buf, sizeof(buf), "%s", si->comment);
	else if (strcmp(key, "tables") == 0)
		return tables(ctx, si, out);
	else
		return -ENODATA;
	*out = strdup(buf);
	return *out ? 0 : -ENOMEM;
}

void snap_xattr_reply(fuse_req_t req, const char *value, size_t size)
{
	size_t len = strlen(value);

	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

void snap_xattr_list_reply(fuse_req_t req, int snapshot, size_t size)
{
	char buf[512];
	size_t len = 0, i;

	for (i = 0; snapshot && i < sizeof(snap_xattrs) /
		     sizeof(snap_xattrs[0]); i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
					SNAP_XATTR_PREFIX, snap_xattrs[i]) + 1;
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
}
