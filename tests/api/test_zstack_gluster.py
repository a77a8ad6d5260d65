"""A ZStack image store on a Gluster volume (gluster://server/volume/dir), for real: a
private glusterd, a one-brick volume (checked through a FUSE mount of it) that a catalogue volume of the daemon also uses, so
the backup storage borrows that volume's gfapi session instead of opening its own."""
import os
import re
import time
from pathlib import Path

import pytest

from fixtures.gluster import volume_with_fuse
from test_zstack import add_store, session, typed
from test_zstack_zones import capacities

GVOL = "zsbs"


@pytest.fixture(scope="module")
def glusterd(tmp_path_factory):
    """Only one glusterd can run per host: when another engineer's runs, wait for it."""
    # No reserve: the volume's room is then exactly its brick's filesystem's.
    with volume_with_fuse(tmp_path_factory.mktemp("gluster"), GVOL, kind="distribute", bricks=1,
                          options={"storage.reserve": 0}) as env:
        yield env


def room_of(path):
    sv = os.statvfs(path)
    return {"totalCapacity": sv.f_blocks * sv.f_frsize,
            "availableCapacity": sv.f_bavail * sv.f_frsize}


def clients(gd):
    """gfapi and FUSE sessions connected to the volume's brick."""
    xml = gd.gluster("volume", "status", GVOL, "clients", xml=True)
    return int(re.search(r"<clientCount>(\d+)</clientCount>", xml).group(1))


def close(got, want):
    return all(abs(got[k] - want[k]) <= 0.01 * want["totalCapacity"] for k in want)


def test_image_store_on_gluster_add_reconnect_capacities(glusterd, daemon_factory):
    gd, fuse = glusterd
    d = daemon_factory({"probe_ttl_ms": 500, "backup_probe_interval_s": 1, "storages": [
        {"id": "gs", "volumes": [{"id": "gz", "kind": "gluster", "server": gd.hostname,
                                  "volume": GVOL}]}]})

    def volume_ok():
        v = [v for v in d.get("/imagestorages/gs").json()["gluster_volumes"]
             if v["volume_id"] == "gz"]
        return v and v[0]["status"] == "ok"
    d.wait_for(volume_ok, timeout=60, what="the catalogue's gluster volume ok")
    zs = session(d)

    (fuse / "backups").mkdir()
    url = "gluster://%s/%s/backups" % (gd.hostname, GVOL)
    r = add_store(zs, url, name="gbs")
    assert r.status_code == 200, r.text
    inv = typed(r.json())[0]
    assert (inv["url"], inv["status"], inv["state"]) == (url, "Connected", "Enabled")
    assert close(inv, room_of(fuse)), (inv, room_of(fuse))
    assert close(capacities(zs), room_of(fuse))
    assert all((fuse / "backups" / sub).is_dir() for sub in ("images", "clones", ".staging"))
    # It borrowed the catalogue volume's session: no gfapi session (log) of its own, and
    # the brick sees two clients, the FUSE mount and that one session, look after look.
    logs = sorted(p.name for p in Path(d.state_dir).glob("gluster-*.log"))
    assert logs == ["gluster-gz.log"], logs
    time.sleep(2)
    assert clients(gd) == 2

    # The prober follows what is written into the volume.
    before = capacities(zs)
    (fuse / "backups" / "payload").write_bytes(os.urandom(32 << 20))
    got = d.wait_for(lambda: (lambda c: c if c != before else None)(capacities(zs)),
                     timeout=15, interval=0.2, what="the prober's capacities")
    assert close(got, room_of(fuse)), (got, room_of(fuse))

    reconnect = ("PUT", "/backup-storage/image-store/%s/actions" % inv["uuid"],
                 {"reconnectImageStoreBackupStorage": {}})
    gd.stop_volume(GVOL)
    try:
        r = zs.call(*reconnect)
        assert r.status_code == 503, r.text
        err = r.json()["error"]
        assert err["code"] == "SYS.1006", err
        assert err["details"] == url + ": Transport endpoint is not connected", err
        assert typed(zs.query("/backup-storage/" + inv["uuid"]).json())[0]["status"] == \
            "Disconnected"
    finally:
        gd.start_volume(GVOL)
    # gfapi's client reconnects to the restarted brick by itself, within a few seconds.
    for _ in range(30):
        r = zs.call(*reconnect)
        if r.status_code == 200:
            break
        time.sleep(1)
    assert r.status_code == 200, r.text
    back = typed(r.json())[0]
    assert back["status"] == "Connected" and close(back, room_of(fuse))

    assert zs.call("DELETE", "/backup-storage/" + inv["uuid"]).status_code == 200
    assert zs.query("/backup-storage").json()["inventories"] == []


def test_image_store_on_gluster_alone_keeps_one_session(glusterd, daemon_factory):
    """Without a catalogue volume on it, the image store opens its own session once, keeps
    it across the prober's looks, and closes it when it is deleted."""
    gd, fuse = glusterd
    assert clients(gd) == 1  # the FUSE mount
    zs = session(daemon_factory({"backup_probe_interval_s": 1}, sub="alone"))
    (fuse / "alone").mkdir()
    r = add_store(zs, "gluster://%s/%s/alone" % (gd.hostname, GVOL), name="alone")
    assert r.status_code == 200, r.text
    inv = typed(r.json())[0]
    assert inv["status"] == "Connected" and close(inv, room_of(fuse))
    assert (Path(zs.d.state_dir) / ("gluster-%s.log" % inv["uuid"])).is_file()
    time.sleep(3)  # three looks of the prober
    assert clients(gd) == 2
    assert zs.call("DELETE", "/backup-storage/" + inv["uuid"]).status_code == 200
    # glfs_fini takes ~10 s, on the prober's thread, not the job's.
    zs.d.wait_for(lambda: clients(gd) == 1, timeout=60, interval=1, what="the session closed")
