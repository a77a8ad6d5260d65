"""Gluster faults, black-box: bricks of a disperse 4 + 2 volume die under transfers.

A private glusterd serves one disperse volume of six bricks (directories in tmp); one
daemon reaches it through libgfapi with a short probe TTL. Brick processes are killed
with SIGKILL (what a crashed or fenced brick server looks like to the client: its
sockets close at once) and brought back by `volume start … force`.

What is proved (API.md § Native data path, docs/gluster.md, docs/operations.md § Fault
testing):
- a brick killed in the middle of an upload and another in the middle of a download:
  each transfer either completes with the right bytes or fails cleanly (an error in the
  envelope, or a cut connection), within a deadline, never hanging;
- the volume then reports `degraded` naming exactly the dead bricks, and `ok` once
  they are restarted; every byte is still there;
- every brick killed: an upload in flight fails with 503, the volume reports `broken`
  within the probe TTL (plus one probe), data requests and tasks are refused with 503 at
  once, and no thread is stuck — GET /imagestorages/{id} and /v1/health answer in well
  under 100 ms while it lasts; after the restart the volume is `ok`, takes uploads, and
  what the failed upload had staged is gone from every brick.

Only one glusterd can run on a machine: when another one (not ours) is running, the
module waits for it (STOWAGE_GLUSTER_WAIT_S, default 900 s), as test_data_path does.
"""
import hashlib
import json
import os
import select
import socket
import statistics
import time
from pathlib import Path

import pytest
import requests

from fixtures.daemon import Daemon
from fixtures.gluster import glusterd_or_skip

MiB = 1 << 20
STORAGE, VID, GVOL = "gs", "g", "stfault"
TTL_MS = 500
DEADLINE = 60  # seconds any transfer may take, however it ends


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """(glusterd, daemon, brick names): one of each for the module, cleaned up in order."""
    base = tmp_path_factory.mktemp("gfault")
    gd = glusterd_or_skip(base / "gd")
    d = None
    try:
        bricks = gd.create_volume(GVOL, kind="disperse", bricks=6, redundancy=2)
        d = Daemon(base / "d", config={"probe_ttl_ms": TTL_MS, "storages": [{"id": STORAGE, "volumes": [
            {"id": VID, "kind": "gluster", "server": gd.hostname, "volume": GVOL}]}]})
        os.makedirs(d.tmpdir, exist_ok=True)
        d.start()
        yield gd, d, bricks
    finally:
        try:
            if d is not None:
                d.stop()  # closes the gfapi session before the volume goes
        finally:
            gd.stop()


def gvol(d):
    r = d.get("/imagestorages/" + STORAGE, timeout=5)
    assert r.status_code == 200, (r.status_code, r.text)
    vols = [v for v in r.json()["gluster_volumes"] if v["volume_id"] == VID]
    assert len(vols) == 1, r.json()
    return vols[0]


def wait_status(d, status, timeout=60, msg=None):
    def ok():
        v = gvol(d)
        return v if v["status"] == status and (msg is None or v["status_msg"] == msg) else None
    return d.wait_for(ok, timeout=timeout, interval=0.05, what="volume %s %s %s" % (VID, status, msg))


@pytest.fixture
def healthy(env):
    """Every brick up and the volume ok before the test (an earlier one may have failed)."""
    gd, d, bricks = env
    if not all(gd.brick_pids(GVOL)):
        gd.start_volume(GVOL, force=True)
    v = wait_status(d, "ok")
    assert v["bricks"] == bricks and v["configuration"] == "1 x (4 + 2)", v
    return env


def staged_on_bricks(bricks):
    """What the bricks hold in the volume's .staging/ (disperse keeps each file's
    fragment under the same name on every brick)."""
    names = set()
    for b in bricks:
        p = Path(b.split(":", 1)[1]) / ".staging"
        if p.is_dir():
            names.update(os.listdir(p))
    return sorted(names)


# ---------------------------------------------------------------- transfers

