/*
 * engine/restore.c — verified restore; the steps are in restore.h.
 *
 * The copy is one sqlite3_backup_step(-1) from the snapshot (opened through
 * the store VFS) into a connection on the live database: SQLite takes the
 * locks, writes a rollback journal or WAL frames, and commits atomically, so
 * other connections see the old or the new state and a crash leaves a hot
 * journal SQLite rolls back.  A busy handler waits for readers in rollback
 * mode (engine/PITFALLS.md 11).  The destination keeps its journal mode:
 * SQLite sets the WAL version bytes again after a backup into a WAL database.
 * A WAL database whose page size differs from the image's cannot be a backup
 * destination (engine/PITFALLS.md 10): it is switched to rollback mode,
 * restored, and switched back, which SQLite allows only with no other
 * connection open; otherwise the restore is refused before anything changed.
 * A restore killed in between leaves the database intact but in rollback mode;
 * a marker in the store makes the next snapfs command that opens the store
 * for writing switch it back (recover.c).
 *
 * The check of the result (restore_check.c) reads the live database back
 * through SQLite on the connection that made the copy, or the new file
 * before it is renamed in, and compares every page with the hashes the
 * source's verification proved.  The snapshot's catalog row and page map
 * are loaded once (snap_image_src) and lent to the verification, its
 * quick_check and the copy; the verification fills the proof
 * (snap_verify_proof) the check compares with.
 *
 * The skeleton (snap_restore_run) is the same for a whole image and one
 * table (tablerestore.c gives its own lock and copy steps): the restore
 * lock; the source's verification started on a thread of its own; the
 * live database's write lock; the safety snapshot under it; the
 * precondition; the copy, whose commit waits for the verification (the
 * backup's last step, or before a table's copy), so a source that fails
 * it leaves the copy's transaction rolled back and nothing changed; the
 * check; on a failure after that, the rollback to the safety snapshot;
 * the event.  A copy into a new file, and a switch out of WAL mode, wait
 * for the verification first.  Fault points (sys.h) before the image is
 * opened as the copy's source ("restore: source"), before the copy and
 * before the check let tests fail each or act there.
 *
 * Restore from a file (what the file is, before anything is copied) is in
 * restore_file.c, the check in restore_check.c, the copy into a new file
 * (live file missing or not a database) in restore_newfile.c, crash
 * recovery in recover.c, the connections to the live database and the
 * backup steps in livedb.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "events.h"
#include "image.h"
#include "livedb.h"
#include "recover.h"
#include "restore.h"
#include "restore_int.h"
#include "snapshot_int.h"
#include "store_int.h"
#include "sys.h"
#include "verify.h"


/* Tell the caller: `done` pages of the current pass. */
static void progress_pass(void *ctx, uint64_t done, uint64_t total)
{
	restore_progress *p = ctx;

	(void)total;
	p->fn(p->ctx, p->base + (done < p->pages ? done : p->pages),
	      3 * p->pages);
}

/* Pass k starts (restore_int.h). */
snap_livedb_steps *snap_restore_progress_at(restore_progress *p, unsigned k,
					    snap_livedb_steps *how)
{
	memset(how, 0, sizeof(*how));
	if (!p || !p->fn)
		return how;
	p->base = k * p->pages;
	progress_pass(p, 0, 0);
	how->fn = progress_pass;
	how->ctx = p;
	return how;
}


/*
 * The source's verification (step 1: pages, hashes, the image's SHA-256,
 * quick_check) runs on a thread of its own beside the copy, so that the
 * copy's I/O and the verification's decompression and hashing use both
 * cores.  The copy commits only after it passed (verify_gate): a source
 * that fails leaves the copy's transaction rolled back, nothing changed.
 */
typedef struct verify_job {
	snap_store *s;
	snap_image_src *src;      /* the snapshot's row and map */
	snap_verify_proof *proof; /* what it proves goes here; may be NULL */
	pthread_t thread;
	int started;              /* the thread runs (else: ran inline) */
	int done;                 /* rc and err are final */
	int rc;
	snap_err err;
} verify_job;

static void *verify_main(void *arg)
{
	verify_job *j = arg;

	j->rc = snap_verify_src(j->s, j->src, SNAP_VERIFY_STRUCTURE, NULL,
				NULL, j->proof, &j->err);
	return NULL;
}

/* Start the verification of src, proving into proof (may be NULL); inline
 * when no thread can be made. */
