"""Danube Cloud imports: POST /image/{name}/ from an IMGAPI manifest (a fixture IMGAPI
server on 127.0.0.1), the address guard, cancel, stowage as an IMGAPI server and
/imagestore/ between two daemons."""

import bz2
import gzip
import hashlib
import http.server
import functools
import json
import lzma
import os
import re
import socket
import subprocess
import threading
import time
import uuid as uuidlib

import pytest
import requests

import test_esdc
from test_esdc import es

# An import or a snapshot job may take longer than test_esdc's calls: a minute.
wait_task = functools.partial(test_esdc.wait_task, timeout=60)

MIB = 1024 * 1024


# ---- the fixture IMGAPI server ----

class Imgapi:
    """An IMGAPI server of our own: GET /images/{uuid} the manifest, GET .../file the
    bytes; routes may be replaced by raw bodies, redirects, or a dribble."""

    def __init__(self):
        self.routes = {}  # path -> (status, headers, body, dribble_s)
        self.hits = []
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.hits.append(self.path)
                route = srv.routes.get(self.path.rstrip("/") or "/")
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, headers, body, dribble = route
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if dribble:
                        for i in range(0, len(body), 4096):
                            self.wfile.write(body[i:i + 4096])
                            self.wfile.flush()
                            time.sleep(dribble)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def add(self, data, compression="none", manifest=None, dribble=0, files=None):
        """Publish data as an image; returns (uuid, manifest URL)."""
        u = str(uuidlib.uuid4())
        wire = {"none": lambda b: b, "gzip": gzip.compress, "bzip2": bz2.compress,
                "xz": lzma.compress}[compression](data)
        m = {"v": 2, "uuid": u, "name": "img-" + u[:8], "version": "1.2", "os": "linux",
             "type": "zvol", "description": "a test image",
             "files": files or [{"sha1": hashlib.sha1(wire).hexdigest(), "size": len(wire),
                                 "compression": compression}]}
        m.update(manifest or {})
        self.routes["/images/" + u] = (200, {"Content-Type": "application/json"},
                                       json.dumps(m).encode(), 0)
        self.routes["/images/%s/file" % u] = (200, {}, wire, dribble)
        return u, self.url("/images/" + u)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def imgapi():
    s = Imgapi()
    yield s
    s.close()


def config(vol, **extra):
    cfg = {"probe_ttl_ms": 200, "import_allow": ["127.0.0.1"],
           "storages": [{"id": "default", "name": "default",
                         "volumes": [{"id": "dir1", "kind": "external",
                                      "mount_point": str(vol)}]}]}
    cfg.update(extra)
    return cfg


def start(daemon_factory, tmp_path, sub="d", **extra):
    vol = tmp_path / (sub + "-vol")
    vol.mkdir()
    d = daemon_factory(config(vol, **extra), sub=sub)
    d.vol = vol
    d.wait_for(lambda: d.get("/imagestorages/default").json()[
        "external_volumes"][0]["status"] == "ok", what="volume ok")
    return d


@pytest.fixture
def daemon(daemon_factory, tmp_path):
    return start(daemon_factory, tmp_path)


def call(d, method, path, body=None, token=None, headers=None, stream=False, timeout=30):
    h = es(d, token)
    h.update(headers or {})
    data = json.dumps(body) if body is not None else ("{}" if method == "DELETE" else None)
    return requests.request(method, d.url(path), headers=h, data=data, timeout=timeout,
                            allow_redirects=False, stream=stream)


def submit(d, name, body):
    r = call(d, "POST", "/api/image/%s/" % name, body)
    assert r.status_code == 201, r.text
    b = r.json()
    assert b["status"] == "PENDING" and b["result"] is None
    assert r.headers["es_task_id"] == b["task_id"]
    assert r.headers["es_task_response"] == "true"
    return b["task_id"]


