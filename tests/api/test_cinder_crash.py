"""Cinder's unmanage survives kill -9 (issue 11; the protocol in src/core/unmanaged.c):
whenever the daemon dies, a restart leaves exactly one of
- the managed image: its active row (not releasing) and its file in images/, or
- the file back in the volume root under its reference name, with no row,
and the bytes and the inode are the ones that were adopted. Restart recovery settles a
release a crash cut short either way (finished when the file had moved, undone when it
had not), and the unmanage job is completed (success when the file is back).

Two tests: kill -9 at random moments of unmanage (STOWAGE_CRASH_ROUNDS rounds, default 10;
STOWAGE_CRASH_SEED replays), and both cut-short states that the protocol can leave, made
the way a crash leaves them (the row marked releasing before the move, then the move), so
that each of recovery's two decisions is seen every run. XFS on a loop device.
"""
import collections
import hashlib
import json
import os
import random
import socket
import sqlite3
import time

import pytest
import requests

ROUNDS = int(os.environ.get("STOWAGE_CRASH_ROUNDS", "10"))
SEED = int(os.environ.get("STOWAGE_CRASH_SEED", str(int(time.time() * 1000) % 1000000007)))
STORAGE, VOL, PROJECT, OBJECT = "st", "loc", "proj1", "vm.raw"
MiB = 1 << 20


class Rig:
    def __init__(self, d, root):
        self.d, self.root = d, root
        self.host = "%s@%s#%s" % (socket.gethostname(), STORAGE, VOL)
        self.h = {"X-Auth-Token": d.token, "OpenStack-API-Version": "volume 3.8"}

    def url(self, path):
        return "%s/v3/%s%s" % (self.d.base, PROJECT, path)

    def wait_ready(self):
        def ok():
            r = self.d.get("/imagestorages/" + STORAGE)
            return r.status_code == 200 and all(v["status"] == "ok" for v in r.json()["volumes"])
        self.d.wait_for(ok, timeout=60, what="volume ok after start")

    def restart(self, kill):
        if kill:
            self.d.kill9()
        else:
            self.d.stop()
        self.d.start()
        self.wait_ready()

    def db(self, sql, args=(), write=False):
        path = os.path.join(self.d.state_dir, "stowage.db")
        con = sqlite3.connect(path if write else "file:%s?mode=ro" % path, uri=not write,
                              timeout=30)
        try:
            rows = con.execute(sql, args).fetchall()
            con.commit()
            return rows
        finally:
            con.close()

    def adopt(self):
        r = requests.post(self.url("/os-volume-manage"), headers=self.h, timeout=30, json={
            "volume": {"host": self.host, "ref": {"source-name": OBJECT}, "name": "vm"}})
        assert r.status_code == 202, r.text
        vid = r.json()["volume"]["id"]
        self.d.wait_for(lambda: self.status(vid) == "available", timeout=60, what="available")
        return vid

    def status(self, vid):
        r = requests.get(self.url("/volumes/" + vid), headers=self.h, timeout=30)
        return r.json()["volume"]["status"] if r.status_code == 200 else r.status_code

    def unmanage(self, vid):
        r = requests.post(self.url("/volumes/%s/action" % vid), headers=self.h, timeout=30,
                          json={"os-unmanage": None})
        assert r.status_code == 202, r.text

    def outcome(self, vid, ino, digest):
        """'managed' or 'released', after checking that it is exactly one of them."""
        rows = self.db("SELECT status, releasing, origin FROM image WHERE uuid = ?", (vid,))
        assert self.db("SELECT uuid FROM image WHERE releasing != 0") == []
        in_images = self.root / "images" / ("%s.raw" % vid)
        back = self.root / OBJECT
        if rows:
            assert rows == [("active", 0, OBJECT)], rows
            assert in_images.exists() and not back.exists()
            path, what = in_images, "managed"
        else:
            assert back.exists() and not in_images.exists()
            path, what = back, "released"
        assert os.stat(path).st_ino == ino
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest
        assert os.listdir(self.root / "images") == ([in_images.name] if rows else [])
        return what


