"""ZStack zones, backup storages attached to them, and capacities kept fresh by the
prober, driven by the SDK-like client of test_zstack (X-Job-UUID, polling every second,
"schema" typing, ZStack dates)."""
import os
import shutil
import subprocess
import uuid
from datetime import datetime, timezone

import pytest
import requests

from fixtures.loopdisk import umount
from test_zstack import API, IMAGE_STORE, add_store, session, typed, zs_date

ZONE = "org.zstack.header.zone.ZoneInventory"


def zones_of(reply):
    """Re-type zone inventories by the schema, as the SDK does."""
    schema = reply["schema"]
    if "inventory" in reply:
        assert schema == {"inventory": ZONE}
        return [reply["inventory"]]
    assert schema == {"inventories[%d]" % i: ZONE for i in range(len(reply["inventories"]))}
    return reply["inventories"]


@pytest.fixture
def zs(daemon_factory):
    return session(daemon_factory({"backup_probe_interval_s": 1}))


def create_zone(zs, name="zone1", **extra):
    params = {"name": name}
    params.update(extra)
    return zs.call("POST", "/zones", {"params": params, "systemTags": [], "userTags": []})


def capacities(zs, **params):
    r = zs.query("/backup-storage/capacities", params=params)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"totalCapacity", "availableCapacity"}
    return r.json()


def test_zone_create_query_update_state_delete(zs):
    want = uuid.uuid4().hex
    r = create_zone(zs, resourceUuid=want, description="the first")
    assert r.status_code == 200, r.text
    inv = zones_of(r.json())[0]
    assert {k: v for k, v in inv.items() if not k.endswith("Date")} == {
        "uuid": want, "name": "zone1", "description": "the first", "state": "Enabled",
        "type": "zstack"}
    assert abs((zs_date(inv["createDate"]) - datetime.now(timezone.utc)).total_seconds()) < 60
    assert inv["lastOpDate"] == inv["createDate"]
    other = zones_of(create_zone(zs, name="zone2").json())[0]
    assert len(other["uuid"]) == 32 and "description" not in other

    for path in ("/zones/" + want, "/zones?q=name=zone1", "/zones?q=uuid!=" + other["uuid"]):
        r = zs.query(path)
        assert r.status_code == 200 and zones_of(r.json()) == [inv], path
    r = zs.query("/zones", params={"sort": "-name", "fields": "name,type"})
    assert r.json()["inventories"] == [{"name": "zone2", "type": "zstack"},
                                       {"name": "zone1", "type": "zstack"}]
    assert zs.query("/zones", params={"count": "true", "q": "state=Enabled"}).json() == {"total": 2}
    r = zs.query("/zones", params={"q": "bogus=1"})
    assert r.status_code == 400 and "field[bogus]" in r.text

    r = zs.call("PUT", "/zones/%s/actions" % want, {"updateZone": {"name": "renamed"}})
    got = zones_of(r.json())[0]
    assert (got["name"], got["description"], got["state"]) == ("renamed", "the first", "Enabled")
    r = zs.call("PUT", "/zones/%s/actions" % want, {"changeZoneState": {"stateEvent": "disable"}})
    assert zones_of(r.json())[0]["state"] == "Disabled"
    assert [z["uuid"] for z in zones_of(zs.query("/zones?q=state=Disabled").json())] == [want]

    r = zs.call("DELETE", "/zones/" + want)
    assert (r.status_code, r.json()) == (200, {})
    assert [z["uuid"] for z in zones_of(zs.query("/zones").json())] == [other["uuid"]]


