/*
 * engine/objstore_int.h — the backend table of the object stores and the
 * handle both backends fill (objstore_file.c: file://, objstore_s3.c:
 * s3://; objstore.c calls them through the table, objstore_open.c picks one).
 * Internal to the engine.
 */
#ifndef ENGINE_OBJSTORE_INT_H
#define ENGINE_OBJSTORE_INT_H

#include "objstore.h"

/* What a kind of target does; each entry has the meaning of the
 * snap_objstore_* call of the same name (names already checked). */
typedef struct snap_objstore_backend {
	int (*put)(snap_objstore *o, const char *name, const void *data,
		   size_t len, snap_err *err);
	int (*get)(snap_objstore *o, const char *name, size_t max,
		   uint8_t **data, size_t *len, snap_err *err);
	int (*list)(snap_objstore *o, const char *dir,
		    snap_objstore_list_fn fn, void *ctx, snap_err *err);
	int (*del)(snap_objstore *o, const char *name, snap_err *err);
	void (*close)(snap_objstore *o);
	void (*prefetch)(snap_objstore *o, const char *name,
			 size_t max);                     /* or NULL */
	void (*interrupt)(snap_objstore *o);          /* or NULL */
} snap_objstore_backend;

struct snap_objstore {
	const snap_objstore_backend *be;
	char *url;
	/* file:// */
	int dirfd;          /* the target directory */
	char *path;         /* its absolute path, for messages */
	/* s3:// */
	struct snap_s3 *s3;
	int cancel;         /* snap_objstore_cancel was called (atomic) */
	int intr;           /* snap_objstore_interrupt is on (atomic) */
};

/* snap_objstore_cancel_all was called (atomic): every store is cancelled. */
extern int snap_objstore_all_cancelled;

/* Fill o for the absolute path of a file:// URL (with
 * SNAP_OBJSTORE_CREATE: make the directory; its parent must exist). */
int snap_objstore_file_open(snap_objstore *o, const char *path,
			    unsigned flags, snap_err *err);

/* Fill o for "BUCKET/PREFIX" (the URL after "s3://"): endpoint, region
 * and credentials from the environment; checks that the bucket answers. */
int snap_objstore_s3_open(snap_objstore *o, const char *rest, unsigned flags,
			  snap_err *err);

#endif /* ENGINE_OBJSTORE_INT_H */
