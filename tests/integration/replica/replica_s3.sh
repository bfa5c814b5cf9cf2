#!/bin/bash
# The replica unit tests (tests/unit/test_replica.c) against a real S3
# server: tools/s3-test-server starts OpenStack Swift with s3api under a
# private directory, the tests run with SNAPFS_TEST_REPLICA_BASE pointing
# into its bucket, and the server is stopped whatever happens.
#   replica_s3.sh TEST_REPLICA_BINARY
set -eu
SRC=${SRC:-$(cd "$(dirname "$0")/../../.." && pwd)}
D=$(mktemp -d /tmp/snapfs-s3-XXXXXX)
cleanup() {
	"$SRC/tools/s3-test-server" stop "$D" || true
	rm -rf "$D"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
exports=$("$SRC/tools/s3-test-server" start "$D")
eval "$exports"
export SNAPFS_TEST_REPLICA_BASE="s3://$SNAPFS_TEST_BUCKET/unit-$$"
"$1"
