/*
 * fs/offsite.h — the daemon's offsite replica: -o replicate=URL
 * (offsite.c).  Part of the daemon's headers; fs/fs.h includes them all.
 */
#ifndef FS_OFFSITE_H
#define FS_OFFSITE_H

#include "ino.h"

/* ---- replication to an offsite replica (offsite.c) ---------------------- */

struct snap_offsite_opts {
	char *url;                  /* -o replicate=URL, or NULL */
	int64_t every_ns;           /* -o replicate_every=, 0 = after each
				     * change of the catalog */
	char *passphrase_file;      /* -o passphrase_file=FILE, or NULL */
};

/* Before mounting: read the passphrase file and open the replica at
 * o->url (created when missing); 0 (also without a URL) or a negative
 * errno, err says why.  After the catalog watcher started: start the
 * replication thread (0 or a negative errno).  At shutdown, before the
 * store closes: stop it (a replication in progress finishes first) and
 * close the replica; safe when never opened or started. */
int snap_offsite_open(const struct snap_offsite_opts *o, snap_store *store,
		      snap_err *err);
int snap_offsite_start(void);
void snap_offsite_stop(void);
/* When the replication in progress began (ns since the epoch), 0 when
 * none runs. */
int64_t snap_offsite_running_since(void);
/* The URL replicated to, or NULL without -o replicate=. */
const char *snap_offsite_url(void);

#endif /* FS_OFFSITE_H */