def test_attach_detach_and_capacities_by_zone(zs, tmp_path):
    stores = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        stores.append(typed(add_store(zs, tmp_path / name, name=name).json())[0])
    a, b = stores
    zone = zones_of(create_zone(zs).json())[0]["uuid"]

    r = zs.call("POST", "/zones/%s/backup-storage/%s" % (zone, a["uuid"]), {"params": {}})
    assert r.status_code == 200, r.text
    assert r.json()["schema"] == {"inventory": IMAGE_STORE}
    assert r.json()["inventory"]["uuid"] == a["uuid"]
    assert r.json()["inventory"]["attachedZoneUuids"] == [zone]
    assert typed(zs.query("/backup-storage/" + a["uuid"]).json())[0]["attachedZoneUuids"] == [zone]
    assert typed(zs.query("/backup-storage/" + b["uuid"]).json())[0]["attachedZoneUuids"] == []
    # attached twice: refused, as ZStack's "has been attached"
    r = zs.call("POST", "/zones/%s/backup-storage/%s" % (zone, a["uuid"]), {"params": {}})
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1007", r.text
    assert "has been attached" in r.json()["error"]["details"]

    # The zone's room is a's alone; both together count each once; no filter: all.
    sv = os.statvfs(tmp_path)
    one = capacities(zs, zoneUuids=zone)
    assert abs(one["totalCapacity"] - sv.f_blocks * sv.f_frsize) <= 0.01 * one["totalCapacity"]
    both = capacities(zs, zoneUuids=zone, backupStorageUuids="%s,%s" % (a["uuid"], b["uuid"]))
    assert both["totalCapacity"] == 2 * one["totalCapacity"]
    assert capacities(zs)["totalCapacity"] == both["totalCapacity"]
    assert capacities(zs, backupStorageUuids=b["uuid"])["totalCapacity"] == one["totalCapacity"]

    r = zs.call("DELETE", "/zones/%s/backup-storage/%s" % (zone, a["uuid"]))
    assert r.status_code == 200 and r.json()["inventory"]["attachedZoneUuids"] == []
    assert capacities(zs, zoneUuids=zone) == {"totalCapacity": 0, "availableCapacity": 0}
    r = zs.call("DELETE", "/zones/%s/backup-storage/%s" % (zone, a["uuid"]))
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1007"
    assert "not attached" in r.json()["error"]["details"]

    # Deleting a zone detaches its backup storages; deleting a backup storage leaves its zone.
    for s in (a, b):
        assert zs.call("POST", "/zones/%s/backup-storage/%s" % (zone, s["uuid"]),
                       {"params": {}}).status_code == 200
    assert zs.call("DELETE", "/backup-storage/" + b["uuid"]).status_code == 200
    assert zs.call("DELETE", "/zones/" + zone).status_code == 200
    assert typed(zs.query("/backup-storage").json())[0]["attachedZoneUuids"] == []


