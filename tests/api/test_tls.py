"""HTTPS when tls.cert and tls.key are configured (libmicrohttpd + GnuTLS)."""
import subprocess

import requests


def test_serves_https_with_the_configured_certificate(daemon_factory, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    d = daemon_factory({"tls": {"cert": str(cert), "key": str(key)}}, https=True)
    r = requests.get("https://127.0.0.1:%d/v1/health" % d.port, verify=str(cert), timeout=10)
    assert r.status_code == 200 and r.json()["checks"]["database"] == "ok"
    r = requests.get("https://127.0.0.1:%d/imagestorages" % d.port, verify=str(cert),
                     headers={"Authorization": "Bearer " + d.token}, timeout=10)
    assert r.status_code == 200 and r.json() == []
    # plain HTTP on the TLS port gets no HTTP answer
    try:
        r = requests.get("http://127.0.0.1:%d/v1/health" % d.port, timeout=5)
        assert r.status_code >= 400
    except requests.ConnectionError:
        pass
