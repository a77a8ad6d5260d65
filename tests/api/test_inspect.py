"""`stowaged inspect` and `stowaged qcow2-overlay`, black-box.

The corpus comes from tests/fixtures/make_corpus.py (qemu-img + byte
patches) with its expectations table. The binary is $STOWAGED (default
<repo>/build/stowaged); when it has not been built, the format library is
compiled alone with a ten-line main, so these tests never wait for the daemon.

qemu-img is used here to make fixtures and to check results, never by the
inspector. How the differential test maps formats to qemu's view:
- an ISO is "raw" to qemu (it has no iso driver);
- qemu probes only offset 0 for "conectix", so a fixed VHD is compared with
  `qemu-img info -f vpc`;
- qemu rounds a raw file's size up to whole 512-byte sectors; we report the
  file's own size.
"""
import json
import os
import shutil
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
GiB = 1 << 30
OVERLAY_BYTES = 4 * 65536  # header, refcount table, refcount block, L1: one cluster each

pytestmark = pytest.mark.skipif(not QEMU_IMG or not QEMU_IO, reason="needs qemu-img and qemu-io")

DRIVER = r"""
#include <string.h>
#include "stowage/format.h"
int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "inspect"))
        return fmt_cli_inspect(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "qcow2-overlay"))
        return fmt_cli_overlay(argc - 1, argv + 1);
    return 2;
}
"""


@pytest.fixture(scope="session")
def stowaged(tmp_path_factory):
    exe = os.environ.get("STOWAGED", os.path.join(REPO, "build", "stowaged"))
    if os.path.exists(exe):
        return exe
    d = tmp_path_factory.mktemp("fmtcli")
    (d / "main.c").write_text(DRIVER)
    src = sorted(os.path.join(REPO, "src", "format", f)
                 for f in os.listdir(os.path.join(REPO, "src", "format")) if f.endswith(".c"))
    out = str(d / "stowaged")
    r = subprocess.run(["cc", "-std=c11", "-O1", "-D_GNU_SOURCE", "-D_FILE_OFFSET_BITS=64",
                        "-I", os.path.join(REPO, "include"), str(d / "main.c"), *src,
                        "-ljansson", "-o", out], capture_output=True, text=True)
    if r.returncode:
        pytest.skip("no %s and the format library does not build alone: %s" % (exe, r.stderr))
    return out


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus") / "c"
    subprocess.run(["/usr/bin/python3", os.path.join(REPO, "tests", "fixtures", "make_corpus.py"),
                    str(d)], check=True)
    with open(d / "expect.json") as f:
        return d, json.load(f)["samples"]


def inspect(stowaged, path, *args, env=None):
    r = subprocess.run([stowaged, "inspect", str(path), *args], capture_output=True, text=True,
                       env=env, timeout=60)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None)


def qemu_info(path, driver=None):
    argv = [QEMU_IMG, "info", "--output=json"] + (["-f", driver] if driver else []) + [str(path)]
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def test_inspect_reports_each_corpus_sample_exactly(stowaged, corpus):
    d, samples = corpus
    wrong = []
    for s in samples:
        args = []
        if s["declared"]:
            args += ["--format", s["declared"]]
        if s["max_virtual_size"]:
            args += ["--max-virtual-size", str(s["max_virtual_size"])]
        rc, out = inspect(stowaged, d / s["name"], *args)
        want_rc = 0 if s["verdict"] == "accept" else 3
        got = (rc, out["format"], out["virtual_size"], out["verdict"], out["reason"],
               sorted(out["flags"]))
        want = (want_rc, s["format"], s["virtual_size"], s["verdict"], s["reason"], s["flags"])
        if got != want:
            wrong.append("%s %s: got %s (%s), want %s" % (s["name"], args, got, out["detail"], want))
        elif s["verdict"] == "refuse":
            assert out["detail"], s["name"]  # every refusal says why in words too
    assert not wrong, "\n".join(wrong)
    reasons = {s["reason"] for s in samples if s["reason"]}
    assert len(reasons) >= 30  # every refusal rule has its sample


def test_accepted_samples_agree_with_qemu_img_info(stowaged, corpus):
    d, samples = corpus
    wrong, seen = [], set()
    for s in samples:
        if s["verdict"] != "accept" or s["name"] in seen:
            continue
        seen.add(s["name"])
        rc, out = inspect(stowaged, d / s["name"])
        q = qemu_info(d / s["name"], s["qemu_driver"])
        ours = out["virtual_size"]
        if q["format"] == "raw":
            ours = (ours + 511) // 512 * 512
        if (q["format"], q["virtual-size"]) != (s["qemu_format"], ours) or rc != 0:
            wrong.append("%s: qemu-img says %s %d, we say %s %d (rc %d)" % (
                s["name"], q["format"], q["virtual-size"], out["format"], out["virtual_size"], rc))
    assert not wrong, "\n".join(wrong)
    assert len(seen) >= 30


def test_inspect_never_runs_qemu_img(stowaged, corpus, tmp_path):
    d, _ = corpus
    trap = tmp_path / "bin"
    trap.mkdir()
    for prog in ("qemu-img", "qemu-io", "sh", "python3"):
        (trap / prog).write_text('#!/bin/sh\n: > "$0.ran"\nexit 1\n')
        os.chmod(trap / prog, 0o755)
    env = {"PATH": str(trap)}
    rc, out = inspect(stowaged, d / "qcow2_backing.qcow2", env=env)
    assert (rc, out["reason"]) == (3, "qcow2_backing_file")
    rc, out = inspect(stowaged, d / "vmdk_sparse_1g.vmdk", env=env)
    assert (rc, out["format"], out["virtual_size"]) == (0, "vmdk", GiB)
    assert not list(trap.glob("*.ran"))


