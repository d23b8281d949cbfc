"""Smart contracts and their runtime: contract API, stub interface, chaincode-as-a-service shim.

Imports nothing else of the project: both engines (the embedded node and real Fabric through the
CCaaS shim) run the same contracts against the same :class:`ChaincodeStub` interface. The shim's
small gRPC server (:mod:`.h2grpc`) also serves the embedded node's gRPC services.
"""

from .contract import (
    METADATA_FN,
    Chaincode,
    ChaincodeError,
    Conflict,
    Context,
    Contract,
    Forbidden,
    InvalidArgument,
    NotFound,
    Response,
    encode_result,
    evaluate,
    transaction,
)
from .h2grpc import H2Server, Method, Stream, server_ssl_context
from .stub import (
    FABRIC_ATTRS_OID,
    KV,
    MAX_RUNE,
    NODE_ROLES,
    ChaincodeStub,
    ClientIdentity,
    KeyModification,
    QueryPage,
    StubError,
    certificate_attributes,
    certificate_common_name,
    certificate_id,
    certificate_node_role,
    create_composite_key,
    split_composite_key,
    validate_simple_key,
)

__all__ = [
    "FABRIC_ATTRS_OID",
    "KV",
    "MAX_RUNE",
    "METADATA_FN",
    "NODE_ROLES",
    "Chaincode",
    "ChaincodeError",
    "ChaincodeStub",
    "ClientIdentity",
    "Conflict",
    "Context",
    "Contract",
    "Forbidden",
    "H2Server",
    "InvalidArgument",
    "KeyModification",
    "Method",
    "NotFound",
    "QueryPage",
    "Response",
    "Stream",
    "StubError",
    "certificate_attributes",
    "certificate_common_name",
    "certificate_id",
    "certificate_node_role",
    "create_composite_key",
    "encode_result",
    "evaluate",
    "server_ssl_context",
    "split_composite_key",
    "transaction",
    "validate_simple_key",
]