static void verify_start(verify_job *j, snap_store *s, snap_image_src *src,
			 snap_verify_proof *proof)
{
	memset(j, 0, sizeof(*j));
	j->s = s;
	j->src = src;
	j->proof = proof;
	snap_err_clear(&j->err);
	if (pthread_create(&j->thread, NULL, verify_main, j) == 0) {
		j->started = 1;
		return;
	}
	verify_main(j);
	j->done = 1;
}

/* Wait for the verification; its result (err filled on failure).  NULL j:
 * nothing to wait for. */
static int verify_wait(verify_job *j, snap_err *err)
{
	if (!j)
		return 0;
	if (!j->done) {
		pthread_join(j->thread, NULL);
		j->done = 1;
	}
	if (j->rc && err)
		*err = j->err;
	return j->rc;
}

/* The gate before a copy commits (snap_livedb_steps.gate). */
static int verify_gate(void *ctx, snap_err *err)
{
	return verify_wait(ctx, err);
}


/* What a copy into the live database takes care of around the copy. */
typedef struct copy_plan {
	const snap_create_opts *safety;   /* take one (NULL: a rollback) */
	snap_restore_result *res;         /* where the safety goes */
	const snap_restore_opts *opts;    /* precondition, may be NULL */
	const char *what;                 /* "restore", "restore of table t" */
	restore_progress *prog;           /* may be NULL */
	verify_job *verify;               /* the source's verification, still
					     running (NULL: done) */
	int wait_before_copy;             /* cp commits without a gate: wait
					     for the verification first */
	int wal;                          /* the live database's mode */
	int copied;                       /* set once the copy started */
	int refused;                      /* the precondition said no */
} copy_plan;

/* Take the safety snapshot into plan->res: through the locked connection
 * `locked` (rollback mode), or through a connection of its own (WAL). */
static int take_safety(snap_store *s, copy_plan *plan, sqlite3 *locked,
		       snap_err *err)
{
	int rc = locked ?
		 snap_snapshot_take_locked(s, locked, plan->safety,
					   &plan->res->safety, err) :
		 snap_snapshot_take(s, plan->safety, &plan->res->safety, err);

	if (rc) {
		snap_err_prefix(err, "%s refused: cannot take the safety "
				"snapshot of %s", plan->what, s->db_path);
		return rc;
	}
	plan->res->have_safety = 1;
	return 0;
}

/* A safety snapshot the restore did not use goes again. */
static void drop_safety(snap_store *s, copy_plan *plan)
{
	snap_err ignore;

	if (!plan->res->have_safety)
		return;
	snap_store_delete(s, plan->res->safety.id, &ignore);
	plan->res->have_safety = 0;
}

/* A fault point of the skeleton (restore_int.h). */
int snap_restore_point(snap_sys_kind kind, const char *step, snap_err *err)
{
	int rc = snap_sys_point(kind, step);

	return rc ? snap_err_set(err, rc, "%s: %s", step, strerror(-rc)) : 0;
}

/* Open rs's image as a SQLite database (restore_int.h). */
int snap_restore_source_open(snap_store *s, const restore_source *rs,
			     sqlite3 **db, snap_err *err)
{
	int rc = rs->src ? snap_image_sqlite_open_src(s, rs->src, db, err) :
			   snap_image_sqlite_open(s, rs->id, db, err);

	/* The backup reads each page once. */
	if (!rc)
		snap_image_sqlite_scan(*db);
	return rc;
}

/* The whole image as a snap_restore_copy: one sqlite3_backup from the
 * snapshot (through the store VFS), read back page by page afterwards. */
typedef struct image_copy {
	snap_store *s;
	const restore_source *rs;
	restore_progress *prog;
	verify_job *verify;       /* waited for before the commit */
	sqlite3 *src;
	sqlite3_backup *bk;
} image_copy;

/* Open the source and take the write lock: a backup step of 0 pages. */
static int image_lock(void *ctx, sqlite3 *live, const snap_info *si,
		      snap_err *err)
{
	image_copy *ic = ctx;
	int rc = snap_restore_point(SNAP_SYS_OPEN, "restore: source", err);

	(void)si;
	if (!rc)
		rc = snap_restore_source_open(ic->s, ic->rs, &ic->src, err);
	if (!rc)
		rc = snap_livedb_backup_begin(live, ic->src, ic->s->db_path,
					      &ic->bk, err);
	return rc;
}

/* Copy every page and commit. */
static int image_copy_rest(void *ctx, sqlite3 *live, snap_err *err)
{
	image_copy *ic = ctx;
	sqlite3_backup *bk = ic->bk;
	snap_livedb_steps how;

	(void)live;
	ic->bk = NULL;
	snap_restore_progress_at(ic->prog, 1, &how);
	if (ic->verify) {
		how.gate = verify_gate;
		how.gate_ctx = ic->verify;
	}
	return snap_livedb_backup_steps(bk, ic->s->db_path, &how, err);
}

