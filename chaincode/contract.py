"""A small contract API in the spirit of Fabric's contract API.

A chaincode is a set of contracts; a contract is a class whose methods decorated with
:func:`transaction` (submit) or :func:`evaluate` (query) can be invoked as ``"Contract:fn"``
(or plain ``"fn"`` on the default contract). Arguments arrive as strings and are converted to
the parameter's annotated type (``str`` as is; ``int``, ``float``, ``bool``, ``dict``, ``list``
and dataclasses from JSON; ``bytes`` raw). Results are returned as UTF-8 for ``str``, raw for
``bytes``, JSON otherwise. A :class:`ChaincodeError` reaches the client with its status and
message; any other exception is reported as an internal error without a trace.

``org.hyperledger.fabric:GetMetadata`` returns the contracts' metadata in Fabric's shape.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .stub import ChaincodeStub, ClientIdentity, StubError

log = logging.getLogger(__name__)

METADATA_FN = "org.hyperledger.fabric:GetMetadata"
_TX_ATTR = "__serums_transaction__"


# --------------------------------------------------------------------------- errors


class ChaincodeError(Exception):
    """A precondition failure to report to the client: status ≥ 400 and a clear message."""

    status = 500
    kind = "error"

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class InvalidArgument(ChaincodeError):
    status = 400
    kind = "invalid_argument"


class Forbidden(ChaincodeError):
    status = 403
    kind = "forbidden"


class NotFound(ChaincodeError):
    status = 404
    kind = "not_found"


class Conflict(ChaincodeError):
    status = 409
    kind = "conflict"


@dataclass(frozen=True)
class Response:
    """The chaincode's answer to one invocation (Fabric's ``protos.Response``)."""

    status: int
    message: str = ""
    payload: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status < 400


# --------------------------------------------------------------------------- context and contract


class Context:
    """What a transaction function receives first: the stub and the client identity."""

    def __init__(self, stub: ChaincodeStub):
        self.stub = stub
        self._client: ClientIdentity | None = None

    @property
    def client_identity(self) -> ClientIdentity:
        if self._client is None:
            self._client = self.stub.get_creator()
        return self._client


class Contract:
    """Base class of contracts. ``name`` defaults to the class name."""

    name: str = ""
    info: dict[str, Any] = {}

    def create_context(self, stub: ChaincodeStub) -> Context:
        return Context(stub)

    def before_transaction(self, ctx: Context) -> None:
        """Runs before every transaction function of this contract."""

    def after_transaction(self, ctx: Context, result: Any) -> None:
        """Runs after every successful transaction function of this contract."""

    def unknown_transaction(self, ctx: Context, fn: str) -> Any:
        raise NotFound(f"function {fn!r} is not defined in contract {self.contract_name!r}")

    @property
    def contract_name(self) -> str:
        return self.name or type(self).__name__


def transaction(fn: Callable | None = None, *, submit: bool = True, name: str | None = None):
    """Mark a contract method as a transaction function (``submit=False``: evaluate only)."""

    def mark(f: Callable) -> Callable:
        setattr(f, _TX_ATTR, {"submit": submit, "name": name or f.__name__})
        return f

    return mark(fn) if fn is not None else mark


def evaluate(fn: Callable | None = None, *, name: str | None = None):
    """Mark a contract method as an evaluate (query) transaction function."""
    return transaction(fn, submit=False, name=name)


# --------------------------------------------------------------------------- argument conversion


_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", dict: "object", list: "array", str: "string"}


def _schema_for(tp: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if tp is inspect.Parameter.empty or tp is Any:
        return {}
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return {"type": "array", "items": _schema_for(args[0]) if args else {}}
    if origin is dict:
        return {"type": "object"}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        opts = [a for a in typing.get_args(tp) if a is not type(None)]
        return _schema_for(opts[0]) if len(opts) == 1 else {}
    if tp is bytes:
        return {"type": "string", "format": "byte"}
    if dataclasses.is_dataclass(tp):
        return {"$ref": f"#/components/schemas/{tp.__name__}"}
    if tp in _JSON_TYPES:
        return {"type": _JSON_TYPES[tp]}
    return {}


def _text(value: bytes, pname: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"argument {pname!r}: not valid UTF-8") from exc


def _convert(value: bytes, tp: Any, pname: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        opts = [a for a in typing.get_args(tp) if a is not type(None)]
        if value == b"" and type(None) in typing.get_args(tp):
            return None
        tp = opts[0] if len(opts) == 1 else Any
        origin = typing.get_origin(tp)
    if tp is bytes:
        return value
    text = _text(value, pname)
    if tp in (str, inspect.Parameter.empty, Any):
        return text
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"argument {pname!r}: expected {_schema_for(tp).get('type', 'JSON')}, got {text[:40]!r}") from exc
    expect = origin or tp
    if expect is float and isinstance(parsed, int) and not isinstance(parsed, bool):
        return float(parsed)
    if expect in (int, float, bool, dict, list, str):
        ok = isinstance(parsed, expect) and not (expect is int and isinstance(parsed, bool))
        if not ok:
            raise InvalidArgument(f"argument {pname!r}: expected {_JSON_TYPES[expect]}, got {text[:40]!r}")
        return parsed
    if dataclasses.is_dataclass(tp):
        if not isinstance(parsed, dict):
            raise InvalidArgument(f"argument {pname!r}: expected an object")
        fields = {f.name for f in dataclasses.fields(tp)}
        unknown = set(parsed) - fields
        if unknown:
            raise InvalidArgument(f"argument {pname!r}: unknown field(s) {', '.join(sorted(unknown))}")
        try:
            return tp(**parsed)
        except TypeError as exc:
            raise InvalidArgument(f"argument {pname!r}: {exc}") from exc
    return parsed


def _converter(tp: Any, pname: str) -> Callable[[bytes], Any]:
    """How one parameter's argument is converted, decided once when the contract is collected:
    text parameters (most) are decoded directly, the others go through :func:`_convert`."""
    if tp in (str, inspect.Parameter.empty, Any):
        return lambda value: _text(value, pname)
    return lambda value: _convert(value, tp, pname)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def encode_result(result: Any) -> bytes:
    if result is None:
        return b""
    if isinstance(result, bytes):
        return result
    if isinstance(result, str):
        return result.encode("utf-8")
    return json.dumps(result, default=_jsonable, separators=(",", ":"), sort_keys=True).encode()


# --------------------------------------------------------------------------- dispatch


@dataclass
class _TxFunction:
    contract: Contract
    name: str
    submit: bool
    func: Callable
    params: list[inspect.Parameter]
    hints: dict[str, Any]
    converters: list[Callable[[bytes], Any]] = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        self.converters = [_converter(self.hints.get(p.name, p.annotation), p.name) for p in self.params]

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tags": ["submit" if self.submit else "evaluate"],
            "parameters": [
                {"name": p.name, "schema": _schema_for(self.hints.get(p.name, p.annotation))} for p in self.params
            ],
            "returns": _schema_for(self.hints.get("return", inspect.Parameter.empty)),
        }


class Chaincode:
    """A set of contracts behind one chaincode name; the engines call :meth:`invoke`."""

    def __init__(self, *contracts: Contract, default: str | None = None, info: dict[str, Any] | None = None):
        if not contracts:
            raise ValueError("a chaincode needs at least one contract")
        self.contracts: dict[str, Contract] = {}
        self.functions: dict[str, dict[str, _TxFunction]] = {}
        for c in contracts:
            cname = c.contract_name
            if cname in self.contracts:
                raise ValueError(f"duplicate contract name {cname!r}")
            self.contracts[cname] = c
            self.functions[cname] = self._collect(c)
        self.default = default or next(iter(self.contracts))
        if self.default not in self.contracts:
            raise ValueError(f"default contract {self.default!r} is not one of the contracts")
        self.info = info or {"title": "serums chaincode", "version": "1.0"}

    @staticmethod
    def _collect(contract: Contract) -> dict[str, _TxFunction]:
        out: dict[str, _TxFunction] = {}
        for _, member in inspect.getmembers(type(contract), predicate=inspect.isfunction):
            spec = getattr(member, _TX_ATTR, None)
            if not spec:
                continue
            sig = inspect.signature(member)
            params = list(sig.parameters.values())[2:]  # self, ctx
            try:
                hints = typing.get_type_hints(member)
            except Exception:  # noqa: BLE001 - unresolvable annotations: fall back to raw strings
                hints = {}
            out[spec["name"]] = _TxFunction(
                contract, spec["name"], spec["submit"], getattr(contract, member.__name__), params, hints
            )
        return out

    def resolve(self, fn: str) -> tuple[Contract, str]:
        if ":" in fn:
            cname, _, tname = fn.rpartition(":")
            if cname not in self.contracts:
                raise NotFound(f"contract {cname!r} is not in this chaincode")
            return self.contracts[cname], tname
        return self.contracts[self.default], fn

    def invoke(self, stub: ChaincodeStub) -> Response:
        """Run the function named by the first argument. Never raises."""
        try:
            args = stub.get_args()
            if not args:
                raise InvalidArgument("no function name given")
            try:
                fn = args[0].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidArgument("function name is not valid UTF-8") from exc
            if fn == METADATA_FN:
                return Response(200, "", encode_result(self.metadata()))
            contract, tname = self.resolve(fn)
            ctx = contract.create_context(stub)
            txf = self.functions[contract.contract_name].get(tname)
            if txf is None:
                return Response(200, "", encode_result(contract.unknown_transaction(ctx, tname)))
            raw = args[1:]
            if len(raw) != len(txf.params):
                want = ", ".join(p.name for p in txf.params) or "none"
                raise InvalidArgument(
                    f"{contract.contract_name}:{tname} takes {len(txf.params)} argument(s) ({want}), got {len(raw)}"
                )
            values = [conv(v) for conv, v in zip(txf.converters, raw, strict=True)]
            contract.before_transaction(ctx)
            result = txf.func(ctx, *values)
            contract.after_transaction(ctx, result)
            return Response(200, "", encode_result(result))
        except ChaincodeError as exc:
            return Response(exc.status, exc.message)
        except StubError as exc:
            return Response(400, str(exc))
        except Exception:  # noqa: BLE001 - a bug in a contract must not crash the peer or leak a trace
            log.exception("chaincode function failed")
            return Response(500, "internal chaincode error")

    def metadata(self) -> dict[str, Any]:
        schemas: dict[str, Any] = {}
        contracts: dict[str, Any] = {}
        for cname, contract in self.contracts.items():
            fns = self.functions[cname]
            for f in fns.values():
                for tp in [*f.hints.values()]:
                    if dataclasses.is_dataclass(tp):
                        schemas[tp.__name__] = {
                            "$id": tp.__name__,
                            "type": "object",
                            "properties": {
                                name: _schema_for(ftp) for name, ftp in typing.get_type_hints(tp).items()
                            },
                        }
            contracts[cname] = {
                "name": cname,
                "info": contract.info or {"title": cname, "version": "1.0"},
                "transactions": [f.metadata() for f in sorted(fns.values(), key=lambda f: f.name)],
            }
        return {
            "$schema": "https://hyperledger.github.io/fabric-chaincode-node/main/api/contract-schema.json",
            "info": self.info,
            "contracts": contracts,
            "components": {"schemas": schemas},
        }
