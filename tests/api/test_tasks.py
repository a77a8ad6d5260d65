"""flexVDI tasks: POST /tasks/create for every type, GET /tasks shapes, restart.

Real daemons, real loop disks (volume_create formats and mounts them), real directories.
Everything a test mounts is unmounted in its own finally, after its daemon stopped."""
import contextlib
import glob
import hashlib
import os
import re
import sqlite3
import subprocess
import time

import pytest

from fixtures.loopdisk import LoopDisk

TASK_KEYS = {"task_id", "when", "execution", "state", "result", "result_msg", "task_type",
             "task_type_str", "progress"}
TYPES = ["istorage_create", "istorage_modify", "istorage_delete", "volume_create",
         "volume_delete", "evolume_create", "evolume_delete", "image_create", "image_copy",
         "image_release", "image_delete", "guest_clone", "clone_delete"]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
MIB = 1 << 20


# ---- helpers ----

def submit(d, body, token=None):
    full = {"repeat": "0", "retries": "0"}
    full.update(body)
    r = d.post("/tasks/create", token=token, json=full)
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) == {"status", "message"} and j["status"] == "OK", j
    return j["message"]


def wait_task(d, tid, timeout=60):
    return d.wait_for(lambda: (lambda t: t if t["state"] == "completed" else None)(
        d.get("/tasks/" + tid).json()), timeout=timeout, what="task %s" % tid)


def run(d, body, token=None, timeout=60):
    return wait_task(d, submit(d, body, token), timeout)


def ok(d, body, **kw):
    t = run(d, body, **kw)
    assert (t["result"], t["progress"]) == ("success", 100), t
    return t


def failed(d, body, **kw):
    t = run(d, body, **kw)
    assert t["result"] == "error", t
    return t["result_msg"]


def storage(d, sid):
    r = d.get("/imagestorages/" + sid)
    assert r.status_code == 200, r.text
    return r.json()


def find(items, key, value):
    for x in items:
        if x[key] == value:
            return x
    return None


def wait_volume_ok(d, sid, vid, kind="external_volumes"):
    return d.wait_for(lambda: (lambda v: v if v and v["status"] == "ok" else None)(
        find(storage(d, sid)[kind], "volume_id", vid)), what="volume %s ok" % vid)


def loop_disk_id(disk):
    return "loop-" + hashlib.sha256(str(disk.path.resolve()).encode()).hexdigest()[:16]


def blkid(dev):
    r = subprocess.run(["blkid", "-p", dev], capture_output=True, text=True)
    return r.returncode, r.stdout


def mounts():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def umount_under(path):
    """Unmount whatever a daemon left mounted below path (deepest first)."""
    path = os.path.realpath(str(path))
    for mp in sorted((m for m in mounts() if m == path or m.startswith(path + "/")), reverse=True):
        if subprocess.run(["umount", mp]).returncode != 0:
            subprocess.run(["umount", "-l", mp])


def db_row(d, sql, *args):
    con = sqlite3.connect(os.path.join(d.state_dir, "stowage.db"), timeout=10)
    try:
        return con.execute(sql, args).fetchone()
    finally:
        con.close()


@pytest.fixture
def roots_daemon(daemon_factory, tmp_path):
    """Storage 's' (no volumes yet) and a mount root for external volumes."""
    (tmp_path / "roots").mkdir()
    cfg = {"probe_ttl_ms": 200, "mount_roots": [str(tmp_path / "roots")],
           "storages": [{"id": "s", "name": "S"}]}
    return daemon_factory(cfg)


# ---- submission and shapes ----

def test_task_object_has_flexvdi_fields_and_reaches_100(ext_daemon):
    d = ext_daemon
    wait_volume_ok(d, "default", "dir1")
    tid = submit(d, {"type": "image_create", "image_id": "win7", "volume_id": "dir1",
                     "image_storage_id": "default", "size_mb": "16"})
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$", tid)
    t = wait_task(d, tid)
    assert set(t) == TASK_KEYS
    assert t["task_id"] == tid
    assert (t["state"], t["result"], t["progress"]) == ("completed", "success", 100)
    assert t["result_msg"] == "image 'win7' created on volume 'dir1' (16 MB, raw)"
    assert (t["task_type"], t["task_type_str"]) == (108, "image_create")
    assert TIME_RE.match(t["when"]) and TIME_RE.match(t["execution"])
    assert t["execution"] >= t["when"]
    img = find(storage(d, "default")["external_volumes"][0]["images"], "image_id", "win7")
    assert img == {"image_id": "win7", "volume_id": "dir1", "image_storage_id": "default",
                   "guest_id": "", "size_mb": 16}


