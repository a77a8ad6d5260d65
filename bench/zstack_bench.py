"""Timings for bench_zstack.sh (see there). One stowaged (tests/fixtures/daemon.py) with an
external catalogue volume and an image store, both directories under BENCH_WORK on one
filesystem.

1. A ZStack query over 10,000 images on a backup storage with three q= conditions. The
   rows are inserted with sqlite3 into the stopped daemon's catalogue (one image store
   added through the API first, so its row is real), then the daemon is started again.
   Baseline: the same SELECT run by Python's sqlite3 on the same file.
2. Backing up a 1 GiB catalogue image (random bytes) onto the image store (POST
   /zstack/v1/images from stowage://image/{uuid}, until the api-job answers 200) beside
   `cp` of the same file to the same filesystem, and `cp` followed by `sync FILE` (the
   backup is durable when its job ends: fsynced, published, directory fsynced). The page
   cache is dropped before each. The daemon's CPU time is reported beside the wall times
   (on a shared machine these include waiting for a core)."""
import hashlib
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from fixtures.daemon import Daemon  # noqa: E402
from benchlib import cpu_seconds, drop_caches, log  # noqa: E402

GiB, MiB = 1 << 30, 1 << 20
N = 10000
RUNS = int(os.environ.get("BENCH_ZSTACK_RUNS", "3"))
API = "/zstack/v1"
work = Path(os.environ.get("BENCH_WORK", "/tmp")) / "zstack"
shutil.rmtree(work, ignore_errors=True)
vol, bs_dir = work / "vol", work / "bs"
vol.mkdir(parents=True)
bs_dir.mkdir()
Q = ["name~=img-12%", "size>%d" % (1000 * MiB), "platform=Linux"]
SQL = ("SELECT uuid, name, description, url, media_type, guest_os_type, platform, format, state, "
       "status, size, actual_size, sha256, system, created_at, last_op_at FROM backup_image "
       "WHERE name LIKE ? AND size > ? AND platform = ? ORDER BY created_at, rowid LIMIT 1000")


def session(d):
    r = d.cli("user", "add", "bench", "--role", "superadmin", stdin="bench-pass\n")
    assert r.returncode == 0, r.stderr
    pw = hashlib.sha512(b"bench-pass").hexdigest()
    r = requests.put(d.base + API + "/accounts/login",
                     json={"logInByAccount": {"accountName": "bench", "password": pw}})
    return {"Authorization": "OAuth " + r.json()["inventory"]["uuid"]}


def job(s, h, method, path, body):
    """An api-job, polled every 2 ms (not the SDK's second): its time, its result."""
    t = time.perf_counter()
    r = s.request(method, d.base + API + path, headers=h, json=body)
    assert r.status_code == 202, r.text
    loc = d.base + API + "/api-jobs" + r.json()["location"].split("/api-jobs")[1]
    while True:
        r = s.get(loc, headers=h)
        if r.status_code != 202:
            assert r.status_code == 200, r.text
            return time.perf_counter() - t, r.json()
        time.sleep(0.002)


def fill(db, bs):
    c = sqlite3.connect(db)
    now = int(time.time())
    with c:
        c.executemany(
            "INSERT INTO backup_image (uuid, name, url, platform, format, status, size, "
            "actual_size, sha256, created_at, last_op_at) VALUES (?, ?, ?, ?, 'qcow2', 'Ready', "
            "?, ?, ?, ?, ?)",
            [(uuid.uuid4().hex, "img-%d" % i, "http://example.org/%d.qcow2" % i,
              "Linux" if i % 2 else "Windows", i * MiB, i * 4096,
              hashlib.sha256(b"%d" % i).hexdigest(), now + i, now + i) for i in range(N)])
        c.execute("INSERT INTO image_backup (image_uuid, bs_uuid, install_path, status, "
                  "created_at, last_op_at) SELECT uuid, ?, 'images/' || uuid || '.qcow2', "
                  "'Ready', created_at, last_op_at FROM backup_image", (bs,))
    c.close()


d = Daemon(work / "d", config={"probe_ttl_ms": 200, "storages": [
    {"id": "st", "volumes": [{"id": "v", "kind": "external", "mount_point": str(vol)}]}]})
