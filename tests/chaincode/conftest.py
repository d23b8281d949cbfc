"""Fixtures for the SERUMS chaincode tests: one ledger per engine and test session — the embedded
node, and a real Fabric network (marker ``fabric``: orderer, a peer per hospital, the chaincode on
our CCaaS shim) — with the ``serums`` chaincode deployed, three registered hospitals, a baseline set of hospital rules, and actors
(users with their own certificates) that call the contracts through the real Gateway client.

Tests make their own patients (fresh pseudonymous ids) so that they do not depend on each other;
the shared clinicians, services and rules below are only read by them. ``Actor.submit(...,
at=datetime)`` sends a proposal with another timestamp: the chaincode's only clock, so expiry is
tested without waiting.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from fabric_protos.common import ledger_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from network import ChaincodeDefinition, Identity, Signer, init_network
from network import protocol as P
from network.client import CommitError, Gateway, GatewayError, Proposal, Status, connect
from network.fabric import FabricNetwork
from network.node import EmbeddedNode

#: every test that uses ``world`` runs on both engines
ENGINES = ["embedded", pytest.param("fabric", marks=pytest.mark.fabric)]
HOSPITALS = ["lothian", "zmc", "fcrb"]
MSP = {"lothian": "LothianMSP", "zmc": "ZmcMSP", "fcrb": "FcrbMSP"}
CC = "serums"
NOW = dt.datetime.now(dt.UTC)

#: Lothian's rules (most test patients are Lothian patients). Zmc and Fcrb get the same rules.
BASELINE_RULES = [
    {"rule_id": "clin-treat", "roles": ["gp", "specialist"], "purposes": ["treatment"],
     "sections": ["admissions", "conditions", "procedures", "oncology.diagnosis", "oncology.treatment",
                  "oncology.toxicity", "comorbidities"],
     "treating_required": True, "max_grant_seconds": 8 * 3600},
    {"rule_id": "nurse-local", "roles": ["nurse"], "purposes": ["treatment"],
     "sections": ["demographics", "contact", "admissions"], "same_hospital": True, "max_grant_seconds": 4 * 3600},
    {"rule_id": "research-consent", "roles": ["researcher", "analytics"], "purposes": ["research"],
     "sections": ["conditions", "oncology.diagnosis", "comorbidities"], "consent_required": True,
     "max_grant_seconds": 30 * 24 * 3600},
    {"rule_id": "research-never", "effect": "deny", "roles": ["researcher", "analytics"], "purposes": ["*"],
     "sections": ["demographics", "contact", "documents"]},
    {"rule_id": "insurer-never", "effect": "deny", "roles": ["insurer"], "purposes": ["*"], "sections": ["*"]},
    {"rule_id": "imaging-temp", "roles": ["gp", "specialist"], "purposes": ["treatment"], "sections": ["imaging"],
     "valid_until": (NOW + dt.timedelta(days=2)).isoformat()},
    {"rule_id": "documents-later", "roles": ["specialist"], "purposes": ["treatment"], "sections": ["documents"],
     "valid_from": (NOW + dt.timedelta(days=365)).isoformat()},
    {"rule_id": "audit-read", "roles": ["auditor"], "purposes": ["audit"], "sections": ["*"],
     "max_grant_seconds": 3600},
]
SETTINGS = {"max_grant_seconds": 12 * 3600, "break_glass_seconds": 2 * 3600}


def concurrently(jobs) -> list:
    """Run ``jobs`` (callables) at once, released together by a barrier; their results in order."""
    barrier = threading.Barrier(len(jobs))

    def run(job):
        barrier.wait()
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        return list(pool.map(run, jobs))


def uid(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _encode(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    return (a if isinstance(a, str) else json.dumps(a, separators=(",", ":"))).encode()


def _timestamp(t: dt.datetime) -> Timestamp:
    return Timestamp(seconds=int(t.timestamp() // 1), nanos=t.microsecond * 1000)


@dataclass
class Tx:
    result: Any
    status: Status

    @property
    def tx_id(self) -> str:
        return self.status.transaction_id


@dataclass
class Actor:
    """Someone with a certificate calling the serums chaincode."""

    name: str
    org: str
    role: str | None
    ident: Identity
    signer: Signer
    address: str
    channel: str
    synced: Any = field(default=None, repr=False)  # waits until every peer committed a block
    tls_root: bytes | None = field(default=None, repr=False)
    _gw: Gateway | None = field(default=None, repr=False)

    @property
    def msp(self) -> str:
        return self.ident.msp_id

    @property
    def gw(self) -> Gateway:
        if self._gw is None:
            self._gw = connect(self.ident, self.signer, self.address, tls_root_certs=self.tls_root)
        return self._gw

    def contract(self, cname: str):
        return self.gw.network(self.channel).contract(CC, cname)

    def proposal(self, cname: str, fn: str, args, transient=None, at: dt.datetime | None = None) -> Proposal:
        raw = [f"{cname}:{fn}".encode()] + [_encode(a) for a in args]
        msg = P.create_proposal(self.gw.creator, self.channel, CC, raw, transient,
                                timestamp=_timestamp(at) if at else None)
        return Proposal(self.gw, self.channel, msg.bytes, msg.tx_id, [])

    def tx(self, cname: str, fn: str, *args, transient=None, at: dt.datetime | None = None) -> Tx:
        """Endorse, submit and wait; returns the decoded result and the commit status."""
        t = self.proposal(cname, fn, args, transient, at).endorse()
        status = t.submit().status()
        if self.synced is not None:  # peers commit one after the other: let every organisation see it
            self.synced(status.block_number)
        raw = t.result
        return Tx(json.loads(raw) if raw else None, status)

    def submit(self, cname: str, fn: str, *args, transient=None, at: dt.datetime | None = None) -> Any:
        t = self.tx(cname, fn, *args, transient=transient, at=at)
        if not t.status.successful:
            raise CommitError(t.status.transaction_id, t.status.code, t.status.block_number)
        return t.result

    def evaluate(self, cname: str, fn: str, *args, at: dt.datetime | None = None) -> Any:
        raw = self.proposal(cname, fn, args, None, at).evaluate()
        return json.loads(raw) if raw else None

    def event(self, status: Status) -> tuple[str, dict]:
        """The chaincode event of a committed transaction: (name, payload)."""
        with self.gw.network(self.channel).chaincode_events(CC, start_block=status.block_number) as events:
            for ev in events:
                if ev.transaction_id == status.transaction_id:
                    return ev.event_name, ev.json()
                if ev.block_number > status.block_number:
                    break
        raise AssertionError(f"no event for {status.transaction_id}")

    def close(self) -> None:
        if self._gw is not None:
            self._gw.close()
            self._gw = None


def refused(status: int, fragment: str, fn, *args, **kw) -> str:
    """Call ``fn`` and check that the chaincode refused with ``status`` and ``fragment``."""
    with pytest.raises(GatewayError) as e:
        fn(*args, **kw)
    assert e.value.chaincode_status == status, (e.value.chaincode_status, e.value.chaincode_message)
    assert fragment in (e.value.chaincode_message or ""), e.value.chaincode_message
    return e.value.chaincode_message or ""


class World:
    def __init__(self, root, engine: str = "embedded", fabric_bin=None):
        self.engine = engine
        self.cfg = init_network(root, HOSPITALS)
        self.cfg.chaincodes = [ChaincodeDefinition(CC, "chaincode.serums:serums_chaincode", "1.0", "MAJORITY")]
        self.cfg.batch.timeout_ms = 2.0
        self.cfg.save()
        self.tls_root: bytes | None = None
        self.node: EmbeddedNode | None = None
        self.fabric: FabricNetwork | None = None
        if engine == "embedded":
            self.node = EmbeddedNode(self.cfg)
            # these tests move the chaincode's clock through the proposal timestamp (Actor.submit(at=…)),
            # which a production endorser bounds to its own clock ± 10 minutes
            self.node.max_proposal_skew_s = float("inf")
            self.address = self.node.start("127.0.0.1:0")
        else:
            # the same for Fabric's peers (peer.authentication.timewindow): a century
            self.fabric = FabricNetwork(self.cfg, bin_dir=fabric_bin, batch_timeout_ms=10,
                                        proposal_time_window_s=100 * 365 * 86400)
            try:
                self.fabric.up(timeout=300)
            except BaseException:
                self.fabric.down()
                raise
            self.address = self.fabric.peer_address(HOSPITALS[0])
            self.tls_root = self.fabric.tls_ca(HOSPITALS[0])
        self.actors: list[Actor] = []
        self._peer_gws: dict[str, Gateway] = {}
        self.admins = {org: self._actor("admin@" + org, org, "hospital_admin", *self.cfg.load_user(org))
                       for org in HOSPITALS}
        self._cas = {org: self.cfg.load_ca(org) for org in HOSPITALS}

    def _actor(self, name, org, role, ident, signer) -> Actor:
        a = Actor(name, org, role, ident, signer, self.address, self.cfg.channel, self.synced, self.tls_root)
        self.actors.append(a)
        return a

    def synced(self, block_number: int) -> None:
        if self.node is not None:
            for peer in self.node.peers.values():
                assert peer.wait_for_height(block_number + 1, 10.0)
            return
        # real Fabric: ask each hospital's own peer for its height (qscc GetChainInfo)
        assert self.fabric is not None
        if not self._peer_gws:
            for org in HOSPITALS:
                ident, signer = self.cfg.load_user(org)
                self._peer_gws[org] = connect(ident, signer, self.fabric.peer_address(org),
                                              tls_root_certs=self.fabric.tls_ca(org))
        deadline = time.monotonic() + 10.0
        for org, gw in self._peer_gws.items():
            qscc = gw.network(self.cfg.channel).contract("qscc")
            while True:
                raw = qscc.evaluate("GetChainInfo", self.cfg.channel)
                if ledger_pb2.BlockchainInfo.FromString(raw).height > block_number:
                    break
                assert time.monotonic() < deadline, f"peer0.{org} did not reach block {block_number}"
                time.sleep(0.005)

    def identity(self, org: str, role: str | None, user_id: str | None = None, *, node_role: str = "client",
                 attrs: dict | None = None) -> tuple[Identity, Signer]:
        """A fresh certificate from the organisation's CA (not registered on chain)."""
        if attrs is None:
            attrs = {}
            if role:
                attrs["role"] = role
            if user_id:
                attrs["uid"] = user_id
        ident, signer = self._cas[org].issue(user_id or uid("cert"), node_role, attributes=attrs or None)
        return ident, signer

    def unregistered(self, org: str, role: str | None = None, **kw) -> Actor:
        user_id = kw.pop("user_id", None) or uid("x")
        ident, signer = self.identity(org, role, user_id, **kw)
        return self._actor(user_id, org, role, ident, signer)

    def user(self, org: str, role: str, user_id: str | None = None) -> Actor:
        """A new user of ``org`` with ``role``, registered by the hospital's admin."""
        user_id = user_id or uid(role[:3])
        ident, signer = self.identity(org, role, user_id)
        self.admins[org].submit("UserContract", "RegisterUser", user_id, role, ident.fingerprint)
        return self._actor(user_id, org, role, ident, signer)

    def patient(self, org: str = "lothian", prefs: list[dict] = ()) -> Actor:
        p = self.user(org, "patient", uid("pat"))
        for pref in prefs:
            p.submit("PreferenceContract", "AddPreference", p.name, pref)
        return p

    def treat(self, patient: Actor, clinician: Actor, start: str = "", end: str = "") -> dict:
        return self.admins[patient.org].submit("UserContract", "AddTreatment", patient.name, clinician.name, start, end)

    def close(self) -> None:
        for a in self.actors:
            a.close()
        for gw in self._peer_gws.values():
            gw.close()
        if self.node is not None:
            self.node.stop()
        if self.fabric is not None:
            self.fabric.down()