def test_inspect_exit_codes_for_errors(stowaged, tmp_path):
    rc, out = inspect(stowaged, tmp_path / "missing.img")
    assert rc == 1
    assert out["verdict"] == "error" and out["reason"] == "read_error"
    (tmp_path / "x.img").write_bytes(b"\x00" * 4096)
    rc, out = inspect(stowaged, tmp_path / "x.img", "--format", "nosuchformat")
    assert rc == 2 and out is None
    r = subprocess.run([stowaged, "inspect"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


# ---------------------------------------------------------------- overlays

PATTERNS = ((0, b"\xa5" * (1 << 20)), (-(1 << 20), b"\x5a" * 65536))


def make_base(tmp_path, fmt, size):
    base = tmp_path / ("base." + fmt)
    if fmt == "raw":
        with open(base, "wb") as f:
            f.truncate(size)
            for off, data in PATTERNS:
                f.seek(off % size)
                f.write(data)
    else:
        subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", str(base), str(size)], check=True)
        cmds = []
        for off, data in PATTERNS:
            cmds += ["-c", "write -P 0x%02x %d %d" % (data[0], off % size, len(data))]
        subprocess.run([QEMU_IO, "-f", "qcow2", *cmds, str(base)], check=True, capture_output=True)
    return base


def make_overlay(stowaged, out, base, fmt):
    t0 = time.monotonic()
    r = subprocess.run([stowaged, "qcow2-overlay", str(out), str(base), fmt], capture_output=True,
                       text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, "%s qcow2-overlay failed (is fmt_cli_overlay wired into " \
        "src/main.c?): %s" % (stowaged, r.stderr)
    return json.loads(r.stdout), elapsed


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
@pytest.mark.parametrize("size", [GiB, 100 * GiB], ids=["1G", "100G"])
def test_overlay_is_a_valid_copy_on_write_child(stowaged, tmp_path, fmt, size):
    base = make_base(tmp_path, fmt, size)
    ov = tmp_path / "clone.qcow2"
    res, _ = make_overlay(stowaged, ov, base, fmt)
    assert res["virtual_size"] == size
    assert res["bytes_written"] == OVERLAY_BYTES == os.path.getsize(ov)
    assert res["backing_file"] == str(base) and res["backing_format"] == fmt

    info = qemu_info(ov)
    assert info["format"] == "qcow2" and info["virtual-size"] == size
    assert info["backing-filename"] == str(base)
    assert info["backing-filename-format"] == fmt
    chk = subprocess.run([QEMU_IMG, "check", str(ov)], capture_output=True, text=True)
    assert chk.returncode == 0 and "No errors were found" in chk.stdout, chk.stdout + chk.stderr

    # every byte of the base reads back through the overlay
    flat = tmp_path / "flat.raw"
    subprocess.run([QEMU_IMG, "convert", "-O", "raw", str(ov), str(flat)], check=True)
    assert os.path.getsize(flat) == size
    with open(flat, "rb") as f:
        for off, data in PATTERNS:
            f.seek(off % size)
            assert f.read(len(data)) == data
    cmp = subprocess.run([QEMU_IMG, "compare", "-f", "raw", "-F", fmt, str(flat), str(base)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr

    # the guest's writes land in the overlay, never in the base
    subprocess.run([QEMU_IO, "-f", "qcow2", "-c", "write -P 0x77 0 64k", str(ov)], check=True,
                   capture_output=True)
    assert subprocess.run([QEMU_IMG, "check", str(ov)], capture_output=True).returncode == 0
    cmp = subprocess.run([QEMU_IMG, "compare", "-f", "raw", "-F", fmt, str(flat), str(base)],
                         capture_output=True, text=True)
    assert cmp.returncode == 0

    # a client uploading such a file is refused: it points at another file
    rc, out = inspect(stowaged, ov)
    assert (rc, out["format"], out["reason"]) == (3, "qcow2", "qcow2_backing_file")


def test_overlay_cost_does_not_depend_on_base_size(stowaged, tmp_path):
    results = {}
    for size in (GiB, 100 * GiB):
        d = tmp_path / str(size)
        d.mkdir()
        base = make_base(d, "raw", size)
        res, elapsed = make_overlay(stowaged, d / "clone.qcow2", base, "raw")
        st = os.stat(d / "clone.qcow2")
        results[size] = (res["bytes_written"], st.st_size)
        print("overlay on a %d GiB base: %d bytes in %.1f ms" % (size // GiB, st.st_size, elapsed * 1e3))
    # O(1): the same few clusters whatever the base (times are printed, never asserted)
    assert results[GiB] == results[100 * GiB] == (OVERLAY_BYTES, OVERLAY_BYTES)


def test_overlay_refuses_to_overwrite_and_bad_formats(stowaged, tmp_path):
    base = make_base(tmp_path, "raw", GiB)
    ov = tmp_path / "clone.qcow2"
    make_overlay(stowaged, ov, base, "raw")
    r = subprocess.run([stowaged, "qcow2-overlay", str(ov), str(base), "raw"], capture_output=True)
    assert r.returncode == 1
    r = subprocess.run([stowaged, "qcow2-overlay", str(tmp_path / "b.qcow2"), str(base), "qed"],
                       capture_output=True)
    assert r.returncode == 1 and not (tmp_path / "b.qcow2").exists()
