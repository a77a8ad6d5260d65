#!/usr/bin/python3
"""create_bench.py — the body of bench_create.sh: durable image creates against this
machine's own commit limits.

One stowaged ($STOWAGED) with an external volume and its state dir on one fresh XFS made
for the run (a loop device over a sparse file in BENCH_WORK). Clients on keep-alive connections each create images by
`PUT /v1/images/{uuid}/file?name=…` with a 1-byte body: a staging file, the byte
written, hashed and inspected, the file fsynced, renamed into images/ and the directory
fsynced, the row inserted active — each reply only once all of that is durable. Measured with
4 and 64 clients, 1,000 creates each run, then the images are counted in the catalogue.

Baselines on the same filesystem in the same run:
  - fsync: one thread writing a byte and calling fdatasync, 1,000 times (the disk's
    sequential flush rate);
  - sqlite3 FULL: 1,000 single-row transactions with journal_mode=WAL, synchronous=FULL,
    from 4 threads with a connection each (what a catalogue that fsyncs inside every
    commit can do);
  - the protocol by hand: 4 threads each doing what one create must (a staging file
    written and fdatasynced, renamed into images/, the directory fsynced, a one-row FULL
    commit), sharing nothing — the cost of a create on this disk at this moment;
  - the protocol batched by hand: one thread doing it for batches of 4 creates (4 staging
    files written; their bytes made durable by one syncfs, or by an fdatasync of each;
    the 4 renames, one fsync of images/, one FULL commit of the 4 rows) — what this
    filesystem allows a daemon that batches everything.

With BENCH_BASE_STOWAGED (another build, e.g. main's) both run in the same session,
alternating, for an A/B on the same machine. Prints one Markdown section on stdout. Env:
STOWAGED, BENCH_WORK, BENCH_CREATES (default 1000), BENCH_ROUNDS (default 3),
BENCH_BASE_STOWAGED.
"""
import ctypes
import http.client
import os
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from fixtures.daemon import Daemon  # noqa: E402
from fixtures.loopdisk import LoopDisk  # noqa: E402
from benchlib import log  # noqa: E402

N = int(os.environ.get("BENCH_CREATES", "1000"))
STORAGE = "bench"


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def timed_threads(worker, n):
    """Seconds that n threads running worker() take, all started together."""
    ts = [threading.Thread(target=worker) for _ in range(n)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0


def fsync_rate(d, n=N):
    path = d / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    t0 = time.monotonic()
    for i in range(n):
        os.pwrite(fd, b"x", i)
        os.fdatasync(fd)
    secs = time.monotonic() - t0
    os.close(fd)
    path.unlink()
    return n / secs


def sqlite_full_rate(d, clients=4, n=N):
    path = d / "full.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v INTEGER)")
    db.close()
    todo = iter(range(n))
    lock = threading.Lock()

    def worker():
        c = sqlite3.connect(path, timeout=30, isolation_level=None)
        c.execute("PRAGMA synchronous=FULL")
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO t VALUES (?, ?)", (str(uuid.uuid4()), i))
            c.execute("COMMIT")
        c.close()
    secs = timed_threads(worker, clients)
    for tail in ("", "-wal", "-shm"):
        Path(str(path) + tail).unlink(missing_ok=True)
    return n / secs


def protocol_rate(d, clients=4, n=N):
    """The create protocol done by hand, without a daemon: each of `clients` threads writes a
    byte to a new staging file, fdatasyncs it, renames it into images/, fsyncs the
    directory and commits a one-row transaction (WAL, synchronous=FULL) on its own
    connection — no sharing of anything. What a create costs on this disk right now."""
    root = Path(tempfile.mkdtemp(prefix="protocol", dir=d))
    (root / "staging").mkdir()
    (root / "images").mkdir()
    db = sqlite3.connect(root / "p.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (id TEXT PRIMARY KEY, v INTEGER)")
    db.close()
    todo = iter(range(n))
    lock = threading.Lock()

    def worker():
        c = sqlite3.connect(root / "p.db", timeout=30, isolation_level=None)
        c.execute("PRAGMA synchronous=FULL")
        dfd = os.open(root / "images", os.O_RDONLY | os.O_DIRECTORY)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            u = str(uuid.uuid4())
            fd = os.open(root / "staging" / u, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b"\0")
            os.fdatasync(fd)
            os.close(fd)
            os.rename(root / "staging" / u, root / "images" / u)
            os.fsync(dfd)
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO t VALUES (?, ?)", (u, i))
            c.execute("COMMIT")
        os.close(dfd)
        c.close()
    secs = timed_threads(worker, clients)
    return n / secs  # its files stay until the end (see main)


