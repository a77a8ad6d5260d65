"""Block-device faults, black-box: the filesystem under a volume fails in the middle of an
upload (native and esdc), an image_copy and a burst of guest_clones.

The fault. The issue asks for device-mapper `error`/`flakey` targets on a loop disk. The
kernels this suite runs on in CI have no device-mapper (`dmsetup targets`: "Failure to
communicate with kernel device-mapper driver"), no md and no fail_make_request, so a test
built on them would only ever be skipped. The fault used instead is one every XFS has:
its forced shutdown (`xfs_io -x -c "shutdown -f" MOUNTPOINT`, the XFS_IOC_GOINGDOWN
ioctl, the very thing XFS does to itself on a metadata I/O error). From that moment every
read, write, stat, open and unlink on the filesystem fails with EIO, as on a disk that
died. `-f` forces the log first, so what the operation had created before the fault (its
staging file) is on disk when the fault is lifted — the worst case for recovery. The
fault is lifted the way an operator would: unmount, mount the same disk at the same place.
When `dmsetup targets` does list `flakey`, the same scenarios also run on a dm-flakey
device over the loop disk (all I/O failing while the table is "down").

What each scenario proves (API.md § Native data path, docs/operations.md § Fault testing):
- the request or task fails with the I/O error in the dialect's envelope (503
  `unavailable` on the data path; a flexVDI task ends `error` naming it);
- the daemon answers the next request at once, and the other volume stays `ok`;
- no half-made catalogue entry: no image row, no clone row;
- GET /imagestorages/{id} shows the volume `broken` with a message while faulted, and
  `ok` after the remount; once its recovery ran again nothing of the failed operation is
  left in .staging/, images/ or clones/, and the volume takes new work.
"""
import hashlib
import os
import re
import select
import socket
import subprocess
import threading
import time

import pytest
import requests

from fixtures.loopdisk import LoopDisk

MiB, GiB = 1 << 20, 1 << 30
STORAGE = "st"
TTL_MS = 300
EIO = "Input/output error"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def dm_targets():
    """The device-mapper targets this kernel offers ([] without device-mapper)."""
    try:
        r = subprocess.run(["dmsetup", "targets"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()] if r.returncode == 0 else []


FAULTS = ["xfs-shutdown"] + (["dm-flakey"] if "flakey" in dm_targets() else [])


def run(*args, timeout=60):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "%s: %s" % (" ".join(args), r.stderr.strip() or r.stdout.strip())
    return r.stdout


# ---------------------------------------------------------------- the faulty volume

class FaultyDisk:
    """An XFS on a loop disk, mounted at `mnt`, that can be made to fail and come back.

    kind "xfs-shutdown": the XFS is forced down; "dm-flakey": the XFS sits on a dm device
    over the loop disk whose table turns into a flakey one that fails all I/O."""

    def __init__(self, tmp, name, size, kind):
        self.kind, self.mnt, self.dm = kind, tmp / ("mnt-" + name), None
        self.loop = LoopDisk(tmp / ("disk-" + name), size)
        self.faulted = False
        try:
            self.sectors = self.loop.size // 512
            dev = self.loop.device
            if kind == "dm-flakey":
                self.dm = "stowage-fault-%d-%s" % (os.getpid(), name)
                run("dmsetup", "create", self.dm, "--table", self._linear())
                dev = "/dev/mapper/" + self.dm
            self.dev = dev
            run("mkfs.xfs", "-q", "-m", "reflink=1", "-f", dev, timeout=300)
            self.mount()
        except BaseException:
            self.close()
            raise

    def _linear(self):
        return "0 %d linear %s 0" % (self.sectors, self.loop.device)

    def _table(self, table):
        run("dmsetup", "suspend", "--nolockfs", "--noflush", self.dm)  # no freeze: fail now
        run("dmsetup", "load", self.dm, "--table", table)
        run("dmsetup", "resume", self.dm)

    def mount(self):
        self.mnt.mkdir(parents=True, exist_ok=True)
        run("mount", self.dev, str(self.mnt))

    def is_mounted(self):
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == str(self.mnt) for line in f)

    def fail(self):
        """From now on every I/O on the filesystem fails."""
        self.faulted = True
        if self.kind == "xfs-shutdown":
            run("xfs_io", "-x", "-c", "shutdown -f", str(self.mnt))
        else:
            self._table("0 %d flakey %s 0 0 3600" % (self.sectors, self.loop.device))

    def lift(self, timeout=15):
        """The operator's repair: unmount (it must not be busy: the daemon may hold no file
        of a failed operation open) and mount the same disk at the same place."""
        if self.dm:
            self._table(self._linear())
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run(["umount", str(self.mnt)], capture_output=True, text=True)
            if r.returncode == 0:
                break
            assert time.monotonic() < deadline, "umount of the faulted volume: %s" % r.stderr
            time.sleep(0.2)
        self.mount()
        self.faulted = False

    def close(self):
        """Unmounted (lazily if something still holds it), dm device and loop disk gone."""
        try:
            if self.is_mounted():
                if subprocess.run(["umount", str(self.mnt)], capture_output=True).returncode:
                    subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True)
            if self.dm:
                subprocess.run(["dmsetup", "remove", "--retry", self.dm], capture_output=True)
                self.dm = None
        finally:
            self.loop.close()