/* Read the result back and compare it with the image (restore_check.c).
 * The copy committed after the verification passed: its proof is
 * complete. */
static int image_check(void *ctx, sqlite3 *live, int *proven, snap_err *err)
{
	image_copy *ic = ctx;
	snap_livedb_steps how;
	int rc;

	sqlite3_close(ic->src);
	ic->src = NULL;
	*proven = 0;
	rc = verify_wait(ic->verify, err);
	if (rc)
		return rc;
	return snap_restore_check(ic->s, ic->rs, live, ic->s->db_path, proven,
				  snap_restore_progress_at(ic->prog, 2, &how),
				  err);
}

/* Finish a backup that never ran, close the source. */
static void image_end(void *ctx)
{
	image_copy *ic = ctx;

	if (ic->bk)
		sqlite3_backup_finish(ic->bk);
	sqlite3_close(ic->src);
	ic->bk = NULL;
	ic->src = NULL;
}

/* The whole image of rs as a copy (ic holds its state). */
static void image_ops(snap_store *s, const restore_source *rs,
		      restore_progress *prog, verify_job *verify,
		      image_copy *ic, snap_restore_copy *cp)
{
	memset(ic, 0, sizeof(*ic));
	memset(cp, 0, sizeof(*cp));
	ic->s = s;
	ic->rs = rs;
	ic->prog = prog;
	ic->verify = verify;
	cp->lock = image_lock;
	cp->copy = image_copy_rest;
	cp->check = image_check;
	cp->end = image_end;
	cp->ctx = ic;
}

/*
 * Copy into an existing live database with cp (the whole image or a
 * table), and check the result on the same connection.  The copy's write
 * lock is taken first (cp->lock) and held until it commits, and the safety
 * snapshot is read under it, so no commit falls between the two: in WAL
 * mode through a connection of its own (readers are not blocked), in
 * rollback mode, where no other connection can write, raw through the
 * locked connection's file handle.  The precondition runs under the same
 * lock.
 */
static int copy_into_live(snap_store *s, const snap_info *si,
			  const snap_restore_copy *cp, copy_plan *plan,
			  int *proven, snap_err *err)
{
	sqlite3 *dst = NULL;
	snap_live_token tok;
	int rc;

	*proven = 0;
	rc = snap_livedb_open(s->db_path, SNAP_LIVEDB_RW, NULL, &dst, err);
	if (!rc) {
		rc = cp->lock(cp->ctx, dst, si, err);
		if (rc && cp->what)
			snap_err_prefix(err, "%s refused, %s is unchanged",
					cp->what, s->db_path);
	}
	if (!rc && plan->safety)
		rc = take_safety(s, plan, plan->wal ? NULL : dst, err);
	if (!rc && snap_livedb_token(dst, plan->wal, &tok))
		rc = snap_err_set(err, -EIO, "cannot read the header of %s",
				  s->db_path);
	if (!rc && plan->opts && plan->opts->precond) {
		rc = plan->opts->precond(plan->opts->ctx, &tok, err);
		plan->refused = rc != 0;
	}
	if (rc) {
		drop_safety(s, plan);
	} else {
		plan->copied = 1;
		rc = snap_restore_point(SNAP_SYS_WRITE, "restore: copy", err);
		if (!rc && plan->wait_before_copy)
			rc = verify_wait(plan->verify, err);
		if (!rc)
			rc = cp->copy(cp->ctx, dst, err);
		if (!rc)
			rc = snap_restore_point(SNAP_SYS_READ, "restore: check",
					   err);
		if (!rc && cp->check)
			rc = cp->check(cp->ctx, dst, proven, err);
	}
	if (cp->end)
		cp->end(cp->ctx);
	sqlite3_close(dst);
	return rc;
}


/* Say how much space a restore of si needs beside the live database and
 * how much there is (an ENOSPC alone does not tell the user what to free). */
static void space_needed(const char *db_path, const snap_info *si,
			 snap_err *err)
{
	char *dup = strdup(db_path);
	struct statvfs vf;
	unsigned long long mb = 1024 * 1024, need, avail;

	if (!dup)
		return;
	if (statvfs(dirname(dup), &vf) == 0) {
		/* The image, plus a journal (rollback mode) or WAL of at
		 * most as many pages again. */
		need = (2 * si->image_size + mb - 1) / mb;
		avail = (unsigned long long)vf.f_bavail * vf.f_frsize / mb;
		snap_err_suffix(err, " (the restore of %s needs up to %llu MB "
				"free beside %s: the image and its journal; "
				"%llu MB are free)", si->name, need, db_path,
				avail);
	}
	free(dup);
}

