#!/usr/bin/python3
"""rbd_bench.py — the body of bench_rbd.sh: RBD volumes against the Ceph CLI tools.

Starts a private single-node Ceph cluster (mon, mgr, one memstore OSD: the OSD's data is
in RAM) under BENCH_WORK and one stowaged ($STOWAGED) with an RBD volume on a pool of it,
and removes both at the end whatever happens. Prints one Markdown section on stdout;
progress goes to stderr.

  1. 1 GiB upload / download through stowaged (curl over loopback) beside `rbd import` /
     `rbd export` of the same file to the same cluster, BENCH_DATA_RUNS runs (default 5);
     each run measures every contender once (its upload, its download, then its image is
     removed, so each meets the cluster in the same state), in an order that turns by one
     each run, after one transfer of each that is not measured (a fresh OSD is slow at
     first); the ratios are medians of the runs' ratios.
     Like with like: the source file is in tmpfs (so in memory) for every upload, every
     download (curl -o, rbd export to stdout) goes to /dev/null. With BENCH_BASELINE set
     to another stowaged binary (main's build, say), it runs beside $STOWAGED on a pool
     of its own, alternating with it: an A/B of the same run. The same transfers to a
     tmpfs volume of $STOWAGED are the ceiling of these cores without Ceph (curl, the
     daemon and the OSD share them);
  2. guest_clone of a 100 GiB RBD image, BENCH_CLONE_RUNS runs (default 20), POST →
     completed p50, beside `rbd snap create && rbd snap protect && rbd clone` of the same
     image (two snapshots are never alike: each CLI run makes its own);
  3. VmRSS 4 s after start of a daemon with one directory volume, and of one with an RBD
     volume beside it (the RBD backend is the module stowage-rbd.so, loaded on the first
     RBD volume).
"""
import os
import resource
import shutil
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
from benchlib import cpu_seconds as cpu_s, log, rss_kib  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
RUNS = int(os.environ.get("BENCH_DATA_RUNS", "5"))
BASELINE = os.environ.get("BENCH_BASELINE")
CLONE_RUNS = int(os.environ.get("BENCH_CLONE_RUNS", "20"))
STORAGE, POOL = "bench", "benchrbd"


def timed(argv):
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - t0


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ":"))


def hwm_kib(pid):
    return status_kib(pid, "VmHWM")


