/*
 * engine/objstore.c — the object-store interface (objstore.h): names
 * checked, then each call handed to the backend the handle was opened
 * with (objstore_file.c: file://, objstore_s3.c: s3://; the opener that
 * picks one is objstore_open.c).  The bottom of the object stores: it
 * calls no backend by name, only through the handle's table.
 */
#include "objstore_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int snap_objstore_name_check(const char *name)
{
	const char *slash = strchr(name, '/');
	const char *base = slash ? slash + 1 : name;
	size_t dirlen = slash ? (size_t)(slash - name) : 0;
	if (!*base || *base == '.' || strchr(base, '/') ||
	    (slash && (dirlen == 0 || *name == '.')) || strlen(name) > 255)
		return -EINVAL;
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-' || c == ':' || c == '/'))
			return -EINVAL;
	}
	return 0;
}

/* Refuse a bad name with a message naming it. */
static int name_ok(const snap_objstore *o, const char *name, snap_err *err)
{
	if (snap_objstore_name_check(name) < 0)
		return snap_err_set(err, -EINVAL,
				    "%s: \"%s\" is not a valid object name",
				    o->url, name);
	return 0;
}

/* ---- the interface -------------------------------------------------------- */

void snap_objstore_close(snap_objstore *o)
{
	if (!o)
		return;
	o->be->close(o);
	free(o->url);
	free(o);
}

const char *snap_objstore_url(const snap_objstore *o)
{
	return o->url;
}

int snap_objstore_put(snap_objstore *o, const char *name, const void *data,
		      size_t len, snap_err *err)
{
	int rc = name_ok(o, name, err);
	return rc < 0 ? rc : o->be->put(o, name, data, len, err);
}

int snap_objstore_get_max(snap_objstore *o, const char *name, size_t max,
			  uint8_t **data, size_t *len, snap_err *err)
{
	int rc = name_ok(o, name, err);
	return rc < 0 ? rc : o->be->get(o, name, max, data, len, err);
}

int snap_objstore_get(snap_objstore *o, const char *name, uint8_t **data,
		      size_t *len, snap_err *err)
{
	return snap_objstore_get_max(o, name, SNAP_OBJSTORE_MAX, data, len,
				     err);
}

void snap_objstore_prefetch(snap_objstore *o, const char *name, size_t max)
{
	if (o->be->prefetch && snap_objstore_name_check(name) == 0)
		o->be->prefetch(o, name, max);
}

int snap_objstore_list(snap_objstore *o, const char *dir,
		       snap_objstore_list_fn fn, void *ctx, snap_err *err)
{
	char probe[300];
	snprintf(probe, sizeof probe, "%s/x", dir);
	int rc = name_ok(o, probe, err);
	return rc < 0 ? rc : o->be->list(o, dir, fn, ctx, err);
}

int snap_objstore_all_cancelled;   /* objstore_int.h */

void snap_objstore_cancel_all(void)
{
	__atomic_store_n(&snap_objstore_all_cancelled, 1, __ATOMIC_RELEASE);
}

void snap_objstore_cancel(snap_objstore *o)
{
	if (o)
		__atomic_store_n(&o->cancel, 1, __ATOMIC_RELEASE);
}

void snap_objstore_interrupt(snap_objstore *o, int on)
{
	if (!o)
		return;
	__atomic_store_n(&o->intr, on ? 1 : 0, __ATOMIC_RELEASE);
	if (on && o->be->interrupt)
		o->be->interrupt(o);
}

int snap_objstore_delete(snap_objstore *o, const char *name, snap_err *err)
{
	int rc = name_ok(o, name, err);
	return rc < 0 ? rc : o->be->del(o, name, err);
}
