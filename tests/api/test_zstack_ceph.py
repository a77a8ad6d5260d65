"""ZStack's Ceph backup storages on a real single-node Ceph cluster (tests/fixtures/ceph.py),
driven by the SDK-like client of test_zstack: AddCephBackupStorage with mon URLs as ZStack
writes them, the cluster's real fsid, pool statistics, ZStack's refusals, and nothing made
by a refusal.

Run under `flock /tmp/stowage-ceph.lock` (one cluster per machine). Skipped only when the
daemon was built without Ceph support (STOWAGE_WITH_CEPH=OFF)."""
import json
import os
import socket
import stat
import time
import urllib.parse
import uuid

import pytest
import requests

from fixtures import ceph
from fixtures.daemon import Daemon
from test_rbd import built_with_ceph
from test_zstack import API, session, zs_date

CEPH_INV = "org.zstack.storage.ceph.backup.CephBackupStorageInventory"

pytestmark = pytest.mark.skipif(not built_with_ceph(),
                                reason="stowaged built without Ceph (STOWAGE_WITH_CEPH=OFF)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ceph.Cluster(tmp_path_factory.mktemp("ceph"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def zs(cluster, tmp_path_factory):
    """One daemon for the module; its ceph_keyring is the cluster's (mon URLs without a key)."""
    d = Daemon(tmp_path_factory.mktemp("d"), config={"ceph_keyring": str(cluster.keyring)})
    d.start()
    yield session(d)
    d.stop()


def mon_url(cluster, key=None, host="127.0.0.1", port=None, user="admin"):
    """ZStack's form, the cephx key as the (percent-encoded) password."""
    secret = cluster.key() if key is None else key
    return "%s:%s@%s/?monPort=%d" % (user, urllib.parse.quote(secret, safe=""), host,
                                     port or cluster.mon_ports[1])


def add_ceph(zs, mon_urls, name="ceph-bs", **extra):
    params = {"monUrls": mon_urls, "name": name, "type": "Ceph", "importImages": False}
    params.update(extra)
    return zs.call("POST", "/backup-storage/ceph",
                   {"params": params, "systemTags": [], "userTags": []})


def pools(cluster):
    return cluster.ceph("osd", "pool", "ls").split()


def ceph_rows(zs):
    r = zs.query("/backup-storage/ceph")
    assert r.status_code == 200, r.text
    return r.json()["inventories"]


def keyrings(zs):
    d = os.path.join(zs.d.state_dir, "ceph")
    return sorted(f for f in os.listdir(d) if not f.startswith(".")) if os.path.isdir(d) else []


def refused(r, code="SYS.1006"):
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    return err["details"]


def delete(zs, uuid_):
    r = zs.call("DELETE", "/backup-storage/" + uuid_)
    assert (r.status_code, r.json()) == (200, {}), r.text


def test_add_with_the_real_mon_url_shows_fsid_pool_stats_and_mons(cluster, zs):
    cluster.create_pool("zsbak")
    want = uuid.uuid4().hex
    t0 = time.time()
    r = add_ceph(zs, [mon_url(cluster)], poolName="zsbak", resourceUuid=want,
                 description="pool zsbak")
    assert r.status_code == 200, r.text
    assert r.json()["schema"] == {"inventory": CEPH_INV}
    inv = r.json()["inventory"]
    fsid = cluster.ceph("fsid").strip()
    assert inv["uuid"] == want and inv["fsid"] == fsid == cluster.fsid
    assert (inv["name"], inv["description"], inv["type"]) == ("ceph-bs", "pool zsbak", "Ceph")
    assert (inv["state"], inv["status"], inv["attachedZoneUuids"]) == ("Enabled", "Connected", [])
    assert inv["poolName"] == "zsbak" and inv["url"] == "ceph://%s/zsbak" % fsid
    assert (inv["poolReplicatedSize"], inv["poolSecurityPolicy"]) == (1, "Copy")
    assert inv["poolDiskUtilization"] == 1.0
    assert abs(zs_date(inv["createDate"]).timestamp() - t0) < 60
    mon, = inv["mons"]
    assert set(mon) == {"monUuid", "backupStorageUuid", "hostname", "monAddr", "monPort",
                        "sshPort", "sshUsername", "status", "createDate", "lastOpDate"}
    assert len(mon["monUuid"]) == 32 and mon["backupStorageUuid"] == want
    assert (mon["hostname"], mon["monAddr"], mon["monPort"], mon["sshPort"]) == (
        "127.0.0.1", "127.0.0.1", cluster.mon_ports[1], 22)
    assert (mon["sshUsername"], mon["status"]) == ("admin", "Connected")
    # The key is nowhere in what the API shows, nor in a job row: only in its 0600 keyring.
    key = cluster.key()
    assert key not in r.text and "sshPassword" not in r.text
    assert keyrings(zs) == [want + ".keyring"]
    path = os.path.join(zs.d.state_dir, "ceph", want + ".keyring")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and key in open(path).read()
    assert key.encode() not in open(os.path.join(zs.d.state_dir, "stowage.db"), "rb").read()

    # Pool statistics come from the mgr and lag ~2 s: reconnect until they are in.
    deadline = time.time() + 30
    while True:
        r = zs.call("PUT", "/backup-storage/%s/actions" % want, {"reconnectBackupStorage": {}})
        assert r.status_code == 200, r.text
        inv = r.json()["inventory"]
        if inv["poolAvailableCapacity"] > 0 or time.time() > deadline:
            break
        time.sleep(0.5)
    df = json.loads(cluster.ceph("df", "-f", "json"))
    pool = next(p for p in df["pools"] if p["name"] == "zsbak")["stats"]
    assert inv["poolAvailableCapacity"] > 0
    assert abs(inv["poolAvailableCapacity"] - pool["max_avail"]) <= pool["max_avail"] // 10
    assert inv["poolUsedCapacity"] == pool["stored"]
    assert inv["availableCapacity"] == inv["poolAvailableCapacity"]
    assert inv["totalCapacity"] == inv["poolAvailableCapacity"] + inv["poolUsedCapacity"]

    # Queries: /ceph, /ceph/{uuid}, by fsid and poolName, and in /backup-storage.
    r = zs.query("/backup-storage/ceph", params={"q": ["fsid=" + fsid, "poolName=zsbak"]})
    assert r.status_code == 200 and [i["uuid"] for i in r.json()["inventories"]] == [want]
    assert r.json()["schema"] == {"inventories[0]": CEPH_INV}
    r = zs.query("/backup-storage/ceph/" + want)
    assert r.json()["inventories"][0]["mons"][0]["monUuid"] == mon["monUuid"]
    r = zs.query("/backup-storage", params={"q": "type=Ceph"})
    assert [i["uuid"] for i in r.json()["inventories"]] == [want]
    assert r.json()["schema"] == {"inventories[0]": CEPH_INV}
    assert zs.query("/backup-storage/image-store").json()["inventories"] == []
    r = zs.query("/backup-storage/capacities")
    assert r.json() == {"totalCapacity": inv["totalCapacity"],
                        "availableCapacity": inv["availableCapacity"]}

    # The same cluster again, even for another pool: ZStack's text, nothing made.
    before = pools(cluster)
    r = add_ceph(zs, [mon_url(cluster)], name="again")
    assert refused(r) == (
        "there is another CEPH backup storage[name:ceph-bs, uuid:%s] with the same FSID[%s], "
        "you cannot add the same CEPH setup as two different backup storage" % (want, fsid))
    assert pools(cluster) == before and [i["uuid"] for i in ceph_rows(zs)] == [want]
    assert keyrings(zs) == [want + ".keyring"]

    # Disable, then delete: the row and the keyring go, the named pool stays.
    r = zs.call("PUT", "/backup-storage/%s/actions" % want,
                {"changeBackupStorageState": {"stateEvent": "disable"}})
    assert r.json()["inventory"]["state"] == "Disabled"
    delete(zs, want)
    assert ceph_rows(zs) == [] and keyrings(zs) == []
    assert "zsbak" in pools(cluster)


def test_no_pool_name_makes_a_bak_t_pool_with_the_configs_keyring(cluster, zs):
    r = add_ceph(zs, [mon_url(cluster, key="")])
    assert r.status_code == 200, r.text
    inv = r.json()["inventory"]
    made = "bak-t-" + inv["uuid"]
    assert inv["poolName"] == made and made in pools(cluster)
    apps = json.loads(cluster.ceph("osd", "pool", "application", "get", made, "-f", "json"))
    assert "rbd" in apps
    assert keyrings(zs) == []  # the key is the config's ceph_keyring
    delete(zs, inv["uuid"])
    # A pool stowage made stays too (docs/zstack.md: its images may be the only copy).
    assert ceph_rows(zs) == [] and made in pools(cluster)


def test_a_named_pool_that_does_not_exist_is_refused(cluster, zs):
    before = pools(cluster)
    r = add_ceph(zs, [mon_url(cluster)], poolName="nosuchpool")
    assert refused(r) == (
        "cannot find pool[nosuchpool] in the ceph cluster, you must create it manually")
    assert pools(cluster) == before and ceph_rows(zs) == [] and keyrings(zs) == []


def test_a_mon_that_does_not_answer_fails_within_the_timeout(cluster, zs):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    before = pools(cluster)
    t0 = time.monotonic()
    r = add_ceph(zs, [mon_url(cluster, port=port)])
    took = time.monotonic() - t0
    details = refused(r)
    assert details.startswith("cannot reach the ceph mon[127.0.0.1:%d]: " % port), details
    assert took < 20, took  # the backend's 5 s mount timeout, polled every second
    assert pools(cluster) == before and ceph_rows(zs) == [] and keyrings(zs) == []
    assert zs.query("/backup-storage").json()["inventories"] == []


@pytest.mark.parametrize("url, says", [
    ("127.0.0.1/?monPort=6789", "the sshUsername:sshPassword part is invalid"),
    ("admin@127.0.0.1/?monPort=6789", "the sshUsername:sshPassword part is invalid"),
    (":key@127.0.0.1/?monPort=6789", "SSH username and password must be separated by ':'"),
    ("admin:key@/?monPort=6789", "hostname cannot be null"),
    ("admin:key@127.0.0.1:70000/?monPort=6789", "the ssh port is greater than 65535"),
    ("admin:key@127.0.0.1/?monPort=x", "the monPort is not a port number"),
    ("admin:key@127.0.0.1/?mon=6789", "unknown parameter[mon]"),
])
def test_bad_mon_url_syntax_is_sys_1007_naming_the_url(zs, url, says):
    r = requests.post(zs.d.url(API + "/backup-storage/ceph"), headers=zs.headers(),
                      json={"params": {"monUrls": [url], "name": "x"}})
    details = refused(r, "SYS.1007")
    # named as given, but a password (a cephx key) is masked
    named = url.replace(":key@", ":***@")
    assert ("invalid monUrl[%s]" % named) in details and says in details, details
    assert ":key@" not in details
    assert ceph_rows(zs) == [] and keyrings(zs) == []


def test_a_kill_9_during_an_add_leaves_no_row_and_no_key(cluster, tmp_path):
    d = Daemon(tmp_path / "k")
    os.makedirs(d.tmpdir)
    d.start()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = uuid.uuid4().hex
    h = {"Authorization": "OAuth " + d.token, "X-Job-UUID": job}
    r = requests.post(d.url(API + "/backup-storage/ceph"), headers=h,
                      json={"params": {"monUrls": [mon_url(cluster, port=port)], "name": "k"}})
    assert r.status_code == 202, r.text
    time.sleep(1)  # the job waits on the mon that does not answer
    assert os.listdir(os.path.join(d.state_dir, "ceph")) == ["job-%s.keyring" % job]
    d.kill9()
    d.start()
    try:
        r = requests.get(d.url(API + "/api-jobs/" + job), headers=h)
        assert r.status_code == 503 and "interrupted by restart" in r.json()["error"]["details"]
        assert os.listdir(os.path.join(d.state_dir, "ceph")) == []
        r = requests.get(d.url(API + "/backup-storage"), headers=h)
        assert r.json()["inventories"] == []
    finally:
        d.stop()


def test_mons_of_two_clusters_are_refused_with_zstacks_text(cluster, zs, tmp_path):
    other = ceph.Cluster(tmp_path / "other", start=False)  # a second cluster: one mon only
    other.dir.mkdir(parents=True)
    for sub in ("mon/a", "run", "log", "crash"):
        (other.dir / sub).mkdir(parents=True)
    try:
        other._make_mon()
        other._spawn("mon.a", "ceph-mon", "-i", "a")
        other._wait("mon answers", lambda: other.ceph("mon", "stat", check=False, timeout=10))
        key2 = other.ceph("auth", "get-or-create-key", "client.other", "mon", "allow r").strip()
        r = add_ceph(zs, [mon_url(cluster),
                          mon_url(other, key=key2, user="other", port=other.mon_ports[1])])
        assert refused(r) == (
            "the fsid returned by mons are mismatching, it seems the mons belong to different "
            "ceph clusters:\n127.0.0.1 (mon ip) --> %s (fsid)\n127.0.0.1 (mon ip) --> %s (fsid)\n"
            % (cluster.fsid, other.fsid))
        assert ceph_rows(zs) == [] and keyrings(zs) == []
    finally:
        other.close()


def test_an_image_backed_up_into_the_pool_is_restored_with_the_same_sha256_and_stays_sparse(
        cluster, tmp_path):
    """AddImage from the catalogue onto a Ceph backup storage: an RBD image in its pool whose
    zeros take no room (`rbd du`, a 10 GiB empty image too), restored into a catalogue volume
    with the same SHA-256, and gone from the pool once the image is deleted."""
    import hashlib

    from test_esdc_import import call as es_call, upload
    vol = tmp_path / "vol"
    vol.mkdir()
    (tmp_path / "d").mkdir()
    d = Daemon(tmp_path / "d", config={
        "ceph_keyring": str(cluster.keyring), "probe_ttl_ms": 200,
        "storages": [{"id": "default", "name": "default", "volumes": [
            {"id": "dir1", "kind": "external", "mount_point": str(vol)}]}]})
    d.start()
    try:
        zs = session(d)
        cluster.create_pool("zsimg")
        r = add_ceph(zs, [mon_url(cluster)], poolName="zsimg", name="ceph-img")
        assert r.status_code == 200, r.text
        bs = r.json()["inventory"]["uuid"]

        mib = 1024 * 1024
        data = os.urandom(mib) + b"\0" * (64 * mib) + b"tail" * 1024
        sha = hashlib.sha256(data).hexdigest()
        upload(d, "img1", data)
        src = es_call(d, "GET", "/api/image/img1/").json()["result"]["uuid"]
        r = zs.call("POST", "/images", {"params": {
            "name": "img1 backup", "url": "stowage://image/" + src, "backupStorageUuids": [bs],
            "format": "raw", "mediaType": "RootVolumeTemplate", "platform": "Linux"},
            "systemTags": [], "userTags": []})
        assert r.status_code == 200, r.text
        inv = r.json()["inventory"]
        u = inv["uuid"]
        assert (inv["status"], inv["md5Sum"], inv["size"]) == ("Ready", sha, len(data))
        ref, = inv["backupStorageRefs"]
        assert (ref["backupStorageUuid"], ref["status"]) == (bs, "Ready")
        assert ref["installPath"].startswith("ceph://%s/zsimg/" % cluster.fsid), ref
        du = json.loads(cluster.rbd("du", "-p", "zsimg", "--format", "json"))
        assert du["total_provisioned_size"] >= len(data)
        assert du["total_used_size"] <= 8 * mib, du  # the 64 MiB of zeros are holes

        r = zs.call("PUT", "/images/%s/actions" % u,
                    {"restoreImage": {"imageStorageId": "default", "volumeId": "dir1",
                                      "name": "restored1"}})
        assert r.status_code == 200, r.text
        got = requests.get(d.url("/image/restored1/file/"),
                           headers={"Authorization": "Token " + d.token}, timeout=60)
        assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == sha

        # a 10 GiB empty raw image stays a hole in the pool too
        t = d.post("/tasks/create", json={"type": "image_create", "image_id": "big",
                                          "volume_id": "dir1", "image_storage_id": "default",
                                          "size_mb": 10240, "format": "raw"}).json()["message"]
        d.wait_for(lambda: d.get("/tasks/" + t).json()["state"] == "completed", what="create")
        big = es_call(d, "GET", "/api/image/big/").json()["result"]["uuid"]
        r = zs.call("POST", "/images", {"params": {
            "name": "big backup", "url": "stowage://image/" + big, "backupStorageUuids": [bs],
            "format": "raw"}, "systemTags": [], "userTags": []})
        assert r.status_code == 200, r.text
        assert r.json()["inventory"]["size"] == 10240 * mib
        du = json.loads(cluster.rbd("du", "-p", "zsimg", "--format", "json"))
        assert du["total_provisioned_size"] >= 10240 * mib + len(data)
        assert du["total_used_size"] <= 8 * mib, du

        assert len(cluster.images("zsimg")) == 2
        for image in (u, r.json()["inventory"]["uuid"]):
            r = zs.call("DELETE", "/images/" + image)
            assert (r.status_code, r.json()) == (200, {}), r.text
        assert cluster.images("zsimg") == []
        delete(zs, bs)
    finally:
        d.stop()
