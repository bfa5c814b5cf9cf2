#!/bin/bash
# bad_input.sh — snapctl refuses input that is not a usable database, and
# paths that do not exist, with exit 1 and a message, changing nothing.
#
#   * import FILE and restore FILE of: a text file, an empty file, the first
#     half of a valid database, its first 100 bytes (the header alone):
#     exit 1, stderr names the file, the snapshot count is unchanged and the
#     live database is byte-for-byte unchanged.  A valid file imports fine
#     (the control that shows the checks can pass).
#   * a copy taken in the middle of a transaction, its hot -journal beside
#     it: import and restore refuse it, say that the journal holds an
#     interrupted transaction (it said "attempt to write a readonly
#     database"), and leave both files as they were.
#   * create with a database that does not exist: exit 1 with a message
#     naming it, and no snapshot.
#   * list with a store directory that does not exist: exit 1, and the
#     directory is not created.
#   * usage errors exit 2.
. "$(dirname "$0")/../lib.sh"

DB=$T/live.db
make_db "$DB" 4000
sc --db "$DB" create --label base
require "create of a valid database exits 0" rc_is 0
N0=$(count_snaps --db "$DB")
require "one snapshot listed" same "$N0" 1
LIVE_SHA=$(sha "$DB")

# The bad files.
printf 'this is not a database\n%.0s' $(seq 1 200) >"$T/notes.txt"
: >"$T/empty.db"
SIZE=$(stat -c %s "$DB")
head -c $((SIZE / 2)) "$DB" >"$T/half.db"
head -c 100 "$DB" >"$T/header-only.db"
echo "# valid database: $SIZE bytes; half.db: $((SIZE / 2)) bytes"

for f in notes.txt empty.db half.db header-only.db; do
	sc --db "$DB" import "$T/$f"
	check "import $f: exit 1" rc_is 1
	check "import $f: stderr names the file" err_has "$f"
	check "import $f: snapshot count unchanged" \
		same "$(count_snaps --db "$DB")" "$N0"

	sc --db "$DB" restore "$T/$f"
	check "restore $f: exit 1" rc_is 1
	check "restore $f: stderr names the file" err_has "$f"
	check "restore $f: snapshot count unchanged (no import, no safety snapshot)" \
		same "$(count_snaps --db "$DB")" "$N0"
	check "restore $f: live database byte-for-byte unchanged" \
		same "$(sha "$DB")" "$LIVE_SHA"
	check "restore $f: no journal left beside the live database" \
		test ! -e "$DB-journal"
done

# Controls: a valid copy imports, and restores from its file, so the
# refusals above are about content, not about the path.
cp "$DB" "$T/good-copy.db"
sc --db "$DB" import "$T/good-copy.db" --label good
check "import of a valid database exits 0" rc_is 0
check "the import is listed" same "$(count_snaps --db "$DB")" $((N0 + 1))
sqlite3 "$T/good-copy.db" "DELETE FROM t WHERE id > 100"
GOOD_DUMP=$(sqlite3 "$T/good-copy.db" .dump | sha256sum)
sc --db "$DB" restore "$T/good-copy.db"
check "restore from a valid database file exits 0" rc_is 0
check "after it the live database holds that file's content" \
	same "$(sqlite3 "$DB" .dump | sha256sum)" "$GOOD_DUMP"
LIVE_SHA=$(sha "$DB")

# A copy with a hot journal: a transaction whose pages spilled into the
# file, copied with its journal, never committed.
python3 - "$T/hot-src.db" "$T/hot.db" <<'PY'
import os, shutil, sqlite3, sys
src, dst = sys.argv[1], sys.argv[2]
db = sqlite3.connect(src, isolation_level=None)
db.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
db.executemany("INSERT INTO t(v) VALUES(?)", [("a" * 300,)] * 500)
db.execute("PRAGMA cache_size=5")
db.execute("BEGIN")
db.executemany("INSERT INTO t(v) VALUES(?)", [("b" * 300,)] * 2000)
shutil.copyfile(src, dst)
shutil.copyfile(src + "-journal", dst + "-journal")
os._exit(0)
PY
require "the copy has a hot journal" test -s "$T/hot.db-journal"
HOT_SHA="$(sha "$T/hot.db") $(sha "$T/hot.db-journal")"
for cmd in import restore; do
	sc --db "$DB" $cmd "$T/hot.db"
	check "$cmd of a copy with a hot journal: exit 1" rc_is 1
	check "$cmd of a copy with a hot journal: says so" \
		err_has "interrupted transaction"
	check "$cmd of a copy with a hot journal: both files unchanged" \
		same "$(sha "$T/hot.db") $(sha "$T/hot.db-journal")" "$HOT_SHA"
done
check "the live database is unchanged" same "$(sha "$DB")" "$LIVE_SHA"

# create on a database that does not exist.
sc --db "$T/missing.db" create
check "create with a missing database: exit 1" rc_is 1
check "create with a missing database: a message naming it" \
	err_has "missing\.db"
check "create with a missing database: no database file appears" \
	test ! -e "$T/missing.db"

# list on a store directory that does not exist.
sc --db "$DB" --store "$T/no-such-store" list
check "list with a missing store directory: exit 1" rc_is 1
check "list with a missing store directory: a message" err_has "."
check "list does not create the store directory" \
	test ! -e "$T/no-such-store"

# Usage errors.
sc --db "$DB" frobnicate
check "an unknown command exits 2" rc_is 2
sc --db "$DB" import
check "import without a file exits 2" rc_is 2
sc --db "$DB" restore
check "restore without a name exits 2" rc_is 2

# Text others chose reaches the store: a file name copied into the
# mount's restore/ is in an event's detail, a row quoted by a conflict
# snapshot's comment.  With a terminal's escape sequences in it (ESC [,
# the 8-bit CSI U+009B, a bare byte that is not UTF-8), log, list and show
# print none of them (each control character is '?').
BAD=$'restore/\e]0;owned\a\e[2J\xc2\x9b31m\x9b-x\x7f.db'
sqlite3 "$DB.snapfs/store.db" "INSERT INTO events(time_ns, kind, snapshot, ok, detail) VALUES(1, 'restore', '', 0, CAST(x'$(printf '%s' "$BAD" | od -An -tx1 | tr -d ' \n')' AS TEXT));
UPDATE snapshots SET comment = (SELECT detail FROM events WHERE time_ns = 1)"
esc() { printf '%s' "$1" | grep -q -P '[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|(?<![\xc0-\xff])[\x80-\x9f]'; }
for cmd in log list "show latest"; do
	sc --db "$DB" $cmd
	check "$cmd: exit 0, the text shown" \
		eval 'rc_is 0 && out_has "restore/"'
	check "$cmd: no control character of the text reaches the terminal" \
		eval '! esc "$OUT"'
done

check "after all that the live database is unchanged" \
	same "$(sha "$DB")" "$LIVE_SHA"
sc --db "$DB" verify
check "the store verifies clean" rc_is 0