def test_get_tasks_is_an_object_of_every_type_and_a_list_with_format_list(ext_daemon):
    d = ext_daemon
    empty = d.get("/tasks")
    assert empty.status_code == 200
    assert empty.json() == {t: [] for t in TYPES}
    assert d.get("/tasks?format=list").json() == []
    wait_volume_ok(d, "default", "dir1")
    a = ok(d, {"type": "image_create", "image_id": "a", "volume_id": "dir1",
               "image_storage_id": "default", "size_mb": 1})
    b = failed(d, {"type": "image_delete", "image_id": "nope"})
    assert b == "image 'nope' not found"
    by_type = d.get("/tasks").json()
    assert set(by_type) == set(TYPES)
    assert by_type["image_create"] == [a]
    assert [t["result_msg"] for t in by_type["image_delete"]] == ["image 'nope' not found"]
    assert all(v == [] for k, v in by_type.items() if k not in ("image_create", "image_delete"))
    listing = d.get("/tasks?format=list").json()
    assert [t["task_type_str"] for t in listing] == ["image_create", "image_delete"]
    assert listing[0] == a and all(set(t) == TASK_KEYS for t in listing)
    assert listing[1]["execution"] != "" and listing[1]["progress"] < 100

    r = d.get("/tasks?format=table")
    assert (r.status_code, r.json()) == (400, {"status": "error",
                                               "message": "format must be 'list' (or absent)"})
    r = d.get("/tasks/0f0f0f0f-0000-4000-8000-000000000000")
    assert (r.status_code, r.json()) == (404, {
        "status": "error", "message": "task '0f0f0f0f-0000-4000-8000-000000000000' not found"})


