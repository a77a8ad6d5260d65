#!/bin/sh
# bench_ceph_bs.sh — adding a ZStack Ceph backup storage end to end (POST → the api-job's
# result: every mon asked for its fsid, the pool opened and its statistics read, the row
# committed), with a named pool and with a bak-t- pool made, beside the ceph CLI doing the
# same cluster work in the same run; and how long a mon that does not answer takes to
# fail. Needs a STOWAGE_WITH_CEPH build and the Ceph daemons; takes the Ceph test lock.
# Env: STOWAGED, BENCH_WORK.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec flock /tmp/stowage-ceph.lock /usr/bin/python3 "$here/ceph_bs_bench.py"
