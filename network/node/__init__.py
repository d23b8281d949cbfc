"""The embedded node: peers, orderer and committers in one process, serving Fabric's Gateway API."""

from .membership import Membership, MembershipError
from .node import EmbeddedNode
from .peer import load_chaincode
from .store import OrdererStore, PeerStore

__all__ = ["EmbeddedNode", "load_chaincode", "Membership", "MembershipError", "OrdererStore", "PeerStore"]