@pytest.mark.parametrize("body,status,message", [
    ({"type": "bogus"}, 400, "unknown task type 'bogus'"),
    ({"image_id": "x"}, 400, "'type' is required"),
    ({"type": 7}, 400, "'type' must be a string"),
    ({"type": "image_create", "image_id": "x", "volume_id": "dir1", "size_mb": 1},
     400, "'image_storage_id' is required"),
    ({"type": "image_create", "image_id": "bad/name", "volume_id": "dir1",
      "image_storage_id": "default", "size_mb": 1},
     400, "'image_id' must match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
    ({"type": "image_create", "image_id": "x", "volume_id": "dir1",
      "image_storage_id": "default", "size_mb": "1.5"}, 400, "'size_mb' must be a whole number of MB"),
    ({"type": "image_create", "image_id": "x", "volume_id": "dir1",
      "image_storage_id": "default", "size_mb": 0}, 400, "'size_mb' must be at least 1"),
    ({"type": "image_create", "image_id": "x", "volume_id": "dir1",
      "image_storage_id": "default", "size_mb": 1048577}, 413,
     "'size_mb' is over the limit of 1048576 MB"),
    ({"type": "image_create", "image_id": "x", "volume_id": "dir1",
      "image_storage_id": "default", "size_mb": 1, "format": "vmdk"},
     400, "'format' must be raw or qcow2"),
    ({"type": "evolume_create", "image_storage_id": "s", "volume_id": "v",
      "mount_point": "relative/dir"}, 400, "'mount_point' must be an absolute path"),
    ({"type": "volume_create", "image_storage_id": "s", "volume_id": "v",
      "primary_disk_id": "a disk"}, 400,
     "'primary_disk_id' must be a physical_disk_id ([A-Za-z0-9._-], up to 95)"),
    ({"type": "istorage_create", "image_storage_id": "s2", "name": ""}, 400,
     "'name' must not be empty"),
    ({"type": "guest_clone", "image_id": "x", "guest_id": ["g"]}, 400,
     "'guest_id' must be a string"),
    ({"type": "clone_delete", "clone_id": "c", "repeat": "soon"}, 400,
     "'repeat' must be an integer"),
    ({"type": "clone_delete", "clone_id": "c", "retries": -1}, 400,
     "'retries' must be between 0 and 2147483647"),
])
def test_create_refuses_bad_params_naming_the_field(ext_daemon, body, status, message):
    r = ext_daemon.post("/tasks/create", json=body)
    assert (r.status_code, r.json()) == (status, {"status": "error", "message": message})
    assert ext_daemon.get("/tasks?format=list").json() == []


def test_create_refuses_what_is_not_a_json_object_and_wrong_roles(ext_daemon):
    d = ext_daemon
    r = d.post("/tasks/create", data="[1]", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()) == (400, {
        "status": "error", "message": "body must be a JSON object {type, ...}"})
    r = d.post("/tasks/create", data="type=image_create",
               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and r.json()["status"] == "error"
    admin, reader = d.make_token("admin"), d.make_token("reader")
    r = d.post("/tasks/create", token=admin,
               json={"type": "istorage_create", "image_storage_id": "x", "name": "X"})
    assert (r.status_code, r.json()) == (403, {
        "status": "error", "message": "role admin may not run istorage_create (needs superadmin)"})
    r = d.post("/tasks/create", token=reader, json={"type": "clone_delete", "clone_id": "c"})
    assert r.status_code == 403 and r.json()["status"] == "error"
    assert d.get("/tasks", token=reader).status_code == 200
    # an admin runs image tasks; retries > 0 is accepted and never repeats a task
    wait_volume_ok(d, "default", "dir1")
    t = run(d, {"type": "image_create", "image_id": "byadmin", "volume_id": "dir1",
                "image_storage_id": "default", "size_mb": 1, "retries": "3"}, token=admin)
    assert t["result"] == "success"
    assert len(d.get("/tasks?format=list").json()) == 1


# ---- image storages ----

def test_istorage_lifecycle(roots_daemon, tmp_path):
    d = roots_daemon
    t = ok(d, {"type": "istorage_create", "image_storage_id": "internal", "name": "Internal",
               "description": "SSDs"})
    assert t["result_msg"] == "image storage 'internal' created on host %s" % os.uname().nodename
    info = storage(d, "internal")
    assert info["hosts"] == [os.uname().nodename] and info["volumes"] == []
    assert failed(d, {"type": "istorage_create", "image_storage_id": "internal",
                      "name": "Again"}) == "image storage 'internal' already exists"

    ok(d, {"type": "istorage_modify", "image_storage_id": "internal", "name": "Renamed"})
    assert db_row(d, "SELECT name, description FROM image_storage WHERE id = ?",
                  "internal") == ("Renamed", "SSDs")
    ok(d, {"type": "istorage_modify", "image_storage_id": "internal", "description": ""})
    assert db_row(d, "SELECT name, description FROM image_storage WHERE id = ?",
                  "internal") == ("Renamed", "")
    assert failed(d, {"type": "istorage_modify", "image_storage_id": "nope",
                      "name": "x"}) == "image storage 'nope' not found"

    (tmp_path / "roots" / "e").mkdir()
    ok(d, {"type": "evolume_create", "image_storage_id": "internal", "volume_id": "e",
           "mount_point": str(tmp_path / "roots" / "e")})
    assert failed(d, {"type": "istorage_delete", "image_storage_id": "internal"}) == \
        "image storage 'internal' still has 1 volume (e); delete it first"
    ok(d, {"type": "evolume_delete", "volume_id": "e"})
    t = ok(d, {"type": "istorage_delete", "image_storage_id": "internal"})
    assert t["result_msg"] == "image storage 'internal' deleted"
    r = d.get("/imagestorages/internal")
    assert r.status_code == 404 and r.json()["status"] == "error"
    assert [x["image_storage_id"] for x in d.get("/imagestorages").json()] == ["s"]


# ---- external volumes ----

def test_evolume_under_an_allowed_root_and_refused_outside(roots_daemon, tmp_path):
    d = roots_daemon
    inside = tmp_path / "roots" / "nfs"
    inside.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "roots" / "escape").symlink_to(outside)

    t = ok(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "nfs",
               "mount_point": str(inside)})
    assert t["result_msg"] == "external volume 'nfs' registered at %s" % inside
    v = wait_volume_ok(d, "s", "nfs")
    assert v["mount_point"] == str(inside) and v["images"] == []
    assert sorted(os.listdir(inside)) == [".staging", "clones", "images"]

    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "out",
                      "mount_point": str(outside)}) == \
        ("mount_point %s (really %s) is not under any directory of the config key mount_roots"
         % (outside, outside))
    escape = tmp_path / "roots" / "escape"
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "out",
                      "mount_point": str(escape)}) == \
        ("mount_point %s (really %s) is not under any directory of the config key mount_roots"
         % (escape, outside))
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "gone",
                      "mount_point": str(tmp_path / "roots" / "missing")}) == \
        "mount_point %s: No such file or directory" % (tmp_path / "roots" / "missing")
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "again",
                      "mount_point": str(inside)}) == "%s is already volume 'nfs'" % inside
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "nfs",
                      "mount_point": str(inside)}) == \
        "volume 'nfs' already exists (in image storage 's')"
    assert failed(d, {"type": "evolume_create", "image_storage_id": "nope", "volume_id": "x",
                      "mount_point": str(inside)}) == "image storage 'nope' not found"
    assert [v["volume_id"] for v in storage(d, "s")["external_volumes"]] == ["nfs"]
    assert os.listdir(outside) == []

    assert failed(d, {"type": "volume_delete", "volume_id": "nfs"}) == \
        "volume 'nfs' is external, not local: use evolume_delete"
    t = ok(d, {"type": "evolume_delete", "volume_id": "nfs", "image_storage_id": "s"})
    assert t["result_msg"] == "volume 'nfs' deleted"
    assert storage(d, "s")["external_volumes"] == []
    assert os.path.isdir(inside / "images")  # the directory keeps what it had


