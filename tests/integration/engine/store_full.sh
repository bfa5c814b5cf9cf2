#!/bin/bash
# store_full.sh — a store whose filesystem fills up during a snapshot.
#
# The store lives on a 6 MB tmpfs.  A small snapshot fits; then the live
# database grows to ~12 MB of incompressible data and `snapctl create` must
# fail with exit 1 and a message about space, publish nothing, and leave
# the store intact: it still verifies, the earlier snapshot still exports
# byte-exact (sha256 as listed) and passes integrity_check.  Once the
# database is small again a new snapshot fits (the failed attempt left no
# space behind).
. "$(dirname "$0")/lib.sh"

DB=$T/live.db
make_db "$DB" 2000
add_random "$DB" 1
mount_tmpfs "$T/full" size=6m
STORE=$T/full/store

sc --db "$DB" --store "$STORE" create --label small
require "a small snapshot fits in the 6 MB store" rc_is 0
SMALL=$OUT
SMALL_SHA=$(snap_field "$SMALL" sha256 --db "$DB" --store "$STORE")
require "the small snapshot is listed with a sha256" test -n "$SMALL_SHA"

add_random "$DB" 12
echo "# live database now $(stat -c %s "$DB") bytes; store filesystem:" \
	"$(df -k --output=avail "$T/full" | tail -n 1) KiB free"
sc --db "$DB" --store "$STORE" create --label big
check "create of a database bigger than the store's filesystem: exit 1" \
	rc_is 1
check "the message mentions space" err_has 'space|full'
check "nothing is published (one snapshot listed)" \
	same "$(count_snaps --db "$DB" --store "$STORE")" 1

sc --db "$DB" --store "$STORE" verify
check "the store still verifies clean" rc_is 0
sc --db "$DB" --store "$STORE" export "$SMALL" "$T/small.db"
check "the earlier snapshot still exports" rc_is 0
check "the export's sha256 is the listed one" \
	same "$(sha "$T/small.db" 2>/dev/null)" "$SMALL_SHA"
check "the export passes integrity_check" \
	same "$(integrity "$T/small.db")" ok
check "the export has the earlier row count" \
	same "$(sqlite3 "$T/small.db" 'SELECT count(*) FROM r' 2>&1)" 1024

sqlite3 -bail "$DB" "DELETE FROM r WHERE id > 1024; VACUUM;"
sc --db "$DB" --store "$STORE" create --label small-again
check "once the database is small again a snapshot fits" rc_is 0
check "two snapshots are listed" \
	same "$(count_snaps --db "$DB" --store "$STORE")" 2
sc --db "$DB" --store "$STORE" verify
check "the store verifies clean at the end" rc_is 0
