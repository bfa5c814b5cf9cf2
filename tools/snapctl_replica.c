/*
 * tools/snapctl_replica.c — replicas: "replicate URL" from a store, and
 * the commands that work from a replica's URL and passphrase alone
 * (--replica URL list|show|verify|export|restore|passphrase change), on a
 * machine that never saw the store.
 *
 * The passphrase comes from --passphrase-file FILE (its first line) or
 * SNAPFS_PASSPHRASE, never from the command line; the new one of
 * "passphrase change" from --new-passphrase-file or SNAPFS_NEW_PASSPHRASE.
 * S3 credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY only;
 * --endpoint sets AWS_ENDPOINT_URL for this run.  Nothing here prints a
 * secret.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ctl_cmds.h"
#include "replica.h"


/* A passphrase from file (its first line) or the environment variable
 * env (snap_replica_pass_read); *pass is NULL when neither gives one.
 * 0 or CTL_EXIT_FAIL (why, when given, gets the reason). */
static int ctl_pass(const char *file, const char *opt, const char *env,
		    char *buf, const char **pass, snap_err *why)
{
	snap_err err;
	int rc = snap_replica_pass_read(file, opt, env, buf, &err);

	*pass = buf[0] ? buf : NULL;
	if (rc < 0 && why)
		*why = err;
	if (rc < 0)
		return ctl_error("%s", err.msg);
	if (rc == 1)
		fprintf(stderr, "snapctl: warning: %s\n", err.msg);
	return CTL_EXIT_OK;
}

/* Open the replica at url with the passphrase the options give; on a
 * failure why (when given) gets the reason printed. */
static int ctl_replica_open(const ctl_args *a, const char *url,
			    unsigned flags, snap_replica **r, snap_err *why)
{
	char buf[SNAP_PASS_MAX];
	const char *pass;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	if (a->endpoint && setenv("AWS_ENDPOINT_URL", a->endpoint, 1) < 0) {
		if (why)
			snap_err_set(why, -ENOMEM, "out of memory");
		return ctl_error("out of memory");
	}
	rc = ctl_pass(a->pass_file, "--passphrase-file ", "SNAPFS_PASSPHRASE",
		      buf, &pass, why);
	if (rc)
		return rc;
	rc = snap_replica_open(url, pass, pass ? strlen(pass) : 0, flags, r,
			       &err);
	memset(buf, 0, sizeof(buf));
	if (rc < 0 && why) {
		*why = err;
		if (!why->msg[0])
			snap_err_set(why, rc, "%s", strerror(-rc));
	}
	return rc < 0 ? ctl_fail(&err, rc, url) : CTL_EXIT_OK;
}

/* The progress of a long replica operation: a bar on a terminal. */
static void ctl_replica_progress(void *ctx, uint64_t done, uint64_t total)
{
	ctl_bar((const char *)ctx, done, total, "");
}