/* Copy and check, with cp (NULL: the whole image of id); the part of a
 * restore that a rollback repeats (with the safety snapshot's image). */
static int apply(snap_store *s, const restore_source *rs,
		 const snap_restore_copy *cp, enum snap_live_state state,
		 copy_plan *plan, char *kept, size_t keptcap, int *proven,
		 snap_err *err)
{
	snap_restore_copy whole;
	image_copy ic;

	if (state != SNAP_LIVE_DB) {
		plan->copied = 1;
		return snap_restore_new_file(s, rs, state, kept, keptcap,
					plan->prog, proven, err);
	}
	if (!cp) {
		/* The backup waits for the verification before it
		 * commits. */
		image_ops(s, rs, plan->prog, plan->verify, &ic, &whole);
		cp = &whole;
	} else {
		plan->wait_before_copy = 1;
	}
	return copy_into_live(s, rs->si, cp, plan, proven, err);
}

/* 5. After a failed copy: nothing to undo when SQLite rolled the copy
 * back (the live database equals the safety snapshot), else back to the
 * safety snapshot; err says which. */
static int roll_back(snap_store *s, copy_plan *plan, char *kept,
		     size_t keptcap, int rc, snap_err *err)
{
	snap_restore_result *res = plan->res;
	restore_source rs = { res->safety.id, &res->safety, NULL, NULL };
	enum snap_live_state state;
	copy_plan back;
	snap_err again;
	int64_t live_ps = 0;
	int proven = 0, wal = 0, rrc;

	if (snap_restore_live_equals(s, &res->safety)) {
		/* The copy never committed: no rollback to fail. */
		snap_err_prefix(err, "%s failed, %s is unchanged", plan->what,
				s->db_path);
		drop_safety(s, plan);
		return rc;
	}
	snap_err_clear(&again);
	rrc = snap_livedb_probe(s->db_path, &state, &wal, &live_ps, &again);
	memset(&back, 0, sizeof(back));
	back.res = res;
	back.wal = wal;
	back.what = plan->what;
	if (!rrc)
		rrc = apply(s, &rs, NULL, state, &back, kept, keptcap,
			    &proven, &again);
	res->rolled_back = rrc == 0;
	if (rrc)
		snap_err_prefix(err, "%s failed AND the rollback failed (%s); "
				"the state before the restore is snapshot %s",
				plan->what, again.msg, res->safety.name);
	else
		snap_err_prefix(err, "%s failed and was rolled back to %s",
				plan->what, res->safety.name);
	return rc != -EBUSY && rc != -ENOSPC ? -EIO : rc;
}

