#!/bin/sh
# bench_esdc.sh — Danube Cloud imports of a 1 GiB image from a fixture IMGAPI server and
# from a second stowaged (through /imagestore/), beside `curl -o` of the same URL to the
# same filesystem in the same run; and GET /image/?full=true with 1,000 images beside nginx
# serving the same body. Prints a Markdown section. Env: STOWAGED, BENCH_WORK
# (BENCH_ESDC_MIB: the image's size, default 1024).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec /usr/bin/python3 "$here/esdc_bench.py"
