"""What ``serums up`` puts on the chain before anyone logs in: hospitals and their generic rules.

Every step is idempotent (it reads the chain first), so a second ``serums up`` reuses what the
first one wrote. Signed by each hospital's admin identity from the network directory.
"""

from __future__ import annotations

import grpc

from gateway import ledger as L
from network import GatewayError, NetworkConfig, connect

#: where the set-up reaches the ledger: ``host:port`` of a plaintext endpoint, or an open gRPC channel
#: (a TLS one to a Fabric peer, from ``serums up --engine fabric``)
Ledger = str | grpc.Channel

HOSPITAL_NAMES = {
    "lothian": "NHS Lothian - Edinburgh Cancer Centre",
    "zmc": "Zuyderland Medisch Centrum",
    "fcrb": "Fundacio Clinic per a la Recerca Biomedica",
}

CLINICAL_SECTIONS = ["admissions", "conditions", "procedures", "oncology.diagnosis", "oncology.treatment",
                     "oncology.toxicity", "comorbidities"]

#: Step 1: each hospital's generic rules (role × section × purpose → allow/deny, with conditions).
DEFAULT_RULES = [
    {"rule_id": "clinicians-treating", "roles": ["gp", "specialist"], "purposes": ["treatment"],
     "sections": [*CLINICAL_SECTIONS, "demographics", "imaging"], "treating_required": True,
     "max_grant_seconds": 8 * 3600},
    {"rule_id": "nurses-own-hospital", "roles": ["nurse"], "purposes": ["treatment"],
     "sections": ["demographics", "contact", "admissions", "oncology.toxicity"], "same_hospital": True,
     "treating_required": True, "max_grant_seconds": 4 * 3600},
    {"rule_id": "research-with-consent", "roles": ["researcher"], "purposes": ["research"],
     "sections": ["conditions", "oncology.diagnosis", "oncology.treatment", "oncology.toxicity", "comorbidities"],
     "consent_required": True, "max_grant_seconds": 30 * 24 * 3600},
    {"rule_id": "research-no-identity", "effect": "deny", "roles": ["researcher"], "purposes": ["*"],
     "sections": ["demographics", "contact", "documents"]},
    {"rule_id": "insurers-with-consent", "roles": ["insurer"], "purposes": ["insurance"],
     "sections": ["admissions", "procedures"], "consent_required": True, "max_grant_seconds": 7 * 24 * 3600},
    {"rule_id": "auditors-audit", "roles": ["auditor"], "purposes": ["audit"], "sections": ["*"],
     "same_hospital": True, "max_grant_seconds": 3600},
]
DEFAULT_SETTINGS = {"max_grant_seconds": 12 * 3600, "break_glass_seconds": 4 * 3600}


def _admin_network(cfg: NetworkConfig, hospital: str, address: Ledger, passphrase: str | None):
    ident, signer = cfg.load_user(hospital, "admin", passphrase)
    return connect(ident, signer, address).network(cfg.channel)


def register_hospitals(cfg: NetworkConfig, address: Ledger, passphrase: str | None = None) -> list[str]:
    """Register every hospital of the network on chain (its admin signs). Returns the new ones."""
    added = []
    for h in cfg.hospitals:
        users = _admin_network(cfg, h.name, address, passphrase).contract("serums", "UserContract")
        try:
            users.evaluate_json("GetHospital", h.msp_id)
            continue
        except GatewayError as exc:
            if exc.chaincode_status != 404:
                raise
        users.submit_json("RegisterHospital", HOSPITAL_NAMES.get(h.name, h.name))
        # its rules, published next, may be endorsed by any hospital's peer: wait until all know it
        L.await_every_peer(users, [o.msp_id for o in cfg.hospitals], "GetHospital", h.msp_id)
        added.append(h.name)
    return added