/* "replicate URL": upload what the replica lacks. */
int cmd_replicate(snap_store *s, ctl_args *a)
{
	snap_replica *r = NULL;
	snap_replicate_stats st;
	snap_err err;
	unsigned flags = SNAP_REPLICA_CREATE;
	int rc;

	if (a->no_encryption)
		flags |= SNAP_REPLICA_NO_ENCRYPTION;
	snap_err_clear(&err);
	rc = ctl_replica_open(a, a->pos[0], flags, &r, &err);
	if (rc) {
		/* A run refused before the replica opened (credentials, the
		 * passphrase, the bucket, the network) is a failed run too:
		 * status and on_failure must not go on reporting the last
		 * success. */
		snap_event_add(s, SNAP_REPLICATE_EVENT, "", 0, "%s: %s",
			       a->pos[0], snap_err_after(err.msg, a->pos[0]));
		return rc;
	}
	if (a->no_encryption && snap_replica_encrypted(r))
		ctl_warn("%s is an encrypted replica already: it stays "
			 "encrypted (--no-encryption applies only when a "
			 "replica is created)", a->pos[0]);
	snap_err_clear(&err);
	ctl_bar_begin();
	rc = snap_replica_push_recorded(r, s, a->pos[0], ctl_replica_progress,
					"replicating", &st, &err);
	ctl_progress_clear();
	snap_replica_close(r);
	if (rc < 0)
		return ctl_fail(&err, rc, "replicate");
	if (a->json) {
		snap_json j;

		ctl_json_object(&j);
		snap_json_key(&j, "replica"); snap_json_str(&j, a->pos[0]);
		snap_json_key(&j, "snapshots");
		snap_json_int(&j, (int64_t)st.snapshots);
		snap_json_key(&j, "pages"); snap_json_int(&j, (int64_t)st.pages);
		snap_json_key(&j, "bytes"); snap_json_int(&j, (int64_t)st.bytes);
		snap_json_key(&j, "present");
		snap_json_int(&j, (int64_t)st.present);
		snap_json_key(&j, "pruned");
		snap_json_int(&j, (int64_t)st.pruned);
		snap_json_obj_end(&j);
		return ctl_json_print(&j);
	}
	printf("%" PRIu64 " snapshot%s replicated (%" PRIu64 " new page%s, %"
	       PRIu64 " bytes), %" PRIu64 " already there", st.snapshots,
	       st.snapshots == 1 ? "" : "s", st.pages, st.pages == 1 ? "" :
	       "s", st.bytes, st.present);
	if (st.pruned)
		printf(", %" PRIu64 " pruned from the replica (not sent "
		       "again)", st.pruned);
	printf("\n");
	return CTL_EXIT_OK;
}

/* "passphrase change" without --replica. */
int cmd_passphrase(snap_store *s, ctl_args *a)
{
	(void)s;
	(void)a;
	return ctl_usage_error("passphrase works on a replica: snapctl "
			       "--replica URL passphrase change");
}

/* The snapshot name a replica command was given, resolved as a store
 * resolves it (ctl_find): ".db" may be left out; "latest" is the newest
 * manual, automatic or imported snapshot; a name no snapshot has that is
 * the label of exactly one names that one (`create --label drill`,
 * replicate, then `--replica URL restore drill`).  The full name in out;
 * CTL_EXIT_OK, or CTL_EXIT_FAIL with the reason printed ("latest" with
 * none such, or a label several snapshots carry).  A name found neither
 * way stays as given, for the command to report. */
/* 1 when a row after i (newer, already looked at) has this name. */
static int name_seen(const snap_info *v, size_t i, size_t n,
		     const char *name)
{
	while (++i < n)
		if (!strcmp(v[i].name, name))
			return 1;
	return 0;
}

static int ctl_replica_name(snap_replica *r, const ctl_args *a,
			    const char *in, char *out, size_t cap)
{
	size_t n = strlen(in), i, hits = 0;
	int latest = !strcmp(in, "latest") || !strcmp(in, "latest.db");
	const snap_info *hit = NULL;
	snap_info *v = NULL;
	snap_err err;
	int rc = CTL_EXIT_OK;

	snprintf(out, cap, "%s%s", in, n > 3 && !strcmp(in + n - 3, ".db") ?
		 "" : ".db");
	if (snap_replica_list(r, &v, &n, &err) < 0)
		return CTL_EXIT_OK;  /* the command reports the listing's error */
	for (i = n; i-- > 0;) {
		if (latest ? snap_kind_is_latest(v[i].kind) :
		    !strcmp(v[i].name, out))
			break;
		/* Newest first: hit is the newest of those labelled in (a
		 * name a store reused is one snapshot, as show finds it). */
		if (!latest && !strcmp(v[i].label, in) &&
		    !name_seen(v, i, n, v[i].name) && !hits++)
			hit = &v[i];
	}
	if (i < n && latest)
		snprintf(out, cap, "%s", v[i].name);
	else if (latest)
		/* As a store says it (there is no snapshot "latest.db"). */
		rc = ctl_error("no manual, automatic or imported snapshot "
			       "(\"latest\") in the replica %s", a->replica);
	else if (i >= n && hits == 1)
		snprintf(out, cap, "%s", hit->name);
	else if (i >= n && hits > 1)
		rc = ctl_error("no snapshot named '%s' in the replica %s, and "
			       "%zu snapshots are labelled %s (the newest is "
			       "%s): give the full name", in, a->replica, hits,
			       in, hit->name);
	free(v);
	return rc;
}

