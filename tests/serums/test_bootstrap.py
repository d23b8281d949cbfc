"""What `serums up` writes on the chain: hospitals, rules, enrolled patients and their own preferences."""

from __future__ import annotations

import pytest

from network import ChaincodeDefinition, GatewayError, connect, init_network
from network.node import EmbeddedNode
from serums.bootstrap import (
    DEFAULT_RULES,
    PREFERENCE_PROFILES,
    preference_profile,
    publish_preferences,
    publish_rules,
    register_hospitals,
    register_patients,
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    cfg = init_network(tmp_path_factory.mktemp("up") / "network", ["lothian", "zmc", "fcrb"])
    cfg.chaincodes = [ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode")]
    cfg.save()
    node = EmbeddedNode(cfg)
    address = node.start("127.0.0.1:0")
    yield cfg, address
    node.stop()


def test_hospitals_and_rules_are_published_once(chain):
    cfg, address = chain
    assert register_hospitals(cfg, address) == ["lothian", "zmc", "fcrb"]
    assert publish_rules(cfg, address) == 3 * len(DEFAULT_RULES)
    assert register_hospitals(cfg, address) == [] and publish_rules(cfg, address) == 0  # a second `up` reuses
    admin = connect(*cfg.load_user("zmc"), address).network(cfg.channel)
    policy = admin.contract("serums", "PolicyContract").evaluate_json("GetPolicy", "ZmcMSP")
    assert set(policy["rules"]) == {r["rule_id"] for r in DEFAULT_RULES}


def test_patients_are_enrolled_and_sign_their_own_varied_preferences(chain):
    cfg, address = chain
    register_hospitals(cfg, address)
    refs = [f"{i:032x}" for i in range(1, 41)]
    ids = register_patients(cfg, address, "lothian", refs)
    assert set(ids) == set(refs)
    assert register_patients(cfg, address, "lothian", refs) == {}
    written = publish_preferences(cfg, address, ids, refs)
    assert written == sum(len(preference_profile(i, len(refs))) for i in range(len(refs))) > 0
    ident, signer = ids[refs[0]]
    prefs = connect(ident, signer, address).network(cfg.channel).contract(
        "serums", "PreferenceContract").evaluate_json("ListPreferences", refs[0])
    assert sorted(prefs["rules"]) == sorted(p["pref_id"] for p in preference_profile(0, 40))
    # only the patient writes their preferences: the hospital admin cannot
    admin = connect(*cfg.load_user("lothian"), address).network(cfg.channel).contract("serums", "PreferenceContract")
    with pytest.raises(GatewayError) as e:
        admin.submit_json("AddPreference", refs[1], PREFERENCE_PROFILES[0][1][0])
    assert e.value.chaincode_status == 403


def test_profiles_cover_every_share():
    shares = [share for share, _ in PREFERENCE_PROFILES]
    assert abs(sum(shares) - 1.0) < 1e-9
    kinds = {tuple(p["pref_id"] for p in preference_profile(i, 100)) for i in range(100)}
    assert len(kinds) == len(PREFERENCE_PROFILES)