/* The restore skeleton (restore.h; the steps: engine/DESIGN.md §4). */
int snap_restore_run(snap_store *s, int64_t id, const snap_restore_opts *o,
		     const snap_restore_copy *cp, snap_restore_result *res,
		     snap_err *err)
{
	snap_restore_result tmp;
	snap_create_opts safety = { .kind = SNAP_KIND_PRE_RESTORE };
	snap_livedb_steps how;
	restore_progress prog = { o ? o->progress : NULL,
				  o ? o->progress_ctx : NULL, 0, 0 };
	copy_plan plan;
	enum snap_live_state state;
	snap_image_src src;
	const snap_info *si = &src.info;
	snap_verify_proof proof = { NULL, NULL };
	restore_source rs = { id, &src.info, &src, NULL };
	char label[SNAP_LABEL_MAX + 1], said[SNAP_ERR_MSG];
	char *kept;
	verify_job vj;
	snap_err verr;
	int64_t live_ps = 0;
	int lockfd = -1, wal = 0, left_wal = 0, vrc, rc;

	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	memset(&plan, 0, sizeof(plan));
	plan.what = cp && cp->what ? cp->what : "restore";
	kept = res->kept;
	/* The catalog row and the page map, once for the whole restore;
	 * a whole image's check compares with what the verification
	 * proved (rs.proof). */
	rc = snap_image_src_load(s, id, &src, err);
	if (rc)
		return rc;
	res->source = src.info;
	if (!cp) {
		proof.sha = malloc((size_t)src.info.page_count * 32);
		proof.page1 = malloc(src.info.page_size);
		if (!proof.sha || !proof.page1) {
			rc = snap_err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		rs.proof = &proof;
	}
	prog.pages = src.info.page_count;
	/* 1. One restore at a time, and the source must be intact: its
	 * verification runs beside steps 2 and 3 (verify_job). */
	memset(&vj, 0, sizeof(vj));
	vj.done = 1;
	rc = snap_store_restore_lock(s, &lockfd, err);
	if (rc)
		goto record;
	snap_restore_progress_at(&prog, 0, &how);
	verify_start(&vj, s, &src, rs.proof ? &proof : NULL);
	plan.verify = &vj;
	rc = snap_livedb_probe(s->db_path, &state, &wal, &live_ps, err);
	if (!rc && cp && state != SNAP_LIVE_DB)
		rc = snap_err_set(err, -ENOENT, "%s is not a database; restore "
				  "the whole snapshot %s instead", s->db_path,
				  si->name);
	if (rc) {
		snap_err_prefix(err, "%s refused, %s is unchanged", plan.what,
				s->db_path);
		goto record;
	}
	/* A new file is copied after the verification, and a database is
	 * taken out of WAL mode only for a source that passed it. */
	if (state != SNAP_LIVE_DB || (!cp && wal && live_ps != si->page_size))
		rc = verify_wait(&vj, err);
	if (rc)
		goto record;
	if (!cp && state == SNAP_LIVE_DB && wal && live_ps != si->page_size) {
		rc = snap_recover_leave_wal(s, si, live_ps, err);
		if (rc)
			goto record;
		left_wal = 1;
		wal = 0;
	}
	/* 2, 3 and 4: safety snapshot, copy, check. */
	if (cp && cp->safety_label)
		snprintf(label, sizeof(label), "%s", cp->safety_label);
	else
		snprintf(label, sizeof(label), "before-restore-%s", si->label);
	safety.label = label;
	plan.safety = state == SNAP_LIVE_DB ? &safety : NULL;
	plan.res = res;
	plan.opts = o;
	plan.wal = wal;
	plan.prog = &prog;
	if (state != SNAP_LIVE_DB && o && o->precond) {
		snap_live_token none = { 0, 0 };
		rc = o->precond(o->ctx, &none, err);
		plan.refused = rc != 0;
		if (rc)
			goto mode;
	}
	rc = apply(s, &rs, cp, state, &plan, kept, sizeof(res->kept),
		   &res->verified_pages, err);
	if (rc == -ENOSPC)
		space_needed(s->db_path, si, err);
	/* A source that failed its verification: no copy committed (it
	 * waits for the verification), nothing to roll back. */
	if (rc && verify_wait(&vj, NULL)) {
		drop_safety(s, &plan);
		goto record;
	}
	/* 5. A failure after the copy started: back to the safety
	 * snapshot. */
	if (rc && plan.copied && res->have_safety)
		rc = roll_back(s, &plan, kept, sizeof(res->kept), rc, err);
mode:
	if (left_wal) {
		snap_err mode;

		snap_err_clear(&mode);
		if (snap_recover_return_to_wal(s, &mode) && !rc)
			snap_event_add(s, "restore", si->name, 0, "%s", mode.msg);
	}
record:
	/* The verification's failure is the answer whenever it failed:
	 * nothing changed then (see above). */
	snap_err_clear(&verr);
	vrc = verify_wait(&vj, &verr);
	if (vrc) {
		rc = vrc;
		if (err)
			*err = verr;
		snap_err_prefix(err, "%s refused, %s is unchanged", plan.what,
				s->db_path);
		plan.refused = 0;
	}
	snap_store_restore_unlock(lockfd);
	if (rc && !plan.refused) {
		snap_event_add(s, "restore", si->name, 0, "%s", err ? err->msg :
			       "restore failed");
		goto out;
	}
	if (rc)
		goto out;
	if (cp && cp->describe)
		cp->describe(cp->ctx, said, sizeof(said));
	else
		snprintf(said, sizeof(said), "restored into %s", s->db_path);
	snap_event_add(s, "restore", si->name, 1, "%s%s%s%s%s", said,
		       res->have_safety ? "; safety snapshot " : "",
		       res->have_safety ? res->safety.name : "", *kept ?
		       "; the old file is kept as " : "", kept);
out:
	snap_image_src_free(s, &src);
	free(proof.sha);
	free(proof.page1);
	return rc;
}

int snap_restore_ex(snap_store *s, int64_t id, const snap_restore_opts *o,
		    snap_restore_result *res, snap_err *err)
{
	return snap_restore_run(s, id, o, NULL, res, err);
}

int snap_restore(snap_store *s, int64_t id, snap_restore_result *res,
		 snap_err *err)
{
	return snap_restore_ex(s, id, NULL, res, err);
}

