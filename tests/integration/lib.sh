# tests/integration/lib.sh — the one helper library of the bash integration
# tests (engine/*.sh and ops/*.sh source it; bash, set -eu).  The Python
# tests have its twin, snaptest.py, with the same check convention:
# check DESCRIPTION CONDITION.
#
# Gives each test a private directory $T, a check counter, a snapctl runner
# that records exit status and output, mounts (tmpfs or snapfs) that are
# always unmounted, and a trap that cleans up and turns the counts into the
# exit status: 0 pass, 77 skip, 1 fail.  Each check prints "ok N - ..." or
# "not ok N - ..." with the last snapctl run's status and output.

set -eu

if [ -z "${SNAPCTL:-}" ] || [ ! -x "${SNAPCTL:-}" ]; then
	echo "SKIP: \$SNAPCTL is not set to an executable snapctl (${SNAPCTL:-})"
	exit 77
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/snapfs-${0##*/}-XXXXXX")
MOUNTS=()
NCHECKS=0
NFAIL=0
RC=0
OUT=
ERR=
LAST=

# lib_unmount DIR — unmount DIR if it is a mount point: a FUSE mount with
# fusermount3 -u, then -uz, then umount -l; anything else (tmpfs) with
# umount, then umount -l.
lib_unmount() {
	local m=$1
	mountpoint -q "$m" 2>/dev/null || return 0
	case $(findmnt -n -o FSTYPE --mountpoint "$m" 2>/dev/null) in
	fuse*)
		fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" \
			2>/dev/null || umount -l "$m" ;;
	*)
		umount "$m" || umount -l "$m" ;;
	esac || echo "# could not unmount $m"
}

lib_cleanup() {
	local rc=$? m
	set +e
	# Children of this shell (none should be left) are ours: stop them.
	for m in $(jobs -p); do kill -TERM "$m" 2>/dev/null; wait "$m" 2>/dev/null; done
	for m in "${MOUNTS[@]+"${MOUNTS[@]}"}"; do
		lib_unmount "$m"
	done
	# A snapfs daemon started on this test's directory (ops tests mount
	# through mount(8), so it is no child of this shell) must not outlive it.
	pkill -f "snapfs.*$T" 2>/dev/null
	if [ -n "${SNAPFS_TEST_KEEP:-}" ]; then
		echo "# kept $T"
	else
		rm -rf "$T"
	fi
	if [ "$rc" -eq 77 ] && [ "$NFAIL" -eq 0 ]; then
		exit 77
	fi
	if [ "$NFAIL" -ne 0 ] || [ "$rc" -ne 0 ]; then
		echo "# ${0##*/}: $NCHECKS checks, $NFAIL failed, exit $rc -> FAIL"
		exit 1
	fi
	echo "# ${0##*/}: $NCHECKS checks -> PASS"
	exit 0
}
trap lib_cleanup EXIT
trap 'echo "# interrupted"; exit 1' INT TERM HUP

echo "# ${0##*/}: directory $T"

# Bound on one snapctl run, below meson's per-test timeout so the trap
# still runs (and unmounts) when snapctl hangs.
SC_TIMEOUT=${SC_TIMEOUT:-40}

# sc ARGS... — run snapctl (bounded by a timeout) and record RC, OUT, ERR.
# It runs in the background and is waited for, so a signal to this shell
# runs the trap at once instead of after the child.
sc() {
	set +e
	timeout "$SC_TIMEOUT" "$SNAPCTL" "$@" >"$T/.out" 2>"$T/.err" </dev/null &
	wait $!
	RC=$?
	set -e
	OUT=$(cat "$T/.out")
	ERR=$(cat "$T/.err")
	LAST="snapctl $*"
}

# check DESCRIPTION COMMAND... — run COMMAND as a test; report.
check() {
	local desc=$1
	shift
	NCHECKS=$((NCHECKS + 1))
	if "$@"; then
		echo "ok $NCHECKS - $desc"
		return 0
	fi
	NFAIL=$((NFAIL + 1))
	echo "not ok $NCHECKS - $desc"
	if [ -n "$LAST" ]; then
		echo "#   last: $LAST"
		echo "#   exit: $RC"
		printf '%s\n' "$OUT" | head -n 20 | sed 's/^/#   stdout: /'
		printf '%s\n' "$ERR" | head -n 20 | sed 's/^/#   stderr: /'
	fi
	return 0
}

# require DESCRIPTION COMMAND... — like check, but stop the test on failure.
require() {
	local before=$NFAIL
	check "$@"
	if [ "$NFAIL" -ne "$before" ]; then
		echo "# stopping: a check the rest depends on failed"
		exit 1
	fi
}

# Predicates for check.
rc_is() { [ "$RC" -eq "$1" ]; }
err_has() { printf '%s' "$ERR" | grep -qiE -- "$1"; }
err_lacks() { ! err_has "$1"; }
out_has() { printf '%s' "$OUT" | grep -qiE -- "$1"; }
any_has() { printf '%s\n%s' "$OUT" "$ERR" | grep -qiE -- "$1"; }
same() { [ "$1" = "$2" ]; }

# count_snaps [snapctl options] — number of listed snapshots (or -1).
count_snaps() {
	local n
	n=$(timeout "$SC_TIMEOUT" "$SNAPCTL" "$@" list --json </dev/null 2>/dev/null |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' \
		2>/dev/null) || n=-1
	printf '%s\n' "$n"
}

# snap_field NAME FIELD [snapctl options] — a field of a listed snapshot.
snap_field() {
	local name=$1 field=$2
	shift 2
	timeout "$SC_TIMEOUT" "$SNAPCTL" "$@" list --json </dev/null 2>/dev/null |
		python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["name"] == sys.argv[1]:
        print(s[sys.argv[2]])
' "$name" "$field"
}

# make_db PATH [ROWS] — a rollback-mode database with table t of ROWS
# (default 200) rows.
make_db() {
	sqlite3 -bail "$1" "
		CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
		WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
		                        WHERE x < ${2:-200})
		INSERT INTO t SELECT x, printf('row-%d-%s', x, hex(randomblob(40)))
		FROM c;"
}

# add_random PATH MEGABYTES — append incompressible rows to table r.
add_random() {
	sqlite3 -bail "$1" "
		CREATE TABLE IF NOT EXISTS r(id INTEGER PRIMARY KEY, b BLOB);
		WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c
		                        WHERE x < $2 * 1024)
		INSERT INTO r(b) SELECT randomblob(1000) FROM c;"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }
integrity() { sqlite3 -bail "$1" 'PRAGMA integrity_check' 2>&1; }

# mount_tmpfs DIR OPTIONS — mount a tmpfs, unmounted by the trap; skip the
# test (77) when this machine does not let us mount.
mount_tmpfs() {
	mkdir -p "$1"
	if ! mount -t tmpfs -o "$2" snapfs-test "$1" 2>"$T/.mount-err"; then
		echo "SKIP: cannot mount a tmpfs here: $(cat "$T/.mount-err")"
		exit 77
	fi
	MOUNTS+=("$1")
}