def publish_rules(cfg: NetworkConfig, address: Ledger, passphrase: str | None = None) -> int:
    """Publish the default generic rules and settings of every hospital that has none yet."""
    published = 0
    for h in cfg.hospitals:
        policy = _admin_network(cfg, h.name, address, passphrase).contract("serums", "PolicyContract")
        current = policy.evaluate_json("GetPolicy", h.msp_id)
        have = set(current.get("rules") or {})  # rules keyed by rule_id
        for rule in DEFAULT_RULES:
            if rule["rule_id"] not in have:
                policy.submit_json("PutRule", rule)
                published += 1
        if not have:
            policy.submit_json("SetPolicySettings", DEFAULT_SETTINGS)
    return published


#: Patients' own rules (step 2), varied as real patients' are: (share of patients, preferences).
PREFERENCE_PROFILES: list[tuple[float, list[dict]]] = [
    (0.25, [{"pref_id": "no-research", "effect": "deny", "grantee": {"kind": "role", "id": "researcher"},
             "sections": ["*"], "purposes": ["research"]}]),
    (0.20, [{"pref_id": "research-ok", "effect": "allow", "grantee": {"kind": "role", "id": "researcher"},
             "sections": ["conditions", "oncology.diagnosis", "oncology.treatment", "oncology.toxicity",
                          "comorbidities"],
             "purposes": ["research"]}]),
    (0.15, [{"pref_id": "no-insurers", "effect": "deny", "grantee": {"kind": "role", "id": "insurer"},
             "sections": ["*"], "purposes": ["*"]}]),
    (0.10, [{"pref_id": "no-toxicity-sharing", "effect": "deny", "grantee": "anyone",
             "sections": ["oncology.toxicity"], "purposes": ["treatment"]}]),
    (0.30, []),  # no preferences: the hospital's rules apply
]


def preference_profile(index: int, total: int) -> list[dict]:
    """The preferences of the ``index``-th of ``total`` patients: deterministic, in the profile shares."""
    position = (index + 0.5) / max(1, total)
    acc = 0.0
    for share, prefs in PREFERENCE_PROFILES:
        acc += share
        if position < acc:
            return prefs
    return []


def register_patients(cfg: NetworkConfig, address: Ledger, hospital: str, refs: list[str],
                      passphrase: str | None = None, workers: int = 8) -> dict[str, tuple]:
    """Enrol patients on chain the way a hospital does at admission: its CA issues each a
    certificate (CN and uid = the vault's pseudonymous reference) and its admin registers the
    user. Returns {ref: (identity, signer)} of the newly registered; the patient later replaces
    this hospital-issued identity with their own FlexPass enrolment (UpdateUser)."""
    from concurrent.futures import ThreadPoolExecutor

    ca = cfg.load_ca(hospital, passphrase)
    users = _admin_network(cfg, hospital, address, passphrase).contract("serums", "UserContract")

    def one(ref: str):
        try:
            users.evaluate_json("GetUser", ref)
            return None
        except GatewayError as exc:
            if exc.chaincode_status != 404:
                raise
        ident, signer = ca.issue(ref, "client", attributes={"role": "patient", "uid": ref})
        users.submit_json("RegisterUser", ref, "patient", ident.fingerprint)
        return ref, (ident, signer)

    with ThreadPoolExecutor(workers) as pool:
        return dict(r for r in pool.map(one, refs) if r is not None)


def publish_preferences(cfg: NetworkConfig, address: Ledger, identities: dict[str, tuple], order: list[str],
                        workers: int = 8) -> int:
    """Each newly enrolled patient signs their own preferences (PreferenceContract is written only
    by the patient's identity). Returns how many preferences were written."""
    from concurrent.futures import ThreadPoolExecutor

    position = {ref: i for i, ref in enumerate(order)}

    def one(item) -> int:
        ref, (ident, signer) = item
        prefs = preference_profile(position.get(ref, 0), len(order))
        if not prefs:
            return 0
        contract = connect(ident, signer, address).network(cfg.channel).contract("serums", "PreferenceContract")
        for p in prefs:
            contract.submit_json("AddPreference", ref, p)
        return len(prefs)

    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(one, identities.items()))
