"""``await_every_peer`` waits out the moments after a commit when another organisation's peer is a
block behind (chaincode 404) or not yet seen by Fabric's discovery ("no peers available", as a
real Fabric gateway answered in CI), and raises anything else at once. The contract here is a
scripted stand-in that answers with the errors Fabric's gateway gives."""

from __future__ import annotations

import grpc
import pytest

from gateway import ledger as L
from network import GatewayError

C = grpc.StatusCode
NOT_DISCOVERED = GatewayError(C.FAILED_PRECONDITION, "no peers available to evaluate chaincode serums in channel serums")
BEHIND = GatewayError(C.UNKNOWN, "evaluate call to endorser returned error: chaincode response 404, no such hospital")
DENIED = GatewayError(C.PERMISSION_DENIED, "Failed evaluating policy on signed data during check policy")


class Scripted:
    def __init__(self, answers: dict[str, list[Exception | None]]):
        self.answers = answers
        self.calls: list[str] = []

    def evaluate(self, fn, *args, target_organizations=()):
        (org,) = target_organizations
        self.calls.append(org)
        answer = self.answers[org].pop(0) if self.answers[org] else None
        if answer is not None:
            raise answer
        return b"{}"


def test_waits_until_every_peer_answers():
    contract = Scripted({"AMSP": [NOT_DISCOVERED, NOT_DISCOVERED], "BMSP": [BEHIND]})
    L.await_every_peer(contract, ["AMSP", "BMSP"], "GetHospital", "AMSP", timeout=5)
    assert contract.calls == ["AMSP", "AMSP", "AMSP", "BMSP", "BMSP"]


def test_other_refusals_are_raised_at_once():
    contract = Scripted({"AMSP": [DENIED]})
    with pytest.raises(GatewayError) as caught:
        L.await_every_peer(contract, ["AMSP"], "GetHospital", "AMSP", timeout=5)
    assert caught.value is DENIED and contract.calls == ["AMSP"]


def test_a_peer_that_never_appears_fails_after_the_timeout():
    contract = Scripted({"AMSP": [NOT_DISCOVERED] * 1000})
    with pytest.raises(GatewayError, match="no peers available"):
        L.await_every_peer(contract, ["AMSP"], "GetHospital", "AMSP", timeout=0.2)
    assert 2 <= len(contract.calls) < 1000
