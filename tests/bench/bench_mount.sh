#!/bin/bash
# tests/bench/bench_mount.sh — the mount's performance targets (issues 3, 8
# and 9),
# each printed as a ratio against what a user would do without snapfs,
# measured in this run on the same data.  A benchmark, not a test: it never
# fails on a time.  It skips (exit 0, with a message) when the daemon
# build/fs/snapfs is not built or FUSE is not usable here.
#
#   tests/bench/bench_mount.sh            # 1 GB database (BENCH_SIZE=1G)
#   tests/bench/bench_mount.sh --quick    # 64 MB database (BENCH_SIZE=64M)
#
# Environment:
#   BENCH_SIZE      size of the big database (default 1G; --quick sets 64M)
#   BENCH_SNAPS     snapshots in the listing/memory test (default 10000)
#   BUILD           meson build directory (default <repo>/build)
#   SNAPFS, SNAPCTL the binaries (default $BUILD/fs/snapfs, $BUILD/tools/snapctl)
#   BENCH_KEEP=1    keep the work directory
#
# The store of BENCH_SNAPS snapshots takes minutes to build; it is cached in
# tests/bench/data/mount<N>/ (gitignored) and reused while it still opens.
# Every mount is unmounted at exit, also on failure or Ctrl-C
# (fusermount3 -u, then -uz, then the daemon is killed).
set -eu

PROG=bench_mount.sh
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SNAPFS=${SNAPFS:-$BUILD/fs/snapfs}
SNAPCTL=${SNAPCTL:-$BUILD/tools/snapctl}
DATA=$HERE/data
BENCH_SIZE=${BENCH_SIZE:-1G}
BENCH_SNAPS=${BENCH_SNAPS:-10000}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) BENCH_SIZE=64M ;;
	-h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "$PROG: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

skip() { echo "$PROG: skipped: $*"; exit 0; }
[ -x "$SNAPFS" ] || skip "the daemon is not built ($SNAPFS does not exist); build it with ninja -C build once fs/ is in, then run again"
[ -c /dev/fuse ] || skip "no /dev/fuse on this machine"
command -v fusermount3 >/dev/null || skip "fusermount3 is not installed (apt-get install fuse3)"
command -v mountpoint >/dev/null || skip "mountpoint (util-linux) is not installed"

WORK= # set below; lib.sh's helpers use it
# shellcheck source=lib.sh
. "$HERE/lib.sh"
[ -x "$SNAPCTL" ] || die "no snapctl at $SNAPCTL: build first"
for t in sqlite3 python3 awk; do command -v $t >/dev/null || die "$t is needed"; done
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install -y time)"

mkdir -p "$DATA"
WORK=$(mktemp -d "$DATA/mount.XXXXXX")

# One build for the whole run: copy the binaries now, so a rebuild of the
# shared build directory during a long run cannot mix two versions.
mkdir -p "$WORK/bin"
SNAPFS_BUILT=$(date -u -r "$SNAPFS" +%Y-%m-%dT%H:%MZ)
cp "$SNAPFS" "$WORK/bin/snapfs"; SNAPFS=$WORK/bin/snapfs
cp "$SNAPCTL" "$WORK/bin/snapctl"; SNAPCTL=$WORK/bin/snapctl

# ---- mounting --------------------------------------------------------------

MOUNTS=()     # mount points we mounted
DPIDS=()      # their daemons, same order
DPID=         # the daemon of the current mount

unmount_one() { # MNT PID
	local mnt=$1 pid=$2 i
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
	fi
	if [ -n "$pid" ]; then
		for i in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "$PROG: daemon $pid did not exit after unmount; killing it" >&2
			kill "$pid" 2>/dev/null || true
			sleep 1
			kill -9 "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -uz "$mnt" 2>/dev/null || true
	fi
}

