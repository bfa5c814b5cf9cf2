/*
 * engine/trash.c — the freedesktop trash in the catalog; see trash.h for
 * what a trashed snapshot is and fs/trash.c for the names a file manager
 * uses.
 *
 * State: one row of the table `trash` (storeschema.c's schema version 2) per
 * trashed snapshot, its primary key the snapshot's id:
 *   uid         whose trash (.Trash-UID) holds it;
 *   dir         SNAP_TRASH_FILES or SNAP_TRASH_EXPUNGED;
 *   tname       its name in that directory (UNIQUE(uid, dir, tname));
 *   trashed_ns  when it was put there;
 *   info        the .trashinfo text, served as info/TNAME.trashinfo.
 * Every catalog read joins this table (SNAP_INFO_FROM), so each snap_info
 * says where its snapshot is; snap_store_delete removes the row with the
 * snapshot, in one transaction.  The three changes here (put, move,
 * restore) share one shape, trash_change(): check, change, commit, event,
 * all under the catalog lock in one IMMEDIATE transaction, so two
 * processes (the daemon, snapctl) never see half of one.
 *
 * The .trashinfo text.  GLib writes "[Trash Info]\nPath=...\nDeletionDate=
 * ...\n" before it moves the file; the daemon hands that text over and it
 * is kept as it is, so `gio list trash://` and a file manager's Restore
 * see what GLib wrote.  Text that is not a trash info (or larger than
 * SNAP_TRASH_INFO_MAX) is never stored: a trash info is made from the
 * catalog instead, the Path relative to the mount's top directory as GLib
 * writes it for a trash outside the home ("snapshots/NAME", URI-escaped)
 * and the DeletionDate in local time, as the specification asks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "events.h"
#include "store_int.h"
#include "trash.h"

/* Directory names under .Trash-UID, by snap_trash_dir. */
static const char *const trash_dir_names[] = { "", "files", "expunged" };

/* What trash_change does. */
enum { TRASH_PUT, TRASH_MOVE, TRASH_RESTORE };

/* 0 when name can name a file in a trash directory; -EINVAL otherwise. */
static int trash_name_check(const char *name, snap_err *err)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > SNAP_TRASH_NAME_MAX || strchr(name, '/') ||
	    strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return snap_err_set(err, -EINVAL, "\"%.80s\" cannot name a "
				    "file in the trash", name ? name : "");
	return 0;
}

/* 1 when info (len bytes) is a trash info text worth keeping as it is. */
static int trash_info_usable(const char *info, size_t len)
{
	static const char head[] = "[Trash Info]";

	return info && len >= sizeof(head) - 1 &&
	       len <= SNAP_TRASH_INFO_MAX &&
	       memcmp(info, head, sizeof(head) - 1) == 0 &&
	       memchr(info, '\0', len) == NULL;
}

/* 1 for the bytes a URI path keeps as they are (RFC 3986 unreserved, and
 * '/', as g_uri_escape_string(path, "/", FALSE) does). */
static int trash_uri_keeps(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	       c == '~' || c == '/';
}

/* The .trashinfo text of si trashed at when_ns. */
int snap_trash_info_make(const snap_info *si, int64_t when_ns, char *out,
			 size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	char path[sizeof("snapshots/") + 3 * SNAP_NAME_MAX], date[32];
	time_t t = (time_t)(when_ns / 1000000000);
	const char *p;
	struct tm tm;
	size_t k;
	int n;

	k = (size_t)snprintf(path, sizeof(path), "snapshots/");
	for (p = si->name; *p && k + 4 < sizeof(path); p++) {
		unsigned char c = (unsigned char)*p;

		if (trash_uri_keeps(c)) {
			path[k++] = (char)c;
		} else {
			path[k++] = '%';
			path[k++] = hex[c >> 4];
			path[k++] = hex[c & 15];
		}
	}
	path[k] = '\0';
	if (!localtime_r(&t, &tm) ||
	    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(date, sizeof(date), "9999-12-31T23:59:59");
	n = snprintf(out, cap, "[Trash Info]\nPath=%s\nDeletionDate=%s\n", path,
		     date);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Which snapshot holds `name` in dir of uid's trash: its id, 0 for none,
 * or a negative errno. */
static int64_t trash_holder(sqlite3 *db, uint32_t uid, snap_trash_dir dir,
			    const char *name, snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int64_t id = 0;
	int rc;

	rc = sqlite3_prepare_v2(db, "SELECT id FROM trash WHERE uid=? AND "
				"dir=? AND tname=?", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, uid);
		sqlite3_bind_int(st, 2, (int)dir);
		sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW)
		id = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_DONE)
		id = snap_err_sqlite(err, db, rc, "cannot look in the trash");
	sqlite3_finalize(st);
	return id;
}

