#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] — build every fuzz/fuzz_*.c harness with clang
# (libFuzzer + ASan + UBSan) in build-fuzz/ and run each for SECONDS
# (default 600), seeded with the generated test corpus and the committed
# regression inputs in fuzz/regressions/. Exits non-zero on any crash, leak,
# timeout or sanitizer report; the offending input is left in
# build-fuzz/fuzz-artifacts/ — fix the bug, then copy the input (small) into
# fuzz/regressions/ so tests/unit/test_fmt_regressions.c replays it forever.
#
# Environment: STOWAGE_FUZZ_BUILD (default <repo>/build-fuzz), FUZZ_JOBS
# (parallel fuzzing processes per harness, default 1).
set -euo pipefail

secs=${1:-600}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${STOWAGE_FUZZ_BUILD:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-1}

case $secs in
'' | *[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2 ;;
esac

# -Wno-unknown-warning-option: in case a GCC-only warning flag reaches clang.
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION: checksums are not verified, so the
# fuzzer reaches what they guard (src/format/fmt_int.h).
CC=clang cmake -S "$root" -B "$build" -DSTOWAGE_FUZZ=ON -DSTOWAGE_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_C_FLAGS=-Wno-unknown-warning-option -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION" >/dev/null
harnesses=()
for f in "$root"/fuzz/fuzz_*.c; do
    harnesses+=("$(basename "$f" .c)")
done
# Only our targets: the rest of the project need not compile for this.
cmake --build "$build" --target "${harnesses[@]}" -- -s >/dev/null

seeds=$build/fuzz-seeds
/usr/bin/python3 "$root/tests/fixtures/make_corpus.py" "$build/fuzz-corpus-gen" --fuzz-seeds "$seeds"
mkdir -p "$root/fuzz/regressions" "$build/fuzz-artifacts"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
for h in "${harnesses[@]}"; do
    work=$build/fuzz-work/$h # grows across runs: new coverage is kept
    mkdir -p "$work"
    rm -f "$build/fuzz-artifacts/$h-"* # only this run's findings count
    echo "== $h: ${secs}s, ${jobs} job(s)"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=131072
          -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$h-")
    if [ -f "$root/fuzz/$h.dict" ]; then
        args+=(-dict="$root/fuzz/$h.dict")
    fi
    if [ "$jobs" -gt 1 ]; then
        args+=(-fork="$jobs" -ignore_crashes=0)
    fi
    if ! "$build/$h" "${args[@]}" "$work" "$seeds" "$root/fuzz/regressions" \
        2>"$build/fuzz-$h.log"; then
        status=1
    fi
    grep -E "^(stat::|Done|INFO: (Loaded|seed corpus))|ERROR|SUMMARY" "$build/fuzz-$h.log" || true
    if ls "$build/fuzz-artifacts/$h-"* >/dev/null 2>&1; then
        echo "$h: artifacts in $build/fuzz-artifacts:" >&2
        ls -l "$build/fuzz-artifacts/$h-"* >&2
        status=1
    fi
done
exit $status