class Rig:
    """One daemon, storage STORAGE with volumes `good` and `flt` (the one that fails)."""

    def __init__(self, d, disks):
        self.d, self.disks = d, disks
        self.flt = disks["flt"]

    # -- views --
    def volume(self, vid):
        r = self.d.get("/imagestorages/" + STORAGE, timeout=5)
        assert r.status_code == 200, (r.status_code, r.text)
        for v in r.json()["volumes"]:
            if v["volume_id"] == vid:
                return v
        raise AssertionError("volume %s missing: %r" % (vid, r.json()))

    def wait_status(self, vid, status, timeout=20):
        return self.d.wait_for(lambda: (lambda v: v if v["status"] == status else None)(
            self.volume(vid)), timeout=timeout, interval=0.05, what="volume %s %s" % (vid, status))

    def files(self, sub):
        return sorted(os.listdir(self.flt.mnt / sub))

    def leftovers(self):
        return {sub: self.files(sub) for sub in ("images", "clones", ".staging")}

    # -- catalogue --
    def db(self, sql, args=()):
        return self.d.db_rows(sql, args)

    def live_rows(self, name):
        return self.db("SELECT uuid, status FROM image WHERE name = ? AND status != 'deleted'",
                       (name,))

    # -- tasks --
    def submit(self, typ, **params):
        r = self.d.post("/tasks/create", json=dict(type=typ, repeat="0", retries="0", **params))
        assert r.status_code == 200, (typ, r.status_code, r.text)
        assert r.json()["status"] == "OK" and r.json()["message"], r.json()
        return r.json()["message"]

    def task(self, tid):
        r = self.d.get("/tasks/" + tid, timeout=5)
        assert r.status_code == 200, r.text
        t = r.json()
        assert {"task_id", "when", "execution", "state", "result", "result_msg", "task_type",
                "task_type_str", "progress"} <= set(t), t
        assert t["task_id"] == tid, t
        return t

    def wait_task(self, tid, timeout=120):
        t = self.d.wait_for(lambda: (lambda t: t if t["state"] == "completed" else None)(
            self.task(tid)), timeout=timeout, interval=0.02, what="task %s" % tid)
        assert t["result"] in ("success", "error"), t
        return t

    def run_task(self, typ, **params):
        return self.wait_task(self.submit(typ, **params))

    # -- the checks every scenario ends with --
    def answers_at_once(self):
        """The next request is answered at once, whatever the faulted volume does."""
        t0 = time.monotonic()
        r = self.d.get("/v1/health", timeout=5)
        took = time.monotonic() - t0
        assert r.status_code == 200, (r.status_code, r.text)
        body = r.json()
        assert body["status"] in ("ok", "degraded") and body["checks"]["database"] == "ok", body
        assert set(body["checks"]["volumes"]) == {"good", "flt"}, body
        assert took < 1.0, "GET /v1/health took %.3f s after the fault" % took
        assert self.d.proc.poll() is None, self.d.log()[-4000:]

    def shows_broken(self):
        """While faulted: broken with the I/O error in GET /imagestorages/{id} and in health;
        the other volume is untouched."""
        v = self.wait_status("flt", "broken")
        assert EIO in v["status_msg"], v
        assert self.volume("good")["status"] == "ok"
        h = self.d.get("/v1/health").json()
        assert h["status"] == "degraded" and h["checks"]["volumes"] == {"good": "ok", "flt": "broken"}, h
        return v

    def refuses_new_work(self):
        """A new upload to the broken volume is refused before a byte is read."""
        r = self.d.request("PUT", "/v1/images/%s/file" % new_uuid(), data=b"x" * 4096,
                           params={"name": "while-broken", "volume_id": "flt"}, timeout=10)
        err = native_error(r, 503, "unavailable")
        assert "flt" in err["message"] and EIO in err["message"], err
        assert self.live_rows("while-broken") == []

    def comes_back_clean(self):
        """After the remount: ok again, recovery ran, nothing of the failed work is left."""
        self.flt.lift()
        v = self.wait_status("flt", "ok")
        assert v["status_msg"] == "", v
        left = self.d.wait_for(lambda: (lambda l: l if not l[".staging"] else None)(self.leftovers()),
                               timeout=10, what="no staging file after the remount: %r\n%s" % (
                                   self.leftovers(), self.d.log()[-3000:]))
        assert self.d.get("/v1/health").json()["status"] == "ok"
        return left

    def takes_new_work(self, name):
        data = os.urandom(MiB)
        r = self.d.request("PUT", "/image/%s/file/" % name, params={"volume_id": "flt"},
                           data=data, timeout=60)
        assert r.status_code == 201, (r.status_code, r.text)
        body = r.json()
        assert (body["name"], body["status"], body["volume_id"], body["sha256"]) == (
            name, "active", "flt", hashlib.sha256(data).hexdigest()), body
        return body


