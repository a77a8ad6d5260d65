"""Bad input at the HTTP layer: every refusal is in the dialect's envelope and the daemon goes on."""
import json
import os
import socket
import time

import requests

from fixtures.daemon import parse_raw, raw_request


def assert_flexvdi_error(r, status, words):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error"
    assert words in body["message"], body


def test_unknown_route_is_404_in_the_owning_dialect(ext_daemon):
    d = ext_daemon
    assert_flexvdi_error(d.get("/imagestorages/default/extra/x"), 404, "no route")
    r = d.get("/nowhere")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_unknown_storage_is_404_with_flexvdi_envelope(ext_daemon):
    assert_flexvdi_error(ext_daemon.get("/imagestorages/nope"), 404,
                         "image storage 'nope' not found")


def test_wrong_method_is_405_with_allow(ext_daemon):
    r = ext_daemon.request("DELETE", "/imagestorages/default")
    assert_flexvdi_error(r, 405, "not allowed")
    assert r.headers["Allow"] == "GET"


def test_malformed_json_is_400_naming_the_problem(ext_daemon):
    r = requests.post(ext_daemon.url("/authenticate"), data=b'{"username": "a", ',
                      headers={"Content-Type": "application/json"})
    assert_flexvdi_error(r, 400, "malformed JSON")
    r = requests.post(ext_daemon.url("/authenticate"), data=b'{"username": 5, "password": "x"}',
                      headers={"Content-Type": "application/json"})
    assert_flexvdi_error(r, 400, "'username' must be a string")
    r = requests.post(ext_daemon.url("/authenticate"), data=b'[1]',
                      headers={"Content-Type": "application/json"})
    assert_flexvdi_error(r, 400, "must be a JSON object")
    r = requests.post(ext_daemon.url("/authenticate"),
                      data=b'{"username":"a","username":"b","password":"x"}',
                      headers={"Content-Type": "application/json"})
    assert_flexvdi_error(r, 400, "duplicate object key")


def test_huge_json_is_413_with_length_and_when_chunked(ext_daemon):
    big = b'{"username":"' + b"a" * (2 << 20) + b'","password":"x"}'
    r = requests.post(ext_daemon.url("/authenticate"), data=big,
                      headers={"Content-Type": "application/json"})
    assert_flexvdi_error(r, 413, "request body over")

    def chunks():
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]
    r = requests.post(ext_daemon.url("/authenticate"), data=chunks(),
                      headers={"Content-Type": "application/json"})
    assert_flexvdi_error(r, 413, "request body over")
    assert requests.get(ext_daemon.url("/v1/health")).status_code == 200


def test_wrong_content_type_is_415(ext_daemon):
    r = requests.post(ext_daemon.url("/authenticate"), data=b'{"username":"a","password":"b"}',
                      headers={"Content-Type": "text/plain"})
    assert_flexvdi_error(r, 415, "application/json")


