"""The curl examples in docs/ work: every ```sh block of a page runs, in order, against a
real daemon set up like `make run` (storage "default", volume "default-dir", var/admin.token)."""
import os
import re
import shutil
import subprocess

import pytest

from fixtures.daemon import REPO, binary

PAGES = ["native.md", "esdc.md", "flexvdi.md", "operations.md", "cinder.md", "zstack.md"]


def sh_blocks(page):
    text = open(os.path.join(REPO, "docs", page)).read()
    return re.findall(r"```sh\n(.*?)```", text, re.S)


@pytest.mark.parametrize("page", PAGES)
def test_docs_examples_run(page, daemon_factory, tmp_path):
    blocks = sh_blocks(page)
    assert blocks, "%s has no runnable examples" % page
    vol = tmp_path / "vol"
    vol.mkdir()
    # like `make run`, plus the loopback address the examples' own IMGAPI server listens on
    d = daemon_factory({"probe_ttl_ms": 200, "import_allow": ["127.0.0.1"], "storages": [
        {"id": "default", "volumes": [{"id": "default-dir", "kind": "external",
                                       "mount_point": str(vol)}]}]})
    d.wait_for(lambda: d.get("/imagestorages/default").json()["external_volumes"][0]["status"] == "ok")
    work = tmp_path / "work"
    work.mkdir()
    (work / "var").symlink_to(d.state_dir)
    shutil.copy(d.config_path, os.path.join(d.state_dir, "stowaged.json"))
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(work / "disk.qcow2"), "64M"],
                   check=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "stowaged").symlink_to(binary())
    script = "set -euo pipefail\nTOKEN=$(cat var/admin.token)\n" + "\n".join(blocks)
    script = script.replace("127.0.0.1:8080", "127.0.0.1:%d" % d.port)
    env = dict(d.env, PATH="%s:%s" % (bindir, os.environ["PATH"]))
    r = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, "%s examples failed:\n--- script\n%s\n--- stdout\n%s\n--- stderr\n%s" % (
        page, script, r.stdout[-3000:], r.stderr[-3000:])
