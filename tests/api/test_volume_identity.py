"""A volume is its directory, not the string that names it (issue 14).

Real daemons on real directories (and loop disks for the disk listing). What is proved:
- one directory cannot become two volumes, however it is spelled (trailing slash,
  symlink), in the config or in evolume_create; nor can a volume live inside another
  or contain another;
- a catalogue that already has two volumes on one directory (made before this check)
  loses no image at start: recovery keeps every file the catalogue knows under any
  volume and, in a directory it cannot prove is its own, removes nothing and says so;
- a volume whose images/ became a symlink is reported broken with the reason;
- the storage's disks are the usable ones: a disk with a filesystem, or mounted, is
  left out unless it carries one of the storage's volumes."""
import contextlib
import hashlib
import os
import sqlite3
import subprocess

import pytest
import requests

from fixtures.daemon import Daemon
from fixtures.loopdisk import LoopDisk

MiB = 1 << 20


def submit(d, body):
    full = {"repeat": "0", "retries": "0"}
    full.update(body)
    r = d.post("/tasks/create", json=full)
    assert r.status_code == 200, r.text
    return r.json()["message"]


def run(d, body, timeout=60):
    tid = submit(d, body)
    return d.wait_for(lambda: (lambda t: t if t["state"] == "completed" else None)(
        d.get("/tasks/" + tid).json()), timeout=timeout, what="task %s" % tid)


def failed(d, body):
    t = run(d, body)
    assert t["result"] == "error", t
    return t["result_msg"]


def storage(d, sid="s"):
    r = d.get("/imagestorages/" + sid)
    assert r.status_code == 200, r.text
    return r.json()


def ext_volume(d, vid, sid="s"):
    for v in storage(d, sid)["external_volumes"]:
        if v["volume_id"] == vid:
            return v
    return None


def wait_ok(d, vid):
    return d.wait_for(lambda: (lambda v: v if v and v["status"] == "ok" else None)(
        ext_volume(d, vid)), what="volume %s ok" % vid)


def put_image(d, name, data, volume_id):
    r = d.request("PUT", "/image/%s/file/" % name, params={"volume_id": volume_id}, data=data,
                  headers={"Content-Type": "application/octet-stream",
                           "X-Checksum-Sha256": hashlib.sha256(data).hexdigest()})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "active" and body["volume_id"] == volume_id, body
    return body


def roots_cfg(tmp_path, volumes=()):
    return {"probe_ttl_ms": 200, "mount_roots": [str(tmp_path / "roots")],
            "storages": [{"id": "s", "name": "S", "volumes": list(volumes)}]}


@pytest.fixture
def roots(tmp_path):
    (tmp_path / "roots" / "a").mkdir(parents=True)
    return tmp_path / "roots"


# ---- registration ----

def test_evolume_create_refuses_a_config_volume_spelled_with_a_trailing_slash(
        daemon_factory, tmp_path, roots):
    a = roots / "a"
    d = daemon_factory(roots_cfg(tmp_path, [{"id": "a", "kind": "external",
                                             "mount_point": str(a) + "/"}]))
    wait_ok(d, "a")
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "b",
                      "mount_point": str(a)}) == \
        "%s is already volume 'a' (registered as %s/)" % (a, a)
    (roots / "link").symlink_to(a)
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "b",
                      "mount_point": str(roots / "link")}) == \
        "%s is already volume 'a' (registered as %s/)" % (a, a)
    assert [v["volume_id"] for v in storage(d)["external_volumes"]] == ["a"]


def test_evolume_create_refuses_a_volume_inside_another_or_containing_one(
        daemon_factory, tmp_path, roots):
    a = roots / "a"
    d = daemon_factory(roots_cfg(tmp_path, [{"id": "a", "kind": "external",
                                             "mount_point": str(a)}]))
    wait_ok(d, "a")
    inner = a / "images" / "inner"
    inner.mkdir()
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "in",
                      "mount_point": str(inner)}) == \
        "%s is inside volume 'a' (%s)" % (inner, a)
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "out",
                      "mount_point": str(roots)}) == \
        "%s contains volume 'a' (%s)" % (roots, a)
    # a sibling is fine
    (roots / "b").mkdir()
    t = run(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "b",
                "mount_point": str(roots / "b")})
    assert t["result"] == "success", t
    assert sorted(v["volume_id"] for v in storage(d)["external_volumes"]) == ["a", "b"]
    assert os.listdir(inner) == []


