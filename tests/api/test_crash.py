"""kill -9 at random moments of an upload, an image copy and a clone; after every restart
the catalogue and the volume must agree (DESIGN.md § data model, § Requests, tasks and
concurrency):

- no active image without its file, no file in images/ without an active row of this
  volume (a 'saving' row whose bytes were renamed into place is rolled forward);
- no file in clones/ without its clone row, no clone row without its file or with a base
  that is not active, and `qemu-img check` passes on every clone file;
- .staging/ holds only resumable uploads (<uuid>.upload of a 'saving' row);
- no task is left 'running' (interrupted ones are completed with an error);
- the daemon answers, and what survived is right: an active upload or copy has exactly
  the source's bytes, an interrupted upload resumes from X-Upload-Offset to the right
  sha256, and the name can be used again.

STOWAGE_CRASH_ROUNDS (default 20) rounds per operation; STOWAGE_CRASH_SEED fixes the
random moments (the seed is printed; rerun with it to replay a failure). Each test prints
one line `CRASH-SUMMARY {json}` with what the rounds found (bench/crash_200.sh reads it).
Everything runs on an XFS loop volume (a second one without reflink for copies that
really move bytes); images are small where the contract allows (uploads 48 MiB, the copy
source 256 MiB).
"""
import collections
import hashlib
import json
import os
import random
import shutil
import subprocess
import time

import pytest

from fixtures.loopdisk import LoopDisk

QEMU_IMG = shutil.which("qemu-img")
MiB, GiB = 1 << 20, 1 << 30
ROUNDS = int(os.environ.get("STOWAGE_CRASH_ROUNDS", "20"))
SEED = int(os.environ.get("STOWAGE_CRASH_SEED", str(int(time.time() * 1000) % 1000000007)))
STORAGE = "st"
LIVE = ("queued", "saving", "active")

pytestmark = pytest.mark.skipif(not QEMU_IMG, reason="needs qemu-img")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(4 * MiB), b""):
            h.update(b)
    return h.hexdigest()


def write_random(path, size, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for off in range(0, size, 4 * MiB):
            f.write(rng.randbytes(min(4 * MiB, size - off)))
    return sha256_file(path)


def mkfs_mount(disk, mnt, reflink):
    subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=%d" % reflink, "-f", disk.device], check=True,
                   capture_output=True, timeout=300)
    return disk.mount(mnt)


