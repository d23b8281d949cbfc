"""What `serums network up --engine fabric` writes before any process runs: MSPs from the hospitals'
own CAs, TLS material, the chaincode package, policies, configtx (checked by Fabric's own tools when
they are at hand), and the command's one-line refusals."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from network import init_network
from network.fabric import FabricError, find_fabric_bin
from network.fabric.configs import ccaas_package, configtx, signature_policy
from network.fabric.crypto import org_material
from tests.conftest import fabric_bin

HOSPITALS = ["lothian", "zmc"]


@pytest.fixture
def cfg(tmp_path):
    return init_network(tmp_path / "network", HOSPITALS)


def test_endorsement_policies_in_fabric_syntax():
    msps = ["LothianMSP", "ZmcMSP", "FcrbMSP"]
    assert signature_policy("MAJORITY", msps) == "OutOf(2, 'LothianMSP.peer', 'ZmcMSP.peer', 'FcrbMSP.peer')"
    assert signature_policy("majority", msps[:2]) == "OutOf(2, 'LothianMSP.peer', 'ZmcMSP.peer')"
    assert signature_policy("ANY", msps[:2]) == "OR('LothianMSP.peer', 'ZmcMSP.peer')"
    assert signature_policy("ALL", msps[:2]) == "AND('LothianMSP.peer', 'ZmcMSP.peer')"
    assert signature_policy("OR('ZmcMSP.peer')", msps) == "OR('ZmcMSP.peer')"


def test_a_ccaas_package_holds_metadata_and_connection_and_its_id_is_the_label_and_hash():
    pkg, package_id = ccaas_package("serums_lothian", {"address": "127.0.0.1:9999", "tls_required": False})
    assert package_id == "serums_lothian:" + hashlib.sha256(pkg).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(pkg)) as outer:
        assert json.load(outer.extractfile("metadata.json")) == {"type": "ccaas", "label": "serums_lothian"}
        with tarfile.open(fileobj=io.BytesIO(outer.extractfile("code.tar.gz").read())) as code:
            assert json.load(code.extractfile("connection.json"))["address"] == "127.0.0.1:9999"


def test_msps_come_from_the_hospitals_own_cas_with_node_ous_and_a_tls_ca(cfg, tmp_path):
    root = tmp_path / "fabric"
    for org in [*HOSPITALS, "orderer"]:
        org_material(cfg, root, org)
    msp = root / "orgs" / "lothian" / "msp"
    assert (msp / "cacerts" / "ca.pem").read_bytes() == (cfg.ca_dir("lothian") / "ca.pem").read_bytes()
    ous = yaml.safe_load((msp / "config.yaml").read_text())["NodeOUs"]
    assert ous["Enable"] and ous["AdminOUIdentifier"]["OrganizationalUnitIdentifier"] == "admin"
    # the peer and the admin sign with the very identities `network init` issued
    peer_ident, _ = cfg.load_peer("lothian")
    admin_ident, _ = cfg.load_user("lothian")
    assert (root / "orgs/lothian/peer0/msp/signcerts/cert.pem").read_bytes() == peer_ident.pem
    assert (root / "orgs/lothian/admin/msp/signcerts/cert.pem").read_bytes() == admin_ident.pem
    key = root / "orgs/lothian/peer0/msp/keystore/priv_sk"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and b"ENCRYPTED" not in key.read_bytes()
    # TLS: a separate CA per organisation, server certificates valid for 127.0.0.1 and localhost
    tls = x509.load_pem_x509_certificate((root / "orgs/lothian/peer0/tls/server.crt").read_bytes())
    tlsca = x509.load_pem_x509_certificate((msp / "tlscacerts" / "tlsca.pem").read_bytes())
    assert tls.issuer == tlsca.subject and "tlsca.lothian" in tlsca.subject.rfc4514_string()
    san = tls.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    # again: nothing is re-issued
    before = (root / "orgs/lothian/peer0/tls/server.crt").read_bytes()
    org_material(cfg, root, "lothian")
    assert (root / "orgs/lothian/peer0/tls/server.crt").read_bytes() == before


def test_fabric_binaries_are_looked_up_in_order(tmp_path, monkeypatch):
    with pytest.raises(FabricError, match="FABRIC_BIN=.* lacks"):
        find_fabric_bin(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FabricError, match="neither in FABRIC_BIN nor on PATH"):
        find_fabric_bin(None, (tmp_path / "nothing",))


@pytest.mark.fabric
def test_fabric_tools_accept_the_package_and_the_channel_configuration(cfg, tmp_path):
    bin_dir = fabric_bin()
    assert bin_dir is not None
    env = {**os.environ, "FABRIC_CFG_PATH": str(bin_dir.parent / "config")}
    pkg, package_id = ccaas_package("serums_zmc", {"address": "127.0.0.1:9999"})
    (tmp_path / "pkg.tar.gz").write_bytes(pkg)
    out = subprocess.run([str(bin_dir / "peer"), "lifecycle", "chaincode", "calculatepackageid",
                          str(tmp_path / "pkg.tar.gz")], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == package_id
    root = tmp_path / "fabric"
    for org in [*HOSPITALS, "orderer"]:
        org_material(cfg, root, org)
    ports = {"orderer": {"listen": 7050}, "lothian": {"listen": 7051}, "zmc": {"listen": 9051}}
    (root / "configtx.yaml").write_text(yaml.safe_dump(configtx(cfg, root, ports, 10.0)))
    block = tmp_path / "genesis.block"
    subprocess.run([str(bin_dir / "configtxgen"), "-profile", "SerumsChannel", "-outputBlock", str(block),
                    "-channelID", "serums", "-configPath", str(root)], env=env, capture_output=True, check=True)
    out = subprocess.run([str(bin_dir / "configtxgen"), "-inspectBlock", str(block)], env=env,
                         capture_output=True, text=True, check=True)
    groups = json.loads(out.stdout)["data"]["data"][0]["payload"]["data"]["config"]["channel_group"]["groups"]
    assert set(groups["Application"]["groups"]) == {"LothianMSP", "ZmcMSP"}
    anchors = groups["Application"]["groups"]["ZmcMSP"]["values"]["AnchorPeers"]["value"]["anchor_peers"]
    assert anchors == [{"host": "127.0.0.1", "port": 9051}]
    assert groups["Orderer"]["values"]["ConsensusType"]["value"]["type"] == "etcdraft"


def _serums(tmp_path: Path, *argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "serums", "--data-dir", str(tmp_path), *argv],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_the_commands_refuse_in_one_line(tmp_path):
    r = _serums(tmp_path, "network", "up", "--engine", "embedded")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "--engine fabric" in r.stderr
    r = _serums(tmp_path, "network", "up", "--engine", "fabric", "--hospitals", "lothian,zmc",
                env={"FABRIC_BIN": str(tmp_path / "nowhere")})
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "lacks" in r.stderr
    assert not (tmp_path / "network").exists()  # nothing written
    r = _serums(tmp_path, "network", "status")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "network init" in r.stderr
    init_network(tmp_path / "network", HOSPITALS)
    r = _serums(tmp_path, "network", "status")
    assert r.returncode == 1 and "no Fabric network" in r.stdout
    r = _serums(tmp_path, "chaincode", "serve", "--chaincode-id", "x:1", "--client-ca", "ca.pem")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "--tls-cert" in r.stderr
    r = _serums(tmp_path, "chaincode", "serve", "--chaincode-id", "x:1", "--module", "nope.mod:f")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "nope" in r.stderr
