#!/bin/bash
# The whole test suite, as the README's second quick-start command and CI
# run it: install dependencies, build with warnings as errors, run the unit
# tests, the integration tests (real databases, real mounts) and the mount
# tests, all of them but the crash tests again with the engine, snapctl and
# the daemon built with AddressSanitizer and UndefinedBehaviorSanitizer,
# check that the
# engine and snapctl build and pass without FUSE, and run each fuzz target
# briefly (tools/fuzz.sh 10).  Ends with one line "N passed, N
# failed".
#
#   tools/test.sh                 everything (as root)
#   SNAPFS_SKIP_DEPS=1 tools/test.sh   without apt-get (dependencies present)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

if [ "${SNAPFS_SKIP_DEPS:-0}" != 1 ]; then
	tools/install-deps.sh
fi

# Sanitizer findings fail the test that triggered them.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1:abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

passed=0
failed=0
skipped=0
status=0

# Add one meson test run's counts to the totals (from its testlog.json).
tally() {
	local log=$1/meson-logs/testlog.json p f s
	[ -f "$log" ] || return 0
	read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result")
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
	passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

# Configure (fresh) and build one directory; 0 or 1.  Output goes to
# DIR.build.log, printed when it fails.
build() {
	local dir=$1; shift
	echo "=== $dir: meson setup $*"
	rm -rf "$dir"
	if ! meson setup "$dir" -Dwerror=true "$@" >"$dir.build.log" 2>&1 ||
	   ! ninja -C "$dir" >>"$dir.build.log" 2>&1; then
		cat "$dir.build.log"
		return 1
	fi
}

# Run suites of a built directory, its output into DIR.test.log.
suites() {
	local dir=$1; shift
	local args=()
	for s in "$@"; do
		case $s in
		-*) args+=(--no-suite "${s#-}") ;;
		*) args+=(--suite "$s") ;;
		esac
	done
	meson test -C "$dir" --print-errorlogs --num-processes 2 "${args[@]}" \
		>"$dir.test.log" 2>&1
}

# The three builds: normal, sanitized (the daemon and snapctl too), and
# without FUSE.
dirs=("$top/build-test" "$top/build-asan" "$top/build-nofuse")
built=()
build "${dirs[0]}" && built+=(0) || { failed=$((failed + 1)); status=1; }
build "${dirs[1]}" -Db_sanitize=address,undefined -Db_lundef=false &&
	built+=(1) || { failed=$((failed + 1)); status=1; }
build "${dirs[2]}" -Dfuse=disabled && built+=(2) ||
	{ failed=$((failed + 1)); status=1; }

# The normal and the sanitized build run every suite side by side (the
# sanitized one without the "crash" tests, which kill processes to test
# what survives and take a third of the time under ASan; each
# test mounts in a private directory; the two runs share nothing but the
# two cores, and most of a test's time is spent waiting on processes), then
# the build without FUSE its unit tests.
pids=()
for i in "${built[@]}"; do
	case $i in
	0) suites "${dirs[$i]}" unit integration mount & pids+=($!) ;;
	1) suites "${dirs[$i]}" unit integration mount -crash & pids+=($!) ;;
	esac
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
for i in "${built[@]}"; do
	[ "$i" = 2 ] && { suites "${dirs[2]}" unit || status=1; }
	echo "=== ${dirs[$i]}: meson test"
	cat "${dirs[$i]}.test.log"
	tally "${dirs[$i]}"
done

# The fuzz targets, 10 seconds each from their seeds (clang, ASan, UBSan):
# one entry in the totals.  README's "Fuzzing" records a long run.
echo "=== fuzz: tools/fuzz.sh 10"
if tools/fuzz.sh 10; then
	passed=$((passed + 1))
else
	failed=$((failed + 1)); status=1
fi

# A test must never leave a mount behind.
left=$(awk '$3 ~ /^fuse/ {print $2}' /proc/mounts | grep -v '^/dev' || true)
if [ -n "$left" ]; then
	echo "FAIL: mounts left behind: $left"
	failed=$((failed + 1)); status=1
fi

echo
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit $status
