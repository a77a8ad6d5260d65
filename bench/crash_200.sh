#!/bin/sh
# crash_200.sh — tests/api/test_crash.py with 200 kill -9 rounds per operation (upload,
# image copy, clone) instead of the suite's 20; prints a Markdown section with what the
# rounds found. Takes a while (~20-30 min), so bench/run.sh does not pick it up: run it as
#   STOWAGED=build/stowaged BENCH_WORK=/tmp/w sh bench/crash_200.sh >> bench/REPORT.md
# STOWAGE_CRASH_ROUNDS and STOWAGE_CRASH_SEED override the rounds and the seed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
export STOWAGED=$(realpath "${STOWAGED:-$repo/build/stowaged}")
export STOWAGE_CRASH_ROUNDS=${STOWAGE_CRASH_ROUNDS:-200}
work=${BENCH_WORK:-/tmp}/crash
mkdir -p "$work"
log=$work/pytest.log
start=$(date +%s)
cd "$repo"
/usr/bin/python3 -m pytest -p no:cacheprovider -s -q -ra tests/api/test_crash.py > "$log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
/usr/bin/python3 - "$log" "$rc" "$secs" "$STOWAGE_CRASH_ROUNDS" "$(basename "$STOWAGED")" <<'PY'
import json, sys
log, rc, secs, rounds, binary = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
text = open(log, errors="replace").read()
rows = [json.loads(l.split(" ", 1)[1]) for l in text.splitlines() if l.startswith("CRASH-SUMMARY ")]
print("## kill -9 during uploads, copies and clones: %s rounds each" % rounds)
print()
print("`STOWAGE_CRASH_ROUNDS=%s pytest tests/api/test_crash.py` with %s: after every kill the "
      "daemon restarts and the volume and catalogue are checked (no active image without its "
      "file, no file without its row, no task left running, `qemu-img check` on every clone, "
      "surviving bytes equal the source, interrupted uploads resume to the right sha256). "
      "%d s in all; pytest exit status **%d** (%s)." % (rounds, binary, secs, rc,
                                                      "all invariants held" if rc == 0 else "FAILED"))
print()
print("| operation | rounds | seed | what the kills left (after recovery) | seconds |")
print("|---|---|---|---|---|")
for r in rows:
    outcomes = ", ".join("%s %d" % (k, v) for k, v in r.items()
                         if k not in ("scenario", "rounds", "seed", "seconds"))
    print("| %s | %d | %d | %s | %.0f |" % (r["scenario"], r["rounds"], r["seed"], outcomes, r["seconds"]))
if len(rows) < 3:
    print("| (missing) | | | a scenario did not finish; see below | |")
if rc != 0:
    tail = [l for l in text.splitlines() if l.startswith(("FAILED", "ERROR", "E "))][:40]
    print()
    print("```")
    print("\n".join(tail) or text[-3000:])
    print("```")
PY
exit $rc
