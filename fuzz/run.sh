#!/usr/bin/env bash
# fuzz/run.sh [--parallel] [--share] [SECONDS] [HARNESS...] — build every fuzz/fuzz_*.c
# harness (or the ones named) with clang (libFuzzer + ASan + UBSan) in build-fuzz/ and run
# each for SECONDS (default 600); with --share, SECONDS is the whole budget, split evenly between the harnesses
# (at least 5 s each); with --parallel, the harnesses run at the same time instead of
# one after the other. Each harness reads its committed seeds (fuzz/seeds/<harness>/)
# and regression inputs (fuzz/regressions/<harness>/); fuzz_inspect also the corpus
# tests/fixtures/make_corpus.py generates. Exits non-zero on any crash, leak, timeout
# or sanitizer report; the offending input is left in build-fuzz/fuzz-artifacts/ — fix
# the bug, then copy the input (small) into fuzz/regressions/<harness>/ (for
# fuzz_inspect, tests/unit/test_fmt_regressions.c replays it forever). The last line
# per harness goes to build-fuzz/fuzz-results.tsv (fuzz/README.md records long runs).
#
# Environment: STOWAGE_FUZZ_BUILD (default <repo>/build-fuzz), FUZZ_JOBS
# (parallel fuzzing processes per harness, default 1).
set -euo pipefail

usage() {
    echo "usage: fuzz/run.sh [--parallel] [--share] [SECONDS] [HARNESS...]" >&2
    exit 2
}
parallel=0 share=0 secs=600
harnesses=()
while [ $# -gt 0 ]; do
    case $1 in
    --parallel) parallel=1 ;;
    --share) share=1 ;;
    fuzz_*) harnesses+=("$1") ;;
    '' | *[!0-9]*) usage ;;
    *) secs=$1 ;;
    esac
    shift
done
root=$(cd "$(dirname "$0")/.." && pwd)
build=${STOWAGE_FUZZ_BUILD:-$root/build-fuzz}
jobs=${FUZZ_JOBS:-1}

# -Wno-unknown-warning-option: in case a GCC-only warning flag reaches clang.
# FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION: checksums are not verified, so the
# fuzzer reaches what they guard (src/format/fmt_int.h).
CC=clang cmake -S "$root" -B "$build" -DSTOWAGE_FUZZ=ON -DSTOWAGE_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    "-DCMAKE_C_FLAGS=-Wno-unknown-warning-option -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION" >/dev/null
if [ ${#harnesses[@]} = 0 ]; then
    for f in "$root"/fuzz/fuzz_*.c; do
        harnesses+=("$(basename "$f" .c)")
    done
fi
for h in "${harnesses[@]}"; do
    [ -f "$root/fuzz/$h.c" ] || usage
done
# Only our targets: the rest of the project need not compile for this.
cmake --build "$build" -j "$(nproc)" --target "${harnesses[@]}" -- -s >/dev/null

seeds=$build/fuzz-seeds
/usr/bin/python3 "$root/tests/fixtures/make_corpus.py" "$build/fuzz-corpus-gen" --fuzz-seeds "$seeds"
mkdir -p "$build/fuzz-artifacts"

if [ "$share" = 1 ]; then
    secs=$((secs / ${#harnesses[@]}))
    [ "$secs" -ge 5 ] || secs=5
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# Runs harness $1 and writes its summary to $build/fuzz-$1.summary; non-zero on findings.
run_one() {
    local h=$1 status=0 start end
    local work=$build/fuzz-work/$h # grows across runs: new coverage is kept
    local log=$build/fuzz-$h.log
    mkdir -p "$work"
    rm -f "$build/fuzz-artifacts/$h-"* # only this run's findings count
    local args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=131072
        -print_final_stats=1 -artifact_prefix="$build/fuzz-artifacts/$h-")
    if [ -f "$root/fuzz/$h.dict" ]; then
        args+=(-dict="$root/fuzz/$h.dict")
    fi
    if [ "$jobs" -gt 1 ]; then
        args+=(-fork="$jobs" -ignore_crashes=0)
    fi
    local dirs=("$work")
    for d in "$root/fuzz/seeds/$h" "$root/fuzz/regressions/$h"; do
        if [ -d "$d" ]; then dirs+=("$d"); fi
    done
    if [ "$h" = fuzz_inspect ]; then dirs+=("$seeds"); fi

    start=$(date +%s)
    if ! "$build/$h" "${args[@]}" "${dirs[@]}" 2>"$log"; then
        status=1
    fi
    end=$(date +%s)
    local execs corpus files findings=none
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # libFuzzer's corpus after its reductions ("corp: 212/24Kb"), and the files kept
    corpus=$(grep -a 'DONE ' "$log" | tail -1 | sed -n 's|.* corp: \([0-9]*/[0-9A-Za-z]*\) .*|\1|p')
    files=$(find "$work" -type f | wc -l)
    if ls "$build/fuzz-artifacts/$h-"* >/dev/null 2>&1; then
        status=1
        findings=$(cd "$build/fuzz-artifacts" && ls "$h-"* | tr '\n' ' ')
    elif [ "$status" != 0 ]; then
        findings="exit status (see $log)"
    fi
    {
        echo "== $h: ${secs}s, ${jobs} job(s)"
        grep -E "^(stat::|Done|INFO: (Loaded|seed corpus))|ERROR|SUMMARY|invariant broken" "$log" || true
        echo "corpus: ${corpus:-?} (libFuzzer), $files files in $work"
        if [ "$findings" != none ]; then
            echo "$h: findings: $findings (artifacts in $build/fuzz-artifacts)"
        fi
    } >"$build/fuzz-$h.summary"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$h" "$(date -u -d "@$start" +%Y-%m-%dT%H:%M:%SZ)" \
        "$((end - start))" "${execs:-?}" "${corpus:-?}" "$files" "$findings" >"$build/fuzz-$h.result"
    return $status
}

status=0
if [ "$parallel" = 1 ]; then
    pids=()
    for h in "${harnesses[@]}"; do
        run_one "$h" &
        pids+=($!)
    done
    for i in "${!harnesses[@]}"; do
        wait "${pids[$i]}" || status=1
        cat "$build/fuzz-${harnesses[$i]}.summary"
    done
else
    for h in "${harnesses[@]}"; do
        run_one "$h" || status=1
        cat "$build/fuzz-$h.summary"
    done
fi
printf 'harness\tstart (UTC)\twall s\texecutions\tcorpus\tfiles\tfindings\n' >"$build/fuzz-results.tsv"
for h in "${harnesses[@]}"; do
    cat "$build/fuzz-$h.result" >>"$build/fuzz-results.tsv"
done
column -t -s "$(printf '\t')" "$build/fuzz-results.tsv" 2>/dev/null || cat "$build/fuzz-results.tsv"
exit $status
