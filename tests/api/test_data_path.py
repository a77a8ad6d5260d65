"""The data path, black-box: PUT/GET …/file on a real XFS loop volume and a real Gluster
volume (disperse 4 + 2, bricks in tmp, reached by the daemon through libgfapi and by the
test through a FUSE mount of the same volume), and clones checked with qemu-img.

What is proved (API.md § Native data path, the lead's data-path contract):
- a 256 MiB random file goes in and comes out byte for byte; ETag is its sha256;
  Range → 206, unsatisfiable → 416, If-None-Match → 304; a second PUT → 409;
- a client that drops the connection leaves its staged bytes for a Content-Range resume
  (X-Upload-Offset on GET/HEAD, 416 on a wrong start, 202 for a part);
- a wrong X-Checksum-Sha256 / Digest, every hostile sample of the inspector corpus, a
  declared length over the free space (507) or over max_image_size (413) leave no row
  and no file in images/ or .staging/;
- clones of a 100 GiB sparse raw image and of a 1 GiB image are valid qcow2 overlays
  that read back as their base; an image with clones cannot be deleted.

qemu-img and qemu-io make fixtures and check results; the daemon never runs them.
Timing is printed, never asserted.
"""
import base64
import hashlib
import json
import os
import random
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from fixtures.gluster import volume_with_fuse
from fixtures.loopdisk import LoopDisk

REPO = Path(__file__).resolve().parents[2]
QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
CREATED_KEYS = {"uuid", "name", "format", "virtual_size", "size", "sha256", "status", "volume_id"}
STORAGE = "st"
BIG = 256 * MiB

pytestmark = pytest.mark.skipif(not QEMU_IMG or not QEMU_IO, reason="needs qemu-img and qemu-io")


# ---------------------------------------------------------------- files and hashes

def write_random(path, size, seed, holes=False):
    """A file of `size` pseudo-random bytes (seeded); with holes, only some 1 MiB pieces
    are data and the rest is left sparse. Returns its sha256 hex."""
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        off = 0
        while off < size:
            n = min(4 * MiB, size - off)
            if not holes:
                f.seek(off)
                f.write(rng.randbytes(n))
            elif rng.random() < 0.15:
                f.seek(off)
                f.write(rng.randbytes(min(MiB, n)))
            off += n
    return sha256_file(path)


