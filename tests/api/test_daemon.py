"""The daemon as a process: options, refusal to start, shutdown, health, metrics, request ids."""
import os
import socket
import subprocess

import requests

from fixtures.daemon import Daemon, binary, free_port


def test_version_and_help_print_and_exit_zero():
    r = subprocess.run([binary(), "--version"], capture_output=True, text=True)
    assert r.returncode == 0
    assert r.stdout.startswith("stowaged ")
    r = subprocess.run([binary(), "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for opt in ("--listen", "--state-dir", "--config", "token create", "user add", "inspect"):
        assert opt in r.stdout


def test_unknown_option_and_bad_config_are_refused(tmp_path):
    r = subprocess.run([binary(), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option --bogus" in r.stderr
    cfg = tmp_path / "c.json"
    cfg.write_text('{"listen": "127.0.0.1:1", "thread": 2}')
    r = subprocess.run([binary(), "--config", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown config key 'thread'" in r.stderr


def test_refuses_to_start_when_port_is_taken(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = subprocess.run([binary(), "--listen", "127.0.0.1:%d" % port, "--state-dir",
                            str(tmp_path / "st")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "address already in use" in r.stderr
    assert not (tmp_path / "st").exists(), "nothing is created when the port is taken"


def test_refuses_to_start_when_state_dir_is_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        r = subprocess.run([binary(), "--listen", "127.0.0.1:%d" % free_port(), "--state-dir",
                            str(ro / "state")], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert "cannot create state dir" in r.stderr and "Read-only file system" in r.stderr
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_first_start_writes_admin_token_0600_and_prints_it_once(tmp_path):
    d = Daemon(tmp_path)
    d.start()
    try:
        path = os.path.join(d.state_dir, "admin.token")
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        assert d.token.startswith("stw_") and len(d.token) == 68
        assert d.token in d.log()
        r = d.get("/imagestorages")
        assert r.status_code == 200 and r.json() == []
    finally:
        d.stop()
    # second start on the same state: the token still works and is not printed again
    d2 = Daemon(tmp_path, port=free_port())
    os.rename(d.log_path, d.log_path + ".1")
    d2.start()
    try:
        assert d2.token == d.token
        assert d2.token not in d2.log()
        assert d2.get("/imagestorages").status_code == 200
    finally:
        d2.stop()
    # the database holds only a hash of the token
    db = open(os.path.join(d.state_dir, "stowage.db"), "rb").read()
    assert d.token.encode() not in db


def test_sigterm_stops_cleanly_and_logs_requests(ext_daemon):
    d = ext_daemon
    r = d.get("/imagestorages/default", headers={"X-Request-Id": "abc-123"})
    assert r.status_code == 200
    assert r.headers["X-Request-Id"] == "abc-123"
    r2 = requests.get(d.url("/v1/health"))
    assert r2.headers["X-Request-Id"] and r2.headers["X-Request-Id"] != "abc-123"
    d.stop()
    log = d.log()
    assert "GET /imagestorages/default 200" in log and "rid=abc-123" in log
    assert "stowaged: stopped" in log


def test_health_needs_no_token_and_reports_checks(ext_daemon):
    r = requests.get(ext_daemon.url("/v1/health"))
    assert r.status_code == 200
    body = r.json()
    assert body["checks"]["database"] == "ok"
    ext_daemon.wait_for(lambda: requests.get(ext_daemon.url("/v1/health")).json()
                        ["checks"]["volumes"].get("dir1") == "ok", what="dir1 ok")
    assert requests.get(ext_daemon.url("/v1/health")).json()["status"] == "ok"


def test_metrics_count_requests_by_route_and_status_and_report_volumes(ext_daemon):
    d = ext_daemon
    for _ in range(3):
        d.get("/imagestorages/default")
    d.get("/imagestorages/nope")
    d.wait_for(lambda: d.get("/imagestorages/default").json()["external_volumes"][0]["status"] == "ok")
    r = d.get("/v1/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert 'stowage_http_requests_total{method="GET",route="/imagestorages/{id}",status="200"}' in text
    assert 'stowage_http_requests_total{method="GET",route="/imagestorages/{id}",status="404"} 1' in text
    assert 'stowage_http_request_duration_seconds_bucket{method="GET",route="/imagestorages/{id}",le="+Inf"}' in text
    assert 'stowage_volume_free_bytes{volume="dir1",kind="external"}' in text
    assert 'stowage_probe_duration_seconds{volume="dir1",kind="external"}' in text
    st = os.statvfs(d.config["storages"][0]["volumes"][0]["mount_point"])
    for line in text.splitlines():
        if line.startswith('stowage_volume_total_bytes{volume="dir1"'):
            assert int(line.split()[-1]) == st.f_blocks * st.f_frsize // 1024 * 1024
