"""A warm Cinder manageable-list (issue 11) is served from the watched scan of the volume
root, and every change is seen by the very next list.

An external volume on a directory of this machine (the POSIX backend, which watches the
root with inotify). Each test lists twice first, so that the second list is warm and the
change comes after it; then the next list must show the change, checked on the body
(names, sizes, formats, verdicts, reasons), and a list after that (warm again) the same.
"""
import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from fixtures.daemon import binary

GiB = 1 << 30
PROJECT = "warm"


class Watched:
    def __init__(self, d, root):
        self.d, self.root = d, Path(root)
        self.host = "%s@st%%23v" % socket.gethostname()
        self.s = requests.Session()
        self.h = {"X-Auth-Token": d.token, "OpenStack-API-Version": "volume 3.8"}

    def listing(self):
        """The detailed list as {source-name: entry}, checked against the contract."""
        r = self.s.get(self.d.base + "/v3/%s/manageable_volumes/detail?host=%s"
                       % (PROJECT, self.host), headers=self.h, timeout=30)
        assert r.status_code == 200, r.text
        got = {}
        for x in r.json()["manageable-volumes"]:
            assert set(x) == {"reference", "size", "safe_to_manage", "reason_not_safe",
                              "cinder_id", "extra_info"}, x
            assert (x["reason_not_safe"] is None) == x["safe_to_manage"], x
            assert x["extra_info"]["volume"] == "v"
            got[x["reference"]["source-name"]] = x
        return got

    def warm(self):
        """Two lists with nothing changed between them: the second is warm, and equal."""
        first = self.listing()
        assert self.listing() == first
        return first

    def next_twice(self):
        """The next list, and the warm one after it: both the same."""
        got = self.listing()
        assert self.listing() == got
        return got


def start(daemon_factory, tmp_path):
    root = tmp_path / "vol"
    root.mkdir()
    d = daemon_factory({"probe_ttl_ms": 200, "storages": [{"id": "st", "volumes": [
        {"id": "v", "kind": "external", "mount_point": str(root)}]}]})
    d.wait_for(lambda: d.get("/imagestorages/st").json()["external_volumes"][0]["status"]
               == "ok", what="volume ok")
    return Watched(d, root)


@pytest.fixture
def w(daemon_factory, tmp_path):
    return start(daemon_factory, tmp_path)


def raw(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


def qcow2(path, size):
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(size)],
                   check=True, capture_output=True, timeout=60)


def safe(x, gib, fmt, vsize):
    assert x["safe_to_manage"] is True and x["reason_not_safe"] is None, x
    assert x["size"] == gib and x["cinder_id"] is None, x
    assert x["extra_info"]["format"] == fmt and x["extra_info"]["virtual_size"] == vsize, x


def unsafe(x, why):
    assert x["safe_to_manage"] is False and x["reason_not_safe"].startswith(why), x


def test_new_renamed_and_deleted_files_are_seen_by_the_next_list(w):
    raw(w.root / "a.raw", GiB)
    got = w.warm()
    assert list(got) == ["a.raw"]
    safe(got["a.raw"], 1, "raw", GiB)

    qcow2(w.root / "b.qcow2", 2 * GiB)
    got = w.next_twice()
    assert sorted(got) == ["a.raw", "b.qcow2"]
    safe(got["b.qcow2"], 2, "qcow2", 2 * GiB)

    os.rename(w.root / "b.qcow2", w.root / "c.qcow2")
    got = w.next_twice()
    assert sorted(got) == ["a.raw", "c.qcow2"]
    safe(got["c.qcow2"], 2, "qcow2", 2 * GiB)

    os.unlink(w.root / "a.raw")
    got = w.next_twice()
    assert list(got) == ["c.qcow2"]


def test_a_writer_is_seen_when_it_opens_and_when_it_closes(w):
    raw(w.root / "x.raw", GiB)
    safe(w.warm()["x.raw"], 1, "raw", GiB)
    with open(w.root / "x.raw", "r+b"):  # opened for writing, nothing written
        unsafe(w.next_twice()["x.raw"], "is open for writing")
    safe(w.next_twice()["x.raw"], 1, "raw", GiB)
    with open(w.root / "x.raw", "rb"):  # a reader is not a writer
        safe(w.next_twice()["x.raw"], 1, "raw", GiB)


def test_size_times_and_mode_changes_are_seen(w):
    raw(w.root / "x.raw", GiB)
    w.warm()
    os.truncate(w.root / "x.raw", 3 * GiB)
    safe(w.next_twice()["x.raw"], 3, "raw", 3 * GiB)

    # bigger again, its mtime put back: the size still shows
    st = os.stat(w.root / "x.raw")
    os.truncate(w.root / "x.raw", 5 * GiB)
    os.utime(w.root / "x.raw", ns=(st.st_atime_ns, st.st_mtime_ns))
    safe(w.next_twice()["x.raw"], 5, "raw", 5 * GiB)

    # a qcow2 header written over the raw's first bytes: same size, now a qcow2 of 7 GiB
    qcow2(w.root.parent / "h.qcow2", 7 * GiB)
    header = (w.root.parent / "h.qcow2").read_bytes()
    with open(w.root / "x.raw", "r+b") as f:
        f.write(header)
    got = w.next_twice()["x.raw"]
    assert got["extra_info"]["format"] == "qcow2" and got["size"] == 7, got

    os.chmod(w.root / "x.raw", 0o600)
    os.utime(w.root / "x.raw")
    assert w.next_twice()["x.raw"] == got


