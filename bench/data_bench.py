#!/usr/bin/python3
"""data_bench.py — the body of bench_data.sh: the data path against this machine's limits.

Starts everything it measures and removes it at the end, whatever happens: an XFS loop
disk, a private glusterd with a disperse 4+2 volume (bricks under BENCH_WORK) and a FUSE
mount of it, and one stowaged ($STOWAGED) serving both volumes. Prints one Markdown
section on stdout; progress goes to stderr.

  1. 1 GiB upload/download on the XFS volume: curl over loopback vs dd conv=fdatasync
     and cat, page cache dropped before every run; then downloads of one file in pairs,
     stowaged and nginx one right after the other, cold and warm;
  2. the same on the Gluster volume (libgfapi in the daemon) vs dd/cat through FUSE;
  3. guest_clone of a 100 GiB raw image, 50 runs per volume, beside qemu-img create;
  4. peak RSS of the daemon during a 4 GiB upload.

Env: STOWAGED (binary), BENCH_WORK (scratch dir), BENCH_DATA_RUNS (runs per transfer
measurement, default 3), BENCH_DATA_PAIRS (download pairs, default 16),
BENCH_CLONE_RUNS (default 50), BENCH_GLUSTER_WAIT_S (how long to
wait for another glusterd on this host to go away, default 600), BENCH_DATA_STEPS (a comma
list of the steps to run alone: clone_loc, clone_g, loc, pairs, shm, g, rss; Gluster is set up
only when a Gluster step is in it), BENCH_DATA_CONFIG_EXTRA (JSON merged into the daemon's
config, e.g. '{"sendfile": false}' to measure the read path).
"""
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.daemon import Daemon  # noqa: E402
from fixtures.gluster import GlusterdBusy, start_when_free  # noqa: E402
from fixtures.loopdisk import LoopDisk  # noqa: E402
from benchlib import cpu_seconds, drop_caches, log, waiting_for_glusterd  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
RUNS = int(os.environ.get("BENCH_DATA_RUNS", "3"))
CLONE_RUNS = int(os.environ.get("BENCH_CLONE_RUNS", "50"))
PAIRS = int(os.environ.get("BENCH_DATA_PAIRS", "16"))
GVOL = "benchdata"
STORAGE = "bench"