cleanup() {
	local i
	for i in "${!MOUNTS[@]}"; do
		unmount_one "${MOUNTS[$i]}" "${DPIDS[$i]}"
	done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mount_db DB MNT: start the daemon in the foreground (so we know its pid),
# in the background of this script; wait until the mount answers.
mount_db() {
	local db=$1 mnt=$2 i log
	mkdir -p "$mnt"
	log=$WORK/daemon.$(basename "$mnt").log
	"$SNAPFS" -f "$db" "$mnt" >"$log" 2>&1 &
	DPID=$!
	MOUNTS+=("$mnt"); DPIDS+=("$DPID")
	for i in $(seq 300); do
		if mountpoint -q "$mnt" && [ -e "$mnt/current.db" ]; then
			return 0
		fi
		kill -0 "$DPID" 2>/dev/null || { cat "$log" >&2; die "snapfs exited while mounting $db on $mnt"; }
		sleep 0.1
	done
	cat "$log" >&2
	die "snapfs did not mount $db on $mnt within 30 s"
}

umount_db() { # MNT
	local i
	for i in "${!MOUNTS[@]}"; do
		if [ "${MOUNTS[$i]}" = "$1" ]; then
			unmount_one "${MOUNTS[$i]}" "${DPIDS[$i]}"
			unset 'MOUNTS[$i]' 'DPIDS[$i]'
		fi
	done
}

hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

echo "snapfs mount benchmarks: BENCH_SIZE=$BENCH_SIZE, BENCH_SNAPS=$BENCH_SNAPS, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo "snapfs: $("$SNAPFS" -V 2>&1 | head -n 1), built $SNAPFS_BUILT, commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- engine fs 2>/dev/null || echo ' + uncommitted engine/fs changes'); sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
echo

cp "$(helper bench_store_tool)" "$WORK/bin/"; STORE_TOOL=$WORK/bin/bench_store_tool

# ---- ls -l of snapshots/ with BENCH_SNAPS snapshots; daemon memory ---------

CACHE=$DATA/mount$BENCH_SNAPS
CDB=$CACHE/app.db
have=0
if [ -f "$CDB" ]; then
	have=$("$SNAPCTL" --db "$CDB" list --json 2>/dev/null |
		python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0)
fi
if [ "$have" != "$BENCH_SNAPS" ]; then
	echo "building a store of $BENCH_SNAPS snapshots in $CACHE (cached for later runs) ..."
	rm -rf "$CACHE"; mkdir -p "$CACHE"
	cp "$(base_db 2M)" "$CDB"
	"$STORE_TOOL" fill --db "$CDB" "$BENCH_SNAPS" | sed 's/^/  /'
fi

# Native baseline: ls -l of a plain directory of as many files.
NATIVE=$WORK/native
mkdir -p "$NATIVE"
(cd "$NATIVE" && seq -f 'snap%05.0f.db' "$BENCH_SNAPS" | xargs touch)
ls -l "$NATIVE" >/dev/null
tmeasure ls -l "$NATIVE"; T_NATIVE=$T

MNT=$WORK/mnt-list
warm "$CACHE/app.db.snapfs/store.db"
mount_db "$CDB" "$MNT"
tmeasure ls -l "$MNT/snapshots"; T_LS1=$T
NLS=$(($(wc -l <"$WORK/.out") - 1))
ts=()
for i in 1 2 3; do tmeasure ls -l "$MNT/snapshots"; ts+=("$T"); done
T_LS2=$(printf '%s\n' "${ts[@]}" | median)
line "ls -l snapshots/ ($NLS entries), first" "${T_LS1}s ($(ratio "$T_LS1" "$T_NATIVE")x native ls -l ${T_NATIVE}s)" "" "$T_LS1" "<=" 1.0 " s"
line "ls -l snapshots/ ($NLS entries), repeated" "${T_LS2}s ($(ratio "$T_LS2" "$T_NATIVE")x native, median of 3)" "" "$T_LS2" "<=" 0.2 " s"
HWM_LIST=$(hwm_kib "$DPID")
line "daemon peak RSS, $NLS snapshots" "VmHWM $(kib2mb "$HWM_LIST") MB" "" "$(kib2mb "$HWM_LIST")" "<=" 128 " MB"
umount_db "$MNT"

