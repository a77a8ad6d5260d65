"""The Cinder dialect, judged by the real, unmodified `cinder` CLI (python3-cinderclient)
against a real stowaged on a local XFS loop volume and on a Gluster volume (disperse
4 + 2, reached by the daemon through libgfapi, by the test through FUSE).

What is proved (API.md § OpenStack Cinder, issue 11):
- manageable-list (detailed and not, sorted, paged, with a marker) prints every object of
  the volume root with its size in GiB (rounded up from the virtual size) and its verdict;
- manage moves a file into images/ by a rename (same inode, no copy), the volume turns
  available and shows in cinder show/list, flexVDI and /v1/; unmanage gives the file back
  under its name and drops the row; delete removes image and file;
- a qcow2 with a backing file, a VMDK descriptor with a FLAT extent, a symlink, a hard
  link, a FIFO and a file held open for writing are listed not safe with the reason, and
  manage refuses them leaving the file where and as it was;
- raw HTTP: version discovery, microversion edges, Cinder's 400 messages, 401 without a
  token, another project's volume is 404.

qemu-img makes the test images; the daemon never runs it.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from fixtures.gluster import volume_with_fuse

QEMU_IMG = shutil.which("qemu-img")
CINDER = shutil.which("cinder")
GiB = 1 << 30
STORAGE = "st"
PROJECT = "proj1"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

pytestmark = pytest.mark.skipif(not QEMU_IMG or not CINDER, reason="needs qemu-img and cinder")


# ---------------------------------------------------------------- volumes

class Vol:
    def __init__(self, d, vid, kind, root):
        self.d, self.vid, self.kind, self.root = d, vid, kind, Path(root)
        self.host = "%s@%s#%s" % (socket.gethostname(), STORAGE, vid)

    def cinder(self, *args, version="3.8", project=PROJECT, check=True):
        cmd = [CINDER, "--os-auth-type", "admin_token", "--os-token", self.d.token,
               "--os-endpoint", "%s/v3/%s" % (self.d.base, project), "--os-project-id", project,
               "--os-volume-api-version", version, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if check:
            assert r.returncode == 0, "cinder %s: %s%s" % (" ".join(args), r.stdout, r.stderr)
        return r

    def table(self, *args, **kw):
        """The rows of the printed table as dicts (header → cell)."""
        return parse_table(self.cinder(*args, **kw).stdout)

    def props(self, *args, **kw):
        """A Property/Value table as a dict."""
        return {row["Property"]: row["Value"] for row in self.table(*args, **kw)}

    def wait_status(self, vid, status):
        return self.d.wait_for(lambda: self.props("show", vid).get("status") == status,
                               timeout=60, what="volume %s %s" % (vid, status))

    def settled(self, fn):
        deadline = time.monotonic() + (5 if self.kind == "gluster" else 0)
        while True:
            got = fn()
            if got or time.monotonic() >= deadline:
                return got
            time.sleep(0.2)


def parse_table(text):
    lines = [l for l in text.splitlines() if l.startswith("|")]
    if not lines:
        return []
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in l.strip("|").split("|")))) for l in lines[1:]]


def start_daemon_on(daemon_factory, vid, volcfg, root, kind, listing):
    cfg = {"probe_ttl_ms": 200, "storages": [{"id": STORAGE, "volumes": [volcfg]}]}
    d = daemon_factory(cfg)

    def ok():
        r = d.get("/imagestorages/" + STORAGE)
        return any(v["volume_id"] == vid and v["status"] == "ok" for v in r.json()[listing])
    d.wait_for(ok, timeout=60, what="volume %s ok" % vid)
    return Vol(d, vid, kind, root)


@pytest.fixture
def local(make_local_volume):
    d, mnt = make_local_volume("2G")
    return Vol(d, "loc", "local", mnt)


GVOL = "stcinder"


@pytest.fixture(scope="module")
def gluster_env(tmp_path_factory):
    """One private glusterd (one per host: wait for another engineer's), a disperse volume,
    and a FUSE mount for the test's own view."""
    with volume_with_fuse(tmp_path_factory.mktemp("gluster"), GVOL, kind="disperse", bricks=6,
                          redundancy=2) as env:
        yield env


@pytest.fixture
def gluster(gluster_env, daemon_factory):
    gd, fuse = gluster_env
    for p in fuse.iterdir():  # what an earlier test left
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    v = start_daemon_on(daemon_factory, "g", {"id": "g", "kind": "gluster",
                                              "server": gd.hostname, "volume": GVOL},
                        fuse, "gluster", "gluster_volumes")
    yield v
    v.d.stop()


@pytest.fixture(params=["local", "gluster"])
def vol(request):
    return request.getfixturevalue(request.param)


def qemu_img(*args):
    subprocess.run([QEMU_IMG, *args], check=True, capture_output=True, timeout=60)


def make_images(root):
    qemu_img("create", "-q", "-f", "raw", str(root / "small.raw"), "1G")
    qemu_img("create", "-q", "-f", "qcow2", str(root / "big.qcow2"), "10G")
    qemu_img("create", "-q", "-f", "raw", str(root / "odd.raw"), str(GiB + 512))


def ref(name):
    return "{'source-name': '%s'}" % name


# ---------------------------------------------------------------- the CLI, end to end

def test_manageable_list_prints_every_object_with_size_and_verdict(vol):
    make_images(vol.root)
    rows = vol.table("manageable-list", vol.host)
    # default sort: reference, descending
    assert [r["reference"] for r in rows] == [ref("small.raw"), ref("odd.raw"), ref("big.qcow2")]
    by = {r["reference"]: r for r in rows}
    assert by[ref("big.qcow2")]["size"] == "10"
    assert by[ref("odd.raw")]["size"] == "2"  # 1 GiB + 512 bytes rounds up
    assert by[ref("small.raw")]["size"] == "1"
    extra = by[ref("big.qcow2")]["extra_info"]
    assert "'format': 'qcow2'" in extra and "'virtual_size': %d" % (10 * GiB) in extra
    for r in rows:
        assert r["cinder_id"] == "-"
        if vol.kind == "local":
            assert r["safe_to_manage"] == "True" and r["reason_not_safe"] == "-"
        else:  # whether a Gluster client writes to it cannot be known: never claimed safe
            assert r["safe_to_manage"] == "False"
            assert r["reason_not_safe"].startswith("whether it is open for writing cannot be known")


def test_manageable_list_brief_sorted_paged_and_from_a_marker(vol):
    make_images(vol.root)
    brief = vol.table("manageable-list", "--detailed", "false", vol.host)
    assert set(brief[0]) == {"reference", "size", "safe_to_manage"}
    by_size = vol.table("manageable-list", "--sort", "size:desc", vol.host)
    assert [(r["reference"], r["size"]) for r in by_size] == [
        (ref("big.qcow2"), "10"), (ref("odd.raw"), "2"), (ref("small.raw"), "1")]
    asc = vol.table("manageable-list", "--sort", "size:asc,reference:asc", vol.host)
    assert [r["size"] for r in asc] == ["1", "2", "10"]
    page = vol.table("manageable-list", "--sort", "reference:asc", "--limit", "1", "--offset",
                     "1", vol.host)
    assert [r["reference"] for r in page] == [ref("odd.raw")]
    after = vol.table("manageable-list", "--sort", "reference:asc", "--marker",
                      json.dumps({"source-name": "big.qcow2"}), vol.host)
    assert [r["reference"] for r in after] == [ref("odd.raw"), ref("small.raw")]


def test_manage_show_list_unmanage_delete(vol):
    make_images(vol.root)
    ino = os.stat(vol.root / "big.qcow2").st_ino
    out = vol.props("manage", vol.host, "big.qcow2", "--name", "win10", "--description",
                    "the win10 disk", "--volume-type", "fast", "--availability-zone", "az1",
                    "--bootable", "--metadata", "os=win10", "tier=gold")
    vid = out["id"]
    assert UUID_RE.match(vid) and out["name"] in ("win10", vid)
    vol.wait_status(vid, "available")
    shown = vol.props("show", vid)
    assert shown["name"] == "win10" and shown["size"] == "10"
    assert shown["os-vol-host-attr:host"] == vol.host
    assert shown["attached_servers"] == "[]" and shown["encrypted"] == "False"
    assert shown["multiattach"] == "False"
    # what the manage request said is kept and shown
    assert shown["description"] == "the win10 disk" and shown["bootable"] == "true"
    assert shown["volume_type"] == "fast" and shown["availability_zone"] == "az1"
    assert shown["metadata"] == "os : win10", shown  # first line of cinder's key : value cell
    body = get(vol.d, "/v3/%s/volumes/%s" % (PROJECT, vid)).json()["volume"]
    assert body["metadata"] == {"os": "win10", "tier": "gold"}
    assert (body["description"], body["bootable"], body["volume_type"],
            body["availability_zone"]) == ("the win10 disk", "true", "fast", "az1")
    # a rename: the same inode is now the image, nothing was copied
    moved = vol.root / "images" / ("%s.qcow2" % vid)
    assert vol.settled(lambda: moved.exists()) and os.stat(moved).st_ino == ino
    assert vol.settled(lambda: not (vol.root / "big.qcow2").exists())
    listed = vol.table("list")
    assert [(r["ID"], r["Status"], r["Name"], r["Size"]) for r in listed] == [
        (vid, "available", "win10", "10")]
    # one catalogue: flexVDI and the native API see it too
    fv = vol.d.get("/imagestorages/" + STORAGE).json()
    images = [i for v in fv["volumes"] + fv["gluster_volumes"] for i in v["images"]]
    assert [(i["image_id"], i["size_mb"]) for i in images] == [("win10", 10 * 1024)]
    native = vol.d.get("/v1/images/" + vid)
    assert native.status_code == 200 and native.json()["name"] == "win10"
    # now listed as already managed
    rows = vol.table("manageable-list", vol.host)
    managed = [r for r in rows if r["cinder_id"] == vid]
    assert managed and managed[0]["safe_to_manage"] == "False"
    assert managed[0]["reason_not_safe"] == "already managed"

    r = vol.cinder("unmanage", vid)
    assert "has been accepted" in r.stdout or r.stdout == "", r.stdout
    vol.d.wait_for(lambda: (vol.root / "big.qcow2").exists(), timeout=30, what="file back")
    assert os.stat(vol.root / "big.qcow2").st_ino == ino
    assert vol.settled(lambda: not moved.exists())
    vol.d.wait_for(lambda: vol.table("list") == [], timeout=30, what="row dropped")

    # adopt again without a name (the uuid is the name), then delete it with its file
    out = vol.props("manage", vol.host, "small.raw")
    vid2 = out["id"]
    vol.wait_status(vid2, "available")
    shown = vol.props("show", vid2)
    assert (shown["name"], shown["bootable"], shown["description"], shown["volume_type"],
            shown["availability_zone"], shown["metadata"]) == (
        vid2, "false", "None", "__DEFAULT__", "nova", ""), shown
    r = vol.cinder("delete", vid2)
    assert "Request to delete volume %s has been accepted." % vid2 in r.stdout
    vol.d.wait_for(lambda: vol.table("list") == [], timeout=30, what="deleted")
    assert vol.settled(lambda: not (vol.root / "images" / ("%s.raw" % vid2)).exists())
    assert vol.settled(lambda: not (vol.root / "small.raw").exists())


def test_snapshot_manageable_list_is_empty(local):
    rows = local.cinder("snapshot-manageable-list", local.host)
    assert rows.returncode == 0 and parse_table(rows.stdout) == []


# ---------------------------------------------------------------- unsafe objects

def unsafe_objects(root):
    qemu_img("create", "-q", "-f", "qcow2", str(root / "base.qcow2"), "1G")
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
             str(root / "child.qcow2"))
    qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat",
             str(root / "flat.vmdk"), "1G")
    os.symlink("base.qcow2", root / "link.qcow2")
    qemu_img("create", "-q", "-f", "raw", str(root / "hard.raw"), "1G")
    os.link(root / "hard.raw", root / "hard2.raw")
    os.mkfifo(root / "pipe")
    qemu_img("create", "-q", "-f", "raw", str(root / "busy.raw"), "1G")


