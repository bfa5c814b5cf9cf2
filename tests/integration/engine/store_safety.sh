#!/bin/bash
# store_safety.sh — the store through snapctl, against a user who can write
# beside it, and its own edge cases (issue 7, items 2, 3 and 9):
#
#   * --store on an existing 0755 directory (what mkdir makes): the store
#     becomes 0700 and store.db 0600, and another user cannot export from
#     it; exports are 0600, image and SQL, a regular file at FILE is
#     replaced, a symlink (or a FIFO) refused, never followed; never over
#     another store's database or a store;
#   * a symlinked store directory is refused and its target stays empty;
#   * --db LINK (a symlink to the database) finds the store for list, show,
#     verify and restore as it does for create;
#   * a refused create of a non-database (or an empty file) leaves no
#     store directory;
#   * a store whose store.db is gone is refused ("the catalog store.db is
#     gone"), never silently replaced by an empty one;
#   * check calls an emptied (0-byte) live database corrupt, not healthy;
#   * store.db shrinks after most snapshots are deleted.
. "$(dirname "$0")/../lib.sh"

umask 022
chmod 711 "$T"          # other users may pass through, as in /srv
DB=$T/app.db
make_db "$DB" 500
chmod 600 "$DB"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)

# 1. A private database stays private through its store.
mkdir "$T/st"
chmod 755 "$T/st"
sc --db "$DB" --store "$T/st" create --label one
require "create into an existing 0755 directory exits 0" rc_is 0
check "the store directory is made 0700" \
	same "$(stat -c %a "$T/st")" 700
check "store.db is 0600" same "$(stat -c %a "$T/st/store.db")" 600
mkdir "$T/pub"
chmod 1777 "$T/pub"
if "${NOBODY[@]}" true 2>/dev/null; then
	set +e
	"${NOBODY[@]}" "$SNAPCTL" --store "$T/st" export latest \
		"$T/pub/stolen.db" >"$T/.out" 2>"$T/.err" </dev/null
	RC=$?
	set -e
	ERR=$(cat "$T/.err")
	LAST="(as nobody) snapctl --store $T/st export latest $T/pub/stolen.db"
	check "another user cannot export a snapshot of the 0600 database" \
		test "$RC" -ne 0 -a ! -s "$T/pub/stolen.db"
	check "and is told whose store it is" err_has 'belongs to|denied'
	# A monitor that may not read the store learns that it could not
	# read the status (UNKNOWN, 3), not that there is no store (it
	# said "CRITICAL - ... no store at", 2: store.db could not be
	# looked up, which is not missing).
	set +e
	"${NOBODY[@]}" "$SNAPCTL" --store "$T/st" status --warn-age 1h \
		>"$T/.out" 2>"$T/.err" </dev/null
	RC=$?
	set -e
	OUT=$(cat "$T/.out")
	ERR=$(cat "$T/.err")
	LAST="(as nobody) snapctl --store $T/st status --warn-age 1h"
	check "a store another user may not read: status says UNKNOWN, exit 3" \
		eval 'rc_is 3 && out_has "^UNKNOWN" && ! out_has "no store"'
	check "and the reason is the permission, not a missing store" \
		eval 'err_has "denied" && err_lacks "no store"'
else
	echo "# setpriv cannot drop to nobody here; that check is skipped"
fi

# An export never follows a symbolic link nor replaces one (or a device:
# renamed over /dev/stdout or /dev/null as root, a new file would have
# replaced them for the whole system); a regular file is replaced, 0600.
echo "victim" >"$T/victim"
ln -s "$T/victim" "$T/out.db"
sc --db "$DB" --store "$T/st" export latest "$T/out.db"
check "export over a symlink: exit 1, says it is a link" \
	eval 'rc_is 1 && err_has "is a symbolic link"'
check "the link is still there, its target untouched" \
	eval 'test -L "$T/out.db" && same "$(cat "$T/victim")" victim'
