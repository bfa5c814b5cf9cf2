# tests/bench/lib.sh — shared helpers of bench_engine.sh and bench_mount.sh.
# Sourced, not run.  Expects HERE (this directory), ROOT, BUILD, DATA, WORK
# and PROG (the script's name for messages) to be set by the caller.

die() { echo "$PROG: $*" >&2; exit 1; }

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
	SUMMARY+=("$(printf '%-46s %12s  %-11s %s' "$what" "$value$unit" "$op $limit$unit" "$v")")
}

summary() {
	echo
	echo "summary ($1, $(date -u +%Y-%m-%d), $(nproc) cores; ratios from this run, noisy on a shared machine)"
	printf '%-46s %12s  %-11s %s\n' "measurement" "value" "target" ""
	local s
	for s in "${SUMMARY[@]}"; do echo "$s"; done
}