def import_image(d, name, murl, **body):
    body = dict({"manifest_url": murl, "dc": "default"}, **body)
    return wait_task(d, submit(d, name, body))


def files_in(vol):
    return sorted(os.path.relpath(os.path.join(dp, f), vol)
                  for dp, _, fs in os.walk(vol) for f in fs)


def assert_nothing_left(d, name):
    assert call(d, "GET", "/api/image/%s/" % name).status_code == 404
    assert [f for f in files_in(d.vol) if f.startswith(("images/", ".staging/"))] == []


def assert_failure(r, detail):
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == "FAILURE"
    assert body["result"] == {"detail": detail}


def metrics(d):
    text = requests.get(d.url("/v1/metrics"), headers={"Authorization": "Bearer " + d.token},
                        timeout=10).text
    return {k: int(v) for k, v in re.findall(r"^(stowage_fetch_\w+) (\d+)$", text, re.M)}


def qcow2_bytes(tmp_path, size="16M", backing=None):
    p = tmp_path / ("src%d.qcow2" % len(os.listdir(tmp_path)))
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing:
        args += ["-b", str(backing), "-F", "raw"]
    subprocess.run(args + [str(p), size], check=True)
    if not backing:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 64k", str(p)],
                       check=True, stdout=subprocess.DEVNULL)
    return p.read_bytes()


# ---- imports that work ----

@pytest.mark.parametrize("compression", ["none", "gzip", "bzip2", "xz"])
def test_import_of_a_raw_image_decompresses_checks_sha1_and_shows_everywhere(
        daemon, imgapi, compression):
    data = os.urandom(MIB) + b"\0" * (2 * MIB) + b"tail" * 1024
    u, murl = imgapi.add(data, compression)
    r = import_image(daemon, "imp-" + compression, murl, alias="Imported", desc="mine")
    assert r.status_code == 200, r.text
    res = r.json()["result"]
    assert res == {"name": "imp-" + compression, "uuid": u, "volume": "dir1", "format": "raw",
                   "size": len(data)}
    r = call(daemon, "GET", "/api/image/imp-%s/" % compression)
    img = r.json()["result"]
    assert (img["uuid"], img["status"], img["alias"], img["version"], img["desc"],
            img["ostype"], img["size"]) == (u, 1, "Imported", "1.2", "mine", 1, 4)
    stored = (daemon.vol / "images" / ("%s.raw" % u)).read_bytes()
    assert hashlib.sha1(stored).hexdigest() == hashlib.sha1(data).hexdigest()
    # flexVDI and the native API see it
    fv = daemon.get("/imagestorages/default").json()["external_volumes"][0]["images"]
    assert {"image_id": "imp-" + compression, "volume_id": "dir1", "image_storage_id": "default",
            "guest_id": "", "size_mb": 4} in fv
    r = requests.get(daemon.url("/image/imp-%s/file/" % compression),
                     headers={"Authorization": "Token " + daemon.token}, timeout=30)
    assert r.content == data
    assert r.headers["ETag"] == '"%s"' % hashlib.sha256(data).hexdigest()
    assert [f for f in files_in(daemon.vol) if f.startswith(".staging/")] == []


def test_import_of_a_qcow2_from_qemu_img_follows_the_default_file_url(daemon, imgapi, tmp_path):
    data = qcow2_bytes(tmp_path)
    u, murl = imgapi.add(data)
    r = import_image(daemon, "q1", murl + "/", dc_bound=False)
    assert r.status_code == 200, r.text
    assert r.json()["result"]["format"] == "qcow2"
    assert r.json()["result"]["size"] == 16 * MIB
    assert "/images/%s/file" % u in imgapi.hits  # rstrip('/') + '/file'
    assert (daemon.vol / "images" / ("%s.qcow2" % u)).read_bytes() == data