def test_zone_bad_input_creates_nothing(zs, tmp_path):
    (tmp_path / "bs").mkdir()
    bs = typed(add_store(zs, tmp_path / "bs").json())[0]["uuid"]
    zone = zones_of(create_zone(zs).json())[0]["uuid"]
    base = zs.d.url(API + "/zones")

    r = requests.post(base, headers=zs.headers(), data="{not json")
    assert r.status_code == 400 and "malformed JSON" in r.text
    r = requests.put(base + "/%s/actions" % zone, headers=zs.headers(), data="[1,")
    assert r.status_code == 400 and "malformed JSON" in r.text
    r = requests.post(base, headers=zs.headers(), json={"nothing": {}})
    assert (r.status_code, r.text) == (
        400, "the body doesn't contain action mapping to the URL[/zstack/v1/zones]")
    r = requests.put(base + "/%s/actions" % zone, headers=zs.headers(), json={"fly": {}})
    assert r.status_code == 400 and r.text.startswith("the body doesn't contain action mapping")
    r = requests.post(base, headers=zs.headers("abc"), json={"params": {"name": "x"}})
    assert (r.status_code, r.text) == (
        400, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped")
    r = requests.get(base)
    assert (r.status_code, r.text) == (400, "missing header 'Authorization'")

    def refused(method, path, body, code, field):
        r = zs.call(method, path, body)
        assert r.status_code == 503, (path, body, r.text)
        err = r.json()["error"]
        assert err["code"] == code and field in err["details"], (path, body, err)

    for params, field in [({}, "name"), ({"name": 5}, "name"), ({"name": "x", "description": []},
                                                                 "description"),
                          ({"name": "x", "resourceUuid": "not-a-uuid"}, "resourceUuid"),
                          ({"name": "x", "resourceUuid": zone}, zone)]:
        refused("POST", "/zones", {"params": params},
                "SYS.1007" if field != zone else "SYS.1006", field)
    refused("PUT", "/zones/%s/actions" % zone, {"updateZone": {"name": 7}}, "SYS.1007", "name")
    refused("PUT", "/zones/%s/actions" % zone, {"changeZoneState": {"stateEvent": "sleep"}},
            "SYS.1007", "state")
    refused("PUT", "/zones/%s/actions" % zone, {"changeZoneState": {}}, "SYS.1007", "stateEvent")
    nobody = uuid.uuid4().hex
    refused("PUT", "/zones/%s/actions" % nobody, {"updateZone": {"name": "y"}}, "SYS.1003", nobody)
    refused("DELETE", "/zones/" + nobody, None, "SYS.1003", nobody)
    refused("POST", "/zones/%s/backup-storage/%s" % (nobody, bs), {"params": {}}, "SYS.1003",
            nobody)
    refused("POST", "/zones/%s/backup-storage/%s" % (zone, nobody), {"params": {}}, "SYS.1003",
            nobody)
    refused("DELETE", "/zones/%s/backup-storage/%s" % (zone, nobody), None, "SYS.1003", nobody)
    assert zs.query("/zones/" + nobody).json() == {"inventories": [], "schema": {}}
    for params, code, field in [({"zoneUuids": nobody}, "SYS.1003", nobody),
                                ({"backupStorageUuids": nobody}, "SYS.1003", nobody),
                                ({"zoneUuids": "xyz"}, "SYS.1007", "zoneUuids")]:
        r = zs.query("/backup-storage/capacities", params=params)
        assert r.status_code == 503 and r.json()["error"]["code"] == code, r.text
        assert field in r.json()["error"]["details"]

    # Nothing was made or changed.
    got = zones_of(zs.query("/zones").json())
    assert [(z["uuid"], z["name"], z["state"]) for z in got] == [(zone, "zone1", "Enabled")]
    assert typed(zs.query("/backup-storage").json())[0]["attachedZoneUuids"] == []


@pytest.fixture
def small_fs(tmp_path):
    """A 64 MiB tmpfs, so that a file written into it moves its room well past 1%."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(mnt)],
                   check=True, timeout=30)
    try:
        yield mnt
    finally:
        umount(mnt)  # the module's daemon is still running, and probing it


def test_capacities_are_kept_fresh_by_the_prober(zs, small_fs):
    store = small_fs / "bs"
    store.mkdir()
    inv = typed(add_store(zs, store).json())[0]
    before = capacities(zs)
    assert before["availableCapacity"] == inv["availableCapacity"]
    (store / "payload").write_bytes(os.urandom(24 << 20))
    sv = os.statvfs(store)
    want = {"totalCapacity": sv.f_blocks * sv.f_frsize,
            "availableCapacity": sv.f_bavail * sv.f_frsize}

    def fresh():
        got = capacities(zs)
        return got if got["availableCapacity"] != before["availableCapacity"] else None
    got = zs.d.wait_for(fresh, timeout=30, interval=0.2, what="the prober's capacities")
    for k in want:
        assert abs(got[k] - want[k]) <= 0.01 * want["totalCapacity"], (got, want)
    assert before["availableCapacity"] - got["availableCapacity"] >= 23 << 20
    # The inventory follows too, and a removed directory turns Disconnected by itself.
    assert typed(zs.query("/backup-storage").json())[0]["availableCapacity"] == \
        got["availableCapacity"]
    shutil.rmtree(store)

    def status(s):
        def ok():
            b = typed(zs.query("/backup-storage").json())[0]
            return b if b["status"] == s else None
        return ok
    zs.d.wait_for(status("Disconnected"), timeout=30, interval=0.2, what="Disconnected")
    store.mkdir()
    zs.d.wait_for(status("Connected"), timeout=30, interval=0.2, what="Connected again")
