/*
 * engine/merge_int.h — what merge.c, mergelive.c, mergekeys.c and
 * mergemove.c share; not part of the public API.
 */
#ifndef ENGINE_MERGE_INT_H
#define ENGINE_MERGE_INT_H

#define SQLITE_ENABLE_SESSION 1
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#include <sqlite3.h>

#include "merge.h"
#include "store_int.h"

/* One sqlite_sequence row the edit moved. */
typedef struct merge_seq {
	char *name;              /* sqlite3_malloc'd */
	int64_t seq;
} merge_seq;

/* What applying the edit takes. */
typedef struct merge_plan {
	void *cs;                /* the changeset (sqlite3_free) */
	int ncs;
	merge_seq *seqs;         /* moved sequences (free) */
	size_t nseqs;
} merge_plan;

/* Everything the merge needs from base and edited alone (merge.c); the
 * live database is not touched. */
int snap_merge_make_plan(const char *base, const char *edited,
			 merge_plan *p, snap_merge_result *res, snap_err *err);
/* Free what a plan holds; safe on a zeroed one. */
void snap_merge_plan_free(merge_plan *p);

/* The columns of one table and the statements that check its rows. */
typedef struct merge_tab {
	char *name;              /* sqlite3_malloc'd, NULL before the first */
	char **cols;             /* column names, sqlite3_malloc'd each */
	int ncol;
	sqlite3_stmt *has_key;   /* a live row with this key exists */
	sqlite3_stmt *same_row;  /* the live row equals base's */
} merge_tab;

/* The first conflict the apply's handler saw. */
typedef struct merge_conflict {
	sqlite3 *db;             /* the live connection, for column names */
	int type;                /* SQLITE_CHANGESET_*, 0 none */
	char table[256];
	char key[256];
} merge_conflict;


/* One table whose inserted rows take new keys. */
typedef struct merge_rk_tab {
	char *name;              /* sqlite3_malloc'd */
	char **cols;             /* its columns (merge_cols) */
	int ncol;
	int pkcol;               /* the rowid alias */
	int64_t base_end;        /* the largest key base had, or base's
				    sqlite_sequence value if larger */
	int64_t *keys;           /* the edit's inserted keys past base_end,
				    ascending (malloc'd) */
	size_t nkeys, cap;
	int64_t first_new;       /* keys[i] becomes first_new + i */
} merge_rk_tab;

/* The tables whose inserted rows take new keys. */
typedef struct merge_rekey {
	merge_rk_tab *tabs;      /* malloc'd */
	size_t n;
} merge_rekey;

/* Column names of main.table, in order; -EIO on failure. */
int snap_merge_cols(sqlite3 *db, const char *table, char ***out, int *n);
/* Free n column names and their array. */
void snap_merge_cols_free(char **cols, int n);

/* "id=51, k='x'": the key of the iterator's row (new values for an
 * INSERT, old ones otherwise), named from main.table when it can be. */
void snap_merge_key_text(sqlite3 *db, sqlite3_changeset_iter *it,
			 const char *table, char *out, size_t cap);
/* Free the tables rk holds (not rk itself). */
void snap_merge_rekey_free(merge_rekey *rk);

/* The key of the iterator's INSERT in table r when it is one of the
 * edit's keys past base's end; 0 when it is not. */
int snap_merge_rekey_key(const merge_rk_tab *r, sqlite3_changeset_iter *it,
			 int64_t *key);

/*
 * Step 2, for an INSERT of the edit whose key the live database has too:
 * note its table for new keys.  0 when noted, 1 when it stays a conflict
 * (why says why), or a negative errno.
 */
int snap_merge_rekey_note(sqlite3 *db, merge_rekey *rk, const char *tab,
			  sqlite3_changeset_iter *it, int ncol,
			  const unsigned char *pk, char *why, size_t cap);

/* Pass 1 of the plan: every INSERT of a noted table past base's end,
 * sorted, and where its new keys start. */
int snap_merge_rekey_collect(sqlite3 *db, const merge_plan *p,
			     merge_rekey *rk, snap_err *err);

/*
 * Pass 2 of the plan: no value of any row the edit changed may be one of
 * the old keys, except the re-keyed row's own key.  0, or -ESTALE with
 * res naming the re-keyed row (a conflict).
 */
int snap_merge_rekey_refs(sqlite3 *db, const merge_plan *p,
			  const merge_rekey *rk, snap_merge_result *res,
			  snap_err *err);

/* p's changeset with the rows of rk moved to their new keys, in *out
 * (sqlite3_free). */
int snap_merge_rekey_changeset(const merge_plan *p, const merge_rekey *rk,
			       int *nout, void **out, snap_err *err);

/* The re-keyed rows into res (malloc'd list). */
int snap_merge_rekey_result(const merge_rekey *rk, snap_merge_result *res,
			    snap_err *err);

/* Steps 1 to 7 in one transaction on the live database. */
int snap_merge_into_live(snap_store *s, const char *base,
			 const merge_plan *p, snap_merge_result *res,
			 snap_err *err);

#endif /* ENGINE_MERGE_INT_H */
