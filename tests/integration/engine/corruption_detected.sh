#!/bin/bash
# corruption_detected.sh — damage in the store is found and never restored.
#
# Two snapshots S1 and S2 of a database; S2 changed some rows, so the pages
# stored after S1 (page ids above S1's largest) belong to S2 alone, whatever
# the store counts references with.  One of them is damaged directly in
# store.db (one byte of its page_data blob flipped with the sqlite3 shell's
# writefile/readfile):
#   * `snapctl verify` exits 1 and names S2; `verify S2` exits 1;
#     `verify S1` (sharing every other page) exits 0; `verify --full` exits 1;
#   * `snapctl restore S2` exits 1, the live database file is byte-for-byte
#     unchanged and no snapshot is added;
#   * `snapctl export S2` does not produce a file that silently differs;
# Undoing the flip makes verify clean again (verify reads the store each
# time); deleting a page_data row (a missing page) is found the same way.
. "$(dirname "$0")/../lib.sh"

DB=$T/live.db
make_db "$DB" 3000
sc --db "$DB" create --label s1
require "create S1 exits 0" rc_is 0
S1=$OUT
STOREDB=$DB.snapfs/store.db
require "the store database is $STOREDB" test -f "$STOREDB"
MAX1=$(sqlite3 "$STOREDB" 'SELECT max(id) FROM pages')
sqlite3 "$DB" "UPDATE t SET v = 'changed-' || id WHERE id % 7 = 0"
sc --db "$DB" create --label s2
require "create S2 exits 0" rc_is 0
S2=$OUT
sc --db "$DB" verify
require "before any damage the store verifies clean" rc_is 0
N0=$(count_snaps --db "$DB")

VICTIM=$(sqlite3 "$STOREDB" \
	"SELECT id FROM pages WHERE id > $MAX1 ORDER BY id LIMIT 1 OFFSET 1")
require "a page stored for S2 alone exists" test -n "$VICTIM"
echo "# S1 = $S1, S2 = $S2, damaging page_data row $VICTIM"

# Flip one byte in the middle of the blob.
sqlite3 "$STOREDB" "SELECT writefile('$T/blob', zdata) FROM page_data WHERE id = $VICTIM" >/dev/null
cp "$T/blob" "$T/blob.orig"
LEN=$(stat -c %s "$T/blob")
OFF=$((LEN / 2))
BYTE=$(od -An -tu1 -j "$OFF" -N1 "$T/blob" | tr -d ' ')
printf "$(printf '\\%03o' $((BYTE ^ 0x5a)))" |
	dd of="$T/blob" bs=1 seek="$OFF" conv=notrunc status=none
require "the blob really changed" test "$(sha "$T/blob")" != "$(sha "$T/blob.orig")"
sqlite3 "$STOREDB" "UPDATE page_data SET zdata = readfile('$T/blob') WHERE id = $VICTIM"

sc --db "$DB" verify
check "verify exits 1" rc_is 1
check "verify names S2" any_has "${S2%.db}"
sc --db "$DB" verify "$S2"
check "verify S2 exits 1" rc_is 1
sc --db "$DB" verify "$S1"
check "verify S1 (every page intact) exits 0" rc_is 0
sc --db "$DB" verify --full
check "verify --full exits 1" rc_is 1

LIVE_SHA=$(sha "$DB")
sc --db "$DB" restore "$S2"
check "restore of the damaged snapshot exits 1" rc_is 1
check "restore says why" any_has "${S2%.db}|corrupt|verif|mismatch|damag"
check "the live database is byte-for-byte unchanged" \
	same "$(sha "$DB")" "$LIVE_SHA"
check "no journal left beside the live database" test ! -e "$DB-journal"
check "no snapshot was added (no safety snapshot for a refused restore)" \
	same "$(count_snaps --db "$DB")" "$N0"

S2_SHA=$(snap_field "$S2" sha256 --db "$DB")
sc --db "$DB" export "$S2" "$T/s2.db"
if [ "$RC" -eq 0 ] && [ -e "$T/s2.db" ]; then
	check "an export of the damaged snapshot is not silently different" \
		same "$(sha "$T/s2.db")" "$S2_SHA"
else
	check "export of the damaged snapshot fails with exit 1" rc_is 1
	check "and leaves no file" test ! -e "$T/s2.db"
fi

# Repair: verify reads the store afresh.
sqlite3 "$STOREDB" "UPDATE page_data SET zdata = readfile('$T/blob.orig') WHERE id = $VICTIM"
sc --db "$DB" verify
check "with the byte flipped back the store verifies clean" rc_is 0

# A missing page.
VICTIM2=$(sqlite3 "$STOREDB" \
	"SELECT id FROM pages WHERE id > $MAX1 ORDER BY id DESC LIMIT 1")
sqlite3 "$STOREDB" "DELETE FROM page_data WHERE id = $VICTIM2"
echo "# deleted page_data row $VICTIM2"
sc --db "$DB" verify
check "a missing page: verify exits 1" rc_is 1
check "a missing page: verify names S2" any_has "${S2%.db}"
sc --db "$DB" restore "$S2"
check "a missing page: restore exits 1" rc_is 1
check "a missing page: the live database is unchanged" \
	same "$(sha "$DB")" "$LIVE_SHA"
