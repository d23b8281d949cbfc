import os

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from network import (
    MSP,
    CertificateAuthority,
    Identity,
    IdentityError,
    NetworkConfig,
    Signer,
    init_network,
    verify,
)
from network.identity import P256_ORDER, is_low_s


def test_signatures_are_low_s_and_high_s_is_rejected():
    signer = Signer.generate()
    for i in range(50):
        sig = signer.sign(b"message %d" % i)
        assert is_low_s(sig)
        assert verify(signer.public_key, b"message %d" % i, sig)
        r, s = decode_dss_signature(sig)
        high = encode_dss_signature(r, P256_ORDER - s)
        assert not verify(signer.public_key, b"message %d" % i, high)
    assert not verify(signer.public_key, b"other", signer.sign(b"message"))


def test_ca_issues_roles_and_attributes_and_msp_validates_chain():
    ca = CertificateAuthority.create("LothianMSP", "lothian")
    other = CertificateAuthority.create("LothianMSP", "lothian")  # same name, different key
    ident, signer = ca.issue("dr.who", "client", attributes={"role": "specialist", "uid": "u-1"})
    assert ident.node_role == "client"
    assert ident.attributes == {"role": "specialist", "uid": "u-1"}
    assert len(ident.fingerprint) == 64
    round_trip = Identity.deserialize(ident.serialize())
    assert round_trip.fingerprint == ident.fingerprint and round_trip.msp_id == "LothianMSP"
    MSP("LothianMSP", [ca.certificate]).validate(ident)
    with pytest.raises(IdentityError, match="not issued"):
        MSP("LothianMSP", [other.certificate]).validate(ident)
    with pytest.raises(IdentityError, match="belongs to"):
        MSP("ZmcMSP", [ca.certificate]).validate(ident)
    with pytest.raises(IdentityError):
        ca.issue("x", "superuser")


def test_network_init_writes_private_keys_0600_and_encrypts_with_passphrase(tmp_path):
    cfg = init_network(tmp_path, ["lothian", "zmc"], passphrase="correct horse")
    key = cfg.user_dir("lothian", "admin") / "key.pem"
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    assert b"ENCRYPTED" in key.read_bytes()
    with pytest.raises(IdentityError):
        cfg.load_user("lothian", "admin")  # no passphrase
    with pytest.raises(IdentityError):
        cfg.load_user("lothian", "admin", passphrase="wrong")
    ident, _ = NetworkConfig.load(tmp_path).load_user("lothian", "admin", passphrase="correct horse")
    assert ident.node_role == "admin" and ident.msp_id == "LothianMSP"
    with pytest.raises(Exception, match="already exists"):
        init_network(tmp_path, ["lothian"])