def test_messages_cut_inside_a_utf8_character_stay_valid_json(roots_daemon, tmp_path):
    d = roots_daemon
    for pad in ("", "x"):  # one of the two cuts the message inside a two-byte character
        path = str(tmp_path / "roots" / (pad + "\u00e9" * 200))
        msg = failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "u",
                         "mount_point": path})
        assert msg.startswith("mount_point %s" % path[:60])
    r = d.get("/tasks?format=list")
    assert r.status_code == 200 and len(r.json()) == 2


def test_evolume_refused_without_mount_roots(daemon_factory, tmp_path):
    d = daemon_factory({"storages": [{"id": "s"}]})
    assert failed(d, {"type": "evolume_create", "image_storage_id": "s", "volume_id": "x",
                      "mount_point": str(tmp_path)}) == \
        "external volumes are disabled: the config key mount_roots lists no directory"


# ---- images and clones ----

def test_image_and_clone_tasks(ext_daemon):
    d = ext_daemon
    mp = d.config["storages"][0]["volumes"][0]["mount_point"]
    wait_volume_ok(d, "default", "dir1")
    base = {"volume_id": "dir1", "image_storage_id": "default"}
    ok(d, dict(base, type="image_create", image_id="raw1", size_mb=64))
    t = ok(d, dict(base, type="image_create", image_id="q1", size_mb=64, format="qcow2"))
    assert t["result_msg"] == "image 'q1' created on volume 'dir1' (64 MB, qcow2)"
    files = sorted(os.listdir(os.path.join(mp, "images")))
    assert sorted(f.rsplit(".", 1)[1] for f in files) == ["qcow2", "raw"]
    raw = [f for f in files if f.endswith(".raw")][0]
    assert os.path.getsize(os.path.join(mp, "images", raw)) == 64 * MIB
    assert "'raw1' already exists" in failed(d, dict(base, type="image_create", image_id="raw1",
                                                     size_mb=1))
    assert failed(d, {"type": "image_create", "image_id": "x", "volume_id": "nope",
                      "image_storage_id": "default", "size_mb": 1}) == "volume 'nope' not found"
    assert failed(d, {"type": "image_create", "image_id": "x", "volume_id": "dir1",
                      "image_storage_id": "other", "size_mb": 1}) == \
        "volume 'dir1' is not in image storage 'other' (it is in 'default')"

    t = ok(d, dict(base, type="image_copy", image_id="raw2", source_image_id="raw1",
                   source_volume_id="dir1"))
    assert t["result_msg"] == "image 'raw2' copied from 'raw1' to volume 'dir1'"
    assert failed(d, dict(base, type="image_copy", image_id="raw3", source_image_id="raw1",
                          source_volume_id="elsewhere")) == \
        "image 'raw1' is not on volume 'elsewhere' (it is on 'dir1')"

    t = ok(d, {"type": "guest_clone", "image_id": "raw1", "guest_id": "corus_demo"})
    assert t["result_msg"] == \
        "clone 'raw1_corus_demo' of image 'raw1' created for guest 'corus_demo'"
    ok(d, {"type": "guest_clone", "image_id": "raw1", "guest_id": "g2", "clone_id": "mine"})
    vol = storage(d, "default")["external_volumes"][0]
    assert sorted((c["clone_id"], c["image_id"], c["guest_id"]) for c in vol["clones"]) == [
        ("mine", "raw1", "g2"), ("raw1_corus_demo", "raw1", "corus_demo")]
    assert sorted(os.listdir(os.path.join(mp, "clones"))) == [
        "mine.qcow2", "raw1_corus_demo.qcow2"]

    assert failed(d, {"type": "image_delete", "image_id": "raw1"}) == \
        "image 'raw1' is used by 2 clones (mine, raw1_corus_demo); delete them first"
    ok(d, {"type": "clone_delete", "clone_id": "mine"})
    ok(d, {"type": "clone_delete", "clone_id": "raw1_corus_demo"})
    assert failed(d, {"type": "clone_delete", "clone_id": "mine"}) == "clone 'mine' not found"
    assert os.listdir(os.path.join(mp, "clones")) == []

    t = ok(d, {"type": "image_release", "image_id": "raw1", "volume_id": "dir1",
               "image_storage_id": "default"})
    assert t["result_msg"] == "image 'raw1' released"
    assert failed(d, {"type": "image_release", "image_id": "raw1", "volume_id": "other"}) == \
        "image 'raw1' is not on volume 'other' (it is on 'dir1')"
    for name in ("raw1", "raw2", "q1"):
        t = ok(d, {"type": "image_delete", "image_id": name})
        assert t["result_msg"] == "image '%s' deleted from volume 'dir1'" % name
    assert storage(d, "default")["external_volumes"][0]["images"] == []
    assert os.listdir(os.path.join(mp, "images")) == []