UNSAFE = {
    "child.qcow2": "is refused by the format inspector: qcow2_backing_file",
    "flat.vmdk": "is refused by the format inspector: vmdk_",
    "link.qcow2": "is a symbolic link",
    "hard.raw": "is a hard link (2 names)",
    "hard2.raw": "is a hard link (2 names)",
    "pipe": "is a FIFO, not a regular file",
    "busy.raw": "is open for writing",
}


def test_unsafe_objects_are_listed_with_the_reason_and_not_managed(local):
    root = local.root
    unsafe_objects(root)
    with open(root / "busy.raw", "r+b") as writer:
        rows = {r["reference"]: r for r in local.table("manageable-list", local.host)}
        for name, why in UNSAFE.items():
            row = rows[ref(name)]
            assert row["safe_to_manage"] == "False", (name, row)
            assert row["reason_not_safe"].startswith(why), (name, row)
        assert rows[ref("base.qcow2")]["safe_to_manage"] == "True"
        for name, why in UNSAFE.items():
            before = os.lstat(root / name)
            r = local.cinder("manage", local.host, name, check=False)
            assert r.returncode != 0, (name, r.stdout)
            assert "Manage existing volume failed due to invalid backend reference " \
                   "%s" % ref(name) in r.stderr, r.stderr
            assert "(HTTP 400)" in r.stderr
            after = os.lstat(root / name)
            assert (after.st_ino, after.st_size, after.st_mtime_ns) == \
                   (before.st_ino, before.st_size, before.st_mtime_ns)
        writer.write(b"x")
    assert local.table("list") == []
    assert os.listdir(root / "images") == []
    # once nobody writes to it, it is safe again
    rows = {r["reference"]: r for r in local.table("manageable-list", local.host)}
    assert rows[ref("busy.raw")]["safe_to_manage"] == "True"


