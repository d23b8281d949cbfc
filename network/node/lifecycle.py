"""Chaincode definitions on the ledger, as Fabric's ``_lifecycle`` system chaincode records them.

When the node starts with a chaincode whose definition (version, endorsement policy) differs from
the one on the ledger — or that has none yet — it orders a ``_lifecycle``
``CommitChaincodeDefinition`` transaction with the next sequence number, endorsed by every peer
(the channel's LifecycleEndorsement policy is a MAJORITY of the organisations). Its writes are
Fabric's keys in the ``_lifecycle`` namespace::

    namespaces/metadata/<name>                    StateMetadata: datatype ChaincodeDefinition, field names
    namespaces/fields/<name>/Sequence             StateData Int64
    namespaces/fields/<name>/EndorsementInfo      StateData Bytes: ChaincodeEndorsementInfo (version)
    namespaces/fields/<name>/ValidationInfo       StateData Bytes: ChaincodeValidationInfo (vscc, the
                                                  ApplicationPolicy holding the signature policy)
    namespaces/fields/<name>/Collections          StateData Bytes: CollectionConfigPackage (empty)

Validation reads the endorsement policy in force from these writes: a transaction is checked
against the definition committed before its block, so ``serums ledger verify`` re-validates every
historical block against the policy of its time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fabric_protos.common import common_pb2, policies_pb2
from fabric_protos.msp import msp_principal_pb2
from fabric_protos.peer import collection_pb2, policy_pb2, proposal_response_pb2
from fabric_protos.peer.lifecycle import chaincode_definition_pb2, db_pb2, lifecycle_pb2

from .. import protocol as P
from ..identity import Identity, Signer
from ..policy import NOutOf, Policy, Principal, parse_policy
from .genesis import signature_policy_envelope

LIFECYCLE = "_lifecycle"
COMMIT_FUNCTION = b"CommitChaincodeDefinition"
FIELDS = ("Sequence", "EndorsementInfo", "ValidationInfo", "Collections")
_ROLE = msp_principal_pb2.MSPRole.MSPRoleType


@dataclass(frozen=True)
class LedgerDefinition:
    """A chaincode definition as committed on the ledger."""

    name: str
    version: str
    sequence: int
    policy: Policy
    policy_bytes: bytes  # the SignaturePolicyEnvelope, serialized

    def same_as(self, version: str, policy: Policy) -> bool:
        return self.version == version and signature_policy_envelope(policy).SerializeToString() == self.policy_bytes


def _metadata_key(name: str) -> str:
    return f"namespaces/metadata/{name}"


def _field_key(name: str, field: str) -> str:
    return f"namespaces/fields/{name}/{field}"


def _data(**kw) -> bytes:
    return db_pb2.StateData(**kw).SerializeToString()


def definition_writes(name: str, version: str, sequence: int, policy: Policy) -> dict[str, bytes]:
    """The ``_lifecycle`` writes of committing this definition."""
    app_policy = policy_pb2.ApplicationPolicy(signature_policy=signature_policy_envelope(policy))
    endorsement = chaincode_definition_pb2.ChaincodeEndorsementInfo(version=version, endorsement_plugin="escc")
    validation = chaincode_definition_pb2.ChaincodeValidationInfo(
        validation_plugin="vscc", validation_parameter=app_policy.SerializeToString()
    )
    return {
        _metadata_key(name): db_pb2.StateMetadata(datatype="ChaincodeDefinition", fields=list(FIELDS)).SerializeToString(),
        _field_key(name, "Sequence"): _data(Int64=sequence),
        _field_key(name, "EndorsementInfo"): _data(Bytes=endorsement.SerializeToString()),
        _field_key(name, "ValidationInfo"): _data(Bytes=validation.SerializeToString()),
        _field_key(name, "Collections"): _data(Bytes=collection_pb2.CollectionConfigPackage().SerializeToString()),
    }


def policy_from_envelope(env: policies_pb2.SignaturePolicyEnvelope) -> Policy:
    """The inverse of :func:`~.genesis.signature_policy_envelope`."""
    principals = []
    for ident in env.identities:
        if ident.principal_classification != msp_principal_pb2.MSPPrincipal.ROLE:
            raise P.ProtocolError("only role principals are supported in chaincode policies")
        role = msp_principal_pb2.MSPRole()
        role.ParseFromString(ident.principal)
        principals.append(Principal(role.msp_identifier, _ROLE.Name(role.role).lower()))

    def rule(r: policies_pb2.SignaturePolicy) -> Policy:
        if r.WhichOneof("Type") == "signed_by":
            if r.signed_by >= len(principals):
                raise P.ProtocolError("signature policy names an identity it does not list")
            return principals[r.signed_by]
        return NOutOf(r.n_out_of.n, tuple(rule(x) for x in r.n_out_of.rules))

    return rule(env.rule)


def definitions_from_writes(writes: Mapping[str, bytes | None]) -> dict[str, LedgerDefinition]:
    """The definitions a set of ``_lifecycle`` key/values holds (a transaction's writes, or the
    namespace's state)."""
    out = {}
    for key, value in writes.items():
        if not key.startswith("namespaces/metadata/") or value is None:
            continue
        name = key.removeprefix("namespaces/metadata/")
        try:
            seq, info, valid = (db_pb2.StateData(), chaincode_definition_pb2.ChaincodeEndorsementInfo(),
                                chaincode_definition_pb2.ChaincodeValidationInfo())
            seq.ParseFromString(writes[_field_key(name, "Sequence")] or b"")
            data = db_pb2.StateData()
            data.ParseFromString(writes[_field_key(name, "EndorsementInfo")] or b"")
            info.ParseFromString(data.Bytes)
            data.ParseFromString(writes[_field_key(name, "ValidationInfo")] or b"")
            valid.ParseFromString(data.Bytes)
            app = policy_pb2.ApplicationPolicy()
            app.ParseFromString(valid.validation_parameter)
        except (KeyError, ValueError) as exc:
            raise P.ProtocolError(f"incomplete chaincode definition of {name!r}: {exc}") from None
        env = app.signature_policy
        out[name] = LedgerDefinition(name, info.version, seq.Int64, policy_from_envelope(env), env.SerializeToString())
    return out


def apply_updates(policies: dict[str, Policy], updates: Iterable) -> None:
    """Bring ``policies`` (chaincode → endorsement policy) up to date with a block's committed
    writes (``StateUpdate``s): a new ``_lifecycle`` definition replaces the policy."""
    writes = {u.key: u.value for u in updates if u.ns == LIFECYCLE}
    if writes:
        for name, d in definitions_from_writes(writes).items():
            policies[name] = d.policy


def lifecycle_policy(hospital_msps: list[str]) -> Policy:
    """The channel's LifecycleEndorsement policy: a MAJORITY of the organisations' peers."""
    return parse_policy("MAJORITY", hospital_msps)


def commit_definition_transaction(
    channel: str, name: str, version: str, sequence: int, policy: Policy, reads: Mapping[str, tuple[int, int] | None],
    creator: Identity, creator_signer: Signer, endorsers: list[tuple[Identity, Signer]],
) -> tuple[str, bytes]:
    """A signed ``_lifecycle`` CommitChaincodeDefinition transaction (its id and envelope),
    endorsed by ``endorsers``; ``reads`` are the versions of the keys it replaces (MVCC)."""
    args = lifecycle_pb2.CommitChaincodeDefinitionArgs(
        sequence=sequence, name=name, version=version, endorsement_plugin="escc", validation_plugin="vscc",
        validation_parameter=policy_pb2.ApplicationPolicy(
            signature_policy=signature_policy_envelope(policy)).SerializeToString(),
    )
    msg = P.create_proposal(creator.serialize(), channel, LIFECYCLE, [COMMIT_FUNCTION, args.SerializeToString()])
    prop = P.unpack_signed_proposal(msg.bytes, creator_signer.sign(msg.bytes))
    rwset = P.RWSet(LIFECYCLE, reads=dict(reads), writes=dict(definition_writes(name, version, sequence, policy)))
    result = lifecycle_pb2.CommitChaincodeDefinitionResult().SerializeToString()
    prp = P.create_proposal_response_payload(
        prop, status=200, message="", payload=result, rwset=rwset.to_proto().SerializeToString(), event=None,
        chaincode_version="",
    )
    endorsements = []
    for ident, signer in endorsers:
        serialized = ident.serialize()
        endorsements.append(proposal_response_pb2.Endorsement(
            endorser=serialized, signature=signer.sign(P.endorsement_message(prp, serialized))))
    payload = P.create_transaction_envelope_payload(prop, prp, endorsements)
    envelope = common_pb2.Envelope(payload=payload, signature=creator_signer.sign(payload))
    return prop.tx_id, envelope.SerializeToString()


def definition_keys(name: str) -> list[str]:
    return [_metadata_key(name), *(_field_key(name, f) for f in FIELDS)]


def ledger_definitions(reader) -> dict[str, LedgerDefinition]:
    """The definitions committed in a state (a peer's store reader or a rebuilt state)."""
    return definitions_from_writes({k: v for k, v, _ in reader.range(LIFECYCLE, "", "")})