def put_with_fault(d, path, data, at, fault, sha):
    """PUT data: the first `at` bytes, then fault(), then the rest. Returns (status, body)
    with status None when the server cut the connection without an answer."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=DEADLINE)
    t0 = time.monotonic()
    try:
        s.sendall(("PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                   "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n"
                   "X-Checksum-Sha256: %s\r\n\r\n" % (path, d.port, d.token, len(data), sha)).encode())
        view = memoryview(data)
        for i in range(0, len(data), MiB):
            if i == at:
                fault()
            if select.select([s], [], [], 0)[0]:
                break  # the server answered early
            try:
                s.sendall(view[i:i + MiB])
            except (BrokenPipeError, ConnectionResetError):
                break
        buf = b""
        while b"\r\n\r\n" not in buf:
            b = s.recv(65536)
            if not b:
                return None, b""
            buf += b
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length:"))
        while len(body) < length:
            b = s.recv(65536)
            if not b:
                break
            body += b
        return int(lines[0].split()[1]), body
    finally:
        s.close()
        assert time.monotonic() - t0 < DEADLINE, "the upload took %.1f s" % (time.monotonic() - t0)


def get_with_fault(d, path, at, fault):
    """GET path streaming: fault() after `at` bytes. Returns (status, sha256 hex, length,
    how it ended): "complete", or the exception that cut it."""
    t0 = time.monotonic()
    h, n, faulted, ended = hashlib.sha256(), 0, False, "complete"
    r = d.get(path, stream=True, timeout=(5, 30))
    try:
        for chunk in r.iter_content(MiB):
            h.update(chunk)
            n += len(chunk)
            if not faulted and n >= at:
                fault()
                faulted = True
            assert time.monotonic() - t0 < DEADLINE, "the download took %.1f s" % (time.monotonic() - t0)
    except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError) as e:
        ended = type(e).__name__
    finally:
        r.close()
    assert time.monotonic() - t0 < DEADLINE
    return r.status_code, h.hexdigest(), n, ended


def upload(d, name, data):
    r = d.request("PUT", "/v1/images/%s/file" % new_uuid(), params={"name": name, "volume_id": VID},
                  headers={"X-Checksum-Sha256": hashlib.sha256(data).hexdigest()}, data=data,
                  timeout=DEADLINE)
    return r


def check_created(status, body, name, data):
    assert status == 201, (status, body)
    j = json.loads(body)
    assert (j["name"], j["status"], j["volume_id"], j["sha256"], j["size"]) == (
        name, "active", VID, hashlib.sha256(data).hexdigest(), len(data)), j
    return j


def native_error(status, body, want_status, code):
    assert status == want_status, (status, body)
    err = json.loads(body)["error"]
    assert {"code", "message", "field"} <= set(err) and err["code"] == code and err["message"], err
    return err


def new_uuid():
    with open("/proc/sys/kernel/random/uuid") as f:
        return f.read().strip()


def download_sha(d, name):
    r = d.get("/image/%s/file/" % name, timeout=DEADLINE)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return hashlib.sha256(r.content).hexdigest()


def live_rows(d, name):
    return d.db_rows("SELECT uuid, status FROM image WHERE name = ? AND status != 'deleted'",
                     (name,))


def test_brick_killed_mid_upload_and_mid_download_then_degraded_then_ok(healthy):
    gd, d, bricks = healthy
    keep = os.urandom(48 * MiB)
    r = upload(d, "gkeep", keep)
    check_created(r.status_code, r.content, "gkeep", keep)

    data = os.urandom(96 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    uuid = new_uuid()
    t0 = time.monotonic()
    status, body = put_with_fault(d, "/v1/images/%s/file?name=gup&volume_id=%s" % (uuid, VID), data,
                                  32 * MiB, lambda: gd.kill_brick(GVOL, 1), sha)
    up_took = time.monotonic() - t0
    if status == 201:
        up = "completed"
        check_created(status, body, "gup", data)
    else:
        up = "failed"
        assert status is None or native_error(status, body, 503, "unavailable"), (status, body)
        assert live_rows(d, "gup") == []

    status, got, n, ended = get_with_fault(d, "/image/gkeep/file/", 16 * MiB,
                                           lambda: gd.kill_brick(GVOL, 4))
    assert status == 200, status
    if ended == "complete":
        assert (n, got) == (len(keep), hashlib.sha256(keep).hexdigest()), (n, ended)
    else:
        assert n < len(keep), (n, ended)  # cut short, never wrong bytes passed off as whole
    print("brick killed mid-upload: %s in %.1f s; mid-download: %s after %d MiB"
          % (up, up_took, ended, n // MiB))

    # degraded, naming exactly the dead bricks; the daemon answers meanwhile
    v = wait_status(d, "degraded", msg="brick down: %s %s" % (bricks[1], bricks[4]))
    assert v["total_space"] > 0, v
    h = d.get("/v1/health").json()
    assert h["status"] == "degraded" and h["checks"]["volumes"] == {VID: "degraded"}, h
    assert download_sha(d, "gkeep") == hashlib.sha256(keep).hexdigest()  # 4 of 6 are enough

    gd.start_volume(GVOL, force=True)
    v = wait_status(d, "ok")
    assert v["status_msg"] == "" and v["bricks"] == bricks, v
    assert d.get("/v1/health").json()["status"] == "ok"
    assert download_sha(d, "gkeep") == hashlib.sha256(keep).hexdigest()
    if up == "completed":
        assert download_sha(d, "gup") == sha
    else:
        r = upload(d, "gup", data)  # the name is free again
        check_created(r.status_code, r.content, "gup", data)


def latencies(d, path, n=20):
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        r = d.get(path, timeout=5)
        out.append(time.monotonic() - t0)
        assert r.status_code == 200, (path, r.status_code, r.text)
        time.sleep(0.02)
    return sorted(out)


def test_all_bricks_down_broken_within_the_ttl_and_nothing_waits(healthy):
    gd, d, bricks = healthy
    keep = os.urandom(8 * MiB)
    r = upload(d, "gstay", keep)
    check_created(r.status_code, r.content, "gstay", keep)

    killed = {}

    def kill_all():
        for i in range(len(bricks)):
            gd.kill_brick(GVOL, i)
        killed["at"] = time.monotonic()
    data = os.urandom(64 * MiB)
    uuid = new_uuid()
    status, body = put_with_fault(d, "/v1/images/%s/file?name=gdoomed&volume_id=%s" % (uuid, VID),
                                  data, 16 * MiB, kill_all, hashlib.sha256(data).hexdigest())
    err = native_error(status, body, 503, "unavailable")
    print("upload with every brick gone: %d %s" % (status, err["message"]))
    assert live_rows(d, "gdoomed") == []

    wait_status(d, "broken", timeout=30)
    took = time.monotonic() - killed["at"]
    assert took < 2 * TTL_MS / 1000 + 5, "broken %.2f s after the last brick died" % took
    # the session may say so first (statvfs: not connected); the CLI's word follows
    wait_status(d, "broken", timeout=10, msg="all 6 bricks of %s are down" % GVOL)
    print("broken %.2f s after the last brick died (probe TTL %d ms)" % (took, TTL_MS))

    # requests on the volume are refused at once, in each envelope
    t0 = time.monotonic()
    r = upload(d, "gnew", b"x" * MiB)
    err = native_error(r.status_code, r.content, 503, "unavailable")
    assert "broken" in err["message"] and GVOL in err["message"], err
    r = d.get("/image/gstay/file/", timeout=5)
    assert r.status_code == 503 and "broken" in r.json()["detail"], (r.status_code, r.text)
    r = d.get("/v1/images/%s/file" % live_rows(d, "gstay")[0][0], timeout=5)
    native_error(r.status_code, r.content, 503, "unavailable")
    refused = time.monotonic() - t0
    assert refused < 2.0, refused
    t = d.post("/tasks/create", json={"type": "guest_clone", "repeat": "0", "retries": "0",
                                      "image_id": "gstay", "guest_id": "vm1", "clone_id": "gstay_vm1"})
    assert t.status_code == 200 and t.json()["status"] == "OK", t.text
    tid = t.json()["message"]
    t = d.wait_for(lambda: (lambda t: t if t["state"] == "completed" else None)(
        d.get("/tasks/" + tid).json()), timeout=10, interval=0.02, what="guest_clone")
    assert t["result"] == "error" and "broken" in t["result_msg"], t

    # no thread is stuck: the views answer at once
    views = latencies(d, "/imagestorages/" + STORAGE)
    health = latencies(d, "/v1/health")
    print("while broken: GET /imagestorages p50 %.1f ms max %.1f ms; /v1/health p50 %.1f ms max %.1f ms"
          % (statistics.median(views) * 1e3, views[-1] * 1e3, statistics.median(health) * 1e3,
             health[-1] * 1e3))
    for lat in (views, health):
        assert statistics.median(lat) < 0.1 and lat[int(len(lat) * 0.8) - 1] < 0.1, lat
    h = d.get("/v1/health").json()
    assert h["status"] == "degraded" and h["checks"] == {"database": "ok", "volumes": {VID: "broken"}}, h
    names = [i["image_id"] for i in gvol(d)["images"]]
    assert "gstay" in names and "gdoomed" not in names and "gnew" not in names, names
    assert gvol(d)["clones"] == []

    gd.start_volume(GVOL, force=True)
    v = wait_status(d, "ok")
    assert v["status_msg"] == "", v
    # the session reconnected by itself: the volume takes work again, and the failed
    # upload's staging file went with the recovery that ran when the volume came back
    small = os.urandom(MiB)
    deadline = time.monotonic() + 30
    while True:
        r = upload(d, "gafter", small)
        if r.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check_created(r.status_code, r.content, "gafter", small)
    assert download_sha(d, "gstay") == hashlib.sha256(keep).hexdigest()
    d.wait_for(lambda: ("%s.upload" % uuid) not in staged_on_bricks(bricks), timeout=10,
               what="no staging file of the failed upload on the bricks: %r" % staged_on_bricks(bricks))
    assert "recovery: removed .staging/%s.upload" % uuid in d.log(), d.log()[-3000:]
