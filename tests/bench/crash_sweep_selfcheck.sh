#!/bin/bash
# tests/bench/crash_sweep_selfcheck.sh — the crash sweep can fail.
#
# Runs crash_sweep.py (restore and delete lanes, small databases) against a
# deliberately broken snapctl: `restore A` copies the snapshot's bytes over
# the live database (no safety snapshot, the writer's commits gone), and
# `delete` drops the newest committed row for two seconds before it puts it
# back and deletes (harmless run to the end, a lost commit when killed in
# between).  The sweep must exit 1, its last line must count corruption
# (K > 0) and lost commits (L > 0), and killed points must be reported.
# Exit 0 (pass), 77 (skip: no $SNAPCTL) or 1 (fail).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "${SNAPCTL:-}" ] || [ ! -x "$SNAPCTL" ]; then
	echo "SKIP: \$SNAPCTL is not set to an executable snapctl"
	exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/snapfs-sweep-selfcheck.XXXXXX")
trap 'rm -rf "$T"' EXIT

# The template is built with `restore p`; only snapshot A ("..._a") is
# restored the wrong way.
cat > "$T/snapctl" <<WRAP
#!/bin/bash
if [ "\$3" = restore ] && [ \$# -eq 4 ] && [[ "\$4" == *_a* ]]; then
	"$SNAPCTL" --db "\$2" export "\$4" "\$2.copy" >/dev/null &&
		cp "\$2.copy" "\$2" && rm -f "\$2.copy" "\$2-wal" "\$2-shm"
	exit
fi
if [ "\$3" = delete ]; then
	id=\$(sqlite3 -cmd ".timeout 20000" "\$2" "BEGIN IMMEDIATE;
		SELECT max(id) FROM app;
		DELETE FROM app WHERE id = (SELECT max(id) FROM app); COMMIT;")
	sleep 2
	sqlite3 -cmd ".timeout 20000" "\$2" "INSERT INTO app VALUES(\$id)"
fi
exec "$SNAPCTL" "\$@"
WRAP
chmod +x "$T/snapctl"

rc=0
SNAPCTL=$T/snapctl python3 "$HERE/crash_sweep.py" 8 --seed 1 --db-mb 2 \
	--ops restore,delete --modes delete --work "$T" >"$T/out" 2>&1 || rc=$?
sed 's/^/    | /' "$T/out"
last=$(tail -n 1 "$T/out")
fail=0
if [ "$rc" -ne 1 ]; then
	echo "not ok - the sweep exits 1 on a broken snapctl (got $rc)"; fail=1
else
	echo "ok - the sweep exits 1 on a broken snapctl"
fi
if [[ "$last" =~ ^[0-9]+\ points,\ ([0-9]+)\ corrupt,\ ([0-9]+)\ lost\ commits$ ]] &&
   [ "${BASH_REMATCH[1]}" -gt 0 ] && [ "${BASH_REMATCH[2]}" -gt 0 ]; then
	echo "ok - its last line counts corruption and lost commits: $last"
else
	echo "not ok - its last line counts corruption and lost commits: $last"; fail=1
fi
# The byte copy leaves A without a safety snapshot, or, when the writer
# wrote into the middle of it, a torn database.
grep -Eq "^FAIL restore/delete: .*(restored \(A\) without a safety snapshot|live integrity_check)" "$T/out" &&
	echo "ok - it names what the byte-copy restore did" ||
	{ echo "not ok - it names what the byte-copy restore did"; fail=1; }
grep -q "^FAIL point .* delete/delete .*killed in flight.*LOST 1 commits" "$T/out" &&
	echo "ok - it reports a killed point that lost a commit, with its delay" ||
	{ echo "not ok - it reports a killed point that lost a commit"; fail=1; }
exit $fail