def test_import_with_an_explicit_file_url_and_es_stream(daemon, imgapi):
    data = os.urandom(300 * 1024)
    u, murl = imgapi.add(data)
    imgapi.routes["/elsewhere.bin"] = imgapi.routes.pop("/images/%s/file" % u)
    r = call(daemon, "POST", "/api/image/es1/", {"manifest_url": murl, "dc": "default",
                                                 "file_url": imgapi.url("/elsewhere.bin")},
             headers={"ES-STREAM": "es"})
    assert r.status_code == 201
    assert r.headers["es_stream"] == "True"
    text = r.text.lstrip(" ")
    code, _, rest = text.partition("\n")
    assert code == "200"
    final = json.loads(rest)
    assert final["status"] == "SUCCESS" and final["result"]["uuid"] == u


# ---- refusals: each a FAILURE with esdc's message, nothing left ----

def test_manifest_over_8192_bytes_is_refused(daemon, imgapi):
    u, murl = imgapi.add(b"x" * 4096, manifest={"description": "d" * 9000})
    r = import_image(daemon, "big", murl)
    assert_failure(r, "Image manifest URL is unreachable (response is larger than 8192 bytes).")
    assert_nothing_left(daemon, "big")


def test_manifest_that_is_not_json_is_refused(daemon, imgapi):
    imgapi.routes["/bad"] = (200, {}, b"{not json", 0)
    r = import_image(daemon, "bad", imgapi.url("/bad"))
    assert_failure(r, "Could not parse image manifest.")
    assert_nothing_left(daemon, "bad")


def test_manifest_without_files_is_invalid_and_two_files_are_not_supported(daemon, imgapi):
    f = {"sha1": "0" * 40, "size": 1, "compression": "none"}
    u, murl = imgapi.add(b"x", files=[f, f])
    assert_failure(import_image(daemon, "two", murl),
                   "Multiple files inside manifest are not supported.")
    u, murl = imgapi.add(b"x", manifest={"files": []})
    assert_failure(import_image(daemon, "none", murl), "Invalid image manifest.")
    u, murl = imgapi.add(b"x", manifest={"uuid": "not-a-uuid"})
    assert_failure(import_image(daemon, "nouuid", murl), "Invalid image manifest.")
    for n in ("two", "none", "nouuid"):
        assert_nothing_left(daemon, n)


def test_an_unreachable_manifest_names_the_http_status(daemon, imgapi):
    r = import_image(daemon, "gone", imgapi.url("/images/nothing"))
    assert_failure(r, "Image manifest URL is unreachable (HTTP 404).")


def test_a_uuid_already_registered_is_refused_with_the_image_name(daemon, imgapi):
    data = os.urandom(4096)
    u, murl = imgapi.add(data)
    assert import_image(daemon, "first", murl).status_code == 200
    r = import_image(daemon, "second", murl)
    assert_failure(r, 'Image UUID is already registered by image "first".')
    assert call(daemon, "GET", "/api/image/second/").status_code == 404


def test_sha1_and_size_mismatches_are_refused_and_leave_nothing(daemon, imgapi):
    data = os.urandom(64 * 1024)
    good = hashlib.sha1(data).hexdigest()
    u, murl = imgapi.add(data, files=[{"sha1": "1" * 40, "size": len(data)}])
    r = import_image(daemon, "badsum", murl)
    assert_failure(r, "Image file checksum mismatch: the manifest says sha1 %s, the file has "
                      "%s." % ("1" * 40, good))
    assert_nothing_left(daemon, "badsum")
    u, murl = imgapi.add(data, files=[{"sha1": good, "size": len(data) + 10}])
    r = import_image(daemon, "short", murl)
    assert_failure(r, "Image file size mismatch: the manifest says %d bytes, the file has %d."
                   % (len(data) + 10, len(data)))
    assert_nothing_left(daemon, "short")
    u, murl = imgapi.add(data, files=[{"sha1": good, "size": len(data) - 10}])
    r = import_image(daemon, "long", murl)
    assert_failure(r, "Image file size mismatch: the manifest says %d bytes, the file has more."
                   % (len(data) - 10))
    assert_nothing_left(daemon, "long")


