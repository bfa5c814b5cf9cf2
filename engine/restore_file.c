/*
 * engine/restore_file.c — restore from a database file: what a file
 * given to a restore is, before restore.c copies anything.
 *
 * A file whose bytes are exactly a snapshot's image (a copy of one: cp
 * snapshots/X current.db, GIO's paste with Replace) restores that
 * snapshot; it is recognised by size first and hashed only when a
 * snapshot has its size, and only when no -wal or -journal beside it
 * could change what SQLite reads.  Any other file is checked and imported
 * as a snapshot of kind import (snap_snapshot_import_for: header, page
 * size, length, integrity_check), and that snapshot is restored; an
 * import that equals a snapshot already in the catalog is dropped again
 * unless the caller named it, and an import a precondition refused
 * (-ESTALE) goes too, since nothing went in.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "restore_file.h"
#include "snapshot_int.h"   /* snap_snapshot_import_for */
#include "store_int.h"
#include "sys.h"

/*
 * The newest snapshot but exclude_id whose image is image_size bytes and,
 * when sha is given, has that SHA-256 (then it is the same image, page size
 * included: the header is in the hashed bytes); 0 if none or on error.
 */
static int64_t snapshot_with(snap_store *s, const uint8_t *sha,
			     uint64_t image_size, int64_t exclude_id)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;

	snap_store_lock(s);
	if (sqlite3_prepare_v2(s->db, "SELECT id FROM snapshots WHERE "
			       "image_size=?1 AND (?2 IS NULL OR sha256=?2) AND "
			       "id<>?3 ORDER BY id DESC LIMIT 1", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (int64_t)image_size);
		if (sha)
			sqlite3_bind_blob(st, 2, sha, 32, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, exclude_id);
		if (sqlite3_step(st) == SQLITE_ROW)
			id = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	snap_store_unlock(s);
	return id;
}

/* The SHA-256 of the file open as fd, read to its end: 0 or -errno. */
static int file_sha256(int fd, uint8_t sha[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char *buf = malloc(1 << 16);
	ssize_t n = -1;
	int rc = -ENOMEM;

	if (md && buf && EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
		while ((n = snap_sys_read(fd, buf, 1 << 16)) > 0)
			EVP_DigestUpdate(md, buf, (size_t)n);
		rc = n < 0 ? -errno : 0;
		if (!rc && !EVP_DigestFinal_ex(md, sha, NULL))
			rc = -ENOMEM;
	}
	EVP_MD_CTX_free(md);
	free(buf);
	return rc;
}

/* 1 when "<path><suffix>" exists or cannot be looked up. */
static int file_beside(const char *path, const char *suffix)
{
	char side[PATH_MAX];
	struct stat st;

	if (snprintf(side, sizeof(side), "%s%s", path, suffix) >=
	    (int)sizeof(side))
		return 1;
	return snap_sys_stat(side, &st) == 0 || errno != ENOENT;
}

/*
 * The newest snapshot whose image is byte for byte the file at path (a
 * copy of it: cp snapshots/X current.db, GIO's paste with Replace), or 0.
 * Only a file SQLite reads as it is counts: a -wal beside it adds
 * transactions, a -journal may be rolled back.  The file is hashed only
 * when a snapshot has its size; nothing here is an error (0: import it).
 */
static int64_t same_file(snap_store *s, const char *path)
{
	uint8_t sha[32];
	struct stat fs;
	int64_t id = 0;
	int fd;

	if (file_beside(path, "-wal") || file_beside(path, "-journal"))
		return 0;
	fd = snap_sys_open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
			   0);     /* a FIFO: no hang (import refuses it) */
	if (fd < 0)
		return 0;
	if (snap_sys_fstat(fd, &fs) == 0 && S_ISREG(fs.st_mode) &&
	    fs.st_size > 0 &&
	    snapshot_with(s, NULL, (uint64_t)fs.st_size, 0) &&
	    file_sha256(fd, sha) == 0)
		id = snapshot_with(s, sha, (uint64_t)fs.st_size, 0);
	snap_sys_close(fd);
	return id;
}

int snap_restore_file_ex(snap_store *s, const char *path, const char *label,
			 const snap_restore_opts *o, snap_restore_result *res,
			 snap_err *err)
{
	snap_create_opts io = { .kind = SNAP_KIND_IMPORT, .label = label,
				.source_name = o ? o->source_name : NULL,
				.name = o ? o->import_name : NULL };
	char *dup = NULL;
	snap_info si;
	int64_t same;
	int rc;

	/* A copy of a snapshot's bytes restores that snapshot: nothing is
	 * imported, whatever the caller would have labelled the import (the
	 * mount's "upload"), and only the safety snapshot is added. */
	/* A file the import would refuse (a pipe, the live database) is
	 * not opened here: the import says why, recorded as a restore. */
	same = snap_snapshot_file_usable(s, path, NULL) ? 0 :
	       same_file(s, path);
	if (same)
		return snap_restore_ex(s, same, o, res, err);
	if (!label) {
		dup = strdup(path);
		if (!dup)
			return snap_err_set(err, -ENOMEM, "out of memory");
		io.label = basename(dup);
	}
	rc = snap_snapshot_import_for(s, path, &io, "restore", &si, err);
	free(dup);
	if (rc) {
		snap_err_prefix(err, "restore refused, %s is unchanged",
				s->db_path);
		return rc;
	}
	/* An import equal to a snapshot that same_file did not take for a
	 * copy (a -wal or -journal beside it added nothing) need not stay
	 * in the catalog twice: restore the snapshot it equals.  A caller
	 * that named the import keeps it. */
	same = label ? 0 : snapshot_with(s, si.sha256, si.image_size, si.id);
	if (same) {
		snap_err ignore;

		if (snap_store_delete(s, si.id, &ignore) == 0)
			return snap_restore_ex(s, same, o, res, err);
	}
	rc = snap_restore_ex(s, si.id, o, res, err);
	if (rc == -ESTALE && o && o->precond) {
		snap_err ignore;

		/* Refused before anything changed: the import was only
		 * the way in, and nothing went in. */
		snap_store_delete(s, si.id, &ignore);
	}
	return rc;
}

int snap_restore_file(snap_store *s, const char *path, const char *label,
		      snap_restore_result *res, snap_err *err)
{
	return snap_restore_file_ex(s, path, label, NULL, res, err);
}
