"""Danube Cloud snapshots: /vm/{guest}/snapshot/ freezes a guest's disk (its clone), and
/vm/{guest}/snapshot/{snap}/image/{name}/ flattens it into a new image equal to what
`qemu-img convert -O raw` made of the clone at the snapshot's time. Also the image servers
a superadmin adds (/imagestore/{name}/ POST, DELETE) and dc placement on the roomiest
volume."""

import functools
import json
import os
import subprocess

import pytest
import requests

from fixtures.loopdisk import umount
import test_esdc
from test_esdc import es

# An import or a snapshot job may take longer than test_esdc's calls: a minute.
wait_task = functools.partial(test_esdc.wait_task, timeout=60)

MIB = 1024 * 1024


def call(d, method, path, body=None, token=None, params=None):
    data = json.dumps(body) if body is not None else ("{}" if method == "DELETE" else None)
    return requests.request(method, d.url(path), headers=es(d, token), data=data, params=params,
                            timeout=30, allow_redirects=False)


def job(d, method, path, body=None, token=None):
    """A call that must be accepted as a job; returns the finished task's answer."""
    r = call(d, method, path, body, token)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "PENDING" and r.json()["result"] is None
    return wait_task(d, r.json()["task_id"])


def detail(r, status, msg):
    assert (r.status_code, r.json()) == (status, {"detail": msg}), r.text


def start(daemon_factory, tmp_path, storages=None, sub="d", more=(), **extra):
    vol = tmp_path / (sub + "-vol")
    vol.mkdir()
    cfg = {"probe_ttl_ms": 200, "import_allow": ["127.0.0.1"],
           "storages": (storages or [{"id": "default", "name": "default",
                                      "volumes": [{"id": "dir1", "kind": "external",
                                                   "mount_point": str(vol)}]}]) + list(more)}
    cfg.update(extra)
    d = daemon_factory(cfg, sub=sub)
    d.vol = vol
    d.wait_for(lambda: all(v["status"] == "ok" for v in d.get("/imagestorages/default").json()[
        "external_volumes"]), what="volumes ok")
    return d


def upload(d, name, data):
    r = requests.put(d.url("/image/%s/file/" % name), data=data,
                     headers={"Authorization": "Token " + d.token}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()


def download(d, name):
    r = requests.get(d.url("/image/%s/file/" % name),
                     headers={"Authorization": "Token " + d.token}, timeout=60)
    assert r.status_code == 200, r.text
    return r.content


def clone(d, image, guest, clone_id):
    r = d.post("/tasks/create", json={"type": "guest_clone", "image_id": image,
                                      "guest_id": guest, "clone_id": clone_id})
    tid = r.json()["message"]
    d.wait_for(lambda: d.get("/tasks/" + tid).json()["state"] == "completed", what="clone")
    assert d.get("/tasks/" + tid).json()["result"] == "success"


def qemu_io(path, *cmds):
    args = ["qemu-io", "-f", "qcow2"]
    for c in cmds:
        args += ["-c", c]
    subprocess.run(args + [str(path)], check=True, stdout=subprocess.DEVNULL)


def raw_of(path, tmp_path, fmt="qcow2"):
    out = tmp_path / ("expected%d.raw" % len(os.listdir(tmp_path)))
    subprocess.run(["qemu-img", "convert", "-f", fmt, "-O", "raw", str(path), str(out)],
                   check=True)
    return out.read_bytes()


def base_image(kind, tmp_path):
    """A 16 MiB base with data: raw, or a qcow2 with deflated clusters (qemu-img -c)."""
    raw = tmp_path / "base.raw"
    data = bytearray(16 * MIB)
    for off in range(0, len(data), 3 * MIB):
        data[off:off + 65536] = os.urandom(65536)
    raw.write_bytes(bytes(data))
    if kind == "raw":
        return bytes(data)
    q = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(q)],
                   check=True)
    return q.read_bytes()


