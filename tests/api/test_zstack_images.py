"""ZStack images on backup storages: added from the catalogue or from an http URL (a
fixture server on 127.0.0.1, allowed by import_allow), queried, deleted from some or all
backup storages, restored into a catalogue volume; the refusals leave nothing behind."""
import hashlib
import os
import shutil
import tempfile
import uuid

import requests

from test_esdc_import import Imgapi, call, files_in, metrics, qcow2_bytes, upload
from test_zstack import API, add_store, session, zs_date

IMAGE = "org.zstack.header.image.ImageInventory"
REF = "org.zstack.header.image.ImageBackupStorageRefInventory"
MIB = 1024 * 1024


def start(daemon_factory, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    d = daemon_factory({"probe_ttl_ms": 200, "import_allow": ["127.0.0.1"],
                        "storages": [{"id": "default", "name": "default",
                                      "volumes": [{"id": "dir1", "kind": "external",
                                                   "mount_point": str(vol)}]}]})
    d.vol = vol
    d.wait_for(lambda: d.get("/imagestorages/default").json()[
        "external_volumes"][0]["status"] == "ok", what="volume ok")
    return session(d)


def store(zs, tmp_path, name):
    path = tmp_path / name
    path.mkdir()
    r = add_store(zs, path, name=name)
    assert r.status_code == 200, r.text
    return r.json()["inventory"]["uuid"], path


def typed(reply):
    """Re-type by the schema as the SDK does: the image and each of its refs."""
    schema = reply["schema"]
    invs = [("inventory", reply["inventory"])] if "inventory" in reply else [
        ("inventories[%d]" % i, inv) for i, inv in enumerate(reply["inventories"])]
    for key, inv in invs:
        assert schema[key] == IMAGE
        for i, _ in enumerate(inv.get("backupStorageRefs", [])):
            assert schema["%s.backupStorageRefs[%d]" % (key, i)] == REF
    return [inv for _, inv in invs]


def add_image(zs, url, bss, **params):
    body = {"name": "img", "url": url, "backupStorageUuids": bss, "format": "raw",
            "mediaType": "RootVolumeTemplate", "platform": "Linux"}
    body.update(params)
    return zs.call("POST", "/images", {"params": body, "systemTags": [], "userTags": []})


def left_on(path):
    """What is on a backup storage's directory besides its empty namespaces."""
    return files_in(path)


def test_catalogue_image_backed_up_on_two_stores_restored_with_the_same_sha256(
        daemon_factory, tmp_path):
    zs = start(daemon_factory, tmp_path)
    d = zs.d
    bs1, p1 = store(zs, tmp_path, "bs1")
    bs2, p2 = store(zs, tmp_path, "bs2")
    data = os.urandom(MIB) + b"\0" * (2 * MIB) + b"tail" * 1024
    sha = hashlib.sha256(data).hexdigest()
    upload(d, "cat1", data)
    src = call(d, "GET", "/api/image/cat1/").json()["result"]["uuid"]

    r = add_image(zs, "stowage://image/" + src, [bs1, bs2], name="cat1 backup",
                  description="nightly", guestOsType="Linux")
    assert r.status_code == 200, r.text
    inv = typed(r.json())[0]
    u = inv["uuid"]
    assert len(u) == 32
    refs = inv.pop("backupStorageRefs")
    created = zs_date(inv.pop("createDate"))
    assert zs_date(inv.pop("lastOpDate")) >= created
    assert inv == {"uuid": u, "name": "cat1 backup", "description": "nightly", "state": "Enabled",
                   "status": "Ready", "size": len(data), "actualSize": inv["actualSize"],
                   "md5Sum": sha, "url": "stowage://image/" + src,
                   "mediaType": "RootVolumeTemplate", "guestOsType": "Linux", "type": "zstack",
                   "platform": "Linux", "format": "raw", "system": False}
    assert 0 < inv["actualSize"] <= len(data)
    assert sorted(x["backupStorageUuid"] for x in refs) == sorted([bs1, bs2])
    for ref, path in ((x, p1 if x["backupStorageUuid"] == bs1 else p2) for x in refs):
        assert (ref["imageUuid"], ref["status"]) == (u, "Ready")
        assert ref["installPath"] == "%s/images/%s.raw" % (path, u)
        assert hashlib.sha256(open(ref["installPath"], "rb").read()).hexdigest() == sha
        assert left_on(path) == ["images/%s.raw" % u]
    # by uuid, the same inventory
    got = typed(zs.query("/images/" + u).json())[0]
    assert got["md5Sum"] == sha and len(got["backupStorageRefs"]) == 2

    # a backup storage holding a backup is not deleted
    r = zs.call("DELETE", "/backup-storage/" + bs1)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "SYS.1006"
    assert "holds 1 image backup" in r.json()["error"]["details"]
    assert len(zs.query("/backup-storage").json()["inventories"]) == 2

    # restored into the catalogue: flexVDI and Danube see it, the bytes are the same
    r = zs.call("PUT", "/images/%s/actions" % u,
                {"restoreImage": {"imageStorageId": "default", "volumeId": "dir1",
                                  "name": "restored1", "backupStorageUuid": bs2}})
    assert r.status_code == 200, r.text
    restored = r.json()["restoredImage"]
    assert restored == {"uuid": restored["uuid"], "name": "restored1", "volumeId": "dir1",
                        "format": "raw"}
    assert typed(r.json())[0]["uuid"] == u
    fv = d.get("/imagestorages/default").json()["external_volumes"][0]["images"]
    assert {"image_id": "restored1", "volume_id": "dir1", "image_storage_id": "default",
            "guest_id": "", "size_mb": 4} in fv
    es = call(d, "GET", "/api/image/restored1/").json()["result"]
    assert es["uuid"] == restored["uuid"]
    dl = requests.get(d.url("/image/restored1/file/"),
                      headers={"Authorization": "Token " + d.token}, timeout=30)
    assert hashlib.sha256(dl.content).hexdigest() == sha
    assert dl.headers["ETag"] == '"%s"' % sha
    assert [f for f in files_in(d.vol) if f.startswith(".staging/")] == []
    # the name is taken now: a second restore under it is refused at once
    r = zs.call("PUT", "/images/%s/actions" % u,
                {"restoreImage": {"imageStorageId": "default", "volumeId": "dir1",
                                  "name": "restored1"}})
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1006", r.text
    r = zs.call("PUT", "/images/%s/actions" % u, {"recoverImage": {}})
    assert r.status_code == 503 and "restoreImage" in r.json()["error"]["details"]

    # deleted from bs1 only, then bs1 can go; then from everywhere
    r = zs.call("DELETE", "/images/" + u, params={"backupStorageUuids": bs1})
    assert (r.status_code, r.json()) == (200, {}), r.text
    assert left_on(p1) == []
    assert [x["backupStorageUuid"] for x in typed(zs.query("/images/" + u).json())[0][
        "backupStorageRefs"]] == [bs2]
    assert zs.call("DELETE", "/backup-storage/" + bs1).status_code == 200
    r = zs.call("DELETE", "/images/" + u)
    assert (r.status_code, r.json()) == (200, {})
    assert zs.query("/images").json() == {"inventories": [], "schema": {}}
    assert left_on(p2) == []

    # deleteMode=Enforcing takes the backups with the backup storage
    r = add_image(zs, "stowage://image/" + src, [bs2])
    assert r.status_code == 200, r.text
    assert zs.call("DELETE", "/backup-storage/" + bs2,
                   params={"deleteMode": "Enforcing"}).status_code == 200
    assert zs.query("/images").json() == {"inventories": [], "schema": {}}
    assert left_on(p2) == []


def test_image_from_an_http_url_is_fetched_checked_and_inspected(daemon_factory, tmp_path):
    zs = start(daemon_factory, tmp_path)
    bs, path = store(zs, tmp_path, "bs1")
    srv = Imgapi()
    try:
        data = qcow2_bytes(tmp_path)
        sha = hashlib.sha256(data).hexdigest()
        srv.routes["/disk.qcow2"] = (200, {}, data, 0)
        want = uuid.uuid4().hex
        r = add_image(zs, srv.url("/disk.qcow2"), [bs], format="qcow2", sha256=sha,
                      resourceUuid=want, mediaType="DataVolumeTemplate", platform="Other")
        assert r.status_code == 200, r.text
        inv = typed(r.json())[0]
        assert (inv["uuid"], inv["format"], inv["md5Sum"], inv["size"], inv["mediaType"],
                inv["platform"], inv["url"]) == (want, "qcow2", sha, 16 * MIB,
                                                 "DataVolumeTemplate", "Other",
                                                 srv.url("/disk.qcow2"))
        assert left_on(path) == ["images/%s.qcow2" % want]
        assert (path / "images" / ("%s.qcow2" % want)).read_bytes() == data
        # the same resourceUuid again is refused at once
        r = add_image(zs, srv.url("/disk.qcow2"), [bs], resourceUuid=want)
        assert r.status_code == 503 and "already exists" in r.json()["error"]["details"]
    finally:
        srv.close()


def assert_refused_at_once(r, code, details):
    assert r.status_code == 503, r.text
    err = r.json()["error"]
    assert (err["code"], details in err["details"]) == (code, True), err


def test_refusals_leave_no_row_and_no_file(daemon_factory, tmp_path):
    zs = start(daemon_factory, tmp_path)
    bs, path = store(zs, tmp_path, "bs1")
    srv = Imgapi()
    try:
        # refused before a job is queued
        assert_refused_at_once(add_image(zs, "http://127.0.0.1:1/x", [uuid.uuid4().hex]),
                               "SYS.1003", "not found")
        assert_refused_at_once(add_image(zs, "ftp://127.0.0.1/x", [bs]), "SYS.1007",
                               "url must be http://, https:// or stowage://image/")
        assert_refused_at_once(add_image(zs, "stowage://image/nope", [bs]), "SYS.1003",
                               "no active catalogue image")
        assert_refused_at_once(add_image(zs, "http://127.0.0.1:1/x", []), "SYS.1007",
                               "backupStorageUuids")
        assert_refused_at_once(add_image(zs, "http://127.0.0.1:1/x", [bs], mediaType="Tape"),
                               "SYS.1007", "mediaType must be one of")
        assert_refused_at_once(add_image(zs, "http://127.0.0.1:1/x", [bs], sha256="xyz"),
                               "SYS.1007", "sha256")
        r = zs.call("POST", "/images", {"nothing": {}})
        assert r.status_code == 400 and r.text.startswith("the body doesn't contain action")

        # a private address: refused by the guard before any socket is opened
        before = metrics(zs.d)
        r = add_image(zs, "http://10.0.0.1/disk.raw", [bs])
        assert r.status_code == 503, r.text
        assert "address 10.0.0.1 is private and import_allow does not list it" in \
            r.json()["error"]["details"]
        after = metrics(zs.d)
        assert after["stowage_fetch_sockets_total"] == before["stowage_fetch_sockets_total"]
        assert after["stowage_fetch_refused_total"] == before["stowage_fetch_refused_total"] + 1

        # a hostile image (a qcow2 with a backing file) and a checksum mismatch
        srv.routes["/hostile.qcow2"] = (200, {}, qcow2_bytes(tmp_path, backing="/etc/passwd"), 0)
        r = add_image(zs, srv.url("/hostile.qcow2"), [bs], format="qcow2")
        assert r.status_code == 503
        assert "image refused: qcow2_backing_file" in r.json()["error"]["details"]
        srv.routes["/disk.raw"] = (200, {}, b"\1" * 65536, 0)
        r = add_image(zs, srv.url("/disk.raw"), [bs], sha256="0" * 64)
        assert r.status_code == 503
        assert r.json()["error"]["details"] == (
            "sha256 mismatch: expected %s, the image has %s"
            % ("0" * 64, hashlib.sha256(b"\1" * 65536).hexdigest()))
        # a URL that answers 404
        r = add_image(zs, srv.url("/missing.raw"), [bs])
        assert r.status_code == 503 and "cannot be fetched" in r.json()["error"]["details"]

        assert zs.query("/images").json() == {"inventories": [], "schema": {}}
        assert left_on(path) == []
        assert zs.call("DELETE", "/backup-storage/" + bs).status_code == 200
    finally:
        srv.close()


def test_query_on_images_with_several_operators(daemon_factory, tmp_path):
    zs = start(daemon_factory, tmp_path)
    bs, _ = store(zs, tmp_path, "bs1")
    srv = Imgapi()
    try:
        made = {}
        for i, name in enumerate(["alpha", "beta", "gamma"]):
            srv.routes["/%s.raw" % name] = (200, {}, bytes([i + 1]) * (65536 * (i + 1)), 0)
            r = add_image(zs, srv.url("/%s.raw" % name), [bs], name=name,
                          platform=["Linux", "Windows", "Linux"][i])
            assert r.status_code == 200, r.text
            made[name] = r.json()["inventory"]
    finally:
        srv.close()

    def names(*q, **kw):
        r = zs.query("/images", params=[("q", c) for c in q] + list(kw.items()))
        assert r.status_code == 200, r.text
        return [inv["name"] for inv in typed(r.json())]

    assert names(sort="name") == ["alpha", "beta", "gamma"]
    assert names("name~=%a", "size>65536", "status=Ready") == ["beta", "gamma"]
    assert names("platform=Linux", "size>=131072", "name!=beta") == ["gamma"]
    assert names("name?=alpha,gamma", "md5Sum=" + made["gamma"]["md5Sum"]) == ["gamma"]
    assert names("name!?=alpha", "name!~=g%", "size<=131072") == ["beta"]
    assert names("size<131072", "uuid=" + made["alpha"]["uuid"]) == ["alpha"]
    assert names("description is null", "guestOsType not null") == []
    assert names(sort="-size", limit="2", start="1") == ["beta", "alpha"]
    assert zs.query("/images", params={"count": "true", "q": "size>65536"}).json() == {"total": 2}
    r = zs.query("/images", params={"replyWithCount": "true", "limit": "1", "sort": "name"}).json()
    assert (r["total"], [i["name"] for i in r["inventories"]]) == (3, ["alpha"])
    r = zs.query("/images", params={"fields": "uuid,name,backupStorageRefs", "q": "name=beta"})
    inv = r.json()["inventories"][0]
    assert set(inv) == {"uuid", "name", "backupStorageRefs"}
    assert inv["backupStorageRefs"][0]["backupStorageUuid"] == bs
    r = zs.query("/images", params={"q": "colour=red"})
    assert r.status_code == 400 and "colour" in r.text
    r = zs.query("/images", params={"q": "size>big"})
    assert r.status_code == 400 and "integer" in r.text
    r = zs.query("/images", params={"q": "nameXalpha"})
    assert r.status_code == 400 and "Valid query operators are" in r.text
    r = requests.get(zs.d.url(API + "/images"))
    assert (r.status_code, r.text) == (400, "missing header 'Authorization'")
    r = zs.query("/images/" + uuid.uuid4().hex)
    assert r.json() == {"inventories": [], "schema": {}}


def test_kill9_during_a_copy_leaves_no_row_and_no_file_after_the_restart(
        daemon_factory, tmp_path):
    zs = start(daemon_factory, tmp_path)
    bs, path = store(zs, tmp_path, "bs1")
    srv = Imgapi()
    try:
        srv.routes["/slow.raw"] = (200, {}, b"\7" * (2 * MIB), 0.005)  # 4 KiB per 5 ms
        job = uuid.uuid4().hex
        r = requests.post(zs.d.url(API + "/images"), headers=zs.headers(job), json={"params": {
            "name": "slow", "url": srv.url("/slow.raw"), "backupStorageUuids": [bs]}})
        assert r.status_code == 202, r.text
        staging = path / ".staging" / (job + ".task")
        zs.d.wait_for(staging.exists, what="staging")
        inv = typed(zs.query("/images").json())[0]
        ref = inv["backupStorageRefs"][0]
        assert (inv["uuid"], inv["status"], ref["status"], ref["installPath"]) == (
            job, "Downloading", "Downloading", "")
        zs.d.kill9()
        zs.d.start()
        zs.d.wait_for(lambda: requests.get(zs.d.url(API + "/api-jobs/" + job),
                                           headers=zs.headers()).status_code == 503,
                      what="job settled")
        r = requests.get(zs.d.url(API + "/api-jobs/" + job), headers=zs.headers())
        assert r.json()["error"]["details"] == "interrupted by restart"
        assert zs.query("/images").json() == {"inventories": [], "schema": {}}
        assert left_on(path) == []
    finally:
        srv.close()


def test_catalogue_image_to_another_filesystem_goes_through_the_daemon(daemon_factory, tmp_path):
    """tmpfs: the kernel refuses to copy across (EXDEV), so the bytes are read, hashed and
    written by the daemon; the copy on the same filesystem named with it is redone too."""
    zs = start(daemon_factory, tmp_path)
    other = tempfile.mkdtemp(prefix="stowage-zs-", dir="/dev/shm")
    try:
        near, p1 = store(zs, tmp_path, "near")
        r = add_store(zs, other, name="far")
        assert r.status_code == 200, r.text
        far = r.json()["inventory"]["uuid"]
        data = b"\0" * MIB + os.urandom(MIB)
        upload(zs.d, "cat2", data)
        src = call(zs.d, "GET", "/api/image/cat2/").json()["result"]["uuid"]
        r = add_image(zs, "stowage://image/" + src, [near, far])
        assert r.status_code == 200, r.text
        inv = typed(r.json())[0]
        assert inv["md5Sum"] == hashlib.sha256(data).hexdigest()
        for ref in inv["backupStorageRefs"]:
            assert open(ref["installPath"], "rb").read() == data
        assert zs.call("DELETE", "/images/" + inv["uuid"]).status_code == 200
        assert left_on(other) == [] and left_on(p1) == []
    finally:
        shutil.rmtree(other, ignore_errors=True)