class Rig:
    """One daemon on XFS loop volumes, killed and restarted again and again."""

    def __init__(self, d, vols):
        self.d = d
        self.vols = vols  # volume id -> mount point (Path)
        self.log_mark = 0
        self.verified = {}  # uuid -> sha256 already checked

    # -- life --
    def kill_and_restart(self):
        self.d.kill9()
        self.log_mark = len(self.d.log())
        self.d.start()
        self.wait_ready()

    def wait_ready(self):
        def ok():
            r = self.d.get("/imagestorages/" + STORAGE)
            return r.status_code == 200 and all(v["status"] == "ok" for v in r.json()["volumes"])
        self.d.wait_for(ok, timeout=60, what="volumes ok after start")

    def log_since_start(self):
        return self.d.log()[self.log_mark:]

    # -- catalogue --
    def db(self, sql, args=()):
        return self.d.db_rows(sql, args)

    def image(self, name):
        rows = self.db("SELECT uuid, status, format, volume_id, checksum_sha256 FROM image "
                       "WHERE name = ? AND status != 'deleted'", (name,))
        assert len(rows) <= 1, rows
        return rows[0] if rows else None

    def task(self, tid):
        rows = self.db("SELECT state, result, result_msg FROM task WHERE id = ?", (tid,))
        return rows[0] if rows else None

    def settle(self, timeout=60):
        """Queued tasks found at start are run: wait until none is queued or running."""
        self.d.wait_for(lambda: not self.db("SELECT id FROM task WHERE state IN "
                                            "('queued', 'running')"),
                        timeout=timeout, interval=0.05, what="tasks settled")

    # -- HTTP --
    def submit(self, typ, **params):
        r = self.d.post("/tasks/create", json=dict(type=typ, repeat="0", retries="0", **params))
        assert r.status_code == 200 and r.json()["status"] == "OK", (typ, r.status_code, r.text)
        return r.json()["message"]

    def run_task(self, typ, timeout=300, **params):
        tid = self.submit(typ, **params)

        def done():
            t = self.d.get("/tasks/" + tid).json()
            return t if t["state"] == "completed" else None
        return self.d.wait_for(done, timeout=timeout, interval=0.02, what="%s %s" % (typ, tid))

    def curl_put(self, name, src, sha, extra=()):
        return subprocess.Popen(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", str(src),
             "-H", "Authorization: Bearer " + self.d.token, "-H", "Expect:",
             "-H", "X-Checksum-Sha256: " + sha, *extra, self.d.url("/image/%s/file/" % name)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # -- the invariants --
    def check(self):
        d = self.d
        assert d.get("/v1/health").status_code == 200
        assert d.get("/imagestorages/" + STORAGE).status_code == 200
        self.settle()
        problems = []
        running = self.db("SELECT id, type FROM task WHERE state = 'running'")
        if running:
            problems.append("tasks still running after the restart: %r" % running)
        images = self.db("SELECT uuid, name, volume_id, format, status, checksum_sha256 FROM image")
        clones = self.db("SELECT clone_id, image_uuid, volume_id, path FROM clone")
        by_uuid = {r[0]: r for r in images}
        for vid, root in self.vols.items():
            files = set(os.listdir(root / "images"))
            want = {"%s.%s" % (u, fmt) for u, _, v, fmt, st, _ in images
                    if v == vid and st == "active"}
            for f in sorted(want - files):
                problems.append("%s: active image without its file: images/%s" % (vid, f))
            for f in sorted(files - want):
                row = by_uuid.get(f.split(".")[0])
                problems.append("%s: images/%s has no active row (row: %r)" % (vid, f, row))
            for f in sorted(files & want):
                u = f.split(".")[0]
                sha = by_uuid[u][5]
                if sha and self.verified.get(u) != sha:
                    got = sha256_file(root / "images" / f)
                    if got != sha:
                        problems.append("%s: images/%s holds %s, its row says %s" % (vid, f, got, sha))
                    self.verified[u] = sha

            cfiles = set(os.listdir(root / "clones"))
            cwant = {}
            for cid, iu, v, path in clones:
                if v != vid:
                    continue
                cwant[os.path.basename(path)] = cid
                base = by_uuid.get(iu)
                if not base or base[4] != "active":
                    problems.append("clone %s: its image %s is %r" % (cid, iu, base and base[4]))
            for f in sorted(set(cwant) - cfiles):
                problems.append("%s: clone row %s without its file clones/%s" % (vid, cwant[f], f))
            for f in sorted(cfiles - set(cwant)):
                problems.append("%s: clones/%s has no clone row" % (vid, f))
            for f in sorted(cfiles & set(cwant)):
                r = subprocess.run([QEMU_IMG, "check", str(root / "clones" / f)],
                                   capture_output=True, text=True, timeout=120)
                if r.returncode != 0 or "No errors were found" not in r.stdout:
                    problems.append("qemu-img check clones/%s: %s%s" % (f, r.stdout, r.stderr))

            saving = {u for u, _, v, _, st, _ in images if v == vid and st == "saving"}
            for f in sorted(os.listdir(root / ".staging")):
                if not (f.endswith(".upload") and f[:-len(".upload")] in saving):
                    problems.append("%s: .staging/%s is not a resumable upload" % (vid, f))
        log = self.log_since_start()
        for line in log.splitlines():
            if "has no file on volume" in line or "Sanitizer" in line or "runtime error" in line:
                problems.append("daemon log: " + line)
        return problems

    def assert_consistent(self, what):
        deadline = time.monotonic() + 5
        while True:
            problems = self.check()
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not problems, "%s (seed %d):\n%s" % (what, SEED, "\n".join(problems))


@pytest.fixture
def rig(daemon_factory, tmp_path):
    disks = []
    d = None
    try:
        a = LoopDisk(tmp_path / "disks", "16G")
        disks.append(a)
        b = LoopDisk(tmp_path / "disks", "16G")
        disks.append(b)
        vols = {"loc": mkfs_mount(a, tmp_path / "loc", 1), "plain": mkfs_mount(b, tmp_path / "plain", 0)}
        d = daemon_factory({"probe_ttl_ms": 200, "storages": [{"id": STORAGE, "volumes": [
            {"id": vid, "kind": "local", "mount_point": str(mp)} for vid, mp in vols.items()]}]})
        r = Rig(d, vols)
        r.wait_ready()
        print("\ncrash rounds: %d, seed: %d (STOWAGE_CRASH_SEED=%d to replay)" % (ROUNDS, SEED, SEED))
        yield r
    finally:
        try:
            if d is not None:
                d.stop()  # clean exit (and no sanitizer report) after all the kills
        finally:
            for disk in disks:
                disk.close()


def summary(what, counts, t0):
    line = {"scenario": what, "rounds": ROUNDS, "seed": SEED, "seconds": round(time.monotonic() - t0, 1)}
    line.update(sorted(counts.items()))
    print("CRASH-SUMMARY " + json.dumps(line))


def test_kill9_during_uploads(rig, tmp_path):
    t0 = time.monotonic()
    rng = random.Random(SEED)
    size = 48 * MiB
    src = tmp_path / "src.raw"
    sha = write_random(src, size, SEED)
    data = src.read_bytes()

    c0 = time.monotonic()
    p = rig.curl_put("calibrate", src, sha)
    out, err = p.communicate(timeout=300)
    took = time.monotonic() - c0
    assert out == "201", (out, err)
    assert rig.run_task("image_delete", image_id="calibrate")["result"] == "success"

    counts = collections.Counter()
    for i in range(ROUNDS):
        name = "up%03d" % i
        at = rng.uniform(0, took * 1.3)
        p = rig.curl_put(name, src, sha)
        time.sleep(at)
        rig.kill_and_restart()
        out, _ = p.communicate(timeout=60)
        rig.assert_consistent("round %d: upload killed at %.3f s of ~%.3f s" % (i, at, took))

        row = rig.image(name)
        r = rig.d.get("/image/%s/file/" % name)
        if row is None:
            outcome = "nothing"
            assert r.status_code == 404, (name, r.status_code, r.text)
        elif row[1] == "active":
            outcome = "active"
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha, name
        else:
            outcome = "resumable"
            assert row[1] == "saving", row
            assert r.status_code == 409, (name, r.status_code, r.text)
            staged = int(r.headers["X-Upload-Offset"])
            assert 0 <= staged <= size, staged
            if staged < size:
                # what was staged before the kill is a prefix of the source: the rest completes it
                rr = rig.d.request("PUT", "/image/%s/file/" % name, data=data[staged:], timeout=300,
                                   headers={"Content-Range": "bytes %d-%d/%d" % (staged, size - 1, size),
                                            "X-Checksum-Sha256": sha})
            else:
                # every byte was staged, the commit was not: a PUT without Content-Range starts over
                outcome = "resumable-complete"
                rr = rig.d.request("PUT", "/image/%s/file/" % name, data=data, timeout=300,
                                   headers={"X-Checksum-Sha256": sha})
            assert rr.status_code == 201, (name, staged, rr.status_code, rr.text)
            assert rr.json()["sha256"] == sha and rr.json()["status"] == "active", rr.json()
            g = rig.d.get("/image/%s/file/" % name)
            assert g.status_code == 200 and hashlib.sha256(g.content).hexdigest() == sha
        counts[outcome] += 1
        print("round %3d: kill at %.3f s (curl said %r) -> %s" % (i, at, out, outcome))
        if rig.image(name) and rig.image(name)[1] == "active":
            t = rig.run_task("image_delete", image_id=name)
            assert t["result"] == "success", t
    rig.assert_consistent("after the last round")
    summary("upload", counts, t0)


def test_kill9_during_copies(rig, tmp_path):
    """image_copy of a 256 MiB image: within the reflink XFS (a block-sharing copy) and onto
    the XFS without reflink (every byte moves), alternately."""
    t0 = time.monotonic()
    rng = random.Random(SEED + 1)
    size = 256 * MiB
    src = tmp_path / "src.raw"
    sha = write_random(src, size, SEED + 1)
    p = rig.curl_put("source", src, sha)
    out, err = p.communicate(timeout=600)
    assert out == "201", (out, err)
    src.unlink()

    took = {}
    for vid in ("loc", "plain"):
        c0 = time.monotonic()
        t = rig.run_task("image_copy", image_id="cal-" + vid, volume_id=vid,
                         image_storage_id=STORAGE, source_image_id="source", source_volume_id="loc")
        took[vid] = time.monotonic() - c0
        assert t["result"] == "success", t
        row = rig.image("cal-" + vid)
        assert row[1] == "active" and sha256_file(rig.vols[vid] / "images" /
                                                  ("%s.%s" % (row[0], row[2]))) == sha
        assert rig.run_task("image_delete", image_id="cal-" + vid)["result"] == "success"
    print("copy of 256 MiB: %.3f s within the reflink volume, %.3f s onto the plain one"
          % (took["loc"], took["plain"]))

    counts = collections.Counter()
    for i in range(ROUNDS):
        name = "cp%03d" % i
        vid = ("loc", "plain")[i % 2]
        at = rng.uniform(0, took[vid] * 1.3)
        tid = rig.submit("image_copy", image_id=name, volume_id=vid, image_storage_id=STORAGE,
                         source_image_id="source", source_volume_id="loc")
        time.sleep(at)
        rig.kill_and_restart()
        rig.assert_consistent("round %d: copy to %s killed at %.3f s of ~%.3f s" % (i, vid, at, took[vid]))
        state, result, msg = rig.task(tid)
        row = rig.image(name)
        assert state == "completed", (tid, state, result, msg)
        if result == "success":
            assert row and row[1] == "active", (name, row)
            f = rig.vols[vid] / "images" / ("%s.%s" % (row[0], row[2]))
            assert sha256_file(f) == sha, "copy %s went active with other bytes" % name
            outcome = "copied"
        else:
            assert result == "error" and msg, (tid, result, msg)
            assert row is None or row[1] != "active", (name, row, msg)
            outcome = "interrupted"
        counts["%s-%s" % (outcome, vid)] += 1
        print("round %3d: copy to %s, kill at %.3f s -> %s (%s)" % (i, vid, at, outcome, msg))
        # the name is usable afterwards either way
        if row is None or row[1] != "active":
            t = rig.run_task("image_copy", image_id=name, volume_id=vid, image_storage_id=STORAGE,
                             source_image_id="source", source_volume_id="loc")
            assert t["result"] == "success", t
        t = rig.run_task("image_delete", image_id=name)
        assert t["result"] == "success", t
    rig.assert_consistent("after the last round")
    r = rig.d.get("/image/source/file/")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
    summary("copy", counts, t0)


def test_kill9_during_clones(rig):
    t0 = time.monotonic()
    rng = random.Random(SEED + 2)
    t = rig.run_task("image_create", image_id="base", volume_id="loc", image_storage_id=STORAGE,
                     size_mb=1024, format="raw")
    assert t["result"] == "success", t
    c0 = time.monotonic()
    t = rig.run_task("guest_clone", image_id="base", guest_id="cal", clone_id="cal")
    took = time.monotonic() - c0
    assert t["result"] == "success", t
    print("guest_clone: %.1f ms from POST to completed" % (took * 1e3))

    counts = collections.Counter()
    for i in range(ROUNDS):
        cid = "k%03d" % i
        at = rng.uniform(0, took * 1.5)
        tid = rig.submit("guest_clone", image_id="base", guest_id="g%03d" % i, clone_id=cid)
        time.sleep(at)
        rig.kill_and_restart()
        rig.assert_consistent("round %d: clone killed at %.4f s of ~%.4f s" % (i, at, took))
        state, result, msg = rig.task(tid)
        rows = rig.db("SELECT path FROM clone WHERE clone_id = ?", (cid,))
        assert state == "completed", (tid, state, result, msg)
        if result == "success":
            assert rows, (cid, "task succeeded but no clone row")
            outcome = "cloned"
        else:
            assert result == "error" and msg, (tid, result, msg)
            assert not rows, (cid, rows, msg)
            assert not (rig.vols["loc"] / "clones" / ("%s.qcow2" % cid)).exists()
            outcome = "interrupted"
        counts[outcome] += 1
        print("round %3d: kill at %.4f s -> %s (%s)" % (i, at, outcome, msg))
        if rows:
            t = rig.run_task("clone_delete", clone_id=cid)
            assert t["result"] == "success", t
    # the base survived every kill and still refuses to go while a clone uses it
    t = rig.run_task("image_delete", image_id="base")
    assert t["result"] == "error", t
    assert rig.run_task("clone_delete", clone_id="cal")["result"] == "success"
    assert rig.run_task("image_delete", image_id="base")["result"] == "success"
    rig.assert_consistent("after the last round")
    for root in rig.vols.values():
        assert os.listdir(root / "clones") == [] and os.listdir(root / "images") == []
    summary("clone", counts, t0)