# ---- local volumes on real disks ----

def local_cfg(tmp_path):
    return {"probe_ttl_ms": 200, "storages": [{"id": "internal"}]}


def wait_disk(d, disk):
    return d.wait_for(lambda: find(storage(d, "internal")["disks"], "host_device", disk.device),
                      what="disk %s listed" % disk.device)


def test_volume_create_formats_a_blank_disk_and_volume_delete_keeps_its_filesystem(
        daemon_factory, tmp_path):
    with LoopDisk(tmp_path / "disks", "512M") as disk:
        d = daemon_factory(local_cfg(tmp_path))
        try:
            assert blkid(disk.device)[0] == 2  # nothing on it
            listed = wait_disk(d, disk)
            assert listed["physical_disk_id"] == loop_disk_id(disk)
            t = ok(d, {"type": "volume_create", "image_storage_id": "internal",
                       "volume_id": "ssd", "primary_disk_id": loop_disk_id(disk)}, timeout=120)
            mnt = os.path.join(d.state_dir, "volumes", "ssd")
            assert t["result_msg"] == "volume 'ssd' created: XFS on %s, mounted at %s" % (
                disk.device, mnt)
            assert mnt in mounts()
            assert 'TYPE="xfs"' in blkid(disk.device)[1]
            v = wait_volume_ok(d, "internal", "ssd", kind="volumes")
            assert v["primary_disk_id"] == loop_disk_id(disk) and v["secondary_disk_id"] == ""
            assert "mount_point" not in v and v["total_space"] > 400 * 1024
            d.wait_for(lambda: find(storage(d, "internal")["disks"], "host_device",
                                    disk.device)["volume_id"] == "ssd", what="disk carries ssd")
            # a second volume on the same disk is refused
            assert failed(d, {"type": "volume_create", "image_storage_id": "internal",
                              "volume_id": "ssd2", "primary_disk_id": loop_disk_id(disk)}) == \
                "disk '%s' already carries volume 'ssd'" % loop_disk_id(disk)

            ok(d, {"type": "image_create", "image_id": "img", "volume_id": "ssd",
                   "image_storage_id": "internal", "size_mb": 8})
            assert failed(d, {"type": "volume_delete", "volume_id": "ssd"}) == \
                "volume 'ssd' still holds 1 image and 0 clones; delete them first"
            assert mnt in mounts()
            ok(d, {"type": "image_delete", "image_id": "img"})
            t = ok(d, {"type": "volume_delete", "volume_id": "ssd", "image_storage_id": "internal"})
            assert t["result_msg"] == ("volume 'ssd' deleted; %s keeps its xfs filesystem "
                                       "(wipe it to reuse the disk)" % disk.device)
            assert mnt not in mounts() and not os.path.exists(mnt)
            assert storage(d, "internal")["volumes"] == []
            assert 'TYPE="xfs"' in blkid(disk.device)[1]
        finally:
            d.stop()
            umount_under(d.state_dir)