def test_duplicate_content_length_is_400(ext_daemon):
    body = b'{"username":"a","password":"b"}'
    req = (b"POST /authenticate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(body), len(body))) + body
    status, headers, rbody = parse_raw(raw_request(ext_daemon.port, req))
    assert status == 400
    assert b"duplicate or conflicting Content-Length" in rbody
    assert headers["content-type"] == "application/json"
    # conflicting values, and Content-Length together with chunked
    req = (b"POST /authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 3\r\nContent-Length: 30\r\n\r\n") + body
    assert parse_raw(raw_request(ext_daemon.port, req))[0] == 400
    req = (b"POST /authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)) + body
    assert parse_raw(raw_request(ext_daemon.port, req))[0] == 400
    assert requests.get(ext_daemon.url("/v1/health")).status_code == 200


def test_oversized_headers_are_431(ext_daemon):
    r = ext_daemon.get("/imagestorages/default", headers={"X-Pad": "a" * 20000})
    assert r.status_code == 431
    assert "request headers exceed 16384 bytes" in r.json()["message"]
    assert requests.get(ext_daemon.url("/v1/health")).status_code == 200


def test_idle_connections_are_dropped_after_the_timeout(daemon_factory):
    d = daemon_factory({"limits": {"connection_timeout": 1}})
    s = socket.create_connection(("127.0.0.1", d.port))
    s.settimeout(15)
    t0 = time.time()
    assert s.recv(1) == b""  # the server closed the idle connection
    assert time.time() - t0 < 15
    s.close()


def test_connections_per_ip_are_limited(daemon_factory):
    d = daemon_factory({"limits": {"per_ip_connections": 3}})

    def hold_three():
        """Three connections, each answered once (keep-alive): surely all accepted. The
        fixture's own health polls may linger a moment in the daemon's count: retry."""
        socks = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(3)]
        try:
            for s in socks:
                s.settimeout(10)
                s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(12) != b"HTTP/1.1 200":
                    raise ConnectionError
            return socks
        except OSError:
            for s in socks:
                s.close()
            time.sleep(0.2)
            return None
    held = d.wait_for(hold_three, what="three accepted connections")
    extra = socket.create_connection(("127.0.0.1", d.port))
    extra.settimeout(10)
    extra.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        data = extra.recv(100)
    except ConnectionResetError:
        data = b""
    assert data == b"", "the 4th connection from one IP must be refused"
    for s in held:
        s.close()
    extra.close()

    def healthy():
        # MHD notices the closed sockets on its next poll; until then we are still over the limit
        try:
            return requests.get(d.url("/v1/health"), timeout=5).status_code == 200
        except requests.ConnectionError:
            return False
    d.wait_for(healthy, what="health once the held connections are gone")


def test_garbage_request_lines_do_not_hurt_the_daemon(ext_daemon):
    for junk in (b"\x00\x01\x02\r\n\r\n", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                 b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"):
        raw_request(ext_daemon.port, junk, timeout=5)
    assert requests.get(ext_daemon.url("/v1/health")).status_code == 200


def test_path_tricks_never_reach_a_handler(ext_daemon):
    # sent raw: HTTP clients would normalise the dot segments away before sending
    for path in (b"/imagestorages/..", b"/imagestorages/%2e%2e", b"/imagestorages/..%2f..%2fetc",
                 b"/imagestorages/a%00b", b"/imagestorages/default/../default"):
        req = (b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
               ext_daemon.token.encode() + b"\r\n\r\n")
        status, headers, body = parse_raw(raw_request(ext_daemon.port, req))
        assert status == 404, path
        assert json.loads(body)["status"] == "error", body


def test_nul_in_a_query_parameter_is_400_in_the_dialects_envelope(ext_daemon):
    d = ext_daemon
    r = d.get("/tasks?format=list%00x")
    assert_flexvdi_error(r, 400, "query parameter 'format' contains a NUL byte")
    # a stream route (esdc data path): nothing is created under the cut name
    r = d.request("PUT", "/image/x%00y/file/?volume_id=dir1%00", data=b"abc")
    assert r.status_code == 400, r.text
    assert r.json() == {"detail": "query parameter 'volume_id' contains a NUL byte"}
    r = d.request("PUT", "/v1/images/x/file?name=x%00y", data=b"abc")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalid"
    assert "contains a NUL byte" in r.json()["error"]["message"]
    r = d.get("/image/x/", headers={"Accept": "application/json"})
    assert "NUL" not in r.text
    assert d.get("/tasks?format=list").status_code == 200


def test_space_before_the_colon_and_obs_fold_are_400(ext_daemon):
    body = b'{"username":"a","password":"b"}'
    req = (b"POST /authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length : %d\r\n\r\n" % len(body)) + body
    status, headers, rbody = parse_raw(raw_request(ext_daemon.port, req))
    assert status == 400
    assert json.loads(rbody) == {"status": "error", "message":
                                 "malformed header name 'Content-Length ' (no spaces before the colon)"}
    assert headers["connection"].lower() == "close"
    req = (b"GET /imagestorages/default HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           ext_daemon.token.encode() + b"\r\nX-Folded: a\r\n b\r\n\r\n")
    status, headers, rbody = parse_raw(raw_request(ext_daemon.port, req))
    assert status == 400
    body = json.loads(rbody)
    assert body["status"] == "error" and "folded over lines (obs-fold)" in body["message"], body
    req = (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n\tb c\r\n\r\n")
    status, headers, rbody = parse_raw(raw_request(ext_daemon.port, req))
    assert status == 400
    assert json.loads(rbody)["error"]["code"] == "invalid", rbody
    # the same headers without the fold pass
    req = (b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Folded: a b\r\nX-Other:b\r\n\r\n")
    status, headers, rbody = parse_raw(raw_request(ext_daemon.port, req))
    assert status == 200 and json.loads(rbody)["status"] in ("ok", "degraded")


def test_the_query_string_counts_against_max_header(ext_daemon):
    r = ext_daemon.get("/tasks?format=list&pad=" + "a" * 20000)
    assert r.status_code == 431, r.text
    assert "request headers exceed 16384 bytes" in r.json()["message"]
    r = ext_daemon.get("/tasks?format=list&pad=" + "a" * 1000)
    assert r.status_code == 200 and isinstance(r.json(), list)


# ---------------------------------------------------------------- slow clients

import multiprocessing  # noqa: E402
import selectors  # noqa: E402


def read_until_closed(s, timeout):
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def trickle(s, chunk, every, t0, done):
    """Send chunk on s every `every` seconds, reading what comes back, until done(what came)
    or 10 s after t0; then read until the server closes. All it answered."""
    data = b""
    s.setblocking(False)
    while time.time() - t0 < 10 and not done(data):
        try:
            s.send(chunk)
        except OSError:
            break
        time.sleep(every)
        try:
            data += s.recv(65536)
        except BlockingIOError:
            pass
        except OSError:
            break
    return data + read_until_closed(s, 5)


def test_headers_not_complete_within_header_timeout_get_408(daemon_factory):
    d = daemon_factory({"limits": {"header_timeout": 2}})
    s = socket.create_connection(("127.0.0.1", d.port))
    t0 = time.time()
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
    # one byte of a header line at a time
    data = trickle(s, b"X", 0.25, t0, lambda got: b"\r\n\r\n" in got)
    s.close()
    assert 1.5 < time.time() - t0 < 6
    status, headers, body = parse_raw(data)
    assert status == 408
    assert json.loads(body) == {"error": {"code": "request_timeout", "field": "", "message":
                                          "request headers not complete within 2 s"}}
    assert headers["connection"] == "close"
    # a keep-alive connection idle after its answer is the idle timeout's business
    k = socket.create_connection(("127.0.0.1", d.port))
    k.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    k.settimeout(5)
    assert k.recv(65536).startswith(b"HTTP/1.1 200")
    time.sleep(3)
    k.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, body = parse_raw(k.recv(65536))
    assert status == 200 and json.loads(body)["status"] in ("ok", "degraded")
    k.close()


def test_a_body_below_min_body_rate_gets_408_in_the_dialects_envelope(daemon_factory):
    d = daemon_factory({"limits": {"min_body_rate": 1000, "body_rate_window": 1}})
    s = socket.create_connection(("127.0.0.1", d.port))
    s.sendall(b"POST /authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100000\r\n\r\n{")
    t0 = time.time()
    data = trickle(s, b" " * 10, 0.2, t0, lambda got: got != b"")  # 50 bytes/s
    s.close()
    assert time.time() - t0 < 6
    status, headers, body = parse_raw(data)
    assert status == 408
    assert json.loads(body) == {"status": "error",
                                "message": "request body slower than 1000 bytes/s over 1 s"}
    # a body at a normal pace is read to its end
    r = requests.post(d.url("/authenticate"), data=b'{"username": "a", "password": "b"' + b" " * 99000
                      + b"}", headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["message"] == "unknown user or wrong password"


def slowloris(port, sources, per_source, stop, stats):
    """Hold per_source connections from each source address, each sending a header line
    one byte a second; reconnect whatever the server closes, until stop is set."""
    sel = selectors.DefaultSelector()
    socks = {}

    def open_one(src):
        try:
            s = socket.socket()
            s.setblocking(False)
            s.bind((src, 0))
            s.connect_ex(("127.0.0.1", port))
            socks[s] = [src, 0.0, False]
            sel.register(s, selectors.EVENT_READ)
        except OSError:
            stats["refused"] += 1

    for src in sources:
        for _ in range(per_source):
            open_one(src)
    while not stop.is_set():
        now = time.time()
        for s, st in list(socks.items()):
            if now - st[1] >= 1.0:
                st[1] = now
                try:
                    s.send(b"GET /v1/health HTTP/1.1\r\nX-Slow: " if not st[2] else b"x")
                    st[2] = True
                except OSError:
                    pass
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 408"):
                stats["408"] += 1
            if not data or data.startswith(b"HTTP/1.1 408"):
                stats["closed"] += 1
                src = socks.pop(s)[0]
                sel.unregister(s)
                s.close()
                open_one(src)
    for s in socks:
        s.close()


def test_slowloris_does_not_lock_out_a_normal_client(daemon_factory):
    d = daemon_factory({"limits": {"max_connections": 200, "header_timeout": 3}})
    # in its own process: its busy loop must not hold the normal client's GIL
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    manager_stats = ctx.Manager()
    stats = manager_stats.dict({"408": 0, "closed": 0, "refused": 0})
    sources = ["127.0.0.%d" % i for i in range(10, 16)]  # 6 x 50 = 300 connections
    attacker = ctx.Process(target=slowloris, args=(d.port, sources, 50, stop, stats))
    attacker.start()
    lat = []
    try:
        time.sleep(2)
        t_end = time.time() + 8
        while time.time() < t_end:
            t0 = time.monotonic()
            r = requests.get(d.url("/v1/health"), timeout=10)
            lat.append(time.monotonic() - t0)
            assert r.status_code == 200 and r.json()["status"] in ("ok", "degraded"), r.text
            time.sleep(0.1)
    finally:
        stop.set()
        attacker.join(30)
        stats = dict(stats)
        manager_stats.shutdown()
    print("normal client under slowloris: %d requests, worst %.1f ms; attackers: %r"
          % (len(lat), max(lat) * 1000, stats))
    assert max(lat) < 1.0, "a normal client waited %.3f s" % max(lat)
    assert stats["closed"] > 100  # the slow ones were closed, and came back


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_stalled_downloads_hold_bounded_memory(ext_daemon):
    d = ext_daemon
    data = os.urandom(32 << 20)
    r = d.request("PUT", "/image/stall-me/file/", data=data)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "stall-me"
    # one download read to the end first: whatever is allocated once is in the baseline
    r = d.get("/image/stall-me/file/")
    assert r.status_code == 200 and r.content == data
    base = vm_rss_kib(d.proc.pid)
    req = (b"GET /image/stall-me/file/ HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
           d.token.encode() + b"\r\n\r\n")
    socks = []
    try:
        for i in range(200):  # 4 addresses x 50: under the per-address limit
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.bind(("127.0.0.%d" % (20 + i % 4), 0))
            s.connect(("127.0.0.1", d.port))
            s.sendall(req)
            socks.append(s)  # and never read
        time.sleep(3)
        held = vm_rss_kib(d.proc.pid) - base
        print("RSS with 200 stalled downloads: +%d MiB" % (held >> 10))
        assert held < 150 << 10, "200 stalled downloads hold %d MiB" % (held >> 10)
        # each one did start: its status line is there to read
        socks[0].settimeout(5)
        assert socks[0].recv(12) == b"HTTP/1.1 200"
    finally:
        for s in socks:
            s.close()
    r = d.get("/image/stall-me/file/")
    assert r.status_code == 200 and r.content == data
