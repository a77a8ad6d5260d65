#!/bin/sh
# bench_slow.sh — what slow clients cost: RSS per stalled download, RSS with 1,000 idle
# connections, and a normal client's GET p99 while 1,000 slow connections dribble
# headers. Loopback only (127.0.0.x sources, 50 each). Prints a Markdown section.
set -eu
W=$BENCH_WORK/slow
mkdir -p "$W/vol"
ulimit -n 8192 2>/dev/null || true
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/cfg.json" <<JSON
{"listen": "127.0.0.1:$port", "state_dir": "$W/state", "threads": 2, "log_requests": false,
 "limits": {"max_connections": 1100},
 "storages": [{"id": "default", "volumes": [{"id": "dir1", "kind": "external", "mount_point": "$W/vol"}]}]}
JSON
"$STOWAGED" --config "$W/cfg.json" > "$W/log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/v1/health" > /dev/null 2>&1 && break
    sleep 0.1
done
python3 - "$port" "$pid" "$W/state/admin.token" <<'PY'
import os, socket, sys, threading, time, urllib.request

port, pid, token = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3]).read().strip()
base = "http://127.0.0.1:%d" % port


def rss_kib():
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def connect(i):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.bind(("127.0.0.%d" % (10 + i // 50), 0))
    s.connect(("127.0.0.1", port))
    return s


def get(path, headers=None):
    t0 = time.monotonic()
    req = urllib.request.Request(base + path, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as r:
        body = r.read()
    return time.monotonic() - t0, body


data = os.urandom(32 << 20)
req = urllib.request.Request(base + "/image/bench-stall/file/", data=data, method="PUT",
                             headers={"Authorization": "Bearer " + token})
urllib.request.urlopen(req, timeout=120).read()
get("/image/bench-stall/file/", {"Authorization": "Bearer " + token})
base_rss = rss_kib()

# 200 downloads that stop reading
socks = []
for i in range(200):
    s = connect(i)
    s.sendall(b"GET /image/bench-stall/file/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
              + token.encode() + b"\r\n\r\n")
    socks.append(s)
time.sleep(3)
stalled = rss_kib() - base_rss
for s in socks:
    s.close()
time.sleep(2)

# 1,000 idle connections
base_idle = rss_kib()
socks = [connect(i) for i in range(1000)]
time.sleep(2)
idle = rss_kib() - base_idle
for s in socks:
    s.close()
time.sleep(2)

# 1,000 connections dribbling a header line, one byte a second, reconnecting when closed
stop = threading.Event()


def dribble():
    live = [[connect(i), i] for i in range(1000)]
    for c in live:
        c[0].setblocking(False)
        c[0].send(b"GET /v1/health HTTP/1.1\r\nX-Slow: ")
    while not stop.is_set():
        for c in live:
            try:
                if c[0].send(b"x") == 0:
                    raise OSError
            except OSError:
                c[0].close()
                try:
                    c[0] = connect(c[1])
                    c[0].setblocking(False)
                    c[0].send(b"GET /v1/health HTTP/1.1\r\nX-Slow: ")
                except OSError:
                    pass
        stop.wait(1)
    for c in live:
        c[0].close()


t = threading.Thread(target=dribble)
t.start()
time.sleep(3)
lat = []
t_end = time.time() + float(os.environ.get("BENCH_SECONDS", "10"))
while time.time() < t_end:
    lat.append(get("/v1/health")[0])
    time.sleep(0.02)
stop.set()
t.join()
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000

print("## Slow clients\n")
print("| measure | value |")
print("|---|---|")
print("| RSS per stalled download (200 clients that stop reading a 32 MiB image) | %.0f KiB (+%.0f MiB in all) |"
      % (stalled / 200, stalled / 1024))
print("| RSS per idle connection (1,000 connections that send nothing) | %.1f KiB (+%.1f MiB in all) |"
      % (idle / 1000, idle / 1024))
print("| `GET /v1/health` while 1,000 connections dribble headers: p50 / p99 / max | %.1f / %.1f / %.1f ms (%d requests) |"
      % (p(0.5), p(0.99), lat[-1] * 1000, len(lat)))
PY