GLUSTER_WAIT_S = float(os.environ.get("BENCH_GLUSTER_WAIT_S", "600"))


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def settle(limit_kib=64 * 1024, timeout=30):
    """Wait until the page cache has written back what the last upload left dirty: the
    next cold read must not share the disk with that writeback."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        os.sync()
        with open("/proc/meminfo") as f:
            kib = sum(int(line.split()[1]) for line in f
                      if line.startswith(("Dirty:", "Writeback:")))
        if kib < limit_kib:
            return
        time.sleep(0.5)


def timed(argv, **kw):
    """Run argv after dropping the page cache; seconds of wall time."""
    drop_caches(required=True)
    t0 = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    return time.monotonic() - t0


def mibs(size, seconds):
    return size / MiB / seconds


class Bench:
    def __init__(self, work):
        self.work = Path(work)
        self.cleanups = []
        self.session = requests.Session()
        self.results = {}

    def at_exit(self, fn):
        self.cleanups.append(fn)

    def cleanup(self):
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # keep going: everything else must still go
                log("cleanup: %r" % e)

    # ---------------------------------------------------------------- setup

    def setup(self):
        # an earlier run's state dir would remember its own disk as "loc" and refuse this
        # run's fresh one as another filesystem (make bench starts from an empty BENCH_WORK)
        if self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True)
        disk = LoopDisk(self.work / "disk", "24G")
        self.at_exit(disk.close)
        disk.mkfs_xfs()
        self.mnt = disk.mount(self.work / "mnt")
        self.gd = self.fuse = None
        only = os.environ.get("BENCH_DATA_STEPS")
        if not only or {"g", "clone_g"} & set(only.split(",")):
            try:
                self.gd = start_when_free(self.work / "gluster", GLUSTER_WAIT_S,
                                          waiting=waiting_for_glusterd)
            except GlusterdBusy as e:
                log("gluster: %s — skipping the Gluster measurements" % e)
                self.gluster_skipped = str(e)
        vols = [{"id": "loc", "kind": "local", "mount_point": str(self.mnt)}]
        # a volume without any disk under it: the ceiling of HTTP + hashing on this machine
        self.shm = Path("/dev/shm/stowage-bench-vol-%d" % os.getpid())
        self.shm.mkdir()
        self.at_exit(lambda: shutil.rmtree(self.shm, ignore_errors=True))
        vols.append({"id": "shm", "kind": "external", "mount_point": str(self.shm)})
        if self.gd:
            self.at_exit(self.gd.stop)
            self.gd.create_volume(GVOL, kind="disperse", bricks=6, redundancy=2)
            self.fuse = self.work / "fuse"
            self.fuse.mkdir(exist_ok=True)
            sh("mount", "-t", "glusterfs", "%s:/%s" % (self.gd.hostname, GVOL), str(self.fuse),
               timeout=60)
            self.at_exit(lambda: subprocess.run(["umount", str(self.fuse)]).returncode == 0 or
                         subprocess.run(["umount", "-l", str(self.fuse)]))
            vols.append({"id": "g", "kind": "gluster", "server": self.gd.hostname,
                         "volume": GVOL})
        self.start_nginx()
        self.d = Daemon(self.work / "daemon", config={
            "probe_ttl_ms": 1000, "log_requests": True,
            "storages": [{"id": STORAGE, "volumes": vols}],
            **json.loads(os.environ.get("BENCH_DATA_CONFIG_EXTRA", "{}"))})
        os.makedirs(self.d.tmpdir, exist_ok=True)
        self.d.start()
        self.at_exit(self.d.stop)

        def ready():
            info = self.d.get("/imagestorages/" + STORAGE).json()
            vs = info["volumes"] + info["gluster_volumes"] + info["external_volumes"]
            return len(vs) == len(vols) and all(v["status"] == "ok" for v in vs)
        self.d.wait_for(ready, timeout=120, what="volumes ok")
        # sources in tmpfs: reading them costs the same for every contender, and a
        # drop_caches cannot evict them
        self.src = Path("/dev/shm/stowage-bench-%d.raw" % os.getpid())
        self.at_exit(lambda: self.src.unlink(missing_ok=True))
        with open(self.src, "wb") as f:
            for _ in range(GiB // (16 * MiB)):
                f.write(os.urandom(16 * MiB))

    def start_nginx(self):
        """nginx serving the volumes' files with sendfile: the HTTP download ceiling."""
        self.nport = None
        if not shutil.which("nginx"):
            return
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.nport = s.getsockname()[1]
        ng = self.work / "nginx"
        ng.mkdir(exist_ok=True)
        locs = "location /loc/ { alias %s/; }\n" % self.mnt
        if self.fuse:
            locs += "location /g/ { alias %s/; }\n" % self.fuse
        (ng / "nginx.conf").write_text(
            "user root; worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/error.log;\n"
            "events { worker_connections 64; }\n"
            "http { access_log off; sendfile on; default_type application/octet-stream;\n"
            "client_body_temp_path %s/cb; proxy_temp_path %s/p; fastcgi_temp_path %s/f;\n"
            "uwsgi_temp_path %s/u; scgi_temp_path %s/s;\n"
            "server { listen 127.0.0.1:%d; %s } }\n" % ((ng,) * 7 + (self.nport, locs)))
        proc = subprocess.Popen(["nginx", "-c", str(ng / "nginx.conf"), "-p", str(ng)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            proc.terminate()
            proc.wait(timeout=30)
        self.at_exit(stop)
        time.sleep(0.5)
        with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
            self.nginx_worker = int(f.read().split()[0])  # worker_processes 1

    def nginx_down(self, vid, rel, cold=True):
        if cold:
            drop_caches(required=True)
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                            "http://127.0.0.1:%d/%s/%s" % (self.nport, vid, rel)],
                           capture_output=True, text=True, check=True)
        code, secs = r.stdout.split()
        if code != "200":
            raise RuntimeError("nginx %s/%s: %s" % (vid, rel, code))
        return float(secs)

    # ---------------------------------------------------------------- helpers

    def task(self, typ, timeout=600, **params):
        """Submit a task and poll it to completion: (view, seconds from POST to completed)."""
        h = self.d.headers()
        t0 = time.monotonic()
        r = self.session.post(self.d.url("/tasks/create"), headers=h, timeout=60,
                              json=dict(type=typ, repeat="0", retries="0", **params))
        r.raise_for_status()
        tid = r.json()["message"]
        while True:
            t = self.session.get(self.d.url("/tasks/" + tid), headers=h, timeout=60).json()
            if t["state"] == "completed":
                return t, time.monotonic() - t0, tid
            if time.monotonic() - t0 > timeout:
                raise RuntimeError("task %s %s did not complete: %r" % (typ, tid, t))

    def uuid_of(self, name):
        import sqlite3
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.d.state_dir, "stowage.db"),
                              uri=True, timeout=30)
        try:
            row = con.execute("SELECT uuid, format FROM image WHERE name = ? AND status = 'active'",
                              (name,)).fetchone()
        finally:
            con.close()
        if not row:
            raise RuntimeError("no active image %s" % name)
        return row

    def curl_up(self, name, vid):
        drop_caches(required=True)
        url = self.d.url("/image/%s/file/?volume_id=%s" % (name, vid))
        r = subprocess.run(["curl", "-sS", "-o", str(self.work / "up.json"), "-w",
                            "%{http_code} %{time_total}", "-T", str(self.src), "-H", "Expect:",
                            "-H", "Authorization: Bearer " + self.d.token, url],
                           capture_output=True, text=True, check=True)
        code, secs = r.stdout.split()
        if code != "201":
            raise RuntimeError("upload %s: %s %s" % (name, code, (self.work / "up.json").read_text()))
        return float(secs)

    def curl_down(self, name, cold=True):
        if cold:
            drop_caches(required=True)
        r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                            "-H", "Authorization: Bearer " + self.d.token,
                            self.d.url("/image/%s/file/" % name)],
                           capture_output=True, text=True, check=True)
        code, secs = r.stdout.split()
        if code != "200":
            raise RuntimeError("download %s: %s" % (name, code))
        return float(secs)

    def delete(self, name):
        t, _, _ = self.task("image_delete", image_id=name)
        if t["result"] != "success":
            raise RuntimeError("image_delete %s: %r" % (name, t))

    # ---------------------------------------------------------------- measurements

    def transfer(self, vid, root, label):
        """Upload and download 1 GiB through stowaged vs dd/cat on the same filesystem."""
        up, dd, down, cat, ngx, wdown, wngx, cpu, ncpu = [], [], [], [], [], [], [], [], []
        ddfile = root / "dd-bench.raw"
        for i in range(RUNS):
            dd.append(timed(["dd", "if=%s" % self.src, "of=%s" % ddfile, "bs=4M", "conv=fdatasync"]))
            name = "bench-%s-%d" % (vid, i)
            ddfile.unlink()
            up.append(self.curl_up(name, vid))
            settle()
            uuid, fmt = self.uuid_of(name)
            rel = "images/%s.%s" % (uuid, fmt)
            # the very file the daemon serves, read through the filesystem
            read_file = ["sh", "-c", 'cat "$1" > /dev/null', "cat", str(root / rel)]

            def by_stowaged():
                down.append(self.curl_down(name))
                c0 = cpu_seconds(self.d.proc.pid)
                wdown.append(self.curl_down(name, cold=False))  # the page cache holds it now
                cpu.append(cpu_seconds(self.d.proc.pid) - c0)

            def by_cat():
                cat.append(timed(read_file))

            def by_nginx():
                ngx.append(self.nginx_down(vid, rel))
                c0 = cpu_seconds(self.nginx_worker)
                wngx.append(self.nginx_down(vid, rel, cold=False))
                ncpu.append(cpu_seconds(self.nginx_worker) - c0)

            # The first cold read of a file just written can take up to 3x the next ones on
            # the loop disk, whoever makes it: one read that no contender is timed on, then
            # the cold readers in an order that turns with each run, so none always goes first.
            timed(read_file)
            readers = [by_stowaged, by_cat] + ([by_nginx] if self.nport else [])
            for k in range(len(readers)):
                readers[(i + k) % len(readers)]()
            self.delete(name)
            log("%s run %d: up %.2fs dd %.2fs down %.2fs warm %.2fs cat %.2fs nginx %s warm %s" % (
                label, i, up[-1], dd[-1], down[-1], wdown[-1], cat[-1], ngx[-1:], wngx[-1:]))
        m = statistics.median
        # each run's own ratio: its two cold reads of one file, on the disk as it was then
        pairs = [n / s for s, n in zip(down, ngx)]
        return {"pairs": pairs,
                "up": mibs(GiB, m(up)), "dd": mibs(GiB, m(dd)), "down": mibs(GiB, m(down)),
                "cat": mibs(GiB, m(cat)), "nginx": mibs(GiB, m(ngx)) if ngx else None,
                "wdown": mibs(GiB, m(wdown)), "wnginx": mibs(GiB, m(wngx)) if wngx else None,
                "cpu": m(cpu), "ncpu": m(ncpu) if ncpu else None}

    def pairs(self, vid, root):
        """PAIRS downloads of one file by stowaged and by nginx one right after the other,
        the order turning with each pair, cold (page cache dropped before each) then warm:
        each pair's ratio is two reads of the same file on the disk as it was then, so the
        median of many pairs is steadier than a ratio of medians over a drifting disk."""
        if not self.nport:
            return None
        name = "bench-pairs-%s" % vid
        self.curl_up(name, vid)
        settle()
        uuid, fmt = self.uuid_of(name)
        rel = "images/%s.%s" % (uuid, fmt)
        timed(["sh", "-c", 'cat "$1" > /dev/null', "cat", str(root / rel)])  # the first read
        cold, warm = [], []
        for i in range(PAIRS):
            for want_cold, out in ((True, cold), (False, warm)):
                if i % 2 == 0:
                    s = self.curl_down(name, cold=want_cold)
                    n = self.nginx_down(vid, rel, cold=want_cold)
                else:
                    n = self.nginx_down(vid, rel, cold=want_cold)
                    s = self.curl_down(name, cold=want_cold)
                out.append((s, n))
            log("pair %d: cold %.3fs / nginx %.3fs, warm %.3fs / nginx %.3fs" % (
                i, cold[-1][0], cold[-1][1], warm[-1][0], warm[-1][1]))
        self.delete(name)

        def summary(ps):
            rs = sorted(n / s for s, n in ps)
            return {"median": statistics.median(rs), "q1": rs[len(rs) // 4],
                    "q3": rs[(3 * len(rs)) // 4], "lo": rs[0], "hi": rs[-1],
                    "faster": sum(1 for s, n in ps if s <= n), "s": statistics.median(
                        s for s, _ in ps), "n": statistics.median(n for _, n in ps)}
        return {"cold": summary(cold), "warm": summary(warm), "n": PAIRS}

    def ceiling(self):
        """The same upload/download to a tmpfs volume, and SHA-256 alone: what the CPU allows."""
        up, down = [], []
        for i in range(RUNS):
            name = "bench-shm-%d" % i
            up.append(self.curl_up(name, "shm"))
            down.append(self.curl_down(name))
            self.delete(name)
        t0 = time.monotonic()
        sh("openssl", "dgst", "-sha256", str(self.src))
        sha = time.monotonic() - t0
        log("tmpfs: up %s down %s; openssl sha256 %.2fs" % (up, down, sha))
        return {"up": mibs(GiB, statistics.median(up)), "down": mibs(GiB, statistics.median(down)),
                "sha": mibs(GiB, sha)}

    def clones(self, vid, root, url_root):
        """50 guest_clone of a 100 GiB raw image; hyperfine of qemu-img create beside it."""
        name = "base100-" + vid
        t, secs, _ = self.task("image_create", image_id=name, volume_id=vid,
                               image_storage_id=STORAGE, size_mb=102400, format="raw")
        if t["result"] != "success":
            raise RuntimeError("image_create: %r" % t)
        uuid, fmt = self.uuid_of(name)
        os.sync()  # the GiBs written before must not be flushed inside a clone's fsyncs
        time.sleep(2)
        log_mark = len(self.d.log())
        client, ids = [], []
        for i in range(CLONE_RUNS):
            cid = "c%s%03d" % (vid, i)
            t, secs, tid = self.task("guest_clone", image_id=name, guest_id="g%03d" % i, clone_id=cid)
            if t["result"] != "success":
                raise RuntimeError("guest_clone: %r" % t)
            client.append(secs * 1e3)
            ids.append(tid)
        server_post, server_task = [], []
        text = self.d.log()[log_mark:]
        for line in text.splitlines():
            m = re.match(r"POST /tasks/create \d+ \d+B (\d+)us", line)
            if m:
                server_post.append(int(m.group(1)) / 1e3)
            m = re.search(r"task (\S+) \((?:guest_clone|clone\.create)\): success.*?\b(\d+)us\b", line)
            if m and m.group(1) in ids:
                server_task.append(int(m.group(2)) / 1e3)
        for i in range(CLONE_RUNS):
            self.task("clone_delete", clone_id="c%s%03d" % (vid, i))
        # qemu-img create of the same overlay on the same file
        base_rel = "../images/%s.%s" % (uuid, fmt)
        out_local = root / "clones" / "hyperfine.qcow2"
        hf = {}

        def shown(cmd):  # the report names no path or host of this machine
            return cmd.replace(str(root), "VOLUME").replace(
                "gluster://%s/" % socket.gethostname(), "gluster://HOST/")
        cmds = {"fs": "qemu-img create -q -f qcow2 -b %s -F raw %s" % (base_rel, out_local)}
        if url_root:
            cmds["url"] = "qemu-img create -q -f qcow2 -b %s -F raw %s/clones/hyperfine.qcow2" % (
                "%s/images/%s.%s" % (url_root, uuid, fmt), url_root)
        for k, cmd in cmds.items():
            jf = self.work / ("hf-%s-%s.json" % (vid, k))
            # through gluster:// every run pays glfs_init and glfs_fini (seconds): fewer runs
            runs = ["--warmup", "2", "--runs", "20"] if k == "fs" else ["--warmup", "0", "--runs", "3"]
            r = subprocess.run(["hyperfine", "-N", *runs, "--prepare", "rm -f %s" % out_local,
                                "--export-json", str(jf), cmd], capture_output=True, text=True,
                               timeout=1800)
            if r.returncode != 0:
                why = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1]
                log("hyperfine %s failed: %s" % (cmd, r.stderr[-2000:]))
                hf[k] = (None, shown(cmd), why)
                continue
            res = json.loads(jf.read_text())["results"][0]
            hf[k] = (res["median"] * 1e3, shown(cmd), None)
        out_local.unlink(missing_ok=True)
        self.delete(name)
        p50 = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
        return {"client_p50": p50(client), "client_p90": sorted(client)[int(len(client) * 0.9) - 1],
                "post_p50": p50(server_post), "task_p50": p50(server_task), "hf": hf}

    def rss(self):
        """Peak RSS above idle while a 4 GiB upload streams in."""
        src = self.work / "zero-4g.raw"
        with open(src, "wb") as f:
            f.truncate(4 * GiB)
        self.at_exit(lambda: src.unlink(missing_ok=True))
        pid = self.d.proc.pid

        def status():
            out = {}
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("VmRSS", "VmHWM"):
                        out[k] = int(v.split()[0])
            return out
        time.sleep(1)
        idle = status()
        peak = [idle["VmRSS"]]
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                peak[0] = max(peak[0], status()["VmRSS"])
                time.sleep(0.01)
        th = threading.Thread(target=poll)
        th.start()
        t0 = time.monotonic()
        try:
            r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(src),
                                "-H", "Expect:", "-H", "Authorization: Bearer " + self.d.token,
                                self.d.url("/image/rss4g/file/?volume_id=loc")],
                               capture_output=True, text=True)
        finally:
            stop.set()
            th.join()
        secs = time.monotonic() - t0
        after = status()
        if r.stdout != "201":
            raise RuntimeError("4 GiB upload: %s %s" % (r.stdout, r.stderr))
        self.delete("rss4g")
        return {"idle": idle["VmRSS"], "peak": peak[0], "hwm": after["VmHWM"], "secs": secs}