# ---- the big database -----------------------------------------------------

echo
LIVE=$WORK/live.db
cp "$(base_db "$BENCH_SIZE")" "$LIVE"
DBSIZE=$(stat -c %s "$LIVE")
echo "database: $(mib "$DBSIZE") MiB, $LIVE"
"$SNAPCTL" --db "$LIVE" create --label first >/dev/null
FIRST=$("$SNAPCTL" --db "$LIVE" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["name"])')
PLAIN=$WORK/plain.db
"$SNAPCTL" --db "$LIVE" export "$FIRST" "$PLAIN" >/dev/null
MNT=$WORK/mnt
warm "$LIVE" "$PLAIN" "$LIVE.snapfs/store.db"
mount_db "$LIVE" "$MNT"
[ -f "$MNT/snapshots/$FIRST" ] || die "$FIRST is not listed in $MNT/snapshots"

# 1. cp of a snapshot out of the mount vs cp of the same image as a plain file
cp "$PLAIN" "$WORK/out.db"; rm -f "$WORK/out.db"
measure cp "$PLAIN" "$WORK/out.db"; T_CPPLAIN=$T
rm -f "$WORK/out.db"
measure cp "$MNT/snapshots/$FIRST" "$WORK/out.db"; T_CPSNAP1=$T
cmp -s "$PLAIN" "$WORK/out.db" || die "cp of $FIRST out of the mount differs from its exported image"
rm -f "$WORK/out.db"
measure cp "$MNT/snapshots/$FIRST" "$WORK/out.db"; T_CPSNAP2=$T
rm -f "$WORK/out.db"
line "cp snapshot ${BENCH_SIZE}B out of mount, first" "${T_CPSNAP1}s" "cp plain file ${T_CPPLAIN}s" \
	"$(ratio "$T_CPSNAP1" "$T_CPPLAIN")" "<=" 2 x
line "cp snapshot ${BENCH_SIZE}B out of mount, again" "${T_CPSNAP2}s" "cp plain file ${T_CPPLAIN}s" \
	"$(ratio "$T_CPSNAP2" "$T_CPPLAIN")" "<=" 1.2 x

# 2. cp of current.db vs cp of the real file: db changed since the last
# snapshot, then unchanged (right after a snapshot)
python3 "$HERE/gen_db.py" "$LIVE" --mutate 1 --seed 4 --no-count | sed 's/^/  /'
warm "$LIVE"
# A file manager's peek first (issue 8): no image exists for the changed
# database; reading the first 4096 bytes must not copy it.
head -c 4096 "$LIVE" >/dev/null
tmeasure head -c 4096 "$MNT/current.db"; T_HEAD=$T
line "head -c 4096 current.db ${BENCH_SIZE}B, changed" "${T_HEAD}s" "" "$T_HEAD" "<=" 0.05 " s"
cp "$LIVE" "$WORK/out.db"; rm -f "$WORK/out.db"
measure cp "$LIVE" "$WORK/out.db"; T_CPREAL=$T
rm -f "$WORK/out.db"
measure cp "$MNT/current.db" "$WORK/out.db"; T_CPCUR_CHANGED=$T
rm -f "$WORK/out.db"
touch "$MNT/snapshots/after-change"
measure cp "$MNT/current.db" "$WORK/out.db"; T_CPCUR_SAME=$T
rm -f "$WORK/out.db"
line "cp current.db ${BENCH_SIZE}B, changed since snapshot" "${T_CPCUR_CHANGED}s" "cp real file ${T_CPREAL}s" \
	"$(ratio "$T_CPCUR_CHANGED" "$T_CPREAL")" "<=" 3 x
line "cp current.db ${BENCH_SIZE}B, unchanged, image built" "${T_CPCUR_SAME}s" "cp real file ${T_CPREAL}s" \
	"$(ratio "$T_CPCUR_SAME" "$T_CPREAL")" "<=" 1.5 x
