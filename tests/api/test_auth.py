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
