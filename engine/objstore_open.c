/*
 * engine/objstore_open.c — snap_objstore_open: the URL picks the backend
 * (file:// in objstore_file.c, s3:// in objstore_s3.c), which fills the
 * handle.  The top of the object stores.
 */
#include "objstore_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int snap_objstore_open(const char *url, unsigned flags, snap_objstore **out,
		       snap_err *err)
{
	*out = NULL;
	snap_objstore *o = calloc(1, sizeof *o);
	if (!o || !(o->url = strdup(url))) {
		free(o);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	o->dirfd = -1;
	int rc;
	if (!strncmp(url, "file://", 7)) {
		rc = snap_objstore_file_open(o, url + 7, flags, err);
	} else if (!strncmp(url, "s3://", 5)) {
		rc = snap_objstore_s3_open(o, url + 5, flags, err);
	} else {
		rc = snap_err_set(err, -EINVAL,
				  "%s: not a replica URL snapfs speaks "
				  "(s3://BUCKET/PREFIX or file:///ABSOLUTE/PATH)",
				  url);
	}
	if (rc < 0) {
		if (o->be)
			o->be->close(o);
		free(o->url);
		free(o);
		return rc;
	}
	*out = o;
	return 0;
}

