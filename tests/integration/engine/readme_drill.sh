#!/bin/bash
# readme_drill.sh — the README's recovery drill, run as written.
#
# The commands are read from README.md's "Recovery drill" block (so the
# README and this test cannot drift apart), run in order on a database
# with a users table, with `snapctl` meaning the snapctl under test:
#   * every command exits 0 (a snapshot's label names it when one
#     snapshot carries that label: `create --label drill`, then
#     `restore drill`);
#   * the restore brings back the rows the accident deleted;
#   * the log records the restore.
# Then a label two snapshots carry is refused, naming the newest, and a
# full name still works.
. "$(dirname "$0")/../lib.sh"

out_has_text() { printf '%s' "$1" | grep -qF -- "$2"; }

README=$(dirname "$0")/../../../README.md
require "README.md is there" test -r "$README"
DRILL=$(awk '/^\*\*Recovery drill\.\*\*/ { on = 1; next }
	on && /^```$/ { if (block) exit; block = 1; next }
	block { print }' "$README")
require "the README has a recovery drill block of snapctl commands" \
	out_has_text "$DRILL" "snapctl --db app.db restore"

cd "$T"
sqlite3 -bail app.db "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
	INSERT INTO users(name) VALUES ('ada'), ('grace'), ('edsger');"
n=0
while IFS= read -r line; do
	cmd=${line%%#*}                         # the README's comments
	[ -n "${cmd// /}" ] || continue
	n=$((n + 1))
	set +e
	out=$(snapctl() { timeout "$SC_TIMEOUT" "$SNAPCTL" "$@"; }
	      eval "$cmd" 2>&1 </dev/null)
	rc=$?
	set -e
	OUT=$out ERR= LAST=$cmd RC=$rc
	check "drill step $n exits 0: $cmd" rc_is 0
	case $cmd in
	*" log "*) LOGTEXT=$out ;;
	esac
done <<<"$DRILL"
check "the drill ran its five commands" same "$n" 5
check "the restore brought the deleted rows back" \
	same "$(sqlite3 app.db 'SELECT group_concat(name) FROM users')" \
	"ada,grace,edsger"
OUT=${LOGTEXT:-} RC=0
check "the log's tail records the restore" out_has "restore"

# A label two snapshots carry names neither: refused, the newest named.
sc --db app.db create --label drill
NEWEST=$OUT
sc --db app.db restore drill
check "a label two snapshots carry: exit 1" rc_is 1
check "the message counts them and names the newest" \
	err_has "2 snapshots are labelled drill \(the newest is $NEWEST\)"
sc --db app.db restore "$NEWEST"
check "the full name still restores" rc_is 0
