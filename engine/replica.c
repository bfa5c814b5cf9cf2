/*
 * engine/replica.c — the replica format (engine/DESIGN.md §6): writing a
 * store's snapshots into an object store and reading them back with the
 * URL and the passphrase alone.
 *
 * Pages get a sequence number (seq) in the replica when they are first
 * uploaded; a pack holds the pages of one contiguous seq range and is
 * named after its first seq ("packs/%016llx"), its index the same under
 * "index/".  A snapshot's page map is the array of seqs of its pages
 * (pgno 1..N), stored like the store's own page maps (a checksummed zstd
 * frame, codec.h).  A reader lists "index/" once (names only: one name per
 * few MB of pages), finds a seq's pack as the greatest first seq not above
 * it, and proves every page against the SHA-256 the index gives and the
 * whole image against the catalog row's.
 *
 * Order of writes, so that a kill at any point leaves a replica that shows
 * only whole snapshots: pack, then its index, then (after all packs of a
 * snapshot) the map, then the catalog row "snapshots/<id>".  A pack
 * without an index is overwritten by the next run (its seq range is
 * free again: seqs are allocated after the greatest indexed range); an
 * index whose snapshot never landed is reused by the next run.
 *
 * What the writer knows of a replica is cached in the store's own
 * database (tables replica_pageids, replica_packs, replica_snaps, created on
 * first use, keyed by the replica's id and URL), so a run reads
 * only the index and catalog objects it has not seen, and an unchanged
 * page costs one indexed lookup.  The cache is only a hint: it is
 * reconciled with the replica's listings at the start of every run.
 */
#include "replica_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "codec.h"
#include "json.h"
#include "objstore.h"
#include "seal.h"
#include "sys.h"

