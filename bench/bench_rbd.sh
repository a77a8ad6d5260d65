#!/bin/sh
# bench_rbd.sh — RBD volumes against the Ceph tools on the same cluster: 1 GiB upload and
# download beside `rbd import` / `rbd export`, guest_clone of a 100 GiB RBD image beside
# `rbd snap create && rbd snap protect && rbd clone`, and the daemon's idle RSS with and
# without an RBD volume. Starts a private single-node cluster (tests/fixtures/ceph.py):
# run it under `flock /tmp/stowage-ceph.lock`. Prints a Markdown section; the work is in
# rbd_bench.py, which owns (and always removes) the cluster and daemons it starts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${STOWAGED:?set STOWAGED to the stowaged binary}"
: "${BENCH_WORK:?set BENCH_WORK to a scratch directory}"
exec /usr/bin/python3 "$here/rbd_bench.py"
