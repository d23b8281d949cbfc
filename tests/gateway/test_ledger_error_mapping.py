"""Ledger errors map to the same problem whichever engine answered: the gRPC codes and texts are
those Fabric v3.1.5's gateway gave the official Node client (tests/interop, measured on a native
network); the embedded node answers the same."""

from __future__ import annotations

import grpc
import pytest
from fabric_protos.gateway import gateway_pb2

from gateway.errors import gateway_error_as_problem
from network import GatewayError
from network.client import deliver_error

C = grpc.StatusCode
DENIED = "error validating proposal: access denied: channel [serums] creator org [LothianMSP]"
DETAIL = [gateway_pb2.ErrorDetail(address="peer0:7051", msp_id="LothianMSP", message=DENIED)]
ORDERER_FORBIDDEN = ("received unsuccessful response from orderer: status=FORBIDDEN, info=implicit policy "
                     "evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the "
                     "'Writers' sub-policies to be satisfied: permission denied")
READERS = ("Failed evaluating policy on signed data during check policy on channel [serums] with policy "
           "[/Channel/Application/Readers]: [implicit policy evaluation failed - 0 sub-policies were satisfied, "
           "but this policy requires 1 of the 'Readers' sub-policies to be satisfied]")

CASES = [
    # (error, HTTP status, problem type)
    (GatewayError(C.UNAVAILABLE, "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:9: "
                                 "Failed to connect to remote host: Connection refused"), 503, "ledger-unavailable"),
    (GatewayError(C.DEADLINE_EXCEEDED, "Deadline Exceeded"), 503, "ledger-unavailable"),
    (GatewayError(C.UNAVAILABLE, "failed to get config for channel [nochannel]: could not get last config for "
                                 "channel nochannel"), 502, "ledger-not-configured"),
    (GatewayError(C.PERMISSION_DENIED, "Failed to get policy manager for channel [nochannel]"),
     502, "ledger-not-configured"),
    (GatewayError(C.FAILED_PRECONDITION, "no peers available to evaluate chaincode nope in channel serums"),
     502, "ledger-not-configured"),
    (GatewayError(C.FAILED_PRECONDITION, "no combination of peers can be derived which satisfy the endorsement "
                                         "policy: No metadata was found for chaincode nope in channel serums"),
     502, "ledger-not-configured"),
    (GatewayError(C.FAILED_PRECONDITION, f"evaluate call to endorser returned error: {DENIED}", DETAIL),
     403, "chain-forbidden"),
    (GatewayError(C.ABORTED, "failed to endorse transaction, see attached details for more info", DETAIL),
     403, "chain-forbidden"),
    (GatewayError(C.ABORTED, ORDERER_FORBIDDEN), 403, "chain-forbidden"),
    (GatewayError(C.PERMISSION_DENIED, READERS), 403, "chain-forbidden"),
    (deliver_error(403), 403, "chain-forbidden"),  # common.Status FORBIDDEN
    (deliver_error(404), 502, "ledger-not-configured"),
    (GatewayError(C.INVALID_ARGUMENT, "failed to unpack transaction proposal: malformed proposal"),
     400, "chain-invalid-argument"),
    (GatewayError(C.UNKNOWN, "evaluate call to endorser returned error: chaincode response 404, no such grant"),
     404, "chain-not-found"),
    (GatewayError(C.ABORTED, "failed to endorse transaction, see attached details for more info",
                  [gateway_pb2.ErrorDetail(msp_id="ZmcMSP", message="chaincode response 409, already revoked")]),
     409, "chain-conflict"),
    (GatewayError(C.UNKNOWN, "chaincode response 500, internal"), 502, "ledger-error"),
    (GatewayError(C.INTERNAL, "something else"), 502, "ledger-error"),
]


@pytest.mark.parametrize(("err", "status", "slug"), CASES, ids=[f"{c[0].code.name}-{c[2]}" for c in CASES])
def test_ledger_error_maps_by_meaning(err, status, slug):
    problem = gateway_error_as_problem(err)
    assert (problem.status or problem.type.status, problem.type.slug) == (status, slug), (err.kind, str(err))


def test_an_identity_refusal_is_never_a_bad_gateway_nor_node_down():
    for code in (C.FAILED_PRECONDITION, C.ABORTED, C.PERMISSION_DENIED):
        assert gateway_error_as_problem(GatewayError(code, "access denied")).type.status == 403