# ---------------------------------------------------------------- raw HTTP

def hdr(d, version=None, token=True):
    h = {}
    if token:
        h["X-Auth-Token"] = d.token
    if version:
        h["OpenStack-API-Version"] = "volume " + version
    return h


def get(d, path, version="3.8", token=True, **kw):
    return requests.get(d.base + path, headers=hdr(d, version, token), timeout=30, **kw)


def test_version_discovery(local):
    d = local.d
    r = requests.get(d.base + "/", timeout=30)
    assert r.status_code == 300
    v = r.json()["versions"]
    assert [(x["id"], x["status"], x["min_version"], x["version"]) for x in v] == [
        ("v3.0", "CURRENT", "3.0", "3.71")]
    assert v[0]["links"][0]["href"] == d.base + "/v3/"
    r = requests.get(d.base + "/v3/", timeout=30)
    assert r.status_code == 200 and r.json()["versions"][0]["version"] == "3.71"


def test_microversion_edges(local):
    d, host = local.d, local.host
    path = "/v3/%s/manageable_volumes?host=%s" % (PROJECT, host)
    r = get(d, path, "3.7")
    assert r.status_code == 404
    assert r.json() == {"itemNotFound": {"code": 404, "message": "API version API Version Request "
                                         "Major: 3, Minor: 7 is not supported on this method."}}
    for asked, echoed in (("3.8", "3.8"), ("3.70", "3.70"), ("latest", "3.71")):
        r = get(d, path, asked)
        assert r.status_code == 200 and r.json() == {"manageable-volumes": []}, r.text
        assert r.headers["OpenStack-API-Version"] == "volume " + echoed
        assert "OpenStack-API-Version" in r.headers["Vary"]
    r = get(d, path, "3.99")
    assert r.status_code == 406
    assert r.json() == {"notAcceptable": {"code": 406, "message": "Version 3.99 is not supported "
                                          "by the API. Minimum is 3.0 and maximum is 3.71."}}
    r = get(d, path, "3.x")
    assert r.status_code == 400
    assert r.json()["badRequest"]["message"].startswith("API Version String 3.x is of invalid")
    # the legacy list works at 3.0
    r = get(d, "/v3/%s/os-volume-manage?host=%s" % (PROJECT, host), None)
    assert r.status_code == 200 and r.json() == {"manageable-volumes": []}


