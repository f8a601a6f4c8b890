"""DICOM TLS (PS3.15 B.9) against DCMTK's storescp +tls, with a CA, server
and client certificates that the test makes with the openssl CLI."""

import pydicom
import pytest

from tests.conftest import modgate, run, tool


def openssl(*args, cwd):
    result = run([tool("openssl"), *args], timeout=60, cwd=cwd)
    assert result.returncode == 0, result.stderr


def make_ca(folder, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            cwd=folder)


def make_leaf(folder, name, ca, san, usage):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=folder)
    (folder / (name + ".ext")).write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\n%s" % (usage, san))
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
            "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".crt", cwd=folder)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    make_leaf(folder, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n", "serverAuth")
    make_leaf(folder, "client", "ca", "", "clientAuth")
    make_leaf(folder, "stranger", "other-ca", "", "clientAuth")
    return {p.stem + p.suffix: str(p) for p in folder.iterdir()}


def tls_scp(storescp, pki, *peer):
    return storescp("+xa", "+tls", pki["server.key"], pki["server.crt"], "-pw", "+cf", pki["ca.crt"], *peer)


def test_mutual_tls_store_and_echo(storescp, pki, clips):
    scp = tls_scp(storescp, pki, "--require-peer-cert")
    client = ("--tls", "--ca", pki["ca.crt"], "--cert", pki["client.crt"], "--key", pki["client.key"])
    echo = modgate("echo", *client, "127.0.0.1", str(scp.port), timeout=60)
    assert echo.returncode == 0, echo.stdout + echo.stderr
    result = modgate("store", *client, "127.0.0.1", str(scp.port), clips["video"], clips["big"], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("video", "big"):
        src = pydicom.dcmread(clips[name])
        arrived = [pydicom.dcmread(p) for p in scp.files()]
        assert any(ds.SOPInstanceUID == src.SOPInstanceUID and ds == src for ds in arrived)


def test_server_from_an_unknown_ca_is_refused(storescp, pki, clips):
    """Verification is on by default: a server whose chain does not lead to
    the configured CA gets nothing, and the reason is printed in one line."""
    scp = tls_scp(storescp, pki, "--ignore-peer-cert")
    result = modgate("store", "--tls", "--ca", pki["other-ca.crt"], "127.0.0.1", str(scp.port), clips["still"], timeout=60)
    assert result.returncode != 0
    assert "certificate verify failed" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert scp.files() == []


def test_tls_without_a_ca_is_a_usage_error(clips):
    result = modgate("store", "--tls", "127.0.0.1", "104", clips["still"], timeout=60)
    assert result.returncode == 2 and "--tls" in result.stderr


def test_client_certificate_required_by_the_scp(storescp, pki, clips):
    """storescp requires a client certificate from its CA: without one, or
    with one from another CA, the association fails and nothing is stored."""
    scp = tls_scp(storescp, pki, "--require-peer-cert")
    for extra in ((), ("--cert", pki["stranger.crt"], "--key", pki["stranger.key"])):
        result = modgate("store", "--tls", "--ca", pki["ca.crt"], *extra, "127.0.0.1", str(scp.port), clips["still"], timeout=60)
        assert result.returncode != 0, result.stdout
        assert "Traceback" not in result.stderr
        assert "not sent" in result.stdout
    assert "unknown ca" in result.stdout
    assert scp.files() == []


def test_plain_client_against_tls_scp_fails_cleanly(storescp, pki, clips):
    scp = tls_scp(storescp, pki, "--ignore-peer-cert")
    result = modgate("store", "--acse-timeout", "5", "127.0.0.1", str(scp.port), clips["still"], timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
