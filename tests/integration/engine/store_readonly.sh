#!/bin/bash
# store_readonly.sh — a store on a read-only filesystem: snapctl fails with
# exit 1 and a clear message, and changes nothing.  (As root, permission
# bits do not bite, so the read-only-ness comes from the mount: a tiny
# tmpfs mounted read-only, or remounted read-only after use.)
#
#   * --store on an empty read-only tmpfs (the store cannot be created):
#     create exits 1, the message says read-only or names the store;
#   * a store made on a tmpfs that is then remounted read-only: create exits
#     1 with such a message, the live database is unchanged; after a
#     remount read-write the store still verifies and lists one snapshot.
. "$(dirname "$0")/../lib.sh"

DB=$T/live.db
make_db "$DB" 2000
LIVE_SHA=$(sha "$DB")
RO_MSG='read-only|readonly|EROFS'

# 1. An empty read-only filesystem.
mount_tmpfs "$T/ro" ro,size=1m
for store in "$T/ro" "$T/ro/store"; do
	sc --db "$DB" --store "$store" create
	check "create with --store $store (read-only fs): exit 1" rc_is 1
	check "create with --store $store: the message says read-only" \
		err_has "$RO_MSG"
done
check "the live database is unchanged" same "$(sha "$DB")" "$LIVE_SHA"

# 2. A store that becomes read-only.
mount_tmpfs "$T/rw" size=8m
STORE=$T/rw/store
sc --db "$DB" --store "$STORE" create --label before-ro
require "create into the tmpfs store exits 0" rc_is 0
mount -o remount,ro "$T/rw"
sqlite3 "$DB" "UPDATE t SET v = 'changed' WHERE id = 1"
LIVE_SHA=$(sha "$DB")
sc --db "$DB" --store "$STORE" create --label on-ro
check "create into a store remounted read-only: exit 1" rc_is 1
check "create into a read-only store: the message says read-only" \
	err_has "$RO_MSG"
check "the live database is unchanged" same "$(sha "$DB")" "$LIVE_SHA"
sc --db "$DB" --store "$STORE" list
echo "# (list on the read-only store: exit $RC, stderr: ${ERR:-none})"
check "list on a read-only store does not crash (exit 0 or 1)" \
	test "$RC" -le 1
mount -o remount,rw "$T/rw"
check "after remounting read-write one snapshot is listed" \
	same "$(count_snaps --db "$DB" --store "$STORE")" 1
sc --db "$DB" --store "$STORE" verify
check "after remounting read-write the store verifies clean" rc_is 0
