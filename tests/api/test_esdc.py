"""Danube Cloud (esdc) dialect: the envelope, auth, the /image/ catalogue, /task/ and
ES-STREAM, as Danube Cloud's own clients (the `es` CLI, esdc-api) see them."""

import json
import os
import re
import socket
import time

import pytest
import requests

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
MIB = 1024 * 1024


@pytest.fixture
def ext_daemon(ext_daemon):
    """conftest's daemon once its volume is probed (an upload racing the volume's first
    restart recovery can lose its fresh row)."""
    ext_daemon.wait_for(lambda: ext_daemon.get("/imagestorages/default").json()[
        "external_volumes"][0]["status"] == "ok", what="volume ok")
    return ext_daemon


def es(d, token=None):
    """The headers the `es` CLI sends (bin/es: HEADERS)."""
    return {"Accept": "application/json; indent=4", "Content-Type": "application/json; indent=4",
            "ES-API-KEY": token or d.token}


def call(d, method, path, token=None, body=None, params=None, headers=None):
    h = es(d, token)
    h.update(headers or {})
    data = json.dumps(body) if body is not None else ("{}" if method == "DELETE" else None)
    return requests.request(method, d.url(path), headers=h, params=params, data=data,
                            timeout=30, allow_redirects=False)


def upload(d, name, size=MIB):
    r = requests.put(d.url("/image/%s/file/" % name), data=b"\0" * size,
                     headers={"Authorization": "Token " + d.token}, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


def assert_envelope(r, status, state, task_id=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"task_id", "status", "result"}
    assert body["status"] == state
    assert UUID.match(body["task_id"])
    if task_id:
        assert body["task_id"] == task_id
    assert r.headers["es_task_id"] == body["task_id"]
    assert r.headers["es_version"]
    assert r.headers["es_dc"] == "default"
    assert r.headers["content-type"] == "application/json"
    return body


def wait_task(d, tid, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = call(d, "GET", "/api/task/%s/status/" % tid)
        if r.status_code != 201:
            return r
        time.sleep(0.05)
    raise AssertionError("task %s still pending" % tid)


# ---- routes, envelope, auth ----

@pytest.mark.parametrize("path", ["/image/", "/image", "/api/image/", "/api/image"])
def test_image_list_is_served_at_the_root_and_under_api_with_or_without_slash(ext_daemon, path):
    upload(ext_daemon, "win10")
    r = call(ext_daemon, "GET", path)
    body = assert_envelope(r, 200, "SUCCESS")
    assert body["result"] == ["win10"]
    assert r.headers["es_username"] == "admin"
    assert "es_task_response" not in r.headers  # a synchronous call


def test_no_credentials_and_a_bad_key_answer_403_as_esdc(ext_daemon):
    r = requests.get(ext_daemon.url("/api/image/"), timeout=10)
    assert r.status_code == 403
    assert r.json() == {"detail": "Authentication credentials were not provided."}
    r = requests.get(ext_daemon.url("/api/image/"), headers={"ES-API-KEY": "stw_nope"}, timeout=10)
    assert (r.status_code, r.json()) == (403, {"detail": "Invalid API key"})
    r = requests.get(ext_daemon.url("/image/"), headers={"Authorization": "Token stw_nope"},
                     timeout=10)
    assert (r.status_code, r.json()) == (403, {"detail": "Invalid API key"})


def test_a_reader_may_not_write(ext_daemon):
    upload(ext_daemon, "win10")
    reader = ext_daemon.make_token("reader")
    r = call(ext_daemon, "PUT", "/api/image/win10/", token=reader, body={"desc": "x"})
    assert r.status_code == 403
    assert r.json() == {"detail": "role reader may not PUT /api/image/win10/ (needs admin)"}


def test_login_gives_a_token_that_works_and_logout_ends_it(ext_daemon):
    d = ext_daemon
    r = d.cli("user", "add", "alice", "--role", "admin", stdin="s3cret-pass\n")
    assert r.returncode == 0, r.stderr
    r = requests.post(d.url("/api/accounts/login/"), data=json.dumps(
        {"username": "alice", "password": "wrong-pass"}), headers={
        "Content-Type": "application/json; indent=4"}, timeout=30)
    assert (r.status_code, r.json()) == (400, {"detail": "Unable to log in with provided credentials."})
    r = requests.post(d.url("/api/accounts/login/"), json={"username": "alice"}, timeout=30)
    assert (r.status_code, r.json()) == (400, {"detail": {"password": ["This field is required."]}})
    r = requests.post(d.url("/api/accounts/login/"), data=json.dumps(
        {"username": "alice", "password": "s3cret-pass"}), headers={
        "Content-Type": "application/json; indent=4"}, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "expires", "detail"}
    assert body["detail"] == "Welcome to Danube Cloud API."
    assert ISO.match(body["expires"])
    auth = {"Authorization": "Token " + body["token"]}
    r = requests.get(d.url("/api/image/"), headers=auth, timeout=10)
    assert r.status_code == 200 and r.headers["es_username"] == "alice"
    r = requests.get(d.url("/api/accounts/logout/"), headers=auth, timeout=10)
    assert (r.status_code, r.json()) == (200, {"detail": "Bye."})
    r = requests.get(d.url("/api/image/"), headers=auth, timeout=10)
    assert (r.status_code, r.json()) == (403, {"detail": "Invalid API key"})


# ---- the catalogue ----

def test_full_and_extended_show_esdc_image_objects(ext_daemon):
    up = upload(ext_daemon, "win10", 3 * MIB + 1)
    for truthy in ("t", "T", "true", "True", "TRUE", "1"):
        body = assert_envelope(call(ext_daemon, "GET", "/api/image/", params={"full": truthy}),
                               200, "SUCCESS")
        [img] = body["result"]
        assert set(img) == {"name", "uuid", "alias", "version", "owner", "access", "desc",
                            "ostype", "size", "resize", "deploy", "tags", "status", "created",
                            "dc_bound"}
    assert img["name"] == "win10" and img["uuid"] == up["uuid"]
    assert (img["alias"], img["version"], img["access"], img["desc"]) == ("win10", "1.0", 3, "")
    assert (img["size"], img["status"], img["tags"], img["dc_bound"]) == (4, 1, [], True)
    assert (img["resize"], img["deploy"], img["owner"]) == (False, False, "admin")
    assert ISO.match(img["created"])
    body = assert_envelope(call(ext_daemon, "GET", "/image/", params={"full": "no"}), 200, "SUCCESS")
    assert body["result"] == ["win10"]
    body = assert_envelope(call(ext_daemon, "GET", "/image/", params={"extended": "True"}), 200,
                           "SUCCESS")
    assert body["result"][0]["dcs"] == ["default"]
    body = assert_envelope(call(ext_daemon, "GET", "/image/win10/"), 200, "SUCCESS")
    assert body["result"] == img


def test_order_by_name_created_descending_and_several_keys(ext_daemon):
    for name in ("b", "c", "a"):
        upload(ext_daemon, name)
        time.sleep(1.05)  # created has a resolution of seconds
    def names(order):
        r = call(ext_daemon, "GET", "/image/", params={"order_by": order})
        return assert_envelope(r, 200, "SUCCESS")["result"]
    assert names("name") == ["a", "b", "c"]
    assert names("-name") == ["c", "b", "a"]
    assert names("created") == ["b", "c", "a"]
    assert names("-created,name") == ["a", "c", "b"]
    r = call(ext_daemon, "GET", "/image/", params={"order_by": "size"})
    assert r.status_code == 412
    assert r.json() == {"detail": "Invalid order_by; Possible sort fields are: name, created"}


def test_unknown_image_is_404_image_not_found(ext_daemon):
    for method in ("GET", "PUT", "DELETE"):
        r = call(ext_daemon, method, "/api/image/nope/", body={} if method == "PUT" else None)
        assert (r.status_code, r.json()) == (404, {"detail": "Image not found"}), method
    r = call(ext_daemon, "GET", "/api/image/nope/vm/")
    assert (r.status_code, r.json()) == (404, {"detail": "Image not found"})


def update(d, name, body, headers=None):
    r = call(d, "PUT", "/api/image/%s/" % name, body=body, headers=headers)
    if r.status_code != 201:
        return r, None
    pending = assert_envelope(r, 201, "PENDING")
    assert pending["result"] is None and r.headers["es_task_response"] == "true"
    return r, wait_task(d, pending["task_id"])


@pytest.mark.parametrize("field, good, bad, message", [
    ("alias", "a" * 32, "a" * 33, "Ensure this value has at most 32 characters (it has 33)."),
    ("alias", "Windows 10 Pro", "win<10>", "Enter a valid value."),
    ("alias", "plain-alias", "a&b", "Enter a valid value."),
    ("version", "1" * 16, "1" * 17, "Ensure this value has at most 16 characters (it has 17)."),
    ("version", "2.0-rc1", "2;0", "Enter a valid value."),
    ("desc", "d" * 128, "d" * 129, "Ensure this value has at most 128 characters (it has 129)."),
    ("desc", "a clean image", "it's", "Enter a valid value."),
    ("access", 1, 2, "Select a valid choice. 2 is not one of the available choices."),
    ("access", 4, 0, "Select a valid choice. 0 is not one of the available choices."),
    ("access", "3", "x", "Enter a whole number."),
    ("tags", ["a", "b"], ["a", 1], "Enter a valid value."),
    ("resize", True, "maybe", "Enter a valid value."),
    ("deploy", "true", [], "Enter a valid value."),
])
def test_image_update_validates_each_field_as_esdc(ext_daemon, field, good, bad, message):
    upload(ext_daemon, "win10")
    r, done = update(ext_daemon, "win10", {field: bad})
    assert r.status_code == 400, r.text
    body = assert_envelope(r, 400, "FAILURE")
    assert body["result"] == {field: [message]}
    r, done = update(ext_daemon, "win10", {field: good})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "SUCCESS"
    img = call(ext_daemon, "GET", "/api/image/win10/").json()["result"]
    want = {"access": int(good) if field == "access" else good, "resize": True,
            "deploy": True}.get(field, good)
    assert img[field] == want


def test_alias_and_version_are_unique_with_esdc_message(ext_daemon):
    upload(ext_daemon, "a")
    upload(ext_daemon, "b")
    r, done = update(ext_daemon, "a", {"alias": "Linux", "version": "2"})
    assert done.json()["status"] == "SUCCESS"
    r, _ = update(ext_daemon, "b", {"alias": "linux", "version": "2"})
    body = assert_envelope(r, 400, "FAILURE")
    assert body["result"] == {"alias": [
        "This alias is already in use. Please supply a different alias or version."]}
    r, done = update(ext_daemon, "b", {"alias": "linux", "version": "3"})
    assert done.json()["status"] == "SUCCESS"
    # the default alias is the name: another image may not take it with the same version
    upload(ext_daemon, "c")
    r, _ = update(ext_daemon, "a", {"alias": "C", "version": "1.0"})
    assert r.json()["result"] == {"alias": [
        "This alias is already in use. Please supply a different alias or version."]}


def test_update_honours_if_match(ext_daemon):
    upload(ext_daemon, "win10")
    r = call(ext_daemon, "GET", "/image/win10/")
    tag = r.headers["ETag"]
    r, _ = update(ext_daemon, "win10", {"desc": "x"}, headers={"If-Match": '"999"'})
    assert r.status_code == 412 and "has changed" in r.json()["detail"]
    r, done = update(ext_daemon, "win10", {"desc": "x"}, headers={"If-Match": tag})
    assert done.json()["status"] == "SUCCESS"
    assert done.json()["result"]["name"] == "win10"
    assert call(ext_daemon, "GET", "/image/win10/").headers["ETag"] != tag


def test_delete_is_a_job_refused_with_428_while_clones_use_the_image(ext_daemon):
    d = ext_daemon
    upload(d, "win10")
    r = d.post("/tasks/create", json={"type": "guest_clone", "image_id": "win10",
                                      "guest_id": "vm1", "clone_id": "c1"})
    tid = r.json()["message"]
    d.wait_for(lambda: d.get("/tasks/" + tid).json()["state"] == "completed", what="clone")
    r = call(d, "GET", "/api/image/win10/vm/")
    assert assert_envelope(r, 200, "SUCCESS")["result"] == ["vm1"]
    r = call(d, "DELETE", "/api/image/win10/")
    assert (r.status_code, r.json()) == (428, {"detail": "Image is used by some VMs"})
    r = d.post("/tasks/create", json={"type": "clone_delete", "clone_id": "c1"})
    tid = r.json()["message"]
    d.wait_for(lambda: d.get("/tasks/" + tid).json()["state"] == "completed", what="clone gone")
    r = call(d, "DELETE", "/api/image/win10/")
    pending = assert_envelope(r, 201, "PENDING")
    done = wait_task(d, pending["task_id"])
    assert done.status_code == 200 and done.json()["status"] == "SUCCESS"
    assert call(d, "GET", "/api/image/").json()["result"] == []


# ---- tasks ----

def test_task_views_map_core_jobs_of_every_dialect(ext_daemon):
    d = ext_daemon
    upload(d, "win10")
    r = d.post("/tasks/create", json={"type": "image_release", "image_id": "win10"})
    fv = r.json()["message"]
    d.wait_for(lambda: d.get("/tasks/" + fv).json()["state"] == "completed", what="release")
    r = call(d, "GET", "/api/task/%s/status/" % fv)
    assert r.status_code == 200 and r.headers["es_task_response"] == "true"
    assert r.json() == {"task_id": fv, "status": "SUCCESS", "result": {"name": "win10"}}
    r = call(d, "GET", "/task/%s/state/" % fv)
    assert r.json()["status"] == "SUCCESS"
    r = call(d, "GET", "/api/task/%s/done/" % fv)
    assert (r.status_code, r.json()) == (200, {"task_id": fv, "done": True})
    r = call(d, "GET", "/api/task/")
    assert (r.status_code, r.json()) == (200, [])
    r = call(d, "GET", "/api/task/log/")
    assert r.status_code == 200
    line = r.json()["results"][0]
    assert (line["task"], line["status"], line["object"], line["user"]) == (
        fv, "SUCCESS", "win10", "admin")
    r = d.post("/tasks/create", json={"type": "image_release", "image_id": "nope"})
    bad = r.json()["message"]
    d.wait_for(lambda: d.get("/tasks/" + bad).json()["state"] == "completed", what="failure")
    r = call(d, "GET", "/api/task/%s/status/" % bad)
    assert r.status_code == 400
    assert r.json() == {"task_id": bad, "status": "FAILURE",
                        "result": {"detail": "image 'nope' not found"}}
    r = call(d, "PUT", "/api/task/%s/cancel/" % fv, body={})
    assert (r.status_code, r.json()) == (406, {"detail": "Task cannot be canceled"})
    for path in ("/api/task/0000/status/", "/task/%s/done/" % ("f" * 36)):
        r = call(d, "GET", path)
        assert (r.status_code, r.json()) == (404, {"detail": "Task does not exist (anymore)"})


# ---- ES-STREAM ----

class EsStream:
    """Reads an ES-STREAM answer as the `es` CLI does (bin/es): headers first, then one
    byte at a time; spaces are keep-alives, then a code line and the task's JSON."""

    def __init__(self, d, method, path, body, value="es"):
        self.sock = socket.create_connection(("127.0.0.1", d.port), timeout=60)
        data = json.dumps(body).encode()
        self.sock.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nES-API-KEY: %s\r\nES-STREAM: %s\r\n"
                           "Content-Type: application/json; indent=4\r\nContent-Length: %d\r\n"
                           "Connection: close\r\n\r\n" % (method, path, d.token, value, len(data))
                           ).encode() + data)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        assert self.headers["transfer-encoding"] == "chunked"
        self.times = []

    def _chunk(self):
        while b"\r\n" not in self.buf:
            more = self.sock.recv(4096)
            if not more:
                raise EOFError
            self.buf += more
        size, rest = self.buf.split(b"\r\n", 1)
        n = int(size, 16)
        while len(rest) < n + 2:
            rest += self.sock.recv(4096)
        self.buf = rest[n + 2:]
        return rest[:n]

    def read_all(self):
        """Keep-alive spaces (with when each came) and the rest of the body."""
        t0, spaces, rest = time.time(), 0, b""
        while True:
            c = self._chunk()
            if not c:
                return spaces, rest.decode()
            if not rest and c.strip() == b"":
                spaces += len(c)
                self.times.append(time.time() - t0)
            else:
                rest += c


