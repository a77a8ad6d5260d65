"""Small whole bodies (issue 15): a PUT without Content-Range whose Content-Length is at
most 64 KiB is written and hashed by its finish, from one buffer of its own size, with no
writer or hasher threads; a bigger one takes the pipeline. Either way the reply and the
row say the same sha256, size and format, and the file holds the bytes. A real daemon on
an XFS loop volume.

- 1 byte, 64 KiB exactly and 64 KiB + 1 land with their sha256, size and format in the
  reply, the row and the file; 0 bytes are refused by the inspector (empty_file) and leave
  nothing; a small qcow2 is detected as qcow2;
- a small body with a wrong checksum is refused and leaves no row, no file, no staging
  file;
- a small create whose client goes away before its last byte (FIN or RST) leaves nothing,
  and the same name can be created at once."""
import hashlib
import subprocess

import pytest

from test_data_path import (KiB, QEMU_IMG, Vol, assert_no_image, check_created, db_rows,
                            detail, esdc, native, put, vanish)

SMALL_MAX = 64 * KiB


@pytest.fixture
def local(make_local_volume):
    """A Vol: a daemon with one local volume 'loc' on a fresh XFS loop disk."""
    d, mnt = make_local_volume("1G")
    return Vol(d, "loc", "local", mnt, "volumes")


def check_landed(v, r, name, data, fmt, vsize):
    sha = hashlib.sha256(data).hexdigest()
    body = check_created(r, name, sha, len(data), fmt, vsize, v.vid)
    rows = db_rows(v.d, "SELECT status, format, checksum_sha256, virtual_size FROM image "
                   "WHERE uuid = ?", (body["uuid"],))
    assert rows == [("active", fmt, sha, vsize)], rows
    assert v.image_path(body["uuid"], fmt).read_bytes() == data
    g = v.d.get(native(body["uuid"]))
    assert g.status_code == 200 and g.content == data, (g.status_code, len(g.content))
    return body


def test_small_bodies_around_the_threshold_land_with_their_sha256_size_and_format(local):
    v = local
    r = put(v.d, esdc("small0"), b"")
    assert r.status_code == 400 and detail(r) == "image refused: empty_file: the file is empty", \
        (r.status_code, r.text)
    assert_no_image(v, "small0")
    for n in (1, 4095, SMALL_MAX, SMALL_MAX + 1):
        data = bytes((i * 7 + n) % 251 for i in range(n))
        check_landed(v, put(v.d, esdc("small%d" % n), data), "small%d" % n, data, "raw", n)
    assert v.files(".staging") == []


def test_a_small_qcow2_is_inspected_as_qcow2(local, tmp_path):
    path = tmp_path / "tiny.qcow2"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-o", "cluster_size=512",
                    str(path), "1M"], check=True)
    data = path.read_bytes()
    assert len(data) <= SMALL_MAX, len(data)
    check_landed(local, put(local.d, esdc("tinyq"), data), "tinyq", data, "qcow2", 1 << 20)


def test_a_small_body_with_a_wrong_checksum_leaves_nothing(local):
    data = b"small but wrong" * 10
    wrong = hashlib.sha256(b"other").hexdigest()
    r = put(local.d, esdc("badsum"), data, headers={"X-Checksum-Sha256": wrong})
    assert r.status_code == 400, (r.status_code, r.text)
    msg = detail(r)
    assert hashlib.sha256(data).hexdigest() in msg and wrong in msg, msg
    assert_no_image(local, "badsum")


def test_a_small_create_whose_client_vanishes_leaves_nothing(local):
    d = local.d
    for name, reset in (("gone_fin", False), ("gone_rst", True)):
        vanish(d, esdc(name), 1000, b"z" * 500, reset=reset, hold=0.2)
    for name in ("gone_fin", "gone_rst"):
        assert_no_image(local, name)
    for name in ("gone_fin", "gone_rst"):
        data = name.encode()
        check_landed(local, put(d, esdc(name), data), name, data, "raw", len(data))