def test_no_token_is_401_as_keystonemiddleware(local):
    r = get(local.d, "/v3/%s/manageable_volumes?host=x" % PROJECT, token=False)
    assert r.status_code == 401
    assert r.json() == {"error": {"code": 401, "title": "Unauthorized", "message":
                                  "The request you have made requires authentication."}}


BAD_LISTS = [
    ("3.8", "", "Invalid input received: Host field is missing."),
    ("3.17", "host=H&cluster=c", "Invalid input received: One and only one of cluster and host "
                                 "must be set."),
    ("3.17", "", "Invalid input received: One and only one of cluster and host must be set."),
    ("3.8", "host=H&sort=name", "Invalid sort keys passed: name"),
    ("3.8", "host=H&sort=size:up", "Invalid sort dirs passed: up"),
    ("3.8", "host=H&limit=x", "limit param must be an integer"),
    ("3.8", "host=H&limit=-1", "limit param must be positive"),
    ("3.8", "host=H&offset=x", "offset must be an integer"),
    ("3.8", "host=H&offset=-2", "offset must be >= 0"),
    ("3.8", "host=H&offset=2147483648", "offset must be <= 2147483647"),
    ("3.8", "host=H&sort=size&sort_key=size", "The 'sort_key' and 'sort_dir' parameters are "
                                              "deprecated and cannot be used with the 'sort' "
                                              "parameter."),
    ("3.8", "host=H&sort=size:desc,name,bogus:up", "Invalid sort keys passed: name, bogus"),
    ("3.8", "host=H&marker=nope", "Invalid input received: marker nope can not be analysed, "
                                  "please use json like format"),
    ("3.8", "host=H&marker=%7B%22source-name%22%3A%22gone%22%7D",
     "Invalid input received: marker not found: {'source-name': 'gone'}"),
]


