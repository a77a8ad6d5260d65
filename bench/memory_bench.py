#!/usr/bin/python3
"""memory_bench.py — the body of bench_memory.sh: what the daemon holds, idle and under load.

Starts everything it measures and removes it at the end, whatever happens: an XFS loop
disk, one stowaged ($STOWAGED) on it, then (unless BENCH_MEMORY_GLUSTER=0) a private
glusterd with a disperse 4+2 volume and a second stowaged serving only that volume.
Prints one Markdown section on stdout; progress goes to stderr.

  1. VmRSS idle after the start, and idle again after 1 GiB up and 1 GiB down;
  2. VmRSS of 200 downloads whose clients stop reading: a 32 MiB image without holes
     (sent by sendfile) and a sparse one (read in blocks that skip the holes);
  3. VmRSS with 1,000 idle connections (limits.per_ip_connections raised for it);
  4. with one Gluster volume: idle after the start and after 1 GiB up and down.

Env: STOWAGED, BENCH_WORK, BENCH_MEMORY_GLUSTER (0: skip step 4), BENCH_GLUSTER_WAIT_S.
"""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.daemon import Daemon  # noqa: E402
from fixtures.gluster import GlusterdBusy, start_when_free  # noqa: E402
from fixtures.loopdisk import LoopDisk  # noqa: E402
from benchlib import log, rss_kib, waiting_for_glusterd  # noqa: E402

MiB, GiB = 1 << 20, 1 << 30
STALLED, IDLE = 200, 1000


GLUSTER_WAIT_S = float(os.environ.get("BENCH_GLUSTER_WAIT_S", "600"))


def settled_rss(pid, secs=2.0):
    time.sleep(secs)
    return rss_kib(pid)


def curl(d, *args):
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:",
                        "-H", "Authorization: Bearer " + d.token, *args],
                       capture_output=True, text=True, timeout=600)
    return r.stdout


def transfer(d, src, name, vid):
    """1 GiB up and the same GiB down; both must succeed."""
    code = curl(d, "-T", str(src), d.url("/image/%s/file/?volume_id=%s" % (name, vid)))
    if code != "201":
        raise RuntimeError("upload %s: %s" % (name, code))
    code = curl(d, d.url("/image/%s/file/" % name))
    if code != "200":
        raise RuntimeError("download %s: %s" % (name, code))


def put(d, name, data):
    r = d.request("PUT", "/image/%s/file/" % name, data=data, timeout=120)
    if r.status_code != 201:
        raise RuntimeError("upload %s: %s %s" % (name, r.status_code, r.text))


