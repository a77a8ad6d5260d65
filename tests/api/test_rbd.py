"""RBD volumes: images and clones as RBD images in a pool of a real single-node Ceph
cluster (tests/fixtures/ceph.py), served by a real daemon.

Run under `flock /tmp/stowage-glusterd.lock flock /tmp/stowage-ceph.lock` (one cluster
and one glusterd per machine, the copy test starts a glusterd too; always in that order).
Skipped only when the daemon was built without Ceph support (STOWAGE_WITH_CEPH=OFF)."""
import concurrent.futures
import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from fixtures import ceph, gluster
from fixtures.daemon import binary
from fixtures.loopdisk import LoopDisk
from test_data_path import (MiB, GiB, STORAGE, check_created, download, esdc, native, put,
                            rows_named, run_task, sha256_file, staged_offset, submit_task,
                            write_random, db_rows)


def built_with_ceph():
    cache = Path(binary()).resolve().parent / "CMakeCache.txt"
    return cache.is_file() and "STOWAGE_WITH_CEPH:BOOL=ON" in cache.read_text()


pytestmark = pytest.mark.skipif(not built_with_ceph(),
                                reason="stowaged built without Ceph (STOWAGE_WITH_CEPH=OFF)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = ceph.Cluster(tmp_path_factory.mktemp("ceph"))
    print("ceph cluster healthy in %.1f s (%s)" % (c.started_in, c.waits))
    yield c
    c.close()


_pools = iter(range(1, 1000))


@pytest.fixture
def pool(cluster):
    name = "t%d" % next(_pools)
    cluster.create_pool(name)
    return name


def rbd_volume(cluster, pool, **extra):
    v = {"id": "ceph1", "kind": "rbd", "conf": str(cluster.conf), "user": "admin",
         "keyring": str(cluster.keyring), "pool": pool}
    v.update(extra)
    return v


def listing(d):
    r = d.get("/imagestorages/" + STORAGE)
    assert r.status_code == 200, r.text
    return r.json()


def rbd_entry(d):
    ext = [v for v in listing(d)["external_volumes"] if v["volume_id"] == "ceph1"]
    assert len(ext) == 1, listing(d)
    return ext[0]


def start(daemon_factory, volumes, sub="d"):
    d = daemon_factory({"probe_ttl_ms": 200, "storages": [{"id": STORAGE, "volumes": volumes}]},
                       sub=sub)
    d.wait_for(lambda: rbd_entry(d)["status"] == "ok", timeout=60, what="rbd volume ok")
    return d


def images_of(cluster, pool, prefix):
    return [n[len(prefix):] for n in cluster.images(pool) if n.startswith(prefix)]


def used_bytes(cluster, pool, name):
    j = json.loads(cluster.rbd("du", "--format", "json", "%s/%s" % (pool, name)))
    return sum(i["used_size"] for i in j["images"] if i["name"] == name and "snapshot" not in i)


def mapped(d):
    """The shared objects the daemon has mapped, by file name."""
    with open("/proc/%d/maps" % d.proc.pid) as f:
        return {os.path.basename(l.split()[5]) for l in f if len(l.split()) > 5}


def ceph_libs(names):
    return sorted({m.group(1) for m in map(re.compile(r"(librados|librbd|stowage-rbd)\.so").match,
                                          names) if m})


def test_a_daemon_without_an_rbd_volume_never_maps_the_ceph_libraries(daemon_factory, tmp_path):
    (tmp_path / "vol").mkdir()
    d = daemon_factory({"storages": [{"id": STORAGE, "volumes": [
        {"id": "dir1", "kind": "external", "mount_point": str(tmp_path / "vol")}]}]})
    d.wait_for(lambda: listing(d)["external_volumes"][0]["status"] == "ok", what="volume ok")
    assert ceph_libs(mapped(d)) == [], mapped(d)


def test_an_rbd_volume_without_the_module_fails_clearly(tmp_path):
    # stowaged installed without stowage-rbd.so beside it (nor in the install's module dir)
    exe = tmp_path / "bin" / "stowaged"
    exe.parent.mkdir()
    shutil.copy(binary(), exe)
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"listen": "127.0.0.1:1", "state_dir": str(tmp_path / "state"),
                               "storages": [{"id": STORAGE, "volumes": [
                                   {"id": "ceph1", "kind": "rbd", "mon_host": "127.0.0.1:1",
                                    "user": "admin", "key": "x", "pool": "p"}]}]}))
    r = subprocess.run([str(exe), "--config", str(cfg)], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
    assert r.returncode != 0, r
    msg = "the rbd backend module stowage-rbd.so is not installed (looked for %s/stowage-rbd.so" \
        % exe.parent
    assert msg in r.stderr, r.stderr


def test_upload_download_round_trip_and_the_flexvdi_view(cluster, pool, daemon_factory, tmp_path):
    d = start(daemon_factory, [rbd_volume(cluster, pool)])
    # the first RBD volume loaded the module, and with it the Ceph libraries
    assert ceph_libs(mapped(d)) == ["librados", "librbd", "stowage-rbd"], mapped(d)
    vol = rbd_entry(d)
    # flexVDI shows the pool and the cluster's real fsid; never a key or a keyring
    assert vol["ceph_pool"] == pool and vol["ceph_fsid"] == cluster.fsid, vol
    assert vol["status_msg"] == "" and vol["total_space"] > 0 and vol["free_space"] > 0, vol
    text = json.dumps(listing(d))
    assert "keyring" not in text and cluster.key() not in text, text

    src = tmp_path / "holey.raw"
    sha = write_random(src, 48 * MiB, 13, holes=True)
    t0 = time.monotonic()
    body = check_created(put(d, esdc("one"), src), "one", sha, 48 * MiB, "raw", 48 * MiB, "ceph1")
    print("upload of 48 MiB to rbd: %.2f s" % (time.monotonic() - t0))
    uuid = body["uuid"]
    # the RBD image is where the contract puts it, and nothing is staged
    assert cluster.images(pool) == ["images.%s.raw" % uuid], cluster.images(pool)
    assert rows_named(d, "one") == [(uuid, "active", "raw")]
    info = json.loads(cluster.rbd("info", "--format", "json", "%s/images.%s.raw" % (pool, uuid)))
    assert info["size"] == 48 * MiB, info

    for path in (esdc("one"), native(uuid)):
        g, got, n = download(d, path)
        assert g.status_code == 200 and (n, got) == (48 * MiB, sha), (path, g.status_code)
        assert g.headers["ETag"] == '"%s"' % sha, g.headers
    r = d.get(esdc("one"), headers={"Range": "bytes=%d-%d" % (20 * MiB, 20 * MiB + 99)})
    with open(src, "rb") as f:
        f.seek(20 * MiB)
        assert r.status_code == 206 and r.content == f.read(100)
    img = [i for i in rbd_entry(d)["images"] if i["image_id"] == "one"]
    assert img == [{"image_id": "one", "volume_id": "ceph1", "image_storage_id": STORAGE,
                    "guest_id": "", "size_mb": 48}], img

    t = run_task(d, "image_delete", image_id="one")
    assert t["result"] == "success", t
    d.wait_for(lambda: cluster.images(pool) == [], timeout=30, what="image removed")


def test_a_volume_by_mon_host_and_key(cluster, pool, daemon_factory):
    vol = {"id": "ceph1", "kind": "rbd", "mon_host": cluster.mon_host, "user": "admin",
           "key": cluster.key(), "pool": pool}
    d = start(daemon_factory, [vol])
    assert cluster.key() not in json.dumps(listing(d))
    data = os.urandom(3 * MiB + 17)
    sha = hashlib.sha256(data).hexdigest()
    body = check_created(put(d, esdc("k"), data), "k", sha, len(data), "raw", len(data), "ceph1")
    assert cluster.images(pool) == ["images.%s.raw" % body["uuid"]]
    g, got, n = download(d, esdc("k"))
    assert (g.status_code, n, got) == (200, len(data), sha)


def test_guest_clone_of_a_100g_image_is_an_rbd_clone(cluster, pool, daemon_factory):
    d = start(daemon_factory, [rbd_volume(cluster, pool)])
    t = run_task(d, "image_create", image_id="big", volume_id="ceph1", image_storage_id=STORAGE,
                 size_mb=102400, format="raw")
    assert t["result"] == "success", t
    uuid = rows_named(d, "big")[0][0]
    times = []
    for guest in ("vm1", "vm2", "vm3"):
        t0 = time.monotonic()
        t = run_task(d, "guest_clone", image_id="big", guest_id=guest, clone_id="big_" + guest)
        times.append(time.monotonic() - t0)
        assert t["result"] == "success", t
    print("guest_clone of 100 GiB on rbd: %s ms" % [round(x * 1e3) for x in times])
    assert max(times) < 10, times  # O(1): a snapshot and a clone, never a copy
    assert sorted(images_of(cluster, pool, "clones.")) == ["big_vm1.raw", "big_vm2.raw",
                                                           "big_vm3.raw"]
    info = json.loads(cluster.rbd("info", "--format", "json", "%s/clones.big_vm1.raw" % pool))
    assert info["size"] == 100 * GiB, info
    assert info["parent"]["image"] == "images.%s.raw" % uuid, info
    assert info["parent"]["snapshot"] == "stowage-base", info
    clones = sorted(c["clone_id"] for c in rbd_entry(d)["clones"])
    assert clones == ["big_vm1", "big_vm2", "big_vm3"], clones

    # the base cannot go while clones hang from it; after them it can, snapshot and all
    t = run_task(d, "image_delete", image_id="big")
    assert t["result"] == "error" and "clone" in t["result_msg"], t
    for guest in ("vm1", "vm2", "vm3"):
        t = run_task(d, "clone_delete", clone_id="big_" + guest)
        assert t["result"] == "success", t
    t = run_task(d, "image_delete", image_id="big")
    assert t["result"] == "success", t
    d.wait_for(lambda: cluster.images(pool) == [], timeout=30, what="all removed")


# (start, length) of the data of an 80 MiB image, the rest holes: a 4 MiB object alone, a
# hole of two objects, 1 MiB of an object, a 40 MiB run (longer than the 32 MiB a download
# reads ahead), a long hole, and a last object cut short of the image's end
SPARSE_DATA = [(0, 4 * MiB), (12 * MiB, MiB), (16 * MiB, 40 * MiB), (76 * MiB, 4 * MiB - 4097)]


def test_a_large_sparse_image_downloads_byte_for_byte_with_its_holes_skipped(
        cluster, pool, daemon_factory, tmp_path):
    (tmp_path / "vol").mkdir()
    d = start(daemon_factory, [{"id": "loc", "kind": "external",
                                "mount_point": str(tmp_path / "vol")}, rbd_volume(cluster, pool)])
    size = SPARSE_DATA[-1][0] + SPARSE_DATA[-1][1]
    want = bytearray(size)
    for i, (off, n) in enumerate(SPARSE_DATA):
        want[off:off + n] = random.Random(i).randbytes(n)
    src = tmp_path / "sparse.raw"
    src.write_bytes(want)
    sha = hashlib.sha256(want).hexdigest()
    check_created(put(d, esdc("s0"), src, params={"volume_id": "loc"}), "s0", sha, size, "raw",
                  size, "loc")
    # a copy to RBD writes no zeros: the holes are unallocated objects there
    t = run_task(d, "image_copy", image_id="s1", volume_id="ceph1", image_storage_id=STORAGE,
                 source_image_id="s0", source_volume_id="loc")
    assert t["result"] == "success", t
    uuid = rows_named(d, "s1")[0][0]
    used = used_bytes(cluster, pool, "images.%s.raw" % uuid)
    assert 12 * 4 * MiB < used <= 13 * 4 * MiB, used  # 13 objects of 20
    r = d.get(esdc("s1"), timeout=120)
    assert r.status_code == 200 and len(r.content) == size, (r.status_code, len(r.content))
    assert r.content == want  # byte for byte: every hole zeros, every block where it belongs
    # ranges that start inside a block, cross a hole into data, or jump back while blocks
    # are being read ahead, on one connection
    with requests.Session() as sess:
        for a, b in ((13 * MiB - 1, 20 * MiB + 5), (17 * MiB + 3, 55 * MiB), (5, 4 * MiB + 9),
                     (75 * MiB, size - 1)):
            g = sess.get(d.url(esdc("s1")), headers={"Range": "bytes=%d-%d" % (a, b),
                                                     **d.headers()}, timeout=60)
            assert g.status_code == 206 and g.content == want[a:b + 1], (a, b, g.status_code)


def test_an_image_off_every_object_boundary_round_trips_in_parts_and_ranges(cluster, pool,
                                                                           daemon_factory):
    d = start(daemon_factory, [rbd_volume(cluster, pool)])
    total = 9 * MiB + 4099  # ends inside the third object, off every write piece
    data = random.Random(9).randbytes(total)
    sha = hashlib.sha256(data).hexdigest()
    # two parts cut inside an object: the second begins by reading the staged prefix back
    # (object-sized reads) to hash it, then writes on from an unaligned offset
    cut = 5 * MiB + 777
    r = put(d, esdc("odd"), data[:cut], headers={"Content-Range": "bytes 0-%d/%d" % (cut - 1, total)})
    assert r.status_code == 202 and r.json() == {"status": "saving", "staged": cut}, r.text
    r = put(d, esdc("odd"), data[cut:], headers={
        "Content-Range": "bytes %d-%d/%d" % (cut, total - 1, total), "X-Checksum-Sha256": sha})
    uuid = check_created(r, "odd", sha, total, "raw", total, "ceph1")["uuid"]
    info = json.loads(cluster.rbd("info", "--format", "json", "%s/images.%s.raw" % (pool, uuid)))
    assert info["size"] == total, info
    g = d.get(esdc("odd"), timeout=60)
    assert g.status_code == 200 and g.content == data, (g.status_code, len(g.content))
    # ranges across object boundaries, the short last object, and a jump back while the
    # next objects are being read ahead, on one connection
    with requests.Session() as sess:
        for a, b in ((4 * MiB - 3, 8 * MiB + 2), (9 * MiB, total - 1), (10, 100),
                     (total - 1, total - 1), (0, total - 1)):
            g = sess.get(d.url(esdc("odd")), headers={"Range": "bytes=%d-%d" % (a, b),
                                                      **d.headers()}, timeout=60)
            assert g.status_code == 206 and g.content == data[a:b + 1], (a, b, g.status_code)
            assert g.headers["Content-Range"] == "bytes %d-%d/%d" % (a, b, total), g.headers


def readahead_bytes(d):
    r = d.get("/v1/metrics")
    assert r.status_code == 200, r.text
    m = re.search(r"^stowage_readahead_bytes (\d+)$", r.text, re.M)
    assert m, r.text
    return int(m.group(1))


def test_a_download_cut_off_midway_gives_its_read_ahead_back_and_the_daemon_serves_on(
        cluster, pool, daemon_factory):
    d = start(daemon_factory, [rbd_volume(cluster, pool)])
    data = random.Random(13).randbytes(48 * MiB + 5)
    check_created(put(d, esdc("cut"), data), "cut", hashlib.sha256(data).hexdigest(), len(data),
                  "raw", len(data), "ceph1")
    assert readahead_bytes(d) == 0
    for rounds in range(3):
        s = socket.create_connection(("127.0.0.1", d.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n"
                   % (esdc("cut"), d.token)).encode())
        got = b""
        while len(got) < MiB:
            chunk = s.recv(256 * 1024)
            assert chunk, got[:200]
            got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and body == data[:len(body)], head
        # the client stalls: the download holds read-ahead blocks, within the budget
        held = d.wait_for(lambda: readahead_bytes(d), timeout=10, what="read-ahead held")
        assert 0 < held <= 64 * MiB, held
        # cut off with a reset, mid-way: every block comes back
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        s.close()
        d.wait_for(lambda: readahead_bytes(d) == 0, timeout=20, what="read-ahead given back")
    assert d.get("/v1/health").json()["status"] == "ok"
    r, sha, n = download(d, esdc("cut"))
    assert r.status_code == 200 and (sha, n) == (hashlib.sha256(data).hexdigest(), len(data))
    assert readahead_bytes(d) == 0


def test_an_rbd_download_over_tls_is_copied_whole_with_its_ranges_and_holes(
        cluster, pool, daemon_factory, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    d = daemon_factory({"probe_ttl_ms": 200, "tls": {"cert": str(cert), "key": str(key)},
                        "storages": [{"id": STORAGE, "volumes": [rbd_volume(cluster, pool)]}]},
                       https=True)
    h = {"Authorization": "Bearer " + d.token}
    d.wait_for(lambda: any(v["volume_id"] == "ceph1" and v["status"] == "ok" for v in requests.get(
        d.url("/imagestorages/" + STORAGE), headers=h, verify=str(cert), timeout=10
    ).json()["external_volumes"]), timeout=60, what="rbd volume ok")
    # data, two objects of zeros, data ending inside an object
    data = random.Random(14).randbytes(6 * MiB) + bytes(8 * MiB) + random.Random(15).randbytes(
        3 * MiB + 17)
    r = requests.put(d.url(esdc("tls")), data=data, verify=str(cert), timeout=120,
                     headers=dict(h, **{"Content-Type": "application/octet-stream"}))
    assert r.status_code == 201 and r.json()["sha256"] == hashlib.sha256(data).hexdigest(), r.text
    g = requests.get(d.url(esdc("tls")), headers=h, verify=str(cert), timeout=120)
    assert g.status_code == 200 and g.content == data, (g.status_code, len(g.content))
    for a, b in ((4 * MiB - 3, 15 * MiB), (len(data) - 20, len(data) - 1)):
        g = requests.get(d.url(esdc("tls")), headers=dict(h, Range="bytes=%d-%d" % (a, b)),
                         verify=str(cert), timeout=60)
        assert g.status_code == 206 and g.content == data[a:b + 1], (a, b, g.status_code)
    assert requests.get(d.url("/v1/metrics"), headers=h, verify=str(cert),
                        timeout=10).text.count("stowage_readahead_bytes 0\n") == 1


def pool_full(cluster, pool):
    pools = json.loads(cluster.ceph("osd", "pool", "ls", "detail", "--format", "json"))
    return any(p["pool_name"] == pool and "full" in p["flags_names"].split(",") for p in pools)


def test_an_upload_whose_writes_fail_in_flight_gives_503_and_leaves_nothing(cluster, pool,
                                                                           daemon_factory):
    d = start(daemon_factory, [rbd_volume(cluster, pool)])
    # the pool fills up under the upload: its writes in flight stall (the OSDs take no
    # more) and fail when the OSD timeout expires
    cluster.ceph("osd", "pool", "set-quota", pool, "max_bytes", str(8 * MiB))
    release = threading.Event()
    up = HeldUpload(d, esdc("full"), os.urandom(64 * MiB), hold=16 * MiB, release=release)
    up.start()
    try:
        assert up.at_hold.wait(30)
        d.wait_for(lambda: pool_full(cluster, pool), timeout=60, interval=0.5,
                   what="pool %s full" % pool)
        release.set()
        up.join(timeout=90)
        assert up.status == 503, (up.status, up.reply[:2000])
        body = json.loads(up.reply.split(b"\r\n\r\n", 1)[1])
        assert set(body) == {"detail"} and "timed out" in body["detail"].lower(), body
        assert d.get("/v1/health").status_code == 200
        assert rows_named(d, "full") == []  # the row went at once, with the upload
    finally:
        cluster.ceph("osd", "pool", "set-quota", pool, "max_bytes", "0")
    # the staging image could not go while the pool was full: the next recovery removes it
    d.stop()
    d.start()
    d.wait_for(lambda: consistent(d, cluster, pool) == [] and cluster.images(pool) == [],
               timeout=60, what="no image left: %s" % cluster.images(pool))
    data = os.urandom(5 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    check_created(put(d, esdc("after"), data), "after", sha, len(data), "raw", len(data), "ceph1")


def test_image_copy_between_xfs_gluster_and_rbd_keeps_bytes_and_holes(cluster, pool,
                                                                       daemon_factory, tmp_path):
    try:
        gd = gluster.start_when_free(tmp_path / "gluster",
                                     float(os.environ.get("STOWAGE_GLUSTER_WAIT_S", "900")))
    except gluster.GlusterdBusy as e:
        pytest.skip("gave up waiting for the host's glusterd to be free: %s" % e)
    try:
        gd.create_volume("rbdcopy", kind="distribute", bricks=1)
        brick = gd.brickdir / "rbdcopy" / "b1"
        with LoopDisk(tmp_path / "disk", "2G") as disk:
            disk.mkfs_xfs()
            mnt = disk.mount(tmp_path / "mnt")
            d = start(daemon_factory, [{"id": "loc", "kind": "local", "mount_point": str(mnt)},
                                       {"id": "g", "kind": "gluster", "server": gd.hostname,
                                        "volume": "rbdcopy"},
                                       rbd_volume(cluster, pool)])
            d.wait_for(lambda: listing(d)["gluster_volumes"][0]["status"] == "ok", timeout=60,
                       what="gluster volume ok")
            try:
                copy_around(d, cluster, pool, tmp_path, {"loc": mnt, "g": brick})
            finally:
                d.stop()
    finally:
        gd.stop()


def copy_around(d, cluster, pool, tmp_path, dirs):
    """XFS → RBD → Gluster → RBD → XFS, a holey image and a 4 GiB empty one: every copy
    has the source's sha256, holes stay holes and zeros become holes (rbd du, st_blocks)."""
    def copy(src, dst, vol):
        t = run_task(d, "image_copy", image_id=dst, volume_id=vol, image_storage_id=STORAGE,
                     source_image_id=src, source_volume_id=volume_of[src])
        assert t["result"] == "success" and t["progress"] == 100, (src, dst, t)
        volume_of[dst] = vol
        return rows_named(d, dst)[0][0]

    def allocated(name, uuid):
        vol = volume_of[name]
        if vol == "ceph1":
            assert cluster.images(pool).count("images.%s.raw" % uuid) == 1
            return used_bytes(cluster, pool, "images.%s.raw" % uuid)
        f = dirs[vol] / "images" / ("%s.raw" % uuid)
        return f.stat().st_blocks * 512

    src = tmp_path / "holey.raw"
    sha = write_random(src, 48 * MiB, 5, holes=True)  # 3 pieces of 1 MiB, in 4 MiB steps
    data = os.stat(src).st_blocks * 512  # rbd allocates 4 MiB objects: 4x that at most
    check_created(put(d, esdc("x0"), src, params={"volume_id": "loc"}), "x0", sha, 48 * MiB,
                  "raw", 48 * MiB, "loc")
    t = run_task(d, "image_create", image_id="e0", volume_id="loc", image_storage_id=STORAGE,
                 size_mb=4096, format="raw")
    assert t["result"] == "success", t
    volume_of = {"x0": "loc", "e0": "loc"}
    # the upload wrote its zeros (48 MiB allocated on XFS); image_copy writes none of them
    assert allocated("x0", rows_named(d, "x0")[0][0]) >= 48 * MiB
    for i, vol in enumerate(("ceph1", "g", "ceph1", "loc"), 1):
        for img, size in (("x", 48 * MiB), ("e", 4 * GiB)):
            uuid = copy("%s%d" % (img, i - 1), "%s%d" % (img, i), vol)
            used = allocated("%s%d" % (img, i), uuid)
            if img == "e":
                assert used == 0 if vol == "ceph1" else used < 64 * MiB, (vol, used)
            else:
                assert 0 < used <= 4 * data < 48 * MiB, (vol, used, data)
                g, got, n = download(d, esdc("x%d" % i))
                assert (g.status_code, n, got) == (200, size, sha), (vol, g.status_code)
    assert sha256_file(dirs["loc"] / "images" / ("%s.raw" % rows_named(d, "x4")[0][0])) == sha


def consistent(d, cluster, pool):
    """(problems, staged): no active row without its RBD image, no RBD image outside
    staging without a row."""
    names = cluster.images(pool)
    imgs = {(u, f) for u, f in db_rows(
        d, "SELECT uuid, format FROM image WHERE status = 'active' AND volume_id = 'ceph1'")}
    saving = {u for (u,) in db_rows(d, "SELECT uuid FROM image WHERE status = 'saving'")}
    clones = {p for (p,) in db_rows(d, "SELECT path FROM clone")}
    problems = []
    for u, f in imgs:
        if "images.%s.%s" % (u, f) not in names:
            problems.append("row %s without its image" % u)
    for p in clones:
        if p.replace("/", ".", 1) not in names:
            problems.append("clone row %s without its image" % p)
    for n in names:
        if n.startswith("images."):
            m = re.match(r"images\.(.{36})\.(\w+)$", n)
            if not m or ((m.group(1), m.group(2)) not in imgs and m.group(1) not in saving):
                problems.append("image %s without a row" % n)
        elif n.startswith("clones."):
            if n.replace(".", "/", 1) not in clones:
                problems.append("clone %s without a row" % n)
        elif not n.startswith("staging."):
            problems.append("unexpected %s" % n)
    return problems


class HeldUpload(threading.Thread):
    """A PUT of data over a raw socket that stops sending after `hold` bytes (None: sends
    it all) and waits there, so a kill -9 lands while the upload is surely in flight;
    with `release`, it sends the rest once that is set. status: the reply's code (None
    without one), at: when it came (time.monotonic)."""

    def __init__(self, d, path, data, hold=None, release=None):
        super().__init__(daemon=True)
        self.d, self.path, self.data, self.hold, self.release = d, path, data, hold, release
        self.sent = 0
        self.at_hold = threading.Event()
        self.status = self.at = None
        self.reply = b""

    def send(self, s, end):
        view = memoryview(self.data)
        while self.sent < end:
            n = min(MiB, end - self.sent)
            s.sendall(view[self.sent:self.sent + n])
            self.sent += n

    def run(self):
        head = ("PUT %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                % (self.path, self.d.port, self.d.token, len(self.data)))
        try:
            with socket.create_connection(("127.0.0.1", self.d.port), timeout=90) as s:
                s.sendall(head.encode())
                self.send(s, len(self.data) if self.hold is None else self.hold)
                self.at_hold.set()
                if self.release:
                    self.release.wait(90)
                    try:
                        self.send(s, len(self.data))
                    except OSError:
                        pass  # the daemon answered before taking it all
                while b"\r\n\r\n" not in self.reply:  # the reply, or the kill's reset / EOF
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    self.reply += chunk
                self.at = time.monotonic()
                m = re.match(rb"HTTP/1\.1 (\d{3}) ", self.reply)
                self.status = int(m.group(1)) if m else None
        except OSError:
            pass  # the daemon was killed under it
        finally:
            self.at_hold.set()


def crash_rounds(daemon_factory, cluster, pool, rounds, seed):
    """A daemon on its own pool, and kill -9 of it in each round while two uploads are in flight (one held at a random
    byte, one sent whole and being committed) and guest_clones keep coming; after each
    restart no active row lacks its RBD image (at once), and at the end the recoveries
    have left no RBD image outside staging without its row. Returns (kills with an upload unfinished, kills
    with clones submitted since the round's start)."""
    cluster.create_pool(pool)
    d = start(daemon_factory, [rbd_volume(cluster, pool)], sub=pool)
    rng = random.Random(seed)
    data = os.urandom(16 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    check_created(put(d, esdc("base"), data), "base", sha, len(data), "raw", len(data), "ceph1")
    during_uploads = during_clones = 0
    for i in range(rounds):
        ups = [HeldUpload(d, esdc("u%d_0" % i), data, hold=rng.randrange(1, 16) * MiB),
               HeldUpload(d, esdc("u%d_1" % i), data)]
        for t in ups:
            t.start()
        stop, submitted = threading.Event(), []

        def clones():
            n = 0
            while not stop.is_set():
                try:
                    submit_task(d, "guest_clone", image_id="base", guest_id="g%d_%d" % (i, n),
                                clone_id="c%d_%d" % (i, n))
                except (OSError, requests.RequestException, AssertionError):
                    return  # killed under the request
                submitted.append(n)
                n += 1
                time.sleep(rng.uniform(0, 0.05))
        cl = threading.Thread(target=clones, daemon=True)
        cl.start()
        ups[0].at_hold.wait(30)
        d.wait_for(lambda: submitted, timeout=30, interval=0.01, what="a clone submitted")
        time.sleep(rng.uniform(0, 0.5))
        during_uploads += any(t.is_alive() for t in ups)
        during_clones += bool(submitted)
        d.kill9()
        stop.set()
        for t in ups + [cl]:
            t.join(timeout=30)
        d.start()
        # a row is committed only after its image is published: no recovery needed for this
        rows = db_rows(d, "SELECT uuid, format FROM image WHERE status = 'active'")
        names = set(cluster.images(pool))
        assert all("images.%s.%s" % r in names for r in rows), (i, rows, names)
        d.wait_for(lambda: rbd_entry(d)["status"] == "ok", timeout=60, what="volume ok")
    # what a kill left beyond staging (an image or a clone published, its row not yet
    # committed) is removed by the recoveries, the next round's kill perhaps interrupting
    # one; they may wait for the killed clients' watches to expire (5 s here)
    d.wait_for(lambda: consistent(d, cluster, pool) == [], timeout=60,
               what="%s consistent: %s" % (pool, consistent(d, cluster, pool)))
    g, got, n = download(d, esdc("base"))
    assert (g.status_code, got) == (200, sha)
    d.stop()
    return during_uploads, during_clones


def staged_end_key(cluster, pool, uuid):
    """What the staging image's END_KEY says (the written end a resume starts from)."""
    r = subprocess.run(["rbd", "-c", str(cluster.conf), "image-meta", "get",
                        "%s/staging.%s.upload" % (pool, uuid), "stowage.end"],
                       capture_output=True, text=True)
    return int(r.stdout) if r.returncode == 0 else None


def test_an_upload_killed_midway_resumes_from_its_recorded_end_and_keeps_every_byte(
        cluster, pool, daemon_factory):
    # The written end is recorded in the staging image's metadata behind the writes in
    # flight, every 64 MiB: after a kill -9 it may say less than was written, never more.
    d = start(daemon_factory, [rbd_volume(cluster, pool)])
    data = os.urandom(200 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    held = 150 * MiB
    up = HeldUpload(d, esdc("cut"), data, hold=held)
    up.start()
    assert up.at_hold.wait(60)
    uuid = rows_named(d, "cut")[0][0]
    d.wait_for(lambda: (staged_end_key(cluster, pool, uuid) or 0) >= 128 * MiB, timeout=60,
               interval=0.1, what="the recorded end past 128 MiB")
    d.kill9()
    up.join(timeout=30)
    recorded = staged_end_key(cluster, pool, uuid)
    assert 128 * MiB <= recorded <= held, recorded
    d.start()
    d.wait_for(lambda: rbd_entry(d)["status"] == "ok", timeout=60, what="volume ok")
    # while the cluster is down the daemon cannot tell the offset, and says so
    cluster.stop("osd.0")
    cluster.stop("mon.a")
    try:
        status, off, r = staged_offset(d, "cut", "GET")
        assert (status, off) == (503, None), (status, off, r.text)
        assert "timed out" in r.json()["detail"].lower(), r.text
    finally:
        cluster.restart("mon.a")
        cluster.restart("osd.0")
    d.wait_for(lambda: staged_offset(d, "cut")[0] == 409, timeout=90, interval=0.5,
               what="the offset once the cluster is back")
    status, off, r = staged_offset(d, "cut")
    assert (status, off) == (409, recorded), (status, off, r.text)
    r = put(d, esdc("cut"), data[off:], timeout=120,
            headers={"Content-Range": "bytes %d-%d/%d" % (off, len(data) - 1, len(data)),
                     "X-Checksum-Sha256": sha})
    body = check_created(r, "cut", sha, len(data), "raw", len(data), "ceph1")
    assert body["uuid"] == uuid
    g, got, n = download(d, esdc("cut"))
    assert (g.status_code, n, got) == (200, len(data), sha)
    assert staged_end_key(cluster, pool, uuid) is None  # no staging image left
    d.wait_for(lambda: consistent(d, cluster, pool) == [], timeout=60,
               what="consistent: %s" % consistent(d, cluster, pool))


def test_kill9_during_uploads_and_clones_leaves_nothing_half_made(cluster, daemon_factory):
    # 20 rounds: 4 daemons, each on its own pool, 5 rounds each at the same time (most of
    # a round is waiting for the killed client's watches to expire)
    workers, rounds = 4, 5
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        done = [f.result() for f in [ex.submit(crash_rounds, daemon_factory, cluster, "k%d" % w,
                                               rounds, 9 + w) for w in range(workers)]]
    ups, cls = sum(u for u, _ in done), sum(c for _, c in done)
    print("%d kill -9 rounds in %.1f s: %d during uploads, %d during clones" % (
        workers * rounds, time.monotonic() - t0, ups, cls))
    assert ups == cls == workers * rounds, done


def test_a_cluster_stopped_under_a_running_upload_gives_503_and_leaves_nothing(cluster, pool,
                                                                             daemon_factory):
    d = start(daemon_factory, [rbd_volume(cluster, pool)])
    data = os.urandom(2 * MiB)
    sha = hashlib.sha256(data).hexdigest()
    check_created(put(d, esdc("keep"), data), "keep", sha, len(data), "raw", len(data), "ceph1")
    # an upload in flight: 8 of its 32 MiB sent (its first write may not have begun), then
    # the cluster goes
    release = threading.Event()
    up = HeldUpload(d, esdc("during"), os.urandom(32 * MiB), hold=8 * MiB, release=release)
    up.start()
    assert up.at_hold.wait(30)
    d.wait_for(lambda: [n for n in cluster.images(pool) if n.startswith("staging.")],
               timeout=30, what="the upload's staging image")
    t0 = time.monotonic()
    cluster.stop("osd.0")
    cluster.stop("mon.a")
    try:
        release.set()  # the rest of the body meets a dead cluster
        up.join(timeout=90)
        assert up.status == 503, (up.status, up.reply[:2000])
        # every mon and OSD call times out after 5 s: the answer comes in a few of them
        print("503 %.1f s after the cluster stopped" % (up.at - t0))
        assert up.at - t0 < 40, up.at - t0
        body = json.loads(up.reply.split(b"\r\n\r\n", 1)[1] or b"{}") if b"{" in up.reply \
            else {}
        assert "ceph" in json.dumps(body).lower() or "timed out" in json.dumps(body).lower(), body
        d.wait_for(lambda: rbd_entry(d)["status"] == "broken", timeout=30, what="broken")
        vol = rbd_entry(d)
        assert "ceph" in vol["status_msg"] and "timed out" in vol["status_msg"].lower(), vol
        r = put(d, esdc("later"), data, timeout=60)
        assert r.status_code == 503, (r.status_code, r.text)
        assert d.get("/v1/health").status_code == 200
    finally:
        cluster.restart("mon.a")
        cluster.restart("osd.0")
    d.wait_for(lambda: rbd_entry(d)["status"] == "ok", timeout=90, what="ok again")
    g, got, n = download(d, esdc("keep"))
    assert (g.status_code, got) == (200, sha)
    # nothing half-made: no row for either upload that failed, no image beside "keep"'s
    # (the failed upload's staging image goes with the next recovery or the upload's expiry)
    assert rows_named(d, "during") == [] and rows_named(d, "later") == []
    assert consistent(d, cluster, pool) == []
    assert [n for n in cluster.images(pool) if not n.startswith("staging.")] == \
        ["images.%s.raw" % rows_named(d, "keep")[0][0]]


def test_an_rbd_image_outside_the_catalogue_is_listed_adopted_and_released_by_cinder(
        cluster, pool, daemon_factory, tmp_path):
    """An image someone made in the pool (`rbd import`) is a Cinder manageable volume of the
    RBD volume's host (not claimed safe: any client may have it open); manage adopts it by
    an rbd rename (no byte copied) into the one catalogue — Danube lists it, its bytes
    download — and unmanage gives it back under its own name."""
    data = os.urandom(2 * MiB) + b"\0" * (6 * MiB)
    src = tmp_path / "legacy.raw"
    src.write_bytes(data)
    cluster.rbd("import", str(src), "%s/legacy-disk" % pool)
    d = start(daemon_factory, [rbd_volume(cluster, pool)])
    host = "%s@%s#ceph1" % (socket.gethostname(), STORAGE)
    h = {"X-Auth-Token": d.token, "OpenStack-API-Version": "volume 3.8"}
    base = d.base + "/v3/proj1"

    r = requests.get(base + "/manageable_volumes/detail", params={"host": host}, headers=h,
                     timeout=30)
    assert r.status_code == 200, r.text
    mv, = r.json()["manageable-volumes"]
    assert (mv["reference"], mv["size"], mv["safe_to_manage"], mv["cinder_id"]) == (
        {"source-name": "legacy-disk"}, 1, False, None), mv
    assert "cannot be known" in mv["reason_not_safe"], mv

    r = requests.post(base + "/os-volume-manage", headers=h, timeout=30, json={"volume": {
        "host": host, "ref": {"source-name": "legacy-disk"}, "name": "legacy"}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    d.wait_for(lambda: requests.get(base + "/volumes/" + vid, headers=h, timeout=30).json()[
        "volume"]["status"] == "available", what="adopted")
    assert "legacy-disk" not in cluster.images(pool)
    assert "images.%s.raw" % vid in cluster.images(pool)
    es = requests.get(d.url("/image/"), headers={"ES-API-KEY": d.token}, timeout=30)
    assert es.json()["result"] == ["legacy"], es.text
    got = requests.get(d.url("/image/legacy/file/"), headers={"Authorization": "Token " + d.token},
                       timeout=60)
    assert got.status_code == 200 and hashlib.sha256(got.content).hexdigest() == \
        hashlib.sha256(data).hexdigest()

    r = requests.post(base + "/volumes/%s/action" % vid, headers=h, json={"os-unmanage": None},
                      timeout=30)
    assert r.status_code == 202, r.text
    d.wait_for(lambda: requests.get(base + "/volumes/" + vid, headers=h, timeout=30).status_code
               == 404, what="released")
    assert "legacy-disk" in cluster.images(pool)
    assert not images_of(cluster, pool, "images.")
