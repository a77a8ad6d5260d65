"""Timings for bench_cinder.sh (see there). The volume is an external directory on this
machine's disk under BENCH_WORK; the daemons are started by tests/fixtures/daemon.py.
With STOWAGED_BASE (another build, e.g. main's), that build lists the same files beside
STOWAGED's: cold one after the other, warm alternating in pairs, adopt one after the other
(each daemon alone then, so that neither sees the other's image in images/)."""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from fixtures.daemon import Daemon  # noqa: E402
from benchlib import drop_caches  # noqa: E402

GiB = 1 << 30
load0 = os.getloadavg()[0]
N = 1000
work = Path(os.environ.get("BENCH_WORK", "/tmp")) / "cinder"
shutil.rmtree(work, ignore_errors=True)
vol = work / "vol"
vol.mkdir(parents=True)

# 1,000 files: odd ones raw (sparse, truncate), even ones qcow2 (copies of ten templates)
templates = {}
for i in range(N - 1):  # and big100.raw: N files in all
    size = (1 + (i * 37) % 100) * GiB
    if i % 2:
        with open(vol / ("disk%04d.raw" % i), "wb") as f:
            f.truncate(size)
    else:
        if size not in templates:
            t = work / ("t%d.qcow2" % (size // GiB))
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(t), str(size)],
                           check=True)
            templates[size] = t
        shutil.copyfile(templates[size], vol / ("disk%04d.qcow2" % i))
big = vol / "big100.raw"
with open(big, "wb") as f:
    f.truncate(100 * GiB)

CONFIG = {"probe_ttl_ms": 200, "storages": [
    {"id": "st", "volumes": [{"id": "v", "kind": "external", "mount_point": str(vol)}]}]}
host = "%s@st%%23v" % socket.gethostname()
COLD_ROUNDS = int(os.environ.get("BENCH_COLD_ROUNDS", "3"))
builds = [("this build", os.environ["STOWAGED"])]
if os.environ.get("STOWAGED_BASE"):
    builds.append(("base", os.environ["STOWAGED_BASE"]))


class Run:
    """One build's daemon on the volume and its figures."""

    def __init__(self, label, binary, k):
        self.label, self.binary = label, binary
        self.d = Daemon(work / ("d%d" % k), config=CONFIG)
        self.s = requests.Session()
        self.cold, self.cold_cpu, self.warm, self.warm_cpu = [], [], [], []
        self.adopt, self.task = [], []

    def start(self):
        os.environ["STOWAGED"] = self.binary
        os.makedirs(self.d.tmpdir, exist_ok=True)
        self.d.start()
        self.h = {"X-Auth-Token": self.d.token, "OpenStack-API-Version": "volume 3.8"}
        self.url = self.d.base + "/v3/bench/manageable_volumes/detail?host=" + host
        self.d.wait_for(lambda: self.d.get("/imagestorages/st").json()
                        ["external_volumes"][0]["status"] == "ok")

    def cpu_ms(self, threads_alive):
        """The daemon's CPU time: in clock ticks from /proc/PID/stat (all its threads, also
        those that ended: a cold scan's judges), or, when its threads outlive the
        measure, in nanoseconds from each thread's schedstat (a warm list is far below a
        tick)."""
        pid = self.d.proc.pid
        if threads_alive:
            ns = 0
            for t in os.listdir("/proc/%d/task" % pid):
                try:
                    ns += int(open("/proc/%d/task/%s/schedstat" % (pid, t)).read().split()[0])
                except OSError:
                    pass
            return ns / 1e6
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) * 1000 / os.sysconf("SC_CLK_TCK")

    def list(self, threads_alive=True):
        c0 = self.cpu_ms(threads_alive)
        t = time.perf_counter()
        r = self.s.get(self.url, headers=self.h, timeout=120)
        ms = (time.perf_counter() - t) * 1000
        cpu = self.cpu_ms(threads_alive) - c0
        assert r.status_code == 200 and len(r.json()["manageable-volumes"]) == N, r.text[:300]
        return ms, cpu

    def adopt_runs(self, n):
        body = {"volume": {"host": host.replace("%23", "#"), "ref": {"source-name": "big100.raw"}}}
        base = self.d.base + "/v3/bench"
        for _ in range(n):
            t = time.perf_counter()
            r = self.s.post(base + "/os-volume-manage", headers=self.h, json=body, timeout=60)
            assert r.status_code == 202, r.text
            vid = r.json()["volume"]["id"]
            while self.s.get(base + "/volumes/" + vid, headers=self.h,
                             timeout=60).json()["volume"]["status"] != "available":
                pass
            self.adopt.append((time.perf_counter() - t) * 1000)
            for line in self.d.log().splitlines():
                if ("task %s (image.adopt): success in " % vid) in line:
                    self.task.append(int(line.split("success in ")[1].split("us")[0]) / 1000)
            r = self.s.post(base + "/volumes/%s/action" % vid, headers=self.h,
                            json={"os-unmanage": None}, timeout=60)
            assert r.status_code == 202, r.text
            while not big.exists():
                time.sleep(0.005)
            while self.s.get(base + "/volumes/" + vid, headers=self.h,
                             timeout=60).status_code != 404:
                time.sleep(0.005)


