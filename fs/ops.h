/*
 * fs/ops.h — the FUSE handlers (file.c, dir.c) and their table (ops.c).
 * Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_OPS_H
#define FS_OPS_H

#include "ino.h"

/* ---- the handlers (file.c, dir.c; the table in ops.c) ------------------- */

/* Open node ino (a staging file, a request) into a new handle *out,
 * replying nothing (file.c; create.c uses it); 0 or -errno. */
int snap_file_open_node(fuse_ino_t ino, struct fuse_file_info *fi,
			struct snap_handle **out);
/* SETATTR (setattr.c). */
void snap_ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		     int to_set, struct fuse_file_info *fi);
void snap_ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void snap_ll_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		    mode_t mode, struct fuse_file_info *fi);
void snap_ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi);
void snap_ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		   size_t size, off_t off, struct fuse_file_info *fi);
void snap_ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void snap_ll_release(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
void snap_ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		   struct fuse_file_info *fi);
void snap_ll_opendir(fuse_req_t req, fuse_ino_t ino,
		     struct fuse_file_info *fi);
void snap_ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);
void snap_ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			 off_t off, struct fuse_file_info *fi);
void snap_ll_releasedir(fuse_req_t req, fuse_ino_t ino,
			struct fuse_file_info *fi);
void snap_ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		      struct fuse_file_info *fi);
void snap_ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void snap_ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		    fuse_ino_t newparent, const char *newname,
		    unsigned int flags);
void snap_ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode);
void snap_ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		   mode_t mode, dev_t rdev);
void snap_ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void snap_ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		     const char *name);
void snap_ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		  const char *newname);

extern const struct fuse_lowlevel_ops snap_ll_ops;

#endif /* FS_OPS_H */
