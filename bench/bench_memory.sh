#!/bin/sh
# bench_memory.sh — the daemon's memory: idle RSS after the start and after 1 GiB of
# transfers (XFS, and one Gluster volume), RSS per stalled download, 1,000 idle
# connections. Needs root (loop devices, mounts, glusterd). Prints a Markdown section.
# The work is in memory_bench.py, which owns (and always removes) what it starts.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${STOWAGED:?set STOWAGED to the stowaged binary}"
: "${BENCH_WORK:?set BENCH_WORK to a scratch directory}"
ulimit -n 8192 2>/dev/null || true
exec /usr/bin/python3 "$here/memory_bench.py"