@pytest.mark.parametrize("version,query,message", BAD_LISTS)
def test_bad_list_parameters_are_400_with_cinders_message(local, version, query, message):
    q = query.replace("H", local.host.replace("#", "%23"))
    r = get(local.d, "/v3/%s/manageable_volumes/detail?%s" % (PROJECT, q), version)
    assert r.status_code == 400, r.text
    assert r.json() == {"badRequest": {"code": 400, "message": message}}


@pytest.mark.parametrize("path", ["manageable_volumes", "manageable_volumes/detail",
                                  "os-volume-manage", "manageable_snapshots"])
def test_unknown_host_is_400_with_cinders_message(local, path):
    for host in (socket.gethostname() + "@nostorage", "elsewhere@%s#loc" % STORAGE,
                 "%s@%s#novolume" % (socket.gethostname(), STORAGE), "nohash"):
        r = get(local.d, "/v3/%s/%s" % (PROJECT, path), params={"host": host})
        assert r.status_code == 400, r.text
        assert r.json() == {"badRequest": {"code": 400, "message": "Host '%s' not found" % host}}
    r = get(local.d, "/v3/%s/%s" % (PROJECT, path), "3.17", params={"cluster": "c1"})
    assert r.json() == {"badRequest": {"code": 400, "message": "Cluster 'c1' not found"}}


