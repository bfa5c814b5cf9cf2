# lib.sh — shared by the ops tests: a private directory removed at exit,
# TAP-style checks, and a mount cleanup that never leaves a mount behind.
set -eu
T=$(mktemp -d /tmp/snapfs-ops-XXXXXX)
FAILED=0
N=0
MOUNTS=()

cleanup() {
	local m
	for m in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do
		if mountpoint -q "$m" 2>/dev/null; then
			fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" \
				2>/dev/null || umount -l "$m" 2>/dev/null || true
		fi
	done
	pkill -f "snapfs.*$T" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT

check() {
	local what=$1
	shift
	N=$((N + 1))
	if "$@"; then
		echo "ok $N - $what"
	else
		echo "not ok $N - $what"
		FAILED=$((FAILED + 1))
	fi
}

finish() {
	echo "# $(basename "$0"): $N checks, $FAILED failed"
	[ "$FAILED" -eq 0 ]
}

make_db() {
	sqlite3 "$1" "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
		WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n
		WHERE i<200) INSERT INTO t SELECT i, 'row ' || i FROM n;"
}
