#!/bin/bash
# The README's first quick-start command: install, build, make a sample
# database, show snapctl taking and restoring a snapshot, then mount it so
# you can try snapfs with ls, cp, mv and sqlite3.
#
#   tools/quickstart.sh [DEMO_DIR]      (as root; default /tmp/snapfs-demo)
#
# It leaves the mount running; the last lines say how to unmount.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
demo=${1:-/tmp/snapfs-demo}

if [ "${SNAPFS_SKIP_DEPS:-0}" != 1 ]; then
	tools/install-deps.sh
fi
[ -f build/build.ninja ] || meson setup build
ninja -C build
snapctl=$top/build/tools/snapctl
snapfs=$top/build/fs/snapfs

# A fresh demo directory; unmount a previous demo first.
if mountpoint -q "$demo/mnt" 2>/dev/null; then
	fusermount3 -u "$demo/mnt" || fusermount3 -uz "$demo/mnt"
fi
rm -rf "$demo"
mkdir -p "$demo/mnt"
db=$demo/app.db

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
show() { say "$*"; "$@"; }

sqlite3 "$db" >/dev/null <<'SQL'
PRAGMA journal_mode=WAL;
CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT, email TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<1000)
INSERT INTO users SELECT i, 'user ' || i, 'user' || i || '@example.com' FROM n;
SQL

show "$snapctl" --db "$db" create --label before-migration
say "sqlite3 $db \"DELETE FROM users WHERE id > 10\"   # a migration gone wrong"
sqlite3 "$db" "DELETE FROM users WHERE id > 10"
show sqlite3 "$db" "SELECT count(*) FROM users"
show "$snapctl" --db "$db" list
show "$snapctl" --db "$db" restore latest
show sqlite3 "$db" "SELECT count(*) FROM users"

if [ ! -x "$snapfs" ]; then
	echo
	echo "snapfs (the mount) was not built: libfuse3-dev missing?"
	exit 1
fi
show "$snapfs" "$db" "$demo/mnt"
show ls -l "$demo/mnt" "$demo/mnt/snapshots"
cat <<EOF

snapfs is mounted at $demo/mnt.  Try:
  touch $demo/mnt/snapshots/my-first-snapshot        # take a snapshot
  ls -l $demo/mnt/snapshots
  sqlite3 -readonly $demo/mnt/snapshots/latest.db 'select count(*) from users'
  sqlite3 $db 'delete from users'                    # the app breaks something
  cp $demo/mnt/snapshots/latest.db $demo/mnt/current.db   # verified restore
  cp $demo/mnt/snapshots/latest.db $demo/mnt/restore/      # the same, by the drop folder (a file manager's paste)
  gio trash $demo/mnt/snapshots/*_my-first-snapshot.db    # the Delete key: to $demo/mnt/.Trash-0/files
  sqlite3 $db 'select count(*) from users'
  cat $demo/mnt/.snapfs/status.json
  $snapctl --db $db log
Unmount with:  fusermount3 -u $demo/mnt
EOF
