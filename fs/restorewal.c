/*
 * fs/restorewal.c — restore/'s pairs: a WAL database copied into the drop
 * folder with its -wal (or a torn copy with its hot -journal) restores its
 * committed state, in either order.
 *
 * A WAL-mode database's committed state is its main file X plus the
 * transactions still in X-wal, which SQLite (and `snapctl restore X`)
 * reads from beside it.  A copy into restore/ brings the two as two files,
 * each closed before the next begins, in the order of the command line
 * (cp X X-wal restore/, gio copy) or any order a file manager likes.  So
 * the file that completes a pair is the one that restores it:
 *
 *   X, no X-wal waiting   X is restored alone at its close, as any file
 *                         in restore/ is (a closed WAL database is fully
 *                         checkpointed and has no -wal: the normal case).
 *                         Its staged bytes are kept (privately) in case
 *                         its -wal comes next.
 *   X-wal, X kept         X-wal came right after X: X is restored again,
 *                         with this WAL (a second verified restore, with
 *                         its own safety snapshot, which holds the state X
 *                         alone gave; the log says so).  Its verdict is
 *                         X-wal's close()'s.
 *   X-wal, no X kept      not a restore by itself: its bytes are kept
 *                         (privately) for X, and its close() succeeds.
 *   X, X-wal waiting      X is restored with that WAL, as SQLite would
 *                         read X beside it.
 *   X-wal while X is      (the two copied side by side) X-wal is kept,
 *   being restored        and X, restored alone, takes it at once and is
 *                         restored again with it: checking for a waiting
 *                         partner and keeping oneself are one step under
 *                         pair_lock (kept_meet), so two closes that cross
 *                         always meet (an X-wal kept while X is restored
 *                         counts as claimed: X may take long).  When X's
 *                         restore fails, the X-wal kept meanwhile goes.
 *   X-journal             a hot rollback journal (X was copied in the
 *                         middle of a transaction: X alone is torn) is
 *                         X's log as X-wal is, in either order; the
 *                         restore rolls it back on the staged copy of X
 *                         first (staging.c), as SQLite would.  One that
 *                         holds no transaction is ignored (logged).
 *   X-shm                 ignored (logged): SQLite rebuilds it from the
 *                         WAL.
 *
 * What is kept is one staged node (inode.c) held by an open reference:
 * unlisted, its backing file private in the staging directory (0600,
 * 0700 directory), deleted when the reference goes.  A kept X or X-wal is
 * used only by its partner, and only when the partner begins to arrive
 * (a write open or a rename into restore/) within RESTOREWAL_PAIR_NS of
 * the keeping; the arrival of any other file in restore/ drops it (a
 * waiting -wal that was never used is logged), and so does the unmount.
 * So a -wal is never restored alone, and a stale one is never paired with
 * a later file.  Names only say what a file is: a file called X-wal is a
 * WAL (SQLite ignores one that is not, when it reads X beside it).
 *
 * Thread-safety: the two kept slots under pair_lock, a leaf lock (node
 * references are taken and dropped outside it); the restores themselves
 * are serialized by fs->apply_lock (staging.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "fs.h"

/* How long a kept file waits for its partner to begin to arrive, and
 * how long, once the partner began to arrive, for it to arrive whole (a
 * partner whose copy failed must not pair a later, unrelated file). */
#define RESTOREWAL_PAIR_NS (300LL * 1000000000LL)
#define RESTOREWAL_CLAIM_NS (3600LL * 1000000000LL)

/* A kept half of a pair. */
struct restorewal_kept {
	struct snap_node *n;       /* holds an open reference, NULL: none */
	char name[NAME_MAX + 1];   /* X, the database's name (for both) */
	const char *suffix;        /* a log's: "-wal" or "-journal" */
	int64_t at;                /* when it was kept (monotonic ns) */
	int claimed;               /* its partner began to arrive in time */
};

static pthread_mutex_t pair_lock = PTHREAD_MUTEX_INITIALIZER;
static struct restorewal_kept kept_db;   /* X, restored alone */
static struct restorewal_kept kept_wal;  /* X-wal, waiting for X */
/* X while it is being restored alone: an X-wal kept meanwhile (their
 * closes crossed) counts as claimed, so a restore longer than
 * RESTOREWAL_PAIR_NS does not leave it behind. */
