"""Durable creates by group commit (issue 15): many clients creating small images at once.

- 64 keep-alive clients creating at once all get 201 with the image they made, every one
  is listed, has its row active and its file in images/, and their rows shared COMMITs
  (stowage_catalogue_commit_members_total grows faster than ..._commits_total), and their
  files were published in batches (stowage_create_published_total faster than
  ..._publishes_total);
- creates sent together, some of them under one name, are published and committed as one
  batch: the one that gets the name is 201, each other one is 409 in the native envelope
  and leaves no file, staging file or row, and every create of its own name is 201;
- while the system holds much dirty data on another filesystem (which /proc/meminfo does
  not tell apart), creates still share one syncfs per batch: a syncfs here is timed, not
  given up for what others write elsewhere;
- a kill -9 in the middle of concurrent creates leaves no row without its file and no file
  without its row (the invariants of test_crash.py), and every create answered 201 before
  the kill is still there, active, with its byte: a 201 comes only after its row is
  durable.

Runs on an XFS loop volume, as test_crash.py does.
"""
import hashlib
import json
import http.client
import os
import random
import re
import threading
import time
import uuid

import pytest

from test_crash import STORAGE, Rig

CLIENTS = 64


@pytest.fixture
def rig(make_local_volume):
    d, mnt = make_local_volume("2G", reflink=False)
    return Rig(d, {"loc": mnt})


def counters(d, keys=("stowage_catalogue_commits_total",
                      "stowage_catalogue_commit_members_total")):
    text = d.get("/v1/metrics").text
    return tuple(int(re.search(r"^%s (\d+)$" % k, text, re.M).group(1)) for k in keys)


PUBLISHES = ("stowage_create_publishes_total", "stowage_create_published_total")


class Creators:
    """`clients` keep-alive connections creating 1-byte images named <tag>-<client>-<n>,
    `each` per client (0: until stopped). Records what every request answered."""

    def __init__(self, d, clients, each, tag):
        self.d, self.clients, self.each, self.tag = d, clients, each, tag
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.created = {}  # name -> (uuid, body byte)
        self.failed = []   # (name, status, text)
        self.threads = [threading.Thread(target=self.client, args=(i,)) for i in range(clients)]

    def client(self, i):
        conn = http.client.HTTPConnection("127.0.0.1", self.d.port, timeout=60)
        n = 0
        try:
            while not self.stop.is_set() and (not self.each or n < self.each):
                name, u, byte = "%s-%d-%d" % (self.tag, i, n), str(uuid.uuid4()), bytes([n % 256])
                n += 1
                try:
                    conn.request("PUT", "/v1/images/%s/file?name=%s" % (u, name), body=byte,
                                 headers={"Authorization": "Bearer " + self.d.token,
                                          "Content-Type": "application/octet-stream"})
                    r = conn.getresponse()
                    text = r.read().decode(errors="replace")
                except (OSError, http.client.HTTPException):
                    return  # the daemon was killed under us
                with self.lock:
                    if r.status == 201:
                        self.created[name] = (u, byte, text)
                    else:
                        self.failed.append((name, r.status, text))
        finally:
            conn.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)


def test_64_concurrent_creates_all_201_listed_and_sharing_commits(rig):
    d = rig.d
    c0, m0 = counters(d)
    p0, f0 = counters(d, PUBLISHES)
    c = Creators(d, CLIENTS, 4, "g").start()
    for t in c.threads:
        t.join(timeout=300)
    assert c.failed == [], c.failed[:5]
    assert len(c.created) == CLIENTS * 4
    for name, (u, byte, text) in c.created.items():
        body = json.loads(text)
        assert body["uuid"] == u and body["name"] == name and body["status"] == "active", body
        assert body["sha256"] == hashlib.sha256(byte).hexdigest() and body["size"] == 1, body
        assert body["format"] == "raw" and body["volume_id"] == "loc", body
    c1, m1 = counters(d)
    assert m1 - m0 >= CLIENTS * 4, (c0, m0, c1, m1)
    assert c1 - c0 < m1 - m0, "no COMMIT carried more than one create: %r" % ((c0, m0, c1, m1),)
    # their files were published in batches too, one syncfs each — unless the machine held
    # much dirty data meanwhile: a create then flushes and publishes its own file
    p1, f1 = counters(d, PUBLISHES)
    assert f1 - f0 <= CLIENTS * 4 and (f1 == f0 or p1 - p0 < f1 - f0), (p0, f0, p1, f1)

    listed = {im["image_id"]: im for im in d.get("/imagestorages/" + STORAGE).json()["volumes"][0]
              ["images"]}
    assert set(c.created) <= set(listed), sorted(set(c.created) - set(listed))[:5]
    assert all(listed[n]["size_mb"] == 1 and listed[n]["volume_id"] == "loc" for n in c.created)
    rows = dict(rig.db("SELECT name, status FROM image"))
    assert all(rows[n] == "active" for n in c.created), rows
    for name, (u, byte, _) in list(c.created.items())[:8]:
        assert (rig.vols["loc"] / "images" / ("%s.raw" % u)).read_bytes() == byte
        g = d.get("/v1/images/%s/file" % u)
        assert g.status_code == 200 and g.content == byte
    assert rig.check() == []

    # a name taken meanwhile: 409 in the native envelope, nothing written
    u = str(uuid.uuid4())
    r = d.request("PUT", "/v1/images/%s/file?name=g-0-0" % u, data=b"x")
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"], r.text
    assert not (rig.vols["loc"] / "images" / ("%s.raw" % u)).exists()
    assert rig.db("SELECT status FROM image WHERE uuid = ?", (u,)) == []


