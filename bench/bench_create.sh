#!/bin/sh
# bench_create.sh — durable image creates (1-byte uploads) from 4 and 64 keep-alive clients,
# beside the fdatasync rate of the same filesystem and sqlite3 doing synchronous=FULL
# one-row transactions. Prints a Markdown section; the work is in create_bench.py.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
: "${STOWAGED:?set STOWAGED to the stowaged binary}"
: "${BENCH_WORK:?set BENCH_WORK to a scratch directory}"
exec /usr/bin/python3 "$here/create_bench.py"