def fmt_ratio(a, b):
    return "%.2f" % (a / b) if a and b else "–"


def main():
    work = Path(os.environ.get("BENCH_WORK", "/tmp/stowage-bench")) / "data"
    b = Bench(work)
    b.gluster_skipped = None
    out = {}
    error = None
    try:
        b.setup()
        # clones first: their latency is measured on volumes that are not still writing
        # back the GiBs of the transfers
        steps = [("clone_loc", lambda: b.clones("loc", b.mnt, None))]
        if b.gd:
            steps.append(("clone_g", lambda: b.clones(
                "g", b.fuse, "gluster://%s/%s" % (socket.gethostname(), GVOL))))
        steps += [("loc", lambda: b.transfer("loc", b.mnt, "xfs")),
                  ("pairs", lambda: b.pairs("loc", b.mnt)), ("shm", b.ceiling)]
        if b.gd:
            steps.append(("g", lambda: b.transfer("g", b.fuse, "gluster")))
        steps.append(("rss", b.rss))
        only = os.environ.get("BENCH_DATA_STEPS")  # e.g. "loc,rss": a part of the bench alone
        if only:
            steps = [(k, fn) for k, fn in steps if k in only.split(",")]
        for key, fn in steps:
            log("== " + key)
            out[key] = fn()
    except Exception as e:  # report what was measured, and why the rest was not
        import traceback
        traceback.print_exc()
        error = "%s: %s" % (type(e).__name__, e)
    finally:
        b.cleanup()
    print(report(out, b.gluster_skipped, error))
    sys.exit(1 if error else 0)


