#!/bin/bash
# Install what snapfs needs to build, test and run, from Debian 12's
# packages.  Run as root.  Every dependency is named here and in README.md.
set -eu

pkgs=(
	build-essential meson ninja-build pkg-config   # the build
	libsqlite3-dev libzstd-dev libssl-dev          # the engine
	libsodium-dev libcurl4-openssl-dev libxml2-dev # replicas: encryption, S3
	libfuse3-dev fuse3                             # the mount
	libcmocka-dev                                  # unit tests
	clang libclang-rt-14-dev                       # fuzzing: libFuzzer, ASan, UBSan
	sqlite3 python3 rsync libglib2.0-bin time      # tests drive these
	gvfs dbus-daemon                               # the trash as desktops use it
	util-linux procps                              # mount, unshare, pgrep
	systemd man-db                                 # systemd-analyze verify of the unit
	swift swift-proxy swift-object swift-container # tools/s3-test-server: a real
	swift-account python3-swift                    #   S3 endpoint for replica tests,
	memcached                                      #   with the proxy's cache as deployed
)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (sudo $0)" >&2
	exit 2
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${pkgs[@]}"
