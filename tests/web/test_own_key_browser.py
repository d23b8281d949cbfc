"""A patient who holds their own key signs in the browser — preference changes, the request that
opens their own record, revocations: the key is imported
once into WebCrypto (ECDSA P-256, non-extractable) and kept in IndexedDB; each change goes through
prepare → endorse → submit with DER, low-S signatures; the key never reaches the server."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from auth import WalletNotHeld
from gateway import flow
from gateway import ledger as L
from tests.gateway.stack import IMAGES, KEY, Account

from .conftest import actor_of, shot
from .pages import sign_in
from .test_security_browser import AXE, _axe

pytestmark = pytest.mark.browser


def own_key_patient(site, index: int, username: str) -> tuple[Account, str]:
    """A patient of lothian enrolled with their own key (custody exported): the account and the PEM."""
    svc = site.world.services
    _, ref = site.world.patient_ref("lothian", index)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    reg = svc.enrol(*svc.hospital_admin("lothian"), "lothian", username, "patient", KEY, IMAGES, user_id=ref,
                    custody="exported", public_key_pem=public)
    return Account(username, reg), pem


def with_key_in_browser(new_page, account: Account, pem: str, path: str):
    """Signed in, on ``path``, the key pasted once and kept in the browser; with the bodies of
    every request the page sends (to show the key never leaves)."""
    page = new_page()
    sent: list[bytes] = []
    page.on("request", lambda r: sent.append(r.post_data_buffer or b""))
    sign_in(page, account)
    page.goto(path)
    page.get_by_label(re.compile("Paste your private key once")).fill(pem)
    page.get_by_role("button", name="Keep my key in this browser").click()
    page.get_by_text("Your key is kept in this browser").wait_for()
    return page, sent


def assert_key_never_sent(sent: list[bytes], pem: str) -> None:
    body = "".join(pem.splitlines()[1:-1])
    assert sent and not any(body[:40].encode() in data or body[-40:].encode() in data for data in sent)


@pytest.fixture(scope="module")
def carol_key(site) -> tuple[Account, str]:
    """A patient who holds her own key (one for this module: the site's fixture patients are few)."""
    return own_key_patient(site, 2, "carol.ownkey")


def test_a_patient_signs_preference_changes_in_the_browser(site, new_page, carol_key):
    svc = site.world.services
    carol, pem = carol_key

    page, sent = with_key_in_browser(new_page, carol, pem, "/patient/preferences")
    extractable = page.evaluate(f"""() => new Promise((resolve) => {{
        const r = indexedDB.open("serums-keys", 1);
        r.onsuccess = () => {{ const g = r.result.transaction("keys").objectStore("keys").get("{carol.user_id}");
          g.onsuccess = () => resolve([g.result.type, g.result.extractable, g.result.algorithm.namedCurve]); }};
    }})""")
    assert extractable == ["private", False, "P-256"]

    form = page.locator("form[data-sign=add]")
    form.get_by_label("Refuse", exact=True).check()
    form.get_by_label("Everyone with the role").check()
    form.get_by_label("Role", exact=True).select_option("insurer")
    form.get_by_label("Personal details", exact=True).check()
    form.get_by_label("Insurance", exact=True).check()
    form.get_by_role("button", name="Save this choice").click()
    page.get_by_text("Signed in your browser and recorded on the ledger").wait_for()
    shot(page, "patient-own-key-signed")
    row = page.locator("table").first.locator("tr", has_text="any insurer")
    assert row.count() == 1 and "Personal details" in row.inner_text()
    assert svc.auth.get_user(carol.user_id).key_custody == "exported"  # the server holds no key of hers

    # withdrawing is signed the same way
    first = page.url
    row.get_by_role("button", name="Remove").click()
    page.wait_for_url(lambda url: url != first and "signed=" in url)
    assert page.locator("table").first.locator("tr", has_text="any insurer").count() == 0

    assert_key_never_sent(sent, pem)


def test_a_patient_with_their_own_key_opens_their_record_and_revokes_a_grant(site, new_page, browser, carol_key):
    svc = site.world.services
    carol, pem = carol_key
    nurse = actor_of(svc, site.people.nurse)
    d = flow.request_access(svc, nurse, carol.user_id, "lothian", sections=["demographics"], purpose="treatment",
                            justification="direct-care")
    assert d["grant_id"] and d["token"]

    page, sent = with_key_in_browser(new_page, carol, pem, "/patient/record")
    shot(page, "patient-own-key-record-to-open")
    page.get_by_role("button", name="Open my record").click()
    page.wait_for_url(re.compile(r"grant_id="))
    page.get_by_text("This is everything").wait_for()
    shot(page, "patient-own-key-record")
    grant_id = re.search(r"grant_id=([^&]+)", page.url).group(1)
    own = flow.patient_trail(svc, flow_reader(svc, carol), carol.user_id, "access", 100)["records"]
    assert any(r["record"].get("grant_id") == grant_id for r in own)  # the release was logged on chain
    assert page.get_by_role("heading", name=re.compile("Demographics|Personal details")).count() >= 1

    page.goto("/patient/grants")
    row = page.locator("tr", has_text="nurse")
    row.get_by_role("button", name=re.compile("Revoke")).click()
    page.get_by_text("Signed in your browser").wait_for()
    shot(page, "patient-own-key-revoked")
    assert page.locator("tr", has_text="nurse").count() == 0
    g = L.evaluate(svc.admin_contract("lothian", "TransportContract"), "GetGrant", d["grant_id"])
    assert g["status"] == "revoked" and not g["live"]
    with pytest.raises(Exception, match="(?i)revoked|not live"):
        flow.fetch_record(svc, nurse, d["token"]["token"])

    assert_key_never_sent(sent, pem)
    assert svc.auth.get_user(carol.user_id).key_custody == "exported"

    # the own-key pages are accessible too (axe-core, injected: its own context bypasses the CSP for it)
    if AXE.exists():
        ctx = browser.new_context(base_url=site.url, bypass_csp=True)
        try:
            axe_page = ctx.new_page()
            sign_in(axe_page, carol)
            found = []
            for path in ("/patient/record", "/patient/grants", "/patient/preferences"):
                axe_page.goto(path)
                found += _axe(axe_page, AXE.read_text())
            assert not found, found
        finally:
            ctx.close()


def flow_reader(svc, account: Account) -> flow.Actor:
    """The application layer's actor for a patient who holds their own key (reads only)."""
    user = account.reg.user

    def no_signer():
        raise WalletNotHeld("holds their own key")

    return flow.Actor(user.user_id, user.role, user.hospital, user.msp_id, "", no_signer)