/* Record a problem verify found in a replica. */
static void ctl_replica_problem(void *ctx, const char *snapshot,
				uint32_t page, const char *problem)
{
	snap_info si;

	memset(&si, 0, sizeof(si));
	snprintf(si.name, sizeof(si.name), "%s", snapshot);
	/* A snapshot's name ends in ".db": these are no snapshot's. */
	if (!strcmp(snapshot, "log") || !strcmp(snapshot, "pruned/set"))
		((ctl_verify *)ctx)->other++;
	ctl_verify_problem(ctx, &si, page, problem);
}

/* "--replica URL export NAME FILE": the image, every page proven; says
 * so as the store's export does (a sentence, or the JSON object). */
static int ctl_replica_export(snap_replica *r, const ctl_args *a,
			      const char *name)
{
	char sz[32], extra[64 + PATH_MAX];
	snap_info si;
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_replica_find(r, name, &si, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, name);
	ctl_bar_begin();
	rc = snap_replica_export(r, si.name, a->pos[1], ctl_replica_progress,
				 "exporting", &err);
	ctl_progress_clear();
	if (rc < 0)
		return ctl_fail(&err, rc, name);
	ctl_size_human(si.image_size, sz);
	snprintf(extra, sizeof(extra), " from %s to %s (%s)", a->replica,
		 a->pos[1], sz);
	return ctl_print_done(a, "exported", si.name, extra);
}

/* What a restore from a replica into db (absolute, as a store's restore
 * names it) did: a sentence, or with --json the object of a store's
 * restore (res NULL: a new file, no safety snapshot). */
static int ctl_replica_restored(const ctl_args *a, const char *name,
				const char *db, const snap_restore_result *res)
{
	if (!a->json) {
		if (res && res->kept[0])
			printf("the file that was at %s is kept as %s\n",
			       db, res->kept);
		if (!res)
			printf("restored %s from %s into the new file %s\n",
			       name, a->replica, db);
		else if (res->have_safety)
			printf("restored %s from %s into %s (safety snapshot: "
			       "%s)\n", name, a->replica, db,
			       res->safety.name);
		else
			printf("restored %s from %s into %s\n", name,
			       a->replica, db);
		return CTL_EXIT_OK;
	}
	/* Every page of the image was proven, by the image's SHA-256, when it
	 * was fetched (replica_image.c). */
	return ctl_restored_json(name, db, res, 1, a->replica, NULL);
}

/* After a restore of name into the database of s: its store continues
 * the replica (snap_replica_adopt: the id of the store that wrote name,
 * when s has none), so that "replicate URL" from it is not refused as
 * another database's.  0 or an exit status saying the restore is done. */
static int ctl_replica_continue(snap_replica *r, const ctl_args *a,
				const char *name, snap_store *s)
{
	snap_err err;
	int rc;

	snap_err_clear(&err);
	rc = snap_replica_adopt(r, name, s, &err);
	if (rc >= 0)
		return CTL_EXIT_OK;
	snap_err_prefix(&err, "%s was restored into %s, but its store does "
			"not continue %s", name, a->db, a->replica);
	return ctl_fail(&err, rc, a->db);
}

