"""Building a SERUMS world for the gateway's tests, the same way ``serums up`` does, through
:class:`gateway.services.Services`: three hospitals on chain with realistic rules, a vault per
hospital holding the vault fixtures split between Lothian and Zmc, users enrolled by the
hospital admins — and a small HTTP helper that works with Flask's test client and with httpx.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp

from auth import Registration
from gateway.services import Services
from network import ChaincodeDefinition, init_network

FIXTURES = Path(__file__).resolve().parent.parent / "vault" / "fixtures"
TABLES = ("patients", "ndc_smr01", "ndc_smr06", "ndc_charlson", "chemocare_treatment", "chemocare_toxicity")
HOSPITALS = ["lothian", "zmc", "fcrb"]
NAMES = {"lothian": "NHS Lothian", "zmc": "Zuyderland MC", "fcrb": "FCRB Barcelona"}
KEY = "Oskar's lopsided kettle whistles at dawn"
IMAGES = ["places.paris", "places.rome", "places.pisa", "places.chapel", "food.icecream"]
NOW = dt.datetime.now(dt.UTC)

#: Every hospital's rules (step 1): clinicians treating the patient see the clinical sections;
#: nurses of the same hospital see demographics, contact and admissions; research needs consent;
#: insurers never.
RULES = [
    {"rule_id": "clin-treat", "roles": ["gp", "specialist"], "purposes": ["treatment"],
     "sections": ["admissions", "conditions", "procedures", "oncology.diagnosis", "oncology.treatment",
                  "oncology.toxicity", "comorbidities"], "treating_required": True, "max_grant_seconds": 8 * 3600},
    {"rule_id": "nurse-local", "roles": ["nurse"], "purposes": ["treatment"],
     "sections": ["demographics", "contact", "admissions"], "same_hospital": True, "max_grant_seconds": 4 * 3600},
    {"rule_id": "research-consent", "roles": ["researcher"], "purposes": ["research"],
     "sections": ["conditions", "oncology.diagnosis", "comorbidities"], "consent_required": True},
    {"rule_id": "insurer-never", "effect": "deny", "roles": ["insurer"], "purposes": ["*"], "sections": ["*"]},
]
SETTINGS = {"max_grant_seconds": 12 * 3600, "break_glass_seconds": 2 * 3600}


def init_data_dir(data_dir: Path, batch_timeout_ms: float = 2.0):
    cfg = init_network(data_dir / "network", HOSPITALS)
    cfg.chaincodes = [ChaincodeDefinition("serums", "chaincode.serums:serums_chaincode", "1.0", "MAJORITY")]
    cfg.batch.timeout_ms = batch_timeout_ms
    cfg.save()
    return cfg


@contextlib.contextmanager
def running_services(data_dir: Path, argon2) -> Iterator[Services]:
    """An embedded node on loopback and ``Services`` over it (``argon2``: cheap parameters), stopped after."""
    from auth import AuthConfig
    from gateway.services import GatewaySettings
    from network.node import EmbeddedNode

    node = EmbeddedNode(init_data_dir(data_dir))
    address = node.start("127.0.0.1:0")
    services = Services.open(GatewaySettings(data_dir, node_address=address),
                             auth_config=AuthConfig.ephemeral(argon2=argon2, wallet_kdf=argon2))
    try:
        yield services
    finally:
        services.close()
        node.stop()


def split_fixtures() -> dict[str, dict[str, list[dict[str, str]]]]:
    """The fixture patients, alternately Lothian's and Zmc's, each with all their rows."""
    with open(FIXTURES / "patients.csv", newline="") as fh:
        chis = [row["patient_id"] for row in csv.DictReader(fh)]
    owner = {chi: ("lothian", "zmc")[i % 2] for i, chi in enumerate(chis)}
    out: dict[str, dict[str, list[dict[str, str]]]] = {"lothian": {}, "zmc": {}}
    for table in TABLES:
        with open(FIXTURES / f"{table}.csv", newline="") as fh:
            for row in csv.DictReader(fh):
                out[owner[row["patient_id"]]].setdefault(table, []).append(row)
    return out


@dataclass
class World:
    services: Services
    patients: dict[str, tuple[str, str]] = field(default_factory=dict)  # chi -> (hospital, patient ref)

    def patient_ref(self, hospital: str, index: int = 0) -> tuple[str, str]:
        """(chi, ref) of the index-th fixture patient of a hospital."""
        mine = [(chi, ref) for chi, (h, ref) in self.patients.items() if h == hospital]
        return mine[index]


def provision(services: Services) -> World:
    """Hospitals, rules, vault identities and vaults, fixture data: what ``serums up`` does first."""
    world = World(services)
    for h in HOSPITALS:
        services.ensure_hospital(h, NAMES[h])
        from gateway import ledger as L

        policy = services.admin_contract(h, "PolicyContract")
        for rule in RULES:
            L.submit(policy, "PutRule", rule)
        L.submit(policy, "SetPolicySettings", SETTINGS)
        services.ensure_vault_identity(h)
    for h, tables in split_fixtures().items():
        v = services.ensure_vault(h)
        v.ingest_tables(tables, source="fixtures")
        for row in tables["patients"]:
            world.patients[row["patient_id"]] = (h, v.find_patient(row["patient_id"]))
    return world


_names = itertools.count(1)


@dataclass
class Account:
    username: str
    reg: Registration
    key: str = KEY
    images: list[str] = field(default_factory=lambda: list(IMAGES))
    logins: int = 0

    @property
    def user_id(self) -> str:
        return self.reg.user.user_id

    def totp(self, offset_steps: int = 0) -> str:
        return pyotp.TOTP(self.reg.totp.secret).at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 * offset_steps))


def enrol(services: Services, hospital: str, role: str, *, user_id: str | None = None,
          treating: tuple[str, ...] = (), prefix: str | None = None) -> Account:
    username = f"{prefix or role.replace('_', '-')}.{next(_names)}"
    reg = services.enrol(*services.hospital_admin(hospital), hospital, username, role, KEY, IMAGES, user_id=user_id,
                         treating=treating)
    return Account(username, reg)


class Http:
    """One interface over Flask's test client and httpx: ``call(method, path, ...)`` → (status, json)."""

    def __init__(self, client: Any):
        self.client = client
        self.flask = hasattr(client, "application")

    def call(self, method: str, path: str, *, token: str | None = None, json: Any = None,
             params: dict | None = None, headers: dict | None = None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        if self.flask:
            r = self.client.open(path, method=method, json=json, query_string=params, headers=h)
            return Response(r.status_code, r.get_json(silent=True), r.headers, r.get_data())
        r = self.client.request(method, path, json=json, params=params, headers=h)
        try:
            body = r.json()
        except ValueError:
            body = None
        return Response(r.status_code, body, r.headers, r.content)

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, **kw):
        return self.call("POST", path, **kw)

    def put(self, path, **kw):
        return self.call("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    def login(self, account: Account, *, method: str = "text") -> str:
        """A full login (key, then TOTP) → the access token."""
        body: dict[str, Any] = {"username": account.username, "method": method}
        if method == "text":
            body["text_key"] = account.key
        else:
            body["selection"] = account.images
        r = self.post("/auth/login", json=body)
        assert r.status == 200, r.json
        # a TOTP code is never accepted twice: the second login of an account uses the next step's
        # code (inside the ±1 step window), later ones a recovery code
        if account.logins < 2:
            factor = {"totp_code": account.totp(offset_steps=account.logins)}
        else:
            factor = {"recovery_code": account.reg.recovery_codes[account.logins - 2]}
        account.logins += 1
        r2 = self.post("/auth/login/complete", json={"challenge": r.json["challenge"], **factor})
        assert r2.status == 200, r2.json
        return r2.json["access_token"]


@dataclass
class Response:
    status: int
    json: Any
    headers: Any
    content: bytes

    def __repr__(self) -> str:
        return f"<{self.status} {self.json if self.json is not None else self.content[:200]!r}>"