def test_a_file_url_that_fails_is_unreachable(daemon, imgapi):
    u, murl = imgapi.add(b"abc")
    del imgapi.routes["/images/%s/file" % u]
    r = import_image(daemon, "nofile", murl)
    assert_failure(r, "Image file URL is unreachable (HTTP 404).")
    assert_nothing_left(daemon, "nofile")


def test_a_hostile_qcow2_with_a_backing_file_is_refused_by_the_inspector(daemon, imgapi, tmp_path):
    base = tmp_path / "base.raw"
    base.write_bytes(b"\0" * MIB)
    u, murl = imgapi.add(qcow2_bytes(tmp_path, "1M", backing=base), "gzip")
    r = import_image(daemon, "hostile", murl)
    assert r.status_code == 400
    detail = r.json()["result"]["detail"]
    assert detail.startswith("image refused: qcow2_backing_file: "), detail
    assert_nothing_left(daemon, "hostile")


def test_a_corrupt_gzip_stream_is_refused(daemon, imgapi):
    u, murl = imgapi.add(b"x" * 1000, "gzip")
    status, h, body, dr = imgapi.routes["/images/%s/file" % u]
    broken = body[:20] + b"\xff" * 30 + body[50:]
    imgapi.add  # same manifest, bytes replaced: sha1 and size say the broken bytes
    m = json.loads(imgapi.routes["/images/" + u][2])
    m["files"] = [{"sha1": hashlib.sha1(broken).hexdigest(), "size": len(broken),
                   "compression": "gzip"}]
    imgapi.routes["/images/" + u] = (200, {}, json.dumps(m).encode(), 0)
    imgapi.routes["/images/%s/file" % u] = (200, {}, broken, 0)
    r = import_image(daemon, "corrupt", murl)
    assert_failure(r, "the file is not valid gzip data")
    assert_nothing_left(daemon, "corrupt")


def test_esdc_validation_of_the_import_request(daemon, imgapi):
    r = call(daemon, "POST", "/api/image/x/", {"dc": "default"})
    assert (r.status_code, r.json()["result"]) == (400, {"manifest_url": ["This field is required."]})
    r = call(daemon, "POST", "/api/image/x/", {"dc": "default", "manifest_url": "ftp://h/x"})
    assert (r.status_code, r.json()["result"]) == (400, {"manifest_url": ["Enter a valid URL."]})
    r = call(daemon, "POST", "/api/image/x/", {"manifest_url": imgapi.url("/m")})
    assert r.status_code == 400
    assert r.json()["result"] == {"dc": [
        'You have to specify to which datacenter shall the image be bound. Either use the "dc" '
        'parameter or set the "dc_bound" parameter to false.']}
    r = call(daemon, "POST", "/api/image/x/", {"manifest_url": imgapi.url("/m"), "dc": "nope"})
    assert (r.status_code, r.json()) == (404, {"detail": "Datacenter not found"})
    r = call(daemon, "POST", "/api/image/%s/" % ("n" * 33), {"manifest_url": imgapi.url("/m")})
    assert r.json()["result"] == {"name": ["Ensure this value has at most 32 characters (it has 33)."]}
    u, murl = imgapi.add(b"y" * 512)
    assert import_image(daemon, "taken", murl).status_code == 200
    r = call(daemon, "POST", "/api/image/taken/", {"manifest_url": murl, "dc": "default"})
    assert (r.status_code, r.json()) == (406, {"detail": "Image already exists"})
    reader = daemon.make_token("reader")
    r = call(daemon, "POST", "/api/image/y/", {"manifest_url": murl, "dc": "default"},
             token=reader)
    assert r.status_code == 403
    assert r.json() == {"detail": "role reader may not POST /api/image/y/ (needs admin)"}