def test_volume_create_refuses_a_disk_with_a_filesystem_and_leaves_it_untouched(
        daemon_factory, tmp_path):
    with LoopDisk(tmp_path / "disks", "512M") as disk:
        disk.mkfs_xfs()
        before = blkid(disk.device)
        assert before[0] == 0 and 'TYPE="xfs"' in before[1]
        uuid = re.search(r' UUID="([^"]+)"', before[1]).group(1)
        d = daemon_factory(local_cfg(tmp_path))
        try:
            # a disk with a filesystem is not listed among the usable ones; wait until the
            # disk probe has seen it (a task before that would not find the disk at all)
            msg = d.wait_for(lambda: (lambda m: m if "is not a disk of this host" not in m else None)(
                failed(d, {"type": "volume_create", "image_storage_id": "internal",
                           "volume_id": "v", "primary_disk_id": loop_disk_id(disk)})),
                what="disk %s probed" % disk.device)
            assert disk.device not in [x["host_device"] for x in storage(d, "internal")["disks"]]
            assert msg == ("disk '%s' (%s) is not blank: libblkid sees xfs (UUID %s); only disks "
                           "without any signature are formatted" % (loop_disk_id(disk),
                                                                   disk.device, uuid))
            assert blkid(disk.device) == before
            assert storage(d, "internal")["volumes"] == []
            assert not os.path.exists(os.path.join(d.state_dir, "volumes", "v"))
            # mounted: refused as well, and still untouched
            disk.mount(tmp_path / "mnt")
            msg = failed(d, {"type": "volume_create", "image_storage_id": "internal",
                             "volume_id": "v", "primary_disk_id": loop_disk_id(disk)})
            assert "is not blank" in msg or "is mounted" in msg
            disk.umount()
            assert blkid(disk.device) == before
            assert failed(d, {"type": "volume_create", "image_storage_id": "internal",
                              "volume_id": "v", "primary_disk_id": "loop-0000000000000000"}) == \
                "disk 'loop-0000000000000000' is not a disk of this host"
        finally:
            d.stop()
            umount_under(d.state_dir)


@pytest.mark.skipif(os.path.exists("/proc/mdstat"), reason="this kernel has md: the mirror path runs")
def test_volume_create_with_a_secondary_disk_needs_md_and_touches_nothing(daemon_factory, tmp_path):
    with LoopDisk(tmp_path / "disks", "512M") as a, LoopDisk(tmp_path / "disks", "512M") as b:
        d = daemon_factory(local_cfg(tmp_path))
        try:
            wait_disk(d, a)
            wait_disk(d, b)
            msg = failed(d, {"type": "volume_create", "image_storage_id": "internal",
                             "volume_id": "mirror", "primary_disk_id": loop_disk_id(a),
                             "secondary_disk_id": loop_disk_id(b)})
            if glob.glob("/usr/sbin/mdadm") or glob.glob("/sbin/mdadm"):
                assert msg == ("a mirrored volume needs md RAID1, but this kernel has no md "
                               "driver (/proc/mdstat is missing)")
            else:
                assert msg == "a mirrored volume needs md RAID1, but mdadm is not installed"
            assert blkid(a.device)[0] == 2 and blkid(b.device)[0] == 2
            assert storage(d, "internal")["volumes"] == []
            assert failed(d, {"type": "volume_create", "image_storage_id": "internal",
                              "volume_id": "mirror", "primary_disk_id": loop_disk_id(a),
                              "secondary_disk_id": loop_disk_id(a)}) == \
                "secondary_disk_id must be another disk than primary_disk_id"
        finally:
            d.stop()
            umount_under(d.state_dir)


