"""A patient who holds their own key signs preference changes in the browser: the key is imported
once into WebCrypto (ECDSA P-256, non-extractable) and kept in IndexedDB; each change goes through
prepare → endorse → submit with DER, low-S signatures; the key never reaches the server."""

from __future__ import annotations

import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.gateway.stack import IMAGES, KEY, Account

from .conftest import shot
from .pages import sign_in

pytestmark = pytest.mark.browser


def test_a_patient_signs_preference_changes_in_the_browser(site, new_page):
    svc = site.world.services
    _, ref = site.world.patient_ref("lothian", 2)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    reg = svc.enrol(*svc.hospital_admin("lothian"), "lothian", "carol.ownkey", "patient", KEY, IMAGES, user_id=ref,
                    custody="exported", public_key_pem=public)
    carol = Account("carol.ownkey", reg)

    page = new_page()
    sent: list[bytes] = []
    page.on("request", lambda r: sent.append(r.post_data_buffer or b""))
    sign_in(page, carol)
    page.goto("/patient/preferences")
    page.get_by_label(re.compile("Paste your private key once")).fill(pem)
    page.get_by_role("button", name="Keep my key in this browser").click()
    page.get_by_text("Your key is kept in this browser").wait_for()
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

    body = "".join(pem.splitlines()[1:-1])
    assert sent and not any(body[:40].encode() in data or body[-40:].encode() in data for data in sent)
