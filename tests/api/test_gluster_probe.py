"""Gluster volumes probed for real: a private glusterd, disperse 4+2 and replica 3 on this host."""
import stat
import threading
import time

import pytest

from fixtures.gluster import glusterd_or_skip


@pytest.fixture(scope="module")
def glusterd(tmp_path_factory):
    g = glusterd_or_skip(tmp_path_factory.mktemp("gluster"))
    try:
        yield g
    finally:
        g.stop()


def gvol(info, vid):
    for v in info["gluster_volumes"]:
        if v["volume_id"] == vid:
            return v
    raise AssertionError("%s missing: %r" % (vid, info["gluster_volumes"]))


def test_disperse_and_replica_volumes_show_bricks_layout_and_liveness(glusterd, daemon_factory):
    disp_bricks = glusterd.create_volume("stdisp", kind="disperse", bricks=6, redundancy=2)
    rep_bricks = glusterd.create_volume("strep", kind="replica", replica=3, bricks=3)
    host = glusterd.hostname
    d = daemon_factory({"probe_ttl_ms": 1000, "storages": [{"id": "gs", "volumes": [
        {"id": "gdisp", "kind": "gluster", "server": host, "volume": "stdisp"},
        {"id": "grep", "kind": "gluster", "server": host, "volume": "strep"}]}]})

    def both_ok():
        info = d.get("/imagestorages/gs").json()
        return info if all(gvol(info, v)["status"] == "ok" for v in ("gdisp", "grep")) else None
    info = d.wait_for(both_ok, timeout=60, what="gluster volumes ok")
    v = gvol(info, "gdisp")
    assert v["bricks"] == disp_bricks and len(v["bricks"]) == 6
    assert v["type"] == "Disperse"
    assert v["configuration"] == "1 x (4 + 2)"
    assert v["transport"] == "tcp"
    assert v["gvolume_name"] == "stdisp"
    assert v["total_space"] > 0 and 0 < v["free_space"] <= v["total_space"]
    assert v["images"] == [] and v["clones"] == []
    r = gvol(info, "grep")
    assert r["bricks"] == rep_bricks
    assert r["type"] == "Replicate"
    assert r["configuration"] == "1 x 3 = 3"

    # A brick dies: degraded within the TTL, naming the brick; GETs keep answering meanwhile.
    latencies = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            t0 = time.monotonic()
            assert d.get("/imagestorages/gs").status_code == 200
            latencies.append(time.monotonic() - t0)
    t = threading.Thread(target=poll)
    t.start()
    try:
        glusterd.kill_brick("stdisp", 2)
        v = d.wait_for(lambda: (lambda v: v if v["status"] == "degraded" else None)(
            gvol(d.get("/imagestorages/gs").json(), "gdisp")), timeout=30, what="degraded")
    finally:
        stop.set()
        t.join()
    assert "brick down: %s" % disp_bricks[2] == v["status_msg"]
    assert gvol(d.get("/imagestorages/gs").json(), "grep")["status"] == "ok"
    latencies.sort()
    print("GET /imagestorages/gs during brick failure: n=%d p50=%.1fms max=%.1fms" % (
        len(latencies), latencies[len(latencies) // 2] * 1000, latencies[-1] * 1000))

    glusterd.start_volume("stdisp", force=True)
    d.wait_for(lambda: gvol(d.get("/imagestorages/gs").json(), "gdisp")["status"] == "ok",
               timeout=60, what="ok after brick restart")


def test_get_never_waits_for_a_slow_probe(glusterd, daemon_factory, tmp_path):
    """The CLI is made to take 3 s; GETs during the probe must answer from the cache at once."""
    glusterd.create_volume("stslow", kind="distribute", bricks=1)
    slow = tmp_path / "slow-gluster"
    slow.write_text("#!/bin/sh\nsleep 3\nexec gluster \"$@\"\n")
    slow.chmod(slow.stat().st_mode | stat.S_IEXEC)
    d = daemon_factory({"probe_ttl_ms": 100, "gluster_cli": str(slow), "storages": [
        {"id": "gs", "volumes": [{"id": "gslow", "kind": "gluster", "server": glusterd.hostname,
                                  "volume": "stslow"}]}]})
    worst = 0.0
    t_end = time.monotonic() + 8
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        r = d.get("/imagestorages/gs")
        worst = max(worst, time.monotonic() - t0)
        assert r.status_code == 200
        time.sleep(0.05)
    # a probe takes > 6 s (two CLI calls); a GET that waited on it would take seconds
    assert worst < 1.0, worst
    v = gvol(d.get("/imagestorages/gs").json(), "gslow")
    assert v["status"] == "ok" and v["configuration"] == "1"


def test_unreachable_gluster_volume_is_broken_not_fatal(glusterd, daemon_factory):
    d = daemon_factory({"probe_ttl_ms": 300, "storages": [{"id": "gs", "volumes": [
        {"id": "gnone", "kind": "gluster", "server": glusterd.hostname, "volume": "doesnotexist"}]}]})
    v = d.wait_for(lambda: (lambda v: v if v["status"] == "broken" else None)(
        gvol(d.get("/imagestorages/gs").json(), "gnone")), timeout=30, what="broken")
    assert "doesnotexist" in v["status_msg"]
    assert v["bricks"] == [] and v["total_space"] == 0
