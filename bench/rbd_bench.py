#!/usr/bin/python3
"""rbd_bench.py — the body of bench_rbd.sh: RBD volumes against the Ceph CLI tools.

Starts a private single-node Ceph cluster (mon, mgr, one memstore OSD: the OSD's data is
in RAM) under BENCH_WORK and one stowaged ($STOWAGED) with an RBD volume on a pool of it,
and removes both at the end whatever happens. Prints one Markdown section on stdout;
progress goes to stderr.

  1. 1 GiB upload / download through stowaged (curl over loopback) beside `rbd import` /
     `rbd export` of the same file to the same pool, BENCH_DATA_RUNS runs (default 3),
     medians; the source file is in the page cache for both;
  2. guest_clone of a 100 GiB RBD image, BENCH_CLONE_RUNS runs (default 20), POST →
     completed p50, beside `rbd snap create && rbd snap protect && rbd clone` of the same
     image (two snapshots are never alike: each CLI run makes its own);
  3. VmRSS 4 s after start of a daemon with one directory volume, and of one with an RBD
     volume beside it (the RBD backend is the module stowage-rbd.so, loaded on the first
     RBD volume).
"""
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures import ceph  # noqa: E402
from fixtures.daemon import Daemon  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
RUNS = int(os.environ.get("BENCH_DATA_RUNS", "3"))
CLONE_RUNS = int(os.environ.get("BENCH_CLONE_RUNS", "20"))
STORAGE, POOL = "bench", "benchrbd"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def timed(argv):
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - t0


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


