import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fixtures.daemon import Daemon  # noqa: E402
from fixtures.loopdisk import LoopDisk  # noqa: E402


@pytest.fixture
def daemon_factory(tmp_path):
    """Start daemons with a given config; every one is stopped (and checked) at the end."""
    started = []

    def make(config=None, sub="d", **kw):
        d = Daemon(tmp_path / sub if sub else tmp_path, config=config, **kw)
        os.makedirs(d.tmpdir, exist_ok=True)
        d.start()
        started.append(d)
        return d

    yield make
    errors = []
    for d in reversed(started):
        try:
            d.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


@pytest.fixture
def ext_daemon(daemon_factory, tmp_path):
    """A daemon with one storage 'default' holding one directory volume."""
    vol = tmp_path / "vol"
    vol.mkdir()
    cfg = {"probe_ttl_ms": 200,
           "storages": [{"id": "default", "name": "default",
                         "volumes": [{"id": "dir1", "kind": "external",
                                      "mount_point": str(vol)}]}]}
    return daemon_factory(cfg)


@pytest.fixture
def make_local_volume(daemon_factory, tmp_path):
    """make_local_volume(size, extra=None, sub=None, reflink=True) → (daemon, mount point):
    a fresh XFS loop disk of `size` (in tmp_path/disk[-sub], mounted on tmp_path/mnt[-sub])
    and a daemon (probe_ttl_ms 200, config keys `extra` on top) with one storage 'st'
    holding one local volume 'loc' on it, returned once the volume is ok."""
    disks, daemons = [], []

    def make(size, extra=None, sub=None, reflink=True):
        tail = "-" + sub if sub else ""
        disk = LoopDisk(tmp_path / ("disk" + tail), size)
        disks.append(disk)
        disk.mkfs_xfs(reflink=reflink)
        mnt = disk.mount(tmp_path / ("mnt" + tail))
        cfg = {"probe_ttl_ms": 200, "storages": [{"id": "st", "volumes": [
            {"id": "loc", "kind": "local", "mount_point": str(mnt)}]}]}
        cfg.update(extra or {})
        d = daemon_factory(cfg)
        daemons.append(d)  # before the wait: one that never gets ready still holds the mount

        def ok():
            # "ok" is published after the probe opened the backend and ran recovery
            r = d.get("/imagestorages/st")
            return r.status_code == 200 and any(v["volume_id"] == "loc" and v["status"] == "ok"
                                                for v in r.json()["volumes"])
        d.wait_for(ok, timeout=60, what="volume loc ok")
        return d, mnt

    yield make
    errors = []
    try:
        for d in daemons:  # before the umount: a running daemon keeps the mount busy
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
    finally:
        for disk in disks:
            disk.close()
    assert not errors, "\n".join(errors)