def report(o, gluster_skipped, error=None):
    L = []
    a = L.append
    a("## Data path: uploads, downloads, clones, memory")
    a("")
    a("1 GiB of random bytes from tmpfs, curl over loopback (`-T`, no `Expect`), "
      "%d runs each, medians. `echo 3 > /proc/sys/vm/drop_caches` (after `sync`) before every "
      "run of every contender, so reads come from the device; after each upload one cold read "
      "nobody is timed on (the first read of a file just written is the slowest, whoever "
      "makes it), then stowaged, `cat` and nginx read it cold in an order that turns with "
      "each run. Local: XFS (reflink=1) on a loop "
      "device backed by a sparse file on this machine's disk. Gluster: disperse 4 + 2, six "
      "bricks on the same disk, one host; stowaged through libgfapi, the baselines through a "
      "FUSE mount of the same volume." % RUNS)
    a("")
    a("| volume | stowaged upload | dd bs=4M conv=fdatasync | ratio (target ≥ 0.85) | "
      "stowaged download | cat > /dev/null | ratio (target ≥ 0.90) | nginx sendfile, same file | "
      "ratio to nginx (target ≥ 0.95) | warm: stowaged | warm: nginx | warm ratio (≥ 0.95) |")
    a("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key, label in (("loc", "XFS loop"), ("g", "Gluster 4+2 (FUSE baseline)")):
        if key not in o:
            a("| %s | skipped: %s |  |  |  |  |  |  |  |  |  |  |" % (
                label, gluster_skipped or "not measured"))
            continue
        r = o[key]
        ng = r.get("nginx")
        wng = r.get("wnginx")
        a("| %s | %.0f MiB/s | %.0f MiB/s | **%s** | %.0f MiB/s | %.0f MiB/s | **%s** | %s | **%s** "
          "| %.0f MiB/s | %s | **%s** |" % (
              label, r["up"], r["dd"], fmt_ratio(r["up"], r["dd"]), r["down"], r["cat"],
              fmt_ratio(r["down"], r["cat"]), "%.0f MiB/s" % ng if ng else "–",
              fmt_ratio(r["down"], ng) if ng else "–", r["wdown"],
              "%.0f MiB/s" % wng if wng else "–", fmt_ratio(r["wdown"], wng) if wng else "–"))
    for key, label in (("loc", "XFS loop"), ("g", "Gluster")):
        r = o.get(key)
        if r and r.get("pairs"):
            a("")
            a("Cold, %s, each run's own ratio of nginx's time to stowaged's (the same file, "
              "read cold by both in that run): %s; median **%.2f**. The loop disk's speed "
              "drifts between runs more than between two reads of one run." % (
                  label, ", ".join("%.2f" % x for x in r["pairs"]),
                  statistics.median(r["pairs"])))
    p = o.get("pairs")
    if p:
        a("")
        a("Downloads of one 1 GiB file on the XFS loop volume in %d pairs, stowaged and nginx "
          "one right after the other, the order turning with each pair (cold: page cache "
          "dropped before each read; warm: at once again). Ratio = nginx's time / stowaged's "
          "in the pair (target ≥ 0.95):" % p["n"])
        a("")
        a("| | median ratio | middle half | range | pairs stowaged was as fast | stowaged, median "
          "| nginx, median |")
        a("|---|---|---|---|---|---|---|")
        for k in ("cold", "warm"):
            r = p[k]
            a("| %s | **%.2f** | %.2f–%.2f | %.2f–%.2f | %d of %d | %.0f MiB/s | %.0f MiB/s |" % (
                k, r["median"], r["q1"], r["q3"], r["lo"], r["hi"], r["faster"], p["n"],
                GiB / MiB / r["s"], GiB / MiB / r["n"]))
    a("")
    a("stowaged's upload includes what dd does not: sha256 of every byte, the format "
      "inspection, fsync of file and directory, the catalogue commit. A download can go no "
      "faster than curl receives over loopback: nginx (one worker, sendfile, no TLS) serving "
      "the very same file, reached through the same filesystem, shows that ceiling beside "
      "`cat`. Warm is the same download again at once, from the page cache. stowaged sends "
      "a range without holes on a local volume by sendfile in 4 MiB steps (src/http/sendfile.c).")
    for key, label in (("loc", "XFS loop"), ("g", "Gluster")):
        r = o.get(key)
        if r and r.get("ncpu") is not None:
            a("")
            a("CPU time of a warm 1 GiB download (%s), the server process's user + system, "
              "median: stowaged **%.3f s**, nginx's worker %.3f s." % (label, r["cpu"], r["ncpu"]))
    if "shm" in o:
        c = o["shm"]
        a("")
        a("The ceiling without any disk on these 2 cores (curl and the daemon share them): "
          "stowaged to a tmpfs volume **%.0f MiB/s** up, **%.0f MiB/s** down; SHA-256 alone "
          "(`openssl dgst -sha256`, one core) %.0f MiB/s." % (c["up"], c["down"], c["sha"]))
    a("")
    a("### guest_clone of a 100 GiB raw image (%d runs)" % CLONE_RUNS)
    a("")
    a("| volume | POST → completed p50 (client) | p90 | POST /tasks/create in the request log, p50 | "
      "task run time in the log, p50 | target | qemu-img create -b (hyperfine median) |")
    a("|---|---|---|---|---|---|---|")
    for key, label, target in (("clone_loc", "XFS loop", "< 5 ms"), ("clone_g", "Gluster", "< 20 ms")):
        if key not in o:
            a("| %s | skipped |  |  |  | %s |  |" % (label, target))
            continue
        c = o[key]
        hf = "; ".join(("%.1f ms (`%s`)" % (ms, cmd)) if ms is not None else
                       ("failed: %s (`%s`)" % (why, cmd)) for ms, cmd, why in c["hf"].values())
        a("| %s | **%.2f ms** | %.2f ms | %s | %s | %s | %s |" % (
            label, c["client_p50"], c["client_p90"],
            "%.3f ms" % c["post_p50"] if c["post_p50"] is not None else "–",
            "%.3f ms" % c["task_p50"] if c["task_p50"] is not None else "not logged",
            target, hf))
    a("")
    a("The client time includes the task queue and the polling of `GET /tasks/{id}` (a tight "
      "loop on one keep-alive connection). Clones are measured first, on volumes that are not "
      "still writing back the GiBs of the transfers below. VOLUME is the volume's mount point "
      "(XFS) or FUSE mount (Gluster). On Gluster a clone is a chain of round trips to all six "
      "bricks of the disperse volume, each waiting for the last: create the staging file, write "
      "and fsync the header, link and unlink (a rename that cannot replace), fsync clones/; the "
      "daemon keeps one gfapi session and the directory open, and writes only the header's "
      "non-zero pages.")
    a("")
    r = o.get("rss")
    a("### Memory during a 4 GiB upload")
    a("")
    if not r:
        a("not measured")
    else:
        a("VmRSS polled every 10 ms while curl streamed a 4 GiB file to the XFS volume (%.1f s): "
          "idle **%d MiB**, peak **%d MiB**, so **%d MiB above idle** (target < 32 MiB); VmHWM "
          "after the upload %d MiB." % (r["secs"], r["idle"] // 1024, r["peak"] // 1024,
                                        (r["peak"] - r["idle"]) // 1024, r["hwm"] // 1024))
    if error:
        a("")
        a("**The benchmark stopped early:** `%s` (the rest was not measured; see stderr)." % error)
    return "\n".join(L)


if __name__ == "__main__":
    main()