@contextlib.contextmanager
def refused_start(d):
    """The daemon must exit at start; one that started anyway is stopped again."""
    try:
        with pytest.raises(RuntimeError) as exc:
            yield exc
    finally:
        if d.proc and d.proc.poll() is None:
            d.stop()
        elif d.proc:
            d.proc = None
            d._log.close()


def test_two_config_volumes_on_one_directory_refuse_to_start(tmp_path, roots):
    a = roots / "a"
    d = Daemon(tmp_path / "d", config=roots_cfg(tmp_path, [
        {"id": "a", "kind": "external", "mount_point": str(a) + "/"},
        {"id": "b", "kind": "external", "mount_point": str(a)}]))
    os.makedirs(d.tmpdir)
    with refused_start(d) as exc:
        d.start(timeout=15)
    assert "stowaged exited 1" in str(exc.value)
    assert "volume 'b': %s is already volume 'a' (registered as %s/)" % (a, a) in d.log()


def test_a_config_volume_inside_another_refuses_to_start(tmp_path, roots):
    a = roots / "a"
    (a / "sub").mkdir()
    d = Daemon(tmp_path / "d", config=roots_cfg(tmp_path, [
        {"id": "a", "kind": "external", "mount_point": str(a)},
        {"id": "sub", "kind": "external", "mount_point": str(a / "sub")}]))
    os.makedirs(d.tmpdir)
    with refused_start(d):
        d.start(timeout=15)
    assert "volume 'sub': %s is inside volume 'a' (%s)" % (a / "sub", a) in d.log()


# ---- recovery ----

def db(d, sql, *args):
    con = sqlite3.connect(os.path.join(d.state_dir, "stowage.db"), timeout=10)
    try:
        with con:
            return con.execute(sql, args).fetchall()
    finally:
        con.close()


def test_recovery_loses_no_image_when_two_volumes_already_share_a_directory(
        daemon_factory, tmp_path, roots):
    """The catalogue of an older stowage may hold two volumes on one directory. At start
    the second one's recovery sees the first one's image without a row of its own: it
    must keep it (the catalogue knows it under 'a'), and remove nothing else either."""
    a = roots / "a"
    d = daemon_factory(roots_cfg(tmp_path), sub="d1")
    t = run(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "a",
                "mount_point": str(a)})
    assert t["result"] == "success", t
    wait_ok(d, "a")
    data = os.urandom(3 * MiB)
    img = put_image(d, "kept", data, "a")
    d.stop()
    orphan = a / "images" / "00000000-0000-4000-8000-000000000001.raw"
    orphan.write_bytes(b"x" * 4096)  # no row anywhere: would be removed on an unshared volume
    db(d, "INSERT INTO volume (id, image_storage_id, kind, params, created_at) "
          "VALUES ('b', 's', 'external', json_object('mount_point', ?), 0)", str(a) + "/")

    d2 = Daemon(tmp_path / "d1", config=d.config, port=d.port)
    d2.start()
    try:
        wait_ok(d2, "a")
        wait_ok(d2, "b")
        r = d2.get("/image/kept/file/")
        assert r.status_code == 200, r.text
        assert hashlib.sha256(r.content).hexdigest() == img["sha256"]
        assert (a / "images" / ("%s.raw" % img["uuid"])).exists()
        assert d2.get("/v1/images/" + img["uuid"]).json()["status"] == "active"
        assert orphan.exists()
        log = d2.log()
        assert ("stowaged: recovery: volume b: left images/%s.raw alone: it is image kept "
                "of volume 'a'" % img["uuid"]) in log, log[-3000:]
        assert ("would remove images/%s (no row); left alone: volume" % orphan.name) in log, \
            log[-3000:]
        assert "removed images/" not in log, log[-3000:]
    finally:
        d2.stop()