void snap_replica_hex(const uint8_t *b, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[b[i] >> 4];
		out[2 * i + 1] = d[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* Decode 2n hex digits; 0 or -EINVAL. */
int snap_replica_unhex(const char *s, uint8_t *out, size_t n)
{
	if (!s || strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return -EINVAL;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

/* ---- sealed objects ------------------------------------------------------ */

/* Put plain bytes as object name (through the replica's connection, or
 * os): sealed under the object key when the replica is encrypted.  Counts
 * written bytes into *bytes when given. */
int snap_replica_obj_put(snap_replica *r, const char *name,
			 const void *plain, size_t len, uint64_t *bytes,
			 snap_err *err)
{
	return snap_replica_obj_put_to(r, r->os, name, plain, len, bytes, err);
}

int snap_replica_obj_put_to(snap_replica *r, snap_objstore *os,
			    const char *name, const void *plain, size_t len,
			    uint64_t *bytes, snap_err *err)
{
	if (!r->enc) {
		if (bytes)
			*bytes += len;
		return snap_objstore_put(os, name, plain, len, err);
	}
	uint8_t *buf = malloc(len + SNAP_SEAL_OVERHEAD);
	if (!buf)
		return snap_err_set(err, -ENOMEM, "out of memory");
	size_t n = snap_seal(&r->keys, name, plain, len, buf);
	int rc = snap_objstore_put(os, name, buf, n, err);
	free(buf);
	if (bytes && rc == 0)
		*bytes += n;
	return rc;
}

/* The most bytes an object of this name can have: a store that sends
 * more is refused before it can take the reader's memory. */
static size_t obj_max(const char *name)
{
	if (!strncmp(name, "packs/", 6))    /* PACK_TARGET of pages, plus
					       one page and zstd's bound */
		return 2 * PACK_TARGET + (1u << 20);
	if (!strncmp(name, "index/", 6))    /* 512-byte pages, version 1 */
		return 20 + (PACK_TARGET / 512 + 2) * INDEX_ENTRY +
		       SNAP_SEAL_OVERHEAD + (1u << 16);
	if (!strncmp(name, "maps/", 5) || !strcmp(name, PRUNED_OBJ))
		return SNAP_OBJSTORE_MAX;
	return 1u << 20;                    /* config, rows, locks, log */
}

void snap_replica_obj_prefetch(snap_replica *r, const char *name)
{
	snap_objstore_prefetch(r->os, name, obj_max(name));
}

/* Get object name's plain bytes (free()); -ENOENT when absent, -EIO when
 * it does not open (altered, or another object's bytes), -EFBIG when it is
 * larger than such an object can be. */
int snap_replica_obj_get(snap_replica *r, const char *name, uint8_t **plain,
		   size_t *len, snap_err *err)
{
	uint8_t *data;
	size_t n;
	int rc = snap_objstore_get_max(r->os, name, obj_max(name), &data, &n,
				       err);
	if (rc < 0)
		return rc;
	if (!r->enc) {
		*plain = data;
		*len = n;
		return 0;
	}
	uint8_t *out = malloc(n ? n : 1);
	size_t outlen = 0;
	if (!out) {
		free(data);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	rc = snap_unseal(&r->keys, name, data, n, out, &outlen);
	free(data);
	if (rc < 0) {
		free(out);
		return snap_err_set(err, -EIO,
				    "%s/%s: does not open with the replica's "
				    "key (altered or damaged)",
				    snap_objstore_url(r->os), name);
	}
	*plain = out;
	*len = outlen;
	return 0;
}

/* ---- config -------------------------------------------------------------- */

/* The text of one JSON value of a document (NULL when absent), via
 * SQLite's json_extract; free() it. */
char *snap_replica_json_text(snap_replica *r, const char *doc, size_t len,
			     const char *path)
{
	sqlite3_stmt *st = NULL;
	char *out = NULL;
	if (sqlite3_prepare_v2(r->mem, "SELECT json_extract(?1, ?2)", -1, &st,
			       NULL) != SQLITE_OK)
		return NULL;
	sqlite3_bind_text(st, 1, doc, (int)len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, path, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

int snap_replica_json_valid(snap_replica *r, const void *doc, size_t len)
{
	sqlite3_stmt *st = NULL;
	int ok = 0;
	if (sqlite3_prepare_v2(r->mem, "SELECT json_valid(?1) AND "
			       "json_type(?1) = 'object'", -1, &st,
			       NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, doc, (int)len, SQLITE_STATIC);
	ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return ok;
}

/* A JSON integer of a document, or def when absent. */
int64_t snap_replica_json_int(snap_replica *r, const char *doc, size_t len,
			      const char *path, int64_t def)
{
	char *t = snap_replica_json_text(r, doc, len, path);
	int64_t v = t ? strtoll(t, NULL, 10) : def;
	free(t);
	return v;
}

/* Write config for r (its id, created time, encryption): encrypted, the
 * master key wrapped under pass with a fresh salt.  Replaces the object
 * atomically; nothing else of the replica changes. */
static int config_write(snap_replica *r, const char *pass, size_t passlen,
			snap_err *err)
{
	uint8_t wrapped[SNAP_WRAPPED_BYTES];
	char hex[2 * SNAP_WRAPPED_BYTES + 1];
	snap_kdf kdf;
	snap_json j;
	snap_json_init(&j);
	snap_json_obj_begin(&j);
	snap_json_key(&j, "format"); snap_json_str(&j, FORMAT_NAME);
	snap_json_key(&j, "version"); snap_json_int(&j, FORMAT_VERSION);
	snap_json_key(&j, "id"); snap_json_str(&j, r->id);
	snap_json_key(&j, "created"); snap_json_int(&j, r->created);
	snap_json_key(&j, "pack_target"); snap_json_int(&j, PACK_TARGET);
	if (r->enc) {
		snap_kdf_new(&kdf);
		snprintf(kdf.context, sizeof kdf.context, "%s", r->id);
		int rc = snap_key_wrap(&kdf, pass, passlen, r->master, wrapped,
				       err);
		if (rc < 0) {
			snap_json_free(&j);
			return rc;
		}
		snap_json_key(&j, "encryption");
		snap_json_str(&j, "xchacha20poly1305");
		snap_json_key(&j, "page_id"); snap_json_str(&j, "blake2b-256-keyed");
		snap_json_key(&j, "kdf");
		snap_json_obj_begin(&j);
		snap_json_key(&j, "alg"); snap_json_str(&j, "argon2id13");
		snap_replica_hex(kdf.salt, sizeof kdf.salt, hex);
		snap_json_key(&j, "salt"); snap_json_str(&j, hex);
		snap_json_key(&j, "opslimit"); snap_json_int(&j, (int64_t)kdf.opslimit);
		snap_json_key(&j, "memlimit"); snap_json_int(&j, (int64_t)kdf.memlimit);
		snap_json_obj_end(&j);
		snap_replica_hex(wrapped, sizeof wrapped, hex);
		snap_json_key(&j, "key"); snap_json_str(&j, hex);
	} else {
		snap_json_key(&j, "encryption"); snap_json_str(&j, "none");
		snap_json_key(&j, "page_id"); snap_json_str(&j, "sha256");
	}
	snap_json_obj_end(&j);
	if (j.oom) {
		snap_json_free(&j);
		return snap_err_set(err, -ENOMEM, "out of memory");
	}
	int rc = snap_objstore_put(r->os, "config", j.buf, j.len, err);
	snap_json_free(&j);
	return rc;
}

/* A new replica: a fresh id and, encrypted, a fresh master key. */
static int config_create(snap_replica *r, const char *pass, size_t passlen,
			 snap_err *err)
{
	uint8_t idb[16];
	snap_random(idb, sizeof idb);
	snap_replica_hex(idb, sizeof idb, r->id);
	r->created = snap_time_now_ns() / 1000000000;
	if (r->enc) {
		snap_key_new(r->master);
		snap_keys_derive(r->master, &r->keys);
	}
	return config_write(r, pass, passlen, err);
}

/* snap_objstore_list's callback: keep the first name, stop. */
static int first_name(void *ctx, const char *name, uint64_t size)
{
	(void)size;
	snprintf((char *)ctx, 256, "%s", name);
	return 1;
}

/* Before a config is created where none was found: a target that already
 * holds a replica's data (its config deleted, or a GET of it answered
 * 404 by an eventually consistent store) must not get a new key, which
 * would make every snapshot there unreadable.  0, or -EEXIST naming an
 * object found. */
static int config_missing_check(snap_replica *r, const char *url,
				snap_err *err)
{
	static const char *const dirs[] = { "snapshots", "maps", "index",
					    "packs" };
	char first[256] = "";

	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		int rc = snap_objstore_list(r->os, dirs[i], first_name, first,
					    err);
		if (rc < 0)
			return rc;
		if (rc > 0)
			return snap_err_set(err, -EEXIST, "%s: holds a "
					    "replica's objects (%s/%s) but no "
					    "config, which holds its key: "
					    "nothing there could be read "
					    "again, so no new replica is made "
					    "over it (put config back, or "
					    "replicate to another place)", url,
					    dirs[i], first);
	}
	return 0;
}

int snap_replica_pass_read(const char *file, const char *opt,
			   const char *env, char *buf, snap_err *err)
{
	struct stat st;
	ssize_t n = 0;
	int fd, rc = 0;

	buf[0] = '\0';
	if (!file) {
		const char *e = env ? getenv(env) : NULL;
		if (e && *e)
			snprintf(buf, SNAP_PASS_MAX, "%s", e);
		return 0;
	}
	/* read(2), not stdio: no library buffer keeps a copy. */
	fd = snap_sys_open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
			   O_NONBLOCK, 0);
	if (fd < 0)
		return snap_err_set(err, -errno, "%s%s: %s%s", opt, file,
				    strerror(errno), errno == ELOOP ?
				    " (a symbolic link: name the file itself)"
				    : "");
	if (fstat(fd, &st) != 0)
		rc = snap_err_set(err, -errno, "%s%s: %s", opt, file,
				  strerror(errno));
	else if (!S_ISREG(st.st_mode))
		rc = snap_err_set(err, -EINVAL, "%s%s: not a regular file",
				  opt, file);
	/* As ssh with a key: another user's file is a passphrase they chose
	 * or may read; a second name may be one planted in a directory
	 * they may write, of a file of ours they know (fs.protected_hardlinks
	 * lets them link a file they may read). */
	else if (st.st_uid != geteuid())
		rc = snap_err_set(err, -EPERM, "%s%s: owned by uid %u, not by "
				  "uid %u who reads it: another user could "
				  "choose or read the passphrase: refused; "
				  "keep it in a file of your own (chmod 600)",
				  opt, file, (unsigned)st.st_uid,
				  (unsigned)geteuid());
	else if (st.st_nlink != 1)
		rc = snap_err_set(err, -EPERM, "%s%s: has %u names (hard "
				  "links): one may be another user's: refused; "
				  "keep the passphrase in a file with one name",
				  opt, file, (unsigned)st.st_nlink);
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		rc = snap_err_set(err, -EPERM, "%s%s: its group or others may "
				  "change it (mode %04o): refused; make it "
				  "private with chmod 600 %s", opt, file,
				  (unsigned)(st.st_mode & 07777), file);
	else if ((n = read(fd, buf, SNAP_PASS_MAX - 1)) < 0)
		rc = snap_err_set(err, -errno, "%s%s: %s", opt, file,
				  strerror(errno));
	snap_sys_close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!rc && !buf[0])
		rc = snap_err_set(err, -EINVAL, "%s%s: empty (the passphrase "
				  "is its first line)", opt, file);
	if (!rc && (st.st_mode & (S_IRGRP | S_IROTH)))
		rc = snap_err_set(err, 1, "%s%s: its group or others may read "
				  "it (mode %04o); chmod 600 %s keeps the "
				  "passphrase private", opt, file,
				  (unsigned)(st.st_mode & 07777), file);
	if (rc < 0)
		explicit_bzero(buf, SNAP_PASS_MAX);
	return rc;
}

int snap_replica_passphrase(snap_replica *r, const char *pass,
			    size_t passlen, snap_err *err)
{
	if (!r->enc)
		return snap_err_set(err, -EINVAL, "%s: the replica is not "
				    "encrypted: it has no passphrase",
				    snap_objstore_url(r->os));
	return config_write(r, pass, passlen, err);
}

/* Read config: check the format, open the key with the passphrase. */
static int config_read(snap_replica *r, const char *doc, size_t len,
		       const char *pass, size_t passlen, unsigned flags,
		       snap_err *err)
{
	const char *url = snap_objstore_url(r->os);
	if (!snap_replica_json_valid(r, doc, len))
		return snap_err_set(err, -EIO, "%s/config: damaged (not a JSON "
				    "object): the replica's key is in it; put "
				    "back a copy of config", url);
	char *fmt = snap_replica_json_text(r, doc, len, "$.format");
	int ok = fmt && !strcmp(fmt, FORMAT_NAME);
	free(fmt);
	if (!ok)
		return snap_err_set(err, -EINVAL, "%s: not a snapfs replica "
				    "(its config names another format)", url);
	int64_t ver = snap_replica_json_int(r, doc, len, "$.version", 0);
	if (ver != FORMAT_VERSION)
		return snap_err_set(err, -EINVAL,
				    "%s: replica format version %lld; this "
				    "snapfs reads version %d (upgrade snapfs)",
				    url, (long long)ver, FORMAT_VERSION);
	char *id = snap_replica_json_text(r, doc, len, "$.id");
	uint8_t idb[16];
	if (snap_replica_unhex(id, idb, sizeof idb) < 0) {
		free(id);
		return snap_err_set(err, -EINVAL, "%s: config without a valid "
				    "replica id", url);
	}
	memcpy(r->id, id, 33);
	free(id);
	r->created = snap_replica_json_int(r, doc, len, "$.created", 0);
	char *enc = snap_replica_json_text(r, doc, len, "$.encryption");
	if (enc && !strcmp(enc, "none")) {
		free(enc);
		r->enc = 0;
		/* config is not authenticated: whoever can write the
		 * replica could turn an encrypted one into a plain one.  A
		 * user who holds a passphrase expects encryption; only an
		 * explicit --no-encryption accepts a plain replica then. */
		if (pass && !(flags & SNAP_REPLICA_NO_ENCRYPTION))
			return snap_err_set(err, -EPERM,
					    "%s: the replica is not encrypted, "
					    "but a passphrase was given: "
					    "refused (its config may have been "
					    "replaced); give --no-encryption "
					    "to use a plain replica", url);
		return 0;
	}
	ok = enc && !strcmp(enc, "xchacha20poly1305");
	free(enc);
	if (!ok)
		return snap_err_set(err, -EINVAL, "%s: unknown encryption in "
				    "config", url);
	r->enc = 1;
	if (!pass)
		return snap_err_set(err, -EACCES,
				    "%s: the replica is encrypted: give its "
				    "passphrase (SNAPFS_PASSPHRASE, or "
				    "snapctl --passphrase-file FILE, snapfs "
				    "-o passphrase_file=FILE)", url);
	snap_kdf kdf;
	uint8_t wrapped[SNAP_WRAPPED_BYTES];
	char *salt = snap_replica_json_text(r, doc, len, "$.kdf.salt");
	char *key = snap_replica_json_text(r, doc, len, "$.key");
	char *alg = snap_replica_json_text(r, doc, len, "$.kdf.alg");
	int bad = snap_replica_unhex(salt, kdf.salt, sizeof kdf.salt) < 0 ||
		  snap_replica_unhex(key, wrapped, sizeof wrapped) < 0 ||
		  !alg || strcmp(alg, "argon2id13");
	free(salt);
	free(key);
	free(alg);
	if (bad)
		return snap_err_set(err, -EINVAL, "%s: config without valid "
				    "key parameters", url);
	snprintf(kdf.context, sizeof kdf.context, "%s", r->id);
	kdf.opslimit = (uint64_t)snap_replica_json_int(r, doc, len, "$.kdf.opslimit", 0);
	kdf.memlimit = (uint64_t)snap_replica_json_int(r, doc, len, "$.kdf.memlimit", 0);
	int rc = snap_key_unwrap(&kdf, pass, passlen, wrapped, r->master,
				 err);
	if (rc < 0) {
		snap_err_prefix(err, "%s", url);
		return rc;
	}
	snap_keys_derive(r->master, &r->keys);
	return 0;
}

int snap_replica_open(const char *url, const char *pass, size_t passlen,
		      unsigned flags, snap_replica **out, snap_err *err)
{
	*out = NULL;
	int rc = snap_seal_init(err);
	if (rc < 0)
		return rc;
	snap_replica *r = calloc(1, sizeof *r);
	if (!r)
		return snap_err_set(err, -ENOMEM, "out of memory");
	r->pack_version = PACK_VERSION;
	if (sqlite3_open_v2(":memory:", &r->mem, SQLITE_OPEN_READWRITE, NULL)
	    != SQLITE_OK) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((flags & SNAP_REPLICA_CREATE) && !pass &&
	    !(flags & SNAP_REPLICA_NO_ENCRYPTION)) {
		/* Refuse before anything is created. */
		uint8_t *d;
		size_t n;
		snap_objstore *probe;
		int e = snap_objstore_open(url, 0, &probe, err);
		if (e == 0) {
			e = snap_objstore_get(probe, "config", &d, &n, err);
			snap_objstore_close(probe);
			if (e == 0) {
				free(d);
				flags &= ~(unsigned)SNAP_REPLICA_CREATE;
				goto open;
			}
		}
		/* A bad URL, no credentials, an unreadable target: say
		 * that, not "no passphrase" (which would not help). */
		if (e < 0 && e != -ENOENT) {
			rc = e;
			goto fail;
		}
		rc = snap_err_set(err, -EPERM,
				  "%s: no passphrase to encrypt a new replica "
				  "with: set SNAPFS_PASSPHRASE or give "
				  "--passphrase-file FILE (or --no-encryption "
				  "for a plain one)", url);
		goto fail;
	}
open:
	rc = snap_objstore_open(url, flags & SNAP_REPLICA_CREATE ?
				SNAP_OBJSTORE_CREATE : 0, &r->os, err);
	if (rc == -ENOENT && !strncmp(url, "file://", 7))  /* S3 said which */
		rc = snap_err_set(err, -ENOENT, "%s: no replica there", url);
	if (rc < 0)
		goto fail;
	uint8_t *doc;
	size_t len;
	rc = snap_objstore_get_max(r->os, "config", 1u << 20, &doc, &len,
				   err);
	if (rc == -ENOENT && (flags & SNAP_REPLICA_CREATE)) {
		r->enc = !(flags & SNAP_REPLICA_NO_ENCRYPTION);
		rc = config_missing_check(r, url, err);
		if (rc == 0)
			rc = config_create(r, pass, passlen, err);
	} else if (rc == -ENOENT) {
		rc = snap_err_set(err, -ENOENT, "%s: no replica there (no "
				  "config object)", url);
	} else if (rc == 0) {
		rc = config_read(r, (const char *)doc, len, pass, passlen, flags,
				 err);
		free(doc);
	}
	if (rc < 0)
		goto fail;
	if (asprintf(&r->cache_key, "%s %s", r->id, url) < 0) {
		r->cache_key = NULL;
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (snap_codec_init(&r->codec) < 0) {
		rc = snap_err_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	r->codec_ok = 1;
	*out = r;
	return 0;
fail:
	snap_replica_close(r);
	return rc;
}

void snap_replica_close(snap_replica *r)
{
	if (!r)
		return;
	snap_replica_slots_clear(r);
	free(r->firsts);
	if (r->codec_ok)
		snap_codec_free(&r->codec);
	snap_keys_wipe(&r->keys, sizeof r->keys);
	snap_keys_wipe(r->master, sizeof r->master);
	free(r->cache_key);
	snap_replica_names_free(&r->bad_rows);
	snap_replica_rowcache_forget(r);
	sqlite3_close(r->mem);
	snap_objstore_close(r->os);
	free(r);
}

void snap_replica_cancel(snap_replica *r)
{
	if (r)
		snap_objstore_cancel(r->os);
}

void snap_replica_cancel_all(void)
{
	snap_objstore_cancel_all();
}

void snap_replica_interrupt(snap_replica *r, int on)
{
	if (r)
		snap_objstore_interrupt(r->os, on);
}

size_t snap_replica_damaged(const snap_replica *r)
{
	return r->bad_rows.n;
}

uint64_t snap_replica_pack_gets(const snap_replica *r)
{
	return r->pack_gets;
}

int snap_replica_encrypted(const snap_replica *r)
{
	return r->enc;
}