def post(d, path, body, version="3.8"):
    return requests.post(d.base + path, headers=hdr(d, version), json=body, timeout=30)


def test_bad_manage_requests(local):
    d = local.d
    (local.root / "a.raw").write_bytes(b"\0" * 4096)
    url = "/v3/%s/os-volume-manage" % PROJECT
    r = post(d, url, {"volume": {"host": local.host}})
    assert r.status_code == 400 and "'ref' is a required property" in \
        r.json()["badRequest"]["message"]
    r = post(d, url, {"volume": {"host": local.host, "ref": {"source-id": "7"}}})
    assert r.status_code == 400 and r.json()["badRequest"]["message"].startswith(
        "Manage existing volume failed due to invalid backend reference")
    r = post(d, url, {"volume": {"host": local.host, "ref": {"source-name": "none.raw"}}})
    assert r.json() == {"badRequest": {"code": 400, "message":
                        "Manage existing volume failed due to invalid backend reference "
                        "{'source-name': 'none.raw'}: no such object outside the catalogue"}}
    r = post(d, url, {"volume": {"ref": {"source-name": "a.raw"}}})
    assert r.json() == {"badRequest": {"code": 400, "message":
                        "Invalid input received: Host field is missing."}}
    r = post(d, url, {"volume": {"host": "elsewhere@st#loc", "ref": {"source-name": "a.raw"}}})
    assert r.json() == {"badRequest": {"code": 400, "message": "Host 'elsewhere@st#loc' not found"}}
    r = post(d, url, {"volume": {"cluster": "c1", "ref": {"source-name": "a.raw"}}}, "3.16")
    assert r.json() == {"badRequest": {"code": 400, "message": "Cluster 'c1' not found"}}
    r = post(d, url, {"volume": {"host": local.host, "cluster": "c1",
                                 "ref": {"source-name": "a.raw"}}}, "3.16")
    assert r.json() == {"badRequest": {"code": 400, "message": "Invalid input received: One and "
                                       "only one of cluster and host must be set."}}
    for field, value, why in (("bootable", "maybe", "must be a boolean"),
                              ("metadata", ["x"], "must be an object"),
                              ("metadata", {"k": 1}, "keys are 1 to 255"),
                              ("metadata", {"": "v"}, "keys are 1 to 255"),
                              ("description", "d" * 129, "is too long"),
                              ("volume_type", 7, "must be a string")):
        r = post(d, url, {"volume": {"host": local.host, "ref": {"source-name": "a.raw"},
                                     field: value}})
        assert r.status_code == 400, (field, r.text)
        msg = r.json()["badRequest"]["message"]
        assert msg.startswith("Invalid input for field/attribute %s. Value: " % field), msg
        assert why in msg, msg
    assert (local.root / "a.raw").exists() and get(d, "/v3/%s/volumes" % PROJECT).json() == {
        "volumes": []}
    # a name clash: the file stays
    ok = post(d, "/v3/%s/manageable_volumes" % PROJECT,
              {"volume": {"host": local.host, "ref": {"source-name": "a.raw"}, "name": "one"}})
    assert ok.status_code == 202 and ok.json()["volume"]["status"] == "creating"
    vid = ok.json()["volume"]["id"]
    d.wait_for(lambda: get(d, "/v3/%s/volumes/%s" % (PROJECT, vid)).json()["volume"]["status"]
               == "available", what="available")
    (local.root / "b.raw").write_bytes(b"\0" * 4096)
    r = post(d, url, {"volume": {"host": local.host, "ref": {"source-name": "b.raw"},
                                 "name": "one"}})
    assert r.status_code == 409
    assert r.json() == {"conflictingRequest": {"code": 409, "message":
                                               "an image named 'one' already exists"}}
    assert (local.root / "b.raw").exists()
    r = post(d, "/v3/%s/volumes/%s/action" % (PROJECT, vid), {"os-extend": {"new_size": 2}})
    assert r.json() == {"badRequest": {"code": 400, "message": "There is no such action: os-extend"}}
    # another project sees nothing of it
    other = "/v3/other/volumes/%s" % vid
    r = get(d, other)
    assert r.status_code == 404
    assert r.json() == {"itemNotFound": {"code": 404, "message":
                                         "Volume %s could not be found." % vid}}
    r = requests.delete(d.base + other, headers=hdr(d, "3.8"), timeout=30)
    assert r.status_code == 404
    r = post(d, other + "/action", {"os-unmanage": None})
    assert r.json() == {"itemNotFound": {"code": 404, "message":
                                         "Volume %s could not be found." % vid}}
    assert get(d, "/v3/%s/volumes/%s" % (PROJECT, vid)).json()["volume"]["status"] == "available"
    assert get(d, "/v3/other/volumes/detail").json() == {"volumes": []}