/* "--replica URL restore NAME --db PATH": a new file at PATH, or a
 * verified restore into the live database at PATH, where the snapshot is
 * imported with its own name and label (a new name only when the store
 * has another snapshot of that name), as replicate names it.  Either
 * way PATH's store continues the replica (ctl_replica_continue). */
static int ctl_replica_restore(snap_replica *r, const ctl_args *a,
			       const char *name)
{
	char tmp[PATH_MAX], from[SNAP_NAME_MAX + PATH_MAX];
	snap_restore_opts ro;
	snap_info si;
	snap_err err;
	struct stat st;
	int rc, exists;

	if (!a->db)
		return ctl_usage_error("restore from a replica needs --db PATH "
				       "(the database to restore into; a new "
				       "file when it does not exist)");
	exists = lstat(a->db, &st) == 0;
	if (!exists) {
		/* Say so of PATH itself, not of the temporary file beside
		 * it that the restore writes first. */
		char dir[PATH_MAX];
		const char *slash = strrchr(a->db, '/');
		snprintf(dir, sizeof(dir), "%.*s", !slash ? 1 : slash == a->db ?
			 1 : (int)(slash - a->db), slash ? a->db : ".");
		if (stat(dir, &st) < 0)
			return ctl_error("%s: cannot create it in %s: %s",
					 a->db, dir, strerror(errno));
		if (!S_ISDIR(st.st_mode))
			return ctl_error("%s: cannot create it: %s is not a "
					 "directory", a->db, dir);
	}
	snap_err_clear(&err);
	rc = snap_replica_find(r, name, &si, &err);
	if (rc < 0)
		return ctl_fail(&err, rc, name);
	/* The image goes first into a new file beside PATH (O_EXCL) under a
	 * name nobody can guess: one named by the pid was planted ahead by
	 * whoever may write the directory, and the restore failed. */
	ctl_bar_begin();
	for (int k = 0; k < 16; k++) {
		unsigned char rnd[8];

		sqlite3_randomness(sizeof(rnd), rnd);
		if (snprintf(tmp, sizeof(tmp), "%s.snapfs-replica-%02x%02x%02x"
			     "%02x%02x%02x%02x%02x", a->db, rnd[0], rnd[1],
			     rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]) >=
		    (int)sizeof(tmp)) {
			ctl_progress_clear();
			return ctl_error("%s: path too long", a->db);
		}
		snap_err_clear(&err);
		rc = snap_replica_export(r, si.name, tmp, ctl_replica_progress,
					 "fetching", &err);
		if (rc != -EEXIST)
			break;
	}
	ctl_progress_clear();
	if (rc < 0)
		return ctl_fail(&err, rc, name);
	if (!exists) {
		/* Disaster recovery: the verified image becomes the file. */
		if (link(tmp, a->db) < 0) {
			rc = ctl_error("%s: %s", a->db, strerror(errno));
			unlink(tmp);
			return rc;
		}
		unlink(tmp);
		/* Its store, made as its first snapshot would make it. */
		snap_store *s = NULL;
		rc = snap_store_open(a->db, a->store_dir, SNAP_OPEN_CREATE |
				     SNAP_OPEN_LIVE_DB, &s, &err);
		if (rc < 0) {
			snap_err_prefix(&err, "%s was restored into %s, but "
					"its store was not made", si.name,
					a->db);
			return ctl_fail(&err, rc, a->db);
		}
		rc = ctl_replica_continue(r, a, si.name, s);
		/* The path as a store names its database: absolute. */
		if (rc == CTL_EXIT_OK)
			rc = ctl_replica_restored(a, name,
						  snap_store_db_path(s), NULL);
		snap_store_close(s);
		return rc;
	}
	snap_store *s = NULL;
	snap_restore_result res;
	int64_t own = 0;
	rc = snap_store_open(a->db, a->store_dir, SNAP_OPEN_CREATE |
			     SNAP_OPEN_LIVE_DB, &s, &err);
	if (rc == 0)
		rc = snap_store_count(s, &own, &err);
	if (rc == 0) {
		snap_restore_recover(s);
		memset(&ro, 0, sizeof(ro));
		snprintf(from, sizeof(from), "%s from %s", si.name, a->replica);
		ro.source_name = from;
		ro.import_name = si.name;
		rc = snap_restore_file_ex(s, tmp, si.label, &ro, &res, &err);
	}
	unlink(tmp);
	if (rc < 0) {
		rc = ctl_fail(&err, rc, name);
		snap_store_close(s);
		return rc;
	}
	/* A store with snapshots of its own keeps its own history: taking
	 * the replica's id would send that history into the replica, mixed
	 * with the database the replica is of. */
	rc = own ? CTL_EXIT_OK : ctl_replica_continue(r, a, si.name, s);
	if (own && snap_replica_written_by(r, si.name, s, &err) == 1)
		own = 0;        /* the replica's own database: it goes on */
	if (own && !a->json)
		fprintf(stderr, "snapctl: %s's store has snapshots of its own: "
			"it does not continue %s (replicate it to another URL "
			"or prefix)\n", a->db, a->replica);
	if (rc == CTL_EXIT_OK)
		rc = ctl_replica_restored(a, name, snap_store_db_path(s),
					  &res);
	snap_store_close(s);
	return rc;
}

