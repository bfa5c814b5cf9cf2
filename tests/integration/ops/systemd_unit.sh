#!/bin/bash
# systemd_unit.sh — the example unit tools/snapfs.service passes
# `systemd-analyze verify` with the binary the build produced.
. "$(dirname "$0")/../lib.sh"

command -v systemd-analyze >/dev/null || { echo "# no systemd-analyze"; exit 77; }
UNIT=$T/snapfs.service
sed "s|/usr/local/bin/snapfs|$SNAPFS|" "$SRC/tools/snapfs.service" > "$UNIT"
check "the unit names the built snapfs" grep -q "$SNAPFS" "$UNIT"
# verify looks up the Documentation= man pages: give it the project's.
mkdir -p "$T/man/man1"
cp "$SRC/fs/snapfs.1" "$SRC/tools/snapctl.1" "$T/man/man1/"
export MANPATH="$T/man:"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify "$UNIT" 2>&1) && rc=0 || rc=$?
echo "$out" | sed 's/^/# /'
check "systemd-analyze verify exits 0" test "$rc" -eq 0
# verify reports some problems only as messages; none may concern the unit.
check "and says nothing about snapfs.service" \
	sh -c "! printf '%s' \"\$1\" | grep -q 'snapfs.service'" _ "$out"