@pytest.mark.parametrize("kind", ["raw", "qcow2-compressed"])
def test_snapshot_to_image_equals_qemu_img_convert_of_the_clone_at_snapshot_time(
        daemon_factory, tmp_path, kind):
    d = start(daemon_factory, tmp_path)
    upload(d, "golden", base_image(kind, tmp_path))
    clone(d, "golden", "vm1", "c1")
    overlay = d.vol / "clones" / "c1.qcow2"
    # the guest writes over the base, partly across a cluster edge, and zeroes a range
    qemu_io(overlay, "write -P 0xab 1M 64k", "write -P 0xcd 5M 100k", "write -z 6M 1M")
    expected = raw_of(overlay, tmp_path)

    r = job(d, "POST", "/api/vm/vm1/snapshot/s1/", {"disk_id": 1, "note": "before update"})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["snapshot"] == "s1" and r.json()["result"]["clone"] == "c1"
    # the guest writes on; the snapshot does not change
    qemu_io(overlay, "write -P 0xee 1M 64k")

    r = call(d, "GET", "/api/vm/vm1/snapshot/s1/", params={"disk_id": "1"})
    s = r.json()["result"]
    assert r.status_code == 200 and r.json()["status"] == "SUCCESS"
    assert (s["hostname"], s["name"], s["disk_id"], s["note"], s["status"], s["type"]) == (
        "vm1", "s1", 1, "before update", 1, 2)
    assert s["size"] > 0 and s["id"] == "c1@s1"
    r = call(d, "GET", "/api/vm/vm1/snapshot/")
    assert r.json()["result"] == ["s1"]

    r = job(d, "POST", "/api/vm/vm1/snapshot/s1/image/frozen/",
            {"alias": "Frozen", "version": "2", "desc": "from s1", "access": 1, "resize": True})
    assert r.status_code == 200, r.text
    assert r.json()["result"]["name"] == "frozen" and r.json()["result"]["format"] == "raw"
    got = download(d, "frozen")
    assert len(got) == len(expected)
    assert got == expected
    img = call(d, "GET", "/api/image/frozen/").json()["result"]
    assert (img["alias"], img["version"], img["desc"], img["access"], img["resize"],
            img["status"], img["size"]) == ("Frozen", "2", "from s1", 1, True, 1, 16)
    # a standalone image: it shows in flexVDI's view and outlives the clone
    fv = d.get("/imagestorages/default").json()["external_volumes"][0]["images"]
    assert sorted(i["image_id"] for i in fv) == ["frozen", "golden"]
    r = d.post("/tasks/create", json={"type": "clone_delete", "clone_id": "c1"})
    tid = r.json()["message"]
    d.wait_for(lambda: d.get("/tasks/" + tid).json()["state"] == "completed", what="clone gone")
    assert sorted(os.listdir(d.vol / "clones")) == []  # the snapshot went with its clone
    assert download(d, "frozen") == expected


