"""The ZStack dialect, driven by a small client that behaves like ZStack's SDK (ZSClient):
SHA-512 logins, X-Job-UUID, polling the api-job location every second, re-typing results
by their "schema", ZStack's dates."""
import hashlib
import os
import shutil
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests

IMAGE_STORE = "org.zstack.header.storage.backup.ImageStoreBackupStorageInventory"
API = "/zstack/v1"


def zs_date(s):
    """ZStack's 'Nov 14, 2017 10:20:57 PM', UTC."""
    return datetime.strptime(s, "%b %d, %Y %I:%M:%S %p").replace(tzinfo=timezone.utc)


class ZSClient:
    def __init__(self, daemon):
        self.d = daemon
        self.session = None

    def headers(self, job=None):
        h = {"Content-Type": "application/json"}
        if self.session:
            h["Authorization"] = "OAuth " + self.session
        if job:
            h["X-Job-UUID"] = job
        return h

    def login(self, name, secret):
        r = requests.put(self.d.url(API + "/accounts/login"), headers=self.headers(),
                         json={"logInByAccount": {"accountName": name, "password":
                                                  hashlib.sha512(secret.encode()).hexdigest()}})
        return r

    def call(self, method, path, body=None, job=None, params=None):
        """An asynchronous API: 202 and a location, polled every second like the SDK."""
        job = job or uuid.uuid4().hex
        r = requests.request(method, self.d.url(API + path), headers=self.headers(job),
                             json=body, params=params)
        if r.status_code != 202:
            return r
        loc = r.json()["location"]
        assert r.json() == {"location": loc, "apiTimeout": r.json()["apiTimeout"]}
        assert loc.endswith("/zstack/v1/api-jobs/" + job)
        # The SDK rebuilds the URL from the part after /zstack/v1/api-jobs.
        tail = loc.split("/zstack/v1/api-jobs")[1]
        for _ in range(60):
            p = requests.get(self.d.url(API + "/api-jobs" + tail), headers=self.headers())
            if p.status_code != 202:
                return p
            assert p.json() == {}
            time.sleep(1)
        raise AssertionError("job never finished")

    def query(self, path, params=None):
        return requests.get(self.d.url(API + path), headers=self.headers(), params=params)


def typed(reply):
    """Re-type each inventory by the schema, as the SDK does; a missing entry fails."""
    schema = reply["schema"]
    if "inventory" in reply:
        assert schema["inventory"] == IMAGE_STORE
        return [reply["inventory"]]
    for i, _ in enumerate(reply["inventories"]):
        assert schema["inventories[%d]" % i] == IMAGE_STORE
    return reply["inventories"]


def session(d):
    """A client of d logged in as ops, a new superadmin."""
    r = d.cli("user", "add", "ops", "--role", "superadmin", stdin="s3cret-pass\n")
    assert r.returncode == 0, r.stderr
    c = ZSClient(d)
    r = c.login("ops", "s3cret-pass")
    assert r.status_code == 200, r.text
    c.session = r.json()["inventory"]["uuid"]
    return c


@pytest.fixture
def zs(daemon_factory):
    return session(daemon_factory({"api_job_expiry_s": 3}))


def add_store(zs, path, name="bs1", job=None, **extra):
    params = {"hostname": "127.0.0.1", "username": "root", "password": "pw", "url": str(path),
              "name": name}
    params.update(extra)
    return zs.call("POST", "/backup-storage/image-store",
                   {"params": params, "systemTags": [], "userTags": []}, job=job)


def test_login_with_sha512_gives_a_session_inventory(daemon_factory):
    d = daemon_factory()
    assert d.cli("user", "add", "ops", "--role", "admin", stdin="s3cret-pass\n").returncode == 0
    c = ZSClient(d)
    r = c.login("ops", "s3cret-pass")
    assert r.status_code == 200
    inv = r.json()["inventory"]
    assert set(inv) == {"uuid", "accountUuid", "userUuid", "expiredDate", "createDate"}
    assert r.json()["schema"] == {"inventory": "org.zstack.header.identity.SessionInventory"}
    assert (zs_date(inv["expiredDate"]) - zs_date(inv["createDate"])).total_seconds() == 12 * 3600
    bad = c.login("ops", "wrong-pass")
    assert bad.status_code == 503
    assert bad.json() == {"error": {"code": "ID.1000", "description": "Unable to authenticate a user",
                                    "details": "wrong account name or password"}}
    # The session works; after logout it is ID.1001.
    c.session = inv["uuid"]
    assert c.query("/backup-storage").json()["inventories"] == []
    out = requests.delete(d.url(API + "/accounts/sessions/" + inv["uuid"]))
    assert (out.status_code, out.json()) == (200, {})
    r = c.query("/backup-storage")
    assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1001"
    assert r.json()["error"]["description"] == ("The session is invalid, either wrong session id "
                                                "or the session has been expired")