ln -s "$T/victim" "$T/out.sql"
sc --db "$DB" --store "$T/st" export latest "$T/out.sql" --sql
check "export --sql over a symlink: exit 1" rc_is 1
check "that link is still there, its target untouched" \
	eval 'test -L "$T/out.sql" && same "$(cat "$T/victim")" victim'
mkfifo "$T/out.fifo"
sc --db "$DB" --store "$T/st" export latest "$T/out.fifo"
check "export onto a FIFO: exit 1, not a regular file, the FIFO kept" \
	eval 'rc_is 1 && err_has "not a regular file" && test -p "$T/out.fifo"'
rm "$T/out.db" "$T/out.sql"
echo "old bytes" >"$T/out.db"
chmod 644 "$T/out.db"
sc --db "$DB" --store "$T/st" export latest "$T/out.db"
check "export over a regular file replaces it" \
	eval 'rc_is 0 && same "$(integrity "$T/out.db")" ok'
check "the export is 0600" same "$(stat -c %a "$T/out.db")" 600
echo "old text" >"$T/out.sql"
sc --db "$DB" --store "$T/st" export latest "$T/out.sql" --sql
check "export --sql over a regular file replaces it" rc_is 0
check "the SQL export is 0600 (it holds the data)" \
	same "$(stat -c %a "$T/out.sql")" 600
# Never over another database that has a store, nor over a store: a
# rename behind SQLite's (and its daemon's) back is not a restore, and a
# store replaced loses every snapshot.
make_db "$T/other.db" 10
sc --db "$T/other.db" create
require "create of other.db exits 0" rc_is 0
SUM=$(sha256sum <"$T/other.db")
sc --db "$DB" --store "$T/st" export latest "$T/other.db"
check "export over another store's live database: exit 1, says restore" \
	eval 'rc_is 1 && err_has "restore"'
sc --db "$DB" --store "$T/st" export latest "$T/other.db" --sql
check "export --sql over it: exit 1" rc_is 1
check "that database is untouched" same "$(sha256sum <"$T/other.db")" "$SUM"
SUM=$(sha256sum <"$T/other.db.snapfs/store.db")
sc --db "$DB" --store "$T/st" export latest "$T/other.db.snapfs/store.db"
check "export over a store's store.db: exit 1, says it is a store" \
	eval 'rc_is 1 && err_has "snapfs store"'
check "that store is untouched and still lists its snapshot" \
	eval 'same "$(sha256sum <"$T/other.db.snapfs/store.db")" "$SUM" &&
	      "$SNAPCTL" --db "$T/other.db" list >/dev/null'

# 2. A store directory that is a symlink is refused.
mkdir "$T/elsewhere"
make_db "$T/b.db" 10
ln -s "$T/elsewhere" "$T/b.db.snapfs"
sc --db "$T/b.db" create
check "create with a symlinked store directory: exit 1" rc_is 1
check "the message says it is a symbolic link" err_has 'symbolic link'
check "nothing was written through the link" \
	same "$(ls -A "$T/elsewhere" | wc -l)" 0

# 3. --db LINK finds the store of the database it points to.
sc --db "$DB" create --label default-store
require "a snapshot into the default store" rc_is 0
ln -s "$DB" "$T/link.db"
for cmd in list "show latest" verify status log; do
	# shellcheck disable=SC2086
	sc --db "$T/link.db" $cmd
	check "--db LINK $cmd: exit 0" rc_is 0
done
sc --db "$T/link.db" list
check "--db LINK lists the database's snapshot" out_has '_default-store\.db'
sqlite3 "$DB" "DELETE FROM t"
sc --db "$T/link.db" restore latest
check "--db LINK restore: exit 0" rc_is 0
check "the database the link points to was restored" \
	same "$(sqlite3 "$DB" 'SELECT count(*) FROM t')" 500
check "the link is still a link" test -L "$T/link.db"