def test_snapshot_calls_answer_esdc_statuses_and_messages(daemon_factory, tmp_path):
    d = start(daemon_factory, tmp_path, more=[{"id": "empty", "name": "empty", "volumes": []}])
    upload(d, "golden", b"\x11" * MIB)
    clone(d, "golden", "vm1", "c1")
    reader = d.make_token("reader")

    detail(call(d, "GET", "/api/vm/nope/snapshot/"), 404, "VM not found")
    detail(call(d, "POST", "/api/vm/nope/snapshot/s1/", {}), 404, "VM not found")
    detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/", {"disk_id": 2}), 412, "Invalid disk_id")
    detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/", {"disk_id": "x"}), 412, "Invalid disk_id")
    detail(call(d, "GET", "/api/vm/vm1/snapshot/s1/"), 404, "Snapshot not found")
    r = call(d, "POST", "/api/vm/vm1/snapshot/%s/" % ("s" * 25), {})
    assert (r.status_code, r.json()["result"]) == (
        400, {"name": ["Ensure this value has at most 24 characters (it has 25)."]})
    r = call(d, "POST", "/api/vm/vm1/snapshot/s1/", {}, token=reader)
    assert r.status_code == 403
    assert job(d, "POST", "/vm/vm1/snapshot/s1", {}).status_code == 200  # root, no slash
    detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/", {}), 406, "Snapshot already exists")

    detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/image/golden/", {}), 406,
           "Image already exists")
    detail(call(d, "POST", "/api/vm/vm1/snapshot/s2/image/new/", {}), 404, "Snapshot not found")
    detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/image/new/", {"disk_id": 3}), 412,
           "Invalid disk_id")
    detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/image/new/", {"dc": "nodc"}), 404,
           "Datacenter not found")
    detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/image/new/", {"dc": "empty"}), 428,
           "Image server is not available")
    r = call(d, "POST", "/api/vm/vm1/snapshot/s1/image/new/", {"access": 2})
    assert (r.status_code, r.json()["result"]) == (
        400, {"access": ["Select a valid choice. 2 is not one of the available choices."]})
    # (alias, version) unique: golden is "golden" 1.0
    r = call(d, "POST", "/api/vm/vm1/snapshot/s1/image/new/", {"alias": "GOLDEN"})
    assert (r.status_code, r.json()["result"]) == (
        400, {"alias": ["This alias is already in use. Please supply a different alias or "
                        "version."]})
    assert call(d, "GET", "/api/image/new/").status_code == 404

    # a snapshot whose file is gone is not OK (esdc's 'lost')
    os.unlink(d.vol / "clones" / "c1@s1.qcow2")
    assert call(d, "GET", "/api/vm/vm1/snapshot/s1/").json()["result"]["status"] == 4
    detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/image/new/", {}), 417,
           "VM snapshot status is not OK")
    r = job(d, "DELETE", "/api/vm/vm1/snapshot/s1/")
    assert r.status_code == 200 and r.json()["result"] == {"clone": "c1", "snapshot": "s1"}
    assert call(d, "GET", "/api/vm/vm1/snapshot/").json()["result"] == []
    detail(call(d, "DELETE", "/api/vm/vm1/snapshot/s1/"), 404, "Snapshot not found")


def test_a_snapshot_left_without_its_row_is_removed_at_restart(daemon_factory, tmp_path):
    d = start(daemon_factory, tmp_path)
    upload(d, "golden", b"\x22" * MIB)
    clone(d, "golden", "vm1", "c1")
    assert job(d, "POST", "/api/vm/vm1/snapshot/keep/", {}).status_code == 200
    # what a crash between the rename and the row leaves
    (d.vol / "clones" / "c1@orphan.qcow2").write_bytes(
        (d.vol / "clones" / "c1@keep.qcow2").read_bytes())
    d.stop()
    d.start()
    d.wait_for(lambda: "c1@orphan.qcow2" not in os.listdir(d.vol / "clones"), what="recovery")
    assert sorted(os.listdir(d.vol / "clones")) == ["c1.qcow2", "c1@keep.qcow2"]
    assert call(d, "GET", "/api/vm/vm1/snapshot/keep/").json()["result"]["status"] == 1


# ---- image servers a superadmin adds ----

