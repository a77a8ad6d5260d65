#!/bin/sh
# bench_zstack.sh — a ZStack query over 10,000 images on a backup storage with three q=
# conditions (p50), and backing up a 1 GiB catalogue image onto an image store on the same
# filesystem beside `cp` (and `cp` + `sync`) of the same file. Prints a Markdown section.
# Env: STOWAGED, BENCH_WORK, BENCH_ZSTACK_RUNS (backup runs, default 3).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/zstack_bench.py"