static char restoring[NAME_MAX + 1];

/* What a name in restore/ is: a database, a log of X (base gets X, the
 * log's *suffix "-wal" or "-journal"), or a side file no restore uses. */
enum restorewal_kind { RW_DB, RW_WAL, RW_IGNORED };

static enum restorewal_kind restorewal_kind(const char *name, char *base,
					    size_t len, const char **suffix)
{
	static const char *const logs[] = { "-wal", "-journal" };
	size_t n = strlen(name), i, k;

	for (i = 0; i < 2; i++) {
		k = strlen(logs[i]);
		if (n > k && strcmp(name + n - k, logs[i]) == 0) {
			snprintf(base, len, "%.*s", (int)(n - k), name);
			*suffix = logs[i];
			return RW_WAL;
		}
	}
	*suffix = NULL;
	snprintf(base, len, "%s", name);
	return snap_name_is_sidefile(name) ? RW_IGNORED : RW_DB;
}

/* How messages call a log of suffix. */
static const char *log_what(const char *suffix)
{
	return suffix && strcmp(suffix, "-journal") == 0 ?
	       "rollback journal" : "WAL";
}

/* 1 when k holds name's half and is still in time at now: within
 * RESTOREWAL_PAIR_NS of its keeping, or of its claim once claimed
 * (pair_lock held). */
static int kept_for_locked(const struct restorewal_kept *k, const char *name,
			   int64_t now)
{
	return k->n && strcmp(k->name, name) == 0 &&
	       now - k->at < (k->claimed ? RESTOREWAL_CLAIM_NS :
			      RESTOREWAL_PAIR_NS);
}

/* Move k's contents to *out and empty k (pair_lock held). */
static void kept_take_locked(struct restorewal_kept *k,
			     struct restorewal_kept *out)
{
	*out = *k;
	memset(k, 0, sizeof(*k));
}

/* Drop a slot taken out of its place: its reference (and file) go. */
static void kept_drop(struct restorewal_kept *k, int log_unused)
{
	if (!k->n)
		return;
	if (log_unused)
		snap_log(LOG_NOTICE, "restore/%s%s discarded unused: %s did "
			 "not arrive in restore/ after it (within %d "
			 "minutes, before any other file); a %s is never "
			 "restored alone", k->name, k->suffix, k->name,
			 (int)(RESTOREWAL_PAIR_NS / 60000000000LL),
			 log_what(k->suffix));
	snap_node_close(k->n);
	k->n = NULL;
}

/* Keep k when its partner (partner_kind, called base) arrives in time;
 * otherwise take it out into *out to be dropped (pair_lock held). */
static void kept_arrival_locked(struct restorewal_kept *k,
				enum restorewal_kind partner_kind,
				enum restorewal_kind kind, const char *base,
				int64_t now, struct restorewal_kept *out)
{
	memset(out, 0, sizeof(*out));
	if (!k->n)
		return;
	if (kind == partner_kind && kept_for_locked(k, base, now)) {
		if (!k->claimed)
			k->at = now;      /* the claim's own time limit */
		k->claimed = 1;
	} else {
		kept_take_locked(k, out);
	}
}

/* A file called name begins to arrive in restore/ (restoredir.h). */
void snap_restorewal_arriving(const char *name)
{
	struct restorewal_kept db, wal;
	enum restorewal_kind kind;
	char base[NAME_MAX + 1];
	const char *suffix;
	int64_t now = snap_timer_mono_ns();

	kind = restorewal_kind(name, base, sizeof(base), &suffix);
	if (kind == RW_IGNORED)
		return;
	pthread_mutex_lock(&pair_lock);
	kept_arrival_locked(&kept_db, RW_WAL, kind, base, now, &db);
	kept_arrival_locked(&kept_wal, RW_DB, kind, base, now, &wal);
	pthread_mutex_unlock(&pair_lock);
	kept_drop(&db, 0);
	kept_drop(&wal, 1);
}