# ---- the address guard: refused before any connection ----

@pytest.mark.parametrize("host,what", [
    ("169.254.169.254", "link-local"), ("10.0.0.1", "private"), ("127.0.0.2", "loopback"),
    ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("[::1]", "loopback"),
    ("[fe80::1]", "link-local"), ("[::ffff:10.1.2.3]", "private")])
def test_addresses_not_allowed_are_refused_before_any_connection(daemon, host, what):
    before = metrics(daemon)
    r = import_image(daemon, "ssrf", "http://%s/images/x" % host)
    addr = host.strip("[]")
    if addr.startswith("::ffff:"):
        addr = "::ffff:10.1.2.3"
    assert_failure(r, "Image manifest URL is unreachable (address %s is %s and import_allow "
                      "does not list it)." % (addr, what))
    after = metrics(daemon)
    assert after["stowage_fetch_sockets_total"] == before["stowage_fetch_sockets_total"]
    assert after["stowage_fetch_refused_total"] == before["stowage_fetch_refused_total"] + 1
    assert_nothing_left(daemon, "ssrf")


def test_a_redirect_to_an_address_not_allowed_is_refused_before_connecting(daemon, imgapi):
    # a listener on 127.0.0.2 (loopback, not allowed) proves nothing reaches it
    trap = socket.socket()
    trap.bind(("127.0.0.2", 0))
    trap.listen(4)
    trap.settimeout(0.5)
    port = trap.getsockname()[1]
    imgapi.routes["/redir"] = (302, {"Location": "http://127.0.0.2:%d/images/x" % port}, b"", 0)
    before = metrics(daemon)
    r = import_image(daemon, "redir", imgapi.url("/redir"))
    assert_failure(r, "Image manifest URL is unreachable (address 127.0.0.2 is loopback and "
                      "import_allow does not list it).")
    after = metrics(daemon)
    assert after["stowage_fetch_sockets_total"] == before["stowage_fetch_sockets_total"] + 1
    assert after["stowage_fetch_refused_total"] == before["stowage_fetch_refused_total"] + 1
    with pytest.raises(socket.timeout):
        trap.accept()
    trap.close()
    assert imgapi.hits == ["/redir"]


def test_a_redirect_that_is_allowed_is_followed(daemon, imgapi):
    u, murl = imgapi.add(b"z" * 2048)
    imgapi.routes["/r1"] = (301, {"Location": "/images/" + u}, b"", 0)
    r = import_image(daemon, "followed", imgapi.url("/r1"), file_url=murl + "/file")
    assert r.status_code == 200, r.text
    assert imgapi.hits == ["/r1", "/images/" + u, "/images/%s/file" % u]


def test_only_http_and_https_are_fetched(daemon):
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/", "dict://127.0.0.1:11211/"):
        r = call(daemon, "POST", "/api/image/s/", {"manifest_url": url, "dc": "default"})
        assert (r.status_code, r.json()["result"]) == (400, {"manifest_url": ["Enter a valid URL."]})


def test_without_import_allow_even_the_fixture_server_is_refused(daemon_factory, tmp_path, imgapi):
    d = start(daemon_factory, tmp_path, sub="strict", import_allow=[])
    u, murl = imgapi.add(b"q" * 100)
    r = import_image(d, "strict", murl)
    assert_failure(r, "Image manifest URL is unreachable (address 127.0.0.1 is loopback and "
                      "import_allow does not list it).")
    assert imgapi.hits == []


# ---- cancel ----

