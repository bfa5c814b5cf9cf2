#!/bin/bash
# tests/integration/engine/snapctl_C_status_file.sh — how "snapctl -C DIR"
# reads DIR/.snapfs/status.json, without FUSE: the file is written by hand
# into a plain directory, in the shapes a daemon may write (the field names
# "database", or "db" as daemons before issue 10 wrote it; escapes; nested
# objects with the same names, which must not count; the schedule fields,
# of which snapctl reads the integer next_snapshot_ns, not the ISO string),
# and broken ones that must be
# refused with exit 1 and a sentence rather than guessed at.
# (snapctl_mount_C.py does the same against a real mount.)
. "$(dirname "$0")/../lib.sh"

# A database and store whose paths need escaping in JSON: a quote, a
# backslash, a slash and a non-ASCII letter.
D="$T/we\"ird\\dir é"
mkdir -p "$D"
DB=$D/app.db
make_db "$DB" 20
sc --db "$DB" create --label first
require "create a snapshot" rc_is 0
SNAP=$OUT

# The JSON string for $1 (python does the escaping: \u00e9 and \/ too).
jstr() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]).replace("/", "\\/"))' "$1"; }

# status_file DIR TEXT — DIR/.snapfs/status.json holding TEXT.
status_file() {
	mkdir -p "$1/.snapfs"
	printf '%s\n' "$2" >"$1/.snapfs/status.json"
}

M=$T/m1
status_file "$M" "{\"mount\": {\"db\": \"/decoy\", \"store\": \"/decoy\"},
  \"version\": \"0.1.0\", \"list\": [1, {\"a\": \"}\"}, null, true, -1.5e3],
  \"db\": $(jstr "$DB"), \"store\": $(jstr "$DB.snapfs"),
  \"next_snapshot\": \"2030-01-02T03:04:05.678Z\",
  \"next_snapshot_ns\": 1893553445678000000, \"interval_seconds\": 900}"
sc -C "$M" list --json
check "-C reads escaped paths and skips nested objects and arrays" \
	eval 'rc_is 0 && out_has "$SNAP"'
sc -C "$M" status
check "-C status shows the next scheduled snapshot from the file" \
	eval 'rc_is 0 && out_has "^next snapshot: +2030-01-02T03:04:05Z \(every 15m\)$"'
sc -C "$M" status --json
check "-C status --json carries next_snapshot and interval_seconds" \
	eval 'rc_is 0 && out_has "\"next_snapshot\":\"2030-01-02T03:04:05.678Z\"" && out_has "\"interval_seconds\":900"'

M=$T/m2
status_file "$M" "{\"database\": $(jstr "$DB"), \"store\": $(jstr "$DB.snapfs"), \"next_snapshot\": null}"
sc -C "$M" list
check "-C reads the field name \"database\" too" eval 'rc_is 0 && out_has "$SNAP"'
sc -C "$M" status
check "no schedule in the file: no next-snapshot line" \
	eval 'rc_is 0 && ! out_has "^next snapshot"'

M=$T/m3
status_file "$M" "{\"db\": $(jstr "$DB"), \"store\": "
sc -C "$M" list
check "a truncated status file: exit 1, not a snapfs status file" \
	eval 'rc_is 1 && err_has "not a snapfs status file"'

M=$T/m4
status_file "$M" "{\"mount\": {\"db\": $(jstr "$DB"), \"store\": $(jstr "$DB.snapfs")}}"
sc -C "$M" list
check "paths only inside a nested object do not count: exit 1" \
	eval 'rc_is 1 && err_has "does not name the database"'

M=$T/m5
status_file "$M" "[\"db\", \"store\"]"
sc -C "$M" list
check "a status file that is not an object: exit 1" rc_is 1

M=$T/m6
mkdir -p "$M"
sc -C "$M" list
check "no .snapfs/status.json: exit 1, not a snapfs mount" \
	eval 'rc_is 1 && err_has "not a snapfs mount" && err_has "^snapctl: "'
sc -C "$DB" list
check "-C on a file: exit 1" eval 'rc_is 1 && err_has "not a directory"'
sc -C
check "-C without its argument: usage error" rc_is 2

# A status file another user could have written names the database and
# store snapctl works on (root's prune or restore on another database):
# refused, exit 1, naming the owner, and nothing is done.  As root: a
# directory, .snapfs or status.json of uid 65534, or one others may write;
# a .snapfs that is a symbolic link.
GOOD="{\"database\": $(jstr "$DB"), \"store\": $(jstr "$DB.snapfs")}"
N0=$(sqlite3 "$DB.snapfs/store.db" "SELECT count(*) FROM snapshots")
untrusted() {  # untrusted DIR WHAT
	sc -C "$1" create --label planted
	check "-C on $2: exit 1, refused, naming the owner" \
		eval 'rc_is 1 && err_has "another user could have written it"'
}
if [ "$(id -u)" = 0 ]; then
	M=$T/u1; status_file "$M" "$GOOD"; chown 65534 "$M"
	untrusted "$M" "a directory of another user"
	M=$T/u2; status_file "$M" "$GOOD"; chown 65534 "$M/.snapfs"
	untrusted "$M" "a .snapfs of another user"
	M=$T/u3; status_file "$M" "$GOOD"; chown 65534 "$M/.snapfs/status.json"
	untrusted "$M" "a status.json of another user"
fi
M=$T/u4; status_file "$M" "$GOOD"; chmod 0777 "$M"
untrusted "$M" "a directory others may write"
M=$T/u5; status_file "$M" "$GOOD"; chmod 0666 "$M/.snapfs/status.json"
untrusted "$M" "a status.json others may write"
M=$T/u6; mkdir -p "$M"; ln -s "$T/m2/.snapfs" "$M/.snapfs"
sc -C "$M" create --label planted
check "-C with .snapfs a symbolic link: exit 1" rc_is 1
check "no snapshot was taken through any of them" \
	eval '[ "$(sqlite3 "$DB.snapfs/store.db" "SELECT count(*) FROM snapshots")" = "$N0" ]'