class Bench:
    def __init__(self, work):
        self.work = Path(work)
        self.session = requests.Session()
        self.cluster = None
        self.daemons = []

    def daemon(self, sub, volumes):
        d = Daemon(self.work / sub, config={"threads": 2, "log_requests": False,
                                            "probe_ttl_ms": 200,
                                            "storages": [{"id": STORAGE, "volumes": volumes}]})
        os.makedirs(d.tmpdir, exist_ok=True)
        self.daemons.append(d)
        d.start(timeout=120)
        return d

    def wait_ok(self, d, vid):
        def ok():
            info = self.session.get(d.url("/imagestorages/" + STORAGE), headers=d.headers(),
                                    timeout=30).json()
            vols = [v for k in ("volumes", "external_volumes") for v in info.get(k, [])]
            return any(v["volume_id"] == vid and v["status"] == "ok" for v in vols)
        d.wait_for(ok, timeout=120, what="volume %s ok" % vid)

    def task(self, d, typ, **params):
        h = d.headers()
        t0 = time.monotonic()
        r = self.session.post(d.url("/tasks/create"), headers=h, timeout=60,
                              json=dict(type=typ, repeat="0", retries="0", **params))
        r.raise_for_status()
        tid = r.json()["message"]
        while True:
            t = self.session.get(d.url("/tasks/" + tid), headers=h, timeout=60).json()
            if t["state"] == "completed":
                if t["result"] != "success":
                    raise RuntimeError("%s: %r" % (typ, t))
                return time.monotonic() - t0
            time.sleep(0.002)

    def curl(self, d, args, want):
        r = subprocess.run(["curl", "-sS", "-o", str(self.work / "reply"), "-w",
                            "%{http_code} %{time_total}", "-H", "Expect:",
                            "-H", "Authorization: Bearer " + d.token] + args,
                           capture_output=True, text=True, check=True)
        code, secs = r.stdout.split()
        if code != want:
            raise RuntimeError("%s: %s %s" % (args, code, (self.work / "reply").read_text()))
        return float(secs)

    def rbd(self, *args):
        return ["rbd", "-c", str(self.cluster.conf), *args]

    def run(self):
        self.work.mkdir(parents=True, exist_ok=True)
        self.cluster = ceph.Cluster(self.work / "ceph", osd_gb=8)
        self.cluster.create_pool(POOL)
        vdir = self.work / "vol"
        vdir.mkdir()
        ext = {"id": "dir1", "kind": "external", "mount_point": str(vdir)}
        rbdv = {"id": "ceph1", "kind": "rbd", "conf": str(self.cluster.conf), "user": "admin",
                "keyring": str(self.cluster.keyring), "pool": POOL}
        o = {}
        # idle RSS first, before any daemon moved data
        for key, vols, vid in (("rss_plain", [ext], "dir1"), ("rss_rbd", [ext, rbdv], "ceph1")):
            d = self.daemon(key, vols)
            self.wait_ok(d, vid)
            time.sleep(4)
            o[key] = rss_kib(d.proc.pid)
            d.stop()
        d = self.daemon("d", [rbdv])
        self.wait_ok(d, "ceph1")
        src = self.work / "src.raw"
        with open(src, "wb") as f:
            for _ in range(GiB // (16 * MiB)):
                f.write(os.urandom(16 * MiB))
        up, imp, down, exp = [], [], [], []
        for i in range(RUNS):
            imp.append(timed(self.rbd("import", str(src), "%s/imp%d" % (POOL, i))))
            up.append(self.curl(d, ["-T", str(src), d.url("/image/up%d/file/" % i)], "201"))
            exp.append(timed(self.rbd("export", "%s/imp%d" % (POOL, i), "-")))
            down.append(self.curl(d, [d.url("/image/up%d/file/" % i)], "200"))
            subprocess.run(self.rbd("rm", "%s/imp%d" % (POOL, i)), check=True,
                           capture_output=True)
            self.task(d, "image_delete", image_id="up%d" % i)
            log("run %d: up %.2fs import %.2fs down %.2fs export %.2fs" % (
                i, up[-1], imp[-1], down[-1], exp[-1]))
        m = statistics.median
        o.update(up=GiB / MiB / m(up), imp=GiB / MiB / m(imp), down=GiB / MiB / m(down),
                 exp=GiB / MiB / m(exp))
        self.task(d, "image_create", image_id="base100", volume_id="ceph1",
                  image_storage_id=STORAGE, size_mb=102400, format="raw")
        clones = [self.task(d, "guest_clone", image_id="base100", guest_id="g%03d" % i,
                            clone_id="c%03d" % i) for i in range(CLONE_RUNS)]
        subprocess.run(self.rbd("create", "--size", "100G", "%s/cli100" % POOL), check=True,
                       capture_output=True)
        cli_cmd = ('rbd -c "$0" snap create "$1@s$2" && rbd -c "$0" snap protect "$1@s$2" && '
                   'rbd -c "$0" clone "$1@s$2" "$1-c$2"')
        cli = [timed(["sh", "-c", cli_cmd, str(self.cluster.conf), "%s/cli100" % POOL, str(i)])
               for i in range(CLONE_RUNS)]
        o.update(clone_p50=m(clones) * 1e3, clone_p90=sorted(clones)[int(len(clones) * .9) - 1] * 1e3,
                 cli_p50=m(cli) * 1e3)
        log("clones %s ms; cli %s ms" % ([round(c * 1e3) for c in clones],
                                          [round(c * 1e3) for c in cli]))
        d.stop()
        return o

    def cleanup(self):
        for d in self.daemons:
            if d.proc:
                d.proc.kill()
                d.proc.wait()
        if self.cluster:
            self.cluster.close()


def main():
    b = Bench(os.path.join(os.environ["BENCH_WORK"], "rbd"))
    try:
        o = b.run()
    finally:
        b.cleanup()
    a = print
    a("## RBD volumes: uploads, downloads, clones, idle memory")
    a()
    a("A private single-node Ceph cluster on 127.0.0.1 (tests/fixtures/ceph.py: one mon, one "
      "mgr, one OSD on memstore, so the OSD's data is in RAM; pool size 1). %d runs each, "
      "medians; the 1 GiB random source file is in the page cache for stowaged and rbd alike."
      % RUNS)
    a()
    a("| 1 GiB | stowaged (curl over loopback) | rbd CLI | ratio | target |")
    a("|---|---|---|---|---|")
    a("| upload / `rbd import` | %.0f MiB/s | %.0f MiB/s | **%.2f** | ≥ 0.85 |" % (
        o["up"], o["imp"], o["up"] / o["imp"]))
    a("| download / `rbd export` to stdout | %.0f MiB/s | %.0f MiB/s | **%.2f** | ≥ 0.85 |" % (
        o["down"], o["exp"], o["down"] / o["exp"]))
    a()
    a("guest_clone of a 100 GiB RBD image, %d runs: POST → completed p50 **%.1f ms** (p90 "
      "%.1f ms), an RBD clone of the base's one protected snapshot; beside it `rbd snap create "
      "&& rbd snap protect && rbd clone` of a 100 GiB image (three CLI processes, the "
      "cluster's clone format 1 needs the protect) p50 **%.0f ms**." % (
          CLONE_RUNS, o["clone_p50"], o["clone_p90"], o["cli_p50"]))
    a()
    a("Idle RSS 4 s after start: **%.1f MiB** with one directory volume (the Ceph libraries "
      "never mapped), **%.1f MiB** with an RBD volume beside it (stowage-rbd.so, librados and "
      "librbd loaded on the first RBD volume). Before the RBD backend became a module, every "
      "daemon linked librados: 29.3 MiB idle without an RBD volume, 42.9 MiB with one "
      "(measured by hand on this machine with the previous binary)." % (
          o["rss_plain"] / 1024, o["rss_rbd"] / 1024))


if __name__ == "__main__":
    main()