def test_a_planted_symlink_and_fifo_are_seen(w):
    raw(w.root / "a.raw", GiB)
    w.warm()
    os.symlink("a.raw", w.root / "l.raw")
    got = w.next_twice()
    unsafe(got["l.raw"], "is a symbolic link")
    safe(got["a.raw"], 1, "raw", GiB)
    os.mkfifo(w.root / "p")
    unsafe(w.next_twice()["p"], "is a FIFO, not a regular file")


def test_a_hard_link_and_a_writer_from_outside_the_volume_are_seen(w):
    """What reaches a file by another name, in a directory nobody watches: the link
    count and a writer."""
    outside = w.root.parent / "outside"
    outside.mkdir()
    raw(w.root / "a.raw", GiB)
    w.warm()
    os.link(w.root / "a.raw", outside / "a")
    unsafe(w.next_twice()["a.raw"], "is a hard link (2 names)")
    with open(outside / "a", "r+b"):
        os.unlink(outside / "a")  # one name again, still held for writing through the other
        unsafe(w.next_twice()["a.raw"], "is open for writing")
    safe(w.next_twice()["a.raw"], 1, "raw", GiB)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")
def test_a_file_mounted_over_an_entry_is_seen(w):
    """A mount changes no inode of the volume, so no inotify watch sees it: the mount
    table's change does."""
    raw(w.root / "a.raw", GiB)
    other = w.root.parent / "other.raw"
    raw(other, 6 * GiB)
    w.warm()
    subprocess.run(["mount", "--bind", str(other), str(w.root / "a.raw")], check=True)
    try:
        safe(w.next_twice()["a.raw"], 6, "raw", 6 * GiB)
    finally:
        subprocess.run(["umount", str(w.root / "a.raw")], check=True)
    safe(w.next_twice()["a.raw"], 1, "raw", GiB)


def test_the_catalogue_changing_alone_is_seen(w):
    """Managed images are listed from the catalogue: deleting one changes nothing in the
    root, only the catalogue's generation."""
    raw(w.root / "a.raw", GiB)
    base = w.d.base + "/v3/%s" % PROJECT
    r = w.s.post(base + "/os-volume-manage", headers=w.h, timeout=30, json={"volume": {
        "host": w.host.replace("%23", "#"), "ref": {"source-name": "a.raw"}}})
    assert r.status_code == 202, r.text
    vid = r.json()["volume"]["id"]
    w.d.wait_for(lambda: w.s.get(base + "/volumes/" + vid, headers=w.h, timeout=30)
                 .json()["volume"]["status"] == "available", what="available")
    got = w.warm()
    assert list(got) == ["images/%s.raw" % vid], got
    x = got["images/%s.raw" % vid]
    assert x["cinder_id"] == vid and x["reason_not_safe"] == "already managed", x
    r = w.s.delete(base + "/volumes/" + vid, headers=w.h, timeout=30)
    assert r.status_code == 202, r.text
    w.d.wait_for(lambda: w.s.get(base + "/volumes/" + vid, headers=w.h,
                                 timeout=30).status_code == 404, what="deleted")
    assert w.next_twice() == {}


def test_events_lost_to_an_overflowing_queue_still_make_the_next_list_scan(w):
    raw(w.root / "a.raw", GiB)
    (w.root / "sub").mkdir()
    got = w.warm()
    unsafe(got["sub"], "is a directory, not a regular file")
    with open("/proc/sys/fs/inotify/max_queued_events") as f:
        limit = int(f.read())
    # Opening a directory says nothing of writers, so these events alone would not make
    # the list scan again; alternating, so that the kernel does not merge them.
    for _ in range(limit // 2 + 16):
        os.close(os.open(w.root, os.O_RDONLY | os.O_DIRECTORY))
        os.close(os.open(w.root / "sub", os.O_RDONLY | os.O_DIRECTORY))
    os.truncate(w.root / "a.raw", 4 * GiB)  # its own event is lost: only the overflow says so
    safe(w.next_twice()["a.raw"], 4, "raw", 4 * GiB)


@pytest.mark.parametrize("limit", ["max_inotify_instances", "max_inotify_watches"])
def test_when_inotify_limits_refuse_a_watch_every_list_scans(daemon_factory, tmp_path,
                                                             monkeypatch, limit):
    """The daemon runs in a user namespace of its own whose inotify limit is 0 (an
    instance) or 1 (the root's watch, none for its files): it says so once, and lists
    see every change as without a watch. (From there it cannot look into this process's
    descriptors: the writers are test_a_writer_is_seen_when_it_opens_and_when_it_closes's
    and test_cinder.py's.)"""
    if not shutil.which("unshare"):
        pytest.skip("needs unshare")
    wrapper = tmp_path / "stowaged-limited"
    wrapper.write_text('#!/bin/sh\nexec unshare -U -r sh -c \'echo %d > /proc/sys/user/%s && '
                       'exec "$0" "$@"\' %s "$@"\n' % (limit == "max_inotify_watches", limit,
                                                       shlex.quote(binary())))
    wrapper.chmod(0o755)
    monkeypatch.setenv("STOWAGED", str(wrapper))
    w = start(daemon_factory, tmp_path)
    raw(w.root / "a.raw", GiB)
    safe(w.warm()["a.raw"], 1, "raw", GiB)
    raw(w.root / "b.raw", 2 * GiB)
    safe(w.next_twice()["b.raw"], 2, "raw", 2 * GiB)
    os.truncate(w.root / "a.raw", 3 * GiB)
    safe(w.next_twice()["a.raw"], 3, "raw", 3 * GiB)
    os.unlink(w.root / "b.raw")
    assert list(w.next_twice()) == ["a.raw"]
    log = w.d.log()
    assert log.count("volume v: cannot watch its root") == 1, log
