"""GET /imagestorages against real directories, mounts and loop-device disks."""
import hashlib
import os
import shutil
import subprocess


from fixtures.loopdisk import LoopDisk

VOLUME_KEYS = {"volume_id", "primary_disk_id", "secondary_disk_id", "status", "status_msg",
               "total_space", "free_space", "images", "clones"}
DISK_KEYS = {"physical_disk_id", "product_number", "vendor", "host_device", "volume_id"}


def df_kb(path):
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize // 1024, st.f_bavail * st.f_frsize // 1024


def volume(info, kind, vid):
    for v in info[kind]:
        if v["volume_id"] == vid:
            return v
    raise AssertionError("%s not in %s: %r" % (vid, kind, info[kind]))


def test_image_storage_info_has_the_flexvdi_shape(ext_daemon):
    d = ext_daemon
    d.wait_for(lambda: d.get("/imagestorages/default").json()["external_volumes"][0]["status"] == "ok")
    info = d.get("/imagestorages/default").json()
    assert set(info) == {"hosts", "volumes", "external_volumes", "gluster_volumes", "disks"}
    assert info["hosts"] == [os.uname().nodename]
    assert info["volumes"] == [] and info["gluster_volumes"] == []
    v = info["external_volumes"][0]
    assert set(v) == VOLUME_KEYS | {"mount_point"}
    assert v["volume_id"] == "dir1"
    assert v["mount_point"] == d.config["storages"][0]["volumes"][0]["mount_point"]
    assert v["status_msg"] == "" and v["images"] == [] and v["clones"] == []
    total, free = df_kb(v["mount_point"])
    assert v["total_space"] == total
    assert abs(v["free_space"] - free) <= total * 0.01
    for disk in info["disks"]:
        assert set(disk) == DISK_KEYS
        assert disk["host_device"].startswith("/dev/")

    listing = d.get("/imagestorages").json()
    assert len(listing) == 1
    assert listing[0]["image_storage_id"] == "default"
    del listing[0]["image_storage_id"]
    assert listing[0] == d.get("/imagestorages/default").json()


def test_external_directory_removed_turns_broken_with_a_message(ext_daemon):
    d = ext_daemon
    mp = d.config["storages"][0]["volumes"][0]["mount_point"]
    d.wait_for(lambda: volume(d.get("/imagestorages/default").json(), "external_volumes",
                              "dir1")["status"] == "ok", what="ok")
    shutil.rmtree(mp)
    v = d.wait_for(lambda: (lambda v: v if v["status"] == "broken" else None)(
        volume(d.get("/imagestorages/default").json(), "external_volumes", "dir1")),
        what="broken")
    assert mp in v["status_msg"] and "No such file or directory" in v["status_msg"]
    os.mkdir(mp)
    d.wait_for(lambda: volume(d.get("/imagestorages/default").json(), "external_volumes",
                              "dir1")["status"] == "ok", what="ok again")


def test_external_mount_unmounted_turns_broken(daemon_factory, tmp_path):
    mp = tmp_path / "extmnt"
    mp.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mp)], check=True)
    mounted = True
    try:
        d = daemon_factory({"probe_ttl_ms": 200, "storages": [
            {"id": "s", "volumes": [{"id": "ext", "kind": "external", "mount_point": str(mp)}]}]})
        v = d.wait_for(lambda: (lambda v: v if v["status"] == "ok" else None)(
            volume(d.get("/imagestorages/s").json(), "external_volumes", "ext")), what="ok")
        assert v["total_space"] == 64 * 1024
        subprocess.run(["umount", str(mp)], check=True)
        mounted = False
        v = d.wait_for(lambda: (lambda v: v if v["status"] == "broken" else None)(
            volume(d.get("/imagestorages/s").json(), "external_volumes", "ext")), what="broken")
        assert v["status_msg"] == "%s is not mounted" % mp
        # nothing was written into the directory underneath while it was unmounted
        assert os.listdir(mp) == []
    finally:
        if mounted and subprocess.run(["umount", str(mp)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mp)])


def loop_disk_id(disk):
    return "loop-" + hashlib.sha256(str(disk.path.resolve()).encode()).hexdigest()[:16]


def test_loop_disks_show_with_device_and_volume(daemon_factory, tmp_path):
    with LoopDisk(tmp_path / "disks", "1G") as used, LoopDisk(tmp_path / "disks", "512M") as blank:
        used.mkfs_xfs()
        mnt = used.mount(tmp_path / "mnt")
        d = daemon_factory({"probe_ttl_ms": 200, "storages": [
            {"id": "internal", "volumes": [{"id": "samsung_ssd", "kind": "local",
                                            "mount_point": str(mnt)}]}]})

        def ready():
            info = d.get("/imagestorages/internal").json()
            v = volume(info, "volumes", "samsung_ssd")
            return info if v["status"] == "ok" and v["primary_disk_id"] else None
        info = d.wait_for(ready, what="local volume with its disk")
        disks = {x["host_device"]: x for x in info["disks"]}
        assert used.device in disks and blank.device in disks
        assert disks[used.device]["volume_id"] == "samsung_ssd"
        assert disks[blank.device]["volume_id"] == ""
        assert disks[used.device]["physical_disk_id"] == loop_disk_id(used)
        assert disks[blank.device]["physical_disk_id"] == loop_disk_id(blank)
        v = volume(info, "volumes", "samsung_ssd")
        assert v["primary_disk_id"] == loop_disk_id(used)
        assert v["secondary_disk_id"] == ""
        assert "mount_point" not in v
        total, free = df_kb(str(mnt))
        assert abs(v["total_space"] - total) <= total * 0.01
        assert abs(v["free_space"] - free) <= total * 0.01

        used.umount()
        v = d.wait_for(lambda: (lambda v: v if v["status"] == "broken" else None)(
            volume(d.get("/imagestorages/internal").json(), "volumes", "samsung_ssd")),
            what="broken after umount")
        assert v["status_msg"] == "%s is not mounted" % mnt
        # the catalogue remembers the disk while it is away
        assert v["primary_disk_id"] == loop_disk_id(used)