def test_cancel_of_a_slow_import_stops_it_and_removes_its_staging_data(daemon, imgapi):
    data = os.urandom(4 * MIB)
    u, murl = imgapi.add(data, dribble=0.01)  # 4 KiB per 10 ms: ~10 s
    tid = submit(daemon, "slow", {"manifest_url": murl, "dc": "default"})
    daemon.wait_for(lambda: any(f.startswith(".staging/") for f in files_in(daemon.vol)),
                    what="staging file")
    time.sleep(0.3)
    r = call(daemon, "PUT", "/api/task/%s/cancel/" % tid, {})
    assert r.status_code in (200, 201, 410), r.text
    r = wait_task(daemon, tid)
    assert r.status_code == 410, r.text
    assert r.json()["status"] == "REVOKED"
    assert r.json()["result"]["detail"].startswith("cancelled")
    assert_nothing_left(daemon, "slow")


# ---- stowage as an IMGAPI server ----

def upload(d, name, data):
    r = requests.put(d.url("/image/%s/file/" % name), data=data,
                     headers={"Authorization": "Token " + d.token}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()


def make_public(d, name):
    r = call(d, "PUT", "/api/image/%s/" % name, {"access": 1})
    assert wait_task(d, r.json()["task_id"]).status_code == 200


def test_imgapi_serves_public_manifests_without_credentials_and_all_with_a_token(daemon):
    data = os.urandom(MIB) + b"\0" * MIB
    pub = upload(daemon, "pub", data)
    priv = upload(daemon, "priv", b"\1" * 4096)
    make_public(daemon, "pub")
    r = requests.get(daemon.url("/images"), timeout=30)
    assert r.status_code == 200
    listed = r.json()
    assert [m["uuid"] for m in listed] == [pub["uuid"]]
    m = listed[0]
    assert m["files"] == [{"sha1": hashlib.sha1(data).hexdigest(), "size": len(data),
                           "compression": "none"}]
    assert (m["v"], m["name"], m["version"], m["state"], m["public"], m["type"],
            m["image_size"]) == (2, "pub", "1.0", "active", True, "zvol", 2)
    assert requests.get(daemon.url("/images/" + pub["uuid"]), timeout=30).json() == m
    r = requests.get(daemon.url("/images/%s/file" % pub["uuid"]), timeout=30)
    assert r.content == data and r.headers["Content-Length"] == str(len(data))
    # private images: not there without credentials, there with a token
    r = requests.get(daemon.url("/images/" + priv["uuid"]), timeout=30)
    assert r.status_code == 404
    assert r.json() == {"code": "ResourceNotFound",
                        "message": "image %s does not exist" % priv["uuid"]}
    assert requests.get(daemon.url("/images/%s/file" % priv["uuid"]), timeout=30).status_code == 404
    r = requests.get(daemon.url("/images"), headers={"Authorization": "Token " + daemon.token},
                     timeout=30)
    assert sorted(x["uuid"] for x in r.json()) == sorted([pub["uuid"], priv["uuid"]])


def test_imgapi_sha1_is_cached_in_the_catalogue(daemon):
    pub = upload(daemon, "cached", b"\7" * 8192)
    make_public(daemon, "cached")
    first = requests.get(daemon.url("/images/" + pub["uuid"]), timeout=30).json()
    # the stored file changed behind our back: the manifest still says the cached sha1
    path = daemon.vol / "images" / ("%s.raw" % pub["uuid"])
    with open(path, "r+b") as f:
        f.write(b"\0")
    again = requests.get(daemon.url("/images/" + pub["uuid"]), timeout=30).json()
    assert again["files"][0]["sha1"] == first["files"][0]["sha1"] == hashlib.sha1(
        b"\7" * 8192).hexdigest()


# ---- /imagestore/: one stowaged imports from another ----

def test_a_second_stowaged_imports_from_the_first_through_imagestore(daemon_factory, tmp_path):
    a = start(daemon_factory, tmp_path, sub="a")
    src = qcow2_bytes(tmp_path)
    img = upload(a, "golden", src)
    make_public(a, "golden")
    b = start(daemon_factory, tmp_path, sub="b",
              imagestores=[{"name": "first", "url": a.base + "/"}])

    r = call(b, "GET", "/api/imagestore/")
    assert (r.status_code, r.json()["result"]) == (200, ["first"])
    r = call(b, "GET", "/api/imagestore/first/image/")
    assert (r.status_code, r.json()["result"]) == (200, [])  # not refreshed yet
    r = call(b, "PUT", "/api/imagestore/first/", {})
    assert r.status_code == 201
    r = wait_task(b, r.json()["task_id"])
    assert (r.status_code, r.json()["result"]) == (200, {"imagestore": "first", "images": 1})
    r = call(b, "GET", "/api/imagestore/?full=true")
    st = r.json()["result"][0]
    assert (st["name"], st["url"], st["images"], st["error"]) == ("first", a.base, 1, None)
    r = call(b, "GET", "/api/imagestore/first/image/")
    assert [m["uuid"] for m in r.json()["result"]] == [img["uuid"]]
    r = call(b, "GET", "/api/imagestore/first/image/%s/" % img["uuid"])
    assert r.json()["result"]["files"][0]["sha1"] == hashlib.sha1(src).hexdigest()
    r = call(b, "GET", "/api/imagestore/first/image/%s/" % uuidlib.uuid4())
    assert (r.status_code, r.json()) == (404, {"detail": "Image not found"})
    r = call(b, "GET", "/api/imagestore/nope/")
    assert (r.status_code, r.json()) == (404, {"detail": "Image server not found"})

    r = call(b, "POST", "/api/imagestore/first/image/%s/" % img["uuid"], {"dc": "default"})
    assert r.status_code == 201, r.text
    r = wait_task(b, r.json()["task_id"])
    assert r.status_code == 200, r.text
    assert r.json()["result"]["name"] == "golden" and r.json()["result"]["uuid"] == img["uuid"]
    got = requests.get(b.url("/image/golden/file/"), headers={"Authorization": "Token " + b.token},
                       timeout=60).content
    assert got == src
    fv = b.get("/imagestorages/default").json()["external_volumes"][0]["images"]
    assert [i["image_id"] for i in fv] == ["golden"]


def test_an_image_server_that_does_not_answer_is_not_available(daemon_factory, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    b = start(daemon_factory, tmp_path, sub="c",
              imagestores=[{"name": "down", "url": "http://127.0.0.1:%d" % port}])
    r = call(b, "PUT", "/api/imagestore/down/", {})
    r = wait_task(b, r.json()["task_id"])
    assert r.status_code == 400
    assert r.json()["result"]["detail"].endswith("Couldn't connect to server"), r.text
    r = call(b, "GET", "/api/imagestore/down/image/")
    assert (r.status_code, r.json()) == (428, {"detail": "Image server is not available"})


def test_an_import_refuses_an_alias_and_version_in_use_as_esdc(daemon, imgapi):
    _, murl = imgapi.add(os.urandom(4096))  # the manifest's version is 1.2
    assert import_image(daemon, "first", murl, alias="Alpine").status_code == 200
    _, murl2 = imgapi.add(os.urandom(4096))
    # the version given: refused before the job, in esdc's words
    r = call(daemon, "POST", "/api/image/second/",
             {"manifest_url": murl2, "dc": "default", "alias": "ALPINE", "version": "1.2"})
    assert (r.status_code, r.json()["result"]) == (
        400, {"alias": ["This alias is already in use. Please supply a different alias or "
                        "version."]})
    # the manifest's version: the job finds it taken once it has read the manifest
    r = import_image(daemon, "second", murl2, alias="alpine")
    assert r.status_code == 400 and r.json()["status"] == "FAILURE"
    assert "alias 'alpine' version '1.2' is already used by image 'first'" in \
        r.json()["result"]["detail"]
    assert call(daemon, "GET", "/api/image/second/").status_code == 404
    assert len(os.listdir(daemon.vol / "images")) == 1 and os.listdir(daemon.vol / ".staging") == []
    assert import_image(daemon, "second", murl2, alias="alpine", version="1.3").status_code == 200