/* Take slot k out into *out when it is base's and its partner was
 * seen arriving (or it is fresh: the two copied side by side). */
static void kept_claim(struct restorewal_kept *k, const char *base,
		       struct restorewal_kept *out)
{
	int64_t now = snap_timer_mono_ns();

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&pair_lock);
	if (kept_for_locked(k, base, now))
		kept_take_locked(k, out);
	pthread_mutex_unlock(&pair_lock);
}

/* Under pair_lock at once: take name's half waiting in other into *out
 * (as kept_claim) and n, with a reference of its own, into *self; or,
 * when none waits, keep n in k as name's half.  So two halves whose
 * closes cross (copied side by side, the -wal closing while its database
 * is being restored) always meet: 1 when a partner was taken. */
static int kept_meet(struct restorewal_kept *k, struct snap_node *n,
		     const char *name, const char *suffix,
		     struct restorewal_kept *other,
		     struct restorewal_kept *out, struct restorewal_kept *self)
{
	struct restorewal_kept old;
	int64_t now = snap_timer_mono_ns();

	memset(out, 0, sizeof(*out));
	memset(self, 0, sizeof(*self));
	memset(&old, 0, sizeof(old));
	pthread_mutex_lock(&snap_fs.lock);
	snap_node_open_locked(n);
	pthread_mutex_unlock(&snap_fs.lock);
	pthread_mutex_lock(&pair_lock);
	if (kept_for_locked(other, name, now)) {
		kept_take_locked(other, out);
		self->n = n;
		self->suffix = suffix;
		snprintf(self->name, sizeof(self->name), "%s", name);
	} else {
		kept_take_locked(k, &old);
		k->n = n;
		k->suffix = suffix;
		snprintf(k->name, sizeof(k->name), "%s", name);
		k->at = now;
		k->claimed = k == &kept_wal && strcmp(restoring, name) == 0;
	}
	pthread_mutex_unlock(&pair_lock);
	kept_drop(&old, k == &kept_wal && old.n != n);
	return out->n != NULL;
}

/* X (db) restored alone before its WAL (wal) arrived whole: restore it
 * again with it; the verdict is this second restore's. */
static int restorewal_again(struct restorewal_kept *db,
			    struct restorewal_kept *wal, const char *how,
			    const char *target)
{
	char shown[2 * NAME_MAX + 96];
	int rc;

	snap_log(LOG_NOTICE, "%s/%s%s came after %s/%s, restored alone "
		 "at its close: restoring %s again, with this %s (a second "
		 "verified restore; its safety snapshot holds the state %s "
		 "alone gave)", SNAP_NAME_RESTORE, db->name, wal->suffix,
		 SNAP_NAME_RESTORE, db->name, db->name, log_what(wal->suffix),
		 db->name);
	snprintf(shown, sizeof(shown), "the file written to %s/%s with its "
		 "%s %s%s", SNAP_NAME_RESTORE, db->name, log_what(wal->suffix),
		 how, target);
	rc = snap_apply_file(db->n->path, wal->n->path, wal->suffix, shown,
			     "upload");
	kept_drop(db, 0);
	kept_drop(wal, 0);
	return rc;
}

/* X-wal (or a hot X-journal) arrived whole: X restored again with it,
 * or it waits for X. */
static int restorewal_wal(struct snap_node *n, const char *target,
			  const char *base, const char *suffix,
			  const char *how)
{
	struct restorewal_kept db, wal;

	if (!kept_meet(&kept_wal, n, base, suffix, &kept_db, &db, &wal)) {
		snap_log(LOG_NOTICE, "%s: the %s of %s, not a database: kept "
			 "(privately) for %s, which is restored with it when "
			 "copied into restore/ next; the live database is "
			 "unchanged", target, strcmp(suffix, "-wal") == 0 ?
			 "write-ahead log" : "rollback journal (an "
			 "interrupted transaction)", base, base);
		return 0;
	}
	return restorewal_again(&db, &wal, how, target);
}

/* A staged file n arrived whole in restore/ as target ("restore/NAME"):
 * restore it, with its waiting WAL, keep it, or ignore it (restoredir.h). */