def test_storage_host_roles_one_catalogue_and_clones_that_block(local):
    """A host without #volume names every volume of the storage; a reader may not manage
    (403); an adopted volume is in Danube's list too; while a clone uses it, delete and
    unmanage are refused as Cinder refuses a volume with snapshots."""
    d = local.d
    qemu_img("create", "-q", "-f", "qcow2", str(local.root / "c.qcow2"), "1G")
    bare = "%s@%s" % (socket.gethostname(), STORAGE)
    r = get(d, "/v3/%s/manageable_volumes" % PROJECT, params={"host": bare})
    assert r.json() == {"manageable-volumes": [{"reference": {"source-name": "c.qcow2"},
                                                "size": 1, "safe_to_manage": True}]}
    body = {"volume": {"host": bare, "ref": {"source-name": "c.qcow2"}, "name": "cvm"}}
    reader = d.make_token("reader")
    r = requests.post(d.base + "/v3/%s/os-volume-manage" % PROJECT, json=body, timeout=30,
                      headers={"X-Auth-Token": reader, "OpenStack-API-Version": "volume 3.8"})
    assert r.status_code == 403 and list(r.json()) == ["forbidden"], r.text
    assert r.json()["forbidden"]["code"] == 403 and "reader" in r.json()["forbidden"]["message"]
    assert (local.root / "c.qcow2").exists()
    r = post(d, "/v3/%s/os-volume-manage" % PROJECT, body)
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    assert r.json()["volume"]["os-vol-host-attr:host"] == local.host
    d.wait_for(lambda: get(d, "/v3/%s/volumes/%s" % (PROJECT, vid)).json()["volume"]["status"]
               == "available", what="available")
    r = requests.get(d.base + "/image/", headers={"ES-API-KEY": d.token}, timeout=30)
    assert r.status_code == 200 and r.json()["result"] == ["cvm"], r.text
    t = d.post("/tasks/create", json={"type": "guest_clone", "repeat": "0", "retries": "0",
                                      "image_id": "cvm", "guest_id": "g1", "clone_id": "cvm_g1"})
    tid = t.json()["message"]
    d.wait_for(lambda: d.get("/tasks/" + tid).json()["result"] == "success", what="clone")
    refused = ("Invalid volume: Volume status must be available or error or error_restoring "
               "or error_extending or error_managing and must not be migrating, attached, "
               "belong to a group, have snapshots, awaiting a transfer, or be disassociated "
               "from snapshots after volume transfer.")
    for r in (requests.delete(d.base + "/v3/%s/volumes/%s" % (PROJECT, vid), timeout=30,
                              headers=hdr(d, "3.8")),
              post(d, "/v3/%s/volumes/%s/action" % (PROJECT, vid), {"os-unmanage": None})):
        assert r.status_code == 400 and r.json() == {"badRequest": {"code": 400,
                                                                    "message": refused}}
    assert (local.root / "images" / ("%s.qcow2" % vid)).exists()
    assert get(d, "/v3/%s/volumes/%s" % (PROJECT, vid)).json()["volume"]["status"] == "available"
