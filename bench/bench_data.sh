#!/bin/sh
# bench_data.sh — the data path against this machine's own limits: 1 GiB upload/download
# on an XFS loop volume and on a Gluster disperse 4+2 volume beside dd/cat on the same
# filesystems, guest_clone of a 100 GiB image beside qemu-img create, and the daemon's RSS
# during a 4 GiB upload. Needs root (loop devices, mounts, drop_caches, glusterd).
# Prints a Markdown section. The work is in data_bench.py, which owns (and always removes)
# the loop disk, glusterd, FUSE mount and daemon it starts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${STOWAGED:?set STOWAGED to the stowaged binary}"
: "${BENCH_WORK:?set BENCH_WORK to a scratch directory}"
exec /usr/bin/python3 "$here/data_bench.py"
