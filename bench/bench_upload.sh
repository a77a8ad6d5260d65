#!/bin/sh
# bench_upload.sh — a 1 GiB upload against its two limits, measured in the same run: dd
# conv=fdatasync of the same bytes to the same filesystem (the disk), and SHA-256 of them
# on one core (openssl). The daemon's volume is a directory on BENCH_WORK's filesystem;
# a second volume in /dev/shm shows the ceiling without a disk (receive, hash, write on
# these cores). Runs alternate dd and stowaged, 3 each, medians. STOWAGED_BASE (optional):
# a second build, uploading to a volume of its own on the same filesystem in the same runs
# (an A/B against, say, main's build). Prints a Markdown section.
set -eu
: "${STOWAGED:?set STOWAGED to the stowaged binary}"
: "${BENCH_WORK:?set BENCH_WORK to a scratch directory}"
RUNS=${BENCH_UPLOAD_RUNS:-3}
W=$BENCH_WORK/upload
SHM=/dev/shm/stowage-bench-upload-$$
SRC=$SHM/src.raw
mkdir -p "$W" "$SHM"
pids=
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    rm -rf "$SHM" "$W"
}
trap cleanup EXIT
head -c 1073741824 /dev/urandom > "$SRC"
# start_daemon BIN NAME: a daemon with a volume on the scratch filesystem and one in tmpfs;
# sets port_NAME and token_NAME, and adds its pid to pids
start_daemon() {
    p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$W/$2/vol" "$SHM/$2/vol"
    cat > "$W/$2/cfg.json" <<JSON
{"listen": "127.0.0.1:$p", "state_dir": "$W/$2/state", "log_requests": false,
 "storages": [{"id": "default", "volumes": [
   {"id": "disk", "kind": "external", "mount_point": "$W/$2/vol"},
   {"id": "shm", "kind": "external", "mount_point": "$SHM/$2/vol"}]}]}
JSON
    "$1" --config "$W/$2/cfg.json" > "$W/$2/log" 2>&1 &
    pids="$pids $!"
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$p/v1/health" > /dev/null 2>&1 && break
        sleep 0.1
    done
    eval "port_$2=$p token_$2=\$(cat \"$W/$2/state/admin.token\")"
}
start_daemon "$STOWAGED" new
[ -n "${STOWAGED_BASE:-}" ] && start_daemon "$STOWAGED_BASE" base
want=$(sha256sum "$SRC" | cut -d' ' -f1)

mibs() { python3 -c "import sys; print('%.0f' % (1024 / float(sys.argv[1])))" "$1"; }
secs() { python3 -c "import sys; print('%.3f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$2"; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

upload() { # daemon volume -> MiB/s; the daemon's sha256 must be the file's
    eval "p=\$port_$1 tok=\$token_$1"
    u=$(cat /proc/sys/kernel/random/uuid)
    sync
    out=$(curl -fsS -w ' %{time_total}' -T "$SRC" -H "Authorization: Bearer $tok" \
        -H "X-Checksum-Sha256: $want" \
        "http://127.0.0.1:$p/v1/images/$u/file?name=up-$u&volume_id=$2")
    t=${out##* }
    case "$out" in *"\"sha256\": \"$want\""* | *"\"sha256\":\"$want\""*) ;;
        *) echo "upload: unexpected reply: $out" >&2; exit 1 ;; esac
    rm -f "$W/$1/vol/images/$u".* "$SHM/$1/vol/images/$u".*
    mibs "$t"
}
dd_run() {
    sync
    t0=$(date +%s.%N)
    dd if="$SRC" of="$W/dd.raw" bs=4M conv=fdatasync 2> /dev/null
    t1=$(date +%s.%N)
    rm -f "$W/dd.raw"
    mibs "$(secs "$t0" "$t1")"
}
sha_run() {
    t0=$(date +%s.%N)
    openssl dgst -sha256 "$SRC" > /dev/null
    t1=$(date +%s.%N)
    mibs "$(secs "$t0" "$t1")"
}

dd_l= up_l= shm_l= sha_l= base_l=
for _ in $(seq "$RUNS"); do
    dd_l="$dd_l $(dd_run)"
    up_l="$up_l $(upload new disk)"
    [ -n "${STOWAGED_BASE:-}" ] && base_l="$base_l $(upload base disk)"
    shm_l="$shm_l $(upload new shm)"
    sha_l="$sha_l $(sha_run)"
done
dd_m=$(median $dd_l) up_m=$(median $up_l) shm_m=$(median $shm_l) sha_m=$(median $sha_l)
load=$(cut -d' ' -f1-3 /proc/loadavg)
limit=$(( dd_m < sha_m ? dd_m : sha_m ))
ratio=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$up_m" "$limit")

cat <<MD
## Upload against its limits (1 GiB)

1 GiB of random bytes from tmpfs, \`curl -T\` over loopback with \`X-Checksum-Sha256\`, $RUNS
runs alternating with the baselines, medians (each run's figures: stowaged $up_l; dd
$dd_l; tmpfs $shm_l; SHA-256 $sha_l MiB/s). The volume is a directory on the scratch
filesystem, where dd writes too. stowaged hashes every byte, inspects the image, fsyncs
the file and the directory and commits the row before its 201.

| measure | MiB/s |
|---|---|
| stowaged upload to the disk volume | **$up_m** |
| dd bs=4M conv=fdatasync, same filesystem | $dd_m |
| SHA-256 on one core (\`openssl dgst -sha256\`) | $sha_m |
| stowaged upload to a tmpfs volume (no disk: receive + hash + write on these cores) | $shm_m |

- stowaged / min(dd, SHA-256): **$ratio** (target ≥ 0.9)
- load average (1, 5, 15 min) at the end: $load on $(nproc) cores
MD
if [ -n "$base_l" ]; then
    base_m=$(median $base_l)
    echo "- the build in \$STOWAGED_BASE, alternating with it in the same runs: **$base_m** MiB/s (each run: $base_l)"
fi
