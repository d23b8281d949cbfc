"""Identity link: the hospital CA issues the user's Fabric identity; the wallet opens only with
the user's secret (either key) during a live session, or the user holds the key themselves."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization

from auth import (
    EnrolmentError,
    InvalidCredentials,
    InvalidInput,
    TokenRevoked,
    WalletLocked,
    WalletNotHeld,
)
from auth.config import Argon2Params
from auth.crypto import Sealed, open_sealed
from auth.models import SessionRow, WalletRow, WalletWrapRow
from auth.wallet import Wrap, kek_input, unwrap_dek
from network import MSP, Identity, Signer, verify

from .conftest import IMAGES, KEY, OTHER_IMAGES, OTHER_KEY, login, register


def rows(service, model, **where):
    with service.engine.connect() as conn:
        q = sa.select(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return conn.execute(q).all()


def test_enrolment_issues_a_pseudonymous_fabric_identity(service, doctor, cas):
    uid = doctor.reg.user.user_id
    identity = Identity.from_pem("LothianMSP", doctor.reg.certificate_pem)
    MSP("LothianMSP", [cas["lothian"].certificate]).validate(identity)
    assert identity.common_name == uid and "smith" not in identity.certificate.subject.rfc4514_string()
    assert identity.attributes == {"role": "specialist", "uid": uid, "hf.EnrollmentID": uid}
    assert identity.node_role == "client"
    assert doctor.reg.user.certificate_fingerprint == identity.fingerprint
    admin = register(service, "admin.lothian", role="hospital_admin", key=OTHER_KEY, images=OTHER_IMAGES)
    assert Identity.from_pem("LothianMSP", admin.certificate_pem).node_role == "admin"


def test_unknown_hospital_cannot_enrol(service):
    with pytest.raises(EnrolmentError):
        register(service, "dr.far", hospital="atlantis")
    assert service.list_users() == []


def test_either_key_unlocks_the_same_wallet_for_its_session(service, doctor):
    by_text = login(service, doctor.reg)
    by_picture = login(service, doctor.reg, method="graphical")
    s1 = service.signer_for_session(by_text.session_id, by_text.wallet_session_key)
    s2 = service.signer_for_session(by_picture.session_id, by_picture.wallet_session_key)
    identity = service.identity_of(doctor.reg.user.user_id)
    for signer in (s1, s2):
        assert verify(identity.public_key, b"tx", signer.sign(b"tx"))
    # one session's wallet key does not open another session's wallet
    with pytest.raises(WalletLocked):
        service.signer_for_session(by_text.session_id, by_picture.wallet_session_key)


def test_wallet_is_unreadable_without_the_secret(service, doctor):
    uid = doctor.reg.user.user_id
    (wallet,) = rows(service, WalletRow, user_id=uid)
    wraps = {w.method: w for w in rows(service, WalletWrapRow, user_id=uid)}
    assert set(wraps) == {"text", "graphical"}
    # nothing stored is the key in the clear
    pem_body = b"".join(doctor_signer_pem(service, doctor).splitlines()[1:-1])
    for blob in (wallet.key_ct, *(w.wrapped_dek for w in wraps.values())):
        assert pem_body[:40] not in blob and b"PRIVATE KEY" not in blob
    # the wrap does not open with a wrong key, a near miss of the pictures, or without the pepper
    def try_open(method, material, pepper=service.config.pepper):
        w = wraps[method]
        return unwrap_dek(Wrap(method, w.salt, Argon2Params.from_json(w.kdf), w.nonce, w.wrapped_dek),
                          user_id=uid, kek_secret=kek_input(pepper, uid, method, material))

    assert try_open("text", (KEY,)) is not None
    assert try_open("text", (KEY + " ",)) is None
    assert try_open("text", (KEY,), pepper=os.urandom(32)) is None
    assert try_open("graphical", tuple(sorted(IMAGES))) is not None
    assert try_open("graphical", tuple(sorted([*IMAGES[:4], "places.castle"]))) is None
    # a text wrap cannot be passed off as the graphical one (bound by its associated data)
    w = wraps["text"]
    swapped = Wrap("graphical", w.salt, Argon2Params.from_json(w.kdf), w.nonce, w.wrapped_dek)
    assert unwrap_dek(swapped, user_id=uid, kek_secret=kek_input(service.config.pepper, uid, "text", (KEY,))) is None
    # random keys do not open the sealed private key
    assert open_sealed(os.urandom(32), Sealed(wallet.key_nonce, wallet.key_ct), b"serums-auth/wallet-key/v1|" +
                       uid.encode()) is None


def doctor_signer_pem(service, doctor) -> bytes:
    return service.open_wallet_with_key("dr.smith", KEY).private_key_pem()


def test_open_wallet_with_key_is_guarded_like_a_login(service, doctor):
    signer = service.open_wallet_with_key("dr.smith", KEY)
    assert signer.public_key.public_numbers() == service.identity_of(doctor.reg.user.user_id).public_key.public_numbers()
    with pytest.raises(InvalidCredentials):
        service.open_wallet_with_key("dr.smith", "a wrong key entirely")
    with pytest.raises(InvalidCredentials):
        service.open_wallet_with_key("dr.nobody", KEY)


def test_ended_session_cannot_sign(service, doctor):
    result = login(service, doctor.reg)
    service.logout(result.session_id)
    with pytest.raises(TokenRevoked):
        service.signer_for_session(result.session_id, result.wallet_session_key)
    # and the session's sealed DEK was wiped
    (sess,) = rows(service, SessionRow, id=result.session_id)
    assert sess.wallet_ct is None and sess.revoked_reason == "logout"


def test_wallet_can_be_limited_to_the_textual_key(make_service, config):
    service = make_service(replace(config, graphical_wallet=False))
    reg = register(service)
    assert {w.method for w in rows(service, WalletWrapRow, user_id=reg.user.user_id)} == {"text"}
    by_picture = login(service, reg, method="graphical")
    assert by_picture.wallet_session_key is None
    by_text = login(service, reg)
    assert service.signer_for_session(by_text.session_id, by_text.wallet_session_key)


def test_exported_key_is_handed_over_once_and_not_kept(service):
    reg = register(service, "pat.one", role="patient", key=OTHER_KEY, images=OTHER_IMAGES, custody="exported",
                   export_passphrase="a separate export passphrase")
    assert reg.user.key_custody == "exported"
    assert rows(service, WalletRow, user_id=reg.user.user_id) == []
    assert b"ENCRYPTED PRIVATE KEY" in reg.exported_key_pem
    signer = Signer.from_pem(reg.exported_key_pem, "a separate export passphrase")
    identity = Identity.from_pem("LothianMSP", reg.certificate_pem)
    assert verify(identity.public_key, b"offline", signer.sign(b"offline"))
    result = login(service, reg, key=OTHER_KEY)
    assert result.wallet_session_key is None
    with pytest.raises(WalletNotHeld):
        service.open_wallet_with_key("pat.one", OTHER_KEY)


def test_user_supplied_public_key_is_certified_without_any_private_key(service):
    own = Signer.generate()
    pub = own.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    reg = register(service, "pat.two", role="patient", key=OTHER_KEY, images=OTHER_IMAGES, custody="exported",
                   public_key_pem=pub)
    assert reg.exported_key_pem is None
    identity = Identity.from_pem("LothianMSP", reg.certificate_pem)
    assert identity.public_key.public_numbers() == own.public_key.public_numbers()
    with pytest.raises(InvalidInput):
        register(service, "pat.three", key=OTHER_KEY, images=OTHER_IMAGES, custody="exported",
                 public_key_pem=b"-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    with pytest.raises(InvalidInput):
        register(service, "pat.four", key=OTHER_KEY, images=OTHER_IMAGES, public_key_pem=pub)  # wallet + key


def test_change_secret_rewraps_the_wallet_and_ends_other_sessions(service, doctor):
    before = service.open_wallet_with_key("dr.smith", KEY).public_key.public_numbers()
    other = login(service, doctor.reg)
    new_key = "Marmalade clouds drift over Kinloch pier"
    new_images = ["nature.moon", "nature.wave", "transport.canoe", "transport.sailboat", "objects.anchor"]
    with pytest.raises(InvalidCredentials):
        service.change_secret(doctor.reg.user.user_id, current_text_key="wrong", new_text_key=new_key,
                              new_images=new_images)
    grid = service.change_secret(doctor.reg.user.user_id, current_text_key=KEY, new_text_key=new_key,
                                 new_images=new_images)
    assert set(new_images) <= set(grid)
    assert not service.sessions.get(other.session_id).active
    with pytest.raises(InvalidCredentials):
        service.open_wallet_with_key("dr.smith", KEY)
    service.unlock("dr.smith")
    assert service.open_wallet_with_key("dr.smith", new_key).public_key.public_numbers() == before
    result = login(service, doctor.reg, method="graphical", images=new_images)
    assert service.signer_for_session(result.session_id, result.wallet_session_key)


def test_auth_roles_are_the_chains_person_roles():
    """A certificate's role attribute must be one the UserContract registers."""
    from auth.records import ROLES
    from chaincode.serums.vocab import PERSON_ROLES

    assert set(ROLES) == set(PERSON_ROLES)
