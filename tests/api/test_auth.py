"""Authentication and roles: tokens, users, the flexVDI session cookie."""
import requests


def test_no_token_is_401_in_the_envelope(ext_daemon):
    r = requests.get(ext_daemon.url("/imagestorages/default"))
    assert r.status_code == 401
    assert r.json() == {"status": "error", "message": "missing credentials"}
    r = requests.get(ext_daemon.url("/imagestorages"), headers={"Authorization": "Bearer stw_nope"})
    assert r.status_code == 401
    assert r.json()["message"] == "unknown or expired token"


def test_every_documented_header_carries_a_token(ext_daemon):
    t = ext_daemon.token
    for h in ({"Authorization": "Bearer " + t}, {"Authorization": "Token " + t},
              {"Authorization": "OAuth " + t}, {"X-Auth-Token": t}, {"ES-API-KEY": t}):
        r = requests.get(ext_daemon.url("/imagestorages/default"), headers=h)
        assert r.status_code == 200, h


def test_reader_may_get_but_not_write(ext_daemon):
    reader = ext_daemon.make_token("reader")
    assert reader.startswith("stw_")
    r = ext_daemon.get("/imagestorages/default", token=reader)
    assert r.status_code == 200 and "external_volumes" in r.json()
    r = ext_daemon.post("/v1/tokens", token=reader, json={"role": "reader"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert "role reader may not POST /v1/tokens" in r.json()["error"]["message"]


def test_superadmin_creates_tokens_and_admin_cannot(ext_daemon):
    r = ext_daemon.post("/v1/tokens", json={"role": "admin", "owner": "portal"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["role"] == "admin" and body["owner"] == "portal" and body["token"].startswith("stw_")
    admin = body["token"]
    assert ext_daemon.get("/imagestorages", token=admin).status_code == 200
    r = ext_daemon.post("/v1/tokens", token=admin, json={"role": "superadmin"})
    assert r.status_code == 403
    r = ext_daemon.post("/v1/tokens", json={"role": "god"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "role"


def test_flexvdi_login_gives_a_session_cookie_and_logout_ends_it(ext_daemon):
    d = ext_daemon
    r = d.cli("user", "add", "alice", "--role", "admin", stdin="s3cret-pass\n")
    assert r.returncode == 0, r.stderr
    r = requests.post(d.url("/authenticate"), json={"username": "alice", "password": "wrong-pass"})
    assert r.status_code == 401
    assert r.json() == {"status": "Error", "message": "unknown user or wrong password"}
    r = requests.post(d.url("/authenticate"), json={"username": "bob", "password": "whatever1"})
    assert r.status_code == 401

    s = requests.Session()
    r = s.post(d.url("/authenticate"), json={"username": "alice", "password": "s3cret-pass"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "OK" and body["message"].startswith("stw_")
    assert s.cookies.get("session") == body["message"]
    assert "HttpOnly" in r.headers["Set-Cookie"]
    r = s.get(d.url("/imagestorages/default"))
    assert r.status_code == 200 and "hosts" in r.json()
    r = s.get(d.url("/logout"))
    assert r.status_code == 200 and r.json()["status"] == "OK"
    r = requests.get(d.url("/imagestorages/default"), cookies={"session": body["message"]})
    assert r.status_code == 401


def test_logout_with_a_permanent_token_in_the_cookie_keeps_the_token(ext_daemon):
    d = ext_daemon
    reader = d.make_token("reader")
    r = requests.get(d.url("/logout"), cookies={"session": reader})
    assert r.status_code == 200 and r.json() == {"status": "OK", "message": "logged out"}
    r = d.get("/imagestorages/default", token=reader)
    assert r.status_code == 200, r.text
    assert "external_volumes" in r.json()
    r = requests.get(d.url("/logout"), cookies={"session": d.token})
    assert r.status_code == 200
    assert d.get("/imagestorages/default").status_code == 200


def test_user_add_rejects_bad_names_and_short_passwords(ext_daemon):
    r = ext_daemon.cli("user", "add", "../x", "--role", "reader", stdin="longenough\n")
    assert r.returncode == 1 and "user names match" in r.stderr
    r = ext_daemon.cli("user", "add", "carol", "--role", "reader", stdin="short\n")
    assert r.returncode == 1 and "passwords are 8 to 1024 bytes" in r.stderr
    r = ext_daemon.cli("token", "create", "--role", "king")
    assert r.returncode == 2


# ---------------------------------------------------------------- password guessing

import json as _json  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from fixtures.daemon import parse_raw  # noqa: E402


def post_login(port, user, password, source="127.0.0.1", timeout=30):
    """POST /authenticate from a chosen loopback source address; (status, headers, body)."""
    body = _json.dumps({"username": user, "password": password}).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as s:
        s.sendall(b"POST /authenticate HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                  b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    status, headers, rbody = parse_raw(data)
    return status, headers, _json.loads(rbody)


def health_latencies(d, stop, out):
    while not stop.is_set():
        t0 = time.monotonic()
        r = requests.get(d.url("/v1/health"), timeout=30)
        out.append((time.monotonic() - t0, r.status_code, r.json()["status"]))
        time.sleep(0.02)


def test_password_guessing_does_not_slow_other_requests(daemon_factory):
    # one HTTP thread, and throttling out of the way: every guess costs a full PBKDF2
    d = daemon_factory({"threads": 1, "login": {"free_failures": 999,
                                                 "lockout_failures": 1000}})
    r = d.cli("user", "add", "alice", "--role", "admin", stdin="s3cret-pass\n")
    assert r.returncode == 0, r.stderr
    stop = threading.Event()
    answers, lat = [], []

    def guess(i):
        src = "127.0.0.%d" % (2 + i % 8)
        while not stop.is_set():
            answers.append(post_login(d.port, "alice", "wrong-%d" % i, src))

    guessers = [threading.Thread(target=guess, args=(i,)) for i in range(48)]
    for t in guessers:
        t.start()
    time.sleep(0.5)
    probe = threading.Thread(target=health_latencies, args=(d, stop, lat))
    probe.start()
    time.sleep(4)
    stop.set()
    for t in guessers + [probe]:
        t.join(60)
    assert len(lat) > 20
    worst = max(x[0] for x in lat)
    print("health under guessing: %d requests, worst %.1f ms, median %.1f ms; %d guesses"
          % (len(lat), worst * 1000, sorted(x[0] for x in lat)[len(lat) // 2] * 1000, len(answers)))
    assert all(x[1] == 200 and x[2] in ("ok", "degraded") for x in lat)
    assert worst < 1.0, "health took %.3f s while passwords were guessed" % worst
    assert answers
    for status, headers, body in answers:
        assert body["status"] == "Error", body
        if status == 503:  # the check queue was full
            assert body["message"] == "too many logins waiting" and headers["retry-after"] == "1"
        else:
            assert (status, body["message"]) == (401, "unknown user or wrong password")
    # the right password still works once the guessing stops
    status, _, body = post_login(d.port, "alice", "s3cret-pass")
    assert status == 200 and body["status"] == "OK" and body["message"].startswith("stw_")


def test_failed_logins_are_throttled_then_locked_out_and_recover(daemon_factory):
    d = daemon_factory({"login": {"free_failures": 2, "lockout_failures": 4, "lockout_s": 2}})
    r = d.cli("user", "add", "alice", "--role", "admin", stdin="s3cret-pass\n")
    assert r.returncode == 0, r.stderr
    src = "127.0.0.7"
    for _ in range(3):  # two free failures, the third starts a 1 s wait
        status, _, body = post_login(d.port, "alice", "wrong-pass", src)
        assert (status, body) == (401, {"status": "Error",
                                        "message": "unknown user or wrong password"})
    status, headers, body = post_login(d.port, "alice", "s3cret-pass", src)
    assert status == 429, body
    assert body == {"status": "Error",
                    "message": "too many failed logins for this user; try again in 1 s"}
    assert headers["retry-after"] == "1"
    # another address is held back by the user's wait too, and an unthrottled user is not
    status, headers, body = post_login(d.port, "alice", "s3cret-pass", "127.0.0.8")
    assert status == 429 and "for this user" in body["message"] and "retry-after" in headers
    status, _, body = post_login(d.port, "bob", "wrong-pass", "127.0.0.8")
    assert status == 401 and body["message"] == "unknown user or wrong password"
    time.sleep(1.1)
    status, _, body = post_login(d.port, "alice", "wrong-pass", src)  # the 4th: lock-out
    assert status == 401
    status, headers, body = post_login(d.port, "alice", "s3cret-pass", src)
    assert status == 429
    assert body == {"status": "Error",
                    "message": "too many failed logins for this user; try again in 2 s"}
    assert headers["retry-after"] == "2"
    # the address is locked out as well: another user from it waits
    status, headers, body = post_login(d.port, "bob", "whatever1", src)
    assert status == 429 and body["message"].startswith("too many failed logins from this address")
    time.sleep(2.1)
    status, headers, body = post_login(d.port, "alice", "s3cret-pass", "127.0.0.9")
    assert status == 200, body
    assert body["status"] == "OK" and body["message"].startswith("stw_")
    assert "retry-after" not in headers
