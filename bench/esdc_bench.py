"""Timings for bench_esdc.sh (see there). Volumes are external directories on this machine's
disk under BENCH_WORK; daemons are started by tests/fixtures/daemon.py."""
import hashlib
import http.server
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid as uuidlib
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from fixtures.daemon import Daemon  # noqa: E402
from benchlib import drop_caches  # noqa: E402

MiB = 1 << 20
SIZE = int(os.environ.get("BENCH_ESDC_MIB", "1024")) * MiB
RUNS = 3
N_IMAGES = 1000
work = Path(os.environ.get("BENCH_WORK", "/tmp")) / "esdc"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)


class Imgapi:
    """An IMGAPI server: manifests in memory, the one file sent with sendfile(2)."""

    def __init__(self, path, sha1):
        self.path, self.sha1, self.manifests = path, sha1, {}
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                p = self.path.rstrip("/")
                if p in srv.manifests:
                    body = srv.manifests[p]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                elif p.endswith("/file") and p[:-5] in srv.manifests:
                    self.send_response(200)
                    self.send_header("Content-Length", str(SIZE))
                    self.end_headers()
                    with open(srv.path, "rb") as f:
                        self.connection.sendfile(f)
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = "http://127.0.0.1:%d" % self.server.server_address[1]

    def manifest(self):
        u = str(uuidlib.uuid4())
        m = {"v": 2, "uuid": u, "name": "bench", "version": "1", "os": "linux", "type": "zvol",
             "files": [{"sha1": self.sha1, "size": SIZE, "compression": "none"}]}
        self.manifests["/images/" + u] = json.dumps(m).encode()
        return self.base + "/images/" + u

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def es(d):
    return {"Content-Type": "application/json", "ES-API-KEY": d.token}


def wait_task(d, tid):
    s = requests.Session()
    while True:
        r = s.get(d.url("/api/task/%s/status/" % tid), headers=es(d), timeout=30)
        if r.status_code != 201:
            assert r.status_code == 200, r.text
            return r.json()["result"]
        time.sleep(0.02)


