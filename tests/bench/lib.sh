# tests/bench/lib.sh — shared helpers of bench_engine.sh, bench_mount.sh
# and bench_replica.sh.  Sourced, not run.  Expects HERE (this directory),
# WORK and PROG (the script's name for messages) to be set by the caller;
# sets ROOT and DATA, and BUILD, SNAPCTL and BENCH_SIZE where the
# environment does not.

ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
SNAPCTL=${SNAPCTL:-$BUILD/tools/snapctl}
DATA=$HERE/data
BENCH_SIZE=${BENCH_SIZE:-1G}

die() { echo "$PROG: $*" >&2; exit 1; }

# bench_args ARGS...: the options every script takes: --quick (QUICK=1,
# BENCH_SIZE=64M) and -h/--help (the script's header comment).
bench_args() {
	QUICK=0
	while [ $# -gt 0 ]; do
		case $1 in
		--quick) QUICK=1; BENCH_SIZE=64M ;;
		-h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
		*) echo "$PROG: unknown argument $1 (try --help)" >&2; exit 2 ;;
		esac
		shift
	done
}

# work_dir NAME: a fresh work directory $WORK (DATA/NAME.XXXXXX).
work_dir() {
	mkdir -p "$DATA"
	WORK=$(mktemp -d "$DATA/$1.XXXXXX")
}

# work_remove: at exit, remove $WORK (BENCH_KEEP=1 keeps it and says where).
work_remove() {
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}

# own_snapctl: one engine for the whole run: copy $SNAPCTL into $WORK/bin
# now (SNAPCTL then names the copy, SNAPCTL_BUILT its build time), so a
# rebuild of the shared build directory during a long run cannot mix two
# engine versions.
own_snapctl() {
	mkdir -p "$WORK/bin"
	SNAPCTL_BUILT=$(date -u -r "$SNAPCTL" +%Y-%m-%dT%H:%MZ)
	cp "$SNAPCTL" "$WORK/bin/snapctl"
	SNAPCTL=$WORK/bin/snapctl
}

# helper NAME: path of a C helper; from the meson build if there, else built
# by hand from the engine's static library into $DATA.
helper() {
	local name=$1 src
	case $name in
	bench_read_image) src=$HERE/read_image.c ;;
	bench_store_tool) src=$HERE/store_tool.c ;;
	*) die "unknown helper $name" ;;
	esac
	if [ -x "$BUILD/tests/bench/$name" ] && [ "$BUILD/tests/bench/$name" -nt "$src" ]; then
		echo "$BUILD/tests/bench/$name"
		return
	fi
	local lib=$BUILD/engine/libsnapengine.a
	[ -f "$lib" ] || die "no $lib: build the engine first"
	if [ ! -x "$DATA/$name" ] || [ "$src" -nt "$DATA/$name" ] || [ "$lib" -nt "$DATA/$name" ]; then
		${CC:-cc} -std=gnu11 -O2 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
			-I"$ROOT/engine" "$src" "$lib" -lsqlite3 -lzstd -lcrypto \
			-lpthread -o "$DATA/$name" >&2 || die "cannot build $name"
	fi
	echo "$DATA/$name"
}

# base_db SIZE: path of the cached generated database of that size
# (rollback-journal mode, seed 1), generated on first use.
base_db() {
	local f=$DATA/base-$1.db
	if [ ! -f "$f" ]; then
		echo "generating $f ..." >&2
		python3 "$HERE/gen_db.py" "$f.tmp" --size "$1" >&2
		mv "$f.tmp" "$f"
	fi
	echo "$f"
}

# live_copy: LIVE, a copy in $WORK of the cached database of BENCH_SIZE
# (BASE); DBSIZE its bytes, MB its MiB; says so.
live_copy() {
	BASE=$(base_db "$BENCH_SIZE")
	LIVE=$WORK/live.db
	cp "$BASE" "$LIVE"
	DBSIZE=$(stat -c %s "$LIVE")
	MB=$(awk -v s="$DBSIZE" 'BEGIN { printf "%.0f", s / 1048576 }')
	echo "database: $MB MiB ($((DBSIZE / 4096)) pages of 4 KiB), $LIVE"
}

# measure CMD...: run it; T = wall seconds, RSS = its peak RSS in KiB.
# stdout/stderr of the command land in $WORK/.out and $WORK/.err.
measure() {
	local t0 t1
	t0=$(date +%s%N)
	if ! /usr/bin/time -f %M -o "$WORK/.rss" "$@" >"$WORK/.out" 2>"$WORK/.err"; then
		echo "command failed: $*" >&2
		cat "$WORK/.out" "$WORK/.err" >&2
		exit 1
	fi
	t1=$(date +%s%N)
	T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
	RSS=$(tail -n 1 "$WORK/.rss")
}

# tmeasure CMD...: like measure, without /usr/bin/time (for shell builtins
# wrapped in bash -c, or where RSS is not wanted); sets T.
tmeasure() {
	local t0 t1
	t0=$(date +%s%N)
	if ! "$@" >"$WORK/.out" 2>"$WORK/.err"; then
		echo "command failed: $*" >&2
		cat "$WORK/.out" "$WORK/.err" >&2
		exit 1
	fi
	t1=$(date +%s%N)
	T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
}

warm() { cat "$@" >/dev/null; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
kib2mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# verdict VALUE OP LIMIT: "met" or "MISSED" (reported, never asserted)
verdict() {
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		ok = (op == "<=") ? (v <= l) : (v >= l)
		print ok ? "met" : "MISSED" }'
}

SUMMARY=()
# line WHAT OURS BASELINE VALUE OP LIMIT UNIT: print one result line and
# remember it for the summary.  BASELINE may be empty (absolute targets).
line() {
	local what=$1 ours=$2 base=$3 value=$4 op=$5 limit=$6 unit=$7 v
	v=$(verdict "$value" "$op" "$limit")
	if [ -n "$base" ]; then
		printf '%s: %s vs %s = %s%s (target %s %s%s) %s\n' \
			"$what" "$ours" "$base" "$value" "$unit" "$op" "$limit" "$unit" "$v"
	else
		printf '%s: %s (target %s %s%s) %s\n' \
			"$what" "$ours" "$op" "$limit" "$unit" "$v"
	fi
	SUMMARY+=("$(printf '%-60s %12s  %-11s %s' "$what" "$value$unit" "$op $limit$unit" "$v")")
}

summary() {
	echo
	echo "summary ($1, $(date -u +%Y-%m-%d), $(nproc) cores; ratios from this run, noisy on a shared machine)"
	printf '%-60s %12s  %-11s %s\n' "measurement" "value" "target" ""
	local s
	for s in "${SUMMARY[@]}"; do echo "$s"; done
}
