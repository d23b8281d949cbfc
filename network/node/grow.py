"""A new hospital joins a running embedded network (``serums network add-hospital NAME``).

1. The organisation is prepared as ``network init`` prepares one: its CA, peer and admin
   identities, in ``network.json``.
2. The channel configuration in force is fetched over Deliver (the newest block's LAST_CONFIG),
   the ``ConfigUpdate`` adding the hospital's MSP (root and TLS root certificates, NodeOUs,
   policies, anchor peer) computed from it, signed by the admins of a MAJORITY of the hospitals
   already in the channel and broadcast to the node's ordering service (``AtomicBroadcast``),
   which checks it against the channel's Admins policy and orders it (:mod:`.configtx`).
3. Every peer validates the CONFIG block and accepts the new MSP; the running node starts the new
   hospital's peer, which catches up from the orderer's block store, and records the chaincode
   definitions again, their endorsement policies (``MAJORITY``...) now over the new set.
4. The hospital registers on chain (``RegisterHospital``, signed by its admin, endorsed by its peer).

A refused update changes nothing: the prepared organisation is removed again.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping

import grpc
from fabric_protos.common import common_pb2, configtx_pb2
from fabric_protos.orderer import ab_pb2

from ..client import GatewayError, connect
from ..config import NetworkConfig, add_hospital_config
from ..identity import MSP
from .configtx import (
    ConfigUpdateError,
    add_org_update,
    config_update_envelope,
    hospital_msp_ids,
    last_config,
    sign_config_update,
)
from .genesis import config_from_block
from .tls import client_tls, tls_cas

log = logging.getLogger(__name__)

_STATUS = {"FORBIDDEN": 403, "NOT_FOUND": 404, "BAD_REQUEST": 400}


def fetch_config(network) -> configtx_pb2.Config:
    """The channel configuration in force, read over Deliver as ``peer channel fetch config`` does."""
    with network.block_events() as events:  # from the newest block
        newest = next(iter(events))
    index = last_config(newest)
    with network.block_events(start_block=index, stop_block=index) as events:
        return config_from_block(next(iter(events)))


def broadcast(channel: grpc.Channel, envelope: bytes, timeout: float = 30.0) -> ab_pb2.BroadcastResponse:
    call = channel.stream_stream("/orderer.AtomicBroadcast/Broadcast",
                                 request_serializer=common_pb2.Envelope.SerializeToString,
                                 response_deserializer=ab_pb2.BroadcastResponse.FromString)
    env = common_pb2.Envelope()
    env.ParseFromString(envelope)
    return next(iter(call(iter([env]), timeout=timeout)))


def _forget(cfg: NetworkConfig, org) -> None:
    """Undo :func:`~network.config.add_hospital_config` for an organisation that did not join."""
    cfg.hospitals.remove(org)
    cfg.save()
    shutil.rmtree(cfg.org_dir(org.name), ignore_errors=True)


def add_hospital(cfg: NetworkConfig, name: str, address: str, *, passphrase: str | None = None,
                 display_name: str | None = None, signers: list[str] | None = None, timeout: float = 60.0,
                 progress: Callable[[str], None] = log.info, tls: Mapping[str, bytes] | None = None) -> str:
    """Add hospital ``name`` to the embedded node serving on ``address``; returns its MSP id.
    ``signers`` names the existing hospitals whose admins sign the update (default: the first
    MAJORITY of them). ``tls``: :func:`~.tls.client_tls_options` of a node served with TLS (with
    mutual TLS the new hospital's admin then connects with its own client certificate, which the
    running node accepts once the update is committed). Raises
    :class:`~.configtx.ConfigUpdateError` when the update is refused."""
    tls = dict(tls or {})
    first = cfg.hospitals[0].name
    ident, signer = cfg.load_user(first, "admin", passphrase)
    with connect(ident, signer, address, **tls) as gw:
        config = fetch_config(gw.network(cfg.channel))
        members = hospital_msp_ids(config)
        org = add_hospital_config(cfg, name, passphrase)
        try:
            progress(f"{org.name}: CA, peer and admin identities ({org.msp_id})")
            msp = MSP(org.msp_id, [cfg.load_ca(org.name, passphrase).certificate])
            host, _, port = cfg.endpoint.rpartition(":")
            update = configtx_pb2.ConfigUpdateEnvelope(config_update=add_org_update(
                config, cfg.channel, msp, [tls_cas(cfg)[org.msp_id].certificate], (host, int(port))))
            names = signers if signers is not None else [
                h.name for h in cfg.hospitals if h.msp_id in members][: len(members) // 2 + 1]
            for h in names:
                sign_config_update(update, *cfg.load_user(h, "admin", passphrase))
            progress(f"channel update adding {org.msp_id}, signed by the admins of {len(names)} of "
                     f"{len(members)} hospitals")
            submitter = cfg.load_user(names[-1] if names else first, "admin", passphrase)
            envelope = config_update_envelope(cfg.channel, update, *submitter)
        except BaseException:
            _forget(cfg, org)
            raise
        # no answer (a lost connection) leaves the organisation: the update may have been ordered
        resp = broadcast(gw.channel, envelope, timeout)
        if resp.status != common_pb2.Status.Value("SUCCESS"):
            _forget(cfg, org)
            code = common_pb2.Status.Name(resp.status)
            raise ConfigUpdateError(resp.info or code, status=_STATUS.get(code, 400))
    progress(f"channel configuration updated ({resp.info}); peer0.{org.name} joining")
    ident, signer = cfg.load_user(org.name, "admin", passphrase)
    if "tls_client_cert" in tls:  # its own TLS client certificate, from its own TLS CA
        mine = client_tls(cfg, org.name)
        tls.update(tls_client_cert=mine.cert, tls_client_key=mine.key)
    deadline = time.monotonic() + timeout
    with connect(ident, signer, address, **tls) as gw:
        users = gw.network(cfg.channel).contract("serums", "UserContract")
        while True:  # the new peer serves once the node committed the CONFIG block and caught it up
            try:
                users.evaluate("GetHospital", org.msp_id, target_organizations=[org.msp_id])
                break
            except GatewayError as exc:
                if exc.chaincode_status == 404:
                    break
                if time.monotonic() > deadline:
                    raise ConfigUpdateError(f"peer0.{org.name} did not join within {timeout:.0f}s: {exc}",
                                            "join-timeout", 504) from None
                time.sleep(0.1)
        users.submit("RegisterHospital", display_name or org.name.capitalize())
    progress(f"{org.msp_id} registered on chain")
    return org.msp_id