class Bench:
    def __init__(self, work):
        self.work = Path(work)
        self.session = requests.Session()
        self.cluster = None
        self.daemons = []
        self.shm = None
        self.cpu = {}  # key -> [(CPU s of the contender, CPU s of the OSD)] per run

    def daemon(self, sub, volumes, exe=None, probe_ttl_ms=200):
        """probe_ttl_ms=None: the default (5 s), as a daemon in service probes. The data
        runs use it: a probe of an RBD volume connects a fresh client (about 40 ms of CPU),
        and at 200 ms that was a third of an upload's daemon CPU, which the CLI never pays."""
        cfg = {"threads": 2, "log_requests": False,
               "storages": [{"id": STORAGE, "volumes": volumes}]}
        if probe_ttl_ms:
            cfg["probe_ttl_ms"] = probe_ttl_ms
        d = Daemon(self.work / sub, config=cfg)
        os.makedirs(d.tmpdir, exist_ok=True)
        self.daemons.append(d)
        mine = os.environ["STOWAGED"]
        os.environ["STOWAGED"] = exe or mine  # what the fixture starts
        try:
            d.start(timeout=120)
        finally:
            os.environ["STOWAGED"] = mine
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

    def measured(self, key, fn, pid=None):
        """fn's seconds; the CPU seconds it cost in the daemon pid (none for the CLI), in the
        child processes it ran (curl, or the CLI) and in the OSD are recorded under key."""
        osd = self.cluster.procs["osd.0"].pid
        c0, k0, o0 = cpu_s(pid) if pid else 0, children_cpu_s(), cpu_s(osd)
        secs = fn()
        self.cpu.setdefault(key, []).append(((cpu_s(pid) - c0) if pid else 0,
                                             children_cpu_s() - k0, cpu_s(osd) - o0))
        return secs

    def curl(self, d, args, want, out=None):
        r = subprocess.run(["curl", "-sS", "-o", out or str(self.work / "reply"), "-w",
                            "%{http_code} %{time_total}", "-H", "Expect:",
                            "-H", "Authorization: Bearer " + d.token] + args,
                           capture_output=True, text=True, check=True)
        code, secs = r.stdout.split()
        if code != want:
            raise RuntimeError("%s: %s %s" % (args, code, (self.work / "reply").read_text()))
        return float(secs)

    def up(self, d, name):
        return self.curl(d, ["-T", str(self.src),
                             d.url("/image/%s/file/?volume_id=ceph1" % name)], "201")

    def down(self, d, name):
        return self.curl(d, [d.url("/image/%s/file/" % name)], "200", out="/dev/null")

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
        shm = Path("/dev/shm/stowage-rbd-bench-%d" % os.getpid())
        (shm / "vol").mkdir(parents=True)
        self.shm = shm
        d = self.daemon("d", [rbdv, {"id": "shm", "kind": "external",
                                     "mount_point": str(shm / "vol")}], probe_ttl_ms=None)
        self.wait_ok(d, "ceph1")
        ab = {"this": d}
        if BASELINE:
            self.cluster.create_pool(POOL + "b")
            ab["main"] = self.daemon("base", [dict(rbdv, pool=POOL + "b")], exe=BASELINE,
                                     probe_ttl_ms=None)
            self.wait_ok(ab["main"], "ceph1")
        self.src = shm / "src.raw"
        with open(self.src, "wb") as f:
            for _ in range(GiB // (16 * MiB)):
                f.write(os.urandom(16 * MiB))
        t = {k: [] for k in ("imp", "exp", "shm_up", "shm_down")}
        for k in ab:
            t[k + "_up"], t[k + "_down"] = [], []
        # Not measured: a fresh memstore OSD takes its first GiBs 3-4x slower (5.2-5.9 s
        # for the first `rbd import` of a run against 1.4-1.7 s after), whoever sends them.
        timed(self.rbd("import", str(self.src), "%s/warm" % POOL))
        subprocess.run(self.rbd("rm", "%s/warm" % POOL), check=True, capture_output=True)
        for k in ab:
            self.up(ab[k], "warm")
            self.task(ab[k], "image_delete", image_id="warm")
        for i in range(RUNS):
            # Each contender writes its GiB, reads it back and removes it before the next
            # one starts, so that every upload meets the OSD in the same state, and the
            # order turns by one each run. With the CLI's image still there, the second
            # upload of a run cost the memstore OSD 2.0-2.2 CPU-s against 1.2-1.5 for the
            # first (fresh memory for the second GiB), whichever tool sent it.
            names = [None] + list(ab)
            turn = i % len(names)
            for k in names[turn:] + names[:turn]:
                if k is None:
                    img = "%s/imp%d" % (POOL, i)
                    t["imp"].append(self.measured("imp", lambda: timed(
                        self.rbd("import", str(self.src), img))))
                    t["exp"].append(self.measured("exp", lambda: timed(
                        self.rbd("export", img, "-"))))
                    subprocess.run(self.rbd("rm", img), check=True, capture_output=True)
                    continue
                t[k + "_up"].append(self.measured(k + "_up", lambda: self.up(ab[k], "up%d" % i),
                                                  ab[k].proc.pid))
                t[k + "_down"].append(self.measured(
                    k + "_down", lambda: self.down(ab[k], "up%d" % i), ab[k].proc.pid))
                self.task(ab[k], "image_delete", image_id="up%d" % i)
            t["shm_up"].append(self.curl(d, ["-T", str(self.src), d.url(
                "/image/shm%d/file/?volume_id=shm" % i)], "201"))
            t["shm_down"].append(self.down(d, "shm%d" % i))
            self.task(d, "image_delete", image_id="shm%d" % i)
            log("run %d: %s" % (i, " ".join("%s %.2fs" % (k, v[-1]) for k, v in t.items())))
        time.sleep(2)
        o["rss_after"] = {k: (rss_kib(ab[k].proc.pid), hwm_kib(ab[k].proc.pid)) for k in ab}
        if BASELINE:
            ab["main"].stop()
        m = statistics.median
        o["runs"] = {k: [GiB / MiB / x for x in v] for k, v in t.items()}
        o["cpu"] = self.cpu
        o["ab"] = list(ab)
        o["load"] = os.getloadavg()[0]
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
        if self.shm:
            shutil.rmtree(self.shm, ignore_errors=True)


def main():
    b = Bench(os.path.join(os.environ["BENCH_WORK"], "rbd"))
    try:
        o = b.run()
    finally:
        b.cleanup()
    a = print
    m = statistics.median
    r = o["runs"]

    def ratio(k, base):
        return m([x / y for x, y in zip(r[k], r[base])])

    a("## RBD volumes: uploads, downloads, clones, idle memory")
    a()
    a("A private single-node Ceph cluster on 127.0.0.1 (tests/fixtures/ceph.py: one mon, one "
      "mgr, one OSD on memstore, so the OSD's data is in RAM; pool size 1). %d runs; each run "
      "measures every contender once: its upload, its download, then its image is removed, so "
      "each one meets the cluster in the same state; the order turns by one each run, after "
      "one transfer of each that is not measured (a fresh OSD is slow at first). MiB/s "
      "are medians of the runs, "
      "ratios medians of the runs' ratios. Like with like: the 1 GiB random source file is in "
      "tmpfs for every upload (curl -T, `rbd import`), every download goes to /dev/null "
      "(curl -o /dev/null, `rbd export … -` with stdout on /dev/null). Load average (1 min) "
      "at the end: %.1f on %d cores." % (RUNS, o["load"], os.cpu_count()))
    a()
    cols = ["this build"] + (["main's build (same run)"] if "main" in o["ab"] else [])
    a("| 1 GiB | %s | rbd CLI | ratio%s | target |" % (
        " | ".join(cols), " | main's ratio" if "main" in o["ab"] else ""))
    a("|---|%s---|---|%s---|" % ("---|" * len(cols), "---|" if "main" in o["ab"] else ""))
    for what, key, cli in (("upload / `rbd import`", "up", "imp"),
                           ("download / `rbd export` to stdout", "down", "exp")):
        figs = " | ".join("%.0f MiB/s" % m(r["%s_%s" % (k, key)]) for k in o["ab"])
        rat = " | ".join("**%.2f**" % ratio("%s_%s" % (k, key), cli) for k in o["ab"])
        a("| %s | %s | %.0f MiB/s | %s | ≥ 0.85 |" % (what, figs, m(r[cli]), rat))
    a()
    a("The ceiling of these cores without Ceph, same runs: this build to and from a tmpfs "
      "volume **%.0f MiB/s** up, **%.0f MiB/s** down (curl and the daemon on the 2 cores, "
      "where with RBD the OSD shares them too)." % (m(r["shm_up"]), m(r["shm_down"])))
    a()
    a("CPU seconds per GiB, medians of the runs (user + system, from /proc: the daemon's, "
      "curl's or the CLI's, and the OSD's during the same transfer):")
    a()
    a("| 1 GiB | daemon | curl / CLI | OSD |")
    a("|---|---|---|---|")
    names = {"this": "this build", "main": "main's build"}
    rows = [("%s %s" % ("upload," if key == "up" else "download,", names[k]), "%s_%s" % (k, key))
            for key in ("up", "down") for k in o["ab"]]
    rows[len(o["ab"]):len(o["ab"])] = [("`rbd import`", "imp")]
    rows.append(("`rbd export` to stdout", "exp"))
    for what, key in rows:
        c = o["cpu"][key]
        a("| %s | %s | %.2f | %.2f |" % (what, "%.2f" % m(x[0] for x in c) if key not in
                                         ("imp", "exp") else "—", m(x[1] for x in c),
                                         m(x[2] for x in c)))
    a()
    per_gib = {k: m(sum(x) for x in o["cpu"][k]) for k in ("this_up", "this_down")}
    cores = os.cpu_count()
    a("What these cores allow at most: with all %d of them busy for nothing else, this "
      "build's upload (daemon + curl + OSD: %.2f CPU-s per GiB) could go at %.0f MiB/s, "
      "**%.2f** of `rbd import`, and its download (%.2f CPU-s per GiB) at %.0f MiB/s, "
      "**%.2f** of `rbd export`; the mon, the mgr and the kernel's own work come on top." % (
          cores, per_gib["this_up"], cores * 1024 / per_gib["this_up"],
          cores * 1024 / per_gib["this_up"] / m(r["imp"]), per_gib["this_down"],
          cores * 1024 / per_gib["this_down"],
          cores * 1024 / per_gib["this_down"] / m(r["exp"])))
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
    a()
    a("After the data runs (2 s settled): %s." % "; ".join(
        "%s VmRSS %.1f MiB, VmHWM %.1f MiB" % (names[k], o["rss_after"][k][0] / 1024,
                                               o["rss_after"][k][1] / 1024) for k in o["ab"]))


if __name__ == "__main__":
    main()
