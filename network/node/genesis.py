"""The channel's genesis configuration block, complete as Fabric's ``configtxgen`` writes it.

The channel group carries the hashing values, Fabric v3 capabilities and the Readers/Writers/Admins
implicit-meta policies; the Application group one group per hospital (its MSP with root and TLS
root certificates and NodeOUs, its signature policies, its anchor peer), the application
capabilities and the Endorsement/LifecycleEndorsement policies; the Orderer group the ordering
organisation (MSP, policies, endpoints), the consensus type with its consenter, batch size and
timeout, channel restrictions and the BlockValidation policy. ``configtxlator proto_decode --type
common.Block`` decodes it and the bytes re-encode identically; the embedded node reads the MSPs
and the batch values back from it.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fabric_protos.common import common_pb2, configtx_pb2, policies_pb2
from fabric_protos.common import configuration_pb2 as channel_cfg
from fabric_protos.msp import msp_config_pb2, msp_principal_pb2
from fabric_protos.orderer import configuration_pb2 as orderer_cfg
from fabric_protos.orderer.etcdraft import configuration_pb2 as etcdraft
from fabric_protos.peer import configuration_pb2 as peer_cfg

from .. import protocol as P
from ..config import BatchConfig
from ..identity import MSP, Identity, Signer
from ..policy import NOutOf, Policy, Principal

ADMINS = "Admins"
CHANNEL_CAPABILITY = "V3_0"
APPLICATION_CAPABILITY = "V2_5"
ORDERER_CAPABILITY = "V2_0"
NODE_OUS = ("client", "peer", "admin", "orderer")
_ROLE = msp_principal_pb2.MSPRole.MSPRoleType
_META = policies_pb2.ImplicitMetaPolicy.Rule


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _value(group: configtx_pb2.ConfigGroup, key: str, message) -> None:
    group.values[key].value = message.SerializeToString()
    group.values[key].mod_policy = ADMINS


def _policy(group: configtx_pb2.ConfigGroup, key: str, policy: policies_pb2.Policy) -> None:
    group.policies[key].policy.CopyFrom(policy)
    group.policies[key].mod_policy = ADMINS


def implicit_meta(sub_policy: str, rule: str) -> policies_pb2.Policy:
    meta = policies_pb2.ImplicitMetaPolicy(sub_policy=sub_policy, rule=_META.Value(rule))
    return policies_pb2.Policy(type=policies_pb2.Policy.IMPLICIT_META, value=meta.SerializeToString())


def signature_policy_envelope(policy: Policy) -> policies_pb2.SignaturePolicyEnvelope:
    """A parsed policy (``network.policy``) as Fabric's SignaturePolicyEnvelope: its principals as
    MSPRole identities, its structure as n-out-of rules over them."""
    identities: list[tuple[str, str]] = []

    def rule(p: Policy) -> policies_pb2.SignaturePolicy:
        if isinstance(p, Principal):
            key = (p.msp_id, p.role)
            if key not in identities:
                identities.append(key)
            return policies_pb2.SignaturePolicy(signed_by=identities.index(key))
        assert isinstance(p, NOutOf)
        return policies_pb2.SignaturePolicy(
            n_out_of=policies_pb2.SignaturePolicy.NOutOf(n=p.n, rules=[rule(r) for r in p.rules])
        )

    root = rule(policy)
    env = policies_pb2.SignaturePolicyEnvelope(version=0, rule=root)
    for msp_id, role in identities:
        principal = msp_principal_pb2.MSPRole(msp_identifier=msp_id, role=_ROLE.Value(role.upper()))
        env.identities.add(
            principal_classification=msp_principal_pb2.MSPPrincipal.ROLE, principal=principal.SerializeToString()
        )
    return env


def signature_policy(text_policy: Policy) -> policies_pb2.Policy:
    env = signature_policy_envelope(text_policy)
    return policies_pb2.Policy(type=policies_pb2.Policy.SIGNATURE, value=env.SerializeToString())


def _any_of(msp_id: str, roles: Sequence[str]) -> policies_pb2.Policy:
    principals = tuple(Principal(msp_id, r) for r in roles)
    return signature_policy(principals[0] if len(principals) == 1 else NOutOf(1, principals))


def msp_value(msp: MSP, tls_roots: Sequence[x509.Certificate]) -> msp_config_pb2.MSPConfig:
    """An organisation's MSP as the channel configuration holds it, NodeOUs enabled (the node
    role is the certificate's OU, as ``network init`` issues them)."""
    ca = _pem(msp.root_certs[0])
    ous = {f"{r}_ou_identifier": msp_config_pb2.FabricOUIdentifier(certificate=ca, organizational_unit_identifier=r)
           for r in NODE_OUS}
    fmsp = msp_config_pb2.FabricMSPConfig(
        name=msp.msp_id,
        root_certs=[_pem(c) for c in msp.root_certs],
        tls_root_certs=[_pem(c) for c in tls_roots],
        crypto_config=msp_config_pb2.FabricCryptoConfig(
            signature_hash_family="SHA2", identity_identifier_hash_function="SHA256"
        ),
        fabric_node_ous=msp_config_pb2.FabricNodeOUs(enable=True, **ous),
    )
    return msp_config_pb2.MSPConfig(type=0, config=fmsp.SerializeToString())