def stalled(d, name):
    """RSS added by STALLED downloads of name whose clients read nothing (KiB each)."""
    base = settled_rss(d.proc.pid, 1)
    socks = []
    try:
        for _ in range(STALLED):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", d.port))
            s.sendall(b"GET /image/%s/file/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                      % (name.encode(), d.token.encode()))
            socks.append(s)
        held = settled_rss(d.proc.pid, 3) - base
    finally:
        for s in socks:
            s.close()
    return held / STALLED


def idle_connections(d):
    """The daemon's whole RSS while IDLE connections send nothing (KiB)."""
    socks = []
    try:
        for _ in range(IDLE):
            s = socket.socket()
            s.connect(("127.0.0.1", d.port))
            socks.append(s)
        total = settled_rss(d.proc.pid, 2)
        # all of them are still open: a request on a new one is answered
        r = d.get("/v1/health", timeout=10)
        if r.status_code != 200:
            raise RuntimeError("health with %d idle connections: %s" % (IDLE, r.status_code))
    finally:
        for s in socks:
            s.close()
    return total


def sparse_image(size):
    """size bytes: 64 KiB of data at the start of each 4 MiB, holes between."""
    out = bytearray(size)
    for off in range(0, size, 4 * MiB):
        out[off:off + 64 * 1024] = os.urandom(64 * 1024)
    return bytes(out)


def local_part(work, src, out, cleanups):
    disk = LoopDisk(work / "disk", "8G")
    cleanups.append(disk.close)
    disk.mkfs_xfs()
    mnt = disk.mount(work / "mnt")
    d = Daemon(work / "daemon", config={
        "log_requests": False, "threads": 2,
        "limits": {"max_connections": IDLE + 100, "per_ip_connections": IDLE + 100},
        "storages": [{"id": "default", "volumes": [
            {"id": "loc", "kind": "local", "mount_point": str(mnt)}]}]})
    os.makedirs(d.tmpdir, exist_ok=True)
    d.start()
    cleanups.append(d.stop)
    d.wait_for(lambda: d.get("/imagestorages/default").json()["volumes"][0]["status"] == "ok",
               timeout=60, what="volume ok")
    out["start"] = settled_rss(d.proc.pid)
    log("local: idle after start %d KiB" % out["start"])
    transfer(d, src, "gib", "loc")
    out["after"] = settled_rss(d.proc.pid)
    log("local: idle after 1 GiB up + down %d KiB" % out["after"])
    put(d, "stall-dense", os.urandom(32 * MiB))
    put(d, "stall-sparse", sparse_image(32 * MiB))
    out["stalled_dense"] = stalled(d, "stall-dense")
    out["stalled_sparse"] = stalled(d, "stall-sparse")
    log("stalled: %.0f KiB (sendfile), %.0f KiB (sparse, reads)" % (
        out["stalled_dense"], out["stalled_sparse"]))
    out["idle_before"] = settled_rss(d.proc.pid)
    out["idle_conns"] = idle_connections(d)
    log("%d idle connections: %d KiB in all" % (IDLE, out["idle_conns"]))


def gluster_part(work, src, out, cleanups):
    try:
        gd = start_when_free(work / "gluster", GLUSTER_WAIT_S, waiting=waiting_for_glusterd)
    except GlusterdBusy as e:
        out["gluster_skipped"] = str(e)
        return
    cleanups.append(gd.stop)
    gd.create_volume("benchmem", kind="disperse", bricks=6, redundancy=2)
    d = Daemon(work / "gdaemon", config={
        "log_requests": False, "threads": 2,
        "storages": [{"id": "default", "volumes": [
            {"id": "g", "kind": "gluster", "server": gd.hostname, "volume": "benchmem"}]}]})
    os.makedirs(d.tmpdir, exist_ok=True)
    d.start()
    cleanups.append(d.stop)

    def ready():
        vs = d.get("/imagestorages/default").json()["gluster_volumes"]
        return vs and vs[0]["status"] == "ok"
    d.wait_for(ready, timeout=120, what="gluster volume ok")
    out["g_start"] = settled_rss(d.proc.pid)
    transfer(d, src, "ggib", "g")
    out["g_after"] = settled_rss(d.proc.pid)
    log("gluster: idle %d KiB after start, %d KiB after 1 GiB up + down" % (
        out["g_start"], out["g_after"]))


def report(o, error):
    mib = lambda k: "%.1f MiB" % (o[k] / 1024) if k in o else "not measured"  # noqa: E731
    L = ["## Memory: idle, stalled downloads, idle connections", "",
         "VmRSS of the daemon (RelWithDebInfo, 2 HTTP threads), 2 s after each step settled. "
         "Transfers are 1 GiB of random bytes with curl over loopback, one upload and one "
         "download of it. Stalled clients send a GET and read nothing (4 KiB receive buffer).",
         "",
         "| measure | value | target |", "|---|---|---|",
         "| idle after the start, one XFS volume | %s | — |" % mib("start"),
         "| idle after 1 GiB up and 1 GiB down, XFS | **%s** | < 16 MiB |" % mib("after")]
    for k, what in (("stalled_dense", "32 MiB image without holes (sendfile)"),
                    ("stalled_sparse", "32 MiB sparse image (reads that skip holes)")):
        v = "**%.0f KiB**" % o[k] if k in o else "not measured"
        L.append("| RSS per stalled download (%d clients), %s | %s | ≤ 256 KiB |" % (STALLED, what, v))
    if "idle_conns" in o:
        L.append("| %d idle connections, the whole daemon | **%s** (%.1f MiB before them) | "
                 "< 64 MiB |" % (IDLE, mib("idle_conns"), o["idle_before"] / 1024))
    if "gluster_skipped" in o:
        L.append("| one Gluster volume | skipped: %s | |" % o["gluster_skipped"])
    else:
        L.append("| idle after the start, one Gluster volume (disperse 4+2) | %s | — |" % mib("g_start"))
        L.append("| idle after 1 GiB up and 1 GiB down, Gluster | **%s** | < 48 MiB |" % mib("g_after"))
    if error:
        L += ["", "**The benchmark stopped early:** `%s` (see stderr)." % error]
    return "\n".join(L)


def main():
    work = Path(os.environ.get("BENCH_WORK", "/tmp/stowage-bench")) / "memory"
    work.mkdir(parents=True, exist_ok=True)
    src = Path("/dev/shm/stowage-bench-mem-%d.raw" % os.getpid())
    cleanups = [lambda: src.unlink(missing_ok=True)]
    out, error = {}, None
    try:
        with open(src, "wb") as f:
            for _ in range(GiB // (16 * MiB)):
                f.write(os.urandom(16 * MiB))
        local_part(work, src, out, cleanups)
        if os.environ.get("BENCH_MEMORY_GLUSTER", "1") != "0":
            gluster_part(work, src, out, cleanups)
    except Exception as e:  # report what was measured, and why the rest was not
        import traceback
        traceback.print_exc()
        error = "%s: %s" % (type(e).__name__, e)
    finally:
        for fn in reversed(cleanups):
            try:
                fn()
            except Exception as e:  # keep going: everything else must still go
                log("cleanup: %r" % e)
    print(report(out, error))
    sys.exit(1 if error else 0)


if __name__ == "__main__":
    main()
