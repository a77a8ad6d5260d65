#!/bin/sh
# bench_http.sh — GET /imagestorages/{id} with 1,000 images, beside nginx serving the same
# JSON as a static file; plus idle RSS. Prints a Markdown section.
set -eu
W=$BENCH_WORK/http
mkdir -p "$W/vol" "$W/www"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DUR=${BENCH_SECONDS:-10}
cat > "$W/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "state_dir": "$W/state", "threads": 2, "log_requests": false,
 "storages": [{"id": "default", "volumes": [{"id": "dir1", "kind": "external", "mount_point": "$W/vol"}]}]}
JSON

start() {
    "$STOWAGED" --config "$W/cfg.json" > "$W/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/v1/health" > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "stowaged did not start" >&2; cat "$W/log" >&2; exit 1
}
stop() { kill -TERM "$pid"; wait "$pid" || true; }

start; stop
python3 - "$W/state/stowage.db" "$W/vol/images" <<'PY'
import os, sqlite3, sys, uuid, time
db = sqlite3.connect(sys.argv[1])
now = int(time.time())
rows = [(str(uuid.uuid4()), "image%04d" % i, "dir1", "qcow2", (20 + i % 40) << 30,
         "active", "guest%04d" % i, now, now) for i in range(1000)]
for r in rows:  # an active image has its file (restart recovery checks)
    open(os.path.join(sys.argv[2], "%s.qcow2" % r[0]), "w").close()
db.executemany("INSERT INTO image (uuid, name, volume_id, format, virtual_size, status, guest_id,"
               " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)", rows)
db.commit()
PY
start
sleep 1
token=$(cat "$W/state/admin.token")
rss_idle=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/imagestorages/default" > "$W/www/default.json"
bytes=$(stat -c %s "$W/www/default.json")
images=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['external_volumes'][0]['images']))" "$W/www/default.json")

cat > "$W/nginx.conf" <<NGX
worker_processes 2;
daemon off;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    types { application/json json; }
    server {
        listen 127.0.0.1:$nport;
        root $W/www;
        location / { }
    }
}
NGX
baseline=nginx
if command -v nginx > /dev/null; then
    nginx -c "$W/nginx.conf" -p "$W" &
    npid=$!
else
    baseline="python3 -m http.server"
    (cd "$W/www" && exec python3 -m http.server "$nport" --bind 127.0.0.1) > /dev/null 2>&1 &
    npid=$!
fi
sleep 1

run_wrk() { # conns url [header] -> "rps p50_ms p99_ms non2xx"
    c=$1; shift
    t=$(( c < 2 ? 1 : 2 ))
    if [ -n "${2:-}" ]; then
        wrk -t$t -c$c -d"${DUR}s" --latency -H "$2" "$1" > "$W/wrk.out"
    else
        wrk -t$t -c$c -d"${DUR}s" --latency "$1" > "$W/wrk.out"
    fi
    python3 - "$W/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
def ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", t).group(1))
p99 = ms(re.search(r"\s99%\s+(\S+)", t).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
print("%.0f %.3f %.3f %s" % (rps, p50, p99, non2xx.group(1) if non2xx else 0))
PY
}
s=$(run_wrk 16 "http://127.0.0.1:$port/imagestorages/default" "Authorization: Bearer $token")
n=$(run_wrk 16 "http://127.0.0.1:$nport/default.json")
s1=$(run_wrk 1 "http://127.0.0.1:$port/imagestorages/default" "Authorization: Bearer $token")
n1=$(run_wrk 1 "http://127.0.0.1:$nport/default.json")
h1=$(run_wrk 1 "http://127.0.0.1:$port/v1/health")
rss_after=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
kill "$npid" 2>/dev/null || true
wait "$npid" 2>/dev/null || true
stop

set -- $s; s_rps=$1 s_p50=$2 s_p99=$3 s_bad=$4
set -- $n; n_rps=$1 n_p50=$2 n_p99=$3
set -- $s1; s1_rps=$1 s1_p50=$2 s1_p99=$3
set -- $n1; n1_rps=$1 n1_p50=$2 n1_p99=$3
set -- $h1; h1_rps=$1 h1_p50=$2 h1_p99=$3
ratio=$(python3 -c "print('%.2f' % ($s_rps / $n_rps))")
verdict() { python3 -c "import sys; print('met' if float(sys.argv[1]) $2 float(sys.argv[3]) else 'not met')" "$1" "$2" "$3"; }
ratio_ok=$(verdict "$ratio" '>=' 1.0)
p99_ok=$(verdict "$s_p99" '<=' "$n_p99")
cat <<MD
## GET /imagestorages/{id} with $images images

wrk -t2 -c16 -d${DUR}s on loopback, $bytes-byte JSON body; baseline: $baseline serving the same
body as a static file (2 workers), stowaged with 2 HTTP threads, on the same 2 cores.

| server | connections | req/s | p50 | p99 |
|---|---|---|---|---|
| stowaged | 16 | $s_rps | ${s_p50} ms | ${s_p99} ms |
| $baseline | 16 | $n_rps | ${n_p50} ms | ${n_p99} ms |
| stowaged | 1 | $s1_rps | ${s1_p50} ms | ${s1_p99} ms |
| $baseline | 1 | $n1_rps | ${n1_p50} ms | ${n1_p99} ms |
| stowaged \`GET /v1/health\` | 1 | $h1_rps | ${h1_p50} ms | ${h1_p99} ms |

- throughput ratio stowaged / $baseline at 16 connections: **$ratio** (target ≥ 1.0: $ratio_ok)
- p99 at 16 connections: stowaged **${s_p99} ms**, $baseline ${n_p99} ms (target: stowaged's ≤ $baseline's: $p99_ok)
- stowaged p50 on one connection: **${s1_p50} ms** for the ${bytes}-byte storage (target < 0.2 ms),
  ${h1_p50} ms for a small reply; at 16 connections the p50 is queueing on 2 cores.
  Non-2xx replies during the runs: $s_bad
- stowaged RSS idle 1 s after start with $images images (no RBD volume, so the Ceph module is
  never loaded): **$((rss_idle / 1024)) MiB** ($rss_idle KiB; target < 16 MiB); after the run: $((rss_after / 1024)) MiB
MD
