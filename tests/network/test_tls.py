"""TLS on the embedded node (certificates from the network's TLS CAs) and mutual TLS in the client."""

from __future__ import annotations

import grpc
import pytest

from network.client import GatewayError, connect
from network.identity import CertificateAuthority
from network.node import EmbeddedNode
from network.node.tls import client_tls, node_tls

from .conftest import make_network


@pytest.fixture
def tls_node(tmp_path, request):
    cfg = make_network(tmp_path / "net")
    node = EmbeddedNode(cfg)
    address = node.start("127.0.0.1:0", tls=True, mutual_tls=request.param == "mutual")
    yield cfg, address
    node.stop()


def _contract(cfg, address, **tls):
    ident, signer = cfg.load_user("lothian")
    return connect(ident, signer, address, evaluate_timeout=5, endorse_timeout=5, submit_timeout=5,
                   **tls).network(cfg.channel).contract("assets", "AssetContract")


def _rogue_tls_files(tmp_path):
    ca = CertificateAuthority.create("LothianMSP", "lothian", common_name="tlsca.lothian")
    ident, signer = ca.issue("admin.lothian", "client", dns_names=["localhost"])
    return ident.pem, signer.private_key_pem(), ca


@pytest.mark.parametrize("tls_node", ["tls"], indirect=True)
def test_node_serves_tls_from_the_network_tls_ca(tls_node, tmp_path):
    cfg, address = tls_node
    files = node_tls(cfg)
    c = _contract(cfg, address, tls_root_certs=files.ca)
    assert c.submit_json("Put", "tls", "a", {"v": 1})["version"] == 1
    assert c.evaluate_json("Get", "tls", "a")["value"] == {"v": 1}
    # the certificate names the loopback address and was issued by the ordering org's TLS CA
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(files.cert)
    assert cert.issuer.rfc4514_string().startswith("CN=tlsca.orderer")
    # plaintext, or trusting another CA, does not reach it
    with pytest.raises(GatewayError) as e:
        _contract(cfg, address).evaluate("Get", "tls", "a")
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and e.value.kind == GatewayError.UNREACHABLE
    _, _, rogue_ca = _rogue_tls_files(tmp_path)
    from cryptography.hazmat.primitives import serialization

    with pytest.raises(GatewayError) as e:
        _contract(cfg, address, tls_root_certs=rogue_ca.certificate.public_bytes(serialization.Encoding.PEM)
                  ).evaluate("Get", "tls", "a")
    assert e.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("tls_node", ["mutual"], indirect=True)
def test_mutual_tls_requires_a_client_certificate_of_a_channel_tls_ca(tls_node, tmp_path):
    cfg, address = tls_node
    root = node_tls(cfg).ca
    mine = client_tls(cfg, "zmc")  # any channel organisation's TLS CA will do
    c = _contract(cfg, address, tls_root_certs=root, tls_client_cert=mine.cert, tls_client_key=mine.key)
    assert c.submit_json("Put", "mtls", "a", {"v": 2})["version"] == 1
    with pytest.raises(GatewayError) as e:
        _contract(cfg, address, tls_root_certs=root).evaluate("Get", "mtls", "a")
    assert e.value.kind == GatewayError.UNREACHABLE
    cert, key, _ = _rogue_tls_files(tmp_path)
    with pytest.raises(GatewayError):
        _contract(cfg, address, tls_root_certs=root, tls_client_cert=cert, tls_client_key=key).evaluate("Get", "mtls", "a")


def test_client_refuses_half_a_client_certificate(tmp_path):
    cfg = make_network(tmp_path / "net")
    ident, signer = cfg.load_user("lothian")
    with pytest.raises(ValueError, match="both"):
        connect(ident, signer, "127.0.0.1:1", tls_root_certs=b"x", tls_client_cert=b"x")
    with pytest.raises(ValueError, match="tls_root_certs"):
        connect(ident, signer, "127.0.0.1:1", tls_client_cert=b"x", tls_client_key=b"y")


def test_serums_node_mutual_tls_from_the_command_line(tmp_path):
    import json
    import signal
    import subprocess
    import sys

    from serums.supervisor import free_port

    cfg = make_network(tmp_path / "network")
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "serums", "--data-dir", str(tmp_path), "node", "--listen", address,
                             "--mutual-tls"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        while "serving on" not in line:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "serums node exited"
        assert "over mutual TLS" in line
        assert json.loads((tmp_path / "node.json").read_text())["tls"] == "mutual"
        client = client_tls(cfg, "fcrb")
        c = _contract(cfg, address, tls_root_certs=node_tls(cfg).ca, tls_client_cert=client.cert,
                      tls_client_key=client.key)
        assert c.submit_json("Put", "cli", "a", {"v": 3})["version"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_hospital_added_under_mutual_tls_connects_with_its_own_client_certificate_without_a_restart(tmp_path):
    from network import ChaincodeDefinition, client_tls_options
    from network.node.grow import add_hospital

    cfg = make_network(tmp_path / "net")
    cfg.chaincodes.append(ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode", "1.0", "MAJORITY"))
    cfg.save()
    node = EmbeddedNode(cfg)
    address = node.start("127.0.0.1:0", mutual_tls=True)
    try:
        tls = client_tls_options(cfg, "mutual")
        assert set(tls) == {"tls_root_certs", "tls_client_cert", "tls_client_key"}
        # the new hospital's admin registers it over its own TLS client certificate (its TLS CA is
        # trusted by the running node from the CONFIG block on: no restart)
        assert add_hospital(cfg, "stjohns", address, tls=tls, timeout=30) == "StjohnsMSP"
        mine = client_tls(cfg, "stjohns")
        ident, signer = cfg.load_user("stjohns")
        with connect(ident, signer, address, tls_root_certs=node_tls(cfg).ca, tls_client_cert=mine.cert,
                     tls_client_key=mine.key) as gw:
            users = gw.network(cfg.channel).contract("serums", "UserContract")
            assert users.evaluate_json("GetHospital", "StjohnsMSP")["msp"] == "StjohnsMSP"
        # a client certificate of a CA outside the channel is still refused
        cert, key, _ = _rogue_tls_files(tmp_path)
        with pytest.raises(GatewayError):
            _contract(cfg, address, tls_root_certs=node_tls(cfg).ca, tls_client_cert=cert,
                      tls_client_key=key).evaluate("Get", "x", "a")
    finally:
        node.stop()


def test_client_tls_options_follow_the_mode(tmp_path):
    from network import client_tls_options

    cfg = make_network(tmp_path / "net")
    assert client_tls_options(cfg, "off") == {}
    assert client_tls_options(cfg, "on") == {"tls_root_certs": node_tls(cfg).ca}
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(b"PEM")
    assert client_tls_options(cfg, "off", ca_file) == {"tls_root_certs": b"PEM"}  # a Fabric peer's CA
    with pytest.raises(ValueError, match="mutual"):
        client_tls_options(cfg, "always")