def test_a_batch_member_refused_its_name_leaves_nothing_and_the_others_land(rig):
    d = rig.d
    c0, m0 = counters(d)
    rounds, each = 4, 8
    for rnd in range(rounds):
        go = threading.Barrier(2 * each)
        got = []  # (name, uuid, status, body)
        lock = threading.Lock()

        def create(name):
            u = str(uuid.uuid4())
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
            try:
                go.wait(timeout=30)
                conn.request("PUT", "/v1/images/%s/file?name=%s" % (u, name), body=b"y",
                             headers={"Authorization": "Bearer " + d.token,
                                      "Content-Type": "application/octet-stream"})
                r = conn.getresponse()
                with lock:
                    got.append((name, u, r.status, json.loads(r.read())))
            finally:
                conn.close()

        names = ["dup%d" % rnd] * each + ["own%d-%d" % (rnd, i) for i in range(each)]
        ts = [threading.Thread(target=create, args=(n,)) for n in names]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=120)
        assert len(got) == 2 * each, got
        dups = [g for g in got if g[0] == "dup%d" % rnd]
        won = [g for g in dups if g[2] == 201]
        assert len(won) == 1, dups
        assert won[0][3]["uuid"] == won[0][1] and won[0][3]["status"] == "active", won
        for name, u, status, body in dups:
            if status == 201:
                continue
            assert status == 409, (name, status, body)
            assert body["error"]["message"] == "an image named 'dup%d' already exists" % rnd, body
            assert not (rig.vols["loc"] / "images" / ("%s.raw" % u)).exists()
            assert rig.db("SELECT status FROM image WHERE uuid = ?", (u,)) == []
        for name, u, status, body in got:
            if name.startswith("own"):
                assert status == 201 and body["uuid"] == u and body["name"] == name, body
                assert (rig.vols["loc"] / "images" / ("%s.raw" % u)).read_bytes() == b"y"
    assert os.listdir(rig.vols["loc"] / ".staging") == []
    assert rig.check() == []
    c1, m1 = counters(d)
    # a 409 was refused in its batch, alone (or before, when the winner was committed first)
    assert rounds * (each + 1) <= m1 - m0 <= rounds * 2 * each, (m0, m1)
    assert c1 - c0 < m1 - m0, "no COMMIT carried more than one create: %r" % ((c0, m0, c1, m1),)


def test_kill9_during_concurrent_creates_keeps_every_201(rig):
    rng = random.Random(15)
    for rnd in range(3):
        c = Creators(rig.d, 16, 0, "k%d" % rnd).start()
        time.sleep(rng.uniform(0.3, 1.2))
        rig.d.kill9()
        c.join()
        rig.log_mark = len(rig.d.log())
        rig.d.start()
        rig.wait_ready()
        rig.assert_consistent("round %d: kill -9 during concurrent creates" % rnd)
        assert c.created, "no create answered before the kill"
        assert [f for f in c.failed if f[1] != 201] == [], c.failed[:5]
        rows = {n: (u, st) for u, n, st in rig.db("SELECT uuid, name, status FROM image "
                                                  "WHERE name LIKE ?", ("k%d-%%" % rnd,))}
        for name, (u, byte, _) in c.created.items():
            assert rows.get(name) == (u, "active"), (name, rows.get(name))
            assert (rig.vols["loc"] / "images" / ("%s.raw" % u)).read_bytes() == byte
        # a create that got no answer either made its image or left nothing
        assert all(st == "active" for _, st in rows.values()), rows


def dirty_bytes():
    with open("/proc/meminfo") as f:
        kib = {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in f)}
    return (kib["Dirty"] + kib["Writeback"]) * 1024


def test_creates_share_a_syncfs_while_another_filesystem_holds_much_dirty_data(rig, tmp_path):
    d, elsewhere = rig.d, tmp_path / "dirty"
    assert os.stat(tmp_path).st_dev != os.stat(rig.vols["loc"]).st_dev
    batched, seen = False, []
    try:
        deadline = time.monotonic() + 30
        while not batched and time.monotonic() < deadline:
            with open(elsewhere, "wb") as f:  # written, never synced: dirty for ~30 s
                for _ in range(64):
                    f.write(os.urandom(1 << 20))
            before = dirty_bytes()
            p0, f0 = counters(d, PUBLISHES)
            c = Creators(d, 8, 4, "dirty%d" % len(seen)).start()
            for t in c.threads:
                t.join(timeout=120)
            p1, f1 = counters(d, PUBLISHES)
            after = dirty_bytes()
            assert c.failed == [] and len(c.created) == 32, c.failed[:5]
            seen.append((before >> 20, after >> 20, p1 - p0, f1 - f0))
            # the whole round under much dirty data (the daemon's 8 MiB), one batch of more
            # than one file at least
            batched = min(before, after) > 16 << 20 and f1 - f0 > p1 - p0
    finally:
        elsewhere.unlink(missing_ok=True)
    assert batched, "(dirty MiB before, after, publishes, files published) per round: %r" % seen
    assert rig.check() == []
