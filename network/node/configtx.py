"""Channel configuration updates of the embedded node, in Fabric's format: a hospital joins.

An update is a ``CONFIG_UPDATE`` envelope holding a ``ConfigUpdateEnvelope``: the
``ConfigUpdate`` (read set: the Application group at its current version, its members by
version; write set: the Application group at the next version, the existing members as
references and the new organisation's group in full) and the ``ConfigSignature``s of the
hospitals' admins over ``signature_header || config_update``. The ordering service checks it
against the configuration in force — the read versions, that it only adds one organisation, and
the channel's Application ``Admins`` policy (a MAJORITY of the hospitals' admins) — and orders a
``CONFIG`` transaction (``ConfigEnvelope``: the new configuration and the update) alone in a
block, whose ``LAST_CONFIG`` points at itself. Every peer re-checks that block against its own
configuration before it accepts the new organisation, and so does ``serums ledger verify``.

Only the change a joining hospital needs is supported; any other update is refused.
"""

from __future__ import annotations

from cryptography import x509
from fabric_protos.common import common_pb2, configtx_pb2

from .. import protocol as P
from ..identity import MSP, Identity, Signer
from .genesis import ADMINS, _org_group, config_from_block, msps_from_config
from .membership import Membership, MembershipError

APPLICATION = "Application"
#: HTTP-like status of each refusal (403: the channel's policy is not satisfied)
_STATUS = {"config-update-refused": 403, "config-policy-not-satisfied": 403, "stale-config-update": 409,
           "already-member": 409}


class ConfigUpdateError(Exception):
    """A configuration update the channel's configuration does not allow."""

    slug = "config-update-refused"
    status = 403
    title = "Configuration update refused"

    def __init__(self, detail: str, slug: str | None = None, status: int | None = None):
        super().__init__(detail)
        self.detail = detail
        if slug:
            self.slug = slug
        self.status = status or _STATUS.get(self.slug, 400)


def hospital_msp_ids(config: configtx_pb2.Config) -> list[str]:
    return list(config.channel_group.groups[APPLICATION].groups)


def add_org_update(config: configtx_pb2.Config, channel: str, msp: MSP,
                   tls_roots: list[x509.Certificate], anchor: tuple[str, int]) -> bytes:
    """The serialized ``ConfigUpdate`` adding ``msp`` (a hospital) to the Application group."""
    from fabric_protos.peer import configuration_pb2 as peer_cfg

    app = config.channel_group.groups[APPLICATION]
    if msp.msp_id in app.groups:
        raise ConfigUpdateError(f"{msp.msp_id} is already a member of channel {channel!r}", "already-member")
    update = configtx_pb2.ConfigUpdate(channel_id=channel)
    for target, version in ((update.read_set, app.version), (update.write_set, app.version + 1)):
        g = target.groups[APPLICATION]
        g.version = version
        if target is update.write_set:
            g.mod_policy = ADMINS
        for name, sub in app.groups.items():
            g.groups[name].version = sub.version
        for name, v in app.values.items():
            g.values[name].version = v.version
        for name, p in app.policies.items():
            g.policies[name].version = p.version
    group = _org_group(msp, tls_roots, orderer=False)
    group.values["AnchorPeers"].value = peer_cfg.AnchorPeers(
        anchor_peers=[peer_cfg.AnchorPeer(host=anchor[0], port=anchor[1])]).SerializeToString()
    group.values["AnchorPeers"].mod_policy = ADMINS
    update.write_set.groups[APPLICATION].groups[msp.msp_id].CopyFrom(group)
    return update.SerializeToString()


def sign_config_update(update: configtx_pb2.ConfigUpdateEnvelope, admin: Identity, signer: Signer) -> None:
    """Add ``admin``'s ``ConfigSignature`` (as ``peer channel signconfigtx`` does)."""
    sh = common_pb2.SignatureHeader(creator=admin.serialize(), nonce=P.new_nonce()).SerializeToString()
    update.signatures.add(signature_header=sh, signature=signer.sign(sh + update.config_update))