def _org_group(msp: MSP, tls_roots: Sequence[x509.Certificate], *, orderer: bool) -> configtx_pb2.ConfigGroup:
    g = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _value(g, "MSP", msp_value(msp, tls_roots))
    m = msp.msp_id
    _policy(g, "Readers", _any_of(m, ("admin", "orderer") if orderer else ("admin", "peer", "client")))
    _policy(g, "Writers", _any_of(m, ("admin", "orderer") if orderer else ("admin", "client")))
    _policy(g, "Admins", _any_of(m, ("admin",)))
    if not orderer:
        _policy(g, "Endorsement", _any_of(m, ("peer",)))
    return g


def _duration(ms: float) -> str:
    """A Go duration string (Fabric's BatchTimeout)."""
    us = round(ms * 1000)
    return f"{us // 1000}ms" if us % 1000 == 0 else f"{us}us"


def _capabilities(name: str) -> channel_cfg.Capabilities:
    caps = channel_cfg.Capabilities()
    caps.capabilities[name].SetInParent()
    return caps


def channel_config(
    msps: dict[str, MSP],
    orderer_msp: str,
    *,
    endpoint: str,
    batch: BatchConfig,
    tls_roots: dict[str, list[x509.Certificate]] | None = None,
    consenter_tls_cert: bytes = b"",
) -> configtx_pb2.Config:
    """The channel's configuration: every group, value and policy ``configtxgen`` writes for an
    application channel with a Raft ordering service."""
    tls_roots = tls_roots or {}
    host, _, port = endpoint.rpartition(":")
    root = configtx_pb2.ConfigGroup(mod_policy=ADMINS)
    _value(root, "HashingAlgorithm", channel_cfg.HashingAlgorithm(name="SHA256"))
    _value(root, "BlockDataHashingStructure", channel_cfg.BlockDataHashingStructure(width=2**32 - 1))
    _value(root, "Capabilities", _capabilities(CHANNEL_CAPABILITY))
    for name, rule in (("Readers", "ANY"), ("Writers", "ANY"), ("Admins", "MAJORITY")):
        _policy(root, name, implicit_meta(name, rule))

    app = root.groups["Application"]
    app.mod_policy = ADMINS
    ordg = root.groups["Orderer"]
    ordg.mod_policy = ADMINS
    for msp_id, msp in msps.items():
        is_orderer = msp_id == orderer_msp
        group = _org_group(msp, tls_roots.get(msp_id, []), orderer=is_orderer)
        if is_orderer:
            _value(group, "Endpoints", channel_cfg.OrdererAddresses(addresses=[endpoint]))
            ordg.groups[msp_id].CopyFrom(group)
        else:
            _value(group, "AnchorPeers", peer_cfg.AnchorPeers(anchor_peers=[peer_cfg.AnchorPeer(host=host, port=int(port))]))
            app.groups[msp_id].CopyFrom(group)
    _value(app, "Capabilities", _capabilities(APPLICATION_CAPABILITY))
    for name, rule in (("Readers", "ANY"), ("Writers", "ANY"), ("Admins", "MAJORITY"),
                       ("Endorsement", "MAJORITY"), ("LifecycleEndorsement", "MAJORITY")):
        sub = "Endorsement" if name.endswith("Endorsement") else name
        _policy(app, name, implicit_meta(sub, rule))

    raft = etcdraft.ConfigMetadata(
        consenters=[etcdraft.Consenter(host=host, port=int(port), client_tls_cert=consenter_tls_cert,
                                       server_tls_cert=consenter_tls_cert)],
        options=etcdraft.Options(tick_interval="500ms", election_tick=10, heartbeat_tick=1, max_inflight_blocks=5,
                                 snapshot_interval_size=16 * 1024 * 1024),
    )
    _value(ordg, "ConsensusType", orderer_cfg.ConsensusType(
        type="etcdraft", metadata=raft.SerializeToString(), state=orderer_cfg.ConsensusType.STATE_NORMAL))
    _value(ordg, "BatchSize", orderer_cfg.BatchSize(
        max_message_count=batch.max_message_count, absolute_max_bytes=max(10 * 1024 * 1024, batch.preferred_max_bytes),
        preferred_max_bytes=batch.preferred_max_bytes))
    _value(ordg, "BatchTimeout", orderer_cfg.BatchTimeout(timeout=_duration(batch.timeout_ms)))
    _value(ordg, "ChannelRestrictions", orderer_cfg.ChannelRestrictions(max_count=0))
    _value(ordg, "Capabilities", _capabilities(ORDERER_CAPABILITY))
    for name, rule in (("Readers", "ANY"), ("Writers", "ANY"), ("Admins", "MAJORITY")):
        _policy(ordg, name, implicit_meta(name, rule))
    _policy(ordg, "BlockValidation", implicit_meta("Writers", "ANY"))
    return configtx_pb2.Config(sequence=0, channel_group=root)