@dataclass
class Cast:
    """The shared users every test may use (and must not suspend or change)."""

    spec: Actor  # lothian specialist
    gp: Actor  # lothian gp
    nurse: Actor  # lothian nurse
    zspec: Actor  # zmc specialist
    znurse: Actor  # zmc nurse
    researcher: Actor  # lothian researcher
    insurer: Actor  # fcrb insurer
    auditor: Actor  # fcrb auditor
    vault: Actor  # lothian vault
    zvault: Actor  # zmc vault
    analytics: Actor  # lothian analytics


@pytest.fixture(scope="session", params=ENGINES)
def world(request, tmp_path_factory) -> Iterator[World]:
    """The world on one engine; a real Fabric network is made once per session and reused."""
    fabric_bin = None
    if request.param == "fabric":
        from tests.conftest import fabric_bin as find

        fabric_bin = find()
    w = World(tmp_path_factory.mktemp(f"serums-{request.param}") / "network", request.param, fabric_bin)
    names = {"lothian": "NHS Lothian", "zmc": "Zuyderland MC", "fcrb": "FCRB Barcelona"}
    try:
        for org in HOSPITALS:
            w.admins[org].submit("UserContract", "RegisterHospital", names[org])
            for rule in BASELINE_RULES:
                w.admins[org].submit("PolicyContract", "PutRule", rule)
            w.admins[org].submit("PolicyContract", "SetPolicySettings", SETTINGS)
        yield w
    finally:
        w.close()


@pytest.fixture(scope="session")
def cast(world: World) -> Cast:
    return Cast(
        spec=world.user("lothian", "specialist"), gp=world.user("lothian", "gp"),
        nurse=world.user("lothian", "nurse"), zspec=world.user("zmc", "specialist"),
        znurse=world.user("zmc", "nurse"), researcher=world.user("lothian", "researcher"),
        insurer=world.user("fcrb", "insurer"), auditor=world.user("fcrb", "auditor"),
        vault=world.user("lothian", "vault"), zvault=world.user("zmc", "vault"),
        analytics=world.user("lothian", "analytics"),
    )