def test_es_stream_waits_for_the_task_then_sends_the_code_line_and_the_status(ext_daemon):
    upload(ext_daemon, "win10")
    s = EsStream(ext_daemon, "PUT", "/api/image/win10/", {"desc": "streamed"})
    assert s.status == 201
    assert s.headers["es_stream"] == "True" and UUID.match(s.headers["es_task_id"])
    assert s.headers["es_task_response"] == "true"
    spaces, rest = s.read_all()
    assert spaces == 0  # the first look (after 1 s) finds it done
    code, text = rest.split("\n", 1)
    assert code == "200"
    assert json.loads(text) == {"task_id": s.headers["es_task_id"], "status": "SUCCESS",
                                "result": json.loads(text)["result"]}
    assert json.loads(text)["result"]["name"] == "win10"
    assert call(ext_daemon, "GET", "/image/win10/").json()["result"]["desc"] == "streamed"


def test_es_stream_without_es_value_sends_only_the_json_and_a_refusal_is_not_streamed(ext_daemon):
    upload(ext_daemon, "win10")
    s = EsStream(ext_daemon, "PUT", "/image/win10/", {"desc": "x"}, value="1")
    spaces, rest = s.read_all()
    assert json.loads(rest)["status"] == "SUCCESS"
    r = call(ext_daemon, "PUT", "/api/image/win10/", body={"alias": "<"},
             headers={"ES-STREAM": "es"})
    assert r.status_code == 400 and "es_stream" not in r.headers