def config_update_envelope(channel: str, update: configtx_pb2.ConfigUpdateEnvelope, submitter: Identity,
                           signer: Signer) -> bytes:
    """The signed ``CONFIG_UPDATE`` envelope a hospital admin submits to the ordering service."""
    creator = submitter.serialize()
    nonce = P.new_nonce()
    ch = common_pb2.ChannelHeader(type=common_pb2.CONFIG_UPDATE, channel_id=channel,
                                  tx_id=P.compute_txid(nonce, creator))
    ch.timestamp.CopyFrom(P.timestamp_now())
    payload = common_pb2.Payload(
        header=common_pb2.Header(channel_header=ch.SerializeToString(),
                                 signature_header=common_pb2.SignatureHeader(creator=creator, nonce=nonce)
                                 .SerializeToString()),
        data=update.SerializeToString(),
    ).SerializeToString()
    return common_pb2.Envelope(payload=payload, signature=signer.sign(payload)).SerializeToString()


def _admin_orgs(update: configtx_pb2.ConfigUpdateEnvelope, membership: Membership, hospitals: list[str]) -> set[str]:
    """The hospitals whose admin validly signed the update."""
    orgs: set[str] = set()
    for sig in update.signatures:
        sh = common_pb2.SignatureHeader()
        try:
            sh.ParseFromString(sig.signature_header)
            ident = membership.identity(sh.creator)
        except (ValueError, MembershipError):
            continue
        if ident.msp_id in hospitals and ident.node_role == "admin" and membership.check_signature(
                ident, sig.signature_header + update.config_update, sig.signature):
            orgs.add(ident.msp_id)
    return orgs


def apply_config_update(config: configtx_pb2.Config, channel: str, envelope: bytes,
                        membership: Membership) -> configtx_pb2.Config:
    """The configuration that results from the ``CONFIG_UPDATE`` ``envelope``, checked against
    ``config`` (the one in force) and its Admins policy; raises :class:`ConfigUpdateError`."""
    try:
        env, payload, ch = P.parse_envelope_header(envelope)
        update_env = configtx_pb2.ConfigUpdateEnvelope()
        update_env.ParseFromString(payload.data)
        update = configtx_pb2.ConfigUpdate()
        update.ParseFromString(update_env.config_update)
    except (P.ProtocolError, ValueError) as exc:
        raise ConfigUpdateError(f"not a configuration update: {exc}", "bad-config-update") from None
    if ch.type != common_pb2.CONFIG_UPDATE or ch.channel_id != channel or update.channel_id != channel:
        raise ConfigUpdateError(f"not a configuration update of channel {channel!r}", "bad-config-update")
    app = config.channel_group.groups[APPLICATION]
    read, write = update.read_set.groups.get(APPLICATION), update.write_set.groups.get(APPLICATION)
    if (set(update.read_set.groups) != {APPLICATION} or set(update.write_set.groups) != {APPLICATION}
            or update.read_set.values or update.write_set.values or update.write_set.policies):
        raise ConfigUpdateError("only adding an organisation to the Application group is supported",
                                "unsupported-config-update")
    if read.version != app.version or write.version != app.version + 1:
        raise ConfigUpdateError(f"the update was computed against Application version {read.version}, the channel "
                                f"is at {app.version}: fetch the configuration again", "stale-config-update")
    new = [k for k in write.groups if k not in app.groups]
    unchanged = (all(k in write.groups and write.groups[k].version == g.version and not write.groups[k].values
                     for k, g in app.groups.items())
                 and set(write.values) == set(app.values) and set(write.policies) == set(app.policies)
                 and all(not v.value for v in write.values.values())
                 and all(not p.HasField("policy") for p in write.policies.values()))
    if len(new) != 1 or not unchanged:
        raise ConfigUpdateError("only adding one organisation to the Application group is supported",
                                "unsupported-config-update")
    group = write.groups[new[0]]
    try:
        msps = msps_from_config(configtx_pb2.Config(channel_group=configtx_pb2.ConfigGroup(
            groups={APPLICATION: configtx_pb2.ConfigGroup(groups={new[0]: group})})))[0]
    except Exception as exc:  # noqa: BLE001 - any malformed MSP is a refusal
        raise ConfigUpdateError(f"the new organisation's MSP is malformed: {exc}", "bad-config-update") from None
    if list(msps) != [new[0]]:
        raise ConfigUpdateError(f"the group {new[0]!r} holds the MSP of {list(msps)}", "bad-config-update")
    hospitals = list(app.groups)
    need = len(hospitals) // 2 + 1  # ImplicitMeta MAJORITY of the hospitals' Admins
    signed = _admin_orgs(update_env, membership, hospitals)
    if len(signed) < need:
        raise ConfigUpdateError(
            f"the update is signed by the admins of {len(signed)} of {len(hospitals)} hospitals "
            f"({', '.join(sorted(signed)) or 'none'}); the channel's Admins policy needs a MAJORITY ({need})",
            "config-policy-not-satisfied")
    out = configtx_pb2.Config()
    out.CopyFrom(config)
    out.sequence = config.sequence + 1
    out_app = out.channel_group.groups[APPLICATION]
    out_app.version = app.version + 1
    out_app.groups[new[0]].CopyFrom(group)
    return out


