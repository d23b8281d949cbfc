"""Real Hyperledger Fabric: a local network of native processes (orderer, one peer per hospital, the
chaincode servers) built from the SERUMS network configuration, reached with the same client."""

from .network import CHAINCODE_MODULE, TOOLS, FabricError, FabricNetwork, find_fabric_bin

__all__ = ["CHAINCODE_MODULE", "TOOLS", "FabricError", "FabricNetwork", "find_fabric_bin"]