/* "--replica URL passphrase change". */
static int ctl_replica_passphrase(snap_replica *r, const ctl_args *a)
{
	char buf[SNAP_PASS_MAX];
	const char *pass;
	snap_err err;
	int rc;

	if (a->npos != 1 || strcmp(a->pos[0], "change"))
		return ctl_usage_error("usage: snapctl --replica URL passphrase "
				       "change");
	rc = ctl_pass(a->new_pass_file, "--new-passphrase-file ",
		      "SNAPFS_NEW_PASSPHRASE", buf, &pass, NULL);
	if (rc)
		return rc;
	if (!pass)
		return ctl_error("no new passphrase: set SNAPFS_NEW_PASSPHRASE "
				 "or give --new-passphrase-file FILE");
	snap_err_clear(&err);
	rc = snap_replica_passphrase(r, pass, strlen(pass), &err);
	memset(buf, 0, sizeof(buf));
	if (rc < 0)
		return ctl_fail(&err, rc, "passphrase change");
	if (a->json) {
		snap_json j;

		ctl_json_object(&j);
		snap_json_key(&j, "replica"); snap_json_str(&j, a->replica);
		snap_json_key(&j, "action");
		snap_json_str(&j, "passphrase changed");
		snap_json_obj_end(&j);
		return ctl_json_print(&j);
	}
	printf("passphrase of %s changed (no data rewritten)\n", a->replica);
	return CTL_EXIT_OK;
}