def genesis_envelope(channel: str, config: configtx_pb2.Config, orderer: Identity, signer: Signer,
                     last_update: common_pb2.Envelope | None = None) -> bytes:
    """A CONFIG envelope signed by the orderer: block 0's, or (with the ``last_update`` that
    produced ``config``) a configuration update's, see :mod:`.configtx`."""
    nonce = P.new_nonce()
    creator = orderer.serialize()
    ch = common_pb2.ChannelHeader(type=P.CONFIG, channel_id=channel, tx_id=P.compute_txid(nonce, creator))
    ch.timestamp.CopyFrom(P.timestamp_now())
    sh = common_pb2.SignatureHeader(creator=creator, nonce=nonce)
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=ch.SerializeToString(), signature_header=sh.SerializeToString()),
        data=configtx_pb2.ConfigEnvelope(config=config, last_update=last_update).SerializeToString(),
    ).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=signer.sign(payload)).SerializeToString()


def config_from_block(block: common_pb2.Block) -> configtx_pb2.Config:
    _, payload, ch = P.parse_envelope_header(block.data.data[0])
    if ch.type != P.CONFIG:
        raise P.ProtocolError("block 0 is not a configuration block")
    env = configtx_pb2.ConfigEnvelope()
    env.ParseFromString(payload.data)
    return env.config


def msps_from_genesis(block: common_pb2.Block) -> tuple[dict[str, MSP], str]:
    """The channel's MSPs (and the orderer org's MSP id) as written in its genesis block."""
    return msps_from_config(config_from_block(block))


def msps_from_config(cfg: configtx_pb2.Config) -> tuple[dict[str, MSP], str]:
    """The MSPs (and the orderer org's MSP id) of a channel configuration."""
    out: dict[str, MSP] = {}
    orderer_msp = ""
    for section in ("Application", "Orderer"):
        for msp_id, group in cfg.channel_group.groups[section].groups.items():
            mc = msp_config_pb2.MSPConfig()
            mc.ParseFromString(group.values["MSP"].value)
            fm = msp_config_pb2.FabricMSPConfig()
            fm.ParseFromString(mc.config)
            out[msp_id] = MSP(msp_id, [x509.load_pem_x509_certificate(c) for c in fm.root_certs])
            if section == "Orderer":
                orderer_msp = msp_id
    return out, orderer_msp


def tls_roots_from_genesis(block: common_pb2.Block) -> list[bytes]:
    """Every organisation's TLS root certificates (PEM) in the channel configuration: the client
    CAs a node accepts for mutual TLS, as a Fabric peer takes them from its channels."""
    cfg = config_from_block(block)
    out: list[bytes] = []
    for section in ("Application", "Orderer"):
        for group in cfg.channel_group.groups[section].groups.values():
            mc = msp_config_pb2.MSPConfig()
            mc.ParseFromString(group.values["MSP"].value)
            fm = msp_config_pb2.FabricMSPConfig()
            fm.ParseFromString(mc.config)
            out.extend(c for c in fm.tls_root_certs if c not in out)
    return out