def job(d, method, path, body):
    r = requests.request(method, d.url(path), headers=es(d), data=json.dumps(body), timeout=30)
    assert r.status_code == 201, r.text
    return wait_task(d, r.json()["task_id"])


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def curl_to(url, dest):
    """curl -o, then fsync the file (what stowaged's commit does before the image is there)."""
    def run():
        subprocess.run(["curl", "-fsS", "-o", str(dest), url], check=True)
        fd = os.open(str(dest), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    t = timed(run)
    os.unlink(dest)
    return t


def daemon(sub, **cfg):
    vol = work / sub / "vol"
    vol.mkdir(parents=True)
    config = {"probe_ttl_ms": 200, "import_allow": ["127.0.0.1"], "log_requests": False,
              "storages": [{"id": "default", "volumes": [{"id": "v", "kind": "external",
                                                          "mount_point": str(vol)}]}]}
    config.update(cfg)
    d = Daemon(work / sub / "d", config=config)
    os.makedirs(d.tmpdir, exist_ok=True)
    d.start()
    d.wait_for(lambda: d.get("/imagestorages/default").json()["external_volumes"][0]["status"]
               == "ok")
    d.vol = vol
    return d


def wrk_ms(v):
    """wrk's "812.00us", "1.20ms", "2.01s" in ms."""
    for suffix, scale in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(suffix):
            return float(v[:-len(suffix)]) * scale
    raise ValueError(v)


def mibs(t):
    return SIZE / MiB / t


# ---- imports of the 1 GiB file ----
def imports():
    src = work / "image.raw"
    block = os.urandom(16 * MiB)
    h = hashlib.sha1()
    with open(src, "wb") as f:
        for _ in range(SIZE // len(block)):
            f.write(block)
            h.update(block)
    srv = Imgapi(src, h.hexdigest())
    a = daemon("a")
    b = None
    rows = {}
    try:
        # from the fixture IMGAPI server
        imp, crl = [], []
        for i in range(RUNS):
            drop_caches()
            murl = srv.manifest()
            imp.append(timed(lambda: job(a, "POST", "/api/image/fix%d/" % i,
                                         {"manifest_url": murl, "dc": "default"})))
            drop_caches()
            crl.append(curl_to(murl + "/file", a.vol / "curl.out"))
        rows["fixture IMGAPI server (Python, sendfile)"] = (statistics.median(imp),
                                                             statistics.median(crl))

        # from a second stowaged, through /imagestore/
        # (a uuid is imported once: b gets each of a's images in turn)
        uuids = []
        for i in range(RUNS):
            job(a, "PUT", "/api/image/fix%d/" % i, {"access": 1})
            uuids.append(requests.get(a.url("/api/image/fix%d/" % i), headers=es(a),
                                      timeout=30).json()["result"]["uuid"])
        b = daemon("b", imagestores=[{"name": "a", "url": a.base}])
        job(b, "PUT", "/api/imagestore/a/", {})
        imp, crl = [], []
        for i, uuid in enumerate(uuids):
            drop_caches()
            imp.append(timed(lambda: job(b, "POST", "/api/imagestore/a/image/%s/" % uuid,
                                         {"dc": "default", "name": "copy%d" % i})))
            drop_caches()
            crl.append(curl_to(a.url("/images/%s/file" % uuid), b.vol / "curl.out"))
            job(b, "DELETE", "/api/image/copy%d/" % i, {})
        rows["a second stowaged (/imagestore/, its /images/{uuid}/file)"] = (
            statistics.median(imp), statistics.median(crl))
    finally:
        srv.close()
        if b:
            b.stop()
        a.stop()
    return rows


rows = {} if os.environ.get("BENCH_ESDC_LIST_ONLY") else imports()

# ---- GET /image/?full=true with 1,000 images ----
c = daemon("list")
c.stop()
db = sqlite3.connect(os.path.join(c.state_dir, "stowage.db"))
now = int(time.time())
imgs = [(str(uuidlib.uuid4()), "image%04d" % i, "v", "qcow2", (20 + i % 40) << 30, "active",
         now - i, now) for i in range(N_IMAGES)]
for r in imgs:  # an active image has its file (restart recovery checks)
    open(c.vol / "images" / ("%s.qcow2" % r[0]), "w").close()
db.executemany("INSERT INTO image (uuid, name, volume_id, format, virtual_size, status, "
               "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)", imgs)
db.commit()
db.close()
c.start()
try:
    s = requests.Session()
    url = c.url("/api/image/?full=true")
    r = s.get(url, headers=es(c), timeout=30)
    assert r.status_code == 200 and len(r.json()["result"]) == N_IMAGES, r.text[:300]
    body_bytes = len(r.content)
    www = work / "www"
    www.mkdir()
    (www / "list.json").write_bytes(r.content)

    def p50(u, headers):
        """wrk, one thread and one connection, 5 s: (p50, p99) in ms."""
        args = ["wrk", "-t1", "-c1", "-d5s", "--latency"]
        for k, v in headers.items():
            args += ["-H", "%s: %s" % (k, v)]
        out = subprocess.run(args + [u], check=True, capture_output=True, text=True).stdout
        assert "Non-2xx" not in out, out
        lat = {}
        for line in out.splitlines():
            f = line.split()
            if len(f) == 2 and f[0] in ("50%", "99%"):
                lat[f[0]] = wrk_ms(f[1])
        return lat["50%"], lat["99%"]

    list_p50, list_p99 = p50(url, es(c))
    order_p50, _ = p50(c.url("/api/image/?full=true&order_by=-created,name"), es(c))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    nport = sock.getsockname()[1]
    sock.close()
    (work / "nginx.conf").write_text(
        "worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;\n"
        "events { worker_connections 64; }\n"
        "http { access_log off; types { application/json json; }\n"
        "  server { listen 127.0.0.1:%d; root %s; location / { } } }\n"
        % (work, work, nport, www))
    ng = subprocess.Popen(["nginx", "-c", str(work / "nginx.conf")])
    try:
        for _ in range(100):
            try:
                requests.get("http://127.0.0.1:%d/list.json" % nport, timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        ng_p50, ng_p99 = p50("http://127.0.0.1:%d/list.json" % nport, {})
    finally:
        ng.terminate()
        ng.wait()
finally:
    c.stop()

print("## Danube Cloud: imports and GET /image/?full=true")
print()
print("A %d MiB raw image (random bytes, `compression: none`) imported with `POST /api/image/"
      "{name}/` (time from the POST to the task's SUCCESS, polled every 20 ms), beside `curl -o` "
      "of the same file URL to the same directory followed by an fsync of the file, in the same "
      "run; page cache dropped before every run of either; %d runs, medians. The volume is an "
      "external directory on this machine's disk. stowaged's import also computes SHA-1 (checked "
      "against the manifest) and SHA-256 of every byte, inspects the format, fsyncs file and "
      "directory and commits the catalogue." % (SIZE // MiB, RUNS))
print()
print("| source | stowaged import | curl -o + fsync | ratio (target ≥ 0.85) |")
print("|---|---|---|---|")
for k, (ti, tc) in rows.items():
    print("| %s | %.0f MiB/s (%.2f s) | %.0f MiB/s (%.2f s) | **%.2f** |"
          % (k, mibs(ti), ti, mibs(tc), tc, tc / ti))
print()
print("`GET /api/image/?full=true` with %d images (%d-byte body): `wrk -t1 -c1 -d5s "
      "--latency` (one keep-alive connection); baseline: nginx (one worker) serving the same "
      "body as a static file, same client." % (N_IMAGES, body_bytes))
print()
print("| server | p50 | p99 |")
print("|---|---|---|")
print("| stowaged `?full=true` | **%.2f ms** (target < 10 ms) | %.2f ms |" % (list_p50, list_p99))
print("| stowaged `?full=true&order_by=-created,name` | %.2f ms | — |" % order_p50)
print("| nginx, same body | %.2f ms | %.2f ms |" % (ng_p50, ng_p99))