os.makedirs(d.tmpdir, exist_ok=True)
d.start()
try:
    s = requests.Session()
    h = session(d)
    _, res = job(s, h, "POST", "/backup-storage/image-store", {"params": {
        "hostname": "127.0.0.1", "username": "root", "password": "x", "url": str(bs_dir),
        "name": "bench"}})
    bs = res["inventory"]["uuid"]

    # ---- 1. the query ----
    d.stop()
    db = os.path.join(d.state_dir, "stowage.db")
    fill(db, bs)
    d.start()
    h = session(d)
    params = [("q", q) for q in Q]
    r = s.get(d.base + API + "/images", headers=h, params=params)
    want = r.json()["inventories"]
    assert r.status_code == 200 and want, r.text[:300]
    runs = []
    cpu0 = cpu_seconds(d.proc.pid)
    for _ in range(200):
        t = time.perf_counter()
        r = s.get(d.base + API + "/images", headers=h, params=params)
        runs.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200
    q_cpu = (cpu_seconds(d.proc.pid) - cpu0) / 200 * 1000
    q_p50 = statistics.median(runs)
    q_p99 = sorted(runs)[int(len(runs) * 0.99) - 1]
    lite = sqlite3.connect(db)
    base = []
    for _ in range(200):
        t = time.perf_counter()
        rows = lite.execute(SQL, ("img-12%", 1000 * MiB, "Linux")).fetchall()
        base.append((time.perf_counter() - t) * 1000)
    lite.close()
    assert len(rows) == len(want)
    sql_p50 = statistics.median(base)
    log("query: %d matches, p50 %.2f ms" % (len(want), q_p50))

    # ---- 2. a 1 GiB backup beside cp ----
    src = work / "src.raw"
    with open(src, "wb") as f:
        for _ in range(GiB // (16 * MiB)):
            f.write(os.urandom(16 * MiB))
    with open(src, "rb") as f:
        r = requests.put(d.base + "/image/big/file/", data=f,
                         headers={"Authorization": "Token " + d.token}, timeout=600)
    assert r.status_code == 201, r.text
    r = requests.get(d.base + "/api/image/big/", headers={"Authorization": "Token " + d.token})
    img = r.json()["result"]["uuid"]
    os.unlink(src)
    stored = vol / "images" / (img + ".raw")  # the catalogue's file: what the backup reads
    backup, backup_cpu, cp, cp_sync = [], [], [], []
    for i in range(RUNS):
        dst = bs_dir / ("cp%d.raw" % i)
        drop_caches()
        t = time.perf_counter()
        subprocess.run(["cp", str(stored), str(dst)], check=True)
        cp.append(time.perf_counter() - t)
        os.unlink(dst)
        drop_caches()
        t = time.perf_counter()
        subprocess.run(["cp", str(stored), str(dst)], check=True)
        subprocess.run(["sync", str(dst)], check=True)
        cp_sync.append(time.perf_counter() - t)
        os.unlink(dst)
        drop_caches()
        cpu0 = cpu_seconds(d.proc.pid)
        took, res = job(s, h, "POST", "/images", {"params": {
            "name": "big-%d" % i, "url": "stowage://image/" + img, "backupStorageUuids": [bs],
            "format": "raw"}})
        assert res["inventory"]["status"] == "Ready" and res["inventory"]["size"] == GiB
        backup.append(took)
        backup_cpu.append(cpu_seconds(d.proc.pid) - cpu0)
        _, _ = job(s, h, "DELETE", "/images/" + res["inventory"]["uuid"], None)
        log("run %d: cp %.2f s, cp+sync %.2f s, backup %.2f s" % (i, cp[-1], cp_sync[-1], took))
finally:
    d.stop()
    shutil.rmtree(work, ignore_errors=True)

b, c, cs = statistics.median(backup), statistics.median(cp), statistics.median(cp_sync)
print("## ZStack: image query and backups")
print()
print("`GET /zstack/v1/images` with `q=%s` over %d images on one image store (%d match, "
      "each rendered with its backupStorageRefs), "
      "through one keep-alive connection, 200 runs. The rows were inserted with sqlite3 into "
      "the stopped daemon's catalogue (the image store itself was added through the API); "
      "the baseline is the same SELECT by Python's sqlite3 on the same file (no HTTP, no JSON, "
      "no backupStorageRefs)." % ("&q=".join(Q), N, len(want)))
print()
print("| what | time | target |")
print("|---|---|---|")
print("| query, p50 | **%.2f ms** | < 10 ms |" % q_p50)
print("| query, p99 | %.2f ms | — |" % q_p99)
print("| daemon CPU per query (user + system) | %.2f ms | — |" % q_cpu)
print("| the same SELECT in sqlite3, p50 | %.3f ms | — |" % sql_p50)
print()
print("Backing up a 1 GiB catalogue image of random bytes onto an image store on the same "
      "filesystem as the catalogue volume, POST → api-job 200, median of %d. The kernel copies "
      "the data extents (copy_file_range through the backends, as `cp` does) while a second "
      "thread reads the same bytes and hashes them (SHA-256, checked against the catalogue's); "
      "the copy is then fsynced, inspected and published, and its rows committed (where the "
      "kernel cannot copy between two places the bytes go through the daemon instead). Beside it `cp` of the same file (the catalogue's images/<uuid>.raw) to the "
      "image store's directory, and `cp` + `sync FILE` (as durable as the backup). The page "
      "cache is dropped before each of the three." % RUNS)
print()
print("| what | time | vs backup | target |")
print("|---|---|---|---|")
print("| backup (bimage.add) | **%.2f s** | — | — |" % b)
print("| daemon CPU during the backup (user + system, median) | %.2f s | — | — |"
      % statistics.median(backup_cpu))
print("| `cp` + `sync FILE` | %.2f s | **%.2f** | ≥ 0.85 |" % (cs, cs / b))
print("| `cp` alone (page cache, not durable) | %.2f s | %.2f | — |" % (c, c / b))