LIBC = ctypes.CDLL(None, use_errno=True)


def syncfs(fd):
    if LIBC.syncfs(fd) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def batched_rate(d, sync, k=4, n=N):
    """The create protocol done by hand for batches of k by one thread: k staging files
    written, their bytes made durable by sync(fds), renamed into images/, one fsync of the
    directory, one FULL commit of the k rows. What batching everything can reach here."""
    root = Path(tempfile.mkdtemp(prefix="batched", dir=d))
    (root / "staging").mkdir()
    (root / "images").mkdir()
    c = sqlite3.connect(root / "p.db", isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=FULL")
    c.execute("CREATE TABLE t (id TEXT PRIMARY KEY)")
    dfd = os.open(root / "images", os.O_RDONLY | os.O_DIRECTORY)
    steps = {"files": [], "images/": [], "COMMIT": []}  # each batch's three durable steps
    t0 = time.monotonic()
    for _ in range(n // k):
        us = [str(uuid.uuid4()) for _ in range(k)]
        fds = [os.open(root / "staging" / u, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
               for u in us]
        for fd in fds:
            os.write(fd, b"\0")
        t1 = time.monotonic()
        sync(fds)
        steps["files"].append(time.monotonic() - t1)
        for fd in fds:
            os.close(fd)
        for u in us:
            os.rename(root / "staging" / u, root / "images" / u)
        t1 = time.monotonic()
        os.fsync(dfd)
        steps["images/"].append(time.monotonic() - t1)
        c.execute("BEGIN IMMEDIATE")
        for u in us:
            c.execute("INSERT INTO t VALUES (?)", (u,))
        t1 = time.monotonic()
        c.execute("COMMIT")
        steps["COMMIT"].append(time.monotonic() - t1)
    secs = time.monotonic() - t0
    os.close(dfd)
    c.close()
    batched_rate.steps = {key: statistics.median(v) for key, v in steps.items()}
    return (n // k * k) / secs  # its files stay until the end (see main)


def by_syncfs(fds):
    syncfs(fds[0])


def by_fdatasync(fds):
    for fd in fds:
        os.fdatasync(fd)


class Creator:
    """clients keep-alive connections creating n images between them."""

    def __init__(self, d, clients, n, tag):
        self.d, self.clients, self.n, self.tag = d, clients, n, tag
        self.next = iter(range(n))
        self.lock = threading.Lock()
        self.lat, self.errors = [], []

    def one(self, conn, i):
        u = str(uuid.uuid4())
        t0 = time.monotonic()
        conn.request("PUT", "/v1/images/%s/file?name=%s%04d" % (u, self.tag, i), body=b"\0",
                     headers={"Authorization": "Bearer " + self.d.token,
                              "Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        body = r.read()
        dt = time.monotonic() - t0
        if r.status != 201:
            return None, "%d %s" % (r.status, body[:200].decode(errors="replace"))
        return dt, None

    def client(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=60)
        while True:
            with self.lock:
                i = next(self.next, None)
            if i is None:
                break
            try:
                dt, err = self.one(conn, i)
            except (OSError, http.client.HTTPException) as ex:
                dt, err = None, repr(ex)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=60)
            with self.lock:
                if err:
                    self.errors.append(err)
                else:
                    self.lat.append(dt)
        conn.close()

    def run(self):
        ts = [threading.Thread(target=self.client) for _ in range(self.clients)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.secs = time.monotonic() - t0
        return self


def metrics(d):
    text = d.get("/v1/metrics").text
    out = {}
    for k in ("stowage_catalogue_commits_total", "stowage_catalogue_commit_members_total",
              "stowage_create_publishes_total", "stowage_create_published_total"):
        m = re.search(r"^%s (\d+)$" % k, text, re.M)
        out[k] = int(m.group(1)) if m else None
    return out


def start(work, name, binary):
    """A daemon of binary with an external volume and its state dir under work/name."""
    os.environ["STOWAGED"] = binary
    (work / name / "vol").mkdir(parents=True)
    d = Daemon(work / name / "daemon", config={
        "log_requests": False,
        "storages": [{"id": STORAGE, "volumes": [
            {"id": "v", "kind": "external", "mount_point": str(work / name / "vol")}]}]})
    os.makedirs(d.tmpdir, exist_ok=True)
    d.start()
    d.wait_for(lambda: d.get("/imagestorages/" + STORAGE).json()["external_volumes"][0]
               ["status"] == "ok", timeout=60, what="volume ok")
    d.vol = work / name / "vol"
    d.made = 0
    return d


def run(d, clients, tag):
    m0 = metrics(d)
    c = Creator(d, clients, N, tag).run()
    m1 = metrics(d)
    d.made += len(c.lat)
    def grew(k):
        return None if m0[k] is None else m1[k] - m0[k]
    c.commits = grew("stowage_catalogue_commits_total")
    c.members = grew("stowage_catalogue_commit_members_total")
    c.publishes = grew("stowage_create_publishes_total")
    c.published = grew("stowage_create_published_total")
    return c


def check(d):
    """(listed, files in images/) after the runs."""
    imgs = d.get("/imagestorages/" + STORAGE).json()["external_volumes"][0]["images"]
    return len(imgs), len(list((d.vol / "images").iterdir()))


def row(label, c):
    lat = [x * 1000 for x in c.lat] or [0]
    per = "%.1f" % (c.members / c.commits) if c.commits else "-"
    files = "%.1f" % (c.published / c.publishes) if c.publishes else "-"
    return "| %s | %d | **%.0f** | %.2f ms | %.2f ms | %d | %s | %s | %s |" % (
        label, c.clients, len(c.lat) / c.secs, statistics.median(lat), pct(lat, 99),
        len(c.errors), c.commits if c.commits is not None else "-", per, files)


def main():
    # The creates, the baselines and the catalogue all go to one filesystem of their own: a
    # fresh XFS (reflink=1, as a local volume is made) on a loop device over a sparse file
    # in BENCH_WORK. On the scratch filesystem itself the figures would depend on what
    # others did there: on ext4 without a journal every new inode is checked against the
    # inodes deleted in the last 30 s (recently_deleted), so the files an earlier bench
    # removed slowed every create after it, whichever build made it.
    scratch = Path(os.environ["BENCH_WORK"]) / "create"
    if scratch.exists():  # an interrupted run's
        shutil.rmtree(scratch)
    with LoopDisk(scratch / "disk", "8G") as disk:
        disk.mkfs_xfs()
        measure(disk.mount(scratch / "xfs"))  # the umount takes everything with it
    shutil.rmtree(scratch, ignore_errors=True)


def measure(work):
    binaries = [("stowaged", os.environ["STOWAGED"])]
    if os.environ.get("BENCH_BASE_STOWAGED"):
        binaries.append(("base", os.environ["BENCH_BASE_STOWAGED"]))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    load0 = os.getloadavg()[0]
    ds = {}
    four = {name: [] for name, _ in binaries}
    many = {}
    proto, bsync, bdata, bsteps = [], [], [], []
    try:
        for name, binary in binaries:
            ds[name] = start(work, name, binary)
        for r in range(rounds):  # alternating, so that all see the same machine
            for name, _ in binaries:
                log("create: %s, 4 clients, round %d" % (name, r + 1))
                four[name].append(run(ds[name], 4, "r%d" % r))
            log("the protocol by hand, round %d" % (r + 1))
            proto.append(protocol_rate(work))
            log("the protocol batched by hand, round %d" % (r + 1))
            bsync.append(batched_rate(work, by_syncfs))
            bsteps.append(batched_rate.steps)
            bdata.append(batched_rate(work, by_fdatasync))
        for name, _ in binaries:
            log("create: %s, 64 clients" % name)
            many[name] = run(ds[name], 64, "m")
        counts = {name: check(ds[name]) for name, _ in binaries}
    finally:
        for d in ds.values():
            d.stop()
    log("baselines")
    fs = fsync_rate(work)
    sq = sqlite_full_rate(work)
    pr = statistics.median(proto)
    bs, bd = statistics.median(bsync), statistics.median(bdata)
    load1 = os.getloadavg()[0]

    def median_run(runs):
        return sorted(runs, key=lambda c: len(c.lat) / c.secs)[len(runs) // 2]

    print("## Durable creates (group commit)\n")
    print("%d creates per run by `PUT /v1/images/{uuid}/file?name=…` with a 1-byte body, on "
          "keep-alive connections; the volume (external), the state dir and every baseline "
          "on one fresh XFS (reflink=1) on a loop device over a sparse file on this "
          "machine's disk. Each 201 comes after the byte is durable, renamed into images/, the "
          "directory fsynced and the row inserted active by a durable COMMIT "
          "(synchronous=FULL): one catalogue change per create, shared with the concurrent "
          "ones by the group commit; the base build fsyncs each file on its own thread, "
          "this one makes a batch's files durable by one leader (one syncfs while that stays "
          "quicker than an fsync of each, else each create's own fsync), fsyncs images/ once "
          "per batch (files per sync: creates per batch), and waits up to 1 ms for the "
          "clients of the last batch to come back. 4 clients: the median of %d "
          "runs%s. Load average "
          "%.2f before, %.2f after.\n" % (
              N, rounds, ", alternating with the base build" if len(binaries) > 1 else "",
              load0, load1))
    print("| build | clients | creates/s | p50 | p99 | errors | COMMITs | writes per COMMIT | "
          "files per sync |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, _ in binaries:
        print(row(name, median_run(four[name])))
        print(row(name, many[name]))
    print()
    print("| baseline | per second |")
    print("|---|---|")
    print("| fdatasync of one file, one thread | %.0f |" % fs)
    print("| sqlite3 WAL synchronous=FULL, one-row transactions, 4 threads | %.0f |" % sq)
    print("| the create protocol by hand (write, fdatasync, rename, fsync dir, one-row FULL "
          "commit), 4 threads, nothing shared; median of the rounds | %.0f |" % pr)
    print("| the protocol batched by hand, one thread, batches of 4: one syncfs for the 4 "
          "files, 4 renames, one fsync of images/, one FULL commit of 4 rows; median | %.0f |"
          % bs)
    print("| the same with an fdatasync of each of the 4 files instead of the syncfs; median "
          "| %.0f |" % bd)
    print()
    for name, _ in binaries:
        listed, files = counts[name]
        print("%s: %d images listed, %d files in images/, %d creates answered 201." % (
            name, listed, files, ds[name].made))
        for c in four[name] + [many[name]]:
            if c.errors:
                print("\nFirst errors (%s, %d clients): %s" % (
                    name, c.clients, "; ".join(c.errors[:3])))
    a = len(median_run(four["stowaged"]).lat) / median_run(four["stowaged"]).secs
    print("\n4 clients: %.2f× the protocol done by hand, %.2f× the protocol batched by hand "
          "(syncfs)" % (a / pr, a / bs), end="")
    if len(binaries) > 1:
        b = len(median_run(four["base"]).lat) / median_run(four["base"]).secs
        print(", %.2f× the base build" % (a / b), end="")
    print(".")
    print("\nA client sends its next create only once its last one is answered, so 4 clients "
          "put 4 creates in a batch at most, and each batch takes every durable step (the "
          "files' flush, the renames' flush, the COMMIT) before its clients send again: the "
          "protocol batched by hand in batches of 4, with no HTTP, hashing or inspection, is "
          "the most a server that batches them can answer 4 such clients on this filesystem "
          "(%.0f/s in this run); doing it in 4 threads at once instead (the protocol by hand) "
          "gives less (%.0f/s)." % (bs, pr))
    st = {key: statistics.median(r[key] for r in bsteps) for key in bsteps[0]}
    flush = sum(st.values())
    print("\nIn the protocol batched by hand, the three durable steps of a batch of 4, each "
          "waiting for the one before (medians over its batches, median of the rounds): the "
          "files' syncfs %.2f ms, the fsync of images/ after the renames %.2f ms, the COMMIT "
          "%.2f ms; %.2f ms in all, so with no HTTP, hashing, inspection or anything else, "
          "4 clients that each wait for their reply can have at most **%.0f creates/s** on "
          "this filesystem in this run." % (
              st["files"] * 1e3, st["images/"] * 1e3, st["COMMIT"] * 1e3, flush * 1e3,
              4 / flush))


if __name__ == "__main__":
    main()
