#!/bin/sh
# bench_cinder.sh — Cinder manageable-list over 1,000 unmanaged files (mixed raw/qcow2,
# sparse, 1-100 GiB virtual) cold and warm, beside `ls -l` + `qemu-img info` of the same
# files in the same run, and adopting a 100 GiB file (a rename). Prints a Markdown section.
# Env: STOWAGED, BENCH_WORK; STOWAGED_BASE (optional): another build (main's) measured beside it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/cinder_bench.py"