def test_recovery_removes_nothing_in_a_directory_that_is_not_the_recorded_one(
        daemon_factory, tmp_path, roots):
    a = roots / "a"
    d = daemon_factory(roots_cfg(tmp_path, [{"id": "a", "kind": "external",
                                             "mount_point": str(a)}]), sub="d1")
    wait_ok(d, "a")
    d.stop()
    (dev, ino), = db(d, "SELECT json_extract(params, '$.root_dev'), "
                        "json_extract(params, '$.root_ino') FROM volume WHERE id = 'a'")
    st = os.stat(a)
    assert (dev, ino) == (st.st_dev, st.st_ino)
    # the directory is replaced by another one (say, the disk was not mounted)
    os.rename(a, roots / "a.old")
    a.mkdir()
    (a / "images").mkdir()
    orphan = a / "images" / "00000000-0000-4000-8000-000000000002.raw"
    orphan.write_bytes(b"y" * 4096)
    d2 = Daemon(tmp_path / "d1", config=d.config, port=d.port)
    d2.start()
    try:
        d2.wait_for(lambda: "would remove images/%s" % orphan.name in d2.log(),
                    what="recovery log line")
        assert orphan.exists()
        assert "is not the directory registered as volume 'a'" in d2.log(), d2.log()[-3000:]
    finally:
        d2.stop()


# ---- health and disks ----

def test_images_replaced_by_a_symlink_turns_the_volume_broken(daemon_factory, tmp_path, roots):
    a = roots / "a"
    d = daemon_factory(roots_cfg(tmp_path, [{"id": "a", "kind": "external",
                                             "mount_point": str(a)}]))
    wait_ok(d, "a")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.rmdir(a / "images")
    os.symlink(elsewhere, a / "images")
    v = d.wait_for(lambda: (lambda v: v if v["status"] == "broken" else None)(ext_volume(d, "a")),
                   timeout=10, what="volume a broken")
    assert v["status_msg"] == "%s: images is a symbolic link, not a directory" % a
    h = requests.get(d.url("/v1/health")).json()
    assert h["status"] == "degraded" and h["checks"]["volumes"]["a"] == "broken", h
    r = d.request("PUT", "/image/x/file/", data=b"\0" * 4096, params={"volume_id": "a"},
                  headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 503 and "images is a symbolic link" in r.json()["detail"], r.text
    assert os.listdir(elsewhere) == []
    # put right again: ok again
    os.unlink(a / "images")
    os.mkdir(a / "images")
    d.wait_for(lambda: ext_volume(d, "a")["status"] == "ok", timeout=10, what="ok again")


def loop_disk_id(disk):
    return "loop-" + hashlib.sha256(str(disk.path.resolve()).encode()).hexdigest()[:16]


def test_disks_lists_only_usable_disks_and_those_of_the_storage(daemon_factory, tmp_path):
    with LoopDisk(tmp_path / "disks", "512M") as blank, \
            LoopDisk(tmp_path / "disks", "512M") as formatted, \
            LoopDisk(tmp_path / "disks", "512M") as carrying:
        formatted.mkfs_xfs()
        carrying.mkfs_xfs()
        mnt = carrying.mount(tmp_path / "mnt")
        d = daemon_factory({"probe_ttl_ms": 200, "storages": [{"id": "s", "volumes": [
            {"id": "ssd", "kind": "local", "mount_point": str(mnt)}]}]})
        try:
            def listed():
                disks = {x["host_device"]: x for x in storage(d)["disks"]}
                c = disks.get(carrying.device)
                return disks if blank.device in disks and c and c["volume_id"] == "ssd" else None
            disks = d.wait_for(listed, what="blank and carrying disks listed")
            assert disks[blank.device]["volume_id"] == ""
            assert disks[blank.device]["physical_disk_id"] == loop_disk_id(blank)
            assert formatted.device not in disks
            # mounted, the formatted disk is still not usable
            formatted.mount(tmp_path / "mnt2")
            d.wait_for(lambda: storage(d)["volumes"][0]["status"] == "ok", what="ssd ok")
            assert formatted.device not in {x["host_device"] for x in storage(d)["disks"]}
            for x in storage(d)["disks"]:
                assert x["volume_id"] in ("", "ssd"), x
            root = subprocess.run(["findmnt", "-n", "-o", "SOURCE", "/"], capture_output=True,
                                  text=True).stdout.strip()
            for x in storage(d)["disks"]:
                if x["volume_id"] == "":
                    assert not root.startswith(x["host_device"]), (root, x)
        finally:
            d.stop()
            formatted.umount()
