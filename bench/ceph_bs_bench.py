"""Timings for bench_ceph_bs.sh (see there). The cluster is tests/fixtures/ceph.py's
single-node one (memstore), the daemon tests/fixtures/daemon.py's; both on loopback."""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from fixtures import ceph  # noqa: E402
from fixtures.daemon import Daemon  # noqa: E402

N = 10
cache = Path(os.environ.get("STOWAGED", "build/stowaged")).resolve().parent / "CMakeCache.txt"
if not ceph.available() or "STOWAGE_WITH_CEPH:BOOL=ON" not in (
        cache.read_text() if cache.is_file() else ""):
    print("## Ceph backup storage (ZStack): adding end to end")
    print()
    print("_Skipped: stowaged built without Ceph, or the Ceph daemons are not installed._")
    sys.exit(0)
work = Path(os.environ.get("BENCH_WORK", "/tmp")) / "ceph_bs"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
cluster = ceph.Cluster(work / "cluster")
d = Daemon(work / "d")
os.makedirs(d.tmpdir)
d.start()
B = d.url("/zstack/v1")
H = {"Authorization": "OAuth " + d.token, "Content-Type": "application/json"}


def call(method, path, body=None):
    """An api-job, polled every 2 ms: the time is the job's, not the SDK's 1 s poll."""
    t0 = time.monotonic()
    r = requests.request(method, B + path, headers=H, json=body)
    if r.status_code == 202:
        loc = r.json()["location"].split("/zstack/v1")[1]
        while (r := requests.get(B + loc, headers=H)).status_code == 202:
            time.sleep(0.002)
    return r, time.monotonic() - t0


def mon_url(port):
    return "admin:%s@127.0.0.1/?monPort=%d" % (urllib.parse.quote(cluster.key(), safe=""), port)


def add(pool=None, port=None):
    params = {"monUrls": [mon_url(port or cluster.mon_ports[1])], "name": "bench"}
    if pool:
        params["poolName"] = pool
    return call("POST", "/backup-storage/ceph", {"params": params})


def cli(*args):
    t0 = time.monotonic()
    subprocess.run(["ceph", "-c", str(cluster.conf), *args], check=True, capture_output=True)
    return time.monotonic() - t0


def ms(v):
    return "%.0f ms" % (v * 1000)


try:
    cluster.create_pool("benchpool")
    named, made, cli_named, cli_made = [], [], [], []
    for i in range(N):
        r, t = add("benchpool")
        assert r.status_code == 200, r.text
        named.append(t)
        uuid = r.json()["inventory"]["uuid"]
        assert call("DELETE", "/backup-storage/" + uuid)[0].status_code == 200
        # what the add asks of the cluster, by the CLI: the mon's fsid, the pool's statistics
        cli_named.append(cli("fsid") + cli("df", "-f", "json") +
                         cli("osd", "pool", "ls", "detail", "-f", "json"))
    for i in range(N // 2):
        r, t = add()
        assert r.status_code == 200, r.text
        made.append(t)
        assert call("DELETE", "/backup-storage/" + r.json()["inventory"]["uuid"])[0].status_code == 200
        p = "clipool%d" % i
        cli_made.append(cli("fsid") + cli("osd", "pool", "create", p) +
                        cli("osd", "pool", "application", "enable", p, "rbd") +
                        cli("df", "-f", "json") + cli("osd", "pool", "ls", "detail", "-f", "json"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    r, dead = add("benchpool", port=dead_port)
    assert r.status_code == 503, r.text
finally:
    d.stop()
    cluster.close()
    shutil.rmtree(work, ignore_errors=True)

med = statistics.median
print("## Ceph backup storage (ZStack): adding end to end")
print()
print("`POST /zstack/v1/backup-storage/ceph` to the api-job's 200 (polled every 2 ms), on the "
      "single-node memstore cluster of tests/fixtures/ceph.py; each add is followed by a "
      "delete (one cluster may have one Ceph backup storage). The baseline is the `ceph` CLI "
      "asking the same of the cluster, one process per command, in the same run.")
print()
print("| what | stowage (median) | `ceph` CLI, same work (median) |")
print("|---|---|---|")
print("| add, named pool (%d runs): mon fsid, open the pool, `df` + `osd pool ls detail`, row "
      "| **%s** (max %s) | %s (`fsid`, `df`, `osd pool ls detail`) |"
      % (N, ms(med(named)), ms(max(named)), ms(med(cli_named))))
print("| add, `bak-t-<uuid>` made (%d runs) | **%s** (max %s) | %s (+ `osd pool create`, "
      "`application enable`) |" % (N // 2, ms(med(made)), ms(max(made)), ms(med(cli_made))))
print("| add with a mon port nobody listens on → 503 | **%s** | the backend's timeout: 5 s |"
      % ms(dead))