@pytest.fixture
def rig(make_local_volume):
    d, root = make_local_volume("1G")
    with open(root / OBJECT, "wb") as f:
        f.write(random.Random(SEED).randbytes(4 * MiB))
    return Rig(d, root)


def file_id(path):
    with open(path, "rb") as f:
        return os.stat(path).st_ino, hashlib.sha256(f.read()).hexdigest()


def test_kill9_during_unmanage_leaves_the_image_or_the_file(rig):
    ino, digest = file_id(rig.root / OBJECT)
    vid = rig.adopt()
    t0 = time.monotonic()
    rig.unmanage(vid)
    rig.d.wait_for(lambda: rig.status(vid) == 404, timeout=60, what="released")
    took = time.monotonic() - t0
    assert rig.outcome(vid, ino, digest) == "released"
    # the job runs right after the POST answers: kill within twice its own run time
    line = [l for l in rig.d.log().splitlines() if "(image.unmanage): success in " in l][-1]
    run = int(line.split("success in ")[1].split("us")[0]) / 1e6
    print("\nunmanage: %.1f ms from POST to gone, the job %.1f ms; seed %d"
          % (took * 1e3, run * 1e3, SEED))

    rng = random.Random(SEED)
    counts = collections.Counter()
    for i in range(ROUNDS):
        vid = rig.adopt()
        at = rng.uniform(0, run * 2)
        rig.unmanage(vid)
        time.sleep(at)
        mark = len(rig.d.log())
        rig.restart(kill=True)
        what = rig.outcome(vid, ino, digest)
        log = rig.d.log()[mark:]
        if "its release was cut short" in log or "released: its file is back" in log:
            counts["settled by recovery"] += 1
        rig.d.wait_for(lambda: rig.db("SELECT state, result FROM task WHERE id IN (SELECT id "
                                      "FROM task WHERE type = 'image.unmanage' ORDER BY "
                                      "created_at DESC, rowid DESC LIMIT 1)") in (
            [("completed", "success")], [("completed", "error")]), timeout=150,
            what="the unmanage job settled")
        (result,), = rig.db("SELECT result FROM task WHERE type = 'image.unmanage' "
                            "ORDER BY created_at DESC, rowid DESC LIMIT 1")
        assert result == ("success" if what == "released" else "error"), (what, result)
        counts[what] += 1
        print("round %2d: kill at %.1f ms -> %s" % (i, at * 1e3, what))
        if what == "managed":
            rig.unmanage(vid)
            rig.d.wait_for(lambda: rig.status(vid) == 404, timeout=60, what="released")
            assert rig.outcome(vid, ino, digest) == "released"
    print("CRASH-SUMMARY " + json.dumps({"scenario": "cinder-unmanage", "rounds": ROUNDS,
                                         "seed": SEED, **counts}))


def test_recovery_settles_a_release_cut_short_either_way(rig):
    ino, digest = file_id(rig.root / OBJECT)
    # killed after the row was marked, before the move: the release is undone
    vid = rig.adopt()
    rig.d.stop()
    rig.db("UPDATE image SET releasing = 1 WHERE uuid = ?", (vid,), write=True)
    rig.d.start()
    rig.wait_ready()
    assert rig.outcome(vid, ino, digest) == "managed"
    assert rig.status(vid) == "available"
    assert "its release was cut short before the file moved" in rig.d.log()
    # killed after the move, before the row went: the release is finished
    rig.d.stop()
    rig.db("UPDATE image SET releasing = 1 WHERE uuid = ?", (vid,), write=True)
    os.rename(rig.root / "images" / ("%s.raw" % vid), rig.root / OBJECT)
    rig.d.start()
    rig.wait_ready()
    assert rig.outcome(vid, ino, digest) == "released"
    assert rig.status(vid) == 404
    assert "released: its file is back as '%s'" % OBJECT in rig.d.log()
    assert "has no file on volume" not in rig.d.log()
    # and the file can be adopted again
    vid = rig.adopt()
    assert rig.outcome(vid, ino, digest) == "managed"