def test_a_superadmin_adds_and_removes_image_servers_and_they_survive_a_restart(
        daemon_factory, tmp_path):
    d = start(daemon_factory, tmp_path,
              imagestores=[{"name": "cfg", "url": "http://127.0.0.1:9/"}])
    admin = d.make_token("admin")
    r = call(d, "POST", "/api/imagestore/mine/", {"url": "http://127.0.0.1:8/"}, token=admin)
    assert r.status_code == 403 and "superadmin" in r.json()["detail"], r.text
    r = call(d, "POST", "/api/imagestore/mine/", {"url": "file:///etc/passwd"})
    assert (r.status_code, r.json()["result"]) == (400, {"url": ["Enter a valid URL."]})
    r = call(d, "POST", "/api/imagestore/mine/", {})
    assert (r.status_code, r.json()["result"]) == (400, {"url": ["This field is required."]})
    r = job(d, "POST", "/api/imagestore/mine/", {"url": "http://127.0.0.1:8/"})
    assert (r.status_code, r.json()["result"]) == (
        200, {"imagestore": "mine", "url": "http://127.0.0.1:8"})
    detail(call(d, "POST", "/api/imagestore/mine/", {"url": "http://127.0.0.1:8/"}), 406,
           "Image server already exists")
    assert call(d, "GET", "/api/imagestore/").json()["result"] == ["cfg", "mine"]

    d.stop()
    d.start()
    r = call(d, "GET", "/api/imagestore/mine/")
    assert r.json()["result"]["url"] == "http://127.0.0.1:8"
    r = call(d, "DELETE", "/api/imagestore/cfg/")
    assert r.status_code == 403 and "config" in r.json()["detail"], r.text
    r = call(d, "DELETE", "/api/imagestore/mine/", token=d.make_token("admin"))
    assert r.status_code == 403
    assert job(d, "DELETE", "/api/imagestore/mine/").status_code == 200
    assert call(d, "GET", "/api/imagestore/").json()["result"] == ["cfg"]
    detail(call(d, "DELETE", "/api/imagestore/mine/"), 404, "Image server not found")


# ---- dc placement ----

@pytest.fixture
def small_fs(tmp_path):
    """A 32 MiB tmpfs: a volume with less free space than the test's filesystem."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        umount(mnt)  # the test's daemon may still be running, and probing it


def test_an_image_bound_to_a_dc_goes_on_its_roomiest_volume_unless_volume_names_one(
        daemon_factory, tmp_path, small_fs):
    from test_esdc_import import Imgapi  # the fixture IMGAPI server
    big = tmp_path / "big"
    big.mkdir()
    vols = [{"id": "a-small", "kind": "external", "mount_point": str(small_fs)},
            {"id": "b-big", "kind": "external", "mount_point": str(big)}]
    d = start(daemon_factory, tmp_path,
              storages=[{"id": "default", "name": "default", "volumes": vols}])
    srv = Imgapi()
    try:
        for name, extra, where in [("roomy", {}, "b-big"), ("named", {"volume": "a-small"},
                                                            "a-small")]:
            _, murl = srv.add(os.urandom(MIB))
            r = job(d, "POST", "/api/image/%s/" % name,
                    dict({"manifest_url": murl, "dc": "default"}, **extra))
            assert r.status_code == 200, r.text
            assert r.json()["result"]["volume"] == where
    finally:
        srv.close()
    assert len(os.listdir(small_fs / "images")) == 1 and len(os.listdir(big / "images")) == 1


def test_a_snapshot_of_a_disk_on_an_unreachable_volume_is_423_and_makes_nothing(
        daemon_factory, tmp_path):
    """The clone's volume gone (its directory moved away): esdc's 423 'Node is not
    operational', no row and no file; once it is back the same call is accepted."""
    d = start(daemon_factory, tmp_path)
    upload(d, "golden", b"\x22" * MIB)
    clone(d, "golden", "vm1", "c1")
    away = tmp_path / "away"

    def status():
        return d.get("/imagestorages/default").json()["external_volumes"][0]["status"]

    os.rename(d.vol, away)
    try:
        d.wait_for(lambda: status() == "broken", what="volume broken")
        detail(call(d, "POST", "/api/vm/vm1/snapshot/s1/", {}), 423, "Node is not operational")
        assert call(d, "GET", "/api/vm/vm1/snapshot/").json()["result"] == []
    finally:
        os.rename(away, d.vol)
    assert not [f for f in os.listdir(d.vol / "clones") if "@" in f]
    d.wait_for(lambda: status() == "ok", what="volume ok again")
    r = job(d, "POST", "/api/vm/vm1/snapshot/s1/", {})
    assert r.status_code == 200, r.text
    assert [s["name"] for s in call(d, "GET", "/api/vm/vm1/snapshot/",
                                    params={"full": "true"}).json()["result"]] == ["s1"]