def sha256_file(path, start=0, length=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            b = f.read(4 * MiB if left is None else min(4 * MiB, left))
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def read_at(path, off, n):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(n)


def digest_header(sha_hex):
    return "sha-256=" + base64.b64encode(bytes.fromhex(sha_hex)).decode()


# ---------------------------------------------------------------- volumes

class Vol:
    """A daemon with one storage STORAGE holding one volume; `root` is where the test
    sees the volume's files (the XFS mount, or a FUSE mount of the Gluster volume)."""

    def __init__(self, d, vid, kind, root, listing):
        self.d, self.vid, self.kind, self.root, self.listing = d, vid, kind, Path(root), listing

    def files(self, sub):
        p = self.root / sub
        return sorted(os.listdir(p)) if p.is_dir() else []

    def leftovers(self):
        return {"images": self.files("images"), ".staging": self.files(".staging"),
                "clones": self.files("clones")}

    def settled(self, fn):
        """fn() of what the volume holds, once it is true. Through FUSE, gluster's client
        caches (md-cache, readdir-ahead) may show another client's unlink up to ~1 s late;
        that is gluster's visibility, not the daemon's doing, so wait a few seconds there."""
        deadline = time.monotonic() + (5 if self.kind == "gluster" else 0)
        while True:
            got = fn()
            if got or time.monotonic() >= deadline:
                return got
            time.sleep(0.2)

    def image_path(self, uuid, fmt):
        return self.root / "images" / ("%s.%s" % (uuid, fmt))

    def info(self):
        r = self.d.get("/imagestorages/" + STORAGE)
        assert r.status_code == 200, r.text
        for v in r.json()[self.listing]:
            if v["volume_id"] == self.vid:
                return v
        raise AssertionError("%s not in %r" % (self.vid, r.json()))


def start_daemon_on(daemon_factory, vid, volcfg, listing, root, kind, extra=None):
    cfg = {"probe_ttl_ms": 200, "storages": [{"id": STORAGE, "volumes": [volcfg]}]}
    cfg.update(extra or {})
    d = daemon_factory(cfg)
    v = Vol(d, vid, kind, root, listing)
    # status "ok" is published after the probe opened the backend and ran recovery
    d.wait_for(lambda: v.info()["status"] == "ok", timeout=60, what="volume %s ok" % vid)
    return v


@pytest.fixture
def make_local(make_local_volume):
    """make_local(size="8G", extra=None) → Vol on a fresh XFS loop disk."""
    def make(size="8G", extra=None, sub="local"):
        d, mnt = make_local_volume(size, extra, sub)
        return Vol(d, "loc", "local", mnt, "volumes")
    return make


@pytest.fixture
def local(make_local):
    return make_local()


GVOL = "stdata"


@pytest.fixture(scope="module")
def gluster_env(tmp_path_factory):
    """One private glusterd, a disperse 4+2 volume, and a FUSE mount of it for the checks.

    Only one glusterd can run per host: when another engineer's runs, wait for it."""
    with volume_with_fuse(tmp_path_factory.mktemp("gluster"), GVOL, kind="disperse", bricks=6,
                          redundancy=2) as env:
        yield env


@pytest.fixture
def gluster(gluster_env, daemon_factory):
    gd, fuse = gluster_env
    for sub in ("images", "clones", ".staging"):  # what an earlier test's daemon left
        shutil.rmtree(fuse / sub, ignore_errors=True)
    v = start_daemon_on(daemon_factory, "g", {"id": "g", "kind": "gluster", "server": gd.hostname,
                                              "volume": GVOL},
                        "gluster_volumes", fuse, "gluster")
    yield v
    v.d.stop()


@pytest.fixture(params=["local", "gluster"])
def vol(request):
    return request.getfixturevalue(request.param)


# ---------------------------------------------------------------- HTTP helpers

def esdc(name):
    return "/image/%s/file/" % name


def native(uuid):
    return "/v1/images/%s/file" % uuid


class Reply:
    """What http_put got back: the parts of a requests.Response the tests use."""

    def __init__(self, status, headers, body, early=False):
        self.status_code, self.headers, self.content = status, headers, body
        self.early = early  # the server answered before the whole body was sent

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def _read_reply(s, timeout):
    """Read one HTTP/1.1 response (Content-Length or chunked body) from socket s."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            break
        buf += b
    if b"\r\n\r\n" not in buf:
        return Reply(None, CaseInsensitiveDict(), buf)
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = CaseInsensitiveDict()
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip()] = v.strip()
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        while not body.endswith(b"0\r\n\r\n"):
            b = s.recv(65536)
            if not b:
                break
            body += b
        out, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            n = int(size_line.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        return Reply(status, headers, out)
    want = int(headers.get("Content-Length", "0"))
    while len(body) < want:
        b = s.recv(65536)
        if not b:
            break
        body += b
    return Reply(status, headers, body)


def put(d, path, data, headers=None, params=None, token=None, timeout=900):
    """PUT a body (bytes, or a path streamed from disk) with its Content-Length.

    A raw-socket client rather than requests: a server may refuse before the body is in
    (413, 416, 507, …), and http.client would then die on a broken pipe instead of reading
    the answer. This one stops sending as soon as the server has spoken."""
    if params:
        path += "?" + urlencode(params)
    h = {"Host": "127.0.0.1:%d" % d.port, "Content-Type": "application/octet-stream"}
    if token is not False:
        h["Authorization"] = "Bearer " + (token or d.token)
    f = None
    if isinstance(data, (str, Path)):
        f = open(data, "rb")
        length = os.fstat(f.fileno()).st_size
        chunks = iter(lambda: f.read(MiB), b"")
    else:
        length = len(data)
        view = memoryview(data)
        chunks = (view[i:i + MiB] for i in range(0, length, MiB))
    h["Content-Length"] = str(length)
    h.update(headers or {})
    head = "PUT %s HTTP/1.1\r\n%s\r\n" % (path, "".join("%s: %s\r\n" % kv for kv in h.items()))
    early = False
    try:
        with socket.create_connection(("127.0.0.1", d.port), timeout=timeout) as s:
            s.sendall(head.encode())
            for chunk in chunks:
                if select.select([s], [], [], 0)[0]:
                    early = True
                    break
                try:
                    s.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    early = True
                    break
            reply = _read_reply(s, timeout)
            reply.early = early
            return reply
    finally:
        if f:
            f.close()


def download(d, path, headers=None, token=None):
    """GET streamed: (response, sha256 hex of the body, body length)."""
    r = d.get(path, headers=headers, token=token, stream=True, timeout=900)
    h, n = hashlib.sha256(), 0
    for chunk in r.iter_content(4 * MiB):
        h.update(chunk)
        n += len(chunk)
    r.close()
    return r, h.hexdigest(), n


def detail(r):
    """The esdc error envelope {"detail": "…"}."""
    assert r.headers.get("Content-Type", "").startswith("application/json"), (r.status_code, r.text)
    body = r.json()
    assert isinstance(body.get("detail"), str) and body["detail"], body
    return body["detail"]


def native_error(r):
    body = r.json()
    err = body.get("error")
    assert isinstance(err, dict) and {"code", "message", "field"} <= set(err), body
    assert err["message"], body
    return err


def check_created(r, name, sha, size, fmt, vsize, vid):
    assert r.status_code == 201, (r.status_code, r.text)
    body = r.json()
    assert CREATED_KEYS <= set(body), body
    assert UUID_RE.match(body["uuid"]), body
    assert (body["name"], body["format"], body["virtual_size"], body["size"], body["sha256"],
            body["status"], body["volume_id"]) == (name, fmt, vsize, size, sha, "active", vid), body
    return body


def raw_put_headers(port, path, token, length, extra=""):
    return ("PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n%s\r\n"
            % (path, port, token, length, extra)).encode()


def declare_only(d, path, length, extra=""):
    """Send only the headers of a PUT announcing `length` bytes: the refusal must come from
    the declared length alone, before any byte. Returns a Reply (status None: no answer)."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=15) as s:
        s.sendall(raw_put_headers(d.port, path, d.token, length, extra))
        try:
            return _read_reply(s, 15)
        except socket.timeout:
            return Reply(None, CaseInsensitiveDict(), b"")


def vanish(d, path, total, body, reset=False, hold=0.0):
    """A client that announces `total` bytes, sends `body` (fewer) and goes away:
    a normal close (FIN) or, with reset, an RST."""
    s = socket.create_connection(("127.0.0.1", d.port), timeout=30)
    try:
        s.sendall(raw_put_headers(d.port, path, d.token, total))
        view = memoryview(body)
        for i in range(0, len(body), MiB):
            s.sendall(view[i:i + MiB])
        time.sleep(hold)
        if reset:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered early and closed; the checks below say whether it was right
    finally:
        s.close()


def staged_offset(d, name, method="GET"):
    """(status, X-Upload-Offset or None) of …/file of an image being uploaded."""
    r = d.request(method, esdc(name))
    off = r.headers.get("X-Upload-Offset")
    return r.status_code, (int(off) if off is not None else None), r


def wait_staged(d, name, timeout=30):
    """Wait until GET …/file says 409 with an X-Upload-Offset that stays put for 1 s."""
    last, since = None, None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, off, r = staged_offset(d, name)
        if status == 409 and off is not None:
            if off == last:
                if time.monotonic() - since >= 1.0:
                    return off, r
            else:
                last, since = off, time.monotonic()
        time.sleep(0.1)
    raise AssertionError("no stable X-Upload-Offset for %s (last %r): %s %s"
                         % (name, last, status, r.text))


def db_rows(d, sql, args=()):
    return d.db_rows(sql, args)


def rows_named(d, name):
    """(uuid, status, format) of every row with this name that is not 'deleted'."""
    return db_rows(d, "SELECT uuid, status, format FROM image WHERE name = ? AND status != 'deleted'",
                   (name,))


def assert_no_image(v, name):
    """The refusal left nothing: 404 on …/file, no row, nothing in images/ or .staging/."""
    r = v.d.get(esdc(name))
    assert r.status_code == 404, (name, r.status_code, r.text)
    detail(r)
    assert rows_named(v.d, name) == [], (name, rows_named(v.d, name))
    assert v.settled(lambda: (lambda l: l["images"] == [] and l[".staging"] == [])(v.leftovers())), \
        (name, v.leftovers())


def submit_task(d, typ, **params):
    """POST /tasks/create; returns the task id."""
    body = dict(type=typ, repeat="0", retries="0", **params)
    r = d.post("/tasks/create", json=body)
    assert r.status_code == 200, (typ, r.status_code, r.text)
    j = r.json()
    assert j["status"] == "OK" and j["message"], j
    return j["message"]


def run_task(d, typ, timeout=300, **params):
    """POST /tasks/create and poll /tasks/<id> until completed; returns the task view."""
    return wait_task(d, submit_task(d, typ, **params), typ, timeout)


def wait_task(d, tid, typ="", timeout=300):
    def done():
        t = d.get("/tasks/" + tid)
        assert t.status_code == 200, t.text
        t = t.json()
        return t if t["state"] == "completed" else None
    t = d.wait_for(done, timeout=timeout, interval=0.05, what="task %s %s" % (typ, tid))
    assert t["task_id"] == tid, t
    assert t["result"] in ("success", "error"), t
    return t


def qemu_info(path):
    r = subprocess.run([QEMU_IMG, "info", "--output=json", str(path)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def qemu_check(path):
    r = subprocess.run([QEMU_IMG, "check", str(path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "No errors were found" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------- fixtures: sources and corpus

@pytest.fixture(scope="module")
def big_source(tmp_path_factory):
    p = tmp_path_factory.mktemp("src") / "big.raw"
    return p, write_random(p, BIG, seed=256)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus") / "c"
    subprocess.run(["/usr/bin/python3", str(REPO / "tests" / "fixtures" / "make_corpus.py"), str(d)],
                   check=True)
    with open(d / "expect.json") as f:
        return d, json.load(f)["samples"]


# ================================================================ round trip

def test_256mib_round_trip_is_byte_exact_with_etag_sha256(vol, big_source):
    src, sha = big_source
    d = vol.d
    t0 = time.monotonic()
    r = put(d, esdc("big"), src, headers={"X-Checksum-Sha256": sha})
    up = time.monotonic() - t0
    body = check_created(r, "big", sha, BIG, "raw", BIG, vol.vid)
    uuid = body["uuid"]

    # the bytes on the volume, where the contract puts them, and nothing staged
    f = vol.image_path(uuid, "raw")
    assert f.is_file() and f.stat().st_size == BIG
    assert sha256_file(f) == sha
    want = {"images": ["%s.raw" % uuid], ".staging": [], "clones": []}
    assert vol.settled(lambda: vol.leftovers() == want), vol.leftovers()
    assert rows_named(d, "big") == [(uuid, "active", "raw")]

    # out again, through both namespaces
    for path in (esdc("big"), native(uuid)):
        t0 = time.monotonic()
        g, got, n = download(d, path)
        down = time.monotonic() - t0
        assert g.status_code == 200, (path, g.status_code)
        assert (n, got) == (BIG, sha), path
        assert g.headers["Content-Length"] == str(BIG), g.headers
        assert g.headers["ETag"] == '"%s"' % sha, g.headers
        assert g.headers["Accept-Ranges"] == "bytes", g.headers
        print("%s 256 MiB: up %.2f s (%.0f MiB/s), down %s %.2f s (%.0f MiB/s)" % (
            vol.kind, up, 256 / up, path, down, 256 / down))

    h = d.request("HEAD", esdc("big"))
    assert h.status_code == 200 and h.content == b""
    assert h.headers["Content-Length"] == str(BIG) and h.headers["ETag"] == '"%s"' % sha

    # a second PUT to an image whose data is active is a conflict, in each envelope
    r = put(d, esdc("big"), b"x" * 4096)
    assert r.status_code == 409, r.text
    detail(r)
    r = put(d, native(uuid), b"x" * 4096)
    assert r.status_code == 409, r.text
    native_error(r)
    assert sha256_file(f) == sha and vol.files(".staging") == []


def resident_bytes(path):
    """How many bytes of the file the page cache holds (util-linux fincore)."""
    r = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                       capture_output=True, text=True, check=True)
    return int(r.stdout.strip())


def test_an_upload_to_a_local_disk_goes_around_the_page_cache(local, tmp_path):
    # 24 MiB and 1,000 bytes: whole aligned buffers are written O_DIRECT, the short tail
    # through the page cache; nothing of the file is copied into cached pages on the way
    size = 24 * MiB + 1000
    src = tmp_path / "src.raw"
    sha = write_random(src, size, seed=7)
    r = put(local.d, esdc("direct"), src, headers={"X-Checksum-Sha256": sha})
    uuid = check_created(r, "direct", sha, size, "raw", size, "loc")["uuid"]
    f = local.image_path(uuid, "raw")
    cached = resident_bytes(f)  # before anything here reads it
    # what the inspection read of the head, and the tail's last pages, at most
    assert cached <= 4 * MiB, "%d of %d bytes in the page cache" % (cached, size)
    assert f.stat().st_size == size and sha256_file(f) == sha
    g, got, n = download(local.d, native(uuid))
    assert g.status_code == 200 and (n, got) == (size, sha)


def test_download_ranges_conditional_and_head(vol, tmp_path):
    src = tmp_path / "ranges.raw"
    size = 9 * MiB + 1234
    sha = write_random(src, size, seed=7)
    data = src.read_bytes()
    body = check_created(put(vol.d, esdc("ranges"), src), "ranges", sha, size, "raw", size, vol.vid)
    d, uuid = vol.d, body["uuid"]

    for path in (esdc("ranges"), native(uuid)):
        for a, b in ((0, 0), (0, 4095), (MiB - 7, 5 * MiB + 3), (size - 100, size - 1)):
            r = d.get(path, headers={"Range": "bytes=%d-%d" % (a, b)})
            assert r.status_code == 206, (path, a, b, r.status_code, r.text[:200])
            assert r.headers["Content-Range"] == "bytes %d-%d/%d" % (a, b, size), r.headers
            assert r.headers["Content-Length"] == str(b - a + 1)
            assert r.content == data[a:b + 1], (path, a, b)
        # a range running past the end is cut at the end (RFC 9110 § 14.1.1)
        r = d.get(path, headers={"Range": "bytes=%d-%d" % (size - 10, size + 1000)})
        assert r.status_code == 206 and r.content == data[size - 10:]
        assert r.headers["Content-Range"] == "bytes %d-%d/%d" % (size - 10, size - 1, size)

        for bad in ("bytes=%d-" % size, "bytes=%d-%d" % (size + 10, size + 20)):
            r = d.get(path, headers={"Range": bad})
            assert r.status_code == 416, (path, bad, r.status_code)
            assert r.headers.get("Content-Range") == "bytes */%d" % size, r.headers

        r = d.get(path, headers={"If-None-Match": '"%s"' % sha})
        assert r.status_code == 304 and r.content == b"", (path, r.status_code)
        assert r.headers["ETag"] == '"%s"' % sha
        r = d.get(path, headers={"If-None-Match": '"%s"' % ("0" * 64)})
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha

    r = d.get(native("00000000-0000-4000-8000-000000000000"))
    assert r.status_code == 404
    native_error(r)
    r = d.get(esdc("nosuchimage"))
    assert r.status_code == 404
    detail(r)


@pytest.mark.parametrize("extra", [{"sendfile": False}, {"sendfile": True},
                                   {"sendfile": True, "limits": {"readahead_memory": 0}}],
                         ids=["reads", "sendfile", "sendfile-no-readahead"])
def test_download_open_ended_and_suffix_ranges(make_local, tmp_path, extra):
    """What curl -C - and players send: bytes=a- and bytes=-n; by sendfile (the default)
    and by reads (config "sendfile": false). A sparse image is read either way where a
    range holds a hole (sendfile would read the hole's zeros): its bytes are the same,
    also when no read-ahead block can be had (the budget spent: each step is read into
    the download's own small buffer)."""
    local = make_local(extra=extra)
    src = tmp_path / "open.raw"
    size = 3 * MiB + 17
    sha = write_random(src, size, seed=8)
    data = src.read_bytes()
    check_created(put(local.d, esdc("open"), src), "open", sha, size, "raw", size, "loc")
    r = local.d.get(esdc("open"), headers={"Range": "bytes=%d-" % (2 * MiB)})
    assert r.status_code == 206 and r.content == data[2 * MiB:]
    assert r.headers["Content-Range"] == "bytes %d-%d/%d" % (2 * MiB, size - 1, size)
    r = local.d.get(esdc("open"), headers={"Range": "bytes=-1000"})
    assert r.status_code == 206 and r.content == data[-1000:]
    assert r.headers["Content-Range"] == "bytes %d-%d/%d" % (size - 1000, size - 1, size)
    r = local.d.get(esdc("open"))
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha

    holey = tmp_path / "holey.raw"
    sha = write_random(holey, 24 * MiB, seed=3, holes=True)
    data = holey.read_bytes()
    with open(holey, "rb") as f:
        first = os.lseek(f.fileno(), 0, os.SEEK_DATA)
    assert first < 24 * MiB and data[first:first + MiB] != bytes(MiB)
    check_created(put(local.d, esdc("holey"), holey), "holey", sha, 24 * MiB, "raw", 24 * MiB,
                  "loc")
    r = local.d.get(esdc("holey"))
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
    # inside the first data piece, across its end into the hole, and inside a hole
    for a, b in ((first + 10, first + 5000), (first + MiB - 100, first + MiB + 100),
                 (first + MiB + 10, first + 2 * MiB)):
        r = local.d.get(esdc("holey"), headers={"Range": "bytes=%d-%d" % (a, b)})
        assert r.status_code == 206 and r.content == data[a:b + 1], (a, b, r.status_code)


def test_upload_needs_an_admin_token_and_readers_may_download(local, tmp_path):
    d = local.d
    reader = d.make_token("reader")
    admin = d.make_token("admin")
    r = put(d, esdc("authz"), b"\x01" * 4096, token=False)
    assert r.status_code == 401
    detail(r)
    r = put(d, esdc("authz"), b"\x01" * 4096, token=reader)
    assert r.status_code == 403
    detail(r)
    assert rows_named(d, "authz") == [] and local.files(".staging") == []
    sha = hashlib.sha256(b"\x01" * 4096).hexdigest()
    check_created(put(d, esdc("authz"), b"\x01" * 4096, token=admin), "authz", sha, 4096, "raw",
                  4096, "loc")
    r = d.get(esdc("authz"), token=reader)
    assert r.status_code == 200 and r.content == b"\x01" * 4096


def test_upload_to_a_named_volume_and_declared_format(daemon_factory, tmp_path):
    """?volume_id=V picks the volume (default: the first volume of the first storage);
    ?format=F declares the format, and a mismatch is refused."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    d = daemon_factory({"probe_ttl_ms": 200, "storages": [{"id": STORAGE, "volumes": [
        {"id": "va", "kind": "external", "mount_point": str(a)},
        {"id": "vb", "kind": "external", "mount_point": str(b)}]}]})
    d.wait_for(lambda: all(v["status"] == "ok" for v in
                           d.get("/imagestorages/" + STORAGE).json()["external_volumes"]),
               what="volumes ok")
    data = bytes(range(256)) * 64
    sha = hashlib.sha256(data).hexdigest()
    first = check_created(put(d, esdc("dflt"), data), "dflt", sha, len(data), "raw", len(data), "va")
    assert (a / "images" / ("%s.raw" % first["uuid"])).is_file()
    second = check_created(put(d, esdc("onb"), data, params={"volume_id": "vb"}), "onb", sha,
                           len(data), "raw", len(data), "vb")
    assert (b / "images" / ("%s.raw" % second["uuid"])).is_file()
    check_created(put(d, esdc("declared"), data, params={"format": "raw"}), "declared", sha,
                  len(data), "raw", len(data), "va")
    r = put(d, esdc("mismatch"), data, params={"format": "qcow2"})
    assert r.status_code == 400, r.text
    assert "format_mismatch" in detail(r)
    assert rows_named(d, "mismatch") == []
    r = put(d, esdc("novol"), data, params={"volume_id": "nosuchvolume"})
    assert r.status_code in (404, 412), r.text
    detail(r)
    assert rows_named(d, "novol") == []


# ================================================================ resume

def test_resume_after_the_client_drops_the_connection(vol, tmp_path):
    src = tmp_path / "resume.raw"
    total = 64 * MiB + 4096 + 77
    sha = write_random(src, total, seed=64)
    data = src.read_bytes()
    d = vol.d
    half = total // 2

    vanish(d, esdc("resume"), total, data[:half])
    staged, r = wait_staged(d, "resume")
    detail(r)
    assert 0 < staged <= half, (staged, half)
    status, off, h = staged_offset(d, "resume", "HEAD")
    assert (status, off) == (409, staged), h.headers
    assert rows_named(d, "resume")[0][1] == "saving"
    assert vol.files("images") == []
    print("%s: client sent %d of %d bytes and left; %d staged" % (vol.kind, half, total, staged))

    # a resume that does not start where the staged bytes end is refused, and says where
    wrong = staged + 512 if staged + 512 < total else staged - 512
    r = put(d, esdc("resume"), data[wrong:],
            headers={"Content-Range": "bytes %d-%d/%d" % (wrong, total - 1, total)})
    if r.status_code != 416:
        print(d.log()[-6000:])
    assert r.status_code == 416, (r.status_code, r.text)
    assert r.headers.get("X-Upload-Offset") == str(staged), r.headers
    assert staged_offset(d, "resume")[:2] == (409, staged)

    # the rest, from exactly there, completes the image: checksum over the whole of it
    r = put(d, esdc("resume"), data[staged:],
            headers={"Content-Range": "bytes %d-%d/%d" % (staged, total - 1, total),
                     "X-Checksum-Sha256": sha})
    body = check_created(r, "resume", sha, total, "raw", total, vol.vid)
    g, got, n = download(d, esdc("resume"))
    assert (g.status_code, n, got) == (200, total, sha)
    assert sha256_file(vol.image_path(body["uuid"], "raw")) == sha
    assert vol.settled(lambda: vol.files(".staging") == []), vol.files(".staging")


def test_ranged_parts_202_then_complete_and_restart_without_range(local, tmp_path):
    src = tmp_path / "parts.raw"
    total = 24 * MiB + 5
    sha = write_random(src, total, seed=24)
    data = src.read_bytes()
    d = local.d
    cuts = [0, 5 * MiB, 5 * MiB + 1, 17 * MiB, total]
    for a, b in zip(cuts, cuts[1:-1]):
        r = put(d, esdc("parts"), data[a:b], headers={"Content-Range": "bytes %d-%d/%d" % (a, b - 1, total)})
        assert r.status_code == 202, (a, b, r.status_code, r.text)
        assert r.json() == {"status": "saving", "staged": b}, r.json()
        assert staged_offset(d, "parts")[:2] == (409, b)
    # a part that overlaps what is staged is not a resume
    r = put(d, esdc("parts"), data[MiB:2 * MiB],
            headers={"Content-Range": "bytes %d-%d/%d" % (MiB, 2 * MiB - 1, total)})
    assert r.status_code == 416 and r.headers.get("X-Upload-Offset") == str(17 * MiB), r.text
    a = cuts[-2]
    r = put(d, esdc("parts"), data[a:], headers={"Content-Range": "bytes %d-%d/%d" % (a, total - 1, total),
                                                "Digest": digest_header(sha)})
    check_created(r, "parts", sha, total, "raw", total, "loc")
    assert download(d, esdc("parts"))[1] == sha

    # a PUT without Content-Range to a saving image starts over from byte 0
    other = tmp_path / "other.raw"
    osha = write_random(other, 6 * MiB, seed=6)
    r = put(d, esdc("again"), read_at(src, 0, 4 * MiB),
            headers={"Content-Range": "bytes 0-%d/%d" % (4 * MiB - 1, 6 * MiB)})
    assert r.status_code == 202 and r.json() == {"status": "saving", "staged": 4 * MiB}
    check_created(put(d, esdc("again"), other), "again", osha, 6 * MiB, "raw", 6 * MiB, "loc")
    assert download(d, esdc("again"))[1] == osha
    assert local.files(".staging") == []


def test_staged_upload_expires(make_local, tmp_path):
    """staging_expiry_s: an abandoned upload's bytes and row go; the name is free again.
    (The janitor runs about once a minute, so this waits up to ~90 s.)"""
    v = make_local("2G", extra={"staging_expiry_s": 2})
    d = v.d
    data = os.urandom(3 * MiB)
    r = put(d, esdc("stale"), data[:MiB], headers={"Content-Range": "bytes 0-%d/%d" % (MiB - 1, len(data))})
    assert r.status_code == 202, r.text
    assert v.files(".staging") != []

    def gone():
        status, off, _ = staged_offset(d, "stale")
        return v.files(".staging") == [] and (status == 404 or (status == 409 and off == 0))
    d.wait_for(gone, timeout=100, interval=1, what="expired upload removed")
    assert [s for _, s, _ in rows_named(d, "stale")] in ([], ["saving"])
    r = put(d, esdc("stale"), data)
    check_created(r, "stale", hashlib.sha256(data).hexdigest(), len(data), "raw", len(data), "loc")


# ================================================================ refusals

def test_wrong_checksum_is_refused_and_leaves_nothing(vol, tmp_path):
    src = tmp_path / "sum.raw"
    size = 20 * MiB + 3
    sha = write_random(src, size, seed=20)
    wrong = hashlib.sha256(b"something else").hexdigest()
    for name, hdr in (("sumhex", {"X-Checksum-Sha256": wrong}),
                      ("sumdigest", {"Digest": digest_header(wrong)})):
        r = put(vol.d, esdc(name), src, headers=hdr)
        assert r.status_code == 400, (name, r.status_code, r.text)
        msg = detail(r)
        assert sha in msg and wrong in msg, msg  # names both sums
        assert_no_image(vol, name)
    # the right sum in either header is accepted
    check_created(put(vol.d, esdc("sumhex"), src, headers={"X-Checksum-Sha256": sha}), "sumhex",
                  sha, size, "raw", size, vol.vid)
    check_created(put(vol.d, esdc("sumdigest"), src, headers={"Digest": digest_header(sha)}),
                  "sumdigest", sha, size, "raw", size, vol.vid)


def hostile_samples(samples):
    """Every refused sample that a daemon with the default limits can be given."""
    out = []
    for s in samples:
        if s["verdict"] != "refuse" or s["max_virtual_size"]:
            continue  # the cap case has its own test (a daemon with a small max_image_size)
        out.append(s)
    return out


def test_every_hostile_corpus_sample_is_refused_with_its_reason(vol, corpus):
    d, samples = corpus
    hostile = hostile_samples(samples)
    assert len(hostile) >= 100
    wrong = []
    for i, s in enumerate(hostile):
        name = "hostile%03d" % i
        p = d / s["name"]
        size = os.path.getsize(p)
        params = {"format": s["declared"]} if s["declared"] else None
        if size > 64 * MiB:
            # raw_2t.img: 2 TiB; the declared length alone must be refused
            r = declare_only(vol.d, esdc(name), size)
        else:
            r = put(vol.d, esdc(name), p, params=params)
        status, text = r.status_code, r.text
        want = 413 if s["reason"] == "virtual_size_over_cap" else 400
        try:
            msg = json.loads(text)["detail"]
        except (ValueError, KeyError, TypeError):
            msg = None
        if status != want or not isinstance(msg, str) or (want == 400 and s["reason"] not in msg):
            wrong.append("%s (declared %s): got %s %s, want %s with '%s'" % (
                s["name"], s["declared"], status, text[:300], want, s["reason"]))
            continue
        r = vol.d.get(esdc(name))
        left = vol.settled(lambda: (lambda l: l if not (l["images"] or l[".staging"]) else None)(
            vol.leftovers())) or vol.leftovers()
        if r.status_code != 404 or rows_named(vol.d, name) or left["images"] or left[".staging"]:
            wrong.append("%s: refused but left GET %s, rows %r, files %r" % (
                s["name"], r.status_code, rows_named(vol.d, name), left))
    assert not wrong, "%d of %d hostile samples:\n%s" % (len(wrong), len(hostile), "\n".join(wrong))
    assert vol.settled(lambda: vol.leftovers() == {"images": [], ".staging": [], "clones": []}), \
        vol.leftovers()
    assert vol.d.get("/v1/health").status_code == 200


def test_accepted_corpus_samples_keep_the_detected_format(local, corpus):
    """raw, qcow2, vmdk, vpc, vhdx, iso: the 201 says what the inspector found, the file is
    images/<uuid>.<fmt>, and it comes back byte for byte."""
    d, samples = corpus
    seen, formats, wrong = set(), set(), []
    for s in samples:
        if s["verdict"] != "accept" or s["max_virtual_size"] or s["name"] in seen:
            continue
        p = d / s["name"]
        if os.path.getsize(p) > 16 * MiB:
            continue  # a sparse GiB of zeros proves nothing more here
        seen.add(s["name"])
        name = "ok%03d" % len(seen)
        sha = sha256_file(p)
        size = os.path.getsize(p)
        params = {"format": s["declared"]} if s["declared"] else None
        r = put(local.d, esdc(name), p, params=params)
        if r.status_code != 201:
            wrong.append("%s: %s %s" % (s["name"], r.status_code, r.text[:300]))
            continue
        b = r.json()
        got = (b.get("format"), b.get("virtual_size"), b.get("size"), b.get("sha256"))
        if got != (s["format"], s["virtual_size"], size, sha):
            wrong.append("%s: got %r, want %r" % (s["name"], got, (s["format"], s["virtual_size"], size, sha)))
            continue
        formats.add(s["format"])
        f = local.image_path(b["uuid"], s["format"])
        if not f.is_file() or sha256_file(f) != sha or download(local.d, esdc(name))[1] != sha:
            wrong.append("%s: stored or served bytes differ" % s["name"])
    assert not wrong, "\n".join(wrong)
    assert {"raw", "qcow2", "vmdk", "vpc", "vhdx", "iso"} <= formats, formats
    assert local.files(".staging") == []


def test_declared_length_over_free_space_is_507(make_local, tmp_path):
    v = make_local("300M")
    st = os.statvfs(v.root)
    free = st.f_bavail * st.f_frsize
    for length in (free + MiB, GiB):
        r = declare_only(v.d, esdc("toolarge"), length)
        assert r.status_code == 507, (length, r.status_code, r.text[:300])
        detail(r)
        assert_no_image(v, "toolarge")
    # curl -T sends "Expect: 100-continue": the refusal must come instead of the 100,
    # before the body is sent
    sparse = tmp_path / "sparse-1g.raw"
    with open(sparse, "wb") as f:
        f.truncate(GiB)
    out = tmp_path / "curl.out"
    r = subprocess.run(["curl", "-sS", "-o", str(out), "-w", "%{http_code} %{size_upload}", "-T",
                        str(sparse), "-H", "Authorization: Bearer " + v.d.token,
                        v.d.url(esdc("toolarge"))], capture_output=True, text=True, timeout=120)
    code, sent = r.stdout.split()
    assert code == "507", (r.stdout, r.stderr, out.read_text())
    assert float(sent) < 64 * MiB, "curl sent %s bytes before the refusal" % sent
    assert json.loads(out.read_text())["detail"]
    assert_no_image(v, "toolarge")
    # what fits goes in
    data = os.urandom(32 * MiB)
    check_created(put(v.d, esdc("fits"), data), "fits", hashlib.sha256(data).hexdigest(),
                  len(data), "raw", len(data), "loc")


def test_over_max_image_size_is_413(make_local, corpus):
    cap = 512 * MiB
    v = make_local("4G", extra={"limits": {"max_image_size": cap}})
    d, samples = corpus
    # by the declared length, before any byte
    r = declare_only(v.d, esdc("longbody"), cap + MiB)
    assert r.status_code == 413, (r.status_code, r.text[:300])
    detail(r)
    assert_no_image(v, "longbody")
    # by the virtual size the inspector reads: a 192 KiB qcow2 of 1 GiB
    s = next(s for s in samples if s["max_virtual_size"] and s["reason"] == "virtual_size_over_cap")
    r = put(v.d, esdc("bigvirtual"), d / s["name"])
    assert r.status_code == 413, (r.status_code, r.text)
    detail(r)
    assert_no_image(v, "bigvirtual")
    # the same qcow2 under the cap is fine: a 64 MiB one
    small = d / "qcow2_cluster512.qcow2"
    b = check_created(put(v.d, esdc("smallvirtual"), small), "smallvirtual", sha256_file(small),
                      os.path.getsize(small), "qcow2", 64 * MiB, "loc")
    assert v.image_path(b["uuid"], "qcow2").is_file()


def test_vanishing_clients_leave_no_active_image_and_the_daemon_keeps_serving(local, big_source):
    src, sha = big_source
    d = local.d
    part = os.urandom(12 * MiB)
    clients = [("gone_fin", 40 * MiB, part, False), ("gone_rst", 40 * MiB, part, True),
               ("gone_headers", 40 * MiB, b"", False), ("gone_rst_early", 40 * MiB, part[:1000], True)]
    result = {}

    def good_upload():
        result["r"] = put(d, esdc("meanwhile"), src, headers={"X-Checksum-Sha256": sha})
    t = threading.Thread(target=good_upload)
    t.start()
    threads = [threading.Thread(target=vanish, args=(d, esdc(n), total, body, rst))
               for n, total, body, rst in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    t.join()
    check_created(result["r"], "meanwhile", sha, BIG, "raw", BIG, "loc")

    time.sleep(1)
    assert d.proc.poll() is None, d.log()[-4000:]
    assert d.get("/v1/health").status_code == 200
    for n, *_ in clients:
        r = d.get(esdc(n))
        assert r.status_code in (404, 409), (n, r.status_code)  # never 200: nothing went active
        assert all(s != "active" for _, s, _ in rows_named(d, n)), rows_named(d, n)
    images = local.files("images")
    assert len(images) == 1 and images[0].startswith(result["r"].json()["uuid"]), images
    # and the same names still work, at once: a client that has gone holds nothing
    data = os.urandom(MiB)
    for n, *_ in clients:
        r = put(d, esdc(n), data)
        if r.status_code == 409:  # say for how long the vanished request kept the image
            t0 = time.monotonic()
            while r.status_code == 409 and time.monotonic() - t0 < 45:
                time.sleep(0.5)
                r = put(d, esdc(n), data)
            lines = [x for x in d.log().splitlines() if esdc(n) in x and "aborted" in x]
            raise AssertionError("%s: PUT after the client vanished got 409 (busy) for %.1f s "
                                 "more, then %s; the vanished request in the log: %r" % (
                                     n, time.monotonic() - t0, r.status_code, lines[:1]))
        check_created(r, n, hashlib.sha256(data).hexdigest(), MiB, "raw", MiB, "loc")
    assert local.files(".staging") == []


# ================================================================ clones

def image_row(d, name):
    rows = rows_named(d, name)
    assert len(rows) == 1 and rows[0][1] == "active", rows
    return rows[0]


def check_clone_file(v, clone_id, uuid, fmt, vsize):
    path = v.root / "clones" / ("%s.qcow2" % clone_id)
    assert path.is_file(), v.leftovers()
    info = qemu_info(path)
    assert info["format"] == "qcow2" and info["virtual-size"] == vsize, info
    assert info["backing-filename"] == "../images/%s.%s" % (uuid, fmt), info
    assert info.get("backing-filename-format") == fmt, info
    assert os.path.realpath(info["full-backing-filename"]) == os.path.realpath(v.image_path(uuid, fmt))
    assert path.stat().st_size < 4 * MiB  # an overlay, not a copy
    qemu_check(path)
    return path


def storage_entries(v):
    info = v.info()
    return info["images"], info["clones"]


def clone_lifecycle_end(v, name, uuid, fmt, clone_ids):
    """Deleting an image with clones is refused; after its clones go it can go."""
    d = v.d
    t = run_task(d, "image_delete", image_id=name)
    assert t["result"] == "error" and t["result_msg"], t
    assert v.image_path(uuid, fmt).is_file()
    assert d.request("HEAD", esdc(name)).status_code == 200
    for i, cid in enumerate(clone_ids):
        t = run_task(d, "clone_delete", clone_id=cid)
        assert t["result"] == "success", t
        assert v.settled(lambda: not (v.root / "clones" / ("%s.qcow2" % cid)).exists())
        assert {c["clone_id"] for c in storage_entries(v)[1]} == set(clone_ids[i + 1:])
        if i + 1 < len(clone_ids):  # one clone left is still one too many
            t = run_task(d, "image_delete", image_id=name)
            assert t["result"] == "error", t
    t = run_task(d, "image_delete", image_id=name)
    assert t["result"] == "success", t
    assert v.settled(lambda: not v.image_path(uuid, fmt).exists())
    assert v.settled(lambda: v.leftovers() == {"images": [], ".staging": [], "clones": []}), \
        v.leftovers()
    assert d.get(esdc(name)).status_code == 404
    assert rows_named(d, name) == []
    assert storage_entries(v) == ([], [])


SPARSE_PATTERNS = ((0, MiB), (50 * GiB + 12345, 4 * KiB), (100 * GiB - 64 * KiB, 64 * KiB))


def make_sparse_100g(v, name):
    """image_create of a 100 GiB raw; some data written into its file so that reading the
    clone proves more than zeros (a test-only write behind the daemon's back: the image was
    created empty, so no checksum is invalidated)."""
    d = v.d
    t0 = time.monotonic()
    t = run_task(d, "image_create", image_id=name, volume_id=v.vid, image_storage_id=STORAGE,
                 size_mb=102400, format="raw")
    assert t["result"] == "success", t
    print("%s image_create 100 GiB raw: %.0f ms" % (v.kind, (time.monotonic() - t0) * 1e3))
    uuid, _, fmt = image_row(d, name)
    assert fmt == "raw"
    base = v.image_path(uuid, "raw")
    st = base.stat()
    assert st.st_size == 100 * GiB and st.st_blocks * 512 < 64 * MiB, (st.st_size, st.st_blocks)
    rng = random.Random(100)
    patterns = []
    with open(base, "r+b") as f:
        for off, n in SPARSE_PATTERNS:
            blob = rng.randbytes(n)
            f.seek(off)
            f.write(blob)
            patterns.append((off, blob))
        f.flush()
        os.fsync(f.fileno())
    return uuid, base, patterns


def test_clone_of_a_100g_sparse_raw_image(make_local, tmp_path):
    v = make_local("160G")
    d = v.d
    uuid, base, patterns = make_sparse_100g(v, "big100")
    imgs, _ = storage_entries(v)
    assert {"image_id": "big100", "volume_id": "loc", "image_storage_id": STORAGE,
            "size_mb": 102400} == {k: x for k, x in imgs[0].items() if k != "guest_id"}, imgs
    # served by HTTP too, offsets past 4 GiB included
    h = d.request("HEAD", esdc("big100"))
    assert h.status_code == 200 and h.headers["Content-Length"] == str(100 * GiB), h.headers
    for off, blob in patterns + [(77 * GiB, bytes(4096))]:
        r = d.get(esdc("big100"), headers={"Range": "bytes=%d-%d" % (off, off + len(blob) - 1)})
        assert r.status_code == 206 and r.content == blob, (off, r.status_code)
        assert r.headers["Content-Range"] == "bytes %d-%d/%d" % (off, off + len(blob) - 1, 100 * GiB)

    t0 = time.monotonic()
    t = run_task(d, "guest_clone", image_id="big100", guest_id="vm1", clone_id="big100_vm1")
    print("guest_clone of 100 GiB raw: %.1f ms from POST to completed" % ((time.monotonic() - t0) * 1e3))
    assert t["result"] == "success", t
    clone = check_clone_file(v, "big100_vm1", uuid, "raw", 100 * GiB)
    _, clones = storage_entries(v)
    assert clones == [{"clone_id": "big100_vm1", "image_id": "big100", "guest_id": "vm1"}], clones

    # a VM-style read of every byte: convert through the backing chain (holes stay holes)
    flat = tmp_path / "flat.raw"
    t0 = time.monotonic()
    subprocess.run([QEMU_IMG, "convert", "-O", "raw", str(clone), str(flat)], check=True, timeout=600)
    print("qemu-img convert of the 100 GiB clone: %.1f s" % (time.monotonic() - t0))
    assert flat.stat().st_size == 100 * GiB
    for off, blob in patterns:
        assert read_at(flat, off, len(blob)) == blob, off
    rng = random.Random(5)
    for _ in range(16):  # and some places in between
        off = rng.randrange(0, 100 * GiB - MiB)
        assert read_at(flat, off, 65536) == read_at(base, off, 65536), off
    cmp = subprocess.run([QEMU_IMG, "compare", "-f", "raw", "-F", "raw", str(flat), str(base)],
                         capture_output=True, text=True, timeout=600)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    cmp = subprocess.run([QEMU_IMG, "compare", "-f", "qcow2", "-F", "raw", str(clone), str(base)],
                         capture_output=True, text=True, timeout=600)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    flat.unlink()

    # the guest writes into its clone, never into the base
    before = [read_at(base, off, len(blob)) for off, blob in patterns]
    subprocess.run([QEMU_IO, "-f", "qcow2", "-c", "write -P 0x77 0 1M", "-c",
                    "write -P 0x78 %d 64k" % (100 * GiB - 64 * KiB), str(clone)],
                   check=True, capture_output=True, timeout=120)
    qemu_check(clone)
    assert [read_at(base, off, len(blob)) for off, blob in patterns] == before

    clone_lifecycle_end(v, "big100", uuid, "raw", ["big100_vm1"])


def test_clone_of_a_1g_uploaded_image(local, tmp_path):
    src = tmp_path / "one.raw"
    sha = write_random(src, GiB, seed=1, holes=True)
    d = local.d
    body = check_created(put(d, esdc("one"), src, headers={"X-Checksum-Sha256": sha}), "one", sha,
                         GiB, "raw", GiB, "loc")
    uuid = body["uuid"]
    for guest in ("vm1", "vm2"):
        t = run_task(d, "guest_clone", image_id="one", guest_id=guest, clone_id="one_" + guest)
        assert t["result"] == "success", t
    _, clones = storage_entries(local)
    assert sorted(clones, key=lambda c: c["clone_id"]) == [
        {"clone_id": "one_vm1", "image_id": "one", "guest_id": "vm1"},
        {"clone_id": "one_vm2", "image_id": "one", "guest_id": "vm2"}], clones
    # a clone id that exists is refused
    t = run_task(d, "guest_clone", image_id="one", guest_id="vm3", clone_id="one_vm1")
    assert t["result"] == "error" and t["result_msg"], t
    # a burst of clones of one image, submitted without waiting, runs on all workers at
    # once: every one is made; of two creates of one clone id, one wins
    burst = [submit_task(d, "guest_clone", image_id="one", guest_id="b%d" % i,
                         clone_id="one_b%d" % i) for i in range(6)]
    dup = [submit_task(d, "guest_clone", image_id="one", guest_id="dup", clone_id="one_dup")
           for _ in range(2)]
    for tid in burst:
        t = wait_task(d, tid, "guest_clone")
        assert t["result"] == "success", t
    dups = [wait_task(d, tid, "guest_clone") for tid in dup]
    assert sorted(t["result"] for t in dups) == ["error", "success"], dups
    lost = [t for t in dups if t["result"] == "error"][0]["result_msg"]
    assert "one_dup" in lost and ("already exists" in lost or "busy" in lost), lost
    burst_ids = ["one_b%d" % i for i in range(6)] + ["one_dup"]
    for cid in burst_ids:
        check_clone_file(local, cid, uuid, "raw", GiB)
    assert local.leftovers()[".staging"] == [], local.leftovers()
    for cid in ("one_vm1", "one_vm2"):
        clone = check_clone_file(local, cid, uuid, "raw", GiB)
        flat = tmp_path / ("%s.raw" % cid)
        subprocess.run([QEMU_IMG, "convert", "-O", "raw", str(clone), str(flat)], check=True,
                       timeout=600)
        assert sha256_file(flat) == sha, cid
        flat.unlink()
    clone_lifecycle_end(local, "one", uuid, "raw", ["one_vm1", "one_vm2"] + burst_ids)


def test_clone_on_gluster(gluster):
    """The same overlay on a Gluster volume: reached by qemu through the FUSE mount (the
    relative backing path resolves there) and through gluster:// (libgfapi)."""
    v = gluster
    uuid, base, patterns = make_sparse_100g(v, "gbig")
    t = run_task(v.d, "guest_clone", image_id="gbig", guest_id="vm1", clone_id="gbig_vm1")
    assert t["result"] == "success", t
    clone = check_clone_file(v, "gbig_vm1", uuid, "raw", 100 * GiB)
    # VM-style reads through the chain at the places that hold data, and some holes
    cmds = []
    for off, blob in patterns:
        cmds += ["-c", "read -v %d 16" % off]
    r = subprocess.run([QEMU_IO, "-r", "-f", "qcow2", *cmds, str(clone)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for off, blob in patterns:
        want = " ".join("%02x" % b for b in blob[:16])
        assert want in r.stdout, (off, want, r.stdout)
    r = subprocess.run([QEMU_IO, "-r", "-f", "qcow2", "-c", "read -P 0 %d 1M" % (30 * GiB),
                        "-c", "read -P 0 %d 1M" % (99 * GiB), str(clone)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "Pattern verification failed" not in r.stdout, r.stdout + r.stderr
    url = "gluster://%s/%s/clones/gbig_vm1.qcow2" % (socket.gethostname(), GVOL)
    r = subprocess.run([QEMU_IMG, "info", "--output=json", url], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["backing-filename"] == "../images/%s.raw" % uuid
    clone_lifecycle_end(v, "gbig", uuid, "raw", ["gbig_vm1"])


# ================================================================ more of the data path

def test_enospc_in_the_middle_of_an_upload_fails_cleanly(make_local, tmp_path):
    """No Content-Length (chunked), so no space check can refuse it up front: the write
    itself runs out of space; the answer is 507, and nothing of the image stays."""
    v = make_local("300M")
    d = v.d
    chunk = os.urandom(4 * MiB)

    def body():
        for _ in range(100):  # 400 MiB, more than the volume holds
            yield chunk
    r = requests.put(d.url(esdc("toobig")), data=body(), timeout=600,
                     headers={"Authorization": "Bearer " + d.token})
    assert r.status_code == 507, (r.status_code, r.text)
    assert "No space left on device" in detail(r), r.text
    assert_no_image(v, "toobig")
    small = os.urandom(MiB)
    r = put(d, esdc("fits"), small)
    check_created(r, "fits", hashlib.sha256(small).hexdigest(), MiB, "raw", MiB, "loc")


def test_reflink_clone_mode_shares_blocks_with_a_raw_image(make_local, tmp_path):
    v = make_local("2G", extra={"clone_mode": "reflink"})
    d = v.d
    src = tmp_path / "base.raw"
    sha = write_random(src, 32 * MiB, 7)
    body = check_created(put(d, esdc("rbase"), src), "rbase", sha, 32 * MiB, "raw", 32 * MiB, "loc")
    t = run_task(d, "guest_clone", image_id="rbase", guest_id="g1", clone_id="rclone")
    assert t["result"] == "success", t
    clone = v.root / "clones" / "rclone.raw"
    assert clone.is_file() and not (v.root / "clones" / "rclone.qcow2").exists(), v.leftovers()
    assert sha256_file(clone) == sha
    fiemap = subprocess.run(["xfs_io", "-r", "-c", "fiemap -v", str(clone)], capture_output=True,
                            text=True, check=True).stdout
    flags = [int(line.split()[-1], 16) for line in fiemap.splitlines()[2:] if line.strip()]
    assert flags and all(f & 0x2000 for f in flags), fiemap  # FIEMAP_EXTENT_SHARED
    clones = v.info()["clones"]
    assert clones == [{"clone_id": "rclone", "image_id": "rbase", "guest_id": "g1"}], clones
    # a qcow2 image still gets an overlay in this mode
    q = tmp_path / "q.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(q), "64M"], check=True)
    check_created(put(d, esdc("qbase"), q), "qbase", sha256_file(q), q.stat().st_size, "qcow2",
                  64 * MiB, "loc")
    t = run_task(d, "guest_clone", image_id="qbase", guest_id="g2", clone_id="qclone")
    assert t["result"] == "success", t
    assert (v.root / "clones" / "qclone.qcow2").is_file(), v.leftovers()
    assert body["uuid"]


def v_settled(fn, seconds=5):
    """Through FUSE another client's changes may show up to ~1 s late."""
    deadline = time.monotonic() + seconds
    while not fn() and time.monotonic() < deadline:
        time.sleep(0.2)
    return fn()


def test_image_copy_between_a_local_and_a_gluster_volume(gluster_env, daemon_factory, tmp_path):
    gd, fuse = gluster_env
    for sub in ("images", "clones", ".staging"):
        shutil.rmtree(fuse / sub, ignore_errors=True)
    with LoopDisk(tmp_path / "disk", "2G") as disk:
        disk.mkfs_xfs()
        mnt = disk.mount(tmp_path / "mnt")
        d = daemon_factory({"probe_ttl_ms": 200, "storages": [{"id": STORAGE, "volumes": [
            {"id": "loc", "kind": "local", "mount_point": str(mnt)},
            {"id": "g", "kind": "gluster", "server": gd.hostname, "volume": GVOL}]}]})
        try:
            def ready():
                info = d.get("/imagestorages/" + STORAGE).json()
                return all(v["status"] == "ok" for v in info["volumes"] + info["gluster_volumes"])
            d.wait_for(ready, timeout=60, what="both volumes ok")
            src = tmp_path / "holey.raw"
            sha = write_random(src, 48 * MiB, 11, holes=True)
            check_created(put(d, esdc("here"), src, params={"volume_id": "loc"}), "here", sha,
                          48 * MiB, "raw", 48 * MiB, "loc")
            t = run_task(d, "image_copy", image_id="there", volume_id="g", image_storage_id=STORAGE,
                         source_image_id="here", source_volume_id="loc")
            assert t["result"] == "success" and t["progress"] == 100, t
            r = d.get(esdc("there"), timeout=120)
            assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == sha
            assert r.headers["ETag"] == '"%s"' % sha
            t = run_task(d, "image_copy", image_id="back", volume_id="loc",
                         image_storage_id=STORAGE, source_image_id="there", source_volume_id="g")
            assert t["result"] == "success", t
            back = [p for p in (mnt / "images").iterdir() if p.name != "%s.raw" % rows_named(
                d, "here")[0][0]]
            assert len(back) == 1 and sha256_file(back[0]) == sha, back
            # a sparse image crosses backends as holes: 4 GiB of nothing stays nothing
            t = run_task(d, "image_create", image_id="empty4g", volume_id="loc",
                         image_storage_id=STORAGE, size_mb=4096, format="raw")
            assert t["result"] == "success", t
            t = run_task(d, "image_copy", image_id="empty4g-g", volume_id="g",
                         image_storage_id=STORAGE, source_image_id="empty4g",
                         source_volume_id="loc")
            assert t["result"] == "success", t
            uuid = rows_named(d, "empty4g-g")[0][0]
            path = fuse / "images" / ("%s.raw" % uuid)
            assert v_settled(lambda: path.is_file()), list((fuse / "images").iterdir())
            assert path.stat().st_size == 4 * GiB and path.stat().st_blocks * 512 < 64 * MiB
        finally:
            d.stop()