def is_config_block(block: common_pb2.Block) -> bool:
    if len(block.data.data) != 1:
        return False
    try:
        return P.parse_envelope_header(block.data.data[0])[2].type == P.CONFIG
    except P.ProtocolError:
        return False


def validate_config_block(block: common_pb2.Block, config: configtx_pb2.Config, channel: str,
                          membership: Membership, orderer_msp: str) -> configtx_pb2.Config:
    """The configuration a committed CONFIG block installs, re-derived from its update against
    ``config`` (the configuration before it); raises :class:`ConfigUpdateError`."""
    env, payload, ch = P.parse_envelope_header(block.data.data[0])
    sh = common_pb2.SignatureHeader()
    sh.ParseFromString(payload.header.signature_header)
    try:
        ident = membership.verified_identity(sh.creator, env.payload, env.signature)
    except MembershipError as exc:
        raise ConfigUpdateError(f"configuration block not signed by the orderer: {exc}") from None
    if ident.msp_id != orderer_msp or ident.node_role != "orderer" or ch.channel_id != channel:
        raise ConfigUpdateError("configuration block not signed by the channel's orderer")
    cenv = configtx_pb2.ConfigEnvelope()
    cenv.ParseFromString(payload.data)
    expected = apply_config_update(config, channel, cenv.last_update.SerializeToString(), membership)
    if expected != cenv.config:
        raise ConfigUpdateError("the configuration in the block is not the one its update produces")
    return expected


def last_config(block: common_pb2.Block) -> int:
    """The LAST_CONFIG index a block's orderer metadata records (0 when it has none)."""
    md = block.metadata.metadata
    if len(md) <= P.METADATA_SIGNATURES or not md[P.METADATA_SIGNATURES]:
        return 0
    meta = common_pb2.Metadata()
    meta.ParseFromString(md[P.METADATA_SIGNATURES])
    obm = common_pb2.OrdererBlockMetadata()
    obm.ParseFromString(meta.value)
    return obm.last_config.index


def config_in_force(read_block, height: int) -> tuple[configtx_pb2.Config, int]:
    """The channel configuration at ``height`` of a block store (``read_block(num) -> bytes``)
    and the number of the block that installed it."""
    index = last_config(P.parse_block(read_block(height - 1) or b"")) if height else 0
    return config_from_block(P.parse_block(read_block(index) or b"")), index


__all__ = [
    "ConfigUpdateError",
    "add_org_update",
    "last_config",
    "apply_config_update",
    "config_in_force",
    "config_update_envelope",
    "hospital_msp_ids",
    "is_config_block",
    "sign_config_update",
    "validate_config_block",
]