/* Run one statement with up to six bound values ("i" int64, "t" text, "b"
 * text of len bytes); 0 or a negative errno; *changes the rows changed. */
static int trash_step(sqlite3 *db, const char *sql, int *changes,
		      const char *types, const int64_t *nums,
		      const char *const *texts, const size_t *lens,
		      snap_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL), i;

	for (i = 0; rc == SQLITE_OK && types[i]; i++) {
		if (types[i] == 'i')
			rc = sqlite3_bind_int64(st, i + 1, nums[i]);
		else
			rc = sqlite3_bind_text(st, i + 1, texts[i],
					       types[i] == 'b' ? (int)lens[i] :
					       -1, SQLITE_STATIC);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return snap_err_sqlite(err, db, rc, "cannot change the trash");
	if (changes)
		*changes = sqlite3_changes(db);
	return 0;
}

/*
 * One change of a snapshot's place, in one transaction: TRASH_PUT (into
 * files/ of uid's trash as name, with info), TRASH_MOVE (to dir of its
 * trash as name), TRASH_RESTORE (out of the trash).  Records the event and
 * fills *out with the snapshot as it is afterwards.
 */
static int trash_change(snap_store *s, int op, int64_t id, uint32_t uid,
			snap_trash_dir dir, const char *name,
			const char *info, size_t len, snap_info *out,
			snap_err *err)
{
	char made[SNAP_TRASH_INFO_MAX + 1], detail[SNAP_ERR_MSG];
	const char *texts[6] = { 0 };
	int64_t nums[6] = { 0 }, holder = 0;
	size_t lens[6] = { 0 };
	snap_info si;
	int rc, changed = 0;

	if (op != TRASH_RESTORE && (rc = trash_name_check(name, err)))
		return rc;
	if ((rc = snap_store_txn_begin(s, err)))
		return rc;
	rc = snap_store_get_db(s->db, id, &si, err);
	if (!rc && op == TRASH_PUT && si.trash != SNAP_TRASH_NONE)
		rc = snap_err_set(err, -ENOENT, "snapshot %s is in the trash "
				  "already (.Trash-%u/%s/%s)", si.name,
				  si.trash_uid, trash_dir_names[si.trash],
				  si.trash_name);
	if (!rc && op != TRASH_PUT && si.trash == SNAP_TRASH_NONE)
		rc = snap_err_set(err, -ENOENT, "snapshot %s is not in the "
				  "trash", si.name);
	if (!rc && op == TRASH_MOVE)
		uid = si.trash_uid;
	if (!rc && op == TRASH_PUT)
		dir = SNAP_TRASH_FILES;
	if (!rc && op != TRASH_RESTORE) {
		holder = trash_holder(s->db, uid, dir, name, err);
		if (holder < 0)
			rc = (int)holder;
		else if (holder > 0 && holder != id)
			rc = snap_err_set(err, -EEXIST, "the trash .Trash-%u "
					  "already holds %s/%s (another "
					  "snapshot)", uid,
					  trash_dir_names[dir], name);
	}
	if (!rc && op == TRASH_PUT) {
		if (!trash_info_usable(info, len)) {
			rc = snap_trash_info_make(&si, snap_time_now_ns(),
						  made, sizeof(made));
			if (rc)
				rc = snap_err_set(err, rc, "snapshot %s: no "
						  "trash info", si.name);
			info = made;
			len = strlen(made);
		}
		nums[0] = id;
		nums[1] = uid;
		nums[2] = dir;
		texts[3] = name;
		nums[4] = snap_time_now_ns();
		texts[5] = info;
		lens[5] = len;
		if (!rc)
			rc = trash_step(s->db, "INSERT INTO trash(id, uid, dir, "
					"tname, trashed_ns, info) VALUES(?,?,?,"
					"?,?,?)", &changed, "iiitib", nums,
					texts, lens, err);
	} else if (!rc && op == TRASH_MOVE) {
		nums[0] = dir;
		texts[1] = name;
		nums[2] = id;
		rc = trash_step(s->db, "UPDATE trash SET dir=?, tname=? WHERE "
				"id=?", &changed, "iti", nums, texts, lens,
				err);
	} else if (!rc) {
		nums[0] = id;
		rc = trash_step(s->db, "DELETE FROM trash WHERE id=?",
				&changed, "i", nums, texts, lens, err);
	}
	if (!rc && changed != 1)
		rc = snap_err_set(err, -EIO, "snapshot %s: the trash changed "
				  "%d rows instead of one", si.name, changed);
	if ((rc = snap_store_txn_end(s->db, rc, err)))
		goto out;
	if (op == TRASH_PUT)
		snprintf(detail, sizeof(detail), "moved to the trash as "
			 ".Trash-%u/files/%s: it stays in the store, out of "
			 "snapshots/ and of retention, until the trash is "
			 "emptied", uid, name);
	else if (op == TRASH_MOVE)
		snprintf(detail, sizeof(detail), "moved within the trash from "
			 ".Trash-%u/%s/%s to %s/%s", uid,
			 trash_dir_names[si.trash], si.trash_name,
			 trash_dir_names[dir], name);
	else
		snprintf(detail, sizeof(detail), "back in snapshots/ from the "
			 "trash (.Trash-%u/%s/%s), unchanged", si.trash_uid,
			 trash_dir_names[si.trash], si.trash_name);
	snap_event_add_db(s->db, op == TRASH_RESTORE ? "untrash" : "trash",
			  si.name, 1, detail);
	if (out)
		rc = snap_store_get_db(s->db, id, out, err);
out:
	snap_store_unlock(s);
	return rc;
}