def new_uuid():
    with open("/proc/sys/kernel/random/uuid") as f:
        return f.read().strip()


def native_error(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    err = r.json()["error"]
    assert {"code", "message", "field"} <= set(err) and err["code"] == code, err
    return err


def esdc_detail(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    return body["detail"]


@pytest.fixture(params=FAULTS)
def rig(request, daemon_factory, tmp_path):
    disks, d = {}, None
    try:
        for name, size in (("good", "3G"), ("flt", "3G")):
            disks[name] = FaultyDisk(tmp_path, name, size, request.param)
        d = daemon_factory({"probe_ttl_ms": TTL_MS, "storages": [{"id": STORAGE, "volumes": [
            {"id": vid, "kind": "local", "mount_point": str(disk.mnt)}
            for vid, disk in disks.items()]}]})
        r = Rig(d, disks)
        r.wait_status("good", "ok", timeout=60)
        r.wait_status("flt", "ok", timeout=60)
        yield r
        assert "Sanitizer" not in d.log() and "runtime error" not in d.log(), d.log()[-8000:]
    finally:
        try:
            if d is not None:
                d.stop()  # before the umount: clean exit, no sanitizer report
        finally:
            for disk in disks.values():
                disk.close()


# ---------------------------------------------------------------- upload

def start_put(d, path, total):
    s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
    s.sendall(("PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
               % (path, d.port, d.token, total)).encode())
    return s


def send_body(s, data):
    """Send data unless the server has already answered; False when it has."""
    view = memoryview(data)
    for i in range(0, len(data), MiB):
        if select.select([s], [], [], 0)[0]:
            return False
        try:
            s.sendall(view[i:i + MiB])
        except (BrokenPipeError, ConnectionResetError):
            return False
    return True


def read_reply(s, timeout=60):
    """(status, headers, JSON body) of the one response on s."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        assert b, "connection closed without an answer: %r" % buf
        buf += b
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    want = int(headers.get("content-length", "0"))
    while len(body) < want:
        b = s.recv(65536)
        if not b:
            break
        body += b
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("dialect", ["native", "esdc"])
def test_upload_fails_503_naming_eio_when_the_filesystem_dies_mid_body(rig, dialect):
    d = rig.d
    total, first = 64 * MiB, 24 * MiB
    data = os.urandom(total)
    name, uuid = "up-" + dialect, new_uuid()
    path = ("/v1/images/%s/file?name=%s&volume_id=flt" % (uuid, name) if dialect == "native"
            else "/image/%s/file/?volume_id=flt" % name)
    s = start_put(d, path, total)
    try:
        assert send_body(s, data[:first])
        # the fault hits an upload that is really writing: its staging file has bytes
        row = d.wait_for(lambda: rig.live_rows(name), timeout=10, what="the upload's row")
        uuid = row[0][0]
        staging = rig.flt.mnt / ".staging" / ("%s.upload" % uuid)
        d.wait_for(lambda: staging.exists() and staging.stat().st_size >= 4 * MiB, timeout=20,
                   what="bytes in the staging file")
        rig.flt.fail()
        t0 = time.monotonic()
        send_body(s, data[first:])
        status, headers, body = read_reply(s)
        took = time.monotonic() - t0
    finally:
        s.close()
    reply = requests.models.Response()
    reply.status_code, reply._content = status, body
    reply.headers = requests.structures.CaseInsensitiveDict(headers)
    if dialect == "native":
        msg = native_error(reply, 503, "unavailable")["message"]
    else:
        msg = esdc_detail(reply, 503)
    assert EIO in msg, msg
    assert took < 30, took
    print("%s upload: %s %s %.2f s after the fault" % (dialect, status, msg, took))

    rig.answers_at_once()
    assert rig.live_rows(name) == [], rig.live_rows(name)  # not active, not resumable: gone
    r = d.get("/image/%s/file/" % name)
    assert "not found" in esdc_detail(r, 404)
    r = d.get("/v1/images/%s/file" % uuid)
    native_error(r, 404, "not_found")
    rig.shows_broken()
    rig.refuses_new_work()
    assert rig.volume("flt")["images"] == []

    left = rig.comes_back_clean()
    assert left == {"images": [], "clones": [], ".staging": []}, left
    assert rig.live_rows(name) == []
    assert ("recovery: removed .staging/%s.upload" % uuid in d.log()
            or rig.flt.kind != "xfs-shutdown"), "recovery did not say what it removed:\n" + d.log()[-3000:]
    rig.takes_new_work(name)  # and the name is free again


# ---------------------------------------------------------------- image_copy

def make_source(rig, name, size_mb, data_mb):
    """A sparse raw image on `good` whose file holds data_mb of random bytes spread over it
    (written behind the daemon's back: image_create made it empty, no checksum changes)."""
    t = rig.run_task("image_create", image_id=name, volume_id="good", image_storage_id=STORAGE,
                     size_mb=size_mb, format="raw")
    assert t["result"] == "success", t
    (uuid, status), = rig.live_rows(name)
    f = rig.disks["good"].mnt / "images" / ("%s.raw" % uuid)
    piece = os.urandom(8 * MiB)
    pieces = data_mb // 8
    stride = size_mb * MiB // pieces
    with open(f, "r+b") as fh:
        for i in range(pieces):
            fh.seek(i * stride)
            fh.write(piece[i:] + piece[:i])
        fh.flush()
        os.fsync(fh.fileno())
    assert f.stat().st_size == size_mb * MiB and f.stat().st_blocks * 512 >= data_mb * MiB
    return uuid, f


def test_image_copy_ends_in_error_naming_eio_when_the_target_dies_mid_copy(rig):
    d = rig.d
    src_uuid, src = make_source(rig, "big", 8192, 1536)
    tid = rig.submit("image_copy", image_id="copy", volume_id="flt", image_storage_id=STORAGE,
                     source_image_id="big", source_volume_id="good")
    # the fault hits a copy that has started moving bytes, not one still queued
    t = d.wait_for(lambda: (lambda t: t if t["progress"] > 0 or t["state"] == "completed" else None)(
        rig.task(tid)), timeout=60, interval=0.01, what="the copy under way")
    assert t["state"] == "running", "the copy finished before the fault could hit it: %r" % t
    rig.flt.fail()
    at = t["progress"]
    t0 = time.monotonic()
    t = rig.wait_task(tid, timeout=60)
    took = time.monotonic() - t0
    print("image_copy: fault at %d%%, task ended %.2f s later: %s" % (at, took, t["result_msg"]))
    assert t["result"] == "error" and t["task_type_str"] == "image_copy", t
    assert EIO in t["result_msg"], t
    assert t["progress"] < 100, t

    rig.answers_at_once()
    assert rig.live_rows("copy") == [], rig.live_rows("copy")
    assert rig.live_rows("big") == [(src_uuid, "active")]
    rig.shows_broken()
    assert [i["image_id"] for i in rig.volume("flt")["images"]] == []
    assert [i["image_id"] for i in rig.volume("good")["images"]] == ["big"]
    # a copy submitted while the volume is broken fails at once, naming the volume's fault
    t = rig.run_task("image_copy", image_id="copy2", volume_id="flt", image_storage_id=STORAGE,
                     source_image_id="big", source_volume_id="good")
    assert t["result"] == "error" and "flt" in t["result_msg"] and EIO in t["result_msg"], t
    assert rig.live_rows("copy2") == []

    left = rig.comes_back_clean()
    assert left == {"images": [], "clones": [], ".staging": []}, left
    assert rig.live_rows("copy") == []
    if rig.flt.kind == "xfs-shutdown":  # the log was forced: the copy's staging file was there
        assert re.search(r"recovery: removed \.staging/[0-9a-f-]{36}\.task \(interrupted\)", d.log()), \
            d.log()[-3000:]
    # the source never noticed, and the copy works once the volume is back
    assert src.stat().st_size == 8192 * MiB
    t = rig.run_task("image_create", image_id="small", volume_id="good", image_storage_id=STORAGE,
                     size_mb=64, format="raw")
    assert t["result"] == "success", t
    t = rig.run_task("image_copy", image_id="copy", volume_id="flt", image_storage_id=STORAGE,
                     source_image_id="small", source_volume_id="good")
    assert t["result"] == "success", t
    assert rig.live_rows("copy")[0][1] == "active"


# ---------------------------------------------------------------- guest_clone

def test_guest_clones_fail_cleanly_when_the_filesystem_dies_among_them(rig):
    """A stream of guest_clone tasks on the faulted volume: the fault lands while they run
    (a clone takes milliseconds, so between, or inside, one of them). Every clone that
    succeeded has its row and, after the remount, its file; every one that failed names
    the I/O error and has neither."""
    d = rig.d
    t = rig.run_task("image_create", image_id="base", volume_id="flt", image_storage_id=STORAGE,
                     size_mb=1024, format="raw")
    assert t["result"] == "success", t
    results = []  # (clone_id, task view)
    done = threading.Event()

    def clones():
        # Nothing fails before the fault, so every error counts; counting only those seen
        # after the main thread flagged the fault raced with the clone it interrupted.
        try:
            failures = 0
            for i in range(200):
                cid = "c%03d" % i
                t = rig.run_task("guest_clone", image_id="base", guest_id="g%03d" % i, clone_id=cid)
                results.append((cid, t))
                if t["result"] == "error":
                    failures += 1
                    if failures == 3:
                        return
        finally:
            done.set()
    th = threading.Thread(target=clones)
    th.start()
    try:
        d.wait_for(lambda: sum(t["result"] == "success" for _, t in results) >= 3, timeout=60,
                   interval=0.005, what="three clones made before the fault")
        rig.flt.fail()
        assert done.wait(60), "guest_clone tasks still running 60 s after the fault"
    finally:
        th.join(90)
    assert not th.is_alive()
    made = [cid for cid, t in results if t["result"] == "success"]
    failed = [(cid, t) for cid, t in results if t["result"] == "error"]
    print("guest_clone: %d made, %d failed: %s" % (len(made), len(failed), failed[0][1]["result_msg"]))
    assert len(failed) == 3 and made == [cid for cid, _ in results[:len(made)]], results
    for cid, t in failed:
        assert t["task_type_str"] == "guest_clone" and EIO in t["result_msg"], t

    rig.answers_at_once()
    rows = {r[0] for r in rig.db("SELECT clone_id FROM clone")}
    assert rows == set(made), (rows, made)
    v = rig.shows_broken()
    assert sorted(c["clone_id"] for c in v["clones"]) == made, v["clones"]

    left = rig.comes_back_clean()
    assert left[".staging"] == [] and left["clones"] == ["%s.qcow2" % c for c in made], left
    assert rig.db("SELECT clone_id FROM clone ORDER BY clone_id") == [(c,) for c in made]
    t = rig.run_task("guest_clone", image_id="base", guest_id="after", clone_id=failed[0][0])
    assert t["result"] == "success", t  # a failed clone's id is free again
    assert (rig.flt.mnt / "clones" / ("%s.qcow2" % failed[0][0])).is_file()