# 3b. A -wal beside the live database that is a symbolic link: SQLite
# (SQLITE_OPEN_NOFOLLOW) refuses it, and the message names the link
# instead of SQLite's bare "unable to open database file"; the link's
# target is not touched.
WDB=$T/walled.db
make_db "$WDB" 50
sqlite3 "$WDB" "PRAGMA journal_mode=WAL" >/dev/null
printf 'not a wal\n' >"$T/wal-victim"
ln -s "$T/wal-victim" "$WDB-wal"
sc --db "$WDB" create
check "a symlinked -wal beside the database: create exits 1" rc_is 1
check "the message names the link" \
	err_has "$WDB-wal is a symbolic link.*remove the link"
check "the link's target is untouched" \
	same "$(cat "$T/wal-victim")" "not a wal"
rm "$WDB-wal"

# 4. A refused create leaves nothing behind.
printf 'just some notes\n%.0s' $(seq 1 100) >"$T/notes.db"
sc --db "$T/notes.db" create
check "create of a non-database: exit 1" rc_is 1
check "the message says it is not a database" err_has 'not a SQLite database'
check "no store directory is left behind" test ! -e "$T/notes.db.snapfs"
: >"$T/empty.db"
sc --db "$T/empty.db" create
check "create of an empty file: exit 1" rc_is 1
check "the message says it is empty" err_has 'empty'
check "no store directory is left behind for it" \
	test ! -e "$T/empty.db.snapfs"

# 5. A lost catalog is refused, not replaced by an empty store.
make_db "$T/c.db" 100
sc --db "$T/c.db" create --label kept
require "a first snapshot of c.db" rc_is 0
sc --db "$T/c.db" restore latest
require "a restore of c.db (it leaves restore.lock in the store)" rc_is 0
rm "$T/c.db.snapfs/store.db"
for cmd in list create; do
	sc --db "$T/c.db" $cmd
	check "$cmd on a store whose store.db is gone: exit 1" rc_is 1
	check "$cmd: the message says the catalog is gone" \
		err_has 'catalog store\.db is gone'
done
check "no empty store.db was created in its place" \
	test ! -e "$T/c.db.snapfs/store.db"

# 6. An emptied live database is not healthy.
make_db "$T/d.db" 100
sc --db "$T/d.db" create
require "a snapshot of d.db" rc_is 0
: >"$T/d.db"
sc --db "$T/d.db" check
check "check of a 0-byte live database: exit 1" rc_is 1
check "it says the file is empty" any_has 'empty'
sc --db "$T/d.db" check --recover
check "check --recover brings the rows back" \
	same "$(sqlite3 "$T/d.db" 'SELECT count(*) FROM t')" 100

# 7. The store gives space back after deletions.
# snap_field_by_label DB LABEL — the name of DB's snapshot labelled LABEL.
snap_field_by_label() {
	timeout "$SC_TIMEOUT" "$SNAPCTL" --db "$1" list --json </dev/null |
		python3 -c '
import json, sys
print([s["name"] for s in json.load(sys.stdin) if s["label"] == sys.argv[1]][0])
' "$2"
}
E=$T/e.db
make_db "$E" 10
for i in 1 2 3 4 5 6; do
	sqlite3 -bail "$E" "DROP TABLE IF EXISTS r;"
	add_random "$E" 1
	sc --db "$E" create --label "r$i"
	require "snapshot r$i" rc_is 0
done
BEFORE=$(stat -c %s "$E.snapfs/store.db")
for i in 1 2 3 4 5; do
	sc --db "$E" delete "$(snap_field_by_label "$E" "r$i")"
	check "delete r$i: exit 0" rc_is 0
done
AFTER=$(stat -c %s "$E.snapfs/store.db")
echo "# store.db: $BEFORE bytes with 6 snapshots, $AFTER after deleting 5"
check "store.db shrank to less than a third" test $((AFTER * 3)) -lt "$BEFORE"
sc --db "$E" verify --full
check "the remaining snapshot verifies" rc_is 0