/* Put snapshot id into uid's trash as files/name. */
int snap_trash_put(snap_store *s, int64_t id, uint32_t uid, const char *name,
		   const char *info, size_t len, snap_info *out,
		   snap_err *err)
{
	return trash_change(s, TRASH_PUT, id, uid, SNAP_TRASH_FILES, name,
			    info, len, out, err);
}

/* Move trashed snapshot id to directory dir of its trash as name. */
int snap_trash_move(snap_store *s, int64_t id, snap_trash_dir dir,
		    const char *name, snap_info *out, snap_err *err)
{
	if (dir != SNAP_TRASH_FILES && dir != SNAP_TRASH_EXPUNGED)
		return snap_err_set(err, -EINVAL, "no such trash directory "
				    "(%d)", (int)dir);
	return trash_change(s, TRASH_MOVE, id, 0, dir, name, NULL, 0, out,
			    err);
}

/* Take snapshot id out of the trash. */
int snap_trash_restore(snap_store *s, int64_t id, snap_info *out,
		       snap_err *err)
{
	return trash_change(s, TRASH_RESTORE, id, 0, SNAP_TRASH_NONE, NULL,
			    NULL, 0, out, err);
}

/* The snapshot called name in directory dir of uid's trash; -ENOENT. */
int snap_trash_find(snap_store *s, uint32_t uid, snap_trash_dir dir,
		    const char *name, snap_info *out, snap_err *err)
{
	int64_t id;
	int rc;

	snap_store_lock(s);
	id = trash_holder(s->db, uid, dir, name, err);
	if (id == 0)
		rc = snap_err_set(err, -ENOENT, "no %s/%s in the trash "
				  ".Trash-%u",
				  trash_dir_names[dir == SNAP_TRASH_EXPUNGED ?
						  dir : SNAP_TRASH_FILES], name,
				  uid);
	else if (id < 0)
		rc = (int)id;
	else
		rc = snap_store_get_db(s->db, id, out, err);
	snap_store_unlock(s);
	return rc;
}

/* The snapshots in uid's trash (uid < 0: every trash), in *out. */
int snap_trash_list(snap_store *s, int64_t uid, snap_info **out, size_t *n,
		    snap_err *err)
{
	return snap_store_list_sql(s, "WHERE trash.id IS NOT NULL AND (?1 < 0 "
				   "OR trash.uid = ?1) ORDER BY trash.uid, "
				   "trash.dir, trash.tname", &uid, out, n,
				   "the trash", err);
}

/* The .trashinfo text kept with trashed snapshot id (malloc()ed). */
int snap_trash_info(snap_store *s, int64_t id, char **text, snap_err *err)
{
	return snap_store_text(s, "SELECT info FROM trash WHERE id=?", id, "",
			       "not in the trash: snapshot", text, err);
}
