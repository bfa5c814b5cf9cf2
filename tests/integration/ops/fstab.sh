#!/bin/bash
# fstab.sh — the /etc/fstab line the man page documents works through
# mount(8) and mount.fuse3: `mount MOUNTPOINT` mounts snapfs with the
# options given there (mount(8)-only words included), `umount` unmounts.
# The test uses its own fstab file (mount --fstab), never the machine's.
#
# mount(8) runs its helpers without PATH, so mount.fuse3 finds "snapfs"
# only in the shell's default directories, /usr/local/bin among them (where
# `meson install` puts it).  The test runs in a private mount namespace
# with the built snapfs bind-mounted there: the machine is not changed, and
# whatever it mounts disappears with the namespace.
if [ -z "${SNAPFS_OPS_NS:-}" ]; then
	[ -e /dev/fuse ] || { echo "# no /dev/fuse"; exit 77; }
	command -v mount.fuse3 >/dev/null || { echo "# no mount.fuse3"; exit 77; }
	command -v unshare >/dev/null || { echo "# no unshare"; exit 77; }
	SNAPFS_OPS_NS=1 exec unshare --mount --propagation private \
		bash "$0" "$@"
fi
. "$(dirname "$0")/../lib.sh"
mkdir -p "$T/bin"
ln -s "$SNAPFS" "$T/bin/snapfs"
mount --bind "$T/bin" /usr/local/bin

DB=$T/app.db
MNT=$T/mnt
STORE=$T/store
make_db "$DB"
mkdir -p "$MNT"
printf '%s  %s  fuse.snapfs  store=%s,nofail,_netdev,noauto,x-systemd.automount  0 0\n' \
	"$DB" "$MNT" "$STORE" > "$T/fstab"
MOUNTS+=("$MNT")

check "mount --fstab FILE MOUNTPOINT exits 0" mount --fstab "$T/fstab" "$MNT"
check "the mount point is a fuse.snapfs mount" \
	sh -c "awk '\$2 == \"$MNT\" {print \$3}' /proc/mounts | grep -qx fuse.snapfs"
check "current.db and snapshots/ are there" \
	test -f "$MNT/current.db" -a -d "$MNT/snapshots"
check "the store is the one the fstab line names" test -f "$STORE/store.db"
check "touch in snapshots/ takes a snapshot" touch "$MNT/snapshots/from-fstab"
check "it is listed" sh -c "ls '$MNT/snapshots' | grep -q '_from-fstab\.db\$'"
check "snapctl sees it in the store" \
	sh -c "'$SNAPCTL' --store '$STORE' list | grep -q from-fstab"
check "umount MOUNTPOINT exits 0" umount "$MNT"
check "nothing is mounted there any more" sh -c "! mountpoint -q '$MNT'"