def test_es_stream_keeps_alive_while_the_task_waits_times_out_and_ends_with_the_code(
        daemon_factory, tmp_path):
    """The one worker is held by an import whose file dribbles in (an IMGAPI fixture
    server sending 4 KiB every 10 ms: ~10 s), so esdc's update waits in the queue behind it
    however fast the disk is. The first stream runs into api_sync_timeout (2 s):
    keep-alive, then the pending JSON and no code line. The second gets a keep-alive, then
    the import is cancelled through /task/{id}/cancel/ and the stream ends with "200\\n"
    and the SUCCESS status."""
    from test_esdc_import import Imgapi
    vol = tmp_path / "vol"
    vol.mkdir()
    d = daemon_factory({"probe_ttl_ms": 200, "workers": 1, "api_sync_timeout": 2,
                        "import_allow": ["127.0.0.1"], "storages": [
                            {"id": "default", "volumes": [{"id": "dir1", "kind": "external",
                                                           "mount_point": str(vol)}]}]})
    d.wait_for(lambda: d.get("/imagestorages/default").json()["external_volumes"][0]["status"]
               == "ok", what="volume ok")
    r = d.post("/tasks/create", json={"type": "image_create", "image_id": "big",
                                      "volume_id": "dir1", "image_storage_id": "default",
                                      "size_mb": 1})
    tid = r.json()["message"]
    d.wait_for(lambda: d.get("/tasks/" + tid).json()["state"] == "completed", what="create")
    srv = Imgapi()
    try:
        _, murl = srv.add(os.urandom(4 * MIB), dribble=0.01)
        r = call(d, "POST", "/api/image/slow/", body={"manifest_url": murl, "dc": "default"})
        assert r.status_code == 201, r.text
        blocker = r.json()["task_id"]
        d.wait_for(lambda: os.path.isdir(vol / ".staging") and os.listdir(vol / ".staging"),
                   what="the import under way")

        a = EsStream(d, "PUT", "/api/image/big/", {"desc": "first"})
        assert a.status == 201 and a.headers["es_stream"] == "True"
        spaces, rest = a.read_all()
        assert spaces == 1 and 0.8 < a.times[0] < 1.8
        assert json.loads(rest) == {"task_id": a.headers["es_task_id"], "status": "PENDING",
                                    "result": None}
        listed = call(d, "GET", "/api/task/").json()
        assert a.headers["es_task_id"] in listed and blocker in listed

        b = EsStream(d, "PUT", "/api/image/big/", {"desc": "second"})
        assert b._chunk() == b" "  # still waiting after a second
        r = call(d, "PUT", "/api/task/%s/cancel/" % blocker, body={})
        assert r.status_code in (200, 201, 410), r.text
        spaces, rest = b.read_all()
    finally:
        srv.close()
    code, text = rest.split("\n", 1)
    assert code == "200"
    assert json.loads(text)["task_id"] == b.headers["es_task_id"]
    assert json.loads(text)["status"] == "SUCCESS"
    # the first task ran too, before the second
    r = call(d, "GET", "/api/task/%s/status/" % a.headers["es_task_id"])
    assert r.status_code == 200 and r.json()["status"] == "SUCCESS"
    assert call(d, "GET", "/image/big/").json()["result"]["desc"] == "second"
    # the import is revoked; nothing is left pending, and nothing of it on the volume
    r = call(d, "GET", "/api/task/%s/status/" % blocker)
    assert r.status_code == 410 and r.json()["status"] == "REVOKED", r.text
    assert call(d, "GET", "/api/task/").json() == []
    assert call(d, "GET", "/api/image/slow/").status_code == 404
    assert os.listdir(vol / ".staging") == []