int ctl_replica_run(const char *cmd, ctl_args *a)
{
	snap_replica *r = NULL;
	char name[SNAP_NAME_MAX + 4];
	snap_err err;
	int rc;

	rc = ctl_replica_open(a, a->replica, a->no_encryption ?
			      SNAP_REPLICA_NO_ENCRYPTION : 0, &r, NULL);
	if (rc)
		return rc;
	snap_err_clear(&err);
	if (a->npos > 0 && strcmp(cmd, "passphrase") &&
	    (rc = ctl_replica_name(r, a, a->pos[0], name, sizeof(name)))) {
		snap_replica_close(r);
		return rc;
	}
	if (!strcmp(cmd, "list")) {
		snap_info *v = NULL;
		size_t n = 0;

		rc = snap_replica_list(r, &v, &n, &err);
		rc = rc < 0 ? ctl_fail(&err, rc, "listing the replica") :
			ctl_list_print(v, n, a);
		if (rc == CTL_EXIT_OK && snap_replica_damaged(r))
			ctl_warn("%zu catalog row%s of the replica %s damaged "
				 "and not listed: run 'snapctl --replica URL "
				 "verify'", snap_replica_damaged(r),
				 snap_replica_damaged(r) == 1 ? "" : "s",
				 snap_replica_damaged(r) == 1 ? "is" : "are");
		free(v);
	} else if (!strcmp(cmd, "show")) {
		snap_info si;
		char *tables = NULL;

		rc = snap_replica_find(r, name, &si, &err);
		if (rc == 0)
			rc = snap_replica_tables(r, name, &tables, &err);
		rc = rc < 0 ? ctl_fail(&err, rc, name) :
			ctl_show_print(&si, tables, a);
	} else if (!strcmp(cmd, "verify")) {
		ctl_verify v = { .a = a };
		snap_info *all = NULL;
		size_t n = 1;
		unsigned bad = 0;
		char tmpdir[PATH_MAX];
		const char *t = getenv("TMPDIR");

		snprintf(tmpdir, sizeof(tmpdir), "%s", t && *t ? t : "/tmp");
		snap_json_init(&v.problems);
		snap_json_arr_begin(&v.problems);
		if (a->npos == 0) {
			rc = snap_replica_list(r, &all, &n, &err);
			free(all);
			n += snap_replica_damaged(r);
		}
		if (rc == 0) {
			ctl_busy_begin("verifying the replica");
			rc = snap_replica_verify(r, a->npos ? name : NULL,
						 a->full, tmpdir,
						 ctl_replica_problem, &v, &bad,
						 &err);
			ctl_busy_end();
		}
		if (rc < 0) {
			snap_json_free(&v.problems);
			rc = ctl_fail(&err, rc, "verify");
		} else {
			rc = ctl_verify_report(&v, (unsigned)n,
					       bad - v.other);
		}
	} else if (!strcmp(cmd, "export")) {
		if (a->sql) {
			rc = ctl_usage_error("export --sql works on a store; "
					     "export the image and dump it");
		} else {
			rc = ctl_replica_export(r, a, name);
		}
	} else if (!strcmp(cmd, "restore")) {
		rc = a->dry_run || a->table ?
			ctl_usage_error("restore from a replica takes no "
					"--dry-run or --table") :
			ctl_replica_restore(r, a, name);
	} else if (!strcmp(cmd, "prune")) {
		snap_keep_decision *d = NULL;
		size_t n = 0, pruned = 0;
		uint64_t packs = 0;

		ctl_busy_begin("pruning the replica");
		rc = snap_replica_prune(r, &a->policy, a->dry_run, &d, &n,
					&pruned, &packs, &err);
		ctl_busy_end();
		if (rc < 0) {
			rc = ctl_fail(&err, rc, "prune");
		} else {
			rc = ctl_prune_print(d, n, pruned, a);
			if (!a->json && !a->dry_run)
				printf("%" PRIu64 " pack%s no snapshot uses "
				       "deleted\n", packs,
				       packs == 1 ? "" : "s");
		}
		free(d);
	} else if (!strcmp(cmd, "log")) {
		snap_event *ev = NULL;
		size_t n = 0;

		rc = snap_replica_log(r, &ev, &n, &err);
		rc = rc < 0 ? ctl_fail(&err, rc, "the replica's history") :
			ctl_log_print(ev, n, a);
		size_t bad = 0;
		for (size_t i = 0; rc == CTL_EXIT_OK && i < n; i++)
			bad += !strcmp(ev[i].kind, SNAP_REPLICA_UNREADABLE);
		if (bad)        /* listed above, with why */
			rc = ctl_error("%zu record%s of the replica's history "
				       "cannot be read", bad,
				       bad == 1 ? "" : "s");
		free(ev);
	} else if (!strcmp(cmd, "passphrase")) {
		rc = ctl_replica_passphrase(r, a);
	} else {
		rc = ctl_usage_error("'%s' does not work on a replica "
				     "(--replica)", cmd);
	}
	snap_replica_close(r);
	return rc;
}
