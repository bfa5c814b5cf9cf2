#!/bin/bash
# The whole test suite, as the README's second quick-start command and CI
# run it: install dependencies, build with warnings as errors, run the unit
# tests, the integration tests (real databases, real mounts), the unit tests
# again under AddressSanitizer and UndefinedBehaviorSanitizer, and check that
# the engine and snapctl build and pass without FUSE, and run each fuzz
# target briefly (tools/fuzz.sh 10).  Ends with one line "N passed, N
# failed".
#
#   sudo tools/test.sh            everything
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

# Configure (fresh), build and test one build directory.
run() {
	local dir=$1; shift
	local suites=$1; shift
	echo "=== $dir: meson setup $*"
	rm -rf "$dir"
	if ! meson setup "$dir" -Dwerror=true "$@" >"$dir.setup.log" 2>&1; then
		cat "$dir.setup.log"; failed=$((failed + 1)); status=1; return
	fi
	if ! ninja -C "$dir"; then
		failed=$((failed + 1)); status=1; return
	fi
	local args=()
	for s in $suites; do args+=(--suite "$s"); done
	meson test -C "$dir" --print-errorlogs --num-processes 2 "${args[@]}" || status=1
	tally "$dir"
}

run "$top/build-test" "unit integration mount"
run "$top/build-asan" "unit" -Db_sanitize=address,undefined -Db_lundef=false
run "$top/build-nofuse" "unit" -Dfuse=disabled

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