# The same state never copied yet: changed, then a snapshot, then the
# first cp (issue 9: it reads the snapshot's image, fs/livereuse.c).
python3 "$HERE/gen_db.py" "$LIVE" --mutate 1 --seed 5 --no-count | sed 's/^/  /'
warm "$LIVE"
touch "$MNT/snapshots/after-change-2"
R0=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mount"]["current_reads"].get("snapshots_reused", "-"))' "$MNT/.snapfs/status.json")
measure cp "$MNT/current.db" "$WORK/out.db"; T_CPCUR_SNAP=$T
R1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["mount"]["current_reads"].get("snapshots_reused", "-"))' "$MNT/.snapfs/status.json")
rm -f "$WORK/out.db"
echo "  note: status.json current_reads.snapshots_reused $R0 -> $R1 (- : not counted by this daemon)"
line "cp current.db ${BENCH_SIZE}B, db unchanged since the last snapshot" \
	"${T_CPCUR_SNAP}s" "cp real file ${T_CPREAL}s" \
	"$(ratio "$T_CPCUR_SNAP" "$T_CPREAL")" "<=" 1.5 x

# 3. sqlite3 -readonly in the mount: 100,000 point selects vs a plain copy
python3 - "$WORK/q.sql" "$LIVE" <<'EOF'
import random, sqlite3, sys
out, db = sys.argv[1], sys.argv[2]
n = sqlite3.connect(db).execute("SELECT max(id) FROM users").fetchone()[0]
rng = random.Random(7)
with open(out, "w") as f:
    for _ in range(100000):
        f.write("SELECT name, email FROM users WHERE id = %d;\n" % rng.randint(1, n))
EOF
sqlite3 -readonly "$PLAIN" <"$WORK/q.sql" >/dev/null
tmeasure sh -c 'sqlite3 -readonly "$1" <"$2"' sh "$PLAIN" "$WORK/q.sql"; T_SEL_PLAIN=$T
sqlite3 -readonly "$MNT/snapshots/$FIRST" <"$WORK/q.sql" >/dev/null
tmeasure sh -c 'sqlite3 -readonly "$1" <"$2"' sh "$MNT/snapshots/$FIRST" "$WORK/q.sql"; T_SEL_MNT=$T
line "100,000 point selects, snapshot in mount" "${T_SEL_MNT}s" "plain copy ${T_SEL_PLAIN}s" \
	"$(ratio "$T_SEL_MNT" "$T_SEL_PLAIN")" "<=" 1.5 x

# 4. mv restore vs sqlite3 .restore (same image onto the same state)
LIVE2=$WORK/live2.db
cp "$LIVE" "$LIVE2"
sqlite3 "$LIVE2" ".restore '$PLAIN'"
cp "$LIVE" "$LIVE2"; warm "$LIVE2" "$PLAIN"
measure sqlite3 "$LIVE2" ".restore '$PLAIN'"; T_DOTRESTORE=$T
rm -f "$LIVE2"
warm "$LIVE"
tmeasure mv "$MNT/snapshots/$FIRST" "$MNT/current.db"; T_MV=$T
[ -f "$MNT/snapshots/$FIRST" ] || echo "  note: $FIRST is no longer listed after the restore"
line "mv restore ${BENCH_SIZE}B (verification included)" "${T_MV}s" ".restore ${T_DOTRESTORE}s" \
	"$(ratio "$T_MV" "$T_DOTRESTORE")" "<=" 2 x

# 5. daemon memory after all of the above on the big database
HWM_BIG=$(hwm_kib "$DPID")
line "daemon peak RSS, ${BENCH_SIZE}B database" "VmHWM $(kib2mb "$HWM_BIG") MB" "" "$(kib2mb "$HWM_BIG")" "<=" 128 " MB"
umount_db "$MNT"

summary "BENCH_SIZE=$BENCH_SIZE, BENCH_SNAPS=$BENCH_SNAPS"
