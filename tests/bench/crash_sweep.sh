#!/bin/bash
# tests/bench/crash_sweep.sh — SIGKILL at N points spread over snapshot,
# restore, edit session, prune and delete, on rollback and WAL databases;
# prints one line per failed point and, last, exactly
# `N points, K corrupt, L lost commits`.  Exit 0 only when K = L = 0 (and
# nothing else failed); 77 when the mount operations cannot run here.
#
#   tests/bench/crash_sweep.sh N [--seed S] [--db-mb MB] [--ops OP,...]
#                                [--modes delete,wal] [--keep] [-v]
#   tests/bench/crash_sweep.sh 1 --seed S --db-mb MB --op OP --mode M --delay D
#                                 # one point again, as a FAIL line prints it
#
# The operations, the kill moments and what counts as corrupt or lost are
# described at the top of crash_sweep.py (and in tests/bench/README.md).
# Needs root and /dev/fuse for the mount operations (the daemon is mounted
# for real); every mount is undone at exit.
#
# Environment:
#   BUILD           meson build directory (default <repo>/build)
#   SNAPCTL, SNAPFS the binaries (default $BUILD/tools/snapctl, $BUILD/fs/snapfs)
#
# Generated databases and the per-run work directory live in
# tests/bench/data/ (gitignored); the work directory is removed at exit
# unless --keep.  A run of the default 24 MB needs about 400 MB there.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SNAPCTL=${SNAPCTL:-$BUILD/tools/snapctl}
SNAPFS=${SNAPFS:-$BUILD/fs/snapfs}

case ${1:-} in
-h|--help|'') sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
	[ -n "${1:-}" ]; exit $? ;;
esac
[ -x "$SNAPCTL" ] || { echo "crash_sweep.sh: no snapctl at $SNAPCTL: build first (meson setup build && ninja -C build)" >&2; exit 2; }
for t in python3 sqlite3 cp; do
	command -v "$t" >/dev/null || { echo "crash_sweep.sh: $t is needed" >&2; exit 2; }
done

# One build for the whole run: a rebuild of the shared build directory
# during a long run cannot mix two versions.
mkdir -p "$HERE/data"
BIN=$(mktemp -d "$HERE/data/bin.XXXXXX")
trap 'rm -rf "$BIN"' EXIT
cp "$SNAPCTL" "$BIN/snapctl"
[ -x "$SNAPFS" ] && cp "$SNAPFS" "$BIN/snapfs"
echo "# crash_sweep.sh: snapctl $(date -u -r "$SNAPCTL" +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"

SNAPCTL=$BIN/snapctl SNAPFS=$BIN/snapfs PYTHONDONTWRITEBYTECODE=1 \
	python3 "$HERE/crash_sweep.py" --work "$HERE/data" "$@"
