"""Real Hyperledger Fabric: a local network of native processes (orderer, one peer per hospital, the
chaincode servers) built from the SERUMS network configuration, reached with the same client."""

from .network import CHAINCODE_MODULE, TOOLS, FabricError, FabricNetwork, find_fabric_bin


def verify_fabric(net: FabricNetwork, passphrase: str | None = None):
    """Check every hospital's peer's chain read through Deliver (``serums ledger verify``)."""
    from .audit import verify_fabric as _verify

    return _verify(net, passphrase)


__all__ = ["CHAINCODE_MODULE", "TOOLS", "FabricError", "FabricNetwork", "find_fabric_bin", "verify_fabric"]