# ---- restart and shutdown ----

@contextlib.contextmanager
def copy_under_way(daemon_factory, tmp_path):
    """A copy across filesystems (ext4 directory -> XFS loop disk) of 1.5 GiB of data, which
    runs for seconds; yields (daemon, task id, destination mount) once it has started."""
    src = tmp_path / "a"
    src.mkdir()
    with LoopDisk(tmp_path / "disks", "4G") as disk:
        disk.mkfs_xfs()
        dst = disk.mount(tmp_path / "b")
        d = daemon_factory({"probe_ttl_ms": 200, "workers": 1, "storages": [
            {"id": "s", "volumes": [{"id": "a", "kind": "external", "mount_point": str(src)},
                                    {"id": "b", "kind": "external", "mount_point": str(dst)}]}]})
        try:
            wait_volume_ok(d, "s", "a")
            wait_volume_ok(d, "s", "b")
            ok(d, {"type": "image_create", "image_id": "big", "volume_id": "a",
                   "image_storage_id": "s", "size_mb": 2048})
            [name] = os.listdir(src / "images")
            chunk = os.urandom(16 * MIB)
            with open(src / "images" / name, "r+b") as f:
                for i in range(96):  # 1.5 GiB of data, the rest a hole
                    f.write(chunk)
            tid = submit(d, {"type": "image_copy", "image_id": "copy", "volume_id": "b",
                             "image_storage_id": "s", "source_image_id": "big",
                             "source_volume_id": "a"})
            seen = d.wait_for(lambda: (lambda t: t if 0 < t["progress"] < 100 else None)(
                d.get("/tasks/" + tid).json()), interval=0.02, what="copy under way")
            assert (seen["state"], seen["result"], seen["execution"]) == ("running", "pending", "")
            yield d, tid, dst
        finally:
            d.stop()
            disk.umount()


def staging_cleaned(d, dst):
    wait_volume_ok(d, "s", "b")
    d.wait_for(lambda: os.listdir(dst / ".staging") == [], what="staging file removed")
    assert os.listdir(dst / "images") == []
    assert find(storage(d, "s")["external_volumes"], "volume_id", "b")["images"] == []


def test_restart_marks_a_running_copy_interrupted_and_removes_its_staging_file(
        daemon_factory, tmp_path):
    with copy_under_way(daemon_factory, tmp_path) as (d, tid, dst):
        # the row follows the live progress (a ticker writes it once a second; how soon
        # that write is durable depends on the machine's load, so wait for it)
        d.wait_for(lambda: db_row(d, "SELECT progress FROM task WHERE id = ?", tid)[0] > 0,
                   timeout=30, interval=0.1, what="progress in the row")
        state, progress = db_row(d, "SELECT state, progress FROM task WHERE id = ?", tid)
        assert state == "running" and 0 < progress < 100, (state, progress)
        d.kill9()
        assert db_row(d, "SELECT state, result FROM task WHERE id = ?", tid) == \
            ("running", "pending")

        d.start()
        # settled once the volume's recovery has removed the half-made copy
        t = wait_task(d, tid)
        assert (t["state"], t["result"], t["result_msg"]) == \
            ("completed", "error", "interrupted by restart")
        assert TIME_RE.match(t["execution"])
        staging_cleaned(d, dst)
        # the queue still works after the restart
        ok(d, {"type": "image_delete", "image_id": "big"})


def test_shutdown_stops_a_running_copy_and_says_so(daemon_factory, tmp_path):
    with copy_under_way(daemon_factory, tmp_path) as (d, tid, dst):
        t0 = time.time()
        d.stop()  # SIGTERM: exits 0, no sanitizer report
        assert time.time() - t0 < 20
        d.start()
        t = d.get("/tasks/" + tid).json()
        assert (t["state"], t["result"]) == ("completed", "error")
        assert t["result_msg"].startswith("interrupted by shutdown: "), t
        staging_cleaned(d, dst)