int snap_restorewal_arrived(struct snap_node *n, const char *target,
			    int renamed)
{
	const char *how = renamed ? "" : "written to ";
	char base[NAME_MAX + 1], shown[2 * NAME_MAX + 96];
	const char *name = strchr(target, '/') ? strchr(target, '/') + 1 :
			   target;
	struct restorewal_kept wal;
	const char *suffix;
	int rc;

	switch (restorewal_kind(name, base, sizeof(base), &suffix)) {
	case RW_IGNORED:
		snap_log(LOG_INFO, "%s ignored: SQLite's shared-memory index, "
			 "rebuilt from the WAL, is never needed for a restore",
			 target);
		return 0;
	case RW_WAL:
		if (strcmp(suffix, "-journal") == 0 &&
		    !snap_staging_journal_hot(n->path)) {
			snap_log(LOG_INFO, "%s ignored: a rollback journal "
				 "that holds no transaction", target);
			return 0;
		}
		return restorewal_wal(n, target, base, suffix, how);
	case RW_DB:
		break;
	}
	kept_claim(&kept_wal, name, &wal);
	if (wal.n)
		snprintf(shown, sizeof(shown), "the file %s%s with its %s %s%s",
			 how, target, log_what(wal.suffix), target,
			 wal.suffix);
	else
		snprintf(shown, sizeof(shown), "the file %s%s", how, target);
	if (wal.n) {
		rc = snap_apply_file(n->path, wal.n->path, wal.suffix, shown,
				     "upload");
		kept_drop(&wal, 0);
		return rc;
	}
	pthread_mutex_lock(&pair_lock);
	snprintf(restoring, sizeof(restoring), "%s", name);
	pthread_mutex_unlock(&pair_lock);
	rc = snap_apply_file(n->path, NULL, NULL, shown, "upload");
	pthread_mutex_lock(&pair_lock);
	if (strcmp(restoring, name) == 0)
		restoring[0] = '\0';
	if (rc != 0 && kept_wal.n && strcmp(kept_wal.name, name) == 0)
		kept_take_locked(&kept_wal, &wal);   /* X's WAL, X refused */
	pthread_mutex_unlock(&pair_lock);
	if (wal.n) {
		snap_log(LOG_NOTICE, "%s/%s%s discarded: %s, which it came "
			 "with, was not restored", SNAP_NAME_RESTORE, name,
			 wal.suffix, target);
		kept_drop(&wal, 0);
		return rc;
	}
	/* Kept for an X-wal to come, unless one arrived whole while X was
	 * restored: then X again, with it, now. */
	struct restorewal_kept db;
	if (rc == 0 && kept_meet(&kept_db, n, name, NULL, &kept_wal, &wal,
				 &db)) {
		snprintf(shown, sizeof(shown), "%s/%s%s", SNAP_NAME_RESTORE,
			 name, wal.suffix);
		rc = restorewal_again(&db, &wal, "", shown);
	}
	return rc;
}

/* An empty file called name closed in restore/ (restoredir.h). */
int snap_restorewal_empty(const char *name)
{
	struct restorewal_kept db;
	char base[NAME_MAX + 1];
	const char *suffix;

	switch (restorewal_kind(name, base, sizeof(base), &suffix)) {
	case RW_DB:
		return 0;
	case RW_WAL:
		/* An empty log holds no transaction: X alone, as restored,
		 * is its committed state; nothing is waiting for it. */
		kept_claim(&kept_db, base, &db);
		kept_drop(&db, 0);
		snap_log(LOG_INFO, "restore/%s: an empty %s; %s alone is the "
			 "committed state", name, log_what(suffix), base);
		return 1;
	case RW_IGNORED:
		break;
	}
	return 1;
}

/* Drop what is kept (the unmount; restoredir.h). */
void snap_restorewal_shutdown(void)
{
	struct restorewal_kept db, wal;

	pthread_mutex_lock(&pair_lock);
	kept_take_locked(&kept_db, &db);
	kept_take_locked(&kept_wal, &wal);
	pthread_mutex_unlock(&pair_lock);
	kept_drop(&db, 0);
	kept_drop(&wal, 1);
}
