import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fixtures.daemon import Daemon  # noqa: E402


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