runs = [Run(label, b, k) for k, (label, b) in enumerate(builds)]
try:
    for _ in range(COLD_ROUNDS):  # a fresh daemon's first list, page cache dropped; alternating
        for run in runs:
            run.start()
            drop_caches()
            ms, cpu = run.list(threads_alive=False)
            run.cold.append(ms)
            run.cold_cpu.append(cpu)
            run.d.stop()
    for run in runs:
        run.start()
    for _ in range(20):  # warm: in pairs, alternating
        for run in runs:
            ms, cpu = run.list()
            run.warm.append(ms)
            run.warm_cpu.append(cpu)
    for run in runs:
        run.d.stop()
    for run in runs:  # adopt: each daemon alone on the volume
        run.start()
        run.adopt_runs(5)
        run.d.stop()
finally:
    for run in runs:
        if run.d.proc:
            run.d.stop()
    os.environ["STOWAGED"] = builds[0][1]

drop_caches()
files = sorted(str(p) for p in vol.iterdir() if p.is_file())
t = time.perf_counter()
subprocess.run(["ls", "-l", str(vol)], check=True, capture_output=True)
for p in files:
    subprocess.run(["qemu-img", "info", "--output=json", p], check=True, capture_output=True)
qemu = (time.perf_counter() - t) * 1000
shutil.rmtree(work, ignore_errors=True)
med = statistics.median

print("## Cinder: manageable volumes and adopt")
print()
print("%d unmanaged files (half sparse raw, half qcow2, 1-100 GiB virtual) in an external "
      "volume on this machine's disk, plus the 100 GiB file adopted below. "
      "`GET /v3/{project}/manageable_volumes/detail` through one keep-alive connection; "
      "cold is the first list of a fresh daemon with the page cache dropped (median of %d), "
      "warm the median of 20 more; CPU is the daemon's, all its threads. Verdicts are kept by device, inode, size, mtime and ctime; the root is "
      "watched (inotify on it and on each of its files, the mount table, the root's "
      "identity), and while the watch has seen nothing, not even an open, a list looks at "
      "neither the directory, nor /proc for writers, nor the catalogue's rows (unless the "
      "catalogue's generation moved), and an unchanged answer to the same question is the "
      "reply rendered before. Load average (1 min) %.1f at the start, %.1f at the end, on "
      "%d cores." % (N, COLD_ROUNDS, load0, os.getloadavg()[0], os.cpu_count()))
if len(runs) > 1:
    print()
    print("Beside it, the same files listed by the base build (`STOWAGED_BASE`: main before "
          "the watch): cold lists alternate between the two builds' fresh daemons; for the "
          "warm ones both daemons run and lists alternate in pairs.")
print()
cols = " | ".join(r.label for r in runs)
print("| what | %s | target |" % cols)
print("|---|%s---|" % ("---|" * len(runs)))


def row(what, cells, target):
    print("| %s | %s | %s |" % (what, " | ".join(cells), target))


row("manageable-list, cold (median of %d)" % COLD_ROUNDS,
    ["**%.1f ms** (CPU %.0f ms)" % (med(r.cold), med(r.cold_cpu)) for r in runs], "< 300 ms")
row("manageable-list, warm (median of 20; CPU: median)",
    ["**%.2f ms** (CPU %.2f ms)" % (med(r.warm), med(r.warm_cpu)) for r in runs],
    "< 10 ms")
row("adopt a 100 GiB raw: POST → available (client, median of 5)",
    ["**%.1f ms**" % med(r.adopt) for r in runs], "< 20 ms")
row("adopt: the image.adopt job itself (daemon log, median)",
    ["%.1f ms" % med(r.task) if r.task else "—" for r in runs], "—")
print()
print("`ls -l` + `qemu-img info` of the same files, page cache dropped: %.0f ms." % qemu)
print()
print("Adopting is a rename within the volume (no byte copied) after a fresh check (lstat, "
      "the inspector on the headers, the writer check): one transaction for the row in "
      "`saving`, the rename with the fsyncs of `images/` and of the root, one transaction "
      "for the row turning active with the job's success. The client time adds the POST "
      "(its own check and the job's row) and polling `GET /volumes/{id}`.")
