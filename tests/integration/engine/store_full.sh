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
#
# Then the store's filesystem filled up by something else: every command
# that only reads (list, show, export, verify, verify --full, status, log,
# diff) still works, with the store opened read-only; create fails with a
# sentence about space (not SQLite's "PRAGMA ...: disk I/O error"); a
# delete still works (the store's reserve is given back for it); once
# there is room again create works and the reserve is made again.
#
# Then the other side: the live database sits on a 6 MB tmpfs and a 12 MB
# snapshot is restored into it.  The restore must fail with exit 1 and a
# message about space, and the live database must be exactly as before
# (content, integrity_check, no journal left).
#
# Last, a delete that needs more room than the store's reserve on a full
# filesystem: exit 1, a sentence that says so and what to do, nothing
# deleted; with room again it works.
. "$(dirname "$0")/../lib.sh"

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
AGAIN=$OUT
check "the store keeps a reserve while it has room" \
	test -s "$STORE/reserve"
check "two snapshots are listed" \
	same "$(count_snaps --db "$DB" --store "$STORE")" 2
sc --db "$DB" --store "$STORE" verify
check "the store verifies clean at the end" rc_is 0

# The store's filesystem is full: reading still works.
dd if=/dev/zero of="$T/full/fill" bs=64k 2>/dev/null || true
dd if=/dev/zero of="$T/full/fill2" bs=1k 2>/dev/null || true
echo "# store filesystem filled: $(df -k --output=avail "$T/full" | tail -n 1)" \
	"KiB free"
for cmd in list "show $SMALL" verify "verify --full" status log \
	"diff $SMALL live"; do
	# shellcheck disable=SC2086
	sc --db "$DB" --store "$STORE" $cmd
	check "$cmd on a full store: exit 0" rc_is 0
	check "$cmd on a full store: no I/O error" \
		eval '! err_has "disk I/O error|PRAGMA"'
done
rm -f "$T/small-full.db"
sc --db "$DB" --store "$STORE" export "$SMALL" "$T/small-full.db"
check "export from a full store: exit 0" rc_is 0
check "that export's sha256 is the listed one" \
	same "$(sha "$T/small-full.db" 2>/dev/null)" "$SMALL_SHA"
sc --db "$DB" --store "$STORE" create --label on-full
check "create into a full store: exit 1" rc_is 1
check "the message says the store's filesystem is full and what is needed" \
	err_has 'full.*may need [0-9]+ MB'
check "and is not SQLite's garbled PRAGMA error" \
	eval '! err_has "PRAGMA|disk I/O error"'
# A full store can still delete a snapshot (the way to make room): it
# gives its reserve back to the filesystem for the change.
sc --db "$DB" --store "$STORE" delete "$AGAIN"
check "delete on a full store: exit 0" rc_is 0
check "one snapshot is left" \
	same "$(count_snaps --db "$DB" --store "$STORE")" 1
sc --db "$DB" --store "$STORE" log
check "the deletion is in the log" out_has "delete .*${AGAIN%.db}"
sc --db "$DB" --store "$STORE" verify
check "the store verifies clean after a delete on a full filesystem" rc_is 0
rm -f "$T/full/fill" "$T/full/fill2"
echo "# room again: $(df -k --output=avail "$T/full" | tail -n 1) KiB free;" \
	"store $(du -sk "$STORE" | cut -f1) KiB"
sc --db "$DB" --store "$STORE" create --label room-again
check "once there is room again, create works" rc_is 0
check "two snapshots are listed" \
	same "$(count_snaps --db "$DB" --store "$STORE")" 2
check "and the reserve is back" \
	test -s "$STORE/reserve"

# The live database's own filesystem fills up during a restore: the restore
# fails with a message about space and the live database is as it was.
mount_tmpfs "$T/livefs" size=6m
LDB=$T/livefs/live.db
make_db "$LDB" 2000
add_random "$LDB" 1
add_random "$T/big.db" 12
LSTORE=$T/live-store
sc --db "$LDB" --store "$LSTORE" import "$T/big.db" --label big
require "a 12 MB database imports into a store on a roomy disk" rc_is 0
BIG=$OUT
LDUMP=$(sqlite3 "$LDB" .dump | sha256sum)
sc --db "$LDB" --store "$LSTORE" restore "$BIG"
check "restore of 12 MB into a database on a 6 MB filesystem: exit 1" rc_is 1
check "the message mentions space" err_has 'space|full'
check "the message says the database is unchanged" err_has 'unchanged'
check "the message does not claim a failed rollback" err_lacks rollback
check "the message says how much space the restore needs" \
	err_has 'needs up to [0-9]+ MB free'
check "the live database's content is unchanged" \
	same "$(sqlite3 "$LDB" .dump | sha256sum)" "$LDUMP"
check "the live database passes integrity_check" same "$(integrity "$LDB")" ok
check "no journal is left beside it" test ! -e "$LDB-journal"
sc --db "$LDB" --store "$LSTORE" verify
check "that store verifies clean" rc_is 0

# A delete that needs more room than the reserve, on a full filesystem:
# snapshots that each rewrote a third of a 4 MB database of random bytes,
# so the oldest one alone holds pages spread over most of the store's
# pages.  It fails, says what happened and what to do (it said SQLite's
# "cannot update page references: database or disk is full"), and changes
# nothing; with room again it works.
mount_tmpfs "$T/full3" size=24m
DDB=$T/deletes.db
DSTORE=$T/full3/store
sqlite3 -bail "$DDB" "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
	WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
	                        WHERE x < 16000)
	INSERT INTO t(v) SELECT randomblob(200) FROM c;"
for i in 0 1 2; do
	sqlite3 -bail "$DDB" "UPDATE t SET v = randomblob(200) WHERE id % 3 = $i"
	sc --db "$DDB" --store "$DSTORE" create --label third$i
	require "snapshot third$i fits" rc_is 0
	[ "$i" = 0 ] && OLDEST=$OUT
done
dd if=/dev/zero of="$T/full3/fill" bs=64k 2>/dev/null || true
dd if=/dev/zero of="$T/full3/fill2" bs=1k 2>/dev/null || true
sc --db "$DDB" --store "$DSTORE" delete "$OLDEST"
check "a delete bigger than the reserve: exit 1" rc_is 1
check "it names the snapshot and says the filesystem is full" \
	err_has "cannot delete snapshot ${OLDEST%.db}.*full"
check "it says nothing was deleted and what to do" \
	err_has 'nothing was deleted: free space'
check "three snapshots are still listed" \
	same "$(count_snaps --db "$DDB" --store "$DSTORE")" 3
rm -f "$T/full3/fill" "$T/full3/fill2"
sc --db "$DDB" --store "$DSTORE" delete "$OLDEST"
check "with room again the delete works" rc_is 0
sc --db "$DDB" --store "$DSTORE" verify
check "that store verifies clean" rc_is 0
