#!/bin/bash
# dictionary_missing.sh — a page whose zstd dictionary the store lacks is
# reported as that, by every command that reads it.
#
# A database of about 15 MB: its first snapshot trains the store's zstd
# dictionary (engine/DESIGN.md §2, "Dictionary") and compresses the pages
# after the first 8 MB with it.  The dictionary's row is then deleted
# from store.db (as a store.db put back from a copy older than its pages,
# or edited by hand, would have it), and:
#   * `snapctl export` exits 1, leaves no file, and says the page's zstd
#     dictionary is missing or damaged (not a bare "cannot be decoded");
#   * `snapctl verify` exits 1 and says the same;
#   * `snapctl restore` exits 1, says the same, and leaves the live
#     database byte for byte as it was (last: its safety snapshot trains
#     the dictionary again, from the same pages).
. "$(dirname "$0")/../lib.sh"

DB=$T/live.db
make_db "$DB" 150000
sc --db "$DB" create --label big
require "create a first snapshot of 15 MB exits 0" rc_is 0
S1=$OUT
STOREDB=$DB.snapfs/store.db
require "the store trained a dictionary" \
	same "$(sqlite3 "$STOREDB" 'SELECT count(*) FROM dicts')" 1
sc --db "$DB" export "$S1" "$T/before.db"
require "before the dictionary is lost the snapshot exports" rc_is 0

sqlite3 "$STOREDB" 'DELETE FROM dicts'
WHY="zstd dictionary it was compressed with is missing or damaged"

sc --db "$DB" export "$S1" "$T/out.db"
check "export exits 1" rc_is 1
check "export says the page's dictionary is missing or damaged" err_has "$WHY"
check "export names the snapshot" err_has "${S1%.db}"
check "export leaves no file" test ! -e "$T/out.db"

sc --db "$DB" verify "$S1"
check "verify exits 1" rc_is 1
check "verify says the page's dictionary is missing or damaged" any_has "$WHY"

LIVE_SHA=$(sha "$DB")
sc --db "$DB" restore "$S1"
check "restore exits 1" rc_is 1
check "restore says the page's dictionary is missing or damaged" err_has "$WHY"
check "the live database is byte-for-byte unchanged" same "$(sha "$DB")" "$LIVE_SHA"