def test_authorization_refusals_are_zstacks_plain_texts(zs):
    url = zs.d.url(API + "/backup-storage")
    r = requests.get(url)
    assert (r.status_code, r.text) == (400, "missing header 'Authorization'")
    r = requests.get(url, headers={"Authorization": "Bearer x"})
    assert (r.status_code, r.text) == (400, "Authorization type must be 'OAuth'")
    r = requests.get(url, headers={"Authorization": "OAuth nosuchsession"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1001"
    # A stowage token works as an OAuth session too.
    r = requests.get(url, headers={"Authorization": "OAuth " + zs.d.token})
    assert (r.status_code, r.json()) == (200, {"inventories": [], "schema": {}})
    r = requests.get(zs.d.url(API + "/nothing/here"), headers=zs.headers())
    assert (r.status_code, r.text) == (404, "no api mapping to /zstack/v1/nothing/here")


def test_image_store_on_a_directory_add_query_reconnect_state_delete(zs, tmp_path):
    store = tmp_path / "bs"
    store.mkdir()
    want = uuid.uuid4().hex
    r = add_store(zs, store, resourceUuid=want, description="first")
    assert r.status_code == 200, r.text
    inv = typed(r.json())[0]
    sv = os.statvfs(store)
    assert inv["uuid"] == want
    assert {k: inv[k] for k in ("name", "description", "url", "hostname", "username", "sshPort",
                                "type", "state", "status", "attachedZoneUuids")} == {
        "name": "bs1", "description": "first", "url": str(store), "hostname": "127.0.0.1",
        "username": "root", "sshPort": 22, "type": "ImageStoreBackupStorage", "state": "Enabled",
        "status": "Connected", "attachedZoneUuids": []}
    assert "password" not in inv
    assert abs(inv["totalCapacity"] - sv.f_blocks * sv.f_frsize) <= 0.01 * inv["totalCapacity"]
    assert abs(inv["availableCapacity"] - sv.f_bavail * sv.f_frsize) <= 0.01 * inv["totalCapacity"]
    assert abs((zs_date(inv["createDate"]) - datetime.now(timezone.utc)).total_seconds()) < 60

    # The same through both queries and by uuid.
    for path in ("/backup-storage/image-store", "/backup-storage", "/backup-storage/" + want,
                 "/backup-storage/image-store/" + want):
        r = zs.query(path)
        assert r.status_code == 200 and typed(r.json()) == [inv], path

    cap = zs.query("/backup-storage/capacities").json()
    assert cap == {"totalCapacity": inv["totalCapacity"],
                   "availableCapacity": cap["availableCapacity"]}
    assert abs(cap["availableCapacity"] - inv["availableCapacity"]) <= 0.01 * inv["totalCapacity"]

    r = zs.call("PUT", "/backup-storage/image-store/%s/actions" % want,
                {"updateImageStoreBackupStorage": {"name": "renamed", "sshPort": 2222}})
    got = typed(r.json())[0]
    assert (got["name"], got["sshPort"], got["description"]) == ("renamed", 2222, "first")

    shutil.rmtree(store)
    r = zs.call("PUT", "/backup-storage/image-store/%s/actions" % want,
                {"reconnectImageStoreBackupStorage": {}})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "SYS.1006" and str(store) in r.json()["error"]["details"]
    assert typed(zs.query("/backup-storage/" + want).json())[0]["status"] == "Disconnected"
    store.mkdir()
    r = zs.call("PUT", "/backup-storage/image-store/%s/actions" % want,
                {"reconnectImageStoreBackupStorage": {}})
    assert r.status_code == 200 and typed(r.json())[0]["status"] == "Connected"

    r = zs.call("PUT", "/backup-storage/%s/actions" % want,
                {"changeBackupStorageState": {"stateEvent": "disable"}})
    assert typed(r.json())[0]["state"] == "Disabled"
    r = zs.call("PUT", "/backup-storage/%s/actions" % want,
                {"changeBackupStorageState": {"stateEvent": "sleep"}})
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1007"

    r = zs.call("DELETE", "/backup-storage/" + want)
    assert (r.status_code, r.json()) == (200, {})
    assert zs.query("/backup-storage").json() == {"inventories": [], "schema": {}}


def test_query_operators_window_count_fields_sort(zs, tmp_path):
    made = []
    for i, name in enumerate(["alpha", "beta", "gamma"]):
        p = tmp_path / name
        p.mkdir()
        r = add_store(zs, p, name=name, sshPort=22 + i)
        made.append(typed(r.json())[0])

    def names(*q, **kw):
        r = zs.query("/backup-storage/image-store", params=[("q", c) for c in q] + list(kw.items()))
        assert r.status_code == 200, r.text
        return [i["name"] for i in typed(r.json())]

    assert names("name=beta") == ["beta"]
    assert names("name!=beta") == ["alpha", "gamma"]
    assert names("sshPort>22") == ["beta", "gamma"]
    assert names("sshPort<23") == ["alpha"]
    assert names("sshPort>=23") == ["beta", "gamma"]
    assert names("sshPort<=23") == ["alpha", "beta"]
    assert names("name?=alpha,gamma") == ["alpha", "gamma"]
    assert names("name!?=alpha,gamma") == ["beta"]
    assert names("name~=_e%") == ["beta"]
    assert names("name!~=%mm%") == ["alpha", "beta"]
    assert names("description is null") == ["alpha", "beta", "gamma"]
    assert names("description not null") == []
    assert names("name~=%a%", "sshPort>22", "state=Enabled") == ["beta", "gamma"]
    assert names(sort="-name") == ["gamma", "beta", "alpha"]
    assert names(sort="+sshPort", limit="2") == ["alpha", "beta"]
    assert names(sort="name", start="1", limit="1") == ["beta"]
    r = zs.query("/backup-storage/image-store", params={"count": "true", "q": "sshPort>22"})
    assert r.json() == {"total": 2}
    r = zs.query("/backup-storage/image-store", params={"replyWithCount": "true", "limit": "1"})
    assert r.json()["total"] == 3 and len(r.json()["inventories"]) == 1
    r = zs.query("/backup-storage/image-store", params={"fields": "uuid,name", "sort": "name"})
    assert r.json()["inventories"] == [{"uuid": m["uuid"], "name": m["name"]} for m in made]


def test_bad_queries_are_400_plain_text(zs):
    def q(**p):
        return zs.query("/backup-storage/image-store", params=p)
    r = q(limit="ten")
    assert (r.status_code, r.text) == (400, "Invalid query parameter. 'limit' must be an integer")
    r = q(start="x")
    assert (r.status_code, r.text) == (400, "Invalid query parameter. 'start' must be an integer")
    r = q(q="name")
    assert r.status_code == 400 and r.text == (
        "Invalid query parameter. The 'name' in the parameter[q] doesn't contain any query "
        "operator. Valid query operators are [!=, >=, <=, !?=, !~=, ~=, ?=, =, >, <, is null, "
        "not null]")
    r = q(q="secret=1")
    assert r.status_code == 400 and "field[secret]" in r.text
    r = q(q="sshPort=abc")
    assert r.status_code == 400 and "integer" in r.text
    r = q(sort="-nope")
    assert r.status_code == 400 and "field[nope]" in r.text
    r = q(fields="uuid,password")
    assert r.status_code == 400 and "field[password]" in r.text


def test_bad_input_creates_nothing(zs, tmp_path):
    store = tmp_path / "bs"
    store.mkdir()
    base = zs.d.url(API + "/backup-storage/image-store")
    body = {"params": {"hostname": "127.0.0.1", "url": str(store), "name": "x"}}
    r = requests.post(base, headers=zs.headers(), data="{not json")
    assert r.status_code == 400 and "malformed JSON" in r.text
    r = requests.post(base, headers=zs.headers("abc"), json=body)
    assert (r.status_code, r.text) == (
        400, "Invalid header[X-Job-UUID], it must be a UUID with '-' stripped")
    for params, field in [({"hostname": "127.0.0.1", "url": str(store)}, "name"),
                          ({"hostname": "127.0.0.1", "url": str(store), "name": 5}, "name"),
                          ({"hostname": "10.9.9.9", "url": str(store), "name": "x"}, "hostname"),
                          ({"hostname": "127.0.0.1", "url": "relative/dir", "name": "x"}, "url"),
                          ({"hostname": "127.0.0.1", "url": str(store), "name": "x",
                            "resourceUuid": "not-a-uuid"}, "resourceUuid"),
                          ({"hostname": "127.0.0.1", "url": str(store), "name": "x",
                            "sshPort": "http"}, "sshPort")]:
        r = requests.post(base, headers=zs.headers(), json={"params": params})
        assert r.status_code == 503, (params, r.text)
        err = r.json()["error"]
        assert err["code"] == "SYS.1007" and field in err["details"], (params, err)
        assert err["description"] == "One or more API argument is invalid"
    r = add_store(zs, tmp_path / "missing")
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1006"
    assert zs.query("/backup-storage").json() == {"inventories": [], "schema": {}}

    # A reused X-Job-UUID, an unknown uuid, an expired job.
    job = uuid.uuid4().hex
    assert add_store(zs, store, job=job).status_code == 200
    r = requests.post(base, headers=zs.headers(job), json=body)
    assert (r.status_code, r.text) == (400, "Duplicate job uuid[%s]" % job)
    r = zs.call("DELETE", "/backup-storage/" + uuid.uuid4().hex)
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1003"
    r = requests.get(zs.d.url(API + "/api-jobs/" + uuid.uuid4().hex), headers=zs.headers())
    assert (r.status_code, r.text) == (404, "the job has been expired")
    time.sleep(5)
    r = requests.get(zs.d.url(API + "/api-jobs/" + job), headers=zs.headers())
    assert (r.status_code, r.text) == (404, "the job has been expired")
    assert len(zs.query("/backup-storage").json()["inventories"]) == 1
