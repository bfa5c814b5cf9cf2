#!/bin/bash
# Build the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan into build-fuzz/, and run each for SECONDS on a scratch copy of its
# seed corpus (tests/fuzz/corpus/<target>/; the committed seeds are never
# modified).  One line per target; exit 0 when every target ran clean, 1
# when any crashed, leaked, timed out or ran out of memory (the input that
# did it is kept in build-fuzz/findings/<target>/ and its path printed),
# 2 on a usage or build error.  Installs nothing (tools/install-deps.sh
# does: clang, libclang-rt-14-dev).
#
#   tools/fuzz.sh SECONDS [TARGET...]     e.g. tools/fuzz.sh 10
#
# Environment: FUZZ_BUILD (default build-fuzz), FUZZ_JOBS (targets run at
# once, default 1), FUZZ_KEEP_CORPUS=1 (merge what a run found new into
# build-fuzz/corpus/<target>/ and keep it for the next run).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

usage() {
	echo "usage: tools/fuzz.sh SECONDS [TARGET...]" >&2
	exit 2
}
[ $# -ge 1 ] || usage
secs=$1; shift
case "$secs" in ''|*[!0-9]*) usage ;; esac
[ "$secs" -gt 0 ] || usage

build=${FUZZ_BUILD:-$top/build-fuzz}
jobs=${FUZZ_JOBS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in tests/fuzz/fuzz_*.c; do
		t=${f##*/fuzz_}; targets+=("${t%.c}")
	done
fi

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang not found (sudo tools/install-deps.sh)" >&2
	exit 2
fi

# Configure once (a build directory of another kind is replaced), build.
configured() {
	[ -f "$build/build.ninja" ] && python3 - "$build" <<'PY' 2>/dev/null
import json, sys
o = {x["name"]: x["value"] for x in
     json.load(open(sys.argv[1] + "/meson-info/intro-buildoptions.json"))}
sys.exit(0 if o.get("fuzz") is True else 1)
PY
}
if ! configured; then
	rm -rf "$build"
	# UBSan findings abort (a crash libFuzzer keeps), never just print.
	if ! CC=clang meson setup "$build" -Dfuzz=true -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fno-sanitize-recover=all \
		-Dc_link_args=-fno-sanitize-recover=all \
		>"$build.setup.log" 2>&1; then
		cat "$build.setup.log" >&2
		exit 2
	fi
fi
if ! ninja -C "$build" >"$build.build.log" 2>&1; then
	cat "$build.build.log" >&2
	exit 2
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

# Scratch space on tmpfs when there is one: the targets write a file or a
# store per input.  A crashed target cannot clean up after itself; this
# trap does.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
	work=$(mktemp -d /dev/shm/snapfs-fuzz-run.XXXXXX)
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/snapfs-fuzz-run.XXXXXX")
fi
trap 'rm -rf "$work"' EXIT
export SNAPFS_FUZZ_DIR="$work"

# Run one target; its summary line goes to $work/<target>.line.
run_target() {
	local t=$1 exe="$build/tests/fuzz/fuzz_$1" corpus="$work/corpus-$1"
	local out="$build/findings/$1" log="$build/fuzz_$1.log" rc=0
	local line execs cov crash
	if [ ! -x "$exe" ]; then
		echo "FAIL $t: no executable $exe" >"$work/$t.line"
		return
	fi
	mkdir -p "$corpus" "$out"
	if [ -d "tests/fuzz/corpus/$t" ]; then
		cp -p tests/fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
	fi
	if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ] && [ -d "$build/corpus/$t" ]; then
		cp -p "$build/corpus/$t"/* "$corpus"/ 2>/dev/null || true
	fi
	# -timeout: one input; -rss_limit_mb also caps single allocations
	# (-malloc_limit_mb defaults to it): a size taken from a damaged
	# store must never become a multi-gigabyte malloc.  Database files
	# may be 64 KiB, the other inputs are short; a catalog input is a
	# list of edits, and that target runs few inputs a second: no slow
	# growth of the length there (-len_control=0).
	local maxlen=4096 extra=()
	case $t in
	import) maxlen=65536 ;;
	catalog) extra=(-len_control=0) ;;
	esac
	"$exe" "$corpus" -max_total_time="$secs" -timeout=25 \
		-rss_limit_mb=2048 -max_len="$maxlen" -print_final_stats=1 \
		"${extra[@]}" \
		-artifact_prefix="$out/" >"$log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
	if [ "$rc" -eq 0 ]; then
		line="ok   $t: ${execs:-?} runs in ${secs}s, coverage ${cov:-?}"
	else
		line="FAIL $t: exit $rc after ${execs:-?} runs"
		line="$line; input ${crash:-(none written)}; log $log"
		grep -m1 -E 'ERROR: |runtime error|fuzz invariant|Sanitizer' \
			"$log" | sed 's/^/     /' >>"$work/$t.detail" || true
	fi
	if [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ]; then
		mkdir -p "$build/corpus/$t"
		cp -p "$corpus"/* "$build/corpus/$t"/ 2>/dev/null || true
	fi
	echo "$line" >"$work/$t.line"
}

running=0
for t in "${targets[@]}"; do
	run_target "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done
wait

status=0
for t in "${targets[@]}"; do
	cat "$work/$t.line"
	[ -f "$work/$t.detail" ] && cat "$work/$t.detail"
	case $(cat "$work/$t.line") in ok*) ;; *) status=1 ;; esac
done
exit $status
